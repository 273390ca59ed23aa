/* steinlab/nn.h — neural-network building blocks with hand-written forward and backward
 * passes (CPU; the per-element math is in nn_math.h so CUDA kernels can share it).
 *
 * Used by small networks of the framework: VSD's noise-prediction network, learned
 * baselines (MLPs) and a small diffusion UNet prior. See docs/nn.md.
 *
 * LAYOUT. Images are NHWC, (B, H, W, C) row-major, as everywhere else in the project; a
 * spatial map seen as a sequence is (B, N, C) with N = H W. Conv weights are
 * (Cout, k, k, Cin), so a weight row is one output channel's patch in the same (ky, kx, c)
 * order as the input's memory; linear weights are (out, in) (y = x W^T + b, as torch).
 *
 * GRADIENT RULE (the whole module, like llm.c): forward passes OVERWRITE their outputs (=);
 * backward passes ACCUMULATE (+=) into every gradient argument, input gradients and
 * parameter gradients alike, so a tensor used twice (a residual, a skip connection) gets
 * both contributions without extra buffers. The caller zeroes gradients. Any gradient
 * pointer may be NULL, and that gradient is then skipped: dw = db = NULL is the input-only
 * VJP for frozen weights (a prior whose network is fixed), dx = NULL skips the input
 * gradient of a first layer. Gradients are named with a d prefix (dx, dw, ...).
 *
 * ALIASING. Outputs never alias inputs unless a function says so.
 *
 * DETERMINISM. Every result is bit-identical whatever the OpenMP thread count: work is cut
 * into pieces whose boundaries depend only on the shapes, each piece (one GEMM tile, one
 * (image, group) reduction, one (image, head) attention) is computed by one thread in a
 * fixed order, and reductions across pieces are summed in index order. OpenBLAS is only
 * called from inside this module's OpenMP regions, where the OpenMP build of OpenBLAS runs
 * single-threaded, so it never splits a piece further.
 *
 * ERRORS. Functions that need scratch memory (conv, attention, the composed blocks) return
 * an sl_status (SL_ERR_NOMEM, or SL_ERR_INVALID_ARG for impossible shapes) with a message;
 * the others cannot fail and return void. Shapes are ints: every tensor must have fewer than
 * 2^31 elements per image (checked where the composed blocks allocate). */
#ifndef STEINLAB_NN_H
#define STEINLAB_NN_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/optim.h"
#include "steinlab/rng.h"
#include "steinlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================================
 * Linear: y = x W^T + b over a batch of rows. OpenBLAS SGEMM.
 * ====================================================================================== */

/* y: (N, out) written; x: (N, in); w: (out, in); b: (out,) or NULL (no bias). */
void sl_linear_forward(float *y, const float *x, const float *w, const float *b,
                       int N, int in, int out);

/* dx: (N, in) += dy W;  dw: (out, in) += dy^T x;  db: (out,) += column sums of dy.
 * dy: (N, out); x: (N, in) (may be NULL when dw is NULL); w: (out, in) (may be NULL when
 * dx is NULL). */
void sl_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int N, int in, int out);

/* ======================================================================================
 * Conv2d, NHWC, square kernel k (1 or 3 in this project; any odd or even k >= 1 works),
 * stride 1 or 2, zero padding pad >= 0. Ho = (H + 2 pad - k) / stride + 1, same for Wo.
 * 1x1 stride-1 convolutions go straight to SGEMM (an NHWC image is already a (B H W, C)
 * matrix); the others build the patch matrix (im2col) one image at a time, in row chunks,
 * and multiply it by the weights with SGEMM (docs/nn.md, "Convolution").
 * ====================================================================================== */

typedef struct sl_conv2d_shape {
    int B, H, W;      /* batch and input size */
    int cin, cout;    /* channels */
    int k;            /* kernel size (k x k) */
    int stride;       /* 1 or 2 */
    int pad;          /* zero padding on every side */
} sl_conv2d_shape;

/* Output height and width; 0 when the shape is invalid (then forward refuses it). */
int sl_conv2d_out_h(const sl_conv2d_shape *s);
int sl_conv2d_out_w(const sl_conv2d_shape *s);
/* Weight element count: cout k k cin. */
size_t sl_conv2d_weight_numel(const sl_conv2d_shape *s);

/* y: (B, Ho, Wo, cout) written; x: (B, H, W, cin); w: (cout, k, k, cin); b: (cout,) or NULL.
 * Fails with SL_ERR_INVALID_ARG (bad shape) or SL_ERR_NOMEM (patch buffer). */
