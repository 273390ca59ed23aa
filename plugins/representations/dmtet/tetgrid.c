/* plugins/representations/dmtet/tetgrid.c — the tetrahedral grid and marching tetrahedra
 * (contract in tetgrid.h). */
#include "tetgrid.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dmtet_math.h"

/* Parity of a permutation of n elements: 1 when odd. */
static int perm_odd(const int *p, int n)
{
    int inv = 0;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            inv += p[a] > p[b];
    return inv & 1;
}

void dm_mt_table(dm_mt_case table[16])
{
    /* All 24 permutations of (0, 1, 2, 3), even ones used to fix the orientation. */
    int perms[24][4], np = 0;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++)
                for (int d = 0; d < 4; d++)
                    if (a != b && a != c && a != d && b != c && b != d && c != d) {
                        perms[np][0] = a, perms[np][1] = b, perms[np][2] = c, perms[np][3] = d;
                        np++;
                    }
    for (int mask = 0; mask < 16; mask++) {
        dm_mt_case *tc = &table[mask];
        memset(tc, 0, sizeof *tc);
        int n_in = __builtin_popcount((unsigned)mask);
        if (n_in == 0 || n_in == 4)
            continue;
        for (int q = 0; q < np; q++) {
            const int *p = perms[q];
            if (perm_odd(p, 4))
                continue;
            int i = p[0], j = p[1], k = p[2], l = p[3];
            int in_i = (mask >> i) & 1, in_j = (mask >> j) & 1;
            int in_k = (mask >> k) & 1, in_l = (mask >> l) & 1;
#define DM_SET(t, e, u, v) (tc->edge[t][e][0] = (uint8_t)(u), tc->edge[t][e][1] = (uint8_t)(v))
            if (n_in == 1 && in_i) {
                tc->n_tris = 1;
                DM_SET(0, 0, i, j), DM_SET(0, 1, i, k), DM_SET(0, 2, i, l);
                break;
            }
            if (n_in == 3 && !in_i) {
                tc->n_tris = 1;
                DM_SET(0, 0, i, j), DM_SET(0, 1, i, l), DM_SET(0, 2, i, k);
                break;
            }
            if (n_in == 2 && in_i && in_j && !in_k && !in_l) {
                tc->n_tris = 2;
                DM_SET(0, 0, i, k), DM_SET(0, 1, i, l), DM_SET(0, 2, j, l);
                DM_SET(1, 0, i, k), DM_SET(1, 1, j, l), DM_SET(1, 2, j, k);
                break;
            }
#undef DM_SET
        }
    }
}

