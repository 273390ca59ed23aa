/* core/inspect.c — sl_log_inspect: a human summary of a run's HDF5 log (contract: log.h).
 *
 * The log may be finished, still being written in SWMR mode, or left behind by a killed
 * writer, so it is opened read-only with H5F_ACC_SWMR_READ first (the only way HDF5 1.10
 * opens a file whose superblock still says "open for SWMR writing"), then without it (logs
 * not in the 1.10 format). Nothing here trusts the layout: any group of 1-D datasets is
 * shown as a table, missing attributes are skipped, and columns of unequal length (a live
 * writer between two column writes) are reported rather than rejected.
 *
 * Only portable (unversioned) HDF5 calls are used for traversal, so this compiles against
 * the 1.10 and 1.12+ APIs alike. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>

#include "h5util.h"
#include "log.h"
#include "strbuf.h"

enum {
    KEY_WIDTH = 18,          /* column of root attribute values */
    NUM_WIDTH = 12,          /* width of a number in table statistics */
    SPEC_LINES = 6,          /* lines of the spec shown */
    LINE_MAX_CHARS = 100,    /* longer lines are cut */
    ARRAY_SHOWN = 8,         /* elements shown of an array attribute */
    READ_BLOCK = 65536       /* rows read at a time for column statistics */
};

/* ---- string lists ------------------------------------------------------------------------ */

typedef struct strlist {
    char **v;
    int n, cap;
    int oom;
} strlist;

static void sl_push(strlist *l, const char *s)
{
    if (l->oom)
        return;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    size_t len = strlen(s) + 1;
    char *d = malloc(len);
    if (!d) {
        l->oom = 1;
        return;
    }
    memcpy(d, s, len);
    l->v[l->n++] = d;
}

