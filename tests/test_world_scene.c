/* tests/test_world_scene.c — scenes of the world prior: exact intersections against closed
 * forms and the signed distance, prompts and their errors, scene files, the renderer. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "render.h"
#include "scene.h"
#include "scene_internal.h"

/* ---------------------------------------------------------------------------------- */
/* Helpers                                                                             */

/* Check's ck_assert records every passing check (a write per call); the loops below make
 * millions, so they go through these, which only call into Check on failure. */
#define REQUIRE(cond, ...)                  \
    do {                                    \
        if (!(cond))                        \
            ck_abort_msg(__VA_ARGS__);      \
    } while (0)
#define REQUIRE1(cond) REQUIRE(cond, "Assertion '%s' failed", #cond)

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double urand(void)   /* [0, 1), xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) * 0x1.0p-53;
}

static void rand_unit(double v[3])
{
    double n;
    do {
        for (int a = 0; a < 3; a++)
            v[a] = 2 * urand() - 1;
        n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    } while (n < 0.1 || n > 1);
    for (int a = 0; a < 3; a++)
        v[a] /= n;
}

static void quat_normalize(float q[4])
{
    double n = sqrt((double)q[0] * q[0] + (double)q[1] * q[1] + (double)q[2] * q[2] +
                    (double)q[3] * q[3]);
    for (int a = 0; a < 4; a++)
        q[a] = (float)(q[a] / n);
}

static world_scene one_prim(const world_primitive *p)
{
    world_scene s = {0};
    s.prims = malloc(sizeof *s.prims);
    ck_assert_ptr_nonnull(s.prims);
    s.prims[0] = *p;
    s.n = 1;
    s.background[0] = s.background[1] = s.background[2] = 1.0f;
    return s;
}

static double sdf_at(const world_scene *s, const double p[3])
{
    float pf[3] = {(float)p[0], (float)p[1], (float)p[2]};
    return world_scene_sdf(s, pf);
}

/* Central differences of the SDF, normalised; returns the gradient's length before
 * normalisation (1 where the SDF is smooth, since every SDF here is exact). The SDF takes
 * float points, so the step is the difference of the two rounded points, not 2h. */
static double fd_normal(const world_scene *s, const double p[3], double h, double g[3])
{
    for (int a = 0; a < 3; a++) {
        float pp[3] = {(float)p[0], (float)p[1], (float)p[2]};
        float pm[3] = {(float)p[0], (float)p[1], (float)p[2]};
        pp[a] = (float)(p[a] + h);
        pm[a] = (float)(p[a] - h);
        g[a] = ((double)world_scene_sdf(s, pp) - world_scene_sdf(s, pm)) /
               ((double)pp[a] - (double)pm[a]);
    }
    double n = sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]);
    for (int a = 0; a < 3; a++)
        g[a] /= n;
    return n;
}

/* Test primitives: one of each shape, rotated and moved off the origin so that the frame
 * transforms are exercised. */
static world_primitive test_prim(world_shape shape)
{
    world_primitive p;
    world_primitive_init(&p, shape);
    float q[4] = {0.9f, 0.25f, -0.3f, 0.2f};
    quat_normalize(q);
    memcpy(p.rotation, q, sizeof q);
    p.position[0] = 0.1f;
    p.position[1] = -0.07f;
    p.position[2] = 0.05f;
    p.color[0] = 0.2f;
    switch (shape) {
    case WORLD_SPHERE: p.size[0] = 0.5f; break;
    case WORLD_BOX: p.size[0] = 0.5f, p.size[1] = 0.3f, p.size[2] = 0.4f; break;
    case WORLD_ROUNDED_BOX:
        p.size[0] = 0.5f, p.size[1] = 0.35f, p.size[2] = 0.4f;
        p.rounding = 0.1f;
        break;
    case WORLD_TORUS: p.size[0] = 0.5f, p.size[1] = 0.15f; break;
    case WORLD_CYLINDER: p.size[0] = 0.4f, p.size[2] = 0.5f; break;
    case WORLD_CONE: p.size[0] = 0.5f, p.size[2] = 0.5f; break;
    case WORLD_CAPSULE: p.size[0] = 0.3f, p.size[2] = 0.35f; break;
    case WORLD_PLANE: p.position[2] = -0.3f; break;
    case WORLD_ROOM:
        p.size[0] = 1.0f, p.size[1] = 1.2f, p.size[2] = 0.8f;
        for (int w = 0; w < WORLD_WALLS; w++)
            p.wall_color[w][0] = 0.1f * (float)(w + 1);
        break;
    default: break;
    }
    return p;
}

/* ---------------------------------------------------------------------------------- */
/* Depth against the closed form                                                       */

