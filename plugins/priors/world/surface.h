/* plugins/priors/world/surface.h — uniform points on the visible surface of a world scene:
 * the ground truth of the Chamfer metric (steinlab/surface.h, docs/world.md). */
#ifndef STEINLAB_WORLD_SURFACE_H
#define STEINLAB_WORLD_SURFACE_H

#include <stddef.h>

#include "scene.h"
#include "steinlab/rng.h"
#include "steinlab/status.h"

/* Points whose distance to another primitive is at most this are hidden (contact faces). */
#define WORLD_SURFACE_EPS 1e-5

/* n points, uniform over the area of the union's visible surface, into points (n, 3):
 * each candidate is drawn on one primitive's surface, chosen with probability proportional
 * to its area, and kept when it lies outside every other primitive by more than
 * WORLD_SURFACE_EPS (so faces buried in another solid, contact faces and object parts
 * behind a room's walls are never sampled; a room's walls are its inner faces). Candidate
 * c uses elements 8c .. 8c + 7 of `key`; the i-th point is the i-th candidate kept, so the
 * result depends on (scene, n, key) only. Errors: SL_ERR_UNSUPPORTED for a scene with a
 * plane (infinite), SL_ERR_INVALID_ARG when almost no candidate is visible. */
sl_status world_surface_sample(const world_scene *scene, size_t n, sl_rng_key key,
                               float *points, sl_error *err);

/* Total area of the primitives' surfaces (hidden parts included), for tests. */
double world_surface_area(const world_scene *scene);

#endif
