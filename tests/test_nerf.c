/* tests/test_nerf.c — the `nerf` representation (plugins/representations/nerf/).
 *
 * The plugin source is compiled in with a renamed entry symbol (as tests/test_plugins_2d.c
 * does), so the test reaches its internals: the analytic-field hook, the occupancy grid and
 * the saved sample records. The math header is instantiated a second time in double
 * (nerfd_*) for finite-difference checks of the device math at double precision.
 *
 * Checks:
 *  - device math in double (central differences, h = 1e-6): hash encoding VJP, dense layer
 *    VJP (and forward_t == forward), compositing VJP w.r.t. the densities, normal VJP;
 *  - the plugin's MLP backward in float against double-accumulated float FD;
 *  - the whole render in float: random parameters of every group, random upstream gradients
 *    on rgb, depth, normal and opacity, both regularisers on, learned background;
 *  - analytic normals: the density gradient and its second-order VJP in double (device
 *    math) and per sample in float (the plugin's glue, two hidden layers), the whole render
 *    with normals: analytic, agreement with FD normals on a smooth field, thread counts;
 *  - a uniform sphere (analytic field) against closed-form opacity 1 - exp(-sigma chord)
 *    and depth; occupancy on vs off on it; determinism across 1, 2 and 3 threads;
 *    save_state/load_state round trip; sample_field equals the rendered density. */
#include <check.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "spec.h"
#include "steinlab/steinlab.h"
#include "support/test_host.h"

#define steinlab_plugin_entry test_entry_nerf
#include "../plugins/representations/nerf/nerf.c"
#undef steinlab_plugin_entry

#define NM_REAL double
#define NM_FN(name) nerfd_##name
#include "../plugins/representations/nerf/nerf_math_impl.h"
#undef NM_REAL
#undef NM_FN

/* ------------------------------------------------------------------ instances */

typedef struct nerf_inst {
    test_host host;    /* the shared test host (tests/support), warnings and errors printed */
    sl_params *params;
    nerf_state *s;
} nerf_inst;

static const sl_representation_vtable *VT(void)
{
    return test_entry_nerf(0)->vtable;
}

static sl_status nerf_try(nerf_inst *in, const char *yaml, sl_error *err)
{
    memset(in, 0, sizeof *in);
    test_host_init(&in->host, "nerf", 7, SL_STREAM_PLUGIN_BASE + 0x100);
    in->host.print_level = SL_LOG_WARN;
    sl_status st = test_host_try_params(test_entry_nerf(0), yaml, &in->params, err);
    ck_assert_msg(st == SL_OK, "parameters: %s", err->msg);
    void *state = NULL;
    st = VT()->create(&in->host.h, in->params, &state, err);
    in->s = state;
    return st;
}

static void nerf_new(nerf_inst *in, const char *yaml)
{
    sl_error err = { "" };
    sl_status st = nerf_try(in, yaml, &err);
    ck_assert_msg(st == SL_OK, "create: %s", err.msg);
}

static void nerf_free(nerf_inst *in)
{
    VT()->destroy(in->s);
    sl_params_free(in->params);
}

static void test_normal(uint32_t sample, size_t n, float *out)
{
    sl_rng_key k = { .seed = 99, .step = 0, .stream = 0x7e57, .sample = sample };
    sl_rng_normal(k, 0, n, out);
}

static void test_normal_d(uint32_t sample, size_t n, double *out)
{
    float *tmp = malloc(n * sizeof(float));
    test_normal(sample, n, tmp);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[i];
    free(tmp);
}

/* A render with every output, (B, H, W[, 3]) buffers. */
typedef struct render_buf {
    sl_render r;
} render_buf;

static void rb_alloc(render_buf *b, int B, int H, int W, int with_normal)
{
    size_t px = (size_t)B * H * W;
    b->r = (sl_render){ B, H, W, calloc(px * 3, 4), calloc(px, 4),
                        with_normal ? calloc(px * 3, 4) : NULL, calloc(px, 4) };
}

static void rb_free(render_buf *b)
{
    free(b->r.rgb);
    free(b->r.depth);
    free(b->r.normal);
    free(b->r.opacity);
}

static void render_ok(nerf_inst *in, const sl_camera *cams, int B, int64_t step,
                      sl_render_mode mode, sl_render *out)
{
    sl_render_request req = { cams, B, step, mode };
    sl_error err = { "" };
    sl_status st = VT()->render(in->s, &req, out, &err);
    ck_assert_msg(st == SL_OK, "render: %s", err.msg);
}

/* ------------------------------------------------------------------ device math (double) */

START_TEST(test_hash_vjp)
{
    /* Two dense levels and two hashed ones (T = 2^6 entries). */
    nerf_grid g = { .levels = 4, .feat = 2 };
    int res[4] = { 2, 3, 5, 8 };
    uint32_t off = 0;
    for (int l = 0; l < 4; l++) {
        g.res[l] = res[l];
        uint32_t verts = (uint32_t)((res[l] + 1) * (res[l] + 1) * (res[l] + 1));
        g.dense[l] = verts <= 64;
        g.size[l] = g.dense[l] ? verts : 64;
        g.offset[l] = off;
        off += g.size[l];
    }
    g.entries = off;
    size_t n = (size_t)off * 2;
    double *table = malloc(n * sizeof(double)), *dtable = calloc(n, sizeof(double));
    test_normal_d(1, n, table);
    double u[3] = { 0.31, 0.77, 0.52 }, up[8], enc[8], encp[8], encm[8];
    test_normal_d(2, 8, up);
    nerfd_hash_encode_vjp(&g, u, up, dtable);
    /* The encoding is linear in the table: FD with h = 1e-6 is exact up to rounding. */
    double maxg = 0, maxerr = 0;
    for (size_t i = 0; i < n; i++) {
        double keep = table[i];
        table[i] = keep + 1e-6;
        nerfd_hash_encode(&g, table, u, encp);
        table[i] = keep - 1e-6;
        nerfd_hash_encode(&g, table, u, encm);
        table[i] = keep;
        double fd = 0;
        for (int k = 0; k < 8; k++)
            fd += up[k] * (encp[k] - encm[k]) / 2e-6;
        maxerr = fmax(maxerr, fabs(fd - dtable[i]));
        maxg = fmax(maxg, fabs(dtable[i]));
    }
    nerfd_hash_encode(&g, table, u, enc);
    ck_assert_msg(maxg > 0.1, "hash gradient trivially small: %g", maxg);
    ck_assert_msg(maxerr < 1e-8, "hash VJP error %g", maxerr);
    /* Trilinear weights sum to 1: a constant table gives the constant back. */
    for (size_t i = 0; i < n; i++)
        table[i] = 0.25;
    nerfd_hash_encode(&g, table, u, enc);
    for (int k = 0; k < 8; k++)
        ck_assert_double_eq_tol(enc[k], 0.25, 1e-14);
    free(table);
    free(dtable);
}
END_TEST

