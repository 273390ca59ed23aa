/* core/spec.c — YAML specs into sl_node trees, command-line overrides, and YAML output.
 *
 * The tree is built from libyaml's event stream (not its document API) so that every node
 * keeps the line and column it started at. Specs are plain data: anchors, aliases and
 * explicit tags are rejected instead of being resolved, so what a reader sees in the file
 * is exactly what runs. Interpreting scalars (int, float, bool, ...) is left to the
 * validator in params.c; here a scalar is its text plus whether it was quoted.
 *
 * Ownership: every node is one allocation that carries its own copy of the file label
 * right after the struct, so sub-trees can be moved between trees (overrides) and freed
 * with plain free(); `text`, `items` and `keys` are separate allocations. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "spec.h"
#include "strbuf.h"

#define CMDLINE_LABEL "<command line>"

/* Deeper nesting than this is certainly not a spec; the limit keeps the recursive
 * builder, emitter and free safe on hostile input. */
enum { MAX_DEPTH = 64 };

/* ---------------------------------------------------------------------------------- */
/* Nodes                                                                               */

static sl_node *node_new(sl_node_kind kind, const char *file, int line, int col)
{
    size_t flen = strlen(file) + 1;
    sl_node *n = calloc(1, sizeof *n + flen);
    if (!n)
        return NULL;
    char *label = (char *)(n + 1);
    memcpy(label, file, flen);
    n->kind = kind;
    n->file = label;
    n->line = line;
    n->col = col;
    return n;
}

static sl_node *scalar_new(const char *file, int line, int col, const char *text, size_t len,
                           bool quoted)
{
    sl_node *n = node_new(SL_NODE_SCALAR, file, line, col);
    if (!n)
        return NULL;
    n->text = malloc(len + 1);
    if (!n->text) {
        free(n);
        return NULL;
    }
    memcpy(n->text, text, len);
    n->text[len] = '\0';
    n->quoted = quoted;
    return n;
}

void sl_node_free(sl_node *node)
{
    if (!node)
        return;
    for (size_t i = 0; i < node->n; i++) {
        if (node->items)
            sl_node_free(node->items[i]);
        if (node->keys)
            sl_node_free(node->keys[i]);
    }
    free(node->items);
    free(node->keys);
    free(node->text);
    free(node);
}

/* Appends (key, value) to a MAP or value to a SEQ (key NULL). The arrays grow to the next
 * power of two, so appending n entries costs O(n). Takes ownership only on success. */
static bool node_append(sl_node *parent, sl_node *key, sl_node *value)
{
    size_t n = parent->n;
    if (n == 0 || (n & (n - 1)) == 0) {
        size_t cap = n < 4 ? 4 : 2 * n;
        sl_node **items = realloc(parent->items, cap * sizeof *items);
        if (!items)
            return false;
        parent->items = items;
        if (parent->kind == SL_NODE_MAP) {
            sl_node **keys = realloc(parent->keys, cap * sizeof *keys);
            if (!keys)
                return false;
            parent->keys = keys;
        }
    }
    parent->items[n] = value;
    if (parent->kind == SL_NODE_MAP)
        parent->keys[n] = key;
    parent->n = n + 1;
    return true;
}

sl_node *sl_node_clone(const sl_node *node)
{
    if (!node)
        return NULL;
    sl_node *c = node->kind == SL_NODE_SCALAR
                     ? scalar_new(node->file, node->line, node->col, node->text,
                                  strlen(node->text), node->quoted)
                     : node_new(node->kind, node->file, node->line, node->col);
    if (!c)
        return NULL;
    for (size_t i = 0; i < node->n; i++) {
        sl_node *k = node->kind == SL_NODE_MAP ? sl_node_clone(node->keys[i]) : NULL;
        sl_node *v = sl_node_clone(node->items[i]);
        bool key_ok = node->kind != SL_NODE_MAP || k;
        if (!v || !key_ok || !node_append(c, k, v)) {
            sl_node_free(k);
            sl_node_free(v);
            sl_node_free(c);
            return NULL;
        }
    }
    return c;
}

