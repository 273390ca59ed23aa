/* tests/test_dmtet.c — the `dmtet` representation (plugins/representations/dmtet/).
 *
 * The plugin source is compiled in with a renamed entry symbol (as tests/test_nerf.c does),
 * so the test reaches the grid, the mesh and the rasteriser. The device math is
 * instantiated a second time in double (dmtetd_*) for finite-difference checks.
 *
 * Checks:
 *  - device math in double (central differences, h = 1e-6): crossing, ray-triangle,
 *    normalisation, cross product, projection, edge crossing, hash encoding w.r.t. its
 *    point VJPs;
 *  - the 16-case table; marching tetrahedra on an analytic sphere SDF: watertight (every
 *    edge on exactly two faces, traversed once each way), positive signed volume close to
 *    the sphere's, vertices on the sphere within grid accuracy; the same with random
 *    deformations (still closed and consistently oriented);
 *  - marching-tetrahedra VJP against float FD w.r.t. SDF values and deformed positions
 *    (signs kept away from zero so no topology changes);
 *  - vertex normals, normal consistency and Laplacian VJPs against FD;
 *  - the rasteriser against a brute-force double-precision ray-triangle reference;
 *  - the whole render's gradient w.r.t. deformations and SDF values by FD, silhouette pixels
 *    included: all outputs with a constant texture; an opacity-only loss (gradient only
 *    through the antialiasing) must give a nonzero, FD-matching gradient; colour only with
 *    a varying texture (through the lookup position too);
 *  - texture parameters' gradients by FD; determinism across 1, 2, 3 threads;
 *    sample_field's sign and a marching-cubes export close to the sphere; surface_mesh is
 *    the deformed surface (a uniform deformation translates it exactly), texture-coloured,
 *    and the host's mesh uses it;
 *  - init: run_mesh from a log holding a sphere's mesh: the SDF within the samples' spacing
 *    of the exact one, signs exact; missing file, missing /mesh, missing init_run refused. */
#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spec.h"
#include "driver.h"
#include "steinlab/mesh.h"
#include "steinlab/steinlab.h"
#include "support/test_host.h"

#define steinlab_plugin_entry test_entry_dmtet
#include "../plugins/representations/dmtet/dmtet.c"
#undef steinlab_plugin_entry

#define NM_REAL double
#define NM_FN(name) nerfd_##name
#include "../plugins/representations/nerf/nerf_math_impl.h"
#undef NM_REAL
#undef NM_FN

#define DM_REAL double
#define DM_FN(name) dmtetd_##name
#include "../plugins/representations/dmtet/dmtet_math_impl.h"
#undef DM_REAL
#undef DM_FN

/* ------------------------------------------------------------------ instances */

typedef struct dm_inst {
    test_host host;    /* the shared test host (tests/support), warnings and errors printed */
    sl_params *params;
    dmtet_state *s;
} dm_inst;

static const sl_representation_vtable *VT(void)
{
    return test_entry_dmtet(0)->vtable;
}

static sl_status dm_try(dm_inst *in, const char *yaml, sl_error *err)
{
    memset(in, 0, sizeof *in);
    test_host_init(&in->host, "dmtet", 7, SL_STREAM_PLUGIN_BASE + 0x100);
    in->host.print_level = SL_LOG_WARN;
    sl_status st = test_host_try_params(test_entry_dmtet(0), yaml, &in->params, err);
    ck_assert_msg(st == SL_OK, "parameters: %s", err->msg);
    void *state = NULL;
    st = VT()->create(&in->host.h, in->params, &state, err);
    in->s = state;
    return st;
}

static void dm_new(dm_inst *in, const char *yaml)
{
    sl_error err = { "" };
    sl_status st = dm_try(in, yaml, &err);
    ck_assert_msg(st == SL_OK, "create: %s", err.msg);
}

static void dm_free(dm_inst *in)
{
    VT()->destroy(in->s);
    sl_params_free(in->params);
}

static void test_normal(uint32_t sample, size_t n, float *out)
{
    sl_rng_key k = { .seed = 99, .step = 0, .stream = 0x7e57, .sample = sample };
    sl_rng_normal(k, 0, n, out);
}

static double test_normal1(uint32_t sample, size_t i)
{
    float x;
    sl_rng_key k = { .seed = 99, .step = 0, .stream = 0x7e58, .sample = sample };
    sl_rng_normal(k, i, 1, &x);
    return x;
}

/* ------------------------------------------------------------------ device math (double) */

#define FD_H 1e-6

static void check_close(double analytic, double fd, double tol, const char *what, int i)
{
    ck_assert_msg(fabs(analytic - fd) <= tol * (1 + fabs(fd)), "%s[%d]: analytic %.9g, FD %.9g",
                  what, i, analytic, fd);
}

