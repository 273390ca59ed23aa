/* tests/test_world_prior.c — the world prior: view bank, cache, ideal denoiser, plugin.
 *
 * world.c (with bank.c and denoiser.c linked in) is compiled into this test with its entry
 * symbol renamed, so the test reads the plugin's state (sets, bank, counters) directly and
 * calls it through its descriptor as the host does.
 *
 * Checks (tolerances and floors are stated where they are asserted):
 *  - float16: every half converts exactly; float -> half rounds to nearest even (against
 *    GCC's _Float16 where the compiler has it); a float16 bank is within 2^-11 relative of
 *    the float32 one and its eps within the bound derived in the test;
 *  - eps_hat = -sigma grad[(1-s) log p_u + s log p_y] by central differences of a density
 *    written independently here, for s = 1 and 7.5, bucket and kernel conditioning (the
 *    kernel's log-weights recomputed from the camera angles), all_scenes and all_buckets,
 *    where the responsibilities are spread (entropy floors asserted);
 *  - s = 1 and s = 0 give the conditional and unconditional predictions bit for bit, a
 *    scheduled scale is read at the query's step, results do not depend on the thread count;
 *  - depth and normal estimators: predict() against the Bayes estimator computed here, vjp()
 *    against central differences (entropy floor; gradient norm far above the tolerance);
 *  - cache: second create loads (counter and log line), keys change with every input, a
 *    corrupt file (bytes flipped, truncated), a missing or malformed sidecar are detected
 *    before libhdf5 opens the file and rebuilt byte-identically; a verified file holding
 *    another bank is caught by the key text inside it;
 *  - subsample: the documented count, deterministic in the seed; errors pass through;
 *  - entropy series; reference() and reference_geometry() are the exact render. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "steinlab/steinlab.h"
#include "support/test_host.h"
#include "support/tmpdir.h"

#define steinlab_plugin_entry test_world_entry
#include "../plugins/priors/world/world.c"
#undef steinlab_plugin_entry

/* ------------------------------------------------------------------ instances */

/* The default schedule, for the tests' own arithmetic (filled in main). */
static sl_diffusion test_diffusion;

typedef struct test_instance {
    test_host host;
    sl_params *params;
    world_state *state;
} test_instance;

static sl_status test_create(test_instance *in, const char *yaml, uint64_t seed,
                             const char *spec_dir, sl_error *err)
{
    memset(in, 0, sizeof *in);
    test_host_init(&in->host, "world", seed, SL_STREAM_PLUGIN_BASE);
    snprintf(in->host.spec_dir, sizeof in->host.spec_dir, "%s", spec_dir ? spec_dir : ".");
    const sl_plugin *p = test_world_entry(0);
    sl_status st = test_host_try_params(p, yaml, &in->params, err);
    ck_assert_msg(st == SL_OK, "parameters: %s", err->msg);
    void *state = NULL;
    st = ((const sl_prior_vtable *)p->vtable)->create(&in->host.h, in->params, &state, err);
    in->state = state;
    return st;
}

static void test_create_ok(test_instance *in, const char *yaml, uint64_t seed)
{
    sl_error err = { "" };
    sl_status st = test_create(in, yaml, seed, NULL, &err);
    ck_assert_msg(st == SL_OK, "create: %s (%s)", err.msg, sl_status_name(st));
}

static void test_destroy(test_instance *in)
{
    if (in->state)
        world_destroy(in->state);
    sl_params_free(in->params);
    memset(in, 0, sizeof *in);
}

static void test_normal(uint32_t sample, size_t n, float *out)
{
    sl_rng_key k = { .seed = 99, .step = 0, .stream = 0x7e57, .sample = sample };
    sl_rng_normal(k, 0, n, out);
}

static void test_uniform(uint32_t sample, size_t n, float *out)
{
    sl_rng_key k = { .seed = 99, .step = 0, .stream = 0x7e58, .sample = sample };
    sl_rng_uniform(k, 0, n, out);
}

/* x_t = alpha (0.5 x^(i) + 0.5 x^(j)) + sigma eps for two bank views: between data points,
 * so the posterior is not one view. x: (D,). */
static void test_make_xt(const world_bank *bank, size_t i, size_t j, int t, uint32_t sample,
                         float *x)
{
    const size_t D = bank->dim;
    const double alpha = sl_diffusion_alpha(&test_diffusion, t);
    const double sigma = sl_diffusion_sigma(&test_diffusion, t);
    float *noise = malloc(D * sizeof *noise);
    test_normal(sample, D, noise);
    for (size_t e = 0; e < D; e++) {
        double mix = 0.5 * world_bank_get(bank->x, bank->storage, i * D + e) +
                     0.5 * world_bank_get(bank->x, bank->storage, j * D + e);
        x[e] = (float)(alpha * mix + sigma * noise[e]);
    }
    free(noise);
}

/* ------------------------------------------------------------------ reference density */

/* log sum_k kappa_k exp(-||x - alpha x^(k)||^2 / (2v)) over the set, written plainly in
 * double (no code shared with denoiser.c); r: (n,) responsibilities if not NULL. */
static double test_logp(const world_bank *bank, const size_t *idx, const double *logw,
                        size_t n, const double *x, double alpha, double v, double *r)
{
    const size_t D = bank->dim;
    double *l = malloc(n * sizeof *l), top = -INFINITY;
    for (size_t j = 0; j < n; j++) {
        double d2 = 0.0;
        for (size_t e = 0; e < D; e++) {
            double d = x[e] - alpha * world_bank_get(bank->x, bank->storage, idx[j] * D + e);
            d2 += d * d;
        }
        l[j] = -d2 / (2.0 * v) + (logw ? logw[j] : 0.0);
        top = fmax(top, l[j]);
    }
    double z = 0.0;
    for (size_t j = 0; j < n; j++)
        z += exp(l[j] - top);
    if (r)
        for (size_t j = 0; j < n; j++)
            r[j] = exp(l[j] - top) / z;
    free(l);
    return top + log(z);
}

static double test_entropy(const double *r, size_t n)
{
    double h = 0.0;
    for (size_t j = 0; j < n; j++)
        if (r[j] > 0.0)
            h -= r[j] * log(r[j]);
    return h;
}

/* The kernel's log-weights recomputed from the orbit angles: the viewing direction of an
 * orbit camera is -(cos el cos az, cos el sin az, sin el). */
static void test_kernel_logw(const world_state *s, const sl_camera *cam, double w, double *logw)
{
    const double d2r = M_PI / 180.0;
    double q[3] = { cos(cam->elevation_deg * d2r) * cos(cam->azimuth_deg * d2r),
                    cos(cam->elevation_deg * d2r) * sin(cam->azimuth_deg * d2r),
                    sin(cam->elevation_deg * d2r) };
    for (size_t j = 0; j < s->n_prompt; j++) {
        const sl_camera *c = &s->bank.cams[s->prompt_views[j]];
        double k[3] = { cos(c->elevation_deg * d2r) * cos(c->azimuth_deg * d2r),
                        cos(c->elevation_deg * d2r) * sin(c->azimuth_deg * d2r),
                        sin(c->elevation_deg * d2r) };
        double dot = fmin(1.0, fmax(-1.0, q[0] * k[0] + q[1] * k[1] + q[2] * k[2]));
        double ang = acos(dot) / d2r;
        logw[j] = -ang * ang / (2.0 * w * w);
    }
}