sl_node *sl_node_get(const sl_node *map, const char *key)
{
    if (!map || map->kind != SL_NODE_MAP || !key)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->text, key) == 0)
            return map->items[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Errors                                                                              */

/* strcat that truncates at the buffer's end (dst is NUL-terminated within size). */
static void append(char *dst, size_t size, const char *src)
{
    size_t used = strlen(dst);
    size_t n = strlen(src);
    if (n > size - 1 - used)
        n = size - 1 - used;
    memcpy(dst + used, src, n);
    dst[used + n] = '\0';
}

sl_status sl_spec_error_at(sl_error *err, const sl_node *node, const char *key_path,
                           const char *fmt, ...)
{
    if (!err)
        return SL_ERR_SPEC;
    char msg[SL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *file = node ? node->file : "<spec>";
    int line = node ? node->line : 0, col = node ? node->col : 0;
    /* An empty key path (the document itself) leaves the key out rather than printing
     * an empty "FILE:L:C: : ..." field. */
    snprintf(err->msg, sizeof err->msg, "%s:%d:%d: ", file, line, col);
    if (key_path && key_path[0]) {
        append(err->msg, sizeof err->msg, key_path);
        append(err->msg, sizeof err->msg, ": ");
    }
    append(err->msg, sizeof err->msg, msg);
    /* Messages are one line even when they quote a multi-line value. */
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return SL_ERR_SPEC;
}

/* "base.key", or "key" at the root; malloc'd. */
static char *path_key(const char *base, const char *key)
{
    size_t n = strlen(base) + strlen(key) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", base, base[0] ? "." : "", key);
    return p;
}

/* "base[i]"; malloc'd. */
static char *path_index(const char *base, size_t i)
{
    size_t n = strlen(base) + 24;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s[%zu]", base, i);
    return p;
}

/* ---------------------------------------------------------------------------------- */
/* Parsing                                                                             */

typedef struct parse_ctx {
    yaml_parser_t parser;
    const char *file;
    const unsigned char *text;  /* (len,) the input, to place reader errors */
    size_t len;
    int col_offset;  /* added to columns on line 1 (an override's value inside its argument) */
    sl_error *err;
} parse_ctx;

/* The mark of byte `offset`, counting characters (not bytes) for the column as libyaml
 * does. */
static yaml_mark_t mark_of_offset(const parse_ctx *ctx, size_t offset)
{
    yaml_mark_t m = { 0 };
    size_t end = offset < ctx->len ? offset : ctx->len;
    for (size_t i = 0; i < end; i++) {
        if (ctx->text[i] == '\n') {
            m.line++;
            m.column = 0;
        } else if ((ctx->text[i] & 0xC0) != 0x80) {
            m.column++;
        }
    }
    m.index = end;
    return m;
}

static void mark_pos(const parse_ctx *ctx, yaml_mark_t m, int *line, int *col)
{
    /* At the end of input libyaml pretends a final line break; without a real one that
     * points at a line that does not exist (line 2 of a command-line value), so point
     * just past the last character instead. */
    if (m.index >= ctx->len && ctx->len > 0 && ctx->text[ctx->len - 1] != '\n')
        m = mark_of_offset(ctx, ctx->len);
    *line = (int)m.line + 1;
    *col = (int)m.column + 1 + (m.line == 0 ? ctx->col_offset : 0);
}

/* An error at a position that is not a node yet (libyaml marks). */
static sl_status error_at_mark(parse_ctx *ctx, yaml_mark_t m, const char *key_path,
                               const char *what)
{
    sl_node where = { .file = ctx->file };
    mark_pos(ctx, m, &where.line, &where.col);
    return sl_spec_error_at(ctx->err, &where, key_path, "%s", what);
}

/* Turns a failed yaml_parser_parse into our error. Reader errors (bad encoding) carry a
 * byte offset instead of a mark, so the line and column are counted here. */
static sl_status syntax_error(parse_ctx *ctx)
{
    yaml_parser_t *p = &ctx->parser;
    if (p->error == YAML_MEMORY_ERROR)
        return sl_error_set(ctx->err, SL_ERR_NOMEM, "%s: out of memory parsing YAML", ctx->file);
    yaml_mark_t m = p->error == YAML_READER_ERROR ? mark_of_offset(ctx, p->problem_offset)
                                                  : p->problem_mark;
    char what[SL_ERR_MSG_MAX];
    snprintf(what, sizeof what, "YAML syntax error: %s", p->problem ? p->problem : "unknown");
    return error_at_mark(ctx, m, "", what);
}

static sl_status next_event(parse_ctx *ctx, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&ctx->parser, ev))
        return syntax_error(ctx);
    return SL_OK;
}

