/* core/safetensors.c — safetensors reader and writer (safetensors.h).
 *
 * The header is parsed by a small JSON parser written for exactly what the format needs
 * (objects, arrays, strings, non-negative integers; no floats, true/false/null are
 * recognised only to be refused), with a nesting limit and strict UTF-8, into a flat node
 * array; a second pass checks the format's structure. Nothing is trusted: every length is
 * checked before use, every size product is overflow-checked. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "steinlab/safetensors.h"

#define PFX "safetensors: "

/* ======================================================================================
 * Minimal JSON
 * ====================================================================================== */

enum jtype { J_OBJECT, J_ARRAY, J_STRING, J_UINT, J_OTHER };

typedef struct jnode {
    enum jtype type;
    long parent;        /* index, -1 for the root */
    long first, next;   /* first child, next sibling: -1 for none */
    char *key;          /* member name (object members), NUL-terminated */
    char *str;          /* J_STRING value */
    uint64_t u;         /* J_UINT value */
    int negative;       /* J_OTHER: a negative integer (for a better message) */
    int overflow;       /* J_UINT: the value did not fit in 64 bits */
    size_t at;          /* byte offset in the header, for messages */
} jnode;

typedef struct jparser {
    const char *s;
    size_t n, i;
    jnode *nodes;
    size_t count, cap;
    sl_error *err;
    sl_status st;
} jparser;

static sl_status jfail(jparser *p, const char *what)
{
    if (p->st == SL_OK)
        p->st = sl_error_set(p->err, SL_ERR_FORMAT, PFX "header is not JSON: %s at byte %zu",
                             what, p->i);
    return p->st;
}

static void jskip_ws(jparser *p)
{
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static long jnew(jparser *p, enum jtype t, long parent)
{
    if (p->count == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        jnode *nn = realloc(p->nodes, cap * sizeof *nn);
        if (!nn) {
            if (p->st == SL_OK)
                p->st = sl_error_set(p->err, SL_ERR_NOMEM, PFX "out of memory parsing header");
            return -1;
        }
        p->nodes = nn;
        p->cap = cap;
    }
    jnode *j = &p->nodes[p->count];
    memset(j, 0, sizeof *j);
    j->type = t;
    j->parent = parent;
    j->first = j->next = -1;
    j->at = p->i;
    return (long)p->count++;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid: no overlong
 * forms, no surrogates, nothing above U+10FFFF (RFC 3629). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned min, cp;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, min = 0x80, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, min = 0x800, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d > 15)
            return 0;
        *v = *v << 4 | d;
    }
    return 1;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string at p->i (which holds '"') into a malloc'd NUL-terminated UTF-8 copy.
 * Escapes decode to UTF-8 (the output is never longer than the input); \u0000 and lone
 * surrogates are refused, since names and values are C strings of valid UTF-8. */
static char *jstring(jparser *p)
{
    size_t start = ++p->i;
    char *out = malloc(p->n - start + 1);
    if (!out) {
        if (p->st == SL_OK)
            p->st = sl_error_set(p->err, SL_ERR_NOMEM, PFX "out of memory parsing header");
        return NULL;
    }
    size_t o = 0;
    while (p->i < p->n) {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            out[o] = '\0';
            return out;
        }
        if (c < 0x20) {
            jfail(p, "control character in a string");
            break;
        }
        if (c == '\\') {
            if (p->i + 1 >= p->n) {
                p->i = p->n;
                jfail(p, "unexpected end");
                break;
            }
            char e = p->s[p->i + 1];
            const char *simple = "\"\\/bfnrt", *value = "\"\\/\b\f\n\r\t";
            const char *hit = e ? strchr(simple, e) : NULL;
            if (hit) {
                out[o++] = value[hit - simple];
                p->i += 2;
                continue;
            }
            if (e != 'u') {
                jfail(p, "invalid escape");
                break;
            }
            unsigned cp, lo;
            if (p->i + 6 > p->n || !hex4(p->s + p->i + 2, &cp)) {
                jfail(p, "invalid \\u escape");
                break;
            }
            size_t used = 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->i + 12 > p->n || p->s[p->i + 6] != '\\' || p->s[p->i + 7] != 'u' ||
                    !hex4(p->s + p->i + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    jfail(p, "unpaired surrogate in \\u escape");
                    break;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                used = 12;
            } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
                jfail(p, cp ? "unpaired surrogate in \\u escape" : "\\u0000 in a string");
                break;
            }
            o += put_utf8(out + o, cp);
            p->i += used;
            continue;
        }
        size_t len = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);
        if (!len) {
            jfail(p, "invalid UTF-8");
            break;
        }
        memcpy(out + o, p->s + p->i, len);
        o += len;
        p->i += len;
    }
    if (p->i >= p->n)
        jfail(p, "unexpected end");
    free(out);
    return NULL;
}

