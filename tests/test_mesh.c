/* tests/test_mesh.c — marching cubes (closed surfaces, orientation, the 256 cases), the
 * OBJ/PLY writers read back, surface sampling, Chamfer distances against closed forms and
 * brute force, and the world prior's true-surface sampler. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "steinlab/mesh.h"
#include "steinlab/rng.h"

#include "scene.h"
#include "surface.h"

#define PI 3.14159265358979323846

/* ------------------------------------------------------------------ mesh checks */

typedef struct edge_rec {
    int32_t lo, hi;   /* the undirected edge */
    int32_t from;     /* the direction a triangle walks it in: from this vertex */
} edge_rec;

static int cmp_edge(const void *x, const void *y)
{
    const edge_rec *p = x, *q = y;
    if (p->lo != q->lo)
        return p->lo < q->lo ? -1 : 1;
    if (p->hi != q->hi)
        return p->hi < q->hi ? -1 : 1;
    return (p->from > q->from) - (p->from < q->from);
}

/* Watertight and consistently oriented: every undirected edge belongs to exactly two
 * triangles, which walk it in opposite directions. Returns the edge count, or -1. */
static long check_closed_oriented(const sl_mesh *m)
{
    size_t ne = 3 * m->n_faces;
    edge_rec *e = malloc((ne ? ne : 1) * sizeof *e);
    for (size_t t = 0; t < m->n_faces; t++)
        for (int k = 0; k < 3; k++) {
            int32_t a = m->faces[3 * t + k], b = m->faces[3 * t + (k + 1) % 3];
            e[3 * t + k] = (edge_rec){ a < b ? a : b, a < b ? b : a, a };
        }
    qsort(e, ne, sizeof *e, cmp_edge);
    long edges = 0;
    int ok = 1;
    for (size_t i = 0; ok && i < ne;) {
        size_t j = i;
        while (j < ne && e[j].lo == e[i].lo && e[j].hi == e[i].hi)
            j++;
        ok = j - i == 2 && e[i].from != e[i + 1].from && e[i].lo != e[i].hi;
        edges++;
        i = j;
    }
    free(e);
    return ok ? edges : -1;
}

static double signed_volume(const sl_mesh *m)
{
    double v = 0;
    for (size_t t = 0; t < m->n_faces; t++) {
        const float *a = m->vertices + 3 * m->faces[3 * t];
        const float *b = m->vertices + 3 * m->faces[3 * t + 1];
        const float *c = m->vertices + 3 * m->faces[3 * t + 2];
        v += (a[0] * ((double)b[1] * c[2] - (double)b[2] * c[1]) -
              a[1] * ((double)b[0] * c[2] - (double)b[2] * c[0]) +
              a[2] * ((double)b[0] * c[1] - (double)b[1] * c[0])) / 6.0;
    }
    return v;
}

/* ------------------------------------------------------------------ fields */

typedef struct ball {
    float r;
} ball;

/* density = r - |p| (level 0: the sphere of radius r), colour = (|x|, |y|, |z|). */
static sl_status ball_field(void *ctx, const float *p, size_t n, float *d, float *rgb,
                            sl_error *err)
{
    const ball *b = ctx;
    for (size_t i = 0; i < n; i++) {
        const float *q = p + 3 * i;
        d[i] = b->r - sqrtf(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]);
        if (rgb)
            for (int k = 0; k < 3; k++)
                rgb[3 * i + k] = fabsf(q[k]);
    }
    return SL_OK;
}

/* Torus of ring radius R, tube r, in the xy plane: density = r - dist to the ring. */
static sl_status torus_field(void *ctx, const float *p, size_t n, float *d, float *rgb,
                             sl_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const float *q = p + 3 * i;
        float rho = sqrtf(q[0] * q[0] + q[1] * q[1]) - 0.5f;
        d[i] = 0.2f - sqrtf(rho * rho + q[2] * q[2]);
    }
    return SL_OK;
}

static sl_status nan_field(void *ctx, const float *p, size_t n, float *d, float *rgb,
                           sl_error *err)
{
    for (size_t i = 0; i < n; i++)
        d[i] = i == n / 2 ? NAN : 0.0f;
    return SL_OK;
}

static const float unit_box[6] = { -1, -1, -1, 1, 1, 1 };

