/* steinlab/unet.h — a small conditional diffusion UNet (epsilon prediction) built from the
 * blocks of nn.h, with hand-written forward and backward (docs/nn.md, "UNet").
 *
 * ARCHITECTURE (DDPM / diffusers UNet2DModel layout, one skip per block):
 *   emb  = lin2(SiLU(lin1(sinusoidal(t)))) + class_emb[cls] + view_emb[view]   (B, E)
 *   h    = conv_in(x)                                              skip s0
 *   level l = 0 .. L-1 (channels base * mult[l], size S / 2^l):
 *          res_blocks x { h = res(h, emb); h = attn(h) if S / 2^l is an attention
 *          resolution }                                            skip after each
 *          h = conv3x3 stride 2 (h) when l < L-1                   skip
 *   mid  = res, attn, res
 *   level l = L-1 .. 0: (res_blocks + 1) x { h = res(concat(h, pop skip), emb);
 *          attn if listed };  h = conv3x3(upsample2x(h)) when l > 0
 *   eps  = conv_out(SiLU(GN(h)))
 * E = 4 base channels. Class id `classes` and view id `views` are the null ids: the
 * classifier-free "unconditional" input (their embeddings are learned like the others).
 *
 * TENSORS are NHWC: x, eps (B, S, S, channels). Parameters live in one sl_nn_params store
 * (names as diffusers', e.g. "down.0.res.0.conv1.weight"), so a model is one Adam group and
 * one safetensors file.
 *
 * FILES. sl_unet_write_meta puts the whole configuration into a safetensors file's
 * metadata ("format" = "steinlab.unet" and one "unet.*" key per field), so a weights file
 * describes itself; sl_unet_load rebuilds the model from that metadata and refuses, with
 * the reason, a file that is not a UNet file, whose configuration is invalid, or whose
 * tensors do not match the configuration it declares (missing, extra, wrong shape).
 *
 * GRADIENTS follow nn.h: forward overwrites, backward accumulates into the store's grad
 * (param_grads nonzero) and into dx (may be NULL). param_grads = 0 with dx is the
 * input-only VJP of a frozen model. Deterministic whatever the thread count. */
#ifndef STEINLAB_UNET_H
#define STEINLAB_UNET_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/nn.h"
#include "steinlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { SL_UNET_MAX_LEVELS = 4 };

typedef struct sl_unet_config {
    int image_size;       /* S: images are S x S, S divisible by 2^(levels-1) */
    int channels;         /* image channels in and out (3 for RGB) */
    int base_channels;    /* channels at level 0 */
    int levels;           /* 1 .. SL_UNET_MAX_LEVELS */
    int channel_mult[SL_UNET_MAX_LEVELS];   /* (levels,) level l has base * mult[l] */
    int res_blocks;       /* residual blocks per level on the way down (up: one more) */
    int attn_mask;        /* bit l set: attention after each block of level l (the
                             resolution S / 2^l is an "attention resolution") */
    int heads;            /* attention heads (divides every attended channel count) */
    int groups;           /* group-norm groups (divides every channel count) */
    int classes;          /* class ids 0 .. classes-1; id `classes` is the null class */
    int views;            /* view ids 0 .. views-1; id `views` is the null view */
} sl_unet_config;

/* A 16-channel, 2-level model of 16x16 RGB, attention at 8x8, 2 heads, 8 groups, 1 class,
 * 4 views (the view buckets of camera.h). */
void sl_unet_config_default(sl_unet_config *c);
/* SL_ERR_INVALID_ARG with the reason when a field is out of range or inconsistent. */
sl_status sl_unet_config_check(const sl_unet_config *c, sl_error *err);
/* 1 when equal; otherwise 0 and `why` (size bytes) names the first field that differs. */
int sl_unet_config_equal(const sl_unet_config *a, const sl_unet_config *b, char *why,
                         size_t size);
int sl_unet_temb_dim(const sl_unet_config *c);   /* E = 4 base_channels */

typedef struct sl_unet sl_unet;          /* the model: configuration, parameters, layout */
typedef struct sl_unet_ctx sl_unet_ctx;  /* activations of one batch size */

/* Declares and allocates the parameters (zero: call sl_nn_params_randomize or load). */
sl_status sl_unet_create(const sl_unet_config *c, sl_unet **out, sl_error *err);
void sl_unet_destroy(sl_unet *u);   /* NULL: no-op */
const sl_unet_config *sl_unet_config_of(const sl_unet *u);
sl_nn_params *sl_unet_params(sl_unet *u);
const sl_nn_params *sl_unet_params_const(const sl_unet *u);

/* Activations (and their gradients) for batches of exactly B images. */
sl_status sl_unet_ctx_create(const sl_unet *u, int B, sl_unet_ctx **out, sl_error *err);
void sl_unet_ctx_destroy(sl_unet_ctx *c);   /* NULL: no-op */
int sl_unet_ctx_batch(const sl_unet_ctx *c);

/* eps: (B, S, S, channels) written; x: (B, S, S, channels); t: (B,) diffusion times (the
 * sinusoidal embedding takes them as they are, e.g. integers 1..1000); cls: (B,) in
 * [0, classes]; view: (B,) in [0, views] (the last id of each is the null id). The context
 * keeps x and everything backward needs until the next forward. SL_ERR_INVALID_ARG for an
 * id out of range. */
sl_status sl_unet_forward(const sl_unet *u, sl_unet_ctx *c, float *eps, const float *x,
                          const float *t, const int *cls, const int *view, sl_error *err);
/* After forward: dx (B, S, S, channels) += deps^T d eps / dx (NULL: skipped); the store's
 * grad += the parameter gradient when param_grads is nonzero. deps: (B, S, S, channels). */
sl_status sl_unet_backward(sl_unet *u, sl_unet_ctx *c, float *dx, const float *deps,
                           int param_grads, sl_error *err);

/* ---- files (safetensors.h) ---- */
struct sl_safetensors;
struct sl_st_writer;

/* The configuration as metadata of a file being written. */
sl_status sl_unet_write_meta(const sl_unet_config *c, struct sl_st_writer *w, sl_error *err);
/* The configuration a file declares; SL_ERR_FORMAT with the reason when a key is missing,
 * not an integer, or the configuration is invalid. */
sl_status sl_unet_read_meta(const struct sl_safetensors *st, sl_unet_config *c,
                            sl_error *err);
/* The model's tensors and configuration plus n_extra metadata strings, atomically. */
sl_status sl_unet_save(const sl_unet *u, const char *path, const char *const *keys,
                       const char *const *values, size_t n_extra, sl_error *err);
/* A model rebuilt from a file's metadata, its tensors loaded (SL_ERR_FORMAT with the
 * reason when they do not match the declared configuration). */
sl_status sl_unet_load(const struct sl_safetensors *st, sl_unet **out, sl_error *err);

#ifdef __cplusplus
}
#endif
#endif