START_TEST(test_sphere_depth)
{
    world_primitive p;
    world_primitive_init(&p, WORLD_SPHERE);
    p.size[0] = 0.45f;
    p.position[0] = 0.1f, p.position[1] = -0.05f, p.position[2] = 0.03f;
    world_scene s = one_prim(&p);
    world_shading sh = world_shading_default();
    enum { W = 48, H = 40 };
    float depth[H * W], mask[H * W];
    world_view v = {NULL, depth, NULL, mask};
    size_t checked = 0;
    const float cams[][4] = {{0, 0, 2, 50}, {37, 20, 1.6f, 60}, {-120, -35, 2.2f, 45},
                             {170, 80, 1.9f, 70}};
    for (size_t c = 0; c < sizeof cams / sizeof cams[0]; c++) {
        sl_camera cam;
        sl_camera_orbit(cams[c][0], cams[c][1], cams[c][2], NULL, cams[c][3], W, H, &cam);
        world_render(&s, &sh, &cam, &v);
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                float d[3];
                sl_camera_ray_dir(&cam, i, j, d);
                /* |e - c + t d|^2 = r^2: t = -b - sqrt(b^2 - (|e - c|^2 - r^2)), b = (e - c).d */
                double oc[3], b = 0, cc = 0, cosf_ = 0;
                for (int a = 0; a < 3; a++) {
                    oc[a] = (double)cam.eye[a] - p.position[a];
                    b += oc[a] * d[a];
                    cc += oc[a] * oc[a];
                    cosf_ += (double)d[a] * cam.rot[3 * a + 2];
                }
                double disc = b * b - (cc - (double)p.size[0] * p.size[0]);
                if (fabs(disc) < 1e-6)
                    continue;   /* silhouette: either answer is right */
                size_t px = (size_t)i * W + (size_t)j;
                if (disc < 0) {
                    REQUIRE(mask[px] == 0.0f && depth[px] == 0.0f, "pixel %d,%d", i, j);
                    continue;
                }
                double want = (-b - sqrt(disc)) * cosf_;
                REQUIRE(mask[px] == 1.0f, "pixel %d,%d should hit", i, j);
                REQUIRE(fabs(depth[px] - want) <= 1e-5 * want,
                              "camera %zu pixel %d,%d: depth %.9g, closed form %.9g", c, i, j,
                              (double)depth[px], want);
                checked++;
            }
    }
    REQUIRE(checked > 800, "only %zu pixels hit", checked);
    world_scene_free(&s);
}
END_TEST

/* ---------------------------------------------------------------------------------- */
/* Normals, surface and SDF consistency for every shape                                */

/* For every pixel ray of a few orbit cameras: a hit lies on the surface (|sdf| < 1e-5); its
 * normal matches the normalised central-difference gradient of the SDF (h = 1e-4, L1 error
 * below 3e-3: the stencil's error is about h / (radius of curvature) where it straddles a
 * curvature jump such as the rounded box's face-to-edge seam; checked wherever the gradient
 * has unit length, i.e. not across the creases of the SDF inside box edges); the SDF is
 * positive along the ray before the hit and changes sign across it (1e-4 either side, for
 * rays at least 3 degrees off grazing; at most 2% of those may fail, by exiting a thin corner
 * within 1e-4); a miss has a positive SDF along the whole ray. Cameras inside the solid
 * (below the plane) are skipped. */
static void check_shape(world_shape shape)
{
    world_primitive p = test_prim(shape);
    world_scene s = one_prim(&p);
    enum { N = 36 };
    const float cams[][3] = {{20, 25, 2.4f}, {-70, 10, 2.0f}, {150, -30, 2.6f}, {95, 75, 2.2f}};
    size_t hits = 0, normals = 0, crossings = 0, steep = 0;
    for (size_t c = 0; c < sizeof cams / sizeof cams[0]; c++) {
        sl_camera cam;
        sl_camera_orbit(cams[c][0], cams[c][1], cams[c][2], NULL, 55, N, N, &cam);
        if (world_scene_sdf(&s, cam.eye) < 0)
            continue;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                float d[3], t, n[3], col[3];
                sl_camera_ray_dir(&cam, i, j, d);
                int hit = world_scene_intersect(&s, cam.eye, d, 0.0f, INFINITY, &t, n, col);
                double end = hit && t - 1e-3 < 6.0 ? t - 1e-3 : 6.0;
                /* Nothing earlier: the SDF stays positive before the hit. */
                for (int k = 0; k <= 100; k++) {
                    double tk = end * k / 100.0;
                    double q[3] = {cam.eye[0] + tk * d[0], cam.eye[1] + tk * d[1],
                                   cam.eye[2] + tk * d[2]};
                    REQUIRE(sdf_at(&s, q) > -1e-6, "%s: sdf %g < 0 at t %g before the hit %g",
                                  world_shape_name(shape), sdf_at(&s, q), tk, hit ? t : -1.0);
                }
                /* Far along grazing rays (the plane near its horizon) float positions carry
                 * errors of t * 6e-8: checked up to t = 10 only. */
                if (!hit || t > 10.0f)
                    continue;
                hits++;
                REQUIRE1(col[0] == p.color[0]);
                double x[3], before[3], after[3];
                for (int a = 0; a < 3; a++) {
                    x[a] = cam.eye[a] + (double)t * d[a];
                    before[a] = x[a] - 1e-4 * d[a];
                    after[a] = x[a] + 1e-4 * d[a];
                }
                double on = sdf_at(&s, x);
                REQUIRE(fabs(on) < 1e-5, "%s: |sdf| %g at the hit", world_shape_name(shape),
                              on);
                double nd = n[0] * d[0] + n[1] * d[1] + n[2] * d[2];
                REQUIRE(fabs(n[0] * n[0] + n[1] * n[1] + n[2] * n[2] - 1) < 1e-5, "unit");
                REQUIRE(nd <= 1e-6, "%s: normal faces away from the ray (n.d %g)",
                              world_shape_name(shape), nd);
                if (nd < -0.05) {   /* not grazing: the sign changes across the hit */
                    steep++;
                    REQUIRE(sdf_at(&s, before) > 0, "%s: inside before t %g",
                                  world_shape_name(shape), (double)t);
                    crossings += sdf_at(&s, after) < 0;
                }
                double g[3];
                double len = fd_normal(&s, x, 1e-4, g);
                if (fabs(len - 1) > 1e-3)
                    continue;   /* the stencil straddles a crease of the SDF */
                double e = fabs(g[0] - n[0]) + fabs(g[1] - n[1]) + fabs(g[2] - n[2]);
                REQUIRE(e < 3e-3, "%s: normal (%g, %g, %g) vs finite differences (%g, %g, %g)",
                              world_shape_name(shape), (double)n[0], (double)n[1], (double)n[2],
                              g[0], g[1], g[2]);
                normals++;
            }
    }
    REQUIRE(hits > 400, "%s: only %zu hits", world_shape_name(shape), hits);
    REQUIRE(normals > hits * 8 / 10, "%s: normals checked at %zu of %zu hits",
                  world_shape_name(shape), normals, hits);
    REQUIRE(steep > hits * 8 / 10 && crossings >= steep * 98 / 100,
                  "%s: %zu crossings of %zu steep hits (%zu hits)", world_shape_name(shape),
                  crossings, steep, hits);
    world_scene_free(&s);
}