/* Anchors, aliases and tags: rejected with the reason, at the node's position. */
static sl_status check_plain_data(parse_ctx *ctx, const yaml_event_t *ev, const char *path)
{
    const yaml_char_t *anchor = NULL, *tag = NULL;
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        char what[300];
        snprintf(what, sizeof what,
                 "aliases are not allowed (specs are plain data), found '*%.200s'",
                 (const char *)ev->data.alias.anchor);
        return error_at_mark(ctx, ev->start_mark, path, what);
    }
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
        break;
    default:
        return SL_OK;
    }
    char what[300];
    if (anchor) {
        snprintf(what, sizeof what,
                 "anchors are not allowed (specs are plain data), found '&%.200s'",
                 (const char *)anchor);
        return error_at_mark(ctx, ev->start_mark, path, what);
    }
    if (tag) {
        snprintf(what, sizeof what,
                 "tags are not allowed (specs are plain data), found '%.200s'",
                 (const char *)tag);
        return error_at_mark(ctx, ev->start_mark, path, what);
    }
    return SL_OK;
}

static sl_status build_node(parse_ctx *ctx, yaml_event_t *ev, const char *path, int depth,
                            sl_node **out);

static sl_status build_seq(parse_ctx *ctx, sl_node *seq, const char *path, int depth)
{
    for (;;) {
        yaml_event_t ev;
        sl_status st = next_event(ctx, &ev);
        if (st)
            return st;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return SL_OK;
        }
        char *item_path = path_index(path, seq->n);
        sl_node *item = NULL;
        st = item_path ? build_node(ctx, &ev, item_path, depth + 1, &item)
                       : sl_error_set(ctx->err, SL_ERR_NOMEM, "out of memory");
        free(item_path);
        yaml_event_delete(&ev);
        if (st)
            return st;
        if (!node_append(seq, NULL, item)) {
            sl_node_free(item);
            return sl_error_set(ctx->err, SL_ERR_NOMEM, "out of memory");
        }
    }
}

/* Reads one key of a mapping (the event is already fetched): a scalar, not seen before. */
static sl_status build_key(parse_ctx *ctx, const sl_node *map, yaml_event_t *ev,
                           const char *path, sl_node **out)
{
    sl_status st = check_plain_data(ctx, ev, path);
    if (st)
        return st;
    if (ev->type != YAML_SCALAR_EVENT)
        return error_at_mark(ctx, ev->start_mark, path,
                             ev->type == YAML_MAPPING_START_EVENT
                                 ? "expected a scalar key, found a map"
                                 : "expected a scalar key, found a list");
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (memchr(text, '\0', len))
        return error_at_mark(ctx, ev->start_mark, path,
                             "expected a key without NUL characters, found one");
    int line, col;
    mark_pos(ctx, ev->start_mark, &line, &col);
    sl_node *key = scalar_new(ctx->file, line, col, text, len,
                              ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE);
    if (!key)
        return sl_error_set(ctx->err, SL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < map->n; i++) {
        const sl_node *prev = map->keys[i];
        if (strcmp(prev->text, key->text) == 0) {
            char *dotted = path_key(path, key->text);
            st = sl_spec_error_at(ctx->err, key, dotted ? dotted : path,
                                  "duplicate key (first given at line %d, column %d)",
                                  prev->line, prev->col);
            free(dotted);
            sl_node_free(key);
            return st;
        }
    }
    *out = key;
    return SL_OK;
}

