/* tests/test_gaussians.c — the `gaussians` representation: device math, rasterizer,
 * densification, checkpoint state.
 *
 * gs_math.h is instantiated twice here: in float (gs_*, the code the renderer runs) and in
 * double (gsd_*), so each VJP is checked against central finite differences of the
 * double-precision forward (h = 1e-6, tolerance 1e-6 relative to the gradient's norm), and
 * the float VJP against the double VJP (1e-4 relative) — the same source in both.
 *
 * Checks:
 *  - FD of quaternion->rotation, 3-D covariance, projection, EWA 2-D covariance (inside and
 *    beyond the clamp), conic, SH colour (degrees 0..3), alpha, blending;
 *  - a whole small render against FD of the float renderer (random upstream gradients on
 *    rgb, depth, normal and opacity; every parameter group; a scene where no contribution
 *    sits near the 1/255 skip, the 0.99 clamp or the transmittance stop, so the render is
 *    smooth in the parameters), tolerance 2e-2 of the gradient's norm per group;
 *  - the tiled renderer against a brute-force per-pixel reference to 1e-5;
 *  - identical bits for 1, 2 and 3 OpenMP threads (forward and backward);
 *  - (plugin) densification against hand computation, optimizer moments after a remap,
 *    pruning, save/load of the state. */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "checkpoint.h"
#include "spec.h"
#include "steinlab/steinlab.h"
#include "support/test_host.h"

/* The double instantiation of the device math. */
#define GS_T double
#define GS_(name) gsd_##name
#define GS_SQRT sqrt
#define GS_EXP exp
#define GS_LOG log
#define GS_FABS fabs
#include "../plugins/representations/gaussians/gs_math.h"

#define steinlab_plugin_entry test_entry_gaussians
#include "../plugins/representations/gaussians/gaussians.c"
#undef steinlab_plugin_entry

/* ------------------------------------------------------------------ helpers */

static double urand(uint32_t *s)   /* uniform in [0, 1), xorshift */
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return (*s >> 8) * (1.0 / 16777216.0);
}

static double srand1(uint32_t *s) { return 2.0 * urand(s) - 1.0; }

/* A scalar function of a parameter vector for FD: L(x) = sum_k w_k f(x)_k. */
typedef double (*loss_fn)(const double *x, void *ctx);

/* Compares grad (n,) with central FD of f at x; asserts |fd - grad| <= tol |grad| (2-norms)
 * and |grad| > 1e-8 (not trivially zero). */
static void check_fd(const char *what, loss_fn f, void *ctx, double *x, int n,
                     const double *grad, double h, double tol)
{
    double en = 0, gn = 0;
    for (int i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double lp = f(x, ctx);
        x[i] = x0 - h;
        double lm = f(x, ctx);
        x[i] = x0;
        double fd = (lp - lm) / (2 * h);
        en += (fd - grad[i]) * (fd - grad[i]);
        gn += grad[i] * grad[i];
    }
    en = sqrt(en);
    gn = sqrt(gn);
    ck_assert_msg(gn > 1e-8, "%s: gradient is trivially zero", what);
    ck_assert_msg(en <= tol * gn, "%s: |fd - grad| = %g > %g * |grad| = %g", what, en, tol, gn);
}

/* Relative agreement of a float vector with a double one. */
static void check_close_f(const char *what, const float *a, const double *b, int n, double tol)
{
    double en = 0, bn = 0;
    for (int i = 0; i < n; i++) {
        en += (a[i] - b[i]) * (a[i] - b[i]);
        bn += b[i] * b[i];
    }
    ck_assert_msg(sqrt(en) <= tol * sqrt(bn) + 1e-12, "%s: float vs double %g (norm %g)", what,
                  sqrt(en), sqrt(bn));
}

static void to_f(const double *d, float *f, int n) { for (int i = 0; i < n; i++) f[i] = (float)d[i]; }

/* ------------------------------------------------------------------ math: FD */

typedef struct wctx {
    const double *w;    /* output weights */
    double aux[64];     /* fixed inputs */
    int deg;
} wctx;

static double L_rot(const double *q, void *c)
{
    const wctx *x = c;
    double R[9], L = 0;
    gsd_quat_to_rot(q, R);
    for (int i = 0; i < 9; i++)
        L += x->w[i] * R[i];
    return L;
}

START_TEST(test_fd_quat_to_rot)
{
    uint32_t s = 11;
    double q[4], w[9], dq[4];
    for (int i = 0; i < 4; i++) q[i] = srand1(&s) * 2;
    for (int i = 0; i < 9; i++) w[i] = srand1(&s);
    wctx c = { .w = w };
    gsd_quat_to_rot_vjp(q, w, dq);
    check_fd("quat_to_rot", L_rot, &c, q, 4, dq, 1e-6, 1e-6);
    float qf[4], wf[9], dqf[4];
    to_f(q, qf, 4); to_f(w, wf, 9);
    gs_quat_to_rot_vjp(qf, wf, dqf);
    check_close_f("quat_to_rot_vjp", dqf, dq, 4, 1e-4);
}
END_TEST

/* x = (log_scale 3, q 4) */
static double L_cov3(const double *x, void *c)
{
    const wctx *k = c;
    double cov[6], L = 0;
    gsd_cov3d(x, x + 3, cov);
    for (int i = 0; i < 6; i++)
        L += k->w[i] * cov[i];
    return L;
}

START_TEST(test_fd_cov3d)
{
    uint32_t s = 12;
    double x[7], w[6], g[7];
    for (int i = 0; i < 3; i++) x[i] = srand1(&s);
    for (int i = 3; i < 7; i++) x[i] = srand1(&s);
    for (int i = 0; i < 6; i++) w[i] = srand1(&s);
    wctx c = { .w = w };
    gsd_cov3d_vjp(x, x + 3, w, g, g + 3);
    check_fd("cov3d", L_cov3, &c, x, 7, g, 1e-6, 1e-6);
    float xf[7], wf[6], gf[7];
    to_f(x, xf, 7); to_f(w, wf, 6);
    gs_cov3d_vjp(xf, xf + 3, wf, gf, gf + 3);
    check_close_f("cov3d_vjp", gf, g, 7, 1e-4);
}
END_TEST