START_TEST(test_shape_normals)
{
    check_shape((world_shape)_i);
}
END_TEST

/* The traced shapes' normals against their closed forms at points we can name: the torus's
 * outer equator and top, the rounded box's face centre and an edge's mid-arc. */
START_TEST(test_traced_normals_closed_form)
{
    world_primitive t;
    world_primitive_init(&t, WORLD_TORUS);
    t.size[0] = 0.5f, t.size[1] = 0.15f;
    world_scene s = one_prim(&t);
    float o[3] = {3, 0, 0}, d[3] = {-1, 0, 0}, th, n[3], c[3];
    REQUIRE1(world_scene_intersect(&s, o, d, 0, INFINITY, &th, n, c));
    REQUIRE1(fabs(th - 2.35) < 1e-5 && fabs(n[0] - 1) < 1e-6);
    float o2[3] = {0.5f, 0, 2}, d2[3] = {0, 0, -1};
    REQUIRE1(world_scene_intersect(&s, o2, d2, 0, INFINITY, &th, n, c));
    REQUIRE1(fabs(th - 1.85) < 1e-5 && fabs(n[2] - 1) < 1e-6);
    /* Through the hole: a miss. */
    float o3[3] = {0, 0, 2};
    REQUIRE1(!world_scene_intersect(&s, o3, d2, 0, INFINITY, &th, n, c));
    world_scene_free(&s);

    world_primitive b;
    world_primitive_init(&b, WORLD_ROUNDED_BOX);
    b.size[0] = b.size[1] = b.size[2] = 0.5f;
    b.rounding = 0.2f;
    s = one_prim(&b);
    REQUIRE1(world_scene_intersect(&s, o, d, 0, INFINITY, &th, n, c));
    REQUIRE1(fabs(th - 2.5) < 1e-5 && fabs(n[0] - 1) < 1e-6);
    /* Along the diagonal of the xz edge: the arc of radius 0.2 around (0.3, y, 0.3). */
    const double k = 1 / sqrt(2.0);
    float o4[3] = {2, 0.1f, 2}, d4[3] = {(float)-k, 0, (float)-k};
    REQUIRE1(world_scene_intersect(&s, o4, d4, 0, INFINITY, &th, n, c));
    double want = (2 - 0.3) * sqrt(2.0) - 0.2;
    REQUIRE(fabs(th - want) < 1e-5, "t %g want %g", (double)th, want);
    REQUIRE1(fabs(n[0] - k) < 1e-5 && fabs(n[2] - k) < 1e-5 && fabs(n[1]) < 1e-6);
    world_scene_free(&s);
}
END_TEST

/* Near-plane semantics: t_min excludes what lies before it, and a ray starting inside a
 * solid reports the exit surface. */
START_TEST(test_t_range)
{
    world_primitive p;
    world_primitive_init(&p, WORLD_BOX);
    p.size[0] = p.size[1] = p.size[2] = 0.5f;
    world_scene s = one_prim(&p);
    float o[3] = {2, 0, 0}, d[3] = {-1, 0, 0}, t, n[3], c[3];
    REQUIRE1(world_scene_intersect(&s, o, d, 0, INFINITY, &t, n, c));
    REQUIRE1(fabs(t - 1.5) < 1e-6 && n[0] == 1.0f);
    REQUIRE1(world_scene_intersect(&s, o, d, 1.6f, INFINITY, &t, n, c));
    REQUIRE1(fabs(t - 2.5) < 1e-6 && n[0] == -1.0f);
    REQUIRE1(!world_scene_intersect(&s, o, d, 0, 1.4f, &t, n, c));
    REQUIRE1(!world_scene_intersect(&s, o, d, 2.6f, INFINITY, &t, n, c));
    world_scene_free(&s);
}
END_TEST