static long jvalue(jparser *p, long parent, int depth);

/* Appends child to parent's list (tail kept in *tail). */
static void jlink(jparser *p, long parent, long child, long *tail)
{
    if (*tail < 0)
        p->nodes[parent].first = child;
    else
        p->nodes[*tail].next = child;
    *tail = child;
}

static long jcontainer(jparser *p, long parent, int depth, int object)
{
    if (depth > SL_ST_MAX_DEPTH) {
        jfail(p, "nesting deeper than 8");
        return -1;
    }
    long self = jnew(p, object ? J_OBJECT : J_ARRAY, parent);
    if (self < 0)
        return -1;
    p->i++;   /* '{' or '[' */
    long tail = -1;
    char close = object ? '}' : ']';
    jskip_ws(p);
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        return self;
    }
    for (;;) {
        char *key = NULL;
        jskip_ws(p);
        if (object) {
            if (p->i >= p->n) {
                jfail(p, "unexpected end");
                return -1;
            }
            if (p->s[p->i] != '"') {
                jfail(p, "expected a member name");
                return -1;
            }
            if (!(key = jstring(p)))
                return -1;
            jskip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') {
                free(key);
                jfail(p, p->i >= p->n ? "unexpected end" : "expected ':'");
                return -1;
            }
            p->i++;
        }
        long child = jvalue(p, self, depth + 1);
        if (child < 0) {
            free(key);
            return -1;
        }
        p->nodes[child].key = key;
        jlink(p, self, child, &tail);
        jskip_ws(p);
        if (p->i >= p->n) {
            jfail(p, "unexpected end");
            return -1;
        }
        if (p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->s[p->i] == close) {
            p->i++;
            return self;
        }
        jfail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        return -1;
    }
}

static long jnumber(jparser *p, long parent)
{
    long self = jnew(p, J_UINT, parent);
    if (self < 0)
        return -1;
    jnode *j = &p->nodes[self];
    int neg = 0;
    if (p->s[p->i] == '-') {
        neg = 1;
        p->i++;
    }
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
        jfail(p, p->i >= p->n ? "unexpected end" : "invalid number");
        return -1;
    }
    /* JSON forbids leading zeros ("01"). */
    if (p->s[p->i] == '0' && p->i + 1 < p->n && p->s[p->i + 1] >= '0' && p->s[p->i + 1] <= '9') {
        jfail(p, "leading zero in a number");
        return -1;
    }
    uint64_t v = 0;
    int over = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        unsigned d = (unsigned)(p->s[p->i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            over = 1;
        else
            v = v * 10 + d;
        p->i++;
    }
    int frac = 0;
    if (p->i < p->n && p->s[p->i] == '.') {
        frac = 1;
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
            jfail(p, p->i >= p->n ? "unexpected end" : "invalid number");
            return -1;
        }
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
            p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        frac = 1;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
            p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
            jfail(p, p->i >= p->n ? "unexpected end" : "invalid number");
            return -1;
        }
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
            p->i++;
    }
    if (neg || frac) {
        j->type = J_OTHER;
        j->negative = neg && !frac && v != 0;
    }
    j->u = v;
    j->overflow = over;
    return self;
}