START_TEST(test_dense_vjp)
{
    enum { IN = 7, OUT = 5 };
    double W[OUT * IN], Wt[IN * OUT], b[OUT], x[IN], dy[OUT], y[OUT], y2[OUT];
    double dx[IN], dW[OUT * IN] = { 0 }, db[OUT] = { 0 };
    test_normal_d(3, OUT * IN, W);
    test_normal_d(4, OUT, b);
    test_normal_d(5, IN, x);
    test_normal_d(6, OUT, dy);
    for (int j = 0; j < OUT; j++)
        for (int i = 0; i < IN; i++)
            Wt[i * OUT + j] = W[j * IN + i];
    nerfd_dense_forward(W, b, x, y, IN, OUT);
    nerfd_dense_forward_t(Wt, b, x, y2, IN, OUT);
    for (int j = 0; j < OUT; j++)
        ck_assert_double_eq_tol(y[j], y2[j], 1e-12);
    nerfd_dense_vjp(W, x, dy, dx, dW, db, IN, OUT);
    const double h = 1e-6;
    double maxerr = 0, maxg = 0;
#define FD_OF(arr, idx, out)                                                  \
    do {                                                                      \
        double keep_ = arr[idx], lp_ = 0, lm_ = 0;                            \
        arr[idx] = keep_ + h;                                                 \
        nerfd_dense_forward(W, b, x, y, IN, OUT);                             \
        for (int j_ = 0; j_ < OUT; j_++) lp_ += dy[j_] * y[j_];               \
        arr[idx] = keep_ - h;                                                 \
        nerfd_dense_forward(W, b, x, y, IN, OUT);                             \
        for (int j_ = 0; j_ < OUT; j_++) lm_ += dy[j_] * y[j_];               \
        arr[idx] = keep_;                                                     \
        out = (lp_ - lm_) / (2 * h);                                          \
    } while (0)
    for (int i = 0; i < IN; i++) {
        double fd;
        FD_OF(x, i, fd);
        maxerr = fmax(maxerr, fabs(fd - dx[i]));
        maxg = fmax(maxg, fabs(dx[i]));
    }
    for (int i = 0; i < OUT * IN; i++) {
        double fd;
        FD_OF(W, i, fd);
        maxerr = fmax(maxerr, fabs(fd - dW[i]));
    }
    for (int j = 0; j < OUT; j++) {
        double fd;
        FD_OF(b, j, fd);
        maxerr = fmax(maxerr, fabs(fd - db[j]));
    }
#undef FD_OF
    ck_assert_msg(maxg > 0.1, "dense gradient trivially small");
    ck_assert_msg(maxerr < 1e-8, "dense VJP error %g", maxerr);
}
END_TEST

START_TEST(test_composite_vjp)
{
    enum { N = 12, C = 5 };
    double sigma[N], delta[N], q[N * C], bg[C], g[C], out[C];
    test_normal_d(7, N, sigma);
    test_normal_d(8, N * C, q);
    test_normal_d(9, C, bg);
    test_normal_d(10, C, g);
    for (int i = 0; i < N; i++) {
        sigma[i] = fabs(sigma[i]) * 3;
        delta[i] = 0.05 + 0.01 * i;
    }
    /* e_i = <g, q_i>, e_bg = <g, bg>. */
    double e[N], e_bg = 0, dsig[N], w[N], tr[N];
    for (int i = 0; i < N; i++) {
        e[i] = 0;
        for (int c = 0; c < C; c++)
            e[i] += g[c] * q[i * C + c];
    }
    for (int c = 0; c < C; c++)
        e_bg += g[c] * bg[c];
    double T = nerfd_composite_vjp(N, sigma, delta, e, e_bg, dsig, w, tr);
    double T2 = nerfd_composite_forward(N, sigma, delta, q, C, bg, out);
    ck_assert(T == T2);
    double wsum = 0;
    for (int i = 0; i < N; i++)
        wsum += w[i];
    ck_assert_double_eq_tol(wsum, 1 - T, 1e-14);
    const double h = 1e-6;
    double maxerr = 0, maxg = 0;
    for (int k = 0; k < N; k++) {
        double keep = sigma[k], lp = 0, lm = 0;
        sigma[k] = keep + h;
        nerfd_composite_forward(N, sigma, delta, q, C, bg, out);
        for (int c = 0; c < C; c++)
            lp += g[c] * out[c];
        sigma[k] = keep - h;
        nerfd_composite_forward(N, sigma, delta, q, C, bg, out);
        for (int c = 0; c < C; c++)
            lm += g[c] * out[c];
        sigma[k] = keep;
        double fd = (lp - lm) / (2 * h);
        maxerr = fmax(maxerr, fabs(fd - dsig[k]));
        maxg = fmax(maxg, fabs(dsig[k]));
    }
    ck_assert_msg(maxg > 1e-3, "compositing gradient trivially small: %g", maxg);
    ck_assert_msg(maxerr < 1e-8, "compositing VJP error %g (max |g| %g)", maxerr, maxg);
}
END_TEST

START_TEST(test_normal_vjp)
{
    double gr[3] = { 0.3, -1.2, 0.7 }, dn[3] = { 0.5, 0.1, -0.9 }, dg[3], n[3];
    nerfd_normal_from_grad(gr, n);
    ck_assert_double_eq_tol(n[0] * n[0] + n[1] * n[1] + n[2] * n[2], 1, 1e-14);
    nerfd_normal_vjp(gr, dn, dg);
    double maxerr = 0, maxg = 0;
    for (int k = 0; k < 3; k++) {
        double keep = gr[k], lp = 0, lm = 0;
        gr[k] = keep + 1e-6;
        nerfd_normal_from_grad(gr, n);
        for (int c = 0; c < 3; c++)
            lp += dn[c] * n[c];
        gr[k] = keep - 1e-6;
        nerfd_normal_from_grad(gr, n);
        for (int c = 0; c < 3; c++)
            lm += dn[c] * n[c];
        gr[k] = keep;
        maxerr = fmax(maxerr, fabs((lp - lm) / 2e-6 - dg[k]));
        maxg = fmax(maxg, fabs(dg[k]));
    }
    ck_assert_msg(maxg > 0.1, "normal gradient trivially small");
    ck_assert_msg(maxerr < 1e-8, "normal VJP error %g", maxerr);
}
END_TEST

/* Analytic normals in double: a small field (3 hash levels, two dense and one hashed; a
 * density MLP 6 -> 5 -> 4 -> 2 with ReLU; softplus or exp; the blob), its density gradient by the
 * device functions (the reverse sweep nerf.c's nerf_density_grad does), and the
 * second-order VJP of L = <dn, n(grad sigma)> + <dgr, grad sigma> into the table, the
 * weights and the biases (nerf_density_grad_backward's steps, then the first-order backward
 * of raw), each against central differences. */
enum { AD_LAYERS = 3 };
static const int AD_DIMS[AD_LAYERS + 1] = { 6, 5, 4, 2 };

typedef struct ad_field {
    nerf_grid g;
    double *table;                      /* (entries, 2) */
    double *W[AD_LAYERS], *b[AD_LAYERS];
    double bmin[3], side[3], c[3], scale, std_;
    int act;                            /* NERF_ACT_* */
} ad_field;

static void ad_init(ad_field *f, int act)
{
    memset(f, 0, sizeof *f);
    f->act = act;
    f->g.levels = 3;
    f->g.feat = 2;
    int res[3] = { 2, 3, 6 };
    uint32_t off = 0;
    for (int l = 0; l < 3; l++) {
        f->g.res[l] = res[l];
        uint32_t verts = (uint32_t)((res[l] + 1) * (res[l] + 1) * (res[l] + 1));
        f->g.dense[l] = verts <= 64;
        f->g.size[l] = f->g.dense[l] ? verts : 64;
        f->g.offset[l] = off;
        off += f->g.size[l];
    }
    f->g.entries = off;
    f->table = malloc((size_t)off * 2 * sizeof(double));
    test_normal_d(60, (size_t)off * 2, f->table);
    for (int k = 0; k < AD_LAYERS; k++) {
        int in = AD_DIMS[k], out = AD_DIMS[k + 1];
        f->W[k] = malloc((size_t)in * out * sizeof(double));
        f->b[k] = malloc((size_t)out * sizeof(double));
        test_normal_d(61 + 2 * (uint32_t)k, (size_t)in * out, f->W[k]);
        test_normal_d(62 + 2 * (uint32_t)k, (size_t)out, f->b[k]);
        for (int i = 0; i < out; i++)
            f->b[k][i] = 0.5 + 0.5 * f->b[k][i];   /* most units active, some not */
    }
    for (int k = 0; k < 3; k++) {
        f->bmin[k] = -1.0 + 0.1 * k;
        f->side[k] = 2.0 - 0.2 * k;   /* non-cubic: du/dx differs per axis */
        f->c[k] = 0.05 * k;
    }
    f->scale = 2;
    f->std_ = 0.5;
}

static void ad_free(ad_field *f)
{
    free(f->table);
    for (int k = 0; k < AD_LAYERS; k++) {
        free(f->W[k]);
        free(f->b[k]);
    }
}

