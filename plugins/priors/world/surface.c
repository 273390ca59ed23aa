/* plugins/priors/world/surface.c — uniform points on the visible surface of a world scene
 * (contract: surface.h). Every primitive's surface is cut into patches with a closed-form
 * area and an exact uniform sampler in the primitive's local frame (rectangles, discs,
 * sphere and cylinder pieces, the cone's slant, the torus by rejection); a candidate picks
 * a patch by area, a point in it, and is kept when no other primitive holds it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "surface.h"

#define PI 3.14159265358979323846

typedef enum patch_kind {
    P_RECT,        /* a[0] axis, a[1] coordinate on it, a[2], a[3] half extents along u, v */
    P_EDGE,        /* rounded-box edge, a quarter cylinder: a[0] axis, a[1] half length,
                      a[2], a[3] centre on u, v, a[4] radius, a[5], a[6] sides (+-1) on u, v */
    P_CORNER,      /* rounded-box corner, an eighth sphere: a[0..2] centre, a[3] radius,
                      a[4] the corner's sides as bits (1: + on that axis) */
    P_SPHERE,      /* a[0] radius, a[1] centre z */
    P_CAPSULE,     /* the capsule's two half balls as one sphere: a[0] radius, a[1] half length */
    P_TORUS,       /* a[0] ring radius R, a[1] tube radius r (proposal area 4 pi^2 r (R + r)) */
    P_CYL_SIDE,    /* a[0] radius, a[1] half height */
    P_DISC,        /* a[0] radius, a[1] z */
    P_CONE_SIDE    /* a[0] base radius, a[1] half height */
} patch_kind;

typedef struct patch {
    size_t prim;
    patch_kind kind;
    double area;   /* the proposal's area (equal to the true area except for the torus) */
    double a[8];
} patch;

typedef struct patch_list {
    patch *p;
    size_t n, cap;
    int has_plane;
} patch_list;

static int add(patch_list *l, size_t prim, patch_kind kind, double area, double a0, double a1,
               double a2, double a3, double a4, double a5, double a6)
{
    if (!(area > 0))
        return 0;   /* a degenerate piece (a rounded box with r = 0, ...) holds no points */
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        patch *np = realloc(l->p, cap * sizeof *np);
        if (!np)
            return -1;
        l->p = np;
        l->cap = cap;
    }
    l->p[l->n++] = (patch){ prim, kind, area, { a0, a1, a2, a3, a4, a5, a6, 0 } };
    return 0;
}

/* The six faces of a box of half extents h (a room's walls are the same faces). */
static int add_box(patch_list *l, size_t prim, const double h[3])
{
    int bad = 0;
    for (int ax = 0; ax < 3; ax++) {
        int u = (ax + 1) % 3, v = (ax + 2) % 3;
        for (int s = -1; s <= 1; s += 2)
            bad |= add(l, prim, P_RECT, 4 * h[u] * h[v], ax, s * h[ax], h[u], h[v], 0, 0, 0);
    }
    return bad;
}

static int add_primitive(patch_list *l, size_t prim, const world_primitive *p)
{
    const double s0 = p->size[0], s1 = p->size[1], s2 = p->size[2];
    int bad = 0;
    switch (p->shape) {
    case WORLD_SPHERE: return add(l, prim, P_SPHERE, 4 * PI * s0 * s0, s0, 0, 0, 0, 0, 0, 0);
    case WORLD_BOX:
    case WORLD_ROOM: {
        double h[3] = { s0, s1, s2 };
        return add_box(l, prim, h);
    }
    case WORLD_ROUNDED_BOX: {
        /* The inner box c = h - r dilated by r: six flat faces of the inner box's size,
         * twelve quarter cylinders along its edges, eight eighth spheres at its corners. */
        double r = p->rounding, c[3] = { s0 - r, s1 - r, s2 - r };
        for (int ax = 0; ax < 3; ax++) {
            int u = (ax + 1) % 3, v = (ax + 2) % 3;
            for (int s = -1; s <= 1; s += 2)
                bad |= add(l, prim, P_RECT, 4 * c[u] * c[v], ax, s * (c[ax] + r), c[u], c[v], 0, 0,
                           0);
            for (int su = -1; su <= 1; su += 2)
                for (int sv = -1; sv <= 1; sv += 2)
                    bad |= add(l, prim, P_EDGE, 0.5 * PI * r * 2 * c[ax], ax, c[ax], su * c[u],
                               sv * c[v], r, su, sv);
        }
        for (int k = 0; k < 8; k++)
            bad |= add(l, prim, P_CORNER, 0.5 * PI * r * r, (k & 1 ? 1 : -1) * c[0],
                       (k & 2 ? 1 : -1) * c[1], (k & 4 ? 1 : -1) * c[2], r, k, 0, 0);
        return bad;
    }
    case WORLD_TORUS:
        return add(l, prim, P_TORUS, 4 * PI * PI * s1 * (s0 + s1), s0, s1, 0, 0, 0, 0, 0);
    case WORLD_CYLINDER:
        bad |= add(l, prim, P_CYL_SIDE, 2 * PI * s0 * 2 * s2, s0, s2, 0, 0, 0, 0, 0);
        bad |= add(l, prim, P_DISC, PI * s0 * s0, s0, s2, 0, 0, 0, 0, 0);
        bad |= add(l, prim, P_DISC, PI * s0 * s0, s0, -s2, 0, 0, 0, 0, 0);
        return bad;
    case WORLD_CONE:
        bad |= add(l, prim, P_DISC, PI * s0 * s0, s0, -s2, 0, 0, 0, 0, 0);
        bad |= add(l, prim, P_CONE_SIDE, PI * s0 * sqrt(s0 * s0 + 4 * s2 * s2), s0, s2, 0, 0, 0,
                   0, 0);
        return bad;
    case WORLD_CAPSULE:
        bad |= add(l, prim, P_CYL_SIDE, 2 * PI * s0 * 2 * s2, s0, s2, 0, 0, 0, 0, 0);
        bad |= add(l, prim, P_CAPSULE, 4 * PI * s0 * s0, s0, s2, 0, 0, 0, 0, 0);
        return bad;
    case WORLD_PLANE:
        l->has_plane = 1;
        return 0;
    default: return 0;
    }
}