START_TEST(sphere_is_closed_outward_and_on_the_sphere)
{
    ball b = { 0.7f };
    int N = 48;
    double h = 2.0 / (N - 1);
    sl_mesh m;
    sl_error err;
    ck_assert_int_eq(sl_mesh_extract(ball_field, &b, unit_box, N, 0.0f, 1, &m, &err), SL_OK);
    ck_assert(m.n_faces > 1000);
    long edges = check_closed_oriented(&m);
    ck_assert_msg(edges > 0, "the sphere's mesh is not closed and consistently oriented");
    long chi = (long)m.n_vertices - edges + (long)m.n_faces;
    ck_assert_int_eq(chi, 2);
    /* Outward normals: the divergence theorem gives +volume; the polyhedron inscribed in
     * the sphere loses O(h^2 / r) of its radius. */
    double vol = signed_volume(&m), exact = 4.0 / 3.0 * PI * 0.343;
    ck_assert_msg(vol > 0 && fabs(vol - exact) < 0.01 * exact, "volume %g, exact %g", vol, exact);
    for (size_t i = 0; i < m.n_vertices; i++) {
        const float *v = m.vertices + 3 * i;
        double r = sqrt((double)v[0] * v[0] + (double)v[1] * v[1] + (double)v[2] * v[2]);
        ck_assert_msg(fabs(r - 0.7) < 0.25 * h, "vertex %zu at radius %g", i, r);
        for (int k = 0; k < 3; k++)   /* colour = |coordinate| */
            ck_assert_int_eq(m.colors[3 * i + k], (int)lrintf(fabsf(v[k]) * 255.0f));
    }
    /* Deterministic: a second extraction gives the same bits. */
    sl_mesh m2;
    ck_assert_int_eq(sl_mesh_extract(ball_field, &b, unit_box, N, 0.0f, 1, &m2, &err), SL_OK);
    ck_assert(m2.n_vertices == m.n_vertices && m2.n_faces == m.n_faces);
    ck_assert(!memcmp(m.vertices, m2.vertices, 12 * m.n_vertices));
    ck_assert(!memcmp(m.faces, m2.faces, 12 * m.n_faces));
    sl_mesh_free(&m);
    sl_mesh_free(&m2);
}
END_TEST

START_TEST(torus_has_genus_one)
{
    sl_mesh m;
    sl_error err;
    ck_assert_int_eq(sl_mesh_extract(torus_field, NULL, unit_box, 64, 0.0f, 0, &m, &err), SL_OK);
    ck_assert(m.colors == NULL);
    long edges = check_closed_oriented(&m);
    ck_assert(edges > 0);
    ck_assert_int_eq((long)m.n_vertices - edges + (long)m.n_faces, 0);
    double vol = signed_volume(&m), exact = 2 * PI * PI * 0.5 * 0.04;
    ck_assert_msg(vol > 0 && fabs(vol - exact) < 0.02 * exact, "volume %g, exact %g", vol, exact);
    sl_mesh_free(&m);
}
END_TEST

START_TEST(empty_and_bad_fields)
{
    ball b = { 5.0f };   /* inside everywhere: no crossing */
    sl_mesh m;
    sl_error err;
    ck_assert_int_eq(sl_mesh_extract(ball_field, &b, unit_box, 8, 0.0f, 1, &m, &err), SL_OK);
    ck_assert(m.n_faces == 0 && m.n_vertices == 0);
    sl_mesh_free(&m);
    ck_assert_int_eq(sl_mesh_extract(nan_field, NULL, unit_box, 8, 0.0f, 1, &m, &err),
                     SL_ERR_NONFINITE);
    ck_assert_ptr_null(m.vertices);
    ck_assert_int_eq(sl_mesh_extract(ball_field, &b, unit_box, 1, 0.0f, 1, &m, &err),
                     SL_ERR_INVALID_ARG);
    float flat[6] = { 0, 0, 0, 1, 0, 1 };
    ck_assert_int_eq(sl_mesh_extract(ball_field, &b, flat, 8, 0.0f, 1, &m, &err),
                     SL_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "axis 1"));
}
END_TEST

/* Which cube edge a vertex of a one-cell grid lies on (-1: none). */
static int vertex_edge(const float *v)
{
    int fixed = 0, on[3];
    for (int k = 0; k < 3; k++) {
        on[k] = v[k] == 0.0f ? 0 : v[k] == 1.0f ? 1 : -1;
        fixed += on[k] >= 0;
    }
    if (fixed < 2)
        return -1;
    for (int e = 0; e < 12; e++) {
        int c0, c1, a = e / 4, match = 1;
        sl_mc_edge_corners(e, &c0, &c1);
        for (int k = 0; k < 3 && match; k++)
            if (k != a)
                match = on[k] == ((c0 >> k) & 1);
        if (match)
            return e;
    }
    return -1;
}

