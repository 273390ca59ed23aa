/* tests/test_ssd.c — Stein Score Distillation: the estimator `ssd` and the baselines
 * `constant`, `depth` and `normal`, against the world prior's exact estimators.
 *
 * The plugin sources are compiled in with renamed entry symbols (as tests/test_plugins_2d.c
 * does), the world prior too (as tests/test_world_prior.c does), and renders of the world
 * scene come from its reference renderer (world_render), which is exact: depth = z on the
 * mask, normal = n, opacity = mask.
 *
 * Checks (statistics and tolerances are stated where they are asserted):
 *  - Stein's identity: E_eps[eps phi - sigma grad phi] = 0 at fixed (x0, t, camera) for
 *    constant, depth and normal, by a z-score of the projection on a direction fixed in
 *    advance, with the per-element chi-square reported; the page's sign (eps phi + sigma grad
 *    phi) fails decisively, where the responsibilities are spread (entropy floor) and
 *    sigma |E grad phi| is asserted to be many standard errors first;
 *  - phi = 1, mu = 1: SSD equals SDS bit for bit;
 *  - mu's Adam gradient against central differences of the objective; least-squares mu
 *    against a direct solve of the regularised normal equations (decay included); mu used
 *    in delta() depends only on earlier updates (the current sample cannot move it);
 *  - positive control: an over-smoothed prior (s0' > s0) leaks eps into eps_hat as
 *    (sigma^2 / v') eps; a t-binned mu on the constant baseline converges to the derived
 *    target and cuts the second moment by the predicted factor;
 *  - depth and normal baselines: phi and grad phi against central differences (entropy
 *    floor, gradient norm far above the tolerance), with the render at the prior's size and
 *    at another size, batch 2; degenerate masks give phi = offset and grad 0; required
 *    outputs and a prior without the estimators are refused;
 *  - save_state / load_state: bit-exact continuation. */
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

#define steinlab_plugin_entry test_world_entry
#include "../plugins/priors/world/world.c"
#undef steinlab_plugin_entry
#define steinlab_plugin_entry test_ssd_entry
#include "../plugins/estimators/ssd.c"
#undef steinlab_plugin_entry
#define steinlab_plugin_entry test_sds_entry
#include "../plugins/estimators/sds.c"
#undef steinlab_plugin_entry
#define steinlab_plugin_entry test_constant_entry
#include "../plugins/baselines/constant.c"
#undef steinlab_plugin_entry
#define steinlab_plugin_entry test_depth_entry
#include "../plugins/baselines/depth.c"
#undef steinlab_plugin_entry
#define steinlab_plugin_entry test_normal_entry
#include "../plugins/baselines/normal.c"
#undef steinlab_plugin_entry
#define steinlab_plugin_entry test_mlp_entry
#include "../plugins/baselines/mlp.c"
#undef steinlab_plugin_entry
#define steinlab_plugin_entry test_image2d_entry
#include "../plugins/representations/image2d.c"
#undef steinlab_plugin_entry

/* ------------------------------------------------------------------ a minimal host */

static sl_diffusion test_diffusion;
/* The run's weighting w(t) that draws carry in ctx.weight (the positive control sets it). */
static sl_weighting test_weighting = SL_WEIGHT_SDS;

static double test_recorded(const test_host *th, const char *name)
{
    double v = NAN;
    ck_assert_msg(test_host_recorded(th, name, &v), "series '%s' was not recorded", name);
    return v;
}

/* The shared test host (tests/support) with this suite's seed and the prior given. */
static void ssd_host_init(test_host *th, const char *label, const sl_prior_ref *prior)
{
    test_host_init(th, label, 5, SL_STREAM_PLUGIN_BASE);
    th->prior = prior;
}

/* ------------------------------------------------------------------ fixtures */

/* A small grid at 16 x 16 (24 views of the prompt's scene). */
#define TEST_GRID "resolution: 16\nazimuths: 8\nelevations: [0, 30, 70]\ndistances: [1.8]\n" \
                  "fovy: 50\ncache: false\nunconditional: all_buckets\nconditioning: none\n"
#define TEST_PROMPT "prompt: a red sphere on a blue box\n"
#define PC_PROMPT "a small green torus next to a yellow cone"

typedef struct world_fix {
    test_host host;
    sl_params *params;
    world_state *w;
    sl_prior_ref ref;
    int R;              /* prior size */
    size_t D, P;        /* R R 3, R R */
} world_fix;

static void world_fix_init_yaml(world_fix *f, const char *yaml)
{
    memset(f, 0, sizeof *f);
    ssd_host_init(&f->host, "world", NULL);
    const sl_plugin *p = test_world_entry(0);
    f->params = test_host_params(p, yaml);
    void *state = NULL;
    sl_error err = { "" };
    sl_status st = ((const sl_prior_vtable *)p->vtable)->create(&f->host.h, f->params, &state,
                                                                &err);
    ck_assert_msg(st == SL_OK, "world: %s", err.msg);
    f->w = state;
    f->ref = (sl_prior_ref){ p->vtable, state };
    f->R = f->w->res;
    f->P = (size_t)f->R * f->R;
    f->D = 3 * f->P;
}

static void world_fix_init(world_fix *f, const char *extra)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, TEST_PROMPT TEST_GRID "%s", extra);
    world_fix_init_yaml(f, yaml);
}

static void world_fix_free(world_fix *f)
{
    world_destroy(f->w);
    sl_params_free(f->params);
}

/* An exact render of the scene (sizes of cam), batch B, every element from cams[b]. */
typedef struct render_fix {
    sl_render r;
    float *x0;   /* (B, R, R, 3) 2 rgb - 1 at the prior's size */
} render_fix;

static void render_fix_init(render_fix *rf, const world_fix *f, const sl_camera *cams, int B,
                            int rh, int rw)
{
    const size_t px = (size_t)rh * rw;
    rf->r = (sl_render){ .batch = B, .height = rh, .width = rw };
    rf->r.rgb = malloc(B * px * 3 * sizeof(float));
    rf->r.depth = malloc(B * px * sizeof(float));
    rf->r.normal = malloc(B * px * 3 * sizeof(float));
    rf->r.opacity = malloc(B * px * sizeof(float));
    rf->x0 = malloc(B * f->D * sizeof(float));
    float *rgb = malloc(f->D * sizeof(float));
    for (int b = 0; b < B; b++) {
        sl_camera c = cams[b];
        c.width = rw;
        c.height = rh;
        world_view v = { rf->r.rgb + b * px * 3, rf->r.depth + b * px, rf->r.normal + b * px * 3,
                         rf->r.opacity + b * px };
        world_render(&f->w->scenes[0], &f->w->shading, &c, &v);
        /* x0 at the prior's size from its own exact render. */
        world_view v0 = { rgb, NULL, NULL, NULL };
        world_render(&f->w->scenes[0], &f->w->shading, &cams[b], &v0);
        for (size_t i = 0; i < f->D; i++)
            rf->x0[b * f->D + i] = 2.0f * rgb[i] - 1.0f;
    }
    free(rgb);
}

static void render_fix_free(render_fix *rf)
{
    free(rf->r.rgb), free(rf->r.depth), free(rf->r.normal), free(rf->r.opacity), free(rf->x0);
}

/* One (t, eps) draw for a batch, as the driver makes it (float arithmetic for x_t). */
typedef struct draw {
    int B;
    int t[4];
    double alpha[4], sigma[4], weight[4];
    float *eps, *x_t, *eps_hat;   /* (B, D) */
    sl_estimator_ctx ctx;
} draw;

static void draw_init(draw *d, const world_fix *f, int B)
{
    memset(d, 0, sizeof *d);
    d->B = B;
    d->eps = malloc(B * f->D * sizeof(float));
    d->x_t = malloc(B * f->D * sizeof(float));
    d->eps_hat = malloc(B * f->D * sizeof(float));
}

static void draw_free(draw *d) { free(d->eps), free(d->x_t), free(d->eps_hat); }

/* Fills the draw at the given times with noise stream `sample`; eps_hat from the prior
 * when want_eps_hat. x0: (B, D). */
static void draw_make(draw *d, world_fix *f, const float *x0, const sl_camera *cams,
                      const sl_render *render, const int *t, uint32_t sample, int64_t step,
                      int ctx_sample, int want_eps_hat)
{
    const int B = d->B;
    sl_rng_key k = { .seed = 77, .step = (uint32_t)step, .stream = 0x55d, .sample = sample };
    sl_rng_normal(k, 0, B * f->D, d->eps);
    for (int b = 0; b < B; b++) {
        d->t[b] = t[b];
        d->alpha[b] = sl_diffusion_alpha(&test_diffusion, t[b]);
        d->sigma[b] = sl_diffusion_sigma(&test_diffusion, t[b]);
        d->weight[b] = sl_diffusion_weight(&test_diffusion, test_weighting, t[b]);
        const float a = (float)d->alpha[b], s = (float)d->sigma[b];
        for (size_t i = 0; i < f->D; i++)
            d->x_t[b * f->D + i] = a * x0[b * f->D + i] + s * d->eps[b * f->D + i];
    }
    if (want_eps_hat) {
        sl_prior_query q = { .batch = B, .x_t = d->x_t, .t = d->t, .cams = cams, .step = step };
        sl_error err;
        ck_assert_int_eq(world_noise_pred(f->w, &q, d->eps_hat, &err), SL_OK);
    } else {
        memset(d->eps_hat, 0, B * f->D * sizeof(float));
    }
    d->ctx = (sl_estimator_ctx){
        .batch = B, .height = f->R, .width = f->R, .channels = 3, .step = step,
        .sample = ctx_sample, .t = d->t, .alpha = d->alpha, .sigma = d->sigma, .x0 = x0,
        .eps = d->eps, .x_t = d->x_t, .eps_hat = d->eps_hat, .cams = cams, .render = render,
        .weight = d->weight,
    };
}

/* A baseline instance on the fixture's prior. */
typedef struct bl_fix {
    test_host host;
    sl_params *params;
    sl_baseline_ref ref;
} bl_fix;

static sl_status bl_fix_try(bl_fix *b, const sl_plugin *p, const char *yaml,
                            const sl_prior_ref *prior, sl_error *err)
{
    memset(b, 0, sizeof *b);
    ssd_host_init(&b->host, p->name, prior);
    b->params = test_host_params(p, yaml);
    void *state = NULL;
    const sl_baseline_vtable *vt = p->vtable;
    sl_status st = vt->create(&b->host.h, b->params, &state, err);
    b->ref = (sl_baseline_ref){ vt, state, p->name, p };
    return st;
}

static void bl_fix_init(bl_fix *b, const sl_plugin *p, const char *yaml, const sl_prior_ref *prior)
{
    sl_error err = { "" };
    sl_status st = bl_fix_try(b, p, yaml, prior, &err);
    ck_assert_msg(st == SL_OK, "%s: %s", p->name, err.msg);
}

static void bl_fix_free(bl_fix *b)
{
    if (b->ref.state)
        b->ref.vt->destroy(b->ref.state);
    sl_params_free(b->params);
}

/* An ssd instance over the given baseline refs. */
typedef struct ssd_fix {
    test_host host;
    sl_params *params;
    ssd_state *s;
} ssd_fix;

static void ssd_fix_init(ssd_fix *x, const char *yaml, const sl_prior_ref *prior,
                         const sl_baseline_ref *refs, size_t n)
{
    memset(x, 0, sizeof *x);
    ssd_host_init(&x->host, "ssd", prior);
    x->host.baselines = refs;
    x->host.n_baselines = n;
    const sl_plugin *p = test_ssd_entry(0);
    x->params = test_host_params(p, yaml);
    void *state = NULL;
    sl_error err = { "" };
    sl_status st = ((const sl_estimator_vtable *)p->vtable)->create(&x->host.h, x->params,
                                                                    &state, &err);
    ck_assert_msg(st == SL_OK, "ssd: %s", err.msg);
    x->s = state;
}

