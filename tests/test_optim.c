/* tests/test_optim.c — Adam and gradient utilities (optim.h), scheduled values
 * (schedule.h) and the diffusion schedule and weightings (diffusion.h). */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/diffusion.h"
#include "steinlab/optim.h"
#include "steinlab/schedule.h"

/* ---- schedules ---- */

START_TEST(test_schedule)
{
    sl_schedule s = {.start_step = 100, .start_value = 0.98, .end_value = 0.5,
                     .end_step = 500};
    ck_assert(sl_schedule_at(&s, -5) == 0.98);
    ck_assert(sl_schedule_at(&s, 0) == 0.98);
    ck_assert(sl_schedule_at(&s, 100) == 0.98);
    /* Middle: 0.98 + (300-100)/(500-100) (0.5 - 0.98) = 0.74; a quarter: 0.86. */
    ck_assert(fabs(sl_schedule_at(&s, 300) - 0.74) < 1e-12);
    ck_assert(fabs(sl_schedule_at(&s, 200) - 0.86) < 1e-12);
    ck_assert(sl_schedule_at(&s, 500) == 0.5);
    ck_assert(sl_schedule_at(&s, 100000) == 0.5);
    /* Equal steps: a step function that switches at that step. */
    sl_schedule j = {.start_step = 200, .start_value = 1.0, .end_value = 3.0, .end_step = 200};
    ck_assert(sl_schedule_at(&j, 199) == 1.0);
    ck_assert(sl_schedule_at(&j, 200) == 3.0);
    ck_assert(sl_schedule_at(&j, 201) == 3.0);
    sl_schedule c = sl_schedule_constant(7.5);
    ck_assert(sl_schedule_at(&c, -1) == 7.5 && sl_schedule_at(&c, 0) == 7.5 &&
              sl_schedule_at(&c, 12345) == 7.5);
}
END_TEST

/* ---- diffusion ---- */

START_TEST(test_diffusion_schedule)
{
    sl_diffusion d;
    sl_diffusion_default(&d);
    ck_assert_int_eq(d.T, 1000);
    ck_assert(d.alphas_cumprod[0] == 1.0);
    ck_assert(fabs(d.alphas_cumprod[1] - (1.0 - 0.00085)) < 1e-15);
    for (int t = 1; t <= 1000; t++)
        ck_assert(d.alphas_cumprod[t] < d.alphas_cumprod[t - 1]);
    /* A direct product with the betas written as a blend of the end points' square
     * roots: beta_s = ((1-f) sqrt(b0) + f sqrt(b1))^2, f = (s-1)/999. */
    double prod = 1.0;
    for (int s = 1; s <= 1000; s++) {
        double f = (s - 1) / 999.0;
        double r = (1.0 - f) * sqrt(0.00085) + f * sqrt(0.012);
        prod *= 1.0 - r * r;
        if (s == 500)
            ck_assert(fabs(d.alphas_cumprod[500] - prod) < 1e-12 * prod);
    }
    ck_assert(fabs(d.alphas_cumprod[1000] - prod) < 1e-12 * prod);
    /* Stable Diffusion's final abar is about 0.0047. */
    ck_assert(d.alphas_cumprod[1000] > 0.004 && d.alphas_cumprod[1000] < 0.0055);

    for (int t = 0; t <= 1000; t += 37) {
        double a = sl_diffusion_alpha(&d, t), s = sl_diffusion_sigma(&d, t);
        ck_assert(fabs(a * a + s * s - 1.0) < 1e-12);
        ck_assert(fabs(a * a - d.alphas_cumprod[t]) < 1e-12);
    }
    ck_assert(sl_diffusion_sigma(&d, 0) == 0.0 && sl_diffusion_alpha(&d, 0) == 1.0);
    /* Another beta range changes the schedule. */
    sl_diffusion e;
    sl_diffusion_scaled_linear(&e, 0.0001, 0.02);
    ck_assert(fabs(e.alphas_cumprod[1] - 0.9999) < 1e-15);
}
END_TEST

