/* core/nn/unet.c — the conditional diffusion UNet of steinlab/unet.h.
 *
 * The network is a list of nodes in execution order (conv, residual block, attention,
 * concatenation with a skip, upsampling, output norm + SiLU), each reading the output of
 * an earlier node (or the input image) and, for a concatenation, a skip node. Forward
 * walks the list; backward walks it in reverse, each node ACCUMULATING into the gradient
 * buffers of the nodes it read, so a skip's gradient gathers both of its uses without
 * special cases. The model holds the list and the parameters; a context holds one batch
 * size's activations and their gradients. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/safetensors.h"
#include "steinlab/unet.h"

typedef enum unet_kind { NODE_CONV, NODE_RES, NODE_ATTN, NODE_CAT, NODE_UP, NODE_OUT_ACT } unet_kind;

enum { UNET_MAX_NODES = 96, UNET_IN = -1 /* the input image */ };

typedef struct unet_node {
    unet_kind kind;
    int in;            /* node read (UNET_IN: the image) */
    int skip;          /* NODE_CAT: the skip node concatenated after `in` */
    int size, ch;      /* output: (B, size, size, ch) */
    int in_size, in_ch;
    int stride;        /* NODE_CONV */
    size_t w, b;       /* NODE_CONV: weight, bias; NODE_OUT_ACT: gamma, beta */
    sl_resblock rb;
    sl_attnblock ab;
} unet_node;

struct sl_unet {
    sl_unet_config cfg;
    int E;                        /* embedding width */
    sl_nn_params p;
    size_t t1_w, t1_b, t2_w, t2_b, cls_emb, view_emb;
    unet_node nodes[UNET_MAX_NODES];
    int n_nodes;
};

struct sl_unet_ctx {
    int B;
    float **y, **dy;              /* (n_nodes,) outputs and their gradients */
    sl_resblock_ctx **rctx;       /* (n_nodes,) NULL except residual nodes */
    sl_attnblock_ctx **actx;      /* (n_nodes,) NULL except attention nodes */
    float *x;                     /* (B, S, S, channels) the input kept for backward */
    float *gn_mean, *gn_rstd;     /* (B, groups) output norm statistics */
    float *gn_out;                /* (B, S, S, base) output norm before SiLU */
    float *scratch;               /* (B, S, S, base) */
    float *tsin, *th, *ta, *emb;  /* (B, base), (B, E) x3 */
    float *demb, *dta, *dth;      /* (B, E) */
    int *cls, *view;              /* (B,) */
};

/* ------------------------------------------------------------------ configuration */

void sl_unet_config_default(sl_unet_config *c)
{
    memset(c, 0, sizeof *c);
    c->image_size = 16;
    c->channels = 3;
    c->base_channels = 16;
    c->levels = 2;
    c->channel_mult[0] = 1;
    c->channel_mult[1] = 2;
    c->res_blocks = 1;
    c->attn_mask = 1 << 1;
    c->heads = 2;
    c->groups = 8;
    c->classes = 1;
    c->views = 4;
}

int sl_unet_temb_dim(const sl_unet_config *c) { return 4 * c->base_channels; }

