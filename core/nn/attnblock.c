/* core/nn/attnblock.c — spatial self-attention block with a residual connection (nn.h):
 *   n = GN(x), qkv = n W_qkv^T + b_qkv, a = attention(qkv), y = x + a W_p^T + b_p,
 * over the N = H W positions of each image (a 1x1 projection is a linear layer in NHWC). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "declare.h"
#include "steinlab/nn.h"

struct sl_attnblock_ctx {
    int B, N;
    float *mem;
    float *n;             /* (B, N, C) GN output */
    float *mean, *rstd;   /* (B, groups) */
    float *qkv;           /* (B, N, 3C) */
    float *probs;         /* (B, heads, N, N) */
    float *att;           /* (B, N, C) attention output */
    float *tmp;           /* (B, N, C) projection output; d att in backward */
    float *dqkv;          /* (B, N, 3C) */
    float *dn;            /* (B, N, C) */
};

sl_status sl_attnblock_declare(sl_attnblock *ab, sl_nn_params *p, const char *prefix, int c,
                               int heads, int groups, sl_error *err)
{
    if (c < 1 || heads < 1 || groups < 1 || c % heads || c % groups)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "attnblock '%s': invalid c=%d heads=%d groups=%d (both must divide "
                            "c)", prefix, c, heads, groups);
    memset(ab, 0, sizeof *ab);
    ab->c = c;
    ab->heads = heads;
    ab->groups = groups;
    ab->eps = 1e-5f;
    sl_status st;
#define DECL(suffix, nd, d0, d1, init, fan, idx)                                            \
    do {                                                                                    \
        int64_t dims_[4] = { (d0), (d1), 0, 0 };                                           \
        st = sl_nn_declare_named(p, prefix, suffix, nd, dims_, init, fan, &ab->idx, err);  \
        if (st != SL_OK)                                                                    \
            return st;                                                                      \
    } while (0)
    DECL("group_norm.weight", 1, c, 0, SL_NN_INIT_ONE, 0, gn_w);
    DECL("group_norm.bias", 1, c, 0, SL_NN_INIT_ZERO, 0, gn_b);
    DECL("to_qkv.weight", 2, 3 * c, c, SL_NN_INIT_UNIFORM, c, qkv_w);
    DECL("to_qkv.bias", 1, 3 * c, 0, SL_NN_INIT_UNIFORM, c, qkv_b);
    DECL("to_out.weight", 2, c, c, SL_NN_INIT_UNIFORM, c, proj_w);
    DECL("to_out.bias", 1, c, 0, SL_NN_INIT_UNIFORM, c, proj_b);
#undef DECL
    return SL_OK;
}

sl_status sl_attnblock_ctx_create(const sl_attnblock *ab, int B, int H, int W,
                                  sl_attnblock_ctx **out, sl_error *err)
{
    *out = NULL;
    if (B < 1 || H < 1 || W < 1 || (int64_t)H * W * 3 * ab->c > INT32_MAX ||
        (int64_t)H * W * H * W > INT32_MAX)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "attnblock: invalid size B=%d H=%d W=%d",
                            B, H, W);
    size_t N = (size_t)H * W, bnc = (size_t)B * N * ab->c, bg = (size_t)B * ab->groups;
    size_t pr = (size_t)B * ab->heads * N * N;
    size_t total = bnc + 2 * bg + 3 * bnc + pr + bnc + bnc + 3 * bnc + bnc;
    sl_attnblock_ctx *c = calloc(1, sizeof *c);
    float *m = c ? malloc(total * sizeof(float)) : NULL;
    if (!m) {
        free(c);
        return sl_error_set(err, SL_ERR_NOMEM, "attnblock: cannot allocate %zu floats", total);
    }
    c->B = B;
    c->N = (int)N;
    c->mem = m;
    c->n = m, m += bnc;
    c->mean = m, m += bg;
    c->rstd = m, m += bg;
    c->qkv = m, m += 3 * bnc;
    c->probs = m, m += pr;
    c->att = m, m += bnc;
    c->tmp = m, m += bnc;
    c->dqkv = m, m += 3 * bnc;
    c->dn = m;
    *out = c;
    return SL_OK;
}

void sl_attnblock_ctx_destroy(sl_attnblock_ctx *ctx)
{
    if (!ctx)
        return;
    free(ctx->mem);
    free(ctx);
}

sl_status sl_attnblock_forward(const sl_attnblock *ab, const sl_nn_params *p,
                               sl_attnblock_ctx *c, float *y, const float *x, sl_error *err)
{
    const int B = c->B, N = c->N, C = ab->c;
    const size_t bnc = (size_t)B * N * C;
    sl_groupnorm_forward(c->n, c->mean, c->rstd, x, sl_nn_param(p, ab->gn_w),
                         sl_nn_param(p, ab->gn_b), B, N, C, ab->groups, ab->eps);
    sl_linear_forward(c->qkv, c->n, sl_nn_param(p, ab->qkv_w), sl_nn_param(p, ab->qkv_b),
                      B * N, C, 3 * C);
    sl_status st = sl_attention_forward(c->att, c->probs, c->qkv, B, N, C, ab->heads, err);
    if (st != SL_OK)
        return st;
    sl_linear_forward(c->tmp, c->att, sl_nn_param(p, ab->proj_w), sl_nn_param(p, ab->proj_b),
                      B * N, C, C);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < bnc; i++)
        y[i] = x[i] + c->tmp[i];
    return SL_OK;
}

sl_status sl_attnblock_backward(const sl_attnblock *ab, sl_nn_params *p, sl_attnblock_ctx *c,
                                float *dx, const float *dy, const float *x, int param_grads,
                                sl_error *err)
{
    const int B = c->B, N = c->N, C = ab->c;
    const size_t bnc = (size_t)B * N * C;
#define PG(idx) (param_grads ? sl_nn_grad(p, ab->idx) : NULL)
    if (dx) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < bnc; i++)
            dx[i] += dy[i];   /* the residual path */
    }
    if (!dx && !param_grads)
        return SL_OK;
    float *datt = c->tmp;
    memset(datt, 0, bnc * sizeof(float));
    sl_linear_backward(datt, PG(proj_w), PG(proj_b), dy, c->att, sl_nn_param(p, ab->proj_w),
                       B * N, C, C);
    memset(c->dqkv, 0, 3 * bnc * sizeof(float));
    sl_status st = sl_attention_backward(c->dqkv, datt, c->qkv, c->probs, B, N, C, ab->heads,
                                         err);
    if (st != SL_OK)
        return st;
    memset(c->dn, 0, bnc * sizeof(float));
    sl_linear_backward(c->dn, PG(qkv_w), PG(qkv_b), c->dqkv, c->n, sl_nn_param(p, ab->qkv_w),
                       B * N, C, 3 * C);
    sl_groupnorm_backward(dx, PG(gn_w), PG(gn_b), c->dn, x, c->mean, c->rstd,
                          sl_nn_param(p, ab->gn_w), B, N, C, ab->groups);
#undef PG
    return SL_OK;
}
