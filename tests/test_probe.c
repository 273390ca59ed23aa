/* tests/test_probe.c — variance probes (core/probe.c) against a brute-force computation on
 * a tiny problem whose every quantity is known: the representation renders its parameters
 * (rgb = theta), the prior predicts eps_hat = c x_t, the estimator is SDS. Then the probe's
 * draws can be regenerated here from the same counter-based streams, and since x0 = 2 theta
 * - 1 with no resampling, dL/dtheta = 2 g: the parameter-space variance is exactly 4 times
 * the image-space one. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "camera_sampler.h"
#include "probe.h"
#include "steinlab/rng.h"

enum { R = 4, D = R * R * 3 };

static float theta[D], theta_grad[D];
static const float PRIOR_GAIN = 0.7f;

static sl_status toy_render(void *s, const sl_render_request *req, sl_render *out, sl_error *e)
{
    memcpy(out->rgb, theta, sizeof theta);
    return SL_OK;
}

static sl_status toy_backward(void *s, const sl_render *g, sl_error *e)
{
    for (int i = 0; i < D; i++)
        theta_grad[i] += g->rgb[i];
    return SL_OK;
}

static sl_status toy_noise_pred(void *s, const sl_prior_query *q, float *eps_hat, sl_error *e)
{
    for (int i = 0; i < D * q->batch; i++)
        eps_hat[i] = PRIOR_GAIN * q->x_t[i];
    return SL_OK;
}

static sl_status sds_delta(void *s, const sl_estimator_ctx *c, float *d, sl_error *e)
{
    for (int i = 0; i < D; i++)
        d[i] = c->eps_hat[i] - c->eps[i];
    return SL_OK;
}

START_TEST(probe_matches_brute_force)
{
    for (int i = 0; i < D; i++)
        theta[i] = 0.2f + 0.6f * (float)i / D;
    sl_representation_vtable rv = { .render = toy_render, .backward = toy_backward };
    sl_prior_vtable pv = { .noise_pred = toy_noise_pred };
    sl_prior_ref prior = { &pv, NULL };
    sl_prior_info info = { R, R, 3, NULL, 1.0 };
    sl_diffusion diff;
    sl_diffusion_default(&diff);
    sl_camera_sampler cams = { .batch = 1, .resolution = R, .elevation = { 0, 30 },
                               .azimuth = { -180, 180 }, .distance = { 1.5f, 2 },
                               .fovy = { 40, 60 }, .near = 0.2f, .eval_views = 1 };
    sl_param_group group = { "theta", theta, theta_grad, D };
    sl_probe_env env = { &rv, NULL, &prior, &info, &diff, SL_WEIGHT_SDS, &cams, SL_RENDER_RGB,
                         &group, 1, 42, 20, 980 };
    sl_estimator_vtable ev = { .delta = sds_delta };
    sl_probe_estimator est = { &ev, NULL, "sds" };
    const int K = 9;
    const int64_t step = 17;
    sl_probe_result res;
    sl_error err;
    ck_assert_int_eq(sl_probe_run(&env, &est, 1, K, 0, 1, step, &res, &err), SL_OK);

    /* The same draws, and the direction g_k = w(t_k) (c x_t - eps), by hand. */
    static double g[16][D];
    for (int k = 0; k < K; k++) {
        sl_rng_key tk = { 42, (uint32_t)step, SL_STREAM_PROBE_T, (uint32_t)k };
        int t = (int)sl_rng_int1(tk, 0, 20, 980);
        float eps[D];
        sl_rng_key nk = { 42, (uint32_t)step, SL_STREAM_PROBE, (uint32_t)k };
        sl_rng_normal(nk, 0, D, eps);
        float a = (float)sl_diffusion_alpha(&diff, t), s = (float)sl_diffusion_sigma(&diff, t);
        float w = (float)sl_diffusion_weight(&diff, SL_WEIGHT_SDS, t);
        for (int i = 0; i < D; i++) {
            float x_t = a * (2.0f * theta[i] - 1.0f) + s * eps[i];
            g[k][i] = (double)(w * (PRIOR_GAIN * x_t - eps[i]));
        }
    }
    double var = 0, mean_sq = 0;
    for (int i = 0; i < D; i++) {
        double m = 0, ss = 0;
        for (int k = 0; k < K; k++)
            m += g[k][i];
        m /= K;
        for (int k = 0; k < K; k++)
            ss += (g[k][i] - m) * (g[k][i] - m);
        var += ss / (K - 1);
        mean_sq += m * m;
    }
    double want_var = var / D, want_mn2 = (mean_sq - var / K) / D;
    ck_assert_msg(want_var > 1e-3, "degenerate test: variance %g", want_var);
    ck_assert_double_eq_tol(res.var_img, want_var, 1e-5 * want_var);
    ck_assert_double_eq_tol(res.mean_norm2, want_mn2, 1e-5 * fabs(want_var));
    /* dL/dtheta = 2 g exactly (no resampling): Var scales by 4. */
    ck_assert_double_eq_tol(res.var_par, 4.0 * want_var, 1e-5 * want_var);
    for (int i = 0; i < D; i++)
        ck_assert(theta_grad[i] == 0.0f);   /* the probe leaves the gradients zeroed */

    /* Cameras per draw: the same numbers here (the toy ignores the camera), by another path. */
    sl_probe_result drawn;
    ck_assert_int_eq(sl_probe_run(&env, &est, 1, K, 1, 1, step, &drawn, &err), SL_OK);
    ck_assert_double_eq(drawn.var_img, res.var_img);
    ck_assert_double_eq(drawn.var_par, res.var_par);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("probe");
    TCase *tc = tcase_create("probe");
    tcase_add_test(tc, probe_matches_brute_force);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
