/* core/mesh.c — marching cubes with a generated case table, OBJ/PLY writers, area-weighted
 * surface sampling and exact nearest-neighbour (Chamfer) distances. Contract: steinlab/mesh.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "steinlab/mesh.h"

void sl_mesh_free(sl_mesh *m)
{
    if (!m)
        return;
    free(m->vertices);
    free(m->colors);
    free(m->faces);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------ the case table */

/* Corner c = (x, y, z) bits. Edge e: axis a = e / 4, and k = e % 4 holds the other two
 * coordinates in axis order (x-edges: y | z << 1; y-edges: x | z << 1; z-edges: x | y << 1). */
void sl_mc_edge_corners(int edge, int *c0, int *c1)
{
    int a = edge / 4, k = edge % 4;
    int lo = k & 1, hi = (k >> 1) & 1;
    int bits[3];
    /* The two axes other than a, in increasing order. */
    int u = a == 0 ? 1 : 0, v = a == 2 ? 1 : 2;
    bits[a] = 0;
    bits[u] = lo;
    bits[v] = hi;
    *c0 = bits[0] | bits[1] << 1 | bits[2] << 2;
    *c1 = *c0 | 1 << a;
}

/* The edge joining two corners that differ in exactly one coordinate. */
static int edge_between(int ca, int cb)
{
    int diff = ca ^ cb;
    int a = diff == 1 ? 0 : diff == 2 ? 1 : 2;
    int c = ca & ~diff;
    int u = a == 0 ? 1 : 0, v = a == 2 ? 1 : 2;
    return a * 4 + (((c >> u) & 1) | ((c >> v) & 1) << 1);
}

/* Face f = 2 a + s (axis a, side s) has outward normal (2 s - 1) e_a. Its corners in
 * counter-clockwise order seen from outside: with (u, v, a) right-handed, the (u, v) square
 * (0,0), (1,0), (1,1), (0,1) turns counter-clockwise about +e_a, so side 1 takes it as it is
 * and side 0 reversed. */
static void face_corners(int f, int q[4])
{
    static const int square[4][2] = { { 0, 0 }, { 1, 0 }, { 1, 1 }, { 0, 1 } };
    int a = f / 2, s = f % 2, u = (a + 1) % 3, v = (a + 2) % 3;
    for (int i = 0; i < 4; i++) {
        int idx = s ? i : (4 - i) % 4;
        q[i] = s << a | square[idx][0] << u | square[idx][1] << v;
    }
}

static int edge_on_face(int e, int f)
{
    int c0, c1;
    sl_mc_edge_corners(e, &c0, &c1);
    int a = f / 2, s = f % 2;
    return ((c0 >> a) & 1) == s && ((c1 >> a) & 1) == s;
}

static int edges_share_face(int e1, int e2)
{
    for (int f = 0; f < 6; f++)
        if (edge_on_face(e1, f) && edge_on_face(e2, f))
            return 1;
    return 0;
}

/* Cuts the loop (edges, n of them, in order) into triangles that keep its winding. The
 * fan's apex is the first vertex none of whose diagonals joins two edges of one cube face:
 * such a diagonal would lie in the face, where the neighbouring cell may draw it too. If
 * no apex qualifies, the loop is split along an admissible diagonal and each part cut
 * likewise (never needed by the 256 cases, see tests/test_mesh.c, but kept total). */
static int triangulate_loop(const int *loop, int n, int tris[][3], int nt)
{
    if (n < 3)
        return nt;
    if (n == 3) {
        tris[nt][0] = loop[0];
        tris[nt][1] = loop[1];
        tris[nt][2] = loop[2];
        return nt + 1;
    }
    for (int a = 0; a < n; a++) {
        int ok = 1;
        for (int j = 2; j < n - 1 && ok; j++)
            ok = !edges_share_face(loop[a], loop[(a + j) % n]);
        if (!ok)
            continue;
        for (int j = 1; j < n - 1; j++) {
            tris[nt][0] = loop[a];
            tris[nt][1] = loop[(a + j) % n];
            tris[nt][2] = loop[(a + j + 1) % n];
            nt++;
        }
        return nt;
    }
    for (int a = 0; a < n; a++)
        for (int j = 2; j < n - 1; j++) {
            int b = (a + j) % n;
            if (edges_share_face(loop[a], loop[b]))
                continue;
            int p1[12], p2[12], n1 = 0, n2 = 0;
            for (int i = a;; i = (i + 1) % n) {
                p1[n1++] = loop[i];
                if (i == b)
                    break;
            }
            for (int i = b;; i = (i + 1) % n) {
                p2[n2++] = loop[i];
                if (i == a)
                    break;
            }
            nt = triangulate_loop(p1, n1, tris, nt);
            return triangulate_loop(p2, n2, tris, nt);
        }
    /* Plain fan: still a closed, consistently wound surface within the cell. */
    for (int j = 1; j < n - 1; j++) {
        tris[nt][0] = loop[0];
        tris[nt][1] = loop[j];
        tris[nt][2] = loop[j + 1];
        nt++;
    }
    return nt;
}