START_TEST(test_math_vjps)
{
    /* crossing: L = <g, p(pa, pb, sa, sb)> */
    double pa[3] = { 0.1, -0.3, 0.5 }, pb[3] = { 0.4, 0.2, 0.35 }, sa = -0.2, sb = 0.7;
    double g[3] = { 0.3, -1.1, 0.7 };
    double dpa[3] = { 0 }, dpb[3] = { 0 }, dsa = 0, dsb = 0, p[3];
    dmtetd_crossing_vjp(pa, pb, sa, sb, g, dpa, dpb, &dsa, &dsb);
    double *args[4] = { pa, pb, &sa, &sb }, *grads[4] = { dpa, dpb, &dsa, &dsb };
    int lens[4] = { 3, 3, 1, 1 };
    double norm = 0;
    for (int a = 0; a < 4; a++)
        for (int i = 0; i < lens[a]; i++) {
            double keep = args[a][i], lp, lm;
            args[a][i] = keep + FD_H;
            dmtetd_crossing(pa, pb, sa, sb, p);
            lp = dmtetd_dot3(g, p);
            args[a][i] = keep - FD_H;
            dmtetd_crossing(pa, pb, sa, sb, p);
            lm = dmtetd_dot3(g, p);
            args[a][i] = keep;
            check_close(grads[a][i], (lp - lm) / (2 * FD_H), 1e-6, "crossing", 10 * a + i);
            norm += fabs(grads[a][i]);
        }
    ck_assert(norm > 0.1);

    /* ray-triangle: L = <g, (s, l1, l2)> w.r.t. the three vertices */
    double o[3] = { 0.05, -0.1, 3 }, d[3] = { 0.02, 0.01, -1 };
    double x[3][3] = { { -0.5, -0.4, 0.1 }, { 0.6, -0.3, -0.2 }, { 0.1, 0.7, 0.05 } };
    double dx[3][3] = { { 0 } }, out[3];
    ck_assert(dmtetd_ray_triangle(o, d, x[0], x[1], x[2], out));
    dmtetd_ray_triangle_vjp(d, x[0], x[1], x[2], out, g, dx[0], dx[1], dx[2]);
    norm = 0;
    for (int q = 0; q < 3; q++)
        for (int k = 0; k < 3; k++) {
            double keep = x[q][k], lp, lm, r[3] = { 0, 0, 0 };
            x[q][k] = keep + FD_H;
            dmtetd_ray_triangle(o, d, x[0], x[1], x[2], r);
            lp = dmtetd_dot3(g, r);
            x[q][k] = keep - FD_H;
            dmtetd_ray_triangle(o, d, x[0], x[1], x[2], r);
            lm = dmtetd_dot3(g, r);
            x[q][k] = keep;
            check_close(dx[q][k], (lp - lm) / (2 * FD_H), 1e-6, "ray_triangle", 3 * q + k);
            norm += fabs(dx[q][k]);
        }
    ck_assert(norm > 0.1);

    /* normalize and cross: L = <g, normalize(a x b)> */
    double a[3] = { 0.3, -0.2, 0.9 }, b[3] = { -0.5, 0.8, 0.1 };
    double c[3], n[3], dc[3] = { 0 }, da[3] = { 0 }, db[3] = { 0 };
    dmtetd_cross3(a, b, c);
    dmtetd_normalize_vjp(c, g, dc);
    dmtetd_cross3_vjp(a, b, dc, da, db);
    double *ab[2] = { a, b }, *dab[2] = { da, db };
    norm = 0;
    for (int w = 0; w < 2; w++)
        for (int k = 0; k < 3; k++) {
            double keep = ab[w][k], lp, lm;
            ab[w][k] = keep + FD_H;
            dmtetd_cross3(a, b, c);
            dmtetd_normalize(c, n);
            lp = dmtetd_dot3(g, n);
            ab[w][k] = keep - FD_H;
            dmtetd_cross3(a, b, c);
            dmtetd_normalize(c, n);
            lm = dmtetd_dot3(g, n);
            ab[w][k] = keep;
            check_close(dab[w][k], (lp - lm) / (2 * FD_H), 1e-6, "normalize(cross)", 3 * w + k);
            norm += fabs(dab[w][k]);
        }
    ck_assert(norm > 0.1);

    /* projection then edge crossing: L = gt * t(project(xa), project(xb)) + <guv, uv(xa)> */
    sl_camera cam;
    sl_camera_orbit(30, 20, 2.5f, NULL, 50, 32, 32, &cam);
    double rot[9], eye[3];
    for (int k = 0; k < 9; k++)
        rot[k] = cam.rot[k];
    for (int k = 0; k < 3; k++)
        eye[k] = cam.eye[k];
    double xa[3] = { 0.1, 0.2, 0.3 }, xb[3] = { -0.2, -0.1, 0.35 };
    double cf[2] = { 15.5, 16.5 }, cb[2] = { 16.5, 16.5 }, gt = 0.8, guv[2] = { 0.3, -0.6 };
    double *xs[2] = { xa, xb }, dxs[2][3] = { { 0 } };
    double ua[2], ub[2], duva[2] = { guv[0], guv[1] }, duvb[2] = { 0, 0 };
    dmtetd_project(rot, eye, cam.fx, cam.fy, cam.cx, cam.cy, xa, ua);
    dmtetd_project(rot, eye, cam.fx, cam.fy, cam.cx, cam.cy, xb, ub);
    /* Choose the pixel pair across the projected segment's line. */
    double mid[2] = { 0.5 * (ua[0] + ub[0]), 0.5 * (ua[1] + ub[1]) };
    cf[0] = floor(mid[0]) - 0.5 + 0.2, cf[1] = floor(mid[1]) + 0.5;
    cb[0] = cf[0] + 1, cb[1] = cf[1];
    double ef = dmtetd_edge_fn(ua, ub, cf), eb = dmtetd_edge_fn(ua, ub, cb);
    ck_assert_msg(ef * eb < 0, "test geometry: the pair must straddle the edge");
    dmtetd_edge_crossing_vjp(ua, ub, cf, cb, gt, duva, duvb);
    dmtetd_project_vjp(rot, eye, cam.fx, cam.fy, xa, duva, dxs[0]);
    dmtetd_project_vjp(rot, eye, cam.fx, cam.fy, xb, duvb, dxs[1]);
    norm = 0;
    for (int w = 0; w < 2; w++)
        for (int k = 0; k < 3; k++) {
            double keep = xs[w][k], l[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                xs[w][k] = keep + (sgn ? -FD_H : FD_H);
                dmtetd_project(rot, eye, cam.fx, cam.fy, cam.cx, cam.cy, xa, ua);
                dmtetd_project(rot, eye, cam.fx, cam.fy, cam.cx, cam.cy, xb, ub);
                l[sgn] = gt * dmtetd_edge_crossing(ua, ub, cf, cb) + guv[0] * ua[0] +
                         guv[1] * ua[1];
            }
            xs[w][k] = keep;
            check_close(dxs[w][k], (l[0] - l[1]) / (2 * FD_H), 1e-5, "project+edge", 3 * w + k);
            norm += fabs(dxs[w][k]);
        }
    ck_assert(norm > 0.1);

    /* hash encoding w.r.t. its point: L = <denc, enc(u)> (dense and hashed levels) */
    {
        nerf_grid hg = { .levels = 3, .feat = 2 };
        uint32_t total = 0;
        int res[3] = { 3, 7, 40 };
        for (int l = 0; l < 3; l++) {
            uint32_t verts = (uint32_t)((res[l] + 1) * (res[l] + 1) * (res[l] + 1));
            hg.res[l] = res[l];
            hg.dense[l] = verts <= 1024;
            hg.size[l] = hg.dense[l] ? verts : 1024;
            hg.offset[l] = total;
            total += hg.size[l];
        }
        hg.entries = total;
        double *tab = malloc((size_t)total * 2 * sizeof(double)), denc[6], enc[6];
        for (size_t i = 0; i < (size_t)total * 2; i++)
            tab[i] = test_normal1(40, i);
        for (int i = 0; i < 6; i++)
            denc[i] = test_normal1(41, (size_t)i);
        double u[3] = { 0.313, 0.571, 0.826 }, du[3] = { 0, 0, 0 };
        dmtetd_hash_encode_vjp_u(&hg, tab, u, denc, du);
        norm = 0;
        for (int k = 0; k < 3; k++) {
            double keep = u[k], l[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                u[k] = keep + (sgn ? -FD_H : FD_H);
                nerfd_hash_encode(&hg, tab, u, enc);
                l[sgn] = 0;
                for (int i = 0; i < 6; i++)
                    l[sgn] += denc[i] * enc[i];
            }
            u[k] = keep;
            check_close(du[k], (l[0] - l[1]) / (2 * FD_H), 1e-6, "hash_encode_vjp_u", k);
            norm += fabs(du[k]);
        }
        ck_assert(norm > 0.1);
        free(tab);
    }

    /* deformation */
    double sc = 0.03, dd = 0.4;
    check_close(dmtetd_deform_grad(sc, dd),
                (dmtetd_deform(1, sc, dd + FD_H) - dmtetd_deform(1, sc, dd - FD_H)) / (2 * FD_H),
                1e-7, "deform", 0);
}
END_TEST

/* ------------------------------------------------------------------ marching tetrahedra */