/* Forward at x: encoding, hidden activations (after ReLU), raw; returns sigma. */
static double ad_forward(const ad_field *f, const double x[3], double enc[6],
                         double acts[AD_LAYERS][8], double *raw)
{
    double u[3];
    for (int k = 0; k < 3; k++)
        u[k] = (x[k] - f->bmin[k]) / f->side[k];
    nerfd_hash_encode(&f->g, f->table, u, enc);
    const double *in = enc;
    double out[2];
    for (int k = 0; k < AD_LAYERS; k++) {
        double *o = k == AD_LAYERS - 1 ? out : acts[k];
        nerfd_dense_forward(f->W[k], f->b[k], in, o, AD_DIMS[k], AD_DIMS[k + 1]);
        if (k < AD_LAYERS - 1)
            for (int j = 0; j < AD_DIMS[k + 1]; j++)
                o[j] = o[j] > 0 ? o[j] : 0;
        in = o;
    }
    *raw = out[0] + nerfd_blob_bias(x, f->c, f->scale, f->std_);
    return nerfd_density_act(f->act, *raw);
}

typedef struct ad_grad {
    double u[3], enc[6], acts[AD_LAYERS][8], raw, gamma0[6], t[AD_LAYERS][8], draw_dx[3], act1;
} ad_grad;

static void ad_density_grad(const ad_field *f, const double x[3], ad_grad *a, double grad[3])
{
    ad_forward(f, x, a->enc, a->acts, &a->raw);
    for (int k = 0; k < 3; k++)
        a->u[k] = (x[k] - f->bmin[k]) / f->side[k];
    double gam[8], nxt[8];
    memcpy(gam, f->W[AD_LAYERS - 1], (size_t)AD_DIMS[AD_LAYERS - 1] * sizeof(double));
    for (int k = AD_LAYERS - 2; k >= 0; k--) {
        for (int j = 0; j < AD_DIMS[k + 1]; j++)
            a->t[k][j] = a->acts[k][j] > 0 ? gam[j] : 0;
        nerfd_dense_input_grad(f->W[k], a->t[k], nxt, AD_DIMS[k], AD_DIMS[k + 1]);
        memcpy(gam, nxt, sizeof nxt);
    }
    memcpy(a->gamma0, gam, sizeof a->gamma0);
    double du[3], blob[3];
    nerfd_hash_encode_vjp_u(&f->g, f->table, a->u, a->gamma0, du);
    nerfd_blob_bias_grad(x, f->c, f->scale, f->std_, blob);
    a->act1 = nerfd_density_act_grad(f->act, a->raw);
    for (int k = 0; k < 3; k++) {
        a->draw_dx[k] = du[k] / f->side[k] + blob[k];
        grad[k] = a->act1 * a->draw_dx[k];
    }
}

/* L = <dn, n(grad)> + <dgr, grad> at x. */
static double ad_loss(const ad_field *f, const double x[3], const double dn[3],
                      const double dgr[3])
{
    ad_grad a;
    double gr[3], n[3];
    ad_density_grad(f, x, &a, gr);
    nerfd_normal_from_grad(gr, n);
    double L = 0;
    for (int k = 0; k < 3; k++)
        L += dn[k] * n[k] + dgr[k] * gr[k];
    return L;
}

/* dL/dparams into dtable, dW, db (accumulated). */
static void ad_backward(const ad_field *f, const double x[3], const double dn[3],
                        const double dgr[3], double *dtable, double *dW[AD_LAYERS],
                        double *db[AD_LAYERS])
{
    ad_grad a;
    double gr[3], dg[3];
    ad_density_grad(f, x, &a, gr);
    nerfd_normal_vjp(gr, dn, dg);
    for (int k = 0; k < 3; k++)
        dg[k] += dgr[k];
    /* Second order: through d out_0 / du into the table and the weights. */
    double ddu[3], tau[8], nxt[8];
    for (int k = 0; k < 3; k++)
        ddu[k] = dg[k] * a.act1 / f->side[k];
    nerfd_hash_encode_vjp_u_vjp(&f->g, f->table, a.u, a.gamma0, ddu, tau, dtable);
    for (int k = 0; k < AD_LAYERS - 1; k++) {
        nerfd_dense_input_grad_vjp(f->W[k], a.t[k], tau, nxt, dW[k], AD_DIMS[k], AD_DIMS[k + 1]);
        for (int j = 0; j < AD_DIMS[k + 1]; j++)
            tau[j] = a.acts[k][j] > 0 ? nxt[j] : 0;
    }
    for (int i = 0; i < AD_DIMS[AD_LAYERS - 1]; i++)
        dW[AD_LAYERS - 1][i] += tau[i];
    /* Through act'(raw): the first-order backward of raw. */
    double draw = (dg[0] * a.draw_dx[0] + dg[1] * a.draw_dx[1] + dg[2] * a.draw_dx[2]) *
                  nerfd_density_act_grad2(f->act, a.raw);
    double dy[8] = { draw, 0 }, dx[8];
    for (int k = AD_LAYERS - 1; k >= 0; k--) {
        const double *in = k == 0 ? a.enc : a.acts[k - 1];
        nerfd_dense_vjp(f->W[k], in, dy, dx, dW[k], db[k], AD_DIMS[k], AD_DIMS[k + 1]);
        for (int i = 0; i < AD_DIMS[k]; i++)
            dy[i] = k == 0 || in[i] > 0 ? dx[i] : 0;
    }
    nerfd_hash_encode_vjp(&f->g, a.u, dy, dtable);
}

/* Both activations (_i: 0 softplus, 1 exp). */
START_TEST(test_density_grad)
{
    ad_field f;
    ad_init(&f, _i);
    const double pts[4][3] = {
        { 0.13, -0.41, 0.27 }, { -0.52, 0.33, 0.61 }, { 0.71, 0.08, -0.36 }, { -0.2, -0.7, 0.1 }
    };
    double maxerr = 0, maxg = 0;
    for (int p = 0; p < 4; p++) {
        ad_grad a;
        double gr[3], acts[AD_LAYERS][8], enc[6], raw;
        ad_density_grad(&f, pts[p], &a, gr);
        for (int k = 0; k < 3; k++) {
            double xp[3] = { pts[p][0], pts[p][1], pts[p][2] }, xm[3];
            memcpy(xm, xp, sizeof xm);
            xp[k] += 1e-6;
            xm[k] -= 1e-6;
            double fd = (ad_forward(&f, xp, enc, acts, &raw) - ad_forward(&f, xm, enc, acts, &raw)) /
                        2e-6;
            maxerr = fmax(maxerr, fabs(fd - gr[k]) / (1 + fabs(fd)));
            maxg = fmax(maxg, fabs(gr[k]));
        }
    }
    ck_assert_msg(maxg > 0.1, "density gradient trivially small: %g", maxg);
    ck_assert_msg(maxerr < 1e-7, "density gradient vs FD: relative error %g", maxerr);
    ad_free(&f);
}
END_TEST

