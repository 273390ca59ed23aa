/* steinlab/mesh.h — triangle meshes from density fields, their files, and the distances
 * that score them against a true surface (method.md section 5: Chamfer distance).
 *
 * Public so that representations (NeRF, DMTet, ...) and tools reuse one implementation:
 *
 *   sl_mesh m;
 *   sl_mesh_extract(repr_vt->sample_field, repr_state, bounds, 96, threshold, 1, &m, &err);
 *   sl_mesh_write_ply(&m, "out.ply", &err);
 *   sl_mesh_free(&m);
 *
 * Marching cubes (sl_mesh_extract, sl_mesh_from_grid). The level set is f = density - level;
 * a grid point is inside when f > 0 and outside otherwise (f = 0 counts as outside). A
 * vertex lies on every grid edge whose two ends differ, at the linear interpolation of f's
 * zero; vertices are shared between the cells that meet at that edge, so the mesh is
 * indexed, not a triangle soup. Triangles are wound counter-clockwise seen from outside:
 * their normals (v1 - v0) x (v2 - v0) point toward lower density.
 *
 * The 256-case table is generated from the cube's topology, not written out: on each face
 * the sign changes are joined into oriented segments, the segments of the six faces chain
 * into closed loops (every crossed edge is on two faces: one segment leaves it, one
 * enters), and each loop is cut into a fan of triangles. A face whose diagonal corners are
 * inside and the other two outside is ambiguous; it is decided by one fixed rule, "the
 * inside corners stay separate" (the face's centre counts as outside, i.e. the inside is
 * 6-connected). The rule reads only the face's four signs, which the two cells sharing
 * the face both see, so both draw the same segments there and the surface of a level set
 * that closes inside the box is closed (watertight: every edge on exactly two triangles).
 * Fans never use a diagonal lying in a cube face, so no edge is drawn by two cells.
 *
 * Every function is deterministic: the same input gives the same bits for any thread count. */
#ifndef STEINLAB_MESH_H
#define STEINLAB_MESH_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/rng.h"
#include "steinlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_mesh {
    float *vertices;       /* (n_vertices, 3) world positions */
    uint8_t *colors;       /* (n_vertices, 3) sRGB-like 0..255, or NULL (no colour) */
    int32_t *faces;        /* (n_faces, 3) vertex indices, counter-clockwise seen from outside */
    size_t n_vertices, n_faces;
} sl_mesh;

/* Frees the arrays (malloc'd by the functions below) and zeroes the struct. NULL: no-op. */
void sl_mesh_free(sl_mesh *m);

/* A density field, with the signature of sl_representation_vtable.sample_field:
 * points (n, 3) -> density (n,) overwritten, and rgb (n, 3) in [0, 1] when rgb != NULL. */
typedef sl_status (*sl_field_fn)(void *ctx, const float *points, size_t n, float *density,
                                 float *rgb, sl_error *err);

/* Marching cubes over the axis-aligned box bounds = (min x, min y, min z, max x, max y,
 * max z), sampled at `resolution` grid points per axis (>= 2; the cells are
 * (resolution - 1)^3), at iso-level `level` of the density. The field is called one
 * z-slice (resolution^2 points) at a time, so memory is O(resolution^2) plus the mesh.
 * With colors != 0 the field's rgb at every vertex becomes the vertex colour (rounded to
 * 0..255). *out is overwritten (freed by the caller with sl_mesh_free, also when it holds
 * no triangle: a field that never crosses the level gives an empty mesh, not an error).
 * Fails with SL_ERR_INVALID_ARG (bad box or resolution), SL_ERR_NONFINITE (the field
 * returned NaN or infinity), SL_ERR_NOMEM, or the field's own error. */
sl_status sl_mesh_extract(sl_field_fn field, void *ctx, const float bounds[6], int resolution,
                          float level, int colors, sl_mesh *out, sl_error *err);