sl_status sl_unet_config_check(const sl_unet_config *c, sl_error *err)
{
#define BAD(...) return sl_error_set(err, SL_ERR_INVALID_ARG, "unet: " __VA_ARGS__)
    if (c->levels < 1 || c->levels > SL_UNET_MAX_LEVELS)
        BAD("levels %d outside [1, %d]", c->levels, SL_UNET_MAX_LEVELS);
    if (c->channels < 1 || c->channels > 64)
        BAD("channels %d outside [1, 64]", c->channels);
    if (c->base_channels < 2 || c->base_channels > 1024 || c->base_channels % 2)
        BAD("base_channels %d must be even and in [2, 1024]", c->base_channels);
    if (c->image_size < 1 || c->image_size > 1024 || c->image_size % (1 << (c->levels - 1)))
        BAD("image_size %d must be in [1, 1024] and divisible by 2^(levels-1) = %d",
            c->image_size, 1 << (c->levels - 1));
    if (c->res_blocks < 1 || c->res_blocks > 8)
        BAD("res_blocks %d outside [1, 8]", c->res_blocks);
    if (c->heads < 1 || c->groups < 1)
        BAD("heads %d and groups %d must be positive", c->heads, c->groups);
    if (c->attn_mask < 0 || c->attn_mask >= (1 << c->levels))
        BAD("attention levels mask %#x names a level beyond %d", (unsigned)c->attn_mask,
            c->levels - 1);
    if (c->classes < 1 || c->classes > 1000000 || c->views < 1 || c->views > 1000000)
        BAD("classes %d and views %d must be in [1, 1e6]", c->classes, c->views);
    if (c->base_channels % c->groups)
        BAD("groups %d do not divide base_channels %d", c->groups, c->base_channels);
    for (int l = 0; l < c->levels; l++) {
        const int m = c->channel_mult[l];
        if (m < 1 || m > 16)
            BAD("channel_mult[%d] = %d outside [1, 16]", l, m);
        const int ch = m * c->base_channels;
        if (ch % c->groups)
            BAD("groups %d do not divide the %d channels of level %d", c->groups, ch, l);
        const int attended = (c->attn_mask >> l) & 1 || l == c->levels - 1;   /* mid */
        if (attended && ch % c->heads)
            BAD("heads %d do not divide the %d channels of level %d", c->heads, ch, l);
    }
#undef BAD
    return SL_OK;
}

int sl_unet_config_equal(const sl_unet_config *a, const sl_unet_config *b, char *why,
                         size_t size)
{
#define FIELD(f)                                                                          \
    if (a->f != b->f) {                                                                   \
        snprintf(why, size, #f " %d differs from %d", a->f, b->f);                       \
        return 0;                                                                         \
    }
    FIELD(image_size) FIELD(channels) FIELD(base_channels) FIELD(levels) FIELD(res_blocks)
    FIELD(attn_mask) FIELD(heads) FIELD(groups) FIELD(classes) FIELD(views)
    for (int l = 0; l < a->levels; l++)
        FIELD(channel_mult[l])
#undef FIELD
    return 1;
}

/* ------------------------------------------------------------------ building */

static sl_status add_node(sl_unet *u, const unet_node *n, sl_error *err)
{
    if (u->n_nodes == UNET_MAX_NODES)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "unet: more than %d layers",
                            UNET_MAX_NODES);
    u->nodes[u->n_nodes++] = *n;
    return SL_OK;
}

static int last(const sl_unet *u) { return u->n_nodes - 1; }

static unet_node node_after(const sl_unet *u, unet_kind kind, int ch)
{
    const unet_node *prev = &u->nodes[last(u)];
    unet_node n;
    memset(&n, 0, sizeof n);
    n.kind = kind;
    n.in = last(u);
    n.skip = -1;
    n.in_size = prev->size;
    n.in_ch = prev->ch;
    n.size = prev->size;
    n.ch = ch;
    return n;
}

static sl_status declare(sl_unet *u, const char *name, int ndim, int64_t d0, int64_t d1,
                         int64_t d2, int64_t d3, sl_nn_init init, int fan_in, size_t *idx,
                         sl_error *err)
{
    const int64_t dims[4] = { d0, d1, d2, d3 };
    return sl_nn_params_declare(&u->p, name, ndim, dims, init, fan_in, idx, err);
}

/* A 3x3 convolution (pad 1) of the last node's output to `cout` channels. in_node: the
 * node read (normally the last), stride 1 or 2. */
static sl_status add_conv(sl_unet *u, const char *prefix, int in_node, int in_size, int cin,
                          int cout, int stride, sl_error *err)
{
    unet_node n;
    memset(&n, 0, sizeof n);
    n.kind = NODE_CONV;
    n.in = in_node;
    n.skip = -1;
    n.in_size = in_size;
    n.in_ch = cin;
    n.size = in_size / stride;
    n.ch = cout;
    n.stride = stride;
    char name[SL_NN_NAME_MAX];
    snprintf(name, sizeof name, "%s.weight", prefix);
    sl_status st = declare(u, name, 4, cout, 3, 3, cin, SL_NN_INIT_UNIFORM, 9 * cin, &n.w, err);
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (st == SL_OK)
        st = declare(u, name, 1, cout, 0, 0, 0, SL_NN_INIT_UNIFORM, 9 * cin, &n.b, err);
    return st == SL_OK ? add_node(u, &n, err) : st;
}