START_TEST(test_density_grad_vjp)
{
    ad_field f;
    ad_init(&f, _i);
    size_t nt = (size_t)f.g.entries * 2;
    double *dtable = calloc(nt, sizeof(double)), *dW[AD_LAYERS], *db[AD_LAYERS];
    for (int k = 0; k < AD_LAYERS; k++) {
        dW[k] = calloc((size_t)AD_DIMS[k] * AD_DIMS[k + 1], sizeof(double));
        db[k] = calloc((size_t)AD_DIMS[k + 1], sizeof(double));
    }
    const double x[3] = { 0.13, -0.41, 0.27 }, dn[3] = { 0.6, -0.3, 0.8 },
                 dgr[3] = { 0.05, 0.02, -0.04 };
    ad_backward(&f, x, dn, dgr, dtable, dW, db);
    /* Every entry of each group with a gradient, plus up to 4 zero ones; FD h = 1e-6
     * (the loss is smooth in the parameters away from ReLU kinks, which the point avoids:
     * no pre-activation within 1e-3 of 0, asserted below). */
    ad_grad a;
    double gr[3];
    ad_density_grad(&f, x, &a, gr);
    for (int k = 0; k < AD_LAYERS - 1; k++)
        for (int j = 0; j < AD_DIMS[k + 1]; j++)
            ck_assert_msg(a.acts[k][j] == 0 || a.acts[k][j] > 1e-3, "point near a kink");
    struct { const char *name; double *p, *g; size_t n; } groups[1 + 2 * AD_LAYERS];
    groups[0].name = "table", groups[0].p = f.table, groups[0].g = dtable, groups[0].n = nt;
    for (int k = 0; k < AD_LAYERS; k++) {
        groups[1 + 2 * k].name = "W", groups[1 + 2 * k].p = f.W[k], groups[1 + 2 * k].g = dW[k];
        groups[1 + 2 * k].n = (size_t)AD_DIMS[k] * AD_DIMS[k + 1];
        groups[2 + 2 * k].name = "b", groups[2 + 2 * k].p = f.b[k], groups[2 + 2 * k].g = db[k];
        groups[2 + 2 * k].n = (size_t)AD_DIMS[k + 1];
    }
    for (int gi = 0; gi < 1 + 2 * AD_LAYERS; gi++) {
        double gmax = 0, maxerr = 0;
        int zeros = 0, nonzero = 0;
        for (size_t i = 0; i < groups[gi].n; i++) {
            double an = groups[gi].g[i];
            if (an == 0 && zeros++ >= 4)
                continue;
            nonzero += an != 0;
            double keep = groups[gi].p[i];
            groups[gi].p[i] = keep + 1e-6;
            double lp = ad_loss(&f, x, dn, dgr);
            groups[gi].p[i] = keep - 1e-6;
            double lm = ad_loss(&f, x, dn, dgr);
            groups[gi].p[i] = keep;
            double fd = (lp - lm) / 2e-6;
            maxerr = fmax(maxerr, fabs(fd - an));
            gmax = fmax(gmax, fabs(an));
        }
        int layer = gi == 0 ? -1 : (gi - 1) / 2;
        /* (The last bias has one entry in the loss: output 0; output 1 feeds colour.) */
        int want = groups[gi].n > 2 ? 2 : 1;
        ck_assert_msg(gmax > 1e-3 && nonzero >= want, "%s[%d]: gradient trivially small (%g, "
                      "%d nonzero)", groups[gi].name, layer, gmax, nonzero);
        fprintf(stderr, "analytic normal VJP (%s) %s[%d]: %d nonzero, max |g| %.3g, max error "
                "%.2g\n", _i ? "exp" : "softplus", groups[gi].name, layer, nonzero, gmax, maxerr);
        ck_assert_msg(maxerr < 1e-6 * (1 + gmax), "%s[%d]: normal VJP vs FD error %g (max |g| "
                      "%g)", groups[gi].name, layer, maxerr, gmax);
    }
    free(dtable);
    for (int k = 0; k < AD_LAYERS; k++) {
        free(dW[k]);
        free(db[k]);
    }
    ad_free(&f);
}
END_TEST

/* ------------------------------------------------------------------ plugin: whole render */

/* A small network whose parameters are all O(1), so every group matters. */
static const char *SMALL =
    "levels: 3\nfeatures_per_level: 2\nlog2_table_size: 8\nbase_resolution: 3\n"
    "growth_factor: 1.8\ndensity_width: 8\ngeo_features: 3\ncolor_width: 8\n"
    "samples_per_ray: 24\nearly_stop: 0\noccupancy: false\nnormal_fd_eps: 0.05\n"
    "density_blob_scale: 2\nview_dependent: true\n";

static void randomise(nerf_inst *in, uint32_t seed, float table_scale)
{
    sl_param_group g[4];
    size_t n = VT()->param_groups(in->s, g, 4);
    for (size_t i = 0; i < n; i++) {
        test_normal(seed + (uint32_t)i, g[i].n, g[i].data);
        float sc = i == 0 ? table_scale : 0.6f;
        for (size_t j = 0; j < g[i].n; j++)
            g[i].data[j] *= sc;
    }
}

/* The loss whose gradient backward computes, evaluated at the current parameters in
 * double: <G, outputs> of a TRAIN render (same step: same jitter), plus the regularisers,
 * the orientation one with the weights of the reference point held fixed (w_ref). */
typedef struct loss_ctx {
    const sl_camera *cams;
    int B, H, W;
    const float *Grgb, *Gdepth, *Gnormal, *Gopac;   /* upstream gradients */
    const float *w_ref;   /* (rays, samples) weights at the reference, or NULL to capture */
    float *w_cap;         /* where to capture them */
} loss_ctx;

static double full_loss(nerf_inst *in, loss_ctx *c)
{
    nerf_state *s = in->s;
    render_buf rb;
    rb_alloc(&rb, c->B, c->H, c->W, 1);
    render_ok(in, c->cams, c->B, 3, SL_RENDER_TRAIN, &rb.r);
    size_t rays = (size_t)c->B * c->H * c->W;
    double L = 0;
    for (size_t i = 0; i < rays; i++) {
        for (int k = 0; k < 3; k++)
            L += (double)c->Grgb[3 * i + k] * rb.r.rgb[3 * i + k] +
                 (double)c->Gnormal[3 * i + k] * rb.r.normal[3 * i + k];
        L += (double)c->Gdepth[i] * rb.r.depth[i] + (double)c->Gopac[i] * rb.r.opacity[i];
        L += (double)s->lambda_sparsity / rays * rb.r.opacity[i];
    }
    /* Orientation with fixed weights: from the sample records of this render. */
    int S = s->n_samples;
    for (size_t r = 0; r < rays; r++) {
        const float *recs = s->blocks[r / NERF_RAY_BLOCK].recs + (size_t)s->ray_start[r] * s->rec_size;
        float T = 1;
        for (int k = 0; k < s->ray_n[r]; k++) {
            const float *rec = recs + (size_t)k * s->rec_size;
            float w = nerf_composite_step(rec[s->r_sigma], s->ray_dt[r], &T);
            if (c->w_cap)
                c->w_cap[r * S + k] = w;
            double wf = c->w_ref ? c->w_ref[r * S + k] : w;
            const float *d = s->ray_dir + 3 * r, *n = rec + s->r_n;
            double nd = (double)n[0] * d[0] + (double)n[1] * d[1] + (double)n[2] * d[2];
            if (nd > 0)
                L += (double)s->lambda_orient / rays * wf * nd * nd;
        }
    }
    rb_free(&rb);
    return L;
}

static void cams3(sl_camera *cams, int B, int H, int W)
{
    for (int b = 0; b < B; b++)
        sl_camera_orbit(30.0f + 100.0f * b, 20.0f - 15.0f * b, 2.2f, NULL, 45.0f, W, H, &cams[b]);
}

/* FD check of backward for one configuration. with_normals: upstream on the normals and
 * the orientation regulariser too. */