static void sl_clear(strlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int sl_has(const strlist *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return 1;
    return 0;
}

/* ---- HDF5 helpers ---------------------------------------------------------------------- */

typedef struct h5_detail {
    char text[400];
} h5_detail;

static void h5_detail_get(h5_detail *d) { sl_h5_error_detail(d->text, sizeof d->text); }

/* Appends one element of an attribute buffer to b. */
static void append_element(sl_strbuf *b, H5T_class_t cls, int is_unsigned, const void *buf,
                           size_t i, size_t fixed_len)
{
    switch (cls) {
    case H5T_STRING:
        if (fixed_len)
            sl_strbuf_printf(b, "%s", (const char *)buf + i * (fixed_len + 1));
        else
            sl_strbuf_printf(b, "%s", ((char *const *)buf)[i] ? ((char *const *)buf)[i] : "");
        break;
    case H5T_INTEGER:
        if (is_unsigned)
            sl_strbuf_printf(b, "%llu", (unsigned long long)((const uint64_t *)buf)[i]);
        else
            sl_strbuf_printf(b, "%lld", (long long)((const int64_t *)buf)[i]);
        break;
    case H5T_FLOAT:
        sl_strbuf_printf(b, "%.10g", ((const double *)buf)[i]);
        break;
    default:
        break;
    }
}

/* The value of an attribute as text (malloc'd), or NULL when it cannot be read. Strings,
 * integers and floats are shown; arrays as "[a, b, ...]"; other types by their class. */
static char *attr_text(hid_t attr)
{
    hid_t ftype = H5I_INVALID_HID, mtype = H5I_INVALID_HID, space = H5I_INVALID_HID;
    void *buf = NULL;
    char *text = NULL;
    size_t n = 0, fixed_len = 0;
    int vlen = 0, is_unsigned = 0, read_ok = 0;
    sl_strbuf b;
    sl_strbuf_init(&b);

    ftype = H5Aget_type(attr);
    space = H5Aget_space(attr);
    if (ftype < 0 || space < 0)
        goto cleanup;
    hssize_t np = H5Sget_simple_extent_npoints(space);
    if (np < 0)
        goto cleanup;
    n = (size_t)np;
    int scalar = H5Sget_simple_extent_type(space) == H5S_SCALAR;
    H5T_class_t cls = H5Tget_class(ftype);
    size_t elem = 8;
    switch (cls) {
    case H5T_STRING:
        vlen = H5Tis_variable_str(ftype) > 0;
        mtype = H5Tcopy(H5T_C_S1);
        if (mtype < 0 || H5Tset_cset(mtype, H5Tget_cset(ftype)) < 0)
            goto cleanup;
        if (vlen) {
            if (H5Tset_size(mtype, H5T_VARIABLE) < 0)
                goto cleanup;
            elem = sizeof(char *);
        } else {
            fixed_len = H5Tget_size(ftype);
            if (fixed_len == 0 || H5Tset_size(mtype, fixed_len + 1) < 0 ||
                H5Tset_strpad(mtype, H5T_STR_NULLTERM) < 0)
                goto cleanup;
            elem = fixed_len + 1;
        }
        break;
    case H5T_INTEGER:
        is_unsigned = H5Tget_sign(ftype) == H5T_SGN_NONE;
        mtype = H5Tcopy(is_unsigned ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64);
        break;
    case H5T_FLOAT:
        mtype = H5Tcopy(H5T_NATIVE_DOUBLE);
        break;
    default:
        sl_strbuf_printf(&b, "<attribute of HDF5 type class %d>", (int)cls);
        text = sl_strbuf_take(&b);
        goto cleanup;
    }
    if (mtype < 0)
        goto cleanup;
    buf = calloc(n ? n : 1, elem);
    if (!buf || H5Aread(attr, mtype, buf) < 0)
        goto cleanup;
    read_ok = 1;
    if (!scalar || n != 1)
        sl_strbuf_printf(&b, "[");
    for (size_t i = 0; i < n && i < ARRAY_SHOWN; i++) {
        if (i)
            sl_strbuf_printf(&b, ", ");
        append_element(&b, cls, is_unsigned, buf, i, fixed_len);
    }
    if (n > ARRAY_SHOWN)
        sl_strbuf_printf(&b, ", ... (%zu elements)", n);
    if (!scalar || n != 1)
        sl_strbuf_printf(&b, "]");
    text = sl_strbuf_take(&b);
cleanup:
    if (vlen && read_ok)
        for (size_t i = 0; i < n; i++)
            H5free_memory(((char **)buf)[i]);
    if (!text)
        free(sl_strbuf_take(&b));
    free(buf);
    if (mtype >= 0)
        H5Tclose(mtype);
    if (ftype >= 0)
        H5Tclose(ftype);
    if (space >= 0)
        H5Sclose(space);
    return text;
}

/* The attribute `name` of obj as text, or NULL when it is missing or unreadable. */
static char *attr_text_by_name(hid_t obj, const char *name)
{
    if (H5Aexists(obj, name) <= 0)
        return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return NULL;
    char *t = attr_text(a);
    H5Aclose(a);
    return t;
}

static herr_t collect_attr_name(hid_t obj, const char *name, const H5A_info_t *info, void *data)
{
    sl_push(data, name);
    return 0;
}

/* Attribute names in creation order (the writer tracks it), else in name order. */
static void attr_names(hid_t obj, strlist *names)
{
    hsize_t idx = 0;
    if (H5Aiterate2(obj, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, collect_attr_name, names) >= 0)
        return;
    sl_clear(names);
    idx = 0;
    H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr_name, names);
}

/* Prints `text` cut to one line of at most LINE_MAX_CHARS (multi-line values show their
 * first line and how many follow). */
static void print_one_line(FILE *out, const char *text)
{
    size_t len = strcspn(text, "\n");
    int more = 0;
    for (const char *c = text + len; *c; c++)
        more += *c == '\n' && c[1] != '\0';
    if (len > LINE_MAX_CHARS)
        fprintf(out, "%.*s...", (int)LINE_MAX_CHARS, text);
    else
        fprintf(out, "%.*s", (int)len, text);
    if (more)
        fprintf(out, "  (+%d lines)", more);
    fputc('\n', out);
}

