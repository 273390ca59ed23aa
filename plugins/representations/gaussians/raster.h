/* plugins/representations/gaussians/raster.h — the tiled CPU rasterizer of 3-D Gaussians
 * (forward and backward), built on the device math of gs_math.h.
 *
 * One gs_view holds everything one camera's render keeps for its backward pass: the
 * projected Gaussians, the per-tile depth-sorted lists, and per pixel the final
 * transmittance and the number of list entries up to the last contributor (as the
 * reference rasterizer keeps them). A view is reused across calls; its buffers only grow.
 *
 * Pipeline of gs_render (forward):
 *   1. preprocess, parallel over Gaussians: camera-space mean, cull behind the near plane,
 *      3-D covariance -> EWA 2-D covariance (+0.3 px^2) -> conic, opacity-aware extent
 *      (gs_extent: outside it alpha < 1/255), the 16x16 tiles it overlaps (culled when
 *      none), its channels (SH colour, z, normal, 1);
 *   2. a stable LSD radix sort of the visible Gaussians by camera z (ties keep the index
 *      order), then binning in that order: each tile's list is depth-sorted by
 *      construction, and each Gaussian records where its entries went (tile order);
 *   3. blending, parallel over tiles, each pixel front to back (gs_blend).
 *
 * Backward (gs_backward), with the reference rasterizer's back-to-front walk:
 *   1. parallel over tiles: each pixel walks its list from the last contributor back to the
 *      front (gs_blend_vjp, gs_alpha_vjp_acc) and adds into a gradient slot of its own TILE
 *      ENTRY (the pair (tile, Gaussian)); the pixels of a tile run in a fixed order on one
 *      thread, and no slot is shared between tiles;
 *   2. parallel over Gaussians: the Gaussian's entry slots are summed in its fixed tile
 *      order, then pushed through the preprocessing VJPs into its own parameters only.
 * No floating-point sum is split across threads, so the result is the same bits for any
 * thread count; batch elements are processed one after the other. */
#ifndef GS_RASTER_H
#define GS_RASTER_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/camera.h"
#include "steinlab/status.h"

enum { GS_TILE = 16, GS_ENTRY_GRAD = 14 /* duv 2, dconic 3, dop 1, dfeat 8 */ };

/* Views of the parameters (not owned). */
typedef struct gs_scene {
    size_t n;                     /* Gaussians */
    const float *means;           /* (n, 3) world */
    const float *log_scales;      /* (n, 3) */
    const float *quats;           /* (n, 4) w, x, y, z (unnormalised) */
    const float *opacity_logits;  /* (n,) */
    const float *sh_dc;           /* (n, 3) */
    const float *sh_rest;         /* (n, sh_rest_coeffs, 3); NULL when sh_rest_coeffs == 0 */
    int sh_rest_coeffs;           /* stored coefficients beyond the dc: 0, 3, 8 or 15 */
    int sh_degree;                /* active degree, (sh_degree+1)^2 - 1 <= sh_rest_coeffs */
} gs_scene;

/* Gradient accumulators, same shapes as gs_scene; every non-NULL array is ADDED to. */
typedef struct gs_scene_grad {
    float *means, *log_scales, *quats, *opacity_logits, *sh_dc, *sh_rest;
    float *mean2d_norm;   /* (n,) += |dL/d(mean in NDC)| per view where visible, or NULL */
    float *visible;       /* (n,) += 1 per view where visible, or NULL */
} gs_scene_grad;

typedef struct gs_view gs_view;   /* opaque; see raster.c */

gs_view *gs_view_create(void);
void gs_view_destroy(gs_view *v);

/* Forward render of one camera. bg: (3,) background colour composited into rgb.
 * rgb (H, W, 3), depth (H, W), normal (H, W, 3), opacity (H, W): each overwritten, any may
 * be NULL. The view keeps what gs_backward needs (pointers into `s` are not kept, but s's
 * values must not change before the backward). */
sl_status gs_render(gs_view *v, const gs_scene *s, const sl_camera *cam, const float bg[3],
                    float *rgb, float *depth, float *normal, float *opacity, sl_error *err);

/* Backward of the last gs_render on this view with the same scene: upstream gradients
 * (same shapes as the outputs; NULL = no gradient) ACCUMULATED into g. */
sl_status gs_backward(gs_view *v, const gs_scene *s, const float *drgb, const float *ddepth,
                      const float *dnormal, const float *dopacity, gs_scene_grad *g,
                      sl_error *err);

/* Diagnostics of the last render: visible Gaussians, tile entries. */
size_t gs_view_visible(const gs_view *v);
size_t gs_view_entries(const gs_view *v);
/* Per-Gaussian screen radius (pixels) of the last render, (n,); 0 where culled. */
const float *gs_view_radii(const gs_view *v);

#endif
