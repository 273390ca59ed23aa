/* tests/test_ply.c — PLY import/export of Gaussian splats (plugins/representations/
 * gaussians/ply.c).
 *
 * Checks: encode -> parse is bit-exact for every SH degree (and write -> read through a
 * file); a viewer-style header (comments, other elements, extra vertex properties, double
 * properties) parses; a table of malformed files is rejected with its exact message. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ply.h"

static gs_ply_data make(size_t n, int deg)
{
    gs_ply_data d = { .n = n, .sh_degree = deg };
    int K1 = (deg + 1) * (deg + 1) - 1;
    d.means = malloc(n * 12); d.sh_dc = malloc(n * 12); d.opacity = malloc(n * 4);
    d.log_scales = malloc(n * 12); d.quats = malloc(n * 16);
    d.sh_rest = K1 ? malloc(n * (size_t)K1 * 12) : NULL;
    uint32_t s = 17;
    float *all[] = { d.means, d.sh_dc, d.opacity, d.log_scales, d.quats, d.sh_rest };
    size_t cnt[] = { n * 3, n * 3, n, n * 3, n * 4, n * (size_t)K1 * 3 };
    for (int a = 0; a < 6; a++)
        for (size_t i = 0; i < cnt[a]; i++) {
            s = s * 1664525u + 1013904223u;
            uint32_t bits = (s & 0x807fffffu) | (0x3c000000u + (s >> 4 & 0x07000000u));
            memcpy(&all[a][i], &bits, 4);   /* arbitrary finite floats, all bits in play */
        }
    return d;
}

static void assert_same(const gs_ply_data *a, const gs_ply_data *b)
{
    ck_assert_uint_eq(a->n, b->n);
    ck_assert_int_eq(a->sh_degree, b->sh_degree);
    size_t n = a->n, K1 = (size_t)((a->sh_degree + 1) * (a->sh_degree + 1) - 1);
    ck_assert(!memcmp(a->means, b->means, n * 12));
    ck_assert(!memcmp(a->sh_dc, b->sh_dc, n * 12));
    ck_assert(!memcmp(a->opacity, b->opacity, n * 4));
    ck_assert(!memcmp(a->log_scales, b->log_scales, n * 12));
    ck_assert(!memcmp(a->quats, b->quats, n * 16));
    if (K1)
        ck_assert(!memcmp(a->sh_rest, b->sh_rest, n * K1 * 12));
}

START_TEST(test_round_trip)
{
    for (int deg = 0; deg <= 3; deg++) {
        gs_ply_data a = make(37, deg), b;
        uint8_t *buf;
        size_t size;
        sl_error err;
        ck_assert_int_eq(gs_ply_encode(&a, &buf, &size, &err), SL_OK);
        size_t K1 = (size_t)((deg + 1) * (deg + 1) - 1);
        ck_assert_msg(gs_ply_parse(buf, size, &b, &err) == SL_OK, "%s", err.msg);
        assert_same(&a, &b);
        /* the channel-major f_rest layout: f_rest_{c K1 + k} = sh_rest[k][c] */
        if (deg == 3) {
            const char *hdr_end = strstr((const char *)buf, "end_header\n") + 11;
            const uint8_t *rec = (const uint8_t *)hdr_end;
            float f;
            memcpy(&f, rec + (9 + 1 * 15 + 2) * 4, 4);   /* f_rest_17: channel 1, k = 2 */
            ck_assert(f == a.sh_rest[(0 * K1 + 2) * 3 + 1]);
        }
        gs_ply_free(&b);
        free(buf);
        char path[] = "/tmp/test_ply_XXXXXX";
        int fd = mkstemp(path);
        close(fd);
        ck_assert_int_eq(gs_ply_write(path, &a, &err), SL_OK);
        ck_assert_int_eq(gs_ply_read(path, &b, &err), SL_OK);
        assert_same(&a, &b);
        unlink(path);
        gs_ply_free(&b);
        gs_ply_free(&a);
    }
}
END_TEST