int sl_mc_case(unsigned config, int tris[SL_MC_MAX_TRIANGLES][3])
{
    config &= 255u;
    /* next[e]: the segment that leaves the crossing on edge e. Walking a face's corners
     * counter-clockwise from outside, crossings alternate between out->in and in->out; a
     * segment runs from an out->in crossing to the next in->out one, which keeps the inside
     * corners on its right seen from outside (so the loops wind counter-clockwise about the
     * outward normal of the surface) and, on an ambiguous face, cuts each inside corner off
     * by itself. Each crossed edge is out->in on exactly one of its two faces. */
    int next[12];
    for (int e = 0; e < 12; e++)
        next[e] = -1;
    for (int f = 0; f < 6; f++) {
        int q[4], edge[4], out_in[4], nc = 0;
        face_corners(f, q);
        for (int i = 0; i < 4; i++) {
            int ca = q[i], cb = q[(i + 1) % 4];
            int ia = (config >> ca) & 1, ib = (config >> cb) & 1;
            if (ia == ib)
                continue;
            edge[nc] = edge_between(ca, cb);
            out_in[nc] = !ia;
            nc++;
        }
        for (int j = 0; j < nc; j++) {
            if (!out_in[j])
                continue;
            for (int d = 1; d < nc; d++) {
                int k = (j + d) % nc;
                if (!out_in[k]) {
                    next[edge[j]] = edge[k];
                    break;
                }
            }
        }
    }
    int nt = 0, seen[12] = { 0 };
    for (int e = 0; e < 12; e++) {
        if (next[e] < 0 || seen[e])
            continue;
        int loop[12], n = 0;
        for (int x = e; !seen[x]; x = next[x]) {
            seen[x] = 1;
            loop[n++] = x;
        }
        nt = triangulate_loop(loop, n, tris, nt);
    }
    return nt;
}

typedef struct mc_table {
    unsigned char count[256];
    signed char tri[256][SL_MC_MAX_TRIANGLES][3];
} mc_table;

static void build_table(mc_table *t)
{
    for (unsigned c = 0; c < 256; c++) {
        int tris[SL_MC_MAX_TRIANGLES][3];
        int n = sl_mc_case(c, tris);
        t->count[c] = (unsigned char)n;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < 3; k++)
                t->tri[c][i][k] = (signed char)tris[i][k];
    }
}

/* ------------------------------------------------------------------ extraction */

typedef struct mc_builder {
    int nx, ny;
    double origin[3], spacing[3];
    float level;
    float *verts;       /* (cap_v, 3) */
    size_t nv, cap_v;
    int32_t *faces;     /* (cap_f, 3) */
    size_t nf, cap_f;
    /* Vertex index of each grid edge of the current slab (between slices k and k+1), -1
     * while none: x-edges and y-edges of the two slices, z-edges across the slab. */
    int32_t *xe[2];     /* (ny, nx - 1) */
    int32_t *ye[2];     /* (ny - 1, nx) */
    int32_t *ze;        /* (ny, nx) */
    mc_table table;
} mc_builder;

static void fill_minus_one(int32_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = -1;
}

