/* tests/test_image.c — PNG input/output, image helpers and resampling (image.h). */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "steinlab/image.h"

/* ---- helpers: PNG encoding into memory with libpng ---- */

typedef struct membuf {
    uint8_t *data;
    size_t size, cap;
} membuf;

static void membuf_write(png_structp png, png_bytep src, size_t len)
{
    membuf *b = png_get_io_ptr(png);
    if (b->size + len > b->cap) {
        size_t cap = (b->cap ? 2 * b->cap : 1024) + len;
        uint8_t *p = realloc(b->data, cap);
        if (!p)
            png_error(png, "out of memory");
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->size, src, len);
    b->size += len;
}

static void membuf_flush(png_structp png)
{
    (void)png;
}

typedef struct png_spec {
    int width, height, bit_depth, color_type, interlace;
    const png_color *palette;   /* PALETTE only */
    int n_palette;
    const uint8_t *trans;       /* PALETTE only: tRNS alpha per entry, or NULL */
    int n_trans;
} png_spec;

/* Encodes `rows` (packed as libpng expects, 16-bit big-endian) into a new buffer. */
static membuf encode_png(const png_spec *s, const uint8_t *pixels, size_t rowbytes)
{
    membuf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(png && info);
    png_bytep *rows = malloc(s->height * sizeof *rows);
    ck_assert(rows != NULL);
    if (setjmp(png_jmpbuf(png)))
        ck_abort_msg("libpng failed while writing a test image");
    png_set_write_fn(png, &b, membuf_write, membuf_flush);
    png_set_IHDR(png, info, s->width, s->height, s->bit_depth, s->color_type, s->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->palette)
        png_set_PLTE(png, info, s->palette, s->n_palette);
    if (s->trans)
        png_set_tRNS(png, info, s->trans, s->n_trans, NULL);
    for (int y = 0; y < s->height; y++)
        rows[y] = (png_bytep)pixels + (size_t)y * rowbytes;
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return b;
}

static float *decode_ok(const membuf *b, int want_w, int want_h)
{
    float *rgb = NULL;
    int w = 0, h = 0;
    sl_error err = {{0}};
    sl_status st = sl_png_decode_rgb(b->data, b->size, &rgb, &w, &h, &err);
    ck_assert_msg(st == SL_OK, "decode failed: %s", err.msg);
    ck_assert(w == want_w && h == want_h);
    return rgb;
}