static void ssd_fix_free(ssd_fix *x)
{
    ssd_destroy(x->s);
    sl_params_free(x->params);
}

static void ssd_step(ssd_fix *x, draw *d, float *delta)
{
    sl_error err = { "" };
    ck_assert_msg(ssd_delta(x->s, &d->ctx, delta, &err) == SL_OK, "delta: %s", err.msg);
    const sl_estimator_ctx *cp = &d->ctx;
    ck_assert_msg(ssd_update(x->s, &cp, 1, &err) == SL_OK, "update: %s", err.msg);
}

/* Entropy (nats) of the world estimator posterior of batch element b after a predict(). */
static double geo_entropy(const world_fix *f, int which, int b)
{
    const world_geo_cache *g = &f->w->geo[which];
    const double *r = g->r + (size_t)b * f->w->bank.n_views;
    double h = 0.0;
    for (size_t j = 0; j < g->set[b].n; j++)
        if (r[j] > 0.0)
            h -= r[j] * log(r[j]);
    return h;
}

static void unit_normal(uint32_t sample, size_t n, double *u)
{
    float *tmp = malloc(n * sizeof *tmp);
    sl_rng_key k = { .seed = 3, .step = 0, .stream = 0xd1, .sample = sample };
    sl_rng_normal(k, 0, n, tmp);
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)tmp[i] * tmp[i];
    for (size_t i = 0; i < n; i++)
        u[i] = tmp[i] / sqrt(s);
    free(tmp);
}

/* ------------------------------------------------------------------ Stein's identity */

/* Zero mean of c = eps phi - sigma grad phi over N draws of eps at fixed (x0, t, camera),
 * and the failure of the page's sign eps phi + sigma grad phi. The asserted statistic is
 * z = mean<c, u> / se for a unit direction u fixed before the draws it is applied to: u is
 * the normalised mean of sigma grad phi over a first, independent half of the draws (or a
 * random direction for the constant baseline, whose gradient is 0). Under H0 z ~ N(0, 1). */
/* which: 0 depth, 1 normal (the world estimator whose posterior entropy is asserted),
 * STEIN_CONSTANT (grad phi = 0: no signal to assert), STEIN_LEARNED (the mlp: its gradient
 * does not go through the world's estimators, the signal is asserted). */
enum { STEIN_CONSTANT = -1, STEIN_LEARNED = -2 };

static void check_stein(world_fix *f, const sl_baseline_ref *bl, int which, int t, int N)
{
    enum { B = 1 };
    sl_camera cam;
    sl_camera_orbit(20.0f, 10.0f, 1.8f, NULL, 50.0f, f->R, f->R, &cam);
    render_fix rf;
    render_fix_init(&rf, f, &cam, B, f->R, f->R);
    draw d;
    draw_init(&d, f, B);
    const size_t D = f->D;
    float phi, *g = malloc(D * sizeof *g);
    double *u = calloc(D, sizeof *u), *s1 = calloc(D, 8), *s2 = calloc(D, 8);
    double sum_p = 0, sum_p2 = 0, sum_w = 0, sum_w2 = 0, sum_gu = 0, ent = 0;
    int n_ent = 0;
    const int half = N / 2;
    sl_error err = { "" };
    for (int n = 0; n < N; n++) {
        draw_make(&d, f, rf.x0, &cam, &rf.r, &t, (uint32_t)n, 0, 0, 0);
        ck_assert_msg(bl->vt->eval(bl->state, &d.ctx, &phi, g, &err) == SL_OK, "%s", err.msg);
        if (which >= 0) {
            ent += geo_entropy(f, which, 0);
            n_ent++;
        }
        const double sg = d.sigma[0];
        if (n < half) {   /* the direction */
            for (size_t i = 0; i < D; i++)
                u[i] += sg * g[i];
            continue;
        }
        if (n == half) {
            double nu = 0;
            for (size_t i = 0; i < D; i++)
                nu += u[i] * u[i];
            if (nu > 0)
                for (size_t i = 0; i < D; i++)
                    u[i] /= sqrt(nu);
            else
                unit_normal(1, D, u);
        }
        double p = 0, pw = 0, gu = 0;
        for (size_t i = 0; i < D; i++) {
            const double c = (double)d.eps[i] * phi - sg * g[i];
            const double cw = (double)d.eps[i] * phi + sg * g[i];
            p += c * u[i];
            pw += cw * u[i];
            gu += sg * g[i] * u[i];
            s1[i] += c;
            s2[i] += c * c;
        }
        sum_p += p, sum_p2 += p * p, sum_w += pw, sum_w2 += pw * pw, sum_gu += gu;
    }
    const double M = N - half;
    const double mp = sum_p / M, se = sqrt((sum_p2 / M - mp * mp) / (M - 1));
    const double mw = sum_w / M, sew = sqrt((sum_w2 / M - mw * mw) / (M - 1));
    const double z = mp / se, zw = mw / sew, signal = 2.0 * sum_gu / M / se;
    /* Reported: chi-square of the per-element means (elements are correlated through phi,
     * so its null spread is wider than sqrt(2D); not asserted). */
    double chi2 = 0;
    for (size_t i = 0; i < D; i++) {
        const double m = s1[i] / M, v = (s2[i] / M - m * m) * M / (M - 1);
        chi2 += m * m / (v / M);
    }
    fprintf(stderr, "stein %-8s t %d N %d: z %+.2f (sign fixed), z %+.1f (page's sign), "
            "2 sigma <E grad phi, u> = %.1f se, chi2/D %.3f (z %+.2f), mean H(r) %.2f\n",
            bl->label, t, N, z, zw, signal, chi2 / D, (chi2 - D) / sqrt(2.0 * D),
            n_ent ? ent / n_ent : 0.0);
    ck_assert_msg(fabs(z) < 4.5, "%s: the Stein bracket's projected mean is %.2f se from 0",
                  bl->label, z);
    if (which >= 0)
        ck_assert_msg(ent / n_ent > 0.5, "%s: responsibilities collapsed (H %.3f)", bl->label,
                      ent / n_ent);
    if (which != STEIN_CONSTANT) {
        /* The premise, asserted before the conclusion: the wrong sign shifts the mean by
         * 2 sigma E[grad phi], many standard errors. */
        ck_assert_msg(signal > 20.0, "%s: 2 sigma |E grad phi| only %.1f se", bl->label, signal);
        ck_assert_msg(zw > 15.0, "%s: the page's sign is only %.1f se off", bl->label, zw);
    }
    free(g), free(u), free(s1), free(s2);
    draw_free(&d);
    render_fix_free(&rf);
}

START_TEST(test_stein_zero_mean)
{
    world_fix f;
    world_fix_init(&f, "prior_bandwidth: 0.6\nguidance_scale: 1\n");
    bl_fix c, dp, nm;
    bl_fix_init(&c, test_constant_entry(0), "{}", &f.ref);
    bl_fix_init(&dp, test_depth_entry(0), "{}", &f.ref);
    bl_fix_init(&nm, test_normal_entry(0), "{}", &f.ref);
    check_stein(&f, &c.ref, STEIN_CONSTANT, 900, 4000);
    check_stein(&f, &dp.ref, 0, 900, 30000);
    check_stein(&f, &nm.ref, 1, 900, 30000);
    bl_fix_free(&c), bl_fix_free(&dp), bl_fix_free(&nm);
    world_fix_free(&f);
}
END_TEST

/* ------------------------------------------------------------------ SSD = SDS */

START_TEST(test_ssd_equals_sds)
{
    world_fix f;
    world_fix_init(&f, "guidance_scale: 7.5\n");
    bl_fix c;
    bl_fix_init(&c, test_constant_entry(0), "{}", &f.ref);
    ssd_fix x;
    ssd_fix_init(&x, "mu: {fit: none, value: 1}\n", &f.ref, &c.ref, 1);
    enum { B = 2 };
    sl_camera cams[B];
    sl_camera_orbit(0.0f, 10.0f, 1.8f, NULL, 50.0f, f.R, f.R, &cams[0]);
    sl_camera_orbit(120.0f, 30.0f, 1.8f, NULL, 50.0f, f.R, f.R, &cams[1]);
    render_fix rf;
    render_fix_init(&rf, &f, cams, B, f.R, f.R);
    draw d;
    draw_init(&d, &f, B);
    float *a = malloc(B * f.D * 4), *b = malloc(B * f.D * 4);
    sl_error err;
    for (int k = 0; k < 20; k++) {
        int t[B] = { 1 + 50 * k, 1000 - 37 * k };
        draw_make(&d, &f, rf.x0, cams, &rf.r, t, (uint32_t)k, k, 0, 1);
        ssd_step(&x, &d, a);
        ck_assert_int_eq(sds_delta(NULL, &d.ctx, b, &err), SL_OK);
        ck_assert_mem_eq(a, b, B * f.D * sizeof(float));
    }
    ck_assert_double_eq(x.s->mu[0], 1.0);
    /* The series: declared names, recorded values. */
    ck_assert_str_eq(x.host.series[0], "ssd_mu_constant_mean");
    ck_assert_double_eq(test_recorded(&x.host, "ssd_mu_constant_max"), 1.0);
    ck_assert_double_eq(test_recorded(&x.host, "ssd_objective"),
                        test_recorded(&x.host, "ssd_objective_sds"));
    fprintf(stderr, "ssd = sds: 20 draws of batch 2, bit for bit\n");
    free(a), free(b);
    draw_free(&d);
    render_fix_free(&rf);
    ssd_fix_free(&x);
    bl_fix_free(&c);
    world_fix_free(&f);
}
END_TEST

/* ------------------------------------------------------------------ fitting mu */

/* (1/N) sum w^2 |Delta|^2 over the draws with the estimator's current mu, from delta(). */
static double objective_of(ssd_fix *x, draw *ds, int n, float *buf, size_t D)
{
    double sum = 0, count = 0;
    sl_error err;
    for (int k = 0; k < n; k++) {
        ck_assert_int_eq(ssd_delta(x->s, &ds[k].ctx, buf, &err), SL_OK);
        for (int b = 0; b < ds[k].B; b++) {
            const double w = sl_diffusion_weight(&test_diffusion, SL_WEIGHT_SDS, ds[k].t[b]);
            for (size_t i = 0; i < D; i++)
                sum += w * w * (double)buf[b * D + i] * buf[b * D + i];
            count += (double)D;
        }
    }
    return sum / count;
}

