/* tests/test_plugins_2d.c — the first plugins: image2d, the image prior, sds, constant.
 *
 * The plugin sources are compiled into this test directly, so their internals need no
 * export and no plugin loader is involved. Every plugin file defines the same entry symbol
 * (steinlab_plugin_entry, through SL_PLUGIN_ENTRY), so each #include below renames it with
 * a macro first: the macro is expanded when SL_PLUGIN_ENTRY's body is rescanned, giving one
 * distinct function per plugin in this translation unit. The plugins' own statics carry
 * the plugin's name as a prefix, so they do not collide either. The test then calls each
 * plugin through its descriptor, exactly as the host does.
 *
 * Checks:
 *  - image2d: backward against central finite differences (3 levels, a non-square render
 *    of another size, batch 2, random upstream gradient), accumulation, and that an EVAL
 *    render in between does not disturb what backward uses;
 *  - image prior: eps_hat = -sigma_t grad log p_t by finite differences where r is spread
 *    (entropy floor asserted), the CFG combination -sigma_t grad[(1-s) log p_u + s log p_y],
 *    s = 1 and s = 0 bit for bit, errors (unknown prompt, missing file, corrupt file);
 *  - sds: Delta == eps_hat - eps exactly; constant: phi = 1, grad 0;
 *  - the driver's step loop in miniature on the quickstart's smiley: PSNR gain >= 10 dB. */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader.h"
#include "spec.h"
#include "support/test_host.h"
#include "support/tmpdir.h"
#include "steinlab/steinlab.h"

#define steinlab_plugin_entry test_entry_image2d
#include "../plugins/representations/image2d.c"
#undef steinlab_plugin_entry
#define steinlab_plugin_entry test_entry_image_prior
#include "../plugins/priors/image.c"
#undef steinlab_plugin_entry
#define steinlab_plugin_entry test_entry_sds
#include "../plugins/estimators/sds.c"
#undef steinlab_plugin_entry
#define steinlab_plugin_entry test_entry_constant
#include "../plugins/baselines/constant.c"
#undef steinlab_plugin_entry

/* ------------------------------------------------------------------ instances */

/* A live plugin instance: its host, parameters and state. */
typedef struct test_instance {
    test_host host;
    sl_params *params;
    const sl_plugin *plugin;
    void *state;
} test_instance;

/* Creates an instance; returns create's status (err holds the message). */
static sl_status test_create(test_instance *in, const sl_plugin *p, const char *yaml,
                             const char *spec_dir, sl_error *err)
{
    memset(in, 0, sizeof *in);
    in->plugin = p;
    test_host_init(&in->host, p->name, 0, SL_STREAM_PLUGIN_BASE);
    /* Relative paths of the specs are relative to the source tree by default
     * ($STEINLAB_SOURCE_ROOT, or ".." when the test runs from a build directory in it). */
    const char *root = getenv("STEINLAB_SOURCE_ROOT");
    snprintf(in->host.spec_dir, sizeof in->host.spec_dir, "%s",
             spec_dir ? spec_dir : root && *root ? root : "..");
    sl_status st = test_host_try_params(p, yaml, &in->params, err);
    ck_assert_msg(st == SL_OK, "parameters of %s: %s", p->name, err->msg);
    return sl_plugin_common_fns(p).create(&in->host.h, in->params, &in->state, err);
}

static void test_create_ok(test_instance *in, const sl_plugin *p, const char *yaml,
                           const char *spec_dir)
{
    sl_error err = { "" };
    sl_status st = test_create(in, p, yaml, spec_dir, &err);
    ck_assert_msg(st == SL_OK, "create %s: %s (%s)", p->name, err.msg, sl_status_name(st));
}

static void test_destroy(test_instance *in)
{
    if (in->state) {
        switch (in->plugin->kind) {
        case SL_KIND_REPRESENTATION:
            ((const sl_representation_vtable *)in->plugin->vtable)->destroy(in->state);
            break;
        case SL_KIND_PRIOR:
            ((const sl_prior_vtable *)in->plugin->vtable)->destroy(in->state);
            break;
        case SL_KIND_ESTIMATOR:
            ((const sl_estimator_vtable *)in->plugin->vtable)->destroy(in->state);
            break;
        case SL_KIND_BASELINE:
            ((const sl_baseline_vtable *)in->plugin->vtable)->destroy(in->state);
            break;
        }
    }
    sl_params_free(in->params);
    memset(in, 0, sizeof *in);
}

/* Standard normal / uniform test data from the core's RNG on a stream of our own. */
static void test_normal(uint32_t sample, size_t n, float *out)   /* out: (n,) */
{
    sl_rng_key k = { .seed = 1234, .step = 0, .stream = 0x7e57, .sample = sample };
    sl_rng_normal(k, 0, n, out);
}

static void test_uniform(uint32_t sample, size_t n, float *out)   /* out: (n,) */
{
    sl_rng_key k = { .seed = 1234, .step = 0, .stream = 0x7e57, .sample = sample };
    sl_rng_uniform(k, 0, n, out);
}

/* A camera of the given size (image2d and the image prior ignore the pose). */
static sl_camera test_camera(int width, int height)
{
    sl_camera c;
    sl_camera_orbit(0.0f, 15.0f, 2.0f, NULL, 50.0f, width, height, &c);
    return c;
}