static long jvalue(jparser *p, long parent, int depth)
{
    jskip_ws(p);
    if (p->i >= p->n) {
        jfail(p, "unexpected end");
        return -1;
    }
    char c = p->s[p->i];
    if (c == '{' || c == '[')
        return jcontainer(p, parent, depth, c == '{');
    if (c == '"') {
        long self = jnew(p, J_STRING, parent);
        if (self < 0)
            return -1;
        char *s = jstring(p);
        if (!s)
            return -1;
        p->nodes[self].str = s;
        return self;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return jnumber(p, parent);
    static const char *const words[] = { "true", "false", "null" };
    for (int k = 0; k < 3; k++) {
        size_t len = strlen(words[k]);
        if (p->n - p->i >= len && memcmp(p->s + p->i, words[k], len) == 0) {
            long self = jnew(p, J_OTHER, parent);
            p->i += len;
            return self;
        }
    }
    jfail(p, "unexpected character");
    return -1;
}

static void jfree(jparser *p)
{
    for (size_t k = 0; k < p->count; k++) {
        free(p->nodes[k].key);
        free(p->nodes[k].str);
    }
    free(p->nodes);
    p->nodes = NULL;
    p->count = p->cap = 0;
}

/* ======================================================================================
 * The format
 * ====================================================================================== */

typedef struct tensor {
    sl_st_info info;
    char *name;                        /* owned */
    int64_t shape[SL_ST_MAX_DIMS];
    int elem;                          /* bytes per element */
} tensor;

struct sl_safetensors {
    uint8_t *file;      /* the whole file image, owned */
    size_t size;
    const uint8_t *data;   /* data section */
    uint64_t data_len;
    tensor *t;          /* (n,) sorted by begin */
    size_t n;
    char **meta_k, **meta_v;   /* (n_meta,) owned */
    size_t n_meta;
};

static const struct { const char *name; int size; } DTYPES[] = {
    { "F64", 8 }, { "F32", 4 }, { "F16", 2 }, { "BF16", 2 }, { "I64", 8 }, { "I32", 4 },
    { "I16", 2 }, { "I8", 1 }, { "U8", 1 }, { "BOOL", 1 }, { "F8_E4M3", 1 }, { "F8_E5M2", 1 },
};

static const char *dtype_lookup(const char *s, int *size)
{
    for (size_t k = 0; k < sizeof DTYPES / sizeof DTYPES[0]; k++)
        if (strcmp(s, DTYPES[k].name) == 0) {
            *size = DTYPES[k].size;
            return DTYPES[k].name;
        }
    return NULL;
}

void sl_safetensors_close(sl_safetensors *st)
{
    if (!st)
        return;
    for (size_t k = 0; k < st->n; k++)
        free(st->t[k].name);
    for (size_t k = 0; k < st->n_meta; k++) {
        free(st->meta_k[k]);
        free(st->meta_v[k]);
    }
    free(st->t);
    free(st->meta_k);
    free(st->meta_v);
    free(st->file);
    free(st);
}

static int cmp_tensor(const void *a, const void *b)
{
    const tensor *x = a, *y = b;
    if (x->info.begin != y->info.begin)
        return x->info.begin < y->info.begin ? -1 : 1;
    if (x->info.end != y->info.end)
        return x->info.end < y->info.end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Member `key` of object node o, or -1. */
static long jmember(const jparser *p, long o, const char *key)
{
    for (long c = p->nodes[o].first; c >= 0; c = p->nodes[c].next)
        if (strcmp(p->nodes[c].key, key) == 0)
            return c;
    return -1;
}

/* Reads one tensor entry (object node v, name) into t. */
static sl_status parse_tensor(const jparser *p, long v, const char *name, tensor *t,
                              uint64_t data_len, sl_error *err)
{
    const jnode *nv = &p->nodes[v];
    if (nv->type != J_OBJECT)
        return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' is not a JSON object", name);
    int seen[3] = { 0, 0, 0 };
    static const char *const keys[3] = { "dtype", "shape", "data_offsets" };
    for (long c = nv->first; c >= 0; c = p->nodes[c].next) {
        const char *k = p->nodes[c].key;
        int which = -1;
        for (int q = 0; q < 3; q++)
            if (strcmp(k, keys[q]) == 0)
                which = q;
        if (which < 0)
            return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' has unexpected key "
                                "'%.64s'", name, k);
        if (seen[which]++)
            return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' has '%s' twice", name,
                                k);
    }
    long d = jmember(p, v, "dtype"), s = jmember(p, v, "shape"), o = jmember(p, v, "data_offsets");
    const char *missing = d < 0 ? "dtype" : s < 0 ? "shape" : o < 0 ? "data_offsets" : NULL;
    if (missing)
        return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' lacks '%s'", name, missing);
    if (p->nodes[d].type != J_STRING)
        return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' has a non-string dtype", name);
    t->info.dtype = dtype_lookup(p->nodes[d].str, &t->elem);
    if (!t->info.dtype)
        return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' has unknown dtype '%.32s'",
                            name, p->nodes[d].str);
    if (p->nodes[s].type != J_ARRAY)
        return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' has a shape that is not an "
                            "array", name);
    /* numel and bytes, overflow-checked: numel * elem must fit in 64 bits. */
    uint64_t numel = 1;
    int nd = 0, over = 0;
    for (long c = p->nodes[s].first; c >= 0; c = p->nodes[c].next) {
        const jnode *e = &p->nodes[c];
        if (nd == SL_ST_MAX_DIMS)
            return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' has more than %d "
                                "dimensions", name, SL_ST_MAX_DIMS);
        if (e->type != J_UINT)
            return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' has a shape entry that is "
                                "not a non-negative integer%s", name,
                                e->negative ? " (negative)" : "");
        if (e->overflow || e->u > (uint64_t)INT64_MAX)
            over = 1;
        else {
            t->shape[nd] = (int64_t)e->u;
            if (e->u && numel > UINT64_MAX / e->u)
                over = 1;
            else
                numel *= e->u;
        }
        nd++;
    }
    if (over || numel > UINT64_MAX / (uint64_t)t->elem)
        return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' has a shape whose byte size "
                            "overflows 64 bits", name);
    const jnode *no = &p->nodes[o];
    long b = no->type == J_ARRAY ? no->first : -1, e = b >= 0 ? p->nodes[b].next : -1;
    if (no->type != J_ARRAY || b < 0 || e < 0 || p->nodes[e].next >= 0 ||
        p->nodes[b].type != J_UINT || p->nodes[e].type != J_UINT || p->nodes[b].overflow ||
        p->nodes[e].overflow)
        return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' needs data_offsets "
                            "[begin, end] of two non-negative 64-bit integers", name);
    uint64_t begin = p->nodes[b].u, end = p->nodes[e].u;
    if (begin > end)
        return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' has data_offsets [%llu, %llu] "
                            "with begin > end", name, (unsigned long long)begin,
                            (unsigned long long)end);
    if (end > data_len)
        return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' ends at byte %llu of the data "
                            "section, which has %llu bytes", name, (unsigned long long)end,
                            (unsigned long long)data_len);
    uint64_t bytes = numel * (uint64_t)t->elem;
    if (end - begin != bytes)
        return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' has %llu bytes in data_offsets "
                            "but its shape and dtype %s need %llu", name,
                            (unsigned long long)(end - begin), t->info.dtype,
                            (unsigned long long)bytes);
    t->info.ndim = nd;
    t->info.shape = t->shape;
    t->info.numel = numel;
    t->info.begin = begin;
    t->info.end = end;
    return SL_OK;
}