static sl_status build_map(parse_ctx *ctx, sl_node *map, const char *path, int depth)
{
    for (;;) {
        yaml_event_t ev;
        sl_status st = next_event(ctx, &ev);
        if (st)
            return st;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return SL_OK;
        }
        sl_node *key = NULL, *value = NULL;
        char *value_path = NULL;
        st = build_key(ctx, map, &ev, path, &key);
        yaml_event_delete(&ev);
        if (st)
            return st;
        value_path = path_key(path, key->text);
        if (!value_path) {
            st = sl_error_set(ctx->err, SL_ERR_NOMEM, "out of memory");
            goto fail;
        }
        st = next_event(ctx, &ev);
        if (st)
            goto fail;
        st = build_node(ctx, &ev, value_path, depth + 1, &value);
        yaml_event_delete(&ev);
        if (st)
            goto fail;
        if (!node_append(map, key, value)) {
            st = sl_error_set(ctx->err, SL_ERR_NOMEM, "out of memory");
            goto fail;
        }
        free(value_path);
        continue;
    fail:
        free(value_path);
        sl_node_free(key);
        sl_node_free(value);
        return st;
    }
}

/* Builds the node that starts with `ev` (a scalar, sequence start or mapping start),
 * consuming events up to its end. `path` is its dotted key, for messages. */
static sl_status build_node(parse_ctx *ctx, yaml_event_t *ev, const char *path, int depth,
                            sl_node **out)
{
    sl_status st = check_plain_data(ctx, ev, path);
    if (st)
        return st;
    if (depth > MAX_DEPTH) {
        char what[64];
        snprintf(what, sizeof what, "expected at most %d levels of nesting, found more",
                 MAX_DEPTH);
        return error_at_mark(ctx, ev->start_mark, path, what);
    }
    int line, col;
    mark_pos(ctx, ev->start_mark, &line, &col);
    if (ev->type == YAML_SCALAR_EVENT) {
        const char *text = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        /* Node text is NUL-terminated; an embedded NUL (a "\0" escape) would be cut. */
        if (memchr(text, '\0', len))
            return error_at_mark(ctx, ev->start_mark, path,
                                 "expected a string without NUL characters, found one");
        *out = scalar_new(ctx->file, line, col, text, len,
                          ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE);
        return *out ? SL_OK : sl_error_set(ctx->err, SL_ERR_NOMEM, "out of memory");
    }
    bool is_map = ev->type == YAML_MAPPING_START_EVENT;
    if (!is_map && ev->type != YAML_SEQUENCE_START_EVENT)  /* libyaml guarantees this */
        return error_at_mark(ctx, ev->start_mark, path, "unexpected YAML event");
    sl_node *n = node_new(is_map ? SL_NODE_MAP : SL_NODE_SEQ, ctx->file, line, col);
    if (!n)
        return sl_error_set(ctx->err, SL_ERR_NOMEM, "out of memory");
    st = is_map ? build_map(ctx, n, path, depth) : build_seq(ctx, n, path, depth);
    if (st) {
        sl_node_free(n);
        return st;
    }
    *out = n;
    return SL_OK;
}

/* Parses one YAML document. With no document at all, *root is NULL and SL_OK is
 * returned; the callers decide what that means (an empty map for a spec, an empty
 * scalar for an override value). */
