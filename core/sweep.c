/* core/sweep.c — sweep expansion, cell specs, cell states, the sweep index and the Slurm
 * script (sweep.h; docs/sweeps.md). */
#define _GNU_SOURCE   /* mkdtemp, realpath */
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"
#include "host.h"
#include "spec.h"
#include "steinlab/version.h"
#include "strbuf.h"
#include "sweep.h"

#define CMDLINE_LABEL "<command line>"

typedef struct axis {
    char *key;               /* dotted spec key */
    const sl_node *key_node; /* the key inside `sweep:` (positions for messages) */
    const sl_node *values;   /* SEQ node inside `sweep:` */
} axis;

struct sl_sweep {
    char *spec_path;          /* as given; the parsed nodes point at this string */
    char abs_spec_path[PATH_MAX];
    char base_dir[PATH_MAX];  /* the spec's directory, absolute: relative paths start here */
    sl_node *doc;             /* the whole document, overrides applied (sweep block included) */
    sl_node *base;            /* doc without `sweep:` */
    char *doc_yaml;           /* doc as YAML text: SWEEPDIR/sweep.yaml and the index */
    axis *axes;               /* (n_axes,) */
    size_t n_axes, n_cells;
    char name[256];
};

/* ---- small helpers ----------------------------------------------------------------------- */

static bool is_number(const char *s, bool *is_int)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    (void)strtoll(s, &end, 10);
    if (*end == '\0' && errno == 0) {
        *is_int = true;
        return true;
    }
    (void)strtod(s, &end);
    *is_int = false;
    return *end == '\0';
}

/* Flow YAML of a value for descriptions and index strings: scalars as written, lists and
 * maps in brackets. Quoted scalars keep double quotes only inside lists and maps, where a
 * reader needs them; a top-level string is shown bare ("sds", not "\"sds\""). */
static void flow(sl_strbuf *b, const sl_node *n, bool top)
{
    if (n->kind == SL_NODE_SCALAR) {
        if (n->quoted && !top) {
            sl_strbuf_puts(b, "\"");
            for (const char *p = n->text; *p; p++) {
                if (*p == '"' || *p == '\\')
                    sl_strbuf_puts(b, "\\");
                sl_strbuf_putn(b, p, 1);
            }
            sl_strbuf_puts(b, "\"");
        } else {
            sl_strbuf_puts(b, n->text[0] || n->quoted ? n->text : "null");
        }
        return;
    }
    sl_strbuf_puts(b, n->kind == SL_NODE_SEQ ? "[" : "{");
    for (size_t i = 0; i < n->n; i++) {
        if (i)
            sl_strbuf_puts(b, ", ");
        if (n->kind == SL_NODE_MAP) {
            flow(b, n->keys[i], false);
            sl_strbuf_puts(b, ": ");
        }
        flow(b, n->items[i], false);
    }
    sl_strbuf_puts(b, n->kind == SL_NODE_SEQ ? "]" : "}");
}

static char *flow_text(const sl_node *n)
{
    sl_strbuf b;
    sl_strbuf_init(&b);
    flow(&b, n, true);
    return sl_strbuf_take(&b);
}

/* mkdir -p, and the result must be a directory. */
static sl_status mkdir_p(const char *path, sl_error *err)
{
    sl_status st = sl_make_dirs(path, 1, err);
    struct stat s;
    if (st == SL_OK && (stat(path, &s) != 0 || !S_ISDIR(s.st_mode)))
        return sl_error_set(err, SL_ERR_IO, "'%s' is not a directory", path);
    return st;
}

/* Writes through PATH.tmp and rename(2), so a reader (or a sweep killed mid-write) never
 * sees a half-written spec or status file. */
static sl_status write_file_atomic(const char *path, const char *text, size_t len,
                                   sl_error *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "path too long: '%s'", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return sl_error_set(err, SL_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    bool ok = fwrite(text, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return sl_error_set(err, SL_ERR_IO, "cannot write '%s': %s", path, strerror(e));
    }
    return SL_OK;
}

/* The whole file (NUL-terminated, malloc'd), or NULL when it cannot be read. */
static char *read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    sl_strbuf b;
    sl_strbuf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        sl_strbuf_putn(&b, chunk, n);
    bool bad = ferror(f);
    fclose(f);
    size_t len = b.len;
    char *s = sl_strbuf_take(&b);
    if (bad) {
        free(s);
        return NULL;
    }
    if (!s)
        s = calloc(1, 1);
    if (len_out)
        *len_out = len;
    return s;
}

/* ---- loading ------------------------------------------------------------------------------ */

void sl_sweep_free(sl_sweep *sw)
{
    if (!sw)
        return;
    for (size_t a = 0; a < sw->n_axes; a++)
        free(sw->axes[a].key);
    free(sw->axes);
    sl_node_free(sw->base);
    sl_node_free(sw->doc);
    free(sw->doc_yaml);
    free(sw->spec_path);
    free(sw);
}

/* Key of an override argument ("a.b=1" -> "a.b"), into buf. */
static void override_key(const char *assignment, char *buf, size_t size)
{
    const char *eq = strchr(assignment, '=');
    size_t n = eq ? (size_t)(eq - assignment) : strlen(assignment);
    snprintf(buf, size, "%.*s", (int)n, assignment);
}

/* True when `inner` is `outer` or lies inside it ("a.b" inside "a"). */
static bool key_within(const char *inner, const char *outer)
{
    size_t n = strlen(outer);
    return strncmp(inner, outer, n) == 0 && (inner[n] == '\0' || inner[n] == '.');
}

static sl_status check_axis_key(const sl_node *k, sl_error *err)
{
    const char *key = k->text;
    char path[600];
    snprintf(path, sizeof path, "sweep.%s", key);
    bool bad = !*key || key[0] == '.' || key[strlen(key) - 1] == '.' || strstr(key, "..");
    if (bad)
        return sl_spec_error_at(err, k, path, "expected a dotted key of non-empty names, "
                                              "found '%s'", key);
    if (!strcmp(key, "sweep") || key_within(key, "sweep"))
        return sl_spec_error_at(err, k, path, "expected a spec key, found a sweep inside "
                                              "the sweep");
    if (!strcmp(key, "log") || !strcmp(key, "log.path"))
        return sl_spec_error_at(err, k, path, "expected a spec key other than log.path, "
                                              "found '%s' (the sweep sets every cell's "
                                              "log.path to SWEEPDIR/cell-NNNN/run.h5)", key);
    return SL_OK;
}

