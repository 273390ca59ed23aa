/* core/log_hdf5.c — the run's HDF5 log (contract and layout: log.h).
 *
 * Two phases, because HDF5 1.10's SWMR forbids creating objects or attributes once
 * H5Fstart_swmr_write has run: everything (attributes, tables, columns, render datasets)
 * is defined first, then only rows and render entries are appended.
 *
 * Table rows are buffered in memory and written column by column on sl_log_flush:
 * extend the dataset, write the new rows as one hyperslab, H5Dflush it (the SWMR writer's
 * way of making the new extent and chunks visible to readers), then H5Fflush. A flush that
 * fails keeps its rows buffered; retrying writes them again at the same offsets, so a
 * partial failure never leaves columns shifted against each other.
 *
 * HDF5 prints its error stack to stderr by default. Every public entry point silences that
 * for the duration of the call (restoring the caller's handler afterwards) and turns the
 * innermost HDF5 error into the one-line sl_error message instead. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "h5util.h"
#include "log.h"

enum {
    TABLE_CHUNK_ROWS = 1024,   /* rows per chunk of a table column */
    STEP_CHUNK_ROWS = 256,     /* rows per chunk of /renders/step */
    RENDER_RANK = 5            /* (n, views, H, W, C) */
};

/* Column buffers hold either type, sized as int64_t. */
_Static_assert(sizeof(double) == sizeof(int64_t), "F64 and I64 cells share buffer sizes");

/* HDF5 requires a chunk to be smaller than 4 GiB. */
#define MAX_CHUNK_BYTES ((uint64_t)0xFFFFFFFFu)

typedef struct sl_log_column {
    char *name;
    sl_log_dtype dtype;
    hid_t dset;
    void *buf;   /* (cap_rows) double or int64_t: committed rows not yet written */
} sl_log_column;

struct sl_log_table {
    sl_log *log;
    char *path;              /* "/steps" */
    sl_log_column *cols;     /* (ncols) */
    int ncols, cap_cols;
    double *cur;             /* (cap_cols) values of the row being filled */
    unsigned char *cur_set;  /* (cap_cols) 1 where cur was set in this row */
    int64_t written;         /* rows already in the file */
    int64_t nbuf, cap_rows;  /* rows buffered in every column's buf */
    int bad_col;             /* an out-of-range index given to sl_log_table_set, reported
                                by the next commit (set itself cannot fail) */
    int has_bad_col;
};

typedef struct sl_log_render {
    char *kind;
    hid_t dset;
    hsize_t dims[RENDER_RANK];   /* current (n, views, H, W, C) */
} sl_log_render;

struct sl_log {
    char *path;
    hid_t file;
    int swmr;                    /* 1 once sl_log_start_swmr succeeded: append only */
    int reopened;                /* opened by sl_log_open_append: attach, never create */
    sl_log_table **tables;       /* (ntables) */
    int ntables, cap_tables;
    sl_log_render *renders;      /* (nrenders), in creation order */
    int nrenders, cap_renders;
    hid_t render_step;           /* /renders/step, or H5I_INVALID_HID before the first kind */
    int64_t render_steps;        /* rows in /renders/step */
    int64_t last_render_step;    /* value of the last row of /renders/step */
    struct sl_log_array *arrays; /* (narrays) see sl_log_array_create */
    int narrays, cap_arrays;
};

typedef struct sl_log_array {
    char *path;
    hid_t dset;
    sl_log_array_type type;
    int cols;                    /* 0: 1-D */
} sl_log_array;

/* ---- HDF5 error handling ------------------------------------------------------------ */

/* The failed HDF5 function, the object it worked on, and HDF5's own reason. */
static sl_status h5_fail(sl_error *err, sl_status code, const sl_log *log, const char *fn,
                         const char *obj)
{
    char text[400];
    sl_h5_error_detail(text, sizeof text);
    return sl_error_set(err, code, "log '%s': %s failed on '%s'%s%s",
                        log && log->path ? log->path : "?", fn, obj, text[0] ? ": " : "",
                        text);
}

/* ---- small helpers --------------------------------------------------------------------- */

/* An object path is "/" or "/a/b" without empty components or a trailing slash. */
static int valid_obj_path(const char *p)
{
    if (!p || p[0] != '/')
        return 0;
    if (p[1] == '\0')
        return 1;
    for (const char *c = p; *c; c++)
        if (c[0] == '/' && (c[1] == '/' || c[1] == '\0'))
            return 0;
    return 1;
}

/* A link name: non-empty, no '/', not "." (HDF5 reserves it for "this group"). */
static int valid_name(const char *n)
{
    return n && n[0] && !strchr(n, '/') && strcmp(n, ".") != 0;
}

static char *join_path(const char *group, const char *name)
{
    size_t g = strlen(group), n = strlen(name);
    int root = (g == 1 && group[0] == '/');
    char *p = malloc(g + n + 2);
    if (!p)
        return NULL;
    memcpy(p, group, g);
    size_t at = g;
    if (!root)
        p[at++] = '/';
    memcpy(p + at, name, n + 1);
    return p;
}

/* A reopened log keeps the layout its first run defined (log.h). */
static sl_status reopened_refusal(const sl_log *log, sl_error *err, const char *what)
{
    return sl_error_set(err, SL_ERR_INVALID_ARG,
                        "log '%s': cannot %s in a log reopened for appending; attach the "
                        "existing objects with the *_open calls", log->path, what);
}

static sl_status swmr_refusal(const sl_log *log, sl_error *err, const char *what)
{
    return sl_error_set(err, SL_ERR_INVALID_ARG,
                        "log '%s': cannot %s after sl_log_start_swmr: HDF5 1.10's SWMR mode "
                        "forbids creating groups, datasets or attributes once it starts, so "
                        "define every attribute, table, column and render kind before it",
                        log->path, what);
}

/* Creates every missing group along `path` ("/a/b/c" creates /a, /a/b, /a/b/c as needed).
 * Existing objects are left alone (the last one may be a dataset). */
static sl_status ensure_groups(sl_log *log, const char *path, sl_error *err)
{
    if (strcmp(path, "/") == 0)
        return SL_OK;
    char *p = strdup(path);
    if (!p)
        return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
    sl_status st = SL_OK;
    /* Creation order is tracked so that inspect lists columns and parameters in the order
     * they were declared rather than alphabetically. */
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl < 0 ||
        H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0 ||
        H5Pset_attr_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Pset_link_creation_order", path);
        goto cleanup;
    }
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char saved = *c;
        *c = '\0';
        htri_t ex = H5Lexists(log->file, p, H5P_DEFAULT);
        if (ex < 0) {
            st = h5_fail(err, SL_ERR_IO, log, "H5Lexists", p);
            goto cleanup;
        }
        if (ex == 0) {
            hid_t g = H5Gcreate2(log->file, p, H5P_DEFAULT, gcpl, H5P_DEFAULT);
            if (g < 0) {
                st = h5_fail(err, SL_ERR_IO, log, "H5Gcreate2", p);
                goto cleanup;
            }
            H5Gclose(g);
        }
        *c = saved;
        if (saved == '\0')
            break;
    }
cleanup:
    if (gcpl >= 0)
        H5Pclose(gcpl);
    free(p);
    return st;
}

/* A variable-length UTF-8 string type: h5py reads it back as str (fixed-length strings
 * come back as bytes). */
static hid_t vlen_utf8_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* Writes a scalar attribute on `obj` (an open object), replacing one of the same name. */
static sl_status write_attr_on(sl_log *log, hid_t obj, const char *obj_path, const char *name,
                               hid_t type, const void *value, sl_error *err)
{
    sl_status st = SL_OK;
    hid_t space = H5I_INVALID_HID, attr = H5I_INVALID_HID;
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Aexists", obj_path);
        goto cleanup;
    }
    if (ex > 0 && H5Adelete(obj, name) < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Adelete", obj_path);
        goto cleanup;
    }
    space = H5Screate(H5S_SCALAR);
    if (space < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Screate", obj_path);
        goto cleanup;
    }
    attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Acreate2", obj_path);
        goto cleanup;
    }
    if (H5Awrite(attr, type, value) < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Awrite", obj_path);
        goto cleanup;
    }
cleanup:
    if (attr >= 0)
        H5Aclose(attr);
    if (space >= 0)
        H5Sclose(space);
    return st;
}