/* Every one of the 256 sign patterns of a single cell, with random magnitudes: each vertex
 * lies on an edge whose ends differ in sign, each triangle faces away from the inside
 * corners of its edges, every edge of the cell's surface that is used once (its boundary)
 * lies in a cube face, and an edge inside the cell is shared by two oppositely wound
 * triangles. */
START_TEST(all_256_cases)
{
    sl_rng_key key = { 11, 0, 1, 0 };
    int dims[3] = { 2, 2, 2 };
    float origin[3] = { 0, 0, 0 }, spacing[3] = { 1, 1, 1 };
    for (unsigned config = 0; config < 256; config++) {
        float val[8];
        for (int c = 0; c < 8; c++) {
            float mag = 0.05f + (float)sl_rng_uniform1(key, 8 * config + c);
            /* Grid index (k * 2 + j) * 2 + i is corner i | j << 1 | k << 2. */
            val[c] = (config >> c) & 1 ? mag : -mag;
        }
        sl_mesh m;
        sl_error err;
        ck_assert_int_eq(sl_mesh_from_grid(val, dims, origin, spacing, 0.0f, &m, &err), SL_OK);
        int tris[SL_MC_MAX_TRIANGLES][3];
        int nt = sl_mc_case(config, tris);
        ck_assert_int_eq((int)m.n_faces, nt);
        if (config == 0 || config == 255)
            ck_assert_int_eq(nt, 0);
        else
            ck_assert(nt >= 1);
        int uses[12][12] = { { 0 } };
        for (size_t t = 0; t < m.n_faces; t++) {
            int e[3];
            double dir[3] = { 0, 0, 0 };
            for (int q = 0; q < 3; q++) {
                const float *v = m.vertices + 3 * m.faces[3 * t + q];
                e[q] = vertex_edge(v);
                ck_assert_msg(e[q] >= 0, "case %u: vertex off the cube's edges", config);
                int c0, c1;
                sl_mc_edge_corners(e[q], &c0, &c1);
                int in0 = (config >> c0) & 1, in1 = (config >> c1) & 1;
                ck_assert_msg(in0 != in1, "case %u: vertex on edge %d without a sign change",
                              config, e[q]);
                /* Direction from the inside corner to the outside one (down the density). */
                int from = in0 ? c0 : c1, to = in0 ? c1 : c0;
                for (int k = 0; k < 3; k++)
                    dir[k] += ((to >> k) & 1) - ((from >> k) & 1);
            }
            for (int q = 0; q < 3; q++)
                uses[e[q]][e[(q + 1) % 3]]++;
            const float *a = m.vertices + 3 * m.faces[3 * t];
            const float *b = m.vertices + 3 * m.faces[3 * t + 1];
            const float *c = m.vertices + 3 * m.faces[3 * t + 2];
            double u[3], w[3];
            for (int k = 0; k < 3; k++) {
                u[k] = (double)b[k] - a[k];
                w[k] = (double)c[k] - a[k];
            }
            double n[3] = { u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2],
                            u[0] * w[1] - u[1] * w[0] };
            ck_assert_msg(n[0] * dir[0] + n[1] * dir[1] + n[2] * dir[2] > 0,
                          "case %u: triangle %zu faces the inside", config, t);
        }
        for (int a = 0; a < 12; a++)
            for (int b = a + 1; b < 12; b++) {
                int once = uses[a][b] + uses[b][a];
                if (!once)
                    continue;
                int c0, c1, d0, d1, common = 0;
                sl_mc_edge_corners(a, &c0, &c1);
                sl_mc_edge_corners(b, &d0, &d1);
                for (int ax = 0; ax < 3; ax++)
                    for (int s = 0; s < 2; s++)
                        common |= ((c0 >> ax) & 1) == s && ((c1 >> ax) & 1) == s &&
                                  ((d0 >> ax) & 1) == s && ((d1 >> ax) & 1) == s;
                if (once == 1)
                    ck_assert_msg(common, "case %u: boundary %d-%d not in a face", config, a, b);
                else
                    ck_assert_msg(once == 2 && uses[a][b] == 1 && !common,
                                  "case %u: inner edge %d-%d used %d/%d times%s", config, a, b,
                                  uses[a][b], uses[b][a], common ? " (in a face)" : "");
            }
        sl_mesh_free(&m);
    }
}
END_TEST