/* ---------------------------------------------------------------------------------- */
/* Rooms                                                                               */

START_TEST(test_room_inside)
{
    /* A bare room, rotated: from inside, every direction hits a wall with the normal
     * pointing into the room (against the ray) and the wall's colour. */
    world_primitive r = test_prim(WORLD_ROOM);
    world_scene s = one_prim(&r);
    for (int k = 0; k < 3000; k++) {
        double u[3];
        rand_unit(u);
        float d[3] = {(float)u[0], (float)u[1], (float)u[2]}, t, n[3], c[3];
        float o[3] = {r.position[0] + 0.3f * (float)(urand() - 0.5),
                      r.position[1] + 0.3f * (float)(urand() - 0.5), r.position[2]};
        REQUIRE1(world_scene_intersect(&s, o, d, 0.0f, INFINITY, &t, n, c));
        REQUIRE1(n[0] * d[0] + n[1] * d[1] + n[2] * d[2] < 0);
        double x[3] = {o[0] + (double)t * d[0], o[1] + (double)t * d[1], o[2] + (double)t * d[2]};
        REQUIRE1(fabs(sdf_at(&s, x)) < 1e-5);
        /* The SDF's gradient (into the room) is the normal. */
        double g[3];
        if (fabs(fd_normal(&s, x, 1e-4, g) - 1) < 1e-3)
            REQUIRE1(fabs(g[0] - n[0]) + fabs(g[1] - n[1]) + fabs(g[2] - n[2]) < 3e-3);
        int wall = -1;
        for (int w = 0; w < WORLD_WALLS; w++)
            if (c[0] == r.wall_color[w][0])
                wall = w;
        REQUIRE1(wall >= 0);
    }
    world_scene_free(&s);

    /* Every library room from inside-out cameras at the origin: every pixel is covered. */
    const char *const *rooms;
    size_t nr = world_library_rooms(&rooms);
    for (size_t i = 0; i < nr; i++) {
        sl_error err;
        REQUIRE(world_scene_from_prompt(rooms[i], &s, &err) == SL_OK, "%s", err.msg);
        REQUIRE1(s.is_room);
        for (int k = 0; k < 2000; k++) {
            double u[3];
            rand_unit(u);
            float d[3] = {(float)u[0], (float)u[1], (float)u[2]}, o[3] = {0, 0, 0}, t, n[3], c[3];
            REQUIRE(world_scene_intersect(&s, o, d, 0.2f, INFINITY, &t, n, c),
                          "%s: direction (%g, %g, %g) escapes", rooms[i], u[0], u[1], u[2]);
            REQUIRE1(n[0] * d[0] + n[1] * d[1] + n[2] * d[2] < 0);
        }
        /* A camera at the origin looking level along -x (away from the objects) sees the
         * floor in its bottom row. */
        sl_camera cam;
        sl_camera_inside_out(180, 0, NULL, 60, 16, 16, &cam);
        float nrm[16 * 16 * 3];
        world_view v = {NULL, NULL, nrm, NULL};
        world_shading sh = world_shading_default();
        world_render(&s, &sh, &cam, &v);
        REQUIRE1(nrm[3 * (15 * 16 + 0) + 2] > 0.99f);   /* bottom-left pixel: floor, +z */
        world_scene_free(&s);
    }
}
END_TEST

/* ---------------------------------------------------------------------------------- */
/* Prompts                                                                             */

START_TEST(test_library)
{
    const char *const *obj, *const *rooms;
    size_t no = world_library_objects(&obj), nr = world_library_rooms(&rooms);
    ck_assert_uint_ge(no, 12);
    ck_assert_uint_ge(nr, 4);
    char **canon = calloc(no + nr, sizeof *canon);
    ck_assert_ptr_nonnull(canon);
    for (size_t i = 0; i < no + nr; i++) {
        const char *prompt = i < no ? obj[i] : rooms[i - no];
        world_scene s;
        sl_error err;
        REQUIRE(world_scene_from_prompt(prompt, &s, &err) == SL_OK, "%s", err.msg);
        ck_assert_str_eq(s.name, prompt);
        ck_assert_int_eq(s.is_room, i >= no);
        canon[i] = world_scene_canonical(&s);
        ck_assert_ptr_nonnull(canon[i]);
        for (size_t j = 0; j < i; j++)
            REQUIRE(strcmp(canon[i], canon[j]), "'%s' and '%s' are the same scene", prompt,
                          j < no ? obj[j] : rooms[j - no]);
        if (i < no) {
            /* Fits the ball: rays from outside toward it only ever hit points within the
             * radius, and some hit close to it (the fit is tight). */
            double rmax = 0;
            for (int k = 0; k < 3000; k++) {
                double u[3], v[3];
                rand_unit(u);
                rand_unit(v);
                float o[3], d[3], t, n[3], c[3];
                for (int a = 0; a < 3; a++) {
                    o[a] = (float)(3 * u[a] + 0.6 * v[a]);
                    d[a] = (float)-u[a];
                }
                if (!world_scene_intersect(&s, o, d, 0, INFINITY, &t, n, c))
                    continue;
                double x2 = 0;
                for (int a = 0; a < 3; a++) {
                    double x = o[a] + (double)t * d[a];
                    x2 += x * x;
                }
                if (sqrt(x2) > rmax)
                    rmax = sqrt(x2);
            }
            REQUIRE(rmax <= WORLD_OBJECT_RADIUS * (1 + 1e-5), "%s: a point at %g", prompt,
                          rmax);
            REQUIRE(rmax > 0.75 * WORLD_OBJECT_RADIUS, "%s: largest %g", prompt, rmax);
        }
        world_scene_free(&s);
    }
    for (size_t i = 0; i < no + nr; i++)
        free(canon[i]);
    free(canon);
}
END_TEST