START_TEST(test_mt_table)
{
    dm_mt_case t[16];
    dm_mt_table(t);
    for (int m = 0; m < 16; m++) {
        int n_in = __builtin_popcount((unsigned)m);
        int want = (n_in == 0 || n_in == 4) ? 0 : (n_in == 2 ? 2 : 1);
        ck_assert_int_eq(t[m].n_tris, want);
        for (int tri = 0; tri < t[m].n_tris; tri++)
            for (int e = 0; e < 3; e++) {
                int a = t[m].edge[tri][e][0], b = t[m].edge[tri][e][1];
                ck_assert_msg(((m >> a) & 1) != ((m >> b) & 1), "case %d: edge %d-%d not "
                              "crossed", m, a, b);
            }
    }
    /* The grid's tetrahedra are positive and fill the cube (volumes sum to 1). */
    dm_tetgrid g;
    float lo[3] = { 0, 0, 0 }, hi[3] = { 1, 1, 1 };
    dm_tetgrid_init(&g, 1, lo, hi);
    double vol = 0;
    for (int t6 = 0; t6 < 6; t6++) {
        double v[4][3];
        for (int q = 0; q < 4; q++)
            for (int k = 0; k < 3; k++)
                v[q][k] = (g.tets[t6][q] >> k) & 1;
        double e1[3], e2[3], e3[3], c[3];
        for (int k = 0; k < 3; k++)
            e1[k] = v[1][k] - v[0][k], e2[k] = v[2][k] - v[0][k], e3[k] = v[3][k] - v[0][k];
        dmtetd_cross3(e2, e3, c);
        double det = dmtetd_dot3(e1, c);
        ck_assert_msg(det > 0, "tetrahedron %d has det %g", t6, det);
        vol += det / 6;
    }
    ck_assert_double_eq_tol(vol, 1.0, 1e-12);
}
END_TEST

typedef struct mt_fixture {
    dm_tetgrid g;
    dm_mt_case table[16];
    float *base, *def, *sdf;
    float scale[3];
    dm_surface surf;
} mt_fixture;

/* A grid over [-1, 1]^3 with a sphere SDF of radius r (plus noise) at the deformed
 * positions; deformations random (pre-tanh N(0, 1)), bounded by `deform` cells. */
static void mt_setup(mt_fixture *f, int res, float r, float deform, float noise)
{
    memset(f, 0, sizeof *f);
    float lo[3] = { -1, -1, -1 }, hi[3] = { 1, 1, 1 };
    dm_tetgrid_init(&f->g, res, lo, hi);
    dm_mt_table(f->table);
    size_t nv = f->g.n_vertices;
    f->base = malloc(nv * 3 * sizeof(float));
    f->def = malloc(nv * 3 * sizeof(float));
    f->sdf = malloc(nv * sizeof(float));
    for (int k = 0; k < 3; k++)
        f->scale[k] = deform * f->g.cell[k];
    float *rnd = malloc(nv * 4 * sizeof(float));
    test_normal(1, nv * 4, rnd);
    for (size_t v = 0; v < nv; v++) {
        float p[3];
        dm_tetgrid_vertex(&f->g, v, f->base + 3 * v);
        for (int k = 0; k < 3; k++) {
            f->def[3 * v + k] = rnd[4 * v + k];
            p[k] = dmtet_deform(f->base[3 * v + k], f->scale[k], f->def[3 * v + k]);
        }
        f->sdf[v] = sqrtf(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]) - r + noise * rnd[4 * v + 3];
    }
    free(rnd);
}

static void mt_teardown(mt_fixture *f)
{
    free(f->base);
    free(f->def);
    free(f->sdf);
    dm_surface_free(&f->surf);
}

/* Watertight and consistently oriented: every edge on exactly two faces that traverse it in
 * opposite directions (dm_topology_build gives -1 otherwise), and edges = 3/2 faces. */
static void assert_closed_oriented(const dm_surface *s)
{
    dm_topology t = { 0 };
    sl_error err;
    ck_assert_int_eq(dm_topology_build(s->faces, s->n_faces, s->n_verts, &t, &err), SL_OK);
    for (size_t h = 0; h < 3 * s->n_faces; h++)
        ck_assert_msg(t.opposite[h] >= 0, "half-edge %zu: no opposite (boundary, non-manifold "
                      "or inconsistently oriented)", h);
    ck_assert_uint_eq(t.n_edges * 2, 3 * s->n_faces);
    dm_topology_free(&t);
}

static double signed_volume(const dm_surface *s)
{
    double v = 0;
    for (size_t f = 0; f < s->n_faces; f++) {
        double x[3][3];
        for (int q = 0; q < 3; q++)
            for (int k = 0; k < 3; k++)
                x[q][k] = s->verts[3 * (size_t)s->faces[3 * f + q] + k];
        double c[3];
        dmtetd_cross3(x[1], x[2], c);
        v += dmtetd_dot3(x[0], c) / 6;
    }
    return v;
}

START_TEST(test_sphere_watertight)
{
    const float r = 0.6f;
    mt_fixture f;
    mt_setup(&f, 32, r, 0, 0);
    sl_error err;
    ck_assert_int_eq(dm_marching_tets(&f.g, f.table, f.base, f.def, f.scale, f.sdf, &f.surf, &err), SL_OK);
    ck_assert_uint_gt(f.surf.n_faces, 1000);
    assert_closed_oriented(&f.surf);
    double vol = signed_volume(&f.surf), exact = 4.0 / 3.0 * M_PI * r * r * r;
    ck_assert_msg(fabs(vol - exact) < 0.02 * exact, "volume %g, sphere %g", vol, exact);
    /* Linear interpolation of the exact distance on an edge of length <= sqrt(3) h lands
     * within (edge length)^2 / (8 r) of the sphere: bound it by h^2 / r. */
    double h = f.g.cell[0], worst = 0;
    for (size_t v = 0; v < f.surf.n_verts; v++) {
        const float *p = f.surf.verts + 3 * v;
        double d = fabs(sqrt((double)p[0] * p[0] + (double)p[1] * p[1] + (double)p[2] * p[2]) - r);
        worst = d > worst ? d : worst;
    }
    ck_assert_msg(worst < h * h / r, "vertex %.3g off the sphere (cell %.3g)", worst, h);
    /* The check can fail: one face wound the other way loses its three opposites. */
    {
        int32_t *fc = f.surf.faces, tmp = fc[1];
        fc[1] = fc[2], fc[2] = tmp;
        dm_topology t = { 0 };
        ck_assert_int_eq(dm_topology_build(fc, f.surf.n_faces, f.surf.n_verts, &t, &err), SL_OK);
        size_t lost = 0;
        for (size_t h = 0; h < 3 * f.surf.n_faces; h++)
            lost += t.opposite[h] < 0;
        /* Its three edges, each now traversed the same way by it and by its neighbour. */
        ck_assert(t.opposite[0] == -1 && t.opposite[1] == -1 && t.opposite[2] == -1);
        ck_assert_uint_eq(lost, 6);
        dm_topology_free(&t);
    }
    /* The extraction leaves the edge map clean and is repeatable. */
    size_t nf = f.surf.n_faces;
    ck_assert_int_eq(dm_marching_tets(&f.g, f.table, f.base, f.def, f.scale, f.sdf, &f.surf, &err), SL_OK);
    ck_assert_uint_eq(f.surf.n_faces, nf);
    mt_teardown(&f);

    /* Deformed grid, noisy SDF: still closed and consistently oriented, volume positive. */
    mt_setup(&f, 20, r, 0.25f, 0.02f);
    ck_assert_int_eq(dm_marching_tets(&f.g, f.table, f.base, f.def, f.scale, f.sdf, &f.surf, &err), SL_OK);
    assert_closed_oriented(&f.surf);
    vol = signed_volume(&f.surf);
    ck_assert_msg(fabs(vol - exact) < 0.1 * exact, "deformed volume %g, sphere %g", vol, exact);
    mt_teardown(&f);
}
END_TEST

