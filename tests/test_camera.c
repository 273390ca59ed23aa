/* tests/test_camera.c — the camera conventions of steinlab/camera.h. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/camera.h"

/* Column c of the camera-to-world rotation (c = 0 right, 1 down, 2 forward). */
static void axis(const sl_camera *cam, int c, float v[3])
{
    for (int r = 0; r < 3; r++)
        v[r] = cam->rot[3 * r + c];
}

static void assert_vec(const float got[3], double x, double y, double z, double tol)
{
    ck_assert_msg(fabs(got[0] - x) < tol && fabs(got[1] - y) < tol && fabs(got[2] - z) < tol,
                  "got (%g, %g, %g), want (%g, %g, %g)", (double)got[0], (double)got[1],
                  (double)got[2], x, y, z);
}

/* Orthonormal with determinant +1. */
static void assert_rotation(const sl_camera *cam)
{
    const float *R = cam->rot;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            double d = 0;
            for (int r = 0; r < 3; r++)
                d += (double)R[3 * r + a] * R[3 * r + b];
            ck_assert(fabs(d - (a == b)) < 1e-5);
        }
    double det = R[0] * ((double)R[4] * R[8] - (double)R[5] * R[7]) -
                 R[1] * ((double)R[3] * R[8] - (double)R[5] * R[6]) +
                 R[2] * ((double)R[3] * R[7] - (double)R[4] * R[6]);
    ck_assert(fabs(det - 1.0) < 1e-5);
}

START_TEST(test_orbit_axes)
{
    sl_camera cam;
    float v[3];
    /* az 0, el 0: from +x toward the origin; right is +y, down is -z. */
    sl_camera_orbit(0, 0, 3, NULL, 60, 64, 48, &cam);
    assert_vec(cam.eye, 3, 0, 0, 1e-6);
    axis(&cam, 2, v);
    assert_vec(v, -1, 0, 0, 1e-6);
    axis(&cam, 0, v);
    assert_vec(v, 0, 1, 0, 1e-6);
    axis(&cam, 1, v);
    assert_vec(v, 0, 0, -1, 1e-6);
    assert_rotation(&cam);
    /* az 90: from +y. */
    sl_camera_orbit(90, 0, 2, NULL, 60, 64, 48, &cam);
    assert_vec(cam.eye, 0, 2, 0, 1e-6);
    axis(&cam, 2, v);
    assert_vec(v, 0, -1, 0, 1e-6);
    /* Elevation 30 at az 0, around a target. */
    const float tgt[3] = {1, 2, 3};
    sl_camera_orbit(0, 30, 2, tgt, 60, 64, 48, &cam);
    assert_vec(cam.eye, 1 + 2 * cos(M_PI / 6), 2, 3 + 2 * 0.5, 1e-5);
    ck_assert(fabsf(cam.elevation_deg - 30) < 1e-5f);
    ck_assert(fabsf(cam.distance - 2) < 1e-6f);
    /* Azimuth normalised into (-180, 180]. */
    sl_camera_orbit(270, 0, 2, NULL, 60, 8, 8, &cam);
    ck_assert(fabsf(cam.azimuth_deg + 90) < 1e-4f);
    sl_camera_orbit(-180, 0, 2, NULL, 60, 8, 8, &cam);
    ck_assert(cam.azimuth_deg == 180.0f);
    sl_camera_orbit(540, 0, 2, NULL, 60, 8, 8, &cam);
    ck_assert(cam.azimuth_deg == 180.0f);
}
END_TEST