/* ---- sections -------------------------------------------------------------------------- */

static const char *const ROOT_KEYS[] = {"name", "seed", "steinlab_version", "git_describe",
                                        "created", "host"};

static void print_spec(FILE *out, const char *spec)
{
    size_t bytes = strlen(spec);
    int lines = 0;
    for (const char *c = spec; *c; c++)
        lines += *c == '\n';
    if (bytes && spec[bytes - 1] != '\n')
        lines++;
    fprintf(out, "%-*s%d lines, %zu bytes\n", KEY_WIDTH, "spec", lines, bytes);
    const char *line = spec;
    for (int i = 0; i < lines && i < SPEC_LINES; i++) {
        size_t len = strcspn(line, "\n");
        fprintf(out, "%*s| %.*s%s\n", KEY_WIDTH, "",
                (int)(len > LINE_MAX_CHARS ? LINE_MAX_CHARS : len), line,
                len > LINE_MAX_CHARS ? "..." : "");
        line += len + (line[len] == '\n');
    }
    if (lines > SPEC_LINES)
        fprintf(out, "%*s| ... (%d more lines)\n", KEY_WIDTH, "", lines - SPEC_LINES);
}

static sl_status print_root(hid_t file, FILE *out)
{
    strlist names = {0};
    attr_names(file, &names);
    if (names.oom) {
        sl_clear(&names);
        return SL_ERR_NOMEM;
    }
    size_t nkeys = sizeof ROOT_KEYS / sizeof ROOT_KEYS[0];
    for (size_t k = 0; k < nkeys; k++) {
        char *v = attr_text_by_name(file, ROOT_KEYS[k]);
        if (!v)
            continue;
        fprintf(out, "%-*s", KEY_WIDTH, ROOT_KEYS[k]);
        print_one_line(out, v);
        free(v);
    }
    /* Attributes outside the documented set, in name order. */
    for (int i = 0; i < names.n; i++) {
        int known = strcmp(names.v[i], "spec") == 0;
        for (size_t k = 0; k < nkeys && !known; k++)
            known = strcmp(names.v[i], ROOT_KEYS[k]) == 0;
        if (known)
            continue;
        char *v = attr_text_by_name(file, names.v[i]);
        fprintf(out, "%-*s", KEY_WIDTH, names.v[i]);
        print_one_line(out, v ? v : "(unreadable)");
        free(v);
    }
    char *spec = attr_text_by_name(file, "spec");
    if (spec)
        print_spec(out, spec);
    free(spec);
    sl_clear(&names);
    return SL_OK;
}

/* Names of the links in the group at `path`, in creation order where the group tracks it
 * (the writer's groups do), else in name order; empty if the group is missing. */
static void child_names(hid_t file, const char *path, strlist *names)
{
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0)
        return;
    hid_t g = H5Gopen2(file, path, H5P_DEFAULT);
    if (g < 0)
        return;
    H5G_info_t info;
    if (H5Gget_info(g, &info) >= 0) {
        H5_index_t index = H5_INDEX_CRT_ORDER;
        for (hsize_t i = 0; i < info.nlinks; i++) {
            char name[512];
            ssize_t len = H5Lget_name_by_idx(g, ".", index, H5_ITER_INC, i, name, sizeof name,
                                             H5P_DEFAULT);
            if (len < 0 && i == 0 && index == H5_INDEX_CRT_ORDER) {
                index = H5_INDEX_NAME;
                len = H5Lget_name_by_idx(g, ".", index, H5_ITER_INC, i, name, sizeof name,
                                         H5P_DEFAULT);
            }
            if (len > 0 && (size_t)len < sizeof name)
                sl_push(names, name);
        }
    }
    H5Gclose(g);
}

static const char *const PLUGIN_KEYS[] = {"plugin", "kind", "version"};