START_TEST(test_diffusion_weights)
{
    sl_diffusion d;
    sl_diffusion_default(&d);
    const int ts[] = {1, 20, 500, 980, 1000};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        int t = ts[i];
        double ab = d.alphas_cumprod[t];
        ck_assert(fabs(sl_diffusion_weight(&d, SL_WEIGHT_SDS, t) - (1 - ab)) < 1e-15);
        ck_assert(sl_diffusion_weight(&d, SL_WEIGHT_UNIFORM, t) == 1.0);
        ck_assert(fabs(sl_diffusion_weight(&d, SL_WEIGHT_FANTASIA3D, t) -
                       sqrt(ab) * (1 - ab)) < 1e-15);
    }
    sl_weighting w;
    sl_error err;
    ck_assert(sl_weighting_parse("sds", &w, &err) == SL_OK && w == SL_WEIGHT_SDS);
    ck_assert(sl_weighting_parse("uniform", &w, &err) == SL_OK && w == SL_WEIGHT_UNIFORM);
    ck_assert(sl_weighting_parse("fantasia3d", &w, &err) == SL_OK &&
              w == SL_WEIGHT_FANTASIA3D);
    err.msg[0] = '\0';
    ck_assert(sl_weighting_parse("SDS2", &w, &err) == SL_ERR_INVALID_ARG);
    ck_assert(strstr(err.msg, "SDS2") != NULL);
}
END_TEST

/* ---- Adam ---- */

/* Two parameters, fixed gradients for three steps, lr scheduled [0, 0.1, 0.01, 2] (so
 * 0.1, 0.055, 0.01 at steps 0, 1, 2), b1 0.9, b2 0.999, eps 1e-8, weight decay 0.01.
 * Expected values computed by hand (step 1: m_hat = g, v_hat = g^2, so the step is
 * lr (sign(g) + wd theta): 0.5 - 0.1 (1 + 0.005) = 0.3995) and, for steps 2 and 3, with
 * the same formulas in double precision. */
START_TEST(test_adam_sequence)
{
    float theta[2] = {0.5f, -1.0f}, grad[2];
    sl_param_group grp = {.name = "p", .data = theta, .grad = grad, .n = 2};
    sl_adam_config cfg = {.lr = {0, 0.1, 0.01, 2}, .beta1 = 0.9, .beta2 = 0.999,
                          .eps = 1e-8, .weight_decay = 0.01};
    sl_adam *a = NULL;
    ck_assert(sl_adam_create(&grp, &cfg, 1, &a, NULL) == SL_OK);
    ck_assert(sl_adam_var_proxy(a) == 0.0);
    ck_assert(sl_adam_count(a) == 0);
    static const float g[3][2] = {{0.1f, -0.2f}, {-0.3f, 0.05f}, {0.2f, 0.4f}};
    static const double want[3][2] = {{0.3995000100, -0.8990000050},
                                      {0.4264607246, -0.8726848074},
                                      {0.4262302016, -0.8766157847}};
    static const double want_lr[3] = {0.1, 0.055, 0.01};
    static const double want_var[3] = {0.0, 0.027181561695, 0.0516475015235};
    for (int k = 0; k < 3; k++) {
        ck_assert(fabs(sl_adam_lr(a, 0, k) - want_lr[k]) < 1e-15);
        grad[0] = g[k][0];
        grad[1] = g[k][1];
        sl_adam_step(a, k);
        ck_assert(sl_adam_count(a) == k + 1);
        for (int i = 0; i < 2; i++)
            ck_assert_msg(fabs(theta[i] - want[k][i]) < 2e-7, "step %d theta[%d] = %.10f", k,
                          i, (double)theta[i]);
        ck_assert_msg(fabs(sl_adam_var_proxy(a) - want_var[k]) < 1e-6 * (1 + want_var[k]),
                      "step %d var %.12g", k, sl_adam_var_proxy(a));
    }
    sl_adam_destroy(a);
}
END_TEST

/* The same sequence with the learning rate set before each step (sl_adam_set_lr, as a
 * trainer with a cosine schedule does) instead of scheduled: the same parameters. */