/* Adds one axis, or replaces the values of an axis with the same key: the block's entries
 * come in document order and command-line overrides are appended after them, so the later
 * one is the override and wins. */
static sl_status add_axis(sl_sweep *sw, size_t cap, const char *key, const sl_node *k,
                          const sl_node *v, sl_error *err)
{
    char path[512];
    snprintf(path, sizeof path, "sweep.%s", key);
    for (size_t j = 0; j < sw->n_axes; j++) {
        if (!strcmp(sw->axes[j].key, key)) {
            sw->axes[j].key_node = k;
            sw->axes[j].values = v;
            return SL_OK;
        }
    }
    if (v->kind != SL_NODE_SEQ || v->n == 0)
        return sl_spec_error_at(err, v, path, "expected a non-empty list of values, found %s%s%s%s",
                                v->kind == SL_NODE_SEQ   ? "an empty list"
                                : v->kind == SL_NODE_MAP ? "an empty map"
                                                         : "a scalar",
                                v->kind == SL_NODE_SCALAR ? " '" : "",
                                v->kind == SL_NODE_SCALAR ? v->text : "",
                                v->kind == SL_NODE_SCALAR ? "'" : "");
    if (sw->n_axes == cap)
        return sl_spec_error_at(err, k, path, "expected at most %zu swept keys", cap);
    axis *ax = &sw->axes[sw->n_axes];
    if (!(ax->key = strdup(key)))
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    ax->key_node = k;
    ax->values = v;
    sw->n_axes++;
    return SL_OK;
}

/* The block's entries as dotted keys: `optimizer.lr: [...]` and `optimizer: {lr: [...]}`
 * say the same, and the second form is what an override `sweep.optimizer.lr=[...]` makes. */
static sl_status flatten(sl_sweep *sw, size_t cap, const sl_node *map, const char *prefix,
                         sl_error *err)
{
    for (size_t i = 0; i < map->n; i++) {
        const sl_node *k = map->keys[i], *v = map->items[i];
        char key[512];
        if (snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", k->text) >=
            (int)sizeof key)
            return sl_spec_error_at(err, k, "sweep", "expected a key of at most 500 bytes");
        sl_node where = *k;
        where.text = key;
        sl_status st = check_axis_key(&where, err);
        if (st != SL_OK)
            return st;
        st = v->kind == SL_NODE_MAP && v->n ? flatten(sw, cap, v, key, err)
                                            : add_axis(sw, cap, key, k, v, err);
        if (st != SL_OK)
            return st;
    }
    return SL_OK;
}

static size_t count_leaves(const sl_node *map)
{
    size_t n = 0;
    for (size_t i = 0; i < map->n; i++)
        n += map->items[i]->kind == SL_NODE_MAP && map->items[i]->n ? count_leaves(map->items[i]) : 1;
    return n;
}

static sl_status parse_axes(sl_sweep *sw, const sl_node *block, sl_error *err)
{
    if (block->kind != SL_NODE_MAP || block->n == 0)
        return sl_spec_error_at(err, block, "sweep",
                                "expected a map of dotted keys to lists of values, found %s",
                                block->kind == SL_NODE_SEQ      ? "a list"
                                : block->kind == SL_NODE_SCALAR ? "a scalar"
                                                                : "an empty map");
    size_t cap = count_leaves(block);
    sw->axes = calloc(cap, sizeof *sw->axes);
    if (!sw->axes)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    sl_status st = flatten(sw, cap, block, "", err);
    if (st != SL_OK)
        return st;
    size_t cells = 1;
    for (size_t i = 0; i < sw->n_axes; i++) {
        const axis *ax = &sw->axes[i];
        char path[512];
        snprintf(path, sizeof path, "sweep.%s", ax->key);
        for (size_t j = 0; j < i; j++)
            if (key_within(ax->key, sw->axes[j].key) || key_within(sw->axes[j].key, ax->key))
                return sl_spec_error_at(err, ax->key_node, path,
                                        "expected keys that do not contain one another, found "
                                        "'%s' and '%s' (line %d)", sw->axes[j].key, ax->key,
                                        sw->axes[j].key_node->line);
        if (cells > SL_SWEEP_MAX_CELLS / ax->values->n)
            return sl_spec_error_at(err, ax->key_node, path, "expected a grid of at most %d "
                                                             "cells, found more (the product of "
                                                             "the list lengths)",
                                    SL_SWEEP_MAX_CELLS);
        cells *= ax->values->n;
    }
    sw->n_cells = cells;
    return SL_OK;
}

sl_status sl_sweep_load(const char *spec_path, const char *const *overrides,
                        size_t n_overrides, sl_sweep **out, sl_error *err)
{
    *out = NULL;
    sl_sweep *sw = calloc(1, sizeof *sw);
    if (!sw || !(sw->spec_path = strdup(spec_path))) {
        free(sw);
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    }
    sl_status st = sl_spec_parse_file(sw->spec_path, &sw->doc, err);
    if (st != SL_OK)
        goto fail;
    if (!realpath(spec_path, sw->abs_spec_path))
        snprintf(sw->abs_spec_path, sizeof sw->abs_spec_path, "%s", spec_path);
    snprintf(sw->base_dir, sizeof sw->base_dir, "%s", sw->abs_spec_path);
    char *slash = strrchr(sw->base_dir, '/');
    if (slash && slash != sw->base_dir)
        *slash = '\0';
    else if (slash)
        slash[1] = '\0';
    else if (!getcwd(sw->base_dir, sizeof sw->base_dir))
        snprintf(sw->base_dir, sizeof sw->base_dir, ".");
    if (sw->doc->kind != SL_NODE_MAP) {
        st = sl_spec_error_at(err, sw->doc, "", "expected a map of top-level keys, found %s",
                              sw->doc->kind == SL_NODE_SEQ ? "a list" : "a scalar");
        goto fail;
    }
    /* Overrides go to the whole document first, so that one can edit the grid itself
     * (`sweep.seed=[0,1,2,3]`) as well as the base spec. */
    for (size_t i = 0; i < n_overrides; i++)
        if ((st = sl_spec_override(sw->doc, overrides[i], err)) != SL_OK)
            goto fail;
    const sl_node *block = sl_node_get(sw->doc, "sweep");
    if (block) {
        if ((st = parse_axes(sw, block, err)) != SL_OK)
            goto fail;
    } else {
        sw->n_cells = 1;
    }
    /* A cell's values are applied after the overrides, so an override of a swept key
     * would be silently lost: refuse it and say how to change the grid instead. */
    for (size_t i = 0; i < n_overrides; i++) {
        char key[512];
        override_key(overrides[i], key, sizeof key);
        for (size_t a = 0; a < sw->n_axes; a++) {
            if (!key_within(key, sw->axes[a].key))
                continue;
            sl_node where = { .file = CMDLINE_LABEL, .line = 1, .col = 1 };
            st = sl_spec_error_at(err, &where, key,
                                  "expected a key that is not swept, found one swept at "
                                  "%s:%d:%d (change the grid with 'sweep.%s=[...]')",
                                  sw->spec_path, sw->axes[a].key_node->line,
                                  sw->axes[a].key_node->col, sw->axes[a].key);
            goto fail;
        }
    }
    /* The base: the document without its sweep block. */
    sw->base = sl_node_clone(sw->doc);
    sw->doc_yaml = sl_node_emit_yaml(sw->doc);
    if (!sw->base || !sw->doc_yaml) {
        st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < sw->base->n; i++) {
        if (strcmp(sw->base->keys[i]->text, "sweep") != 0)
            continue;
        sl_node_free(sw->base->keys[i]);
        sl_node_free(sw->base->items[i]);
        memmove(sw->base->keys + i, sw->base->keys + i + 1,
                (sw->base->n - i - 1) * sizeof *sw->base->keys);
        memmove(sw->base->items + i, sw->base->items + i + 1,
                (sw->base->n - i - 1) * sizeof *sw->base->items);
        sw->base->n--;
        break;
    }
    const sl_node *name = sl_node_get(sw->base, "name");
    snprintf(sw->name, sizeof sw->name, "%s",
             name && name->kind == SL_NODE_SCALAR && name->text[0] ? name->text : "run");
    *out = sw;
    return SL_OK;
fail:
    sl_sweep_free(sw);
    return st;
}