sl_status sl_conv2d_forward(float *y, const float *x, const float *w, const float *b,
                            const sl_conv2d_shape *s, sl_error *err);

/* dx: (B, H, W, cin) +=; dw: (cout, k, k, cin) +=; db: (cout,) +=; dy: (B, Ho, Wo, cout);
 * x: needed when dw != NULL; w: needed when dx != NULL. */
sl_status sl_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                             const float *w, const sl_conv2d_shape *s, sl_error *err);

/* ======================================================================================
 * Group norm with affine (torch.nn.GroupNorm): over each (image, group) of C/G channels and
 * all N positions, xhat = (x - mean) / sqrt(var + eps) (biased variance), y = gamma xhat +
 * beta. Statistics are accumulated in double, in a fixed order.
 * ====================================================================================== */

/* y: (B, N, C) written; mean, rstd: (B, G) written (kept for backward); x: (B, N, C);
 * gamma, beta: (C,). C % G == 0. */
void sl_groupnorm_forward(float *y, float *mean, float *rstd, const float *x,
                          const float *gamma, const float *beta, int B, int N, int C, int G,
                          float eps);

/* dx: (B, N, C) +=; dgamma, dbeta: (C,) +=; dy, x: (B, N, C); mean, rstd: (B, G) from
 * forward; gamma: (C,). */
void sl_groupnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                           const float *x, const float *mean, const float *rstd,
                           const float *gamma, int B, int N, int C, int G);

/* ======================================================================================
 * Element-wise and resampling ops.
 * ====================================================================================== */

/* SiLU y = x sigmoid(x). y, x: (n,); y may alias x in forward. dx: (n,) += ; x: the input. */
void sl_silu_forward(float *y, const float *x, size_t n);
void sl_silu_backward(float *dx, const float *dy, const float *x, size_t n);

/* Nearest-neighbour 2x upsampling. y: (B, 2H, 2W, C) written; x: (B, H, W, C).
 * Backward: dx (B, H, W, C) += the sum of its 4 copies' gradients. */
void sl_upsample2x_forward(float *y, const float *x, int B, int H, int W, int C);
void sl_upsample2x_backward(float *dx, const float *dy, int B, int H, int W, int C);

/* 2x2 average pooling, stride 2 (H, W even). y: (B, H/2, W/2, C) written; x: (B, H, W, C).
 * Backward: dx (B, H, W, C) += dy / 4 on each of the 4 inputs. */
void sl_avgpool2x_forward(float *y, const float *x, int B, int H, int W, int C);
void sl_avgpool2x_backward(float *dx, const float *dy, int B, int H, int W, int C);

/* Channel concatenation (a UNet's skip connection): y[..., :ca] = a, y[..., ca:] = b.
 * y: (R, ca + cb) written; a: (R, ca); b: (R, cb), R = B H W rows.
 * Backward: da (R, ca) += , db (R, cb) += the two slices of dy (either may be NULL). */
void sl_concat_forward(float *y, const float *a, const float *b, size_t R, int ca, int cb);
void sl_concat_backward(float *da, float *db, const float *dy, size_t R, int ca, int cb);

/* Adds v[b] to every position of image b: y (B, N, C) += v (B, C) (time-embedding
 * injection). Backward: dv (B, C) += sum over positions of dy (fixed order). */
void sl_add_channel_bias_forward(float *y, const float *v, int B, int N, int C);
void sl_add_channel_bias_backward(float *dv, const float *dy, int B, int N, int C);

/* Sinusoidal embedding of (possibly fractional) timesteps: out[b] = [sin(t_b f_i),
 * cos(t_b f_i)], i < dim/2, f_i = max_period^(-i/(dim/2)) (nn_math.h). dim even.
 * out: (B, dim) written; t: (B,). No backward: t is an input, not a learned quantity (the
 * MLP after it — linear, SiLU, linear — is where the parameters are). */
void sl_time_embedding(float *out, const float *t, int B, int dim, float max_period);

/* ======================================================================================
 * Multi-head self-attention over the N positions of each image (scaled dot product):
 * for each image b and head h, with d = C / nh and Q, K, V the head's (N, d) slices of qkv,
 *   P = softmax_rows(Q K^T / sqrt(d))  (row max subtracted before exp),   out = P V.
 * ====================================================================================== */

/* out: (B, N, C) written (heads side by side, head h in channels [h d, (h+1) d));
 * probs: (B, nh, N, N) written (kept for backward); qkv: (B, N, 3C) = [Q | K | V] along the
 * channel axis. C % nh == 0. Fails only with SL_ERR_INVALID_ARG. */