static sl_status add_res(sl_unet *u, const char *prefix, int cout, sl_error *err)
{
    unet_node n = node_after(u, NODE_RES, cout);
    sl_status st = sl_resblock_declare(&n.rb, &u->p, prefix, n.in_ch, cout, u->E,
                                       u->cfg.groups, err);
    return st == SL_OK ? add_node(u, &n, err) : st;
}

static sl_status add_attn(sl_unet *u, const char *prefix, sl_error *err)
{
    unet_node n = node_after(u, NODE_ATTN, u->nodes[last(u)].ch);
    sl_status st = sl_attnblock_declare(&n.ab, &u->p, prefix, n.ch, u->cfg.heads,
                                        u->cfg.groups, err);
    return st == SL_OK ? add_node(u, &n, err) : st;
}

static sl_status add_cat(sl_unet *u, int skip, sl_error *err)
{
    unet_node n = node_after(u, NODE_CAT, u->nodes[last(u)].ch + u->nodes[skip].ch);
    n.skip = skip;
    return add_node(u, &n, err);
}

static sl_status build(sl_unet *u, sl_error *err)
{
    const sl_unet_config *c = &u->cfg;
    const int base = c->base_channels, E = u->E;
    char name[SL_NN_NAME_MAX];
    sl_status st = SL_OK;
#define TRY(call)                   \
    do {                            \
        if ((st = (call)) != SL_OK) \
            return st;              \
    } while (0)
    TRY(declare(u, "time_embedding.linear_1.weight", 2, E, base, 0, 0, SL_NN_INIT_UNIFORM,
                base, &u->t1_w, err));
    TRY(declare(u, "time_embedding.linear_1.bias", 1, E, 0, 0, 0, SL_NN_INIT_UNIFORM, base,
                &u->t1_b, err));
    TRY(declare(u, "time_embedding.linear_2.weight", 2, E, E, 0, 0, SL_NN_INIT_UNIFORM, E,
                &u->t2_w, err));
    TRY(declare(u, "time_embedding.linear_2.bias", 1, E, 0, 0, 0, SL_NN_INIT_UNIFORM, E,
                &u->t2_b, err));
    /* Embedding tables start as U(-1, 1) (fan-in 1): of the order of the MLP's output. */
    TRY(declare(u, "class_embedding.weight", 2, c->classes + 1, E, 0, 0, SL_NN_INIT_UNIFORM,
                1, &u->cls_emb, err));
    TRY(declare(u, "view_embedding.weight", 2, c->views + 1, E, 0, 0, SL_NN_INIT_UNIFORM, 1,
                &u->view_emb, err));

    int skips[UNET_MAX_NODES], n_skips = 0;
    TRY(add_conv(u, "conv_in", UNET_IN, c->image_size, c->channels, base, 1, err));
    skips[n_skips++] = last(u);
    for (int l = 0; l < c->levels; l++) {
        const int ch = base * c->channel_mult[l];
        for (int r = 0; r < c->res_blocks; r++) {
            snprintf(name, sizeof name, "down.%d.res.%d", l, r);
            TRY(add_res(u, name, ch, err));
            if ((c->attn_mask >> l) & 1) {
                snprintf(name, sizeof name, "down.%d.attn.%d", l, r);
                TRY(add_attn(u, name, err));
            }
            skips[n_skips++] = last(u);
        }
        if (l < c->levels - 1) {
            snprintf(name, sizeof name, "down.%d.downsample", l);
            const unet_node *prev = &u->nodes[last(u)];
            TRY(add_conv(u, name, last(u), prev->size, ch, ch, 2, err));
            skips[n_skips++] = last(u);
        }
    }
    const int top = base * c->channel_mult[c->levels - 1];
    TRY(add_res(u, "mid.res.0", top, err));
    TRY(add_attn(u, "mid.attn", err));
    TRY(add_res(u, "mid.res.1", top, err));
    for (int l = c->levels - 1; l >= 0; l--) {
        const int ch = base * c->channel_mult[l];
        for (int r = 0; r <= c->res_blocks; r++) {
            TRY(add_cat(u, skips[--n_skips], err));
            snprintf(name, sizeof name, "up.%d.res.%d", l, r);
            TRY(add_res(u, name, ch, err));
            if ((c->attn_mask >> l) & 1) {
                snprintf(name, sizeof name, "up.%d.attn.%d", l, r);
                TRY(add_attn(u, name, err));
            }
        }
        if (l > 0) {
            unet_node up = node_after(u, NODE_UP, ch);
            up.size = 2 * up.in_size;
            TRY(add_node(u, &up, err));
            snprintf(name, sizeof name, "up.%d.upsample.conv", l);
            TRY(add_conv(u, name, last(u), up.size, ch, ch, 1, err));
        }
    }
    unet_node out = node_after(u, NODE_OUT_ACT, base);
    TRY(declare(u, "norm_out.weight", 1, base, 0, 0, 0, SL_NN_INIT_ONE, 0, &out.w, err));
    TRY(declare(u, "norm_out.bias", 1, base, 0, 0, 0, SL_NN_INIT_ZERO, 0, &out.b, err));
    TRY(add_node(u, &out, err));
    TRY(add_conv(u, "conv_out", last(u), c->image_size, base, c->channels, 1, err));
#undef TRY
    return st;
}