START_TEST(test_mt_gradients)
{
    mt_fixture f;
    mt_setup(&f, 6, 0.55f, 0.2f, 0.05f);
    size_t nv = f.g.n_vertices;
    /* Keep every SDF value at least 0.02 from zero so FD steps cannot flip a sign. */
    for (size_t v = 0; v < nv; v++)
        if (fabsf(f.sdf[v]) < 0.02f)
            f.sdf[v] = f.sdf[v] < 0 ? -0.02f : 0.02f;
    sl_error err;
    ck_assert_int_eq(dm_marching_tets(&f.g, f.table, f.base, f.def, f.scale, f.sdf, &f.surf, &err), SL_OK);
    size_t ns = f.surf.n_verts, nfaces = f.surf.n_faces;
    float *g = malloc(ns * 3 * sizeof(float));
    test_normal(2, ns * 3, g);
    float *ddef = calloc(nv * 3, sizeof(float)), *dsdf = calloc(nv, sizeof(float));
    dm_marching_tets_backward(&f.surf, f.base, f.def, f.scale, f.sdf, g, ddef, dsdf);
    /* L = sum over surface vertices of <g_edge, x>, with g keyed by the grid edge (the
     * vertex numbering is stable while the topology is). */
    int64_t *ids = malloc(ns * sizeof(int64_t));
    memcpy(ids, f.surf.edge_id, ns * sizeof(int64_t));
    int checked = 0;
    double norm = 0;
    for (size_t v = 0; v < nv; v++) {
        if (dsdf[v] == 0)
            continue;
        for (int which = 0; which < 4; which++) {
            float *param = which == 3 ? &f.sdf[v] : &f.def[3 * v + which];
            double an = which == 3 ? dsdf[v] : ddef[3 * v + which];
            float keep = *param, hstep = which == 3 ? 1e-3f : 1e-2f;
            double l[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                *param = keep + (sgn ? -hstep : hstep);
                ck_assert_int_eq(dm_marching_tets(&f.g, f.table, f.base, f.def, f.scale, f.sdf, &f.surf, &err),
                                 SL_OK);
                ck_assert_uint_eq(f.surf.n_faces, nfaces);
                double acc = 0;
                for (size_t s = 0; s < ns; s++) {
                    ck_assert(f.surf.edge_id[s] == ids[s]);
                    for (int k = 0; k < 3; k++)
                        acc += (double)g[3 * s + k] * f.surf.verts[3 * s + k];
                }
                l[sgn] = acc;
            }
            *param = keep;
            double fd = (l[0] - l[1]) / (2 * hstep);
            ck_assert_msg(fabs(an - fd) <= 2e-2 * (fabs(fd) + 0.05), "vertex %zu param %d: "
                          "analytic %g FD %g", v, which, an, fd);
            norm += fabs(an);
            checked++;
        }
        if (checked > 200)
            break;
    }
    ck_assert_int_gt(checked, 50);
    ck_assert(norm > 0.5);
    free(ids);
    free(g);
    free(ddef);
    free(dsdf);
    mt_teardown(&f);
}
END_TEST

/* ------------------------------------------------------------------ surface ops */

START_TEST(test_surface_ops_gradients)
{
    mt_fixture f;
    mt_setup(&f, 6, 0.55f, 0.2f, 0.05f);
    sl_error err;
    ck_assert_int_eq(dm_marching_tets(&f.g, f.table, f.base, f.def, f.scale, f.sdf, &f.surf, &err), SL_OK);
    dm_topology t = { 0 };
    size_t n = f.surf.n_verts, nf = f.surf.n_faces;
    ck_assert_int_eq(dm_topology_build(f.surf.faces, nf, n, &t, &err), SL_OK);
    float *verts = f.surf.verts;
    float *raw = malloc(n * 12), *nrm = malloc(n * 12), *scr = malloc(n * 12);
    float *gn = malloc(n * 12), *dv = calloc(n * 3, 4);
    test_normal(3, n * 3, gn);
    const double wnc = 0.7, wlap = 1.3;
    dm_vertex_normals(verts, n, f.surf.faces, nf, raw, nrm);
    dm_vertex_normals_vjp(verts, n, f.surf.faces, nf, raw, gn, scr, dv);
    dm_normal_consistency(verts, f.surf.faces, nf, &t, wnc, dv);
    dm_laplacian(verts, n, &t, wlap, scr, dv);
    const float hstep = 1e-3f;
    double norm = 0;
    for (size_t i = 0; i < 3 * n && i < 240; i++) {
        float keep = verts[i];
        double l[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            verts[i] = keep + (sgn ? -hstep : hstep);
            dm_vertex_normals(verts, n, f.surf.faces, nf, raw, nrm);
            double acc = 0;
            for (size_t j = 0; j < 3 * n; j++)
                acc += (double)gn[j] * nrm[j];
            acc += dm_normal_consistency(verts, f.surf.faces, nf, &t, wnc, NULL);
            acc += dm_laplacian(verts, n, &t, wlap, scr, NULL);
            l[sgn] = acc;
        }
        verts[i] = keep;
        double fd = (l[0] - l[1]) / (2 * hstep);
        ck_assert_msg(fabs(dv[i] - fd) <= 2e-2 * (fabs(fd) + 0.05), "coordinate %zu: analytic "
                      "%g FD %g", i, dv[i], fd);
        norm += fabs(dv[i]);
    }
    ck_assert(norm > 1.0);
    /* The regularisers vanish where they should: a plane has normal consistency 0. */
    free(raw), free(nrm), free(scr), free(gn), free(dv);
    dm_topology_free(&t);
    mt_teardown(&f);
}
END_TEST

/* ------------------------------------------------------------------ rasteriser */

typedef struct raster_fixture {
    mt_fixture mt;
    dm_topology topo;
    float *raw, *vn;
    dm_raster_mesh m;
} raster_fixture;

static void raster_setup(raster_fixture *rf, int res, float deform)
{
    mt_setup(&rf->mt, res, 0.6f, deform, 0.03f);
    sl_error err;
    ck_assert_int_eq(dm_marching_tets(&rf->mt.g, rf->mt.table, rf->mt.base, rf->mt.def,
                                      rf->mt.scale, rf->mt.sdf, &rf->mt.surf, &err), SL_OK);
    const dm_surface *s = &rf->mt.surf;
    memset(&rf->topo, 0, sizeof rf->topo);
    ck_assert_int_eq(dm_topology_build(s->faces, s->n_faces, s->n_verts, &rf->topo, &err), SL_OK);
    rf->raw = malloc(s->n_verts * 12);
    rf->vn = malloc(s->n_verts * 12);
    dm_vertex_normals(s->verts, s->n_verts, s->faces, s->n_faces, rf->raw, rf->vn);
    rf->m = (dm_raster_mesh){ s->verts, rf->vn, s->faces, rf->topo.opposite, s->n_verts,
                              s->n_faces };
}