static sl_status builder_init(mc_builder *b, int nx, int ny, sl_error *err)
{
    memset(b->xe, 0, sizeof b->xe);
    memset(b->ye, 0, sizeof b->ye);
    b->nx = nx;
    b->ny = ny;
    b->verts = NULL;
    b->faces = NULL;
    b->nv = b->cap_v = b->nf = b->cap_f = 0;
    size_t nxe = (size_t)ny * (nx - 1), nye = (size_t)(ny - 1) * nx, nze = (size_t)ny * nx;
    for (int l = 0; l < 2; l++) {
        b->xe[l] = malloc(nxe * sizeof(int32_t));
        b->ye[l] = malloc(nye * sizeof(int32_t));
    }
    b->ze = malloc(nze * sizeof(int32_t));
    if (!b->xe[0] || !b->xe[1] || !b->ye[0] || !b->ye[1] || !b->ze)
        return sl_error_set(err, SL_ERR_NOMEM, "marching cubes: out of memory (%dx%d slab)",
                            nx, ny);
    for (int l = 0; l < 2; l++) {
        fill_minus_one(b->xe[l], nxe);
        fill_minus_one(b->ye[l], nye);
    }
    fill_minus_one(b->ze, nze);
    build_table(&b->table);
    return SL_OK;
}

static void builder_free_work(mc_builder *b)
{
    for (int l = 0; l < 2; l++) {
        free(b->xe[l]);
        free(b->ye[l]);
    }
    free(b->ze);
}

/* The next slab reuses slice k+1's edges as its slice k. */
static void builder_advance(mc_builder *b)
{
    int nx = b->nx, ny = b->ny;
    int32_t *t = b->xe[0];
    b->xe[0] = b->xe[1];
    b->xe[1] = t;
    t = b->ye[0];
    b->ye[0] = b->ye[1];
    b->ye[1] = t;
    fill_minus_one(b->xe[1], (size_t)ny * (nx - 1));
    fill_minus_one(b->ye[1], (size_t)(ny - 1) * nx);
    fill_minus_one(b->ze, (size_t)ny * nx);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* The vertex of local edge e of cell (i, j) in the slab whose slices are s[0], s[1] at
 * z index k: created on first use, at f's zero along the edge. The interpolation runs from
 * the edge's lower corner to its upper one whichever cell asks, so the position depends on
 * the edge alone. Returns the index or -1 on allocation failure. */
static int32_t edge_vertex(mc_builder *b, const float *const s[2], int i, int j, int k, int e)
{
    int nx = b->nx;
    int32_t *slot;
    int lo = e & 1, hi = (e >> 1) & 1;
    switch (e / 4) {
    case 0: slot = &b->xe[hi][(size_t)(j + lo) * (nx - 1) + i]; break;
    case 1: slot = &b->ye[hi][(size_t)j * nx + i + lo]; break;
    default: slot = &b->ze[(size_t)(j + hi) * nx + i + lo]; break;
    }
    if (*slot >= 0)
        return *slot;
    if (b->nv >= (size_t)INT32_MAX ||
        grow((void **)&b->verts, &b->cap_v, b->nv + 1, 3 * sizeof(float)))
        return -1;
    int c[2];
    sl_mc_edge_corners(e, &c[0], &c[1]);
    double p[2][3], f[2];
    for (int t = 0; t < 2; t++) {
        int ci = i + (c[t] & 1), cj = j + ((c[t] >> 1) & 1), cz = (c[t] >> 2) & 1;
        p[t][0] = b->origin[0] + ci * b->spacing[0];
        p[t][1] = b->origin[1] + cj * b->spacing[1];
        p[t][2] = b->origin[2] + (k + cz) * b->spacing[2];
        f[t] = (double)s[cz][(size_t)cj * nx + ci] - (double)b->level;
    }
    /* The ends differ in sign (one > 0, the other <= 0), so f0 - f1 != 0 and w is in [0, 1]. */
    double w = f[0] / (f[0] - f[1]);
    float *v = b->verts + 3 * b->nv;
    for (int d = 0; d < 3; d++)
        v[d] = (float)(p[0][d] + w * (p[1][d] - p[0][d]));
    *slot = (int32_t)b->nv;
    return (int32_t)b->nv++;
}

/* Every cell between slices s[0] (z index k) and s[1], in row-major order. */
static sl_status process_slab(mc_builder *b, const float *const s[2], int k, sl_error *err)
{
    int nx = b->nx, ny = b->ny;
    for (int j = 0; j + 1 < ny; j++)
        for (int i = 0; i + 1 < nx; i++) {
            unsigned config = 0;
            for (int c = 0; c < 8; c++) {
                float v = s[c >> 2][(size_t)(j + ((c >> 1) & 1)) * nx + i + (c & 1)];
                config |= (unsigned)(v > b->level) << c;
            }
            int nt = b->table.count[config];
            if (!nt)
                continue;
            if (grow((void **)&b->faces, &b->cap_f, b->nf + (size_t)nt, 3 * sizeof(int32_t)))
                return sl_error_set(err, SL_ERR_NOMEM, "marching cubes: out of memory (%zu "
                                    "triangles)", b->nf);
            for (int t = 0; t < nt; t++)
                for (int q = 0; q < 3; q++) {
                    int32_t id = edge_vertex(b, s, i, j, k, b->table.tri[config][t][q]);
                    if (id < 0)
                        return sl_error_set(err, SL_ERR_NOMEM, "marching cubes: out of memory "
                                            "(%zu vertices)", b->nv);
                    b->faces[3 * (b->nf + t) + q] = id;
                }
            b->nf += (size_t)nt;
        }
    return SL_OK;
}

static void builder_finish(mc_builder *b, sl_mesh *out)
{
    out->vertices = b->verts;
    out->faces = b->faces;
    out->n_vertices = b->nv;
    out->n_faces = b->nf;
    out->colors = NULL;
    b->verts = NULL;
    b->faces = NULL;
}

static sl_status check_values(const float *v, size_t n, const char *what, sl_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return sl_error_set(err, SL_ERR_NONFINITE, "marching cubes: %s %zu is %g", what, i,
                                (double)v[i]);
    return SL_OK;
}

sl_status sl_mesh_from_grid(const float *values, const int dims[3], const float origin[3],
                            const float spacing[3], float level, sl_mesh *out, sl_error *err)
{
    if (!out || !values || !dims || !origin || !spacing)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_mesh_from_grid: NULL argument");
    memset(out, 0, sizeof *out);
    if (dims[0] < 2 || dims[1] < 2 || dims[2] < 2)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_mesh_from_grid: grid %dx%dx%d needs at "
                            "least 2 points per axis", dims[0], dims[1], dims[2]);
    if (!isfinite(level))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_mesh_from_grid: level %g", (double)level);
    size_t slice = (size_t)dims[0] * dims[1];
    sl_status st = check_values(values, slice * dims[2], "grid value", err);
    if (st != SL_OK)
        return st;
    mc_builder b;
    if ((st = builder_init(&b, dims[0], dims[1], err)) == SL_OK) {
        b.level = level;
        for (int d = 0; d < 3; d++) {
            b.origin[d] = origin[d];
            b.spacing[d] = spacing[d];
        }
        for (int k = 0; k + 1 < dims[2] && st == SL_OK; k++) {
            const float *s[2] = { values + (size_t)k * slice, values + (size_t)(k + 1) * slice };
            st = process_slab(&b, s, k, err);
            builder_advance(&b);
        }
    }
    builder_free_work(&b);
    if (st == SL_OK)
        builder_finish(&b, out);
    free(b.verts);
    free(b.faces);
    return st;
}