static void check_render_gradients(const char *extra, int with_normals, uint32_t seed)
{
    nerf_inst in;
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "%sbackground: learned\nlambda_sparsity: 0.3\nlambda_orient: %s\n%s",
             SMALL, with_normals ? "0.5" : "0", extra);
    nerf_new(&in, yaml);
    randomise(&in, seed, 0.8f);
    enum { B = 2, H = 5, W = 6 };
    const size_t rays = (size_t)B * H * W;
    sl_camera cams[B];
    cams3(cams, B, H, W);
    float Grgb[rays * 3], Gd[rays], Gn[rays * 3], Go[rays];
    test_normal(seed + 20, rays * 3, Grgb);
    test_normal(seed + 21, rays, Gd);
    test_normal(seed + 22, rays * 3, Gn);
    test_normal(seed + 23, rays, Go);
    for (size_t i = 0; i < rays; i++)
        Gd[i] *= 0.3f;
    if (!with_normals)
        memset(Gn, 0, sizeof Gn);
    float *w_ref = calloc(rays * (size_t)in.s->n_samples, sizeof(float));
    loss_ctx lc = { cams, B, H, W, Grgb, Gd, Gn, Go, NULL, w_ref };
    full_loss(&in, &lc);   /* captures w_ref; leaves the TRAIN render saved */
    lc.w_cap = NULL;
    lc.w_ref = w_ref;

    sl_param_group g[4];
    size_t ng = VT()->param_groups(in.s, g, 4);
    ck_assert_uint_eq(ng, 4);
    ck_assert_str_eq(g[3].name, "background");
    sl_render grad = { B, H, W, Grgb, Gd, with_normals ? Gn : NULL, Go };
    sl_error err;
    ck_assert_int_eq(VT()->backward(in.s, &grad, &err), SL_OK);
    double orient = 0, sparsity = 0;
    ck_assert(test_host_recorded(&in.host, "nerf_sparsity", &sparsity));
    if (with_normals)
        ck_assert(test_host_recorded(&in.host, "nerf_orient", &orient));
    ck_assert_msg(sparsity > 0 && (!with_normals || orient > 0),
                  "regulariser values %g %g", orient, sparsity);
    /* Keep the analytic gradients, then FD on the entry with the largest |g| and on 7 more
     * of each group. float FD: h = 2e-3 (values are O(1)); tolerance
     * |fd - g| <= 2e-3 max|g_group| + 3e-2 |g| (float rounding of the render divided by
     * 2h, plus O(h^2) curvature). Measured errors are ~1e-4 relative. */
    for (size_t gi = 0; gi < ng; gi++) {
        size_t n = g[gi].n;
        float *an = malloc(n * sizeof(float));
        memcpy(an, g[gi].grad, n * sizeof(float));
        float gmax = 0;
        size_t imax = 0;
        for (size_t j = 0; j < n; j++)
            if (fabsf(an[j]) > gmax) {
                gmax = fabsf(an[j]);
                imax = j;
            }
        ck_assert_msg(gmax > 1e-3, "group %s: gradient trivially small (%g)", g[gi].name, gmax);
        size_t picks[8] = { imax };
        for (int p = 1; p < 8; p++) {
            picks[p] = (imax * 7919u + 104729u * (size_t)p) % n;
            /* Prefer entries with a gradient (most of the table is untouched). */
            for (size_t tries = 0; tries < n && an[picks[p]] == 0; tries++)
                picks[p] = (picks[p] + 1) % n;
        }
        int checked_nonzero = 0;
        double worst = 0;
        for (int p = 0; p < 8; p++) {
            size_t j = picks[p];
            float keep = g[gi].data[j];
            const float h = 2e-3f;
            g[gi].data[j] = keep + h;
            double lp = full_loss(&in, &lc);
            g[gi].data[j] = keep - h;
            double lm = full_loss(&in, &lc);
            g[gi].data[j] = keep;
            double fd = (lp - lm) / (2.0 * h);
            double tol = 2e-3 * gmax + 3e-2 * fabs(an[j]);
            ck_assert_msg(fabs(fd - an[j]) <= tol,
                          "%s: group %s[%zu]: analytic %.6g, FD %.6g (tol %.3g, max |g| %.3g)",
                          with_normals ? "normals" : "rgb/depth/opacity", g[gi].name, j, an[j],
                          fd, tol, gmax);
            worst = fmax(worst, fabs(fd - an[j]) / (tol > 0 ? tol : 1));
            checked_nonzero += fabs(an[j]) > 1e-2 * gmax;
        }
        fprintf(stderr, "render FD (%s) %s: max |g| %.3g, worst error / tol %.3f\n",
                with_normals ? "normals" : "rgb/depth/opacity", g[gi].name, gmax, worst);
        ck_assert_msg(checked_nonzero >= 2, "group %s: too few non-trivial checks", g[gi].name);
        free(an);
    }
    free(w_ref);
    nerf_free(&in);
}

/* rgb, depth and opacity upstream, sparsity on: the full network (ReLU hidden layers). */
START_TEST(test_render_gradients)
{
    check_render_gradients("", 0, 100);
}
END_TEST

/* Normals upstream and the orientation regulariser too. The density MLP has no hidden
 * layer here: a ReLU kink crossed by one of the six FD probes of a sample moves its normal
 * by O(1/(2 normal_fd_eps)) and makes float FD of the whole render unreliable; the MLP's
 * own VJP (with kinks) is checked by test_render_gradients. */
START_TEST(test_render_gradients_normals)
{
    check_render_gradients("density_layers: 0\n", 1, 150);
}
END_TEST

/* The same with analytic normals, through the plugin's glue (nerf_density_grad and its
 * backward inside the render). No hidden density layer, for the reason above: a sample
 * whose ReLU pattern flips under a parameter perturbation changes its analytic normal by a
 * jump (seen with one hidden layer: one table entry FD 0.44 vs -0.41). The hidden-layer
 * path is checked per sample by test_density_grad_plugin and in double by
 * test_density_grad_vjp. */
START_TEST(test_render_gradients_analytic_normals)
{
    check_render_gradients("normals: analytic\ndensity_layers: 0\n", 1, 170);
}
END_TEST

/* The plugin's glue with two hidden density layers, per sample in float: nerf_density_grad
 * against central differences of nerf_eval (h = 1e-3), and nerf_density_grad_backward +
 * nerf_eval_backward against FD of L = <dn, n(grad sigma)> in the table and the density
 * MLP (the largest entries of each). Fixed points that cross no ReLU kink or cell face
 * within h (else FD would jump; deterministic, so this stays true). The three checked
 * entries per group are the successive running maxima of |g|. */
static double plugin_normal_loss(nerf_state *s, const float x[3], const float dn[3],
                                 float *rec)
{
    nerf_refresh_transposed(s);
    nerf_eval(s, x, NULL, rec);
    nerf_dgrad dg;
    float gr[3], n[3];
    nerf_density_grad(s, rec, &dg, gr);
    nerf_normal_from_grad(gr, n);
    return (double)dn[0] * n[0] + (double)dn[1] * n[1] + (double)dn[2] * n[2];
}

START_TEST(test_density_grad_plugin)
{
    nerf_inst in;
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "%snormals: analytic\ndensity_layers: 2\n", SMALL);
    nerf_new(&in, yaml);
    randomise(&in, 500, 0.8f);
    nerf_state *s = in.s;
    float *rec = malloc((size_t)s->rec_size * sizeof(float));
    const float pts[3][3] = { { 0.21f, -0.33f, 0.12f }, { -0.4f, 0.15f, 0.3f },
                              { 0.05f, 0.42f, -0.27f } };
    const float dn[3] = { 0.5f, -0.7f, 0.3f }, dir[3] = { 0, 0, 1 };
    double worst_grad = 0, gmax_grad = 0;
    for (int p = 0; p < 3; p++) {
        nerf_refresh_transposed(s);
        nerf_eval(s, pts[p], NULL, rec);
        nerf_dgrad dg;
        float gr[3];
        nerf_density_grad(s, rec, &dg, gr);
        for (int k = 0; k < 3; k++) {
            float xp[3] = { pts[p][0], pts[p][1], pts[p][2] }, xm[3] = { pts[p][0], pts[p][1],
                                                                         pts[p][2] };
            xp[k] += 1e-3f;
            xm[k] -= 1e-3f;
            double fd = ((double)nerf_eval(s, xp, NULL, rec) - nerf_eval(s, xm, NULL, rec)) / 2e-3;
            worst_grad = fmax(worst_grad, fabs(fd - gr[k]) / (1e-2 + 1e-2 * fabs(fd)));
            gmax_grad = fmax(gmax_grad, fabs(gr[k]));
        }
        /* The VJP at this point into fresh gradient buffers. */
        sl_param_group g[4];
        size_t ng = VT()->param_groups(s, g, 4);
        for (size_t i = 0; i < ng; i++)
            memset(g[i].grad, 0, g[i].n * sizeof(float));
        nerf_eval(s, pts[p], NULL, rec);
        nerf_density_grad(s, rec, &dg, gr);
        float dgr[3];
        nerf_normal_vjp(gr, dn, dgr);
        nerf_grads dst = { s->dtable, s->ddens_p, s->dcol_p, NULL };
        float draw = nerf_density_grad_backward(s, rec, &dg, dgr, &dst);
        nerf_eval_backward(s, rec, dir, 0.0f, NULL, draw, &dst);
        for (int gi = 0; gi < 2; gi++) {
            float gmax = 0;
            size_t imax[3] = { 0, 0, 0 };
            for (size_t j = 0; j < g[gi].n; j++) {
                float a = fabsf(g[gi].grad[j]);
                if (a > gmax) {
                    gmax = a;
                    imax[2] = imax[1], imax[1] = imax[0], imax[0] = j;
                }
            }
            ck_assert_msg(gmax > 1e-3, "point %d group %s: gradient trivially small", p,
                          g[gi].name);
            for (int q = 0; q < 3; q++) {
                size_t j = imax[q];
                float keep = g[gi].data[j], an = g[gi].grad[j];
                g[gi].data[j] = keep + 1e-3f;
                double lp = plugin_normal_loss(s, pts[p], dn, rec);
                g[gi].data[j] = keep - 1e-3f;
                double lm = plugin_normal_loss(s, pts[p], dn, rec);
                g[gi].data[j] = keep;
                double fd = (lp - lm) / 2e-3;
                /* 1e-4: float rounding of L (~6e-8 |L|) over 2h */
                ck_assert_msg(fabs(fd - an) <= 1e-4 + 1e-2 * gmax + 2e-2 * fabs(an),
                              "point %d group %s[%zu]: analytic %g, FD %g", p, g[gi].name, j,
                              an, fd);
            }
        }
    }
    fprintf(stderr, "analytic density gradient (plugin, float): max |g| %.3g, worst error / "
            "tol %.3f\n", gmax_grad, worst_grad);
    ck_assert_msg(gmax_grad > 0.1, "density gradient trivially small");
    ck_assert_msg(worst_grad <= 1, "density gradient vs FD: error / tol %g", worst_grad);
    free(rec);
    nerf_free(&in);
}
END_TEST