/* Takes ownership of file (size bytes) whatever happens. */
static sl_status parse(uint8_t *file, size_t size, sl_safetensors **out, sl_error *err)
{
    *out = NULL;
    sl_status st = SL_OK;
    jparser p = { 0 };
    sl_safetensors *s = calloc(1, sizeof *s);
    if (!s) {
        free(file);
        return sl_error_set(err, SL_ERR_NOMEM, PFX "out of memory");
    }
    s->file = file;
    s->size = size;
    if (size < 8) {
        st = sl_error_set(err, SL_ERR_FORMAT, PFX "file has %zu bytes, fewer than the 8-byte "
                          "header length", size);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--)
        hlen = hlen << 8 | file[k];
    if (hlen > SL_ST_MAX_HEADER) {
        st = sl_error_set(err, SL_ERR_FORMAT, PFX "header length %llu exceeds the %llu-byte "
                          "limit", (unsigned long long)hlen,
                          (unsigned long long)SL_ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > size - 8) {
        st = sl_error_set(err, SL_ERR_FORMAT, PFX "header length %llu exceeds the %zu bytes "
                          "after the length prefix", (unsigned long long)hlen, size - 8);
        goto fail;
    }
    s->data = file + 8 + hlen;
    s->data_len = size - 8 - hlen;
    p.s = (const char *)file + 8;
    p.n = (size_t)hlen;
    p.err = err;
    jskip_ws(&p);
    if (p.i >= p.n || p.s[p.i] != '{') {
        st = jfail(&p, p.i >= p.n ? "unexpected end" : "expected '{'");
        goto fail;
    }
    long root = jvalue(&p, -1, 1);
    if (root < 0) {
        st = p.st;
        goto fail;
    }
    jskip_ws(&p);
    if (p.i != p.n) {
        st = jfail(&p, "trailing characters");
        goto fail;
    }
    /* Count tensors, check metadata. */
    size_t nt = 0, nm = 0;
    for (long c = p.nodes[root].first; c >= 0; c = p.nodes[c].next) {
        if (strcmp(p.nodes[c].key, "__metadata__") != 0) {
            nt++;
            continue;
        }
        if (p.nodes[c].type != J_OBJECT) {
            st = sl_error_set(err, SL_ERR_FORMAT, PFX "__metadata__ is not a JSON object");
            goto fail;
        }
        for (long m = p.nodes[c].first; m >= 0; m = p.nodes[m].next, nm++)
            if (p.nodes[m].type != J_STRING) {
                st = sl_error_set(err, SL_ERR_FORMAT, PFX "__metadata__ value of '%.64s' is "
                                  "not a string", p.nodes[m].key);
                goto fail;
            }
    }
    s->t = calloc(nt ? nt : 1, sizeof *s->t);
    s->meta_k = calloc(nm ? nm : 1, sizeof(char *));
    s->meta_v = calloc(nm ? nm : 1, sizeof(char *));
    if (!s->t || !s->meta_k || !s->meta_v) {
        st = sl_error_set(err, SL_ERR_NOMEM, PFX "out of memory");
        goto fail;
    }
    int seen_meta = 0;
    for (long c = p.nodes[root].first; c >= 0; c = p.nodes[c].next) {
        jnode *nc = &p.nodes[c];
        if (strcmp(nc->key, "__metadata__") == 0) {
            if (seen_meta++) {   /* a second __metadata__ member */
                st = sl_error_set(err, SL_ERR_FORMAT, PFX "duplicate __metadata__");
                goto fail;
            }
            for (long m = nc->first; m >= 0; m = p.nodes[m].next) {
                /* move the strings: the parser's copies become the handle's */
                s->meta_k[s->n_meta] = p.nodes[m].key;
                s->meta_v[s->n_meta++] = p.nodes[m].str;
                p.nodes[m].key = p.nodes[m].str = NULL;
            }
            continue;
        }
        tensor *t = &s->t[s->n];
        if ((st = parse_tensor(&p, c, nc->key, t, s->data_len, err)) != SL_OK)
            goto fail;
        t->name = nc->key;
        nc->key = NULL;
        t->info.name = t->name;
        s->n++;
    }
    /* Duplicate names (tensors among themselves, and metadata keys). */
    {
        size_t nn = s->n > s->n_meta ? s->n : s->n_meta;
        char **names = malloc((nn ? nn : 1) * sizeof(char *));
        if (!names) {
            st = sl_error_set(err, SL_ERR_NOMEM, PFX "out of memory");
            goto fail;
        }
        for (int pass = 0; pass < 2 && st == SL_OK; pass++) {
            size_t cnt = pass == 0 ? s->n : s->n_meta;
            for (size_t k = 0; k < cnt; k++)
                names[k] = pass == 0 ? s->t[k].name : s->meta_k[k];
            qsort(names, cnt, sizeof(char *), cmp_name);
            for (size_t k = 1; k < cnt; k++)
                if (strcmp(names[k - 1], names[k]) == 0) {
                    st = sl_error_set(err, SL_ERR_FORMAT, PFX "duplicate %s '%.64s'",
                                      pass == 0 ? "tensor name" : "metadata key", names[k]);
                    break;
                }
        }
        free(names);
        if (st != SL_OK)
            goto fail;
    }
    /* The tensors must tile the data section exactly: sorted by offset, each starts where
     * the previous ended, the first at 0, the last at the end. */
    qsort(s->t, s->n, sizeof *s->t, cmp_tensor);
    for (size_t k = 0; k < s->n; k++)
        s->t[k].info.shape = s->t[k].shape;   /* moved by qsort */
    uint64_t at = 0;
    for (size_t k = 0; k < s->n; k++) {
        const sl_st_info *ti = &s->t[k].info;
        if (ti->begin > at) {
            st = sl_error_set(err, SL_ERR_FORMAT, PFX "gap in the data section: bytes %llu..%llu "
                              "belong to no tensor", (unsigned long long)at,
                              (unsigned long long)ti->begin);
            goto fail;
        }
        if (ti->begin < at) {
            st = sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' (bytes %llu..%llu) "
                              "overlaps tensor '%.64s'", ti->name, (unsigned long long)ti->begin,
                              (unsigned long long)ti->end, s->t[k - 1].info.name);
            goto fail;
        }
        at = ti->end;
    }
    if (at != s->data_len) {
        st = sl_error_set(err, SL_ERR_FORMAT, PFX "data section has %llu bytes but the tensors "
                          "cover %llu", (unsigned long long)s->data_len, (unsigned long long)at);
        goto fail;
    }
    jfree(&p);
    *out = s;
    return SL_OK;
fail:
    jfree(&p);
    sl_safetensors_close(s);
    return st;
}