sl_status sl_unet_create(const sl_unet_config *c, sl_unet **out, sl_error *err)
{
    *out = NULL;
    sl_status st = sl_unet_config_check(c, err);
    if (st != SL_OK)
        return st;
    sl_unet *u = calloc(1, sizeof *u);
    if (!u)
        return sl_error_set(err, SL_ERR_NOMEM, "unet: out of memory");
    u->cfg = *c;
    for (int l = c->levels; l < SL_UNET_MAX_LEVELS; l++)
        u->cfg.channel_mult[l] = 0;
    u->E = sl_unet_temb_dim(c);
    sl_nn_params_init(&u->p);
    st = build(u, err);
    if (st == SL_OK)
        st = sl_nn_params_alloc(&u->p, err);
    if (st != SL_OK) {
        sl_unet_destroy(u);
        return st;
    }
    *out = u;
    return SL_OK;
}

void sl_unet_destroy(sl_unet *u)
{
    if (!u)
        return;
    sl_nn_params_free(&u->p);
    free(u);
}

const sl_unet_config *sl_unet_config_of(const sl_unet *u) { return &u->cfg; }
sl_nn_params *sl_unet_params(sl_unet *u) { return &u->p; }
const sl_nn_params *sl_unet_params_const(const sl_unet *u) { return &u->p; }

/* ------------------------------------------------------------------ contexts */

void sl_unet_ctx_destroy(sl_unet_ctx *c)
{
    if (!c)
        return;
    /* The arrays have UNET_MAX_NODES entries, NULL (calloc) beyond the model's nodes. */
    for (int i = 0; c->y && i < UNET_MAX_NODES; i++) {
        free(c->y[i]);
        free(c->dy[i]);
        sl_resblock_ctx_destroy(c->rctx[i]);
        sl_attnblock_ctx_destroy(c->actx[i]);
    }
    free(c->y), free(c->dy), free(c->rctx), free(c->actx);
    free(c->x), free(c->gn_mean), free(c->gn_rstd), free(c->gn_out), free(c->scratch);
    free(c->tsin), free(c->th), free(c->ta), free(c->emb), free(c->demb), free(c->dta),
        free(c->dth);
    free(c->cls), free(c->view);
    free(c);
}

static float *falloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