START_TEST(test_inside_out_axes)
{
    sl_camera cam;
    float v[3], pc[3];
    /* At the origin looking along +x: right is -y, down is -z, level horizon. */
    sl_camera_inside_out(0, 0, NULL, 60, 64, 48, &cam);
    assert_vec(cam.eye, 0, 0, 0, 1e-6);
    axis(&cam, 2, v);
    assert_vec(v, 1, 0, 0, 1e-6);
    axis(&cam, 0, v);
    assert_vec(v, 0, -1, 0, 1e-6);
    axis(&cam, 1, v);
    assert_vec(v, 0, 0, -1, 1e-6);
    assert_rotation(&cam);
    /* Looking along az 90, el 30 from (1, 2, 0.5): a point straight ahead is on the axis. */
    const float eye[3] = {1, 2, 0.5f};
    sl_camera_inside_out(90, 30, eye, 60, 64, 48, &cam);
    const float ahead[3] = {1, 2 + 4 * (float)cos(M_PI / 6), 0.5f + 2};
    sl_camera_world_to_cam(&cam, ahead, pc);
    assert_vec(pc, 0, 0, 4, 1e-5);
    assert_rotation(&cam);
    ck_assert(fabsf(cam.azimuth_deg - 90) < 1e-5f && cam.distance == 0.0f);
    /* Straight up stays a proper rotation. */
    sl_camera_inside_out(30, 90, NULL, 60, 8, 8, &cam);
    assert_rotation(&cam);
    axis(&cam, 2, v);
    assert_vec(v, 0, 0, 1, 1e-6);
}
END_TEST

START_TEST(test_intrinsics)
{
    sl_camera cam;
    sl_camera_orbit(0, 0, 3, NULL, 90, 80, 64, &cam);
    ck_assert(fabsf(cam.fx - 32.0f) < 1e-4f && cam.fx == cam.fy);
    ck_assert(cam.cx == 40.0f && cam.cy == 32.0f);
    ck_assert(cam.width == 80 && cam.height == 64);
    ck_assert(cam.near == 0.2f);
    /* Odd size: the centre pixel's ray is the forward axis. */
    sl_camera_orbit(30, 20, 3, NULL, 50, 5, 7, &cam);
    float d[3], f[3];
    sl_camera_ray_dir(&cam, 3, 2, d);
    axis(&cam, 2, f);
    assert_vec(d, f[0], f[1], f[2], 1e-6);
    /* Column to the right -> the ray leans toward the camera's +x (right), row below ->
     * toward +y (down). */
    float c[3];
    sl_camera_ray_dir(&cam, 3, 4, d);
    sl_camera_world_to_cam(&cam, (float[3]){cam.eye[0] + d[0], cam.eye[1] + d[1],
                                            cam.eye[2] + d[2]}, c);
    ck_assert(c[0] > 0 && fabsf(c[1]) < 1e-5f && c[2] > 0);
    sl_camera_ray_dir(&cam, 6, 2, d);
    sl_camera_world_to_cam(&cam, (float[3]){cam.eye[0] + d[0], cam.eye[1] + d[1],
                                            cam.eye[2] + d[2]}, c);
    ck_assert(c[1] > 0 && fabsf(c[0]) < 1e-5f);
    /* The top edge of the image is at fovy/2 above the axis: pixel row 0's centre is half
     * a pixel below it. */
    sl_camera_orbit(0, 0, 3, NULL, 90, 4, 4, &cam);   /* fy = 2, cy = 2 */
    sl_camera_ray_dir(&cam, 0, 2, d);
    sl_camera_world_to_cam(&cam, (float[3]){cam.eye[0] + d[0], cam.eye[1] + d[1],
                                            cam.eye[2] + d[2]}, c);
    ck_assert(fabsf(c[1] / c[2] - (0.5f - 2.0f) / 2.0f) < 1e-6f);
}
END_TEST

/* A point on the ray of pixel (i, j) projects back to (j + 0.5, i + 0.5). */
static void check_round_trip(const sl_camera *cam)
{
    for (int i = 0; i < cam->height; i += 3)
        for (int j = 0; j < cam->width; j += 5) {
            float d[3], p[3], c[3];
            sl_camera_ray_dir(cam, i, j, d);
            ck_assert(fabsf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2] - 1) < 1e-5f);
            for (int r = 0; r < 3; r++)
                p[r] = cam->eye[r] + 2.5f * d[r];
            sl_camera_world_to_cam(cam, p, c);
            ck_assert(c[2] > 0);
            double u = cam->fx * c[0] / c[2] + cam->cx;
            double v = cam->fy * c[1] / c[2] + cam->cy;
            ck_assert_msg(fabs(u - (j + 0.5)) < 1e-3 && fabs(v - (i + 0.5)) < 1e-3,
                          "pixel (%d, %d) -> (%g, %g)", i, j, v, u);
            /* Distance along the ray is the camera-space norm. */
            ck_assert(fabs(sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2]) - 2.5) < 1e-4);
        }
}