/* Analytic normals agree with FD normals (normal_fd_eps 1e-3) on a smooth field: coarse
 * levels (cells 0.5 and 0.25 wide) of a table drawn at scale 0.3 over the blob, so the
 * gradient is O(1) and varies, and FD differs only for samples within eps of a cell face or
 * a ReLU kink (the gradient jumps there). EVAL renders of 3 views, 24x20. */
START_TEST(test_analytic_normals_match_fd)
{
    const char *base = "levels: 2\nfeatures_per_level: 2\nbase_resolution: 4\n"
                       "growth_factor: 2\ndensity_width: 16\ngeo_features: 3\n"
                       "samples_per_ray: 48\noccupancy: false\nnormal_fd_eps: 1e-3\n"
                       "density_blob_std: 0.8\n";
    enum { B = 3, H = 20, W = 24 };
    sl_camera cams[B];
    cams3(cams, B, H, W);
    render_buf rb[2];
    for (int a = 0; a < 2; a++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, "%snormals: %s\n", base, a ? "analytic" : "finite_difference");
        nerf_inst in;
        nerf_new(&in, yaml);
        randomise(&in, 400, 0.3f);
        rb_alloc(&rb[a], B, H, W, 1);
        render_ok(&in, cams, B, 0, SL_RENDER_EVAL, &rb[a].r);
        nerf_free(&in);
    }
    const size_t n = (size_t)B * H * W * 3;
    double maxd = 0, sumd = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)rb[0].r.normal[i] - rb[1].r.normal[i]);
        maxd = fmax(maxd, d);
        sumd += d;
        norm += fabs(rb[1].r.normal[i]);
    }
    fprintf(stderr, "analytic vs FD normals: mean |diff| %.2e, max %.2e (mean |n| %.3f)\n",
            sumd / n, maxd, norm / n);
    ck_assert_msg(norm / n > 0.1, "normals trivially small");
    ck_assert_msg(sumd / n < 1e-3 && maxd < 5e-2, "analytic and FD normals differ: mean %g, max %g",
                  sumd / n, maxd);
    rb_free(&rb[0]);
    rb_free(&rb[1]);
}
END_TEST

/* Backward accumulates. */
START_TEST(test_backward_accumulates)
{
    nerf_inst in;
    nerf_new(&in, SMALL);
    randomise(&in, 200, 0.8f);
    enum { H = 4, W = 4 };
    sl_camera cam;
    cams3(&cam, 1, H, W);
    render_buf rb;
    rb_alloc(&rb, 1, H, W, 1);
    render_ok(&in, &cam, 1, 0, SL_RENDER_TRAIN, &rb.r);
    float G[H * W * 3];
    test_normal(30, H * W * 3, G);
    sl_render grad = { 1, H, W, G, NULL, NULL, NULL };
    sl_error err;
    sl_param_group g[4];
    VT()->param_groups(in.s, g, 4);
    ck_assert_int_eq(VT()->backward(in.s, &grad, &err), SL_OK);
    float *once = malloc(g[1].n * sizeof(float));
    memcpy(once, g[1].grad, g[1].n * sizeof(float));
    /* An EVAL render in between must not disturb what backward uses. */
    render_buf ev;
    rb_alloc(&ev, 1, 3, 3, 0);
    sl_camera c2;
    cams3(&c2, 1, 3, 3);
    render_ok(&in, &c2, 1, 0, SL_RENDER_EVAL, &ev.r);
    ck_assert_int_eq(VT()->backward(in.s, &grad, &err), SL_OK);
    for (size_t i = 0; i < g[1].n; i++)
        ck_assert_float_eq_tol(g[1].grad[i], 2 * once[i], 1e-5f * (1 + fabsf(once[i])));
    /* Shape mismatch is refused with a message. */
    sl_render bad = { 1, H + 1, W, G, NULL, NULL, NULL };
    ck_assert_int_eq(VT()->backward(in.s, &bad, &err), SL_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "last TRAIN render"));
    free(once);
    rb_free(&rb);
    rb_free(&ev);
    nerf_free(&in);
}
END_TEST

/* ------------------------------------------------------------------ analytic sphere */

typedef struct sphere_field {
    float radius, sigma, rgb[3];
} sphere_field;

static void sphere_fn(const float x[3], float *sigma, float rgb[3], void *ctx)
{
    const sphere_field *f = ctx;
    *sigma = x[0] * x[0] + x[1] * x[1] + x[2] * x[2] <= f->radius * f->radius ? f->sigma : 0;
    memcpy(rgb, f->rgb, sizeof f->rgb);
}

