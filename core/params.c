/* core/params.c — validating spec sections against parameter schemas.
 *
 * Scalar semantics (one place decides what a YAML scalar means; see classify()):
 *   - A quoted scalar (or a block literal) is always a string.
 *   - Unquoted: `true` / `false` are bools (only these spellings; `yes`, `True` are
 *     strings); `~`, `null` and the empty scalar are null; an optional sign followed by
 *     digits is an integer (overflow makes it no integer); anything else made of digits,
 *     signs, '.', 'e' and 'E' that strtod reads entirely and finitely is a float (so `1e3`
 *     is a float, `inf`, `nan` and `0x10` are not numbers); the rest are strings.
 *   - FLOAT accepts integers. STRING accepts any scalar's text (`name: 123` is "123",
 *     an empty value is ""), but not maps or lists. CHOICE compares the text.
 *   - A schedule is [start_step, start_value, end_value, end_step]: steps are integers
 *     >= 0 with start_step <= end_step, values are numbers in the parameter's range.
 *
 * Defaults are YAML text in the schema and go through the same validation; a default
 * that fails is a bug in the schema, reported on stderr, and aborts. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"
#include "strbuf.h"

#define SCHEDULE_SHAPE "[start_step, start_value, end_value, end_step]"

typedef struct sl_value {
    bool present;           /* given or defaulted */
    bool b;                 /* BOOL */
    int64_t i;              /* INT */
    sl_schedule sched;      /* FLOAT: a plain number v is {0, v, v, 0} */
    bool is_schedule;       /* FLOAT: given as a 4-list */
    char *s;                /* STRING, CHOICE */
    size_t len;             /* lists: number of elements */
    sl_schedule *fl;        /* FLOAT_LIST: (len,) elements, numbers as constant schedules */
    bool *fl_sched;         /* FLOAT_LIST: (len,) whether element i was a schedule */
    char **sl;              /* STRING_LIST: (len,) */
    sl_params *section;     /* SECTION: the nested parameters */
    sl_node **entries;      /* PLUGIN_LIST: (len,) maps with `plugin:`, owned copies */
    char *yaml;             /* canonical YAML flow text of the value */
} sl_value;

struct sl_params {
    sl_param_schema schema;  /* a copy: callers may pass a compound literal */
    sl_value *values;        /* (schema.count,) in schema order */
    size_t *present;         /* (n_present,) indices of present values, schema order */
    size_t n_present;
};

/* ---------------------------------------------------------------------------------- */
/* Scalars                                                                             */

typedef enum scalar_class { SC_NULL, SC_BOOL, SC_INT, SC_FLOAT, SC_STRING } scalar_class;

/* What a scalar node means (see the file comment). Sets *b, *i or *f for its class. */
static scalar_class classify(const sl_node *n, bool *b, int64_t *i, double *f)
{
    const char *t = n->text;
    if (n->quoted)
        return SC_STRING;
    if (strcmp(t, "true") == 0 || strcmp(t, "false") == 0) {
        *b = t[0] == 't';
        return SC_BOOL;
    }
    if (t[0] == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0)
        return SC_NULL;
    const char *d = t + (t[0] == '+' || t[0] == '-');
    if (*d && strspn(d, "0123456789") == strlen(d)) {
        errno = 0;
        long long v = strtoll(t, NULL, 10);
        if (errno == 0) {
            *i = v;
            return SC_INT;
        }
    }
    if (strspn(t, "0123456789+-.eE") == strlen(t)) {
        char *end;
        errno = 0;
        double v = strtod(t, &end);
        if (*end == '\0' && end != t && isfinite(v) && errno != ERANGE) {
            *f = v;
            return SC_FLOAT;
        }
    }
    return SC_STRING;
}

/* A number (int or float) from a scalar node. */
static bool node_number(const sl_node *n, double *out)
{
    if (n->kind != SL_NODE_SCALAR)
        return false;
    bool b;
    int64_t i;
    double f;
    switch (classify(n, &b, &i, &f)) {
    case SC_INT: *out = (double)i; return true;
    case SC_FLOAT: *out = f; return true;
    default: return false;
    }
}

/* Shortest decimal text that reads back as exactly v: integral values without a
 * fraction ("500"), others with up to 17 significant digits ("0.01", not
 * "0.010000000000000000208"). */