sl_status sl_unet_ctx_create(const sl_unet *u, int B, sl_unet_ctx **out, sl_error *err)
{
    *out = NULL;
    const sl_unet_config *cfg = &u->cfg;
    const size_t S = (size_t)cfg->image_size;
    if (B < 1 || (size_t)B * S * S * 4 * (size_t)cfg->base_channels * 16 > ((size_t)1 << 40))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "unet: batch %d too small or too large",
                            B);
    sl_unet_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return sl_error_set(err, SL_ERR_NOMEM, "unet: out of memory");
    c->B = B;
    c->y = calloc(UNET_MAX_NODES, sizeof *c->y);
    c->dy = calloc(UNET_MAX_NODES, sizeof *c->dy);
    c->rctx = calloc(UNET_MAX_NODES, sizeof *c->rctx);
    c->actx = calloc(UNET_MAX_NODES, sizeof *c->actx);
    int ok = c->y && c->dy && c->rctx && c->actx;
    sl_status st = SL_OK;
    for (int i = 0; ok && i < u->n_nodes; i++) {
        const unet_node *n = &u->nodes[i];
        const size_t len = (size_t)B * n->size * n->size * n->ch;
        c->y[i] = falloc(len);
        c->dy[i] = falloc(len);
        ok = c->y[i] && c->dy[i];
        if (ok && n->kind == NODE_RES)
            st = sl_resblock_ctx_create(&n->rb, B, n->size, n->size, &c->rctx[i], err);
        else if (ok && n->kind == NODE_ATTN)
            st = sl_attnblock_ctx_create(&n->ab, B, n->size, n->size, &c->actx[i], err);
        if (st != SL_OK) {
            sl_unet_ctx_destroy(c);
            return st;
        }
    }
    const size_t E = (size_t)u->E, base = (size_t)cfg->base_channels;
    c->x = falloc((size_t)B * S * S * cfg->channels);
    c->gn_mean = falloc((size_t)B * cfg->groups);
    c->gn_rstd = falloc((size_t)B * cfg->groups);
    c->gn_out = falloc((size_t)B * S * S * base);
    c->scratch = falloc((size_t)B * S * S * base);
    c->tsin = falloc((size_t)B * base);
    c->th = falloc(B * E), c->ta = falloc(B * E), c->emb = falloc(B * E);
    c->demb = falloc(B * E), c->dta = falloc(B * E), c->dth = falloc(B * E);
    c->cls = calloc((size_t)B, sizeof *c->cls);
    c->view = calloc((size_t)B, sizeof *c->view);
    ok = ok && c->x && c->gn_mean && c->gn_rstd && c->gn_out && c->scratch && c->tsin &&
         c->th && c->ta && c->emb && c->demb && c->dta && c->dth && c->cls && c->view;
    if (!ok) {
        sl_unet_ctx_destroy(c);
        return sl_error_set(err, SL_ERR_NOMEM, "unet: out of memory for a batch of %d", B);
    }
    *out = c;
    return SL_OK;
}

int sl_unet_ctx_batch(const sl_unet_ctx *c) { return c->B; }

/* ------------------------------------------------------------------ forward */

static sl_conv2d_shape conv_shape(const unet_node *n, int B)
{
    sl_conv2d_shape s = { B, n->in_size, n->in_size, n->in_ch, n->ch, 3, n->stride, 1 };
    return s;
}