/* ------------------------------------------------------------------ descriptors */

START_TEST(test_descriptors)
{
    const sl_plugin *all[] = { test_entry_image2d(0), test_entry_image_prior(0),
                               test_entry_sds(0), test_entry_constant(0) };
    const char *names[] = { "image2d", "image", "sds", "constant" };
    const sl_plugin_kind kinds[] = { SL_KIND_REPRESENTATION, SL_KIND_PRIOR, SL_KIND_ESTIMATOR,
                                     SL_KIND_BASELINE };
    for (int i = 0; i < 4; i++) {
        ck_assert_ptr_nonnull(all[i]);
        ck_assert_uint_eq(all[i]->abi_version, SL_ABI_VERSION);
        ck_assert_uint_eq(all[i]->struct_size, sizeof(sl_plugin));
        ck_assert_str_eq(all[i]->name, names[i]);
        ck_assert_int_eq(all[i]->kind, kinds[i]);
        ck_assert_str_eq(all[i]->version, "1.0.0");
        ck_assert_ptr_nonnull(all[i]->summary);
        ck_assert_ptr_nonnull(all[i]->vtable);
        ck_assert_uint_ne(*(const uint32_t *)all[i]->vtable, 0);   /* vtable struct_size */
        for (size_t j = 0; j < all[i]->params.count; j++)
            ck_assert_ptr_nonnull(all[i]->params.defs[j].doc);
    }
    ck_assert_ptr_null(test_entry_image2d(1));
    ck_assert_ptr_null(test_entry_constant(1));
}
END_TEST

/* ------------------------------------------------------------------ image2d */

/* L = sum G * rgb in double, for an EVAL render of the current parameters. */
static double image2d_loss(const sl_representation_vtable *vt, void *state,
                           const sl_camera *cams, int B, int H, int W, const float *G,
                           float *rgb)   /* G, rgb: (B, H, W, 3) */
{
    sl_render out = { .batch = B, .height = H, .width = W, .rgb = rgb };
    sl_render_request req = { .cams = cams, .batch = B, .step = 0, .mode = SL_RENDER_EVAL };
    sl_error err;
    ck_assert_int_eq(vt->render(state, &req, &out, &err), SL_OK);
    double L = 0.0;
    for (size_t i = 0; i < (size_t)B * H * W * 3; i++)
        L += (double)G[i] * (double)rgb[i];
    return L;
}

