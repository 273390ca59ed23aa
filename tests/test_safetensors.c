/* tests/test_safetensors.c — the safetensors reader and writer (safetensors.h): bit-exact
 * F32 round trips with metadata, F16/BF16 conversions (subnormals, infinities, NaN), a
 * table of malformed files with their exact messages, atomic writes, and a parameter
 * store saved and loaded by name (nn.h). */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "steinlab/nn.h"
#include "steinlab/safetensors.h"

/* A file image: 8-byte little-endian length of `header`, the header, then `data_len`
 * bytes of data (zeros unless data is given). */
static uint8_t *make_file(const char *header, size_t hlen, const uint8_t *data, size_t data_len,
                          size_t *size)
{
    *size = 8 + hlen + data_len;
    uint8_t *f = calloc(1, *size);
    ck_assert_ptr_nonnull(f);
    for (int k = 0; k < 8; k++)
        f[k] = (uint8_t)((uint64_t)hlen >> (8 * k));
    memcpy(f + 8, header, hlen);
    if (data)
        memcpy(f + 8 + hlen, data, data_len);
    return f;
}

static char *tmpdir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/test_safetensors_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

/* Number of entries in dir other than . and .. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

START_TEST(test_round_trip)
{
    sl_error err;
    sl_st_writer *w;
    ck_assert_int_eq(sl_st_writer_create(&w, &err), SL_OK);
    float a[6], scalar = -0.0f, b[3] = { INFINITY, NAN, 1e-45f };   /* inf, NaN, subnormal */
    for (int i = 0; i < 6; i++)
        a[i] = (float)i / 3.0f - 1.0f;
    int64_t sa[2] = { 2, 3 }, sb[1] = { 3 }, sz[2] = { 0, 5 };
    ck_assert_int_eq(sl_st_writer_add(w, "layer.weight", 2, sa, a, &err), SL_OK);
    ck_assert_int_eq(sl_st_writer_add(w, "scalar", 0, NULL, &scalar, &err), SL_OK);
    ck_assert_int_eq(sl_st_writer_add(w, "special \"\xc3\xa9\"", 1, sb, b, &err), SL_OK);
    ck_assert_int_eq(sl_st_writer_add(w, "empty", 2, sz, NULL, &err), SL_OK);
    ck_assert_int_eq(sl_st_writer_add(w, "scalar", 0, NULL, &scalar, &err), SL_ERR_INVALID_ARG);
    ck_assert_str_eq(err.msg, "safetensors: duplicate tensor name 'scalar'");
    ck_assert_int_eq(sl_st_writer_meta(w, "steinlab.config", "{\"channels\": 64}\n", &err), SL_OK);
    ck_assert_int_eq(sl_st_writer_meta(w, "format", "pt", &err), SL_OK);
    ck_assert_int_eq(sl_st_writer_meta(w, "format", "steinlab", &err), SL_OK);   /* replaces */
    char *dir = tmpdir(), path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_int_eq(sl_st_writer_write(w, path, &err), SL_OK);
    ck_assert_int_eq(dir_entries(dir), 1);   /* no temporary left behind */
    sl_st_writer_destroy(w);

    /* The header length is a multiple of 8 (space padding), so data is 8-byte aligned. */
    FILE *f = fopen(path, "rb");
    uint8_t len8[8];
    ck_assert_int_eq(fread(len8, 1, 8, f), 8);
    fclose(f);
    uint64_t hl = 0;
    for (int k = 7; k >= 0; k--)
        hl = hl << 8 | len8[k];
    ck_assert_uint_eq(hl % 8, 0);

    sl_safetensors *st;
    ck_assert_int_eq(sl_safetensors_open(path, &st, &err), SL_OK);
    ck_assert_uint_eq(sl_safetensors_count(st), 4);
    ck_assert_str_eq(sl_safetensors_meta_get(st, "steinlab.config"), "{\"channels\": 64}\n");
    ck_assert_str_eq(sl_safetensors_meta_get(st, "format"), "steinlab");
    ck_assert_ptr_null(sl_safetensors_meta_get(st, "nope"));
    ck_assert_uint_eq(sl_safetensors_meta_count(st), 2);
    float ra[6], rs, rb[3], dummy;
    ck_assert_int_eq(sl_safetensors_read_f32(st, "layer.weight", ra, 2, sa, &err), SL_OK);
    ck_assert_int_eq(memcmp(ra, a, sizeof a), 0);
    ck_assert_int_eq(sl_safetensors_read_f32(st, "scalar", &rs, 0, NULL, &err), SL_OK);
    ck_assert_int_eq(memcmp(&rs, &scalar, 4), 0);
    ck_assert_int_eq(sl_safetensors_read_f32(st, "special \"\xc3\xa9\"", rb, 1, sb, &err), SL_OK);
    ck_assert_int_eq(memcmp(rb, b, sizeof b), 0);
    ck_assert_int_eq(sl_safetensors_read_f32(st, "empty", &dummy, 2, sz, &err), SL_OK);
    const sl_st_info *in = sl_safetensors_info(st, (size_t)sl_safetensors_find(st, "layer.weight"));
    ck_assert_str_eq(in->dtype, "F32");
    ck_assert_int_eq(in->ndim, 2);
    ck_assert(in->shape[0] == 2 && in->shape[1] == 3 && in->numel == 6);
    /* The shape check names both shapes. */
    int64_t wrong[2] = { 3, 2 };
    ck_assert_int_eq(sl_safetensors_read_f32(st, "layer.weight", ra, 2, wrong, &err), SL_ERR_FORMAT);
    ck_assert_str_eq(err.msg, "safetensors: tensor 'layer.weight' has shape [2, 3], expected [3, 2]");
    ck_assert_int_eq(sl_safetensors_read_f32(st, "missing", ra, 2, wrong, &err), SL_ERR_INVALID_ARG);
    ck_assert_str_eq(err.msg, "safetensors: no tensor named 'missing'");
    sl_safetensors_close(st);

    /* Writing over an existing file replaces it (rename), again leaving no temporary. */
    ck_assert_int_eq(sl_st_writer_create(&w, &err), SL_OK);
    ck_assert_int_eq(sl_st_writer_add(w, "x", 1, sb, b, &err), SL_OK);
    ck_assert_int_eq(sl_st_writer_write(w, path, &err), SL_OK);
    sl_st_writer_destroy(w);
    ck_assert_int_eq(sl_safetensors_open(path, &st, &err), SL_OK);
    ck_assert_uint_eq(sl_safetensors_count(st), 1);
    sl_safetensors_close(st);
    ck_assert_int_eq(dir_entries(dir), 1);
    /* A directory that does not exist: an I/O error, nothing created. */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/no/such/dir/m.safetensors", dir);
    ck_assert_int_eq(sl_st_writer_create(&w, &err), SL_OK);
    ck_assert_int_eq(sl_st_writer_write(w, bad, &err), SL_ERR_IO);
    sl_st_writer_destroy(w);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_half_and_bfloat)
{
    /* F16 bit patterns and their exact values. */
    static const struct { uint16_t h; float v; } f16[] = {
        { 0x0000, 0.0f }, { 0x8000, -0.0f }, { 0x3C00, 1.0f }, { 0xC000, -2.0f },
        { 0x3555, 0.333251953125f }, { 0x7BFF, 65504.0f },
        { 0x0001, 5.9604644775390625e-8f },   /* smallest subnormal, 2^-24 */
        { 0x03FF, 6.097555160522461e-5f },    /* largest subnormal, 1023 2^-24 */
        { 0x0400, 6.103515625e-5f },          /* smallest normal, 2^-14 */
        { 0x8200, -3.0517578125e-5f },        /* negative subnormal, -2^-15 */
        { 0x7C00, INFINITY }, { 0xFC00, -INFINITY },
    };
    static const struct { uint16_t h; float v; } bf16[] = {
        { 0x3F80, 1.0f }, { 0xC049, -3.140625f }, { 0x0001, 9.183549615799121e-41f },
        { 0x7F80, INFINITY }, { 0xFF80, -INFINITY }, { 0x8000, -0.0f },
    };
    const size_t n16 = sizeof f16 / sizeof f16[0], nb = sizeof bf16 / sizeof bf16[0];
    for (size_t i = 0; i < n16; i++) {
        float v = sl_f16_to_f32(f16[i].h);
        ck_assert_msg(memcmp(&v, &f16[i].v, 4) == 0, "f16 0x%04x -> %g, expected %g", f16[i].h,
                      v, f16[i].v);
    }
    ck_assert(isnan(sl_f16_to_f32(0x7E00)) && isnan(sl_f16_to_f32(0xFD01)));
    ck_assert(isnan(sl_bf16_to_f32(0xFFC0)) && isnan(sl_bf16_to_f32(0x7F81)));
    /* Every finite half converts to a float that rounds back to it (exhaustive). */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7C00) == 0x7C00)
            continue;
        float v = sl_f16_to_f32((uint16_t)h);
        ck_assert(fabs((double)v) <= 65504.0);
        ck_assert((signbit(v) != 0) == ((h & 0x8000) != 0));
    }
    /* A file with an F16, a BF16 and two non-float tensors, written by hand. */
    uint8_t data[64];
    size_t at = 0;
    for (size_t i = 0; i < n16; i++, at += 2)
        data[at] = (uint8_t)f16[i].h, data[at + 1] = (uint8_t)(f16[i].h >> 8);
    for (size_t i = 0; i < nb; i++, at += 2)
        data[at] = (uint8_t)bf16[i].h, data[at + 1] = (uint8_t)(bf16[i].h >> 8);
    memset(data + at, 7, 8 + 1);   /* I64 [1], U8 [1] */
    at += 9;
    char hdr[512];
    snprintf(hdr, sizeof hdr,
             "{\"h\":{\"dtype\":\"F16\",\"shape\":[%zu],\"data_offsets\":[0,%zu]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]},"
             "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[%zu,%zu]},"
             "\"u\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[%zu,%zu]}}",
             n16, 2 * n16, nb, 2 * n16, 2 * n16 + 2 * nb, 2 * n16 + 2 * nb, 2 * n16 + 2 * nb + 8,
             2 * n16 + 2 * nb + 8, at);
    size_t size;
    uint8_t *file = make_file(hdr, strlen(hdr), data, at, &size);
    sl_safetensors *st;
    sl_error err;
    ck_assert_int_eq(sl_safetensors_open_memory(file, size, &st, &err), SL_OK);
    free(file);
    float out[16];
    int64_t sh[1] = { (int64_t)n16 }, sbf[1] = { (int64_t)nb }, s1[1] = { 1 };
    ck_assert_int_eq(sl_safetensors_read_f32(st, "h", out, 1, sh, &err), SL_OK);
    for (size_t i = 0; i < n16; i++)
        ck_assert(memcmp(&out[i], &f16[i].v, 4) == 0);
    ck_assert_int_eq(sl_safetensors_read_f32(st, "b", out, 1, sbf, &err), SL_OK);
    for (size_t i = 0; i < nb; i++)
        ck_assert(memcmp(&out[i], &bf16[i].v, 4) == 0);
    ck_assert_int_eq(sl_safetensors_read_f32(st, "i", out, 1, s1, &err), SL_ERR_UNSUPPORTED);
    ck_assert_str_eq(err.msg, "safetensors: tensor 'i' has dtype I64; only F32, F16 and BF16 "
                              "are read as float");
    ck_assert_int_eq(sl_safetensors_info(st, 3)->ndim, 0);
    sl_safetensors_close(st);
}
END_TEST