/* Placement: "on" stacks centred, "next to" goes to +y on the same support, "in front of"
 * puts the first object toward +x; synonyms give the same scene. */
START_TEST(test_prompt_placement)
{
    world_scene s;
    sl_error err;
    REQUIRE1(world_scene_from_prompt("a red sphere on a blue box", &s, &err) == SL_OK);
    ck_assert_uint_eq(s.n, 2);
    world_primitive *sp = &s.prims[0], *bx = &s.prims[1];
    ck_assert_int_eq(sp->shape, WORLD_SPHERE);
    ck_assert_int_eq(bx->shape, WORLD_BOX);
    REQUIRE1(fabsf(sp->position[0] - bx->position[0]) < 1e-6f);
    REQUIRE1(fabsf(sp->position[1] - bx->position[1]) < 1e-6f);
    REQUIRE1(fabsf((sp->position[2] - sp->size[0]) - (bx->position[2] + bx->size[2])) < 1e-6f);
    REQUIRE1(sp->color[0] > 0.8f && bx->color[2] > 0.8f);
    world_scene_free(&s);

    REQUIRE1(world_scene_from_prompt("a cone next to a small cylinder", &s, &err) == SL_OK);
    world_primitive *co = &s.prims[0], *cy = &s.prims[1];
    REQUIRE1(cy->position[1] - cy->size[0] > co->position[1] + co->size[0]);   /* +y, a gap */
    REQUIRE1(fabsf((co->position[2] - co->size[2]) - (cy->position[2] - cy->size[2])) < 1e-6f);
    REQUIRE1(cy->size[0] < co->size[0]);
    world_scene_free(&s);

    REQUIRE1(world_scene_from_prompt("a ball in front of a cube", &s, &err) == SL_OK);
    REQUIRE1(s.prims[0].position[0] > s.prims[1].position[0]);
    char *a = world_scene_canonical(&s);
    world_scene_free(&s);
    REQUIRE1(world_scene_from_prompt("A Sphere  in front of   a box", &s, &err) == SL_OK);
    char *b = world_scene_canonical(&s);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    world_scene_free(&s);
    REQUIRE1(world_scene_from_prompt("a ball behind a cube", &s, &err) == SL_OK);
    REQUIRE1(s.prims[0].position[0] < s.prims[1].position[0]);
    world_scene_free(&s);

    /* A room: objects stand on the floor, in front of the camera looking along +x. */
    REQUIRE1(world_scene_from_prompt("a room with a red sphere and a blue box", &s, &err) == SL_OK);
    ck_assert_uint_eq(s.n, 3);
    ck_assert_int_eq(s.prims[0].shape, WORLD_ROOM);
    float floor_z = s.prims[0].position[2] - s.prims[0].size[2];
    REQUIRE1(fabsf(s.prims[1].position[2] - s.prims[1].size[0] - floor_z) < 1e-6f);
    REQUIRE1(fabsf(s.prims[2].position[2] - s.prims[2].size[2] - floor_z) < 1e-6f);
    REQUIRE1(s.prims[1].position[0] > 0 && s.prims[1].position[1] > s.prims[2].position[1]);
    REQUIRE1(floor_z < -0.3f);
    world_scene_free(&s);
}
END_TEST