START_TEST(test_mu_adam_gradient)
{
    world_fix f;
    world_fix_init(&f, "prior_bandwidth: 0.6\nguidance_scale: 3\n");
    bl_fix c, dp;
    bl_fix_init(&c, test_constant_entry(0), "{}", &f.ref);
    bl_fix_init(&dp, test_depth_entry(0), "{}", &f.ref);
    const sl_baseline_ref refs[2] = { c.ref, dp.ref };
    static const char *const shapes[] = { "scalar", "channel", "tbins" };
    enum { B = 2, NS = 3 };
    sl_camera cams[B];
    sl_camera_orbit(20.0f, 10.0f, 1.8f, NULL, 50.0f, f.R, f.R, &cams[0]);
    sl_camera_orbit(-100.0f, 30.0f, 1.8f, NULL, 50.0f, f.R, f.R, &cams[1]);
    render_fix rf;
    render_fix_init(&rf, &f, cams, B, f.R, f.R);
    draw ds[NS];
    float *buf = malloc(B * f.D * 4);
    for (int sh = 0; sh < 3; sh++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, "mu: {shape: %s, bins: 4, fit: adam, value: 0.7}\n",
                 shapes[sh]);
        ssd_fix x;
        ssd_fix_init(&x, yaml, &f.ref, refs, 2);
        const size_t JM = x.s->J * x.s->M;
        /* Move mu off its initial value (per index) so the check is generic. */
        for (size_t k = 0; k < JM; k++)
            x.s->mu[k] = 0.3 + 0.11 * (double)k;
        const sl_estimator_ctx *cps[NS];
        for (int k = 0; k < NS; k++) {
            int t[B] = { 300 + 250 * k, 880 - 100 * k };
            draw_init(&ds[k], &f, B);
            draw_make(&ds[k], &f, rf.x0, cams, &rf.r, t, (uint32_t)(40 + k), 7, k, 1);
            cps[k] = &ds[k].ctx;
        }
        double *mu0 = malloc(JM * 8), *grad = malloc(JM * 8);
        memcpy(mu0, x.s->mu, JM * 8);
        const double obj = objective_of(&x, ds, NS, buf, f.D);   /* also fills the caches */
        sl_error err;
        ck_assert_int_eq(ssd_update(x.s, cps, NS, &err), SL_OK);
        const double count = (double)NS * B * f.D;
        for (size_t k = 0; k < JM; k++)
            grad[k] = x.s->grad_mu[k] / count;
        /* The recorded objective is the same quantity (double there, float Delta here). */
        ck_assert_double_eq_tol(test_recorded(&x.host, "ssd_objective"), obj, 1e-6 * obj);
        /* Central differences: J is quadratic in mu, so the only error is rounding. */
        const double h = 1e-3;
        double worst = 0;
        for (size_t k = 0; k < JM; k++) {
            memcpy(x.s->mu, mu0, JM * 8);
            x.s->mu[k] = mu0[k] + h;
            const double jp = objective_of(&x, ds, NS, buf, f.D);
            x.s->mu[k] = mu0[k] - h;
            const double jm = objective_of(&x, ds, NS, buf, f.D);
            const double fd = (jp - jm) / (2 * h);
            ck_assert_msg(fabs(fd - grad[k]) <= 1e-4 * fabs(grad[k]) + 1e-5 * obj,
                          "%s mu[%zu]: gradient %.8g, central differences %.8g", shapes[sh], k,
                          grad[k], fd);
            worst = fmax(worst, fabs(fd - grad[k]) / fmax(fabs(grad[k]), 1e-30));
        }
        fprintf(stderr, "adam gradient, shape %s: %zu weights, objective %.4g, max rel. err "
                "%.1e\n", shapes[sh], JM, obj, worst);
        free(mu0), free(grad);
        for (int k = 0; k < NS; k++)
            draw_free(&ds[k]);
        ssd_fix_free(&x);
    }
    free(buf);
    render_fix_free(&rf);
    bl_fix_free(&c), bl_fix_free(&dp);
    world_fix_free(&f);
}
END_TEST

/* Gaussian elimination with partial pivoting on an n x n system (n small), in place. */
static void solve_dense(double *a, double *b, int n)
{
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(a[r * n + c]) > fabs(a[piv * n + c]))
                piv = r;
        for (int k = 0; k < n; k++) {
            double tmp = a[c * n + k];
            a[c * n + k] = a[piv * n + k];
            a[piv * n + k] = tmp;
        }
        double tb = b[c];
        b[c] = b[piv];
        b[piv] = tb;
        for (int r = c + 1; r < n; r++) {
            const double fct = a[r * n + c] / a[c * n + c];
            for (int k = c; k < n; k++)
                a[r * n + k] -= fct * a[c * n + k];
            b[r] -= fct * b[c];
        }
    }
    for (int r = n - 1; r >= 0; r--) {
        double v = b[r];
        for (int k = r + 1; k < n; k++)
            v -= a[r * n + k] * b[k];
        b[r] = v / a[r * n + r];
    }
}

START_TEST(test_mu_least_squares_and_unbiased)
{
    world_fix f;
    world_fix_init(&f, "prior_bandwidth: 0.6\nguidance_scale: 3\n");
    bl_fix c, dp, nm;
    bl_fix_init(&c, test_constant_entry(0), "{}", &f.ref);
    bl_fix_init(&dp, test_depth_entry(0), "{}", &f.ref);
    bl_fix_init(&nm, test_normal_entry(0), "{offset: 0.5}", &f.ref);
    const sl_baseline_ref refs[3] = { c.ref, dp.ref, nm.ref };
    enum { B = 1, J = 3, C = 3, STEPS = 12 };
    const double decay = 0.9, ridge = 1e-3;
    ssd_fix x;
    ssd_fix_init(&x, "mu: {shape: channel, fit: least_squares, decay: 0.9, ridge: 0.001, "
                 "value: 0.5}\n", &f.ref, refs, J);
    sl_camera cam;
    sl_camera_orbit(20.0f, 10.0f, 1.8f, NULL, 50.0f, f.R, f.R, &cam);
    render_fix rf;
    render_fix_init(&rf, &f, &cam, B, f.R, f.R);
    draw d, d2;
    draw_init(&d, &f, B);
    draw_init(&d2, &f, B);
    const size_t D = f.D;
    double A[C][J * J] = { { 0 } }, bv[C][J] = { { 0 } };
    float *delta = malloc(D * 4), *delta2 = malloc(D * 4), *g = malloc(D * 4);
    float *cj = malloc(J * D * 4);
    sl_error err;
    for (int k = 0; k < STEPS; k++) {
        int t = 600 + 30 * k;
        draw_make(&d, &f, rf.x0, &cam, &rf.r, &t, (uint32_t)(500 + k), k, 0, 1);
        /* Unbiasedness by construction: mu is what the earlier updates left, and delta()
         * on this sample, or on a perturbed one, does not move it. */
        double mu_before[J * C];
        memcpy(mu_before, x.s->mu, sizeof mu_before);
        ck_assert_int_eq(ssd_delta(x.s, &d.ctx, delta, &err), SL_OK);
        int t2 = t + 7;
        draw_make(&d2, &f, rf.x0, &cam, &rf.r, &t2, (uint32_t)(900 + k), k, 1, 1);
        ck_assert_int_eq(ssd_delta(x.s, &d2.ctx, delta2, &err), SL_OK);
        ck_assert_mem_eq(x.s->mu, mu_before, sizeof mu_before);
        /* Delta = eps_hat - sum_j mu_before c_j with the brackets computed here. */
        float phi;
        for (int j = 0; j < J; j++) {
            ck_assert_int_eq(refs[j].vt->eval(refs[j].state, &d.ctx, &phi, g, &err), SL_OK);
            for (size_t i = 0; i < D; i++)
                cj[j * D + i] = (float)((double)d.eps[i] * phi - d.sigma[0] * (double)g[i]);
        }
        for (size_t i = 0; i < D; i++) {
            double h = 0;
            for (int j = 0; j < J; j++)
                h += mu_before[j * C + i % C] * (double)cj[j * D + i];
            ck_assert_float_eq(delta[i], d.eps_hat[i] - (float)h);
        }
        /* The update on this step's sample (d2's delta came in between: the cache slot of
         * sample 0 is still d's). */
        const sl_estimator_ctx *cp = &d.ctx;
        ck_assert_int_eq(ssd_update(x.s, &cp, 1, &err), SL_OK);
        /* The direct solve: running sums with decay, (A + lambda I) mu = b + lambda mu0. */
        const double w = sl_diffusion_weight(&test_diffusion, SL_WEIGHT_SDS, t), w2 = w * w;
        for (int ch = 0; ch < C; ch++) {
            for (int q = 0; q < J * J; q++)
                A[ch][q] *= decay;
            for (int q = 0; q < J; q++)
                bv[ch][q] *= decay;
        }
        for (size_t i = 0; i < D; i++)
            for (int j = 0; j < J; j++) {
                bv[i % C][j] += w2 * cj[j * D + i] * (double)d.eps_hat[i];
                for (int q = 0; q < J; q++)
                    A[i % C][j * J + q] += w2 * cj[j * D + i] * (double)cj[q * D + i];
            }
        for (int ch = 0; ch < C; ch++) {
            double a[J * J], r[J], tr = 0;
            memcpy(a, A[ch], sizeof a);
            for (int j = 0; j < J; j++)
                tr += a[j * J + j];
            const double lambda = ridge * tr / J;
            for (int j = 0; j < J; j++) {
                a[j * J + j] += lambda;
                r[j] = bv[ch][j] + lambda * 0.5;
            }
            solve_dense(a, r, J);
            for (int j = 0; j < J; j++)
                ck_assert_msg(fabs(x.s->mu[j * C + ch] - r[j]) <= 1e-7 * (1 + fabs(r[j])),
                              "step %d channel %d baseline %d: mu %.12g, direct solve %.12g",
                              k, ch, j, x.s->mu[j * C + ch], r[j]);
        }
        /* The next step sees the new mu: delta on the same context changes. */
        if (k == STEPS - 1) {
            ck_assert_int_eq(ssd_delta(x.s, &d.ctx, delta2, &err), SL_OK);
            ck_assert_int_ne(memcmp(delta, delta2, D * 4), 0);
        }
    }
    fprintf(stderr, "least squares: mu (channel 0) constant %.4f depth %.4f normal %.4f after "
            "%d steps (decay %.2f), matches the direct solve to 1e-7\n", x.s->mu[0],
            x.s->mu[C], x.s->mu[2 * C], STEPS, decay);
    free(delta), free(delta2), free(g), free(cj);
    draw_free(&d), draw_free(&d2);
    render_fix_free(&rf);
    ssd_fix_free(&x);
    bl_fix_free(&c), bl_fix_free(&dp), bl_fix_free(&nm);
    world_fix_free(&f);
}
END_TEST

/* ------------------------------------------------------------------ positive control */

/* x0 is a bank view x^(k) of the prompt, the data bandwidth s0 = 0.05 and the prior's
 * s0' = 0.3. Where the posterior is one view (collapse), eps_hat = (sigma/v')(x_t - alpha
 * x^(k)) = (sigma^2/v') eps exactly: the prior's prediction is a(t) eps with
 * a = sigma^2 / v', v' = alpha^2 s0'^2 + sigma^2 < 1, so SDS's Delta = (a - 1) eps leaks.
 * With Delta = eps_hat - mu eps and mu constant on a t-bin, the second moment
 *     E[w^2 |eps_hat - mu eps|^2]  is minimised by  mu* = E[w^2 <eps, eps_hat>] / E[w^2 |eps|^2]
 * (set its mu-derivative -2 E[w^2 <eps, eps_hat - mu eps>] to 0), and with eps_hat = a eps,
 * E|eps|^2 = D independent of t: mu* = E_t[w^2 a] / E_t[w^2] over the bin's t. (Not
 * sigma^2/v' itself: a varies within the bin.) The ratio of second moments, SSD to SDS, is
 *     E_t[w^2 (a - mu*)^2] / E_t[w^2 (a - 1)^2]   per bin.
 * Checked: the least-squares mu against the empirical mu* of the same draws (1e-6), the
 * leak model (eps_hat = a eps) where the posterior is collapsed, mu against the population
 * E_t[w^2 a] / E_t[w^2] there, the second-moment ratio on fresh draws against the
 * prediction, and Adam's mu against least squares. */