sl_status sl_unet_forward(const sl_unet *u, sl_unet_ctx *c, float *eps, const float *x,
                          const float *t, const int *cls, const int *view, sl_error *err)
{
    const sl_unet_config *cfg = &u->cfg;
    const sl_nn_params *p = &u->p;
    const int B = c->B, E = u->E, base = cfg->base_channels;
    for (int b = 0; b < B; b++)
        if (cls[b] < 0 || cls[b] > cfg->classes || view[b] < 0 || view[b] > cfg->views)
            return sl_error_set(err, SL_ERR_INVALID_ARG, "unet: element %d has class %d "
                                "(expected 0..%d) and view %d (expected 0..%d)", b, cls[b],
                                cfg->classes, view[b], cfg->views);
    const size_t nx = (size_t)B * cfg->image_size * cfg->image_size * cfg->channels;
    memcpy(c->x, x, nx * sizeof(float));
    memcpy(c->cls, cls, (size_t)B * sizeof *cls);
    memcpy(c->view, view, (size_t)B * sizeof *view);

    /* Conditioning: emb = MLP(sinusoidal(t)) + class row + view row. */
    sl_time_embedding(c->tsin, t, B, base, 10000.0f);
    sl_linear_forward(c->th, c->tsin, sl_nn_param(p, u->t1_w), sl_nn_param(p, u->t1_b), B,
                      base, E);
    sl_silu_forward(c->ta, c->th, (size_t)B * E);
    sl_linear_forward(c->emb, c->ta, sl_nn_param(p, u->t2_w), sl_nn_param(p, u->t2_b), B, E,
                      E);
    const float *ce = sl_nn_param(p, u->cls_emb), *ve = sl_nn_param(p, u->view_emb);
    for (int b = 0; b < B; b++)
        for (int e = 0; e < E; e++)
            c->emb[(size_t)b * E + e] += ce[(size_t)cls[b] * E + e] + ve[(size_t)view[b] * E + e];

    sl_status st = SL_OK;
    for (int i = 0; i < u->n_nodes && st == SL_OK; i++) {
        const unet_node *n = &u->nodes[i];
        const float *in = n->in == UNET_IN ? c->x : c->y[n->in];
        float *y = c->y[i];
        const size_t npos = (size_t)B * n->size * n->size;
        switch (n->kind) {
        case NODE_CONV: {
            sl_conv2d_shape s = conv_shape(n, B);
            st = sl_conv2d_forward(y, in, sl_nn_param(p, n->w), sl_nn_param(p, n->b), &s, err);
            break;
        }
        case NODE_RES:
            st = sl_resblock_forward(&n->rb, p, c->rctx[i], y, in, c->emb, err);
            break;
        case NODE_ATTN:
            st = sl_attnblock_forward(&n->ab, p, c->actx[i], y, in, err);
            break;
        case NODE_CAT:
            sl_concat_forward(y, in, c->y[n->skip], npos, n->in_ch, u->nodes[n->skip].ch);
            break;
        case NODE_UP:
            sl_upsample2x_forward(y, in, B, n->in_size, n->in_size, n->ch);
            break;
        case NODE_OUT_ACT:
            sl_groupnorm_forward(c->gn_out, c->gn_mean, c->gn_rstd, in, sl_nn_param(p, n->w),
                                 sl_nn_param(p, n->b), B, n->size * n->size, n->ch,
                                 cfg->groups, 1e-5f);
            sl_silu_forward(y, c->gn_out, npos * n->ch);
            break;
        }
    }
    if (st == SL_OK)
        memcpy(eps, c->y[last(u)], nx * sizeof(float));
    return st;
}

/* ------------------------------------------------------------------ backward */