/* Random fields with an outside border: a closed level set full of ambiguous faces and
 * cells. Neighbouring cells must agree on every shared face. */
START_TEST(random_fields_are_watertight)
{
    int N = 14;
    int dims[3] = { N, N, N };
    float origin[3] = { 0, 0, 0 }, spacing[3] = { 1, 1, 1 };
    float *val = malloc(sizeof(float) * N * N * N);
    for (uint32_t trial = 0; trial < 20; trial++) {
        sl_rng_key key = { 5, trial, 2, 0 };
        sl_rng_normal(key, 0, (size_t)N * N * N, val);
        for (int k = 0; k < N; k++)
            for (int j = 0; j < N; j++)
                for (int i = 0; i < N; i++)
                    if (!i || !j || !k || i == N - 1 || j == N - 1 || k == N - 1)
                        val[((size_t)k * N + j) * N + i] = -1.0f;
        sl_mesh m;
        sl_error err;
        ck_assert_int_eq(sl_mesh_from_grid(val, dims, origin, spacing, 0.3f, &m, &err), SL_OK);
        ck_assert(m.n_faces > 100);
        ck_assert_msg(check_closed_oriented(&m) > 0, "trial %u: not watertight", trial);
        ck_assert(signed_volume(&m) > 0);
        sl_mesh_free(&m);
    }
    free(val);
}
END_TEST

/* ------------------------------------------------------------------ files */

static sl_mesh small_sphere(int colors)
{
    ball b = { 0.6f };
    sl_mesh m;
    sl_error err;
    ck_assert_int_eq(sl_mesh_extract(ball_field, &b, unit_box, 12, 0.0f, colors, &m, &err), SL_OK);
    return m;
}

static uint32_t le32(const unsigned char *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

START_TEST(obj_reads_back)
{
    sl_mesh m = small_sphere(1);
    char path[] = "/tmp/steinlab_test_mesh_XXXXXX.obj";
    int fd = mkstemps(path, 4);
    ck_assert(fd >= 0);
    close(fd);
    sl_error err;
    ck_assert_int_eq(sl_mesh_write(&m, path, &err), SL_OK);
    FILE *f = fopen(path, "r");
    char line[256];
    size_t nv = 0, nf = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == 'v' && line[1] == ' ') {
            float x, y, z, r, g, b;
            ck_assert_int_eq(sscanf(line + 2, "%f %f %f %f %f %f", &x, &y, &z, &r, &g, &b), 6);
            ck_assert(nv < m.n_vertices);
            ck_assert(x == m.vertices[3 * nv] && y == m.vertices[3 * nv + 1] &&
                      z == m.vertices[3 * nv + 2]);
            ck_assert_int_eq((int)lrintf(r * 255), m.colors[3 * nv]);
            ck_assert_int_eq((int)lrintf(g * 255), m.colors[3 * nv + 1]);
            ck_assert_int_eq((int)lrintf(b * 255), m.colors[3 * nv + 2]);
            nv++;
        } else if (line[0] == 'f') {
            int a, b, c;
            ck_assert_int_eq(sscanf(line + 2, "%d %d %d", &a, &b, &c), 3);
            ck_assert(nf < m.n_faces);
            ck_assert(a - 1 == m.faces[3 * nf] && b - 1 == m.faces[3 * nf + 1] &&
                      c - 1 == m.faces[3 * nf + 2]);
            nf++;
        } else {
            ck_assert_int_eq(line[0], '#');
        }
    }
    fclose(f);
    ck_assert(nv == m.n_vertices && nf == m.n_faces);
    /* Atomic: no temporary file is left behind. */
    char tmp[sizeof path + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    unlink(path);
    ck_assert_int_eq(sl_mesh_write(&m, "/tmp/x.stl", &err), SL_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, ".obj or .ply"));
    ck_assert_int_eq(sl_mesh_write(&m, "/nonexistent-dir/x.obj", &err), SL_ERR_IO);
    sl_mesh_free(&m);
}
END_TEST

