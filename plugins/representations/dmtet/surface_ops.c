/* plugins/representations/dmtet/surface_ops.c — topology, vertex normals and regularisers
 * of an extracted mesh (contract in surface_ops.h). */
#include "surface_ops.h"

#include <stdlib.h>
#include <string.h>

#include "dmtet_math.h"

void dm_topology_free(dm_topology *t)
{
    free(t->opposite);
    free(t->edges);
    free(t->degree);
    free(t->keys);
    memset(t, 0, sizeof *t);
}

/* Undirected edge {u, v} as a nonzero key (0 marks an empty slot). */
static uint64_t edge_key(int32_t u, int32_t v)
{
    uint32_t lo = (uint32_t)(u < v ? u : v), hi = (uint32_t)(u < v ? v : u);
    return (((uint64_t)lo << 32) | hi) + 1;
}

enum { SLOT_NONE = 0xffffffffu, SLOT_MANY = 0xfffffffeu };

sl_status dm_topology_build(const int32_t *faces, size_t n_faces, size_t n_verts,
                            dm_topology *t, sl_error *err)
{
    /* Open-addressing table of the undirected edges, at most half full: (key, first
     * half-edge | second half-edge << 32) per slot. */
    size_t slots = 1024;
    while (slots < 4 * n_faces)
        slots *= 2;
    if (n_faces > t->cap_faces || t->opposite == NULL || 2 * slots > t->cap_keys) {
        size_t cap = n_faces > 1024 ? n_faces : 1024;
        free(t->opposite);
        free(t->edges);
        free(t->keys);
        t->opposite = malloc(cap * 3 * sizeof(int32_t));
        t->edges = malloc(cap * 3 * 2 * sizeof(int32_t));
        t->keys = malloc(2 * slots * sizeof(uint64_t));
        t->cap_keys = 2 * slots;
        t->cap_faces = t->opposite && t->edges && t->keys ? cap : 0;
        if (!t->cap_faces)
            return sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory (topology of %zu "
                                "faces)", n_faces);
    }
    if (n_verts > t->cap_verts || t->degree == NULL) {
        size_t cap = n_verts > 1024 ? n_verts : 1024;
        free(t->degree);
        t->degree = malloc(cap * sizeof(int32_t));
        t->cap_verts = t->degree ? cap : 0;
        if (!t->degree)
            return sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory (degrees of %zu "
                                "vertices)", n_verts);
    }
    memset(t->keys, 0, 2 * slots * sizeof(uint64_t));
    memset(t->degree, 0, n_verts * sizeof(int32_t));
    t->n_edges = 0;
    const size_t nh = 3 * n_faces;
    for (size_t h = 0; h < nh; h++) {
        int32_t u = faces[h], v = faces[h - h % 3 + (h % 3 + 1) % 3];
        uint64_t key = edge_key(u, v);
        size_t slot = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (slots - 1);
        while (t->keys[2 * slot] != 0 && t->keys[2 * slot] != key)
            slot = (slot + 1) & (slots - 1);
        t->opposite[h] = -1;
        uint64_t *val = &t->keys[2 * slot + 1];
        if (t->keys[2 * slot] == 0) {
            t->keys[2 * slot] = key;
            *val = (uint64_t)h | ((uint64_t)SLOT_NONE << 32);
            t->edges[2 * t->n_edges] = u;
            t->edges[2 * t->n_edges + 1] = v;
            t->n_edges++;
            t->degree[u]++;
            t->degree[v]++;
            continue;
        }
        size_t h1 = (size_t)(*val & 0xffffffffu);
        uint32_t second = (uint32_t)(*val >> 32);
        if (second == SLOT_NONE) {
            *val = (uint64_t)h1 | ((uint64_t)h << 32);
            /* A manifold, consistently oriented edge: the first traversal ran the other way. */
            if (faces[h1] == v) {
                t->opposite[h1] = (int32_t)(h / 3);
                t->opposite[h] = (int32_t)(h1 / 3);
            }
        } else {
            /* A third face on the edge: non-manifold, treated as a boundary everywhere. */
            if (second != SLOT_MANY) {
                t->opposite[h1] = -1;
                t->opposite[second] = -1;
            }
            *val = (uint64_t)h1 | ((uint64_t)SLOT_MANY << 32);
        }
    }
    return SL_OK;
}

static void face_cross(const float *verts, const int32_t *f, float e1[3], float e2[3],
                       float c[3])
{
    const float *x0 = verts + 3 * (size_t)f[0], *x1 = verts + 3 * (size_t)f[1],
                *x2 = verts + 3 * (size_t)f[2];
    for (int k = 0; k < 3; k++) {
        e1[k] = x1[k] - x0[k];
        e2[k] = x2[k] - x0[k];
    }
    dmtet_cross3(e1, e2, c);
}

/* Accumulates the gradient de1, de2 of the edges of face f into its vertices. */
static void scatter_edges(const int32_t *f, const float de1[3], const float de2[3],
                          float *dverts)
{
    float *d0 = dverts + 3 * (size_t)f[0], *d1 = dverts + 3 * (size_t)f[1],
          *d2 = dverts + 3 * (size_t)f[2];
    for (int k = 0; k < 3; k++) {
        d1[k] += de1[k];
        d2[k] += de2[k];
        d0[k] -= de1[k] + de2[k];
    }
}