/* x = pc (3); aux: fx fy cx cy */
static double L_proj(const double *x, void *c)
{
    const wctx *k = c;
    double uv[2];
    gsd_project(x, k->aux[0], k->aux[1], k->aux[2], k->aux[3], uv);
    return k->w[0] * uv[0] + k->w[1] * uv[1];
}

START_TEST(test_fd_project)
{
    double pc[3] = { 0.3, -0.2, 2.5 }, w[2] = { 0.7, -1.3 }, g[3];
    wctx c = { .w = w, .aux = { 60, 60, 32, 24 } };
    gsd_project_vjp(pc, 60, 60, w, g);
    check_fd("project", L_proj, &c, pc, 3, g, 1e-6, 1e-6);
}
END_TEST

/* x = (pc 3, cov3 6); aux: Wr 9, fx, fy, limx, limy */
static double L_cov2(const double *x, void *c)
{
    const wctx *k = c;
    double cov2[3];
    gsd_cov2d(x, k->aux, x + 3, k->aux[9], k->aux[10], k->aux[11], k->aux[12], cov2);
    return k->w[0] * cov2[0] + k->w[1] * cov2[1] + k->w[2] * cov2[2];
}

START_TEST(test_fd_cov2d)
{
    uint32_t s = 13;
    double w[3] = { 0.4, -0.9, 1.1 };
    wctx c = { .w = w };
    double q[4] = { 0.9, 0.1, -0.3, 0.2 };
    gsd_quat_to_rot(q, c.aux);   /* an arbitrary rotation as Wr */
    c.aux[9] = 70; c.aux[10] = 65; c.aux[11] = 0.6; c.aux[12] = 0.5;
    /* inside the clamp, then beyond it in x (x/z = 1.2 > 0.6) */
    const double pcs[2][3] = { { 0.3, -0.2, 2.5 }, { 3.0, 0.4, 2.5 } };
    for (int t = 0; t < 2; t++) {
        double x[9], g[9], ls[3], qq[4];
        memcpy(x, pcs[t], sizeof pcs[t]);
        for (int i = 0; i < 3; i++) ls[i] = srand1(&s) - 1;
        for (int i = 0; i < 4; i++) qq[i] = srand1(&s);
        gsd_cov3d(ls, qq, x + 3);
        gsd_cov2d_vjp(x, c.aux, x + 3, 70, 65, 0.6, 0.5, w, g, g + 3);
        check_fd(t ? "cov2d (clamped)" : "cov2d", L_cov2, &c, x, 9, g, 1e-6, 1e-6);
        float xf[9], Wf[9], wf[3], gf[9];
        to_f(x, xf, 9); to_f(c.aux, Wf, 9); to_f(w, wf, 3);
        gs_cov2d_vjp(xf, Wf, xf + 3, 70, 65, 0.6f, 0.5f, wf, gf, gf + 3);
        check_close_f("cov2d_vjp", gf, g, 9, 1e-4);
    }
}
END_TEST

static double L_conic(const double *x, void *c)
{
    const wctx *k = c;
    double con[3] = { 0, 0, 0 };
    gsd_conic(x, con);
    return k->w[0] * con[0] + k->w[1] * con[1] + k->w[2] * con[2];
}

START_TEST(test_fd_conic)
{
    double cov2[3] = { 4.0, 1.2, 2.5 }, w[3] = { 0.3, 1.7, -0.8 }, con[3], g[3];
    wctx c = { .w = w };
    ck_assert(gsd_conic(cov2, con) > 0);
    gsd_conic_vjp(con, w, g);
    check_fd("conic", L_conic, &c, cov2, 3, g, 1e-6, 1e-6);
    /* extent: alpha at the radius along the major axis is 1/255 */
    double op = 0.6, r = gsd_extent(cov2, op);
    double mid = 3.25, lmax = mid + sqrt(0.75 * 0.75 + 1.44);
    double e[2] = { 1.2, lmax - 4.0 }, en = sqrt(e[0] * e[0] + e[1] * e[1]);
    double uv[2] = { 0, 0 }, gg;
    double a = gsd_alpha(con, uv, op, r * e[0] / en, r * e[1] / en, &gg);
    ck_assert_double_eq_tol(a, 1.0 / 255.0, 1e-12);
    ck_assert(gsd_extent(cov2, 1.0 / 255.0) == 0.0);
}
END_TEST

/* x = (mean 3, sh_dc 3, sh_rest 45); aux: cam_pos */
static double L_sh(const double *x, void *c)
{
    const wctx *k = c;
    double rgb[3];
    gsd_sh_color(k->deg, x, k->aux, x + 3, x + 6, rgb);
    return k->w[0] * rgb[0] + k->w[1] * rgb[1] + k->w[2] * rgb[2];
}

