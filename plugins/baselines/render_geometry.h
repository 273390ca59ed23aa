/* plugins/baselines/render_geometry.h — what the depth and normal Stein baselines share:
 * the representation's geometry brought to the prior's resolution, the foreground mask,
 * and the prior's geometry estimator (steinlab/geometry.h). Header-only (static functions),
 * since each baseline is its own shared module.
 *
 * Resolution. The baselines compare the render's geometry with an estimate from x_t, which
 * lives at the prior's resolution (H, W). When the render has another size, the
 * unnormalised outputs (sum w z, sum w n) and the opacity sum w are resampled with the
 * core's sl_resample (the same area/bilinear map the driver uses for RGB), and the mask is
 * thresholded again on the resampled opacity: depth = resampled(sum w z) / resampled(sum w)
 * is then the opacity-weighted mean depth over each prior pixel's footprint. All of it is
 * held constant with respect to x_t (method.md section 2). */
#ifndef STEINLAB_RENDER_GEOMETRY_H
#define STEINLAB_RENDER_GEOMETRY_H

#include <stdlib.h>
#include <string.h>

#include "steinlab/steinlab.h"

#define RG_MASK_THRESHOLD 0.5f   /* foreground: opacity > 0.5 (architecture.md) */

/* Growable float scratch. */
typedef struct rg_buf {
    float *p;
    size_t cap;
} rg_buf;

static inline int rg_reserve(rg_buf *b, size_t n)
{
    if (n <= b->cap)
        return 1;
    float *p = realloc(b->p, n * sizeof *p);
    if (!p)
        return 0;
    b->p = p;
    b->cap = n;
    return 1;
}

static inline void rg_free(rg_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->cap = 0;
}

/* One render output of a batch element at the prior's size: `src` (B, Hr, Wr, c) element b
 * resampled into dst (H, W, c), or pointed to directly when the sizes agree. */
static inline const float *rg_at_prior(const float *src, int b, int hr, int wr, int c,
                                       float *dst, int h, int w)
{
    const float *in = src + (size_t)b * hr * wr * c;
    if (hr == h && wr == w)
        return in;
    sl_resample(in, hr, wr, c, dst, h, w);
    return dst;
}

/* The prior's estimator for `uri` with the expected channel count, or an error naming the
 * baseline, the URI and the prior's plugin situation. */
static inline sl_status rg_estimator(const sl_host *host, const char *who, const char *uri,
                                     int channels, const sl_prior_ref **prior_out,
                                     const sl_geometry_estimator **out, sl_error *err)
{
    const sl_prior_ref *prior = host->prior(host);
    if (!prior)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "%s: the host gives no prior", who);
    const sl_geometry_estimator *e =
        prior->vt->extension ? prior->vt->extension(prior->state, uri) : NULL;
    if (!e)
        return sl_error_set(err, SL_ERR_UNSUPPORTED, "%s: the prior offers no %s estimator "
                            "on x_t (extension '%s'); this baseline needs one (the world prior "
                            "has it)", who, channels == 1 ? "depth" : "normal", uri);
    if (e->channels != channels || !e->predict || !e->vjp)
        return sl_error_set(err, SL_ERR_PLUGIN, "%s: the prior's extension '%s' has %d "
                            "channels or lacks predict/vjp (expected %d channels and both)",
                            who, uri, e->channels, channels);
    *prior_out = prior;
    *out = e;
    return SL_OK;
}

static inline sl_status rg_check_ctx(const sl_estimator_ctx *ctx, const char *who,
                                     int need_depth, int need_normal, sl_error *err)
{
    const sl_render *r = ctx->render;
    if (!r || !r->opacity || (need_depth && !r->depth) || (need_normal && !r->normal))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "%s: the context's render lacks the %s "
                            "and opacity outputs", who, need_depth ? "depth" : "normal");
    if (r->batch != ctx->batch || r->height < 1 || r->width < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "%s: render batch %d (%dx%d), context "
                            "batch %d", who, r->batch, r->height, r->width, ctx->batch);
    return SL_OK;
}

#endif
