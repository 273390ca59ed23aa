/* plugins/representations/gaussians/ply.c — PLY import/export of Gaussian splats (ply.h).
 *
 * The parser never trusts a number from the file before checking it: the header is read
 * only within GS_PLY_MAX_HEADER bytes, each line is tokenised into at most a few words of
 * bounded length, counts are decimal digits accumulated with an overflow check against
 * GS_PLY_MAX_COUNT, the byte size of every element (count x stride) is checked for
 * overflow, and the sum must equal the bytes after the header before anything is
 * allocated, so allocations are bounded by the file's size. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ply.h"

#define GS_PLY_MAX_COUNT ((uint64_t)1 << 40)
enum { MAX_ELEMENTS = 16, MAX_PROPS = 256, MAX_LINE = 256, MAX_WORDS = 6, MAX_WORD = 64 };

typedef enum ptype { P_NONE = 0, P_I8, P_U8, P_I16, P_U16, P_I32, P_U32, P_F32, P_F64 } ptype;

static const struct { const char *name; ptype t; int size; } type_names[] = {
    { "char", P_I8, 1 },   { "uchar", P_U8, 1 },  { "short", P_I16, 2 }, { "ushort", P_U16, 2 },
    { "int", P_I32, 4 },   { "uint", P_U32, 4 },  { "float", P_F32, 4 }, { "double", P_F64, 8 },
    { "int8", P_I8, 1 },   { "uint8", P_U8, 1 },  { "int16", P_I16, 2 }, { "uint16", P_U16, 2 },
    { "int32", P_I32, 4 }, { "uint32", P_U32, 4 }, { "float32", P_F32, 4 },
    { "float64", P_F64, 8 },
};

typedef struct prop {
    char name[MAX_WORD];
    ptype type;
    int size;
    size_t offset;   /* within the element's record */
} prop;

typedef struct element {
    char name[MAX_WORD];
    uint64_t count;
    prop props[MAX_PROPS];
    int n_props;
    size_t stride;
} element;

/* Splits a line into words separated by single or repeated spaces. Returns the number of
 * words, or -1 when a word is too long or there are too many (the caller reports). */
static int split(const char *line, size_t len, char words[MAX_WORDS][MAX_WORD])
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && line[i] == ' ')
            i++;
        if (i >= len)
            break;
        if (n == MAX_WORDS)
            return -1;
        size_t j = 0;
        while (i < len && line[i] != ' ') {
            if (j + 1 >= MAX_WORD)
                return -1;
            words[n][j++] = line[i++];
        }
        words[n][j] = '\0';
        n++;
    }
    return n;
}

/* Decimal digits only, <= GS_PLY_MAX_COUNT; returns 0 on success, 1 bad syntax, 2 too large. */
static int parse_count(const char *s, uint64_t *out)
{
    if (!*s)
        return 1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return 1;
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > GS_PLY_MAX_COUNT)
            return 2;
    }
    *out = v;
    return 0;
}

static double read_scalar(const uint8_t *p, ptype t)
{
    uint64_t u = 0;
    switch (t) {
    case P_I8: return (double)(int8_t)p[0];
    case P_U8: return (double)p[0];
    case P_I16: return (double)(int16_t)(uint16_t)(p[0] | p[1] << 8);
    case P_U16: return (double)(uint16_t)(p[0] | p[1] << 8);
    case P_I32:
    case P_U32:
    case P_F32: {
        uint32_t w = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        if (t == P_I32) return (double)(int32_t)w;
        if (t == P_U32) return (double)w;
        float f;
        memcpy(&f, &w, 4);
        return f;
    }
    case P_F64: {
        for (int i = 7; i >= 0; i--)
            u = u << 8 | p[i];
        double d;
        memcpy(&d, &u, 8);
        return d;
    }
    default: return 0.0;
    }
}

static void put_f32(uint8_t *p, float f)
{
    uint32_t w;
    memcpy(&w, &f, 4);
    p[0] = (uint8_t)w; p[1] = (uint8_t)(w >> 8); p[2] = (uint8_t)(w >> 16); p[3] = (uint8_t)(w >> 24);
}