static sl_status write_attr(sl_log *log, const char *obj_path, const char *name, hid_t type,
                            const void *value, sl_error *err)
{
    if (!log)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_attr: log is NULL");
    if (!valid_obj_path(obj_path))
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "log '%s': invalid object path '%s' (want \"/\" or \"/a/b\")",
                            log->path, obj_path ? obj_path : "(null)");
    if (!name || !name[0])
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': empty attribute name on '%s'",
                            log->path, obj_path);
    if (log->swmr) {
        char what[300];
        snprintf(what, sizeof what, "set attribute '%s' on '%s'", name, obj_path);
        return swmr_refusal(log, err, what);
    }
    sl_status st = ensure_groups(log, obj_path, err);
    if (st != SL_OK)
        return st;
    hid_t obj = H5Oopen(log->file, obj_path, H5P_DEFAULT);
    if (obj < 0)
        return h5_fail(err, SL_ERR_IO, log, "H5Oopen", obj_path);
    st = write_attr_on(log, obj, obj_path, name, type, value, err);
    H5Oclose(obj);
    return st;
}

/* ---- create / attributes --------------------------------------------------------------- */

static void log_free(sl_log *log);

static sl_status log_create(const char *path, sl_log **out, sl_error *err)
{
    if (!out)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_create: out is NULL");
    *out = NULL;
    if (!path || !path[0])
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_create: empty path");
    sl_status st = SL_OK;
    hid_t fapl = H5I_INVALID_HID, fcpl = H5I_INVALID_HID;
    sl_log *log = calloc(1, sizeof *log);
    if (!log || !(log->path = strdup(path))) {
        st = sl_error_set(err, SL_ERR_NOMEM, "sl_log_create: out of memory");
        goto cleanup;
    }
    log->file = H5I_INVALID_HID;
    log->render_step = H5I_INVALID_HID;
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Pcreate", "file access properties");
        goto cleanup;
    }
    /* SWMR needs the 1.10 file format (superblock v3, extensible-array chunk indexes). */
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Pset_libver_bounds", "file access properties");
        goto cleanup;
    }
    /* The root group tracks creation order like every other group (see ensure_groups). */
    fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl < 0 ||
        H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0 ||
        H5Pset_attr_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Pset_link_creation_order", "file creation properties");
        goto cleanup;
    }
    log->file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
    if (log->file < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Fcreate", path);
        goto cleanup;
    }
    *out = log;
    log = NULL;
cleanup:
    if (fcpl >= 0)
        H5Pclose(fcpl);
    if (fapl >= 0)
        H5Pclose(fapl);
    log_free(log);
    return st;
}

sl_status sl_log_create(const char *path, sl_log **out, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = log_create(path, out, err);
    sl_h5_quiet_end(q);
    return st;
}

sl_status sl_log_attr_string(sl_log *log, const char *obj_path, const char *name,
                             const char *value, sl_error *err)
{
    if (!value)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_attr_string: value of '%s' is NULL",
                            name ? name : "(null)");
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st;
    hid_t t = vlen_utf8_type();
    if (t < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Tcopy", "string type");
    } else {
        st = write_attr(log, obj_path, name, t, &value, err);
        H5Tclose(t);
    }
    sl_h5_quiet_end(q);
    return st;
}

sl_status sl_log_attr_int(sl_log *log, const char *obj_path, const char *name, int64_t value,
                          sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = write_attr(log, obj_path, name, H5T_NATIVE_INT64, &value, err);
    sl_h5_quiet_end(q);
    return st;
}

sl_status sl_log_attr_double(sl_log *log, const char *obj_path, const char *name,
                             double value, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = write_attr(log, obj_path, name, H5T_NATIVE_DOUBLE, &value, err);
    sl_h5_quiet_end(q);
    return st;
}

/* ---- tables ---------------------------------------------------------------------------- */

static void table_free(sl_log_table *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->ncols; i++) {
        if (t->cols[i].dset >= 0)
            H5Dclose(t->cols[i].dset);
        free(t->cols[i].name);
        free(t->cols[i].buf);
    }
    free(t->cols);
    free(t->cur);
    free(t->cur_set);
    free(t->path);
    free(t);
}

static sl_status table_create(sl_log *log, const char *group_path, sl_log_table **out,
                              sl_error *err)
{
    if (!out)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_table_create: out is NULL");
    *out = NULL;
    if (!log)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_table_create: log is NULL");
    if (!valid_obj_path(group_path) || strcmp(group_path, "/") == 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "log '%s': invalid table path '%s' (want a group such as \"/steps\")",
                            log->path, group_path ? group_path : "(null)");
    if (log->swmr || log->reopened) {
        char what[300];
        snprintf(what, sizeof what, "create table '%s'", group_path);
        return log->swmr ? swmr_refusal(log, err, what) : reopened_refusal(log, err, what);
    }
    for (int i = 0; i < log->ntables; i++)
        if (strcmp(log->tables[i]->path, group_path) == 0)
            return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': table '%s' already exists",
                                log->path, group_path);
    if (log->ntables == log->cap_tables) {
        int cap = log->cap_tables ? 2 * log->cap_tables : 8;
        sl_log_table **nt = realloc(log->tables, (size_t)cap * sizeof *nt);
        if (!nt)
            return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
        log->tables = nt;
        log->cap_tables = cap;
    }
    sl_status st = ensure_groups(log, group_path, err);
    if (st != SL_OK)
        return st;
    sl_log_table *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(group_path))) {
        free(t);
        return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
    }
    t->log = log;
    log->tables[log->ntables++] = t;
    *out = t;
    return SL_OK;
}

sl_status sl_log_table_create(sl_log *log, const char *group_path, sl_log_table **out,
                              sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = table_create(log, group_path, out, err);
    sl_h5_quiet_end(q);
    return st;
}

/* Makes room for one more column in every per-column array. */
static int table_grow_cols(sl_log_table *t)
{
    if (t->ncols < t->cap_cols)
        return 0;
    int cap = t->cap_cols ? 2 * t->cap_cols : 8;
    sl_log_column *c = realloc(t->cols, (size_t)cap * sizeof *c);
    if (!c)
        return -1;
    t->cols = c;
    double *cur = realloc(t->cur, (size_t)cap * sizeof *cur);
    if (!cur)
        return -1;
    t->cur = cur;
    unsigned char *set = realloc(t->cur_set, (size_t)cap);
    if (!set)
        return -1;
    t->cur_set = set;
    t->cap_cols = cap;
    return 0;
}

/* Creates the chunked dataset `path` (rank, dims, maxdims, chunk) of file_type, with a fill
 * value when fill != NULL (given as fill_type) and its "doc" attribute (every dataset of the
 * log carries one, docs/log-format.md). On failure nothing is left behind: a half-made
 * dataset is unlinked, so the name can be defined again. */
static sl_status create_documented_dataset(sl_log *log, const char *path, hid_t file_type,
                                           int rank, const hsize_t *dims,
                                           const hsize_t *maxdims, const hsize_t *chunk,
                                           hid_t fill_type, const void *fill, const char *doc,
                                           hid_t *out, sl_error *err)
{
    sl_status st = SL_OK;
    hid_t dcpl = H5I_INVALID_HID, space = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    hid_t doc_type = H5I_INVALID_HID;
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0 ||
        (fill && H5Pset_fill_value(dcpl, fill_type, fill) < 0)) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Pset_chunk", path);
        goto cleanup;
    }
    space = H5Screate_simple(rank, dims, maxdims);
    if (space < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Screate_simple", path);
        goto cleanup;
    }
    dset = H5Dcreate2(log->file, path, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dset < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Dcreate2", path);
        goto cleanup;
    }
    doc_type = vlen_utf8_type();
    if (doc_type < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Tcopy", path);
        goto cleanup;
    }
    const char *doc_text = doc ? doc : "";
    st = write_attr_on(log, dset, path, "doc", doc_type, &doc_text, err);
cleanup:
    if (st != SL_OK && dset >= 0) {
        H5Dclose(dset);
        H5Ldelete(log->file, path, H5P_DEFAULT);
        dset = H5I_INVALID_HID;
    }
    *out = dset;
    if (doc_type >= 0)
        H5Tclose(doc_type);
    if (space >= 0)
        H5Sclose(space);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    return st;
}