/* Colours: the field's rgb at each vertex, in batches. */
static sl_status vertex_colors(sl_field_fn field, void *ctx, sl_mesh *m, sl_error *err)
{
    enum { BATCH = 65536 };
    m->colors = malloc(m->n_vertices ? m->n_vertices * 3 : 1);
    float *dens = malloc(BATCH * sizeof(float)), *rgb = malloc(3 * BATCH * sizeof(float));
    sl_status st = SL_OK;
    if (!m->colors || !dens || !rgb)
        st = sl_error_set(err, SL_ERR_NOMEM, "mesh colours: out of memory");
    for (size_t at = 0; st == SL_OK && at < m->n_vertices; at += BATCH) {
        size_t n = m->n_vertices - at < BATCH ? m->n_vertices - at : BATCH;
        st = field(ctx, m->vertices + 3 * at, n, dens, rgb, err);
        for (size_t i = 0; st == SL_OK && i < 3 * n; i++) {
            float c = rgb[i];
            if (isnan(c)) {
                st = sl_error_set(err, SL_ERR_NONFINITE, "mesh colours: the field's rgb at "
                                  "vertex %zu is NaN", at + i / 3);
                break;
            }
            c = c < 0 ? 0 : c > 1 ? 1 : c;
            m->colors[3 * at + i] = (uint8_t)lrintf(c * 255.0f);
        }
    }
    free(dens);
    free(rgb);
    return st;
}

