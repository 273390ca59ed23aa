/* tests/test_vsd.c — Variational Score Distillation: the estimator `vsd` and its network.
 *
 * The plugin's sources are compiled in with a renamed entry symbol (as tests/test_ssd.c
 * does); a minimal host and a prior that only reports its size stand in for the driver.
 * The estimator is evaluated through its own delta() with eps_hat = 0, so Delta = -eps_psi.
 *
 * Checks (tolerances stated where asserted):
 *  - the UNet's backward (every tensor, and the input) against central differences;
 *  - the untrained model is the Gaussian's ideal denoiser, and before any render was seen
 *    the point mass at the current render: eps_psi = sigma^2 eps / (alpha^2 s^2 + sigma^2);
 *  - update() lowers the denoising loss on a fixed render distribution (4 images, 4
 *    cameras), measured on held-out draws;
 *  - on a render distribution concentrated at one image, eps_psi approaches the exact
 *    point-mass denoiser (x_t - alpha x0) / sigma = eps, so Delta -> eps_hat - eps (SDS);
 *  - replay mode against a direct computation of the buffer's ideal denoiser;
 *  - bit-identical results with 1 and 2 threads; save_state / load_state continue exactly;
 *  - an image size the levels cannot halve is refused. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "steinlab/steinlab.h"
#include "support/test_host.h"

#define steinlab_plugin_entry test_vsd_entry
#include "../plugins/estimators/vsd/vsd.c"
#undef steinlab_plugin_entry

static sl_diffusion test_diffusion;

/* ------------------------------------------------------------------ a minimal host */

typedef struct size_prior {
    int H, W;
} size_prior;

static void size_prior_info(const void *state, sl_prior_info *info)
{
    const size_prior *p = state;
    *info = (sl_prior_info){ .height = p->H, .width = p->W, .channels = 3,
                             .diffusion = &test_diffusion, .guidance_scale = 1.0 };
}

static sl_status size_prior_noise(void *state, const sl_prior_query *q, float *eps_hat,
                                  sl_error *err)
{
    (void)state; (void)q; (void)eps_hat;
    return sl_error_set(err, SL_ERR_UNSUPPORTED, "not used by vsd");
}

static const sl_prior_vtable size_prior_vt = {
    .struct_size = sizeof(sl_prior_vtable), .info = size_prior_info,
    .noise_pred = size_prior_noise,
};

static double test_recorded(const test_host *th, const char *name)
{
    double v = NAN;
    ck_assert_msg(test_host_recorded(th, name, &v), "series '%s' was not recorded", name);
    return v;
}

/* ------------------------------------------------------------------ fixtures */

typedef struct vsd_fix {
    test_host host;
    size_prior size;
    sl_prior_ref prior;
    sl_params *params;
    vsd_state *s;
    int H, W;
    size_t D;
} vsd_fix;

static sl_status vsd_fix_try(vsd_fix *f, const char *yaml, int H, int W, sl_error *err)
{
    memset(f, 0, sizeof *f);
    f->H = H;
    f->W = W;
    f->D = (size_t)H * W * 3;
    test_host_init(&f->host, "vsd", 7, SL_STREAM_PLUGIN_BASE);
    f->size = (size_prior){ H, W };
    f->prior = (sl_prior_ref){ &size_prior_vt, &f->size };
    f->host.prior = &f->prior;
    const sl_plugin *p = test_vsd_entry(0);
    sl_status st = test_host_try_params(p, yaml, &f->params, err);
    ck_assert_msg(st == SL_OK, "parameters: %s", err->msg);
    void *state = NULL;
    st = ((const sl_estimator_vtable *)p->vtable)->create(&f->host.h, f->params, &state, err);
    f->s = state;
    return st;
}

static void vsd_fix_init(vsd_fix *f, const char *yaml, int H, int W)
{
    sl_error err = { "" };
    ck_assert_msg(vsd_fix_try(f, yaml, H, W, &err) == SL_OK, "create: %s", err.msg);
}