START_TEST(test_round_trip)
{
    sl_camera cam;
    const float tgt[3] = {0.3f, -0.2f, 0.1f};
    const float angles[][2] = {{0, 0}, {37, 12}, {-120, -30}, {179, 75}, {64, 90}, {10, -90}};
    for (size_t a = 0; a < sizeof angles / sizeof angles[0]; a++) {
        sl_camera_orbit(angles[a][0], angles[a][1], 2.7f, tgt, 55, 31, 20, &cam);
        assert_rotation(&cam);
        check_round_trip(&cam);
    }
    const float eye[3] = {1, 2, 3}, up[3] = {0, 0, 1};
    ck_assert(sl_camera_look_at(eye, tgt, up, 40, 17, 23, &cam, NULL) == SL_OK);
    assert_rotation(&cam);
    check_round_trip(&cam);
    /* The target projects to the principal point. */
    float c[3];
    sl_camera_world_to_cam(&cam, tgt, c);
    ck_assert(fabsf(c[0]) < 1e-5f && fabsf(c[1]) < 1e-5f);
    ck_assert(fabsf(c[2] - cam.distance) < 1e-5f);
}
END_TEST

START_TEST(test_look_at_axes)
{
    sl_camera cam;
    const float eye[3] = {-1.5f, 0.7f, 2.0f}, tgt[3] = {0.2f, 0.1f, -0.3f};
    const float up[3] = {0, 0, 1};
    ck_assert(sl_camera_look_at(eye, tgt, up, 60, 32, 32, &cam, NULL) == SL_OK);
    double d[3] = {tgt[0] - eye[0], tgt[1] - eye[1], tgt[2] - eye[2]};
    double n = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    float f[3], down[3];
    axis(&cam, 2, f);
    assert_vec(f, d[0] / n, d[1] / n, d[2] / n, 1e-6);
    /* Image down points against world up (the image is upright). */
    axis(&cam, 1, down);
    ck_assert(down[2] < 0);
    ck_assert(fabsf(cam.distance - (float)n) < 1e-5f);
    /* The orbit description of a look-at camera matches orbit(). */
    sl_camera o;
    sl_camera_orbit(-90, 0, 2, NULL, 60, 32, 32, &o);
    ck_assert(sl_camera_look_at(o.eye, (float[3]){0, 0, 0}, up, 60, 32, 32, &cam, NULL) ==
              SL_OK);
    ck_assert(fabsf(cam.azimuth_deg + 90) < 1e-4f && fabsf(cam.elevation_deg) < 1e-4f);
    for (int k = 0; k < 9; k++)
        ck_assert(fabsf(cam.rot[k] - o.rot[k]) < 1e-6f);
    /* Behind along -x: azimuth 180, never -180. */
    ck_assert(sl_camera_look_at((float[3]){-2, -0.0f, 0}, (float[3]){0, 0, 0}, up, 60, 8, 8,
                                &cam, NULL) == SL_OK);
    ck_assert(cam.azimuth_deg == 180.0f);
}
END_TEST

START_TEST(test_poles)
{
    sl_camera a, b;
    float f[3], r[3];
    /* Looking straight down: forward -z, right = (-sin az, cos az, 0). */
    sl_camera_orbit(30, 90, 2, NULL, 60, 16, 16, &a);
    assert_vec(a.eye, 0, 0, 2, 1e-6);
    axis(&a, 2, f);
    assert_vec(f, 0, 0, -1, 1e-6);
    axis(&a, 0, r);
    assert_vec(r, -sin(M_PI / 6), cos(M_PI / 6), 0, 1e-6);
    assert_rotation(&a);
    /* Continuous with the camera just below the pole. */
    sl_camera_orbit(30, 89.99f, 2, NULL, 60, 16, 16, &b);
    for (int k = 0; k < 9; k++)
        ck_assert(fabsf(a.rot[k] - b.rot[k]) < 1e-3f);
    sl_camera_orbit(30, -90, 2, NULL, 60, 16, 16, &a);
    sl_camera_orbit(30, -89.99f, 2, NULL, 60, 16, 16, &b);
    assert_rotation(&a);
    for (int k = 0; k < 9; k++)
        ck_assert(fabsf(a.rot[k] - b.rot[k]) < 1e-3f);
}
END_TEST