sl_status sl_mesh_extract(sl_field_fn field, void *ctx, const float bounds[6], int resolution,
                          float level, int colors, sl_mesh *out, sl_error *err)
{
    if (!out || !field || !bounds)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_mesh_extract: NULL argument");
    memset(out, 0, sizeof *out);
    if (resolution < 2 || resolution > 4096)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_mesh_extract: resolution %d (expected "
                            "2..4096 grid points per axis)", resolution);
    for (int d = 0; d < 3; d++)
        if (!isfinite(bounds[d]) || !isfinite(bounds[d + 3]) || !(bounds[d + 3] > bounds[d]))
            return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_mesh_extract: empty or non-finite "
                                "box [%g, %g] on axis %d", (double)bounds[d],
                                (double)bounds[d + 3], d);
    if (!isfinite(level))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_mesh_extract: level %g", (double)level);
    int N = resolution;
    size_t slice = (size_t)N * N;
    double origin[3], spacing[3];
    for (int d = 0; d < 3; d++) {
        origin[d] = bounds[d];
        spacing[d] = ((double)bounds[d + 3] - bounds[d]) / (N - 1);
    }
    float *pts = malloc(slice * 3 * sizeof(float));
    float *sl[2] = { malloc(slice * sizeof(float)), malloc(slice * sizeof(float)) };
    mc_builder b;
    memset(&b, 0, sizeof b);
    sl_status st = SL_OK;
    if (!pts || !sl[0] || !sl[1])
        st = sl_error_set(err, SL_ERR_NOMEM, "marching cubes: out of memory (%d^2 slice)", N);
    if (st == SL_OK && (st = builder_init(&b, N, N, err)) == SL_OK) {
        b.level = level;
        memcpy(b.origin, origin, sizeof origin);
        memcpy(b.spacing, spacing, sizeof spacing);
    }
    for (int k = 0; k < N && st == SL_OK; k++) {
        /* Slice k of the grid, x fastest; coordinates computed as edge_vertex does. */
        for (int j = 0; j < N; j++)
            for (int i = 0; i < N; i++) {
                float *p = pts + 3 * ((size_t)j * N + i);
                p[0] = (float)(origin[0] + i * spacing[0]);
                p[1] = (float)(origin[1] + j * spacing[1]);
                p[2] = (float)(origin[2] + k * spacing[2]);
            }
        float *cur = sl[k & 1];
        st = field(ctx, pts, slice, cur, NULL, err);
        if (st == SL_OK)
            st = check_values(cur, slice, "density at grid point", err);
        if (st == SL_OK && k > 0) {
            const float *s[2] = { sl[(k - 1) & 1], cur };
            st = process_slab(&b, s, k - 1, err);
            builder_advance(&b);
        }
    }
    builder_free_work(&b);
    if (st == SL_OK)
        builder_finish(&b, out);
    free(b.verts);
    free(b.faces);
    free(pts);
    free(sl[0]);
    free(sl[1]);
    if (st == SL_OK && colors)
        st = vertex_colors(field, ctx, out, err);
    if (st != SL_OK)
        sl_mesh_free(out);
    return st;
}

/* ------------------------------------------------------------------ files */

/* Writes through `emit` into PATH.tmp, then fsync and rename over PATH; the directory is
 * fsync'ed so the rename itself survives a crash. */
typedef int (*emit_fn)(FILE *f, const sl_mesh *m);

static sl_status write_atomic(const sl_mesh *m, const char *path, emit_fn emit, sl_error *err)
{
    if (!m || !path || !path[0])
        return sl_error_set(err, SL_ERR_INVALID_ARG, "mesh writer: NULL mesh or empty path");
    if (m->n_faces && !m->faces)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "mesh writer: faces missing");
    for (size_t i = 0; i < 3 * m->n_faces; i++)
        if (m->faces[i] < 0 || (size_t)m->faces[i] >= m->n_vertices)
            return sl_error_set(err, SL_ERR_INVALID_ARG, "mesh writer: face %zu refers to vertex "
                                "%d of %zu", i / 3, (int)m->faces[i], m->n_vertices);
    size_t len = strlen(path);
    char *tmp = malloc(len + 5);
    if (!tmp)
        return sl_error_set(err, SL_ERR_NOMEM, "mesh writer: out of memory");
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp", 5);
    sl_status st = SL_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = sl_error_set(err, SL_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    int bad = emit(f, m) != 0;
    if (!bad && fflush(f) != 0)
        bad = 1;
    if (!bad && fsync(fileno(f)) != 0)
        bad = 1;
    int e = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        st = sl_error_set(err, SL_ERR_IO, "cannot write '%s': %s", tmp, strerror(e));
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        st = sl_error_set(err, SL_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path,
                          strerror(errno));
        unlink(tmp);
    } else {
        const char *slash = strrchr(path, '/');
        char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
        int fd = dir ? open(dir, O_RDONLY) : -1;
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        free(dir);
    }
    free(tmp);
    return st;
}