static void positive_control(const char *weighting, sl_weighting wt)
{
    /* 32 x 32, an asymmetric scene and 16 views: distinct enough views that the posterior
     * collapses at small and middle t (asserted per bin from the prior's own entropy). */
    test_weighting = wt;   /* the draws carry w(t) of this weighting, as the run's would */
    world_fix f;
    world_fix_init_yaml(&f, "prompt: " PC_PROMPT "\nresolution: 32\nazimuths: 8\n"
                        "elevations: [0, 30]\ndistances: [1.8]\nfovy: 50\ncache: false\n"
                        "unconditional: all_buckets\nconditioning: none\nbandwidth: 0.05\n"
                        "prior_bandwidth: 0.3\nguidance_scale: 1\n");
    bl_fix c;
    bl_fix_init(&c, test_constant_entry(0), "{}", &f.ref);
    enum { BINS = 10, TRAIN = 3000, TEST = 1500 };
    char yaml[256];
    snprintf(yaml, sizeof yaml, "mu: {shape: tbins, bins: %d, fit: least_squares, decay: 1, "
             "ridge: 0}\n", BINS);
    ssd_fix lsq;
    ssd_fix_init(&lsq, yaml, &f.ref, &c.ref, 1);
    snprintf(yaml, sizeof yaml, "mu: {shape: tbins, bins: %d, fit: adam, lr: [0, 0.05, 0.002, "
             "%d]}\n", BINS, TRAIN);
    ssd_fix adam_x;
    ssd_fix_init(&adam_x, yaml, &f.ref, &c.ref, 1);
    /* x0 = the bank view farthest from its nearest other view. */
    const world_state *w = f.w;
    const size_t D = f.D;
    size_t view = w->prompt_views[0];
    double best = -1;
    for (size_t j = 0; j < w->n_prompt; j++) {
        double nearest = INFINITY;
        for (size_t q = 0; q < w->n_prompt; q++) {
            if (q == j)
                continue;
            double d2 = 0;
            for (size_t i = 0; i < D; i++) {
                const size_t vj = w->prompt_views[j] * D + i, vq = w->prompt_views[q] * D + i;
                const double e = world_bank_get(w->bank.x, w->bank.storage, vj) -
                                 world_bank_get(w->bank.x, w->bank.storage, vq);
                d2 += e * e;
            }
            nearest = fmin(nearest, d2);
        }
        if (nearest > best)
            best = nearest, view = w->prompt_views[j];
    }
    fprintf(stderr, "positive control: x0 = view %zu, squared distance to its nearest other "
            "view %.1f\n", view, best);
    sl_camera cam = w->bank.cams[view];
    float *x0 = malloc(D * 4);
    for (size_t i = 0; i < D; i++)
        x0[i] = world_bank_get(w->bank.x, w->bank.storage, view * D + i);
    sl_render rnd = { .batch = 1, .height = f.R, .width = f.R };
    draw d;
    draw_init(&d, &f, 1);
    float *delta = malloc(D * 4);
    double num[BINS] = { 0 }, den[BINS] = { 0 }, lnum[BINS] = { 0 }, ent[BINS] = { 0 };
    double leak_err[BINS] = { 0 };
    int cnt[BINS] = { 0 };
    int *dbin = malloc(TRAIN * sizeof *dbin);
    double *dw2 = malloc(TRAIN * sizeof *dw2), *da = malloc(TRAIN * sizeof *da);
    const int lo = 20, hi = 980;
    sl_rng_key tk = { .seed = 9, .step = 0, .stream = 0x7b, .sample = 0 };
    for (int k = 0; k < TRAIN + TEST; k++) {
        int t = (int)sl_rng_int1(tk, (uint64_t)k, lo, hi);
        draw_make(&d, &f, x0, &cam, &rnd, &t, (uint32_t)k, k, 0, 1);
        const int b = ssd_tbin(lsq.s, t);
        const double wv = sl_diffusion_weight(&test_diffusion, wt, t), w2 = wv * wv;
        const double v = d.alpha[0] * d.alpha[0] * 0.09 + d.sigma[0] * d.sigma[0];
        const double a = d.sigma[0] * d.sigma[0] / v;
        if (k < TRAIN) {
            ssd_step(&lsq, &d, delta);
            ssd_step(&adam_x, &d, delta);
            double ee = 0, eh = 0, dev = 0, ref = 0;
            for (size_t i = 0; i < D; i++) {
                ee += (double)d.eps[i] * d.eps[i];
                eh += (double)d.eps[i] * d.eps_hat[i];
                dev = fmax(dev, fabs(d.eps_hat[i] - a * d.eps[i]));
                ref = fmax(ref, fabs(a * d.eps[i]));
            }
            num[b] += w2 * eh;
            den[b] += w2 * ee;
            lnum[b] += w2 * a * ee;
            ent[b] += f.w->ent_sum[WORLD_SERIES_ALL] / f.w->ent_count[WORLD_SERIES_ALL];
            leak_err[b] = fmax(leak_err[b], dev / ref);
            cnt[b]++;
            dbin[k] = b, dw2[k] = w2, da[k] = a;
        }
    }
    /* Population targets: t uniform on the integers of each bin within [lo, hi]. */
    double pop[BINS], pred_ssd[BINS] = { 0 }, pred_sds[BINS] = { 0 };
    for (int b = 0; b < BINS; b++) {
        double sw = 0, swa = 0;
        for (int t = lo; t <= hi; t++)
            if (ssd_tbin(lsq.s, t) == b) {
                const double wv = sl_diffusion_weight(&test_diffusion, wt, t);
                const double al = sl_diffusion_alpha(&test_diffusion, t);
                const double sg = sl_diffusion_sigma(&test_diffusion, t);
                const double a = sg * sg / (al * al * 0.09 + sg * sg);
                sw += wv * wv;
                swa += wv * wv * a;
            }
        pop[b] = swa / sw;
        for (int t = lo; t <= hi; t++)
            if (ssd_tbin(lsq.s, t) == b) {
                const double wv = sl_diffusion_weight(&test_diffusion, wt, t);
                const double al = sl_diffusion_alpha(&test_diffusion, t);
                const double sg = sl_diffusion_sigma(&test_diffusion, t);
                const double a = sg * sg / (al * al * 0.09 + sg * sg);
                pred_ssd[b] += wv * wv * (a - pop[b]) * (a - pop[b]);
                pred_sds[b] += wv * wv * (a - 1) * (a - 1);
            }
    }
    fprintf(stderr, "positive control (weighting %s): bin, draws, H(r), leak model err, "
            "mu lsq, empirical mu*, leak-model mu*, population mu*, mu adam\n", weighting);
    int collapsed = 0;
    for (int b = 0; b < BINS; b++) {
        const double mu = lsq.s->mu[b], emp = num[b] / den[b], leak = lnum[b] / den[b];
        const double h = ent[b] / cnt[b];
        fprintf(stderr, "  %d %4d %.3f %.1e  %.5f %.5f %.5f %.5f  %.5f\n", b, cnt[b], h,
                leak_err[b], mu, emp, leak, pop[b], adam_x.s->mu[b]);
        ck_assert_int_gt(cnt[b], 100);
        /* The least-squares solution is the empirical ratio (ridge 0, decay 1). */
        ck_assert_msg(fabs(mu - emp) <= 1e-6 * fabs(emp), "bin %d: mu %.9g, ratio %.9g", b, mu,
                      emp);
        if (h < 1e-3) {   /* collapsed: the leak model holds and gives mu* */
            collapsed++;
            ck_assert_msg(leak_err[b] < 1e-4, "bin %d: eps_hat != a eps (%.2e)", b, leak_err[b]);
            ck_assert_msg(fabs(mu - leak) < 1e-4, "bin %d: mu %.6f, leak model %.6f", b, mu, leak);
            /* Against the population value: the draws' t-mix within the bin varies, so
             * the tolerance is 4 standard errors of sum w^2 a / sum w^2 over them (delta
             * method: sd of w^2 (a - pop) over the mean of w^2, over sqrt(n)). */
            double sw = 0, sq = 0;
            for (int k = 0; k < TRAIN; k++)
                if (dbin[k] == b) {
                    sw += dw2[k];
                    sq += dw2[k] * dw2[k] * (da[k] - pop[b]) * (da[k] - pop[b]);
                }
            const double se = sqrt(sq / cnt[b]) / (sw / cnt[b]) / sqrt((double)cnt[b]);
            ck_assert_msg(fabs(mu - pop[b]) < 4 * se + 1e-6, "bin %d: mu %.6f, population "
                          "%.6f (se %.2g)", b, mu, pop[b], se);
        }
        /* Adam on the same objective ends near the least-squares mu. */
        ck_assert_msg(fabs(adam_x.s->mu[b] - mu) < 0.02, "bin %d: adam %.5f, lsq %.5f", b,
                      adam_x.s->mu[b], mu);
    }
    ck_assert_int_ge(collapsed, 5);
    /* Held-out draws: the second moment with the fitted mu (no update: frozen) against SDS,
     * per collapsed bin and overall, against the prediction. */
    double m_ssd[BINS] = { 0 }, m_sds[BINS] = { 0 };
    for (int k = TRAIN; k < TRAIN + TEST; k++) {
        int t = (int)sl_rng_int1(tk, (uint64_t)k, lo, hi);
        draw_make(&d, &f, x0, &cam, &rnd, &t, (uint32_t)k, k, 0, 1);
        sl_error err;
        ck_assert_int_eq(ssd_delta(lsq.s, &d.ctx, delta, &err), SL_OK);
        const int b = ssd_tbin(lsq.s, t);
        const double wv = sl_diffusion_weight(&test_diffusion, wt, t), w2 = wv * wv;
        for (size_t i = 0; i < D; i++) {
            const double e = (double)d.eps_hat[i] - d.eps[i];
            m_ssd[b] += w2 * (double)delta[i] * delta[i];
            m_sds[b] += w2 * e * e;
        }
    }
    double tot_ssd = 0, tot_sds = 0;
    for (int b = 0; b < BINS; b++) {
        tot_ssd += m_ssd[b];
        tot_sds += m_sds[b];
        const double ratio = m_ssd[b] / m_sds[b], pred = pred_ssd[b] / pred_sds[b];
        if (ent[b] / cnt[b] < 1e-3) {
            fprintf(stderr, "  bin %d: second moment SSD/SDS %.4f, predicted %.4f\n", b, ratio,
                    pred);
            /* Finite draws per bin: the within-bin t mix of the held-out draws differs from
             * uniform by ~1/sqrt(150) and mu* from pop by the training draws' mix. */
            ck_assert_msg(fabs(ratio - pred) < 0.25 * pred + 1e-3, "bin %d: ratio %.4f, "
                          "predicted %.4f", b, ratio, pred);
        }
    }
    fprintf(stderr, "  all bins: second moment SSD/SDS %.4f (held-out, %d draws)\n",
            tot_ssd / tot_sds, TEST);
    ck_assert(tot_ssd < tot_sds);
    free(x0), free(delta), free(dbin), free(dw2), free(da);
    draw_free(&d);
    ssd_fix_free(&lsq);
    ssd_fix_free(&adam_x);
    test_weighting = SL_WEIGHT_SDS;
    bl_fix_free(&c);
    world_fix_free(&f);
}

START_TEST(test_positive_control_uniform) { positive_control("uniform", SL_WEIGHT_UNIFORM); }
END_TEST

START_TEST(test_positive_control_sds) { positive_control("sds", SL_WEIGHT_SDS); }
END_TEST

/* ------------------------------------------------------------------ baselines: FD */

