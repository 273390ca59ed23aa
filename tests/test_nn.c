/* tests/test_nn.c — the NN building blocks (nn.h): every backward against central finite
 * differences, a whole residual block, attention with 2 heads, a tiny 2-level UNet end to
 * end, and thread-count determinism.
 *
 * How gradients are checked. Each test defines a scalar loss L = sum_i r_i y_i (r fixed
 * random, accumulated in double) of the block's output y, so dL/dy = r is what backward
 * receives. For a tensor t with analytic gradient g, up to NPICK elements are perturbed
 * (t_i +- h) and the central difference fd_i = (L(t_i + h) - L(t_i - h)) / 2h compared:
 *     |fd_i - g_i| <= ATOL_REL * max|g| + RTOL * |g_i|,   ATOL_REL = 2e-3, RTOL = 1e-2,
 * with h = 1e-2 (forward passes are float: L carries ~1e-7 relative rounding, which the
 * 2h division turns into ~1e-5 absolute; the truncation error of smooth blocks is
 * O(h^2) ~ 1e-4 relative). A check is only meaningful when the gradient is not tiny, so
 * each one also asserts max|g| >= 1e-2, two orders of magnitude above the absolute
 * tolerance's noise floor. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/nn.h"
#include "steinlab/nn_math.h"
#include "steinlab/rng.h"
#include "support/fd_check.h"

enum { NPICK = 24 };
static const double H_FD = 1e-2, ATOL_REL = 2e-3, RTOL = 1e-2, GMIN = 1e-2;

/* ---- helpers ---- */

static float *randn(size_t n, uint32_t stream, float scale)   /* (n,) */
{
    float *v = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(v);
    sl_rng_key k = { 1234, 0, stream, 0 };
    sl_rng_normal(k, 0, n, v);
    for (size_t i = 0; i < n; i++)
        v[i] *= scale;
    return v;
}

static float *zeros(size_t n) { float *v = calloc(n ? n : 1, sizeof(float)); ck_assert_ptr_nonnull(v); return v; }

/* A problem: fwd(ctx, y) computes the block's output y (ny,) from whatever tensors ctx
 * points at; the loss is <r, y> in double. */
typedef struct problem {
    void (*fwd)(void *ctx, float *y);
    void *ctx;
    size_t ny;
    const float *r;   /* (ny,) */
    float *y;         /* (ny,) scratch */
} problem;

static double loss(problem *pb)
{
    pb->fwd(pb->ctx, pb->y);
    double s = 0.0;
    for (size_t i = 0; i < pb->ny; i++)
        s += (double)pb->r[i] * pb->y[i];
    return s;
}

static double problem_loss(void *pb)
{
    return loss(pb);
}

/* Checks g (n,) = dL/dt against central differences on up to NPICK elements of t. */
static void check_grad(problem *pb, const char *name, float *t, const float *g, size_t n)
{
    static const fd_options fd = { NPICK, H_FD, ATOL_REL, RTOL, GMIN };
    fd_check(name, problem_loss, pb, t, g, n, &fd);
}

/* ---- linear ---- */

typedef struct lin_ctx { float *x, *w, *b; int N, in, out; } lin_ctx;
static void lin_fwd(void *c_, float *y)
{
    lin_ctx *c = c_;
    sl_linear_forward(y, c->x, c->w, c->b, c->N, c->in, c->out);
}

START_TEST(test_linear)
{
    lin_ctx c = { NULL, NULL, NULL, 5, 7, 3 };
    c.x = randn(5 * 7, 1, 1.0f);
    c.w = randn(3 * 7, 2, 0.5f);
    c.b = randn(3, 3, 0.5f);
    float *r = randn(5 * 3, 4, 1.0f), *y = zeros(15);
    problem pb = { lin_fwd, &c, 15, r, y };
    float *dx = zeros(35), *dw = zeros(21), *db = zeros(3);
    sl_linear_backward(dx, dw, db, r, c.x, c.w, 5, 7, 3);
    check_grad(&pb, "linear dx", c.x, dx, 35);
    check_grad(&pb, "linear dw", c.w, dw, 21);
    check_grad(&pb, "linear db", c.b, db, 3);
    /* Accumulation: a second backward adds the same again; NULLs skip. */
    float *dx2 = zeros(35);
    memcpy(dx2, dx, 35 * sizeof(float));
    sl_linear_backward(dx2, NULL, NULL, r, NULL, c.w, 5, 7, 3);
    for (int i = 0; i < 35; i++)
        ck_assert(fabsf(dx2[i] - 2.0f * dx[i]) <= 1e-6f * (1.0f + fabsf(dx[i])));
    free(c.x), free(c.w), free(c.b), free(r), free(y), free(dx), free(dw), free(db), free(dx2);
}
END_TEST

/* ---- conv2d ---- */

typedef struct conv_ctx { float *x, *w, *b; sl_conv2d_shape s; } conv_ctx;
static void conv_fwd(void *c_, float *y)
{
    conv_ctx *c = c_;
    sl_error err;
    ck_assert_int_eq(sl_conv2d_forward(y, c->x, c->w, c->b, &c->s, &err), SL_OK);
}

/* A direct 7-loop convolution in double, the reference for forward. */
static void conv_ref(double *y, const float *x, const float *w, const float *b,
                     const sl_conv2d_shape *s)
{
    int Ho = sl_conv2d_out_h(s), Wo = sl_conv2d_out_w(s);
    for (int bi = 0; bi < s->B; bi++)
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++)
                for (int o = 0; o < s->cout; o++) {
                    double acc = b ? b[o] : 0.0;
                    for (int ky = 0; ky < s->k; ky++)
                        for (int kx = 0; kx < s->k; kx++) {
                            int h = i * s->stride - s->pad + ky, ww = j * s->stride - s->pad + kx;
                            if (h < 0 || h >= s->H || ww < 0 || ww >= s->W)
                                continue;
                            for (int c = 0; c < s->cin; c++)
                                acc += (double)x[(((size_t)bi * s->H + h) * s->W + ww) * s->cin + c] *
                                       w[(((size_t)o * s->k + ky) * s->k + kx) * s->cin + c];
                        }
                    y[(((size_t)bi * Ho + i) * Wo + j) * s->cout + o] = acc;
                }
}