/* Marching cubes on values already sampled: values (nz, ny, nx), x fastest, point (i, j, k)
 * at origin + (i, j, k) * spacing; dims = (nx, ny, nz), each >= 2. No colours. */
sl_status sl_mesh_from_grid(const float *values, const int dims[3], const float origin[3],
                            const float spacing[3], float level, sl_mesh *out, sl_error *err);

/* The generated case table, for tests and for anyone who wants to see it. Cube corner c
 * sits at (c & 1, (c >> 1) & 1, (c >> 2) & 1); edge e joins the corners given by
 * sl_mc_edge_corners (edges 0-3 run along x, 4-7 along y, 8-11 along z). `config` has bit c
 * set when corner c is inside. Writes the triangles of the case as edge triples into
 * tris (room for SL_MC_MAX_TRIANGLES) and returns their count. */
enum { SL_MC_MAX_TRIANGLES = 12 };
int sl_mc_case(unsigned config, int tris[SL_MC_MAX_TRIANGLES][3]);
void sl_mc_edge_corners(int edge, int *c0, int *c1);

/* ---- files: both written to PATH.tmp, flushed, fsync'ed and renamed over PATH (atomic:
 * a reader never sees half a file, a failure leaves any previous file in place) ---- */

/* Wavefront OBJ: "v x y z r g b" (colours in [0, 1], 6 digits; plain "v x y z" without
 * colours) and "f a b c" (1-based). */
sl_status sl_mesh_write_obj(const sl_mesh *m, const char *path, sl_error *err);
/* PLY, binary little endian whatever the host: vertex = float x, y, z, uchar red, green,
 * blue (grey 200 without colours); face = list uchar int vertex_indices (always 3). */
sl_status sl_mesh_write_ply(const sl_mesh *m, const char *path, sl_error *err);
/* By the file name's extension (.obj or .ply, case-insensitive); anything else is
 * SL_ERR_INVALID_ARG with a message naming the path. */
sl_status sl_mesh_write(const sl_mesh *m, const char *path, sl_error *err);

/* ---- sampling and distances ---- */

/* n points uniformly distributed over the mesh's area: triangle chosen with probability
 * proportional to its area, then a uniform point in it (barycentrics (1 - sqrt(u1),
 * sqrt(u1)(1 - u2), sqrt(u1) u2)). Point i uses elements 3i, 3i+1, 3i+2 of the stream
 * `key` (sl_rng_uniform1), so it does not depend on the thread count. points: (n, 3).
 * Fails with SL_ERR_INVALID_ARG on a mesh of zero area. */
sl_status sl_mesh_sample(const sl_mesh *m, size_t n, sl_rng_key key, float *points,
                         sl_error *err);

/* Exact nearest-neighbour distances: dist[i] = min_j |query_i - ref_j| (Euclidean, computed
 * as sqrt of the double sum dx^2 + dy^2 + dz^2 of the float coordinates converted to double),
 * through a k-d tree over ref; O((n + m) log m) for points on surfaces. query: (n, 3), ref:
 * (m, 3) with m >= 1, dist: (n,). */
sl_status sl_nearest_distances(const float *ref, size_t m, const float *query, size_t n,
                               double *dist, sl_error *err);

/* Symmetric Chamfer distance between point sets A (n, 3) and B (m, 3), both non-empty:
 *   a_to_b  = (1/n) sum_i min_j |a_i - b_j|
 *   b_to_a  = (1/m) sum_j min_i |b_j - a_i|
 *   chamfer = 0.5 (a_to_b + b_to_a)
 * Distances are not squared, so the unit is the scene's (two concentric spheres of radii
 * r1, r2 sampled densely give chamfer ~ |r1 - r2|). Means are summed in index order. */
typedef struct sl_chamfer {
    double a_to_b, b_to_a, chamfer;
} sl_chamfer;
sl_status sl_chamfer_distance(const float *a, size_t n, const float *b, size_t m,
                              sl_chamfer *out, sl_error *err);

#ifdef __cplusplus
}
#endif
#endif
