/* tests/test_rng.c — Philox 4x32-10 and the stream functions of steinlab/rng.h.
 *
 * Known-answer vectors: the three "philox4x32 10" lines of Random123's
 * tests/kat_vectors (counter words, key words, expected output words, all hex):
 *   00000000 00000000 00000000 00000000  00000000 00000000 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8
 *   ffffffff ffffffff ffffffff ffffffff  ffffffff ffffffff -> 408f276d 41c83b0e a20bc7c6 6d5451fd
 *   243f6a88 85a308d3 13198a2e 03707344  a4093822 299f31d0 -> d16cfe09 94fdcceb 5001e420 24126ea1
 * (quoted identically by several independent ports of Random123, and reproduced by a
 * separate from-the-paper implementation while writing this test). */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/rng.h"

START_TEST(test_philox_kat)
{
    static const struct {
        uint32_t ctr[4], key[2], want[4];
    } kat[] = {
        {{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u},
         {0x00000000u, 0x00000000u},
         {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
        {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
         {0xffffffffu, 0xffffffffu},
         {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
        {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
         {0xa4093822u, 0x299f31d0u},
         {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
    };
    for (size_t c = 0; c < sizeof kat / sizeof kat[0]; c++) {
        uint32_t out[4];
        sl_philox4x32_10(kat[c].ctr, kat[c].key, out);
        for (int j = 0; j < 4; j++)
            ck_assert_msg(out[j] == kat[c].want[j], "case %zu word %d: got %08x want %08x",
                          c, j, out[j], kat[c].want[j]);
    }
}
END_TEST

/* The stream layout: key = (seed lo, seed hi), counter = (step, stream, sample, block),
 * element i = word i%4 of block i/4; uniform = ((w >> 8) + 0.5) 2^-24. */
START_TEST(test_stream_layout)
{
    sl_rng_key k = {.seed = 0x0123456789abcdefull, .step = 7, .stream = 3, .sample = 2};
    float u[12];
    sl_rng_uniform(k, 0, 12, u);
    for (uint32_t b = 0; b < 3; b++) {
        uint32_t ctr[4] = {7, 3, 2, b}, key[2] = {0x89abcdefu, 0x01234567u}, w[4];
        sl_philox4x32_10(ctr, key, w);
        for (int j = 0; j < 4; j++) {
            float want = (float)(((double)(w[j] >> 8) + 0.5) / 16777216.0);
            if (want >= 1.0f)
                want = 0x1.fffffep-1f;
            ck_assert_msg(u[4 * b + j] == want, "element %u", 4 * b + j);
        }
        /* Normals: Box-Muller on (w0, w1) and (w2, w3) with u = (w + 0.5) 2^-32. */
        float z[4];
        sl_rng_normal(k, 4 * b, 4, z);
        for (int p = 0; p < 2; p++) {
            double u1 = ((double)w[2 * p] + 0.5) / 4294967296.0;
            double u2 = ((double)w[2 * p + 1] + 0.5) / 4294967296.0;
            double r = sqrt(-2.0 * log(u1)), th = 2.0 * M_PI * u2;
            ck_assert(z[2 * p] == (float)(r * cos(th)));
            ck_assert(z[2 * p + 1] == (float)(r * sin(th)));
        }
    }
}
END_TEST

START_TEST(test_threads_identical)
{
    const size_t n = 1000003;   /* not a multiple of 4: a partial last block */
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    float *c = malloc(n * sizeof *c), *d = malloc(n * sizeof *d);
    ck_assert(a && b && c && d);
    sl_rng_key k = {.seed = 42, .step = 100, .stream = SL_STREAM_NOISE, .sample = 1};
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    sl_rng_normal(k, 3, n, a);
    sl_rng_uniform(k, 3, n, c);
    omp_set_num_threads(2);
    sl_rng_normal(k, 3, n, b);
    sl_rng_uniform(k, 3, n, d);
    omp_set_num_threads(saved);
    ck_assert(memcmp(a, b, n * sizeof *a) == 0);
    ck_assert(memcmp(c, d, n * sizeof *c) == 0);
    free(a);
    free(b);
    free(c);
    free(d);
}
END_TEST

START_TEST(test_subrange)
{
    sl_rng_key k = {.seed = 9, .step = 1, .stream = 2, .sample = 3};
    float big[32], part[7];
    sl_rng_normal(k, 0, 32, big);
    sl_rng_normal(k, 5, 7, part);
    ck_assert(memcmp(part, big + 5, sizeof part) == 0);
    sl_rng_uniform(k, 0, 32, big);
    sl_rng_uniform(k, 5, 7, part);
    ck_assert(memcmp(part, big + 5, sizeof part) == 0);
    /* Single elements anywhere, including inside one block. */
    for (int i = 0; i < 32; i++) {
        float one;
        sl_rng_uniform(k, (uint64_t)i, 1, &one);
        ck_assert(one == big[i]);
    }
}
END_TEST

START_TEST(test_normal_moments)
{
    const size_t n = 1000000;
    float *z = malloc(n * sizeof *z);
    ck_assert(z != NULL);
    sl_rng_key k = {.seed = 1234, .step = 5, .stream = SL_STREAM_NOISE, .sample = 0};
    sl_rng_normal(k, 0, n, z);
    double s1 = 0, s2 = 0, s4 = 0;
    for (size_t i = 0; i < n; i++) {
        double x = z[i];
        ck_assert(isfinite(x));
        s1 += x;
        s2 += x * x;
        s4 += x * x * x * x;
    }
    double mean = s1 / n, var = s2 / n - mean * mean;
    /* Standard errors: sd(mean) = 1/sqrt(n); sd(sample variance) = sqrt((m4 - 1)/n) with
     * m4 = 3 for a normal. */
    ck_assert_msg(fabs(mean) < 5.0 / sqrt((double)n), "mean %g", mean);
    ck_assert_msg(fabs(var - 1.0) < 5.0 * sqrt(2.0 / n), "var %g", var);
    ck_assert_msg(fabs(s4 / n - 3.0) < 5.0 * sqrt(96.0 / n), "4th moment %g", s4 / n);
    free(z);
}
END_TEST

START_TEST(test_uniform_range_and_moments)
{
    const size_t n = 1000000;
    float *u = malloc(n * sizeof *u);
    ck_assert(u != NULL);
    sl_rng_key k = {.seed = 77, .step = 0, .stream = SL_STREAM_CAMERA, .sample = 0};
    sl_rng_uniform(k, 0, n, u);
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert(u[i] > 0.0f && u[i] < 1.0f);
        s += u[i];
    }
    ck_assert(fabs(s / n - 0.5) < 5.0 * sqrt(1.0 / 12.0 / n));
    free(u);
}
END_TEST

START_TEST(test_uniform1)
{
    sl_rng_key k = {.seed = 5, .step = 2, .stream = 9, .sample = 0};
    const int n = 200000;
    double s = 0;
    for (int i = 0; i < n; i++) {
        double u = sl_rng_uniform1(k, (uint64_t)i);
        ck_assert(u > 0.0 && u < 1.0);
        s += u;
    }
    ck_assert(fabs(s / n - 0.5) < 5.0 * sqrt(1.0 / 12.0 / n));
    /* Pure function of (key, index). */
    ck_assert(sl_rng_uniform1(k, 17) == sl_rng_uniform1(k, 17));
}
END_TEST

START_TEST(test_int1)
{
    sl_rng_key k = {.seed = 31337, .step = 4, .stream = SL_STREAM_TIMESTEP, .sample = 0};
    enum { LO = -3, HI = 6, BINS = HI - LO + 1, N = 100000 };
    long count[BINS] = {0};
    for (int i = 0; i < N; i++) {
        int64_t v = sl_rng_int1(k, (uint64_t)i, LO, HI);
        ck_assert(v >= LO && v <= HI);
        count[v - LO]++;
    }
    double chi2 = 0, e = (double)N / BINS;
    for (int b = 0; b < BINS; b++)
        chi2 += (count[b] - e) * (count[b] - e) / e;
    /* 9 degrees of freedom: P(chi2 > 27.88) = 0.001. */
    ck_assert_msg(chi2 < 27.88, "chi2 = %g", chi2);

    /* Degenerate and extreme ranges. */
    ck_assert(sl_rng_int1(k, 0, 5, 5) == 5);
    ck_assert(sl_rng_int1(k, 0, 5, 4) == 5);   /* broken precondition: lo */
    for (int i = 0; i < 1000; i++) {
        int64_t v = sl_rng_int1(k, (uint64_t)i, 0, INT64_MAX);
        ck_assert(v >= 0);
        (void)sl_rng_int1(k, (uint64_t)i, INT64_MIN, INT64_MAX);
        /* r = 2^62 + 1: about a quarter of candidates are rejected, so chains of
         * several blocks occur; every result must be in range. */
        int64_t w = sl_rng_int1(k, (uint64_t)i, -((int64_t)1 << 61), (int64_t)1 << 61);
        ck_assert(w >= -((int64_t)1 << 61) && w <= ((int64_t)1 << 61));
    }
    /* Deterministic. */
    ck_assert(sl_rng_int1(k, 123, 1, 1000) == sl_rng_int1(k, 123, 1, 1000));
}
END_TEST

START_TEST(test_keys_differ)
{
    sl_rng_key base = {.seed = 1, .step = 10, .stream = 3, .sample = 0};
    sl_rng_key ks[5] = {base, base, base, base, base};
    ks[1].step = 11;
    ks[2].stream = 4;
    ks[3].sample = 1;
    ks[4].seed = 1ull << 32;   /* only the high key word differs */
    float v[5][16];
    for (int i = 0; i < 5; i++)
        sl_rng_normal(ks[i], 0, 16, v[i]);
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++) {
            int same = 0;
            for (int e = 0; e < 16; e++)
                same += v[i][e] == v[j][e];
            ck_assert_msg(same == 0, "keys %d and %d share %d values", i, j, same);
        }
}
END_TEST

static Suite *rng_suite(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_philox_kat);
    tcase_add_test(tc, test_stream_layout);
    tcase_add_test(tc, test_threads_identical);
    tcase_add_test(tc, test_subrange);
    tcase_add_test(tc, test_normal_moments);
    tcase_add_test(tc, test_uniform_range_and_moments);
    tcase_add_test(tc, test_uniform1);
    tcase_add_test(tc, test_int1);
    tcase_add_test(tc, test_keys_differ);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rng_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