static void vsd_fix_free(vsd_fix *f)
{
    vsd_destroy(f->s);
    sl_params_free(f->params);
}

/* One context: batch B of renders x0 (B, H, W, 3) seen from cams (B,), draws (t, eps). */
typedef struct draw {
    int B;
    size_t D;
    int *t;
    double *alpha, *sigma;
    float *eps, *x_t, *zero, *out;   /* (B, D) */
    sl_estimator_ctx ctx;
} draw;

static void draw_init(draw *d, int B, size_t D)
{
    memset(d, 0, sizeof *d);
    d->B = B;
    d->D = D;
    d->t = calloc((size_t)B, sizeof *d->t);
    d->alpha = calloc((size_t)B, sizeof *d->alpha);
    d->sigma = calloc((size_t)B, sizeof *d->sigma);
    d->eps = calloc((size_t)B * D, sizeof(float));
    d->x_t = calloc((size_t)B * D, sizeof(float));
    d->zero = calloc((size_t)B * D, sizeof(float));
    d->out = calloc((size_t)B * D, sizeof(float));
}

static void draw_free(draw *d)
{
    free(d->t); free(d->alpha); free(d->sigma); free(d->eps); free(d->x_t); free(d->zero);
    free(d->out);
}

/* Fills the context for renders x0 (B, D), times t (B,) and noise from (stream, sample). */
static void draw_make(draw *d, const float *x0, const sl_camera *cams, const int *t,
                      int64_t step, uint32_t stream, uint32_t sample, int H, int W)
{
    for (int b = 0; b < d->B; b++) {
        d->t[b] = t[b];
        d->alpha[b] = sl_diffusion_alpha(&test_diffusion, t[b]);
        d->sigma[b] = sl_diffusion_sigma(&test_diffusion, t[b]);
    }
    sl_rng_key k = { 99, 0, stream, sample };
    sl_rng_normal(k, 0, (size_t)d->B * d->D, d->eps);
    for (int b = 0; b < d->B; b++)
        for (size_t i = 0; i < d->D; i++) {
            const size_t e = (size_t)b * d->D + i;
            d->x_t[e] = (float)(d->alpha[b] * x0[e] + d->sigma[b] * d->eps[e]);
        }
    d->ctx = (sl_estimator_ctx){
        .batch = d->B, .height = H, .width = W, .channels = 3, .step = step, .sample = 0,
        .t = d->t, .alpha = d->alpha, .sigma = d->sigma, .x0 = x0, .eps = d->eps,
        .x_t = d->x_t, .eps_hat = d->zero, .cams = cams, .render = NULL,
    };
}

/* eps_psi of the context into d->out (delta with eps_hat = 0 is -eps_psi). */
static void eps_psi(vsd_fix *f, draw *d)
{
    sl_error err = { "" };
    ck_assert_msg(vsd_delta(f->s, &d->ctx, d->out, &err) == SL_OK, "delta: %s", err.msg);
    for (size_t i = 0; i < (size_t)d->B * d->D; i++)
        d->out[i] = -d->out[i];
}

static void train_step(vsd_fix *f, const float *x0, const sl_camera *cams, int B, int64_t step)
{
    draw d;
    draw_init(&d, B, f->D);
    int t[64];
    for (int b = 0; b < B; b++)
        t[b] = 500;
    draw_make(&d, x0, cams, t, step, 3, (uint32_t)step, f->H, f->W);
    const sl_estimator_ctx *ctxs[1] = { &d.ctx };
    sl_error err = { "" };
    ck_assert_msg(vsd_update(f->s, ctxs, 1, &err) == SL_OK, "update: %s", err.msg);
    draw_free(&d);
}