/* phi in double from what eval() left in the baseline's state (which = 0 depth, 1 normal). */
static double phi_double(void *state, int which, int b, size_t P)
{
    if (which == 0) {
        depth_state *s = state;
        float *g = malloc(P * 4);
        double rho = depth_pearson(s->target.p + b * P, s->pred.p + b * P, s->mask.p + b * P,
                                   P, g);
        free(g);
        return s->offset - rho;
    }
    normal_state *s = state;
    double sum = 0, n = 0;
    for (size_t p = 0; p < P; p++) {
        const float *a = s->target.p + (b * P + p) * 3, *nh = s->pred.p + (b * P + p) * 3;
        const int fg = a[0] != 0 || a[1] != 0 || a[2] != 0;
        n += fg;
        sum += (double)a[0] * nh[0] + (double)a[1] * nh[1] + (double)a[2] * nh[2];
    }
    return s->offset - (n > 0 ? sum / n : 0);
}

static void check_baseline_fd(world_fix *f, const sl_baseline_ref *bl, int which, int rh,
                              int rw)
{
    enum { B = 2 };
    sl_camera cams[B];
    sl_camera_orbit(20.0f, 10.0f, 1.8f, NULL, 50.0f, f->R, f->R, &cams[0]);
    sl_camera_orbit(-100.0f, 25.0f, 1.8f, NULL, 50.0f, f->R, f->R, &cams[1]);
    render_fix rf;
    render_fix_init(&rf, f, cams, B, rh, rw);
    draw d;
    draw_init(&d, f, B);
    int t[B] = { 820, 930 };
    draw_make(&d, f, rf.x0, cams, &rf.r, t, 11, 0, 0, 0);
    const size_t D = f->D, P = f->P;
    float phi[B], phi2[B], *g = malloc(B * D * 4), *g2 = malloc(B * D * 4);
    float *x = malloc(B * D * 4);
    double *u = malloc(B * D * 8);
    sl_error err = { "" };
    ck_assert_msg(bl->vt->eval(bl->state, &d.ctx, phi, g, &err) == SL_OK, "%s", err.msg);
    double h_ent[B];
    for (int b = 0; b < B; b++) {
        h_ent[b] = geo_entropy(f, which, b);
        ck_assert_msg(h_ent[b] > 0.5, "%s: entropy %.3f too low", bl->label, h_ent[b]);
        ck_assert_double_eq_tol(phi[b], phi_double(bl->state, which, b, P), 1e-6);
    }
    memcpy(x, d.x_t, B * D * 4);
    d.ctx.x_t = x;
    /* Directions: along the gradient, two random unit directions, the 3 largest
     * coordinates; each on both batch elements at once (phi_b depends on x_b only). */
    double gnorm[B] = { 0, 0 };
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < D; i++)
            gnorm[b] += (double)g[b * D + i] * g[b * D + i];
    for (int b = 0; b < B; b++) {
        gnorm[b] = sqrt(gnorm[b]);
        ck_assert_msg(gnorm[b] > 1e-3, "%s: |grad phi| = %.3g is trivial", bl->label, gnorm[b]);
    }
    double worst = 0, smallest_signal = INFINITY;
    for (int dir = 0; dir < 6; dir++) {
        /* Random directions change phi little: a larger step keeps the difference above
         * the float rounding of D_hat / N_hat (|h u| = 0.01 against sqrt(v) > 0.9). */
        const double h = 1e-2;
        for (int b = 0; b < B; b++) {
            double *ub = u + b * D;
            if (dir == 0) {
                for (size_t i = 0; i < D; i++)
                    ub[i] = g[b * D + i] / gnorm[b];
            } else if (dir < 3) {
                unit_normal((uint32_t)(10 * dir + b), D, ub);
            } else {   /* the (dir-3)-th largest |g| coordinate */
                size_t best[3] = { 0, 0, 0 };
                float bv[3] = { -1, -1, -1 };
                for (size_t i = 0; i < D; i++) {
                    const float a = fabsf(g[b * D + i]);
                    for (int r = 0; r < 3; r++)
                        if (a > bv[r]) {
                            for (int q = 2; q > r; q--)
                                bv[q] = bv[q - 1], best[q] = best[q - 1];
                            bv[r] = a, best[r] = i;
                            break;
                        }
                }
                memset(ub, 0, D * 8);
                ub[best[dir - 3]] = 1.0;
            }
        }
        double fp[B], fm[B], an[B] = { 0, 0 };
        for (int sgn = 0; sgn < 2; sgn++) {
            for (size_t i = 0; i < B * D; i++)
                x[i] = (float)((double)d.x_t[i] + (sgn ? -h : h) * u[i]);
            ck_assert_int_eq(bl->vt->eval(bl->state, &d.ctx, phi2, g2, &err), SL_OK);
            for (int b = 0; b < B; b++)
                (sgn ? fm : fp)[b] = phi_double(bl->state, which, b, P);
        }
        /* The actual (float-rounded) displacement: an = <g, x+ - x-> / 2h. */
        for (size_t i = 0; i < B * D; i++) {
            const float xp = (float)((double)d.x_t[i] + h * u[i]);
            const float xm = (float)((double)d.x_t[i] - h * u[i]);
            an[i / D] += (double)g[i] * ((double)xp - xm) / (2 * h);
        }
        for (int b = 0; b < B; b++) {
            const double fd = (fp[b] - fm[b]) / (2 * h);
            /* Float rounding of D_hat / N_hat (~1e-7 relative) over 2h, plus h^2 terms. */
            const double tol = 1e-3 * fabs(an[b]) + 1e-4 * gnorm[b];
            ck_assert_msg(fabs(fd - an[b]) <= tol, "%s dir %d elem %d: <grad phi, u> %.8g, "
                          "central differences %.8g", bl->label, dir, b, an[b], fd);
            worst = fmax(worst, fabs(fd - an[b]) / gnorm[b]);
            if (dir == 0)
                smallest_signal = fmin(smallest_signal, fabs(an[b]) / tol);
        }
    }
    /* Along the gradient the derivative is |grad phi|: far above the tolerance. */
    ck_assert_msg(smallest_signal > 500, "signal/tolerance only %.0f", smallest_signal);
    fprintf(stderr, "%s FD (render %dx%d, prior %dx%d, batch 2): phi %.4f %.4f, |grad| %.3g "
            "%.3g, H(r) %.2f %.2f, max |fd - an| / |grad| %.1e\n", bl->label, rh, rw, f->R,
            f->R, phi[0], phi[1], gnorm[0], gnorm[1], h_ent[0], h_ent[1], worst);
    free(g), free(g2), free(x), free(u);
    draw_free(&d);
    render_fix_free(&rf);
}

START_TEST(test_baselines_fd)
{
    world_fix f;
    world_fix_init(&f, "prior_bandwidth: 0.6\nguidance_scale: 1\n");
    bl_fix dp, nm;
    bl_fix_init(&dp, test_depth_entry(0), "{offset: 1.0}", &f.ref);
    bl_fix_init(&nm, test_normal_entry(0), "{offset: 1.0}", &f.ref);
    check_baseline_fd(&f, &dp.ref, 0, f.R, f.R);
    check_baseline_fd(&f, &dp.ref, 0, 24, 20);   /* resampled render */
    check_baseline_fd(&f, &nm.ref, 1, f.R, f.R);
    check_baseline_fd(&f, &nm.ref, 1, 24, 20);
    bl_fix_free(&dp), bl_fix_free(&nm);
    world_fix_free(&f);
}
END_TEST

/* ------------------------------------------------------------------ degenerate, refusals */

static void check_zero(const float *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(g[i] == 0.0f && !signbit(g[i]), "grad[%zu] = %g, expected +0", i,
                      (double)g[i]);
}

START_TEST(test_degenerate_and_refusals)
{
    world_fix f;
    world_fix_init(&f, "prior_bandwidth: 0.6\nguidance_scale: 1\n");
    bl_fix dp, nm;
    bl_fix_init(&dp, test_depth_entry(0), "{offset: 1.25}", &f.ref);
    bl_fix_init(&nm, test_normal_entry(0), "{offset: 0.75}", &f.ref);
    sl_camera cam;
    sl_camera_orbit(20.0f, 10.0f, 1.8f, NULL, 50.0f, f.R, f.R, &cam);
    render_fix rf;
    render_fix_init(&rf, &f, &cam, 1, f.R, f.R);
    draw d;
    draw_init(&d, &f, 1);
    int t = 900;
    draw_make(&d, &f, rf.x0, &cam, &rf.r, &t, 3, 0, 0, 0);
    const size_t P = f.P, D = f.D;
    float phi, *g = malloc(D * 4);
    sl_error err;
    /* The healthy case has a nonzero gradient (so the zeros below mean something). */
    ck_assert_int_eq(dp.ref.vt->eval(dp.ref.state, &d.ctx, &phi, g, &err), SL_OK);
    ck_assert_float_ne(phi, 1.25f);
    /* 1. Empty mask. */
    for (size_t p = 0; p < P; p++)
        rf.r.opacity[p] = 0.0f;
    ck_assert_int_eq(dp.ref.vt->eval(dp.ref.state, &d.ctx, &phi, g, &err), SL_OK);
    ck_assert_float_eq(phi, 1.25f);
    check_zero(g, D);
    ck_assert_int_eq(nm.ref.vt->eval(nm.ref.state, &d.ctx, &phi, g, &err), SL_OK);
    ck_assert_float_eq(phi, 0.75f);
    check_zero(g, D);
    /* 2. One mask pixel (Pearson needs two). */
    rf.r.opacity[P / 2] = 1.0f;
    rf.r.depth[P / 2] = 2.0f;
    ck_assert_int_eq(dp.ref.vt->eval(dp.ref.state, &d.ctx, &phi, g, &err), SL_OK);
    ck_assert_float_eq(phi, 1.25f);
    check_zero(g, D);
    /* 3. Constant render depth on a large mask. */
    for (size_t p = 0; p < P; p++) {
        rf.r.opacity[p] = p < P / 2 ? 0.9f : 0.2f;
        rf.r.depth[p] = 1.8f * rf.r.opacity[p];
    }
    ck_assert_int_eq(dp.ref.vt->eval(dp.ref.state, &d.ctx, &phi, g, &err), SL_OK);
    ck_assert_float_eq(phi, 1.25f);
    check_zero(g, D);
    /* Pearson's degenerate rule directly: a constant estimate gives rho 0. */
    {
        float a[4] = { 1, 2, 3, 4 }, c4[4] = { 5, 5, 5, 5 }, m[4] = { 1, 1, 1, 1 }, gg[4];
        ck_assert_double_eq(depth_pearson(a, c4, m, 4, gg), 0.0);
        ck_assert_float_eq(gg[0], 0.0f);
        float lin[4] = { 3, 5, 7, 9 };   /* an affine map of a: rho = 1 */
        ck_assert_double_eq_tol(depth_pearson(a, lin, m, 4, gg), 1.0, 1e-12);
    }

    /* Required outputs: depth and normal need what image2d does not render. */
    const sl_baseline_vtable *dv = test_depth_entry(0)->vtable, *nv = test_normal_entry(0)->vtable;
    ck_assert_uint_eq(dv->required_outputs(NULL), SL_RENDER_DEPTH | SL_RENDER_OPACITY);
    ck_assert_uint_eq(nv->required_outputs(NULL), SL_RENDER_NORMAL | SL_RENDER_OPACITY);
    const uint32_t img = image2d_outputs(NULL);
    ck_assert_uint_ne(dv->required_outputs(NULL) & ~img, 0);
    ck_assert_uint_ne(nv->required_outputs(NULL) & ~img, 0);
    /* A context without the outputs is an error, not a crash. */
    sl_render bare = { .batch = 1, .height = f.R, .width = f.R, .rgb = rf.r.rgb };
    d.ctx.render = &bare;
    ck_assert_int_eq(dp.ref.vt->eval(dp.ref.state, &d.ctx, &phi, g, &err), SL_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "depth and opacity"), "%s", err.msg);

    /* A prior without the extension: create() refuses with a clear message. */
    sl_prior_vtable plain = *(const sl_prior_vtable *)test_world_entry(0)->vtable;
    plain.extension = NULL;
    sl_prior_ref plain_ref = { &plain, f.w };
    bl_fix bad;
    ck_assert_int_eq(bl_fix_try(&bad, test_depth_entry(0), "{}", &plain_ref, &err),
                     SL_ERR_UNSUPPORTED);
    ck_assert_str_eq(err.msg, "depth: the prior offers no depth estimator on x_t (extension "
                     "'steinlab.depth_estimator.v1'); this baseline needs one (the world prior "
                     "has it)");
    bl_fix_free(&bad);
    ck_assert_int_eq(bl_fix_try(&bad, test_normal_entry(0), "{}", &plain_ref, &err),
                     SL_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(err.msg, "normal estimator"), "%s", err.msg);
    bl_fix_free(&bad);
    free(g);
    draw_free(&d);
    render_fix_free(&rf);
    bl_fix_free(&dp), bl_fix_free(&nm);
    world_fix_free(&f);
}
END_TEST