START_TEST(test_fd_sh)
{
    uint32_t s = 14;
    for (int deg = 0; deg <= 3; deg++) {
        int K = (deg + 1) * (deg + 1), n = 6 + (K - 1) * 3;
        double x[51], w[3], g[51];
        wctx c = { .w = w, .deg = deg, .aux = { 0.5, -2.0, 0.7 } };
        for (int i = 0; i < 51; i++) x[i] = 0.3 * srand1(&s);
        x[0] = 0.2; x[1] = 0.4; x[2] = -0.1;
        for (int i = 0; i < 3; i++) w[i] = srand1(&s);
        gsd_sh_color_vjp(deg, x, c.aux, x + 3, x + 6, w, g + 3, g + 6, g);
        char what[32];
        snprintf(what, sizeof what, "sh degree %d", deg);
        check_fd(what, L_sh, &c, x, n, g, 1e-6, 1e-6);
        if (deg > 0) {   /* the direction really carries a gradient */
            double gm = fabs(g[0]) + fabs(g[1]) + fabs(g[2]);
            ck_assert_msg(gm > 1e-6, "%s: no gradient into the mean", what);
        }
        float xf[51], cf[3], wf[3], gf[51];
        to_f(x, xf, 51); to_f(c.aux, cf, 3); to_f(w, wf, 3);
        gs_sh_color_vjp(deg, xf, cf, xf + 3, xf + 6, wf, gf + 3, gf + 6, gf);
        check_close_f(what, gf, g, n, 1e-4);
    }
    /* clamped at 0: no gradient */
    double x[51] = { 0 }, w[3] = { 1, 1, 1 }, g[51], rgb[3], cam[3] = { 0, -2, 0 };
    x[3] = x[4] = x[5] = -5.0;   /* 0.5 + C0 (-5) < 0 */
    gsd_sh_color(0, x, cam, x + 3, x + 6, rgb);
    ck_assert(rgb[0] == 0.0);
    gsd_sh_color_vjp(0, x, cam, x + 3, x + 6, w, g + 3, g + 6, g);
    ck_assert(g[3] == 0.0 && g[4] == 0.0 && g[5] == 0.0);
}
END_TEST

/* x = (conic 3, uv 2, op) ; aux: px, py */
static double L_alpha(const double *x, void *c)
{
    const wctx *k = c;
    double g;
    return k->w[0] * gsd_alpha(x, x + 3, x[5], k->aux[0], k->aux[1], &g);
}

START_TEST(test_fd_alpha)
{
    double cov2[3] = { 9.0, 2.0, 5.0 }, x[6], w[1] = { 1.3 };
    gsd_conic(cov2, x);
    x[3] = 10.2; x[4] = 7.9; x[5] = 0.7;
    wctx c = { .w = w, .aux = { 12.5, 6.5 } };
    double gv, g[6] = { 0 };
    double a = gsd_alpha(x, x + 3, x[5], 12.5, 6.5, &gv);
    ck_assert(a > 0.05 && a < 0.99);
    gsd_alpha_vjp_acc(x, x + 3, x[5], 12.5, 6.5, gv, w[0], g, g + 3, g + 5);
    check_fd("alpha", L_alpha, &c, x, 6, g, 1e-6, 1e-6);
    /* clamped at 0.99: zero gradient */
    double g0[6] = { 0 };
    x[5] = 5.0;
    a = gsd_alpha(x, x + 3, x[5], 10.2, 7.9, &gv);
    ck_assert(a == 0.99);
    gsd_alpha_vjp_acc(x, x + 3, x[5], 10.2, 7.9, gv, 1.0, g0, g0 + 3, g0 + 5);
    for (int i = 0; i < 6; i++)
        ck_assert(g0[i] == 0.0);
}
END_TEST

/* Blending of NB Gaussians with channels feat and alphas: x = (alpha NB, feat NB*8);
 * aux: bg (3); outputs o (8) with bg on rgb; weights w (8). */
enum { NB = 5 };
static double L_blend(const double *x, void *c)
{
    const wctx *k = c;
    double T = 1, acc[GS_NCH] = { 0 };
    for (int i = 0; i < NB; i++)
        if (gsd_blend(x[i], x + NB + i * GS_NCH, &T, acc) == 2)
            break;
    double L = 0;
    for (int ch = 0; ch < GS_NCH; ch++)
        L += k->w[ch] * (acc[ch] + (ch < 3 ? T * k->aux[ch] : 0));
    return L;
}

START_TEST(test_fd_blend)
{
    uint32_t s = 15;
    double x[NB + NB * GS_NCH], w[GS_NCH], g[NB + NB * GS_NCH];
    for (int i = 0; i < NB; i++) x[i] = 0.1 + 0.6 * urand(&s);
    for (int i = NB; i < NB + NB * GS_NCH; i++) x[i] = srand1(&s);
    for (int i = 0; i < GS_NCH; i++) w[i] = srand1(&s);
    wctx c = { .w = w, .aux = { 0.2, 0.5, 0.9 } };
    double T = 1, acc[GS_NCH] = { 0 };
    for (int i = 0; i < NB; i++)
        ck_assert_int_eq(gsd_blend(x[i], x + NB + i * GS_NCH, &T, acc), 1);
    double bg_term = T * (0.2 * w[0] + 0.5 * w[1] + 0.9 * w[2]);
    double rec[GS_NCH] = { 0 };
    for (int i = NB - 1; i >= 0; i--)
        g[i] = gsd_blend_vjp(x[i], x + NB + i * GS_NCH, w, bg_term, &T, rec, g + NB + i * GS_NCH);
    ck_assert_double_eq_tol(T, 1.0, 1e-12);   /* walked back to the front */
    check_fd("blend", L_blend, &c, x, NB + NB * GS_NCH, g, 1e-6, 1e-6);
    /* the stop rule: T (1 - a) < 1e-4 is not added */
    double T2 = 2e-4, acc2[GS_NCH] = { 0 }, f[GS_NCH] = { 1, 1, 1, 1, 1, 1, 1, 1 };
    ck_assert_int_eq(gsd_blend(0.6, f, &T2, acc2), 2);
    ck_assert(acc2[0] == 0.0 && T2 == 2e-4);
    ck_assert_int_eq(gsd_blend(1.0 / 256, f, &T2, acc2), 0);
}
END_TEST

/* ------------------------------------------------------------------ rasterizer */

typedef struct test_scene {
    size_t n;
    int deg;
    float *means, *ls, *q, *op, *dc, *rest;   /* (n,3) (n,3) (n,4) (n,) (n,3) (n,15,3) */
} test_scene;

/* Random Gaussians around the origin; `big`: large, half-transparent, far from every
 * threshold (for FD); otherwise a mix of sizes and opacities (some culled, some tiny). */