void dm_vertex_normals(const float *verts, size_t n_verts, const int32_t *faces,
                       size_t n_faces, float *raw, float *normal)
{
    memset(raw, 0, n_verts * 3 * sizeof(float));
    for (size_t f = 0; f < n_faces; f++) {
        float e1[3], e2[3], c[3];
        face_cross(verts, faces + 3 * f, e1, e2, c);
        for (int q = 0; q < 3; q++)
            for (int k = 0; k < 3; k++)
                raw[3 * (size_t)faces[3 * f + q] + k] += c[k];
    }
#pragma omp parallel for schedule(static)
    for (size_t v = 0; v < n_verts; v++)
        dmtet_normalize(raw + 3 * v, normal + 3 * v);
}

void dm_vertex_normals_vjp(const float *verts, size_t n_verts, const int32_t *faces,
                           size_t n_faces, const float *raw, const float *dnormal,
                           float *scratch, float *dverts)
{
    memset(scratch, 0, n_verts * 3 * sizeof(float));
#pragma omp parallel for schedule(static)
    for (size_t v = 0; v < n_verts; v++)
        dmtet_normalize_vjp(raw + 3 * v, dnormal + 3 * v, scratch + 3 * v);
    for (size_t f = 0; f < n_faces; f++) {
        const int32_t *fv = faces + 3 * f;
        float dc[3] = { 0, 0, 0 };
        for (int q = 0; q < 3; q++)
            for (int k = 0; k < 3; k++)
                dc[k] += scratch[3 * (size_t)fv[q] + k];
        float e1[3], e2[3], c[3], de1[3] = { 0, 0, 0 }, de2[3] = { 0, 0, 0 };
        face_cross(verts, fv, e1, e2, c);
        dmtet_cross3_vjp(e1, e2, dc, de1, de2);
        scatter_edges(fv, de1, de2, dverts);
    }
}

double dm_normal_consistency(const float *verts, const int32_t *faces, size_t n_faces,
                             const dm_topology *t, double weight, float *dverts)
{
    size_t pairs = 0;
    for (size_t h = 0; h < 3 * n_faces; h++)
        pairs += t->opposite[h] > (int32_t)(h / 3);
    if (pairs == 0)
        return 0.0;
    double sum = 0;
    const float scale = (float)(weight / (double)pairs);
    for (size_t h = 0; h < 3 * n_faces; h++) {
        size_t f = h / 3;
        int32_t g = t->opposite[h];
        if (g <= (int32_t)f)
            continue;   /* each interior edge once, from its lower face */
        float e1f[3], e2f[3], cf[3], e1g[3], e2g[3], cg[3], nf[3], ng[3];
        face_cross(verts, faces + 3 * f, e1f, e2f, cf);
        face_cross(verts, faces + 3 * (size_t)g, e1g, e2g, cg);
        dmtet_normalize(cf, nf);
        dmtet_normalize(cg, ng);
        sum += 1.0 - (double)dmtet_dot3(nf, ng);
        if (!dverts)
            continue;
        float dnf[3], dng[3], dcf[3] = { 0, 0, 0 }, dcg[3] = { 0, 0, 0 };
        for (int k = 0; k < 3; k++) {
            dnf[k] = -scale * ng[k];
            dng[k] = -scale * nf[k];
        }
        dmtet_normalize_vjp(cf, dnf, dcf);
        dmtet_normalize_vjp(cg, dng, dcg);
        float de1[3] = { 0, 0, 0 }, de2[3] = { 0, 0, 0 };
        dmtet_cross3_vjp(e1f, e2f, dcf, de1, de2);
        scatter_edges(faces + 3 * f, de1, de2, dverts);
        float dg1[3] = { 0, 0, 0 }, dg2[3] = { 0, 0, 0 };
        dmtet_cross3_vjp(e1g, e2g, dcg, dg1, dg2);
        scatter_edges(faces + 3 * (size_t)g, dg1, dg2, dverts);
    }
    return weight * sum / (double)pairs;
}

double dm_laplacian(const float *verts, size_t n_verts, const dm_topology *t, double weight,
                    float *scratch, float *dverts)
{
    if (n_verts == 0)
        return 0.0;
    /* scratch = sum of the neighbours, then delta_v = x_v - scratch_v / deg_v. */
    memset(scratch, 0, n_verts * 3 * sizeof(float));
    for (size_t e = 0; e < t->n_edges; e++) {
        size_t u = (size_t)t->edges[2 * e], v = (size_t)t->edges[2 * e + 1];
        for (int k = 0; k < 3; k++) {
            scratch[3 * u + k] += verts[3 * v + k];
            scratch[3 * v + k] += verts[3 * u + k];
        }
    }
    double sum = 0;
    for (size_t v = 0; v < n_verts; v++) {
        if (t->degree[v] == 0) {
            scratch[3 * v] = scratch[3 * v + 1] = scratch[3 * v + 2] = 0;
            continue;
        }
        for (int k = 0; k < 3; k++) {
            float dlt = verts[3 * v + k] - scratch[3 * v + k] / (float)t->degree[v];
            scratch[3 * v + k] = dlt;
            sum += (double)dlt * dlt;
        }
    }
    if (dverts) {
        /* dL/dx_v = c delta_v, dL/dx_u -= c delta_v / deg_v for each neighbour u of v. */
        const float c = (float)(2.0 * weight / (double)n_verts);
        for (size_t v = 0; v < n_verts; v++)
            for (int k = 0; k < 3; k++)
                dverts[3 * v + k] += c * scratch[3 * v + k];
        for (size_t e = 0; e < t->n_edges; e++) {
            size_t u = (size_t)t->edges[2 * e], v = (size_t)t->edges[2 * e + 1];
            for (int k = 0; k < 3; k++) {
                dverts[3 * u + k] -= c * scratch[3 * v + k] / (float)t->degree[v];
                dverts[3 * v + k] -= c * scratch[3 * u + k] / (float)t->degree[u];
            }
        }
    }
    return weight * sum / (double)n_verts;
}