static void run_conv_case(sl_conv2d_shape s)
{
    int Ho = sl_conv2d_out_h(&s), Wo = sl_conv2d_out_w(&s);
    ck_assert_int_gt(Ho, 0);
    size_t nx = (size_t)s.B * s.H * s.W * s.cin, nw = sl_conv2d_weight_numel(&s);
    size_t ny = (size_t)s.B * Ho * Wo * s.cout;
    conv_ctx c = { randn(nx, 10, 1.0f), randn(nw, 11, 0.3f), randn(s.cout, 12, 0.3f), s };
    float *r = randn(ny, 13, 1.0f), *y = zeros(ny);
    /* forward against the direct double loop */
    conv_fwd(&c, y);
    double *yr = malloc(ny * sizeof(double));
    conv_ref(yr, c.x, c.w, c.b, &s);
    for (size_t i = 0; i < ny; i++)
        ck_assert_msg(fabs(y[i] - yr[i]) <= 1e-5 * (1.0 + fabs(yr[i])),
                      "conv forward k=%d stride=%d pad=%d [%zu]: %g vs %g", s.k, s.stride, s.pad,
                      i, y[i], yr[i]);
    problem pb = { conv_fwd, &c, ny, r, zeros(ny) };
    float *dx = zeros(nx), *dw = zeros(nw), *db = zeros(s.cout);
    sl_error err;
    ck_assert_int_eq(sl_conv2d_backward(dx, dw, db, r, c.x, c.w, &s, &err), SL_OK);
    char name[64];
    snprintf(name, sizeof name, "conv k%d s%d p%d dx", s.k, s.stride, s.pad);
    check_grad(&pb, name, c.x, dx, nx);
    name[strlen(name) - 1] = 'w';
    check_grad(&pb, name, c.w, dw, nw);
    snprintf(name, sizeof name, "conv k%d s%d p%d db", s.k, s.stride, s.pad);
    check_grad(&pb, name, c.b, db, s.cout);
    free(c.x), free(c.w), free(c.b), free(r), free(y), free(yr), free(pb.y), free(dx), free(dw),
        free(db);
}