/* A small grid at 16 x 16: 8 azimuths x 3 elevations (one overhead) x 1 distance = 24
 * views per scene. */
#define TEST_GRID "resolution: 16\nazimuths: 8\nelevations: [0, 30, 70]\ndistances: [1.8]\n" \
                  "fovy: 50\n"

/* ------------------------------------------------------------------ float16 */

START_TEST(test_half_conversion)
{
#ifdef __FLT16_MAX__
    /* half -> float: all 65536 codes (NaNs compared as NaNs). */
    for (uint32_t h = 0; h < 65536; h++) {
        _Float16 ref;
        uint16_t hb = (uint16_t)h;
        memcpy(&ref, &hb, 2);
        float got = world_half_to_float(hb), want = (float)ref;
        if (isnan(want))
            ck_assert_msg(isnan(got), "half %04x", h);
        else
            ck_assert_msg(memcmp(&got, &want, 4) == 0, "half %04x: %a != %a", h, (double)got,
                          (double)want);
    }
    /* float -> half: every finite half value, the midpoints between neighbours (the ties),
     * one float ulp either side of them, and random bit patterns. */
    size_t checked = 0;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        float a = world_half_to_float((uint16_t)h), b = world_half_to_float((uint16_t)(h + 1));
        float mid = (float)(0.5 * ((double)a + (double)b));
        float cands[5] = { a, mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY), b };
        for (int c = 0; c < 5; c++)
            for (int sgn = 0; sgn < 2; sgn++) {
                float f = sgn ? -cands[c] : cands[c];
                _Float16 ref = (_Float16)f;
                uint16_t want;
                memcpy(&want, &ref, 2);
                ck_assert_msg(world_float_to_half(f) == want, "%a -> %04x, expected %04x",
                              (double)f, world_float_to_half(f), want);
                checked++;
            }
    }
    for (uint32_t i = 0; i < 200000; i++) {
        sl_rng_key k = { .seed = 5, .step = 0, .stream = 0x1616, .sample = 0 };
        uint32_t ctr[4] = { i, 0, 0, 0 }, key[2] = { 5, 0 }, out[4];
        (void)k;
        sl_philox4x32_10(ctr, key, out);
        float f;
        memcpy(&f, &out[0], 4);
        _Float16 ref = (_Float16)f;
        uint16_t want;
        memcpy(&want, &ref, 2);
        uint16_t got = world_float_to_half(f);
        if (isnan(f))
            ck_assert((got & 0x7c00) == 0x7c00 && (got & 0x3ff));
        else
            ck_assert_msg(got == want, "%a -> %04x, expected %04x", (double)f, got, want);
        checked++;
    }
    fprintf(stderr, "float16: 65536 halves exact, %zu floats rounded as _Float16\n", checked);
#else
    /* No _Float16: spot checks of the rounding rule. */
    ck_assert_uint_eq(world_float_to_half(1.0f), 0x3c00);
    ck_assert_uint_eq(world_float_to_half(65504.0f), 0x7bff);
    ck_assert_uint_eq(world_float_to_half(65520.0f), 0x7c00);
    ck_assert_uint_eq(world_float_to_half(0x1p-24f), 0x0001);
    ck_assert_uint_eq(world_float_to_half(0x1p-25f), 0x0000);
    ck_assert_uint_eq(world_float_to_half(1.0f + 0x1p-11f), 0x3c00);          /* tie, even */
    ck_assert_uint_eq(world_float_to_half(1.0f + 3 * 0x1p-11f), 0x3c02);      /* tie, even */
    for (uint32_t h = 0; h < 0x7c00; h++)
        ck_assert_uint_eq(world_float_to_half(world_half_to_float((uint16_t)h)), h);
#endif
}
END_TEST

START_TEST(test_float16_bank_effect)
{
    world_scene sc;
    sl_error err;
    ck_assert_int_eq(world_scene_from_prompt("a red sphere on a blue box", &sc, &err), SL_OK);
    world_bank_opts o = { .res = 16, .shading = world_shading_default(), .cache_dir = NULL };
    o.grid = (world_grid){ .azimuths = 8, .n_elevations = 2, .elevations = { 0, 30 },
                           .n_distances = 1, .distances = { 1.8f }, .fovy = 50 };
    world_bank b32, b16;
    o.storage = WORLD_STORE_F32;
    ck_assert_int_eq(world_bank_render(&sc, &o, &b32, &err), SL_OK);
    o.storage = WORLD_STORE_F16;
    ck_assert_int_eq(world_bank_render(&sc, &o, &b16, &err), SL_OK);
    const size_t K = b32.n_views, D = b32.dim, P = b32.npix;
    /* Round trip: RNE to binary16 is within 2^-11 relative (2^-25 absolute below 2^-14). */
    double max_rel = 0.0;
    for (size_t i = 0; i < K * D; i++) {
        float a = ((float *)b32.x)[i], b = world_half_to_float(((uint16_t *)b16.x)[i]);
        ck_assert(fabsf(a - b) <= fmaxf(0x1p-11f * fabsf(a), 0x1p-25f));
        if (a != 0.0f)
            max_rel = fmax(max_rel, fabs((double)a - b) / fabs(a));
        float n32 = ((float *)b32.normal)[i], n16 = world_half_to_float(((uint16_t *)b16.normal)[i]);
        ck_assert(fabsf(n32 - n16) <= fmaxf(0x1p-11f * fabsf(n32), 0x1p-25f));
    }
    for (size_t i = 0; i < K * P; i++) {
        float a = ((float *)b32.depth)[i], b = world_half_to_float(((uint16_t *)b16.depth)[i]);
        ck_assert(fabsf(a - b) <= fmaxf(0x1p-11f * fabsf(a), 0x1p-25f));
        ck_assert_uint_eq(b32.mask[i], b16.mask[i]);
    }
    /* Effect on eps (s = 1, all views): with every logit moved by at most delta, each r_k
     * moves by a factor in [e^-2delta, e^2delta], so sum |r' - r| <= e^(2 delta) - 1 and
     * |m' - m| <= 2^-11 + e^(2 delta) - 1 (|x| <= 1): |eps' - eps| <= (sigma/v) alpha (that).
     * Plus float32 rounding of the outputs (1e-6 relative). */
    size_t *idx = malloc(K * sizeof *idx);
    for (size_t k = 0; k < K; k++)
        idx[k] = k;
    world_set all = { .idx = idx, .n = K };
    world_work w32, w16;
    ck_assert_int_eq(world_work_init(&w32, K, D, &err), SL_OK);
    ck_assert_int_eq(world_work_init(&w16, K, D, &err), SL_OK);
    float *x = malloc(D * sizeof *x), *e32 = malloc(D * sizeof *e32), *e16 = malloc(D * 4);
    double *r32 = malloc(K * sizeof *r32), *r16 = malloc(K * sizeof *r16);
    const int times[] = { 300, 700, 950 };
    for (int ti = 0; ti < 3; ti++) {
        const int t = times[ti];
        const double alpha = sl_diffusion_alpha(&test_diffusion, t);
        const double sigma = sl_diffusion_sigma(&test_diffusion, t);
        const double v = alpha * alpha * 0.05 * 0.05 + sigma * sigma;
        test_make_xt(&b32, 1, 2, t, 40 + (uint32_t)ti, x);
        world_dist2(&b32, idx, K, x, alpha, w32.d2);
        world_dist2(&b16, idx, K, x, alpha, w16.d2);
        double delta = 0.0;
        for (size_t k = 0; k < K; k++)
            delta = fmax(delta, fabs(w32.d2[k] - w16.d2[k]) / (2.0 * v));
        world_responsibilities(w32.d2, &all, v, r32, NULL, NULL);
        world_responsibilities(w16.d2, &all, v, r16, NULL, NULL);
        world_eps(&b32, &w32, x, alpha, sigma, v, NULL, NULL, &all, r32, 1.0, e32);
        world_eps(&b16, &w16, x, alpha, sigma, v, NULL, NULL, &all, r16, 1.0, e16);
        const double bound = sigma / v * alpha * (0x1p-11 + expm1(2.0 * delta));
        double worst = 0.0;
        for (size_t i = 0; i < D; i++) {
            double diff = fabs((double)e32[i] - e16[i]);
            ck_assert_msg(diff <= bound + 1e-6 * fabs(e32[i]) + 1e-7,
                          "t %d [%zu]: |eps32 - eps16| %.3g > bound %.3g", t, i, diff, bound);
            worst = fmax(worst, diff);
        }
        fprintf(stderr, "float16 t %d: logit shift %.2e, max |d eps| %.2e (bound %.2e)\n", t,
                delta, worst, bound);
    }
    fprintf(stderr, "float16: max relative storage error %.3g (2^-11 = %.3g)\n", max_rel,
            0x1p-11);
    free(x), free(e32), free(e16), free(r32), free(r16), free(idx);
    world_work_free(&w32);
    world_work_free(&w16);
    world_bank_free(&b32);
    world_bank_free(&b16);
    world_scene_free(&sc);
}
END_TEST