static void fmt_number(double v, char *buf, size_t size)
{
    if (isinf(v)) {
        snprintf(buf, size, "%s", v > 0 ? "inf" : "-inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, size, "%.0f", v == 0 ? 0.0 : v);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* ---------------------------------------------------------------------------------- */
/* Descriptions                                                                        */

/* " in [min, max]", or "" when unbounded both ways. */
static void fmt_range(const sl_param_def *def, char *buf, size_t size)
{
    if (isinf(def->min) && def->min < 0 && isinf(def->max) && def->max > 0) {
        buf[0] = '\0';
        return;
    }
    char lo[40], hi[40];
    fmt_number(def->min, lo, sizeof lo);
    fmt_number(def->max, hi, sizeof hi);
    snprintf(buf, size, " in [%s, %s]", lo, hi);
}

/* "2 numbers", "at least 1 string", "1 to 3 strings", "numbers". */
static void fmt_count(const sl_param_def *def, const char *noun, char *buf, size_t size)
{
    int lo = def->min_len > 0 ? def->min_len : 0, hi = def->max_len;
    if (lo == 0 && hi == 0)
        snprintf(buf, size, "%ss", noun);
    else if (lo == hi)
        snprintf(buf, size, "%d %s%s", lo, noun, lo == 1 ? "" : "s");
    else if (hi == 0)
        snprintf(buf, size, "at least %d %s%s", lo, noun, lo == 1 ? "" : "s");
    else if (lo == 0)
        snprintf(buf, size, "at most %d %s%s", hi, noun, hi == 1 ? "" : "s");
    else
        snprintf(buf, size, "%d to %d %ss", lo, hi, noun);
}

/* What one element of a FLOAT_LIST (or a FLOAT itself) accepts. */
static void describe_number(const sl_param_def *def, char *buf, size_t size)
{
    char range[100];
    fmt_range(def, range, sizeof range);
    snprintf(buf, size, "a number%s%s", range,
             (def->flags & SL_PARAM_SCHEDULABLE) ? " or a schedule " SCHEDULE_SHAPE : "");
}

void sl_param_describe(const sl_param_def *def, char *buf, size_t size)
{
    char range[100], count[80];
    if (!buf || size == 0)
        return;
    fmt_range(def, range, sizeof range);
    switch (def->type) {
    case SL_PARAM_BOOL:
        snprintf(buf, size, "true or false");
        break;
    case SL_PARAM_INT:
        snprintf(buf, size, "an integer%s", range);
        break;
    case SL_PARAM_FLOAT:
        describe_number(def, buf, size);
        break;
    case SL_PARAM_STRING:
        snprintf(buf, size, "a string");
        break;
    case SL_PARAM_CHOICE:
        snprintf(buf, size, "one of %s", def->choices ? def->choices : "");
        break;
    case SL_PARAM_FLOAT_LIST:
        fmt_count(def, "number", count, sizeof count);
        snprintf(buf, size, "a list of %s%s%s", count, range,
                 (def->flags & SL_PARAM_SCHEDULABLE)
                     ? " (each may be a schedule " SCHEDULE_SHAPE ")" : "");
        break;
    case SL_PARAM_STRING_LIST:
        fmt_count(def, "string", count, sizeof count);
        snprintf(buf, size, "a list of %s", count);
        break;
    case SL_PARAM_SECTION:
        snprintf(buf, size, "a map of the keys under %s", def->name);
        break;
    case SL_PARAM_PLUGIN_LIST:
        fmt_count(def, "plugin section", count, sizeof count);
        snprintf(buf, size, "a list of %s (NAME or {plugin: NAME, ...})", count);
        break;
    default:
        snprintf(buf, size, "(unknown parameter type %d)", (int)def->type);
    }
}

/* What a node is, for "found ...": 'text' for plain scalars, "text" (the string) for
 * quoted ones, "a map", "a list of N elements". Control characters are shown escaped so
 * that the message stays one line. */
static const char *describe_found(const sl_node *n, char *buf, size_t size)
{
    if (n->kind == SL_NODE_MAP)
        return "a map";
    if (n->kind == SL_NODE_SEQ) {
        snprintf(buf, size, "a list of %zu element%s", n->n, n->n == 1 ? "" : "s");
        return buf;
    }
    if (!n->quoted && n->text[0] == '\0')
        return "an empty value";
    char shown[80];
    size_t k = 0;
    const char *t = n->text;
    for (; *t && k + 3 < sizeof shown - 4; t++) {
        unsigned char c = (unsigned char)*t;
        if (c < 0x20 || c == 0x7F) {
            shown[k++] = '\\';
            shown[k++] = c == '\n' ? 'n' : c == '\t' ? 't' : '?';
        } else {
            shown[k++] = (char)c;
        }
    }
    shown[k] = '\0';
    const char *more = *t ? "..." : "";
    if (n->quoted)
        snprintf(buf, size, "the string \"%s%s\"", shown, more);
    else
        snprintf(buf, size, "'%s%s'", shown, more);
    return buf;
}

/* ---------------------------------------------------------------------------------- */
/* Validation of one value                                                             */

static sl_status expected(sl_error *err, const sl_node *n, const char *key, const char *what)
{
    char found[120];
    return sl_spec_error_at(err, n, key, "expected %s, found %s", what,
                            describe_found(n, found, sizeof found));
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static char *key_index(const char *key, size_t i)
{
    size_t n = strlen(key) + 24;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s[%zu]", key, i);
    return p;
}

static sl_status oom(sl_error *err) { return sl_error_set(err, SL_ERR_NOMEM, "out of memory"); }

/* A number within [min, max] (the range message uses the parameter's bounds). */
static sl_status check_number(const sl_param_def *def, const sl_node *n, const char *key,
                              double *out, sl_error *err)
{
    double v;
    if (!node_number(n, &v) || v < def->min || v > def->max) {
        char what[160], range[100];
        fmt_range(def, range, sizeof range);
        snprintf(what, sizeof what, "a number%s", range);
        return expected(err, n, key, what);
    }
    *out = v;
    return SL_OK;
}

static sl_status check_step(const sl_node *n, const char *key, double *out, sl_error *err)
{
    bool b;
    int64_t i = -1;
    double f;
    if (n->kind != SL_NODE_SCALAR || classify(n, &b, &i, &f) != SC_INT || i < 0)
        return expected(err, n, key, "a step (an integer >= 0)");
    *out = (double)i;
    return SL_OK;
}

/* A number, or (SCHEDULABLE) a 4-list schedule. `what` describes the whole for errors. */
static sl_status check_schedule(const sl_param_def *def, const sl_node *n, const char *key,
                                const char *what, sl_schedule *out, bool *is_schedule,
                                sl_error *err)
{
    bool sched_ok = (def->flags & SL_PARAM_SCHEDULABLE) != 0;
    if (n->kind == SL_NODE_SCALAR) {
        double v;
        if (!node_number(n, &v))
            return expected(err, n, key, what);
        sl_status st = check_number(def, n, key, &v, err);
        if (st)
            return st;
        *out = (sl_schedule){ 0, v, v, 0 };
        *is_schedule = false;
        return SL_OK;
    }
    if (!sched_ok || n->kind != SL_NODE_SEQ || n->n != 4)
        return expected(err, n, key, what);
    double part[4];
    for (size_t k = 0; k < 4; k++) {
        char *ekey = key_index(key, k);
        if (!ekey)
            return oom(err);
        const sl_node *e = n->items[k];
        sl_status st = (k == 0 || k == 3) ? check_step(e, ekey, &part[k], err)
                                          : check_number(def, e, ekey, &part[k], err);
        free(ekey);
        if (st)
            return st;
    }
    if (part[0] > part[3]) {
        char s0[40], s1[40];
        fmt_number(part[0], s0, sizeof s0);
        fmt_number(part[3], s1, sizeof s1);
        return sl_spec_error_at(err, n, key,
                                "expected a schedule with start_step <= end_step, found "
                                "start_step %s > end_step %s", s0, s1);
    }
    *out = (sl_schedule){ part[0], part[1], part[2], part[3] };
    *is_schedule = true;
    return SL_OK;
}

static bool choice_has(const char *choices, const char *word)
{
    size_t n = strlen(word);
    for (const char *c = choices; c && *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && memcmp(c, word, n) == 0)
            return true;
        c = bar ? bar + 1 : NULL;
    }
    return false;
}

static sl_status check_choice(const sl_param_def *def, const sl_node *n, const char *key,
                              sl_value *out, sl_error *err)
{
    char what[300];
    sl_param_describe(def, what, sizeof what);
    if (n->kind != SL_NODE_SCALAR)
        return expected(err, n, key, what);
    if (choice_has(def->choices, n->text)) {
        out->s = xstrdup(n->text);
        return out->s ? SL_OK : oom(err);
    }
    /* Split a copy of the choices for the suggestion. */
    char *copy = xstrdup(def->choices ? def->choices : "");
    const char *words[64];
    size_t nw = 0;
    if (!copy)
        return oom(err);
    for (char *tok = copy; tok && nw < 64;) {
        char *bar = strchr(tok, '|');
        if (bar)
            *bar = '\0';
        words[nw++] = tok;
        tok = bar ? bar + 1 : NULL;
    }
    char found[120];
    const char *near = sl_nearest_word(n->text, words, nw);
    sl_status st = sl_spec_error_at(err, n, key, "expected %s, found %s%s%s%s", what,
                                    describe_found(n, found, sizeof found),
                                    near ? "; did you mean '" : "", near ? near : "",
                                    near ? "'?" : "");
    free(copy);
    return st;
}

/* The list checks shared by FLOAT_LIST and STRING_LIST: a SEQ of an allowed length. */
static sl_status check_list_shape(const sl_param_def *def, const sl_node *n, const char *key,
                                  sl_error *err)
{
    char what[300];
    sl_param_describe(def, what, sizeof what);
    if (n->kind != SL_NODE_SEQ)
        return expected(err, n, key, what);
    bool short_ = def->min_len > 0 && n->n < (size_t)def->min_len;
    bool long_ = def->max_len > 0 && n->n > (size_t)def->max_len;
    if (short_ || long_)
        return expected(err, n, key, what);
    return SL_OK;
}

static sl_status check_float_list(const sl_param_def *def, const sl_node *n, const char *key,
                                  sl_value *out, sl_error *err)
{
    sl_status st = check_list_shape(def, n, key, err);
    if (st)
        return st;
    out->fl = calloc(n->n ? n->n : 1, sizeof *out->fl);
    out->fl_sched = calloc(n->n ? n->n : 1, sizeof *out->fl_sched);
    if (!out->fl || !out->fl_sched)
        return oom(err);
    char what[200];
    describe_number(def, what, sizeof what);
    for (size_t k = 0; k < n->n; k++) {
        char *ekey = key_index(key, k);
        if (!ekey)
            return oom(err);
        st = check_schedule(def, n->items[k], ekey, what, &out->fl[k], &out->fl_sched[k], err);
        free(ekey);
        if (st)
            return st;
        out->len = k + 1;
    }
    return SL_OK;
}

static sl_status check_string_list(const sl_param_def *def, const sl_node *n, const char *key,
                                   sl_value *out, sl_error *err)
{
    sl_status st = check_list_shape(def, n, key, err);
    if (st)
        return st;
    out->sl = calloc(n->n ? n->n : 1, sizeof *out->sl);
    if (!out->sl)
        return oom(err);
    for (size_t k = 0; k < n->n; k++) {
        const sl_node *e = n->items[k];
        if (e->kind != SL_NODE_SCALAR) {
            char *ekey = key_index(key, k);
            if (!ekey)
                return oom(err);
            st = expected(err, e, ekey, "a string");
            free(ekey);
            return st;
        }
        out->sl[k] = xstrdup(e->text);
        if (!out->sl[k])
            return oom(err);
        out->len = k + 1;
    }
    return SL_OK;
}

/* A PLUGIN_LIST entry as a map {plugin: NAME, ...}: a bare scalar name is wrapped. */
static sl_node *plugin_entry_map(const sl_node *item)
{
    if (item->kind == SL_NODE_MAP)
        return sl_node_clone(item);
    sl_node *m = calloc(1, sizeof *m), *k = calloc(1, sizeof *k);
    sl_node *v = sl_node_clone(item);
    sl_node **keys = malloc(sizeof *keys), **items = malloc(sizeof *items);
    char *text = xstrdup("plugin");
    if (!m || !k || !v || !keys || !items || !text) {
        free(m);
        free(k);
        sl_node_free(v);
        free(keys);
        free(items);
        free(text);
        return NULL;
    }
    *k = (sl_node){ .kind = SL_NODE_SCALAR, .file = item->file, .line = item->line,
                    .col = item->col, .text = text };
    *m = (sl_node){ .kind = SL_NODE_MAP, .file = item->file, .line = item->line,
                    .col = item->col, .n = 1, .items = items, .keys = keys };
    keys[0] = k;
    items[0] = v;
    return m;
}

/* PLUGIN_LIST: a list whose entries are plugin names or maps with a scalar `plugin:`; the
 * entries' own keys are the host's to validate against the named plugin's schema. */
static sl_status check_plugin_list(const sl_param_def *def, const sl_node *n, const char *key,
                                   const char *what, sl_value *out, sl_error *err)
{
    if (n->kind != SL_NODE_SEQ)
        return expected(err, n, key, what);
    sl_status st = check_list_shape(def, n, key, err);
    if (st)
        return st;
    out->entries = calloc(n->n ? n->n : 1, sizeof *out->entries);
    if (!out->entries)
        return oom(err);
    for (size_t k = 0; k < n->n; k++) {
        const sl_node *item = n->items[k];
        char *ik = key_index(key, k);
        if (!ik)
            return oom(err);
        const sl_node *name = item->kind == SL_NODE_MAP ? sl_node_get(item, "plugin") : item;
        if (item->kind == SL_NODE_SEQ || !name || name->kind != SL_NODE_SCALAR ||
            name->text[0] == '\0') {
            st = expected(err, name && name != item ? name : item, ik,
                          "a plugin name or a map with 'plugin: NAME'");
            free(ik);
            return st;
        }
        free(ik);
        out->entries[k] = plugin_entry_map(item);
        if (!out->entries[k])
            return oom(err);
        out->len = k + 1;
    }
    return SL_OK;
}

/* Validates node n (the value of parameter def, dotted key `key`) into out. On failure out
 * may hold partial allocations: value_clear() releases them. */
static sl_status check_value(const sl_param_def *def, const sl_node *n, const char *key,
                             sl_value *out, sl_error *err)
{
    char what[300];
    sl_param_describe(def, what, sizeof what);
    bool b;
    int64_t i;
    double f;
    switch (def->type) {
    case SL_PARAM_BOOL:
        if (n->kind != SL_NODE_SCALAR || classify(n, &b, &i, &f) != SC_BOOL)
            return expected(err, n, key, what);
        out->b = b;
        return SL_OK;
    case SL_PARAM_INT:
        if (n->kind != SL_NODE_SCALAR || classify(n, &b, &i, &f) != SC_INT ||
            (double)i < def->min || (double)i > def->max)
            return expected(err, n, key, what);
        out->i = i;
        return SL_OK;
    case SL_PARAM_FLOAT:
        return check_schedule(def, n, key, what, &out->sched, &out->is_schedule, err);
    case SL_PARAM_STRING:
        if (n->kind != SL_NODE_SCALAR)
            return expected(err, n, key, what);
        out->s = xstrdup(n->text);
        return out->s ? SL_OK : oom(err);
    case SL_PARAM_CHOICE:
        return check_choice(def, n, key, out, err);
    case SL_PARAM_FLOAT_LIST:
        return check_float_list(def, n, key, out, err);
    case SL_PARAM_STRING_LIST:
        return check_string_list(def, n, key, out, err);
    case SL_PARAM_SECTION:
        if (n->kind != SL_NODE_MAP && !(n->kind == SL_NODE_SCALAR && !n->quoted &&
                                        n->text[0] == '\0'))
            return expected(err, n, key, what);
        return sl_params_resolve(n->kind == SL_NODE_MAP ? n : NULL, key, def->section, NULL,
                                 &out->section, err);
    case SL_PARAM_PLUGIN_LIST:
        return check_plugin_list(def, n, key, what, out, err);
    }
    return sl_spec_error_at(err, n, key, "parameter has an unknown type %d", (int)def->type);
}

/* ---------------------------------------------------------------------------------- */
/* Canonical YAML text of a resolved value                                             */


static void tb_number(sl_strbuf *b, double v)
{
    char num[40];
    fmt_number(v, num, sizeof num);
    sl_strbuf_puts(b, num);
}

static void tb_schedule(sl_strbuf *b, const sl_schedule *s, bool is_schedule)
{
    if (!is_schedule) {
        tb_number(b, s->start_value);
        return;
    }
    sl_strbuf_puts(b, "[");
    tb_number(b, s->start_step);
    sl_strbuf_puts(b, ", ");
    tb_number(b, s->start_value);
    sl_strbuf_puts(b, ", ");
    tb_number(b, s->end_value);
    sl_strbuf_puts(b, ", ");
    tb_number(b, s->end_step);
    sl_strbuf_puts(b, "]");
}

/* Words other YAML readers (YAML 1.1: PyYAML) take for bools or null: quoted in logs so
 * that analysis scripts read the same string back. */
static bool yaml11_word(const char *t)
{
    static const char *const words[] = {
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON",
        "off", "Off", "OFF", "True", "TRUE", "False", "FALSE", "Null", "NULL",
    };
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
        if (strcmp(t, words[k]) == 0)
            return true;
    return false;
}

/* A string: bare when it is a simple word that reads back as this string, else in double
 * quotes (the emitter's quoting, so escapes agree with what the parser reads). */
static void tb_string(sl_strbuf *b, const char *s)
{
    sl_node probe = { .kind = SL_NODE_SCALAR, .file = "", .text = (char *)s, .quoted = false };
    bool bb;
    int64_t i;
    double f;
    bool bare = (s[0] == '_' || s[0] == '.' || s[0] == '/' ||
                 (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
                 (s[0] >= '0' && s[0] <= '9')) &&
                strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./+-") ==
                    strlen(s) &&
                strncmp(s, "...", 3) != 0 && classify(&probe, &bb, &i, &f) == SC_STRING &&
                !yaml11_word(s);
    if (bare) {
        sl_strbuf_puts(b, s);
        return;
    }
    probe.quoted = true;
    char *q = sl_node_emit_yaml(&probe);  /* "\"...\"\n" */
    if (!q) {
        b->failed = 1;
        return;
    }
    size_t n = strlen(q);
    if (n && q[n - 1] == '\n')
        q[n - 1] = '\0';
    sl_strbuf_puts(b, q);
    free(q);
}

/* A node as YAML flow text: scalars that read back as what they are (numbers, bools
 * bare; strings quoted when needed), maps as {k: v}, lists as [a, b]. */
static void tb_node(sl_strbuf *b, const sl_node *n)
{
    bool bb;
    int64_t i;
    double f;
    if (n->kind == SL_NODE_SCALAR) {
        scalar_class c = classify(n, &bb, &i, &f);
        if (c == SC_BOOL || c == SC_INT || c == SC_FLOAT)
            sl_strbuf_puts(b, n->text);
        else if (c == SC_NULL)
            sl_strbuf_puts(b, "~");
        else
            tb_string(b, n->text);
        return;
    }
    sl_strbuf_puts(b, n->kind == SL_NODE_MAP ? "{" : "[");
    for (size_t k = 0; k < n->n; k++) {
        if (k)
            sl_strbuf_puts(b, ", ");
        if (n->kind == SL_NODE_MAP) {
            tb_string(b, n->keys[k]->text);
            sl_strbuf_puts(b, ": ");
        }
        tb_node(b, n->items[k]);
    }
    sl_strbuf_puts(b, n->kind == SL_NODE_MAP ? "}" : "]");
}

static char *value_yaml(const sl_param_def *def, const sl_value *v)
{
    sl_strbuf b;
    sl_strbuf_init(&b);
    char num[40];
    switch (def->type) {
    case SL_PARAM_BOOL:
        sl_strbuf_puts(&b, v->b ? "true" : "false");
        break;
    case SL_PARAM_INT:
        snprintf(num, sizeof num, "%" PRId64, v->i);
        sl_strbuf_puts(&b, num);
        break;
    case SL_PARAM_FLOAT:
        tb_schedule(&b, &v->sched, v->is_schedule);
        break;
    case SL_PARAM_STRING:
    case SL_PARAM_CHOICE:
        tb_string(&b, v->s);
        break;
    case SL_PARAM_FLOAT_LIST:
    case SL_PARAM_STRING_LIST:
        sl_strbuf_puts(&b, "[");
        for (size_t k = 0; k < v->len; k++) {
            if (k)
                sl_strbuf_puts(&b, ", ");
            if (def->type == SL_PARAM_FLOAT_LIST)
                tb_schedule(&b, &v->fl[k], v->fl_sched[k]);
            else
                tb_string(&b, v->sl[k]);
        }
        sl_strbuf_puts(&b, "]");
        break;
    case SL_PARAM_SECTION:
        sl_strbuf_puts(&b, "{");
        for (size_t k = 0; k < sl_params_count(v->section); k++) {
            if (k)
                sl_strbuf_puts(&b, ", ");
            sl_strbuf_puts(&b, sl_params_name_at(v->section, k));
            sl_strbuf_puts(&b, ": ");
            sl_strbuf_puts(&b, sl_params_yaml_at(v->section, k));
        }
        sl_strbuf_puts(&b, "}");
        break;
    case SL_PARAM_PLUGIN_LIST:
        sl_strbuf_puts(&b, "[");
        for (size_t k = 0; k < v->len; k++) {
            if (k)
                sl_strbuf_puts(&b, ", ");
            tb_node(&b, v->entries[k]);
        }
        sl_strbuf_puts(&b, "]");
        break;
    }
    return sl_strbuf_take(&b);
}

/* ---------------------------------------------------------------------------------- */
/* Resolving a section                                                                 */

static void value_clear(sl_value *v)
{
    free(v->s);
    free(v->fl);
    free(v->fl_sched);
    if (v->sl)
        for (size_t k = 0; k < v->len; k++)
            free(v->sl[k]);
    free(v->sl);
    sl_params_free(v->section);
    if (v->entries)
        for (size_t k = 0; k < v->len; k++)
            sl_node_free(v->entries[k]);
    free(v->entries);
    free(v->yaml);
    memset(v, 0, sizeof *v);
}

void sl_params_free(sl_params *p)
{
    if (!p)
        return;
    if (p->values)
        for (size_t k = 0; k < p->schema.count; k++)
            value_clear(&p->values[k]);
    free(p->values);
    free(p->present);
    free(p);
}

static char *join_key(const char *path, const char *key)
{
    size_t n = strlen(path) + strlen(key) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", path, path[0] ? "." : "", key);
    return p;
}

static ptrdiff_t def_index(const sl_param_schema *s, const char *name)
{
    for (size_t k = 0; k < s->count; k++)
        if (strcmp(s->defs[k].name, name) == 0)
            return (ptrdiff_t)k;
    return -1;
}

static bool is_reserved(const char *const *reserved, const char *key)
{
    for (size_t k = 0; reserved && reserved[k]; k++)
        if (strcmp(reserved[k], key) == 0)
            return true;
    return false;
}

/* "unknown key (expected one of: a, b, c); did you mean 'x'?" for key node k. */
static sl_status unknown_key(const sl_param_schema *schema, const char *const *reserved,
                             const sl_node *k, const char *key, sl_error *err)
{
    size_t nr = 0;
    while (reserved && reserved[nr])
        nr++;
    const char **cands = malloc((schema->count + nr + 1) * sizeof *cands);
    if (!cands)
        return oom(err);
    char names[SL_ERR_MSG_MAX] = "";
    size_t used = 0;
    for (size_t j = 0; j < schema->count; j++) {
        cands[j] = schema->defs[j].name;
        int w = snprintf(names + used, sizeof names - used, "%s%s", j ? ", " : "",
                         schema->defs[j].name);
        if (w > 0 && (size_t)w < sizeof names - used)
            used += (size_t)w;
    }
    for (size_t j = 0; j < nr; j++)
        cands[schema->count + j] = reserved[j];
    const char *near = sl_nearest_word(k->text, cands, schema->count + nr);
    char suggestion[200] = "";
    if (near)
        snprintf(suggestion, sizeof suggestion, "; did you mean '%.150s'?", near);
    sl_status st = schema->count
        ? sl_spec_error_at(err, k, key, "unknown key (expected one of: %s)%s", names, suggestion)
        : sl_spec_error_at(err, k, key, "unknown key (this section takes no keys)%s",
                           suggestion);
    free(cands);
    return st;
}

/* Parses and validates a schema default; a failure is a bug in the schema and aborts
 * (only running out of memory is returned). */
static sl_status resolve_default(const sl_param_def *def, sl_value *out, sl_error *err)
{
    char label[200];
    snprintf(label, sizeof label, "<default of %s>", def->name);
    sl_error why = { { 0 } };
    sl_node *n = NULL;
    sl_status st;
    /* "" as a default means the empty string (YAML would call it an empty document). */
    if (def->default_value[0] == '\0')
        st = sl_spec_parse_string("\"\"", 2, label, &n, &why);
    else
        st = sl_spec_parse_string(def->default_value, strlen(def->default_value), label, &n,
                                  &why);
    if (st == SL_OK)
        st = check_value(def, n, def->name, out, &why);
    sl_node_free(n);
    if (st == SL_ERR_NOMEM)
        return oom(err);
    if (st) {
        fprintf(stderr, "steinlab: schema bug: bad default '%s' for parameter '%s': %s\n",
                def->default_value, def->name, why.msg);
        abort();
    }
    return SL_OK;
}

sl_status sl_params_resolve(const sl_node *section, const char *key_path,
                            const sl_param_schema *schema, const char *const *reserved,
                            sl_params **out, sl_error *err)
{
    if (!schema || !out || (schema->count && !schema->defs))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_params_resolve: NULL argument");
    *out = NULL;
    const char *path = key_path ? key_path : "";
    sl_status st = SL_OK;
    char *key = NULL;
    sl_params *p = calloc(1, sizeof *p);
    if (!p)
        return oom(err);
    p->schema = *schema;
    p->values = calloc(schema->count ? schema->count : 1, sizeof *p->values);
    p->present = calloc(schema->count ? schema->count : 1, sizeof *p->present);
    if (!p->values || !p->present) {
        st = oom(err);
        goto fail;
    }
    if (section && section->kind != SL_NODE_MAP) {
        st = expected(err, section, path, "a map");
        goto fail;
    }
    /* Given keys, in the order they are written, so the first error is the first one a
     * reader meets in the file. */
    for (size_t e = 0; section && e < section->n; e++) {
        const sl_node *k = section->keys[e];
        if (is_reserved(reserved, k->text))
            continue;  /* someone else's key: validated there */
        key = join_key(path, k->text);
        if (!key) {
            st = oom(err);
            goto fail;
        }
        ptrdiff_t d = def_index(schema, k->text);
        if (d < 0) {
            st = unknown_key(schema, reserved, k, key, err);
            goto fail;
        }
        if (p->values[d].present) {  /* only hand-built trees get here: the parser refuses */
            st = sl_spec_error_at(err, k, key, "duplicate key");
            goto fail;
        }
        st = check_value(&schema->defs[d], section->items[e], key, &p->values[d], err);
        if (st)
            goto fail;
        p->values[d].present = true;
        free(key);
        key = NULL;
    }
    /* Then what was not given: required keys are errors, defaults are filled in. */
    for (size_t d = 0; d < schema->count; d++) {
        const sl_param_def *def = &schema->defs[d];
        sl_value *v = &p->values[d];
        if (v->present)
            continue;
        if (def->flags & SL_PARAM_REQUIRED) {
            char what[300];
            sl_param_describe(def, what, sizeof what);
            key = join_key(path, def->name);
            if (!key) {
                st = oom(err);
                goto fail;
            }
            /* Positioned at the section (its first key for a block map); without a
             * section there is no position to give. */
            st = sl_spec_error_at(err, section, key, "missing required key (expected %s)", what);
            goto fail;
        }
        if (def->type == SL_PARAM_SECTION && !def->default_value) {
            /* An absent section is an empty one: its own defaults apply, and its required
             * keys are reported at this section. */
            key = join_key(path, def->name);
            if (!key) {
                st = oom(err);
                goto fail;
            }
            st = sl_params_resolve(NULL, key, def->section, NULL, &v->section, err);
            free(key);
            key = NULL;
            if (st)
                goto fail;
            v->present = true;
            continue;
        }
        if (!def->default_value)
            continue;  /* optional without default: absent */
        st = resolve_default(def, v, err);
        if (st)
            goto fail;
        v->present = true;
    }
    for (size_t d = 0; d < schema->count; d++) {
        sl_value *v = &p->values[d];
        if (!v->present)
            continue;
        v->yaml = value_yaml(&schema->defs[d], v);
        if (!v->yaml) {
            st = oom(err);
            goto fail;
        }
        p->present[p->n_present++] = d;
    }
    *out = p;
    return SL_OK;
fail:
    free(key);
    sl_params_free(p);
    return st;
}

sl_status sl_params_defaults(const sl_param_schema *schema, sl_params **out, sl_error *err)
{
    return sl_params_resolve(NULL, "", schema, NULL, out, err);
}

/* ---------------------------------------------------------------------------------- */
/* Accessors                                                                           */

static const char *type_name(sl_param_type t)
{
    switch (t) {
    case SL_PARAM_BOOL: return "bool";
    case SL_PARAM_INT: return "int";
    case SL_PARAM_FLOAT: return "float";
    case SL_PARAM_STRING: return "string";
    case SL_PARAM_CHOICE: return "choice";
    case SL_PARAM_FLOAT_LIST: return "list[float]";
    case SL_PARAM_STRING_LIST: return "list[string]";
    case SL_PARAM_SECTION: return "map";
    case SL_PARAM_PLUGIN_LIST: return "list[plugin]";
    }
    return "?";
}

/* Misuse of an accessor is a bug in the caller (a plugin asking for a parameter its own
 * schema does not declare, or with the wrong type): say which and stop. */
static void misuse(const char *fn, const char *name, const char *why)
{
    fprintf(stderr, "steinlab: %s(\"%s\"): %s\n", fn, name ? name : "(null)", why);
    abort();
}

#define TYPE_BIT(t) (1u << (t))

/* The value of `name`, checked to be declared with a type in `types` (a mask of
 * TYPE_BIT) and present. */
static const sl_value *lookup(const sl_params *p, const char *name, const char *fn,
                              unsigned types, const sl_param_def **def_out)
{
    if (!p || !name)
        misuse(fn, name, "called with NULL params or name");
    ptrdiff_t d = def_index(&p->schema, name);
    if (d < 0)
        misuse(fn, name, "no such parameter in the schema");
    const sl_param_def *def = &p->schema.defs[d];
    if (!(types & TYPE_BIT(def->type))) {
        char why[120];
        snprintf(why, sizeof why, "the parameter is a %s, the wrong type for this accessor",
                 type_name(def->type));
        misuse(fn, name, why);
    }
    const sl_value *v = &p->values[d];
    if (!v->present)
        misuse(fn, name, "the parameter was not given and has no default "
                         "(check sl_params_has first)");
    if (def_out)
        *def_out = def;
    return v;
}

static void check_index(const sl_value *v, size_t i, const char *fn, const char *name)
{
    if (i >= v->len) {
        char why[120];
        snprintf(why, sizeof why, "index %zu out of range (the list has %zu elements)", i,
                 v->len);
        misuse(fn, name, why);
    }
}

/* The value at step 0, by schedule.h: start_value until start_step, end_value from
 * end_step on. Steps are >= 0, so this is start_value unless the schedule switches at
 * step 0 itself ([0, a, b, 0] is b from the start). */
static double value_at_step0(const sl_schedule *s)
{
    return s->end_step <= 0 ? s->end_value : s->start_value;
}

bool sl_params_has(const sl_params *p, const char *name)
{
    if (!p || !name)
        misuse("sl_params_has", name, "called with NULL params or name");
    ptrdiff_t d = def_index(&p->schema, name);
    if (d < 0)
        misuse("sl_params_has", name, "no such parameter in the schema");
    return p->values[d].present;
}

bool sl_params_bool(const sl_params *p, const char *name)
{
    return lookup(p, name, "sl_params_bool", TYPE_BIT(SL_PARAM_BOOL), NULL)->b;
}

int64_t sl_params_int(const sl_params *p, const char *name)
{
    return lookup(p, name, "sl_params_int", TYPE_BIT(SL_PARAM_INT), NULL)->i;
}

double sl_params_float(const sl_params *p, const char *name)
{
    const sl_value *v = lookup(p, name, "sl_params_float", TYPE_BIT(SL_PARAM_FLOAT), NULL);
    return value_at_step0(&v->sched);
}

sl_schedule sl_params_schedule(const sl_params *p, const char *name)
{
    return lookup(p, name, "sl_params_schedule", TYPE_BIT(SL_PARAM_FLOAT), NULL)->sched;
}

const char *sl_params_string(const sl_params *p, const char *name)
{
    return lookup(p, name, "sl_params_string",
                  TYPE_BIT(SL_PARAM_STRING) | TYPE_BIT(SL_PARAM_CHOICE), NULL)->s;
}

size_t sl_params_list_len(const sl_params *p, const char *name)
{
    return lookup(p, name, "sl_params_list_len",
                  TYPE_BIT(SL_PARAM_FLOAT_LIST) | TYPE_BIT(SL_PARAM_STRING_LIST) |
                      TYPE_BIT(SL_PARAM_PLUGIN_LIST),
                  NULL)->len;
}

const sl_params *sl_params_section(const sl_params *p, const char *name)
{
    return lookup(p, name, "sl_params_section", TYPE_BIT(SL_PARAM_SECTION), NULL)->section;
}

const sl_node *sl_params_plugin_entry(const sl_params *p, const char *name, size_t i)
{
    const char *fn = "sl_params_plugin_entry";
    const sl_value *v = lookup(p, name, fn, TYPE_BIT(SL_PARAM_PLUGIN_LIST), NULL);
    check_index(v, i, fn, name);
    return v->entries[i];
}

double sl_params_list_float(const sl_params *p, const char *name, size_t i)
{
    const char *fn = "sl_params_list_float";
    const sl_value *v = lookup(p, name, fn, TYPE_BIT(SL_PARAM_FLOAT_LIST), NULL);
    check_index(v, i, fn, name);
    return value_at_step0(&v->fl[i]);
}

sl_schedule sl_params_list_schedule(const sl_params *p, const char *name, size_t i)
{
    const char *fn = "sl_params_list_schedule";
    const sl_value *v = lookup(p, name, fn, TYPE_BIT(SL_PARAM_FLOAT_LIST), NULL);
    check_index(v, i, fn, name);
    return v->fl[i];
}

const char *sl_params_list_string(const sl_params *p, const char *name, size_t i)
{
    const char *fn = "sl_params_list_string";
    const sl_value *v = lookup(p, name, fn, TYPE_BIT(SL_PARAM_STRING_LIST), NULL);
    check_index(v, i, fn, name);
    return v->sl[i];
}

size_t sl_params_count(const sl_params *p)
{
    return p ? p->n_present : 0;
}

const char *sl_params_name_at(const sl_params *p, size_t i)
{
    if (!p || i >= p->n_present)
        misuse("sl_params_name_at", "(index)", "index out of range");
    return p->schema.defs[p->present[i]].name;
}

const char *sl_params_yaml_at(const sl_params *p, size_t i)
{
    if (!p || i >= p->n_present)
        misuse("sl_params_yaml_at", "(index)", "index out of range");
    return p->values[p->present[i]].yaml;
}

const sl_param_schema *sl_params_schema(const sl_params *p)
{
    return p ? &p->schema : NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Printing schemas                                                                    */

/* The type column: "float/sched" marks values that accept a schedule. */
static const char *type_label(const sl_param_def *def)
{
    bool s = (def->flags & SL_PARAM_SCHEDULABLE) != 0;
    if (def->type == SL_PARAM_FLOAT && s)
        return "float/sched";
    if (def->type == SL_PARAM_FLOAT_LIST && s)
        return "list[float/sched]";
    return type_name(def->type);
}

static const char *default_label(const sl_param_def *def)
{
    if (def->flags & SL_PARAM_REQUIRED)
        return "(required)";
    if (!def->default_value)
        return "(unset)";
    return def->default_value[0] ? def->default_value : "\"\"";
}

/* The short range/choices column: "[0, 1]", "sds|uniform", "[0, 1], length 2", "-". */
static void accepts_label(const sl_param_def *def, char *buf, size_t size)
{
    char range[100] = "", len[60] = "";
    if (def->type == SL_PARAM_INT || def->type == SL_PARAM_FLOAT ||
        def->type == SL_PARAM_FLOAT_LIST) {
        fmt_range(def, range, sizeof range);
    }
    if (def->type == SL_PARAM_FLOAT_LIST || def->type == SL_PARAM_STRING_LIST) {
        int lo = def->min_len > 0 ? def->min_len : 0, hi = def->max_len;
        if (lo && lo == hi)
            snprintf(len, sizeof len, "length %d", lo);
        else if (lo && hi)
            snprintf(len, sizeof len, "length %d..%d", lo, hi);
        else if (lo)
            snprintf(len, sizeof len, "length >= %d", lo);
        else if (hi)
            snprintf(len, sizeof len, "length <= %d", hi);
    }
    const char *r = range[0] ? range + 4 : "";  /* skip " in " */
    if (def->type == SL_PARAM_CHOICE)
        snprintf(buf, size, "%s", def->choices ? def->choices : "");
    else if (r[0] && len[0])
        snprintf(buf, size, "%s, %s", r, len);
    else if (r[0] || len[0])
        snprintf(buf, size, "%s%s", r, len);
    else
        snprintf(buf, size, "-");
}

/* A markdown table cell: '|' would end the cell early. */
static void md_cell(FILE *out, const char *s, bool code)
{
    fputs(code ? " `" : " ", out);
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s, out);
    }
    fputs(code ? "` |" : " |", out);
}

static void schema_print_table(FILE *out, const sl_param_schema *schema,
                               sl_schema_format format);

/* The table, then one table per nested section ("NAME keys:"), recursively. */
void sl_schema_print(FILE *out, const sl_param_schema *schema, sl_schema_format format)
{
    if (!out || !schema)
        return;
    schema_print_table(out, schema, format);
    for (size_t k = 0; k < schema->count; k++) {
        const sl_param_def *def = &schema->defs[k];
        if (def->type != SL_PARAM_SECTION || !def->section)
            continue;
        if (format == SL_SCHEMA_MARKDOWN)
            fprintf(out, "\nKeys of `%s`:\n\n", def->name);
        else
            fprintf(out, "\n%s keys:\n", def->name);
        sl_schema_print(out, def->section, format);
    }
}

static void schema_print_table(FILE *out, const sl_param_schema *schema,
                               sl_schema_format format)
{
    if (format == SL_SCHEMA_MARKDOWN) {
        fputs("| Key | Type | Default | Accepts | Description |\n", out);
        fputs("|-----|------|---------|---------|-------------|\n", out);
        for (size_t k = 0; k < schema->count; k++) {
            const sl_param_def *def = &schema->defs[k];
            char acc[300];
            accepts_label(def, acc, sizeof acc);
            fputs("|", out);
            md_cell(out, def->name, true);
            md_cell(out, type_label(def), false);
            md_cell(out, default_label(def), def->default_value != NULL &&
                                                 !(def->flags & SL_PARAM_REQUIRED));
            md_cell(out, acc, false);
            md_cell(out, def->doc ? def->doc : "", false);
            fputs("\n", out);
        }
        return;
    }
    if (schema->count == 0) {
        fputs("(no parameters)\n", out);
        return;
    }
    /* Column widths first, then the rows; the doc column is last and not padded. */
    int w_name = 4, w_type = 4, w_def = 7, w_acc = 7;
    for (size_t k = 0; k < schema->count; k++) {
        const sl_param_def *def = &schema->defs[k];
        char acc[300];
        accepts_label(def, acc, sizeof acc);
        int n;
        if ((n = (int)strlen(def->name)) > w_name) w_name = n;
        if ((n = (int)strlen(type_label(def))) > w_type) w_type = n;
        if ((n = (int)strlen(default_label(def))) > w_def) w_def = n;
        if ((n = (int)strlen(acc)) > w_acc) w_acc = n;
    }
    fprintf(out, "%-*s  %-*s  %-*s  %-*s  %s\n", w_name, "NAME", w_type, "TYPE", w_def,
            "DEFAULT", w_acc, "ACCEPTS", "DESCRIPTION");
    for (size_t k = 0; k < schema->count; k++) {
        const sl_param_def *def = &schema->defs[k];
        char acc[300];
        accepts_label(def, acc, sizeof acc);
        const char *doc = def->doc ? def->doc : "";
        if (doc[0])
            fprintf(out, "%-*s  %-*s  %-*s  %-*s  %s\n", w_name, def->name, w_type,
                    type_label(def), w_def, default_label(def), w_acc, acc, doc);
        else
            fprintf(out, "%-*s  %-*s  %-*s  %s\n", w_name, def->name, w_type,
                    type_label(def), w_def, default_label(def), acc);
    }
}