static sl_status parse_document(parse_ctx *ctx, const char *root_path, sl_node **root)
{
    *root = NULL;
    sl_node *doc = NULL;
    yaml_event_t ev;
    sl_status st;
    bool in_doc = false;
    for (;;) {
        st = next_event(ctx, &ev);
        if (st)
            goto fail;
        yaml_event_type_t type = ev.type;
        if (type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (type == YAML_DOCUMENT_START_EVENT) {
            if (doc) {
                st = error_at_mark(ctx, ev.start_mark, "",
                                   "expected a single YAML document, found a second one");
                yaml_event_delete(&ev);
                goto fail;
            }
            in_doc = true;
        } else if (in_doc && type != YAML_DOCUMENT_END_EVENT) {
            st = build_node(ctx, &ev, root_path, 0, &doc);
            if (st) {
                yaml_event_delete(&ev);
                goto fail;
            }
        }
        yaml_event_delete(&ev);
    }
    *root = doc;
    return SL_OK;
fail:
    sl_node_free(doc);
    return st;
}

static sl_status parse_text(const char *text, size_t len, const char *file, int col_offset,
                            const char *root_path, sl_node **root, sl_error *err)
{
    parse_ctx ctx = { .file = file, .text = (const unsigned char *)text, .len = len,
                      .col_offset = col_offset, .err = err };
    if (!yaml_parser_initialize(&ctx.parser))
        return sl_error_set(err, SL_ERR_NOMEM, "%s: cannot initialize the YAML parser", file);
    yaml_parser_set_input_string(&ctx.parser, (const unsigned char *)text, len);
    sl_status st = parse_document(&ctx, root_path, root);
    yaml_parser_delete(&ctx.parser);
    return st;
}

sl_status sl_spec_parse_string(const char *text, size_t len, const char *file_label,
                               sl_node **root, sl_error *err)
{
    if (!root || (!text && len))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_spec_parse_string: NULL argument");
    *root = NULL;
    const char *file = file_label ? file_label : "<spec>";
    sl_node *doc = NULL;
    sl_status st = parse_text(text ? text : "", len, file, 0, "", &doc, err);
    if (st)
        return st;
    /* An empty document (nothing, only comments, or a bare "---") is an empty spec. */
    if (!doc || (doc->kind == SL_NODE_SCALAR && !doc->quoted && doc->text[0] == '\0')) {
        int line = doc ? doc->line : 1, col = doc ? doc->col : 1;
        sl_node_free(doc);
        doc = node_new(SL_NODE_MAP, file, line, col);
        if (!doc)
            return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    }
    *root = doc;
    return SL_OK;
}

sl_status sl_spec_parse_file(const char *path, sl_node **root, sl_error *err)
{
    if (!path || !root)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_spec_parse_file: NULL argument");
    *root = NULL;
    sl_status st = SL_OK;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sl_error_set(err, SL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            char *grown = realloc(buf, cap);
            if (!grown) {
                st = sl_error_set(err, SL_ERR_NOMEM, "out of memory reading '%s'", path);
                goto cleanup;
            }
            buf = grown;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        st = sl_error_set(err, SL_ERR_IO, "cannot read '%s'", path);
        goto cleanup;
    }
    st = sl_spec_parse_string(buf, len, path, root, err);
cleanup:
    free(buf);
    fclose(f);
    return st;
}

/* ---------------------------------------------------------------------------------- */
/* Overrides                                                                           */

/* Length of the well-formed UTF-8 sequence at s (`left` bytes remain), or 0 when there
 * is none: a stray or missing continuation byte, an overlong form, a surrogate or a code
 * point above U+10FFFF, which libyaml's reader refuses. */
static size_t utf8_valid_len(const unsigned char *s, size_t left)
{
    static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };  /* by length */
    if (s[0] < 0x80)
        return 1;
    size_t n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 0;
    if (n == 0 || n > left || s[0] > 0xF4)  /* 0xF5..0xFF lead nothing valid */
        return 0;
    uint32_t cp = s[0] & (0x7Fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* Finds the entry `key` (len bytes) in a map; returns its index or map->n. */
static size_t map_find(const sl_node *map, const char *key, size_t len)
{
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->keys[i]->text;
        if (strlen(k) == len && memcmp(k, key, len) == 0)
            return i;
    }
    return map->n;
}

static const char *kind_found(const sl_node *n, char *buf, size_t size)
{
    if (n->kind == SL_NODE_MAP)
        return "a map";
    if (n->kind == SL_NODE_SEQ)
        return "a list";
    snprintf(buf, size, "'%.60s'%s", n->text, strlen(n->text) > 60 ? "..." : "");
    return buf;
}

/* Adds key (len bytes, at column col of the argument) -> value to map. Takes value. */
static sl_status map_put(sl_node *map, const char *key, size_t len, int col, sl_node *value,
                         sl_error *err)
{
    size_t i = map_find(map, key, len);
    if (i < map->n) {
        sl_node_free(map->items[i]);
        map->items[i] = value;
        return SL_OK;
    }
    sl_node *k = scalar_new(CMDLINE_LABEL, 1, col, key, len, false);
    if (!k || !node_append(map, k, value)) {
        sl_node_free(k);
        sl_node_free(value);
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    }
    return SL_OK;
}

/* Parses an override's value (text after '='): YAML, positioned at `col` of the argument,
 * named `key` in messages. Nothing after '=' means an empty (null) value, as in YAML
 * "key:". */
static sl_status parse_override_value(const char *text, int col, const char *key,
                                      sl_node **out, sl_error *err)
{
    sl_node *v = NULL;
    sl_status st = parse_text(text, strlen(text), CMDLINE_LABEL, col - 1, key, &v, err);
    if (st)
        return st;
    if (!v)
        v = scalar_new(CMDLINE_LABEL, 1, col, "", 0, false);
    *out = v;
    return v ? SL_OK : sl_error_set(err, SL_ERR_NOMEM, "out of memory");
}

sl_status sl_spec_override(sl_node *root, const char *assignment, sl_error *err)
{
    if (!root || !assignment)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_spec_override: NULL argument");
    sl_node where = { .file = CMDLINE_LABEL, .line = 1, .col = 1 };
    if (root->kind != SL_NODE_MAP)
        return sl_spec_error_at(err, &where, "", "cannot override keys: the spec is not a map");
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return sl_spec_error_at(err, &where, "", "expected KEY=VALUE, found '%.200s'",
                                assignment);
    size_t key_len = (size_t)(eq - assignment);
    if (key_len == 0)
        return sl_spec_error_at(err, &where, "",
                                "expected KEY=VALUE with a non-empty key, found '%.200s'",
                                assignment);
    /* Every dotted segment must be a name: "a..b", ".a" and "a." are typos. */
    for (size_t i = 0; i <= key_len; i++) {
        bool boundary = i == key_len || assignment[i] == '.';
        bool empty = boundary && (i == 0 || assignment[i - 1] == '.');
        if (empty) {
            where.col = (int)i + 1;
            return sl_spec_error_at(err, &where, "",
                                    "expected a dotted key of non-empty names, found '%.*s'",
                                    (int)key_len, assignment);
        }
    }
    /* Keys are stored and later emitted (logged specs) as they are; YAML text must be
     * UTF-8, so bytes that are not would make the logged spec unreadable. The value needs
     * no such check: libyaml parses it. (Found by tests/fuzz/fuzz_override.c.) */
    for (size_t i = 0; i < key_len;) {
        size_t n = utf8_valid_len((const unsigned char *)assignment + i, key_len - i);
        if (n == 0) {
            where.col = (int)i + 1;
            return sl_spec_error_at(err, &where, "",
                                    "expected a key of UTF-8 text, found byte 0x%02X",
                                    (unsigned)(unsigned char)assignment[i]);
        }
        i += n;
    }
    int value_col = (int)key_len + 2;
    sl_node *value = NULL;
    char *key = malloc(key_len + 1);
    if (!key)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    memcpy(key, assignment, key_len);
    key[key_len] = '\0';
    sl_status st = parse_override_value(eq + 1, value_col, key, &value, err);
    free(key);
    if (st)
        return st;
    /* Walk (and create) the maps along the path; the last segment gets the value. */
    sl_node *map = root;
    const char *seg = assignment;
    for (;;) {
        const char *dot = memchr(seg, '.', (size_t)(eq - seg));
        size_t seg_len = (size_t)((dot ? dot : eq) - seg);
        int seg_col = (int)(seg - assignment) + 1;
        if (!dot)
            return map_put(map, seg, seg_len, seg_col, value, err);
        size_t i = map_find(map, seg, seg_len);
        if (i == map->n) {
            sl_node *child = node_new(SL_NODE_MAP, CMDLINE_LABEL, 1, seg_col);
            if (!child) {
                sl_node_free(value);
                return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
            }
            st = map_put(map, seg, seg_len, seg_col, child, err);
            if (st) {
                sl_node_free(value);
                return st;
            }
            i = map->n - 1;
        } else if (map->items[i]->kind != SL_NODE_MAP) {
            char found[80];
            where.col = seg_col;
            st = sl_spec_error_at(err, &where, "",
                                  "%.*s: expected a map to set '%.*s' in, found %s (at %s:%d:%d)",
                                  (int)(dot - assignment), assignment, (int)key_len, assignment,
                                  kind_found(map->items[i], found, sizeof found),
                                  map->items[i]->file, map->items[i]->line, map->items[i]->col);
            sl_node_free(value);
            return st;
        }
        map = map->items[i];
        seg = dot + 1;
    }
}

/* ---------------------------------------------------------------------------------- */
/* Emitting                                                                            */


static void sb_indent(sl_strbuf *b, int n)
{
    for (int i = 0; i < n; i++)
        sl_strbuf_putn(b, " ", 1);
}

/* Decodes one UTF-8 sequence at s; returns its length (1 for a stray byte, *cp = byte). */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 1;
    uint32_t v = n == 4 ? s[0] & 0x07u : n == 3 ? s[0] & 0x0Fu : s[0] & 0x1Fu;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = s[0];
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    *cp = n == 1 ? s[0] : v;
    return n;
}