sl_status sl_unet_backward(sl_unet *u, sl_unet_ctx *c, float *dx, const float *deps,
                           int param_grads, sl_error *err)
{
    const sl_unet_config *cfg = &u->cfg;
    sl_nn_params *p = &u->p;
    const int B = c->B, E = u->E, base = cfg->base_channels;
#define PG(idx) (param_grads ? sl_nn_grad(p, (idx)) : NULL)
    for (int i = 0; i < u->n_nodes; i++) {
        const unet_node *n = &u->nodes[i];
        memset(c->dy[i], 0, (size_t)B * n->size * n->size * n->ch * sizeof(float));
    }
    memset(c->demb, 0, (size_t)B * E * sizeof(float));
    const size_t nx = (size_t)B * cfg->image_size * cfg->image_size * cfg->channels;
    memcpy(c->dy[last(u)], deps, nx * sizeof(float));
    float *demb = param_grads ? c->demb : NULL;   /* only parameters lie behind emb */

    sl_status st = SL_OK;
    for (int i = last(u); i >= 0 && st == SL_OK; i--) {
        const unet_node *n = &u->nodes[i];
        const float *in = n->in == UNET_IN ? c->x : c->y[n->in];
        float *din = n->in == UNET_IN ? dx : c->dy[n->in];
        const float *dy = c->dy[i];
        const size_t npos = (size_t)B * n->size * n->size;
        switch (n->kind) {
        case NODE_CONV: {
            sl_conv2d_shape s = conv_shape(n, B);
            if (din || param_grads)
                st = sl_conv2d_backward(din, PG(n->w), PG(n->b), dy, in, sl_nn_param(p, n->w),
                                        &s, err);
            break;
        }
        case NODE_RES:
            st = sl_resblock_backward(&n->rb, p, c->rctx[i], din, demb, dy, in, c->emb,
                                      param_grads, err);
            break;
        case NODE_ATTN:
            st = sl_attnblock_backward(&n->ab, p, c->actx[i], din, dy, in, param_grads, err);
            break;
        case NODE_CAT:
            sl_concat_backward(din, c->dy[n->skip], dy, npos, n->in_ch, u->nodes[n->skip].ch);
            break;
        case NODE_UP:
            sl_upsample2x_backward(din, dy, B, n->in_size, n->in_size, n->ch);
            break;
        case NODE_OUT_ACT:
            memset(c->scratch, 0, npos * n->ch * sizeof(float));
            sl_silu_backward(c->scratch, dy, c->gn_out, npos * n->ch);
            sl_groupnorm_backward(din, PG(n->w), PG(n->b), c->scratch, in, c->gn_mean,
                                  c->gn_rstd, sl_nn_param(p, n->w), B, n->size * n->size,
                                  n->ch, cfg->groups);
            break;
        }
    }
    if (st != SL_OK || !param_grads)
        return st;

    /* The conditioning: tables get their rows' gradients (in batch order), the MLP its. */
    float *gce = sl_nn_grad(p, u->cls_emb), *gve = sl_nn_grad(p, u->view_emb);
    for (int b = 0; b < B; b++)
        for (int e = 0; e < E; e++) {
            const float g = c->demb[(size_t)b * E + e];
            gce[(size_t)c->cls[b] * E + e] += g;
            gve[(size_t)c->view[b] * E + e] += g;
        }
    memset(c->dta, 0, (size_t)B * E * sizeof(float));
    memset(c->dth, 0, (size_t)B * E * sizeof(float));
    sl_linear_backward(c->dta, PG(u->t2_w), PG(u->t2_b), c->demb, c->ta,
                       sl_nn_param(p, u->t2_w), B, E, E);
    sl_silu_backward(c->dth, c->dta, c->th, (size_t)B * E);
    sl_linear_backward(NULL, PG(u->t1_w), PG(u->t1_b), c->dth, c->tsin,
                       sl_nn_param(p, u->t1_w), B, base, E);
#undef PG
    return SL_OK;
}

/* ------------------------------------------------------------------ files */

#define META_FORMAT "steinlab.unet"

typedef struct meta_field {
    const char *key;
    size_t offset;
} meta_field;

static const meta_field meta_fields[] = {
    { "unet.image_size", offsetof(sl_unet_config, image_size) },
    { "unet.channels", offsetof(sl_unet_config, channels) },
    { "unet.base_channels", offsetof(sl_unet_config, base_channels) },
    { "unet.levels", offsetof(sl_unet_config, levels) },
    { "unet.res_blocks", offsetof(sl_unet_config, res_blocks) },
    { "unet.attention_levels_mask", offsetof(sl_unet_config, attn_mask) },
    { "unet.heads", offsetof(sl_unet_config, heads) },
    { "unet.groups", offsetof(sl_unet_config, groups) },
    { "unet.classes", offsetof(sl_unet_config, classes) },
    { "unet.views", offsetof(sl_unet_config, views) },
};
enum { N_META_FIELDS = sizeof meta_fields / sizeof meta_fields[0] };

sl_status sl_unet_write_meta(const sl_unet_config *c, sl_st_writer *w, sl_error *err)
{
    char value[64];
    sl_status st = sl_st_writer_meta(w, "format", META_FORMAT, err);
    for (size_t i = 0; st == SL_OK && i < N_META_FIELDS; i++) {
        snprintf(value, sizeof value, "%d", *(const int *)((const char *)c + meta_fields[i].offset));
        st = sl_st_writer_meta(w, meta_fields[i].key, value, err);
    }
    for (int l = 0; st == SL_OK && l < c->levels; l++) {
        char key[64];
        snprintf(key, sizeof key, "unet.channel_mult.%d", l);
        snprintf(value, sizeof value, "%d", c->channel_mult[l]);
        st = sl_st_writer_meta(w, key, value, err);
    }
    return st;
}