void dm_tetgrid_init(dm_tetgrid *g, int res, const float bmin[3], const float bmax[3])
{
    memset(g, 0, sizeof *g);
    g->res = res;
    g->n_vertices = (size_t)(res + 1) * (res + 1) * (res + 1);
    for (int k = 0; k < 3; k++) {
        g->bmin[k] = bmin[k];
        g->bmax[k] = bmax[k];
        g->cell[k] = (bmax[k] - bmin[k]) / (float)res;
    }
    /* Kuhn tetrahedra: permutations of the three axes in a fixed order. */
    static const int axes[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
                                    { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
    for (int t = 0; t < 6; t++) {
        uint8_t c1 = (uint8_t)(1u << axes[t][0]);
        uint8_t c2 = (uint8_t)(c1 | (1u << axes[t][1]));
        g->tets[t][0] = 0;
        g->tets[t][1] = c1;
        /* det(e_p0, e_p0 + e_p1, e_p0 + e_p1 + e_p2) = sign(p): swap the last two corners of
         * odd permutations to make every tetrahedron positive. */
        int odd = perm_odd(axes[t], 3);
        g->tets[t][2] = odd ? 7 : c2;
        g->tets[t][3] = odd ? c2 : 7;
    }
}

void dm_tetgrid_vertex(const dm_tetgrid *g, size_t v, float x[3])
{
    size_t n = (size_t)g->res + 1;
    size_t idx[3] = { v % n, (v / n) % n, v / (n * n) };
    for (int k = 0; k < 3; k++)
        x[k] = idx[k] == (size_t)g->res ? g->bmax[k] : g->bmin[k] + (float)idx[k] * g->cell[k];
}

void dm_surface_free(dm_surface *s)
{
    free(s->verts);
    free(s->faces);
    free(s->edge_a);
    free(s->edge_b);
    free(s->edge_id);
    free(s->edge_map);
    free(s->inside);
    memset(s, 0, sizeof *s);
}

static int grow_verts(dm_surface *s)
{
    size_t cap = s->cap_verts ? 2 * s->cap_verts : 4096;
    float *v = realloc(s->verts, cap * 3 * sizeof(float));
    if (!v)
        return 0;
    s->verts = v;
    int32_t *a = realloc(s->edge_a, cap * sizeof(int32_t));
    if (!a)
        return 0;
    s->edge_a = a;
    int32_t *b = realloc(s->edge_b, cap * sizeof(int32_t));
    if (!b)
        return 0;
    s->edge_b = b;
    int64_t *e = realloc(s->edge_id, cap * sizeof(int64_t));
    if (!e)
        return 0;
    s->edge_id = e;
    s->cap_verts = cap;
    return 1;
}

static int grow_faces(dm_surface *s)
{
    size_t cap = s->cap_faces ? 2 * s->cap_faces : 8192;
    int32_t *f = realloc(s->faces, cap * 3 * sizeof(int32_t));
    if (!f)
        return 0;
    s->faces = f;
    s->cap_faces = cap;
    return 1;
}

/* Deformed position of grid vertex v. */
static void deformed(const float *base, const float *def, const float scale[3], size_t v,
                     float x[3])
{
    for (int k = 0; k < 3; k++)
        x[k] = dmtet_deform(base[3 * v + k], scale[k], def[3 * v + k]);
}

sl_status dm_marching_tets(const dm_tetgrid *g, const dm_mt_case table[16], const float *base,
                           const float *def, const float scale[3], const float *sdf,
                           dm_surface *s, sl_error *err)
{
    const size_t nv = g->n_vertices;
    if (s->edge_map_n != 7 * nv) {
        free(s->edge_map);
        free(s->inside);
        s->edge_map = malloc(7 * nv * sizeof(int32_t));
        s->inside = malloc(nv);
        if (!s->edge_map || !s->inside) {
            s->edge_map_n = 0;
            return sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory (edge map of %zu "
                                "grid vertices)", nv);
        }
        memset(s->edge_map, 0xff, 7 * nv * sizeof(int32_t));   /* all -1 */
        s->edge_map_n = 7 * nv;
    }
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad)
    for (size_t v = 0; v < nv; v++) {
        bad |= !isfinite(sdf[v]);
        s->inside[v] = sdf[v] < 0;
    }
    if (bad)
        return sl_error_set(err, SL_ERR_NONFINITE, "dmtet: the SDF has a non-finite value");
    s->n_verts = 0;
    s->n_faces = 0;
    const int N = g->res;
    const size_t n1 = (size_t)N + 1, n2 = n1 * n1;
    size_t corner_off[8];
    for (int c = 0; c < 8; c++)
        corner_off[c] = (size_t)(c & 1) + ((c >> 1) & 1) * n1 + ((c >> 2) & 1) * n2;
    sl_status st = SL_OK;
    for (int k = 0; k < N && st == SL_OK; k++)
        for (int j = 0; j < N && st == SL_OK; j++)
            for (int i = 0; i < N; i++) {
                size_t cube = (size_t)i + n1 * (size_t)j + n2 * (size_t)k;   /* its corner 0 */
                unsigned cmask = 0;
                for (int c = 0; c < 8; c++)
                    cmask |= (unsigned)s->inside[cube + corner_off[c]] << c;
                if (cmask == 0 || cmask == 255)
                    continue;
                for (int t = 0; t < 6; t++) {
                    const uint8_t *tc = g->tets[t];
                    unsigned m = 0;
                    for (int q = 0; q < 4; q++)
                        m |= ((cmask >> tc[q]) & 1u) << q;
                    const dm_mt_case *cs = &table[m];
                    for (int tri = 0; tri < cs->n_tris; tri++) {
                        if (s->n_faces == s->cap_faces && !grow_faces(s)) {
                            st = sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory "
                                              "(%zu surface triangles)", s->n_faces);
                            goto done;
                        }
                        for (int e = 0; e < 3; e++) {
                            uint8_t ca = tc[cs->edge[tri][e][0]], cb = tc[cs->edge[tri][e][1]];
                            /* Kuhn corners are nested (one's bits contain the other's). */
                            uint8_t lo = (ca & cb) == ca ? ca : cb, hi = (uint8_t)(ca | cb);
                            size_t va = cube + corner_off[lo], vb = cube + corner_off[hi];
                            int64_t id = 7 * (int64_t)va + (int64_t)(lo ^ hi) - 1;
                            int32_t sv = s->edge_map[id];
                            if (sv < 0) {
                                if (s->n_verts == s->cap_verts && !grow_verts(s)) {
                                    st = sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory "
                                                      "(%zu surface vertices)", s->n_verts);
                                    goto done;
                                }
                                sv = (int32_t)s->n_verts++;
                                s->edge_map[id] = sv;
                                s->edge_a[sv] = (int32_t)va;
                                s->edge_b[sv] = (int32_t)vb;
                                s->edge_id[sv] = id;
                                float pa[3], pb[3];
                                deformed(base, def, scale, va, pa);
                                deformed(base, def, scale, vb, pb);
                                dmtet_crossing(pa, pb, sdf[va], sdf[vb],
                                               s->verts + 3 * (size_t)sv);
                            }
                            s->faces[3 * s->n_faces + (size_t)e] = sv;
                        }
                        s->n_faces++;
                    }
                }
            }
done:
    for (size_t v = 0; v < s->n_verts; v++)
        s->edge_map[s->edge_id[v]] = -1;
    return st;
}

void dm_marching_tets_backward(const dm_surface *s, const float *base, const float *def,
                               const float scale[3], const float *sdf, const float *dverts,
                               float *ddef, float *dsdf)
{
    for (size_t v = 0; v < s->n_verts; v++) {
        size_t a = (size_t)s->edge_a[v], b = (size_t)s->edge_b[v];
        float pa[3], pb[3], dpa[3] = { 0, 0, 0 }, dpb[3] = { 0, 0, 0 };
        deformed(base, def, scale, a, pa);
        deformed(base, def, scale, b, pb);
        dmtet_crossing_vjp(pa, pb, sdf[a], sdf[b], dverts + 3 * v, dpa, dpb, dsdf + a, dsdf + b);
        for (int k = 0; k < 3; k++) {
            ddef[3 * a + k] += dpa[k] * dmtet_deform_grad(scale[k], def[3 * a + k]);
            ddef[3 * b + k] += dpb[k] * dmtet_deform_grad(scale[k], def[3 * b + k]);
        }
    }
}