/* Smooth test images in (-1, 1): tanh of a random field blurred by a box, one per sample. */
static float *make_images(int n, int H, int W, uint32_t stream)
{
    const size_t D = (size_t)H * W * 3;
    float *raw = malloc((size_t)n * D * sizeof(float)), *img = malloc((size_t)n * D * sizeof(float));
    sl_rng_key k = { 3, 0, stream, 0 };
    sl_rng_normal(k, 0, (size_t)n * D, raw);
    for (int m = 0; m < n; m++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < 3; c++) {
                    double s = 0.0;
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++) {
                            int yy = (y + dy + H) % H, xx = (x + dx + W) % W;
                            s += raw[(size_t)m * D + ((size_t)yy * W + xx) * 3 + c];
                        }
                    img[(size_t)m * D + ((size_t)y * W + x) * 3 + c] = (float)tanh(s / 3.0);
                }
    free(raw);
    return img;
}

/* Mean over held-out draws of |eps_psi - eps|^2 / D at times spread over [50, 950], for
 * renders x0 (n, D) and their cameras. */
static double heldout_loss(vsd_fix *f, const float *x0, const sl_camera *cams, int n)
{
    draw d;
    draw_init(&d, n, f->D);
    double sum = 0.0;
    int count = 0;
    for (int k = 0; k < 10; k++) {
        int t[64];
        for (int b = 0; b < n; b++)
            t[b] = 50 + 100 * k;
        draw_make(&d, x0, cams, t, 1000000, 11, (uint32_t)k, f->H, f->W);
        eps_psi(f, &d);
        for (size_t i = 0; i < (size_t)n * f->D; i++) {
            const double e = (double)d.out[i] - d.eps[i];
            sum += e * e;
        }
        count += n;
    }
    draw_free(&d);
    return sum / ((double)count * f->D);
}

static void orbit_cams(sl_camera *cams, int n, int H, int W)
{
    for (int b = 0; b < n; b++)
        sl_camera_orbit(-180.0f + 360.0f * b / n, 15.0f, 2.0f, NULL, 50.0f, W, H, &cams[b]);
}

/* ------------------------------------------------------------------ the network's gradients */

/* L = sum_i r_i y_i in double. */
static double net_loss(vsd_net *net, vsd_net_ctx *c, const float *x, const float *t,
                       const float *pose, const float *mask, const float *r, float *y, size_t n)
{
    sl_error err = { "" };
    ck_assert_msg(vsd_net_forward(net, c, y, x, t, pose, mask, &err) == SL_OK, "%s", err.msg);
    double L = 0.0;
    for (size_t i = 0; i < n; i++)
        L += (double)r[i] * y[i];
    return L;
}

/* Central differences, h = 1e-2, on 3 elements of every tensor (its largest gradient and
 * two fixed positions) and of the input. Float forward passes: L (~1e1) carries ~1e-6
 * rounding, which 2h turns into ~1e-4; the truncation error is O(h^2) relative. Asserted:
 *     |fd - g| <= 2e-2 |g| + 2e-3 max|g_tensor| + 1e-3,
 * and max|g_tensor| >= 1e-3 (the check is not vacuous; printed per tensor). */