START_TEST(test_adam_set_lr)
{
    float theta[2] = {0.5f, -1.0f}, grad[2];
    sl_param_group grp = {.name = "p", .data = theta, .grad = grad, .n = 2};
    sl_adam_config cfg = {.lr = sl_schedule_constant(5.0), .beta1 = 0.9, .beta2 = 0.999,
                          .eps = 1e-8, .weight_decay = 0.01};
    sl_adam *a = NULL;
    ck_assert(sl_adam_create(&grp, &cfg, 1, &a, NULL) == SL_OK);
    static const float g[3][2] = {{0.1f, -0.2f}, {-0.3f, 0.05f}, {0.2f, 0.4f}};
    static const double lr[3] = {0.1, 0.055, 0.01};
    static const double want[2] = {0.4262302016, -0.8766157847};
    for (int k = 0; k < 3; k++) {
        sl_adam_set_lr(a, 0, sl_schedule_constant(lr[k]));
        ck_assert(sl_adam_lr(a, 0, 1000) == lr[k]);
        grad[0] = g[k][0];
        grad[1] = g[k][1];
        sl_adam_step(a, k);
    }
    for (int i = 0; i < 2; i++)
        ck_assert_msg(fabs(theta[i] - want[i]) < 2e-7, "theta[%d] = %.10f", i, (double)theta[i]);
    sl_adam_set_lr(a, 1, sl_schedule_constant(1.0));   /* no group 1: ignored */
    ck_assert(sl_adam_lr(a, 1, 0) == 0.0);
    sl_adam_destroy(a);
}
END_TEST

/* Two groups with their own configs; the proxy is the mean over all elements of
 * v_hat - m_hat^2, checked against moments recomputed here. */
START_TEST(test_adam_groups_var_proxy)
{
    enum { NA = 5000, NB = 3 };
    float *ta = calloc(NA, sizeof(float)), *ga = calloc(NA, sizeof(float));
    float tb[NB] = {1, 2, 3}, gb[NB];
    double *ma = calloc(NA, sizeof(double)), *va = calloc(NA, sizeof(double));
    double mb[NB] = {0}, vb[NB] = {0};
    ck_assert(ta && ga && ma && va);
    sl_param_group grp[2] = {{"a", ta, ga, NA}, {"b", tb, gb, NB}};
    sl_adam_config cfg[2] = {
        {.lr = sl_schedule_constant(1e-3), .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8},
        {.lr = sl_schedule_constant(0.0), .beta1 = 0.5, .beta2 = 0.9, .eps = 1e-6}};
    sl_adam *a = NULL;
    ck_assert(sl_adam_create(grp, cfg, 2, &a, NULL) == SL_OK);
    for (int k = 1; k <= 4; k++) {
        for (int i = 0; i < NA; i++)
            ga[i] = (float)sin(0.37 * i + k);
        for (int i = 0; i < NB; i++)
            gb[i] = (float)(k * (i + 1)) * 0.1f;
        sl_adam_step(a, k);
        double sum = 0;
        for (int i = 0; i < NA; i++) {
            ma[i] = 0.9 * ma[i] + 0.1 * ga[i];
            va[i] = 0.99 * va[i] + 0.01 * (double)ga[i] * ga[i];
            double mh = ma[i] / (1 - pow(0.9, k)), vh = va[i] / (1 - pow(0.99, k));
            sum += vh - mh * mh;
        }
        for (int i = 0; i < NB; i++) {
            mb[i] = 0.5 * mb[i] + 0.5 * gb[i];
            vb[i] = 0.9 * vb[i] + 0.1 * (double)gb[i] * gb[i];
            double mh = mb[i] / (1 - pow(0.5, k)), vh = vb[i] / (1 - pow(0.9, k));
            sum += vh - mh * mh;
        }
        double want = sum / (NA + NB);
        ck_assert_msg(fabs(sl_adam_var_proxy(a) - want) < 1e-6 * fabs(want) + 1e-9,
                      "k %d: %g vs %g", k, sl_adam_var_proxy(a), want);
    }
    /* lr 0 leaves group b untouched (no decay either). */
    ck_assert(tb[0] == 1 && tb[1] == 2 && tb[2] == 3);
    sl_adam_destroy(a);
    free(ta);
    free(ga);
    free(ma);
    free(va);
}
END_TEST

