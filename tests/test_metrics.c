/* tests/test_metrics.c — SSIM, masked depth L1 and mask IoU against closed forms. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "steinlab/metrics.h"
#include "steinlab/rng.h"

static float *random_image(int h, int w, int c, uint32_t stream)
{
    float *img = malloc(sizeof(float) * (size_t)h * w * c);
    sl_rng_key key = { 7, 0, stream, 0 };
    sl_rng_uniform(key, 0, (size_t)h * w * c, img);
    return img;
}

START_TEST(ssim_identity_and_symmetry)
{
    float *a = random_image(24, 20, 3, 1), *b = random_image(24, 20, 3, 2);
    ck_assert_double_eq_tol(sl_ssim(a, a, 24, 20, 3), 1.0, 1e-12);
    double ab = sl_ssim(a, b, 24, 20, 3), ba = sl_ssim(b, a, 24, 20, 3);
    ck_assert_double_eq_tol(ab, ba, 1e-12);
    ck_assert(ab < 0.2);   /* independent noise images are nearly unrelated */
    free(a);
    free(b);
}
END_TEST

/* Constant images: the variances and covariance vanish, so SSIM is the luminance term
 * (2 a b + C1) / (a^2 + b^2 + C1) exactly. */
START_TEST(ssim_constant_images_closed_form)
{
    int h = 16, w = 16;
    float *a = malloc(sizeof(float) * h * w), *b = malloc(sizeof(float) * h * w);
    for (int i = 0; i < h * w; i++) {
        a[i] = 0.25f;
        b[i] = 0.75f;
    }
    double c1 = 1e-4, x = 0.25, y = 0.75;
    ck_assert_double_eq_tol(sl_ssim(a, b, h, w, 1), (2 * x * y + c1) / (x * x + y * y + c1),
                            1e-9);
    free(a);
    free(b);
}
END_TEST

/* More noise, lower SSIM: the metric orders degradations. */
START_TEST(ssim_decreases_with_noise)
{
    int h = 32, w = 32, c = 3;
    size_t n = (size_t)h * w * c;
    float *clean = random_image(h, w, c, 3), *noise = malloc(sizeof(float) * n),
          *noisy = malloc(sizeof(float) * n);
    sl_rng_key key = { 7, 0, 9, 0 };
    sl_rng_normal(key, 0, n, noise);
    double previous = 1.0;
    for (int level = 1; level <= 4; level++) {
        for (size_t i = 0; i < n; i++)
            noisy[i] = clean[i] + 0.05f * level * noise[i];
        double s = sl_ssim(clean, noisy, h, w, c);
        ck_assert_msg(s < previous, "level %d: %g not below %g", level, s, previous);
        previous = s;
    }
    free(clean);
    free(noise);
    free(noisy);
}
END_TEST

START_TEST(small_images_use_a_smaller_window)
{
    float *a = random_image(6, 9, 3, 4);
    ck_assert_double_eq_tol(sl_ssim(a, a, 6, 9, 3), 1.0, 1e-12);
    free(a);
}
END_TEST

START_TEST(depth_l1_and_iou)
{
    float da[4] = { 1, 2, 3, 4 }, db[4] = { 1.5f, 2, 0, 9 };
    float ma[4] = { 1, 1, 1, 0 }, mb[4] = { 1, 1, 0, 1 };
    /* Both masks: pixels 0 and 1 -> (0.5 + 0) / 2. */
    ck_assert_double_eq_tol(sl_masked_depth_l1(da, ma, db, mb, 4), 0.25, 1e-12);
    /* Intersection 2, union 4. */
    ck_assert_double_eq_tol(sl_mask_iou(ma, mb, 4), 0.5, 1e-12);
    float zero[4] = { 0 };
    ck_assert(isnan(sl_masked_depth_l1(da, zero, db, mb, 4)));
    ck_assert_double_eq(sl_mask_iou(zero, zero, 4), 1.0);
    ck_assert_double_eq(sl_mask_iou(ma, ma, 4), 1.0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, ssim_identity_and_symmetry);
    tcase_add_test(tc, ssim_constant_images_closed_form);
    tcase_add_test(tc, ssim_decreases_with_noise);
    tcase_add_test(tc, small_images_use_a_smaller_window);
    tcase_add_test(tc, depth_l1_and_iou);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
