/* core/nn/resblock.c — the residual block of diffusion UNets, composed from the ops (nn.h):
 *   n1 = GN1(x), a1 = SiLU(n1), h = conv3x3(a1) + W_t SiLU(temb) + b_t,
 *   n2 = GN2(h), a2 = SiLU(n2), y = skip(x) + conv3x3(a2). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "declare.h"
#include "steinlab/nn.h"

struct sl_resblock_ctx {
    int B, H, W;
    float *mem;                 /* one allocation carved into the buffers below */
    /* saved by forward for backward */
    float *n1, *a1;             /* (B, H, W, cin) */
    float *h, *n2, *a2;         /* (B, H, W, cout) */
    float *mean1, *rstd1;       /* (B, groups) */
    float *mean2, *rstd2;       /* (B, groups) */
    float *tact;                /* (B, temb_dim) SiLU(temb) */
    float *tproj;               /* (B, cout) */
    /* scratch */
    float *t_out;               /* (B, H, W, cout) conv2's output in forward; d a2 in backward */
    float *dh;                  /* (B, H, W, cout) */
    float *dn;                  /* (B, H, W, max(cin, cout)) */
    float *da1;                 /* (B, H, W, cin) */
    float *dtp;                 /* (B, cout) */
    float *dtact;               /* (B, temb_dim) */
};

sl_status sl_resblock_declare(sl_resblock *rb, sl_nn_params *p, const char *prefix, int cin,
                              int cout, int temb_dim, int groups, sl_error *err)
{
    if (cin < 1 || cout < 1 || temb_dim < 0 || groups < 1 || cin % groups || cout % groups)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "resblock '%s': invalid cin=%d cout=%d temb_dim=%d groups=%d "
                            "(groups must divide cin and cout)",
                            prefix, cin, cout, temb_dim, groups);
    memset(rb, 0, sizeof *rb);
    rb->cin = cin;
    rb->cout = cout;
    rb->temb_dim = temb_dim;
    rb->groups = groups;
    rb->eps = 1e-5f;
    sl_status st;
#define DECL(suffix, nd, d0, d1, d2, d3, init, fan, idx)                                    \
    do {                                                                                    \
        int64_t dims_[4] = { (d0), (d1), (d2), (d3) };                                     \
        st = sl_nn_declare_named(p, prefix, suffix, nd, dims_, init, fan, &rb->idx, err);  \
        if (st != SL_OK)                                                                    \
            return st;                                                                      \
    } while (0)
    DECL("norm1.weight", 1, cin, 0, 0, 0, SL_NN_INIT_ONE, 0, gn1_w);
    DECL("norm1.bias", 1, cin, 0, 0, 0, SL_NN_INIT_ZERO, 0, gn1_b);
    DECL("conv1.weight", 4, cout, 3, 3, cin, SL_NN_INIT_UNIFORM, 9 * cin, conv1_w);
    DECL("conv1.bias", 1, cout, 0, 0, 0, SL_NN_INIT_UNIFORM, 9 * cin, conv1_b);
    if (temb_dim > 0) {
        DECL("time_emb_proj.weight", 2, cout, temb_dim, 0, 0, SL_NN_INIT_UNIFORM, temb_dim,
             temb_w);
        DECL("time_emb_proj.bias", 1, cout, 0, 0, 0, SL_NN_INIT_UNIFORM, temb_dim, temb_b);
    }
    DECL("norm2.weight", 1, cout, 0, 0, 0, SL_NN_INIT_ONE, 0, gn2_w);
    DECL("norm2.bias", 1, cout, 0, 0, 0, SL_NN_INIT_ZERO, 0, gn2_b);
    DECL("conv2.weight", 4, cout, 3, 3, cout, SL_NN_INIT_UNIFORM, 9 * cout, conv2_w);
    DECL("conv2.bias", 1, cout, 0, 0, 0, SL_NN_INIT_UNIFORM, 9 * cout, conv2_b);
    if (cin != cout) {
        DECL("conv_shortcut.weight", 4, cout, 1, 1, cin, SL_NN_INIT_UNIFORM, cin, skip_w);
        DECL("conv_shortcut.bias", 1, cout, 0, 0, 0, SL_NN_INIT_UNIFORM, cin, skip_b);
    }