START_TEST(test_adam_errors)
{
    float x[1] = {0}, g[1] = {0};
    sl_param_group grp = {"x", x, g, 1};
    sl_adam_config cfg = {.lr = sl_schedule_constant(0.1), .beta1 = 1.0, .beta2 = 0.999};
    sl_adam *a = (sl_adam *)1;
    sl_error err;
    err.msg[0] = '\0';
    ck_assert(sl_adam_create(&grp, &cfg, 1, &a, &err) == SL_ERR_INVALID_ARG);
    ck_assert(a == NULL && strlen(err.msg) > 0);
    sl_param_group nodata = {"y", NULL, g, 1};
    cfg.beta1 = 0.9;
    ck_assert(sl_adam_create(&nodata, &cfg, 1, &a, &err) == SL_ERR_INVALID_ARG);
    /* No groups is allowed (an estimator without trainable state). */
    ck_assert(sl_adam_create(NULL, NULL, 0, &a, &err) == SL_OK);
    sl_adam_step(a, 0);
    ck_assert(sl_adam_var_proxy(a) == 0.0);
    sl_adam_destroy(a);
}
END_TEST

START_TEST(test_grad_norm_threads)
{
    const size_t n = 1000000;
    float *g = malloc(n * sizeof *g), *h = malloc(7 * sizeof *h);
    ck_assert(g && h);
    double direct = 0;
    for (size_t i = 0; i < n; i++) {
        g[i] = (float)(cos(0.001 * i) * (1 + (i % 7)));
        direct += (double)g[i] * g[i];
    }
    for (int i = 0; i < 7; i++) {
        h[i] = (float)(i - 3);
        direct += h[i] * h[i];
    }
    sl_param_group grp[2] = {{"big", g, g, n}, {"small", h, h, 7}};
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    double n1 = sl_grad_norm(grp, 2);
    omp_set_num_threads(2);
    double n2 = sl_grad_norm(grp, 2);
    omp_set_num_threads(saved);
    ck_assert(memcmp(&n1, &n2, sizeof n1) == 0);   /* bit-identical */
    ck_assert(fabs(n1 - sqrt(direct)) < 1e-10 * sqrt(direct));
    /* 3-4-5 */
    float t[2] = {3, 4};
    sl_param_group tg = {"t", t, t, 2};
    ck_assert(sl_grad_norm(&tg, 1) == 5.0);
    ck_assert(sl_grad_norm(NULL, 0) == 0.0);
    /* Scaling. */
    sl_grad_scale(&tg, 1, 0.5);
    ck_assert(t[0] == 1.5f && t[1] == 2.0f);
    omp_set_num_threads(2);
    sl_grad_scale(grp, 1, 2.0);
    omp_set_num_threads(saved);
    ck_assert(fabs(sl_grad_norm(grp, 1) - 2.0 * sqrt(direct - 28.0)) < 1e-9 * sqrt(direct));
    free(g);
    free(h);
}
END_TEST

START_TEST(test_nonfinite)
{
    float a[4] = {0, 1, 2, 3}, b[5] = {0, 0, 0, 0, 0};
    sl_param_group grp[2] = {{"a", a, a, 4}, {"b", b, b, 5}};
    size_t e = 99;
    ck_assert(sl_grad_first_nonfinite(grp, 2, &e) == -1);
    ck_assert(e == 99);
    b[3] = NAN;
    ck_assert(sl_grad_first_nonfinite(grp, 2, &e) == 1 && e == 3);
    b[1] = -INFINITY;
    ck_assert(sl_grad_first_nonfinite(grp, 2, &e) == 1 && e == 1);
    a[2] = INFINITY;
    ck_assert(sl_grad_first_nonfinite(grp, 2, &e) == 0 && e == 2);
    ck_assert(sl_grad_first_nonfinite(grp, 2, NULL) == 0);
}
END_TEST

static Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_schedule);
    tcase_add_test(tc, test_diffusion_schedule);
    tcase_add_test(tc, test_diffusion_weights);
    tcase_add_test(tc, test_adam_sequence);
    tcase_add_test(tc, test_adam_set_lr);
    tcase_add_test(tc, test_adam_groups_var_proxy);
    tcase_add_test(tc, test_adam_errors);
    tcase_add_test(tc, test_grad_norm_threads);
    tcase_add_test(tc, test_nonfinite);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(optim_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