/* ------------------------------------------------------------------ eps against scores */

/* The FD check of one plugin configuration: for several t and a batch of 2 cameras,
 * eps_hat against -sigma d/dx [(1-s) log p_u + s log p_y] on every 5th coordinate.
 * kernel_w > 0: the conditional set is all the prompt's views with the kernel weights
 * recomputed here. Returns the smallest conditional entropy seen. */
static double check_score_fd(const char *yaml, double s, double kernel_w)
{
    test_instance in;
    test_create_ok(&in, yaml, 7);
    world_state *st = in.state;
    const sl_prior_vtable *vt = test_world_entry(0)->vtable;
    const world_bank *bank = &st->bank;
    const size_t D = bank->dim;
    enum { B = 2 };
    sl_camera cams[B];
    sl_camera_orbit(20.0f, 10.0f, 1.8f, NULL, 50.0f, 16, 16, &cams[0]);    /* front */
    sl_camera_orbit(-100.0f, 25.0f, 1.8f, NULL, 50.0f, 16, 16, &cams[1]);  /* side */
    float *x_t = malloc(B * D * sizeof *x_t), *eps = malloc(B * D * sizeof *eps);
    double *x = malloc(D * sizeof *x), *logw = malloc(st->n_prompt * sizeof *logw);
    double *r_u = malloc(st->n_uncond * sizeof *r_u), *r_y = malloc(st->n_prompt * 8);
    double h_min = INFINITY;
    const int times[] = { 750, 850, 950 };
    for (int ti = 0; ti < 3; ti++) {
        int t[B] = { times[ti], times[ti] + 30 };
        for (int b = 0; b < B; b++)
            test_make_xt(bank, st->prompt_views[b], st->prompt_views[3 + b], t[b],
                         (uint32_t)(10 * ti + b), x_t + b * D);
        sl_prior_query q = { .batch = B, .x_t = x_t, .t = t, .cams = cams, .step = 0 };
        sl_error err;
        ck_assert_int_eq(vt->noise_pred(st, &q, eps, &err), SL_OK);
        for (int b = 0; b < B; b++) {
            const double alpha = sl_diffusion_alpha(&test_diffusion, t[b]);
            const double sigma = sl_diffusion_sigma(&test_diffusion, t[b]);
            const double v = alpha * alpha * st->s0_prior * st->s0_prior + sigma * sigma;
            /* The conditional set, as documented. */
            const size_t *yidx = st->prompt_views;
            size_t yn = st->n_prompt;
            const double *ylogw = NULL;
            if (kernel_w > 0) {
                test_kernel_logw(st, &cams[b], kernel_w, logw);
                ylogw = logw;
            } else if (st->conditioning == WORLD_COND_BUCKET) {
                sl_view_bucket bk = sl_camera_bucket(&cams[b]);
                yidx = st->bucket[bk];
                yn = st->n_bucket[bk];
                for (size_t j = 0; j < yn; j++)   /* every view of the set is in the bucket */
                    ck_assert_int_eq(sl_camera_bucket(&bank->cams[yidx[j]]), bk);
            }
            for (size_t e = 0; e < D; e++)
                x[e] = x_t[b * D + e];
            test_logp(bank, st->uncond, NULL, st->n_uncond, x, alpha, v, r_u);
            test_logp(bank, yidx, ylogw, yn, x, alpha, v, r_y);
            const double hu = test_entropy(r_u, st->n_uncond), hy = test_entropy(r_y, yn);
            /* Floors: not vacuous (one-hot r would make eps affine in x_t). */
            ck_assert_msg(hu > 0.5 && hy > 0.5, "t %d: entropies %.3f %.3f too low", t[b], hu,
                          hy);
            h_min = fmin(h_min, hy);
            /* Central differences in double with h = 1e-3: v >= 0.3 here, so the truncation
             * error h^2/6 |f'''| is ~1e-8; what remains is eps_hat's float32 rounding. */
            const double hstep = 1e-3, atol = 2e-6, rtol = 2e-5;
            double max_err = 0.0;
            for (size_t e = 0; e < D; e += 5) {
                const double keep = x[e];
                x[e] = keep + hstep;
                double fp = (1 - s) * test_logp(bank, st->uncond, NULL, st->n_uncond, x, alpha, v,
                                                NULL) +
                            s * test_logp(bank, yidx, ylogw, yn, x, alpha, v, NULL);
                x[e] = keep - hstep;
                double fm = (1 - s) * test_logp(bank, st->uncond, NULL, st->n_uncond, x, alpha, v,
                                                NULL) +
                            s * test_logp(bank, yidx, ylogw, yn, x, alpha, v, NULL);
                x[e] = keep;
                const double want = -sigma * (fp - fm) / (2 * hstep), got = eps[b * D + e];
                ck_assert_msg(fabs(got - want) <= atol + rtol * fabs(want),
                              "s %g t %d [%zu]: eps_hat %.8g, -sigma grad log p %.8g", s, t[b],
                              e, got, want);
                max_err = fmax(max_err, fabs(got - want));
            }
            fprintf(stderr, "score FD s %.1f t %d: H(r_u) %.2f (%zu views) H(r_y) %.2f (%zu), "
                    "max err %.1e\n", s, t[b], hu, st->n_uncond, hy, yn, max_err);
        }
    }
    free(x_t), free(eps), free(x), free(logw), free(r_u), free(r_y);
    test_destroy(&in);
    return h_min;
}

START_TEST(test_score_fd_bucket)
{
    /* s0' = 0.6: a heavily smoothed prior, so that r is spread at 16 x 16. */
    for (int si = 0; si < 2; si++) {
        const double s = si ? 7.5 : 1.0;
        char yaml[1024];
        snprintf(yaml, sizeof yaml, "prompt: a red sphere on a blue box\n" TEST_GRID
                 "prior_bandwidth: 0.6\ncache: false\nguidance_scale: %g\n"
                 "unconditional: all_buckets\n", s);
        check_score_fd(yaml, s, 0);
    }
}
END_TEST