static sl_status table_column(sl_log_table *t, const char *name, const char *doc,
                              sl_log_dtype dtype, int *col, sl_error *err)
{
    if (!t)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_table_column: table is NULL");
    sl_log *log = t->log;
    if (!valid_name(name))
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "log '%s': invalid column name '%s' in '%s' (non-empty, no '/')",
                            log->path, name ? name : "(null)", t->path);
    if (dtype != SL_LOG_F64 && dtype != SL_LOG_I64)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': column '%s/%s': unknown dtype %d",
                            log->path, t->path, name, (int)dtype);
    if (log->swmr || log->reopened) {
        char what[300];
        snprintf(what, sizeof what, "add column '%s' to table '%s'", name, t->path);
        return log->swmr ? swmr_refusal(log, err, what) : reopened_refusal(log, err, what);
    }
    if (sl_log_table_find(t, name) >= 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': table '%s' already has a column '%s'",
                            log->path, t->path, name);
    if (table_grow_cols(t) < 0)
        return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);

    sl_status st = SL_OK;
    hid_t dset = H5I_INVALID_HID;
    void *buf = NULL;
    char *full = join_path(t->path, name);
    char *name_copy = strdup(name);
    if (!full || !name_copy) {
        st = sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
        goto cleanup;
    }
    size_t elem = dtype == SL_LOG_F64 ? sizeof(double) : sizeof(int64_t);
    if (t->cap_rows > 0 && !(buf = malloc((size_t)t->cap_rows * elem))) {
        st = sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
        goto cleanup;
    }
    /* A column added after rows were committed reads as unset for those rows: the fill
     * value covers the rows already written, the buffer the rows still pending. */
    double fill_f = NAN;
    int64_t fill_i = INT64_MIN;
    for (int64_t r = 0; r < t->nbuf; r++) {
        if (dtype == SL_LOG_F64)
            ((double *)buf)[r] = fill_f;
        else
            ((int64_t *)buf)[r] = fill_i;
    }
    hid_t file_type = dtype == SL_LOG_F64 ? H5T_IEEE_F64LE : H5T_STD_I64LE;
    hid_t mem_type = dtype == SL_LOG_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
    hsize_t chunk = TABLE_CHUNK_ROWS;
    hsize_t dims = (hsize_t)t->written, maxdims = H5S_UNLIMITED;
    st = create_documented_dataset(log, full, file_type, 1, &dims, &maxdims, &chunk, mem_type,
                                   dtype == SL_LOG_F64 ? (void *)&fill_f : (void *)&fill_i,
                                   doc, &dset, err);
    if (st != SL_OK)
        goto cleanup;

    int idx = t->ncols++;
    t->cols[idx] = (sl_log_column){.name = name_copy, .dtype = dtype, .dset = dset, .buf = buf};
    t->cur_set[idx] = 0;
    t->cur[idx] = NAN;
    name_copy = NULL;
    buf = NULL;
    if (col)
        *col = idx;
cleanup:
    free(buf);
    free(name_copy);
    free(full);
    return st;
}

sl_status sl_log_table_column(sl_log_table *t, const char *name, const char *doc,
                              sl_log_dtype dtype, int *col, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = table_column(t, name, doc, dtype, col, err);
    sl_h5_quiet_end(q);
    return st;
}

int sl_log_table_find(const sl_log_table *t, const char *name)
{
    if (!t || !name)
        return -1;
    for (int i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return i;
    return -1;
}

void sl_log_table_set(sl_log_table *t, int col, double value)
{
    if (!t)
        return;
    if (col < 0 || col >= t->ncols) {
        if (!t->has_bad_col) {
            t->has_bad_col = 1;
            t->bad_col = col;
        }
        return;
    }
    t->cur[col] = value;
    t->cur_set[col] = 1;
}

/* I64 cells take the value rounded; NaN means unset and out-of-range values saturate
 * (never onto INT64_MIN, which marks unset). */
static int64_t to_i64(double v)
{
    if (isnan(v))
        return INT64_MIN;
    if (v >= 9223372036854775807.0)
        return INT64_MAX;
    if (v <= -9223372036854775807.0)
        return INT64_MIN + 1;
    return (int64_t)llround(v);
}

sl_status sl_log_table_commit_row(sl_log_table *t, sl_error *err)
{
    if (!t)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_table_commit_row: table is NULL");
    if (t->has_bad_col) {
        sl_status st = sl_error_set(err, SL_ERR_INVALID_ARG,
                                    "log '%s': sl_log_table_set on '%s' got column index %d, "
                                    "the table has %d columns (row dropped)",
                                    t->log->path, t->path, t->bad_col, t->ncols);
        t->has_bad_col = 0;
        memset(t->cur_set, 0, (size_t)t->ncols);
        return st;
    }
    if (t->nbuf == t->cap_rows) {
        int64_t cap = t->cap_rows ? 2 * t->cap_rows : 256;
        for (int i = 0; i < t->ncols; i++) {
            /* Growing some columns but not all is harmless: cap_rows only moves when every
             * buffer holds the new capacity. */
            void *nb = realloc(t->cols[i].buf, (size_t)cap * sizeof(int64_t));
            if (!nb)
                return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory buffering '%s'",
                                    t->log->path, t->path);
            t->cols[i].buf = nb;
        }
        t->cap_rows = cap;
    }
    for (int i = 0; i < t->ncols; i++) {
        sl_log_column *c = &t->cols[i];
        if (c->dtype == SL_LOG_F64)
            ((double *)c->buf)[t->nbuf] = t->cur_set[i] ? t->cur[i] : NAN;
        else
            ((int64_t *)c->buf)[t->nbuf] = t->cur_set[i] ? to_i64(t->cur[i]) : INT64_MIN;
        t->cur_set[i] = 0;
    }
    t->nbuf++;
    return SL_OK;
}

int64_t sl_log_table_rows(const sl_log_table *t) { return t ? t->written + t->nbuf : 0; }

/* Writes the buffered rows of one table (see the file comment for the order). */
static sl_status table_flush(sl_log_table *t, sl_error *err)
{
    sl_log *log = t->log;
    if (t->nbuf == 0)
        return SL_OK;
    sl_status st = SL_OK;
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    hsize_t start = (hsize_t)t->written, count = (hsize_t)t->nbuf, size = start + count;
    char obj[512];
    mspace = H5Screate_simple(1, &count, NULL);
    if (mspace < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Screate_simple", t->path);
        goto cleanup;
    }
    for (int i = 0; i < t->ncols; i++) {
        sl_log_column *c = &t->cols[i];
        snprintf(obj, sizeof obj, "%s/%s", t->path, c->name);
        if (H5Dset_extent(c->dset, &size) < 0) {
            st = h5_fail(err, SL_ERR_IO, log, "H5Dset_extent", obj);
            goto cleanup;
        }
        fspace = H5Dget_space(c->dset);
        if (fspace < 0 ||
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0) {
            st = h5_fail(err, SL_ERR_IO, log, "H5Sselect_hyperslab", obj);
            goto cleanup;
        }
        hid_t mem_type = c->dtype == SL_LOG_F64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64;
        if (H5Dwrite(c->dset, mem_type, mspace, fspace, H5P_DEFAULT, c->buf) < 0) {
            st = h5_fail(err, SL_ERR_IO, log, "H5Dwrite", obj);
            goto cleanup;
        }
        H5Sclose(fspace);
        fspace = H5I_INVALID_HID;
    }
    for (int i = 0; i < t->ncols; i++) {
        if (H5Dflush(t->cols[i].dset) < 0) {
            snprintf(obj, sizeof obj, "%s/%s", t->path, t->cols[i].name);
            st = h5_fail(err, SL_ERR_IO, log, "H5Dflush", obj);
            goto cleanup;
        }
    }
    t->written += t->nbuf;
    t->nbuf = 0;
cleanup:
    if (fspace >= 0)
        H5Sclose(fspace);
    if (mspace >= 0)
        H5Sclose(mspace);
    return st;
}

/* ---- renders --------------------------------------------------------------------------- */

static sl_log_render *find_render(sl_log *log, const char *kind, int *index)
{
    for (int i = 0; i < log->nrenders; i++)
        if (strcmp(log->renders[i].kind, kind) == 0) {
            if (index)
                *index = i;
            return &log->renders[i];
        }
    return NULL;
}

/* /renders/step: int64 (n), extendable, created with the first kind. */
static sl_status create_render_step(sl_log *log, sl_error *err)
{
    hsize_t dims = 0, maxdims = H5S_UNLIMITED, chunk = STEP_CHUNK_ROWS;
    int64_t fill = INT64_MIN;
    return create_documented_dataset(log, "/renders/step", H5T_STD_I64LE, 1, &dims, &maxdims,
                                     &chunk, H5T_NATIVE_INT64, &fill,
                                     "training step of each render entry (row i of every "
                                     "/renders/<kind>)", &log->render_step, err);
}