static void scene_random(test_scene *t, size_t n, int deg, int big, uint32_t seed)
{
    t->n = n;
    t->deg = deg;
    t->means = malloc(n * 3 * sizeof(float));
    t->ls = malloc(n * 3 * sizeof(float));
    t->q = malloc(n * 4 * sizeof(float));
    t->op = malloc(n * sizeof(float));
    t->dc = malloc(n * 3 * sizeof(float));
    t->rest = malloc(n * 45 * sizeof(float));
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        for (int c = 0; c < 3; c++) {
            t->means[i * 3 + c] = (float)(big ? 0.25 * srand1(&s) : 0.8 * srand1(&s));
            /* distinct scales: a well-defined shortest axis */
            t->ls[i * 3 + c] = big ? (float)(log(0.35 + 0.12 * c) + 0.05 * srand1(&s))
                                   : (float)(-3.5 + 3.0 * urand(&s));
            t->dc[i * 3 + c] = (float)srand1(&s);
        }
        for (int c = 0; c < 4; c++)
            t->q[i * 4 + c] = (float)srand1(&s);
        t->q[i * 4] += 1.5f;
        t->op[i] = big ? (float)(-1.0 + 0.8 * urand(&s)) : (float)(4.0 * srand1(&s));
        for (int c = 0; c < 45; c++)
            t->rest[i * 45 + c] = (float)(0.15 * srand1(&s));
    }
}

static void scene_free(test_scene *t)
{
    free(t->means); free(t->ls); free(t->q); free(t->op); free(t->dc); free(t->rest);
}

static gs_scene scene_view(const test_scene *t)
{
    return (gs_scene){ .n = t->n, .means = t->means, .log_scales = t->ls, .quats = t->q,
                       .opacity_logits = t->op, .sh_dc = t->dc, .sh_rest = t->rest,
                       .sh_rest_coeffs = 15, .sh_degree = t->deg };
}

typedef struct outs {
    float *rgb, *depth, *normal, *opacity;
} outs;

static outs outs_alloc(int W, int H)
{
    size_t p = (size_t)W * H;
    return (outs){ calloc(p * 3, 4), calloc(p, 4), calloc(p * 3, 4), calloc(p, 4) };
}

static void outs_free(outs *o) { free(o->rgb); free(o->depth); free(o->normal); free(o->opacity); }

static double outs_dot(const outs *o, const outs *G, size_t p)
{
    double L = 0;
    for (size_t i = 0; i < p * 3; i++)
        L += (double)o->rgb[i] * G->rgb[i] + (double)o->normal[i] * G->normal[i];
    for (size_t i = 0; i < p; i++)
        L += (double)o->depth[i] * G->depth[i] + (double)o->opacity[i] * G->opacity[i];
    return L;
}

static const float test_bg[3] = { 0.3f, 0.6f, 0.9f };

START_TEST(test_render_fd)
{
    enum { W = 14, H = 11, N = 4 };
    test_scene t;
    scene_random(&t, N, 3, 1, 21);
    sl_camera cam;
    sl_camera_orbit(30.0f, 20.0f, 2.2f, NULL, 40.0f, W, H, &cam);
    gs_view *v = gs_view_create();
    gs_scene s = scene_view(&t);
    outs o = outs_alloc(W, H), G = outs_alloc(W, H);
    uint32_t rs = 99;
    for (int i = 0; i < W * H * 3; i++) { G.rgb[i] = (float)srand1(&rs); G.normal[i] = (float)srand1(&rs); }
    for (int i = 0; i < W * H; i++) { G.depth[i] = (float)srand1(&rs); G.opacity[i] = (float)srand1(&rs); }
    sl_error err;
    ck_assert_int_eq(gs_render(v, &s, &cam, test_bg, o.rgb, o.depth, o.normal, o.opacity, &err), SL_OK);
    ck_assert_uint_eq(gs_view_visible(v), N);
    /* smoothness preconditions: every Gaussian contributes at every pixel, nothing stops */
    float *gm = calloc(N * 3, 4), *gl = calloc(N * 3, 4), *gq = calloc(N * 4, 4),
          *go = calloc(N, 4), *gd = calloc(N * 3, 4), *gr = calloc(N * 45, 4);
    gs_scene_grad g = { gm, gl, gq, go, gd, gr, NULL, NULL };
    ck_assert_int_eq(gs_backward(v, &s, G.rgb, G.depth, G.normal, G.opacity, &g, &err), SL_OK);

    struct { const char *name; float *p, *g; int n; double h; } groups[] = {
        { "means", t.means, gm, N * 3, 1e-3 }, { "scales", t.ls, gl, N * 3, 1e-3 },
        { "rotations", t.q, gq, N * 4, 1e-3 }, { "opacities", t.op, go, N, 1e-3 },
        { "sh_dc", t.dc, gd, N * 3, 1e-3 }, { "sh_rest", t.rest, gr, N * 45, 1e-2 },
    };
    for (size_t k = 0; k < sizeof groups / sizeof groups[0]; k++) {
        double en = 0, gn = 0;
        for (int i = 0; i < groups[k].n; i++) {
            float x0 = groups[k].p[i];
            groups[k].p[i] = x0 + (float)groups[k].h;
            double hp = (double)groups[k].p[i] - x0;
            gs_render(v, &s, &cam, test_bg, o.rgb, o.depth, o.normal, o.opacity, &err);
            double lp = outs_dot(&o, &G, W * H);
            groups[k].p[i] = x0 - (float)groups[k].h;
            double hm = x0 - (double)groups[k].p[i];
            gs_render(v, &s, &cam, test_bg, o.rgb, o.depth, o.normal, o.opacity, &err);
            double lm = outs_dot(&o, &G, W * H);
            groups[k].p[i] = x0;
            double fd = (lp - lm) / (hp + hm);
            en += (fd - groups[k].g[i]) * (fd - groups[k].g[i]);
            gn += (double)groups[k].g[i] * groups[k].g[i];
        }
        ck_assert_msg(sqrt(gn) > 1e-3, "render FD %s: gradient trivially zero", groups[k].name);
        ck_assert_msg(sqrt(en) <= 2e-2 * sqrt(gn), "render FD %s: |fd - grad| %g vs |grad| %g",
                      groups[k].name, sqrt(en), sqrt(gn));
    }
    free(gm); free(gl); free(gq); free(go); free(gd); free(gr);
    outs_free(&o); outs_free(&G);
    gs_view_destroy(v);
    scene_free(&t);
}
END_TEST