static void raster_teardown(raster_fixture *rf)
{
    free(rf->raw);
    free(rf->vn);
    dm_topology_free(&rf->topo);
    mt_teardown(&rf->mt);
}

static void view_alloc(dm_raster_view *v, size_t px, size_t nv, size_t nf)
{
    v->tri = malloc(px * 4);
    v->hit = malloc(px * 12);
    v->uv = malloc(nv * 8);
    v->zc = malloc(nv * 4);
    v->facing = malloc(nf);
}

static void view_free(dm_raster_view *v)
{
    free(v->tri), free(v->hit), free(v->uv), free(v->zc), free(v->facing);
}

START_TEST(test_raster_brute_force)
{
    raster_fixture rf;
    raster_setup(&rf, 12, 0.2f);
    enum { H = 40, W = 48 };
    sl_camera cam;
    sl_camera_orbit(35, 25, 2.2f, NULL, 50, W, H, &cam);
    dm_raster_view v;
    view_alloc(&v, (size_t)H * W, rf.m.n_verts, rf.m.n_faces);
    dm_raster_scratch sc = { 0 };
    sl_error err;
    ck_assert_int_eq(dm_rasterize(&rf.m, &cam, &v, &sc, &err), SL_OK);
    int covered = 0, compared = 0;
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            /* Reference: unit-direction ray from the eye, Moeller-Trumbore in double over
             * every triangle; depth = hit distance times the direction's forward part. */
            double c[3] = { (j + 0.5 - cam.cx) / cam.fx, (i + 0.5 - cam.cy) / cam.fy, 1 };
            double d[3], len = sqrt(c[0] * c[0] + c[1] * c[1] + 1);
            for (int k = 0; k < 3; k++)
                d[k] = (cam.rot[3 * k] * c[0] + cam.rot[3 * k + 1] * c[1] + cam.rot[3 * k + 2]) / len;
            double best = INFINITY, second = INFINITY, margin = 0;
            int bf = -1;
            for (size_t f = 0; f < rf.m.n_faces; f++) {
                double x[3][3];
                for (int q = 0; q < 3; q++)
                    for (int k = 0; k < 3; k++)
                        x[q][k] = rf.m.verts[3 * (size_t)rf.m.faces[3 * f + q] + k];
                double e1[3], e2[3], pv[3], tv[3], qv[3];
                for (int k = 0; k < 3; k++)
                    e1[k] = x[1][k] - x[0][k], e2[k] = x[2][k] - x[0][k], tv[k] = cam.eye[k] - x[0][k];
                dmtetd_cross3(d, e2, pv);
                double det = dmtetd_dot3(e1, pv);
                if (fabs(det) < 1e-14)
                    continue;
                double u = dmtetd_dot3(tv, pv) / det;
                dmtetd_cross3(tv, e1, qv);
                double w = dmtetd_dot3(d, qv) / det, t = dmtetd_dot3(e2, qv) / det;
                double mn = fmin(fmin(u, w), 1 - u - w);
                if (mn < -1e-9 || t <= 0)
                    continue;
                if (t < best) {
                    second = best;
                    best = t, bf = (int)f, margin = mn;
                } else if (t < second) {
                    second = t;
                }
            }
            size_t p = (size_t)i * W + j;
            if (bf < 0) {
                ck_assert_msg(v.tri[p] == -1, "pixel (%d, %d): raster %d, reference background",
                              i, j, v.tri[p]);
                continue;
            }
            covered++;
            double zref = best / len;
            /* Pixels on an edge (barycentric margin < 1e-4) may legitimately go either way. */
            if (margin < 1e-4 || second - best < 1e-5)
                continue;
            compared++;
            ck_assert_msg(v.tri[p] == bf, "pixel (%d, %d): raster face %d, reference %d", i, j,
                          v.tri[p], bf);
            ck_assert_msg(fabs(v.hit[3 * p] - zref) < 1e-4, "pixel (%d, %d): depth %g vs %g", i,
                          j, v.hit[3 * p], zref);
        }
    ck_assert_int_gt(covered, H * W / 6);
    ck_assert_int_gt(compared, covered * 8 / 10);
    dm_raster_scratch_free(&sc);
    view_free(&v);
    raster_teardown(&rf);
}
END_TEST

/* ------------------------------------------------------------------ the plugin */

static const char *const small_spec =
    "grid_resolution: 8\nradius: 1.0\ninit_radius: 0.55\ndeform_fraction: 0.3\n"
    "levels: 4\nlog2_table_size: 10\nbase_resolution: 4\ncolor_width: 8\n"
    "background_color: [0.2, 0.3, 0.9]\n";

/* A constant texture (zero table and weights, distinct output biases) so the colour does
 * not depend on where it is looked up. */
static void constant_texture(dm_inst *in)
{
    dmtet_state *s = in->s;
    memset(s->table, 0, s->n_table * 4);
    memset(s->mlp_p, 0, s->mlp.n_params * 4);
    const nerf_mlp *m = &s->mlp;
    float *bias = s->mlp_p + m->b_off[m->n_layers - 1];
    bias[0] = 1.5f, bias[1] = -0.5f, bias[2] = 0.2f;
}

/* Random deformations and a perturbed SDF, signs kept 0.03 from zero. */
static void perturb_geometry(dm_inst *in, uint32_t sample)
{
    dmtet_state *s = in->s;
    size_t nv = s->grid.n_vertices;
    for (size_t v = 0; v < nv; v++) {
        for (int k = 0; k < 3; k++)
            s->def[3 * v + k] = 0.5f * (float)test_normal1(sample, 4 * v + k);
        s->sdf[v] += 0.03f * (float)test_normal1(sample, 4 * v + 3);
        if (fabsf(s->sdf[v]) < 0.03f)
            s->sdf[v] = s->sdf[v] < 0 ? -0.03f : 0.03f;
    }
}

typedef struct loss_weights {
    float *rgb, *depth, *normal, *opacity;   /* (B H W [3]) upstream gradients or NULL */
} loss_weights;

static double render_loss(dm_inst *in, const sl_camera *cams, int B, int H, int W,
                          const loss_weights *w, int32_t *tri_out)
{
    size_t px = (size_t)B * H * W;
    sl_render r = { B, H, W, malloc(px * 12), malloc(px * 4), malloc(px * 12), malloc(px * 4) };
    sl_render_request req = { cams, B, 3, SL_RENDER_TRAIN };
    sl_error err;
    ck_assert_int_eq(VT()->render(in->s, &req, &r, &err), SL_OK);
    double l = 0;
    for (size_t i = 0; i < px; i++) {
        for (int c = 0; c < 3; c++) {
            if (w->rgb)
                l += (double)w->rgb[3 * i + c] * r.rgb[3 * i + c];
            if (w->normal)
                l += (double)w->normal[3 * i + c] * r.normal[3 * i + c];
        }
        if (w->depth)
            l += (double)w->depth[i] * r.depth[i];
        if (w->opacity)
            l += (double)w->opacity[i] * r.opacity[i];
    }
    if (tri_out)
        for (int b = 0; b < B; b++)
            memcpy(tri_out + (size_t)b * H * W, in->s->views[b].v.tri, (size_t)H * W * 4);
    free(r.rgb), free(r.depth), free(r.normal), free(r.opacity);
    return l;
}