static sl_status renders_create(sl_log *log, const char *kind, int views, int height,
                                int width, int channels, sl_error *err)
{
    if (!log)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_renders_create: log is NULL");
    if (!valid_name(kind) || strcmp(kind, "step") == 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "log '%s': invalid render kind '%s' (non-empty, no '/', not \"step\")",
                            log->path, kind ? kind : "(null)");
    if (views <= 0 || height <= 0 || width <= 0 || channels <= 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "log '%s': render kind '%s' has shape (%d views, %dx%d, %d channels); "
                            "every size must be positive",
                            log->path, kind, views, height, width, channels);
    uint64_t entry = (uint64_t)views * (uint64_t)height * (uint64_t)width * (uint64_t)channels;
    if (entry > MAX_CHUNK_BYTES)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "log '%s': one '%s' render entry is %llu bytes; HDF5 chunks must "
                            "stay under 4 GiB",
                            log->path, kind, (unsigned long long)entry);
    if (log->swmr || log->reopened) {
        char what[300];
        snprintf(what, sizeof what, "create render kind '%s'", kind);
        return log->swmr ? swmr_refusal(log, err, what) : reopened_refusal(log, err, what);
    }
    if (find_render(log, kind, NULL))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': render kind '%s' already exists",
                            log->path, kind);
    if (log->render_steps > 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "log '%s': render kind '%s' created after renders were appended; "
                            "create every kind before the first append",
                            log->path, kind);
    if (log->nrenders == log->cap_renders) {
        int cap = log->cap_renders ? 2 * log->cap_renders : 4;
        sl_log_render *nr = realloc(log->renders, (size_t)cap * sizeof *nr);
        if (!nr)
            return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
        log->renders = nr;
        log->cap_renders = cap;
    }
    sl_status st = ensure_groups(log, "/renders", err);
    if (st != SL_OK)
        return st;
    if (log->render_step < 0 && (st = create_render_step(log, err)) != SL_OK)
        return st;

    hid_t dset = H5I_INVALID_HID;
    char *full = join_path("/renders", kind);
    char *kind_copy = strdup(kind);
    if (!full || !kind_copy) {
        st = sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
        goto cleanup;
    }
    hsize_t dims[RENDER_RANK] = {0, (hsize_t)views, (hsize_t)height, (hsize_t)width,
                                 (hsize_t)channels};
    hsize_t maxdims[RENDER_RANK] = {H5S_UNLIMITED, dims[1], dims[2], dims[3], dims[4]};
    hsize_t chunk[RENDER_RANK] = {1, dims[1], dims[2], dims[3], dims[4]};
    st = create_documented_dataset(log, full, H5T_STD_U8LE, RENDER_RANK, dims, maxdims, chunk,
                                   H5I_INVALID_HID, NULL, "uint8 renders (n, views, H, W, C); "
                                   "row i was rendered at /renders/step[i]", &dset, err);
    if (st != SL_OK)
        goto cleanup;
    sl_log_render *r = &log->renders[log->nrenders++];
    r->kind = kind_copy;
    r->dset = dset;
    memcpy(r->dims, dims, sizeof dims);
    kind_copy = NULL;
cleanup:
    free(kind_copy);
    free(full);
    return st;
}

sl_status sl_log_renders_create(sl_log *log, const char *kind, int views, int height,
                                int width, int channels, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = renders_create(log, kind, views, height, width, channels, err);
    sl_h5_quiet_end(q);
    return st;
}

/* Extends a dataset by one entry along its first axis and writes `data` there. */
static sl_status append_entry(sl_log *log, hid_t dset, const char *obj, int rank,
                              const hsize_t *dims, hid_t mem_type, const void *data,
                              sl_error *err)
{
    sl_status st = SL_OK;
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    hsize_t size[RENDER_RANK], start[RENDER_RANK] = {0}, count[RENDER_RANK];
    for (int d = 0; d < rank; d++) {
        size[d] = dims[d];
        count[d] = dims[d];
    }
    start[0] = dims[0];
    size[0] = dims[0] + 1;
    count[0] = 1;
    if (H5Dset_extent(dset, size) < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Dset_extent", obj);
        goto cleanup;
    }
    fspace = H5Dget_space(dset);
    if (fspace < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Sselect_hyperslab", obj);
        goto cleanup;
    }
    mspace = H5Screate_simple(rank, count, NULL);
    if (mspace < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Screate_simple", obj);
        goto cleanup;
    }
    if (H5Dwrite(dset, mem_type, mspace, fspace, H5P_DEFAULT, data) < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Dwrite", obj);
        goto cleanup;
    }
    if (H5Dflush(dset) < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Dflush", obj);
        goto cleanup;
    }
cleanup:
    if (mspace >= 0)
        H5Sclose(mspace);
    if (fspace >= 0)
        H5Sclose(fspace);
    return st;
}

static sl_status renders_append(sl_log *log, const char *kind, int64_t step,
                                const uint8_t *data, sl_error *err)
{
    if (!log)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_renders_append: log is NULL");
    if (!kind || !data)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': sl_log_renders_append: %s is NULL",
                            log->path, !kind ? "kind" : "data");
    int k = -1;
    sl_log_render *r = find_render(log, kind, &k);
    if (!r)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "log '%s': no render kind '%s' (create it with sl_log_renders_create "
                            "before sl_log_start_swmr)",
                            log->path, kind);
    /* Row i of every kind belongs to row i of /renders/step: the first kind opens a render
     * step, the others fill it in creation order. */
    int64_t n = (int64_t)r->dims[0];
    if (k == 0) {
        for (int i = 1; i < log->nrenders; i++)
            if ((int64_t)log->renders[i].dims[0] != log->render_steps)
                return sl_error_set(err, SL_ERR_INVALID_ARG,
                                    "log '%s': render kind '%s' was not appended for step %lld "
                                    "(every kind is appended once per render step, in creation "
                                    "order)",
                                    log->path, log->renders[i].kind,
                                    (long long)log->last_render_step);
    } else if (n != log->render_steps - 1) {
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "log '%s': render kind '%s' appended for step %lld with no open "
                            "render step: append '%s' (the first kind) first, then the others "
                            "in creation order",
                            log->path, kind, (long long)step, log->renders[0].kind);
    } else if (step != log->last_render_step) {
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "log '%s': render kind '%s' appended for step %lld, but the open "
                            "render step (from '%s') is %lld",
                            log->path, kind, (long long)step, log->renders[0].kind,
                            (long long)log->last_render_step);
    }
    char obj[300];
    snprintf(obj, sizeof obj, "/renders/%s", kind);
    /* The image goes first, its step after: a reader never sees a step without its entry. */
    sl_status st = append_entry(log, r->dset, obj, RENDER_RANK, r->dims, H5T_NATIVE_UINT8, data, err);
    if (st != SL_OK)
        return st;
    r->dims[0]++;
    if (k == 0) {
        hsize_t sdims = (hsize_t)log->render_steps;
        st = append_entry(log, log->render_step, "/renders/step", 1, &sdims, H5T_NATIVE_INT64,
                          &step, err);
        if (st != SL_OK) {
            /* Keep the count in memory consistent with the step column; the next append of
             * this kind overwrites the orphan entry. */
            r->dims[0]--;
            return st;
        }
        log->render_steps++;
        log->last_render_step = step;
    }
    if (H5Fflush(log->file, H5F_SCOPE_GLOBAL) < 0)
        return h5_fail(err, SL_ERR_IO, log, "H5Fflush", "/");
    return SL_OK;
}

sl_status sl_log_renders_append(sl_log *log, const char *kind, int64_t step,
                                const uint8_t *data, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = renders_append(log, kind, step, data, err);
    sl_h5_quiet_end(q);
    return st;
}

/* ---- phases, flush, close -------------------------------------------------------------- */

static sl_status log_flush(sl_log *log, sl_error *err)
{
    for (int i = 0; i < log->ntables; i++) {
        sl_status st = table_flush(log->tables[i], err);
        if (st != SL_OK)
            return st;
    }
    if (H5Fflush(log->file, H5F_SCOPE_GLOBAL) < 0)
        return h5_fail(err, SL_ERR_IO, log, "H5Fflush", "/");
    return SL_OK;
}

