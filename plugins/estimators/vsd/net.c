/* plugins/estimators/vsd/net.c — VSD's noise-prediction UNet (net.h), composed of the
 * shared blocks of steinlab/nn.h; this file only wires them and keeps their activations. */
#include "net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/camera.h"

struct vsd_net_ctx {
    int B, H, W;
    float *mem;
    size_t grad_from, total;   /* floats: gradient buffers are [grad_from, total) of mem */
    sl_resblock_ctx *down[VSD_MAX_LEVELS], *up[VSD_MAX_LEVELS], *mid;
    sl_attnblock_ctx *attn;
    /* activations */
    float *tsin;                        /* (B, c_0) sinusoidal embedding of t */
    float *t1, *t1a, *c1, *c1a, *cemb;  /* (B, E) MLP hidden layers; camera embedding */
    float *emb;                         /* (B, E) time + masked camera embedding */
    float *hin;                         /* (B, H, W, c_0) conv_in output */
    float *skip[VSD_MAX_LEVELS];        /* (B, H_l, W_l, c_l) down resblock outputs */
    float *pool[VSD_MAX_LEVELS];        /* (B, H_l / 2, W_l / 2, c_l), l < L-1 */
    float *mid_out, *attn_out;          /* (B, H_{L-1}, W_{L-1}, c_{L-1}) */
    float *ups[VSD_MAX_LEVELS];         /* (B, H_l, W_l, c_{l+1}), l < L-1 */
    float *cat[VSD_MAX_LEVELS];         /* (B, H_l, W_l, cu_l + c_l) */
    float *upo[VSD_MAX_LEVELS];         /* (B, H_l, W_l, c_l) up resblock outputs */
    float *gno, *act;                   /* (B, H, W, c_0) output norm and its SiLU */
    float *gmean, *grstd;               /* (B, groups) */
    /* gradients of the activations above (zeroed at the start of backward) */
    float *d_emb, *d_t1a, *d_t1, *d_cemb, *d_c1a, *d_c1;
    float *d_hin, *d_skip[VSD_MAX_LEVELS], *d_pool[VSD_MAX_LEVELS], *d_mid, *d_attn;
    float *d_ups[VSD_MAX_LEVELS], *d_cat[VSD_MAX_LEVELS], *d_upo[VSD_MAX_LEVELS];
    float *d_gno, *d_act;
};

static int level_channels(const vsd_net *net, int l) { return net->cfg.channels << l; }

/* Channels of the upward input u at level l (before the skip is concatenated). */
static int up_in_channels(const vsd_net *net, int l)
{
    return l == net->cfg.levels - 1 ? level_channels(net, l) : level_channels(net, l + 1);
}

static sl_status declare(vsd_net *net, const char *name, int ndim, int64_t d0, int64_t d1,
                         int64_t d2, int64_t d3, sl_nn_init init, int fan_in, size_t *idx,
                         sl_error *err)
{
    const int64_t shape[4] = { d0, d1, d2, d3 };
    return sl_nn_params_declare(&net->params, name, ndim, shape, init, fan_in, idx, err);
}

sl_status vsd_net_check_size(const vsd_net_config *cfg, int H, int W, sl_error *err)
{
    const int f = 1 << (cfg->levels - 1);
    if (H < f || W < f || H % f || W % f)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "vsd: an image of %dx%d cannot be halved "
                            "%d times (levels %d): use fewer levels or a size divisible by %d",
                            H, W, cfg->levels - 1, cfg->levels, f);
    return SL_OK;
}