void gs_ply_free(gs_ply_data *d)
{
    if (!d)
        return;
    free(d->means); free(d->sh_dc); free(d->sh_rest); free(d->opacity); free(d->log_scales);
    free(d->quats);
    memset(d, 0, sizeof *d);
}

/* Whether the line is `word` alone or `word` followed by a space. */
static int is_keyword_line(const char *line, size_t len, const char *word)
{
    size_t w = strlen(word);
    return len >= w && !strncmp(line, word, w) && (len == w || line[w] == ' ');
}

static const prop *find_prop(const element *e, const char *name)
{
    for (int i = 0; i < e->n_props; i++)
        if (!strcmp(e->props[i].name, name))
            return &e->props[i];
    return NULL;
}

sl_status gs_ply_parse(const uint8_t *buf, size_t size, gs_ply_data *out, sl_error *err)
{
    memset(out, 0, sizeof *out);
    if (!buf || size < 4 || memcmp(buf, "ply\n", 4) != 0)
        return sl_error_set(err, SL_ERR_FORMAT, "ply: not a PLY file (missing 'ply' magic)");
    element *el = calloc(MAX_ELEMENTS, sizeof *el);
    if (!el)
        return sl_error_set(err, SL_ERR_NOMEM, "ply: out of memory");
    sl_status st = SL_OK;
    int n_el = 0, have_format = 0, line_no = 1;
    size_t at = 4, data_at = 0;
    char words[MAX_WORDS][MAX_WORD];
    const size_t hlimit = size < GS_PLY_MAX_HEADER ? size : GS_PLY_MAX_HEADER;

    /* ---- header, one line at a time */
    for (;;) {
        const uint8_t *nl = memchr(buf + at, '\n', hlimit - at);
        if (!nl) {
            st = sl_error_set(err, SL_ERR_FORMAT, "ply: header is not terminated by "
                              "'end_header' within %d bytes", GS_PLY_MAX_HEADER);
            goto done;
        }
        line_no++;
        size_t len = (size_t)(nl - (buf + at));
        const char *line = (const char *)buf + at;
        at += len + 1;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e) {
                st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: non-printable byte in "
                                  "the header", line_no);
                goto done;
            }
        if (is_keyword_line(line, len, "comment") || is_keyword_line(line, len, "obj_info"))
            continue;   /* free text, any length */
        if (len > MAX_LINE) {
            st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: longer than %d characters",
                              line_no, MAX_LINE);
            goto done;
        }
        int nw = split(line, len, words);
        if (nw < 0) {
            st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: too many or too long words",
                              line_no);
            goto done;
        }
        if (nw == 0) {
            st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: empty header line", line_no);
            goto done;
        }
        if (!strcmp(words[0], "format")) {
            if (have_format) {
                st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: second format line", line_no);
                goto done;
            }
            if (nw != 3 || strcmp(words[1], "binary_little_endian") || strcmp(words[2], "1.0")) {
                st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: format '%s%s%s' is not "
                                  "supported (only binary_little_endian 1.0)", line_no,
                                  nw > 1 ? words[1] : "", nw > 2 ? " " : "", nw > 2 ? words[2] : "");
                goto done;
            }
            have_format = 1;
            continue;
        }
        if (!have_format) {
            st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: '%s' before the format line",
                              line_no, words[0]);
            goto done;
        }
        if (!strcmp(words[0], "end_header")) {
            if (nw != 1) {
                st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: text after end_header",
                                  line_no);
                goto done;
            }
            data_at = at;
            break;
        }
        if (!strcmp(words[0], "element")) {
            if (nw != 3) {
                st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: expected 'element NAME "
                                  "COUNT'", line_no);
                goto done;
            }
            if (n_el == MAX_ELEMENTS) {
                st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: more than %d elements",
                                  line_no, MAX_ELEMENTS);
                goto done;
            }
            for (int i = 0; i < n_el; i++)
                if (!strcmp(el[i].name, words[1])) {
                    st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: duplicate element "
                                      "'%s'", line_no, words[1]);
                    goto done;
                }
            element *e = &el[n_el];
            int r = parse_count(words[2], &e->count);
            if (r) {
                st = sl_error_set(err, SL_ERR_FORMAT, r == 1 ? "ply: line %d: bad element "
                                  "count '%s'" : "ply: line %d: element count %s is too large",
                                  line_no, words[2]);
                goto done;
            }
            snprintf(e->name, sizeof e->name, "%s", words[1]);
            n_el++;
            continue;
        }
        if (!strcmp(words[0], "property")) {
            if (n_el == 0) {
                st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: property outside an "
                                  "element", line_no);
                goto done;
            }
            if (nw >= 2 && !strcmp(words[1], "list")) {
                st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: list properties are not "
                                  "supported ('%s')", line_no, nw >= 5 ? words[4] : "?");
                goto done;
            }
            if (nw != 3) {
                st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: expected 'property TYPE "
                                  "NAME'", line_no);
                goto done;
            }
            element *e = &el[n_el - 1];
            ptype t = P_NONE;
            int sz = 0;
            for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
                if (!strcmp(type_names[i].name, words[1])) {
                    t = type_names[i].t;
                    sz = type_names[i].size;
                }
            if (t == P_NONE) {
                st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: unknown property type "
                                  "'%s'", line_no, words[1]);
                goto done;
            }
            if (find_prop(e, words[2])) {
                st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: duplicate property '%s'",
                                  line_no, words[2]);
                goto done;
            }
            if (e->n_props == MAX_PROPS) {
                st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: more than %d properties",
                                  line_no, MAX_PROPS);
                goto done;
            }
            prop *p = &e->props[e->n_props++];
            snprintf(p->name, sizeof p->name, "%s", words[2]);
            p->type = t;
            p->size = sz;
            p->offset = e->stride;
            e->stride += (size_t)sz;
            continue;
        }
        st = sl_error_set(err, SL_ERR_FORMAT, "ply: line %d: unknown keyword '%s'", line_no,
                          words[0]);
        goto done;
    }

    /* ---- the vertex element and its properties */
    const element *v = NULL;
    size_t v_offset = 0, need = 0;
    for (int i = 0; i < n_el; i++) {
        if (el[i].count > 0 && el[i].stride == 0) {
            st = sl_error_set(err, SL_ERR_FORMAT, "ply: element '%s' has no properties",
                              el[i].name);
            goto done;
        }
        if (!strcmp(el[i].name, "vertex")) {
            v = &el[i];
            v_offset = need;
        }
        /* count <= 2^40 and stride <= 256 * 8: the product fits in 64 bits; the sum is
         * checked against the file size at each step. */
        uint64_t bytes = el[i].count * (uint64_t)el[i].stride;
        if (bytes > (uint64_t)(size - data_at) - need) {
            st = sl_error_set(err, SL_ERR_FORMAT, "ply: truncated: the header declares more "
                              "data than the file's %zu bytes after the header",
                              size - data_at);
            goto done;
        }
        need += (size_t)bytes;
    }
    if (!v) {
        st = sl_error_set(err, SL_ERR_FORMAT, "ply: no 'vertex' element");
        goto done;
    }
    if (need != size - data_at) {
        st = sl_error_set(err, SL_ERR_FORMAT, "ply: %zu trailing bytes after the declared data",
                          size - data_at - need);
        goto done;
    }
    static const char *const required[] = { "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2",
                                            "opacity", "scale_0", "scale_1", "scale_2",
                                            "rot_0", "rot_1", "rot_2", "rot_3" };
    enum { NREQ = 14 };
    const prop *rp[NREQ + 45];
    for (int i = 0; i < NREQ; i++) {
        rp[i] = find_prop(v, required[i]);
        if (!rp[i]) {
            st = sl_error_set(err, SL_ERR_FORMAT, "ply: vertex property '%s' is missing",
                              required[i]);
            goto done;
        }
    }
    int n_rest = 0, n_rest_any = 0;
    for (int i = 0; i < v->n_props; i++)
        if (!strncmp(v->props[i].name, "f_rest_", 7))
            n_rest_any++;
    while (n_rest < 45) {
        char name[24];
        snprintf(name, sizeof name, "f_rest_%d", n_rest);
        const prop *p = find_prop(v, name);
        if (!p)
            break;
        rp[NREQ + n_rest++] = p;
    }
    if (n_rest != n_rest_any || (n_rest != 0 && n_rest != 9 && n_rest != 24 && n_rest != 45)) {
        st = sl_error_set(err, SL_ERR_FORMAT, "ply: %d f_rest properties (expected 0, 9, 24 "
                          "or 45, numbered from f_rest_0)", n_rest_any);
        goto done;
    }
    for (int i = 0; i < NREQ + n_rest; i++)
        if (rp[i]->type != P_F32 && rp[i]->type != P_F64) {
            st = sl_error_set(err, SL_ERR_FORMAT, "ply: vertex property '%s' must be float or "
                              "double", rp[i]->name);
            goto done;
        }

    /* ---- data (bounded by the file size, checked above) */
    const size_t n = (size_t)v->count;
    const int deg = n_rest == 0 ? 0 : n_rest == 9 ? 1 : n_rest == 24 ? 2 : 3;
    const int K1 = n_rest / 3;   /* rest coefficients per channel */
    out->n = n;
    out->sh_degree = deg;
    size_t nn = n ? n : 1;
    out->means = malloc(nn * 3 * sizeof(float));
    out->sh_dc = malloc(nn * 3 * sizeof(float));
    out->sh_rest = K1 ? malloc(nn * (size_t)n_rest * sizeof(float)) : NULL;
    out->opacity = malloc(nn * sizeof(float));
    out->log_scales = malloc(nn * 3 * sizeof(float));
    out->quats = malloc(nn * 4 * sizeof(float));
    if (!out->means || !out->sh_dc || (K1 && !out->sh_rest) || !out->opacity ||
        !out->log_scales || !out->quats) {
        st = sl_error_set(err, SL_ERR_NOMEM, "ply: out of memory for %zu Gaussians", n);
        goto done;
    }
    const uint8_t *base = buf + data_at + v_offset;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *rec = base + i * v->stride;
        float val[NREQ + 45];
        for (int k = 0; k < NREQ + n_rest; k++) {
            double d = read_scalar(rec + rp[k]->offset, rp[k]->type);
            if (!isfinite(d) || fabs(d) > 3.0e38) {
                st = sl_error_set(err, SL_ERR_FORMAT, "ply: non-finite or out-of-range '%s' "
                                  "of vertex %zu", rp[k]->name, i);
                goto done;
            }
            val[k] = (float)d;
        }
        for (int c = 0; c < 3; c++) {
            out->means[i * 3 + c] = val[c];
            out->sh_dc[i * 3 + c] = val[3 + c];
            out->log_scales[i * 3 + c] = val[7 + c];
        }
        out->opacity[i] = val[6];
        for (int c = 0; c < 4; c++)
            out->quats[i * 4 + c] = val[10 + c];
        /* f_rest_{c K1 + k} -> sh_rest[i][k][c] */
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < K1; k++)
                out->sh_rest[(i * K1 + k) * 3 + c] = val[NREQ + c * K1 + k];
    }