sl_status sl_log_flush(sl_log *log, sl_error *err)
{
    if (!log)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_flush: log is NULL");
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = log_flush(log, err);
    sl_h5_quiet_end(q);
    return st;
}

static sl_status start_swmr(sl_log *log, sl_error *err)
{
    if (log->swmr)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': SWMR mode already started",
                            log->path);
    sl_status st = log_flush(log, err);
    if (st != SL_OK)
        return st;
    /* Open groups and datasets survive this call (HDF5 refreshes them); open attributes
     * would make it fail, and this module never keeps one open. */
    if (H5Fstart_swmr_write(log->file) < 0)
        return h5_fail(err, SL_ERR_IO, log, "H5Fstart_swmr_write", log->path);
    log->swmr = 1;
    return SL_OK;
}

sl_status sl_log_start_swmr(sl_log *log, sl_error *err)
{
    if (!log)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_start_swmr: log is NULL");
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = start_swmr(log, err);
    sl_h5_quiet_end(q);
    return st;
}

/* Closes every handle and frees the log; reports nothing (used on error paths too). */
static void log_free(sl_log *log)
{
    if (!log)
        return;
    for (int i = 0; i < log->ntables; i++)
        table_free(log->tables[i]);
    free(log->tables);
    for (int i = 0; i < log->nrenders; i++) {
        if (log->renders[i].dset >= 0)
            H5Dclose(log->renders[i].dset);
        free(log->renders[i].kind);
    }
    free(log->renders);
    for (int i = 0; i < log->narrays; i++) {
        if (log->arrays[i].dset >= 0)
            H5Dclose(log->arrays[i].dset);
        free(log->arrays[i].path);
    }
    free(log->arrays);
    if (log->render_step >= 0)
        H5Dclose(log->render_step);
    if (log->file >= 0)
        H5Fclose(log->file);
    free(log->path);
    free(log);
}

sl_status sl_log_close(sl_log *log, sl_error *err)
{
    if (!log)
        return SL_OK;
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = log_flush(log, err);
    /* Close the datasets first so that H5Fclose really closes the file (and, in SWMR mode,
     * clears its "open for writing" mark); its failure is the one that matters then. */
    for (int i = 0; i < log->ntables; i++) {
        sl_log_table *t = log->tables[i];
        for (int c = 0; c < t->ncols; c++) {
            if (t->cols[c].dset >= 0)
                H5Dclose(t->cols[c].dset);
            t->cols[c].dset = H5I_INVALID_HID;
        }
    }
    for (int i = 0; i < log->nrenders; i++) {
        if (log->renders[i].dset >= 0)
            H5Dclose(log->renders[i].dset);
        log->renders[i].dset = H5I_INVALID_HID;
    }
    if (log->render_step >= 0)
        H5Dclose(log->render_step);
    log->render_step = H5I_INVALID_HID;
    for (int i = 0; i < log->narrays; i++) {
        if (log->arrays[i].dset >= 0)
            H5Dclose(log->arrays[i].dset);
        log->arrays[i].dset = H5I_INVALID_HID;
    }
    if (H5Fclose(log->file) < 0 && st == SL_OK)
        st = h5_fail(err, SL_ERR_IO, log, "H5Fclose", log->path);
    log->file = H5I_INVALID_HID;
    log_free(log);
    sl_h5_quiet_end(q);
    return st;
}

/* ---- reopening for a resumed run ------------------------------------------------------- */

/* The private file-access property h5clear sets for `-s` (HDF5 1.10's H5Fprivate.h). It is
 * registered in every file-access list and reachable through the public H5Pset; when it is
 * true, H5Fopen zeroes the superblock's status flags before checking them. */
#define H5CLEAR_STATUS_PROPERTY "clear_status_flags"

static sl_status log_open_append(const char *path, sl_log **out, sl_error *err)
{
    if (!out)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_open_append: out is NULL");
    *out = NULL;
    if (!path || !path[0])
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_open_append: empty path");
    sl_status st = SL_OK;
    hid_t fapl = H5I_INVALID_HID;
    sl_log *log = calloc(1, sizeof *log);
    if (!log || !(log->path = strdup(path))) {
        free(log);
        return sl_error_set(err, SL_ERR_NOMEM, "sl_log_open_append: out of memory");
    }
    log->file = H5I_INVALID_HID;
    log->render_step = H5I_INVALID_HID;
    log->reopened = 1;
    if (access(path, R_OK | W_OK) != 0) {
        st = sl_error_set(err, SL_ERR_IO, "log '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* SWMR writing needs the latest format bounds again (sl_log_create). */
    if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Pset_libver_bounds", "file access properties");
        goto cleanup;
    }
    hbool_t clear = 1;
    if (H5Pset(fapl, H5CLEAR_STATUS_PROPERTY, &clear) < 0) {
        st = sl_error_set(err, SL_ERR_UNSUPPORTED,
                          "log '%s': this HDF5 library (%s) has no '%s' file-access property "
                          "to clear the flags a killed writer leaves; run `h5clear -s %s` and "
                          "resume again", path, H5_VERS_INFO, H5CLEAR_STATUS_PROPERTY, path);
        goto cleanup;
    }
    log->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    if (log->file < 0) {
        st = h5_fail(err, SL_ERR_IO, log, "H5Fopen", path);
        goto cleanup;
    }
    *out = log;
    log = NULL;
cleanup:
    if (fapl >= 0)
        H5Pclose(fapl);
    log_free(log);
    return st;
}

sl_status sl_log_open_append(const char *path, sl_log **out, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = log_open_append(path, out, err);
    sl_h5_quiet_end(q);
    return st;
}

static sl_status reopen_check(const sl_log *log, const char *fn, sl_error *err)
{
    if (!log)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "%s: log is NULL", fn);
    if (!log->reopened)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "log '%s': %s needs a log opened with sl_log_open_append", log->path,
                            fn);
    if (log->swmr)
        return swmr_refusal(log, err, fn);
    return SL_OK;
}

sl_status sl_log_table_open(sl_log *log, const char *group_path, sl_log_table **out,
                            sl_error *err)
{
    if (!out)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_table_open: out is NULL");
    *out = NULL;
    sl_status st = reopen_check(log, "sl_log_table_open", err);
    if (st != SL_OK)
        return st;
    if (!valid_obj_path(group_path) || strcmp(group_path, "/") == 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': invalid table path '%s'",
                            log->path, group_path ? group_path : "(null)");
    sl_h5_quiet q = sl_h5_quiet_begin();
    htri_t ex = H5Lexists(log->file, group_path + 1, H5P_DEFAULT);
    sl_h5_quiet_end(q);
    if (ex <= 0)
        return sl_error_set(err, SL_ERR_FORMAT, "log '%s' has no table '%s'", log->path,
                            group_path);
    if (log->ntables == log->cap_tables) {
        int cap = log->cap_tables ? 2 * log->cap_tables : 8;
        sl_log_table **nt = realloc(log->tables, (size_t)cap * sizeof *nt);
        if (!nt)
            return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
        log->tables = nt;
        log->cap_tables = cap;
    }
    sl_log_table *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(group_path))) {
        free(t);
        return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
    }
    t->log = log;
    t->written = -1;   /* set by the first column attached, then by truncate */
    log->tables[log->ntables++] = t;
    *out = t;
    return SL_OK;
}

/* Current length of a 1-D or n-D dataset along its first axis, or -1. */
static int64_t first_extent(hid_t dset)
{
    hid_t space = H5Dget_space(dset);
    if (space < 0)
        return -1;
    hsize_t dims[RENDER_RANK] = {0};
    int rank = H5Sget_simple_extent_ndims(space);
    int64_t n = -1;
    if (rank >= 1 && rank <= RENDER_RANK && H5Sget_simple_extent_dims(space, dims, NULL) >= 0)
        n = (int64_t)dims[0];
    H5Sclose(space);
    return n;
}