static int emit_obj(FILE *f, const sl_mesh *m)
{
    if (fprintf(f, "# steinlab mesh: %zu vertices, %zu triangles\n", m->n_vertices,
                m->n_faces) < 0)
        return -1;
    for (size_t i = 0; i < m->n_vertices; i++) {
        const float *v = m->vertices + 3 * i;
        int r;
        /* %.9g round-trips a float exactly. */
        if (m->colors) {
            const uint8_t *c = m->colors + 3 * i;
            r = fprintf(f, "v %.9g %.9g %.9g %.6g %.6g %.6g\n", v[0], v[1], v[2], c[0] / 255.0,
                        c[1] / 255.0, c[2] / 255.0);
        } else {
            r = fprintf(f, "v %.9g %.9g %.9g\n", v[0], v[1], v[2]);
        }
        if (r < 0)
            return -1;
    }
    for (size_t i = 0; i < m->n_faces; i++) {
        const int32_t *t = m->faces + 3 * i;
        if (fprintf(f, "f %d %d %d\n", t[0] + 1, t[1] + 1, t[2] + 1) < 0)
            return -1;
    }
    return 0;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static int emit_ply(FILE *f, const sl_mesh *m)
{
    if (fprintf(f,
                "ply\nformat binary_little_endian 1.0\ncomment steinlab mesh\n"
                "element vertex %zu\nproperty float x\nproperty float y\nproperty float z\n"
                "property uchar red\nproperty uchar green\nproperty uchar blue\n"
                "element face %zu\nproperty list uchar int vertex_indices\nend_header\n",
                m->n_vertices, m->n_faces) < 0)
        return -1;
    /* Bytes are assembled explicitly: the file is little endian on any host. */
    unsigned char rec[15];
    for (size_t i = 0; i < m->n_vertices; i++) {
        for (int d = 0; d < 3; d++) {
            uint32_t u;
            memcpy(&u, &m->vertices[3 * i + d], 4);
            put_le32(rec + 4 * d, u);
        }
        for (int d = 0; d < 3; d++)
            rec[12 + d] = m->colors ? m->colors[3 * i + d] : 200;
        if (fwrite(rec, 1, 15, f) != 15)
            return -1;
    }
    for (size_t i = 0; i < m->n_faces; i++) {
        rec[0] = 3;
        for (int d = 0; d < 3; d++)
            put_le32(rec + 1 + 4 * d, (uint32_t)m->faces[3 * i + d]);
        if (fwrite(rec, 1, 13, f) != 13)
            return -1;
    }
    return 0;
}

sl_status sl_mesh_write_obj(const sl_mesh *m, const char *path, sl_error *err)
{
    return write_atomic(m, path, emit_obj, err);
}

sl_status sl_mesh_write_ply(const sl_mesh *m, const char *path, sl_error *err)
{
    return write_atomic(m, path, emit_ply, err);
}

sl_status sl_mesh_write(const sl_mesh *m, const char *path, sl_error *err)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (dot && !strcasecmp(dot, ".obj"))
        return sl_mesh_write_obj(m, path, err);
    if (dot && !strcasecmp(dot, ".ply"))
        return sl_mesh_write_ply(m, path, err);
    return sl_error_set(err, SL_ERR_INVALID_ARG, "cannot tell the mesh format of '%s' (expected "
                        "a name ending in .obj or .ply)", path ? path : "(null)");
}

/* ------------------------------------------------------------------ sampling */