/* Uniform direction on the unit sphere (Archimedes: z is uniform). */
static void direction(double u1, double u2, double d[3])
{
    double z = 1 - 2 * u1, s = sqrt(fmax(0.0, 1 - z * z)), phi = 2 * PI * u2;
    d[0] = s * cos(phi);
    d[1] = s * sin(phi);
    d[2] = z;
}

/* A point of the patch in the primitive's local frame from the uniforms u[1..3]; returns 0
 * when the torus proposal is rejected. */
static int patch_point(const patch *pt, const double *u, double q[3])
{
    const double *a = pt->a;
    double d[3];
    switch (pt->kind) {
    case P_RECT: {
        int ax = (int)a[0], uu = (ax + 1) % 3, vv = (ax + 2) % 3;
        q[ax] = a[1];
        q[uu] = (2 * u[1] - 1) * a[2];
        q[vv] = (2 * u[2] - 1) * a[3];
        return 1;
    }
    case P_EDGE: {
        int ax = (int)a[0], uu = (ax + 1) % 3, vv = (ax + 2) % 3;
        double th = 0.5 * PI * u[2];
        q[ax] = (2 * u[1] - 1) * a[1];
        q[uu] = a[2] + a[5] * a[4] * cos(th);
        q[vv] = a[3] + a[6] * a[4] * sin(th);
        return 1;
    }
    case P_CORNER:
        direction(u[1], u[2], d);
        for (int k = 0; k < 3; k++)
            q[k] = a[k] + (((int)a[4] >> k) & 1 ? 1 : -1) * a[3] * fabs(d[k]);
        return 1;
    case P_SPHERE:
        direction(u[1], u[2], d);
        for (int k = 0; k < 3; k++)
            q[k] = a[0] * d[k];
        q[2] += a[1];
        return 1;
    case P_CAPSULE:
        direction(u[1], u[2], d);
        for (int k = 0; k < 3; k++)
            q[k] = a[0] * d[k];
        q[2] += d[2] >= 0 ? a[1] : -a[1];
        return 1;
    case P_TORUS: {
        /* (phi, theta) uniform, accepted with probability (R + r cos theta) / (R + r): the
         * area element of the torus is r (R + r cos theta) dphi dtheta. */
        double R = a[0], r = a[1], phi = 2 * PI * u[1], th = 2 * PI * u[2];
        double rho = R + r * cos(th);
        if (u[3] * (R + r) >= rho)
            return 0;
        q[0] = rho * cos(phi);
        q[1] = rho * sin(phi);
        q[2] = r * sin(th);
        return 1;
    }
    case P_CYL_SIDE: {
        double phi = 2 * PI * u[1];
        q[0] = a[0] * cos(phi);
        q[1] = a[0] * sin(phi);
        q[2] = (2 * u[2] - 1) * a[1];
        return 1;
    }
    case P_DISC: {
        double rho = a[0] * sqrt(u[1]), phi = 2 * PI * u[2];
        q[0] = rho * cos(phi);
        q[1] = rho * sin(phi);
        q[2] = a[1];
        return 1;
    }
    case P_CONE_SIDE: {
        /* The slant's area grows with the square of the distance to the apex (z = +h). */
        double f = sqrt(u[1]), phi = 2 * PI * u[2];
        q[0] = f * a[0] * cos(phi);
        q[1] = f * a[0] * sin(phi);
        q[2] = a[1] - 2 * a[1] * f;
        return 1;
    }
    }
    return 0;
}