static void two_cams(sl_camera *cams, int H, int W)
{
    sl_camera_orbit(20, 15, 2.4f, NULL, 45, W, H, &cams[0]);
    sl_camera_orbit(-110, 35, 2.6f, NULL, 50, W, H, &cams[1]);
}

/* FD of the render loss w.r.t. deformations and SDF values, skipping parameters whose
 * steps change which face a pixel shows (a discontinuity of the rasterised image). */
static void check_geometry_gradient(const loss_weights *w, int B, int H, int W, int textured,
                                    double *norm_out, int *checked_out)
{
    dm_inst in;
    dm_new(&in, small_spec);
    if (textured) {
        /* A texture that varies over the surface: the colour's lookup position then carries
         * gradient into the vertices everywhere, not only at silhouettes. */
        test_normal(50, in.s->n_table, in.s->table);
        test_normal(51, in.s->mlp.n_params, in.s->mlp_p);
    } else {
        constant_texture(&in);
    }
    perturb_geometry(&in, 5);
    sl_camera cams[2];
    two_cams(cams, H, W);
    size_t px = (size_t)B * H * W;
    int32_t *tri0 = malloc(px * 4), *tri1 = malloc(px * 4);
    render_loss(&in, cams, B, H, W, w, tri0);
    sl_render g = { B, H, W, w->rgb, w->depth, w->normal, w->opacity };
    sl_error err;
    ck_assert_int_eq(VT()->backward(in.s, &g, &err), SL_OK);
    dmtet_state *s = in.s;
    size_t nv = s->grid.n_vertices;
    float *dsdf = malloc(nv * 4), *ddef = malloc(nv * 12);
    memcpy(dsdf, s->dsdf, nv * 4);
    memcpy(ddef, s->ddef, nv * 12);
    const float hstep = 2e-3f;
    int checked = 0;
    double norm = 0;
    for (size_t i = 0; i < 4 * nv && checked < 60; i++) {
        int is_sdf = i >= 3 * nv;
        float *param = is_sdf ? &s->sdf[i - 3 * nv] : &s->def[i];
        double an = is_sdf ? dsdf[i - 3 * nv] : ddef[i];
        if (fabs(an) < 1e-4)
            continue;
        float keep = *param;
        double l[2];
        int jump = 0;
        for (int sgn = 0; sgn < 2; sgn++) {
            *param = keep + (sgn ? -hstep : hstep);
            l[sgn] = render_loss(&in, cams, B, H, W, w, tri1);
            for (size_t p = 0; p < px && !jump; p++)
                jump = (tri0[p] < 0) != (tri1[p] < 0);
            jump |= s->surf.n_faces == 0;
        }
        *param = keep;
        if (jump)
            continue;
        double fd = (l[0] - l[1]) / (2 * hstep);
        ck_assert_msg(fabs(an - fd) <= 5e-2 * fabs(fd) + 2e-3 * (1 + fabs(an)),
                      "%s %zu: analytic %g FD %g", is_sdf ? "sdf" : "deformation",
                      is_sdf ? i - 3 * nv : i, an, fd);
        norm += fabs(an);
        checked++;
    }
    *norm_out = norm;
    *checked_out = checked;
    free(tri0), free(tri1), free(dsdf), free(ddef);
    dm_free(&in);
}

START_TEST(test_render_gradients_geometry)
{
    enum { B = 2, H = 20, W = 22 };
    size_t px = (size_t)B * H * W;
    float *wr = malloc(px * 12), *wd = malloc(px * 4), *wn = malloc(px * 12);
    float *wo = malloc(px * 4);
    test_normal(10, px * 3, wr);
    test_normal(11, px, wd);
    test_normal(12, px * 3, wn);
    test_normal(13, px, wo);
    /* Everything at once. */
    loss_weights all = { wr, wd, wn, wo };
    double norm;
    int checked;
    check_geometry_gradient(&all, B, H, W, 0, &norm, &checked);
    ck_assert_int_ge(checked, 20);
    ck_assert(norm > 1e-2);
    /* Opacity alone: its only gradient is the silhouettes' (covered pixels have opacity 1
     * whatever the geometry), so this checks the antialiasing's gradient on its own. */
    loss_weights sil = { NULL, NULL, NULL, wo };
    check_geometry_gradient(&sil, B, H, W, 0, &norm, &checked);
    ck_assert_int_ge(checked, 10);
    ck_assert_msg(norm > 1e-3, "silhouette gradient is zero");
    /* Colour alone with a varying texture: silhouettes and the lookup position. */
    loss_weights col = { wr, NULL, NULL, NULL };
    check_geometry_gradient(&col, B, H, W, 1, &norm, &checked);
    ck_assert_int_ge(checked, 20);
    ck_assert(norm > 1e-2);
    free(wr), free(wd), free(wn), free(wo);
}
END_TEST

START_TEST(test_render_gradients_texture)
{
    enum { B = 2, H = 16, W = 16 };
    dm_inst in;
    dm_new(&in, small_spec);
    perturb_geometry(&in, 6);
    dmtet_state *s = in.s;
    test_normal(20, s->n_table, s->table);
    test_normal(21, s->mlp.n_params, s->mlp_p);
    for (size_t i = 0; i < s->n_table; i++)
        s->table[i] *= 0.5f;
    size_t px = (size_t)B * H * W;
    float *wr = malloc(px * 12);
    test_normal(22, px * 3, wr);
    loss_weights w = { wr, NULL, NULL, NULL };
    sl_camera cams[2];
    two_cams(cams, H, W);
    render_loss(&in, cams, B, H, W, &w, NULL);
    sl_render g = { B, H, W, wr, NULL, NULL, NULL };
    sl_error err;
    ck_assert_int_eq(VT()->backward(in.s, &g, &err), SL_OK);
    float *params[2] = { s->table, s->mlp_p }, *grads[2] = { s->dtable, s->dmlp_p };
    size_t counts[2] = { s->n_table, s->mlp.n_params };
    const float hstep = 1e-3f;
    for (int grp = 0; grp < 2; grp++) {
        int checked = 0;
        double norm = 0;
        for (size_t i = 0; i < counts[grp] && checked < 30; i++) {
            double an = grads[grp][i];
            if (fabs(an) < 1e-3)
                continue;
            float keep = params[grp][i];
            double l[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                params[grp][i] = keep + (sgn ? -hstep : hstep);
                l[sgn] = render_loss(&in, cams, B, H, W, &w, NULL);
            }
            params[grp][i] = keep;
            double fd = (l[0] - l[1]) / (2 * hstep);
            ck_assert_msg(fabs(an - fd) <= 2e-2 * fabs(fd) + 1e-3, "group %d [%zu]: analytic %g "
                          "FD %g", grp, i, an, fd);
            norm += fabs(an);
            checked++;
        }
        ck_assert_int_ge(checked, 10);
        ck_assert(norm > 1e-2);
    }
    free(wr);
    dm_free(&in);
}
END_TEST