sl_status sl_mesh_sample(const sl_mesh *m, size_t n, sl_rng_key key, float *points,
                         sl_error *err)
{
    if (!m || (n && !points))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_mesh_sample: NULL argument");
    double *cum = malloc((m->n_faces ? m->n_faces : 1) * sizeof(double));
    if (!cum)
        return sl_error_set(err, SL_ERR_NOMEM, "sl_mesh_sample: out of memory");
    /* Cumulative areas, summed in face order (deterministic). */
    double total = 0;
    for (size_t t = 0; t < m->n_faces; t++) {
        const float *a = m->vertices + 3 * m->faces[3 * t];
        const float *b = m->vertices + 3 * m->faces[3 * t + 1];
        const float *c = m->vertices + 3 * m->faces[3 * t + 2];
        double u[3], v[3];
        for (int d = 0; d < 3; d++) {
            u[d] = (double)b[d] - a[d];
            v[d] = (double)c[d] - a[d];
        }
        double x = u[1] * v[2] - u[2] * v[1], y = u[2] * v[0] - u[0] * v[2],
               z = u[0] * v[1] - u[1] * v[0];
        total += 0.5 * sqrt(x * x + y * y + z * z);
        cum[t] = total;
    }
    if (!(total > 0)) {
        free(cum);
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_mesh_sample: the mesh has no area (%zu "
                            "triangles)", m->n_faces);
    }
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        double r = sl_rng_uniform1(key, 3 * (uint64_t)i) * total;
        double u1 = sl_rng_uniform1(key, 3 * (uint64_t)i + 1);
        double u2 = sl_rng_uniform1(key, 3 * (uint64_t)i + 2);
        /* First face whose cumulative area exceeds r (zero-area faces are never chosen). */
        size_t lo = 0, hi = m->n_faces - 1;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (cum[mid] > r)
                hi = mid;
            else
                lo = mid + 1;
        }
        const int32_t *t = m->faces + 3 * lo;
        const float *a = m->vertices + 3 * t[0], *b = m->vertices + 3 * t[1],
                    *c = m->vertices + 3 * t[2];
        double s = sqrt(u1);
        double wa = 1 - s, wb = s * (1 - u2), wc = s * u2;
        for (int d = 0; d < 3; d++)
            points[3 * i + d] = (float)(wa * a[d] + wb * b[d] + wc * c[d]);
    }
    free(cum);
    return SL_OK;
}

/* ------------------------------------------------------------------ nearest neighbours */

/* A k-d tree stored implicitly over a permutation of the points: the node of range
 * [lo, hi) splits at mid = (lo + hi) / 2 along axis[mid]; points left of mid are <= the
 * split point's coordinate, right of it >=. Ties are ordered by index, so the tree (and
 * everything computed from it) is the same on every run. */
enum { KD_LEAF = 8 };

typedef struct kdtree {
    const float *pts;    /* (m, 3) */
    uint32_t *perm;      /* (m,) */
    unsigned char *axis; /* (m,) split axis of the node whose mid is the index */
} kdtree;

static int kd_less(const float *pts, int ax, uint32_t a, uint32_t b)
{
    float x = pts[3 * a + ax], y = pts[3 * b + ax];
    return x < y || (x == y && a < b);
}

/* Places the element of rank k (by coordinate ax, then index) at position k of
 * perm[lo, hi), smaller ones before it and larger after (quickselect, median-of-3 pivot). */
static void kd_select(const float *pts, uint32_t *perm, size_t lo, size_t hi, size_t k, int ax)
{
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t a = perm[lo], b = perm[mid], c = perm[hi - 1], piv;
        if (kd_less(pts, ax, a, b))
            piv = kd_less(pts, ax, b, c) ? b : (kd_less(pts, ax, a, c) ? c : a);
        else
            piv = kd_less(pts, ax, a, c) ? a : (kd_less(pts, ax, b, c) ? c : b);
        /* Three-way partition: < piv | == piv (only piv itself: keys are unique) | > piv. */
        size_t i = lo, store = lo;
        for (i = lo; i < hi; i++)
            if (kd_less(pts, ax, perm[i], piv)) {
                uint32_t t = perm[i];
                perm[i] = perm[store];
                perm[store] = t;
                store++;
            }
        size_t at = store;
        for (i = store; i < hi; i++)
            if (perm[i] == piv) {
                perm[i] = perm[at];
                perm[at] = piv;
                break;
            }
        if (k == at)
            return;
        if (k < at)
            hi = at;
        else
            lo = at + 1;
    }
}

static void kd_build(kdtree *t, size_t lo, size_t hi)
{
    if (hi - lo <= KD_LEAF)
        return;
    float mn[3] = { INFINITY, INFINITY, INFINITY }, mx[3] = { -INFINITY, -INFINITY, -INFINITY };
    for (size_t i = lo; i < hi; i++)
        for (int d = 0; d < 3; d++) {
            float v = t->pts[3 * t->perm[i] + d];
            mn[d] = v < mn[d] ? v : mn[d];
            mx[d] = v > mx[d] ? v : mx[d];
        }
    int ax = 0;
    for (int d = 1; d < 3; d++)
        if (mx[d] - mn[d] > mx[ax] - mn[ax])
            ax = d;
    size_t mid = lo + (hi - lo) / 2;
    kd_select(t->pts, t->perm, lo, hi, mid, ax);
    t->axis[mid] = (unsigned char)ax;
    kd_build(t, lo, mid);
    kd_build(t, mid + 1, hi);
}