/* p_world = R p_local + position, R the quaternion's rotation (normalised here). */
static void to_world(const world_primitive *p, const double q[3], float out[3])
{
    double w = p->rotation[0], x = p->rotation[1], y = p->rotation[2], z = p->rotation[3];
    double n2 = w * w + x * x + y * y + z * z;
    if (!(n2 > 0)) {
        w = 1;
        x = y = z = 0;
        n2 = 1;
    }
    double s = 2 / n2;
    double R[9] = { 1 - s * (y * y + z * z), s * (x * y - w * z), s * (x * z + w * y),
                    s * (x * y + w * z), 1 - s * (x * x + z * z), s * (y * z - w * x),
                    s * (x * z - w * y), s * (y * z + w * x), 1 - s * (x * x + y * y) };
    for (int r = 0; r < 3; r++)
        out[r] = (float)(R[3 * r] * q[0] + R[3 * r + 1] * q[1] + R[3 * r + 2] * q[2] +
                         p->position[r]);
}

static sl_status build(const world_scene *scene, patch_list *l, sl_error *err)
{
    memset(l, 0, sizeof *l);
    for (size_t i = 0; i < scene->n; i++)
        if (add_primitive(l, i, &scene->prims[i]))
            return sl_error_set(err, SL_ERR_NOMEM, "world surface: out of memory");
    return SL_OK;
}

double world_surface_area(const world_scene *scene)
{
    patch_list l;
    double total = 0;
    if (build(scene, &l, NULL) == SL_OK)
        for (size_t k = 0; k < l.n; k++)
            total += l.p[k].kind == P_TORUS ? 4 * PI * PI * l.p[k].a[0] * l.p[k].a[1]
                                            : l.p[k].area;
    free(l.p);
    return total;
}

sl_status world_surface_sample(const world_scene *scene, size_t n, sl_rng_key key,
                               float *points, sl_error *err)
{
    if (!scene || (n && !points))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "world_surface_sample: NULL argument");
    patch_list l;
    sl_status st = build(scene, &l, err);
    double *cum = NULL;
    if (st == SL_OK && l.has_plane)
        st = sl_error_set(err, SL_ERR_UNSUPPORTED, "scene '%s' has an infinite plane: its "
                          "surface cannot be sampled uniformly", scene->name ? scene->name : "");
    if (st == SL_OK && l.n == 0)
        st = sl_error_set(err, SL_ERR_INVALID_ARG, "scene '%s' has no surface",
                          scene->name ? scene->name : "");
    if (st == SL_OK && !(cum = malloc(l.n * sizeof *cum)))
        st = sl_error_set(err, SL_ERR_NOMEM, "world surface: out of memory");
    if (st != SL_OK) {
        free(l.p);
        return st;
    }
    double total = 0;
    for (size_t k = 0; k < l.n; k++)
        cum[k] = (total += l.p[k].area);
    /* A scene whose visible part is tiny would loop for ever: give up after many misses. */
    const uint64_t max_candidates = 1000 * (uint64_t)n + 1000000;
    size_t got = 0;
    uint64_t c = 0;
    for (; got < n && c < max_candidates; c++) {
        double u[8];
        for (int j = 0; j < 8; j++)
            u[j] = sl_rng_uniform1(key, 8 * c + (uint64_t)j);
        double r = u[0] * total;
        size_t lo = 0, hi = l.n - 1;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (cum[mid] > r)
                hi = mid;
            else
                lo = mid + 1;
        }
        const patch *pt = &l.p[lo];
        double q[3];
        if (!patch_point(pt, u, q))
            continue;
        float w[3];
        to_world(&scene->prims[pt->prim], q, w);
        int visible = 1;
        for (size_t j = 0; j < scene->n && visible; j++) {
            if (j == pt->prim)
                continue;
            world_scene one = { .prims = &scene->prims[j], .n = 1 };
            visible = world_scene_sdf(&one, w) > WORLD_SURFACE_EPS;
        }
        if (!visible)
            continue;
        memcpy(points + 3 * got, w, sizeof w);
        got++;
    }
    free(cum);
    free(l.p);
    if (got < n)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "scene '%s': only %zu of %llu candidate "
                            "points lie on the visible surface (is every primitive inside "
                            "another?)", scene->name ? scene->name : "", got,
                            (unsigned long long)c);
    return SL_OK;
}