size_t sl_sweep_n_cells(const sl_sweep *sw) { return sw->n_cells; }
size_t sl_sweep_n_axes(const sl_sweep *sw) { return sw->n_axes; }
const char *sl_sweep_axis_key(const sl_sweep *sw, size_t axis) { return sw->axes[axis].key; }
const char *sl_sweep_name(const sl_sweep *sw) { return sw->name; }

const sl_node *sl_sweep_value(const sl_sweep *sw, size_t cell, size_t a)
{
    /* Row-major over the axes: the last key varies fastest. */
    size_t stride = 1;
    for (size_t b = sw->n_axes; b-- > a + 1;)
        stride *= sw->axes[b].values->n;
    return sw->axes[a].values->items[(cell / stride) % sw->axes[a].values->n];
}

void sl_sweep_cell_name(size_t cell, char *buf, size_t size)
{
    snprintf(buf, size, "cell-%04zu", cell);
}

/* Joins with memcpy rather than snprintf: the lengths are checked here, and GCC's
 * -Wformat-truncation cannot see that through PATH_MAX-sized buffers. */
static bool path_join(char *out, size_t size, const char *const *parts, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(parts[i]);
        if (len + l + (i ? 1 : 0) + 1 > size) {
            if (size)
                out[0] = '\0';
            return false;
        }
        if (i)
            out[len++] = '/';
        memcpy(out + len, parts[i], l);
        len += l;
    }
    out[len] = '\0';
    return true;
}

bool sl_sweep_cell_path(const char *dir, size_t cell, const char *file, char *out, size_t size)
{
    char name[32];
    sl_sweep_cell_name(cell, name, sizeof name);
    const char *parts[] = { dir, name, file };
    return path_join(out, size, parts, file ? 3 : 2);
}

void sl_sweep_describe_cell(const sl_sweep *sw, size_t cell, char *buf, size_t size)
{
    sl_strbuf b;
    sl_strbuf_init(&b);
    for (size_t a = 0; a < sw->n_axes; a++) {
        sl_strbuf_printf(&b, "%s%s=", a ? " " : "", sw->axes[a].key);
        flow(&b, sl_sweep_value(sw, cell, a), true);
    }
    char *s = sl_strbuf_take(&b);
    snprintf(buf, size, "%s", s ? s : "");
    free(s);
}

/* ---- cell specs ------------------------------------------------------------------------------ */

/* Sets `key` (dotted) of root to a copy of value. The maps along the path are created
 * with sl_spec_override (so the tree's own growth rules hold), then given the position
 * of the sweep entry, so the driver's messages about them point into the sweep block. */
static sl_status put_value(sl_node *root, const axis *ax, const sl_node *value, sl_error *err)
{
    char path[512];
    snprintf(path, sizeof path, "sweep.%s", ax->key);
    /* How deep the path exists already: nodes below that are new. */
    size_t existing = 0;
    {
        const sl_node *m = root;
        const char *seg = ax->key;
        for (;;) {
            const char *dot = strchr(seg, '.');
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(dot ? (size_t)(dot - seg) : strlen(seg)),
                     seg);
            m = sl_node_get(m, name);
            if (!m)
                break;
            existing++;
            if (!dot)
                break;
            seg = dot + 1;
        }
    }
    sl_strbuf b;
    sl_strbuf_init(&b);
    sl_strbuf_printf(&b, "%s=null", ax->key);
    char *assignment = sl_strbuf_take(&b);
    if (!assignment)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    sl_error e = { "" };
    sl_status st = sl_spec_override(root, assignment, &e);
    free(assignment);
    if (st != SL_OK) {
        /* The override's message is positioned on a pretend command line: keep only what
         * it says, and put it at the sweep entry. */
        const char *what = e.msg;
        if (!strncmp(what, CMDLINE_LABEL ":", strlen(CMDLINE_LABEL ":"))) {
            const char *p = strstr(what, ": ");
            what = p ? p + 2 : what;
        }
        return sl_spec_error_at(err, ax->key_node, path, "%s", what);
    }
    sl_node *m = root;
    const char *seg = ax->key;
    for (size_t depth = 1;; depth++) {
        const char *dot = strchr(seg, '.');
        size_t len = dot ? (size_t)(dot - seg) : strlen(seg);
        size_t i = 0;
        while (i < m->n && !(strlen(m->keys[i]->text) == len && !strncmp(m->keys[i]->text, seg, len)))
            i++;
        if (i == m->n)
            return sl_error_set(err, SL_ERR_INVALID_ARG, "sweep: '%s' vanished", ax->key);
        if (depth > existing) {
            m->keys[i]->file = ax->key_node->file;
            m->keys[i]->line = ax->key_node->line;
            m->keys[i]->col = ax->key_node->col;
            m->items[i]->file = ax->key_node->file;
            m->items[i]->line = ax->key_node->line;
            m->items[i]->col = ax->key_node->col;
        }
        if (!dot) {
            sl_node *copy = sl_node_clone(value);
            if (!copy)
                return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
            sl_node_free(m->items[i]);
            m->items[i] = copy;
            return SL_OK;
        }
        m = m->items[i];
        seg = dot + 1;
    }
}