sl_status sl_attention_forward(float *out, float *probs, const float *qkv, int B, int N, int C,
                               int nh, sl_error *err);

/* dqkv: (B, N, 3C) +=; dout: (B, N, C); qkv and probs from forward.
 *   dP = dO V^T,  dV = P^T dO,  dS = P * (dP - rowsum(P * dP)) / sqrt(d),
 *   dQ = dS K,  dK = dS^T Q.
 * Needs an (N, N) scratch per thread: SL_ERR_NOMEM when it cannot be had. */
sl_status sl_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                const float *probs, int B, int N, int C, int nh, sl_error *err);

/* ======================================================================================
 * Parameter store: named tensors carved from one allocation (llm.c's
 * malloc_and_point_parameters), with a gradient buffer of the same layout, so a whole
 * network is one sl_param_group for the core's Adam, and its tensors are saved and loaded
 * by name (safetensors.h).
 *
 * Lifecycle: sl_nn_params_init -> declare every tensor (blocks' *_declare do this) ->
 * sl_nn_params_alloc (data and grads zeroed) -> sl_nn_params_randomize or load -> use ->
 * sl_nn_params_free. Declaring after alloc is refused. Tensor i's data is
 * p->data + p->tensors[i].offset; offsets are multiples of 16 floats (64 bytes).
 * ====================================================================================== */

enum { SL_NN_NAME_MAX = 96, SL_NN_MAX_DIMS = 4 };

typedef enum sl_nn_init {
    SL_NN_INIT_ZERO = 0,   /* biases, the last layer of a residual branch when wanted */
    SL_NN_INIT_ONE,        /* norm scales */
    SL_NN_INIT_UNIFORM     /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)), torch's default for
                              Linear and Conv2d weights (kaiming_uniform with a = sqrt 5) */
} sl_nn_init;

typedef struct sl_nn_tensor {
    char name[SL_NN_NAME_MAX];        /* unique in the store, e.g. "down.0.conv1.weight" */
    int ndim;
    int64_t shape[SL_NN_MAX_DIMS];    /* (shape[0], ..., shape[ndim-1]) */
    size_t numel;
    size_t offset;                    /* in floats, into data and grad */
    sl_nn_init init;
    int fan_in;                       /* for SL_NN_INIT_UNIFORM */
} sl_nn_tensor;

typedef struct sl_nn_params {
    sl_nn_tensor *tensors;   /* (n,) in declaration order */
    size_t n, cap;
    size_t total;            /* floats in data (and in grad), padding included */
    float *data;             /* (total,) NULL until alloc */
    float *grad;             /* (total,) NULL until alloc */
} sl_nn_params;

void sl_nn_params_init(sl_nn_params *p);
/* Declares a tensor; *index (may be NULL) receives its index. Fails on a duplicate or
 * too-long name, a bad shape, or after alloc. */
sl_status sl_nn_params_declare(sl_nn_params *p, const char *name, int ndim,
                               const int64_t *shape, sl_nn_init init, int fan_in,
                               size_t *index, sl_error *err);
/* Allocates data and grad (zeroed) for every declared tensor. */
sl_status sl_nn_params_alloc(sl_nn_params *p, sl_error *err);
void sl_nn_params_free(sl_nn_params *p);

/* Tensor i's data / gradient, (numel,). */
float *sl_nn_param(const sl_nn_params *p, size_t i);
float *sl_nn_grad(const sl_nn_params *p, size_t i);
/* Index of a tensor by name, or -1. */
long sl_nn_params_find(const sl_nn_params *p, const char *name);

/* Initialises every tensor by its init rule; uniform draws come from stream key, element
 * (tensor offset + j), so the values depend only on (key, layout). */
void sl_nn_params_randomize(sl_nn_params *p, sl_rng_key key);
void sl_nn_params_zero_grad(sl_nn_params *p);
/* The whole store as one Adam group named `name` (padding included: its gradient stays 0). */
sl_param_group sl_nn_params_group(const sl_nn_params *p, const char *name);

/* Saves every tensor (F32, declaration order) and n_meta metadata strings (keys[i] ->
 * values[i]: a model's configuration, so the file describes itself) to path, atomically
 * (safetensors.h). */
sl_status sl_nn_params_save(const sl_nn_params *p, const char *path, const char *const *keys,
                            const char *const *values, size_t n_meta, sl_error *err);
/* Loads every declared tensor by name from an open file, checking shapes; a missing or an
 * extra tensor is an error (SL_ERR_FORMAT), so a file of another configuration is refused. */