START_TEST(test_net_gradients)
{
    const int B = 2, H = 8, W = 8;
    vsd_net_config cfg = { .in_channels = 3, .channels = 8, .levels = 2, .groups = 2,
                           .attention = 1 };
    vsd_net net;
    sl_error err = { "" };
    ck_assert_msg(vsd_net_create(&net, &cfg, (sl_rng_key){ 1, 0, 9, 0 }, &err) == SL_OK, "%s",
                  err.msg);
    /* conv_out starts at 0, which would zero every other gradient: give it values, and the
     * zero-initialised norm shifts too. */
    sl_rng_key kr = { 2, 0, 21, 0 };
    for (size_t i = 0; i < net.params.n; i++) {
        const sl_nn_tensor *tn = &net.params.tensors[i];
        if (tn->init == SL_NN_INIT_ZERO) {
            kr.sample = (uint32_t)i;
            sl_rng_normal(kr, 0, tn->numel, sl_nn_param(&net.params, i));
            for (size_t j = 0; j < tn->numel; j++)
                sl_nn_param(&net.params, i)[j] *= 0.2f;
        }
    }
    vsd_net_ctx *c = NULL;
    ck_assert_int_eq(vsd_net_ctx_create(&net, B, H, W, &c, &err), SL_OK);
    const size_t n = (size_t)B * H * W * 3;
    float *x = malloc(n * 4), *y = malloc(n * 4), *r = malloc(n * 4), *dx = calloc(n, 4);
    sl_rng_normal((sl_rng_key){ 4, 0, 1, 0 }, 0, n, x);
    sl_rng_normal((sl_rng_key){ 4, 0, 2, 0 }, 0, n, r);
    float t[2] = { 137.0f, 811.0f }, mask[2] = { 1.0f, 0.0f };
    float pose[2 * VSD_POSE_FEATURES];
    sl_camera cams[2];
    orbit_cams(cams, 2, H, W);
    vsd_pose_features(&cams[0], pose);
    vsd_pose_features(&cams[1], pose + VSD_POSE_FEATURES);

    net_loss(&net, c, x, t, pose, mask, r, y, n);
    sl_nn_params_zero_grad(&net.params);
    ck_assert_int_eq(vsd_net_backward(&net, c, dx, r, x, pose, mask, &err), SL_OK);
    float *grad = malloc(net.params.total * 4);
    memcpy(grad, net.params.grad, net.params.total * 4);
    const double h = 1e-2;
    double worst = 0.0;
    for (size_t i = 0; i <= net.params.n; i++) {
        /* tensor i, or the input when i == n */
        const int input = i == net.params.n;
        float *v = input ? x : sl_nn_param(&net.params, i);
        const float *g = input ? dx : grad + net.params.tensors[i].offset;
        const size_t numel = input ? n : net.params.tensors[i].numel;
        size_t arg = 0;
        double gmax = 0.0;
        for (size_t j = 0; j < numel; j++)
            if (fabs(g[j]) > gmax) {
                gmax = fabs(g[j]);
                arg = j;
            }
        const char *name = input ? "input x_t" : net.params.tensors[i].name;
        ck_assert_msg(gmax >= 1e-3, "%s: gradient max %g is (near) zero", name, gmax);
        const size_t pick[3] = { arg, numel / 3, 2 * numel / 3 };
        for (int q = 0; q < 3; q++) {
            const size_t j = pick[q];
            const float keep = v[j];
            v[j] = (float)(keep + h);
            const double lp = net_loss(&net, c, x, t, pose, mask, r, y, n);
            v[j] = (float)(keep - h);
            const double lm = net_loss(&net, c, x, t, pose, mask, r, y, n);
            v[j] = keep;
            const double fd = (lp - lm) / (2.0 * h);
            const double tol = 2e-2 * fabs(g[j]) + 2e-3 * gmax + 1e-3;
            worst = fmax(worst, fabs(fd - g[j]) / tol);
            ck_assert_msg(fabs(fd - g[j]) <= tol, "%s[%zu]: backward %.6g, finite difference "
                          "%.6g (tolerance %.3g)", name, j, g[j], fd, tol);
        }
    }
    fprintf(stderr, "network gradients: %zu tensors and the input, 3 elements each; worst "
            "|fd - g| / tolerance = %.3f\n", net.params.n, worst);
    free(x); free(y); free(r); free(dx); free(grad);
    vsd_net_ctx_destroy(c);
    vsd_net_free(&net);
}
END_TEST

/* ------------------------------------------------------------------ the estimator */

#define SMALL_NET "channels: 16\nlevels: 2\ngroups: 4\n"

/* Before any render: eps_psi = sigma^2 eps / (alpha^2 min_std^2 + sigma^2) (the zero output
 * layer adds nothing, m is the render itself), to float rounding. */