START_TEST(test_conv2d)
{
    /* B, H, W, cin, cout, k, stride, pad: 3x3 and 5x5 same (dX as a transposed
     * convolution), 3x3 stride 2 (odd and even sizes), 1x1 pointwise (the GEMM path), 1x1
     * stride 2, 3x3 without padding and with more than "same" (dX by col2im). */
    sl_conv2d_shape cases[] = {
        { 2, 5, 6, 3, 4, 3, 1, 1 }, { 2, 7, 6, 3, 5, 3, 2, 1 }, { 1, 8, 8, 4, 3, 3, 2, 1 },
        { 2, 4, 5, 6, 3, 1, 1, 0 }, { 2, 5, 5, 3, 4, 1, 2, 0 }, { 1, 6, 5, 2, 3, 3, 1, 0 },
        { 1, 7, 6, 3, 2, 5, 1, 2 }, { 1, 5, 4, 2, 3, 3, 1, 2 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_conv_case(cases[i]);
}
END_TEST

/* dX and dW of larger layers against the direct double sums
 *   dW[o, ky, kx, c] = sum_{b, i, j} dY[b, i, j, o] X[b, i s - p + ky, j s - p + kx, c],
 *   dX[b, h, w, c]   = sum over the (i, j, o, ky, kx) that read it of dY[b, i, j, o] W[o, ky, kx, c]:
 * enough output pixels that the weight gradient's chunks outnumber its partial sums (each
 * partial then sums several chunks), the input gradient both as a convolution (same) and
 * by col2im (stride 2). */
START_TEST(test_conv2d_backward_large)
{
    sl_conv2d_shape cases[] = { { 3, 40, 40, 5, 6, 3, 1, 1 }, { 2, 41, 40, 4, 5, 3, 2, 1 } };
    for (size_t n = 0; n < sizeof cases / sizeof cases[0]; n++) {
        const sl_conv2d_shape *s = &cases[n];
        const int Ho = sl_conv2d_out_h(s), Wo = sl_conv2d_out_w(s), k = s->k;
        size_t nx = (size_t)s->B * s->H * s->W * s->cin, nw = sl_conv2d_weight_numel(s);
        size_t ny = (size_t)s->B * Ho * Wo * s->cout;
        float *x = randn(nx, 20, 1.0f), *w = randn(nw, 21, 0.3f), *dy = randn(ny, 22, 1.0f);
        float *dx = zeros(nx), *dw = zeros(nw);
        double *rx = calloc(nx, sizeof(double)), *rw = calloc(nw, sizeof(double));
        sl_error err;
        ck_assert_int_eq(sl_conv2d_backward(dx, dw, NULL, dy, x, w, s, &err), SL_OK);
        for (int b = 0; b < s->B; b++)
            for (int i = 0; i < Ho; i++)
                for (int j = 0; j < Wo; j++)
                    for (int o = 0; o < s->cout; o++) {
                        double g = dy[(((size_t)b * Ho + i) * Wo + j) * s->cout + o];
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int h = i * s->stride - s->pad + ky, ww = j * s->stride - s->pad + kx;
                                if (h < 0 || h >= s->H || ww < 0 || ww >= s->W)
                                    continue;
                                size_t xi = (((size_t)b * s->H + h) * s->W + ww) * s->cin;
                                size_t wi = (((size_t)o * k + ky) * k + kx) * s->cin;
                                for (int c = 0; c < s->cin; c++) {
                                    rw[wi + c] += g * x[xi + c];
                                    rx[xi + c] += g * w[wi + c];
                                }
                            }
                    }
        double nrm = 0;
        for (size_t i = 0; i < nw; i++) {
            nrm += fabs(rw[i]);
            ck_assert_msg(fabs(dw[i] - rw[i]) <= 1e-4 * (1.0 + fabs(rw[i])),
                          "case %zu dW[%zu]: %g vs %g", n, i, dw[i], rw[i]);
        }
        ck_assert(nrm > 1.0);
        nrm = 0;
        for (size_t i = 0; i < nx; i++) {
            nrm += fabs(rx[i]);
            ck_assert_msg(fabs(dx[i] - rx[i]) <= 1e-4 * (1.0 + fabs(rx[i])),
                          "case %zu dX[%zu]: %g vs %g", n, i, dx[i], rx[i]);
        }
        ck_assert(nrm > 1.0);
        free(x), free(w), free(dy), free(dx), free(dw), free(rx), free(rw);
    }
}
END_TEST

START_TEST(test_conv2d_bad_shape)
{
    sl_conv2d_shape s = { 1, 2, 2, 3, 4, 3, 3, 0 };
    sl_error err;
    float x[12] = { 0 }, y[16];
    ck_assert_int_eq(sl_conv2d_forward(y, x, x, NULL, &s, &err), SL_ERR_INVALID_ARG);
    ck_assert_str_eq(err.msg, "conv2d: invalid shape B=1 H=2 W=2 cin=3 cout=4 k=3 stride=3 pad=0");
}
END_TEST

/* ---- group norm, SiLU, resampling, concat, channel bias ---- */

typedef struct gn_ctx { float *x, *g, *b, *mean, *rstd; int B, N, C, G; } gn_ctx;
static void gn_fwd(void *c_, float *y)
{
    gn_ctx *c = c_;
    sl_groupnorm_forward(y, c->mean, c->rstd, c->x, c->g, c->b, c->B, c->N, c->C, c->G, 1e-5f);
}

START_TEST(test_groupnorm)
{
    gn_ctx c = { NULL, NULL, NULL, NULL, NULL, 2, 6, 8, 4 };
    size_t n = 2 * 6 * 8;
    c.x = randn(n, 20, 1.5f);
    for (size_t i = 0; i < n; i++)
        c.x[i] += 3.0f;   /* an offset: the centred variance must not lose precision */
    c.g = randn(8, 21, 1.0f);
    c.b = randn(8, 22, 1.0f);
    c.mean = zeros(8);
    c.rstd = zeros(8);
    float *r = randn(n, 23, 1.0f), *y = zeros(n);
    gn_fwd(&c, y);
    /* Normalised output: each (image, group) of xhat has mean 0 and variance ~1. */
    for (int bg = 0; bg < 8; bg++) {
        int bi = bg / 4, g = bg % 4;
        double s = 0, s2 = 0;
        for (int p = 0; p < 6; p++)
            for (int cc = 0; cc < 2; cc++) {
                float xh = (c.x[(bi * 6 + p) * 8 + g * 2 + cc] - c.mean[bg]) * c.rstd[bg];
                s += xh;
                s2 += (double)xh * xh;
            }
        ck_assert(fabs(s / 12) < 1e-5 && fabs(s2 / 12 - 1.0) < 1e-3);
    }
    problem pb = { gn_fwd, &c, n, r, y };
    float *dx = zeros(n), *dg = zeros(8), *db = zeros(8);
    sl_groupnorm_backward(dx, dg, db, r, c.x, c.mean, c.rstd, c.g, 2, 6, 8, 4);
    check_grad(&pb, "groupnorm dx", c.x, dx, n);
    check_grad(&pb, "groupnorm dgamma", c.g, dg, 8);
    check_grad(&pb, "groupnorm dbeta", c.b, db, 8);
    free(c.x), free(c.g), free(c.b), free(c.mean), free(c.rstd), free(r), free(y), free(dx),
        free(dg), free(db);
}
END_TEST

typedef struct unary_ctx { float *x; int op; int B, H, W, C; } unary_ctx;
static void unary_fwd(void *c_, float *y)
{
    unary_ctx *c = c_;
    size_t n = (size_t)c->B * c->H * c->W * c->C;
    if (c->op == 0)
        sl_silu_forward(y, c->x, n);
    else if (c->op == 1)
        sl_upsample2x_forward(y, c->x, c->B, c->H, c->W, c->C);
    else
        sl_avgpool2x_forward(y, c->x, c->B, c->H, c->W, c->C);
}

START_TEST(test_unary_ops)
{
    const char *names[] = { "silu dx", "upsample2x dx", "avgpool2x dx" };
    for (int op = 0; op < 3; op++) {
        unary_ctx c = { NULL, op, 2, 4, 6, 3 };
        size_t nx = 2 * 4 * 6 * 3;
        size_t ny = op == 0 ? nx : op == 1 ? nx * 4 : nx / 4;
        c.x = randn(nx, 30 + op, 2.0f);
        float *r = randn(ny, 40 + op, 1.0f), *y = zeros(ny), *dx = zeros(nx);
        problem pb = { unary_fwd, &c, ny, r, y };
        if (op == 0)
            sl_silu_backward(dx, r, c.x, nx);
        else if (op == 1)
            sl_upsample2x_backward(dx, r, 2, 4, 6, 3);
        else
            sl_avgpool2x_backward(dx, r, 2, 4, 6, 3);
        check_grad(&pb, names[op], c.x, dx, nx);
        free(c.x), free(r), free(y), free(dx);
    }
    /* SiLU's exact values and its large-|x| limits (no NaN from exp overflow). */
    float x[4] = { 0.0f, 1.0f, -100.0f, 100.0f }, y[4];
    sl_silu_forward(y, x, 4);
    ck_assert(y[0] == 0.0f && fabsf(y[1] - 0.7310586f) < 1e-6f && y[2] > -1e-30f &&
              y[2] <= 0.0f && y[3] == 100.0f);
    float dx[4] = { 0 }, one[4] = { 1, 1, 1, 1 };
    sl_silu_backward(dx, one, x, 4);
    ck_assert(fabsf(dx[0] - 0.5f) < 1e-7f && isfinite(dx[2]) && fabsf(dx[3] - 1.0f) < 1e-6f);
}
END_TEST

/* silu' and silu'' (nn_math.h) against central differences of double copies of silu and
 * silu' (h = 1e-4: truncation ~1e-9, rounding ~1e-12 in double; the float results carry
 * ~1e-7 relative), on a grid over [-12, 12] where both derivatives are far from 0 somewhere:
 * |silu''| reaches 0.5 at 0, so the check is not vacuous (asserted). */
static double silu_double(double x) { return x / (1.0 + exp(-x)); }
static double silu_d1_double(double x)
{
    const double s = 1.0 / (1.0 + exp(-x));
    return s * (1.0 + x * (1.0 - s));
}

START_TEST(test_silu_derivatives)
{
    const double h = 1e-4;
    double max_d2 = 0;
    for (int i = 0; i <= 240; i++) {
        const float x = -12.0f + 0.1f * (float)i;
        const double fd1 = (silu_double(x + h) - silu_double(x - h)) / (2 * h);
        const double fd2 = (silu_d1_double(x + h) - silu_d1_double(x - h)) / (2 * h);
        ck_assert_msg(fabs(sl_silu_d1(x) - fd1) <= 1e-6 * (1 + fabs(fd1)),
                      "silu'(%g) = %.8g, differences %.8g", x, sl_silu_d1(x), fd1);
        ck_assert_msg(fabs(sl_silu_d2(x) - fd2) <= 1e-6 * (1 + fabs(fd2)),
                      "silu''(%g) = %.8g, differences %.8g", x, sl_silu_d2(x), fd2);
        ck_assert(fabsf(sl_silu_d1(x) * 0.75f - sl_silu_vjp(x, 0.75f)) <=
                  1e-6f * fabsf(sl_silu_vjp(x, 0.75f)));
        max_d2 = fmax(max_d2, fabs(fd2));
    }
    ck_assert(max_d2 > 0.4);
    ck_assert(isfinite(sl_silu_d2(-100.0f)) && isfinite(sl_silu_d2(100.0f)));
}
END_TEST

typedef struct cat_ctx { float *a, *b, *v; int op; } cat_ctx;
static void cat_fwd(void *c_, float *y)
{
    cat_ctx *c = c_;
    if (c->op == 0) {
        sl_concat_forward(y, c->a, c->b, 10, 3, 4);
    } else {
        memcpy(y, c->a, 2 * 5 * 3 * sizeof(float));
        sl_add_channel_bias_forward(y, c->v, 2, 5, 3);
    }
}

START_TEST(test_concat_and_bias)
{
    cat_ctx c = { randn(30, 50, 1), randn(40, 51, 1), randn(6, 52, 1), 0 };
    float *r = randn(70, 53, 1), *y = zeros(70), *da = zeros(30), *db = zeros(40);
    problem pb = { cat_fwd, &c, 70, r, y };
    sl_concat_backward(da, db, r, 10, 3, 4);
    check_grad(&pb, "concat da", c.a, da, 30);
    check_grad(&pb, "concat db", c.b, db, 40);
    c.op = 1;
    pb.ny = 30;
    float *dv = zeros(6);
    sl_add_channel_bias_backward(dv, r, 2, 5, 3);
    check_grad(&pb, "channel bias dv", c.v, dv, 6);
    free(c.a), free(c.b), free(c.v), free(r), free(y), free(da), free(db), free(dv);
}
END_TEST

START_TEST(test_time_embedding)
{
    float t[2] = { 0.0f, 999.0f }, e[2 * 8];
    sl_time_embedding(e, t, 2, 8, 10000.0f);
    for (int i = 0; i < 4; i++) {
        ck_assert(e[i] == 0.0f && e[4 + i] == 1.0f);   /* sin 0, cos 0 */
        double f = exp(-log(10000.0) * i / 4.0);
        ck_assert(fabs(e[8 + i] - sin(999.0 * f)) < 1e-5);
        ck_assert(fabs(e[12 + i] - cos(999.0 * f)) < 1e-5);
    }
}
END_TEST

/* ---- attention ---- */

typedef struct att_ctx { float *qkv, *probs; int B, N, C, nh; } att_ctx;
static void att_fwd(void *c_, float *y)
{
    att_ctx *c = c_;
    sl_error err;
    ck_assert_int_eq(sl_attention_forward(y, c->probs, c->qkv, c->B, c->N, c->C, c->nh, &err),
                     SL_OK);
}

START_TEST(test_attention)
{
    att_ctx c = { NULL, NULL, 2, 5, 8, 2 };
    size_t nq = 2 * 5 * 24;
    c.qkv = randn(nq, 60, 1.0f);
    c.probs = zeros(2 * 2 * 5 * 5);
    float *r = randn(80, 61, 1.0f), *y = zeros(80), *dq = zeros(nq);
    att_fwd(&c, y);
    /* Rows of P sum to 1; a large logit shift does not overflow (max subtraction). */
    for (int i = 0; i < 20; i++) {
        double s = 0;
        for (int j = 0; j < 5; j++)
            s += c.probs[i * 5 + j];
        ck_assert(fabs(s - 1.0) < 1e-6);
    }
    problem pb = { att_fwd, &c, 80, r, y };
    sl_error err;
    ck_assert_int_eq(sl_attention_backward(dq, r, c.qkv, c.probs, 2, 5, 8, 2, &err), SL_OK);
    att_fwd(&c, y);   /* probs for the unperturbed qkv, after the FD passes below */
    check_grad(&pb, "attention dqkv", c.qkv, dq, nq);
    /* Huge logits stay finite. */
    float *big = randn(nq, 62, 300.0f), *o = zeros(80);
    ck_assert_int_eq(sl_attention_forward(o, c.probs, big, 2, 5, 8, 2, &err), SL_OK);
    for (int i = 0; i < 80; i++)
        ck_assert(isfinite(o[i]));
    ck_assert_int_eq(sl_attention_forward(o, c.probs, big, 2, 5, 9, 2, &err), SL_ERR_INVALID_ARG);
    free(c.qkv), free(c.probs), free(r), free(y), free(dq), free(big), free(o);
}
END_TEST

/* ---- parameter store ---- */

START_TEST(test_params)
{
    sl_nn_params p;
    sl_nn_params_init(&p);
    sl_error err;
    int64_t s1[2] = { 3, 5 }, s2[1] = { 7 };
    size_t i1, i2;
    ck_assert_int_eq(sl_nn_params_declare(&p, "a.weight", 2, s1, SL_NN_INIT_UNIFORM, 5, &i1, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_declare(&p, "a.bias", 1, s2, SL_NN_INIT_ONE, 0, &i2, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_declare(&p, "a.bias", 1, s2, SL_NN_INIT_ONE, 0, NULL, &err),
                     SL_ERR_INVALID_ARG);
    ck_assert_str_eq(err.msg, "params: duplicate tensor name 'a.bias'");
    int64_t bad[1] = { -2 };
    ck_assert_int_eq(sl_nn_params_declare(&p, "c", 1, bad, SL_NN_INIT_ZERO, 0, NULL, &err),
                     SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_nn_params_alloc(&p, &err), SL_OK);
    ck_assert_uint_eq(p.tensors[i2].offset, 16);   /* 15 floats rounded up to 16 */
    ck_assert_uint_eq(p.total, 32);
    ck_assert_int_eq(sl_nn_params_declare(&p, "d", 1, s2, SL_NN_INIT_ZERO, 0, NULL, &err),
                     SL_ERR_INVALID_ARG);
    sl_rng_key k = { 7, 0, SL_STREAM_INIT, 0 };
    sl_nn_params_randomize(&p, k);
    float bound = 1.0f / sqrtf(5.0f);
    for (int i = 0; i < 15; i++)
        ck_assert(fabsf(sl_nn_param(&p, i1)[i]) <= bound && sl_nn_param(&p, i1)[i] != 0.0f);
    for (int i = 0; i < 7; i++)
        ck_assert(sl_nn_param(&p, i2)[i] == 1.0f);
    ck_assert_int_eq(sl_nn_params_find(&p, "a.bias"), (long)i2);
    ck_assert_int_eq(sl_nn_params_find(&p, "nope"), -1);
    sl_param_group g = sl_nn_params_group(&p, "net");
    ck_assert(g.data == p.data && g.grad == p.grad && g.n == 32);
    sl_nn_params_free(&p);
}
END_TEST

/* ---- composed blocks ---- */

typedef struct rb_ctx {
    sl_resblock rb;
    sl_nn_params p;
    sl_resblock_ctx *ctx;
    float *x, *temb;
} rb_ctx;
static void rb_fwd(void *c_, float *y)
{
    rb_ctx *c = c_;
    sl_error err;
    ck_assert_int_eq(sl_resblock_forward(&c->rb, &c->p, c->ctx, y, c->x, c->temb, &err), SL_OK);
}

static void run_resblock(int cin, int cout)
{
    const int B = 2, H = 4, W = 5, T = 6;
    rb_ctx c;
    sl_error err;
    sl_nn_params_init(&c.p);
    ck_assert_int_eq(sl_resblock_declare(&c.rb, &c.p, "rb", cin, cout, T, 2, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_alloc(&c.p, &err), SL_OK);
    sl_rng_key k = { 3, 0, SL_STREAM_INIT, 0 };
    sl_nn_params_randomize(&c.p, k);
    /* Norm scales and shifts away from 1 and 0, so their gradients are exercised generally. */
    float *pert = randn(c.p.total, 70, 0.3f);
    for (size_t i = 0; i < c.p.total; i++)
        c.p.data[i] += pert[i];
    ck_assert_int_eq(sl_resblock_ctx_create(&c.rb, B, H, W, &c.ctx, &err), SL_OK);
    size_t nx = (size_t)B * H * W * cin, ny = (size_t)B * H * W * cout;
    c.x = randn(nx, 71, 1.0f);
    c.temb = randn((size_t)B * T, 72, 1.0f);
    float *r = randn(ny, 73, 1.0f), *y = zeros(ny), *dx = zeros(nx), *dt = zeros((size_t)B * T);
    rb_fwd(&c, y);
    ck_assert_int_eq(sl_resblock_backward(&c.rb, &c.p, c.ctx, dx, dt, r, c.x, c.temb, 1, &err),
                     SL_OK);
    problem pb = { rb_fwd, &c, ny, r, y };
    check_grad(&pb, "resblock dx", c.x, dx, nx);
    check_grad(&pb, "resblock dtemb", c.temb, dt, (size_t)B * T);
    for (size_t i = 0; i < c.p.n; i++)
        check_grad(&pb, c.p.tensors[i].name, sl_nn_param(&c.p, i), sl_nn_grad(&c.p, i),
                   c.p.tensors[i].numel);
    /* Frozen weights: the input-only VJP gives the same dx and leaves grads untouched. */
    rb_fwd(&c, y);
    float *dx2 = zeros(nx);
    sl_nn_params_zero_grad(&c.p);
    ck_assert_int_eq(sl_resblock_backward(&c.rb, &c.p, c.ctx, dx2, NULL, r, c.x, c.temb, 0, &err),
                     SL_OK);
    for (size_t i = 0; i < nx; i++)
        ck_assert(dx2[i] == dx[i]);
    for (size_t i = 0; i < c.p.total; i++)
        ck_assert(c.p.grad[i] == 0.0f);
    sl_resblock_ctx_destroy(c.ctx);
    sl_nn_params_free(&c.p);
    free(pert), free(c.x), free(c.temb), free(r), free(y), free(dx), free(dt), free(dx2);
}

START_TEST(test_resblock)
{
    run_resblock(4, 6);   /* 1x1 shortcut */
    run_resblock(4, 4);   /* identity shortcut */
}
END_TEST

typedef struct ab_ctx { sl_attnblock ab; sl_nn_params p; sl_attnblock_ctx *ctx; float *x; } ab_ctx;
static void ab_fwd(void *c_, float *y)
{
    ab_ctx *c = c_;
    sl_error err;
    ck_assert_int_eq(sl_attnblock_forward(&c->ab, &c->p, c->ctx, y, c->x, &err), SL_OK);
}

START_TEST(test_attnblock)
{
    const int B = 2, H = 3, W = 3, C = 8;
    ab_ctx c;
    sl_error err;
    sl_nn_params_init(&c.p);
    ck_assert_int_eq(sl_attnblock_declare(&c.ab, &c.p, "attn", C, 2, 4, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_alloc(&c.p, &err), SL_OK);
    sl_rng_key k = { 5, 0, SL_STREAM_INIT, 0 };
    sl_nn_params_randomize(&c.p, k);
    float *pert = randn(c.p.total, 80, 0.3f);
    for (size_t i = 0; i < c.p.total; i++)
        c.p.data[i] += pert[i];
    ck_assert_int_eq(sl_attnblock_ctx_create(&c.ab, B, H, W, &c.ctx, &err), SL_OK);
    size_t n = (size_t)B * H * W * C;
    c.x = randn(n, 81, 1.0f);
    float *r = randn(n, 82, 1.0f), *y = zeros(n), *dx = zeros(n);
    ab_fwd(&c, y);
    ck_assert_int_eq(sl_attnblock_backward(&c.ab, &c.p, c.ctx, dx, r, c.x, 1, &err), SL_OK);
    problem pb = { ab_fwd, &c, n, r, y };
    check_grad(&pb, "attnblock dx", c.x, dx, n);
    for (size_t i = 0; i < c.p.n; i++)
        check_grad(&pb, c.p.tensors[i].name, sl_nn_param(&c.p, i), sl_nn_grad(&c.p, i),
                   c.p.tensors[i].numel);
    sl_attnblock_ctx_destroy(c.ctx);
    sl_nn_params_free(&c.p);
    free(pert), free(c.x), free(r), free(y), free(dx);
}
END_TEST

/* ---- a tiny 2-level UNet, end to end ----
 *   x (B,8,8,3) -> conv_in 3x3 (->8) = h0 (8x8) -> down conv 3x3 stride 2 = d (4x4, 8)
 *   -> resblock(8->16, temb) = r1 -> attention (16, 2 heads) = a -> upsample = u (8x8, 16)
 *   -> concat [u, h0] (24) = cat -> resblock(24->8, temb) = r2 -> conv_out 3x3 (->3) = y
 * temb = linear(SiLU(linear(sinusoidal(t)))), the usual 2-layer MLP. */
enum { UB = 2, UH = 8, UC = 8, UT = 8 };
typedef struct unet {
    sl_nn_params p;
    size_t in_w, in_b, down_w, down_b, t1_w, t1_b, t2_w, t2_b, out_w, out_b;
    sl_resblock rb1, rb2;
    sl_attnblock ab;
    sl_resblock_ctx *c1, *c2;
    sl_attnblock_ctx *ca;
    float *x;                              /* (UB, 8, 8, 3) input */
    float t[UB];
    float *temb0, *th, *tha, *temb;        /* (UB, UT) */
    float *h0, *d, *r1, *a, *u, *cat, *r2; /* activations */
} unet;

static sl_conv2d_shape sh(int H, int cin, int cout, int stride)
{
    sl_conv2d_shape s = { UB, H, H, cin, cout, 3, stride, 1 };
    return s;
}

static void unet_fwd(void *c_, float *y)
{
    unet *n = c_;
    sl_nn_params *p = &n->p;
    sl_error err;
    sl_time_embedding(n->temb0, n->t, UB, UT, 10000.0f);
    sl_linear_forward(n->th, n->temb0, sl_nn_param(p, n->t1_w), sl_nn_param(p, n->t1_b), UB, UT, UT);
    sl_silu_forward(n->tha, n->th, UB * UT);
    sl_linear_forward(n->temb, n->tha, sl_nn_param(p, n->t2_w), sl_nn_param(p, n->t2_b), UB, UT, UT);
    sl_conv2d_shape s_in = sh(8, 3, UC, 1), s_down = sh(8, UC, UC, 2), s_out = sh(8, UC, 3, 1);
    ck_assert_int_eq(sl_conv2d_forward(n->h0, n->x, sl_nn_param(p, n->in_w), sl_nn_param(p, n->in_b), &s_in, &err), SL_OK);
    ck_assert_int_eq(sl_conv2d_forward(n->d, n->h0, sl_nn_param(p, n->down_w), sl_nn_param(p, n->down_b), &s_down, &err), SL_OK);
    ck_assert_int_eq(sl_resblock_forward(&n->rb1, p, n->c1, n->r1, n->d, n->temb, &err), SL_OK);
    ck_assert_int_eq(sl_attnblock_forward(&n->ab, p, n->ca, n->a, n->r1, &err), SL_OK);
    sl_upsample2x_forward(n->u, n->a, UB, 4, 4, 2 * UC);
    sl_concat_forward(n->cat, n->u, n->h0, (size_t)UB * 64, 2 * UC, UC);
    ck_assert_int_eq(sl_resblock_forward(&n->rb2, p, n->c2, n->r2, n->cat, n->temb, &err), SL_OK);
    ck_assert_int_eq(sl_conv2d_forward(y, n->r2, sl_nn_param(p, n->out_w), sl_nn_param(p, n->out_b), &s_out, &err), SL_OK);
}

/* Backward in reverse order; every d-buffer zeroed first (the module accumulates). */
static void unet_bwd(unet *n, const float *dy, float *dx)
{
    sl_nn_params *p = &n->p;
    sl_error err;
    const size_t px8 = (size_t)UB * 64, px4 = (size_t)UB * 16;
    float *dr2 = zeros(px8 * UC), *dcat = zeros(px8 * 3 * UC), *du = zeros(px8 * 2 * UC);
    float *da = zeros(px4 * 2 * UC), *dr1 = zeros(px4 * 2 * UC), *dd = zeros(px4 * UC);
    float *dh0 = zeros(px8 * UC), *dtemb = zeros(UB * UT), *dtha = zeros(UB * UT),
          *dth = zeros(UB * UT);
    sl_conv2d_shape s_in = sh(8, 3, UC, 1), s_down = sh(8, UC, UC, 2), s_out = sh(8, UC, 3, 1);
    ck_assert_int_eq(sl_conv2d_backward(dr2, sl_nn_grad(p, n->out_w), sl_nn_grad(p, n->out_b), dy, n->r2, sl_nn_param(p, n->out_w), &s_out, &err), SL_OK);
    ck_assert_int_eq(sl_resblock_backward(&n->rb2, p, n->c2, dcat, dtemb, dr2, n->cat, n->temb, 1, &err), SL_OK);
    sl_concat_backward(du, dh0, dcat, px8, 2 * UC, UC);
    sl_upsample2x_backward(da, du, UB, 4, 4, 2 * UC);
    ck_assert_int_eq(sl_attnblock_backward(&n->ab, p, n->ca, dr1, da, n->r1, 1, &err), SL_OK);
    ck_assert_int_eq(sl_resblock_backward(&n->rb1, p, n->c1, dd, dtemb, dr1, n->d, n->temb, 1, &err), SL_OK);
    /* h0 feeds both the down conv and the skip: its gradient accumulates both. */
    ck_assert_int_eq(sl_conv2d_backward(dh0, sl_nn_grad(p, n->down_w), sl_nn_grad(p, n->down_b), dd, n->h0, sl_nn_param(p, n->down_w), &s_down, &err), SL_OK);
    ck_assert_int_eq(sl_conv2d_backward(dx, sl_nn_grad(p, n->in_w), sl_nn_grad(p, n->in_b), dh0, n->x, sl_nn_param(p, n->in_w), &s_in, &err), SL_OK);
    sl_linear_backward(dtha, sl_nn_grad(p, n->t2_w), sl_nn_grad(p, n->t2_b), dtemb, n->tha, sl_nn_param(p, n->t2_w), UB, UT, UT);
    sl_silu_backward(dth, dtha, n->th, UB * UT);
    sl_linear_backward(NULL, sl_nn_grad(p, n->t1_w), sl_nn_grad(p, n->t1_b), dth, n->temb0, sl_nn_param(p, n->t1_w), UB, UT, UT);
    free(dr2), free(dcat), free(du), free(da), free(dr1), free(dd), free(dh0), free(dtemb),
        free(dtha), free(dth);
}

static void unet_create(unet *n)
{
    sl_error err;
    sl_nn_params *p = &n->p;
    sl_nn_params_init(p);
    int64_t w_in[4] = { UC, 3, 3, 3 }, w_c[4] = { UC, 3, 3, UC }, w_out[4] = { 3, 3, 3, UC };
    int64_t b_c[1] = { UC }, b_3[1] = { 3 }, w_t[2] = { UT, UT }, b_t[1] = { UT };
    ck_assert_int_eq(sl_nn_params_declare(p, "conv_in.weight", 4, w_in, SL_NN_INIT_UNIFORM, 27, &n->in_w, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_declare(p, "conv_in.bias", 1, b_c, SL_NN_INIT_UNIFORM, 27, &n->in_b, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_declare(p, "time.linear_1.weight", 2, w_t, SL_NN_INIT_UNIFORM, UT, &n->t1_w, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_declare(p, "time.linear_1.bias", 1, b_t, SL_NN_INIT_UNIFORM, UT, &n->t1_b, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_declare(p, "time.linear_2.weight", 2, w_t, SL_NN_INIT_UNIFORM, UT, &n->t2_w, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_declare(p, "time.linear_2.bias", 1, b_t, SL_NN_INIT_UNIFORM, UT, &n->t2_b, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_declare(p, "down.weight", 4, w_c, SL_NN_INIT_UNIFORM, 9 * UC, &n->down_w, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_declare(p, "down.bias", 1, b_c, SL_NN_INIT_UNIFORM, 9 * UC, &n->down_b, &err), SL_OK);
    ck_assert_int_eq(sl_resblock_declare(&n->rb1, p, "mid.res", UC, 2 * UC, UT, 4, &err), SL_OK);
    ck_assert_int_eq(sl_attnblock_declare(&n->ab, p, "mid.attn", 2 * UC, 2, 4, &err), SL_OK);
    ck_assert_int_eq(sl_resblock_declare(&n->rb2, p, "up.res", 3 * UC, UC, UT, 4, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_declare(p, "conv_out.weight", 4, w_out, SL_NN_INIT_UNIFORM, 9 * UC, &n->out_w, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_declare(p, "conv_out.bias", 1, b_3, SL_NN_INIT_UNIFORM, 9 * UC, &n->out_b, &err), SL_OK);
    ck_assert_int_eq(sl_nn_params_alloc(p, &err), SL_OK);
    sl_rng_key k = { 11, 0, SL_STREAM_INIT, 0 };
    sl_nn_params_randomize(p, k);
    float *pert = randn(p->total, 90, 0.2f);
    for (size_t i = 0; i < p->total; i++)
        p->data[i] += pert[i];
    free(pert);
    ck_assert_int_eq(sl_resblock_ctx_create(&n->rb1, UB, 4, 4, &n->c1, &err), SL_OK);
    ck_assert_int_eq(sl_attnblock_ctx_create(&n->ab, UB, 4, 4, &n->ca, &err), SL_OK);
    ck_assert_int_eq(sl_resblock_ctx_create(&n->rb2, UB, 8, 8, &n->c2, &err), SL_OK);
    const size_t px8 = (size_t)UB * 64, px4 = (size_t)UB * 16;
    n->x = randn(px8 * 3, 91, 1.0f);
    n->t[0] = 17.0f;
    n->t[1] = 640.0f;
    n->temb0 = zeros(UB * UT), n->th = zeros(UB * UT), n->tha = zeros(UB * UT), n->temb = zeros(UB * UT);
    n->h0 = zeros(px8 * UC), n->d = zeros(px4 * UC), n->r1 = zeros(px4 * 2 * UC);
    n->a = zeros(px4 * 2 * UC), n->u = zeros(px8 * 2 * UC), n->cat = zeros(px8 * 3 * UC);
    n->r2 = zeros(px8 * UC);
}

static void unet_destroy(unet *n)
{
    sl_resblock_ctx_destroy(n->c1), sl_resblock_ctx_destroy(n->c2), sl_attnblock_ctx_destroy(n->ca);
    sl_nn_params_free(&n->p);
    free(n->x), free(n->temb0), free(n->th), free(n->tha), free(n->temb), free(n->h0), free(n->d),
        free(n->r1), free(n->a), free(n->u), free(n->cat), free(n->r2);
}

START_TEST(test_unet_end_to_end)
{
    unet n;
    unet_create(&n);
    const size_t ny = (size_t)UB * 64 * 3;
    float *r = randn(ny, 92, 1.0f), *y = zeros(ny), *dx = zeros(ny);
    unet_fwd(&n, y);
    unet_bwd(&n, r, dx);
    problem pb = { unet_fwd, &n, ny, r, y };
    check_grad(&pb, "unet dx", n.x, dx, ny);
    for (size_t i = 0; i < n.p.n; i++)
        check_grad(&pb, n.p.tensors[i].name, sl_nn_param(&n.p, i), sl_nn_grad(&n.p, i),
                   n.p.tensors[i].numel);
    free(r), free(y), free(dx);
    unet_destroy(&n);
}
END_TEST

/* ---- determinism: 1 vs 2 threads, bit for bit ---- */

/* Runs forward + backward of the UNet and of a larger conv (several GEMM tiles and
 * backward chunks) with `threads` threads; returns all outputs and gradients concatenated. */
static float *run_all(int threads, size_t *len)
{
    omp_set_num_threads(threads);
    unet n;
    unet_create(&n);
    const size_t ny = (size_t)UB * 64 * 3;
    float *r = randn(ny, 92, 1.0f), *y = zeros(ny), *dx = zeros(ny);
    unet_fwd(&n, y);
    unet_bwd(&n, r, dx);
    sl_conv2d_shape s = { 2, 40, 36, 16, 24, 3, 1, 1 };
    size_t nx = (size_t)2 * 40 * 36 * 16, nw = sl_conv2d_weight_numel(&s), nyc = (size_t)2 * 40 * 36 * 24;
    float *x = randn(nx, 100, 1), *w = randn(nw, 101, 0.1f), *yc = zeros(nyc), *dyc = randn(nyc, 102, 1);
    float *dxc = zeros(nx), *dwc = zeros(nw), *dbc = zeros(24);
    sl_error err;
    ck_assert_int_eq(sl_conv2d_forward(yc, x, w, NULL, &s, &err), SL_OK);
    ck_assert_int_eq(sl_conv2d_backward(dxc, dwc, dbc, dyc, x, w, &s, &err), SL_OK);
    *len = ny + ny + n.p.total + nyc + nx + nw + 24;
    float *all = malloc(*len * sizeof(float)), *o = all;
    memcpy(o, y, ny * 4), o += ny;
    memcpy(o, dx, ny * 4), o += ny;
    memcpy(o, n.p.grad, n.p.total * 4), o += n.p.total;
    memcpy(o, yc, nyc * 4), o += nyc;
    memcpy(o, dxc, nx * 4), o += nx;
    memcpy(o, dwc, nw * 4), o += nw;
    memcpy(o, dbc, 24 * 4);
    free(r), free(y), free(dx), free(x), free(w), free(yc), free(dyc), free(dxc), free(dwc), free(dbc);
    unet_destroy(&n);
    return all;
}

START_TEST(test_thread_determinism)
{
    size_t n1, n2;
    int keep = omp_get_max_threads();
    float *a = run_all(1, &n1), *b = run_all(2, &n2), *c = run_all(3, &n2);
    omp_set_num_threads(keep);
    ck_assert_uint_eq(n1, n2);
    ck_assert_msg(memcmp(a, b, n1 * sizeof(float)) == 0, "1 and 2 threads differ");
    ck_assert_msg(memcmp(a, c, n1 * sizeof(float)) == 0, "1 and 3 threads differ");
    free(a), free(b), free(c);
}
END_TEST

static Suite *nn_suite(void)
{
    Suite *s = suite_create("nn");
    TCase *tc = tcase_create("nn");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_linear);
    tcase_add_test(tc, test_conv2d);
    tcase_add_test(tc, test_conv2d_backward_large);
    tcase_add_test(tc, test_conv2d_bad_shape);
    tcase_add_test(tc, test_groupnorm);
    tcase_add_test(tc, test_unary_ops);
    tcase_add_test(tc, test_silu_derivatives);
    tcase_add_test(tc, test_concat_and_bias);
    tcase_add_test(tc, test_time_embedding);
    tcase_add_test(tc, test_attention);
    tcase_add_test(tc, test_params);
    tcase_add_test(tc, test_resblock);
    tcase_add_test(tc, test_attnblock);
    tcase_add_test(tc, test_unet_end_to_end);
    tcase_add_test(tc, test_thread_determinism);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(nn_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