static sl_status print_plugins(hid_t file, FILE *out)
{
    strlist labels = {0};
    child_names(file, "/plugins", &labels);
    if (labels.oom) {
        sl_clear(&labels);
        return SL_ERR_NOMEM;
    }
    if (labels.n == 0) {
        sl_clear(&labels);
        return SL_OK;
    }
    fprintf(out, "plugins\n");
    sl_status st = SL_OK;
    for (int i = 0; i < labels.n && st == SL_OK; i++) {
        char path[600];
        snprintf(path, sizeof path, "/plugins/%s", labels.v[i]);
        hid_t obj = H5Oopen(file, path, H5P_DEFAULT);
        if (obj < 0)
            continue;
        fprintf(out, "  %-*s", KEY_WIDTH - 2, labels.v[i]);
        for (size_t k = 0; k < 3; k++) {
            char *v = attr_text_by_name(obj, PLUGIN_KEYS[k]);
            fprintf(out, "%s%s %s", k ? "  " : "", PLUGIN_KEYS[k], v ? v : "?");
            free(v);
        }
        fputc('\n', out);
        strlist params = {0};
        attr_names(obj, &params);
        int width = 0;
        for (int p = 0; p < params.n; p++) {
            int len = (int)strlen(params.v[p]);
            width = len > width ? len : width;
        }
        for (int p = 0; p < params.n; p++) {
            const char *key = params.v[p];
            if (!strcmp(key, "plugin") || !strcmp(key, "kind") || !strcmp(key, "version"))
                continue;
            char *v = attr_text_by_name(obj, key);
            fprintf(out, "%*s%-*s = ", KEY_WIDTH + 2, "", width, key);
            print_one_line(out, v ? v : "(unreadable)");
            free(v);
        }
        if (params.oom)
            st = SL_ERR_NOMEM;
        sl_clear(&params);
        H5Oclose(obj);
    }
    sl_clear(&labels);
    return st;
}

/* Adds to `tables` every group under `path` whose children are all 1-D datasets. */
static void find_tables(hid_t file, const char *path, strlist *tables, int depth)
{
    if (depth > 32)   /* soft links can make cycles */
        return;
    strlist kids = {0};
    child_names(file, path, &kids);
    int datasets = 0, other = 0;
    strlist groups = {0};
    for (int i = 0; i < kids.n; i++) {
        char child[1024];
        snprintf(child, sizeof child, "%s%s%s", path, strcmp(path, "/") ? "/" : "", kids.v[i]);
        if (!strcmp(child, "/renders") || !strcmp(child, "/plugins"))
            continue;
        hid_t obj = H5Oopen(file, child, H5P_DEFAULT);
        if (obj < 0) {
            other++;
            continue;
        }
        H5I_type_t type = H5Iget_type(obj);
        if (type == H5I_DATASET) {
            hid_t space = H5Dget_space(obj);
            if (space >= 0 && H5Sget_simple_extent_ndims(space) == 1)
                datasets++;
            else
                other++;
            if (space >= 0)
                H5Sclose(space);
        } else if (type == H5I_GROUP) {
            sl_push(&groups, child);
            other++;
        } else {
            other++;
        }
        H5Oclose(obj);
    }
    if (datasets > 0 && other == 0)
        sl_push(tables, path);
    for (int i = 0; i < groups.n; i++)
        find_tables(file, groups.v[i], tables, depth + 1);
    if (kids.oom || groups.oom)
        tables->oom = 1;
    sl_clear(&groups);
    sl_clear(&kids);
}

typedef struct col_stats {
    int is_int;       /* integer column: unset is INT64_MIN, otherwise NaN */
    int64_t rows;
    int64_t set;      /* cells that are not unset */
    double last, min, max;
    int64_t ilast, imin, imax;
    int ok;           /* 0: unreadable or not numeric */
} col_stats;