#undef DECL
    return SL_OK;
}

sl_status sl_resblock_ctx_create(const sl_resblock *rb, int B, int H, int W,
                                 sl_resblock_ctx **out, sl_error *err)
{
    *out = NULL;
    if (B < 1 || H < 1 || W < 1 || (int64_t)H * W * (rb->cin > rb->cout ? rb->cin : rb->cout) >
                                       INT32_MAX)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "resblock: invalid size B=%d H=%d W=%d",
                            B, H, W);
    size_t px = (size_t)B * H * W, ci = px * rb->cin, co = px * rb->cout;
    size_t cmax = ci > co ? ci : co, bg = (size_t)B * rb->groups;
    size_t bt = (size_t)B * rb->temb_dim, bc = (size_t)B * rb->cout;
    size_t total = 2 * ci + 3 * co + 4 * bg + bt + bc + co + co + cmax + ci + bc + bt;
    sl_resblock_ctx *c = calloc(1, sizeof *c);
    float *m = c ? malloc(total * sizeof(float)) : NULL;
    if (!m) {
        free(c);
        return sl_error_set(err, SL_ERR_NOMEM, "resblock: cannot allocate %zu floats", total);
    }
    c->B = B;
    c->H = H;
    c->W = W;
    c->mem = m;
    c->n1 = m, m += ci;
    c->a1 = m, m += ci;
    c->h = m, m += co;
    c->n2 = m, m += co;
    c->a2 = m, m += co;
    c->mean1 = m, m += bg;
    c->rstd1 = m, m += bg;
    c->mean2 = m, m += bg;
    c->rstd2 = m, m += bg;
    c->tact = m, m += bt;
    c->tproj = m, m += bc;
    c->t_out = m, m += co;
    c->dh = m, m += co;
    c->dn = m, m += cmax;
    c->da1 = m, m += ci;
    c->dtp = m, m += bc;
    c->dtact = m;
    *out = c;
    return SL_OK;
}

void sl_resblock_ctx_destroy(sl_resblock_ctx *ctx)
{
    if (!ctx)
        return;
    free(ctx->mem);
    free(ctx);
}

static sl_conv2d_shape conv_shape(const sl_resblock_ctx *c, int cin, int cout, int k)
{
    sl_conv2d_shape s = { c->B, c->H, c->W, cin, cout, k, 1, k / 2 };
    return s;
}

sl_status sl_resblock_forward(const sl_resblock *rb, const sl_nn_params *p,
                              sl_resblock_ctx *c, float *y, const float *x,
                              const float *temb, sl_error *err)
{
    const int B = c->B, N = c->H * c->W, G = rb->groups;
    const size_t co = (size_t)B * N * rb->cout, ci = (size_t)B * N * rb->cin;
    sl_status st;
    sl_groupnorm_forward(c->n1, c->mean1, c->rstd1, x, sl_nn_param(p, rb->gn1_w),
                         sl_nn_param(p, rb->gn1_b), B, N, rb->cin, G, rb->eps);
    sl_silu_forward(c->a1, c->n1, ci);
    sl_conv2d_shape s1 = conv_shape(c, rb->cin, rb->cout, 3);
    if ((st = sl_conv2d_forward(c->h, c->a1, sl_nn_param(p, rb->conv1_w),
                                sl_nn_param(p, rb->conv1_b), &s1, err)) != SL_OK)
        return st;
    if (rb->temb_dim > 0) {
        sl_silu_forward(c->tact, temb, (size_t)B * rb->temb_dim);
        sl_linear_forward(c->tproj, c->tact, sl_nn_param(p, rb->temb_w),
                          sl_nn_param(p, rb->temb_b), B, rb->temb_dim, rb->cout);
        sl_add_channel_bias_forward(c->h, c->tproj, B, N, rb->cout);
    }
    sl_groupnorm_forward(c->n2, c->mean2, c->rstd2, c->h, sl_nn_param(p, rb->gn2_w),
                         sl_nn_param(p, rb->gn2_b), B, N, rb->cout, G, rb->eps);
    sl_silu_forward(c->a2, c->n2, co);
    sl_conv2d_shape s2 = conv_shape(c, rb->cout, rb->cout, 3);
    if ((st = sl_conv2d_forward(c->t_out, c->a2, sl_nn_param(p, rb->conv2_w),
                                sl_nn_param(p, rb->conv2_b), &s2, err)) != SL_OK)
        return st;
    if (rb->cin != rb->cout) {
        sl_conv2d_shape ss = conv_shape(c, rb->cin, rb->cout, 1);
        if ((st = sl_conv2d_forward(y, x, sl_nn_param(p, rb->skip_w),
                                    sl_nn_param(p, rb->skip_b), &ss, err)) != SL_OK)
            return st;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < co; i++)
            y[i] += c->t_out[i];
    } else {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < co; i++)
            y[i] = x[i] + c->t_out[i];
    }
    return SL_OK;
}