static const struct { const char *prompt, *msg; } bad_prompts[] = {
    {"", "prompt \"\": empty prompt (expected an object such as 'a red sphere on a blue box' or "
         "a room such as 'a room with a red sphere')"},
    {"a red spere on a blue box",
     "prompt \"a red spere on a blue box\": unknown word 'spere' at column 7 (expected a shape "
     "or 'room': sphere, ball, box, cube, torus, ring, donut, cylinder, cone, capsule, pill, "
     "rounded box); did you mean 'sphere'?"},
    {"a red", "prompt \"a red\": missing shape after 'red' at the end (expected a shape or "
              "'room': sphere, ball, box, cube, torus, ring, donut, cylinder, cone, capsule, "
              "pill, rounded box)"},
    {"a sphere on", "prompt \"a sphere on\": dangling 'on' at column 10: expected an object "
                    "after it ('a' or 'an')"},
    {"a green box next to",
     "prompt \"a green box next to\": dangling 'next' at column 13: expected an object after "
     "it ('a' or 'an')"},
    {"a red on a box", "prompt \"a red on a box\": missing shape before 'on' at column 7 "
                       "(expected a shape or 'room': sphere, ball, box, cube, torus, ring, "
                       "donut, cylinder, cone, capsule, pill, rounded box)"},
    {"a sphere next", "prompt \"a sphere next\": ends after 'next' at column 10 (expected 'to')"},
    {"red sphere", "prompt \"red sphere\": unexpected word 'red' at column 1 (expected 'a' or "
                   "'an')"},
    {"a sphere on a blue box.", "prompt \"a sphere on a blue box.\": unexpected character '.' "
                                "at column 23 (prompts are words of letters separated by "
                                "spaces)"},
    {"a room with a red sphere and",
     "prompt \"a room with a red sphere and\": dangling 'and' at column 26: expected an object "
     "after it ('a' or 'an')"},
    {"a rounded ball", "prompt \"a rounded ball\": unexpected word 'ball' at column 11 "
                       "(expected 'box' or 'cube')"},
    {"a sphere besides a cone",
     "prompt \"a sphere besides a cone\": unknown word 'besides' at column 10 (expected a "
     "relation or the end: on, on top of, above, under, below, next to, beside, in front of, "
     "behind, and); did you mean 'beside'?"},
    {"a large small cone",
     "prompt \"a large small cone\": unexpected word 'small' at column 9 (expected a colour or "
     "shape: red, green, blue, yellow, orange, purple, white, black, gray, grey, cyan, pink, "
     "brown, sphere, ball, box, cube, torus, ring, donut, cylinder, cone, capsule, pill, "
     "rounded box)"},
    {"a sphere in front a cone",
     "prompt \"a sphere in front a cone\": unexpected word 'a' at column 19 (expected 'of')"},
    {"a box on a room", "prompt \"a box on a room\": unexpected word 'room' at column 12 "
                        "(expected a size, colour or shape: tiny, small, large, big, huge, red, "
                        "green, blue, yellow, orange, purple, white, black, gray, grey, cyan, "
                        "pink, brown, sphere, ball, box, cube, torus, ring, donut, cylinder, "
                        "cone, capsule, pill, rounded box)"},
    {"a blue room on a box", "prompt \"a blue room on a box\": unexpected word 'on' at column "
                             "13 (expected 'with' or the end)"},
    {"a sphere a cone", "prompt \"a sphere a cone\": unexpected word 'a' at column 10 "
                        "(expected a relation or the end: on, on top of, above, under, below, "
                        "next to, beside, in front of, behind, and)"},
    {"a cone on top a box", "prompt \"a cone on top a box\": unexpected word 'a' at column 15 "
                            "(expected 'of')"},
};

START_TEST(test_bad_prompts)
{
    for (size_t k = 0; k < sizeof bad_prompts / sizeof bad_prompts[0]; k++) {
        world_scene s;
        sl_error err = {"untouched"};
        sl_status st = world_scene_from_prompt(bad_prompts[k].prompt, &s, &err);
        REQUIRE(st == SL_ERR_SPEC, "'%s': status %d", bad_prompts[k].prompt, (int)st);
        ck_assert_str_eq(err.msg, bad_prompts[k].msg);
        REQUIRE1(s.prims == NULL && s.name == NULL && s.n == 0);
    }
}
END_TEST

/* ---------------------------------------------------------------------------------- */
/* Scene files                                                                         */

static char tmpdir[256];

static void setup_tmp(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_world_scene.XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_scene_file_good)
{
    setup_tmp();
    char path[512];
    snprintf(path, sizeof path, "%s/good.yaml", tmpdir);
    write_file(path,
               "background: gray\n"
               "room: false\n"
               "primitives:\n"
               "  - {shape: sphere, color: [1, 0, 0], position: [0, 0, 0.3], size: [0.3, 0, 0]}\n"
               "  - {shape: torus, color: red, rotation: [2, 0, 0, 2], size: [0.4, 0.1, 0]}\n"
               "  - {shape: rounded_box, size: [0.2, 0.2, 0.1], rounding: 0.05}\n"
               "  - shape: room\n"
               "    size: [2, 2, 1]\n"
               "    walls: [red, green, blue, [0.1, 0.2, 0.3], white, black]\n"
               "  - {shape: plane, position: [0, 0, -1]}\n");
    world_scene s;
    sl_error err;
    REQUIRE(world_scene_from_file(path, &s, &err) == SL_OK, "%s", err.msg);
    ck_assert_str_eq(s.name, path);
    ck_assert_uint_eq(s.n, 5);
    ck_assert_int_eq(s.is_room, 0);
    REQUIRE1(s.background[0] == 0.5f);
    ck_assert_int_eq(s.prims[0].shape, WORLD_SPHERE);
    REQUIRE1(s.prims[0].color[0] == 1.0f && s.prims[0].position[2] == 0.3f &&
              s.prims[0].size[0] == 0.3f);
    ck_assert_int_eq(s.prims[1].shape, WORLD_TORUS);
    REQUIRE1(fabsf(s.prims[1].rotation[0] - (float)M_SQRT1_2) < 1e-7f &&
              fabsf(s.prims[1].rotation[3] - (float)M_SQRT1_2) < 1e-7f);
    float red[3];
    world_color_by_name("red", red);
    REQUIRE1(!memcmp(s.prims[1].color, red, sizeof red));
    REQUIRE1(s.prims[2].rounding == 0.05f);
    REQUIRE1(!memcmp(s.prims[2].color, world_default_color, sizeof red));
    ck_assert_int_eq(s.prims[3].shape, WORLD_ROOM);
    REQUIRE1(s.prims[3].wall_color[3][2] == 0.3f && s.prims[3].wall_color[5][0] < 0.1f);
    REQUIRE1(s.prims[4].position[2] == -1.0f);
    /* Rendered, it shows something. */
    world_scene_free(&s);
    unlink(path);
    rmdir(tmpdir);
}
END_TEST