static void column_stats(hid_t dset, col_stats *s)
{
    memset(s, 0, sizeof *s);
    hid_t type = H5Dget_type(dset), fspace = H5Dget_space(dset), mspace = H5I_INVALID_HID;
    void *buf = NULL;
    if (type < 0 || fspace < 0)
        goto cleanup;
    H5T_class_t cls = H5Tget_class(type);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER)
        goto cleanup;
    s->is_int = cls == H5T_INTEGER;
    hsize_t dims;
    if (H5Sget_simple_extent_dims(fspace, &dims, NULL) != 1)
        goto cleanup;
    s->rows = (int64_t)dims;
    hsize_t block = dims < READ_BLOCK ? dims : READ_BLOCK;
    if (block == 0) {
        s->ok = 1;
        goto cleanup;
    }
    buf = malloc((size_t)block * 8);
    mspace = H5Screate_simple(1, &block, NULL);
    if (!buf || mspace < 0)
        goto cleanup;
    for (hsize_t start = 0; start < dims; start += block) {
        hsize_t count = dims - start < block ? dims - start : block;
        hsize_t zero = 0;
        if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
            H5Sselect_hyperslab(mspace, H5S_SELECT_SET, &zero, NULL, &count, NULL) < 0 ||
            H5Dread(dset, s->is_int ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, mspace, fspace,
                    H5P_DEFAULT, buf) < 0)
            goto cleanup;
        for (hsize_t i = 0; i < count; i++) {
            if (s->is_int) {
                int64_t v = ((int64_t *)buf)[i];
                if (v == INT64_MIN)
                    continue;
                if (!s->set || v < s->imin)
                    s->imin = v;
                if (!s->set || v > s->imax)
                    s->imax = v;
                s->ilast = v;
            } else {
                double v = ((double *)buf)[i];
                if (isnan(v))
                    continue;
                if (!s->set || v < s->min)
                    s->min = v;
                if (!s->set || v > s->max)
                    s->max = v;
                s->last = v;
            }
            s->set++;
        }
    }
    s->ok = 1;
cleanup:
    free(buf);
    if (mspace >= 0)
        H5Sclose(mspace);
    if (fspace >= 0)
        H5Sclose(fspace);
    if (type >= 0)
        H5Tclose(type);
}

static void print_number(FILE *out, const col_stats *s, int which)
{
    char text[64];
    if (!s->set) {
        snprintf(text, sizeof text, "-");
    } else if (s->is_int) {
        int64_t v = which == 0 ? s->ilast : which == 1 ? s->imin : s->imax;
        snprintf(text, sizeof text, "%lld", (long long)v);
    } else {
        double v = which == 0 ? s->last : which == 1 ? s->min : s->max;
        snprintf(text, sizeof text, "%.6g", v);
    }
    fprintf(out, " %*s", NUM_WIDTH, text);
}

static sl_status print_table(hid_t file, const char *path, FILE *out)
{
    strlist cols = {0};
    child_names(file, path, &cols);
    if (cols.oom) {
        sl_clear(&cols);
        return SL_ERR_NOMEM;
    }
    col_stats *stats = calloc((size_t)cols.n, sizeof *stats);
    if (!stats) {
        sl_clear(&cols);
        return SL_ERR_NOMEM;
    }
    int width = 6;   /* strlen("column") */
    int64_t rows_min = -1, rows_max = -1;
    for (int i = 0; i < cols.n; i++) {
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", path, cols.v[i]);
        hid_t d = H5Dopen2(file, full, H5P_DEFAULT);
        if (d >= 0) {
            column_stats(d, &stats[i]);
            H5Dclose(d);
        }
        int len = (int)strlen(cols.v[i]);
        width = len > width ? len : width;
        if (!stats[i].ok)
            continue;
        if (rows_min < 0 || stats[i].rows < rows_min)
            rows_min = stats[i].rows;
        if (stats[i].rows > rows_max)
            rows_max = stats[i].rows;
    }
    if (rows_min == rows_max)
        fprintf(out, "table %s: %lld row%s\n", path, (long long)rows_min,
                rows_min == 1 ? "" : "s");
    else   /* a live writer extends the columns one after another */
        fprintf(out, "table %s: %lld..%lld rows (columns differ in length)\n", path,
                (long long)rows_min, (long long)rows_max);
    fprintf(out, "  %-*s %*s %*s %*s %*s\n", width, "column", NUM_WIDTH, "set", NUM_WIDTH,
            "last", NUM_WIDTH, "min", NUM_WIDTH, "max");
    for (int i = 0; i < cols.n; i++) {
        fprintf(out, "  %-*s", width, cols.v[i]);
        if (!stats[i].ok) {
            fprintf(out, " (not a numeric column)\n");
            continue;
        }
        fprintf(out, " %*lld", NUM_WIDTH, (long long)stats[i].set);
        for (int w = 0; w < 3; w++)
            print_number(out, &stats[i], w);
        fputc('\n', out);
    }
    free(stats);
    sl_clear(&cols);
    return SL_OK;
}