START_TEST(test_initial_model_is_the_point_mass_gaussian)
{
    vsd_fix f;
    vsd_fix_init(&f, SMALL_NET "min_std: 0.3\n", 16, 16);
    float *x0 = make_images(2, 16, 16, 1);
    sl_camera cams[2];
    orbit_cams(cams, 2, 16, 16);
    draw d;
    draw_init(&d, 2, f.D);
    const int t[2] = { 100, 700 };
    draw_make(&d, x0, cams, t, 0, 5, 0, 16, 16);
    eps_psi(&f, &d);
    double worst = 0.0;
    for (int b = 0; b < 2; b++) {
        const double a = d.alpha[b], s = d.sigma[b];
        const double scale = s * s / (a * a * 0.09 + s * s);
        for (size_t i = 0; i < f.D; i++) {
            const size_t e = (size_t)b * f.D + i;
            worst = fmax(worst, fabs(d.out[e] - scale * d.eps[e]));
        }
    }
    ck_assert_msg(worst < 1e-5, "initial eps_psi off by %g", worst);
    draw_free(&d);
    free(x0);
    vsd_fix_free(&f);
}
END_TEST

/* A render distribution of 4 images seen from 4 cameras: 60 training steps (batch 4, 2
 * draws per render, lr 1e-3) lower the held-out denoising loss. The same 4 renders every
 * step keep the Gaussian part fixed after the first update (mean and spread unchanged), so
 * the reduction is the network's. */
START_TEST(test_update_reduces_denoising_loss)
{
    vsd_fix f;
    vsd_fix_init(&f, SMALL_NET "lr: 0.001\ntrain_samples: 2\n", 16, 16);
    float *x0 = make_images(4, 16, 16, 2);
    sl_camera cams[4];
    orbit_cams(cams, 4, 16, 16);
    train_step(&f, x0, cams, 4, 0);   /* sets the moments (Gaussian part) */
    const double before = heldout_loss(&f, x0, cams, 4);
    const double first = test_recorded(&f.host, "vsd_psi_loss");
    for (int k = 1; k <= 60; k++)
        train_step(&f, x0, cams, 4, k);
    const double after = heldout_loss(&f, x0, cams, 4);
    const double last = test_recorded(&f.host, "vsd_psi_loss");
    const double gauss = test_recorded(&f.host, "vsd_psi_loss_gaussian");
    fprintf(stderr, "4 renders: held-out denoising loss %.4f after the first update -> %.4f "
            "after 60 more; training loss %.4f -> %.4f (Gaussian alone %.4f)\n", before,
            after, first, last, gauss);
    /* measured 0.239 -> 0.182 */
    ck_assert_msg(after < 0.85 * before, "loss %g -> %g", before, after);
    free(x0);
    vsd_fix_free(&f);
}
END_TEST

/* One render: the exact denoiser of the point mass at x0 is (x_t - alpha x0)/sigma = eps, so
 * Delta -> eps_hat - eps (SDS). min_std 0.5 keeps the Gaussian part far from it, so the
 * network must learn the rest. 8x8, 4 draws per step, lr 3e-3. Measured (held-out mean
 * |eps_psi - eps|^2 / D, E|eps|^2 / D = 1): 0.116 after the first update, 0.024 after 400
 * (with lr 1e-3: 0.029; 3e-4: 0.046; 1e-4: 0.080). Asserted: below 0.3 x the start and 0.035. */