START_TEST(test_buckets)
{
    static const struct {
        float az, el;
        sl_view_bucket want;
    } cases[] = {
        {0, 0, SL_VIEW_FRONT},      {45, 0, SL_VIEW_FRONT},    {-45, 0, SL_VIEW_FRONT},
        {45.01f, 0, SL_VIEW_SIDE},  {-45.01f, 0, SL_VIEW_SIDE}, {90, 0, SL_VIEW_SIDE},
        {135, 0, SL_VIEW_SIDE},     {-135, 0, SL_VIEW_SIDE},   {135.01f, 0, SL_VIEW_BACK},
        {-135.01f, 0, SL_VIEW_BACK}, {180, 0, SL_VIEW_BACK},    {-180, 0, SL_VIEW_BACK},
        {0, 60, SL_VIEW_FRONT},     {0, 60.01f, SL_VIEW_OVERHEAD}, {170, 90, SL_VIEW_OVERHEAD},
        {0, -80, SL_VIEW_FRONT},    {180, -60, SL_VIEW_BACK},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sl_camera cam;
        sl_camera_orbit(cases[c].az, cases[c].el, 2, NULL, 60, 8, 8, &cam);
        ck_assert_msg(sl_camera_bucket(&cam) == cases[c].want, "az %g el %g: got %s",
                      (double)cases[c].az, (double)cases[c].el,
                      sl_view_bucket_name(sl_camera_bucket(&cam)));
    }
    ck_assert_str_eq(sl_view_bucket_name(SL_VIEW_FRONT), "front");
    ck_assert_str_eq(sl_view_bucket_name(SL_VIEW_SIDE), "side");
    ck_assert_str_eq(sl_view_bucket_name(SL_VIEW_BACK), "back");
    ck_assert_str_eq(sl_view_bucket_name(SL_VIEW_OVERHEAD), "overhead");
}
END_TEST

START_TEST(test_look_at_errors)
{
    sl_camera cam;
    sl_error err;
    const float o[3] = {0, 0, 0}, e[3] = {0, 0, 2}, x[3] = {2, 0, 0}, z[3] = {0, 0, 1};
    const float zero[3] = {0, 0, 0};
    struct {
        const float *eye, *target, *up;
        float fovy;
        int w, h;
    } bad[] = {
        {o, o, z, 60, 8, 8},        /* eye == target */
        {e, o, z, 60, 8, 8},        /* up parallel to the view direction */
        {x, o, x, 60, 8, 8},        /* ditto, anti-parallel */
        {x, o, zero, 60, 8, 8},     /* zero up */
        {x, o, z, 0, 8, 8},         /* fovy out of range */
        {x, o, z, 180, 8, 8},
        {x, o, z, -10, 8, 8},
        {x, o, z, NAN, 8, 8},
        {x, o, z, 60, 0, 8},        /* size */
        {x, o, z, 60, 8, -1},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        err.msg[0] = '\0';
        sl_status st = sl_camera_look_at(bad[c].eye, bad[c].target, bad[c].up, bad[c].fovy,
                                         bad[c].w, bad[c].h, &cam, &err);
        ck_assert_msg(st == SL_ERR_INVALID_ARG, "case %zu: status %d", c, (int)st);
        ck_assert_msg(strlen(err.msg) > 0, "case %zu: no message", c);
    }
    ck_assert(sl_camera_look_at(x, o, z, 60, 8, 8, &cam, &err) == SL_OK);
    ck_assert(sl_camera_look_at(x, o, z, 60, 8, 8, NULL, NULL) == SL_ERR_INVALID_ARG);
}
END_TEST

static Suite *camera_suite(void)
{
    Suite *s = suite_create("camera");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_orbit_axes);
    tcase_add_test(tc, test_inside_out_axes);
    tcase_add_test(tc, test_intrinsics);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_look_at_axes);
    tcase_add_test(tc, test_poles);
    tcase_add_test(tc, test_buckets);
    tcase_add_test(tc, test_look_at_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(camera_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