sl_status vsd_net_create(vsd_net *net, const vsd_net_config *cfg, sl_rng_key init_key,
                         sl_error *err)
{
    memset(net, 0, sizeof *net);
    sl_nn_params_init(&net->params);
    if (cfg->levels < 1 || cfg->levels > VSD_MAX_LEVELS || cfg->channels < 2 ||
        cfg->channels % 2 || cfg->groups < 1 || cfg->channels % cfg->groups ||
        cfg->in_channels < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "vsd: invalid network: channels %d "
                            "(even, divisible by groups %d), levels %d (1..%d)", cfg->channels,
                            cfg->groups, cfg->levels, VSD_MAX_LEVELS);
    net->cfg = *cfg;
    const int c0 = cfg->channels, E = 4 * c0, C = cfg->in_channels, L = cfg->levels;
    net->emb_dim = E;
    sl_status st;
#define TRY(x) do { if ((st = (x)) != SL_OK) goto fail; } while (0)
    TRY(declare(net, "time.0.weight", 2, E, c0, 0, 0, SL_NN_INIT_UNIFORM, c0, &net->t1_w, err));
    TRY(declare(net, "time.0.bias", 1, E, 0, 0, 0, SL_NN_INIT_UNIFORM, c0, &net->t1_b, err));
    TRY(declare(net, "time.1.weight", 2, E, E, 0, 0, SL_NN_INIT_UNIFORM, E, &net->t2_w, err));
    TRY(declare(net, "time.1.bias", 1, E, 0, 0, 0, SL_NN_INIT_UNIFORM, E, &net->t2_b, err));
    TRY(declare(net, "camera.0.weight", 2, E, VSD_POSE_FEATURES, 0, 0, SL_NN_INIT_UNIFORM,
                VSD_POSE_FEATURES, &net->c1_w, err));
    TRY(declare(net, "camera.0.bias", 1, E, 0, 0, 0, SL_NN_INIT_UNIFORM, VSD_POSE_FEATURES,
                &net->c1_b, err));
    TRY(declare(net, "camera.1.weight", 2, E, E, 0, 0, SL_NN_INIT_UNIFORM, E, &net->c2_w, err));
    TRY(declare(net, "camera.1.bias", 1, E, 0, 0, 0, SL_NN_INIT_UNIFORM, E, &net->c2_b, err));
    TRY(declare(net, "conv_in.weight", 4, c0, 3, 3, C, SL_NN_INIT_UNIFORM, 9 * C, &net->in_w,
                err));
    TRY(declare(net, "conv_in.bias", 1, c0, 0, 0, 0, SL_NN_INIT_UNIFORM, 9 * C, &net->in_b, err));
    char prefix[32];
    for (int l = 0; l < L; l++) {
        snprintf(prefix, sizeof prefix, "down.%d", l);
        TRY(sl_resblock_declare(&net->down[l], &net->params, prefix,
                                l == 0 ? c0 : level_channels(net, l - 1), level_channels(net, l),
                                E, cfg->groups, err));
    }
    TRY(sl_resblock_declare(&net->mid, &net->params, "mid", level_channels(net, L - 1),
                            level_channels(net, L - 1), E, cfg->groups, err));
    if (cfg->attention)
        TRY(sl_attnblock_declare(&net->attn, &net->params, "mid.attn",
                                 level_channels(net, L - 1), 1, cfg->groups, err));
    for (int l = L - 1; l >= 0; l--) {
        snprintf(prefix, sizeof prefix, "up.%d", l);
        TRY(sl_resblock_declare(&net->up[l], &net->params, prefix,
                                up_in_channels(net, l) + level_channels(net, l),
                                level_channels(net, l), E, cfg->groups, err));
    }
    TRY(declare(net, "norm_out.weight", 1, c0, 0, 0, 0, SL_NN_INIT_ONE, 0, &net->gn_w, err));
    TRY(declare(net, "norm_out.bias", 1, c0, 0, 0, 0, SL_NN_INIT_ZERO, 0, &net->gn_b, err));
    /* Zero: the untrained network adds nothing to the closed-form part (net.h). */
    TRY(declare(net, "conv_out.weight", 4, C, 3, 3, c0, SL_NN_INIT_ZERO, 0, &net->out_w, err));
    TRY(declare(net, "conv_out.bias", 1, C, 0, 0, 0, SL_NN_INIT_ZERO, 0, &net->out_b, err));
    TRY(sl_nn_params_alloc(&net->params, err));
#undef TRY
    sl_nn_params_randomize(&net->params, init_key);
    return SL_OK;
fail:
    sl_nn_params_free(&net->params);
    return st;
}