sl_status sl_safetensors_open_memory(const void *data, size_t size, sl_safetensors **out,
                                     sl_error *err)
{
    *out = NULL;
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return sl_error_set(err, SL_ERR_NOMEM, PFX "cannot allocate %zu bytes", size);
    if (size)
        memcpy(copy, data, size);
    return parse(copy, size, out, err);
}

sl_status sl_safetensors_open(const char *path, sl_safetensors **out, sl_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sl_error_set(err, SL_ERR_IO, PFX "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return sl_error_set(err, SL_ERR_IO, PFX "'%s' is not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return sl_error_set(err, SL_ERR_NOMEM, PFX "cannot allocate %zu bytes for '%s'", size,
                            path);
    }
    size_t got = fread(buf, 1, size, f);
    fclose(f);
    if (got != size) {
        free(buf);
        return sl_error_set(err, SL_ERR_IO, PFX "short read of '%s' (%zu of %zu bytes)", path,
                            got, size);
    }
    sl_status st = parse(buf, size, out, err);
    if (st != SL_OK)
        sl_error_prefix(err, "%s", path);
    return st;
}

size_t sl_safetensors_count(const sl_safetensors *st) { return st->n; }

const sl_st_info *sl_safetensors_info(const sl_safetensors *st, size_t i)
{
    return i < st->n ? &st->t[i].info : NULL;
}