static void tmp_path(char *buf, size_t n)
{
    const char *dir = getenv("TMPDIR");
    snprintf(buf, n, "%s/sl_test_image_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(buf);
    ck_assert(fd >= 0);
    close(fd);
}

/* ---- PNG ---- */

START_TEST(test_png_round_trip)
{
    enum { W = 37, H = 23 };
    uint8_t *src = malloc(W * H * 3), *back = malloc(W * H * 3);
    ck_assert(src && back);
    for (int i = 0; i < W * H * 3; i++)
        src[i] = (uint8_t)((i * 97 + 13) % 256);
    char path[512];
    tmp_path(path, sizeof path);
    sl_error err = {{0}};
    ck_assert_msg(sl_png_write_rgb8(path, src, W, H, &err) == SL_OK, "%s", err.msg);
    float *rgb = NULL;
    int w = 0, h = 0;
    ck_assert_msg(sl_png_read_rgb(path, &rgb, &w, &h, &err) == SL_OK, "%s", err.msg);
    ck_assert(w == W && h == H);
    for (int i = 0; i < W * H * 3; i++)
        ck_assert(rgb[i] >= 0.0f && rgb[i] <= 1.0f);
    sl_image_to_u8(rgb, W * H * 3, back);
    ck_assert(memcmp(src, back, W * H * 3) == 0);
    free(rgb);
    remove(path);
    free(src);
    free(back);
}
END_TEST

START_TEST(test_png_io_errors)
{
    float *rgb = (float *)1;
    int w, h;
    sl_error err = {{0}};
    ck_assert(sl_png_read_rgb("/nonexistent/dir/x.png", &rgb, &w, &h, &err) == SL_ERR_IO);
    ck_assert(rgb == NULL && strlen(err.msg) > 0);
    uint8_t px[3] = {1, 2, 3};
    ck_assert(sl_png_write_rgb8("/nonexistent/dir/x.png", px, 1, 1, &err) == SL_ERR_IO);
    ck_assert(sl_png_write_rgb8("/tmp/never.png", px, 0, 1, &err) == SL_ERR_INVALID_ARG);
    /* A file that is not a PNG. */
    char path[512];
    tmp_path(path, sizeof path);
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    fputs("this is not an image, just text that is long enough", f);
    fclose(f);
    err.msg[0] = '\0';
    ck_assert(sl_png_read_rgb(path, &rgb, &w, &h, &err) == SL_ERR_FORMAT);
    ck_assert(strstr(err.msg, path) != NULL);   /* the message names the file */
    remove(path);
}
END_TEST

START_TEST(test_png_palette)
{
    enum { W = 5, H = 3 };
    const png_color pal[3] = {{255, 0, 0}, {0, 128, 255}, {10, 20, 30}};
    const uint8_t trans[3] = {255, 0, 128};   /* alpha is ignored */
    uint8_t idx[W * H];
    for (int i = 0; i < W * H; i++)
        idx[i] = (uint8_t)(i % 3);
    for (int with_trns = 0; with_trns < 2; with_trns++) {
        png_spec s = {W, H, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, pal, 3,
                      with_trns ? trans : NULL, 3};
        membuf b = encode_png(&s, idx, W);
        float *rgb = decode_ok(&b, W, H);
        for (int i = 0; i < W * H; i++) {
            const png_color *p = &pal[i % 3];
            ck_assert(rgb[3 * i + 0] == p->red / 255.0f);
            ck_assert(rgb[3 * i + 1] == p->green / 255.0f);
            ck_assert(rgb[3 * i + 2] == p->blue / 255.0f);
        }
        free(rgb);
        free(b.data);
    }
    /* 2-bit palette indices, packed four per byte. */
    uint8_t packed[H * 2] = {0};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            packed[y * 2 + x / 4] |= (uint8_t)((x + y) % 3 << (6 - 2 * (x % 4)));
    png_spec s2 = {W, H, 2, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, pal, 3, NULL, 0};
    membuf b = encode_png(&s2, packed, 2);
    float *rgb = decode_ok(&b, W, H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            ck_assert(rgb[3 * (y * W + x) + 1] == pal[(x + y) % 3].green / 255.0f);
    free(rgb);
    free(b.data);
}
END_TEST

START_TEST(test_png_16bit)
{
    enum { W = 4, H = 3 };
    uint8_t px[W * H * 6];
    uint16_t val[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) {
        val[i] = (uint16_t)(i * 4099 + 1);   /* low bytes matter */
        px[2 * i] = (uint8_t)(val[i] >> 8);
        px[2 * i + 1] = (uint8_t)(val[i] & 0xff);
    }
    val[0] = 65535;
    px[0] = px[1] = 0xff;
    png_spec s = {W, H, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, NULL, 0, NULL, 0};
    membuf b = encode_png(&s, px, W * 6);
    float *rgb = decode_ok(&b, W, H);
    for (int i = 0; i < W * H * 3; i++)
        ck_assert_msg(rgb[i] == (float)(val[i] / 65535.0), "value %d: %.8f vs %u", i,
                      (double)rgb[i], val[i]);
    ck_assert(rgb[0] == 1.0f);
    free(rgb);
    free(b.data);
    /* 16-bit grey, interlaced. */
    enum { GW = 9, GH = 7 };
    uint8_t g16[GW * GH * 2];
    for (int i = 0; i < GW * GH; i++) {
        g16[2 * i] = (uint8_t)(i * 3);
        g16[2 * i + 1] = (uint8_t)(255 - i);
    }
    png_spec sg = {GW, GH, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7, NULL, 0, NULL, 0};
    b = encode_png(&sg, g16, GW * 2);
    rgb = decode_ok(&b, GW, GH);
    for (int i = 0; i < GW * GH; i++) {
        float want = (float)(((g16[2 * i] << 8) | g16[2 * i + 1]) / 65535.0);
        for (int c = 0; c < 3; c++)
            ck_assert(rgb[3 * i + c] == want);
    }
    free(rgb);
    free(b.data);
}
END_TEST

START_TEST(test_png_grey_alpha)
{
    enum { W = 6, H = 2 };
    uint8_t px[W * H * 2];
    for (int i = 0; i < W * H; i++) {
        px[2 * i] = (uint8_t)(i * 20);         /* grey */
        px[2 * i + 1] = (uint8_t)(i * 7 + 1);  /* alpha, ignored */
    }
    png_spec s = {W, H, 8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, NULL, 0, NULL, 0};
    membuf b = encode_png(&s, px, W * 2);
    float *rgb = decode_ok(&b, W, H);
    for (int i = 0; i < W * H; i++)
        for (int c = 0; c < 3; c++)
            ck_assert(rgb[3 * i + c] == px[2 * i] / 255.0f);
    free(rgb);
    free(b.data);
    /* RGBA: alpha dropped. */
    uint8_t rgba[W * H * 4];
    for (int i = 0; i < W * H * 4; i++)
        rgba[i] = (uint8_t)(i * 5);
    png_spec s4 = {W, H, 8, PNG_COLOR_TYPE_RGBA, PNG_INTERLACE_NONE, NULL, 0, NULL, 0};
    b = encode_png(&s4, rgba, W * 4);
    rgb = decode_ok(&b, W, H);
    for (int i = 0; i < W * H; i++)
        for (int c = 0; c < 3; c++)
            ck_assert(rgb[3 * i + c] == rgba[4 * i + c] / 255.0f);
    free(rgb);
    free(b.data);
    /* 1-bit grey: 0 -> 0, 1 -> 1. */
    uint8_t bits[H] = {0xA0, 0x50};   /* rows 101000.., 010100.. */
    png_spec s1 = {W, H, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, NULL, 0, NULL, 0};
    b = encode_png(&s1, bits, 1);
    rgb = decode_ok(&b, W, H);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float want = (bits[y] >> (7 - x)) & 1 ? 1.0f : 0.0f;
            ck_assert(rgb[3 * (y * W + x)] == want);
        }
    free(rgb);
    free(b.data);
}
END_TEST

/* CRC-32 of PNG chunks (ISO 3309), bitwise, for forging IHDRs. */
static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Layout: signature (8), IHDR length (4) at 8, "IHDR" at 12, width at 16, height at 20,
 * ..., IHDR CRC at 29 (over bytes 12..28). */
static void set_ihdr_size(uint8_t *png, uint32_t w, uint32_t h)
{
    put_be32(png + 16, w);
    put_be32(png + 20, h);
    put_be32(png + 29, crc32_png(png + 12, 17));
}

START_TEST(test_png_corrupt)
{
    enum { W = 32, H = 32 };
    uint8_t *px = malloc(W * H * 3);
    ck_assert(px != NULL);
    for (int i = 0; i < W * H * 3; i++)
        px[i] = (uint8_t)((i * 2654435761u) >> 24);   /* incompressible-ish */
    png_spec s = {W, H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, NULL, 0, NULL, 0};
    membuf good = encode_png(&s, px, W * 3);
    free(px);
    ck_assert(good.size > 200);
    float *ok = decode_ok(&good, W, H);
    free(ok);

    typedef struct corrupt {
        const char *what;
        uint8_t *data;
        size_t size;
    } corrupt;
    corrupt cases[16];
    int nc = 0;
    uint8_t *copy;
#define ADD_COPY(label, len)                                                               \
    do {                                                                                   \
        copy = malloc(good.size);                                                          \
        ck_assert(copy != NULL);                                                           \
        memcpy(copy, good.data, good.size);                                                \
        cases[nc++] = (corrupt){label, copy, (len)};                                       \
    } while (0)

    cases[nc++] = (corrupt){"empty (NULL)", NULL, 0};
    ADD_COPY("empty (size 0)", 0);
    ADD_COPY("truncated: 1 byte", 1);
    ADD_COPY("truncated: signature only", 8);
    ADD_COPY("truncated: inside IHDR", 20);
    ADD_COPY("truncated: after IHDR", 33);
    ADD_COPY("truncated: inside IDAT", good.size / 2);
    ADD_COPY("truncated: before IEND", good.size - 12);
    ADD_COPY("truncated: last byte", good.size - 1);
    ADD_COPY("bad signature", good.size);
    copy[1] ^= 0x20;   /* 'P' -> 'p' */
    ADD_COPY("bad IHDR CRC", good.size);
    copy[30] ^= 0x01;
    ADD_COPY("huge width", good.size);
    set_ihdr_size(copy, 100000, 32);
    ADD_COPY("huge width and height", good.size);
    set_ihdr_size(copy, 0x7fffffffu, 0x7fffffffu);
    ADD_COPY("at the limit but no data", good.size);
    set_ihdr_size(copy, 16384, 16384);
    ADD_COPY("zero width", good.size);
    set_ihdr_size(copy, 0, 32);
    ADD_COPY("garbage in IDAT", good.size);
    memset(copy + 45, 0x5a, 40);
#undef ADD_COPY

    for (int c = 0; c < nc; c++) {
        float *rgb = (float *)1;
        int w = -1, h = -1;
        sl_error err;
        err.msg[0] = '\0';
        sl_status st = sl_png_decode_rgb(cases[c].data, cases[c].size, &rgb, &w, &h, &err);
        ck_assert_msg(st == SL_ERR_FORMAT, "%s: status %d (%s)", cases[c].what, (int)st,
                      err.msg);
        ck_assert_msg(strlen(err.msg) > 0, "%s: no message", cases[c].what);
        ck_assert_msg(rgb == NULL, "%s: output not cleared", cases[c].what);
        free(cases[c].data);
    }
    free(good.data);
}
END_TEST

START_TEST(test_to_u8)
{
    const float in[] = {0.0f, 1.0f, 0.5f, 1.0f / 255.0f, 0.499f / 255.0f, -1.0f, 2.0f, NAN,
                        INFINITY, -INFINITY, 254.5f / 255.0f};
    const uint8_t want[] = {0, 255, 128, 1, 0, 0, 255, 0, 255, 0, 255};
    uint8_t out[sizeof want];
    sl_image_to_u8(in, sizeof want, out);
    for (size_t i = 0; i < sizeof want; i++)
        ck_assert_msg(out[i] == want[i], "element %zu: %u", i, out[i]);
    /* Every 8-bit level survives u8 -> float -> u8. */
    for (int v = 0; v < 256; v++) {
        float f = v / 255.0f;
        uint8_t b;
        sl_image_to_u8(&f, 1, &b);
        ck_assert(b == v);
    }
}
END_TEST

START_TEST(test_psnr)
{
    enum { N = 300 };
    float a[N], b[N];
    for (int i = 0; i < N; i++) {
        a[i] = (float)(i % 10) / 10.0f;
        b[i] = a[i];
    }
    ck_assert(isinf(sl_image_psnr(a, b, N)) && sl_image_psnr(a, b, N) > 0);
    /* Uniform error 0.1: MSE 0.01 -> 20 dB. */
    for (int i = 0; i < N; i++)
        b[i] = a[i] + 0.1f;
    ck_assert(fabs(sl_image_psnr(a, b, N) - 20.0) < 1e-4);
    /* One value off by 1 among N: MSE 1/N -> 10 log10(N). */
    memcpy(b, a, sizeof a);
    a[17] = 0.0f;
    b[17] = 1.0f;
    ck_assert(fabs(sl_image_psnr(a, b, N) - 10.0 * log10((double)N)) < 1e-9);
    /* Black against white: 0 dB. */
    float z[3] = {0, 0, 0}, o[3] = {1, 1, 1};
    ck_assert(fabs(sl_image_psnr(z, o, 3)) < 1e-12);
}
END_TEST

/* ---- resampling ---- */

static float frand(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) / 16777216.0) * 2.0f - 1.0f;
}