START_TEST(test_score_fd_all_scenes)
{
    check_score_fd("prompt: a red sphere on a blue box\n" TEST_GRID
                   "prior_bandwidth: 0.6\ncache: false\nguidance_scale: 7.5\n"
                   "unconditional: all_scenes\nconditioning: none\n", 7.5, 0);
}
END_TEST

START_TEST(test_score_fd_kernel)
{
    check_score_fd("prompt: a red sphere on a blue box\n" TEST_GRID
                   "prior_bandwidth: 0.6\ncache: false\nguidance_scale: 3\n"
                   "unconditional: all_buckets\nconditioning: kernel\nkernel_width: 40\n", 3.0,
                   40.0);
}
END_TEST

/* ------------------------------------------------------------------ exactness */

START_TEST(test_guidance_exact_and_threads)
{
    enum { B = 3 };
    const char *base = "prompt: a small green torus next to a yellow cone\n" TEST_GRID
                       "cache: false\nunconditional: all_scenes\nconditioning: kernel\n";
    char yaml[1024];
    sl_camera cams[B];
    sl_camera_orbit(0.0f, 10.0f, 1.8f, NULL, 50.0f, 16, 16, &cams[0]);
    sl_camera_orbit(170.0f, 40.0f, 1.8f, NULL, 50.0f, 16, 16, &cams[1]);
    sl_camera_orbit(-60.0f, 75.0f, 1.8f, NULL, 50.0f, 16, 16, &cams[2]);
    int t[B] = { 50, 500, 990 };
    for (int which = 0; which < 2; which++) {   /* s = 1 then s = 0 */
        snprintf(yaml, sizeof yaml, "%sguidance_scale: %d\n", base, which == 0 ? 1 : 0);
        test_instance in;
        test_create_ok(&in, yaml, 3);
        world_state *st = in.state;
        const size_t D = st->bank.dim;
        float *x_t = malloc(B * D * 4), *eps = malloc(B * D * 4), *ref = malloc(B * D * 4);
        for (int b = 0; b < B; b++)
            test_make_xt(&st->bank, st->prompt_views[b], st->uncond[st->n_uncond - 1 - b], t[b],
                         (uint32_t)(70 + b), x_t + b * D);
        sl_prior_query q = { .batch = B, .x_t = x_t, .t = t, .cams = cams, .step = 0 };
        sl_error err;
        ck_assert_int_eq(st->host->struct_size, sizeof(sl_host));
        ck_assert_int_eq(world_noise_pred(st, &q, eps, &err), SL_OK);
        /* The single predictions, through the denoiser functions. */
        double *r = malloc(st->bank.n_views * sizeof *r);
        for (int b = 0; b < B; b++) {
            const double alpha = sl_diffusion_alpha(&test_diffusion, t[b]);
            const double sigma = sl_diffusion_sigma(&test_diffusion, t[b]);
            const double v = alpha * alpha * st->s0_prior * st->s0_prior + sigma * sigma;
            world_dist2(&st->bank, st->uncond, st->n_uncond, x_t + b * D, alpha, st->work.d2);
            world_set set = which == 0 ? world_cond_set(st, &cams[b]) : world_uncond_set(st);
            world_responsibilities(st->work.d2, &set, v, r, NULL, NULL);
            world_eps(&st->bank, &st->work, x_t + b * D, alpha, sigma, v, NULL, NULL, &set, r,
                      0.0, ref + b * D);
        }
        ck_assert_mem_eq(eps, ref, B * D * sizeof(float));
        free(r);

        /* Thread count: 1, 2 and 3 threads give the same bits (noise and geometry). */
        const sl_geometry_estimator *dep = world_extension(st, SL_EXT_DEPTH_ESTIMATOR);
        const sl_geometry_estimator *nor = world_extension(st, SL_EXT_NORMAL_ESTIMATOR);
        const size_t P = st->bank.npix;
        float *g1 = malloc(B * (D + P + 3 * P + 2 * D) * 4), *g2 = malloc(B * (D + P + 3 * P + 2 * D) * 4);
        float *a = malloc(B * 3 * P * 4);
        test_uniform(3, B * 3 * P, a);
        for (int rep = 0; rep < 3; rep++) {
            omp_set_num_threads(rep + 1);
            float *g = rep == 0 ? g1 : g2;
            ck_assert_int_eq(world_noise_pred(st, &q, g, &err), SL_OK);
            ck_assert_int_eq(dep->predict(st, &q, g + B * D, &err), SL_OK);
            ck_assert_int_eq(dep->vjp(st, &q, a, g + B * (D + P), &err), SL_OK);
            ck_assert_int_eq(nor->predict(st, &q, g + B * (2 * D + P), &err), SL_OK);
            ck_assert_int_eq(nor->vjp(st, &q, a, g + B * (2 * D + 4 * P), &err), SL_OK);
            if (rep > 0)
                ck_assert_mem_eq(g1, g2, B * (D + P + 3 * P + 2 * D) * 4);
        }
        omp_set_num_threads(2);
        free(g1), free(g2), free(a);
        free(x_t), free(eps), free(ref);
        test_destroy(&in);
    }

    /* A scheduled scale is read at the query's step: [0, 7.5, 1, 100] is 1 at step 200. */
    test_instance sched, one;
    snprintf(yaml, sizeof yaml, "%sguidance_scale: [0, 7.5, 1, 100]\n", base);
    test_create_ok(&sched, yaml, 3);
    snprintf(yaml, sizeof yaml, "%sguidance_scale: 1\n", base);
    test_create_ok(&one, yaml, 3);
    sl_prior_info info;
    world_info(sched.state, &info);
    ck_assert_double_eq(info.guidance_scale, 7.5);
    ck_assert_int_eq(info.height, 16);
    ck_assert_int_eq(info.width, 16);
    ck_assert_int_eq(info.channels, 3);
    ck_assert_double_eq(info.diffusion->alphas_cumprod[500], test_diffusion.alphas_cumprod[500]);
    const size_t D = sched.state->bank.dim;
    float *x_t = malloc(B * D * 4), *e1 = malloc(B * D * 4), *e2 = malloc(B * D * 4);
    test_normal(5, B * D, x_t);
    sl_prior_query q = { .batch = B, .x_t = x_t, .t = t, .cams = cams, .step = 200 };
    sl_error err;
    ck_assert_int_eq(world_noise_pred(sched.state, &q, e1, &err), SL_OK);
    ck_assert_int_eq(world_noise_pred(one.state, &q, e2, &err), SL_OK);
    ck_assert_mem_eq(e1, e2, B * D * 4);
    /* Errors: t out of range. */
    int bad_t[B] = { 0, 10, 10 };
    q.t = bad_t;
    ck_assert_int_eq(world_noise_pred(sched.state, &q, e1, &err), SL_ERR_INVALID_ARG);
    free(x_t), free(e1), free(e2);
    test_destroy(&sched);
    test_destroy(&one);
}
END_TEST

/* ------------------------------------------------------------------ geometry estimators */