START_TEST(test_point_mass_limit)
{
    vsd_fix f;
    vsd_fix_init(&f, SMALL_NET "lr: 0.003\ntrain_samples: 4\nmin_std: 0.5\n"
                 "camera_dropout: 0\n", 8, 8);
    float *x0 = make_images(1, 8, 8, 3);
    sl_camera cam;
    orbit_cams(&cam, 1, 8, 8);
    train_step(&f, x0, &cam, 1, 0);
    const double before = heldout_loss(&f, x0, &cam, 1);
    for (int k = 1; k <= 400; k++)
        train_step(&f, x0, &cam, 1, k);
    const double after = heldout_loss(&f, x0, &cam, 1);
    fprintf(stderr, "point mass: mean |eps_psi - eps|^2 / D = %.4f (Gaussian part, s = 0.5) "
            "-> %.4f after 400 updates\n", before, after);
    ck_assert_msg(after < 0.3 * before && after < 0.035, "point mass: %g -> %g", before, after);
    free(x0);
    vsd_fix_free(&f);
}
END_TEST

/* Replay: after 4 steps into a buffer of 3 (two contexts per step sharing the renders, as
 * the driver's noise samples do), eps_psi is the ideal denoiser of the last 3 renders,
 * without and with the camera kernel (each render from its own camera, 90 degrees apart). */
static void replay_case(double width)
{
    char cfg[128];
    snprintf(cfg, sizeof cfg, "mode: replay\nreplay_size: 3\nbandwidth: 0.4\n"
             "camera_kernel_width: %g\n", width);
    vsd_fix f;
    vsd_fix_init(&f, cfg, 8, 8);
    float *imgs = make_images(5, 8, 8, 4);
    sl_camera cams[4];
    orbit_cams(cams, 4, 8, 8);
    /* empty buffer: the current render is the only entry */
    draw d;
    draw_init(&d, 1, f.D);
    int t = 600;
    draw_make(&d, imgs + 4 * f.D, &cams[0], &t, 0, 6, 0, 8, 8);
    eps_psi(&f, &d);
    {
        const double a = d.alpha[0], s = d.sigma[0], v = a * a * 0.16 + s * s;
        for (size_t i = 0; i < f.D; i++)
            ck_assert_double_eq_tol(d.out[i], s / v * (d.x_t[i] - a * imgs[4 * f.D + i]),
                                    1e-5);
    }
    for (int k = 0; k < 4; k++) {
        draw a, b;
        draw_init(&a, 1, f.D);
        draw_init(&b, 1, f.D);
        draw_make(&a, imgs + (size_t)k * f.D, &cams[k], &t, k, 7, 0, 8, 8);
        draw_make(&b, imgs + (size_t)k * f.D, &cams[k], &t, k, 7, 1, 8, 8);
        b.ctx.x0 = a.ctx.x0;   /* the same renders */
        const sl_estimator_ctx *ctxs[2] = { &a.ctx, &b.ctx };
        sl_error err = { "" };
        ck_assert_int_eq(vsd_update(f.s, ctxs, 2, &err), SL_OK);
        draw_free(&a);
        draw_free(&b);
    }
    ck_assert_int_eq(f.s->replay_count, 3);
    for (int q = 0; q < 3; q++) {
        t = 300 + 250 * q;
        const sl_camera *cam = &cams[1 + (q + 1) % 3];
        draw_make(&d, imgs + (size_t)(1 + q) * f.D, cam, &t, 9, 8, (uint32_t)q, 8, 8);
        eps_psi(&f, &d);
        const double a = d.alpha[0], s = d.sigma[0], v = a * a * 0.16 + s * s;
        double logit[3], r[3], z = 0.0, mx = -INFINITY, entropy = 0.0;
        for (int k = 0; k < 3; k++) {   /* renders 1, 2, 3 are the last three */
            double d2 = 0.0;
            for (size_t i = 0; i < f.D; i++) {
                const double e = d.x_t[i] - a * imgs[(size_t)(k + 1) * f.D + i];
                d2 += e * e;
            }
            logit[k] = -d2 / (2 * v);
            if (width > 0) {   /* angle between the forward axes of the two cameras */
                const sl_camera *ck = &cams[k + 1];
                double c = 0.0;
                for (int j = 0; j < 3; j++)
                    c += (double)cam->rot[3 * j + 2] * ck->rot[3 * j + 2];
                const double ang = acos(fmin(1.0, fmax(-1.0, c))) * 180.0 / M_PI;
                logit[k] -= ang * ang / (2 * width * width);
            }
            mx = fmax(mx, logit[k]);
        }
        for (int k = 0; k < 3; k++)
            z += exp(logit[k] - mx);
        for (int k = 0; k < 3; k++) {
            r[k] = exp(logit[k] - mx) / z;
            entropy -= r[k] > 0 ? r[k] * log(r[k]) : 0.0;
        }
        double worst = 0.0;
        for (size_t i = 0; i < f.D; i++) {
            double want = 0.0;
            for (int k = 0; k < 3; k++)
                want += r[k] * (d.x_t[i] - a * imgs[(size_t)(k + 1) * f.D + i]);
            want *= s / v;
            worst = fmax(worst, fabs(d.out[i] - want));
        }
        fprintf(stderr, "replay (kernel %g deg) t=%d: responsibilities %.3f %.3f %.3f, max "
                "error %.2g\n", width, t, r[0], r[1], r[2], worst);
        ck_assert_msg(worst < 1e-5, "replay t=%d: max error %g", t, worst);
        if (q == 2)   /* at large t the responsibilities are spread: the check is not a copy */
            ck_assert_msg(entropy > 0.1, "entropy %g", entropy);
    }
    draw_free(&d);
    free(imgs);
    vsd_fix_free(&f);
}