/* Characters YAML will not carry raw: controls, the Unicode line breaks (which libyaml
 * folds) and the non-characters its reader rejects. These always go out escaped. */
static bool needs_escape(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF;
}

/* Whether text, written plain (unquoted), reads back as the same plain text; `flow`:
 * inside [...] where ",[]{}" (and ':') end a scalar. Conservative: anything doubtful is quoted. */
static bool plain_ok(const char *text, bool flow)
{
    size_t n = strlen(text);
    /* Leading and trailing blanks would be trimmed; ": " starts a value and " #" a
     * comment (a tab counts as a blank for both). */
    if (n == 0 || strchr(" \t:", text[n - 1]))
        return false;
    if (strchr(" \t,[]{}#&*!|>'\"%@`", text[0]))
        return false;
    /* "-", "?" and ":" start a plain scalar when a non-blank follows, except that in
     * flow context "?" and ":" are always indicators. */
    bool blank_next = text[1] == '\0' || text[1] == ' ' || text[1] == '\t';
    if (text[0] == '-' && ((blank_next && !(flow && n == 1)) || strncmp(text, "---", 3) == 0))
        return false;  /* a lone "-" is plain only before a flow "," or "]" */
    if ((text[0] == '?' || text[0] == ':') && (blank_next || flow))
        return false;
    if (strncmp(text, "...", 3) == 0)
        return false;
    /* In flow context libyaml also ends a plain scalar at ':' before "?" or a flow
     * indicator, then rejects the ':': keep every ':' out of flow scalars. */
    if ((flow && strpbrk(text, ",[]{}:")) || strstr(text, ": ") || strstr(text, ":\t") ||
        strstr(text, " #") || strstr(text, "\t#"))
        return false;
    const unsigned char *s = (const unsigned char *)text;
    while (*s) {
        uint32_t cp;
        s += utf8_next(s, &cp);
        if (cp != '\t' && needs_escape(cp))
            return false;
    }
    return true;
}