START_TEST(test_threads_bit_identical)
{
    enum { B = 2, H = 24, W = 20 };
    sl_camera cams[2];
    two_cams(cams, H, W);
    size_t px = (size_t)B * H * W;
    float *G = malloc(px * 12), *Gd = malloc(px * 4), *Gn = malloc(px * 12), *Go = malloc(px * 4);
    test_normal(30, px * 3, G);
    test_normal(31, px, Gd);
    test_normal(32, px * 3, Gn);
    test_normal(33, px, Go);
    float *ref_out = NULL, *ref_grad = NULL;
    size_t nout = px * 8, ngrad = 0;
    int max_threads = omp_get_max_threads();
    for (int threads = 1; threads <= 3; threads++) {
        omp_set_num_threads(threads);
        dm_inst in;
        dm_new(&in, "grid_resolution: 12\nlevels: 4\nlog2_table_size: 10\nbackground: random\n"
                    "lambda_normal_consistency: 0.1\nlambda_laplacian: 0.5\n");
        perturb_geometry(&in, 7);
        test_normal(34, in.s->mlp.n_params, in.s->mlp_p);
        sl_render r = { B, H, W, malloc(px * 12), malloc(px * 4), malloc(px * 12),
                        malloc(px * 4) };
        sl_render_request req = { cams, B, 5, SL_RENDER_TRAIN };
        sl_error err;
        ck_assert_int_eq(VT()->render(in.s, &req, &r, &err), SL_OK);
        sl_render grad = { B, H, W, G, Gd, Gn, Go };
        ck_assert_int_eq(VT()->backward(in.s, &grad, &err), SL_OK);
        sl_param_group g[4];
        size_t ng = VT()->param_groups(in.s, g, 4);
        float *out = malloc(nout * 4);
        memcpy(out, r.rgb, px * 12);
        memcpy(out + px * 3, r.depth, px * 4);
        memcpy(out + px * 4, r.normal, px * 12);
        memcpy(out + px * 7, r.opacity, px * 4);
        ngrad = 0;
        for (size_t i = 0; i < ng; i++)
            ngrad += g[i].n;
        float *gr = malloc(ngrad * 4), *p = gr;
        for (size_t i = 0; i < ng; i++) {
            memcpy(p, g[i].grad, g[i].n * 4);
            p += g[i].n;
        }
        if (!ref_out) {
            ref_out = out;
            ref_grad = gr;
            double gn = 0;
            for (size_t i = 0; i < ngrad; i++)
                gn += fabs(gr[i]);
            ck_assert(gn > 0);
            double nc = 0, lap = 0;
            ck_assert(test_host_recorded(&in.host, "dmtet_normal_consistency", &nc));
            ck_assert(test_host_recorded(&in.host, "dmtet_laplacian", &lap));
            ck_assert(nc > 0 && lap > 0);
        } else {
            ck_assert_msg(memcmp(out, ref_out, nout * 4) == 0, "render differs with %d threads",
                          threads);
            ck_assert_msg(memcmp(gr, ref_grad, ngrad * 4) == 0, "gradients differ with %d "
                          "threads", threads);
            free(out);
            free(gr);
        }
        free(r.rgb), free(r.depth), free(r.normal), free(r.opacity);
        dm_free(&in);
    }
    omp_set_num_threads(max_threads);
    free(ref_out), free(ref_grad), free(G), free(Gd), free(Gn), free(Go);
}
END_TEST

START_TEST(test_field_and_export)
{
    dm_inst in;
    dm_new(&in, "grid_resolution: 24\ninit_radius: 0.6\n");
    float bounds[6], level;
    VT()->field_bounds(in.s, bounds, &level);
    ck_assert_float_eq(level, 0.0f);
    float pts[6] = { 0, 0, 0, 0.9f, 0, 0 }, dens[2];
    sl_error err;
    ck_assert_int_eq(VT()->sample_field(in.s, pts, 2, dens, NULL, &err), SL_OK);
    ck_assert(dens[0] > 0.5f && dens[1] < -0.2f);
    sl_mesh m;
    ck_assert_int_eq(sl_mesh_extract(VT()->sample_field, in.s, bounds, 48, level, 1, &m, &err),
                     SL_OK);
    ck_assert_uint_gt(m.n_faces, 500);
    double worst = 0;
    for (size_t v = 0; v < m.n_vertices; v++) {
        const float *p = m.vertices + 3 * v;
        worst = fmax(worst, fabs(sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]) - 0.6));
    }
    ck_assert_msg(worst < 0.02, "exported vertex %.3g off the sphere", worst);
    sl_mesh_free(&m);
    /* An all-outside SDF renders the background only, with zero opacity. */
    for (size_t v = 0; v < in.s->grid.n_vertices; v++)
        in.s->sdf[v] = 1;
    sl_camera cam;
    sl_camera_orbit(0, 0, 2.5f, NULL, 50, 8, 8, &cam);
    float rgb[192], op[64];
    sl_render r = { 1, 8, 8, rgb, NULL, NULL, op };
    sl_render_request req = { &cam, 1, 0, SL_RENDER_EVAL };
    ck_assert_int_eq(VT()->render(in.s, &req, &r, &err), SL_OK);
    for (int i = 0; i < 64; i++)
        ck_assert(op[i] == 0 && rgb[3 * i] == 1);
    dm_free(&in);
}
END_TEST

/* surface_mesh is the deformed surface that renders (not the undeformed level set that
 * sample_field gives), coloured by the texture, and the host's mesh takes it. */