void vsd_net_free(vsd_net *net)
{
    sl_nn_params_free(&net->params);
}

/* Carves n floats at *off (64-byte aligned); with base NULL it only counts. */
static float *carve(float *base, size_t *off, size_t n)
{
    float *p = base ? base + *off : NULL;
    *off += (n + 15) & ~(size_t)15;
    return p;
}

/* Lays the buffers out in ctx->mem (or counts them when mem is NULL). */
static void layout(const vsd_net *net, vsd_net_ctx *c)
{
    const int L = net->cfg.levels, E = net->emb_dim, c0 = net->cfg.channels;
    const size_t B = (size_t)c->B, HW = (size_t)c->H * c->W;
    float *m = c->mem;
    size_t off = 0;
    c->tsin = carve(m, &off, B * c0);
    c->t1 = carve(m, &off, B * E);
    c->t1a = carve(m, &off, B * E);
    c->c1 = carve(m, &off, B * E);
    c->c1a = carve(m, &off, B * E);
    c->cemb = carve(m, &off, B * E);
    c->emb = carve(m, &off, B * E);
    c->hin = carve(m, &off, B * HW * c0);
    size_t top = 0;
    for (int l = 0; l < L; l++) {
        const size_t n = B * (HW >> (2 * l));
        c->skip[l] = carve(m, &off, n * level_channels(net, l));
        c->pool[l] = l < L - 1 ? carve(m, &off, n / 4 * level_channels(net, l)) : NULL;
        c->ups[l] = l < L - 1 ? carve(m, &off, n * level_channels(net, l + 1)) : NULL;
        c->cat[l] = carve(m, &off, n * (up_in_channels(net, l) + level_channels(net, l)));
        c->upo[l] = carve(m, &off, n * level_channels(net, l));
        top = n * level_channels(net, l);
    }
    c->mid_out = carve(m, &off, top);
    c->attn_out = net->cfg.attention ? carve(m, &off, top) : NULL;
    c->gno = carve(m, &off, B * HW * c0);
    c->act = carve(m, &off, B * HW * c0);
    c->gmean = carve(m, &off, B * net->cfg.groups);
    c->grstd = carve(m, &off, B * net->cfg.groups);
    c->grad_from = off;
    c->d_emb = carve(m, &off, B * E);
    c->d_t1a = carve(m, &off, B * E);
    c->d_t1 = carve(m, &off, B * E);
    c->d_cemb = carve(m, &off, B * E);
    c->d_c1a = carve(m, &off, B * E);
    c->d_c1 = carve(m, &off, B * E);
    c->d_hin = carve(m, &off, B * HW * c0);
    for (int l = 0; l < L; l++) {
        const size_t n = B * (HW >> (2 * l));
        c->d_skip[l] = carve(m, &off, n * level_channels(net, l));
        c->d_pool[l] = l < L - 1 ? carve(m, &off, n / 4 * level_channels(net, l)) : NULL;
        c->d_ups[l] = l < L - 1 ? carve(m, &off, n * level_channels(net, l + 1)) : NULL;
        c->d_cat[l] = carve(m, &off, n * (up_in_channels(net, l) + level_channels(net, l)));
        c->d_upo[l] = carve(m, &off, n * level_channels(net, l));
    }
    c->d_mid = carve(m, &off, top);
    c->d_attn = net->cfg.attention ? carve(m, &off, top) : NULL;
    c->d_gno = carve(m, &off, B * HW * c0);
    c->d_act = carve(m, &off, B * HW * c0);
    c->total = off;
}

