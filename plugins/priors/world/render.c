/* plugins/priors/world/render.c — the world's reference renderer: one exact ray per pixel
 * (no anti-aliasing, so views are a pure function of the scene and the camera). */
#include <math.h>

#include "render.h"

world_shading world_shading_default(void)
{
    /* A light above and in front-left of the default front camera (az 0, on +x), so the
     * tops of objects are brightest and their +x and +y sides are told apart.
     * normalize(0.4, 0.3, 1): |.| = sqrt(0.16 + 0.09 + 1) = sqrt(1.25). */
    const float inv = 1.0f / sqrtf(1.25f);
    world_shading s = {{0.4f * inv, 0.3f * inv, 1.0f * inv}, 0.35f, 0.65f};
    return s;
}

static float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

void world_render(const world_scene *scene, const world_shading *shading, const sl_camera *cam,
                  const world_view *out)
{
    const int H = cam->height, W = cam->width;
    /* The camera's forward axis is the third column of its camera-to-world rotation. */
    const float fwd[3] = {cam->rot[2], cam->rot[5], cam->rot[8]};
    const float *L = shading->light_dir;

    /* Rows are independent and every pixel is computed the same way whatever thread runs
     * it, so the result is bit-identical for any thread count; dynamic scheduling because
     * rows through the object cost more than background rows. */
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < H; i++) {
        for (int j = 0; j < W; j++) {
            size_t px = (size_t)i * (size_t)W + (size_t)j;
            float dir[3], t, n[3], c[3];
            sl_camera_ray_dir(cam, i, j, dir);
            float cosf_ = dir[0] * fwd[0] + dir[1] * fwd[1] + dir[2] * fwd[2];
            /* The near plane z_cam = near is reached at t = near / (dir . forward). */
            float t_min = cam->near / cosf_;
            int hit = world_scene_intersect(scene, cam->eye, dir, t_min, INFINITY, &t, n, c);
            if (out->rgb) {
                float *rgb = out->rgb + 3 * px;   /* (3,) */
                if (hit) {
                    float lambert = n[0] * L[0] + n[1] * L[1] + n[2] * L[2];
                    float shade = shading->ambient + shading->diffuse * (lambert > 0 ? lambert : 0);
                    for (int a = 0; a < 3; a++)
                        rgb[a] = clamp01(c[a] * shade);
                } else {
                    for (int a = 0; a < 3; a++)
                        rgb[a] = clamp01(scene->background[a]);
                }
            }
            if (out->depth)
                out->depth[px] = hit ? t * cosf_ : 0.0f;
            if (out->normal)
                for (int a = 0; a < 3; a++)
                    out->normal[3 * px + a] = hit ? n[a] : 0.0f;
            if (out->mask)
                out->mask[px] = hit ? 1.0f : 0.0f;
        }
    }
}
