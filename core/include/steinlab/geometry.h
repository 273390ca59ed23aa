/* steinlab/geometry.h — extension interfaces for estimators of geometry from the noisy
 * image x_t, with their vector-Jacobian products: what the depth and normal Stein baselines
 * need (method.md section 2). A prior offers them through sl_prior_vtable.extension(state,
 * URI); the world prior gives the exact Bayes estimators of its data (method.md section 5),
 * and a monocular depth network can implement the same interface later without any change
 * to the baselines.
 *
 * Usage by a baseline:
 *   const sl_geometry_estimator *d = prior->vt->extension(prior->state, SL_EXT_DEPTH_ESTIMATOR);
 *   d->predict(prior->state, &query, depth, &err);           // D(x_t)
 *   d->vjp(prior->state, &query, d_depth, d_x_t, &err);      // (dD/dx_t)^T d_depth
 * vjp must be called with the same query as the predict() just before it on that state
 * (implementations keep what the product needs between the two calls). */
#ifndef STEINLAB_GEOMETRY_H
#define STEINLAB_GEOMETRY_H

#include <stdint.h>

#include "steinlab/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SL_EXT_DEPTH_ESTIMATOR "steinlab.depth_estimator.v1"
#define SL_EXT_NORMAL_ESTIMATOR "steinlab.normal_estimator.v1"

typedef enum sl_geometry_output {
    SL_GEOMETRY_Z_DEPTH = 0,        /* depth: z along the camera's forward axis (larger = farther) */
    SL_GEOMETRY_INVERSE_DEPTH = 1,  /* depth: disparity-like, larger = nearer (most monocular nets) */
    SL_GEOMETRY_WORLD_NORMALS = 2,  /* normals: unit, world space */
    SL_GEOMETRY_CAMERA_NORMALS = 3  /* normals: unit, camera space (x right, y down, z forward) */
} sl_geometry_output;

typedef struct sl_geometry_estimator {
    uint32_t struct_size;
    sl_geometry_output output;   /* what predict() returns */
    int channels;                /* 1 for depth, 3 for normals */
    /* (required) out: (B, H, W, channels) at the prior's resolution, overwritten; 0 where the
     * estimator sees no surface. */
    sl_status (*predict)(void *prior_state, const sl_prior_query *q, float *out, sl_error *err);
    /* (required) d_x_t: (B, H, W, C) = (d out / d x_t)^T d_out, overwritten; d_out: (B, H, W,
     * channels). */
    sl_status (*vjp)(void *prior_state, const sl_prior_query *q, const float *d_out,
                     float *d_x_t, sl_error *err);
} sl_geometry_estimator;

#ifdef __cplusplus
}
#endif
#endif