/* (YAML, message with %s for the file's path). */
static const struct { const char *yaml, *msg; } bad_files[] = {
    {"primitives:\n  - {shape: spere, size: [1, 0, 0]}\n",
     "%s:2:13: primitives[0].shape: expected one of sphere|box|rounded_box|torus|cylinder|cone|"
     "capsule|plane|room, found 'spere'; did you mean 'sphere'?"},
    {"primitives:\n  - shape: box\n    size: [1, 1, 1]\n  - {shape: sphere, colour: red, size: [1, 0, 0]}\n",
     "%s:4:21: primitives[1].colour: unknown key (expected one of: shape, position, rotation, "
     "size, rounding); did you mean 'color'?"},
    {"primitives:\n  - {shape: sphere}\n",
     "%s:2:5: primitives[0].size: missing (a sphere needs size [radius, 0, 0])"},
    {"primitives:\n  - {shape: sphere, size: [-1, 0, 0]}\n",
     "%s:2:28: primitives[0].size[0]: expected a number in [0, inf], found '-1'"},
    {"primitives:\n  - {shape: cylinder, size: [0.5, 0, 0]}\n",
     "%s:2:29: primitives[0].size: a cylinder needs size [radius, 0, half_height] with entry 2 > 0"},
    {"primitives:\n  - {shape: box, size: [1, 1, 1], rotation: [0, 0, 0, 0]}\n",
     "%s:2:45: primitives[0].rotation: expected a non-zero quaternion [w, x, y, z]"},
    {"primitives:\n  - {shape: box, size: [1, 1, 1], color: redd}\n",
     "%s:2:42: primitives[0].color: expected a colour name (red, green, blue, yellow, orange, "
     "purple, white, black, gray, grey, cyan, pink, brown) or [r, g, b] in [0, 1], found "
     "'redd'; did you mean 'red'?"},
    {"primitives:\n  - {shape: box, size: [1, 1, 1], color: [1, 2, 0]}\n",
     "%s:2:46: primitives[0].color: expected a colour name (red, green, blue, yellow, orange, "
     "purple, white, black, gray, grey, cyan, pink, brown) or [r, g, b] in [0, 1], found '2' at "
     "index 1"},
    {"primitives:\n  - {shape: box, size: [1, 1, 1], walls: [red]}\n",
     "%s:2:42: primitives[0].walls: only a room has walls"},
    {"background: [1, 1, 1]\n", "%s:1:1: primitives: missing required key (expected a list of "
                                "primitives)"},
    {"primitives: []\n", "%s:1:13: primitives: expected a non-empty list of primitives"},
    {"primitives:\n  - {shape: rounded_box, size: [0.2, 0.1, 0.3], rounding: 0.15}\n",
     "%s:2:59: primitives[0].rounding: expected at most the smallest half extent 0.1, found "
     "0.15"},
    {"primitives:\n  - sphere\n",
     "%s:2:5: primitives[0]: expected a map with keys shape, color, position, rotation, size"},
    {"primitives:\n  - {size: [1, 0, 0]}\n",
     "%s:2:5: primitives[0].shape: missing required key (expected one of sphere|box|rounded_box|"
     "torus|cylinder|cone|capsule|plane|room)"},
    {"background: [1, 1]\nprimitives:\n  - {shape: sphere, size: [1, 0, 0]}\n",
     "%s:1:13: background: expected a colour name (red, green, blue, yellow, orange, purple, "
     "white, black, gray, grey, cyan, pink, brown) or [r, g, b] in [0, 1], found a list of the "
     "wrong length"},
    {"room: maybe\nprimitives:\n  - {shape: sphere, size: [1, 0, 0]}\n",
     "%s:1:7: room: expected true or false, found 'maybe'"},
    {"primitives:\n  - {shape: room, size: [2, 2, 1], walls: [red, green]}\n",
     "%s:2:43: primitives[0].walls: expected a list of 6 colours (-x, +x, -y, +y, floor, "
     "ceiling)"},
};

START_TEST(test_scene_file_bad)
{
    setup_tmp();
    char path[512];
    snprintf(path, sizeof path, "%s/bad.yaml", tmpdir);
    for (size_t k = 0; k < sizeof bad_files / sizeof bad_files[0]; k++) {
        write_file(path, bad_files[k].yaml);
        world_scene s;
        sl_error err = {""};
        sl_status st = world_scene_from_file(path, &s, &err);
        REQUIRE(st == SL_ERR_SPEC, "case %zu: status %d (%s)", k, (int)st, err.msg);
        char want[2048];
        snprintf(want, sizeof want, bad_files[k].msg, path);
        ck_assert_str_eq(err.msg, want);
        REQUIRE1(s.prims == NULL && s.name == NULL);
    }
    world_scene s;
    sl_error err;
    unlink(path);
    ck_assert_int_eq(world_scene_from_file(path, &s, &err), SL_ERR_IO);
    rmdir(tmpdir);
}
END_TEST

