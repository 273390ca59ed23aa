/* steinlab/surface.h — a prior extension that samples its true surface, so the host can
 * score an extracted mesh by Chamfer distance (method.md section 5, docs/log-format.md).
 *
 * A prior offers it through sl_prior_vtable.extension(state, SL_EXT_SURFACE_SAMPLER):
 *
 *   const sl_surface_sampler *s = pv->extension(prior_state, SL_EXT_SURFACE_SAMPLER);
 *   if (s) s->sample(prior_state, n, seed, points, &err);
 *
 * The world prior implements it for its prompt's scene (plugins/priors/world/surface.c). */
#ifndef STEINLAB_SURFACE_H
#define STEINLAB_SURFACE_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SL_EXT_SURFACE_SAMPLER "steinlab.surface_sampler.v1"

typedef struct sl_surface_sampler {
    uint32_t struct_size;   /* sizeof(sl_surface_sampler) the prior was built with */
    /* (required) n points distributed uniformly over the area of the visible surface of the
     * prior's true scene (world coordinates, the conventions of architecture.md), written to
     * points (n, 3), overwritten. A pure function of (state, n, seed): the same arguments
     * give the same bits, on any thread count. SL_ERR_UNSUPPORTED when the scene has no
     * finite surface to sample (e.g. an infinite ground plane); the host then logs no
     * Chamfer distance. May be called at any time after create. */
    sl_status (*sample)(void *prior_state, size_t n, uint64_t seed, float *points,
                        sl_error *err);
} sl_surface_sampler;

#ifdef __cplusplus
}
#endif
#endif