START_TEST(test_resample_identity)
{
    enum { H = 7, W = 9, C = 3 };
    float in[H * W * C], out[H * W * C], d[H * W * C];
    uint32_t st = 1;
    for (int i = 0; i < H * W * C; i++) {
        in[i] = frand(&st);
        d[i] = 1.0f;
    }
    sl_resample(in, H, W, C, out, H, W);
    ck_assert(memcmp(in, out, sizeof in) == 0);
    sl_resample_adjoint(in, H, W, C, d, H, W);
    for (int i = 0; i < H * W * C; i++)
        ck_assert(d[i] == 1.0f + in[i]);   /* accumulates */
}
END_TEST

static const int size_pairs[][4] = {
    /* hi, wi, ho, wo */
    {5, 7, 12, 16},     /* up */
    {16, 16, 8, 8},     /* down 2x */
    {28, 21, 8, 6},     /* down 3.5x */
    {10, 30, 25, 9},    /* non-square: up in y, down 3.33x in x */
    {13, 11, 7, 6},     /* down < 2x, odd */
    {64, 48, 5, 3},     /* strong down, non-integer */
    {3, 3, 1, 1},       /* to one pixel */
    {1, 1, 4, 5},       /* from one pixel */
};

START_TEST(test_resample_constant)
{
    for (size_t p = 0; p < sizeof size_pairs / sizeof size_pairs[0]; p++) {
        const int hi = size_pairs[p][0], wi = size_pairs[p][1];
        const int ho = size_pairs[p][2], wo = size_pairs[p][3], C = 2;
        float *in = malloc(sizeof(float) * hi * wi * C);
        float *out = malloc(sizeof(float) * ho * wo * C);
        ck_assert(in && out);
        for (int i = 0; i < hi * wi; i++) {
            in[2 * i] = 0.3f;
            in[2 * i + 1] = -2.0f;
        }
        sl_resample(in, hi, wi, C, out, ho, wo);
        for (int i = 0; i < ho * wo; i++) {
            ck_assert(fabsf(out[2 * i] - 0.3f) < 1e-6f);
            ck_assert(fabsf(out[2 * i + 1] + 2.0f) < 1e-6f);
        }
        free(in);
        free(out);
    }
}
END_TEST