static sl_status table_column_open(sl_log_table *t, const char *name, sl_log_dtype dtype,
                                   int *col, sl_error *err)
{
    if (!t)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_table_column_open: table is NULL");
    sl_log *log = t->log;
    sl_status st = reopen_check(log, "sl_log_table_column_open", err);
    if (st != SL_OK)
        return st;
    if (!valid_name(name))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': invalid column name '%s'",
                            log->path, name ? name : "(null)");
    if (sl_log_table_find(t, name) >= 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': column '%s/%s' attached twice",
                            log->path, t->path, name);
    if (table_grow_cols(t) < 0)
        return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
    char *full = join_path(t->path, name);
    char *name_copy = strdup(name);
    hid_t dset = H5I_INVALID_HID, type = H5I_INVALID_HID;
    if (!full || !name_copy) {
        st = sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
        goto cleanup;
    }
    if (H5Lexists(log->file, full, H5P_DEFAULT) <= 0) {
        st = sl_error_set(err, SL_ERR_FORMAT,
                          "log '%s' has no column '%s' (was it written by another spec or "
                          "another version of a plugin?)", log->path, full);
        goto cleanup;
    }
    dset = H5Dopen2(log->file, full, H5P_DEFAULT);
    if (dset < 0) {
        st = h5_fail(err, SL_ERR_FORMAT, log, "H5Dopen2", full);
        goto cleanup;
    }
    type = H5Dget_type(dset);
    int is_f64 = type >= 0 && H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 8;
    int is_i64 = type >= 0 && H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 8;
    if ((dtype == SL_LOG_F64 && !is_f64) || (dtype == SL_LOG_I64 && !is_i64)) {
        st = sl_error_set(err, SL_ERR_FORMAT, "log '%s': column '%s' is not %s", log->path, full,
                          dtype == SL_LOG_F64 ? "float64" : "int64");
        goto cleanup;
    }
    int64_t n = first_extent(dset);
    if (n < 0) {
        st = h5_fail(err, SL_ERR_FORMAT, log, "H5Dget_space", full);
        goto cleanup;
    }
    if (t->written < 0 || n < t->written)
        t->written = n;
    int idx = t->ncols++;
    t->cols[idx] = (sl_log_column){.name = name_copy, .dtype = dtype, .dset = dset, .buf = NULL};
    t->cur_set[idx] = 0;
    t->cur[idx] = NAN;
    name_copy = NULL;
    dset = H5I_INVALID_HID;
    if (col)
        *col = idx;
cleanup:
    if (type >= 0)
        H5Tclose(type);
    if (dset >= 0)
        H5Dclose(dset);
    free(name_copy);
    free(full);
    return st;
}

sl_status sl_log_table_column_open(sl_log_table *t, const char *name, sl_log_dtype dtype,
                                   int *col, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = table_column_open(t, name, dtype, col, err);
    sl_h5_quiet_end(q);
    return st;
}

static sl_status table_truncate(sl_log_table *t, int64_t rows, sl_error *err)
{
    if (!t)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_table_truncate: table is NULL");
    sl_log *log = t->log;
    sl_status st = reopen_check(log, "sl_log_table_truncate", err);
    if (st != SL_OK)
        return st;
    if (rows < 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': %s: negative row count %lld",
                            log->path, t->path, (long long)rows);
    char obj[512];
    /* Check every column before cutting any: a refused resume leaves the log as it was. */
    for (int i = 0; i < t->ncols; i++) {
        int64_t n = first_extent(t->cols[i].dset);
        if (n < rows) {
            snprintf(obj, sizeof obj, "%s/%s", t->path, t->cols[i].name);
            return sl_error_set(err, SL_ERR_FORMAT,
                                "log '%s': '%s' holds %lld rows, the checkpoint needs %lld (the "
                                "log lost rows the checkpoint refers to)",
                                log->path, obj, (long long)(n < 0 ? 0 : n), (long long)rows);
        }
    }
    hsize_t size = (hsize_t)rows;
    for (int i = 0; i < t->ncols; i++) {
        if (H5Dset_extent(t->cols[i].dset, &size) < 0) {
            snprintf(obj, sizeof obj, "%s/%s", t->path, t->cols[i].name);
            return h5_fail(err, SL_ERR_IO, log, "H5Dset_extent", obj);
        }
    }
    t->written = rows;
    t->nbuf = 0;
    memset(t->cur_set, 0, (size_t)t->cap_cols);
    return SL_OK;
}

sl_status sl_log_table_truncate(sl_log_table *t, int64_t rows, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = table_truncate(t, rows, err);
    sl_h5_quiet_end(q);
    return st;
}

/* Reads element i of the int64 dataset /renders/step. */
static sl_status read_render_step(sl_log *log, int64_t i, int64_t *value, sl_error *err)
{
    hsize_t start = (hsize_t)i, count = 1;
    hid_t fspace = H5Dget_space(log->render_step), mspace = H5Screate_simple(1, &count, NULL);
    sl_status st = SL_OK;
    if (fspace < 0 || mspace < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
        H5Dread(log->render_step, H5T_NATIVE_INT64, mspace, fspace, H5P_DEFAULT, value) < 0)
        st = h5_fail(err, SL_ERR_FORMAT, log, "H5Dread", "/renders/step");
    if (fspace >= 0)
        H5Sclose(fspace);
    if (mspace >= 0)
        H5Sclose(mspace);
    return st;
}

static sl_status renders_open(sl_log *log, const char *kind, int views, int height, int width,
                              int channels, sl_error *err)
{
    sl_status st = reopen_check(log, "sl_log_renders_open", err);
    if (st != SL_OK)
        return st;
    if (!valid_name(kind) || strcmp(kind, "step") == 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': invalid render kind '%s'",
                            log->path, kind ? kind : "(null)");
    if (find_render(log, kind, NULL))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': render kind '%s' attached twice",
                            log->path, kind);
    if (log->nrenders == log->cap_renders) {
        int cap = log->cap_renders ? 2 * log->cap_renders : 4;
        sl_log_render *nr = realloc(log->renders, (size_t)cap * sizeof *nr);
        if (!nr)
            return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
        log->renders = nr;
        log->cap_renders = cap;
    }
    if (log->render_step < 0) {
        if (H5Lexists(log->file, "renders", H5P_DEFAULT) <= 0 ||
            H5Lexists(log->file, "renders/step", H5P_DEFAULT) <= 0)
            return sl_error_set(err, SL_ERR_FORMAT, "log '%s' has no /renders/step", log->path);
        log->render_step = H5Dopen2(log->file, "/renders/step", H5P_DEFAULT);
        if (log->render_step < 0)
            return h5_fail(err, SL_ERR_FORMAT, log, "H5Dopen2", "/renders/step");
        log->render_steps = first_extent(log->render_step);
        if (log->render_steps < 0)
            return h5_fail(err, SL_ERR_FORMAT, log, "H5Dget_space", "/renders/step");
        if (log->render_steps > 0 &&
            (st = read_render_step(log, log->render_steps - 1, &log->last_render_step, err)) != SL_OK)
            return st;
    }
    char *full = join_path("/renders", kind);
    char *kind_copy = strdup(kind);
    hid_t dset = H5I_INVALID_HID, space = H5I_INVALID_HID;
    if (!full || !kind_copy) {
        st = sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
        goto cleanup;
    }
    if (H5Lexists(log->file, full, H5P_DEFAULT) <= 0) {
        st = sl_error_set(err, SL_ERR_FORMAT, "log '%s' has no render kind '%s'", log->path, full);
        goto cleanup;
    }
    dset = H5Dopen2(log->file, full, H5P_DEFAULT);
    space = dset >= 0 ? H5Dget_space(dset) : H5I_INVALID_HID;
    hsize_t dims[RENDER_RANK] = {0};
    if (space < 0 || H5Sget_simple_extent_ndims(space) != RENDER_RANK ||
        H5Sget_simple_extent_dims(space, dims, NULL) < 0 || dims[1] != (hsize_t)views ||
        dims[2] != (hsize_t)height || dims[3] != (hsize_t)width || dims[4] != (hsize_t)channels) {
        st = sl_error_set(err, SL_ERR_FORMAT,
                          "log '%s': '%s' is not (n, %d, %d, %d, %d) as this run renders",
                          log->path, full, views, height, width, channels);
        goto cleanup;
    }
    sl_log_render *r = &log->renders[log->nrenders++];
    r->kind = kind_copy;
    r->dset = dset;
    memcpy(r->dims, dims, sizeof dims);
    kind_copy = NULL;
    dset = H5I_INVALID_HID;
cleanup:
    if (space >= 0)
        H5Sclose(space);
    if (dset >= 0)
        H5Dclose(dset);
    free(kind_copy);
    free(full);
    return st;
}

sl_status sl_log_renders_open(sl_log *log, const char *kind, int views, int height, int width,
                              int channels, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = renders_open(log, kind, views, height, width, channels, err);
    sl_h5_quiet_end(q);
    return st;
}