long sl_safetensors_find(const sl_safetensors *st, const char *name)
{
    for (size_t k = 0; k < st->n; k++)
        if (strcmp(st->t[k].name, name) == 0)
            return (long)k;
    return -1;
}

size_t sl_safetensors_meta_count(const sl_safetensors *st) { return st->n_meta; }
const char *sl_safetensors_meta_key(const sl_safetensors *st, size_t i)
{
    return i < st->n_meta ? st->meta_k[i] : NULL;
}
const char *sl_safetensors_meta_value(const sl_safetensors *st, size_t i)
{
    return i < st->n_meta ? st->meta_v[i] : NULL;
}
const char *sl_safetensors_meta_get(const sl_safetensors *st, const char *key)
{
    for (size_t k = 0; k < st->n_meta; k++)
        if (strcmp(st->meta_k[k], key) == 0)
            return st->meta_v[k];
    return NULL;
}

float sl_f16_to_f32(uint16_t h)
{
    /* sign | 5-bit exponent (bias 15) | 10-bit fraction. Re-biased to float's 8-bit
     * exponent (bias 127); subnormal halves are normalised (every one is a normal float);
     * exponent 31 maps to 255 (inf, NaN with its payload shifted). */
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, frac = h & 0x3FF;
    uint32_t bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | frac << 13;
    } else if (exp != 0) {
        bits = sign | (exp + 112) << 23 | frac << 13;
    } else if (frac == 0) {
        bits = sign;
    } else {
        /* value = frac 2^-24: shift the leading 1 to bit 10, lowering the exponent */
        int e = -1;
        do {
            frac <<= 1;
            e++;
        } while (!(frac & 0x400));
        bits = sign | (uint32_t)(112 - e) << 23 | (frac & 0x3FF) << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float sl_bf16_to_f32(uint16_t b)
{
    /* bfloat16 is the top half of a float32. */
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

sl_status sl_safetensors_read_f32(const sl_safetensors *st, const char *name, float *out,
                                  int ndim, const int64_t *shape, sl_error *err)
{
    long k = sl_safetensors_find(st, name);
    if (k < 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, PFX "no tensor named '%s'", name);
    const tensor *t = &st->t[k];
    int same = ndim == t->info.ndim;
    for (int d = 0; same && d < ndim; d++)
        same = shape[d] == t->shape[d];
    if (!same) {
        char want[160] = "", have[160] = "";
        for (int d = 0; d < ndim && d < SL_ST_MAX_DIMS; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "",
                     (long long)shape[d]);
        for (int d = 0; d < t->info.ndim; d++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%lld", d ? ", " : "",
                     (long long)t->shape[d]);
        return sl_error_set(err, SL_ERR_FORMAT, PFX "tensor '%.64s' has shape [%s], expected [%s]",
                            name, have, want);
    }
    const uint8_t *src = st->data + t->info.begin;
    uint64_t n = t->info.numel;
    if (strcmp(t->info.dtype, "F32") == 0) {
        for (uint64_t i = 0; i < n; i++) {
            uint32_t b = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 |
                         (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24;
            memcpy(&out[i], &b, 4);
        }
    } else if (strcmp(t->info.dtype, "F16") == 0 || strcmp(t->info.dtype, "BF16") == 0) {
        int half = t->info.dtype[0] == 'F';
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
            out[i] = half ? sl_f16_to_f32(h) : sl_bf16_to_f32(h);
        }
    } else {
        return sl_error_set(err, SL_ERR_UNSUPPORTED, PFX "tensor '%.64s' has dtype %s; only F32, "
                            "F16 and BF16 are read as float", name, t->info.dtype);
    }
    return SL_OK;
}

/* ======================================================================================
 * Writer
 * ====================================================================================== */

typedef struct wtensor {
    char *name;
    int ndim;
    int64_t shape[SL_ST_MAX_DIMS];
    uint64_t numel;
    float *data;
} wtensor;

struct sl_st_writer {
    wtensor *t;
    size_t n, cap;
    char **mk, **mv;
    size_t nm, mcap;
};

static int valid_utf8(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_len((const unsigned char *)s + i, n - i);
        if (!len)
            return 0;
        i += len;
    }
    return 1;
}

sl_status sl_st_writer_create(sl_st_writer **out, sl_error *err)
{
    *out = calloc(1, sizeof **out);
    return *out ? SL_OK : sl_error_set(err, SL_ERR_NOMEM, PFX "out of memory");
}

void sl_st_writer_destroy(sl_st_writer *w)
{
    if (!w)
        return;
    for (size_t k = 0; k < w->n; k++) {
        free(w->t[k].name);
        free(w->t[k].data);
    }
    for (size_t k = 0; k < w->nm; k++) {
        free(w->mk[k]);
        free(w->mv[k]);
    }
    free(w->t);
    free(w->mk);
    free(w->mv);
    free(w);
}

sl_status sl_st_writer_add(sl_st_writer *w, const char *name, int ndim, const int64_t *shape,
                           const float *data, sl_error *err)
{
    if (!name[0] || !valid_utf8(name) || strcmp(name, "__metadata__") == 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, PFX "invalid tensor name '%s'", name);
    if (ndim < 0 || ndim > SL_ST_MAX_DIMS)
        return sl_error_set(err, SL_ERR_INVALID_ARG, PFX "tensor '%.64s' has %d dimensions (0..%d)",
                            name, ndim, SL_ST_MAX_DIMS);
    for (size_t k = 0; k < w->n; k++)
        if (strcmp(w->t[k].name, name) == 0)
            return sl_error_set(err, SL_ERR_INVALID_ARG, PFX "duplicate tensor name '%s'", name);
    uint64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] && numel > (UINT64_MAX / 4) / (uint64_t)shape[d]))
            return sl_error_set(err, SL_ERR_INVALID_ARG, PFX "tensor '%.64s' has an invalid shape",
                                name);
        numel *= (uint64_t)shape[d];
    }
    if (numel > SIZE_MAX / sizeof(float))
        return sl_error_set(err, SL_ERR_INVALID_ARG, PFX "tensor '%.64s' is too large", name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        wtensor *t = realloc(w->t, cap * sizeof *t);
        if (!t)
            return sl_error_set(err, SL_ERR_NOMEM, PFX "out of memory");
        w->t = t;
        w->cap = cap;
    }
    wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->data = malloc(numel ? numel * sizeof(float) : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return sl_error_set(err, SL_ERR_NOMEM, PFX "out of memory");
    }
    if (numel)
        memcpy(t->data, data, numel * sizeof(float));
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->numel = numel;
    w->n++;
    return SL_OK;
}