START_TEST(ply_reads_back)
{
    for (int colors = 0; colors < 2; colors++) {
        sl_mesh m = small_sphere(colors);
        char path[] = "/tmp/steinlab_test_mesh_XXXXXX.ply";
        int fd = mkstemps(path, 4);
        close(fd);
        sl_error err;
        ck_assert_int_eq(sl_mesh_write(&m, path, &err), SL_OK);
        FILE *f = fopen(path, "rb");
        char line[256];
        size_t nv = 0, nf = 0;
        int props = 0;
        ck_assert_str_eq(fgets(line, sizeof line, f), "ply\n");
        ck_assert_str_eq(fgets(line, sizeof line, f), "format binary_little_endian 1.0\n");
        while (fgets(line, sizeof line, f) && strcmp(line, "end_header\n") != 0) {
            sscanf(line, "element vertex %zu", &nv);
            sscanf(line, "element face %zu", &nf);
            props += !strncmp(line, "property", 8);
        }
        ck_assert_int_eq(props, 7);
        ck_assert(nv == m.n_vertices && nf == m.n_faces);
        unsigned char rec[15];
        for (size_t i = 0; i < nv; i++) {
            ck_assert_int_eq(fread(rec, 1, 15, f), 15);
            for (int k = 0; k < 3; k++) {
                uint32_t u = le32(rec + 4 * k);
                float x;
                memcpy(&x, &u, 4);
                ck_assert(x == m.vertices[3 * i + k]);
                ck_assert_int_eq(rec[12 + k], colors ? m.colors[3 * i + k] : 200);
            }
        }
        for (size_t i = 0; i < nf; i++) {
            ck_assert_int_eq(fread(rec, 1, 13, f), 13);
            ck_assert_int_eq(rec[0], 3);
            for (int k = 0; k < 3; k++)
                ck_assert_int_eq((int32_t)le32(rec + 1 + 4 * k), m.faces[3 * i + k]);
        }
        ck_assert_int_eq(fread(rec, 1, 1, f), 0);   /* nothing after the faces */
        fclose(f);
        unlink(path);
        sl_mesh_free(&m);
    }
}
END_TEST

/* ------------------------------------------------------------------ sampling, Chamfer */

/* n points uniform on the sphere of radius r (Archimedes). */
static float *sphere_points(size_t n, double r, uint32_t stream)
{
    float *p = malloc(3 * n * sizeof(float));
    sl_rng_key key = { 3, 0, stream, 0 };
    for (size_t i = 0; i < n; i++) {
        double z = 1 - 2 * sl_rng_uniform1(key, 2 * i);
        double phi = 2 * PI * sl_rng_uniform1(key, 2 * i + 1);
        double s = sqrt(1 - z * z);
        p[3 * i] = (float)(r * s * cos(phi));
        p[3 * i + 1] = (float)(r * s * sin(phi));
        p[3 * i + 2] = (float)(r * z);
    }
    return p;
}

START_TEST(chamfer_closed_forms)
{
    size_t n = 20000;
    float *a = sphere_points(n, 0.5, 1), *b = sphere_points(n, 0.6, 2);
    sl_chamfer cd;
    sl_error err;
    ck_assert_int_eq(sl_chamfer_distance(a, n, b, n, &cd, &err), SL_OK);
    /* Each nearest neighbour is at least |r1 - r2| away and, at this density (spacing
     * ~0.006 on the outer sphere), hardly more. */
    ck_assert(cd.a_to_b >= 0.1 - 1e-6 && cd.b_to_a >= 0.1 - 1e-6);
    ck_assert_msg(fabs(cd.chamfer - 0.1) < 0.003, "chamfer %g", cd.chamfer);
    ck_assert_int_eq(sl_chamfer_distance(a, n, a, n, &cd, &err), SL_OK);
    ck_assert(cd.chamfer == 0.0 && cd.a_to_b == 0.0 && cd.b_to_a == 0.0);
    ck_assert_int_eq(sl_chamfer_distance(a, 0, a, n, &cd, &err), SL_ERR_INVALID_ARG);
    free(a);
    free(b);
}
END_TEST

static double brute_mean(const float *ref, size_t m, const float *q, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double best = INFINITY;
        for (size_t j = 0; j < m; j++) {
            double dx = (double)q[3 * i] - ref[3 * j], dy = (double)q[3 * i + 1] - ref[3 * j + 1],
                   dz = (double)q[3 * i + 2] - ref[3 * j + 2];
            double d2 = dx * dx + dy * dy + dz * dz;
            if (d2 < best)
                best = d2;
        }
        s += sqrt(best);
    }
    return s / (double)n;
}

