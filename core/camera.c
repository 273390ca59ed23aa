/* core/camera.c — pinhole cameras in the world conventions of steinlab/camera.h.
 *
 * World +z up. Camera space x right, y down, z forward; the rotation's columns are those
 * axes in world space, so world = eye + rot * cam and cam = rot^T (world - eye).
 *
 * Basis of a look-at camera. With f the unit direction from eye to target and u the up
 * hint: right = normalize(f x u), down = f x right. (x, y, z) = (right, down, forward) is
 * right-handed because right x down = right x (f x right) = f (right . right) - right
 * (right . f) = f. Check: looking along +y with up +z, right = y x z = +x.
 *
 * Intrinsics: fx = fy = H / (2 tan(fovy/2)) (square pixels, fovy spans the image height),
 * principal point (W/2, H/2); pixel (row i, column j) samples the image plane at
 * (u, v) = (j + 0.5, i + 0.5), whose ray in camera space is ((u - cx)/fx, (v - cy)/fy, 1). */
#include <math.h>
#include <stddef.h>

#include "steinlab/camera.h"

static const double DEG = 3.14159265358979323846 / 180.0;

static void cross3(const double a[3], const double b[3], double out[3])
{
    out[0] = a[1] * b[2] - a[2] * b[1];
    out[1] = a[2] * b[0] - a[0] * b[2];
    out[2] = a[0] * b[1] - a[1] * b[0];
}

static double norm3(const double a[3])
{
    return sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]);
}

/* Azimuth in degrees mapped to (-180, 180]. */
static double normalize_azimuth(double az)
{
    double a = fmod(az, 360.0);   /* (-360, 360) */
    if (a <= -180.0)
        a += 360.0;
    else if (a > 180.0)
        a -= 360.0;
    return a;
}

/* Fills rot (columns right, down, forward), eye, intrinsics and the near plane. */
static void set_frame(sl_camera *cam, const double eye[3], const double right[3],
                      const double down[3], const double fwd[3], double fovy_deg, int width,
                      int height)
{
    for (int r = 0; r < 3; r++) {
        cam->eye[r] = (float)eye[r];
        cam->rot[3 * r + 0] = (float)right[r];
        cam->rot[3 * r + 1] = (float)down[r];
        cam->rot[3 * r + 2] = (float)fwd[r];
    }
    double f = height / (2.0 * tan(0.5 * fovy_deg * DEG));
    cam->fx = (float)f;
    cam->fy = (float)f;
    cam->cx = 0.5f * (float)width;
    cam->cy = 0.5f * (float)height;
    cam->width = width;
    cam->height = height;
    cam->near = 0.2f;
    cam->fovy_deg = (float)fovy_deg;
}

/* Orbit description of an eye relative to the target: distance, elevation in [-90, 90]
 * and azimuth in (-180, 180] (0 straight above or below the target). */
static void set_orbit_from_offset(sl_camera *cam, const double d[3])
{
    double dist = norm3(d);
    double s = d[2] / dist;
    s = s > 1.0 ? 1.0 : (s < -1.0 ? -1.0 : s);
    double az = atan2(d[1], d[0]) / DEG;
    cam->distance = (float)dist;
    cam->elevation_deg = (float)(asin(s) / DEG);
    cam->azimuth_deg = (float)normalize_azimuth(az);
}

sl_status sl_camera_look_at(const float eye[3], const float target[3], const float up[3],
                            float fovy_deg, int width, int height, sl_camera *cam,
                            sl_error *err)
{
    if (!eye || !target || !up || !cam)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "camera look-at: NULL argument");
    if (!(fovy_deg > 0.0f && fovy_deg < 180.0f))
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "camera look-at: fovy must be in (0, 180) degrees, got %g",
                            (double)fovy_deg);
    if (width <= 0 || height <= 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "camera look-at: image size must be positive, got %dx%d", width,
                            height);
    double d[3], u[3];
    for (int r = 0; r < 3; r++) {
        d[r] = (double)target[r] - (double)eye[r];
        u[r] = up[r];
    }
    double dist = norm3(d), ulen = norm3(u);
    if (!(dist > 0.0) || !isfinite(dist))
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "camera look-at: eye and target must be distinct finite points");
    if (!(ulen > 0.0) || !isfinite(ulen))
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "camera look-at: up must be a non-zero finite vector");
    double fwd[3] = {d[0] / dist, d[1] / dist, d[2] / dist};
    double right[3], down[3];
    cross3(fwd, u, right);
    /* |f x u| / |u| = sin(angle between them); below ~1e-6 rad the right axis is mostly
     * rounding noise. */
    double rlen = norm3(right);
    if (!(rlen > 1e-6 * ulen))
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "camera look-at: up (%g, %g, %g) is parallel to the viewing "
                            "direction",
                            (double)up[0], (double)up[1], (double)up[2]);
    for (int r = 0; r < 3; r++)
        right[r] /= rlen;
    cross3(fwd, right, down);
    const double e[3] = {eye[0], eye[1], eye[2]};
    set_frame(cam, e, right, down, fwd, fovy_deg, width, height);
    const double off[3] = {-d[0], -d[1], -d[2]};
    set_orbit_from_offset(cam, off);
    return SL_OK;
}