START_TEST(test_image2d_backward_fd)
{
    /* Levels of 8, 4 and 2 pixels rendered at 6 x 10: the finest level is downsampled
     * vertically and upsampled horizontally, the coarse ones upsampled, so every path of
     * the resampler's adjoint is exercised. Random logits keep the sigmoid off its centre. */
    enum { B = 2, H = 6, W = 10 };
    const size_t n = (size_t)B * H * W * 3;
    test_instance in;
    test_create_ok(&in, test_entry_image2d(0),
                   "resolution: 8\nlevels: 3\ninit: random\ninit_std: 0.7\n", NULL);
    const sl_representation_vtable *vt = in.plugin->vtable;
    ck_assert_uint_eq(vt->outputs(in.state) & SL_RENDER_RGB, SL_RENDER_RGB);
    sl_param_group groups[8];
    size_t ng = vt->param_groups(in.state, groups, 8);
    ck_assert_uint_eq(ng, 3);
    ck_assert_str_eq(groups[0].name, "level0");
    ck_assert_str_eq(groups[2].name, "level2");
    ck_assert_uint_eq(groups[0].n, 8 * 8 * 3);
    ck_assert_uint_eq(groups[2].n, 2 * 2 * 3);

    sl_camera cams[B] = { test_camera(W, H), test_camera(W, H) };
    float *G = malloc(n * sizeof *G);     /* (B, H, W, 3) dL/drgb */
    float *rgb = malloc(n * sizeof *rgb); /* (B, H, W, 3) */
    test_normal(1, n, G);

    /* TRAIN render, then an EVAL render at another size (which regrows the scratch), then
     * backward: the gradient must be that of the TRAIN render. */
    sl_render out = { .batch = B, .height = H, .width = W, .rgb = rgb };
    sl_render_request req = { .cams = cams, .batch = B, .step = 0, .mode = SL_RENDER_TRAIN };
    sl_error err;
    ck_assert_int_eq(vt->render(in.state, &req, &out, &err), SL_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert(rgb[i] > 0.0f && rgb[i] < 1.0f);
    ck_assert_mem_eq(rgb, rgb + n / 2, n / 2 * sizeof *rgb);   /* pose ignored */
    {
        float big[17 * 19 * 3];
        sl_camera c = test_camera(19, 17);
        sl_render o2 = { .batch = 1, .height = 17, .width = 19, .rgb = big };
        sl_render_request r2 = { .cams = &c, .batch = 1, .mode = SL_RENDER_EVAL };
        ck_assert_int_eq(vt->render(in.state, &r2, &o2, &err), SL_OK);
    }
    sl_render grad = { .batch = B, .height = H, .width = W, .rgb = G };
    ck_assert_int_eq(vt->backward(in.state, &grad, &err), SL_OK);

    /* Every parameter (8*8*3 + 4*4*3 + 2*2*3 = 252 of them) by central differences.
     * Float model, double check: h = 1e-2 on logits of size ~1 keeps the truncation error
     * (h^2/6 f''') near 1e-5 and the float rounding of L (~6e-8 |L| / h, |L| ~ 10) below
     * 1e-4; the largest error seen is ~3e-5. */
    const double h = 1e-2, atol = 2e-4, rtol = 2e-3;
    for (size_t g = 0; g < ng; g++) {
        double norm2 = 0.0, max_err = 0.0;
        for (size_t i = 0; i < groups[g].n; i++) {
            float keep = groups[g].data[i];
            groups[g].data[i] = keep + (float)h;
            double Lp = image2d_loss(vt, in.state, cams, B, H, W, G, rgb);
            groups[g].data[i] = keep - (float)h;
            double Lm = image2d_loss(vt, in.state, cams, B, H, W, G, rgb);
            groups[g].data[i] = keep;
            /* The actual step in float, not the nominal h. */
            double step = (double)(keep + (float)h) - (double)(keep - (float)h);
            double fd = (Lp - Lm) / step;
            double an = groups[g].grad[i];
            double e = fabs(fd - an);
            ck_assert_msg(e <= atol + rtol * fabs(fd),
                          "%s[%zu]: analytic %.6g, finite difference %.6g", groups[g].name, i,
                          an, fd);
            norm2 += an * an;
            if (e > max_err)
                max_err = e;
        }
        /* Not vacuous: the gradient of each level is far above the tolerance. */
        ck_assert_msg(sqrt(norm2) > 100 * atol, "%s: gradient norm %.3g too small",
                      groups[g].name, sqrt(norm2));
        fprintf(stderr, "image2d %s: |grad| %.4f, max |fd - analytic| %.2e\n", groups[g].name,
                sqrt(norm2), max_err);
    }

    /* Backward accumulates: a second call doubles every gradient. The FD renders above
     * were EVAL renders, so the saved state still belongs to the TRAIN render. */
    float *first = malloc(groups[0].n * sizeof *first);
    memcpy(first, groups[0].grad, groups[0].n * sizeof *first);
    ck_assert_int_eq(vt->backward(in.state, &grad, &err), SL_OK);
    for (size_t i = 0; i < groups[0].n; i++)
        ck_assert_float_eq_tol(groups[0].grad[i], 2.0f * first[i], 1e-6f);

    /* A gradient of another shape than the TRAIN render is refused. */
    sl_render wrong = { .batch = 1, .height = H, .width = W, .rgb = G };
    ck_assert_int_eq(vt->backward(in.state, &wrong, &err), SL_ERR_INVALID_ARG);

    free(first);
    free(G);
    free(rgb);
    test_destroy(&in);
}
END_TEST

START_TEST(test_image2d_init_and_errors)
{
    sl_error err;
    test_instance in;
    /* zeros: a grey image; every level's group is zero. */
    test_create_ok(&in, test_entry_image2d(0), "resolution: 4\nlevels: 3\n", NULL);
    const sl_representation_vtable *vt = in.plugin->vtable;
    float rgb[5 * 5 * 3];
    sl_camera c = test_camera(5, 5);
    sl_render out = { .batch = 1, .height = 5, .width = 5, .rgb = rgb };
    sl_render_request req = { .cams = &c, .batch = 1, .mode = SL_RENDER_TRAIN };
    ck_assert_int_eq(vt->render(in.state, &req, &out, &err), SL_OK);
    for (int i = 0; i < 75; i++)
        ck_assert_float_eq(rgb[i], 0.5f);
    /* Depth is not something image2d renders. */
    float depth[25];
    out.depth = depth;
    ck_assert_int_eq(vt->render(in.state, &req, &out, &err), SL_ERR_UNSUPPORTED);
    test_destroy(&in);

    /* Backward before any TRAIN render is an error, not a crash. */
    test_create_ok(&in, test_entry_image2d(0), "resolution: 4\n", NULL);
    vt = in.plugin->vtable;
    float g[75] = { 0 };
    sl_render grad = { .batch = 1, .height = 5, .width = 5, .rgb = g };
    ck_assert_int_eq(vt->backward(in.state, &grad, &err), SL_ERR_INVALID_ARG);
    test_destroy(&in);

    /* Random init is reproducible and has about the requested spread. */
    test_create_ok(&in, test_entry_image2d(0), "resolution: 32\ninit: random\ninit_std: 0.1\n",
                   NULL);
    vt = in.plugin->vtable;
    sl_param_group gr;
    ck_assert_uint_eq(vt->param_groups(in.state, &gr, 1), 1);
    double s2 = 0.0;
    for (size_t i = 0; i < gr.n; i++)
        s2 += (double)gr.data[i] * gr.data[i];
    ck_assert_double_eq_tol(sqrt(s2 / (double)gr.n), 0.1, 0.01);
    test_destroy(&in);

    /* Too many levels for the resolution. */
    sl_status st = test_create(&in, test_entry_image2d(0), "resolution: 4\nlevels: 4\n", NULL,
                               &err);
    ck_assert_int_eq(st, SL_ERR_SPEC);
    ck_assert_ptr_nonnull(strstr(err.msg, "levels"));
    test_destroy(&in);
}
END_TEST

/* ------------------------------------------------------------------ image prior */

/* Writes a 4 x 4 PNG with values from the test RNG (sample `which`), kept in [0.2, 0.8]. */
static void write_test_png(const char *name, uint32_t which)
{
    const char *path = test_tmp_path(name);
    float u[4 * 4 * 3];
    uint8_t px[4 * 4 * 3];
    test_uniform(100 + which, 48, u);
    for (int i = 0; i < 48; i++)
        px[i] = (uint8_t)lrintf(255.0f * (0.2f + 0.6f * u[i]));
    sl_error err;
    ck_assert_msg(sl_png_write_rgb8(path, px, 4, 4, &err) == SL_OK, "%s", err.msg);
}

/* The image prior's directory of four labelled PNGs. */
static void make_tmpdir(void)
{
    test_tmpdir_make("steinlab-plugins-2d");
    write_test_png("a.png", 0);
    write_test_png("b.png", 1);
    write_test_png("c.png", 2);
    write_test_png("d.png", 3);
}

/* x^(k) = 2 rgb - 1 of a test image, as the prior must see it (4 x 4: no resampling). */
static void load_bank_image(const char *name, double *x)   /* x: (48,) */
{
    const char *path = test_tmp_path(name);
    float *rgb;
    int w, h;
    sl_error err;
    ck_assert_int_eq(sl_png_read_rgb(path, &rgb, &w, &h, &err), SL_OK);
    ck_assert(w == 4 && h == 4);
    for (int i = 0; i < 48; i++)
        x[i] = 2.0 * (double)rgb[i] - 1.0;
    free(rgb);
}

/* log p_t(x) up to a constant, for the images xs (n, 48): log-sum-exp of the logits.
 * r (n,) receives the responsibilities when not NULL. */
static double mixture_logp(const double *x, const double *xs, int n, double alpha, double v,
                           double *r)
{
    double logit[8], top = -INFINITY;
    for (int k = 0; k < n; k++) {
        double d2 = 0.0;
        for (int i = 0; i < 48; i++) {
            double d = x[i] - alpha * xs[k * 48 + i];
            d2 += d * d;
        }
        logit[k] = -d2 / (2.0 * v);
        if (logit[k] > top)
            top = logit[k];
    }
    double z = 0.0;
    for (int k = 0; k < n; k++)
        z += exp(logit[k] - top);
    if (r)
        for (int k = 0; k < n; k++)
            r[k] = exp(logit[k] - top) / z;
    return top + log(z);
}

static double entropy(const double *r, int n)
{
    double h = 0.0;
    for (int k = 0; k < n; k++)
        if (r[k] > 0)
            h -= r[k] * log(r[k]);
    return h;
}

/* The four test images a, b, c, d with labels cat, dog, cat, bird; prompt cat. The
 * bandwidth is large so that r stays spread at the times checked, but not 1: with s0 = 1,
 * v_t = alpha_t^2 + sigma_t^2 = 1 at every t, which would hide a wrong v_t. */
static void prior_yaml(char *buf, size_t size, const char *guidance)
{
    snprintf(buf, size,
             "images: ['%s/a.png', '%s/b.png', '%s/c.png', '%s/d.png']\n"
             "labels: [cat, dog, cat, bird]\nprompt: cat\nresolution: 4\nbandwidth: 0.8\n"
             "guidance_scale: %s\n",
             test_tmpdir(), test_tmpdir(), test_tmpdir(), test_tmpdir(), guidance);
}

START_TEST(test_image_prior_score_fd)
{
    make_tmpdir();
    double bank[4 * 48], cond[2 * 48];
    load_bank_image("a.png", bank);
    load_bank_image("b.png", bank + 48);
    load_bank_image("c.png", bank + 96);
    load_bank_image("d.png", bank + 144);
    memcpy(cond, bank, 48 * sizeof(double));            /* cat: a and c */
    memcpy(cond + 48, bank + 96, 48 * sizeof(double));

    const double scales[] = { 1.0, 7.5 };
    for (int si = 0; si < 2; si++) {
        const double s = scales[si];
        char yaml[2048], gs[32];
        snprintf(gs, sizeof gs, "%g", s);
        prior_yaml(yaml, sizeof yaml, gs);
        test_instance in;
        test_create_ok(&in, test_entry_image_prior(0), yaml, NULL);
        const sl_prior_vtable *vt = in.plugin->vtable;
        sl_prior_info info;
        vt->info(in.state, &info);
        ck_assert_int_eq(info.height, 4);
        ck_assert_int_eq(info.width, 4);
        ck_assert_int_eq(info.channels, 3);
        ck_assert_double_eq(info.guidance_scale, s);
        ck_assert_ptr_nonnull(info.diffusion);

        /* x_t = alpha (a mix of the cat images) + sigma eps, batch 2 with different t. */
        const int times[] = { 400, 550, 700, 850, 980 };
        for (size_t ti = 0; ti < sizeof times / sizeof times[0]; ti++) {
            enum { B = 2 };
            int t[B] = { times[ti], times[ti] > 500 ? times[ti] - 150 : times[ti] + 100 };
            float x_t[B * 48], noise[B * 48], eps_hat[B * 48];
            sl_camera cams[B] = { test_camera(4, 4), test_camera(4, 4) };
            test_normal(200 + (uint32_t)ti, B * 48, noise);
            for (int b = 0; b < B; b++) {
                double alpha = sl_diffusion_alpha(info.diffusion, t[b]);
                double sigma = sl_diffusion_sigma(info.diffusion, t[b]);
                for (int i = 0; i < 48; i++) {
                    double mix = 0.4 * bank[i] + 0.4 * bank[96 + i] + 0.2 * bank[48 + i];
                    x_t[b * 48 + i] = (float)(alpha * mix + sigma * noise[b * 48 + i]);
                }
            }
            sl_prior_query q = { .batch = B, .x_t = x_t, .t = t, .cams = cams, .step = 0 };
            sl_error err;
            ck_assert_int_eq(vt->noise_pred(in.state, &q, eps_hat, &err), SL_OK);

            for (int b = 0; b < B; b++) {
                double alpha = sl_diffusion_alpha(info.diffusion, t[b]);
                double sigma = sl_diffusion_sigma(info.diffusion, t[b]);
                double v = alpha * alpha * 0.64 + sigma * sigma;   /* s0 = 0.8 */
                double x[48], r_u[4], r_y[2];
                for (int i = 0; i < 48; i++)
                    x[i] = x_t[b * 48 + i];
                mixture_logp(x, bank, 4, alpha, v, r_u);
                mixture_logp(x, cond, 2, alpha, v, r_y);
                /* Not vacuous: r is spread in both sets (one-hot r would make the check a
                 * check of a linear function). Floors: ln(4) = 1.39 and ln(2) = 0.69 max. */
                ck_assert_msg(entropy(r_u, 4) > 0.5 && entropy(r_y, 2) > 0.2,
                              "t %d: entropies %.3f %.3f too low", t[b], entropy(r_u, 4),
                              entropy(r_y, 2));
                /* Central differences of (1 - s) log p_u + s log p_y in double: with
                 * v_t >= 0.64 the truncation error is ~1e-9, so what remains is the float
                 * rounding of eps_hat (~6e-8 |eps_hat|); the largest error seen is ~1e-7. */
                const double hstep = 1e-4, atol = 1e-6, rtol = 1e-5;
                double max_err = 0.0;
                for (int i = 0; i < 48; i++) {
                    double keep = x[i];
                    x[i] = keep + hstep;
                    double fp = (1 - s) * mixture_logp(x, bank, 4, alpha, v, NULL) +
                                s * mixture_logp(x, cond, 2, alpha, v, NULL);
                    x[i] = keep - hstep;
                    double fm = (1 - s) * mixture_logp(x, bank, 4, alpha, v, NULL) +
                                s * mixture_logp(x, cond, 2, alpha, v, NULL);
                    x[i] = keep;
                    double expect = -sigma * (fp - fm) / (2 * hstep);
                    double got = eps_hat[b * 48 + i];
                    ck_assert_msg(fabs(got - expect) <= atol + rtol * fabs(expect),
                                  "s %g t %d [%d]: eps_hat %.8g, -sigma grad log p %.8g", s,
                                  t[b], i, got, expect);
                    if (fabs(got - expect) > max_err)
                        max_err = fabs(got - expect);
                }
                if (b == 0)
                    fprintf(stderr,
                            "image prior s %.1f t %3d: H(r_u) %.3f H(r_y) %.3f, max err %.2e\n",
                            s, t[b], entropy(r_u, 4), entropy(r_y, 2), max_err);
            }
        }
        test_destroy(&in);
    }
    test_tmpdir_remove();
}
END_TEST

/* s = 1 is the conditional prediction and s = 0 the unconditional one, bit for bit: equal
 * to priors whose whole bank is that set (where conditional and unconditional agree). */
START_TEST(test_image_prior_guidance_exact)
{
    make_tmpdir();
    char yaml[2048];
    const char *d = test_tmpdir();
    enum { B = 3, D = 48 };
    float x_t[B * D], e_full[B * D], e_ref[B * D];
    int t[B] = { 100, 600, 950 };
    sl_camera cams[B] = { test_camera(4, 4), test_camera(4, 4), test_camera(4, 4) };
    test_normal(300, B * D, x_t);
    sl_prior_query q = { .batch = B, .x_t = x_t, .t = t, .cams = cams, .step = 0 };
    sl_error err;

    for (int which = 0; which < 2; which++) {
        test_instance full, ref;
        prior_yaml(yaml, sizeof yaml, which == 0 ? "1" : "0");
        test_create_ok(&full, test_entry_image_prior(0), yaml, NULL);
        if (which == 0)   /* the cat set alone */
            snprintf(yaml, sizeof yaml,
                     "images: ['%s/a.png', '%s/c.png']\nlabels: [cat, cat]\nprompt: cat\n"
                     "resolution: 4\nbandwidth: 0.8\nguidance_scale: 1\n", d, d);
        else              /* every image, all labelled cat */
            snprintf(yaml, sizeof yaml,
                     "images: ['%s/a.png', '%s/b.png', '%s/c.png', '%s/d.png']\n"
                     "labels: [cat, cat, cat, cat]\nprompt: cat\nresolution: 4\n"
                     "bandwidth: 0.8\nguidance_scale: 1\n", d, d, d, d);
        test_create_ok(&ref, test_entry_image_prior(0), yaml, NULL);
        const sl_prior_vtable *vt = full.plugin->vtable;
        ck_assert_int_eq(vt->noise_pred(full.state, &q, e_full, &err), SL_OK);
        ck_assert_int_eq(vt->noise_pred(ref.state, &q, e_ref, &err), SL_OK);
        ck_assert_mem_eq(e_full, e_ref, sizeof e_full);
        test_destroy(&full);
        test_destroy(&ref);
    }

    /* A scheduled guidance scale is read at the query's step. */
    snprintf(yaml, sizeof yaml,
             "images: ['%s/a.png', '%s/b.png']\nlabels: [cat, dog]\nprompt: cat\n"
             "resolution: 4\nguidance_scale: [0, 7.5, 1, 100]\n", d, d);
    test_instance sched, one;
    test_create_ok(&sched, test_entry_image_prior(0), yaml, NULL);
    snprintf(yaml, sizeof yaml,
             "images: ['%s/a.png', '%s/b.png']\nlabels: [cat, dog]\nprompt: cat\n"
             "resolution: 4\nguidance_scale: 1\n", d, d);
    test_create_ok(&one, test_entry_image_prior(0), yaml, NULL);
    const sl_prior_vtable *vt = sched.plugin->vtable;
    sl_prior_info info;
    vt->info(sched.state, &info);
    ck_assert_double_eq(info.guidance_scale, 7.5);
    q.step = 200;
    ck_assert_int_eq(vt->noise_pred(sched.state, &q, e_full, &err), SL_OK);
    ck_assert_int_eq(vt->noise_pred(one.state, &q, e_ref, &err), SL_OK);
    ck_assert_mem_eq(e_full, e_ref, sizeof e_full);

    /* reference(): the first cat image (a), resampled to the camera, in [0, 1]. */
    float ref4[48], ref8[8 * 8 * 3];
    double a[48];
    load_bank_image("a.png", a);
    sl_camera c4 = test_camera(4, 4), c8 = test_camera(8, 8);
    ck_assert_int_eq(vt->reference(sched.state, &c4, ref4, &err), SL_OK);
    for (int i = 0; i < 48; i++)
        ck_assert_double_eq_tol(ref4[i], 0.5 * (a[i] + 1.0), 1e-6);
    ck_assert_int_eq(vt->reference(sched.state, &c8, ref8, &err), SL_OK);
    for (int i = 0; i < 8 * 8 * 3; i++)
        ck_assert(ref8[i] >= 0.2f - 1e-6f && ref8[i] <= 0.8f + 1e-6f);
    test_destroy(&sched);
    test_destroy(&one);
    test_tmpdir_remove();
}
END_TEST

START_TEST(test_image_prior_errors)
{
    make_tmpdir();
    const char *d = test_tmpdir();
    char yaml[2048];
    sl_error err = { "" };
    test_instance in;

    /* Unknown prompt: the message lists the labels (defaults: the file stems) and suggests
     * the nearest. */
    snprintf(yaml, sizeof yaml,
             "images: ['%s/a.png', '%s/b.png']\nlabels: [smiley, checker]\nprompt: smiely\n",
             d, d);
    sl_status st = test_create(&in, test_entry_image_prior(0), yaml, NULL, &err);
    ck_assert_int_eq(st, SL_ERR_SPEC);
    ck_assert_msg(strstr(err.msg, "'smiely'") && strstr(err.msg, "'smiley'") &&
                      strstr(err.msg, "'checker'") && strstr(err.msg, "did you mean 'smiley'"),
                  "message: %s", err.msg);
    test_destroy(&in);
    snprintf(yaml, sizeof yaml, "images: ['%s/a.png', '%s/b.png']\nprompt: zebra\n", d, d);
    st = test_create(&in, test_entry_image_prior(0), yaml, NULL, &err);
    ck_assert_int_eq(st, SL_ERR_SPEC);
    ck_assert_msg(strstr(err.msg, "'a'") && strstr(err.msg, "'b'") &&
                      !strstr(err.msg, "did you mean"), "message: %s", err.msg);
    test_destroy(&in);

    /* One label per image. */
    snprintf(yaml, sizeof yaml, "images: ['%s/a.png', '%s/b.png']\nlabels: [a]\nprompt: a\n",
             d, d);
    st = test_create(&in, test_entry_image_prior(0), yaml, NULL, &err);
    ck_assert_int_eq(st, SL_ERR_SPEC);
    test_destroy(&in);

    /* A missing file: the reader's status, and the message names the file. A relative
     * path is resolved against the spec's directory. */
    char missing[512];
    snprintf(missing, sizeof missing, "%s/nothing.png", d);
    float *px = NULL;
    int w, h;
    sl_error direct;
    sl_status expect = sl_png_read_rgb(missing, &px, &w, &h, &direct);
    ck_assert_int_ne(expect, SL_OK);
    free(px);
    snprintf(yaml, sizeof yaml, "images: [a.png, nothing.png]\nprompt: a\n");
    st = test_create(&in, test_entry_image_prior(0), yaml, d, &err);
    ck_assert_int_eq(st, expect);
    ck_assert_msg(strstr(err.msg, missing), "message: %s", err.msg);
    test_destroy(&in);

    /* A corrupt file (a PNG signature followed by garbage). */
    char broken[512];
    snprintf(broken, sizeof broken, "%s/broken.png", d);
    FILE *f = fopen(broken, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR garbage garbage", 1, 30, f);
    fclose(f);
    px = NULL;
    expect = sl_png_read_rgb(broken, &px, &w, &h, &direct);
    ck_assert_int_ne(expect, SL_OK);
    free(px);
    snprintf(yaml, sizeof yaml, "images: [a.png, broken.png]\nprompt: broken\n");
    st = test_create(&in, test_entry_image_prior(0), yaml, d, &err);
    ck_assert_int_eq(st, expect);
    ck_assert_msg(strstr(err.msg, broken), "message: %s", err.msg);
    test_destroy(&in);
    test_tmpdir_remove();
}
END_TEST

/* ------------------------------------------------------------------ sds and constant */

START_TEST(test_sds_delta_exact)
{
    enum { B = 2, H = 5, W = 7, C = 3, N = B * H * W * C };
    float eps[N], eps_hat[N], delta[N];
    test_normal(400, N, eps);
    test_normal(401, N, eps_hat);
    test_instance in;
    test_create_ok(&in, test_entry_sds(0), "{}", NULL);
    const sl_estimator_vtable *vt = in.plugin->vtable;
    sl_estimator_ctx ctx = { .batch = B, .height = H, .width = W, .channels = C,
                             .eps = eps, .eps_hat = eps_hat };
    sl_error err;
    ck_assert_int_eq(vt->delta(in.state, &ctx, delta, &err), SL_OK);
    for (int i = 0; i < N; i++) {
        float want = eps_hat[i] - eps[i];
        ck_assert_mem_eq(&delta[i], &want, sizeof want);
    }
    test_destroy(&in);

    /* An unknown key in the estimator's own section is an error (it has no parameters). */
    sl_params *p = NULL;
    ck_assert_int_eq(test_host_try_params(test_entry_sds(0), "mu: 1\n", &p, &err), SL_ERR_SPEC);
    sl_params_free(p);
}
END_TEST

START_TEST(test_constant_baseline)
{
    enum { B = 3, H = 4, W = 2, C = 3, N = B * H * W * C };
    float grad[N], phi[B];
    for (int i = 0; i < N; i++)
        grad[i] = 7.0f;   /* must be overwritten */
    test_instance in;
    test_create_ok(&in, test_entry_constant(0), "{}", NULL);
    const sl_baseline_vtable *vt = in.plugin->vtable;
    sl_estimator_ctx ctx = { .batch = B, .height = H, .width = W, .channels = C };
    sl_error err;
    ck_assert_int_eq(vt->eval(in.state, &ctx, phi, grad, &err), SL_OK);
    for (int b = 0; b < B; b++)
        ck_assert_float_eq(phi[b], 1.0f);
    for (int i = 0; i < N; i++)
        ck_assert_float_eq(grad[i], 0.0f);
    test_destroy(&in);
}
END_TEST

/* ------------------------------------------------------------------ a driver in miniature */

/* The quickstart-2d run (experiments/quickstart-2d.yaml) with the driver's step reduced to
 * its arithmetic: render, x0 = 2 rgb - 1, t uniform in [20, 980], eps ~ N(0, I),
 * x_t = alpha x0 + sigma eps, eps_hat, Delta (sds), w = sigma^2, dL/drgb = 2 w Delta,
 * backward, Adam. Returns the PSNR against the smiley after `steps`; *psnr0 the start. */
enum { QS_RES = 32, QS_STEPS = 300 };
static const double QS_LR = 0.05;

static double quickstart_psnr(int steps, double lr, double *psnr0)
{
    char dir[1100];
    const char *root = getenv("STEINLAB_SOURCE_ROOT");
    snprintf(dir, sizeof dir, "%s/experiments", root && *root ? root : "..");
    test_instance prior, repr, est;
    test_create_ok(&prior, test_entry_image_prior(0),
                   "images: [data/targets/smiley.png, data/targets/checker.png, "
                   "data/targets/sunset.png]\n"
                   "prompt: smiley\nresolution: 32\nbandwidth: 0.05\nguidance_scale: 7.5\n",
                   dir);
    test_create_ok(&repr, test_entry_image2d(0), "resolution: 32\nlevels: 2\n", dir);
    test_create_ok(&est, test_entry_sds(0), "{}", dir);
    const sl_prior_vtable *pv = prior.plugin->vtable;
    const sl_representation_vtable *rv = repr.plugin->vtable;
    const sl_estimator_vtable *ev = est.plugin->vtable;
    sl_prior_info info;
    pv->info(prior.state, &info);
    ck_assert_int_eq(info.width, QS_RES);

    enum { N = QS_RES * QS_RES * 3 };
    static float rgb[N], x0[N], eps[N], x_t[N], eps_hat[N], delta[N], g[N], target[N];
    sl_camera cam = test_camera(QS_RES, QS_RES);
    sl_error err;
    ck_assert_int_eq(pv->reference(prior.state, &cam, target, &err), SL_OK);

    sl_param_group groups[4];
    size_t ng = rv->param_groups(repr.state, groups, 4);
    sl_adam_config cfg[4];
    for (size_t i = 0; i < ng; i++)   /* the core's optimizer defaults, with the spec's lr */
        cfg[i] = (sl_adam_config){ .lr = sl_schedule_constant(lr), .beta1 = 0.9,
                                   .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0 };
    sl_adam *adam = NULL;
    ck_assert_int_eq(sl_adam_create(groups, cfg, ng, &adam, &err), SL_OK);

    sl_render out = { .batch = 1, .height = QS_RES, .width = QS_RES, .rgb = rgb };
    sl_render_request eval = { .cams = &cam, .batch = 1, .mode = SL_RENDER_EVAL };
    ck_assert_int_eq(rv->render(repr.state, &eval, &out, &err), SL_OK);
    *psnr0 = sl_image_psnr(rgb, target, N);

    for (int step = 0; step < steps; step++) {
        sl_render_request req = { .cams = &cam, .batch = 1, .step = step,
                                  .mode = SL_RENDER_TRAIN };
        ck_assert_int_eq(rv->render(repr.state, &req, &out, &err), SL_OK);
        for (int i = 0; i < N; i++)
            x0[i] = 2.0f * rgb[i] - 1.0f;
        sl_rng_key kt = { .seed = 0, .step = (uint32_t)step, .stream = SL_STREAM_TIMESTEP };
        sl_rng_key ke = { .seed = 0, .step = (uint32_t)step, .stream = SL_STREAM_NOISE };
        int t = (int)sl_rng_int1(kt, 0, 20, 980);
        sl_rng_normal(ke, 0, N, eps);
        double alpha = sl_diffusion_alpha(info.diffusion, t);
        double sigma = sl_diffusion_sigma(info.diffusion, t);
        for (int i = 0; i < N; i++)
            x_t[i] = (float)(alpha * x0[i] + sigma * eps[i]);
        sl_prior_query q = { .batch = 1, .x_t = x_t, .t = &t, .cams = &cam, .step = step };
        ck_assert_int_eq(pv->noise_pred(prior.state, &q, eps_hat, &err), SL_OK);
        double a1[1] = { alpha }, s1[1] = { sigma }, w1[1] = { sigma * sigma };
        sl_estimator_ctx ctx = { .batch = 1, .height = QS_RES, .width = QS_RES, .channels = 3,
                                 .step = step, .t = &t, .alpha = a1, .sigma = s1, .x0 = x0,
                                 .eps = eps, .x_t = x_t, .eps_hat = eps_hat, .cams = &cam,
                                 .render = &out, .weight = w1 };
        ck_assert_int_eq(ev->delta(est.state, &ctx, delta, &err), SL_OK);
        double w = sigma * sigma;
        for (int i = 0; i < N; i++)
            g[i] = (float)(2.0 * w * delta[i]);   /* d x0 / d rgb = 2 */
        for (size_t k = 0; k < ng; k++)
            memset(groups[k].grad, 0, groups[k].n * sizeof(float));
        sl_render grad = { .batch = 1, .height = QS_RES, .width = QS_RES, .rgb = g };
        ck_assert_int_eq(rv->backward(repr.state, &grad, &err), SL_OK);
        sl_adam_step(adam, step);
    }
    ck_assert_int_eq(rv->render(repr.state, &eval, &out, &err), SL_OK);
    double psnr = sl_image_psnr(rgb, target, N);
    sl_adam_destroy(adam);
    test_destroy(&est);
    test_destroy(&repr);
    test_destroy(&prior);
    return psnr;
}

START_TEST(test_quickstart_loop)
{
    double psnr0 = 0.0;
    double psnr = quickstart_psnr(QS_STEPS, QS_LR, &psnr0);
    fprintf(stderr, "quickstart-2d in miniature: %d steps, lr %g: PSNR %.2f dB -> %.2f dB\n",
            QS_STEPS, QS_LR, psnr0, psnr);
    ck_assert_msg(psnr - psnr0 >= 10.0, "PSNR %.2f -> %.2f dB: gain below 10 dB", psnr0, psnr);
}
END_TEST

/* ------------------------------------------------------------------ main */

int main(void)
{
    Suite *s = suite_create("plugins_2d");
    TCase *tc = tcase_create("plugins");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_descriptors);
    tcase_add_test(tc, test_image2d_backward_fd);
    tcase_add_test(tc, test_image2d_init_and_errors);
    tcase_add_test(tc, test_image_prior_score_fd);
    tcase_add_test(tc, test_image_prior_guidance_exact);
    tcase_add_test(tc, test_image_prior_errors);
    tcase_add_test(tc, test_sds_delta_exact);
    tcase_add_test(tc, test_constant_baseline);
    tcase_add_test(tc, test_quickstart_loop);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