/* <A x, y> = <x, A^T y> */
START_TEST(test_resample_adjoint_identity)
{
    for (size_t p = 0; p < sizeof size_pairs / sizeof size_pairs[0]; p++) {
        const int hi = size_pairs[p][0], wi = size_pairs[p][1];
        const int ho = size_pairs[p][2], wo = size_pairs[p][3], C = 3;
        const size_t ni = (size_t)hi * wi * C, no = (size_t)ho * wo * C;
        float *x = malloc(ni * sizeof(float)), *aty = calloc(ni, sizeof(float));
        float *y = malloc(no * sizeof(float)), *ax = malloc(no * sizeof(float));
        ck_assert(x && aty && y && ax);
        uint32_t st = 7 + (uint32_t)p;
        for (size_t i = 0; i < ni; i++)
            x[i] = frand(&st);
        for (size_t i = 0; i < no; i++)
            y[i] = frand(&st);
        sl_resample(x, hi, wi, C, ax, ho, wo);
        sl_resample_adjoint(y, ho, wo, C, aty, hi, wi);
        double lhs = 0, rhs = 0, scale = 0;
        for (size_t i = 0; i < no; i++) {
            lhs += (double)ax[i] * y[i];
            scale += fabs((double)ax[i] * y[i]);
        }
        for (size_t i = 0; i < ni; i++)
            rhs += (double)x[i] * aty[i];
        ck_assert_msg(fabs(lhs - rhs) <= 1e-5 * scale, "pair %zu: %.9g vs %.9g", p, lhs,
                      rhs);
        free(x);
        free(aty);
        free(y);
        free(ax);
    }
}
END_TEST