/* Orbit camera, built from closed forms rather than through look_at so that it stays
 * exact near the poles. With a = (cos az, sin az, 0):
 *   forward = -(cos el a + sin el z),   right = (-sin az, cos az, 0)  (= normalize(f x z),
 *   independent of el), down = forward x right.
 * At el = +-90 the world up is parallel to forward; the limit of the basis as el -> +-90
 * is the same formula, i.e. the up hint becomes -sin(el) a: "the direction of azimuth"
 * (away from it when looking down, toward it when looking up), so the image turns
 * continuously over the pole. Elevations outside [-90, 90] are clamped. */
void sl_camera_orbit(float azimuth_deg, float elevation_deg, float distance,
                     const float target[3], float fovy_deg, int width, int height,
                     sl_camera *cam)
{
    double az = normalize_azimuth(azimuth_deg);
    double el = elevation_deg;
    el = el > 90.0 ? 90.0 : (el < -90.0 ? -90.0 : el);
    double ca = cos(az * DEG), sa = sin(az * DEG);
    double ce = cos(el * DEG), se = sin(el * DEG);
    if (el == 90.0 || el == -90.0)
        ce = 0.0;   /* cos(pi/2) in double is 6e-17, not 0 */
    const double t[3] = {target ? target[0] : 0.0f, target ? target[1] : 0.0f,
                         target ? target[2] : 0.0f};
    double out_dir[3] = {ce * ca, ce * sa, se};   /* unit, from target to eye */
    double eye[3], fwd[3];
    for (int r = 0; r < 3; r++) {
        eye[r] = t[r] + (double)distance * out_dir[r];
        fwd[r] = -out_dir[r];
    }
    double right[3] = {-sa, ca, 0.0}, down[3];
    cross3(fwd, right, down);
    set_frame(cam, eye, right, down, fwd, fovy_deg, width, height);
    cam->azimuth_deg = (float)az;
    cam->elevation_deg = (float)el;
    cam->distance = distance;
}

void sl_camera_inside_out(float azimuth_deg, float elevation_deg, const float eye_in[3],
                          float fovy_deg, int width, int height, sl_camera *cam)
{
    double az = normalize_azimuth(azimuth_deg);
    double el = elevation_deg;
    el = el > 90.0 ? 90.0 : (el < -90.0 ? -90.0 : el);
    double ca = cos(az * DEG), sa = sin(az * DEG);
    double ce = cos(el * DEG), se = sin(el * DEG);
    if (el == 90.0 || el == -90.0)
        ce = 0.0;
    const double eye[3] = {eye_in ? eye_in[0] : 0.0f, eye_in ? eye_in[1] : 0.0f,
                           eye_in ? eye_in[2] : 0.0f};
    /* Looking outward along (az, el): the orbit camera's frame turned around, with right
     * = forward x up so that the horizon stays level (closed form, exact at the poles). */
    double fwd[3] = {ce * ca, ce * sa, se};
    double right[3] = {sa, -ca, 0.0}, down[3];
    cross3(fwd, right, down);
    set_frame(cam, eye, right, down, fwd, fovy_deg, width, height);
    cam->azimuth_deg = (float)az;
    cam->elevation_deg = (float)el;
    cam->distance = 0.0f;
}

void sl_camera_ray_dir(const sl_camera *cam, int row, int col, float dir[3])
{
    double dc[3] = {((double)col + 0.5 - cam->cx) / cam->fx,
                    ((double)row + 0.5 - cam->cy) / cam->fy, 1.0};
    double dw[3];
    for (int r = 0; r < 3; r++)
        dw[r] = cam->rot[3 * r + 0] * dc[0] + cam->rot[3 * r + 1] * dc[1] +
                cam->rot[3 * r + 2] * dc[2];
    double n = norm3(dw);
    for (int r = 0; r < 3; r++)
        dir[r] = (float)(dw[r] / n);
}

void sl_camera_world_to_cam(const sl_camera *cam, const float pw[3], float pc[3])
{
    double d[3] = {(double)pw[0] - cam->eye[0], (double)pw[1] - cam->eye[1],
                   (double)pw[2] - cam->eye[2]};
    /* pc = rot^T d: component c is the dot product with column c. */
    for (int c = 0; c < 3; c++)
        pc[c] = (float)(cam->rot[c] * d[0] + cam->rot[3 + c] * d[1] + cam->rot[6 + c] * d[2]);
}

sl_view_bucket sl_camera_bucket(const sl_camera *cam)
{
    if (cam->elevation_deg > 60.0f)
        return SL_VIEW_OVERHEAD;
    /* Normalised again in case a caller edited the field by hand. */
    double a = fabs(normalize_azimuth(cam->azimuth_deg));
    if (a <= 45.0)
        return SL_VIEW_FRONT;
    if (a > 135.0)
        return SL_VIEW_BACK;
    return SL_VIEW_SIDE;
}

const char *sl_view_bucket_name(sl_view_bucket b)
{
    switch (b) {
    case SL_VIEW_FRONT: return "front";
    case SL_VIEW_SIDE: return "side";
    case SL_VIEW_BACK: return "back";
    case SL_VIEW_OVERHEAD: return "overhead";
    }
    return "unknown";
}