static void emit_quoted(sl_strbuf *b, const char *text)
{
    sl_strbuf_putn(b, "\"", 1);
    const unsigned char *s = (const unsigned char *)text;
    while (*s) {
        uint32_t cp;
        size_t n = utf8_next(s, &cp);
        char esc[16];
        if (cp == '"' || cp == '\\') {
            snprintf(esc, sizeof esc, "\\%c", (char)cp);
            sl_strbuf_puts(b, esc);
        } else if (cp == '\n') {
            sl_strbuf_puts(b, "\\n");
        } else if (cp == '\t') {
            sl_strbuf_puts(b, "\\t");
        } else if (cp == '\r') {
            sl_strbuf_puts(b, "\\r");
        } else if (needs_escape(cp)) {
            snprintf(esc, sizeof esc, "\\u%04X", (unsigned)cp);
            sl_strbuf_puts(b, esc);
        } else {
            sl_strbuf_putn(b, (const char *)s, n);
        }
        s += n;
    }
    sl_strbuf_putn(b, "\"", 1);
}

/* A scalar as it must be written: quoted scalars stay quoted (so "3" stays a string),
 * plain ones stay plain when that reads back the same, and an empty plain scalar (null)
 * is written as nothing. */
static void emit_scalar(sl_strbuf *b, const sl_node *n, bool flow)
{
    if (!n->quoted && n->text[0] == '\0')
        return;
    if (!n->quoted && plain_ok(n->text, flow))
        sl_strbuf_puts(b, n->text);
    else
        emit_quoted(b, n->text);
}