/* When the size divides exactly, 2x (bilinear at s = 2) and 4x (area) downsampling give
 * the block means. */
START_TEST(test_resample_block_mean)
{
    const int factors[] = {2, 4};
    for (int fi = 0; fi < 2; fi++) {
        const int f = factors[fi], ho = 3, wo = 5, C = 2, hi = ho * f, wi = wo * f;
        float *in = malloc(sizeof(float) * hi * wi * C), *out = malloc(sizeof(float) * ho * wo * C);
        ck_assert(in && out);
        uint32_t st = 99;
        for (int i = 0; i < hi * wi * C; i++)
            in[i] = frand(&st);
        sl_resample(in, hi, wi, C, out, ho, wo);
        for (int y = 0; y < ho; y++)
            for (int x = 0; x < wo; x++)
                for (int c = 0; c < C; c++) {
                    double m = 0;
                    for (int dy = 0; dy < f; dy++)
                        for (int dx = 0; dx < f; dx++)
                            m += in[((y * f + dy) * wi + x * f + dx) * C + c];
                    m /= f * f;
                    ck_assert(fabs(out[(y * wo + x) * C + c] - m) < 1e-6);
                }
        free(in);
        free(out);
    }
}
END_TEST

/* Bilinear upsampling of a ramp with aligned centres and clamped edges. */
START_TEST(test_resample_bilinear_ramp)
{
    const float in[4] = {0, 1, 2, 3};
    float out[8];
    const float want[8] = {0, 0.25f, 0.75f, 1.25f, 1.75f, 2.25f, 2.75f, 3};
    sl_resample(in, 1, 4, 1, out, 1, 8);
    for (int j = 0; j < 8; j++)
        ck_assert_msg(fabsf(out[j] - want[j]) < 1e-6f, "j %d: %g", j, (double)out[j]);
    /* Down by 1.5x: x = (j + 0.5) 1.5 - 0.5 = 0.25, 1.75. */
    const float in6[6] = {0, 1, 2, 3, 4, 5};
    float o4[4];
    sl_resample(in6, 6, 1, 1, o4, 4, 1);
    ck_assert(fabsf(o4[0] - 0.25f) < 1e-6f && fabsf(o4[1] - 1.75f) < 1e-6f);
    ck_assert(fabsf(o4[3] - 4.75f) < 1e-6f);
    /* Area 3x on 1-D: 9 -> 3 are means of triples; 7 -> 2 (s = 3.5) splits pixel 3. */
    const float in7[7] = {0, 1, 2, 3, 4, 5, 6};
    float o2[2];
    sl_resample(in7, 1, 7, 1, o2, 1, 2);
    ck_assert(fabsf(o2[0] - (0 + 1 + 2 + 0.5f * 3) / 3.5f) < 1e-6f);
    ck_assert(fabsf(o2[1] - (0.5f * 3 + 4 + 5 + 6) / 3.5f) < 1e-6f);
}
END_TEST