sl_status sl_resblock_backward(const sl_resblock *rb, sl_nn_params *p, sl_resblock_ctx *c,
                               float *dx, float *dtemb, const float *dy, const float *x,
                               const float *temb, int param_grads, sl_error *err)
{
    const int B = c->B, N = c->H * c->W, G = rb->groups;
    const size_t co = (size_t)B * N * rb->cout, ci = (size_t)B * N * rb->cin;
    /* Parameter gradients, or NULL to skip them (frozen weights). */
#define PG(idx) (param_grads ? sl_nn_grad(p, rb->idx) : NULL)
    sl_status st;
    /* y = skip(x) + conv2(a2): dy reaches both branches unchanged. */
    float *da2 = c->t_out;
    memset(da2, 0, co * sizeof(float));
    sl_conv2d_shape s2 = conv_shape(c, rb->cout, rb->cout, 3);
    if ((st = sl_conv2d_backward(da2, PG(conv2_w), PG(conv2_b), dy, c->a2,
                                 sl_nn_param(p, rb->conv2_w), &s2, err)) != SL_OK)
        return st;
    memset(c->dn, 0, co * sizeof(float));
    sl_silu_backward(c->dn, da2, c->n2, co);
    memset(c->dh, 0, co * sizeof(float));
    sl_groupnorm_backward(c->dh, PG(gn2_w), PG(gn2_b), c->dn, c->h, c->mean2, c->rstd2,
                          sl_nn_param(p, rb->gn2_w), B, N, rb->cout, G);
    if (rb->temb_dim > 0 && (param_grads || dtemb)) {
        /* h += tproj broadcast: dtproj = sum over positions of dh. */
        memset(c->dtp, 0, (size_t)B * rb->cout * sizeof(float));
        sl_add_channel_bias_backward(c->dtp, c->dh, B, N, rb->cout);
        memset(c->dtact, 0, (size_t)B * rb->temb_dim * sizeof(float));
        sl_linear_backward(dtemb ? c->dtact : NULL, PG(temb_w), PG(temb_b), c->dtp, c->tact,
                           sl_nn_param(p, rb->temb_w), B, rb->temb_dim, rb->cout);
        if (dtemb)
            sl_silu_backward(dtemb, c->dtact, temb, (size_t)B * rb->temb_dim);
    }
    sl_conv2d_shape s1 = conv_shape(c, rb->cin, rb->cout, 3);
    if (dx || param_grads) {
        memset(c->da1, 0, ci * sizeof(float));
        if ((st = sl_conv2d_backward(c->da1, PG(conv1_w), PG(conv1_b), c->dh, c->a1,
                                     sl_nn_param(p, rb->conv1_w), &s1, err)) != SL_OK)
            return st;
        memset(c->dn, 0, ci * sizeof(float));
        sl_silu_backward(c->dn, c->da1, c->n1, ci);
        sl_groupnorm_backward(dx, PG(gn1_w), PG(gn1_b), c->dn, x, c->mean1, c->rstd1,
                              sl_nn_param(p, rb->gn1_w), B, N, rb->cin, G);
    }
    if (rb->cin != rb->cout) {
        sl_conv2d_shape ss = conv_shape(c, rb->cin, rb->cout, 1);
        if ((st = sl_conv2d_backward(dx, PG(skip_w), PG(skip_b), dy, x,
                                     sl_nn_param(p, rb->skip_w), &ss, err)) != SL_OK)
            return st;
    } else if (dx) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < co; i++)
            dx[i] += dy[i];
    }
#undef PG
    return SL_OK;
}