START_TEST(test_surface_mesh_is_the_deformed_surface)
{
    dm_inst in;
    dm_new(&in, "grid_resolution: 16\ninit_radius: 0.6\n");
    sl_error err;
    sl_mesh plain, moved, host_mesh;
    ck_assert(SL_REPRESENTATION_HAS(VT(), surface_mesh));
    ck_assert_int_eq(VT()->surface_mesh(in.s, &plain, &err), SL_OK);
    ck_assert_uint_gt(plain.n_faces, 100);
    ck_assert_ptr_nonnull(plain.colors);
    /* A uniform deformation translates every grid vertex, hence every surface vertex. */
    const float d = 0.8f;
    for (size_t v = 0; v < 3 * in.s->grid.n_vertices; v++)
        in.s->def[v] = d;
    ck_assert_int_eq(VT()->surface_mesh(in.s, &moved, &err), SL_OK);
    ck_assert_uint_eq(moved.n_vertices, plain.n_vertices);
    ck_assert_uint_eq(moved.n_faces, plain.n_faces);
    ck_assert_mem_eq(moved.faces, plain.faces, plain.n_faces * 3 * sizeof(int32_t));
    double worst = 0;
    for (int k = 0; k < 3; k++)
        ck_assert(in.s->deform_scale[k] * tanh((double)d) > 0.1 * in.s->grid.cell[k]);
    for (size_t v = 0; v < plain.n_vertices; v++)
        for (int k = 0; k < 3; k++) {
            double shift = in.s->deform_scale[k] * tanh((double)d);
            worst = fmax(worst, fabs(moved.vertices[3 * v + k] - plain.vertices[3 * v + k] -
                                     shift));
        }
    ck_assert_msg(worst < 1e-5, "vertices off the translated surface by %.3g", worst);
    /* Colours are the texture at the (moved) vertices. */
    float *rec = malloc((size_t)in.s->rec_size * sizeof(float));
    for (size_t v = 0; v < moved.n_vertices; v += 37) {
        dmtet_texture(in.s, moved.vertices + 3 * v, rec);
        for (int c = 0; c < 3; c++)
            ck_assert_int_eq(moved.colors[3 * v + c],
                             (int)lrintf(255.0f * rec[in.s->rec_size - 3 + c]));
    }
    free(rec);
    /* The host's mesh (final mesh, Chamfer, export) is this surface, whatever resolution. */
    float bounds[6], level;
    ck_assert_int_eq(sl_repr_extract_mesh(VT(), in.s, 48, NAN, &host_mesh, bounds, &level,
                                          &err), SL_OK);
    ck_assert_uint_eq(host_mesh.n_vertices, moved.n_vertices);
    ck_assert_mem_eq(host_mesh.vertices, moved.vertices, moved.n_vertices * 3 * sizeof(float));
    ck_assert_float_eq(level, 0.0f);
    sl_mesh_free(&plain), sl_mesh_free(&moved), sl_mesh_free(&host_mesh);
    /* A texture gone NaN (here the output layer's first bias: ReLUs would zero a NaN in a
     * hidden layer) is an error, not black vertices. */
    float *bias = in.s->mlp_p + in.s->mlp.b_off[in.s->mlp.n_layers - 1];
    const float keep = bias[0];
    bias[0] = NAN;
    ck_assert_int_eq(VT()->surface_mesh(in.s, &plain, &err), SL_ERR_NONFINITE);
    ck_assert_ptr_null(plain.vertices);
    bias[0] = keep;
    /* No crossing: an empty mesh, not an error. */
    for (size_t v = 0; v < in.s->grid.n_vertices; v++)
        in.s->sdf[v] = 1;
    ck_assert_int_eq(VT()->surface_mesh(in.s, &plain, &err), SL_OK);
    ck_assert_uint_eq(plain.n_faces, 0);
    sl_mesh_free(&plain);
    dm_free(&in);
}
END_TEST

/* A log-like file holding a mesh under /mesh (as the driver writes it). */
static void write_mesh_h5(const char *path, const sl_mesh *m)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(f >= 0);
    hid_t g = H5Gcreate2(f, "/mesh", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dv[2] = { m->n_vertices, 3 }, df[2] = { m->n_faces, 3 };
    hid_t sv = H5Screate_simple(2, dv, NULL), sf = H5Screate_simple(2, df, NULL);
    hid_t v = H5Dcreate2(f, "/mesh/vertices", H5T_NATIVE_FLOAT, sv, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    hid_t fc = H5Dcreate2(f, "/mesh/faces", H5T_NATIVE_INT32, sf, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    ck_assert(H5Dwrite(v, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->vertices) >= 0);
    ck_assert(H5Dwrite(fc, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->faces) >= 0);
    H5Dclose(v), H5Dclose(fc), H5Sclose(sv), H5Sclose(sf), H5Gclose(g), H5Fclose(f);
}

START_TEST(test_init_from_run_mesh)
{
    /* A sphere of radius 0.55 by marching cubes on an analytic density. */
    enum { R = 48 };
    float *vals = malloc((size_t)R * R * R * sizeof(float));
    for (int k = 0; k < R; k++)
        for (int j = 0; j < R; j++)
            for (int i = 0; i < R; i++) {
                float x = -1 + 2.0f * i / (R - 1), y = -1 + 2.0f * j / (R - 1),
                      z = -1 + 2.0f * k / (R - 1);
                vals[((size_t)k * R + j) * R + i] = 0.55f - sqrtf(x * x + y * y + z * z);
            }
    int dims[3] = { R, R, R };
    float origin[3] = { -1, -1, -1 }, spacing[3] = { 2.0f / (R - 1), 2.0f / (R - 1), 2.0f / (R - 1) };
    sl_mesh m;
    sl_error err = { "" };
    ck_assert_int_eq(sl_mesh_from_grid(vals, dims, origin, spacing, 0, &m, &err), SL_OK);
    free(vals);
    char path[] = "/tmp/steinlab-dmtet-meshXXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    write_mesh_h5(path, &m);
    sl_mesh_free(&m);
    char yaml[512];
    snprintf(yaml, sizeof yaml, "grid_resolution: 20\ninit: run_mesh\ninit_run: %s\n", path);
    dm_inst in;
    dm_new(&in, yaml);
    double worst = 0;
    int wrong_sign = 0;
    for (size_t v = 0; v < in.s->grid.n_vertices; v++) {
        const float *x = in.s->base + 3 * v;
        double exact = sqrt((double)x[0] * x[0] + (double)x[1] * x[1] + (double)x[2] * x[2]) - 0.55;
        worst = fmax(worst, fabs(in.s->sdf[v] - exact));
        wrong_sign += fabs(exact) > 0.01 && (in.s->sdf[v] < 0) != (exact < 0);
    }
    ck_assert_int_eq(wrong_sign, 0);
    ck_assert_msg(worst < 0.02, "SDF from the mesh off by %g", worst);
    /* Its surface renders like the analytic sphere's. */
    sl_camera cam;
    sl_camera_orbit(10, 10, 2.5f, NULL, 50, 16, 16, &cam);
    float op[256];
    sl_render r = { 1, 16, 16, NULL, NULL, NULL, op };
    sl_render_request req = { &cam, 1, 0, SL_RENDER_EVAL };
    ck_assert_int_eq(VT()->render(in.s, &req, &r, &err), SL_OK);
    ck_assert(op[8 * 16 + 8] == 1 && op[0] == 0);
    dm_free(&in);

    /* Refusals. */
    ck_assert_int_eq(dm_try(&in, "init: run_mesh\n", &err), SL_ERR_SPEC);
    ck_assert_ptr_nonnull(strstr(err.msg, "init_run"));
    sl_params_free(in.params);
    ck_assert_int_eq(dm_try(&in, "init: run_mesh\ninit_run: /nonexistent/run.h5\n", &err),
                     SL_ERR_IO);
    sl_params_free(in.params);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    ck_assert_int_eq(dm_try(&in, yaml, &err), SL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "/mesh"));
    sl_params_free(in.params);
    unlink(path);
}
END_TEST

static Suite *dmtet_suite(void)
{
    Suite *s = suite_create("dmtet");
    TCase *m = tcase_create("math");
    tcase_add_test(m, test_math_vjps);
    tcase_add_test(m, test_mt_table);
    tcase_add_test(m, test_sphere_watertight);
    tcase_add_test(m, test_mt_gradients);
    tcase_add_test(m, test_surface_ops_gradients);
    tcase_add_test(m, test_raster_brute_force);
    tcase_set_timeout(m, 300);
    suite_add_tcase(s, m);
    TCase *r = tcase_create("render");
    tcase_set_timeout(r, 300);
    tcase_add_test(r, test_render_gradients_geometry);
    tcase_add_test(r, test_render_gradients_texture);
    tcase_add_test(r, test_threads_bit_identical);
    tcase_add_test(r, test_field_and_export);
    tcase_add_test(r, test_surface_mesh_is_the_deformed_surface);
    tcase_add_test(r, test_init_from_run_mesh);
    suite_add_tcase(s, r);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dmtet_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