static sl_status renders_truncate(sl_log *log, int64_t n, sl_error *err)
{
    sl_status st = reopen_check(log, "sl_log_renders_truncate", err);
    if (st != SL_OK)
        return st;
    if (log->render_step < 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "log '%s': attach the render kinds before truncating them", log->path);
    /* A killed run may have written an image without its step (images go first): each
     * dataset only needs to reach n. */
    if (n < 0 || log->render_steps < n)
        return sl_error_set(err, SL_ERR_FORMAT,
                            "log '%s': /renders/step holds %lld entries, the checkpoint needs "
                            "%lld", log->path, (long long)log->render_steps, (long long)n);
    for (int i = 0; i < log->nrenders; i++)
        if ((int64_t)log->renders[i].dims[0] < n)
            return sl_error_set(err, SL_ERR_FORMAT,
                                "log '%s': /renders/%s holds %lld entries, the checkpoint needs "
                                "%lld", log->path, log->renders[i].kind,
                                (long long)log->renders[i].dims[0], (long long)n);
    for (int i = 0; i < log->nrenders; i++) {
        sl_log_render *r = &log->renders[i];
        hsize_t size[RENDER_RANK];
        memcpy(size, r->dims, sizeof size);
        size[0] = (hsize_t)n;
        char obj[300];
        snprintf(obj, sizeof obj, "/renders/%s", r->kind);
        if (H5Dset_extent(r->dset, size) < 0)
            return h5_fail(err, SL_ERR_IO, log, "H5Dset_extent", obj);
        r->dims[0] = (hsize_t)n;
    }
    hsize_t sn = (hsize_t)n;
    if (H5Dset_extent(log->render_step, &sn) < 0)
        return h5_fail(err, SL_ERR_IO, log, "H5Dset_extent", "/renders/step");
    log->render_steps = n;
    log->last_render_step = 0;
    if (n > 0)
        return read_render_step(log, n - 1, &log->last_render_step, err);
    return SL_OK;
}

sl_status sl_log_renders_truncate(sl_log *log, int64_t n, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = renders_truncate(log, n, err);
    sl_h5_quiet_end(q);
    return st;
}

int64_t sl_log_renders_count(const sl_log *log) { return log ? log->render_steps : 0; }

sl_status sl_log_sync(sl_log *log, sl_error *err)
{
    sl_status st = sl_log_flush(log, err);
    if (st != SL_OK)
        return st;
    /* H5Fflush hands the data to the kernel; fsync puts it on the disk. Any descriptor of
     * the file will do for fsync. */
    int fd = open(log->path, O_RDONLY);
    if (fd < 0)
        return sl_error_set(err, SL_ERR_IO, "log '%s': cannot open it to sync: %s", log->path,
                            strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return sl_error_set(err, SL_ERR_IO, "log '%s': fsync failed: %s", log->path, strerror(e));
    return SL_OK;
}

static sl_status read_attr_string(const char *path, const char *obj_path, const char *name,
                                  char **value, sl_error *err)
{
    sl_log tmp = {.path = (char *)path};
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    if (file < 0)
        return h5_fail(err, SL_ERR_IO, &tmp, "H5Fopen", path);
    sl_status st = SL_OK;
    hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID, mtype = H5I_INVALID_HID;
    char *raw = NULL;
    if (H5Aexists_by_name(file, obj_path, name, H5P_DEFAULT) <= 0) {
        st = sl_error_set(err, SL_ERR_FORMAT, "log '%s' has no attribute '%s' on '%s'", path,
                          name, obj_path);
        goto cleanup;
    }
    attr = H5Aopen_by_name(file, obj_path, name, H5P_DEFAULT, H5P_DEFAULT);
    type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
    if (type < 0 || H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) <= 0) {
        st = sl_error_set(err, SL_ERR_FORMAT, "log '%s': attribute '%s' of '%s' is not a string",
                          path, name, obj_path);
        goto cleanup;
    }
    mtype = vlen_utf8_type();
    if (mtype < 0 || H5Aread(attr, mtype, &raw) < 0 || !raw) {
        st = h5_fail(err, SL_ERR_FORMAT, &tmp, "H5Aread", name);
        goto cleanup;
    }
    if (!(*value = strdup(raw)))
        st = sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", path);
    H5free_memory(raw);
cleanup:
    if (mtype >= 0)
        H5Tclose(mtype);
    if (type >= 0)
        H5Tclose(type);
    if (attr >= 0)
        H5Aclose(attr);
    H5Fclose(file);
    return st;
}

sl_status sl_log_read_attr_string(const char *path, const char *obj_path, const char *name,
                                  char **value, sl_error *err)
{
    if (!value || !path || !obj_path || !name)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_read_attr_string: NULL argument");
    *value = NULL;
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = read_attr_string(path, obj_path, name, value, err);
    sl_h5_quiet_end(q);
    return st;
}

/* ---- arrays ------------------------------------------------------------------------------ */

static hid_t array_file_type(sl_log_array_type t)
{
    switch (t) {
    case SL_LOG_ARRAY_F32: return H5T_IEEE_F32LE;
    case SL_LOG_ARRAY_F64: return H5T_IEEE_F64LE;
    case SL_LOG_ARRAY_I32: return H5T_STD_I32LE;
    case SL_LOG_ARRAY_I64: return H5T_STD_I64LE;
    default: return H5T_STD_U8LE;
    }
}

static hid_t array_mem_type(sl_log_array_type t)
{
    switch (t) {
    case SL_LOG_ARRAY_F32: return H5T_NATIVE_FLOAT;
    case SL_LOG_ARRAY_F64: return H5T_NATIVE_DOUBLE;
    case SL_LOG_ARRAY_I32: return H5T_NATIVE_INT32;
    case SL_LOG_ARRAY_I64: return H5T_NATIVE_INT64;
    default: return H5T_NATIVE_UINT8;
    }
}

static size_t array_elem_size(sl_log_array_type t)
{
    return t == SL_LOG_ARRAY_F64 || t == SL_LOG_ARRAY_I64 ? 8 : t == SL_LOG_ARRAY_U8 ? 1 : 4;
}

static const char *array_type_name(sl_log_array_type t)
{
    static const char *names[] = { "float32", "float64", "int32", "int64", "uint8" };
    return (unsigned)t < 5 ? names[t] : "?";
}

/* 1 when every component of path exists in file, 0 when one does not, -1 on error. */
static int path_exists(hid_t file, const char *path)
{
    char *p = strdup(path);
    if (!p)
        return -1;
    int has = 1;
    for (char *c = p + 1; has == 1; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char saved = *c;
        *c = '\0';
        htri_t ex = H5Lexists(file, p, H5P_DEFAULT);
        has = ex < 0 ? -1 : ex > 0;
        *c = saved;
        if (saved == '\0')
            break;
    }
    free(p);
    return has;
}

static sl_log_array *find_array(sl_log *log, const char *path)
{
    for (int i = 0; i < log->narrays; i++)
        if (!strcmp(log->arrays[i].path, path))
            return &log->arrays[i];
    return NULL;
}

static sl_status array_check_args(sl_log *log, const char *fn, const char *path,
                                  sl_log_array_type type, int cols, sl_error *err)
{
    if (!log)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "%s: log is NULL", fn);
    if (!valid_obj_path(path) || !strcmp(path, "/"))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': %s: invalid path '%s'",
                            log->path, fn, path ? path : "(null)");
    if ((unsigned)type > SL_LOG_ARRAY_U8 || cols < 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': %s: bad type or columns for '%s'",
                            log->path, fn, path);
    if (find_array(log, path))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': array '%s' defined twice",
                            log->path, path);
    if (log->narrays == log->cap_arrays) {
        int cap = log->cap_arrays ? 2 * log->cap_arrays : 4;
        sl_log_array *na = realloc(log->arrays, (size_t)cap * sizeof *na);
        if (!na)
            return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
        log->arrays = na;
        log->cap_arrays = cap;
    }
    return SL_OK;
}