/* A header + n records of `floats` float32 each with value v. */
static size_t build(uint8_t *out, const char *header, size_t n, int floats, float v)
{
    size_t h = strlen(header);
    memcpy(out, header, h);
    for (size_t i = 0; i < n * (size_t)floats; i++)
        memcpy(out + h + i * 4, &v, 4);
    return h + n * (size_t)floats * 4;
}

#define PROPS14 "property float x\nproperty float y\nproperty float z\n" \
    "property float f_dc_0\nproperty float f_dc_1\nproperty float f_dc_2\n" \
    "property float opacity\nproperty float scale_0\nproperty float scale_1\n" \
    "property float scale_2\nproperty float rot_0\nproperty float rot_1\n" \
    "property float rot_2\nproperty float rot_3\n"

START_TEST(test_viewer_style)
{
    static uint8_t buf[4096];
    const char *h = "ply\nformat binary_little_endian 1.0\ncomment made by a viewer, long "
                    "comment with many many many words in it\nobj_info x\n"
                    "element camera 1\nproperty uchar id\nproperty float f\nproperty float g\n"
                    "property float h\nproperty short a\nproperty short b\n"   /* 17 bytes */
                    "element vertex 2\n" PROPS14 "property uchar red\nproperty double extra\n"
                    "end_header\n";
    size_t hl = strlen(h);
    memcpy(buf, h, hl);
    memset(buf + hl, 0, 17);
    size_t at = hl + 17;
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 14; k++) {
            float v = (float)(i * 100 + k);
            memcpy(buf + at, &v, 4);
            at += 4;
        }
        buf[at++] = 200;
        double e = 1e300;
        memcpy(buf + at, &e, 8);
        at += 8;
    }
    gs_ply_data d;
    sl_error err;
    ck_assert_msg(gs_ply_parse(buf, at, &d, &err) == SL_OK, "%s", err.msg);
    ck_assert_uint_eq(d.n, 2);
    ck_assert_int_eq(d.sh_degree, 0);
    ck_assert(d.means[3] == 100.0f && d.sh_dc[5] == 105.0f && d.opacity[1] == 106.0f);
    ck_assert(d.log_scales[2] == 9.0f && d.quats[7] == 113.0f);
    gs_ply_free(&d);
}
END_TEST

typedef struct bad_case {
    const char *header;
    size_t n;       /* records written */
    int floats;     /* floats per record */
    float value;
    long trim;      /* bytes removed (> 0) or appended (< 0) at the end */
    const char *msg;
} bad_case;