/* ------------------------------------------------------------------ checkpoints */

/* ------------------------------------------------------------------ the mlp baseline */

/* A double copy of the mlp's forward and input gradient (plugins/baselines/mlp.c) for batch
 * element b of ctx, with parameters theta (the store's layout, (total,)) and x (H, W, C) in
 * place of ctx->x_t's element b. grad: (D,) written, or NULL. */
static double mlp_ref(const mlp_state *s, const double *theta, const sl_estimator_ctx *ctx,
                      int b, const double *x, double *grad)
{
    const int Z = s->Z, Hd = s->Hd, half = s->time_dim / 2, G = s->grid;
    double *z = calloc((size_t)Z, 8), *u = calloc((size_t)Hd, 8), *gz = calloc((size_t)Z, 8);
    for (int y = 0; y < s->H; y++)
        for (int x0 = 0; x0 < s->W; x0++)
            for (int c = 0; c < s->C; c++)
                z[((y / s->kh) * G + x0 / s->kw) * s->C + c] +=
                    x[((size_t)y * s->W + x0) * s->C + c] / ((double)s->kh * s->kw);
    double *e = z + s->Gx;
    const double t = ctx->t[b];
    e[0] = t / s->T;
    for (int i = 0; i < half; i++) {
        const double a = t * (double)sl_time_freq(i, half, 10000.0f);
        e[1 + i] = sin(a);
        e[1 + half + i] = cos(a);
    }
    const double az = ctx->cams[b].azimuth_deg * (3.14159265358979323846 / 180.0);
    const double el = ctx->cams[b].elevation_deg * (3.14159265358979323846 / 180.0);
    e[1 + 2 * half] = cos(az), e[2 + 2 * half] = sin(az);
    e[3 + 2 * half] = cos(el), e[4 + 2 * half] = sin(el);
    const double *w1 = theta + s->params.tensors[s->i_w1].offset;
    const double *b1 = theta + s->params.tensors[s->i_b1].offset;
    const double *w2 = theta + s->params.tensors[s->i_w2].offset;
    const double *b2 = theta + s->params.tensors[s->i_b2].offset;
    double phi = b2[0];
    for (int j = 0; j < Hd; j++) {
        double a = b1[j];
        for (int k = 0; k < Z; k++)
            a += w1[(size_t)j * Z + k] * z[k];
        const double sg = 1.0 / (1.0 + exp(-a));
        phi += w2[j] * a * sg;
        u[j] = w2[j] * sg * (1.0 + a * (1.0 - sg));
    }
    if (grad) {
        for (int k = 0; k < s->Gx; k++)
            for (int j = 0; j < Hd; j++)
                gz[k] += w1[(size_t)j * Z + k] * u[j];
        for (int y = 0; y < s->H; y++)
            for (int x0 = 0; x0 < s->W; x0++)
                for (int c = 0; c < s->C; c++)
                    grad[((size_t)y * s->W + x0) * s->C + c] =
                        gz[((y / s->kh) * G + x0 / s->kw) * s->C + c] / ((double)s->kh * s->kw);
    }
    free(z), free(u), free(gz);
    return phi;
}

/* J(theta) = (1/N) sum w^2 |eps_hat - eps phi + sigma grad phi|^2 over the draws, in double.
 * frozen: (n, B, D) grad phi to use instead of the network's (the first-order-only
 * objective, for the non-vacuity check), or NULL. */
static double mlp_ref_objective(const mlp_state *s, const double *theta,
                                const sl_estimator_ctx *const *ctxs, int n, const double *frozen)
{
    const size_t D = s->D;
    double *x = malloc(D * 8), *g = malloc(D * 8), sum = 0, count = 0;
    for (int k = 0; k < n; k++)
        for (int b = 0; b < ctxs[k]->batch; b++) {
            const sl_estimator_ctx *c = ctxs[k];
            const size_t off = (size_t)b * D;
            for (size_t i = 0; i < D; i++)
                x[i] = c->x_t[off + i];
            const double phi = mlp_ref(s, theta, c, b, x, g);
            const double *gp = frozen ? frozen + ((size_t)k * c->batch + b) * D : g;
            const double w2 = c->weight[b] * c->weight[b];
            for (size_t i = 0; i < D; i++) {
                const double r = (double)c->eps_hat[off + i] - (double)c->eps[off + i] * phi +
                                 c->sigma[b] * gp[i];
                sum += w2 * r * r;
            }
            count += (double)D;
        }
    free(x), free(g);
    return sum / count;
}

/* Gives the untrained network random output weights (w2 = 0 at initialisation would make
 * grad phi vanish and the checks vacuous). */
static void mlp_randomize_head(mlp_state *s, double scale, uint32_t sample)
{
    float *w2 = sl_nn_param(&s->params, s->i_w2), *b1 = sl_nn_param(&s->params, s->i_b1);
    sl_rng_key k = { .seed = 21, .step = 0, .stream = 0x31, .sample = sample };
    sl_rng_normal(k, 0, (size_t)s->Hd, w2);
    sl_rng_normal(k, (uint64_t)s->Hd, (size_t)s->Hd, b1);
    for (int j = 0; j < s->Hd; j++)
        w2[j] *= (float)scale, b1[j] *= 0.5f;
}

/* phi and grad_x phi against the double copy; dJ/dpsi (the second-order pass) against
 * central differences of the double objective; thread-count determinism of both. */
START_TEST(test_mlp_gradients)
{
    world_fix f;
    world_fix_init(&f, "prior_bandwidth: 0.6\nguidance_scale: 3\n");
    bl_fix m;
    bl_fix_init(&m, test_mlp_entry(0), "{grid: 4, hidden: 12, time_dim: 6}", &f.ref);
    mlp_state *s = m.ref.state;
    mlp_randomize_head(s, 1.0, 0);
    enum { B = 2, NS = 2 };
    sl_camera cams[B];
    sl_camera_orbit(20.0f, 10.0f, 1.8f, NULL, 50.0f, f.R, f.R, &cams[0]);
    sl_camera_orbit(-100.0f, 30.0f, 1.8f, NULL, 50.0f, f.R, f.R, &cams[1]);
    render_fix rf;
    render_fix_init(&rf, &f, cams, B, f.R, f.R);
    draw ds[NS];
    const sl_estimator_ctx *cps[NS];
    for (int k = 0; k < NS; k++) {
        int t[B] = { 300 + 400 * k, 850 - 200 * k };
        draw_init(&ds[k], &f, B);
        draw_make(&ds[k], &f, rf.x0, cams, &rf.r, t, (uint32_t)(60 + k), 3, k, 1);
        cps[k] = &ds[k].ctx;
    }
    const size_t D = f.D, P = s->params.total;
    double *theta = malloc(P * 8), *x = malloc(D * 8), *gref = malloc(D * 8);
    for (size_t i = 0; i < P; i++)
        theta[i] = s->params.data[i];
    /* phi and grad_x phi: float against double, and grad_x phi against differences of phi
     * along the gradient and a random direction (h = 1e-3 on |x| ~ 1: truncation ~1e-6). */
    float phi[B], *g = malloc(B * D * 4);
    sl_error err = { "" };
    ck_assert_int_eq(m.ref.vt->eval(s, &ds[0].ctx, phi, g, &err), SL_OK);
    double *dir = malloc(D * 8);
    for (int b = 0; b < B; b++) {
        for (size_t i = 0; i < D; i++)
            x[i] = ds[0].ctx.x_t[b * D + i];
        const double pr = mlp_ref(s, theta, &ds[0].ctx, b, x, gref);
        ck_assert_msg(fabs(phi[b] - pr) < 1e-5 * (1 + fabs(pr)), "phi %.8g, double %.8g",
                      phi[b], pr);
        double gn = 0, gdiff = 0;
        for (size_t i = 0; i < D; i++) {
            gn += gref[i] * gref[i];
            gdiff = fmax(gdiff, fabs(g[b * D + i] - gref[i]));
        }
        gn = sqrt(gn);
        ck_assert_msg(gn > 1e-3, "|grad phi| = %.3g is trivial", gn);
        ck_assert_msg(gdiff < 1e-5 * gn, "grad phi: float vs double %.3g (|g| %.3g)", gdiff, gn);
        for (int dd = 0; dd < 2; dd++) {
            if (dd == 0)
                for (size_t i = 0; i < D; i++)
                    dir[i] = gref[i] / gn;
            else
                unit_normal((uint32_t)(70 + b), D, dir);
            const double h = 1e-3;
            double an = 0;
            for (size_t i = 0; i < D; i++) {
                an += gref[i] * dir[i];
                x[i] = ds[0].ctx.x_t[b * D + i] + h * dir[i];
            }
            const double fp = mlp_ref(s, theta, &ds[0].ctx, b, x, NULL);
            for (size_t i = 0; i < D; i++)
                x[i] = ds[0].ctx.x_t[b * D + i] - h * dir[i];
            const double fm = mlp_ref(s, theta, &ds[0].ctx, b, x, NULL);
            const double fd = (fp - fm) / (2 * h);
            ck_assert_msg(fabs(fd - an) < 1e-6 * gn + 1e-6 * fabs(an), "<grad phi, u> %.10g, "
                          "differences %.10g", an, fd);
        }
    }
    /* dJ/dpsi: the plugin's float gradient against central differences of the double
     * objective (h = 1e-4; truncation ~1e-8, rounding ~1e-12), per coordinate of a
     * selection in every tensor: |fd - g| <= 2e-4 max|g| + 1e-3 |g| (float forward and
     * float accumulation carry ~1e-6 relative). Twice: on the draws, and with eps set to 0
     * in them (x_t kept), where the eps phi term vanishes and the whole gradient comes from
     * the second-order path through grad phi (the frozen-grad-phi objective then has zero
     * gradient, so that check cannot pass by the first-order terms alone). */
    const double N = (double)NS * B * D;
    double total = 0, J0 = 0;
    float *ga = malloc(P * 4);
    double *frozen = malloc((size_t)NS * B * D * 8);
    double worst = 0, second_order = 0;
    int checked = 0;
    for (int variant = 0; variant < 2; variant++) {
        if (variant == 1)
            for (int k = 0; k < NS; k++)
                memset(ds[k].eps, 0, B * D * 4);
        sl_nn_params_zero_grad(&s->params);
        ck_assert_int_eq(mlp_accumulate(s, cps, NS, 1.0 / N, &total, &err), SL_OK);
        J0 = mlp_ref_objective(s, theta, cps, NS, NULL);
        ck_assert_msg(fabs(total / N - J0) < 1e-5 * J0, "objective %.8g, double %.8g",
                      total / N, J0);
        memcpy(ga, s->params.grad, P * 4);
        for (int k = 0; k < NS; k++)   /* grad phi held fixed: the first-order-only objective */
            for (int b = 0; b < B; b++) {
                for (size_t i = 0; i < D; i++)
                    x[i] = cps[k]->x_t[b * D + i];
                mlp_ref(s, theta, cps[k], b, x, frozen + ((size_t)k * B + b) * D);
            }
        double gmax = 0;
        for (size_t i = 0; i < P; i++)
            gmax = fmax(gmax, fabs(ga[i]));
        ck_assert(gmax > 0);
        const double h = 1e-4;
        double so = 0;
        for (size_t ti = 0; ti < s->params.n; ti++) {
            const sl_nn_tensor *tn = &s->params.tensors[ti];
            const size_t step = tn->numel > 40 ? tn->numel / 40 : 1;
            for (size_t j = 0; j < tn->numel; j += step) {
                const size_t i = tn->offset + j;
                const double keep = theta[i];
                theta[i] = keep + h;
                const double jp = mlp_ref_objective(s, theta, cps, NS, NULL);
                const double jpf = mlp_ref_objective(s, theta, cps, NS, frozen);
                theta[i] = keep - h;
                const double jm = mlp_ref_objective(s, theta, cps, NS, NULL);
                const double jmf = mlp_ref_objective(s, theta, cps, NS, frozen);
                theta[i] = keep;
                const double fd = (jp - jm) / (2 * h), fdf = (jpf - jmf) / (2 * h);
                const double tol = 2e-4 * gmax + 1e-3 * fabs(ga[i]);
                ck_assert_msg(fabs(fd - ga[i]) <= tol, "variant %d %s[%zu]: gradient %.8g, "
                              "differences %.8g", variant, tn->name, j, ga[i], fd);
                worst = fmax(worst, fabs(fd - ga[i]) / gmax);
                so = fmax(so, fabs(fd - fdf) / tol);
                checked++;
            }
        }
        if (variant == 1)   /* the second-order path is what is being checked */
            ck_assert_msg(so > 100, "the grad-phi term moves dJ/dpsi by only %.1f "
                          "tolerances", so);
        second_order = fmax(second_order, so);
    }
    /* Thread-count determinism: eval and the gradient, 1 thread against 3. */
    float *g1 = malloc(B * D * 4), *ga1 = malloc(P * 4), phi1[B];
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    ck_assert_int_eq(m.ref.vt->eval(s, &ds[1].ctx, phi1, g1, &err), SL_OK);
    sl_nn_params_zero_grad(&s->params);
    ck_assert_int_eq(mlp_accumulate(s, cps, NS, 1.0 / N, &total, &err), SL_OK);
    memcpy(ga1, s->params.grad, P * 4);
    omp_set_num_threads(3);
    ck_assert_int_eq(m.ref.vt->eval(s, &ds[1].ctx, phi, g, &err), SL_OK);
    sl_nn_params_zero_grad(&s->params);
    ck_assert_int_eq(mlp_accumulate(s, cps, NS, 1.0 / N, &total, &err), SL_OK);
    omp_set_num_threads(threads);
    ck_assert_mem_eq(phi1, phi, sizeof phi);
    ck_assert_mem_eq(g1, g, B * D * 4);
    ck_assert_mem_eq(ga1, s->params.grad, P * 4);
    fprintf(stderr, "mlp gradients: %zu parameters, %d coordinates checked, objective %.4g, "
            "max |fd - g| / max|g| %.1e, second-order term up to %.0f tolerances\n", P, checked,
            J0, worst, second_order);
    free(theta), free(x), free(gref), free(g), free(dir), free(ga), free(frozen), free(g1);
    free(ga1);
    for (int k = 0; k < NS; k++)
        draw_free(&ds[k]);
    render_fix_free(&rf);
    bl_fix_free(&m);
    world_fix_free(&f);
}
END_TEST