START_TEST(test_replay_against_direct)
{
    replay_case(0.0);
    replay_case(60.0);
}
END_TEST

/* Three updates and a delta, in a fresh instance: the weights and Delta. */
static void run_some(float *delta, float *weights, int threads)
{
    omp_set_num_threads(threads);
    vsd_fix f;
    vsd_fix_init(&f, SMALL_NET "train_samples: 2\nattention: true\n", 16, 16);
    float *x0 = make_images(2, 16, 16, 5);
    sl_camera cams[2];
    orbit_cams(cams, 2, 16, 16);
    for (int k = 0; k < 3; k++)
        train_step(&f, x0, cams, 2, k);
    draw d;
    draw_init(&d, 2, f.D);
    const int t[2] = { 200, 800 };
    draw_make(&d, x0, cams, t, 3, 9, 0, 16, 16);
    eps_psi(&f, &d);
    memcpy(delta, d.out, 2 * f.D * sizeof(float));
    memcpy(weights, f.s->net.params.data, f.s->net.params.total * sizeof(float));
    draw_free(&d);
    free(x0);
    vsd_fix_free(&f);
}

START_TEST(test_thread_count_determinism)
{
    const size_t D = 16 * 16 * 3, P = 2000000;
    float *d1 = malloc(2 * D * 4), *d2 = malloc(2 * D * 4);
    float *w1 = calloc(P, 4), *w2 = calloc(P, 4);
    run_some(d1, w1, 1);
    run_some(d2, w2, 2);
    omp_set_num_threads(2);
    ck_assert_mem_eq(d1, d2, 2 * D * 4);
    ck_assert_mem_eq(w1, w2, P * 4);
    free(d1); free(d2); free(w1); free(w2);
}
END_TEST

