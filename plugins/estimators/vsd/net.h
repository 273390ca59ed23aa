/* plugins/estimators/vsd/net.h — VSD's noise-prediction network eps_psi(x_t; t, c): a small
 * UNet composed only of the shared blocks of steinlab/nn.h (docs/estimators.md, "vsd").
 *
 *   emb   = MLP_t(sinusoidal(t)) + mask_b MLP_c(pose(c))          (B, E), E = 4 ch
 *           (MLP = linear, SiLU, linear; pose = the 9 entries of the camera-to-world rotation
 *           and the 3 of the eye, so the view is told apart on any camera model; mask_b = 0
 *           drops the camera of batch element b, the classifier-free-style dropout)
 *   h     = conv3x3(x_t)                                            (B, H, W, c_0)
 *   down  : level l = 0..L-1, s_l = resblock_l(h, emb) with c_l = ch 2^l channels, then
 *           h = avgpool2x(s_l) between levels
 *   mid   : resblock(s_{L-1}), then a self-attention block when `attention` is set
 *   up    : level l = L-1..0, u = (l = L-1 ? mid : upsample2x(up_{l+1})),
 *           up_l = resblock(concat(u, s_l), emb) with c_l channels
 *   out   = conv3x3(SiLU(GN(up_0)))                                 (B, H, W, C)
 *
 * The output convolution is zero-initialised, so an untrained network outputs exactly 0 and
 * the estimator's closed-form part (its Gaussian skip term, vsd.c) is the whole prediction at
 * the start. H and W must be divisible by 2^(L-1).
 *
 * Gradients follow nn.h's rule: backward ACCUMULATES into the store's grad (the caller
 * zeroes it) and into dx when dx is not NULL. Results are bit-identical whatever the thread
 * count (nn.h's blocks are, and everything here is serial or per element). */
#ifndef VSD_NET_H
#define VSD_NET_H

#include "steinlab/nn.h"

enum {
    VSD_MAX_LEVELS = 4,
    VSD_POSE_FEATURES = 12   /* rot (9) and eye (3) of a camera */
};

typedef struct vsd_net_config {
    int in_channels;   /* C of the prior's space */
    int channels;      /* c_0; level l has c_0 2^l */
    int levels;        /* L in [1, VSD_MAX_LEVELS] */
    int groups;        /* group-norm groups; must divide channels */
    int attention;     /* nonzero: a self-attention block after the middle resblock */
} vsd_net_config;

typedef struct vsd_net {
    vsd_net_config cfg;
    int emb_dim;                     /* E = 4 channels */
    sl_nn_params params;             /* every tensor of the network, one Adam group */
    size_t t1_w, t1_b, t2_w, t2_b;   /* time MLP */
    size_t c1_w, c1_b, c2_w, c2_b;   /* camera MLP */
    size_t in_w, in_b;               /* conv_in (c_0, 3, 3, C) */
    size_t gn_w, gn_b, out_w, out_b; /* output norm and conv_out (C, 3, 3, c_0) */
    sl_resblock down[VSD_MAX_LEVELS], up[VSD_MAX_LEVELS], mid;
    sl_attnblock attn;
} vsd_net;

/* Activations of one forward pass for a batch of B images of H x W, kept for backward. */
typedef struct vsd_net_ctx vsd_net_ctx;

/* Declares and allocates the network; weights initialised from `init_key` (nn.h's rules;
 * conv_out zero). Fails on an invalid configuration with a message. */
sl_status vsd_net_create(vsd_net *net, const vsd_net_config *cfg, sl_rng_key init_key,
                         sl_error *err);
void vsd_net_free(vsd_net *net);

/* Refuses an image size the levels cannot halve. */
sl_status vsd_net_check_size(const vsd_net_config *cfg, int H, int W, sl_error *err);

sl_status vsd_net_ctx_create(const vsd_net *net, int B, int H, int W, vsd_net_ctx **out,
                             sl_error *err);
void vsd_net_ctx_destroy(vsd_net_ctx *ctx);
/* Batch size a context was made for. */
int vsd_net_ctx_batch(const vsd_net_ctx *ctx);

/* Camera pose features of one camera: pose (VSD_POSE_FEATURES,) written. */
struct sl_camera;
void vsd_pose_features(const struct sl_camera *cam, float *pose);

/* y: (B, H, W, C) written, the network's output; x: (B, H, W, C); t: (B,) diffusion times;
 * pose: (B, VSD_POSE_FEATURES); cam_mask: (B,) 1 keeps the camera, 0 drops it. x, t, pose and
 * cam_mask must stay unchanged until backward. */
sl_status vsd_net_forward(const vsd_net *net, vsd_net_ctx *ctx, float *y, const float *x,
                          const float *t, const float *pose, const float *cam_mask,
                          sl_error *err);

/* dy: (B, H, W, C); dx: (B, H, W, C) += (NULL: skipped); parameter gradients += into
 * net->params.grad. The inputs are those of the last forward on ctx. */
sl_status vsd_net_backward(vsd_net *net, vsd_net_ctx *ctx, float *dx, const float *dy,
                           const float *x, const float *pose, const float *cam_mask,
                           sl_error *err);

#endif