/* Sets `key` of the map `t` to the string `value` (created when absent). */
static sl_status set_string_key(sl_node *t, const char *key, const char *value, sl_error *err)
{
    char assignment[128];
    snprintf(assignment, sizeof assignment, "%s=null", key);
    sl_status st = sl_spec_override(t, assignment, err);
    for (size_t i = 0; st == SL_OK && i < t->n; i++) {
        if (strcmp(t->keys[i]->text, key) != 0)
            continue;
        char *copy = strdup(value);
        if (!copy)
            return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        free(t->items[i]->text);
        t->items[i]->text = copy;
        t->items[i]->quoted = true;
    }
    return st;
}

/* Relative paths in a spec are relative to its directory (or to its paths_relative_to); a
 * cell spec lives in another directory, so its paths_relative_to names the sweep spec's
 * effective directory, absolute. */
static sl_status anchor_paths(sl_node *t, const char *base_dir, sl_error *err)
{
    const sl_node *given = sl_node_get(t, "paths_relative_to");
    char dir[PATH_MAX];
    if (given && given->kind == SL_NODE_SCALAR && given->text[0] == '/')
        snprintf(dir, sizeof dir, "%s", given->text);
    else if (given && given->kind == SL_NODE_SCALAR && given->text[0])
        snprintf(dir, sizeof dir, "%s/%s", base_dir, given->text);
    else
        snprintf(dir, sizeof dir, "%s", base_dir);
    return set_string_key(t, "paths_relative_to", dir, err);
}

/* The cell's tree: base + values + paths_relative_to + log.path. */
static sl_status cell_tree(const sl_sweep *sw, size_t cell, const char *log_path,
                           sl_node **out, sl_error *err)
{
    sl_node *t = sl_node_clone(sw->base);
    if (!t)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    sl_status st = SL_OK;
    for (size_t a = 0; a < sw->n_axes && st == SL_OK; a++)
        st = put_value(t, &sw->axes[a], sl_sweep_value(sw, cell, a), err);
    if (st == SL_OK)
        st = anchor_paths(t, sw->base_dir, err);
    if (st == SL_OK)
        st = sl_spec_override(t, "log.path=null", err);
    sl_node *log = st == SL_OK ? sl_node_get(t, "log") : NULL;
    if (log)
        st = set_string_key(log, "path", log_path, err);
    if (st != SL_OK) {
        sl_node_free(t);
        return st;
    }
    *out = t;
    return SL_OK;
}

static sl_status emit_cell(const sl_sweep *sw, size_t cell, const sl_node *tree, char **yaml,
                           sl_error *err)
{
    char *body = sl_node_emit_yaml(tree);
    char desc[2048], name[32];
    sl_sweep_describe_cell(sw, cell, desc, sizeof desc);
    sl_sweep_cell_name(cell, name, sizeof name);
    sl_strbuf b;
    sl_strbuf_init(&b);
    sl_strbuf_printf(&b, "# %s of %zu, sweep %s (%s)\n", name, sw->n_cells, sw->name,
                     sw->abs_spec_path);
    if (desc[0])
        sl_strbuf_printf(&b, "# swept values: %s\n", desc);
    sl_strbuf_puts(&b, "# re-run this cell alone: steinlab run THIS_FILE\n");
    sl_strbuf_puts(&b, body ? body : "");
    free(body);
    *yaml = sl_strbuf_take(&b);
    return body && *yaml ? SL_OK : sl_error_set(err, SL_ERR_NOMEM, "out of memory");
}

sl_status sl_sweep_cell_spec(const sl_sweep *sw, size_t cell, const char *log_path,
                             char **yaml, sl_error *err)
{
    *yaml = NULL;
    if (cell >= sw->n_cells)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "cell %zu of a %zu-cell sweep", cell,
                            sw->n_cells);
    sl_node *t = NULL;
    sl_status st = cell_tree(sw, cell, log_path, &t, err);
    if (st == SL_OK)
        st = emit_cell(sw, cell, t, yaml, err);
    sl_node_free(t);
    return st;
}

/* ---- validation ------------------------------------------------------------------------------ */

typedef struct step { size_t index; bool key; } step;

/* Finds the key or value node at line:col in t; fills path (the indices from the root). */
static bool find_pos(const sl_node *t, int line, int col, step *path, size_t *depth,
                     size_t max_depth)
{
    if (t->line == line && t->col == col)
        return true;
    if (*depth >= max_depth)
        return false;
    for (size_t i = 0; i < t->n; i++) {
        if (t->kind == SL_NODE_MAP && t->keys[i]->line == line && t->keys[i]->col == col) {
            path[(*depth)++] = (step){ i, true };
            return true;
        }
        path[(*depth)++] = (step){ i, false };
        if (find_pos(t->items[i], line, col, path, depth, max_depth))
            return true;
        (*depth)--;
    }
    return false;
}

static bool same_pos(const sl_node *a, const sl_node *b)
{
    return a->line == b->line && a->col == b->col && a->file && b->file &&
           (a->file == b->file || !strcmp(a->file, b->file));
}

static bool subtree_has_pos(const sl_node *t, const sl_node *n)
{
    if (same_pos(t, n))
        return true;
    for (size_t i = 0; i < t->n; i++)
        if ((t->kind == SL_NODE_MAP && same_pos(t->keys[i], n)) || subtree_has_pos(t->items[i], n))
            return true;
    return false;
}

/* Rewrites a dry-run error about the temporary cell spec `tmp_spec` (whose text is `text`)
 * into one about the original spec: the node the driver named is found in the temporary
 * file's tree, the same node in the cell's tree carries its original position (the base
 * spec, the command line or the sweep entry it came from). */