/* Lists of non-empty scalars go out in flow style ("[0, 0.01, 0.001, 500]"): that is how
 * people write ranges and schedules, and it keeps logged specs short. A plain element
 * that cannot stay plain inside brackets sends the list to block style instead. */
static bool flow_list(const sl_node *n)
{
    if (n->kind != SL_NODE_SEQ || n->n == 0)
        return false;
    for (size_t i = 0; i < n->n; i++) {
        const sl_node *it = n->items[i];
        if (it->kind != SL_NODE_SCALAR)
            return false;
        if (!it->quoted && (it->text[0] == '\0' || !plain_ok(it->text, true)))
            return false;
    }
    return true;
}

static void emit_flow_list(sl_strbuf *b, const sl_node *n)
{
    sl_strbuf_putn(b, "[", 1);
    for (size_t i = 0; i < n->n; i++) {
        if (i)
            sl_strbuf_puts(b, ", ");
        emit_scalar(b, n->items[i], true);
    }
    sl_strbuf_putn(b, "]", 1);
}

static void emit_entries(sl_strbuf *b, const sl_node *n, int indent, bool first_inline);

/* A value after "key:" or "-": on the same line when it is short, else on the next lines
 * indented by two more. */
static void emit_value(sl_strbuf *b, const sl_node *v, int indent)
{
    if (v->kind == SL_NODE_SCALAR) {
        if (v->quoted || v->text[0])
            sl_strbuf_putn(b, " ", 1);
        emit_scalar(b, v, false);
        sl_strbuf_putn(b, "\n", 1);
    } else if (v->n == 0) {
        sl_strbuf_puts(b, v->kind == SL_NODE_MAP ? " {}\n" : " []\n");
    } else if (flow_list(v)) {
        sl_strbuf_putn(b, " ", 1);
        emit_flow_list(b, v);
        sl_strbuf_putn(b, "\n", 1);
    } else if (v->kind == SL_NODE_SEQ) {
        sl_strbuf_putn(b, "\n", 1);
        emit_entries(b, v, indent + 2, false);
    } else {
        sl_strbuf_putn(b, "\n", 1);
        emit_entries(b, v, indent + 2, false);
    }
}

/* The entries of a non-empty MAP or SEQ, one per line at `indent`. With first_inline the
 * first line's indentation was already written (a map inside a list: "- a: 1"). */
static void emit_entries(sl_strbuf *b, const sl_node *n, int indent, bool first_inline)
{
    for (size_t i = 0; i < n->n; i++) {
        if (i > 0 || !first_inline)
            sb_indent(b, indent);
        const sl_node *v = n->items[i];
        if (n->kind == SL_NODE_MAP) {
            const sl_node *k = n->keys[i];
            if (!k->quoted && plain_ok(k->text, false))
                sl_strbuf_puts(b, k->text);
            else
                emit_quoted(b, k->text);
            sl_strbuf_putn(b, ":", 1);
            emit_value(b, v, indent);
        } else if (v->kind == SL_NODE_MAP && v->n > 0) {
            sl_strbuf_puts(b, "- ");
            emit_entries(b, v, indent + 2, true);
        } else {
            sl_strbuf_putn(b, "-", 1);
            emit_value(b, v, indent);
        }
    }
}

char *sl_node_emit_yaml(const sl_node *node)
{
    sl_strbuf b;
    sl_strbuf_init(&b);
    if (!node) {
        sl_strbuf_puts(&b, "{}\n");
    } else if (node->kind == SL_NODE_SCALAR) {
        /* A bare empty document would read back as an empty map, so null is "~" here. */
        if (!node->quoted && node->text[0] == '\0')
            sl_strbuf_puts(&b, "~");
        else
            emit_scalar(&b, node, false);
        sl_strbuf_puts(&b, "\n");
    } else if (node->n == 0) {
        sl_strbuf_puts(&b, node->kind == SL_NODE_MAP ? "{}\n" : "[]\n");
    } else {
        emit_entries(&b, node, 0, false);
    }
    return sl_strbuf_take(&b);
}