sl_status vsd_net_ctx_create(const vsd_net *net, int B, int H, int W, vsd_net_ctx **out,
                             sl_error *err)
{
    sl_status st = vsd_net_check_size(&net->cfg, H, W, err);
    if (st != SL_OK)
        return st;
    if (B < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "vsd: network batch %d", B);
    vsd_net_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return sl_error_set(err, SL_ERR_NOMEM, "vsd: out of memory");
    c->B = B;
    c->H = H;
    c->W = W;
    layout(net, c);
    c->mem = aligned_alloc(64, c->total * sizeof(float));
    if (!c->mem) {
        const size_t mb = c->total * sizeof(float) >> 20;
        free(c);
        return sl_error_set(err, SL_ERR_NOMEM, "vsd: cannot allocate the activations of a "
                            "batch of %d (%zu MB)", B, mb);
    }
    layout(net, c);
    const int L = net->cfg.levels;
    for (int l = 0; l < L && st == SL_OK; l++) {
        st = sl_resblock_ctx_create(&net->down[l], B, H >> l, W >> l, &c->down[l], err);
        if (st == SL_OK)
            st = sl_resblock_ctx_create(&net->up[l], B, H >> l, W >> l, &c->up[l], err);
    }
    if (st == SL_OK)
        st = sl_resblock_ctx_create(&net->mid, B, H >> (L - 1), W >> (L - 1), &c->mid, err);
    if (st == SL_OK && net->cfg.attention)
        st = sl_attnblock_ctx_create(&net->attn, B, H >> (L - 1), W >> (L - 1), &c->attn, err);
    if (st != SL_OK) {
        vsd_net_ctx_destroy(c);
        return st;
    }
    *out = c;
    return SL_OK;
}

void vsd_net_ctx_destroy(vsd_net_ctx *c)
{
    if (!c)
        return;
    for (int l = 0; l < VSD_MAX_LEVELS; l++) {
        sl_resblock_ctx_destroy(c->down[l]);
        sl_resblock_ctx_destroy(c->up[l]);
    }
    sl_resblock_ctx_destroy(c->mid);
    sl_attnblock_ctx_destroy(c->attn);
    free(c->mem);
    free(c);
}

int vsd_net_ctx_batch(const vsd_net_ctx *c) { return c->B; }

void vsd_pose_features(const sl_camera *cam, float *pose)
{
    memcpy(pose, cam->rot, 9 * sizeof(float));
    memcpy(pose + 9, cam->eye, 3 * sizeof(float));
}

static sl_conv2d_shape conv3(const vsd_net_ctx *c, int cin, int cout)
{
    return (sl_conv2d_shape){ .B = c->B, .H = c->H, .W = c->W, .cin = cin, .cout = cout,
                              .k = 3, .stride = 1, .pad = 1 };
}