/* <a, D(x)> or <a, N(x)> computed here in double from the posterior over `set`. */
static double test_geo_value(const world_bank *bank, const size_t *idx, size_t n,
                             const double *x, double alpha, double v, int normals,
                             const float *a, double *out)   /* out: (P,) or (P, 3) or NULL */
{
    const size_t P = bank->npix;
    double *r = malloc(n * sizeof *r);
    test_logp(bank, idx, NULL, n, x, alpha, v, r);
    double f = 0.0;
    for (size_t p = 0; p < P; p++) {
        if (!normals) {
            double d = 0.0;
            for (size_t j = 0; j < n; j++)
                d += r[j] * world_bank_get(bank->depth, bank->storage, idx[j] * P + p);
            f += a[p] * d;
            if (out)
                out[p] = d;
        } else {
            double m[3] = { 0, 0, 0 };
            for (size_t j = 0; j < n; j++)
                for (int c = 0; c < 3; c++)
                    m[c] += r[j] * world_bank_get(bank->normal, bank->storage,
                                                  (idx[j] * P + p) * 3 + (size_t)c);
            double len = sqrt(m[0] * m[0] + m[1] * m[1] + m[2] * m[2]);
            for (int c = 0; c < 3; c++) {
                double nc = len < WORLD_NORMAL_GUARD ? 0.0 : m[c] / len;
                f += a[3 * p + (size_t)c] * nc;
                if (out)
                    out[3 * p + (size_t)c] = nc;
            }
        }
    }
    free(r);
    return f;
}

static void check_geometry(const char *posterior)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "prompt: a red sphere on a blue box\n" TEST_GRID
             "prior_bandwidth: 0.6\ncache: false\nunconditional: all_buckets\n"
             "estimator_posterior: %s\n", posterior);
    test_instance in;
    test_create_ok(&in, yaml, 7);
    world_state *st = in.state;
    const world_bank *bank = &st->bank;
    const size_t D = bank->dim, P = bank->npix;
    const int conditional = strcmp(posterior, "conditional") == 0;
    for (int normals = 0; normals < 2; normals++) {
        const sl_geometry_estimator *ge = world_extension(
            st, normals ? SL_EXT_NORMAL_ESTIMATOR : SL_EXT_DEPTH_ESTIMATOR);
        ck_assert_ptr_nonnull(ge);
        ck_assert_int_eq(ge->channels, normals ? 3 : 1);
        ck_assert_int_eq(ge->output, normals ? SL_GEOMETRY_WORLD_NORMALS : SL_GEOMETRY_Z_DEPTH);
        const size_t C = normals ? 3 : 1;
        const int times[] = { 800, 950 };
        for (int ti = 0; ti < 2; ti++) {
            int t[1] = { times[ti] };
            sl_camera cam;
            sl_camera_orbit(100.0f, 20.0f, 1.8f, NULL, 50.0f, 16, 16, &cam);
            float *x_t = malloc(D * 4), *out = malloc(C * P * 4), *a = malloc(C * P * 4);
            float *g = malloc(D * 4);
            double *x = malloc(D * 8), *ref = malloc(C * P * 8);
            test_make_xt(bank, st->prompt_views[2], st->prompt_views[9], t[0],
                         (uint32_t)(90 + ti), x_t);
            test_uniform((uint32_t)(50 + ti), C * P, a);
            for (size_t i = 0; i < C * P; i++)
                a[i] = 2.0f * a[i] - 1.0f;
            sl_prior_query q = { .batch = 1, .x_t = x_t, .t = t, .cams = &cam, .step = 0 };
            sl_error err;
            ck_assert_int_eq(ge->predict(st, &q, out, &err), SL_OK);
            ck_assert_int_eq(ge->vjp(st, &q, a, g, &err), SL_OK);
            const double alpha = sl_diffusion_alpha(&test_diffusion, t[0]);
            const double sigma = sl_diffusion_sigma(&test_diffusion, t[0]);
            const double v = alpha * alpha * st->s0_prior * st->s0_prior + sigma * sigma;
            const size_t *idx = st->uncond;
            size_t n = st->n_uncond;
            if (conditional) {
                sl_view_bucket bk = sl_camera_bucket(&cam);
                idx = st->bucket[bk];
                n = st->n_bucket[bk];
            }
            for (size_t e = 0; e < D; e++)
                x[e] = x_t[e];
            double *r = malloc(n * 8);
            test_logp(bank, idx, NULL, n, x, alpha, v, r);
            const double h = test_entropy(r, n);
            free(r);
            ck_assert_msg(h > 0.5, "entropy %.3f too low", h);
            /* predict() is the Bayes estimator (float32 output of a double sum). */
            test_geo_value(bank, idx, n, x, alpha, v, normals, a, ref);
            for (size_t i = 0; i < C * P; i++)
                ck_assert_msg(fabs(out[i] - ref[i]) <= 1e-6 + 1e-6 * fabs(ref[i]),
                              "predict [%zu]: %.8g vs %.8g", i, out[i], ref[i]);
            /* vjp() against central differences of <a, estimator> in double. */
            double gmax = 0.0, err_max = 0.0;
            for (size_t e = 0; e < D; e++)
                gmax = fmax(gmax, fabs(g[e]));
            const double hstep = 1e-3, tol_abs = 1e-6, tol_rel = 1e-4;
            for (size_t e = 0; e < D; e += 3) {
                const double keep = x[e];
                x[e] = keep + hstep;
                double fp = test_geo_value(bank, idx, n, x, alpha, v, normals, a, NULL);
                x[e] = keep - hstep;
                double fm = test_geo_value(bank, idx, n, x, alpha, v, normals, a, NULL);
                x[e] = keep;
                const double want = (fp - fm) / (2 * hstep);
                ck_assert_msg(fabs(g[e] - want) <= tol_abs + tol_rel * fabs(want),
                              "%s %s t %d [%zu]: vjp %.8g, FD %.8g", posterior,
                              normals ? "normal" : "depth", t[0], e, g[e], want);
                err_max = fmax(err_max, fabs(g[e] - want));
            }
            /* Not vacuous: the gradient is far above the tolerance. */
            ck_assert_msg(gmax > 1e3 * tol_abs, "max |grad| %.3g vs tolerance %.3g", gmax,
                          tol_abs);
            fprintf(stderr, "%s %s VJP t %d: H(r) %.2f over %zu views, max |grad| %.3g, max "
                    "FD err %.2e\n", posterior, normals ? "normal" : "depth", t[0], h, n, gmax,
                    err_max);
            /* vjp() with another query is refused. */
            x_t[0] += 0.5f;
            ck_assert_int_eq(ge->vjp(st, &q, a, g, &err), SL_ERR_INVALID_ARG);
            free(x_t), free(out), free(a), free(g), free(x), free(ref);
        }
    }
    ck_assert_ptr_null(world_extension(st, "steinlab.unknown.v1"));
    test_destroy(&in);
}

START_TEST(test_geometry_vjp_unconditional) { check_geometry("unconditional"); }
END_TEST

START_TEST(test_geometry_vjp_conditional) { check_geometry("conditional"); }
END_TEST

/* ------------------------------------------------------------------ cache */

static int count_files(const char *suffix)
{
    DIR *d = opendir(test_tmpdir());
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name), ls = strlen(suffix);
        n += l > ls && strcmp(e->d_name + l - ls, suffix) == 0;
    }
    closedir(d);
    return n;
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(*n);
    ck_assert_uint_eq(fread(buf, 1, *n, f), *n);
    fclose(f);
    return buf;
}