/* Stein's identity for the learned baseline (with random output weights, so grad phi is
 * far from 0), and a grid that does not divide the prior's size is refused. */
START_TEST(test_mlp_stein_zero_mean)
{
    world_fix f;
    world_fix_init(&f, "prior_bandwidth: 0.6\nguidance_scale: 1\n");
    bl_fix m;
    bl_fix_init(&m, test_mlp_entry(0), "{grid: 4, hidden: 16}", &f.ref);
    mlp_randomize_head(m.ref.state, 3.0, 1);
    check_stein(&f, &m.ref, STEIN_LEARNED, 900, 20000);
    bl_fix_free(&m);
    bl_fix bad;
    sl_error err = { "" };
    ck_assert_int_eq(bl_fix_try(&bad, test_mlp_entry(0), "{grid: 5}", &f.ref, &err), SL_ERR_SPEC);
    ck_assert_msg(strstr(err.msg, "grid 5") && strstr(err.msg, "16x16"), "%s", err.msg);
    bl_fix_free(&bad);
    world_fix_free(&f);
}
END_TEST

/* Training lowers the second moment where a baseline can help: the over-smoothed prior of
 * the positive control (eps_hat = a(t) eps in collapsed bins), where phi = a(t) would remove
 * the leak. The untrained network is phi = 1 (SDS); after training on TRAIN draws (uniform
 * weighting), the second moment of eps_hat - (eps phi - sigma grad phi) on held-out draws,
 * against SDS's on the same draws. */
START_TEST(test_mlp_training_lowers_second_moment)
{
    test_weighting = SL_WEIGHT_UNIFORM;
    world_fix f;
    world_fix_init_yaml(&f, "prompt: " PC_PROMPT "\nresolution: 32\nazimuths: 8\n"
                        "elevations: [0, 30]\ndistances: [1.8]\nfovy: 50\ncache: false\n"
                        "unconditional: all_buckets\nconditioning: none\nbandwidth: 0.05\n"
                        "prior_bandwidth: 0.3\nguidance_scale: 1\n");
    bl_fix m;
    bl_fix_init(&m, test_mlp_entry(0), "{grid: 4, hidden: 32, lr: 0.003}", &f.ref);
    const world_state *w = f.w;
    const size_t D = f.D;
    const size_t view = w->prompt_views[3];
    sl_camera cam = w->bank.cams[view];
    float *x0 = malloc(D * 4);
    for (size_t i = 0; i < D; i++)
        x0[i] = world_bank_get(w->bank.x, w->bank.storage, view * D + i);
    sl_render rnd = { .batch = 1, .height = f.R, .width = f.R };
    draw d;
    draw_init(&d, &f, 1);
    enum { TRAIN = 1500, TEST = 400 };
    float phi, *g = malloc(D * 4);
    sl_rng_key tk = { .seed = 19, .step = 0, .stream = 0x7c, .sample = 0 };
    sl_error err = { "" };
    double before = 0, after = 0, sds = 0;
    for (int phase = 0; phase < 3; phase++) {
        const int n = phase == 1 ? TRAIN : TEST;
        for (int k = 0; k < n; k++) {
            /* held-out draws: the same TEST draws before (phase 0) and after (phase 2) */
            const uint64_t idx = phase == 1 ? (uint64_t)(TEST + k) : (uint64_t)k;
            int t = (int)sl_rng_int1(tk, idx, 20, 980);
            draw_make(&d, &f, x0, &cam, &rnd, &t, (uint32_t)idx, (int64_t)idx, 0, 1);
            if (phase == 1) {
                const sl_estimator_ctx *cp = &d.ctx;
                ck_assert_msg(m.ref.vt->update(m.ref.state, &cp, 1, &err) == SL_OK, "%s",
                              err.msg);
                continue;
            }
            ck_assert_int_eq(m.ref.vt->eval(m.ref.state, &d.ctx, &phi, g, &err), SL_OK);
            double sum = 0, ssum = 0;
            for (size_t i = 0; i < D; i++) {
                const double r = (double)d.eps_hat[i] - (double)d.eps[i] * phi +
                                 d.sigma[0] * (double)g[i];
                const double e = (double)d.eps_hat[i] - d.eps[i];
                sum += r * r;
                ssum += e * e;
            }
            if (phase == 0) {
                before += sum;
                sds += ssum;
            } else {
                after += sum;
            }
        }
    }
    fprintf(stderr, "mlp training (over-smoothed prior, uniform w, %d draws): held-out second "
            "moment / SDS's: %.4f untrained, %.4f trained\n", TRAIN, before / sds, after / sds);
    /* Untrained it is the constant baseline: SDS exactly. */
    ck_assert_double_eq_tol(before / sds, 1.0, 1e-6);
    ck_assert_msg(after < 0.5 * sds, "trained second moment %.4f of SDS's", after / sds);
    free(x0), free(g);
    draw_free(&d);
    bl_fix_free(&m);
    world_fix_free(&f);
    test_weighting = SL_WEIGHT_SDS;
}
END_TEST

/* ------------------------------------------------------------------ probe statistics */

/* probe_stats: the oracle mu of the probe's draws against a direct solve of the normal
 * equations built here from the baselines' brackets, its second moment against a direct
 * pass, and the second moments with the mu in use and SDS's. */
