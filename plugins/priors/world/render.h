/* plugins/priors/world/render.h — the world's reference renderer: exact views of a scene
 * from any camera of the core's camera model (steinlab/camera.h). */
#ifndef STEINLAB_WORLD_RENDER_H
#define STEINLAB_WORLD_RENDER_H

#include "scene.h"
#include "steinlab/camera.h"

/* Lambert plus ambient with one directional light fixed in the world, so a surface looks
 * the same from every camera: colour * (ambient + diffuse * max(0, n . light)). */
typedef struct world_shading {
    float light_dir[3];   /* unit, pointing toward the light */
    float ambient;
    float diffuse;
} world_shading;

/* The default shading (documented in docs/world.md). */
world_shading world_shading_default(void);

/* Output buffers of one view, (H, W, ...) with H, W = cam->height, cam->width. Any pointer
 * may be NULL (not wanted). Conventions of architecture.md: depth is z-depth along the
 * camera's forward axis, 0 on the background; normals are world-space unit vectors, 0 on
 * the background; mask is 1 where a surface is hit, else 0. */
typedef struct world_view {
    float *rgb;      /* (H, W, 3) in [0, 1]; the scene's background where nothing is hit */
    float *depth;    /* (H, W) */
    float *normal;   /* (H, W, 3) */
    float *mask;     /* (H, W) */
} world_view;

/* Renders one view (overwrite). Rays start at the near plane. Parallel over rows
 * (OpenMP); every pixel is independent, so the result does not depend on the thread count. */
void world_render(const world_scene *scene, const world_shading *shading, const sl_camera *cam,
                  const world_view *out);

#endif