static void map_error(const sl_sweep *sw, size_t cell, const sl_node *tree, const char *tmp_spec,
                      const char *text, sl_error *err)
{
    char msg[SL_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", err->msg);
    size_t tl = strlen(tmp_spec);
    int line = 0, col = 0, used = 0;
    if (!strncmp(msg, tmp_spec, tl) && sscanf(msg + tl, ":%d:%d: %n", &line, &col, &used) == 2 &&
        used > 0) {
        const char *rest = msg + tl + used;
        sl_node *parsed = NULL;
        sl_error perr;
        step path[64];
        size_t depth = 0;
        if (sl_spec_parse_string(text, strlen(text), tmp_spec, &parsed, &perr) == SL_OK &&
            find_pos(parsed, line, col, path, &depth, 64)) {
            const sl_node *n = tree;
            for (size_t d = 0; d < depth && n; d++) {
                if (path[d].index >= n->n)
                    n = NULL;
                else
                    n = path[d].key ? n->keys[path[d].index] : n->items[path[d].index];
            }
            if (n) {
                /* From the sweep? Then name the key as the sweep block spells it. */
                const char *prefix = "";
                for (size_t a = 0; a < sw->n_axes; a++) {
                    size_t kl = strlen(sw->axes[a].key);
                    if ((subtree_has_pos(sw->axes[a].values, n) ||
                         same_pos(sw->axes[a].key_node, n)) &&
                        !strncmp(rest, sw->axes[a].key, kl) &&
                        (rest[kl] == ':' || rest[kl] == '.'))
                        prefix = "sweep.";
                }
                char body[SL_ERR_MSG_MAX];
                snprintf(body, sizeof body, "%s%s", prefix, rest);
                sl_spec_error_at(err, n, "", "%s", body);
                sl_node_free(parsed);
                return;
            }
        }
        sl_node_free(parsed);
    }
    /* Not about a node: say which cell, with the temporary path replaced by the spec's. */
    char out[SL_ERR_MSG_MAX], desc[512], name[32];
    size_t o = 0;
    for (const char *p = msg; *p && o + 1 < sizeof out;) {
        if (!strncmp(p, tmp_spec, tl)) {
            o += (size_t)snprintf(out + o, sizeof out - o, "%s", sw->spec_path);
            p += tl;
        } else {
            out[o++] = *p++;
        }
        if (o >= sizeof out)
            o = sizeof out - 1;
    }
    out[o] = '\0';
    sl_sweep_describe_cell(sw, cell, desc, sizeof desc);
    sl_sweep_cell_name(cell, name, sizeof name);
    snprintf(err->msg, sizeof err->msg, "%.600s (sweep %.12s%s%.300s)", out, name,
             desc[0] ? ": " : "", desc);
}

sl_status sl_sweep_validate(const sl_sweep *sw, sl_error *err)
{
    const char *tmpdir = getenv("TMPDIR");
    char dir[PATH_MAX], spec[PATH_MAX], log[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/steinlab-sweep-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(dir))
        return sl_error_set(err, SL_ERR_IO, "cannot create a temporary directory '%s': %s", dir,
                            strerror(errno));
    const char *sp[] = { dir, "spec.yaml" }, *lp[] = { dir, "run.h5" };
    path_join(spec, sizeof spec, sp, 2);
    path_join(log, sizeof log, lp, 2);
    FILE *devnull = fopen("/dev/null", "w");
    sl_status st = devnull ? SL_OK : sl_error_set(err, SL_ERR_IO, "cannot open /dev/null");
    for (size_t c = 0; c < sw->n_cells && st == SL_OK; c++) {
        sl_node *tree = NULL;
        char *text = NULL;
        st = cell_tree(sw, c, log, &tree, err);
        if (st == SL_OK)
            st = emit_cell(sw, c, tree, &text, err);
        if (st == SL_OK)
            st = write_file_atomic(spec, text, strlen(text), err);
        if (st == SL_OK) {
            sl_run_options opt = { .spec_path = spec, .out = devnull, .dry_run = 1 };
            sl_run_result res;
            st = sl_run(&opt, &res, err);
            if (st != SL_OK)
                map_error(sw, c, tree, spec, text, err);
        }
        free(text);
        sl_node_free(tree);
    }
    if (devnull)
        fclose(devnull);
    unlink(spec);
    unlink(log);
    rmdir(dir);
    return st;
}

/* ---- the sweep directory --------------------------------------------------------------------- */

static sl_status join(char *out, size_t size, const char *a, const char *b, const char *c,
                      sl_error *err)
{
    const char *parts[] = { a, b, c };
    if (!path_join(out, size, parts, c ? 3 : 2))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "path too long under '%s'", a);
    return SL_OK;
}

sl_status sl_sweep_prepare_dir(const sl_sweep *sw, const char *dir, char abs_dir[PATH_MAX],
                               sl_error *err)
{
    sl_status st = mkdir_p(dir, err);
    if (st != SL_OK)
        return st;
    if (!realpath(dir, abs_dir))
        return sl_error_set(err, SL_ERR_IO, "cannot resolve '%s': %s", dir, strerror(errno));
    char **texts = calloc(sw->n_cells, sizeof *texts);
    if (!texts)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    /* First every comparison, then every write: a refused directory is left untouched. */
    for (size_t c = 0; c < sw->n_cells && st == SL_OK; c++) {
        char name[32], log[PATH_MAX], spec[PATH_MAX];
        sl_sweep_cell_name(c, name, sizeof name);
        if ((st = join(log, sizeof log, abs_dir, name, SL_CELL_LOG_FILE, err)) != SL_OK ||
            (st = join(spec, sizeof spec, abs_dir, name, SL_CELL_SPEC_FILE, err)) != SL_OK ||
            (st = sl_sweep_cell_spec(sw, c, log, &texts[c], err)) != SL_OK)
            break;
        char *old = read_file(spec, NULL);
        if (old && strcmp(old, texts[c]) != 0)
            st = sl_error_set(err, SL_ERR_INVALID_ARG,
                              "'%s' holds another sweep (%s differs from this sweep's %s); "
                              "choose another --out or remove the directory",
                              dir, spec, name);
        free(old);
    }
    for (size_t c = 0; c < sw->n_cells && st == SL_OK; c++) {
        char name[32], cdir[PATH_MAX], spec[PATH_MAX];
        sl_sweep_cell_name(c, name, sizeof name);
        if ((st = join(cdir, sizeof cdir, abs_dir, name, NULL, err)) != SL_OK ||
            (st = join(spec, sizeof spec, abs_dir, name, SL_CELL_SPEC_FILE, err)) != SL_OK ||
            (st = mkdir_p(cdir, err)) != SL_OK)
            break;
        st = write_file_atomic(spec, texts[c], strlen(texts[c]), err);
    }
    if (st == SL_OK) {
        char path[PATH_MAX];
        sl_strbuf b;
        sl_strbuf_init(&b);
        sl_strbuf_printf(&b, "# sweep %s: %s with the command-line overrides applied "
                             "(written by steinlab sweep)\n%s", sw->name, sw->abs_spec_path,
                         sw->doc_yaml);
        char *text = sl_strbuf_take(&b);
        st = text ? join(path, sizeof path, abs_dir, SL_SWEEP_SPEC_FILE, NULL, err)
                  : sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        if (st == SL_OK)
            st = write_file_atomic(path, text, strlen(text), err);
        free(text);
    }
    for (size_t c = 0; c < sw->n_cells; c++)
        free(texts[c]);
    free(texts);
    return st;
}