/* save_state / load_state: a fresh instance loaded from a checkpoint continues exactly. */
START_TEST(test_save_load_bit_exact)
{
    static const char *const cfg[] = { SMALL_NET "train_samples: 2\n",
                                       "mode: replay\nreplay_size: 3\n" };
    char path[] = "/tmp/test_vsd_ckpt_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    float *x0 = make_images(6, 16, 16, 6);
    sl_camera cams[2];
    orbit_cams(cams, 2, 16, 16);
    for (int m = 0; m < 2; m++) {
        vsd_fix a, b;
        vsd_fix_init(&a, cfg[m], 16, 16);
        for (int k = 0; k < 3; k++)
            train_step(&a, x0 + (size_t)(k % 3) * 2 * a.D, cams, 2, k);
        sl_error err = { "" };
        sl_ckpt *ck = NULL;
        sl_state_io *io = NULL;
        ck_assert_msg(sl_ckpt_begin(path, &ck, &err) == SL_OK, "%s", err.msg);
        ck_assert_int_eq(sl_ckpt_section(ck, "plugins/vsd", &io, &err), SL_OK);
        ck_assert_msg(vsd_save_state(a.s, io, &err) == SL_OK, "%s", err.msg);
        ck_assert_msg(sl_ckpt_commit(ck, &err) == SL_OK, "%s", err.msg);
        vsd_fix_init(&b, cfg[m], 16, 16);
        ck_assert_msg(sl_ckpt_open(path, &ck, &err) == SL_OK, "%s", err.msg);
        ck_assert_int_eq(sl_ckpt_section(ck, "plugins/vsd", &io, &err), SL_OK);
        ck_assert_msg(vsd_load_state(b.s, io, &err) == SL_OK, "%s", err.msg);
        sl_ckpt_close(ck);
        draw da, db;
        draw_init(&da, 2, a.D);
        draw_init(&db, 2, a.D);
        const int t[2] = { 250, 650 };
        for (int k = 3; k < 6; k++) {
            train_step(&a, x0 + (size_t)(k % 3) * 2 * a.D, cams, 2, k);
            train_step(&b, x0 + (size_t)(k % 3) * 2 * a.D, cams, 2, k);
            draw_make(&da, x0, cams, t, k, 10, (uint32_t)k, 16, 16);
            draw_make(&db, x0, cams, t, k, 10, (uint32_t)k, 16, 16);
            eps_psi(&a, &da);
            eps_psi(&b, &db);
            ck_assert_mem_eq(da.out, db.out, 2 * a.D * 4);
        }
        /* a checkpoint of the other mode is refused with the array named */
        vsd_fix other;
        vsd_fix_init(&other, cfg[1 - m], 16, 16);
        ck_assert_int_eq(sl_ckpt_open(path, &ck, &err), SL_OK);
        ck_assert_int_eq(sl_ckpt_section(ck, "plugins/vsd", &io, &err), SL_OK);
        ck_assert_int_eq(vsd_load_state(other.s, io, &err), SL_ERR_FORMAT);
        ck_assert_msg(strstr(err.msg, "vsd") && strstr(err.msg, m ? "psi" : "replay"), "%s",
                      err.msg);
        sl_ckpt_close(ck);
        vsd_fix_free(&other);
        draw_free(&da);
        draw_free(&db);
        vsd_fix_free(&a);
        vsd_fix_free(&b);
    }
    unlink(path);
    free(x0);
}
END_TEST

START_TEST(test_bad_size_refused)
{
    vsd_fix f;
    sl_error err = { "" };
    ck_assert_int_eq(vsd_fix_try(&f, "levels: 3\n", 20, 18, &err), SL_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "20x18") && strstr(err.msg, "divisible by 4"), "%s", err.msg);
    sl_params_free(f.params);
}
END_TEST

static Suite *vsd_suite(void)
{
    Suite *s = suite_create("vsd");
    TCase *tc = tcase_create("vsd");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_net_gradients);
    tcase_add_test(tc, test_initial_model_is_the_point_mass_gaussian);
    tcase_add_test(tc, test_update_reduces_denoising_loss);
    tcase_add_test(tc, test_point_mass_limit);
    tcase_add_test(tc, test_replay_against_direct);
    tcase_add_test(tc, test_thread_count_determinism);
    tcase_add_test(tc, test_save_load_bit_exact);
    tcase_add_test(tc, test_bad_size_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    sl_diffusion_default(&test_diffusion);
    SRunner *sr = srunner_create(vsd_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