/* Brute force: every Gaussian in front of the near plane, globally sorted by (z, index),
 * blended at every pixel with the same rules; no extents, no tiles. */
static void render_brute(const test_scene *t, const sl_camera *cam, outs *o)
{
    const int W = cam->width, H = cam->height;
    size_t n = t->n, m = 0;
    float Wr[9];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            Wr[r * 3 + c] = cam->rot[c * 3 + r];
    float lx = 1.3f * fmaxf(cam->cx, W - cam->cx) / cam->fx;
    float ly = 1.3f * fmaxf(cam->cy, H - cam->cy) / cam->fy;
    float *pre = malloc(n * 14 * sizeof(float)), *z = malloc(n * sizeof(float));
    size_t *idx = malloc(n * sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        float pc[3], cov3[6], cov2[3], *p = pre + i * 14;
        gs_world_to_cam(Wr, cam->eye, t->means + i * 3, pc);
        if (!(pc[2] > cam->near))
            continue;
        gs_cov3d(t->ls + i * 3, t->q + i * 4, cov3);
        gs_cov2d(pc, Wr, cov3, cam->fx, cam->fy, lx, ly, cov2);
        if (!(gs_conic(cov2, p + 2) > 0))
            continue;
        gs_project(pc, cam->fx, cam->fy, cam->cx, cam->cy, p);
        p[5] = 1.0f / (1.0f + expf(-t->op[i]));
        gs_sh_color(t->deg, t->means + i * 3, cam->eye, t->dc + i * 3, t->rest + i * 45, p + 6);
        p[6 + 3] = pc[2];
        float R[9], sg;
        gs_quat_to_rot(t->q + i * 4, R);
        gs_normal(R, t->ls + i * 3, t->means + i * 3, cam->eye, p + 6 + 4, &sg);
        p[6 + 7] = 1.0f;
        z[i] = pc[2];
        /* insertion into the (z, index) order */
        size_t j = m++;
        while (j > 0 && z[idx[j - 1]] > z[i]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    for (int py = 0; py < H; py++)
        for (int px = 0; px < W; px++) {
            float T = 1, acc[GS_NCH] = { 0 }, g;
            for (size_t k = 0; k < m; k++) {
                const float *p = pre + idx[k] * 14;
                float a = gs_alpha(p + 2, p, p[5], px + 0.5f, py + 0.5f, &g);
                if (gs_blend(a, p + 6, &T, acc) == 2)
                    break;
            }
            size_t pi = (size_t)py * W + px;
            for (int c = 0; c < 3; c++) {
                o->rgb[pi * 3 + c] = acc[c] + T * test_bg[c];
                o->normal[pi * 3 + c] = acc[4 + c];
            }
            o->depth[pi] = acc[3];
            o->opacity[pi] = acc[7];
        }
    free(pre); free(z); free(idx);
}

START_TEST(test_render_brute_force)
{
    enum { W = 53, H = 41 };   /* partial tiles on both edges */
    test_scene t;
    scene_random(&t, 600, 2, 0, 31);
    /* a few behind the camera, far off screen, transparent */
    t.means[0] = 0; t.means[1] = 0; t.means[2] = 5;
    t.means[3] = 30; t.means[4] = -20;
    t.op[2] = -7.0f;
    sl_camera cam;
    sl_camera_orbit(-60.0f, 35.0f, 2.0f, NULL, 50.0f, W, H, &cam);
    gs_view *v = gs_view_create();
    gs_scene s = scene_view(&t);
    outs a = outs_alloc(W, H), b = outs_alloc(W, H);
    sl_error err;
    ck_assert_int_eq(gs_render(v, &s, &cam, test_bg, a.rgb, a.depth, a.normal, a.opacity, &err), SL_OK);
    render_brute(&t, &cam, &b);
    ck_assert(gs_view_visible(v) > 300 && gs_view_visible(v) < 600);
    double maxd = 0, cover = 0;
    for (int i = 0; i < W * H; i++) {
        cover += a.opacity[i];
        maxd = fmax(maxd, fabs(a.depth[i] - b.depth[i]));
        maxd = fmax(maxd, fabs(a.opacity[i] - b.opacity[i]));
        for (int c = 0; c < 3; c++) {
            maxd = fmax(maxd, fabs(a.rgb[i * 3 + c] - b.rgb[i * 3 + c]));
            maxd = fmax(maxd, fabs(a.normal[i * 3 + c] - b.normal[i * 3 + c]));
        }
    }
    ck_assert_msg(maxd <= 1e-5, "tiled vs brute force: max difference %g", maxd);
    ck_assert(cover > 0.3 * W * H);   /* a real image, not an empty one */
    outs_free(&a); outs_free(&b);
    gs_view_destroy(v);
    scene_free(&t);
}
END_TEST

START_TEST(test_render_threads)
{
#ifdef _OPENMP
    enum { W = 96, H = 72, N = 3000 };
    test_scene t;
    scene_random(&t, N, 3, 0, 41);
    sl_camera cam;
    sl_camera_orbit(10.0f, 15.0f, 2.0f, NULL, 50.0f, W, H, &cam);
    gs_scene s = scene_view(&t);
    outs G = outs_alloc(W, H);
    uint32_t rs = 5;
    for (int i = 0; i < W * H * 3; i++) { G.rgb[i] = (float)srand1(&rs); G.normal[i] = (float)srand1(&rs); }
    for (int i = 0; i < W * H; i++) { G.depth[i] = (float)srand1(&rs); G.opacity[i] = (float)srand1(&rs); }
    float *ref = NULL;
    size_t total = (size_t)W * H * 8 + N * (3 + 3 + 4 + 1 + 3 + 45 + 2);
    int saved = omp_get_max_threads();
    for (int th = 1; th <= 3; th++) {
        omp_set_num_threads(th);
        float *buf = calloc(total, sizeof(float));
        outs o = { buf, buf + W * H * 3, buf + W * H * 4, buf + W * H * 7 };
        float *gb = buf + (size_t)W * H * 8;
        gs_scene_grad g = { gb, gb + N * 3, gb + N * 6, gb + N * 10, gb + N * 11, gb + N * 14,
                            gb + N * 59, gb + N * 60 };
        gs_view *v = gs_view_create();
        sl_error err;
        ck_assert_int_eq(gs_render(v, &s, &cam, test_bg, o.rgb, o.depth, o.normal, o.opacity, &err), SL_OK);
        ck_assert_int_eq(gs_backward(v, &s, G.rgb, G.depth, G.normal, G.opacity, &g, &err), SL_OK);
        gs_view_destroy(v);
        if (!ref)
            ref = buf;
        else {
            ck_assert_msg(memcmp(ref, buf, total * sizeof(float)) == 0,
                          "%d threads give other bits than 1 thread", th);
            free(buf);
        }
    }
    omp_set_num_threads(saved);
    free(ref);
    outs_free(&G);
    scene_free(&t);
#endif
}
END_TEST

/* ------------------------------------------------------------------ the plugin */

/* The test host (tests/support) with an optimizer over the plugin's groups, so that
 * remap_group works; only warnings and errors printed. */
static void th_init(test_host *th)
{
    test_host_init(th, "gaussians", 7, 0x10100);
    th->print_level = SL_LOG_WARN;
}

static gaussians_state *plugin_create(test_host *th, const char *yaml)
{
    sl_params *params = test_host_params(test_entry_gaussians(0), yaml);
    sl_error err;
    void *state = NULL;
    sl_status st = gaussians_vtable.create(&th->h, params, &state, &err);
    ck_assert_msg(st == SL_OK, "create: %s", err.msg);
    sl_params_free(params);   /* the plugin reads its parameters in create only */
    size_t ng = gaussians_vtable.param_groups(state, th->groups, G_COUNT);
    ck_assert_uint_eq(ng, G_COUNT);
    th->n_groups = ng;
    sl_adam_config cfg[G_COUNT];
    for (int g = 0; g < G_COUNT; g++)
        cfg[g] = (sl_adam_config){ sl_schedule_constant(0.01), 0.9, 0.999, 1e-15, 0 };
    ck_assert_int_eq(sl_adam_create(th->groups, cfg, G_COUNT, &th->adam, &err), SL_OK);
    return state;
}

START_TEST(test_plugin_render_backward)
{
    test_host th;
    th_init(&th);
    gaussians_state *s = plugin_create(&th, "count: 300\nradius: 0.5\nsh_degree: 1\n"
                                            "sh_degree_interval: 10\n");
    ck_assert_uint_eq(s->n, 300);
    ck_assert_uint_eq(th.groups[G_REST].n, 300 * 9);
    ck_assert_int_eq(gaussians_active_degree(s, 9), 0);
    ck_assert_int_eq(gaussians_active_degree(s, 10), 1);
    enum { B = 2, W = 24, H = 20 };
    sl_camera cams[B];
    sl_camera_orbit(0, 10, 2.0f, NULL, 50, W, H, &cams[0]);
    sl_camera_orbit(120, 30, 2.0f, NULL, 50, W, H, &cams[1]);
    outs o[1];
    float *rgb = calloc(B * W * H * 3, 4), *dep = calloc(B * W * H, 4),
          *nor = calloc(B * W * H * 3, 4), *opa = calloc(B * W * H, 4);
    sl_render out = { B, H, W, rgb, dep, nor, opa };
    sl_render_request req = { cams, B, 20, SL_RENDER_TRAIN };
    sl_error err;
    ck_assert_int_eq(gaussians_vtable.render(s, &req, &out, &err), SL_OK);
    /* an EVAL render in between does not disturb the saved views */
    float *rgb2 = calloc(W * H * 3, 4);
    sl_render out2 = { 1, H, W, rgb2, NULL, NULL, NULL };
    sl_render_request req2 = { cams + 1, 1, 20, SL_RENDER_EVAL };
    ck_assert_int_eq(gaussians_vtable.render(s, &req2, &out2, &err), SL_OK);
    ck_assert(memcmp(rgb2, rgb + W * H * 3, W * H * 3 * sizeof(float)) == 0);
    ck_assert_int_eq(gaussians_vtable.backward(s, &out, &err), SL_OK);   /* G = outputs */
    double gsum = 0, dsum = 0;
    for (size_t i = 0; i < s->n * 3; i++)
        gsum += fabs(s->grad[G_MEANS][i]);
    for (size_t i = 0; i < s->n * 9; i++)
        dsum += fabs(s->grad[G_REST][i]);
    for (size_t i = 0; i < s->n; i++)
        ck_assert(s->denom[i] <= 2.0f);
    ck_assert(gsum > 0 && dsum > 0);
    (void)o;
    free(rgb); free(dep); free(nor); free(opa); free(rgb2);
    gaussians_destroy(s);
    sl_adam_destroy(th.adam);
}
END_TEST

START_TEST(test_densify_rules)
{
    test_host th;
    th_init(&th);
    gaussians_state *s = plugin_create(
        &th, "init: points\npoints: [0,0,0, 1,0,0, 2,0,0, 3,0,0, 4,0,0, 5,0,0]\n"
             "sh_degree: 1\nextent: 1.0\npercent_dense: 0.1\nmax_scale_fraction: 0.5\n"
             "min_opacity: 0.05\ndensify_grad_threshold: 0.001\ndensify_from: 0\n"
             "densify_interval: 10\ndensify_until: 100\n");
    ck_assert_uint_eq(s->n, 6);
    const float scales[6] = { 0.05f, 0.3f, 0.05f, 0.05f, 0.3f, 0.9f };
    const float ops[6] = { 0.5f, 0.5f, 0.01f, 0.5f, 0.02f, 0.5f };
    const float gavg[6] = { 0.002f, 0.002f, 0.0001f, 0.0f, 0.01f, 0.0f };
    const float denom[6] = { 2, 4, 1, 0, 1, 3 };
    uint32_t rs = 3;
    for (int i = 0; i < 6; i++) {
        for (int c = 0; c < 3; c++) {
            s->data[G_SCALES][i * 3 + c] = logf(scales[i] * (c == 1 ? 1.0f : 0.5f));
            s->data[G_DC][i * 3 + c] = (float)srand1(&rs);
        }
        for (int c = 0; c < 4; c++)
            s->data[G_ROTS][i * 4 + c] = (float)srand1(&rs) + (c == 0 ? 1.5f : 0.0f);
        for (int c = 0; c < 9; c++)
            s->data[G_REST][i * 9 + c] = (float)srand1(&rs);
        s->data[G_OPAC][i] = logf(ops[i] / (1 - ops[i]));
        s->grad_accum[i] = gavg[i] * denom[i];
        s->denom[i] = denom[i];
    }
    /* one Adam step with known gradients gives every element its own moments */
    for (int g = 0; g < G_COUNT; g++)
        for (size_t k = 0; k < th.groups[g].n; k++)
            th.groups[g].grad[k] = (float)(g + 1) * 0.1f + (float)k * 0.01f;
    float old[G_COUNT][6 * 9], oldm[G_COUNT][6 * 9], oldv[G_COUNT][6 * 9];
    int w[G_COUNT] = { 3, 3, 4, 1, 3, 9 };
    /* no Adam step on values (lr 0 effect): copy values, then step to fill the moments */
    for (int g = 0; g < G_COUNT; g++)
        memcpy(old[g], th.groups[g].data, th.groups[g].n * sizeof(float));
    sl_adam_step(th.adam, 0);
    for (int g = 0; g < G_COUNT; g++) {
        memcpy(th.groups[g].data, old[g], th.groups[g].n * sizeof(float));   /* undo the update */
        memcpy(oldm[g], sl_adam_moment(th.adam, g, 1), th.groups[g].n * sizeof(float));
        memcpy(oldv[g], sl_adam_moment(th.adam, g, 2), th.groups[g].n * sizeof(float));
    }
    sl_error err;
    ck_assert_int_eq(gaussians_step_end(s, 9, &err), SL_OK);   /* not a densification step */
    ck_assert_uint_eq(s->n, 6);
    ck_assert_msg(gaussians_step_end(s, 10, &err) == SL_OK, "%s", err.msg);
    /* hand computation (extent 1: clone iff max scale <= 0.1; prune below opacity 0.05 or
     * above scale 0.5):
     *   0: g 0.002 >= 0.001, scale 0.05 -> clone
     *   1: g 0.002, scale 0.3 -> split into two children of scale 0.1875
     *   2: g 0.0001 -> nothing; opacity 0.01 -> pruned
     *   3: never visible -> nothing, kept
     *   4: g 0.01, scale 0.3 -> split; children keep opacity 0.02 -> both pruned
     *   5: scale 0.9 > 0.5 -> pruned
     * result: survivors 0, 3; clone of 0; children 1a, 1b. */
    const int64_t src[5] = { 0, 3, 0, 1, 1 };
    const int kept[5] = { 1, 1, 0, 0, 0 };
    ck_assert_uint_eq(s->n, 5);
    for (int g = 0; g < G_COUNT; g++) {
        ck_assert_uint_eq(th.groups[g].n, 5 * (size_t)w[g]);
        ck_assert_ptr_eq(th.groups[g].data, s->data[g]);
        const float *m = sl_adam_moment(th.adam, g, 1), *v = sl_adam_moment(th.adam, g, 2);
        for (int r = 0; r < 5; r++)
            for (int k = 0; k < w[g]; k++) {
                size_t ni = (size_t)r * w[g] + k, oi = (size_t)src[r] * w[g] + k;
                ck_assert(m[ni] == (kept[r] ? oldm[g][oi] : 0.0f));
                ck_assert(v[ni] == (kept[r] ? oldv[g][oi] : 0.0f));
                if (g != G_MEANS && g != G_SCALES)   /* copied unchanged */
                    ck_assert(s->data[g][ni] == old[g][oi]);
            }
    }
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) {
            ck_assert(s->data[G_MEANS][r * 3 + c] == old[G_MEANS][src[r] * 3 + c]);
            ck_assert(s->data[G_SCALES][r * 3 + c] == old[G_SCALES][src[r] * 3 + c]);
        }
    /* children: mean = parent + R (scale z), z from Philox (seed 7, step 10, stream
     * base + 1, sample = parent 1, elements 3j..3j+2); scale / 1.6 */
    double q[4], R[9];
    for (int c = 0; c < 4; c++)
        q[c] = old[G_ROTS][1 * 4 + c];
    gsd_quat_to_rot(q, R);
    for (int j = 0; j < 2; j++) {
        float z[3];
        sl_rng_key key = { .seed = 7, .step = 10, .stream = 0x10100 + 1, .sample = 1 };
        sl_rng_normal(key, (uint64_t)j * 3, 3, z);
        for (int c = 0; c < 3; c++) {
            double m = old[G_MEANS][3 + c];
            for (int k = 0; k < 3; k++)
                m += R[c * 3 + k] * exp((double)old[G_SCALES][3 + k]) * z[k];
            ck_assert_double_eq_tol(s->data[G_MEANS][(3 + j) * 3 + c], m, 1e-6);
            ck_assert_double_eq_tol(exp(s->data[G_SCALES][(3 + j) * 3 + c]),
                                    exp((double)old[G_SCALES][3 + c]) / 1.6, 1e-6);
        }
    }
    /* statistics restart */
    for (int r = 0; r < 5; r++)
        ck_assert(s->grad_accum[r] == 0.0f && s->denom[r] == 0.0f);

    /* pruning alone: exactly the Gaussians below the threshold go */
    s->data[G_OPAC][1] = logf(0.04f / 0.96f);
    s->data[G_OPAC][4] = logf(0.049f / 0.951f);
    float keep_means[3][3];
    const int survivors[3] = { 0, 2, 3 };
    for (int r = 0; r < 3; r++)
        memcpy(keep_means[r], s->data[G_MEANS] + survivors[r] * 3, sizeof keep_means[r]);
    ck_assert_int_eq(gaussians_step_end(s, 20, &err), SL_OK);
    ck_assert_uint_eq(s->n, 3);
    for (int r = 0; r < 3; r++)
        ck_assert(memcmp(keep_means[r], s->data[G_MEANS] + r * 3, sizeof keep_means[r]) == 0);

    /* save / load: the count and statistics; groups resized before the host restores */
    s->grad_accum[1] = 0.25f;
    s->denom[2] = 3.0f;
    char path[] = "/tmp/test_gaussians_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    sl_ckpt *ck;
    sl_state_io *io;
    ck_assert_int_eq(sl_ckpt_begin(path, &ck, &err), SL_OK);
    ck_assert_int_eq(sl_ckpt_section(ck, "plugins/gaussians", &io, &err), SL_OK);
    ck_assert_int_eq(gaussians_save_state(s, io, &err), SL_OK);
    ck_assert_int_eq(sl_ckpt_commit(ck, &err), SL_OK);
    test_host th2;
    th_init(&th2);
    gaussians_state *s2 = plugin_create(&th2, "init: points\npoints: [0,0,0, 1,0,0, 2,0,0, "
                                              "3,0,0, 4,0,0, 5,0,0]\nsh_degree: 1\n");
    ck_assert_int_eq(sl_ckpt_open(path, &ck, &err), SL_OK);
    ck_assert_int_eq(sl_ckpt_section(ck, "plugins/gaussians", &io, &err), SL_OK);
    ck_assert_msg(gaussians_load_state(s2, io, &err) == SL_OK, "%s", err.msg);
    sl_ckpt_close(ck);
    unlink(path);
    sl_param_group g2[G_COUNT];
    gaussians_vtable.param_groups(s2, g2, G_COUNT);
    ck_assert_uint_eq(s2->n, 3);
    ck_assert_uint_eq(g2[G_REST].n, 27);
    ck_assert(s2->grad_accum[1] == 0.25f && s2->denom[2] == 3.0f);
    gaussians_destroy(s2);
    sl_adam_destroy(th2.adam);
    gaussians_destroy(s);
    sl_adam_destroy(th.adam);
}
END_TEST

START_TEST(test_opacity_reset_and_cap)
{
    test_host th;
    th_init(&th);
    gaussians_state *s = plugin_create(
        &th, "init: points\npoints: [0,0,0, 1,0,0, 2,0,0]\nsh_degree: 0\nextent: 1\n"
             "densify_interval: 0\nopacity_reset_interval: 5\ninit_opacity: 0.5\n");
    for (size_t k = 0; k < 3; k++)
        th.groups[G_OPAC].grad[k] = 1.0f;
    sl_adam_step(th.adam, 0);
    s->data[G_OPAC][1] = logf(0.001f / 0.999f);
    sl_error err;
    ck_assert_int_eq(gaussians_step_end(s, 5, &err), SL_OK);
    ck_assert_double_eq_tol(1 / (1 + exp(-s->data[G_OPAC][0])), 0.01, 1e-6);
    ck_assert_double_eq_tol(1 / (1 + exp(-s->data[G_OPAC][1])), 0.001, 1e-6);
    for (int k = 0; k < 3; k++)
        ck_assert(sl_adam_moment(th.adam, G_OPAC, 1)[k] == 0.0f);
    gaussians_destroy(s);
    sl_adam_destroy(th.adam);

    /* the cap: 3 candidates, room for 1 more -> only the first is cloned */
    th_init(&th);
    s = plugin_create(&th, "init: points\npoints: [0,0,0, 1,0,0, 2,0,0]\nsh_degree: 0\n"
                           "extent: 1\nmax_gaussians: 4\ndensify_from: 0\ndensify_interval: 1\n"
                           "init_scale: 0.01\n");
    for (int i = 0; i < 3; i++) {
        s->grad_accum[i] = 1.0f;
        s->denom[i] = 1.0f;
    }
    ck_assert_int_eq(gaussians_step_end(s, 1, &err), SL_OK);
    ck_assert_uint_eq(s->n, 4);
    ck_assert(s->data[G_MEANS][9] == 0.0f);   /* the clone of Gaussian 0 */
    gaussians_destroy(s);
    sl_adam_destroy(th.adam);
}
END_TEST

START_TEST(test_descriptor)
{
    const sl_plugin *p = test_entry_gaussians(0);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->name, "gaussians");
    ck_assert_int_eq(p->kind, SL_KIND_REPRESENTATION);
    ck_assert_ptr_null(test_entry_gaussians(1));
    for (size_t j = 0; j < p->params.count; j++)
        ck_assert_ptr_nonnull(p->params.defs[j].doc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gaussians");
    TCase *m = tcase_create("math");
    tcase_add_test(m, test_fd_quat_to_rot);
    tcase_add_test(m, test_fd_cov3d);
    tcase_add_test(m, test_fd_project);
    tcase_add_test(m, test_fd_cov2d);
    tcase_add_test(m, test_fd_conic);
    tcase_add_test(m, test_fd_sh);
    tcase_add_test(m, test_fd_alpha);
    tcase_add_test(m, test_fd_blend);
    suite_add_tcase(s, m);
    TCase *r = tcase_create("raster");
    tcase_add_test(r, test_render_fd);
    tcase_add_test(r, test_render_brute_force);
    tcase_add_test(r, test_render_threads);
    suite_add_tcase(s, r);
    TCase *p = tcase_create("plugin");
    tcase_add_test(p, test_descriptor);
    tcase_add_test(p, test_plugin_render_backward);
    tcase_add_test(p, test_densify_rules);
    tcase_add_test(p, test_opacity_reset_and_cap);
    suite_add_tcase(s, p);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