/* ---- cell states ------------------------------------------------------------------------------ */

/* Rows of /steps/step == the `steps` attribute. SWMR read first: a killed writer leaves the
 * file flagged as open for SWMR writing, which only a SWMR reader may open. */
static bool log_complete(const char *log_path)
{
    struct stat s;
    if (stat(log_path, &s) != 0)
        return false;
    H5E_auto2_t fn;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    bool done = false;
    hid_t f = H5Fopen(log_path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT);
    if (f < 0)
        f = H5Fopen(log_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f >= 0) {
        long long steps = -1;
        hid_t a = H5Aopen_by_name(f, "/", "steps", H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) {
            if (H5Aread(a, H5T_NATIVE_LLONG, &steps) < 0)
                steps = -1;
            H5Aclose(a);
        }
        hid_t d = H5Dopen2(f, "/steps/step", H5P_DEFAULT);
        if (d >= 0) {
            hid_t sp = H5Dget_space(d);
            hsize_t dims[1] = { 0 };
            if (sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 &&
                H5Sget_simple_extent_dims(sp, dims, NULL) == 1)
                done = steps > 0 && (long long)dims[0] == steps;
            if (sp >= 0)
                H5Sclose(sp);
            H5Dclose(d);
        }
        H5Fclose(f);
    }
    H5Eset_auto2(H5E_DEFAULT, fn, data);
    return done;
}

static int read_exit(const char *cell_dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", cell_dir, SL_CELL_STATUS_FILE) >= (int)sizeof path)
        return -1;
    char *s = read_file(path, NULL);
    if (!s)
        return -1;
    char *end;
    long v = strtol(s, &end, 10);
    bool ok = end != s && (*end == '\n' || *end == '\0') && v >= 0 && v < 256;
    free(s);
    return ok ? (int)v : -1;
}

sl_cell_state sl_sweep_cell_state(const char *cell_dir, int *exit_status)
{
    char log[PATH_MAX], ckpt[PATH_MAX];
    int code = read_exit(cell_dir);
    if (exit_status)
        *exit_status = code;
    snprintf(log, sizeof log, "%s/%s", cell_dir, SL_CELL_LOG_FILE);
    snprintf(ckpt, sizeof ckpt, "%s/%s", cell_dir, SL_CELL_CKPT_FILE);
    if (code == 0 && log_complete(log))
        return SL_CELL_DONE;
    struct stat s;
    if (stat(ckpt, &s) == 0 && stat(log, &s) == 0)
        return SL_CELL_RESUME;
    return SL_CELL_TODO;
}

sl_status sl_sweep_record_exit(const char *cell_dir, int exit_code, sl_error *err)
{
    char path[PATH_MAX], text[16];
    if (snprintf(path, sizeof path, "%s/%s", cell_dir, SL_CELL_STATUS_FILE) >= (int)sizeof path)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "path too long under '%s'", cell_dir);
    int n = snprintf(text, sizeof text, "%d\n", exit_code);
    return write_file_atomic(path, text, (size_t)n, err);
}

void sl_sweep_clear_exit(const char *cell_dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", cell_dir, SL_CELL_STATUS_FILE) < (int)sizeof path)
        unlink(path);
}

/* ---- the index -------------------------------------------------------------------------------- */

typedef enum value_type { V_INT, V_FLOAT, V_STRING } value_type;

/* One dtype per swept key, so the table's column has one: integers when every value is an
 * integer, numbers when every value is a number, else text. */
static value_type axis_type(const axis *ax)
{
    value_type t = V_INT;
    for (size_t i = 0; i < ax->values->n; i++) {
        const sl_node *v = ax->values->items[i];
        bool is_int = false;
        if (v->kind != SL_NODE_SCALAR || v->quoted || !is_number(v->text, &is_int))
            return V_STRING;
        if (!is_int)
            t = V_FLOAT;
    }
    return t;
}

static hid_t vlen_str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static bool attr_write(hid_t obj, const char *name, hid_t mem_type, const void *buf)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t ft = mem_type == H5T_NATIVE_LLONG ? H5T_STD_I64LE
             : mem_type == H5T_NATIVE_DOUBLE ? H5T_IEEE_F64LE : mem_type;
    hid_t a = sp >= 0 ? H5Acreate2(obj, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    bool ok = a >= 0 && H5Awrite(a, mem_type, buf) >= 0;
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    return ok;
}

static bool attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = vlen_str_type();
    bool ok = t >= 0 && attr_write(obj, name, t, &value);
    if (t >= 0)
        H5Tclose(t);
    return ok;
}

static bool attr_i64(hid_t obj, const char *name, long long v)
{
    return attr_write(obj, name, H5T_NATIVE_LLONG, &v);
}