static sl_status array_create(sl_log *log, const char *path, sl_log_array_type type, int cols,
                              const char *doc, sl_error *err)
{
    sl_status st = array_check_args(log, "sl_log_array_create", path, type, cols, err);
    if (st != SL_OK)
        return st;
    if (log->swmr || log->reopened) {
        char what[300];
        snprintf(what, sizeof what, "create array '%s'", path);
        return log->swmr ? swmr_refusal(log, err, what) : reopened_refusal(log, err, what);
    }
    /* The parent groups ("/mesh" for "/mesh/faces"). */
    char *parent = strdup(path);
    if (!parent)
        return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
    char *slash = strrchr(parent, '/');
    if (slash == parent)
        slash[1] = '\0';
    else
        *slash = '\0';
    st = ensure_groups(log, parent, err);
    free(parent);
    if (st != SL_OK)
        return st;
    int rank = cols ? 2 : 1;
    hsize_t dims[2] = { 0, (hsize_t)cols }, maxdims[2] = { H5S_UNLIMITED, (hsize_t)cols };
    /* Chunks of about 64 KiB: a mesh of a few hundred thousand vertices is a few chunks. */
    size_t row_bytes = array_elem_size(type) * (size_t)(cols ? cols : 1);
    hsize_t chunk[2] = { (hsize_t)(65536 / row_bytes), (hsize_t)cols };
    hid_t dset = H5I_INVALID_HID;
    char *path_copy = strdup(path);
    if (!path_copy)
        return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
    st = create_documented_dataset(log, path, array_file_type(type), rank, dims, maxdims, chunk,
                                   H5I_INVALID_HID, NULL, doc, &dset, err);
    if (st == SL_OK) {
        log->arrays[log->narrays++] = (sl_log_array){ path_copy, dset, type, cols };
        return SL_OK;
    }
    free(path_copy);
    return st;
}

sl_status sl_log_array_create(sl_log *log, const char *path, sl_log_array_type type, int cols,
                              const char *doc, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = array_create(log, path, type, cols, doc, err);
    sl_h5_quiet_end(q);
    return st;
}

/* Checks that dset is a chunked array of `type` with `cols` columns (0: 1-D). */
static int array_matches(hid_t dset, sl_log_array_type type, int cols)
{
    hid_t ft = H5Dget_type(dset), space = H5Dget_space(dset);
    int ok = ft >= 0 && space >= 0 && H5Tequal(ft, array_file_type(type)) > 0;
    if (ok) {
        int rank = H5Sget_simple_extent_ndims(space);
        hsize_t dims[2] = { 0, 0 };
        ok = rank == (cols ? 2 : 1) && H5Sget_simple_extent_dims(space, dims, NULL) >= 0 &&
             (!cols || dims[1] == (hsize_t)cols);
    }
    if (ft >= 0)
        H5Tclose(ft);
    if (space >= 0)
        H5Sclose(space);
    return ok;
}

static sl_status array_open(sl_log *log, const char *path, sl_log_array_type type, int cols,
                            sl_error *err)
{
    sl_status st = reopen_check(log, "sl_log_array_open", err);
    if (st == SL_OK)
        st = array_check_args(log, "sl_log_array_open", path, type, cols, err);
    if (st != SL_OK)
        return st;
    int has = path_exists(log->file, path);
    if (has < 0)
        return h5_fail(err, SL_ERR_IO, log, "H5Lexists", path);
    if (!has)
        return sl_error_set(err, SL_ERR_FORMAT, "log '%s' has no array '%s'", log->path, path);
    hid_t dset = H5Dopen2(log->file, path, H5P_DEFAULT);
    if (dset < 0)
        return h5_fail(err, SL_ERR_FORMAT, log, "H5Dopen2", path);
    char *path_copy = strdup(path);
    if (!path_copy || !array_matches(dset, type, cols)) {
        H5Dclose(dset);
        free(path_copy);
        if (!path_copy)
            return sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory", log->path);
        return sl_error_set(err, SL_ERR_FORMAT, "log '%s': '%s' is not a %s array of %d "
                            "column%s", log->path, path, array_type_name(type), cols,
                            cols == 1 ? "" : "s");
    }
    log->arrays[log->narrays++] = (sl_log_array){ path_copy, dset, type, cols };
    return SL_OK;
}

sl_status sl_log_array_open(sl_log *log, const char *path, sl_log_array_type type, int cols,
                            sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = array_open(log, path, type, cols, err);
    sl_h5_quiet_end(q);
    return st;
}

static sl_status array_write(sl_log *log, const char *path, const void *data, int64_t rows,
                             sl_error *err)
{
    if (!log)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_array_write: log is NULL");
    sl_log_array *a = path ? find_array(log, path) : NULL;
    if (!a)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': no array '%s' (create it with "
                            "sl_log_array_create before sl_log_start_swmr)", log->path,
                            path ? path : "(null)");
    if (rows < 0 || (rows > 0 && !data))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "log '%s': sl_log_array_write('%s'): %s",
                            log->path, path, rows < 0 ? "negative row count" : "data is NULL");
    hsize_t size[2] = { (hsize_t)rows, (hsize_t)a->cols };
    if (H5Dset_extent(a->dset, size) < 0)
        return h5_fail(err, SL_ERR_IO, log, "H5Dset_extent", path);
    if (rows > 0 && H5Dwrite(a->dset, array_mem_type(a->type), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                             data) < 0)
        return h5_fail(err, SL_ERR_IO, log, "H5Dwrite", path);
    if (H5Dflush(a->dset) < 0)
        return h5_fail(err, SL_ERR_IO, log, "H5Dflush", path);
    return SL_OK;
}

sl_status sl_log_array_write(sl_log *log, const char *path, const void *data, int64_t rows,
                             sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = array_write(log, path, data, rows, err);
    sl_h5_quiet_end(q);
    return st;
}

static sl_status read_array(const char *log_path, const char *path, sl_log_array_type type,
                            int cols, void **data, int64_t *rows, sl_error *err)
{
    sl_log tmp = { .path = (char *)log_path };
    hid_t file = H5Fopen(log_path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    if (file < 0)
        return h5_fail(err, SL_ERR_IO, &tmp, "H5Fopen", log_path);
    sl_status st = SL_OK;
    hid_t dset = H5I_INVALID_HID;
    int has = path_exists(file, path);
    if (has <= 0) {
        st = has < 0 ? h5_fail(err, SL_ERR_IO, &tmp, "H5Lexists", path)
                     : sl_error_set(err, SL_ERR_FORMAT, "log '%s' has no '%s'", log_path, path);
        goto cleanup;
    }
    dset = H5Dopen2(file, path, H5P_DEFAULT);
    if (dset < 0) {
        st = h5_fail(err, SL_ERR_FORMAT, &tmp, "H5Dopen2", path);
        goto cleanup;
    }
    if (!array_matches(dset, type, cols)) {
        st = sl_error_set(err, SL_ERR_FORMAT, "log '%s': '%s' is not a %s array of %d column%s",
                          log_path, path, array_type_name(type), cols, cols == 1 ? "" : "s");
        goto cleanup;
    }
    int64_t n = first_extent(dset);
    if (n < 0) {
        st = h5_fail(err, SL_ERR_FORMAT, &tmp, "H5Dget_space", path);
        goto cleanup;
    }
    if (n > 0) {
        size_t bytes = (size_t)n * (size_t)(cols ? cols : 1) * array_elem_size(type);
        *data = malloc(bytes);
        if (!*data) {
            st = sl_error_set(err, SL_ERR_NOMEM, "log '%s': out of memory reading '%s'",
                              log_path, path);
            goto cleanup;
        }
        if (H5Dread(dset, array_mem_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0) {
            free(*data);
            *data = NULL;
            st = h5_fail(err, SL_ERR_FORMAT, &tmp, "H5Dread", path);
            goto cleanup;
        }
    }
    *rows = n;
cleanup:
    if (dset >= 0)
        H5Dclose(dset);
    H5Fclose(file);
    return st;
}

sl_status sl_log_read_array(const char *log_path, const char *path, sl_log_array_type type,
                            int cols, void **data, int64_t *rows, sl_error *err)
{
    if (!log_path || !path || !data || !rows)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_read_array: NULL argument");
    *data = NULL;
    *rows = 0;
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = read_array(log_path, path, type, cols, data, rows, err);
    sl_h5_quiet_end(q);
    return st;
}

int sl_log_has_object(const char *log_path, const char *path, sl_error *err)
{
    if (!log_path || !path)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_log_has_object: NULL argument"), -1;
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_log tmp = { .path = (char *)log_path };
    int has = -1;
    hid_t file = H5Fopen(log_path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    if (file < 0) {
        h5_fail(err, SL_ERR_IO, &tmp, "H5Fopen", log_path);
    } else {
        has = path_exists(file, path);
        if (has < 0)
            h5_fail(err, SL_ERR_IO, &tmp, "H5Lexists", path);
        H5Fclose(file);
    }
    sl_h5_quiet_end(q);
    return has;
}