static sl_status meta_int(const sl_safetensors *st, const char *key, int *out, sl_error *err)
{
    const char *v = sl_safetensors_meta_get(st, key);
    if (!v)
        return sl_error_set(err, SL_ERR_FORMAT, "unet file: metadata lacks '%s'", key);
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < -1000000000L || x > 1000000000L)
        return sl_error_set(err, SL_ERR_FORMAT, "unet file: metadata '%s' = '%.40s' is not an "
                            "integer", key, v);
    *out = (int)x;
    return SL_OK;
}

sl_status sl_unet_read_meta(const sl_safetensors *st, sl_unet_config *c, sl_error *err)
{
    const char *format = sl_safetensors_meta_get(st, "format");
    if (!format || strcmp(format, META_FORMAT) != 0)
        return sl_error_set(err, SL_ERR_FORMAT, "not a steinlab UNet file: metadata 'format' "
                            "is %s%.40s%s (expected '" META_FORMAT "')", format ? "'" : "",
                            format ? format : "absent", format ? "'" : "");
    memset(c, 0, sizeof *c);
    sl_status s = SL_OK;
    for (size_t i = 0; s == SL_OK && i < N_META_FIELDS; i++)
        s = meta_int(st, meta_fields[i].key, (int *)((char *)c + meta_fields[i].offset), err);
    if (s == SL_OK && (c->levels < 1 || c->levels > SL_UNET_MAX_LEVELS))
        return sl_error_set(err, SL_ERR_FORMAT, "unet file: levels %d outside [1, %d]",
                            c->levels, SL_UNET_MAX_LEVELS);
    for (int l = 0; s == SL_OK && l < c->levels; l++) {
        char key[64];
        snprintf(key, sizeof key, "unet.channel_mult.%d", l);
        s = meta_int(st, key, &c->channel_mult[l], err);
    }
    if (s != SL_OK)
        return s;
    sl_error why;
    if (sl_unet_config_check(c, &why) != SL_OK)
        return sl_error_set(err, SL_ERR_FORMAT, "unet file declares an invalid configuration: "
                            "%s", why.msg);
    return SL_OK;
}

sl_status sl_unet_save(const sl_unet *u, const char *path, const char *const *keys,
                       const char *const *values, size_t n_extra, sl_error *err)
{
    sl_st_writer *w = NULL;
    sl_status st = sl_st_writer_create(&w, err);
    if (st == SL_OK)
        st = sl_unet_write_meta(&u->cfg, w, err);
    for (size_t i = 0; st == SL_OK && i < n_extra; i++)
        st = sl_st_writer_meta(w, keys[i], values[i], err);
    for (size_t i = 0; st == SL_OK && i < u->p.n; i++) {
        const sl_nn_tensor *t = &u->p.tensors[i];
        st = sl_st_writer_add(w, t->name, t->ndim, t->shape, u->p.data + t->offset, err);
    }
    if (st == SL_OK)
        st = sl_st_writer_write(w, path, err);
    sl_st_writer_destroy(w);
    return st;
}

sl_status sl_unet_load(const sl_safetensors *st, sl_unet **out, sl_error *err)
{
    *out = NULL;
    sl_unet_config c;
    sl_status s = sl_unet_read_meta(st, &c, err);
    sl_unet *u = NULL;
    if (s == SL_OK)
        s = sl_unet_create(&c, &u, err);
    if (s == SL_OK) {
        sl_error why;
        if (sl_nn_params_load(&u->p, st, &why) != SL_OK)
            s = sl_error_set(err, SL_ERR_FORMAT, "unet file: its tensors do not match the "
                             "configuration its metadata declares: %s", why.msg);
    }
    if (s != SL_OK) {
        sl_unet_destroy(u);
        return s;
    }
    *out = u;
    return SL_OK;
}