static void write_all(const char *path, const unsigned char *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
    fclose(f);
}

START_TEST(test_cache)
{
    test_tmpdir_make("test_world");
    char yaml[1024], h5[WORLD_PATH_MAX], sum[WORLD_PATH_MAX + 8];
    snprintf(yaml, sizeof yaml, "prompt: a red sphere on a blue box\n" TEST_GRID
             "unconditional: all_buckets\ncache_dir: %s\n", test_tmpdir());
    test_instance a, b;
    test_create_ok(&a, yaml, 1);
    ck_assert_int_eq(a.state->banks_rendered, 1);
    ck_assert_int_eq(a.state->banks_loaded, 0);
    ck_assert_int_eq(count_files(".h5"), 1);
    ck_assert_int_eq(count_files(".h5.sum"), 1);
    ck_assert_int_eq(count_files(".tmp") + count_files(".h5.tmp"), 0);
    ck_assert_ptr_nonnull(strstr(a.host.log_text, "rendered"));

    /* The second create loads (a counter and the log line, no timing involved). */
    test_create_ok(&b, yaml, 1);
    ck_assert_int_eq(b.state->banks_loaded, 1);
    ck_assert_int_eq(b.state->banks_rendered, 0);
    ck_assert_ptr_nonnull(strstr(b.host.log_text, "loaded from"));
    const size_t K = a.state->bank.n_views, D = a.state->bank.dim, P = a.state->bank.npix;
    ck_assert_uint_eq(b.state->bank.n_views, K);
    ck_assert_mem_eq(a.state->bank.x, b.state->bank.x, K * D * 4);
    ck_assert_mem_eq(a.state->bank.depth, b.state->bank.depth, K * P * 4);
    ck_assert_mem_eq(a.state->bank.normal, b.state->bank.normal, K * D * 4);
    ck_assert_mem_eq(a.state->bank.mask, b.state->bank.mask, K * P);
    ck_assert_mem_eq(a.state->bank.cams, b.state->bank.cams, K * sizeof(sl_camera));

    /* The cache file's name is the key of the bank's defining text. */
    world_bank_opts o = { .res = 16, .shading = world_shading_default(),
                          .storage = WORLD_STORE_F32, .cache_dir = test_tmpdir() };
    o.grid = (world_grid){ .azimuths = 8, .n_elevations = 3, .elevations = { 0, 30, 70 },
                           .n_distances = 1, .distances = { 1.8f }, .fovy = 50 };
    char *text = world_bank_key_text(&a.state->scenes[0], &o);
    const uint64_t key = world_fnv1a64(text, strlen(text));
    free(text);
    world_cache_paths(test_tmpdir(), key, h5, sizeof h5, sum, sizeof sum);
    ck_assert_int_eq(access(h5, R_OK), 0);
    ck_assert_int_eq(access(sum, R_OK), 0);
    test_destroy(&b);

    /* Every input changes the key. */
    {
        world_scene other;
        sl_error err;
        ck_assert_int_eq(world_scene_from_prompt("a red sphere on a green box", &other, &err),
                         SL_OK);
        uint64_t keys[9];
        int nk = 0;
        for (int variant = 0; variant < 9; variant++) {
            world_bank_opts v = o;
            const world_scene *sc = &a.state->scenes[0];
            switch (variant) {
            case 1: v.res = 17; break;
            case 2: v.grid.azimuths = 9; break;
            case 3: v.grid.elevations[1] = 31; break;
            case 4: v.grid.distances[0] = 1.9f; break;
            case 5: v.grid.fovy = 51; break;
            case 6: v.storage = WORLD_STORE_F16; break;
            case 7: v.shading.ambient += 0.01f; break;
            case 8: sc = &other; break;
            default: break;
            }
            char *t = world_bank_key_text(sc, &v);
            keys[nk++] = world_fnv1a64(t, strlen(t));
            free(t);
        }
        ck_assert_uint_eq(keys[0], key);
        for (int i = 0; i < nk; i++)
            for (int j = 0; j < i; j++)
                ck_assert_msg(keys[i] != keys[j], "variants %d and %d share a key", i, j);
        world_scene_free(&other);
    }
    /* And a changed parameter of the plugin writes a new file. */
    {
        char y2[1024];
        snprintf(y2, sizeof y2, "prompt: a red sphere on a blue box\nresolution: 20\n"
                 "azimuths: 8\nelevations: [0, 30, 70]\ndistances: [1.8]\nfovy: 50\n"
                 "unconditional: all_buckets\ncache_dir: %s\n", test_tmpdir());
        test_instance c;
        test_create_ok(&c, y2, 1);
        ck_assert_int_eq(c.state->banks_rendered, 1);
        ck_assert_int_eq(count_files(".h5"), 2);
        test_destroy(&c);
    }

    size_t n0;
    unsigned char *orig = read_all(h5, &n0);
    /* Corruptions, each detected before libhdf5 opens the file (the reported reason is the
     * sidecar's test, never an HDF5 failure), then rebuilt to the identical file. */
    for (int kind = 0; kind < 5; kind++) {
        size_t n = n0;
        unsigned char *buf = malloc(n0);
        memcpy(buf, orig, n0);
        const char *expect = NULL;
        switch (kind) {
        case 0:   /* bytes flipped in the middle */
            for (size_t i = n0 / 2; i < n0 / 2 + 16; i++)
                buf[i] ^= 0x5a;
            write_all(h5, buf, n);
            expect = "fails its checksum";
            break;
        case 1:   /* truncated */
            n = n0 / 2;
            write_all(h5, buf, n);
            expect = "bytes, expected";
            break;
        case 2:   /* sidecar missing */
            unlink(sum);
            expect = "missing";
            break;
        case 3: { /* sidecar malformed */
            const unsigned char junk[] = "not a checksum\n";
            write_all(sum, junk, sizeof junk - 1);
            expect = "malformed";
            break;
        }
        case 4:   /* HDF5 file gone, sidecar present */
            unlink(h5);
            expect = "missing";
            break;
        }
        free(buf);
        test_instance c;
        test_create_ok(&c, yaml, 1);
        ck_assert_int_eq(c.state->banks_rebuilt, 1);
        ck_assert_int_eq(c.state->banks_loaded, 0);
        ck_assert_msg(strstr(c.host.log_text, "warn: ") && strstr(c.host.log_text, expect) &&
                          !strstr(c.host.log_text, "libhdf5"),
                      "kind %d, log: %s", kind, c.host.log_text);
        ck_assert_mem_eq(c.state->bank.x, a.state->bank.x, K * D * 4);
        test_destroy(&c);
        size_t n1;
        unsigned char *again = read_all(h5, &n1);
        ck_assert_uint_eq(n1, n0);
        ck_assert_mem_eq(again, orig, n0);   /* deterministic file */
        free(again);
    }
    /* A sidecar that matches the file, but the file holds another bank (the resolution-20
     * one): caught by the key text inside the file, after the checksum passed. */
    {
        world_bank_opts o20 = o;
        o20.res = 20;
        char *t20 = world_bank_key_text(&a.state->scenes[0], &o20);
        char h5_20[WORLD_PATH_MAX], sum_20[WORLD_PATH_MAX + 8];
        world_cache_paths(test_tmpdir(), world_fnv1a64(t20, strlen(t20)), h5_20, sizeof h5_20,
                          sum_20, sizeof sum_20);
        free(t20);
        size_t n20;
        unsigned char *other = read_all(h5_20, &n20);
        write_all(h5, other, n20);
        FILE *f = fopen(sum, "w");
        fprintf(f, "steinlab world bank checksum v1\nsize %zu\nchecksum %016llx\nkey %016llx\n",
                n20, (unsigned long long)world_checksum(other, n20), (unsigned long long)key);
        fclose(f);
        free(other);
        test_instance c;
        test_create_ok(&c, yaml, 1);
        ck_assert_int_eq(c.state->banks_rebuilt, 1);
        ck_assert_msg(strstr(c.host.log_text, "belongs to another bank"), "log: %s",
                      c.host.log_text);
        ck_assert_mem_eq(c.state->bank.x, a.state->bank.x, K * D * 4);
        test_destroy(&c);
    }
    free(orig);
    test_destroy(&a);

    /* cache: false writes nothing. */
    test_tmpdir_remove();
    test_tmpdir_make("test_world");
    snprintf(yaml, sizeof yaml, "prompt: a red sphere\n" TEST_GRID
             "unconditional: all_buckets\ncache: false\ncache_dir: %s\n", test_tmpdir());
    test_create_ok(&a, yaml, 1);
    ck_assert_int_eq(count_files(".h5"), 0);
    test_destroy(&a);
    test_tmpdir_remove();
}
END_TEST