START_TEST(test_sphere_closed_form)
{
    nerf_inst in;
    nerf_new(&in, "samples_per_ray: 1024\nearly_stop: 0\noccupancy: false\nnormals: none\n"
                  "background_color: [0, 0, 0]\n");
    sphere_field f = { 0.6f, 2.0f, { 0.2f, 0.4f, 0.6f } };
    in.s->test_field = sphere_fn;
    in.s->test_ctx = &f;
    enum { H = 16, W = 16 };
    sl_camera cam;
    sl_camera_orbit(25.0f, 20.0f, 2.5f, NULL, 40.0f, W, H, &cam);
    render_buf rb;
    rb_alloc(&rb, 1, H, W, 0);
    render_ok(&in, &cam, 1, 0, SL_RENDER_EVAL, &rb.r);
    double max_eo = 0, max_ed = 0, tol_o = 0, tol_d = 0;
    int hits = 0;
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            float d[3];
            sl_camera_ray_dir(&cam, i, j, d);
            double o[3] = { cam.eye[0], cam.eye[1], cam.eye[2] };
            double bq = o[0] * d[0] + o[1] * d[1] + o[2] * d[2];
            double cq = o[0] * o[0] + o[1] * o[1] + o[2] * o[2] - (double)f.radius * f.radius;
            double disc = bq * bq - cq, op = 0, dep = 0;
            double cosz = d[0] * cam.rot[2] + d[1] * cam.rot[5] + d[2] * cam.rot[8];
            if (disc > 0) {
                double ta = -bq - sqrt(disc), tb = -bq + sqrt(disc), c = tb - ta, s = f.sigma;
                op = 1 - exp(-s * c);
                /* int_0^c s e^{-s u} (ta + u) du = ta (1 - e^{-sc}) + 1/s - e^{-sc} (c + 1/s) */
                dep = (ta * op + 1 / s - exp(-s * c) * (c + 1 / s)) * cosz;
                hits++;
            }
            /* Quadrature: midpoint strata of width dt along the box chord; only the two
             * strata crossing the surface are off, by at most dt in chord length. */
            float t0 = 0, t1 = 0;
            nerf_ray_box(cam.eye, d, in.s->bmin, in.s->bmax, &t0, &t1);
            double dt = (t1 - t0) / 1024.0;
            double to = f.sigma * dt + 1e-5, td = (f.sigma * 3.5 + 1) * dt * cosz + 1e-5;
            size_t p = (size_t)i * W + j;
            double eo = fabs(rb.r.opacity[p] - op), ed = fabs(rb.r.depth[p] - dep);
            ck_assert_msg(eo <= to, "pixel (%d, %d): opacity %g, closed form %g (tol %g)", i, j,
                          rb.r.opacity[p], op, to);
            ck_assert_msg(ed <= td, "pixel (%d, %d): depth %g, closed form %g (tol %g)", i, j,
                          rb.r.depth[p], dep, td);
            for (int k = 0; k < 3; k++)
                ck_assert_float_eq_tol(rb.r.rgb[3 * p + k], f.rgb[k] * rb.r.opacity[p], 1e-5f);
            max_eo = fmax(max_eo, eo);
            max_ed = fmax(max_ed, ed);
            tol_o = fmax(tol_o, to);
            tol_d = fmax(tol_d, td);
        }
    ck_assert_int_gt(hits, 20);
    fprintf(stderr, "sphere: %d hit pixels, max |opacity err| %.2e (tol %.2e), max |depth err| "
            "%.2e (tol %.2e)\n", hits, max_eo, tol_o, max_ed, tol_d);
    rb_free(&rb);
    nerf_free(&in);
}
END_TEST

START_TEST(test_occupancy_on_off)
{
    nerf_inst in;
    nerf_new(&in, "samples_per_ray: 128\nnormals: none\noccupancy_resolution: 32\n"
                  "occupancy_threshold: 0.01\n");
    sphere_field f = { 0.45f, 8.0f, { 0.9f, 0.1f, 0.3f } };
    in.s->test_field = sphere_fn;
    in.s->test_ctx = &f;
    /* Grid values of the analytic field: a few updates (random probes per cell). */
    sl_error err;
    memset(in.s->occ_val, 0, in.s->occ_cells * sizeof(float));   /* forget the blob's grid */
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(nerf_occ_update(in.s, (uint32_t)k, 0, 0.95f, &err), SL_OK);
    size_t occ = 0;
    for (size_t c = 0; c < in.s->occ_cells; c++)
        occ += in.s->occ_bits[c];
    ck_assert_msg(occ > 0 && occ < in.s->occ_cells / 4, "occupied cells %zu of %zu", occ,
                  in.s->occ_cells);
    enum { H = 24, W = 24 };
    sl_camera cams[2];
    cams3(cams, 2, H, W);
    render_buf on, off;
    rb_alloc(&on, 2, H, W, 0);
    rb_alloc(&off, 2, H, W, 0);
    render_ok(&in, cams, 2, 0, SL_RENDER_EVAL, &on.r);
    in.s->occ_on = 0;
    render_ok(&in, cams, 2, 0, SL_RENDER_EVAL, &off.r);
    double maxd = 0, maxo = 0;
    for (size_t i = 0; i < (size_t)2 * H * W; i++) {
        for (int k = 0; k < 3; k++)
            maxd = fmax(maxd, fabs(on.r.rgb[3 * i + k] - off.r.rgb[3 * i + k]));
        maxo = fmax(maxo, off.r.opacity[i]);
    }
    fprintf(stderr, "occupancy: %zu of %zu cells occupied, max |rgb on - off| %.2e\n", occ,
            in.s->occ_cells, maxd);
    ck_assert_msg(maxo > 0.9, "the sphere is not in view");
    ck_assert_msg(maxd <= 1e-3, "occupancy changes the render by %g", maxd);
    rb_free(&on);
    rb_free(&off);
    nerf_free(&in);
}
END_TEST

/* ------------------------------------------------------------------ determinism */

/* Render and backward on 1, 2 and 3 threads, bit for bit; extra: spec lines (normals:),
 * with_gn: an upstream gradient on the normals too. */
static void check_threads(const char *extra, int with_gn)
{
    enum { B = 2, H = 12, W = 10 };
    sl_camera cams[B];
    cams3(cams, B, H, W);
    const size_t rays = (size_t)B * H * W;
    float *G = malloc(rays * 3 * sizeof(float)), *Gd = malloc(rays * sizeof(float));
    test_normal(40, rays * 3, G);
    test_normal(41, rays, Gd);
    float *ref_out = NULL, *ref_grad = NULL;
    size_t nout = rays * 8, ngrad = 0;
    int max_threads = omp_get_max_threads();
    for (int threads = 1; threads <= 3; threads++) {
        omp_set_num_threads(threads);
        nerf_inst in;
        char yaml[512];
        snprintf(yaml, sizeof yaml, "levels: 6\nlog2_table_size: 10\nsamples_per_ray: 32\n"
                 "background: random\nlambda_orient: 0.1\nlambda_sparsity: 0.1\n%s", extra);
        nerf_new(&in, yaml);
        randomise(&in, 300, 0.3f);
        render_buf rb;
        rb_alloc(&rb, B, H, W, 1);
        render_ok(&in, cams, B, 5, SL_RENDER_TRAIN, &rb.r);
        sl_render grad = { B, H, W, G, Gd, with_gn ? G : NULL, NULL };
        sl_error err;
        ck_assert_int_eq(VT()->backward(in.s, &grad, &err), SL_OK);
        sl_param_group g[4];
        size_t ng = VT()->param_groups(in.s, g, 4);
        float *out = malloc(nout * sizeof(float));
        memcpy(out, rb.r.rgb, rays * 3 * 4);
        memcpy(out + rays * 3, rb.r.depth, rays * 4);
        memcpy(out + rays * 4, rb.r.normal, rays * 3 * 4);
        memcpy(out + rays * 7, rb.r.opacity, rays * 4);
        ngrad = 0;
        for (size_t i = 0; i < ng; i++)
            ngrad += g[i].n;
        float *gr = malloc(ngrad * sizeof(float)), *p = gr;
        for (size_t i = 0; i < ng; i++, p += g[i - 1].n)
            memcpy(p, g[i].grad, g[i].n * 4);
        if (!ref_out) {
            ref_out = out;
            ref_grad = gr;
        } else {
            ck_assert_msg(memcmp(out, ref_out, nout * 4) == 0, "render differs with %d threads",
                          threads);
            ck_assert_msg(memcmp(gr, ref_grad, ngrad * 4) == 0,
                          "gradients differ with %d threads", threads);
            free(out);
            free(gr);
        }
        rb_free(&rb);
        nerf_free(&in);
    }
    omp_set_num_threads(max_threads);
    free(ref_out);
    free(ref_grad);
    free(G);
    free(Gd);
}

START_TEST(test_threads_bit_identical)
{
    check_threads("", 0);
}
END_TEST

START_TEST(test_threads_bit_identical_analytic)
{
    check_threads("normals: analytic\n", 1);
}
END_TEST

/* ------------------------------------------------------------------ state and field */