static double dist2(const float *p, const float *q)
{
    double dx = (double)p[0] - q[0], dy = (double)p[1] - q[1], dz = (double)p[2] - q[2];
    return dx * dx + dy * dy + dz * dz;
}

static void kd_nearest(const kdtree *t, size_t lo, size_t hi, const float *q, double *best)
{
    while (hi - lo > KD_LEAF) {
        size_t mid = lo + (hi - lo) / 2;
        const float *p = t->pts + 3 * t->perm[mid];
        double d2 = dist2(q, p);
        if (d2 < *best)
            *best = d2;
        int ax = t->axis[mid];
        double diff = (double)q[ax] - p[ax];
        size_t nlo = diff < 0 ? lo : mid + 1, nhi = diff < 0 ? mid : hi;
        size_t flo = diff < 0 ? mid + 1 : lo, fhi = diff < 0 ? hi : mid;
        kd_nearest(t, nlo, nhi, q, best);
        /* Every point on the far side is at least |diff| away along ax. */
        if (diff * diff >= *best)
            return;
        lo = flo;
        hi = fhi;
    }
    for (size_t i = lo; i < hi; i++) {
        double d2 = dist2(q, t->pts + 3 * t->perm[i]);
        if (d2 < *best)
            *best = d2;
    }
}

sl_status sl_nearest_distances(const float *ref, size_t m, const float *query, size_t n,
                               double *dist, sl_error *err)
{
    if (!ref || !m || (n && (!query || !dist)))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_nearest_distances: %s",
                            !m ? "no reference points" : "NULL argument");
    if (m > UINT32_MAX)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_nearest_distances: %zu reference "
                            "points (at most 2^32 - 1)", m);
    for (size_t i = 0; i < 3 * m; i++)
        if (!isfinite(ref[i]))
            return sl_error_set(err, SL_ERR_NONFINITE, "sl_nearest_distances: reference point "
                                "%zu is not finite", i / 3);
    kdtree t = { ref, malloc(m * sizeof(uint32_t)), calloc(m, 1) };
    if (!t.perm || !t.axis) {
        free(t.perm);
        free(t.axis);
        return sl_error_set(err, SL_ERR_NOMEM, "sl_nearest_distances: out of memory");
    }
    for (size_t i = 0; i < m; i++)
        t.perm[i] = (uint32_t)i;
    kd_build(&t, 0, m);
    #pragma omp parallel for schedule(dynamic, 256)
    for (size_t i = 0; i < n; i++) {
        double best = INFINITY;
        kd_nearest(&t, 0, m, query + 3 * i, &best);
        dist[i] = sqrt(best);
    }
    free(t.perm);
    free(t.axis);
    return SL_OK;
}

static sl_status mean_nearest(const float *ref, size_t m, const float *q, size_t n, double *mean,
                              sl_error *err)
{
    double *d = malloc(n * sizeof(double));
    if (!d)
        return sl_error_set(err, SL_ERR_NOMEM, "chamfer: out of memory");
    sl_status st = sl_nearest_distances(ref, m, q, n, d, err);
    double s = 0;
    for (size_t i = 0; st == SL_OK && i < n; i++)
        s += d[i];
    *mean = s / (double)n;
    free(d);
    return st;
}

sl_status sl_chamfer_distance(const float *a, size_t n, const float *b, size_t m,
                              sl_chamfer *out, sl_error *err)
{
    if (!out || !a || !b || !n || !m)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_chamfer_distance: %s",
                            !out || !a || !b ? "NULL argument" : "an empty point set");
    for (size_t i = 0; i < 3 * n; i++)
        if (!isfinite(a[i]))
            return sl_error_set(err, SL_ERR_NONFINITE, "sl_chamfer_distance: point %zu of the "
                                "first set is not finite", i / 3);
    sl_status st = mean_nearest(b, m, a, n, &out->a_to_b, err);
    if (st == SL_OK)
        st = mean_nearest(a, n, b, m, &out->b_to_a, err);
    out->chamfer = 0.5 * (out->a_to_b + out->b_to_a);
    return st;
}