sl_status vsd_net_forward(const vsd_net *net, vsd_net_ctx *c, float *y, const float *x,
                          const float *t, const float *pose, const float *cam_mask,
                          sl_error *err)
{
    const sl_nn_params *p = &net->params;
    const int B = c->B, L = net->cfg.levels, E = net->emb_dim, c0 = net->cfg.channels;
    const int C = net->cfg.in_channels;
    /* emb = MLP_t(sin(t)) + mask MLP_c(pose) */
    sl_time_embedding(c->tsin, t, B, c0, 10000.0f);
    sl_linear_forward(c->t1, c->tsin, sl_nn_param(p, net->t1_w), sl_nn_param(p, net->t1_b), B,
                      c0, E);
    sl_silu_forward(c->t1a, c->t1, (size_t)B * E);
    sl_linear_forward(c->emb, c->t1a, sl_nn_param(p, net->t2_w), sl_nn_param(p, net->t2_b), B,
                      E, E);
    sl_linear_forward(c->c1, pose, sl_nn_param(p, net->c1_w), sl_nn_param(p, net->c1_b), B,
                      VSD_POSE_FEATURES, E);
    sl_silu_forward(c->c1a, c->c1, (size_t)B * E);
    sl_linear_forward(c->cemb, c->c1a, sl_nn_param(p, net->c2_w), sl_nn_param(p, net->c2_b), B,
                      E, E);
    for (int b = 0; b < B; b++)
        for (int e = 0; e < E; e++)
            c->emb[(size_t)b * E + e] += cam_mask[b] * c->cemb[(size_t)b * E + e];

    sl_conv2d_shape s_in = conv3(c, C, c0);
    sl_status st = sl_conv2d_forward(c->hin, x, sl_nn_param(p, net->in_w),
                                     sl_nn_param(p, net->in_b), &s_in, err);
    const float *h = c->hin;
    for (int l = 0; l < L && st == SL_OK; l++) {
        st = sl_resblock_forward(&net->down[l], p, c->down[l], c->skip[l], h, c->emb, err);
        if (l < L - 1) {
            sl_avgpool2x_forward(c->pool[l], c->skip[l], B, c->H >> l, c->W >> l,
                                 level_channels(net, l));
            h = c->pool[l];
        }
    }
    if (st == SL_OK)
        st = sl_resblock_forward(&net->mid, p, c->mid, c->mid_out, c->skip[L - 1], c->emb, err);
    const float *u = c->mid_out;
    if (st == SL_OK && net->cfg.attention) {
        st = sl_attnblock_forward(&net->attn, p, c->attn, c->attn_out, c->mid_out, err);
        u = c->attn_out;
    }
    for (int l = L - 1; l >= 0 && st == SL_OK; l--) {
        const int Hl = c->H >> l, Wl = c->W >> l;
        if (l < L - 1) {
            sl_upsample2x_forward(c->ups[l], c->upo[l + 1], B, Hl / 2, Wl / 2,
                                  level_channels(net, l + 1));
            u = c->ups[l];
        }
        sl_concat_forward(c->cat[l], u, c->skip[l], (size_t)B * Hl * Wl, up_in_channels(net, l),
                          level_channels(net, l));
        st = sl_resblock_forward(&net->up[l], p, c->up[l], c->upo[l], c->cat[l], c->emb, err);
    }
    if (st != SL_OK)
        return st;
    sl_groupnorm_forward(c->gno, c->gmean, c->grstd, c->upo[0], sl_nn_param(p, net->gn_w),
                         sl_nn_param(p, net->gn_b), B, c->H * c->W, c0, net->cfg.groups, 1e-5f);
    sl_silu_forward(c->act, c->gno, (size_t)B * c->H * c->W * c0);
    sl_conv2d_shape s_out = conv3(c, c0, C);
    return sl_conv2d_forward(y, c->act, sl_nn_param(p, net->out_w), sl_nn_param(p, net->out_b),
                             &s_out, err);
}