START_TEST(test_cache_float16)
{
    /* float16 banks go through the cache as HDF5 binary16 and come back bit for bit. */
    test_tmpdir_make("test_world");
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "prompt: a purple capsule\n" TEST_GRID
             "unconditional: all_buckets\nstorage: float16\ncache_dir: %s\n", test_tmpdir());
    test_instance a, b;
    test_create_ok(&a, yaml, 1);
    test_create_ok(&b, yaml, 1);
    ck_assert_int_eq(b.state->banks_loaded, 1);
    ck_assert_int_eq(a.state->bank.storage, WORLD_STORE_F16);
    const size_t K = a.state->bank.n_views, D = a.state->bank.dim;
    ck_assert_mem_eq(a.state->bank.x, b.state->bank.x, K * D * 2);
    ck_assert_mem_eq(a.state->bank.normal, b.state->bank.normal, K * D * 2);
    test_destroy(&a);
    test_destroy(&b);
    test_tmpdir_remove();
}
END_TEST

/* ------------------------------------------------------------------ subsample, errors */

START_TEST(test_subsample)
{
    const char *base = "prompt: a red sphere on a blue box\n" TEST_GRID
                       "cache: false\nunconditional: all_scenes\nsubsample: 0.25\n";
    test_instance a, b, c;
    test_create_ok(&a, base, 11);
    test_create_ok(&b, base, 11);
    test_create_ok(&c, base, 12);
    world_state *sa = a.state;
    /* The documented count: max(1, round(f n)) of each scene's n views. */
    const size_t n = sa->n_prompt_views;
    ck_assert_uint_eq(n, 24);
    ck_assert_uint_eq(sa->n_prompt, (size_t)llround(0.25 * (double)n));
    ck_assert_uint_eq(sa->n_uncond, sa->n_scenes * (size_t)llround(0.25 * 24.0));
    ck_assert_uint_eq(sa->bank.n_views, sa->n_scenes * 24);
    /* Deterministic in the seed; another seed picks another subset. */
    ck_assert_uint_eq(b.state->n_uncond, sa->n_uncond);
    ck_assert_mem_eq(b.state->uncond, sa->uncond, sa->n_uncond * sizeof(size_t));
    ck_assert_int_ne(memcmp(c.state->uncond, sa->uncond, sa->n_uncond * sizeof(size_t)), 0);
    /* Ascending, within the scene, and the conditional sets only use kept views. */
    for (size_t j = 1; j < sa->n_uncond; j++)
        ck_assert_uint_lt(sa->uncond[j - 1], sa->uncond[j]);
    for (size_t j = 0; j < sa->n_prompt; j++) {
        ck_assert_uint_eq(sa->uncond[j], sa->prompt_views[j]);
        ck_assert_int_eq(sa->bank.scene[sa->prompt_views[j]], 0);
    }
    size_t in_buckets = 0;
    for (int bk = 0; bk < SL_VIEW_BUCKETS; bk++)
        if (!sa->bucket_fallback[bk])
            in_buckets += sa->n_bucket[bk];
    ck_assert_uint_le(in_buckets, sa->n_prompt);
    test_destroy(&a);
    test_destroy(&b);
    test_destroy(&c);
    /* The library scenes of the level (14 objects here) plus the prompt's own if it is not
     * one of them: "a red sphere on a blue box" is in the library. */
    const char *const *lib;
    size_t nlib = world_library_objects(&lib);
    test_create_ok(&a, "prompt: a tiny pink cone\n" TEST_GRID "cache: false\n", 1);
    ck_assert_uint_eq(a.state->n_scenes, nlib + 1);
    test_destroy(&a);
    test_create_ok(&a, "prompt: a red sphere on a blue box\n" TEST_GRID "cache: false\n", 1);
    ck_assert_uint_eq(a.state->n_scenes, nlib);
    test_destroy(&a);
}
END_TEST

START_TEST(test_errors_and_truth)
{
    sl_error err = { "" };
    test_instance in;
    /* Unknown words: the scene parser's status and message pass through. */
    sl_status st = test_create(&in, "prompt: a red spheer\ncache: false\n", 1, NULL, &err);
    ck_assert_int_eq(st, SL_ERR_SPEC);
    ck_assert_msg(strstr(err.msg, "spheer") != NULL, "message: %s", err.msg);
    test_destroy(&in);
    st = test_create(&in, "cache: false\n", 1, NULL, &err);
    ck_assert_int_eq(st, SL_ERR_SPEC);
    ck_assert_msg(strstr(err.msg, "exactly one"), "message: %s", err.msg);
    test_destroy(&in);
    st = test_create(&in, "prompt: a red sphere\nscene_file: x.yaml\ncache: false\n", 1, NULL,
                     &err);
    ck_assert_int_eq(st, SL_ERR_SPEC);
    test_destroy(&in);

    /* A scene file relative to the spec's directory; a room gets inside-out views. */
    test_tmpdir_make("test_world");
    char path[600];
    snprintf(path, sizeof path, "%s/room.yaml", test_tmpdir());
    const unsigned char room[] = "room: true\nprimitives:\n  - shape: room\n    size: [2, 2, 1.5]\n"
                                 "  - shape: sphere\n    color: red\n    position: [1, 0, -1]\n"
                                 "    size: [0.4, 0, 0]\n";
    write_all(path, room, sizeof room - 1);
    st = test_create(&in, "scene_file: room.yaml\nresolution: 16\nazimuths: 4\n"
                     "elevations: [0, 70]\ncache: false\n", 1, test_tmpdir(), &err);
    ck_assert_msg(st == SL_OK, "scene file: %s", err.msg);
    world_state *s = in.state;
    ck_assert_int_eq(s->scenes[0].is_room, 1);
    ck_assert_uint_eq(s->n_prompt_views, 8);   /* rooms: azimuths x elevations */
    ck_assert_double_eq_tol(s->bank.cams[0].distance, 0.0, 1e-6);

    /* reference(): the exact render at any camera and size; reference_geometry() too. */
    sl_camera cam;
    sl_camera_inside_out(30.0f, 5.0f, NULL, 60.0f, 24, 20, &cam);
    const size_t n = 24 * 20;
    float *rgb = malloc(n * 3 * 4), *rgb2 = malloc(n * 3 * 4), *dep = malloc(n * 4);
    float *dep2 = malloc(n * 4), *nor = malloc(n * 12), *nor2 = malloc(n * 12);
    float *msk = malloc(n * 4), *msk2 = malloc(n * 4);
    ck_assert_int_eq(world_reference(s, &cam, rgb, &err), SL_OK);
    ck_assert_int_eq(world_reference_geometry(s, &cam, dep, nor, msk, &err), SL_OK);
    world_view view = { .rgb = rgb2, .depth = dep2, .normal = nor2, .mask = msk2 };
    world_render(&s->scenes[0], &s->shading, &cam, &view);
    ck_assert_mem_eq(rgb, rgb2, n * 12);
    ck_assert_mem_eq(dep, dep2, n * 4);
    ck_assert_mem_eq(nor, nor2, n * 12);
    ck_assert_mem_eq(msk, msk2, n * 4);
    ck_assert_int_eq(world_reference_geometry(s, &cam, NULL, NULL, msk, &err), SL_OK);
    sl_camera bad = cam;
    bad.width = 0;
    ck_assert_int_eq(world_reference(s, &bad, rgb, &err), SL_ERR_INVALID_ARG);
    free(rgb), free(rgb2), free(dep), free(dep2), free(nor), free(nor2), free(msk), free(msk2);
    test_destroy(&in);
    test_tmpdir_remove();
}
END_TEST