/* Exactly the brute-force answer, on clouds with duplicates, flat sets and clusters, for
 * any thread count. */
START_TEST(chamfer_equals_brute_force)
{
    size_t n = 1500, m = 1100;
    float *a = malloc(3 * n * sizeof(float)), *b = malloc(3 * m * sizeof(float));
    for (uint32_t trial = 0; trial < 4; trial++) {
        sl_rng_key ka = { 9, trial, 1, 0 }, kb = { 9, trial, 2, 0 };
        sl_rng_uniform(ka, 0, 3 * n, a);
        sl_rng_uniform(kb, 0, 3 * m, b);
        if (trial == 1)   /* a flat set and exact duplicates */
            for (size_t j = 0; j < m; j++) {
                b[3 * j + 2] = 0.5f;
                if (j % 3 == 0 && j)
                    memcpy(b + 3 * j, b + 3 * (j - 1), 12);
            }
        if (trial == 2)   /* a tight cluster far from the rest, on a coarse lattice (ties) */
            for (size_t j = 0; j < m / 2; j++)
                for (int k = 0; k < 3; k++)
                    b[3 * j + k] = 5.0f + floorf(b[3 * j + k] * 4) / 4;
        if (trial == 3)   /* one reference point */
            m = 1;
        double ab = brute_mean(b, m, a, n), ba = brute_mean(a, n, b, m);
        for (int threads = 1; threads <= 3; threads += 2) {
            omp_set_num_threads(threads);
            sl_chamfer cd;
            sl_error err;
            ck_assert_int_eq(sl_chamfer_distance(a, n, b, m, &cd, &err), SL_OK);
            ck_assert_msg(cd.a_to_b == ab && cd.b_to_a == ba, "trial %u: %.17g %.17g vs %.17g "
                          "%.17g", trial, cd.a_to_b, cd.b_to_a, ab, ba);
            ck_assert(cd.chamfer == 0.5 * (ab + ba));
        }
    }
    free(a);
    free(b);
}
END_TEST

START_TEST(mesh_sampling_is_uniform_and_deterministic)
{
    ball bl = { 0.7f };
    sl_mesh m;
    sl_error err;
    ck_assert_int_eq(sl_mesh_extract(ball_field, &bl, unit_box, 40, 0.0f, 0, &m, &err), SL_OK);
    size_t n = 20000;
    float *p = malloc(3 * n * sizeof(float)), *q = malloc(3 * n * sizeof(float));
    sl_rng_key key = { 1, 0, 77, 0 };
    omp_set_num_threads(1);
    ck_assert_int_eq(sl_mesh_sample(&m, n, key, p, &err), SL_OK);
    omp_set_num_threads(3);
    ck_assert_int_eq(sl_mesh_sample(&m, n, key, q, &err), SL_OK);
    ck_assert(!memcmp(p, q, 12 * n));
    /* On the sphere, and area-uniform: Archimedes gives P(z > 0.35) = (1 - 0.5) / 2. */
    size_t high = 0;
    for (size_t i = 0; i < n; i++) {
        double r = sqrt((double)p[3 * i] * p[3 * i] + (double)p[3 * i + 1] * p[3 * i + 1] +
                        (double)p[3 * i + 2] * p[3 * i + 2]);
        ck_assert(fabs(r - 0.7) < 0.01);
        high += p[3 * i + 2] > 0.35f;
    }
    ck_assert_msg(fabs(high / (double)n - 0.25) < 0.015, "fraction %g", high / (double)n);
    sl_mesh empty = { 0 };
    ck_assert_int_eq(sl_mesh_sample(&empty, 4, key, p, &err), SL_ERR_INVALID_ARG);
    free(p);
    free(q);
    sl_mesh_free(&m);
}
END_TEST

/* ------------------------------------------------------------------ world surface */

