/* plugins/priors/world/scene.c — primitives of the world prior: exact ray intersection,
 * signed distance, bounding boxes, canonical text and printing.
 *
 * Every primitive is defined in its local frame and placed by a rotation R (the unit
 * quaternion) and a translation: p_world = R p_local + position. A world ray o + t d maps
 * to the local ray R^T (o - position) + t R^T d; R is orthonormal, so t (the distance along
 * the unit direction) is the same in both frames and a local normal maps back with R.
 *
 * All intersection arithmetic is in double: the renderer's depth must match closed forms
 * to ~1e-5 relative, and the sphere tracer's threshold (1e-6 of the shape's size) is below
 * float resolution at the scene's scale. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scene_internal.h"

/* ---------------------------------------------------------------------------------- */
/* Vocabulary shared with prompt.c and scene_file.c                                   */

/* Chosen to be distinct under the default shading (ambient 0.35 + diffuse 0.65), and away
 * from the extremes so that shading stays visible (white is 0.95, black 0.08). */
static const struct { const char *name; float rgb[3]; } colors[] = {
    {"red", {0.85f, 0.15f, 0.12f}},    {"green", {0.18f, 0.65f, 0.22f}},
    {"blue", {0.15f, 0.30f, 0.85f}},   {"yellow", {0.92f, 0.82f, 0.15f}},
    {"orange", {0.95f, 0.50f, 0.10f}}, {"purple", {0.55f, 0.22f, 0.70f}},
    {"white", {0.95f, 0.95f, 0.95f}},  {"black", {0.08f, 0.08f, 0.08f}},
    {"gray", {0.50f, 0.50f, 0.50f}},   {"grey", {0.50f, 0.50f, 0.50f}},
    {"cyan", {0.15f, 0.78f, 0.82f}},   {"pink", {0.95f, 0.55f, 0.70f}},
    {"brown", {0.50f, 0.32f, 0.16f}},
};
#define N_COLORS (sizeof colors / sizeof colors[0])

const char *const world_color_names[N_COLORS] = {
    "red", "green", "blue", "yellow", "orange", "purple", "white",
    "black", "gray", "grey", "cyan", "pink", "brown",
};
const size_t world_color_count = N_COLORS;

const float world_default_color[3] = {0.70f, 0.70f, 0.70f};
const float world_default_background[3] = {1.0f, 1.0f, 1.0f};

int world_color_by_name(const char *name, float rgb[3])
{
    for (size_t i = 0; i < N_COLORS; i++)
        if (!strcmp(name, colors[i].name)) {
            memcpy(rgb, colors[i].rgb, sizeof colors[i].rgb);
            return 1;
        }
    return 0;
}

void world_room_default_walls(float walls[WORLD_WALLS][3])
{
    /* Pastel, pairwise distinct, so that inside-out views in different directions differ
     * (the prior's buckets need that); a wooden floor and a white ceiling. */
    static const float w[WORLD_WALLS][3] = {
        {0.86f, 0.74f, 0.70f},   /* -x */
        {0.70f, 0.76f, 0.88f},   /* +x */
        {0.74f, 0.86f, 0.72f},   /* -y */
        {0.88f, 0.86f, 0.66f},   /* +y */
        {0.55f, 0.42f, 0.30f},   /* floor */
        {0.96f, 0.96f, 0.96f},   /* ceiling */
    };
    memcpy(walls, w, sizeof w);
}

static const char *const shape_names[WORLD_SHAPE_COUNT] = {
    "sphere", "box", "rounded_box", "torus", "cylinder", "cone", "capsule", "plane", "room",
};

const char *world_shape_name(world_shape shape)
{
    return (unsigned)shape < WORLD_SHAPE_COUNT ? shape_names[shape] : "unknown";
}

void world_primitive_init(world_primitive *p, world_shape shape)
{
    memset(p, 0, sizeof *p);
    p->shape = shape;
    p->rotation[0] = 1.0f;
    memcpy(p->color, world_default_color, sizeof p->color);
}

/* ---------------------------------------------------------------------------------- */
/* Frames                                                                              */

/* Rotation matrix (row-major, local to world) of the quaternion (w, x, y, z), normalised
 * here so a slightly denormalised input still gives an orthonormal matrix; the zero
 * quaternion (rejected by the loaders) falls back to the identity. */
static void quat_matrix(const float q[4], double R[9])
{
    double w = q[0], x = q[1], y = q[2], z = q[3];
    double n2 = w * w + x * x + y * y + z * z;
    if (!(n2 > 0.0)) {
        w = 1.0;
        x = y = z = 0.0;
        n2 = 1.0;
    }
    double s = 2.0 / n2;
    R[0] = 1.0 - s * (y * y + z * z);
    R[1] = s * (x * y - w * z);
    R[2] = s * (x * z + w * y);
    R[3] = s * (x * y + w * z);
    R[4] = 1.0 - s * (x * x + z * z);
    R[5] = s * (y * z - w * x);
    R[6] = s * (x * z - w * y);
    R[7] = s * (y * z + w * x);
    R[8] = 1.0 - s * (x * x + y * y);
}