/* ------------------------------------------------------------------ entropy series */

START_TEST(test_entropy_series)
{
    test_instance in;
    test_create_ok(&in, "prompt: a red sphere on a blue box\n" TEST_GRID
                   "cache: false\nprior_bandwidth: 0.6\nunconditional: all_buckets\n"
                   "conditioning: none\n", 1);
    world_state *s = in.state;
    const size_t D = s->bank.dim;
    enum { B = 2 };
    int t[B] = { 150, 1000 };
    sl_camera cams[B];
    sl_camera_orbit(0.0f, 0.0f, 1.8f, NULL, 50.0f, 16, 16, &cams[0]);
    cams[1] = cams[0];
    float *x_t = malloc(B * D * 4), *eps = malloc(B * D * 4);
    double *x = malloc(D * 8), *r = malloc(s->n_prompt * 8), h[3], rmax[3];
    int tt[3] = { 150, 1000, 120 };
    for (int i = 0; i < 3; i++) {
        test_make_xt(&s->bank, s->prompt_views[i], s->prompt_views[i + 5], tt[i],
                     (uint32_t)(300 + i), i < 2 ? x_t + i * D : x_t);
        const float *xi = i < 2 ? x_t + i * D : x_t;
        for (size_t e = 0; e < D; e++)
            x[e] = xi[e];
        const double alpha = sl_diffusion_alpha(&test_diffusion, tt[i]);
        const double sigma = sl_diffusion_sigma(&test_diffusion, tt[i]);
        test_logp(&s->bank, s->prompt_views, NULL, s->n_prompt, x, alpha,
                  alpha * alpha * 0.36 + sigma * sigma, r);
        h[i] = test_entropy(r, s->n_prompt);
        rmax[i] = 0;
        for (size_t j = 0; j < s->n_prompt; j++)
            rmax[i] = fmax(rmax[i], r[j]);
        if (i == 1) {   /* the first call: a batch of two (t 150 and 1000) at step 4 */
            test_make_xt(&s->bank, s->prompt_views[0], s->prompt_views[5], tt[0], 300, x_t);
            sl_prior_query q = { .batch = B, .x_t = x_t, .t = t, .cams = cams, .step = 4 };
            sl_error err;
            test_host_clear(&in.host);
            ck_assert_int_eq(world_noise_pred(s, &q, eps, &err), SL_OK);
        }
    }
    double val;
    ck_assert(test_host_recorded(&in.host, "world_entropy_t1", &val));
    ck_assert_double_eq_tol(val, h[0], 1e-9);
    ck_assert(test_host_recorded(&in.host, "world_entropy_t9", &val));   /* t = 1000 joins bin 9 */
    ck_assert_double_eq_tol(val, h[1], 1e-9);
    ck_assert(test_host_recorded(&in.host, "world_entropy", &val));
    ck_assert_double_eq_tol(val, 0.5 * (h[0] + h[1]), 1e-9);
    ck_assert(test_host_recorded(&in.host, "world_rmax", &val));
    ck_assert_double_eq_tol(val, 0.5 * (rmax[0] + rmax[1]), 1e-9);
    ck_assert(!test_host_recorded(&in.host, "world_entropy_t5", &val));
    /* A second call in the same step (t = 120): bin 1 becomes the mean of its two draws. */
    int t3[1] = { 120 };
    sl_prior_query q = { .batch = 1, .x_t = x_t, .t = t3, .cams = cams, .step = 4 };
    sl_error err;
    ck_assert_int_eq(world_noise_pred(s, &q, eps, &err), SL_OK);
    ck_assert(test_host_recorded(&in.host, "world_entropy_t1", &val));
    ck_assert_double_eq_tol(val, 0.5 * (h[0] + h[2]), 1e-9);
    ck_assert(test_host_recorded(&in.host, "world_entropy", &val));
    ck_assert_double_eq_tol(val, (h[0] + h[1] + h[2]) / 3.0, 1e-9);
    /* A new step starts afresh. */
    q.step = 5;
    ck_assert_int_eq(world_noise_pred(s, &q, eps, &err), SL_OK);
    ck_assert(test_host_recorded(&in.host, "world_entropy_t1", &val));
    ck_assert_double_eq_tol(val, h[2], 1e-9);
    fprintf(stderr, "entropy series: H %.3f (t 150), %.3f (t 1000), %.3f (t 120)\n", h[0], h[1],
            h[2]);
    free(x_t), free(eps), free(x), free(r);
    test_destroy(&in);
}
END_TEST

/* ------------------------------------------------------------------ main */

int main(void)
{
    sl_diffusion_default(&test_diffusion);
    /* Keep the developer's cache out of the tests that use the default directory. */
    Suite *s = suite_create("world_prior");
    TCase *tc_num = tcase_create("numerics");
    tcase_set_timeout(tc_num, 600);
    tcase_add_test(tc_num, test_half_conversion);
    tcase_add_test(tc_num, test_float16_bank_effect);
    tcase_add_test(tc_num, test_score_fd_bucket);
    tcase_add_test(tc_num, test_score_fd_all_scenes);
    tcase_add_test(tc_num, test_score_fd_kernel);
    tcase_add_test(tc_num, test_guidance_exact_and_threads);
    tcase_add_test(tc_num, test_geometry_vjp_unconditional);
    tcase_add_test(tc_num, test_geometry_vjp_conditional);
    tcase_add_test(tc_num, test_entropy_series);
    suite_add_tcase(s, tc_num);
    TCase *tc_bank = tcase_create("bank");
    tcase_set_timeout(tc_bank, 600);
    tcase_add_test(tc_bank, test_cache);
    tcase_add_test(tc_bank, test_cache_float16);
    tcase_add_test(tc_bank, test_subsample);
    tcase_add_test(tc_bank, test_errors_and_truth);
    suite_add_tcase(s, tc_bank);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