/* ---------------------------------------------------------------------------------- */
/* Renderer and canonical text                                                         */

START_TEST(test_render_determinism)
{
    world_scene s;
    sl_error err;
    REQUIRE1(world_scene_from_prompt("a yellow sphere on a red rounded box next to a green torus",
                                      &s, &err) == SL_OK);
    enum { W = 64, H = 48 };
    static float a[4][H * W * 3], b[4][H * W * 3];
    world_shading sh = world_shading_default();
    sl_camera cam;
    sl_camera_orbit(30, 20, 1.8f, NULL, 50, W, H, &cam);
    world_view va = {a[0], a[1], a[2], a[3]}, vb = {b[0], b[1], b[2], b[3]};
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    world_render(&s, &sh, &cam, &va);
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    world_render(&s, &sh, &cam, &vb);
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
    REQUIRE1(!memcmp(a, b, sizeof a));
    /* Sanity: values in range, background where the mask is 0, unit normals where it is 1. */
    size_t fg = 0;
    for (int p = 0; p < W * H; p++) {
        for (int c = 0; c < 3; c++)
            REQUIRE1(a[0][3 * p + c] >= 0 && a[0][3 * p + c] <= 1);
        if (a[3][p] == 0.0f) {
            REQUIRE1(a[0][3 * p] == s.background[0] && a[1][p] == 0.0f && a[2][3 * p] == 0.0f);
        } else {
            fg++;
            REQUIRE1(a[1][p] > cam.near);
            double n2 = a[2][3 * p] * a[2][3 * p] + a[2][3 * p + 1] * a[2][3 * p + 1] +
                        a[2][3 * p + 2] * a[2][3 * p + 2];
            REQUIRE1(fabs(n2 - 1) < 1e-5);
        }
    }
    REQUIRE(fg > (size_t)(W * H) / 10, "%zu foreground pixels", fg);
    /* NULL buffers are allowed. */
    world_view none = {NULL, NULL, NULL, NULL};
    world_render(&s, &sh, &cam, &none);
    world_scene_free(&s);
}
END_TEST

START_TEST(test_canonical)
{
    world_primitive p[3] = {test_prim(WORLD_ROUNDED_BOX), test_prim(WORLD_ROOM),
                            test_prim(WORLD_CONE)};
    world_scene s = {p, 3, {1, 1, 1}, 0, (char *)"name"};
    char *ref = world_scene_canonical(&s);
    ck_assert_ptr_nonnull(ref);
    /* Every float of every primitive, the background and the flags matter. */
    size_t nf = 0;
    for (size_t i = 0; i < 3; i++) {
        float *fields[] = {p[i].color, p[i].position, p[i].rotation, p[i].size, &p[i].rounding,
                           &p[i].wall_color[0][0]};
        const int lens[] = {3, 3, 4, 3, 1, 3 * WORLD_WALLS};
        for (int f = 0; f < 6; f++)
            for (int k = 0; k < lens[f]; k++) {
                float keep = fields[f][k];
                fields[f][k] = nextafterf(keep, 2.0f);
                char *c = world_scene_canonical(&s);
                REQUIRE(strcmp(c, ref), "prim %zu field %d[%d] does not change the text", i,
                              f, k);
                free(c);
                fields[f][k] = keep;
                nf++;
            }
        world_shape keep = p[i].shape;
        p[i].shape = WORLD_SPHERE;
        char *c = world_scene_canonical(&s);
        REQUIRE1(strcmp(c, ref));
        free(c);
        p[i].shape = keep;
    }
    ck_assert_uint_eq(nf, 3 * 32);
    s.background[1] = nextafterf(1.0f, 0.0f);
    char *c = world_scene_canonical(&s);
    REQUIRE1(strcmp(c, ref));
    free(c);
    s.background[1] = 1.0f;
    s.is_room = 1;
    c = world_scene_canonical(&s);
    REQUIRE1(strcmp(c, ref));
    free(c);
    s.is_room = 0;
    /* The name and the sign of a zero do not. */
    s.name = (char *)"other";
    p[0].position[0] = 0.0f;
    char *z = world_scene_canonical(&s);
    p[0].position[0] = -0.0f;
    c = world_scene_canonical(&s);
    ck_assert_str_eq(c, z);
    free(c);
    free(z);
    free(ref);
}
END_TEST

static Suite *world_scene_suite(void)
{
    Suite *s = suite_create("world_scene");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sphere_depth);
    tcase_add_loop_test(tc, test_shape_normals, WORLD_SPHERE, WORLD_ROOM);
    tcase_add_test(tc, test_traced_normals_closed_form);
    tcase_add_test(tc, test_t_range);
    tcase_add_test(tc, test_room_inside);
    tcase_add_test(tc, test_library);
    tcase_add_test(tc, test_prompt_placement);
    tcase_add_test(tc, test_bad_prompts);
    tcase_add_test(tc, test_scene_file_good);
    tcase_add_test(tc, test_scene_file_bad);
    tcase_add_test(tc, test_render_determinism);
    tcase_add_test(tc, test_canonical);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(world_scene_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