struct sl_safetensors;
sl_status sl_nn_params_load(sl_nn_params *p, const struct sl_safetensors *st, sl_error *err);

/* ======================================================================================
 * Composed blocks. Each block declares its tensors into a store under a name prefix
 * (prefix + ".conv1.weight" ...), and keeps their indices; its forward saves activations in
 * a context created for one (B, H, W) and reused across calls; backward reads them, adds
 * parameter gradients into the store's grad when param_grads is nonzero (0: frozen weights,
 * input-only VJP), and adds input gradients into dx / dtemb (NULL to skip).
 * ====================================================================================== */

/* Residual block (DDPM / diffusers ResnetBlock2D without dropout):
 *   h = conv3x3(SiLU(GN1(x)))  [+ W_t SiLU(temb) + b_t  broadcast over positions]
 *   y = skip(x) + conv3x3(SiLU(GN2(h))),   skip = 1x1 conv when cin != cout, else identity. */
typedef struct sl_resblock {
    int cin, cout, temb_dim, groups;   /* temb_dim 0: no time embedding */
    float eps;                         /* group-norm epsilon (1e-5) */
    size_t gn1_w, gn1_b, conv1_w, conv1_b, temb_w, temb_b, gn2_w, gn2_b, conv2_w, conv2_b,
        skip_w, skip_b;                /* tensor indices in the store */
} sl_resblock;

typedef struct sl_resblock_ctx sl_resblock_ctx;

/* groups must divide cin and cout. Parameters: gn1 (cin) x2, conv1 (cout,3,3,cin)+(cout),
 * temb (cout, temb_dim)+(cout) when temb_dim > 0, gn2 (cout) x2, conv2 (cout,3,3,cout)+
 * (cout), skip (cout, 1, 1, cin)+(cout) when cin != cout. */
sl_status sl_resblock_declare(sl_resblock *rb, sl_nn_params *p, const char *prefix, int cin,
                              int cout, int temb_dim, int groups, sl_error *err);
sl_status sl_resblock_ctx_create(const sl_resblock *rb, int B, int H, int W,
                                 sl_resblock_ctx **out, sl_error *err);
void sl_resblock_ctx_destroy(sl_resblock_ctx *ctx);
/* y: (B, H, W, cout) written; x: (B, H, W, cin); temb: (B, temb_dim) (ignored when
 * temb_dim is 0). x and temb must stay unchanged until backward. */
sl_status sl_resblock_forward(const sl_resblock *rb, const sl_nn_params *p,
                              sl_resblock_ctx *ctx, float *y, const float *x,
                              const float *temb, sl_error *err);
/* dx: (B, H, W, cin) +=; dtemb: (B, temb_dim) +=; dy: (B, H, W, cout). */
sl_status sl_resblock_backward(const sl_resblock *rb, sl_nn_params *p, sl_resblock_ctx *ctx,
                               float *dx, float *dtemb, const float *dy, const float *x,
                               const float *temb, int param_grads, sl_error *err);

/* Self-attention block (diffusers' Attention with residual connection, 1x1 projections):
 *   y = x + proj(attention(qkv(GN(x)))),  qkv: C -> 3C, proj: C -> C, nh heads. */
typedef struct sl_attnblock {
    int c, heads, groups;
    float eps;
    size_t gn_w, gn_b, qkv_w, qkv_b, proj_w, proj_b;
} sl_attnblock;

typedef struct sl_attnblock_ctx sl_attnblock_ctx;

sl_status sl_attnblock_declare(sl_attnblock *ab, sl_nn_params *p, const char *prefix, int c,
                               int heads, int groups, sl_error *err);
sl_status sl_attnblock_ctx_create(const sl_attnblock *ab, int B, int H, int W,
                                  sl_attnblock_ctx **out, sl_error *err);
void sl_attnblock_ctx_destroy(sl_attnblock_ctx *ctx);
/* y: (B, H, W, c) written; x: (B, H, W, c). */
sl_status sl_attnblock_forward(const sl_attnblock *ab, const sl_nn_params *p,
                               sl_attnblock_ctx *ctx, float *y, const float *x, sl_error *err);
/* dx: (B, H, W, c) +=; dy: (B, H, W, c). */
sl_status sl_attnblock_backward(const sl_attnblock *ab, sl_nn_params *p, sl_attnblock_ctx *ctx,
                                float *dx, const float *dy, const float *x, int param_grads,
                                sl_error *err);

#ifdef __cplusplus
}
#endif
#endif