/* ---- malformed files ---- */

#define T1(name, dtype, shape, b, e) \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

typedef struct bad_case {
    const char *what;
    const char *header;   /* NULL: raw bytes below */
    size_t data_len;
    const char *msg;
    int64_t length_prefix; /* >= 0: overrides the length field */
    size_t raw_size;       /* raw files: total size */
} bad_case;

static const bad_case BAD[] = {
    { "shorter than the length prefix", NULL, 0,
      "safetensors: file has 5 bytes, fewer than the 8-byte header length", -1, 5 },
    { "length prefix over the limit", "{}", 0,
      "safetensors: header length 200000000 exceeds the 100000000-byte limit", 200000000, 0 },
    { "length prefix past the end of the file", "{}", 20,
      "safetensors: header length 1000 exceeds the 22 bytes after the length prefix", 1000, 0 },
    { "header not JSON", "hello", 0,
      "safetensors: header is not JSON: expected '{' at byte 0", -1, 0 },
    { "truncated JSON", "{\"a\":{\"dtype\":\"F32\"", 0,
      "safetensors: header is not JSON: unexpected end at byte 19", -1, 0 },
    { "truncated string", "{\"a", 0,
      "safetensors: header is not JSON: unexpected end at byte 3", -1, 0 },
    { "nested too deep", "{\"__metadata__\":{\"k\":[[[[[[[1]]]]]]]}}", 0,
      "safetensors: header is not JSON: nesting deeper than 8 at byte 27", -1, 0 },
    { "non-string metadata", "{\"__metadata__\":{\"k\":1}}", 0,
      "safetensors: __metadata__ value of 'k' is not a string", -1, 0 },
    { "metadata not an object", "{\"__metadata__\":[]}", 0,
      "safetensors: __metadata__ is not a JSON object", -1, 0 },
    { "unknown dtype", "{" T1("w", "F33", "[1]", 0, 4) "}", 4,
      "safetensors: tensor 'w' has unknown dtype 'F33'", -1, 0 },
    { "shape and offsets disagree", "{" T1("w", "F32", "[2]", 0, 4) "}", 4,
      "safetensors: tensor 'w' has 4 bytes in data_offsets but its shape and dtype F32 need 8",
      -1, 0 },
    { "overlapping tensors", "{" T1("a", "F32", "[2]", 0, 8) "," T1("b", "F32", "[2]", 4, 12) "}",
      12, "safetensors: tensor 'b' (bytes 4..12) overlaps tensor 'a'", -1, 0 },
    { "gap between tensors", "{" T1("a", "F32", "[1]", 0, 4) "," T1("b", "F32", "[1]", 8, 12) "}",
      12, "safetensors: gap in the data section: bytes 4..8 belong to no tensor", -1, 0 },
    { "offsets beyond the file", "{" T1("a", "F32", "[2]", 0, 8) "}", 4,
      "safetensors: tensor 'a' ends at byte 8 of the data section, which has 4 bytes", -1, 0 },
    { "duplicate names", "{" T1("a", "F32", "[1]", 0, 4) "," T1("a", "F32", "[1]", 4, 8) "}", 8,
      "safetensors: duplicate tensor name 'a'", -1, 0 },
    { "negative shape", "{" T1("a", "F32", "[-1]", 0, 4) "}", 4,
      "safetensors: tensor 'a' has a shape entry that is not a non-negative integer (negative)",
      -1, 0 },
    { "shape product overflows", "{" T1("a", "F32", "[4294967296,4294967296]", 0, 4) "}", 4,
      "safetensors: tensor 'a' has a shape whose byte size overflows 64 bits", -1, 0 },
    { "shape entry beyond 64 bits", "{" T1("a", "F32", "[18446744073709551616]", 0, 4) "}", 4,
      "safetensors: tensor 'a' has a shape whose byte size overflows 64 bits", -1, 0 },
    { "bytes overflow (numel fits)", "{" T1("a", "F32", "[4611686018427387904]", 0, 4) "}", 4,
      "safetensors: tensor 'a' has a shape whose byte size overflows 64 bits", -1, 0 },
    { "data section longer than described", "{" T1("a", "F32", "[1]", 0, 4) "}", 8,
      "safetensors: data section has 8 bytes but the tensors cover 4", -1, 0 },
    { "invalid UTF-8 in a name", "{\"\xff\":{}}", 0,
      "safetensors: header is not JSON: invalid UTF-8 at byte 2", -1, 0 },
    { "overlong UTF-8 in a name", "{\"\xc0\xaf\":{}}", 0,
      "safetensors: header is not JSON: invalid UTF-8 at byte 2", -1, 0 },
    { "NUL escape in a name", "{\"a\\u0000b\":{}}", 0,
      "safetensors: header is not JSON: \\u0000 in a string at byte 3", -1, 0 },
    { "lone surrogate", "{\"\\ud800\":{}}", 0,
      "safetensors: header is not JSON: unpaired surrogate in \\u escape at byte 2", -1, 0 },
    { "trailing characters", "{} x", 0,
      "safetensors: header is not JSON: trailing characters at byte 3", -1, 0 },
    { "missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
      "safetensors: tensor 'a' lacks 'data_offsets'", -1, 0 },
    { "begin after end", "{" T1("a", "F32", "[0]", 8, 4) "}", 8,
      "safetensors: tensor 'a' has data_offsets [8, 4] with begin > end", -1, 0 },
    { "fractional shape", "{" T1("a", "F32", "[1.5]", 0, 4) "}", 4,
      "safetensors: tensor 'a' has a shape entry that is not a non-negative integer", -1, 0 },
    { "unexpected key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}",
      4, "safetensors: tensor 'a' has unexpected key 'x'", -1, 0 },
    { "tensor not an object", "{\"a\":[1]}", 0, "safetensors: tensor 'a' is not a JSON object",
      -1, 0 },
    { "three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4,
      "safetensors: tensor 'a' needs data_offsets [begin, end] of two non-negative 64-bit "
      "integers", -1, 0 },
    { "too many dimensions", "{" T1("a", "F32", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", 4,
      "safetensors: tensor 'a' has more than 8 dimensions", -1, 0 },
    { "leading zero", "{" T1("a", "F32", "[01]", 0, 4) "}", 4,
      "safetensors: header is not JSON: leading zero in a number at byte 29", -1, 0 },
    { "duplicate metadata key", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0,
      "safetensors: duplicate metadata key 'k'", -1, 0 },
    { "control character in a string", "{\"a\nb\":{}}", 0,
      "safetensors: header is not JSON: control character in a string at byte 3", -1, 0 },
};

START_TEST(test_malformed)
{
    const bad_case *c = &BAD[_i];
    size_t size;
    uint8_t *file;
    if (!c->header) {
        size = c->raw_size;
        file = calloc(1, size);
    } else {
        file = make_file(c->header, strlen(c->header), NULL, c->data_len, &size);
        if (c->length_prefix >= 0)
            for (int k = 0; k < 8; k++)
                file[k] = (uint8_t)((uint64_t)c->length_prefix >> (8 * k));
    }
    sl_safetensors *st = (sl_safetensors *)1;
    sl_error err = { { 0 } };
    sl_status s = sl_safetensors_open_memory(file, size, &st, &err);
    ck_assert_msg(s == SL_ERR_FORMAT, "%s: status %d", c->what, s);
    ck_assert_ptr_null(st);
    ck_assert_msg(strcmp(err.msg, c->msg) == 0, "%s:\n  got      '%s'\n  expected '%s'", c->what,
                  err.msg, c->msg);
    free(file);
}
END_TEST

START_TEST(test_valid_edge_cases)
{
    /* Accepted: whitespace padding, an empty file header, escapes, zero-sized tensors at the
     * same offset, a surrogate pair, metadata in any position. */
    static const char *const good[] = {
        "{}      ",
        "{\"__metadata__\":{}}",
        "{ \"a\\n\\u00e9\\ud83d\\ude00\" : {\"shape\":[0],\"dtype\":\"F32\",\"data_offsets\":[0,0]},"
        " \"b\":{\"dtype\":\"F16\",\"shape\":[0,3],\"data_offsets\":[0,0]}, \"__metadata__\":{\"x\":\"\"}}",
    };
    for (size_t i = 0; i < 3; i++) {
        size_t size;
        uint8_t *file = make_file(good[i], strlen(good[i]), NULL, 0, &size);
        sl_safetensors *st;
        sl_error err;
        ck_assert_msg(sl_safetensors_open_memory(file, size, &st, &err) == SL_OK, "%s: %s", good[i],
                      err.msg);
        if (i == 2) {
            ck_assert_int_ge(sl_safetensors_find(st, "a\n\xc3\xa9\xf0\x9f\x98\x80"), 0);
            ck_assert_str_eq(sl_safetensors_meta_get(st, "x"), "");
        }
        sl_safetensors_close(st);
        free(file);
    }
    /* A missing file. */
    sl_safetensors *st;
    sl_error err;
    ck_assert_int_eq(sl_safetensors_open("/nonexistent/x.safetensors", &st, &err), SL_ERR_IO);
    ck_assert_str_eq(err.msg, "safetensors: cannot open '/nonexistent/x.safetensors': No such "
                              "file or directory");
}
END_TEST

START_TEST(test_params_save_load)
{
    sl_error err;
    sl_nn_params p, q;
    sl_nn_params_init(&p);
    sl_resblock rb;
    ck_assert_int_eq(sl_resblock_declare(&rb, &p, "res", 4, 8, 16, 2, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_alloc(&p, &err), SL_OK);
    sl_rng_key k = { 9, 0, SL_STREAM_INIT, 0 };
    sl_nn_params_randomize(&p, k);
    char *dir = tmpdir(), path[128];
    snprintf(path, sizeof path, "%s/res.safetensors", dir);
    const char *keys[1] = { "steinlab.config" }, *vals[1] = { "cin=4 cout=8 temb=16 groups=2" };
    ck_assert_int_eq(sl_nn_params_save(&p, path, keys, vals, 1, &err), SL_OK);
    /* The same configuration loads bit for bit. */
    sl_nn_params_init(&q);
    ck_assert_int_eq(sl_resblock_declare(&rb, &q, "res", 4, 8, 16, 2, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_alloc(&q, &err), SL_OK);
    sl_safetensors *st;
    ck_assert_int_eq(sl_safetensors_open(path, &st, &err), SL_OK);
    ck_assert_str_eq(sl_safetensors_meta_get(st, "steinlab.config"), vals[0]);
    ck_assert_int_eq(sl_nn_params_load(&q, st, &err), SL_OK);
    ck_assert_int_eq(memcmp(p.data, q.data, p.total * sizeof(float)), 0);
    sl_nn_params_free(&q);
    /* Another configuration is refused with the tensor named. */
    sl_nn_params_init(&q);
    ck_assert_int_eq(sl_resblock_declare(&rb, &q, "res", 4, 4, 16, 2, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_alloc(&q, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_load(&q, st, &err), SL_ERR_FORMAT);
    ck_assert_str_eq(err.msg, "safetensors: tensor 'res.conv1.weight' has shape [8, 3, 3, 4], "
                              "expected [4, 3, 3, 4]");
    sl_nn_params_free(&q);
    sl_safetensors_close(st);
    sl_nn_params_free(&p);
    unlink(path);
    rmdir(dir);
}
END_TEST

static Suite *st_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_half_and_bfloat);
    tcase_add_loop_test(tc, test_malformed, 0, (int)(sizeof BAD / sizeof BAD[0]));
    tcase_add_test(tc, test_valid_edge_cases);
    tcase_add_test(tc, test_params_save_load);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(st_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