static bool dataset_1d(hid_t loc, const char *name, hid_t mem_type, size_t n, const void *buf,
                       const char *doc)
{
    hsize_t dims[1] = { n };
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t ft = mem_type == H5T_NATIVE_LLONG ? H5T_STD_I64LE
             : mem_type == H5T_NATIVE_DOUBLE ? H5T_IEEE_F64LE : mem_type;
    hid_t d = sp >= 0 ? H5Dcreate2(loc, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    bool ok = d >= 0 && H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0 &&
              attr_str(d, "doc", doc);
    if (d >= 0)
        H5Dclose(d);
    if (sp >= 0)
        H5Sclose(sp);
    return ok;
}

static bool write_index_body(const sl_sweep *sw, hid_t f, const char *abs_dir)
{
    size_t n = sw->n_cells;
    bool ok = true;
    char created[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%S%z", localtime_r(&now, &tm));
    ok = ok && attr_str(f, "format", "steinlab-sweep-index") && attr_i64(f, "format_version", 1) &&
         attr_str(f, "steinlab_version", sl_version()) && attr_str(f, "name", sw->name) &&
         attr_str(f, "spec_path", sw->abs_spec_path) && attr_str(f, "spec", sw->doc_yaml) &&
         attr_i64(f, "n_cells", (long long)n) && attr_str(f, "created", created);
    /* The swept keys, as an array of strings. */
    {
        hid_t t = vlen_str_type();
        hsize_t dims[1] = { sw->n_axes };
        hid_t sp = sw->n_axes ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_NULL);
        const char **keys = calloc(sw->n_axes + 1, sizeof *keys);
        for (size_t a = 0; keys && a < sw->n_axes; a++)
            keys[a] = sw->axes[a].key;
        hid_t at = t >= 0 && sp >= 0 ? H5Acreate2(f, "keys", t, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
        ok = ok && keys && at >= 0 && (sw->n_axes == 0 || H5Awrite(at, t, keys) >= 0);
        free(keys);
        if (at >= 0)
            H5Aclose(at);
        if (sp >= 0)
            H5Sclose(sp);
        if (t >= 0)
            H5Tclose(t);
    }
    hid_t cells = H5Gcreate2(f, "cells", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t values = H5Gcreate2(f, "values", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t table = H5Gcreate2(f, "table", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ok = ok && cells >= 0 && values >= 0 && table >= 0;
    char **names = calloc(n, sizeof *names);
    long long *codes = calloc(n, sizeof *codes);
    ok = ok && names && codes;
    for (size_t c = 0; ok && c < n; c++) {
        char name[32], target[64], spec[64], cdir[PATH_MAX];
        sl_sweep_cell_name(c, name, sizeof name);
        names[c] = strdup(name);
        snprintf(target, sizeof target, "%s/%s", name, SL_CELL_LOG_FILE);
        snprintf(spec, sizeof spec, "%s/%s", name, SL_CELL_SPEC_FILE);
        snprintf(cdir, sizeof cdir, "%s/%s", abs_dir, name);
        int code = -1;
        (void)sl_sweep_cell_state(cdir, &code);
        codes[c] = code;
        /* A relative target: HDF5 looks for it beside the index first, so the sweep
         * directory can be moved or copied as a whole. */
        ok = names[c] && H5Lcreate_external(target, "/", cells, name, H5P_DEFAULT, H5P_DEFAULT) >= 0;
        hid_t g = ok ? H5Gcreate2(values, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
        ok = ok && g >= 0 && attr_i64(g, "cell", (long long)c) && attr_str(g, "spec", spec) &&
             attr_str(g, "log", target) && attr_i64(g, "exit_status", code);
        for (size_t a = 0; ok && a < sw->n_axes; a++) {
            const sl_node *v = sl_sweep_value(sw, c, a);
            switch (axis_type(&sw->axes[a])) {
            case V_INT: ok = attr_i64(g, sw->axes[a].key, strtoll(v->text, NULL, 10)); break;
            case V_FLOAT: {
                double x = strtod(v->text, NULL);
                ok = attr_write(g, sw->axes[a].key, H5T_NATIVE_DOUBLE, &x);
                break;
            }
            case V_STRING: {
                char *s = flow_text(v);
                ok = s && attr_str(g, sw->axes[a].key, s);
                free(s);
                break;
            }
            }
        }
        if (g >= 0)
            H5Gclose(g);
    }
    if (ok) {
        hid_t t = vlen_str_type();
        ok = t >= 0 && dataset_1d(table, "cell", t, n, names, "cell name (cell-NNNN), one row per cell") &&
             dataset_1d(table, "exit_status", H5T_NATIVE_LLONG, n, codes,
                        "the cell's recorded exit code when the index was written (-1: none "
                        "recorded: not run yet, running or killed)");
        for (size_t a = 0; ok && a < sw->n_axes; a++) {
            char doc[600];
            snprintf(doc, sizeof doc, "swept value of %s, one row per cell", sw->axes[a].key);
            value_type vt = axis_type(&sw->axes[a]);
            if (vt == V_STRING) {
                char **s = calloc(n, sizeof *s);
                ok = s != NULL;
                for (size_t c = 0; ok && c < n; c++)
                    ok = (s[c] = flow_text(sl_sweep_value(sw, c, a))) != NULL;
                ok = ok && dataset_1d(table, sw->axes[a].key, t, n, s, doc);
                for (size_t c = 0; s && c < n; c++)
                    free(s[c]);
                free(s);
            } else {
                double *x = calloc(n, sizeof *x);
                long long *k = calloc(n, sizeof *k);
                ok = x && k;
                for (size_t c = 0; ok && c < n; c++) {
                    const char *text = sl_sweep_value(sw, c, a)->text;
                    x[c] = strtod(text, NULL);
                    k[c] = strtoll(text, NULL, 10);
                }
                ok = ok && (vt == V_INT ? dataset_1d(table, sw->axes[a].key, H5T_NATIVE_LLONG, n, k, doc)
                                        : dataset_1d(table, sw->axes[a].key, H5T_NATIVE_DOUBLE, n, x, doc));
                free(x);
                free(k);
            }
        }
        if (t >= 0)
            H5Tclose(t);
    }
    for (size_t c = 0; names && c < n; c++)
        free(names[c]);
    free(names);
    free(codes);
    if (cells >= 0)
        H5Gclose(cells);
    if (values >= 0)
        H5Gclose(values);
    if (table >= 0)
        H5Gclose(table);
    return ok;
}

sl_status sl_sweep_write_index(const sl_sweep *sw, const char *abs_dir, char *index_path,
                               size_t size, sl_error *err)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    sl_status st = join(path, sizeof path, abs_dir, SL_SWEEP_INDEX_FILE, NULL, err);
    if (st == SL_OK)
        st = join(tmp, sizeof tmp, abs_dir, SL_SWEEP_INDEX_FILE ".tmp", NULL, err);
    if (st != SL_OK)
        return st;
    H5E_auto2_t fn;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = f >= 0 && write_index_body(sw, f, abs_dir);
    if (f >= 0)
        ok = H5Fclose(f) >= 0 && ok;
    H5Eset_auto2(H5E_DEFAULT, fn, data);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return sl_error_set(err, SL_ERR_IO, "cannot write the sweep index '%s'", path);
    }
    if (index_path)
        snprintf(index_path, size, "%s", path);
    return SL_OK;
}

/* ---- Slurm ------------------------------------------------------------------------------------ */

/* A shell word in single quotes ('it'\''s'). */
static void shell_quote(sl_strbuf *b, const char *s)
{
    sl_strbuf_puts(b, "'");
    for (; *s; s++) {
        if (*s == '\'')
            sl_strbuf_puts(b, "'\\''");
        else
            sl_strbuf_putn(b, s, 1);
    }
    sl_strbuf_puts(b, "'");
}

/* #SBATCH lines are not parsed by a shell: they may hold no spaces or newlines. */
static sl_status sbatch_word(const char *what, const char *v, sl_error *err)
{
    for (const char *p = v; *p; p++)
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\'' || *p == '"')
            return sl_error_set(err, SL_ERR_INVALID_ARG, "--%s: expected a value without "
                                                         "spaces or quotes, found '%s'", what, v);
    return SL_OK;
}

sl_status sl_sweep_write_slurm(const sl_sweep *sw, const char *abs_dir,
                               const sl_slurm_options *opt, const size_t *cells, size_t n,
                               char *script_path, size_t size, sl_error *err)
{
    const char *checked[][2] = { { "partition", opt->partition }, { "time", opt->time },
                                 { "mem", opt->mem } };
    for (size_t i = 0; i < 3; i++) {
        sl_status st = checked[i][1] ? sbatch_word(checked[i][0], checked[i][1], err) : SL_OK;
        if (st != SL_OK)
            return st;
    }
    if (sbatch_word("out", abs_dir, err) != SL_OK)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "a Slurm sweep directory may not contain "
                                                     "spaces or quotes: '%s'", abs_dir);
    int threads = opt->cpus_per_task > 0 ? opt->cpus_per_task : 1;
    char job[64];
    size_t j = 0;
    for (const char *p = sw->name; *p && j + 1 < sizeof job; p++)
        job[j++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                   *p == '-' || *p == '_' || *p == '.' ? *p : '_';
    job[j] = '\0';
    sl_strbuf b;
    sl_strbuf_init(&b);
    sl_strbuf_printf(&b, "#!/bin/bash\n"
                         "# steinlab sweep %s: one Slurm array task per unfinished cell.\n"
                         "# Written by 'steinlab sweep --slurm'; submit with: sbatch %s/%s\n"
                         "# Each task runs (or, with a checkpoint, resumes) SWEEPDIR/cell-NNNN\n"
                         "# with its output in the cell directory, and records its exit code\n"
                         "# there as the local runner does, so 'steinlab sweep' and the index\n"
                         "# see the same states.\n",
                     sw->name, abs_dir, SL_SWEEP_SLURM_FILE);
    sl_strbuf_printf(&b, "#SBATCH --job-name=steinlab-%s\n", job);
    sl_strbuf_puts(&b, "#SBATCH --array=");
    /* Ranges keep the line short for large grids: 0-3,7,9-12. */
    for (size_t i = 0; i < n;) {
        size_t k = i;
        while (k + 1 < n && cells[k + 1] == cells[k] + 1)
            k++;
        sl_strbuf_printf(&b, "%s%zu", i ? "," : "", cells[i]);
        if (k > i)
            sl_strbuf_printf(&b, "-%zu", cells[k]);
        i = k + 1;
    }
    if (opt->max_parallel > 0)
        sl_strbuf_printf(&b, "%%%d", opt->max_parallel);
    sl_strbuf_printf(&b, "\n#SBATCH --cpus-per-task=%d\n", threads);
    sl_strbuf_puts(&b, "#SBATCH --ntasks=1\n");
    if (opt->partition)
        sl_strbuf_printf(&b, "#SBATCH --partition=%s\n", opt->partition);
    if (opt->time)
        sl_strbuf_printf(&b, "#SBATCH --time=%s\n", opt->time);
    if (opt->mem)
        sl_strbuf_printf(&b, "#SBATCH --mem=%s\n", opt->mem);
    sl_strbuf_printf(&b, "#SBATCH --output=%s/slurm-%%A_%%a.out\n", abs_dir);
    sl_strbuf_puts(&b, "set -u\nSTEINLAB=");
    shell_quote(&b, opt->steinlab_exe);
    sl_strbuf_puts(&b, "\nSWEEPDIR=");
    shell_quote(&b, abs_dir);
    sl_strbuf_printf(&b,
        "\ncell=$(printf '%%s/cell-%%04d' \"$SWEEPDIR\" \"$SLURM_ARRAY_TASK_ID\")\n"
        "echo \"steinlab sweep task $SLURM_ARRAY_TASK_ID on $(hostname): $cell\"\n"
        "rm -f \"$cell/%s\"\n"
        "if [ -f \"$cell/%s\" ] && [ -f \"$cell/%s\" ]; then\n"
        "    \"$STEINLAB\" run --resume \"$cell/%s\" --threads %d >\"$cell/%s\" 2>\"$cell/%s\"\n"
        "else\n"
        "    \"$STEINLAB\" run \"$cell/%s\" --threads %d >\"$cell/%s\" 2>\"$cell/%s\"\n"
        "fi\n"
        "rc=$?\n"
        "echo \"$rc\" >\"$cell/%s.tmp\" && mv -f \"$cell/%s.tmp\" \"$cell/%s\"\n"
        "echo \"exit status $rc\"\n"
        "exit \"$rc\"\n",
        SL_CELL_STATUS_FILE, SL_CELL_CKPT_FILE, SL_CELL_LOG_FILE, SL_CELL_LOG_FILE, threads,
        SL_CELL_STDOUT_FILE, SL_CELL_STDERR_FILE, SL_CELL_SPEC_FILE, threads, SL_CELL_STDOUT_FILE,
        SL_CELL_STDERR_FILE, SL_CELL_STATUS_FILE, SL_CELL_STATUS_FILE, SL_CELL_STATUS_FILE);
    char *text = sl_strbuf_take(&b);
    if (!text)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    char path[PATH_MAX];
    sl_status st = join(path, sizeof path, abs_dir, SL_SWEEP_SLURM_FILE, NULL, err);
    if (st == SL_OK)
        st = write_file_atomic(path, text, strlen(text), err);
    free(text);
    if (st == SL_OK && chmod(path, 0755) != 0)
        st = sl_error_set(err, SL_ERR_IO, "cannot make '%s' executable: %s", path, strerror(errno));
    if (st == SL_OK && script_path)
        snprintf(script_path, size, "%s", path);
    return st;
}

/* ---- the driver's check ----------------------------------------------------------------------- */

sl_status sl_sweep_refuse_in_run(const sl_node *spec, const char *spec_path, sl_error *err)
{
    if (!spec || spec->kind != SL_NODE_MAP)
        return SL_OK;
    for (size_t i = 0; i < spec->n; i++)
        if (!strcmp(spec->keys[i]->text, "sweep"))
            return sl_spec_error_at(err, spec->keys[i], "sweep",
                                    "expected one run's spec, found a sweep block: run the "
                                    "grid with 'steinlab sweep %s', or one cell with "
                                    "'steinlab run SWEEPDIR/cell-NNNN/spec.yaml'",
                                    spec_path ? spec_path : "SPEC.yaml");
    return SL_OK;
}