sl_status sl_st_writer_meta(sl_st_writer *w, const char *key, const char *value, sl_error *err)
{
    if (!valid_utf8(key) || !valid_utf8(value))
        return sl_error_set(err, SL_ERR_INVALID_ARG, PFX "metadata key or value is not UTF-8");
    for (size_t k = 0; k < w->nm; k++)
        if (strcmp(w->mk[k], key) == 0) {
            char *v = strdup(value);
            if (!v)
                return sl_error_set(err, SL_ERR_NOMEM, PFX "out of memory");
            free(w->mv[k]);
            w->mv[k] = v;
            return SL_OK;
        }
    if (w->nm == w->mcap) {
        size_t cap = w->mcap ? 2 * w->mcap : 8;
        char **a = realloc(w->mk, cap * sizeof(char *));
        if (!a)
            return sl_error_set(err, SL_ERR_NOMEM, PFX "out of memory");
        w->mk = a;
        char **b = realloc(w->mv, cap * sizeof(char *));
        if (!b)
            return sl_error_set(err, SL_ERR_NOMEM, PFX "out of memory");
        w->mv = b;
        w->mcap = cap;
    }
    w->mk[w->nm] = strdup(key);
    w->mv[w->nm] = strdup(value);
    if (!w->mk[w->nm] || !w->mv[w->nm]) {
        free(w->mk[w->nm]);
        free(w->mv[w->nm]);
        return sl_error_set(err, SL_ERR_NOMEM, PFX "out of memory");
    }
    w->nm++;
    return SL_OK;
}

/* A growable byte buffer for the header. */
typedef struct buf { char *p; size_t n, cap; int bad; } buf;