static sl_status print_tables(hid_t file, FILE *out)
{
    strlist tables = {0};
    find_tables(file, "/", &tables, 0);
    sl_status st = tables.oom ? SL_ERR_NOMEM : SL_OK;
    /* /steps first and /eval last (its last row is the run's final evaluation); the rest
     * (probes, ...) in name order between them. */
    if (st == SL_OK && sl_has(&tables, "/steps"))
        st = print_table(file, "/steps", out);
    for (int i = 0; i < tables.n && st == SL_OK; i++)
        if (strcmp(tables.v[i], "/steps") && strcmp(tables.v[i], "/eval"))
            st = print_table(file, tables.v[i], out);
    if (st == SL_OK && sl_has(&tables, "/eval"))
        st = print_table(file, "/eval", out);
    sl_clear(&tables);
    return st;
}

static void print_shape(FILE *out, hid_t dset, const char *name, int width)
{
    hid_t space = H5Dget_space(dset);
    hsize_t dims[H5S_MAX_RANK];
    int rank = space >= 0 ? H5Sget_simple_extent_dims(space, dims, NULL) : -1;
    fprintf(out, "  %-*s", width, name);
    if (rank == 5) {
        fprintf(out, " %llu entries of %llu view%s, %llux%llu, %llu channel%s\n",
                (unsigned long long)dims[0], (unsigned long long)dims[1],
                dims[1] == 1 ? "" : "s", (unsigned long long)dims[2],
                (unsigned long long)dims[3], (unsigned long long)dims[4],
                dims[4] == 1 ? "" : "s");
    } else if (rank == 1 && strcmp(name, "step") == 0) {
        fprintf(out, " %llu entries", (unsigned long long)dims[0]);
        if (dims[0] > 0) {
            int64_t first = INT64_MIN, last = INT64_MIN;
            hsize_t one = 1, at[2] = {0, dims[0] - 1};
            hid_t mspace = H5Screate_simple(1, &one, NULL);
            for (int k = 0; k < 2 && mspace >= 0; k++) {
                if (H5Sselect_hyperslab(space, H5S_SELECT_SET, &at[k], NULL, &one, NULL) < 0 ||
                    H5Dread(dset, H5T_NATIVE_INT64, mspace, space, H5P_DEFAULT,
                            k ? &last : &first) < 0)
                    break;
            }
            if (mspace >= 0)
                H5Sclose(mspace);
            if (first != INT64_MIN && last != INT64_MIN)
                fprintf(out, ", steps %lld..%lld", (long long)first, (long long)last);
        }
        fputc('\n', out);
    } else if (rank >= 0) {
        fprintf(out, " shape (");
        for (int d = 0; d < rank; d++)
            fprintf(out, "%s%llu", d ? ", " : "", (unsigned long long)dims[d]);
        fprintf(out, ")\n");
    } else {
        fprintf(out, " (unreadable)\n");
    }
    if (space >= 0)
        H5Sclose(space);
}