START_TEST(test_resample_threads)
{
    const int hi = 300, wi = 280, ho = 97, wo = 611, C = 3;
    const size_t ni = (size_t)hi * wi * C, no = (size_t)ho * wo * C;
    float *x = malloc(ni * sizeof(float)), *a1 = malloc(no * sizeof(float));
    float *a2 = malloc(no * sizeof(float));
    float *b1 = calloc(ni, sizeof(float)), *b2 = calloc(ni, sizeof(float));
    ck_assert(x && a1 && a2 && b1 && b2);
    uint32_t st = 3;
    for (size_t i = 0; i < ni; i++)
        x[i] = frand(&st);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    sl_resample(x, hi, wi, C, a1, ho, wo);
    sl_resample_adjoint(a1, ho, wo, C, b1, hi, wi);
    omp_set_num_threads(2);
    sl_resample(x, hi, wi, C, a2, ho, wo);
    sl_resample_adjoint(a1, ho, wo, C, b2, hi, wi);
    omp_set_num_threads(saved);
    ck_assert(memcmp(a1, a2, no * sizeof(float)) == 0);
    ck_assert(memcmp(b1, b2, ni * sizeof(float)) == 0);
    free(x);
    free(a1);
    free(a2);
    free(b1);
    free(b2);
}
END_TEST

static Suite *image_suite(void)
{
    Suite *s = suite_create("image");
    TCase *png = tcase_create("png");
    tcase_add_test(png, test_png_round_trip);
    tcase_add_test(png, test_png_io_errors);
    tcase_add_test(png, test_png_palette);
    tcase_add_test(png, test_png_16bit);
    tcase_add_test(png, test_png_grey_alpha);
    tcase_add_test(png, test_png_corrupt);
    tcase_add_test(png, test_to_u8);
    tcase_add_test(png, test_psnr);
    suite_add_tcase(s, png);
    TCase *rs = tcase_create("resample");
    tcase_set_timeout(rs, 120);
    tcase_add_test(rs, test_resample_identity);
    tcase_add_test(rs, test_resample_constant);
    tcase_add_test(rs, test_resample_adjoint_identity);
    tcase_add_test(rs, test_resample_block_mean);
    tcase_add_test(rs, test_resample_bilinear_ramp);
    tcase_add_test(rs, test_resample_threads);
    suite_add_tcase(s, rs);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(image_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