done:
    free(el);
    if (st != SL_OK)
        gs_ply_free(out);
    return st;
}

sl_status gs_ply_read(const char *path, gs_ply_data *out, sl_error *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return sl_error_set(err, SL_ERR_IO, "ply: cannot open '%s': %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t size = 0, cap = 0;
    sl_status st = SL_OK;
    for (;;) {
        if (size == cap) {
            size_t nc = cap ? cap * 2 : 1 << 16;
            uint8_t *nb = realloc(buf, nc);
            if (!nb) {
                st = sl_error_set(err, SL_ERR_NOMEM, "ply: out of memory reading '%s'", path);
                break;
            }
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + size, 1, cap - size, f);
        size += got;
        if (got == 0) {
            if (ferror(f))
                st = sl_error_set(err, SL_ERR_IO, "ply: cannot read '%s'", path);
            break;
        }
    }
    fclose(f);
    if (st == SL_OK) {
        st = gs_ply_parse(buf, size, out, err);
        if (st != SL_OK)
            sl_error_prefix(err, "%s", path);
    }
    free(buf);
    return st;
}

sl_status gs_ply_encode(const gs_ply_data *in, uint8_t **buf, size_t *size, sl_error *err)
{
    *buf = NULL;
    *size = 0;
    if (in->sh_degree < 0 || in->sh_degree > 3)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "ply: SH degree %d outside 0..3",
                            in->sh_degree);
    const int K1 = (in->sh_degree + 1) * (in->sh_degree + 1) - 1;
    const int nprop = 6 + 3 + 3 * K1 + 1 + 3 + 4;
    char header[4096];
    int h = snprintf(header, sizeof header,
                     "ply\nformat binary_little_endian 1.0\nelement vertex %zu\n"
                     "property float x\nproperty float y\nproperty float z\n"
                     "property float nx\nproperty float ny\nproperty float nz\n"
                     "property float f_dc_0\nproperty float f_dc_1\nproperty float f_dc_2\n",
                     in->n);
    for (int k = 0; k < 3 * K1; k++)
        h += snprintf(header + h, sizeof header - (size_t)h, "property float f_rest_%d\n", k);
    h += snprintf(header + h, sizeof header - (size_t)h,
                  "property float opacity\nproperty float scale_0\nproperty float scale_1\n"
                  "property float scale_2\nproperty float rot_0\nproperty float rot_1\n"
                  "property float rot_2\nproperty float rot_3\nend_header\n");
    const size_t stride = (size_t)nprop * 4;
    if (in->n > (SIZE_MAX - (size_t)h) / stride)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "ply: %zu Gaussians are too many", in->n);
    size_t total = (size_t)h + in->n * stride;
    uint8_t *b = malloc(total);
    if (!b)
        return sl_error_set(err, SL_ERR_NOMEM, "ply: out of memory for %zu bytes", total);
    memcpy(b, header, (size_t)h);
    uint8_t *p = b + h;
    for (size_t i = 0; i < in->n; i++) {
        for (int c = 0; c < 3; c++, p += 4) put_f32(p, in->means[i * 3 + c]);
        for (int c = 0; c < 3; c++, p += 4) put_f32(p, 0.0f);
        for (int c = 0; c < 3; c++, p += 4) put_f32(p, in->sh_dc[i * 3 + c]);
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < K1; k++, p += 4)
                put_f32(p, in->sh_rest[((size_t)i * K1 + k) * 3 + c]);
        put_f32(p, in->opacity[i]);
        p += 4;
        for (int c = 0; c < 3; c++, p += 4) put_f32(p, in->log_scales[i * 3 + c]);
        for (int c = 0; c < 4; c++, p += 4) put_f32(p, in->quats[i * 4 + c]);
    }
    *buf = b;
    *size = total;
    return SL_OK;
}

sl_status gs_ply_write(const char *path, const gs_ply_data *in, sl_error *err)
{
    uint8_t *buf;
    size_t size;
    sl_status st = gs_ply_encode(in, &buf, &size, err);
    if (st != SL_OK)
        return st;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(buf);
        return sl_error_set(err, SL_ERR_IO, "ply: cannot create '%s': %s", path, strerror(errno));
    }
    size_t wrote = fwrite(buf, 1, size, f);
    int bad = fclose(f) != 0 || wrote != size;
    free(buf);
    if (bad)
        return sl_error_set(err, SL_ERR_IO, "ply: cannot write '%s'", path);
    return SL_OK;
}