START_TEST(test_state_round_trip)
{
    nerf_inst a, b;
    const char *yaml = "levels: 4\nlog2_table_size: 10\nsamples_per_ray: 32\n";
    nerf_new(&a, yaml);
    nerf_new(&b, yaml);
    randomise(&a, 400, 0.5f);
    sl_error err;
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(VT()->step_end(a.s, 16 * k + 15, &err), SL_OK);
    ck_assert(memcmp(a.s->occ_val, b.s->occ_val, a.s->occ_cells * 4) != 0);
    char path[] = "/tmp/test_nerf_ckptXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    sl_ckpt *c = NULL;
    sl_state_io *io = NULL;
    ck_assert_msg(sl_ckpt_begin(path, &c, &err) == SL_OK, "%s", err.msg);
    ck_assert_int_eq(sl_ckpt_section(c, "plugins/nerf", &io, &err), SL_OK);
    ck_assert_msg(VT()->save_state(a.s, io, &err) == SL_OK, "%s", err.msg);
    ck_assert_msg(sl_ckpt_commit(c, &err) == SL_OK, "%s", err.msg);
    ck_assert_msg(sl_ckpt_open(path, &c, &err) == SL_OK, "%s", err.msg);
    ck_assert_int_eq(sl_ckpt_section(c, "plugins/nerf", &io, &err), SL_OK);
    ck_assert_msg(VT()->load_state(b.s, io, &err) == SL_OK, "%s", err.msg);
    sl_ckpt_close(c);
    unlink(path);
    ck_assert(memcmp(a.s->occ_val, b.s->occ_val, a.s->occ_cells * 4) == 0);
    ck_assert(memcmp(a.s->occ_bits, b.s->occ_bits, a.s->occ_cells) == 0);
    /* With the same parameters (the host restores those), renders are bit-identical. */
    sl_param_group ga[4], gb[4];
    size_t n = VT()->param_groups(a.s, ga, 4);
    VT()->param_groups(b.s, gb, 4);
    for (size_t i = 0; i < n; i++)
        memcpy(gb[i].data, ga[i].data, ga[i].n * 4);
    enum { H = 8, W = 8 };
    sl_camera cam;
    cams3(&cam, 1, H, W);
    render_buf ra, rb;
    rb_alloc(&ra, 1, H, W, 1);
    rb_alloc(&rb, 1, H, W, 1);
    render_ok(&a, &cam, 1, 9, SL_RENDER_TRAIN, &ra.r);
    render_ok(&b, &cam, 1, 9, SL_RENDER_TRAIN, &rb.r);
    ck_assert(memcmp(ra.r.rgb, rb.r.rgb, H * W * 12) == 0);
    ck_assert(memcmp(ra.r.normal, rb.r.normal, H * W * 12) == 0);
    rb_free(&ra);
    rb_free(&rb);
    nerf_free(&a);
    nerf_free(&b);
}
END_TEST

START_TEST(test_sample_field_matches_render)
{
    nerf_inst in;
    nerf_new(&in, "levels: 4\nlog2_table_size: 10\nsamples_per_ray: 16\nocc"
                  "upancy: false\nnormals: none\n");
    randomise(&in, 500, 0.5f);
    enum { H = 4, W = 4 };
    sl_camera cam;
    cams3(&cam, 1, H, W);
    render_buf rb;
    rb_alloc(&rb, 1, H, W, 0);
    render_ok(&in, &cam, 1, 2, SL_RENDER_TRAIN, &rb.r);
    nerf_state *s = in.s;
    size_t n = s->blocks[0].count;
    ck_assert_uint_gt(n, 10);
    float *pts = malloc(n * 3 * 4), *dens = malloc(n * 4), *rgb = malloc(n * 12);
    for (size_t k = 0; k < n; k++)
        memcpy(pts + 3 * k, s->blocks[0].recs + k * s->rec_size + s->r_x, 12);
    sl_error err;
    ck_assert_int_eq(VT()->sample_field(s, pts, n, dens, rgb, &err), SL_OK);
    for (size_t k = 0; k < n; k++)
        ck_assert_msg(dens[k] == s->blocks[0].recs[k * s->rec_size + s->r_sigma],
                      "sample %zu: field %g, render %g", k, dens[k],
                      s->blocks[0].recs[k * s->rec_size + s->r_sigma]);
    float far[3] = { 5, 0, 0 }, d1;
    ck_assert_int_eq(VT()->sample_field(s, far, 1, &d1, NULL, &err), SL_OK);
    ck_assert(d1 == 0);
    float bounds[6], thr;
    VT()->field_bounds(s, bounds, &thr);
    ck_assert(bounds[0] == -1 && bounds[5] == 1);
    ck_assert_float_eq_tol(thr, logf(2) / (2.0f / 32), 1e-4f);
    free(pts);
    free(dens);
    free(rgb);
    rb_free(&rb);
    nerf_free(&in);
}
END_TEST

START_TEST(test_descriptor_and_errors)
{
    const sl_plugin *p = test_entry_nerf(0);
    ck_assert_str_eq(p->name, "nerf");
    ck_assert_int_eq(p->kind, SL_KIND_REPRESENTATION);
    ck_assert_ptr_null(test_entry_nerf(1));
    nerf_inst in;
    sl_error err;
    ck_assert_int_eq(nerf_try(&in, "normals: none\nlambda_orient: 1\n", &err), SL_ERR_SPEC);
    ck_assert_ptr_nonnull(strstr(err.msg, "lambda_orient"));
    sl_params_free(in.params);
    nerf_new(&in, "normals: none\n");
    ck_assert_uint_eq(VT()->outputs(in.s) & SL_RENDER_NORMAL, 0);
    sl_camera cam;
    cams3(&cam, 1, 2, 2);
    render_buf rb;
    rb_alloc(&rb, 1, 2, 2, 1);
    sl_render_request req = { &cam, 1, 0, SL_RENDER_EVAL };
    ck_assert_int_eq(VT()->render(in.s, &req, &rb.r, &err), SL_ERR_UNSUPPORTED);
    rb_free(&rb);
    sl_render g = { 1, 2, 2, NULL, NULL, NULL, NULL };
    ck_assert_int_eq(VT()->backward(in.s, &g, &err), SL_ERR_INVALID_ARG);
    nerf_free(&in);
    /* Analytic normals need the network: refused with the analytic test field. */
    nerf_new(&in, "normals: analytic\n");
    ck_assert_uint_ne(VT()->outputs(in.s) & SL_RENDER_NORMAL, 0);
    sphere_field sf = { 0.5f, 2.0f, { 1, 0, 0 } };
    in.s->test_field = sphere_fn;
    in.s->test_ctx = &sf;
    rb_alloc(&rb, 1, 2, 2, 1);
    ck_assert_int_eq(VT()->render(in.s, &req, &rb.r, &err), SL_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.msg, "analytic"));
    rb_free(&rb);
    nerf_free(&in);
    ck_assert_int_ge(in.host.n_series, 4);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nerf");
    TCase *m = tcase_create("math");
    tcase_add_test(m, test_hash_vjp);
    tcase_add_test(m, test_dense_vjp);
    tcase_add_test(m, test_composite_vjp);
    tcase_add_test(m, test_normal_vjp);
    tcase_add_loop_test(m, test_density_grad, NERF_ACT_SOFTPLUS, NERF_ACT_EXP + 1);
    tcase_add_loop_test(m, test_density_grad_vjp, NERF_ACT_SOFTPLUS, NERF_ACT_EXP + 1);
    suite_add_tcase(s, m);
    TCase *r = tcase_create("render");
    tcase_set_timeout(r, 600);
    tcase_add_test(r, test_descriptor_and_errors);
    tcase_add_test(r, test_render_gradients);
    tcase_add_test(r, test_render_gradients_normals);
    tcase_add_test(r, test_render_gradients_analytic_normals);
    tcase_add_test(r, test_analytic_normals_match_fd);
    tcase_add_test(r, test_density_grad_plugin);
    tcase_add_test(r, test_backward_accumulates);
    tcase_add_test(r, test_sphere_closed_form);
    tcase_add_test(r, test_occupancy_on_off);
    tcase_add_test(r, test_threads_bit_identical);
    tcase_add_test(r, test_threads_bit_identical_analytic);
    tcase_add_test(r, test_state_round_trip);
    tcase_add_test(r, test_sample_field_matches_render);
    suite_add_tcase(s, r);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