START_TEST(world_surface_points_lie_on_the_scene)
{
    const char *prompts[] = { "a red sphere", "a red sphere on a blue box",
                              "a small green torus next to a yellow cone",
                              "a yellow sphere on a red rounded box next to a blue cone",
                              "a large blue capsule behind an orange sphere",
                              "a black torus on a white cylinder",
                              "a room with a blue box and a green cone" };
    size_t n = 3000;
    float *p = malloc(3 * n * sizeof(float)), *q = malloc(3 * n * sizeof(float));
    for (size_t s = 0; s < sizeof prompts / sizeof prompts[0]; s++) {
        world_scene sc;
        sl_error err;
        ck_assert_int_eq(world_scene_from_prompt(prompts[s], &sc, &err), SL_OK);
        sl_rng_key key = { 42, 0, 3, 0 };
        memset(p, 0xff, 12 * n);   /* NaN: every point must be written */
        ck_assert_int_eq(world_surface_sample(&sc, n, key, p, &err), SL_OK);
        ck_assert_int_eq(world_surface_sample(&sc, n, key, q, &err), SL_OK);
        ck_assert_msg(!memcmp(p, q, 12 * n), "%s: not deterministic", prompts[s]);
        for (size_t i = 0; i < n; i++) {
            float d = world_scene_sdf(&sc, p + 3 * i);
            ck_assert_msg(fabsf(d) < 1e-4f, "%s: point %zu at sdf %g", prompts[s], i, (double)d);
        }
        key.seed = 43;
        ck_assert_int_eq(world_surface_sample(&sc, n, key, q, &err), SL_OK);
        ck_assert(memcmp(p, q, 12 * n) != 0);
        world_scene_free(&sc);
    }
    free(p);
    free(q);
}
END_TEST

/* Area-uniform across primitives and hidden faces left out: two unit-size cubes side by
 * side sharing a face sample like one 2x1x1 box (its top is 2 of its 10 unit squares). */
START_TEST(world_surface_is_area_uniform_and_skips_hidden_faces)
{
    world_primitive prims[2];
    memset(prims, 0, sizeof prims);
    for (int i = 0; i < 2; i++) {
        prims[i].shape = WORLD_BOX;
        prims[i].rotation[0] = 1;
        prims[i].size[0] = prims[i].size[1] = prims[i].size[2] = 0.5f;
        prims[i].position[0] = i ? 0.5f : -0.5f;
    }
    world_scene sc = { .prims = prims, .n = 2 };
    size_t n = 20000;
    float *p = malloc(3 * n * sizeof(float));
    sl_rng_key key = { 1, 0, 9, 0 };
    sl_error err;
    ck_assert_int_eq(world_surface_sample(&sc, n, key, p, &err), SL_OK);
    size_t top = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(fabsf(p[3 * i]) > 1e-4f || fabsf(p[3 * i + 1]) > 0.4999f ||
                          fabsf(p[3 * i + 2]) > 0.4999f,
                      "a point on the shared face x = 0");
        top += p[3 * i + 2] > 0.4999f;
    }
    ck_assert_msg(fabs(top / (double)n - 0.2) < 0.01, "top fraction %g", top / (double)n);
    ck_assert_double_eq_tol(world_surface_area(&sc), 12.0, 1e-12);
    /* An infinite plane cannot be sampled. */
    prims[1].shape = WORLD_PLANE;
    ck_assert_int_eq(world_surface_sample(&sc, n, key, p, &err), SL_ERR_UNSUPPORTED);
    /* A primitive inside another is hidden: only the big sphere is seen. */
    prims[0].shape = prims[1].shape = WORLD_SPHERE;
    prims[0].size[0] = 0.2f;
    prims[1].size[0] = 1.0f;
    prims[0].position[0] = prims[1].position[0] = 0;
    ck_assert_int_eq(world_surface_sample(&sc, 1000, key, p, &err), SL_OK);
    for (size_t i = 0; i < 1000; i++)
        ck_assert(fabsf(sqrtf(p[3 * i] * p[3 * i] + p[3 * i + 1] * p[3 * i + 1] +
                              p[3 * i + 2] * p[3 * i + 2]) - 1.0f) < 1e-5f);
    free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mesh");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, sphere_is_closed_outward_and_on_the_sphere);
    tcase_add_test(tc, torus_has_genus_one);
    tcase_add_test(tc, empty_and_bad_fields);
    tcase_add_test(tc, all_256_cases);
    tcase_add_test(tc, random_fields_are_watertight);
    tcase_add_test(tc, obj_reads_back);
    tcase_add_test(tc, ply_reads_back);
    tcase_add_test(tc, chamfer_closed_forms);
    tcase_add_test(tc, chamfer_equals_brute_force);
    tcase_add_test(tc, mesh_sampling_is_uniform_and_deterministic);
    tcase_add_test(tc, world_surface_points_lie_on_the_scene);
    tcase_add_test(tc, world_surface_is_area_uniform_and_skips_hidden_faces);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