static void bput(buf *b, const char *s, size_t n)
{
    if (b->bad)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->bad = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void bputs(buf *b, const char *s) { bput(b, s, strlen(s)); }

/* A JSON string literal: quotes, backslashes and control characters escaped. */
static void bput_json_string(buf *b, const char *s)
{
    bputs(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            bput(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            bputs(b, e);
        } else {
            bput(b, (const char *)&c, 1);
        }
    }
    bputs(b, "\"");
}

sl_status sl_st_writer_to_memory(const sl_st_writer *w, uint8_t **out, size_t *len,
                                 sl_error *err)
{
    *out = NULL;
    *len = 0;
    buf h = { 0 };
    char num[64];
    bputs(&h, "{");
    if (w->nm) {
        bputs(&h, "\"__metadata__\":{");
        for (size_t k = 0; k < w->nm; k++) {
            if (k)
                bputs(&h, ",");
            bput_json_string(&h, w->mk[k]);
            bputs(&h, ":");
            bput_json_string(&h, w->mv[k]);
        }
        bputs(&h, "}");
    }
    uint64_t at = 0;
    for (size_t k = 0; k < w->n; k++) {
        const wtensor *t = &w->t[k];
        if (k || w->nm)
            bputs(&h, ",");
        bput_json_string(&h, t->name);
        bputs(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            bputs(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)at,
                 (unsigned long long)(at + 4 * t->numel));
        bputs(&h, num);
        at += 4 * t->numel;
    }
    bputs(&h, "}");
    /* Pad with spaces so the data section starts 8-byte aligned (8 + N, N % 8 == 0). */
    while (!h.bad && h.n % 8)
        bputs(&h, " ");
    if (h.bad || h.n > SL_ST_MAX_HEADER) {
        free(h.p);
        return sl_error_set(err, h.bad ? SL_ERR_NOMEM : SL_ERR_INVALID_ARG,
                            PFX "cannot build a header of %zu bytes", h.n);
    }
    size_t total = 8 + h.n + (size_t)at;
    uint8_t *o = malloc(total);
    if (!o) {
        free(h.p);
        return sl_error_set(err, SL_ERR_NOMEM, PFX "cannot allocate %zu bytes", total);
    }
    uint64_t hl = h.n;
    for (int k = 0; k < 8; k++)
        o[k] = (uint8_t)(hl >> (8 * k));
    memcpy(o + 8, h.p, h.n);
    free(h.p);
    uint8_t *d = o + 8 + hl;
    for (size_t k = 0; k < w->n; k++)
        for (uint64_t i = 0; i < w->t[k].numel; i++) {
            uint32_t b;
            memcpy(&b, &w->t[k].data[i], 4);
            d[0] = (uint8_t)b, d[1] = (uint8_t)(b >> 8), d[2] = (uint8_t)(b >> 16),
            d[3] = (uint8_t)(b >> 24);
            d += 4;
        }
    *out = o;
    *len = total;
    return SL_OK;
}

sl_status sl_st_writer_write(const sl_st_writer *w, const char *path, sl_error *err)
{
    uint8_t *img;
    size_t len;
    sl_status st = sl_st_writer_to_memory(w, &img, &len, err);
    if (st != SL_OK)
        return st;
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16), *dircopy = strdup(path);
    if (!tmp || !dircopy) {
        free(img), free(tmp), free(dircopy);
        return sl_error_set(err, SL_ERR_NOMEM, PFX "out of memory");
    }
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = sl_error_set(err, SL_ERR_IO, PFX "cannot create a temporary file beside '%s': %s",
                          path, strerror(errno));
        goto done;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t k = write(fd, img + off, len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            st = sl_error_set(err, SL_ERR_IO, PFX "cannot write '%s': %s", tmp,
                              strerror(k < 0 ? errno : EIO));
            break;
        }
        off += (size_t)k;
    }
    /* Data first, then the name: after the rename the name must never point at blocks
     * that a power loss could leave unwritten. */
    if (st == SL_OK && fsync(fd) != 0)
        st = sl_error_set(err, SL_ERR_IO, PFX "fsync('%s') failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == SL_OK)
        st = sl_error_set(err, SL_ERR_IO, PFX "cannot close '%s': %s", tmp, strerror(errno));
    if (st == SL_OK && rename(tmp, path) != 0)
        st = sl_error_set(err, SL_ERR_IO, PFX "cannot rename '%s' to '%s': %s", tmp, path,
                          strerror(errno));
    if (st != SL_OK) {
        unlink(tmp);
        goto done;
    }
    int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        /* The rename lives in the directory; a failed directory fsync (some file systems
         * refuse it) does not undo a completed rename, so it is not an error. */
        (void)fsync(dfd);
        close(dfd);
    }
done:
    free(img);
    free(tmp);
    free(dircopy);
    return st;
}
