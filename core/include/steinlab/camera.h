/* steinlab/camera.h — the camera model and world conventions (docs/conventions.md).
 *
 * World: right-handed, +z up. Orbit cameras: azimuth 0 on +x, counter-clockwise toward +y;
 * elevation positive above the horizon; eye = target + dist*(cos el cos az, cos el sin az,
 * sin el). Camera space: x right, y down, z forward. Pinhole with fx = fy = H/(2 tan(fovy/2)),
 * principal point (W/2, H/2); pixel (row i, column j) samples the image plane at
 * (j + 0.5, i + 0.5). */
#ifndef STEINLAB_CAMERA_H
#define STEINLAB_CAMERA_H

#include "steinlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_camera {
    float eye[3];          /* world position of the centre of projection */
    float rot[9];          /* (3, 3) row-major camera-to-world rotation; its columns are the
                              camera's x (right), y (down) and z (forward) axes in world space */
    float fx, fy, cx, cy;  /* pixels */
    int width, height;     /* pixels */
    float near;            /* near plane distance along z (default 0.2) */
    /* Orbit description (filled by sl_camera_orbit; by sl_camera_look_at from eye - target). */
    float azimuth_deg;     /* in (-180, 180] */
    float elevation_deg;   /* in [-90, 90] */
    float distance;        /* |eye - target| */
    float fovy_deg;
} sl_camera;

typedef enum sl_view_bucket {
    SL_VIEW_FRONT = 0,     /* |az| <= 45 and el <= 60 */
    SL_VIEW_SIDE = 1,      /* otherwise, el <= 60 */
    SL_VIEW_BACK = 2,      /* |az| > 135 and el <= 60 */
    SL_VIEW_OVERHEAD = 3   /* el > 60 */
} sl_view_bucket;

enum { SL_VIEW_BUCKETS = 4 };

/* Look-at camera. Fails (SL_ERR_INVALID_ARG) when eye == target, up is parallel to the
 * viewing direction, fovy is outside (0, 180) or the size is not positive. */
sl_status sl_camera_look_at(const float eye[3], const float target[3], const float up[3],
                            float fovy_deg, int width, int height, sl_camera *cam,
                            sl_error *err);

/* Orbit camera around `target` (NULL: origin) with world up +z. At elevation +-90 the
 * up vector falls back to the direction of azimuth (so the image stays upright). */
void sl_camera_orbit(float azimuth_deg, float elevation_deg, float distance,
                     const float target[3], float fovy_deg, int width, int height,
                     sl_camera *cam);

/* Inside-out camera (scene level, e.g. inside a room): at `eye` (NULL: origin), looking
 * outward along azimuth / elevation (same angle conventions as the orbit camera, but the
 * angles give the viewing direction, not the eye's position); world up +z. The orbit
 * description fields hold the viewing direction and distance 0. */
void sl_camera_inside_out(float azimuth_deg, float elevation_deg, const float eye[3],
                          float fovy_deg, int width, int height, sl_camera *cam);

/* Unit direction in world space of the ray through the centre of pixel (row, col). */
void sl_camera_ray_dir(const sl_camera *cam, int row, int col, float dir[3]);

/* World point -> camera space (x right, y down, z forward). */
void sl_camera_world_to_cam(const sl_camera *cam, const float pw[3], float pc[3]);

sl_view_bucket sl_camera_bucket(const sl_camera *cam);
const char *sl_view_bucket_name(sl_view_bucket b);   /* "front", "side", "back", "overhead" */

#ifdef __cplusplus
}
#endif
#endif