START_TEST(test_probe_oracle)
{
    world_fix f;
    world_fix_init(&f, "prior_bandwidth: 0.6\nguidance_scale: 3\n");
    bl_fix c, dp;
    bl_fix_init(&c, test_constant_entry(0), "{}", &f.ref);
    bl_fix_init(&dp, test_depth_entry(0), "{}", &f.ref);
    const sl_baseline_ref refs[2] = { c.ref, dp.ref };
    enum { B = 2, K = 4, J = 2 };
    sl_camera cams[B];
    sl_camera_orbit(20.0f, 10.0f, 1.8f, NULL, 50.0f, f.R, f.R, &cams[0]);
    sl_camera_orbit(-100.0f, 30.0f, 1.8f, NULL, 50.0f, f.R, f.R, &cams[1]);
    render_fix rf;
    render_fix_init(&rf, &f, cams, B, f.R, f.R);
    const size_t D = f.D;
    draw ds[K];
    const sl_estimator_ctx *cps[K];
    float *delta = malloc(B * D * 4), *g = malloc(B * D * 4), *cj = malloc(K * J * B * D * 4);
    static const char *const shapes[] = { "scalar", "channel" };
    for (int sh = 0; sh < 2; sh++) {
        char yaml[128];
        snprintf(yaml, sizeof yaml, "mu: {shape: %s, fit: none, value: 0.8}\n", shapes[sh]);
        ssd_fix x;
        ssd_fix_init(&x, yaml, &f.ref, refs, J);
        const int M = sh == 0 ? 1 : 3;
        sl_error err = { "" };
        for (int k = 0; k < K; k++) {
            int t[B] = { 500 + 100 * k, 900 - 60 * k };
            draw_init(&ds[k], &f, B);
            draw_make(&ds[k], &f, rf.x0, cams, &rf.r, t, (uint32_t)(80 + k), 4, k, 1);
            cps[k] = &ds[k].ctx;
            ck_assert_int_eq(ssd_delta(x.s, cps[k], delta, &err), SL_OK);
            float phi[B];
            for (int j = 0; j < J; j++) {
                ck_assert_int_eq(refs[j].vt->eval(refs[j].state, cps[k], phi, g, &err), SL_OK);
                for (int b = 0; b < B; b++)
                    for (size_t i = 0; i < D; i++)
                        cj[((size_t)(k * J + j) * B + b) * D + i] =
                            (float)((double)ds[k].eps[b * D + i] * phi[b] -
                                    ds[k].sigma[b] * (double)g[b * D + i]);
            }
        }
        sl_probe_stat st[16];
        size_t n = 0;
        ck_assert_int_eq(ssd_probe_stats(x.s, NULL, 0, st, 16, &n, &err), SL_OK);
        ck_assert_int_eq(n, 3 * J + 3);
        ck_assert_str_eq(st[0].name, "oracle_mu_constant_mean");
        ck_assert_str_eq(st[5].name, "oracle_mu_depth_max");
        ck_assert_str_eq(st[3 * J + 1].name, "oracle_second_moment");
        ck_assert_int_eq(ssd_probe_stats(x.s, cps, K, st, 16, &n, &err), SL_OK);
        ck_assert_int_eq(ssd_probe_stats(x.s, cps, K, st, 4, &n, &err), SL_ERR_INVALID_ARG);
        n = 3 * J + 3;
        /* The direct solve, per index. */
        double A[3][J * J] = { { 0 } }, bv[3][J] = { { 0 } }, mu[3][J];
        for (int k = 0; k < K; k++)
            for (int b = 0; b < B; b++) {
                const double w2 = ds[k].weight[b] * ds[k].weight[b];
                for (size_t i = 0; i < D; i++) {
                    const int m = sh == 0 ? 0 : (int)(i % 3);
                    for (int j = 0; j < J; j++) {
                        const double a = cj[((size_t)(k * J + j) * B + b) * D + i];
                        bv[m][j] += w2 * a * ds[k].eps_hat[b * D + i];
                        for (int q = 0; q < J; q++)
                            A[m][j * J + q] += w2 * a * cj[((size_t)(k * J + q) * B + b) * D + i];
                    }
                }
            }
        for (int m = 0; m < M; m++) {
            memcpy(mu[m], bv[m], sizeof mu[m]);
            solve_dense(A[m], mu[m], J);
        }
        double jo = 0, ju = 0, js = 0, cnt = 0;
        for (int k = 0; k < K; k++)
            for (int b = 0; b < B; b++) {
                const double w2 = ds[k].weight[b] * ds[k].weight[b];
                for (size_t i = 0; i < D; i++) {
                    const int m = sh == 0 ? 0 : (int)(i % 3);
                    double h = 0, hu = 0;
                    for (int j = 0; j < J; j++) {
                        const double a = cj[((size_t)(k * J + j) * B + b) * D + i];
                        h += mu[m][j] * a;
                        hu += 0.8 * a;
                    }
                    const double e = ds[k].eps_hat[b * D + i];
                    jo += w2 * (e - h) * (e - h);
                    ju += w2 * (e - hu) * (e - hu);
                    js += w2 * (e - ds[k].eps[b * D + i]) * (e - ds[k].eps[b * D + i]);
                    cnt += 1;
                }
            }
        for (int j = 0; j < J; j++) {
            double sum = 0, lo = INFINITY, hi = -INFINITY;
            for (int m = 0; m < M; m++)
                sum += mu[m][j], lo = fmin(lo, mu[m][j]), hi = fmax(hi, mu[m][j]);
            ck_assert_msg(fabs(st[3 * j].value - sum / M) < 1e-7 * (1 + fabs(sum / M)),
                          "%s baseline %d: oracle mu %.10g, direct %.10g", shapes[sh], j,
                          st[3 * j].value, sum / M);
            ck_assert(fabs(st[3 * j + 1].value - lo) < 1e-7 * (1 + fabs(lo)));
            ck_assert(fabs(st[3 * j + 2].value - hi) < 1e-7 * (1 + fabs(hi)));
        }
        ck_assert_msg(fabs(st[3 * J + 1].value - jo / cnt) < 1e-7 * (jo / cnt), "oracle J "
                      "%.10g, direct %.10g", st[3 * J + 1].value, jo / cnt);
        ck_assert(fabs(st[3 * J].value - ju / cnt) < 1e-7 * (ju / cnt));
        ck_assert(fabs(st[3 * J + 2].value - js / cnt) < 1e-7 * (js / cnt));
        ck_assert(st[3 * J + 1].value <= st[3 * J].value);
        /* A diagnostic: mu in use is untouched. */
        for (size_t m = 0; m < x.s->J * x.s->M; m++)
            ck_assert_double_eq(x.s->mu[m], 0.8);
        fprintf(stderr, "probe oracle (%s): mu constant %.4f depth %.4f, J oracle %.5g, in "
                "use %.5g, SDS %.5g\n", shapes[sh], st[0].value, st[3].value,
                st[3 * J + 1].value, st[3 * J].value, st[3 * J + 2].value);
        for (int k = 0; k < K; k++)
            draw_free(&ds[k]);
        ssd_fix_free(&x);
    }
    free(delta), free(g), free(cj);
    render_fix_free(&rf);
    bl_fix_free(&c), bl_fix_free(&dp);
    world_fix_free(&f);
}
END_TEST

START_TEST(test_save_load_bit_exact)
{
    world_fix f;
    world_fix_init(&f, "prior_bandwidth: 0.6\nguidance_scale: 3\n");
    bl_fix c, dp;
    bl_fix_init(&c, test_constant_entry(0), "{}", &f.ref);
    bl_fix_init(&dp, test_depth_entry(0), "{}", &f.ref);
    const sl_baseline_ref refs[2] = { c.ref, dp.ref };
    sl_camera cam;
    sl_camera_orbit(20.0f, 10.0f, 1.8f, NULL, 50.0f, f.R, f.R, &cam);
    render_fix rf;
    render_fix_init(&rf, &f, &cam, 1, f.R, f.R);
    draw d;
    draw_init(&d, &f, 1);
    float *da = malloc(f.D * 4), *db = malloc(f.D * 4);
    static const char *const cfg[] = {
        "mu: {shape: tbins, bins: 5, fit: least_squares, decay: 0.95}\n",
        "mu: {shape: pixel, fit: adam, lr: 0.02}\n",
    };
    char path[] = "/tmp/test_ssd_ckpt_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    for (int k = 0; k < 2; k++) {
        ssd_fix a, b;
        ssd_fix_init(&a, cfg[k], &f.ref, refs, 2);
        for (int s = 0; s < 6; s++) {
            int t = 400 + 90 * s;
            draw_make(&d, &f, rf.x0, &cam, &rf.r, &t, (uint32_t)s, s, 0, 1);
            ssd_step(&a, &d, da);
        }
        sl_error err = { "" };
        sl_ckpt *ck = NULL;
        sl_state_io *io = NULL;
        ck_assert_msg(sl_ckpt_begin(path, &ck, &err) == SL_OK, "%s", err.msg);
        ck_assert_int_eq(sl_ckpt_section(ck, "plugins/ssd", &io, &err), SL_OK);
        ck_assert_msg(ssd_save_state(a.s, io, &err) == SL_OK, "%s", err.msg);
        ck_assert_msg(sl_ckpt_commit(ck, &err) == SL_OK, "%s", err.msg);
        ssd_fix_init(&b, cfg[k], &f.ref, refs, 2);
        ck_assert_msg(sl_ckpt_open(path, &ck, &err) == SL_OK, "%s", err.msg);
        ck_assert_int_eq(sl_ckpt_section(ck, "plugins/ssd", &io, &err), SL_OK);
        ck_assert_msg(ssd_load_state(b.s, io, &err) == SL_OK, "%s", err.msg);
        sl_ckpt_close(ck);
        const size_t JM = a.s->J * a.s->M;
        ck_assert_mem_eq(a.s->mu, b.s->mu, JM * 8);
        ck_assert_mem_eq(a.s->lsq_a, b.s->lsq_a, JM * a.s->J * 8);
        /* Both continue identically. */
        for (int s = 6; s < 12; s++) {
            int t = 300 + 55 * s;
            draw_make(&d, &f, rf.x0, &cam, &rf.r, &t, (uint32_t)s, s, 0, 1);
            ssd_step(&a, &d, da);
            ssd_step(&b, &d, db);
            ck_assert_mem_eq(da, db, f.D * 4);
        }
        ck_assert_mem_eq(a.s->mu, b.s->mu, JM * 8);
        ck_assert_mem_eq(a.s->adam_v, b.s->adam_v, JM * 8);
        ck_assert_int_eq(a.s->adam_t, b.s->adam_t);
        /* A state of another shape is refused with the array named. */
        if (k == 1) {
            ssd_fix other;
            ssd_fix_init(&other, cfg[0], &f.ref, refs, 2);
            ck_assert_int_eq(sl_ckpt_open(path, &ck, &err), SL_OK);
            ck_assert_int_eq(sl_ckpt_section(ck, "plugins/ssd", &io, &err), SL_OK);
            ck_assert_int_eq(ssd_load_state(other.s, io, &err), SL_ERR_FORMAT);
            ck_assert_msg(strstr(err.msg, "ssd") && strstr(err.msg, "mu"), "%s", err.msg);
            sl_ckpt_close(ck);
            ssd_fix_free(&other);
        }
        fprintf(stderr, "save/load (%s): bit-exact continuation over 6 steps\n",
                k == 0 ? "tbins, least squares" : "pixel, adam");
        ssd_fix_free(&a);
        ssd_fix_free(&b);
    }
    unlink(path);
    free(da), free(db);
    draw_free(&d);
    render_fix_free(&rf);
    bl_fix_free(&c), bl_fix_free(&dp);
    world_fix_free(&f);
}
END_TEST

/* ------------------------------------------------------------------ series names */

START_TEST(test_series_names)
{
    char out[SSD_NAME_MAX];
    ssd_series_name(out, "ssd", "Depth-1", 0, "mean");
    ck_assert_str_eq(out, "ssd_mu_depth_1_mean");
    char longl[200];
    memset(longl, 'a', 100);
    longl[100] = '\0';
    ssd_series_name(out, "ssd", longl, 3, "max");
    ck_assert_str_eq(out, "ssd_mu3_max");
    ssd_series_name(out, longl, "constant", 1, "min");
    ck_assert_uint_le(strlen(out), 63);
    ck_assert_str_eq(out + strlen(out) - 8, "_mu1_min");
}
END_TEST

int main(void)
{
    sl_diffusion_default(&test_diffusion);
    Suite *s = suite_create("ssd");
    TCase *tc = tcase_create("ssd");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_series_names);
    tcase_add_test(tc, test_ssd_equals_sds);
    tcase_add_test(tc, test_degenerate_and_refusals);
    tcase_add_test(tc, test_baselines_fd);
    tcase_add_test(tc, test_mu_adam_gradient);
    tcase_add_test(tc, test_mu_least_squares_and_unbiased);
    tcase_add_test(tc, test_save_load_bit_exact);
    tcase_add_test(tc, test_stein_zero_mean);
    tcase_add_test(tc, test_positive_control_uniform);
    tcase_add_test(tc, test_positive_control_sds);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("probe");   /* probe_stats: the oracle mu (CK_RUN_CASE=probe) */
    tcase_set_timeout(tp, 600);
    tcase_add_test(tp, test_probe_oracle);
    suite_add_tcase(s, tp);
    TCase *tm = tcase_create("mlp");   /* the learned baseline (CK_RUN_CASE=mlp) */
    tcase_set_timeout(tm, 600);
    tcase_add_test(tm, test_mlp_gradients);
    tcase_add_test(tm, test_mlp_stein_zero_mean);
    tcase_add_test(tm, test_mlp_training_lowers_second_moment);
    suite_add_tcase(s, tm);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