sl_status vsd_net_backward(vsd_net *net, vsd_net_ctx *c, float *dx, const float *dy,
                           const float *x, const float *pose, const float *cam_mask,
                           sl_error *err)
{
    sl_nn_params *p = &net->params;
    const int B = c->B, L = net->cfg.levels, E = net->emb_dim, c0 = net->cfg.channels;
    const int C = net->cfg.in_channels;
    memset(c->mem + c->grad_from, 0, (c->total - c->grad_from) * sizeof(float));

    sl_conv2d_shape s_out = conv3(c, c0, C);
    sl_status st = sl_conv2d_backward(c->d_act, sl_nn_grad(p, net->out_w),
                                      sl_nn_grad(p, net->out_b), dy, c->act,
                                      sl_nn_param(p, net->out_w), &s_out, err);
    if (st != SL_OK)
        return st;
    sl_silu_backward(c->d_gno, c->d_act, c->gno, (size_t)B * c->H * c->W * c0);
    sl_groupnorm_backward(c->d_upo[0], sl_nn_grad(p, net->gn_w), sl_nn_grad(p, net->gn_b),
                          c->d_gno, c->upo[0], c->gmean, c->grstd, sl_nn_param(p, net->gn_w),
                          B, c->H * c->W, c0, net->cfg.groups);
    float *d_top = net->cfg.attention ? c->d_attn : c->d_mid;
    for (int l = 0; l < L && st == SL_OK; l++) {
        const int Hl = c->H >> l, Wl = c->W >> l;
        st = sl_resblock_backward(&net->up[l], p, c->up[l], c->d_cat[l], c->d_emb, c->d_upo[l],
                                  c->cat[l], c->emb, 1, err);
        sl_concat_backward(l < L - 1 ? c->d_ups[l] : d_top, c->d_skip[l], c->d_cat[l],
                           (size_t)B * Hl * Wl, up_in_channels(net, l), level_channels(net, l));
        if (l < L - 1)
            sl_upsample2x_backward(c->d_upo[l + 1], c->d_ups[l], B, Hl / 2, Wl / 2,
                                   level_channels(net, l + 1));
    }
    if (st == SL_OK && net->cfg.attention)
        st = sl_attnblock_backward(&net->attn, p, c->attn, c->d_mid, c->d_attn, c->mid_out, 1,
                                   err);
    if (st == SL_OK)
        st = sl_resblock_backward(&net->mid, p, c->mid, c->d_skip[L - 1], c->d_emb, c->d_mid,
                                  c->skip[L - 1], c->emb, 1, err);
    for (int l = L - 1; l >= 0 && st == SL_OK; l--) {
        st = sl_resblock_backward(&net->down[l], p, c->down[l], l == 0 ? c->d_hin : c->d_pool[l - 1],
                                  c->d_emb, c->d_skip[l], l == 0 ? c->hin : c->pool[l - 1],
                                  c->emb, 1, err);
        if (l > 0)
            sl_avgpool2x_backward(c->d_skip[l - 1], c->d_pool[l - 1], B, c->H >> (l - 1),
                                  c->W >> (l - 1), level_channels(net, l - 1));
    }
    if (st != SL_OK)
        return st;
    sl_conv2d_shape s_in = conv3(c, C, c0);
    if ((st = sl_conv2d_backward(dx, sl_nn_grad(p, net->in_w), sl_nn_grad(p, net->in_b), c->d_hin,
                                 x, sl_nn_param(p, net->in_w), &s_in, err)) != SL_OK)
        return st;

    /* The embeddings: emb = MLP_t + mask MLP_c. */
    sl_linear_backward(c->d_t1a, sl_nn_grad(p, net->t2_w), sl_nn_grad(p, net->t2_b), c->d_emb,
                       c->t1a, sl_nn_param(p, net->t2_w), B, E, E);
    sl_silu_backward(c->d_t1, c->d_t1a, c->t1, (size_t)B * E);
    sl_linear_backward(NULL, sl_nn_grad(p, net->t1_w), sl_nn_grad(p, net->t1_b), c->d_t1,
                       c->tsin, NULL, B, c0, E);
    for (int b = 0; b < B; b++)
        for (int e = 0; e < E; e++)
            c->d_cemb[(size_t)b * E + e] = cam_mask[b] * c->d_emb[(size_t)b * E + e];
    sl_linear_backward(c->d_c1a, sl_nn_grad(p, net->c2_w), sl_nn_grad(p, net->c2_b), c->d_cemb,
                       c->c1a, sl_nn_param(p, net->c2_w), B, E, E);
    sl_silu_backward(c->d_c1, c->d_c1a, c->c1, (size_t)B * E);
    sl_linear_backward(NULL, sl_nn_grad(p, net->c1_w), sl_nn_grad(p, net->c1_b), c->d_c1, pose,
                       NULL, B, VSD_POSE_FEATURES, E);
    return SL_OK;
}