static const bad_case bad_cases[] = {
    { "plx\n", 0, 0, 0, 0, "ply: not a PLY file (missing 'ply' magic)" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1\n", 0, 0, 0, 0,
      "ply: header is not terminated by 'end_header' within 65536 bytes" },
    { "ply\nformat ascii 1.0\nend_header\n", 0, 0, 0, 0,
      "ply: line 2: format 'ascii 1.0' is not supported (only binary_little_endian 1.0)" },
    { "ply\nformat binary_big_endian 1.0\nend_header\n", 0, 0, 0, 0,
      "ply: line 2: format 'binary_big_endian 1.0' is not supported (only "
      "binary_little_endian 1.0)" },
    { "ply\nelement vertex 1\nend_header\n", 0, 0, 0, 0,
      "ply: line 2: 'element' before the format line" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex -1\nend_header\n", 0, 0, 0, 0,
      "ply: line 3: bad element count '-1'" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 99999999999999999999\nend_header\n",
      0, 0, 0, 0, "ply: line 3: element count 99999999999999999999 is too large" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty half x\nend_header\n",
      0, 0, 0, 0, "ply: line 4: unknown property type 'half'" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1\n"
      "property list uchar int vertex_indices\nend_header\n", 0, 0, 0, 0,
      "ply: line 4: list properties are not supported ('vertex_indices')" },
    { "ply\nformat binary_little_endian 1.0\nproperty float x\nend_header\n", 0, 0, 0, 0,
      "ply: line 3: property outside an element" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\n"
      "property float x\nend_header\n", 0, 0, 0, 0, "ply: line 5: duplicate property 'x'" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1\nelement vertex 2\nend_header\n",
      0, 0, 0, 0, "ply: line 4: duplicate element 'vertex'" },
    { "ply\nformat binary_little_endian 1.0\nfoo\nend_header\n", 0, 0, 0, 0,
      "ply: line 3: unknown keyword 'foo'" },
    { "ply\nformat binary_little_endian 1.0\nelement face 0\nend_header\n", 0, 0, 0, 0,
      "ply: no 'vertex' element" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nend_header\n",
      1, 1, 0, 0, "ply: vertex property 'y' is missing" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 2\n" PROPS14 "end_header\n",
      2, 14, 0, 4,
      "ply: truncated: the header declares more data than the file's 108 bytes after the "
      "header" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1\n" PROPS14 "end_header\n",
      1, 14, 0, -3, "ply: 3 trailing bytes after the declared data" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1\n" PROPS14
      "property float f_rest_0\nproperty float f_rest_1\nend_header\n", 1, 16, 0, 0,
      "ply: 2 f_rest properties (expected 0, 9, 24 or 45, numbered from f_rest_0)" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1\n"
      "property int x\nproperty float y\nproperty float z\n"
      "property float f_dc_0\nproperty float f_dc_1\nproperty float f_dc_2\n"
      "property float opacity\nproperty float scale_0\nproperty float scale_1\n"
      "property float scale_2\nproperty float rot_0\nproperty float rot_1\n"
      "property float rot_2\nproperty float rot_3\nend_header\n", 1, 14, 0, 0,
      "ply: vertex property 'x' must be float or double" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1\n" PROPS14 "end_header\n",
      1, 14, 1.0f / 0.0f, 0, "ply: non-finite or out-of-range 'x' of vertex 0" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1\n" PROPS14 "end_header junk\n",
      0, 0, 0, 0, "ply: line 18: text after end_header" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1 2\nend_header\n", 0, 0, 0, 0,
      "ply: line 3: expected 'element NAME COUNT'" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float\nend_header\n",
      0, 0, 0, 0, "ply: line 4: expected 'property TYPE NAME'" },
    { "ply\nformat binary_little_endian 1.0\n\nend_header\n", 0, 0, 0, 0,
      "ply: line 3: empty header line" },
    { "ply\nformat binary_little_endian 1.0\nelement vertex 1\x01\nend_header\n", 0, 0, 0, 0,
      "ply: line 3: non-printable byte in the header" },
    { "ply\nformat binary_little_endian 1.0\nelement e 1\nelement vertex 0\n" PROPS14
      "end_header\n", 0, 0, 0, 0, "ply: element 'e' has no properties" },
};

START_TEST(test_malformed)
{
    static uint8_t buf[8192];
    for (size_t c = 0; c < sizeof bad_cases / sizeof bad_cases[0]; c++) {
        const bad_case *b = &bad_cases[c];
        size_t size = build(buf, b->header, b->n, b->floats, b->value);
        if (b->trim > 0)
            size -= (size_t)b->trim;
        else if (b->trim < 0) {
            memset(buf + size, 0, (size_t)-b->trim);
            size += (size_t)-b->trim;
        }
        gs_ply_data d;
        sl_error err = { "" };
        sl_status st = gs_ply_parse(buf, size, &d, &err);
        ck_assert_msg(st == SL_ERR_FORMAT, "case %zu: status %d (%s)", c, st, err.msg);
        ck_assert_msg(!strcmp(err.msg, b->msg), "case %zu:\n  got      %s\n  expected %s", c,
                      err.msg, b->msg);
        ck_assert(d.n == 0 && d.means == NULL);
    }
    /* a missing file */
    gs_ply_data d;
    sl_error err;
    ck_assert_int_eq(gs_ply_read("/nonexistent/x.ply", &d, &err), SL_ERR_IO);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ply");
    TCase *t = tcase_create("ply");
    tcase_add_test(t, test_round_trip);
    tcase_add_test(t, test_viewer_style);
    tcase_add_test(t, test_malformed);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