static sl_status print_renders(hid_t file, FILE *out)
{
    strlist kinds = {0};
    child_names(file, "/renders", &kinds);
    if (kinds.oom) {
        sl_clear(&kinds);
        return SL_ERR_NOMEM;
    }
    if (kinds.n)
        fprintf(out, "renders\n");
    int width = 0;
    for (int i = 0; i < kinds.n; i++) {
        int len = (int)strlen(kinds.v[i]);
        width = len > width ? len : width;
    }
    /* The kinds first, then their step column. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < kinds.n; i++) {
            if ((strcmp(kinds.v[i], "step") == 0) != pass)
                continue;
            char full[600];
            snprintf(full, sizeof full, "/renders/%s", kinds.v[i]);
            hid_t d = H5Dopen2(file, full, H5P_DEFAULT);
            if (d < 0)
                continue;
            print_shape(out, d, kinds.v[i], width);
            H5Dclose(d);
        }
    }
    sl_clear(&kinds);
    return SL_OK;
}

/* ---- entry point ----------------------------------------------------------------------- */

static sl_status open_log(const char *path, hid_t *file, sl_error *err)
{
    FILE *probe = fopen(path, "rb");
    if (!probe)
        return sl_error_set(err, SL_ERR_IO, "cannot open log '%s': %s", path, strerror(errno));
    fclose(probe);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return sl_error_set(err, SL_ERR_IO, "cannot open log '%s': it is a directory", path);
    htri_t is = H5Fis_hdf5(path);
    h5_detail d;
    if (is == 0)
        return sl_error_set(err, SL_ERR_FORMAT, "'%s' is not an HDF5 file", path);
    if (is < 0) {
        h5_detail_get(&d);
        return sl_error_set(err, SL_ERR_IO, "cannot read log '%s'%s%s", path,
                            d.text[0] ? ": " : "", d.text);
    }
    *file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    if (*file >= 0)
        return SL_OK;
    h5_detail_get(&d);
    /* HDF5 1.10 refuses a SWMR reader unless the file is marked open for SWMR writing (or
     * not open at all), and refuses a plain reader while any write mark is set. */
    int not_swmr = strstr(d.text, "not already open for SWMR writing") != NULL;
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file >= 0)
        return SL_OK;
    h5_detail_get(&d);
    if (not_swmr || strstr(d.text, "open for write") || strstr(d.text, "lock the file"))
        return sl_error_set(err, SL_ERR_IO,
                            "cannot open log '%s': it is marked open for writing outside SWMR "
                            "mode (a run still in its definition phase, or one killed before "
                            "it started SWMR; for a dead writer `h5clear -s '%s'` clears the "
                            "mark): %s",
                            path, path, d.text);
    return sl_error_set(err, SL_ERR_FORMAT, "cannot open log '%s' (damaged HDF5 file?)%s%s",
                        path, d.text[0] ? ": " : "", d.text);
}

static sl_status inspect(const char *path, FILE *out, sl_error *err)
{
    hid_t file = H5I_INVALID_HID;
    sl_status st = open_log(path, &file, err);
    if (st != SL_OK)
        return st;
    fprintf(out, "%-*s%s\n", KEY_WIDTH, "log", path);
    st = print_root(file, out);
    if (st == SL_OK)
        st = print_plugins(file, out);
    if (st == SL_OK)
        st = print_tables(file, out);
    if (st == SL_OK)
        st = print_renders(file, out);
    H5Fclose(file);
    if (st == SL_ERR_NOMEM)
        return sl_error_set(err, st, "inspecting log '%s': out of memory", path);
    if (st == SL_OK && (fflush(out) != 0 || ferror(out)))
        return sl_error_set(err, SL_ERR_IO, "inspecting log '%s': writing the summary failed",
                            path);
    return st;
}

sl_status sl_log_inspect(const char *path, FILE *out, sl_error *err)
{
    if (!path || !path[0] || !out)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_inspect: %s",
                            !out ? "output stream is NULL" : "empty path");
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = inspect(path, out, err);
    sl_h5_quiet_end(q);
    return st;
}