/* v_local = R^T v (rows of R^T are the columns of R). */
static void to_local(const double R[9], const double v[3], double out[3])
{
    for (int c = 0; c < 3; c++)
        out[c] = R[c] * v[0] + R[3 + c] * v[1] + R[6 + c] * v[2];
}

static void to_world(const double R[9], const double v[3], double out[3])
{
    for (int r = 0; r < 3; r++)
        out[r] = R[3 * r] * v[0] + R[3 * r + 1] * v[1] + R[3 * r + 2] * v[2];
}

static double dot3(const double a[3], const double b[3])
{
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

static double len3(const double a[3]) { return sqrt(dot3(a, a)); }

static double clampd(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* Radius of a ball around the local origin containing the primitive (0: unbounded). */
static double bound_radius(const world_primitive *p)
{
    const float *s = p->size;
    switch (p->shape) {
    case WORLD_SPHERE: return s[0];
    case WORLD_BOX:
    case WORLD_ROUNDED_BOX: return sqrt((double)s[0] * s[0] + (double)s[1] * s[1] + (double)s[2] * s[2]);
    case WORLD_TORUS: return (double)s[0] + s[1];
    /* Cylinder and cone: the farthest points are on the rim of a cap (the cone's apex at
     * distance h is never farther than its base rim at sqrt(R^2 + h^2)). */
    case WORLD_CYLINDER:
    case WORLD_CONE: return sqrt((double)s[0] * s[0] + (double)s[2] * s[2]);
    case WORLD_CAPSULE: return (double)s[2] + s[0];
    default: return 0.0;
    }
}

/* ---------------------------------------------------------------------------------- */
/* Signed distances in the local frame                                                 */

static double sdf_box(const double p[3], const double h[3])
{
    /* q > 0 on the axes where p is outside the slab: the outside distance is the length of
     * the positive part; inside, the distance to the nearest face is -max(q). */
    double q[3], out2 = 0.0, m = -DBL_MAX;
    for (int a = 0; a < 3; a++) {
        q[a] = fabs(p[a]) - h[a];
        if (q[a] > 0)
            out2 += q[a] * q[a];
        if (q[a] > m)
            m = q[a];
    }
    return sqrt(out2) + (m < 0 ? m : 0.0);
}

static double sdf_rounded_box(const double p[3], const world_primitive *pr)
{
    /* The rounded box of half extents h and edge radius r is the inner box h - r dilated by
     * r, so its distance is the inner box's minus r (exact). */
    double r = pr->rounding, h[3];
    for (int a = 0; a < 3; a++)
        h[a] = (double)pr->size[a] - r;
    return sdf_box(p, h) - r;
}

static double sdf_torus(const double p[3], double R, double r)
{
    double rho = sqrt(p[0] * p[0] + p[1] * p[1]);
    double qx = rho - R;
    return sqrt(qx * qx + p[2] * p[2]) - r;
}

static double sdf_cylinder(const double p[3], double r, double h)
{
    double dx = sqrt(p[0] * p[0] + p[1] * p[1]) - r, dz = fabs(p[2]) - h;
    double inside = dx > dz ? dx : dz;
    double ox = dx > 0 ? dx : 0.0, oz = dz > 0 ? dz : 0.0;
    return (inside < 0 ? inside : 0.0) + sqrt(ox * ox + oz * oz);
}

/* Distance from (px, pz) to the segment (ax, az)-(bx, bz) in the (rho, z) half-plane. */
static double seg_dist2(double px, double pz, double ax, double az, double bx, double bz)
{
    double ex = bx - ax, ez = bz - az;
    double u = clampd(((px - ax) * ex + (pz - az) * ez) / (ex * ex + ez * ez), 0.0, 1.0);
    double dx = px - ax - u * ex, dz = pz - az - u * ez;
    return dx * dx + dz * dz;
}

static double sdf_cone(const double p[3], double R, double h)
{
    /* The cone is the revolution of the triangle (0,-h), (R,-h), (0,h) in the (rho, z)
     * half-plane; the axis edge is interior, so the distance is to the base and the slant
     * segment, negative inside the triangle (exact). */
    double rho = sqrt(p[0] * p[0] + p[1] * p[1]), z = p[2];
    if (!(h > 0) || !(R > 0))
        return sqrt(rho * rho + z * z);   /* degenerate: a point-like set; keep it finite */
    double d2 = seg_dist2(rho, z, 0.0, -h, R, -h);
    double d2s = seg_dist2(rho, z, R, -h, 0.0, h);
    if (d2s < d2)
        d2 = d2s;
    int inside = z >= -h && rho * 2.0 * h <= R * (h - z);
    return inside ? -sqrt(d2) : sqrt(d2);
}

static double sdf_capsule(const double p[3], double r, double h)
{
    double c = clampd(p[2], -h, h);
    double dz = p[2] - c;
    return sqrt(p[0] * p[0] + p[1] * p[1] + dz * dz) - r;
}

static double sdf_local(const world_primitive *pr, const double p[3])
{
    const float *s = pr->size;
    double h[3] = {s[0], s[1], s[2]};
    switch (pr->shape) {
    case WORLD_SPHERE: return len3(p) - s[0];
    case WORLD_BOX: return sdf_box(p, h);
    case WORLD_ROUNDED_BOX: return sdf_rounded_box(p, pr);
    case WORLD_TORUS: return sdf_torus(p, s[0], s[1]);
    case WORLD_CYLINDER: return sdf_cylinder(p, s[0], s[2]);
    case WORLD_CONE: return sdf_cone(p, s[0], s[2]);
    case WORLD_CAPSULE: return sdf_capsule(p, s[0], s[2]);
    case WORLD_PLANE: return p[2];
    case WORLD_ROOM: return -sdf_box(p, h);   /* the solid is everything outside the box */
    default: return INFINITY;
    }
}

static double prim_sdf(const world_primitive *pr, const double pw[3])
{
    double R[9], d[3], pl[3];
    quat_matrix(pr->rotation, R);
    for (int a = 0; a < 3; a++)
        d[a] = pw[a] - pr->position[a];
    to_local(R, d, pl);
    return sdf_local(pr, pl);
}

float world_scene_sdf(const world_scene *scene, const float p[3])
{
    double pw[3] = {p[0], p[1], p[2]}, best = INFINITY;
    for (size_t i = 0; i < scene->n; i++) {
        double d = prim_sdf(&scene->prims[i], pw);
        if (d < best)
            best = d;
    }
    return (float)best;
}

/* ---------------------------------------------------------------------------------- */
/* Analytic gradients (unit outward normals) of the traced shapes' SDFs                */

static void grad_rounded_box(const double p[3], const world_primitive *pr, double n[3])
{
    /* Outside the inner box the SDF is |max(q,0)| - r: its gradient is the unit vector of
     * the positive part with the signs of p. Inside (only reachable with r = 0) it is the
     * normal of the nearest face. */
    double q[3], out2 = 0.0;
    int amax = 0;
    for (int a = 0; a < 3; a++) {
        q[a] = fabs(p[a]) - ((double)pr->size[a] - pr->rounding);
        if (q[a] > q[amax])
            amax = a;
        if (q[a] > 0)
            out2 += q[a] * q[a];
    }
    if (out2 > 0) {
        double inv = 1.0 / sqrt(out2);
        for (int a = 0; a < 3; a++)
            n[a] = (q[a] > 0 ? q[a] * inv : 0.0) * (p[a] < 0 ? -1.0 : 1.0);
    } else {
        n[0] = n[1] = n[2] = 0.0;
        n[amax] = p[amax] < 0 ? -1.0 : 1.0;
    }
}

static void grad_torus(const double p[3], double R, double n[3])
{
    /* SDF = |(rho - R, z)| - r: the gradient is the unit vector from the nearest point of
     * the ring circle, (rho - R) along the radial direction plus z along the axis. */
    double rho = sqrt(p[0] * p[0] + p[1] * p[1]);
    double ux = 1.0, uy = 0.0;   /* radial direction; arbitrary on the axis */
    if (rho > 0) {
        ux = p[0] / rho;
        uy = p[1] / rho;
    }
    double qx = rho - R, qz = p[2], L = sqrt(qx * qx + qz * qz);
    if (!(L > 0)) {
        n[0] = 0, n[1] = 0, n[2] = 1;
        return;
    }
    n[0] = qx * ux / L;
    n[1] = qx * uy / L;
    n[2] = qz / L;
}

/* ---------------------------------------------------------------------------------- */
/* Ray intervals of the convex shapes                                                  */

/* A ray's intersection with a convex solid is one interval [t0, t1]; f0 and f1 name the
 * surface pieces where it enters and leaves (faces 0..5 = -x, +x, -y, +y, -z, +z of a
 * slab set; FACE_SIDE the curved side). Empty: t0 > t1. */
enum { FACE_SIDE = 6, FACE_NONE = 7 };

typedef struct interval {
    double t0, t1;
    int f0, f1;
} interval;

static const interval everything = {-INFINITY, INFINITY, FACE_NONE, FACE_NONE};

static void intersect_into(interval *a, double t0, int f0, double t1, int f1)
{
    if (t0 > a->t0) {
        a->t0 = t0;
        a->f0 = f0;
    }
    if (t1 < a->t1) {
        a->t1 = t1;
        a->f1 = f1;
    }
}

/* Slab |o_a + t d_a| <= h_a on the axes in `axes` (bit a set): each is the interval between
 * the planes -h_a and +h_a, entering through the plane facing the ray. */
static void slabs(const double o[3], const double d[3], const double h[3], int axes,
                  interval *iv)
{
    for (int a = 0; a < 3; a++) {
        if (!(axes & (1 << a)))
            continue;
        if (d[a] == 0.0) {
            if (fabs(o[a]) > h[a]) {
                iv->t0 = INFINITY;   /* parallel and outside: empty */
                iv->t1 = -INFINITY;
                return;
            }
            continue;
        }
        double inv = 1.0 / d[a];
        double tm = (-h[a] - o[a]) * inv, tp = (h[a] - o[a]) * inv;
        if (d[a] > 0)
            intersect_into(iv, tm, 2 * a, tp, 2 * a + 1);
        else
            intersect_into(iv, tp, 2 * a + 1, tm, 2 * a);
    }
}

/* Roots of a t^2 + b t + c = 0 with a != 0 and b^2 >= 4ac, in increasing order, in the
 * form that avoids cancellation: q = -(b + sign(b) sqrt(disc)) / 2, roots q/a and c/q. */
static void quadratic_roots(double a, double b, double c, double disc, double *r0, double *r1)
{
    double s = sqrt(disc);
    double q = -0.5 * (b + (b >= 0 ? s : -s));
    double x0 = q / a, x1 = q != 0.0 ? c / q : x0;
    if (x0 > x1) {
        double tmp = x0;
        x0 = x1;
        x1 = tmp;
    }
    *r0 = x0;
    *r1 = x1;
}

static interval ival_sphere(const double o[3], const double d[3], const double centre[3],
                            double r)
{
    /* |o - c + t d|^2 = r^2 with |d| = 1: t^2 + 2 b t + c = 0, b = (o - c).d. */
    double oc[3] = {o[0] - centre[0], o[1] - centre[1], o[2] - centre[2]};
    double b = dot3(oc, d), c = dot3(oc, oc) - r * r;
    double disc = b * b - c;
    interval iv = {INFINITY, -INFINITY, FACE_SIDE, FACE_SIDE};
    if (disc < 0)
        return iv;
    quadratic_roots(1.0, 2.0 * b, c, 4.0 * disc, &iv.t0, &iv.t1);
    return iv;
}

/* Infinite cylinder x^2 + y^2 <= r^2 (axis z): (dx^2+dy^2) t^2 + 2 (o.d)_xy t + |o|_xy^2 - r^2. */
static void ival_cylinder_side(const double o[3], const double d[3], double r, interval *iv)
{
    double a = d[0] * d[0] + d[1] * d[1];
    double b = o[0] * d[0] + o[1] * d[1];
    double c = o[0] * o[0] + o[1] * o[1] - r * r;
    if (a < 1e-300) {   /* parallel to the axis: all or nothing */
        if (c > 0) {
            iv->t0 = INFINITY;
            iv->t1 = -INFINITY;
        }
        return;
    }
    double disc = b * b - a * c;
    if (disc < 0) {
        iv->t0 = INFINITY;
        iv->t1 = -INFINITY;
        return;
    }
    double r0, r1;
    quadratic_roots(a, 2.0 * b, c, 4.0 * disc, &r0, &r1);
    intersect_into(iv, r0, FACE_SIDE, r1, FACE_SIDE);
}

/* Cone with base radius R at z = -h and apex at z = +h. With k = R / (2h) and w = h - z,
 * the double cone is f = x^2 + y^2 - k^2 w^2 <= 0; along the ray w = w0 - dz t with
 * w0 = h - oz, so f(t) = A t^2 + B t + C with
 *   A = dx^2 + dy^2 - k^2 dz^2,  B = 2 (ox dx + oy dy) + 2 k^2 w0 dz,  C = ox^2 + oy^2 - k^2 w0^2.
 * Of {f <= 0} only the lower nappe (w >= 0) is the solid; the slab |z| <= h, intersected
 * afterwards, removes the upper nappe wherever the set below still contains part of it. */
static void ival_cone_side(const double o[3], const double d[3], double R, double h,
                           interval *iv)
{
    double k = R / (2.0 * h), k2 = k * k, w0 = h - o[2];
    double A = d[0] * d[0] + d[1] * d[1] - k2 * d[2] * d[2];
    double B = 2.0 * (o[0] * d[0] + o[1] * d[1]) + 2.0 * k2 * w0 * d[2];
    double C = o[0] * o[0] + o[1] * o[1] - k2 * w0 * w0;
    if (fabs(A) < 1e-12) {
        /* Parallel to a generator: f is linear (a half-line, within one nappe). */
        if (fabs(B) < 1e-300) {
            if (C > 0) {
                iv->t0 = INFINITY;
                iv->t1 = -INFINITY;
            }
            return;
        }
        double r = -C / B;
        if (B > 0)
            intersect_into(iv, -INFINITY, FACE_NONE, r, FACE_SIDE);
        else
            intersect_into(iv, r, FACE_SIDE, INFINITY, FACE_NONE);
        return;
    }
    double disc = B * B - 4.0 * A * C;
    if (A > 0) {
        /* Shallower than the cone: f <= 0 between the roots, inside one nappe. */
        if (disc < 0) {
            iv->t0 = INFINITY;
            iv->t1 = -INFINITY;
            return;
        }
        double r0, r1;
        quadratic_roots(A, B, C, disc, &r0, &r1);
        intersect_into(iv, r0, FACE_SIDE, r1, FACE_SIDE);
        return;
    }
    /* Steeper than the cone (dz != 0): f <= 0 outside the roots, one half-line per nappe.
     * z grows with t when dz > 0, so the lower nappe is the earlier half-line. A negative
     * discriminant can only be rounding for a line through the apex: keep the whole line
     * and let the slab decide. */
    if (disc < 0)
        return;
    double r0, r1;
    quadratic_roots(A, B, C, disc, &r0, &r1);
    if (d[2] > 0)
        intersect_into(iv, -INFINITY, FACE_NONE, r0, FACE_SIDE);
    else
        intersect_into(iv, r1, FACE_SIDE, INFINITY, FACE_NONE);
}

/* Outward unit normal of a convex shape at local point p on surface piece `face`. */
static void face_normal(const world_primitive *pr, int face, const double p[3], double n[3])
{
    n[0] = n[1] = n[2] = 0.0;
    if (face < 6) {
        n[face / 2] = (face & 1) ? 1.0 : -1.0;
        return;
    }
    double rho2 = p[0] * p[0] + p[1] * p[1];
    switch (pr->shape) {
    case WORLD_SPHERE: {
        double L = len3(p);
        if (L > 0)
            for (int a = 0; a < 3; a++)
                n[a] = p[a] / L;
        else
            n[2] = 1.0;
        return;
    }
    case WORLD_CYLINDER:
        if (rho2 > 0) {
            double L = sqrt(rho2);
            n[0] = p[0] / L;
            n[1] = p[1] / L;
        } else {
            n[0] = 1.0;
        }
        return;
    case WORLD_CONE: {
        /* grad f = (2x, 2y, 2 k^2 (h - z)): outward and upward on the lower nappe. */
        double h = pr->size[2], k = pr->size[0] / (2.0 * h);
        double g[3] = {p[0], p[1], k * k * (h - p[2])}, L = len3(g);
        if (L > 0)
            for (int a = 0; a < 3; a++)
                n[a] = g[a] / L;
        else
            n[2] = 1.0;   /* the apex */
        return;
    }
    case WORLD_CAPSULE: {
        /* From the nearest point of the axis segment. */
        double h = pr->size[2];
        double q[3] = {p[0], p[1], p[2] - clampd(p[2], -h, h)}, L = len3(q);
        if (L > 0)
            for (int a = 0; a < 3; a++)
                n[a] = q[a] / L;
        else
            n[2] = 1.0;
        return;
    }
    default:
        n[2] = 1.0;
        return;
    }
}

/* Picks the first surface crossing of [t0, t1] inside [tmin, tmax]: the entry if it is in
 * range, else the exit (the ray starts inside the solid). */
static int pick(const interval *iv, double tmin, double tmax, double *t, int *face)
{
    if (!(iv->t0 <= iv->t1))
        return 0;
    if (iv->t0 >= tmin && iv->t0 <= tmax && iv->f0 != FACE_NONE) {
        *t = iv->t0;
        *face = iv->f0;
        return 1;
    }
    if (iv->t1 >= tmin && iv->t1 <= tmax && iv->f1 != FACE_NONE) {
        *t = iv->t1;
        *face = iv->f1;
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Sphere tracing (rounded box, torus)                                                 */

enum { TRACE_MAX_STEPS = 400 };

/* Marches from t_start to t_end on the exact SDF: stepping by |sdf| never crosses the
 * surface (the ball of that radius is free of it), so the first point with |sdf| < eps is
 * the first crossing up to eps. eps is 1e-6 of the shape's bounding radius. Rays that
 * graze the surface converge slowly; after TRACE_MAX_STEPS a point still within 100 eps is
 * taken as a hit (a silhouette pixel either way), anything else as a miss. */
static int trace(const world_primitive *pr, const double o[3], const double d[3],
                 double t_start, double t_end, double eps, double *t_hit)
{
    double t = t_start, best = INFINITY, t_best = t_start;
    for (int i = 0; i < TRACE_MAX_STEPS && t <= t_end; i++) {
        double p[3] = {o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2]};
        double s = fabs(sdf_local(pr, p));
        if (s < eps) {
            *t_hit = t;
            return 1;
        }
        if (s < best) {
            best = s;
            t_best = t;
        }
        t += s;
    }
    if (best < 100.0 * eps && t_best <= t_end) {
        *t_hit = t_best;
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* One primitive                                                                       */

/* Nearest crossing of primitive pr with t in [tmin, tmax] for the local ray o + t d.
 * Fills the local outward normal (rooms: into the room) and the room wall index. */
static int hit_local(const world_primitive *pr, const double o[3], const double d[3],
                     double tmin, double tmax, double *t, double n[3], int *wall)
{
    const float *s = pr->size;
    double h[3] = {s[0], s[1], s[2]};
    interval iv = everything;
    int face;
    *wall = -1;

    /* Bounding-ball early-out for the finite shapes: skip when the ray starts outside the
     * ball and misses it or moves away from it, or when the ball lies past tmax. */
    double rb = bound_radius(pr);
    double b_t0 = tmin, b_t1 = tmax;
    if (rb > 0) {
        const double zero[3] = {0, 0, 0};
        interval bs = ival_sphere(o, d, zero, rb * (1.0 + 1e-9) + 1e-12);
        if (!(bs.t0 <= bs.t1) || bs.t1 < tmin || bs.t0 > tmax)
            return 0;
        b_t0 = bs.t0 > tmin ? bs.t0 : tmin;
        b_t1 = bs.t1 < tmax ? bs.t1 : tmax;
    }

    switch (pr->shape) {
    case WORLD_SPHERE: {
        const double zero[3] = {0, 0, 0};
        iv = ival_sphere(o, d, zero, s[0]);
        break;
    }
    case WORLD_BOX:
        slabs(o, d, h, 7, &iv);
        break;
    case WORLD_CYLINDER:
        ival_cylinder_side(o, d, s[0], &iv);
        slabs(o, d, h, 4, &iv);
        break;
    case WORLD_CONE:
        if (!(s[2] > 0) || !(s[0] > 0))
            return 0;
        ival_cone_side(o, d, s[0], s[2], &iv);
        slabs(o, d, h, 4, &iv);
        break;
    case WORLD_CAPSULE: {
        /* The capsule is convex and is the union of the finite cylinder and the two end
         * balls, which overlap along the ray wherever it crosses more than one: the union
         * of their intervals is [min entry, max exit]. The normal comes from the point. */
        interval cyl = everything;
        ival_cylinder_side(o, d, s[0], &cyl);
        slabs(o, d, h, 4, &cyl);
        const double c0[3] = {0, 0, -h[2]}, c1[3] = {0, 0, h[2]};
        interval parts[3] = {cyl, ival_sphere(o, d, c0, s[0]), ival_sphere(o, d, c1, s[0])};
        iv.t0 = INFINITY;
        iv.t1 = -INFINITY;
        for (int k = 0; k < 3; k++) {
            if (!(parts[k].t0 <= parts[k].t1))
                continue;
            if (parts[k].t0 < iv.t0)
                iv.t0 = parts[k].t0;
            if (parts[k].t1 > iv.t1)
                iv.t1 = parts[k].t1;
        }
        iv.f0 = iv.f1 = FACE_SIDE;
        break;
    }
    case WORLD_PLANE: {
        if (d[2] == 0.0)
            return 0;
        double tp = -o[2] / d[2];
        if (!(tp >= tmin && tp <= tmax))
            return 0;
        *t = tp;
        n[0] = n[1] = 0.0;
        n[2] = 1.0;
        return 1;
    }
    case WORLD_ROOM: {
        slabs(o, d, h, 7, &iv);
        if (!pick(&iv, tmin, tmax, t, &face) || face >= 6)
            return 0;
        /* Into the room: against the box's outward normal of that wall. */
        n[0] = n[1] = n[2] = 0.0;
        n[face / 2] = (face & 1) ? -1.0 : 1.0;
        *wall = face;
        return 1;
    }
    case WORLD_ROUNDED_BOX:
    case WORLD_TORUS: {
        double t0 = b_t0, t1 = b_t1;
        if (pr->shape == WORLD_ROUNDED_BOX) {
            /* The rounded box lies inside its box: a tighter start than the ball. */
            interval bx = everything;
            slabs(o, d, h, 7, &bx);
            if (!(bx.t0 <= bx.t1))
                return 0;
            if (bx.t0 > t0)
                t0 = bx.t0;
            if (bx.t1 < t1)
                t1 = bx.t1;
            if (t0 > t1)
                return 0;
        }
        if (!trace(pr, o, d, t0, t1, 1e-6 * rb, t))
            return 0;
        double p[3] = {o[0] + *t * d[0], o[1] + *t * d[1], o[2] + *t * d[2]};
        if (pr->shape == WORLD_TORUS)
            grad_torus(p, s[0], n);
        else
            grad_rounded_box(p, pr, n);
        return 1;
    }
    default:
        return 0;
    }
    if (!pick(&iv, tmin, tmax, t, &face))
        return 0;
    double p[3] = {o[0] + *t * d[0], o[1] + *t * d[1], o[2] + *t * d[2]};
    face_normal(pr, face, p, n);
    return 1;
}

int world_scene_intersect(const world_scene *scene, const float origin[3], const float dir[3],
                          float t_min, float t_max, float *t, float normal[3], float color[3])
{
    double best = t_max, nb[3] = {0, 0, 1};
    const float *cb = NULL;
    int found = 0;
    for (size_t i = 0; i < scene->n; i++) {
        const world_primitive *pr = &scene->prims[i];
        double R[9], rel[3], o[3], d[3], dw[3] = {dir[0], dir[1], dir[2]}, th, nl[3];
        int wall;
        quat_matrix(pr->rotation, R);
        for (int a = 0; a < 3; a++)
            rel[a] = (double)origin[a] - pr->position[a];
        to_local(R, rel, o);
        to_local(R, dw, d);
        if (!hit_local(pr, o, d, t_min, best, &th, nl, &wall))
            continue;
        best = th;
        to_world(R, nl, nb);
        cb = wall >= 0 ? pr->wall_color[wall] : pr->color;
        found = 1;
    }
    if (!found)
        return 0;
    double L = len3(nb);
    if (!(L > 0))
        L = 1.0;
    *t = (float)best;
    for (int a = 0; a < 3; a++) {
        normal[a] = (float)(nb[a] / L);
        color[a] = cb[a];
    }
    return 1;
}

/* ---------------------------------------------------------------------------------- */
/* Bounding boxes                                                                      */

int world_primitive_bounds(const world_primitive *p, double lo[3], double hi[3])
{
    if (p->shape == WORLD_PLANE || p->shape == WORLD_ROOM || p->shape >= WORLD_SHAPE_COUNT)
        return 0;
    double R[9], ext[3] = {0, 0, 0}, c[3] = {p->position[0], p->position[1], p->position[2]};
    quat_matrix(p->rotation, R);
    double s[3] = {p->size[0], p->size[1], p->size[2]};
    /* The world axis i sees the local axis z as a_i = R[i][2]; a disc of radius r normal to a
     * spans r sqrt(1 - a_i^2) along axis i. */
    switch (p->shape) {
    case WORLD_SPHERE:
        ext[0] = ext[1] = ext[2] = s[0];
        break;
    case WORLD_BOX:
    case WORLD_ROUNDED_BOX: {
        /* A box's extent along axis i is its support function sum_j |R_ij| h_j; the rounded
         * box is the inner box h - r dilated by a ball of radius r, which adds r. */
        double r = p->shape == WORLD_ROUNDED_BOX ? p->rounding : 0.0;
        for (int i = 0; i < 3; i++)
            ext[i] = fabs(R[3 * i]) * (s[0] - r) + fabs(R[3 * i + 1]) * (s[1] - r) +
                     fabs(R[3 * i + 2]) * (s[2] - r) + r;
        break;
    }
    case WORLD_TORUS:
        for (int i = 0; i < 3; i++) {
            double a = R[3 * i + 2];
            ext[i] = s[0] * sqrt(fmax(0.0, 1.0 - a * a)) + s[1];
        }
        break;
    case WORLD_CYLINDER:
        for (int i = 0; i < 3; i++) {
            double a = R[3 * i + 2];
            ext[i] = s[2] * fabs(a) + s[0] * sqrt(fmax(0.0, 1.0 - a * a));
        }
        break;
    case WORLD_CAPSULE:
        for (int i = 0; i < 3; i++)
            ext[i] = s[2] * fabs(R[3 * i + 2]) + s[0];
        break;
    case WORLD_CONE:
        /* Hull of the apex c + h a and the base disc (centre c - h a, radius R). */
        for (int i = 0; i < 3; i++) {
            double a = R[3 * i + 2], apex = c[i] + s[2] * a, base = c[i] - s[2] * a;
            double r = s[0] * sqrt(fmax(0.0, 1.0 - a * a));
            lo[i] = fmin(apex, base - r);
            hi[i] = fmax(apex, base + r);
        }
        return 1;
    default:
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        lo[i] = c[i] - ext[i];
        hi[i] = c[i] + ext[i];
    }
    return 1;
}

/* Farthest distance from q to a circle (centre m, unit normal a, radius r): with the offset
 * u = m - q split into its part along a and the rest w, a circle point m + r e (e unit,
 * e . a = 0) is at |u + r e|^2 = (u.a)^2 + |w|^2 + 2 r w.e + r^2, largest for e along w:
 * sqrt((u.a)^2 + (|w| + r)^2). */
static double circle_farthest(const double m[3], const double a[3], double r, const double q[3])
{
    double u[3] = {m[0] - q[0], m[1] - q[1], m[2] - q[2]}, ua = dot3(u, a);
    double w2 = dot3(u, u) - ua * ua, w = sqrt(w2 > 0 ? w2 : 0.0);
    return sqrt(ua * ua + (w + r) * (w + r));
}

double world_primitive_farthest(const world_primitive *p, const double c[3])
{
    double R[9], pos[3] = {p->position[0], p->position[1], p->position[2]};
    quat_matrix(p->rotation, R);
    const double axis[3] = {R[2], R[5], R[8]};   /* the local z axis in the world */
    const double s[3] = {p->size[0], p->size[1], p->size[2]};
    double best = 0.0;
    switch (p->shape) {
    case WORLD_SPHERE: {
        double u[3] = {pos[0] - c[0], pos[1] - c[1], pos[2] - c[2]};
        return len3(u) + s[0];
    }
    case WORLD_BOX:
    case WORLD_ROUNDED_BOX: {
        /* A convex polytope's farthest point is a vertex; the rounded box is the inner box
         * dilated by r, so its farthest distance is the inner box's plus r. */
        double r = p->shape == WORLD_ROUNDED_BOX ? p->rounding : 0.0;
        for (int k = 0; k < 8; k++) {
            double l[3] = {(k & 1 ? 1 : -1) * (s[0] - r), (k & 2 ? 1 : -1) * (s[1] - r),
                           (k & 4 ? 1 : -1) * (s[2] - r)}, w[3];
            to_world(R, l, w);
            double u[3] = {pos[0] + w[0] - c[0], pos[1] + w[1] - c[1], pos[2] + w[2] - c[2]};
            best = fmax(best, len3(u) + r);
        }
        return best;
    }
    case WORLD_TORUS:   /* the ring circle dilated by the tube radius */
        return circle_farthest(pos, axis, s[0], c) + s[1];
    case WORLD_CYLINDER:
    case WORLD_CONE: {
        /* Farthest on a rim (or the cone's apex): a convex body of revolution's farthest
         * point lies on its extreme circles or apex. */
        double lo[3] = {pos[0] - s[2] * axis[0], pos[1] - s[2] * axis[1], pos[2] - s[2] * axis[2]};
        double hi[3] = {pos[0] + s[2] * axis[0], pos[1] + s[2] * axis[1], pos[2] + s[2] * axis[2]};
        best = circle_farthest(lo, axis, s[0], c);
        return fmax(best, circle_farthest(hi, axis, p->shape == WORLD_CONE ? 0.0 : s[0], c));
    }
    case WORLD_CAPSULE: {   /* a segment's farthest point is an end */
        for (int e = -1; e <= 1; e += 2) {
            double u[3];
            for (int a = 0; a < 3; a++)
                u[a] = pos[a] + e * s[2] * axis[a] - c[a];
            best = fmax(best, len3(u) + s[0]);
        }
        return best;
    }
    default:
        return INFINITY;
    }
}

/* ---------------------------------------------------------------------------------- */
/* Text                                                                                */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap <= b->len + (size_t)n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* %.9g round-trips every float; -0 is written as 0 so that equal scenes give equal text. */
static void sb_floats(sbuf *b, const char *key, const float *v, int n)
{
    sb_printf(b, " %s", key);
    for (int i = 0; i < n; i++)
        sb_printf(b, " %.9g", (double)(v[i] + 0.0f));
}

char *world_scene_canonical(const world_scene *scene)
{
    /* Geometry, colours and the background only: the name is not part of the scene, so
     * prompts that differ by a synonym ("ball" / "sphere") share a canonical text. */
    sbuf b = {0};
    sb_printf(&b, "world_scene v1 room %d n %zu", scene->is_room ? 1 : 0, scene->n);
    sb_floats(&b, "background", scene->background, 3);
    sb_printf(&b, "\n");
    for (size_t i = 0; i < scene->n; i++) {
        const world_primitive *p = &scene->prims[i];
        sb_printf(&b, "%s", world_shape_name(p->shape));
        sb_floats(&b, "color", p->color, 3);
        sb_floats(&b, "position", p->position, 3);
        sb_floats(&b, "rotation", p->rotation, 4);
        sb_floats(&b, "size", p->size, 3);
        sb_floats(&b, "rounding", &p->rounding, 1);
        sb_floats(&b, "walls", &p->wall_color[0][0], 3 * WORLD_WALLS);
        sb_printf(&b, "\n");
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

static void print_vec(FILE *out, const float *v, int n)
{
    fputc('(', out);
    for (int i = 0; i < n; i++)
        fprintf(out, "%s%.4g", i ? ", " : "", (double)(v[i] + 0.0f));
    fputc(')', out);
}

static const char *color_label(const float c[3])
{
    for (size_t i = 0; i < N_COLORS; i++)
        if (!memcmp(c, colors[i].rgb, sizeof colors[i].rgb))
            return colors[i].name;
    return NULL;
}

void world_scene_print(const world_scene *scene, FILE *out)
{
    fprintf(out, "scene: %s\n", scene->name ? scene->name : "(unnamed)");
    fprintf(out, "  kind: %s\n", scene->is_room ? "room (inside-out cameras)" : "object (orbit cameras)");
    fprintf(out, "  background: ");
    print_vec(out, scene->background, 3);
    fprintf(out, "\n  primitives: %zu\n", scene->n);
    static const char *const wall_names[WORLD_WALLS] = {"-x", "+x", "-y", "+y", "floor", "ceiling"};
    for (size_t i = 0; i < scene->n; i++) {
        const world_primitive *p = &scene->prims[i];
        const float *s = p->size;
        fprintf(out, "  [%zu] %s at ", i, world_shape_name(p->shape));
        print_vec(out, p->position, 3);
        if (p->rotation[0] != 1.0f || p->rotation[1] != 0.0f || p->rotation[2] != 0.0f ||
            p->rotation[3] != 0.0f) {
            fprintf(out, " rotation ");
            print_vec(out, p->rotation, 4);
        }
        switch (p->shape) {
        case WORLD_SPHERE: fprintf(out, " radius %.4g", (double)s[0]); break;
        case WORLD_BOX: fprintf(out, " half extents "); print_vec(out, s, 3); break;
        case WORLD_ROUNDED_BOX:
            fprintf(out, " half extents ");
            print_vec(out, s, 3);
            fprintf(out, " rounding %.4g", (double)p->rounding);
            break;
        case WORLD_TORUS:
            fprintf(out, " ring radius %.4g tube radius %.4g", (double)s[0], (double)s[1]);
            break;
        case WORLD_CYLINDER:
        case WORLD_CONE:
            fprintf(out, " radius %.4g half height %.4g", (double)s[0], (double)s[2]);
            break;
        case WORLD_CAPSULE:
            fprintf(out, " radius %.4g half length %.4g", (double)s[0], (double)s[2]);
            break;
        case WORLD_ROOM: fprintf(out, " half extents "); print_vec(out, s, 3); break;
        default: break;
        }
        if (p->shape == WORLD_ROOM) {
            fprintf(out, "\n");
            for (int w = 0; w < WORLD_WALLS; w++) {
                const char *name = color_label(p->wall_color[w]);
                fprintf(out, "      %-7s ", wall_names[w]);
                print_vec(out, p->wall_color[w], 3);
                fprintf(out, "%s%s%s\n", name ? " " : "", name ? name : "", "");
            }
            continue;
        }
        const char *name = color_label(p->color);
        fprintf(out, " colour ");
        print_vec(out, p->color, 3);
        if (name)
            fprintf(out, " %s", name);
        fprintf(out, "\n");
    }
}

void world_scene_free(world_scene *scene)
{
    if (!scene)
        return;
    free(scene->prims);
    free(scene->name);
    scene->prims = NULL;
    scene->name = NULL;
    scene->n = 0;
}
