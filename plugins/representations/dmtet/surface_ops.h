/* plugins/representations/dmtet/surface_ops.h — what the renderer and the regularisers need
 * from an extracted triangle mesh: its edge topology, vertex normals, and the two
 * geometric regularisers, each with its backward.
 *
 * Meshes are (n_verts, 3) float positions and (n_faces, 3) int32 faces wound
 * counter-clockwise seen from outside (tetgrid.h). Face f's edge k joins its vertices k and
 * (k + 1) mod 3. Everything here is sequential or ordered so results do not depend on the
 * thread count. */
#ifndef DMTET_SURFACE_OPS_H
#define DMTET_SURFACE_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/status.h"

typedef struct dm_topology {
    int32_t *opposite;    /* (n_faces, 3) the face across edge k (traversed the other way),
                             or -1 on a boundary / non-manifold edge */
    int32_t *edges;       /* (n_edges, 2) undirected edges, each once */
    int32_t *degree;      /* (n_verts,) edges at each vertex */
    size_t n_edges;
    size_t cap_faces, cap_verts, cap_keys;
    uint64_t *keys;       /* (cap_keys,) scratch: hash table of the edges */
} dm_topology;

void dm_topology_free(dm_topology *t);

/* Builds the topology of the mesh (arrays kept and grown between calls) with a hash table
 * of the undirected edges, in face order: O(F), deterministic. An edge is interior
 * (opposite >= 0 on both sides) when exactly two faces traverse it in opposite directions;
 * one face, two faces the same way, or three or more count as boundary (-1). Edges are
 * listed in order of first use. Fails with SL_ERR_NOMEM. */
sl_status dm_topology_build(const int32_t *faces, size_t n_faces, size_t n_verts,
                            dm_topology *t, sl_error *err);

/* Vertex normals: raw[v] = sum over the faces at v of (x1 - x0) x (x2 - x0) (area-weighted),
 * normal[v] = raw[v] / |raw[v]| (0 where raw is 0). raw, normal: (n_verts, 3) overwritten. */
void dm_vertex_normals(const float *verts, size_t n_verts, const int32_t *faces,
                       size_t n_faces, float *raw, float *normal);

/* VJP of dm_vertex_normals for an upstream dnormal (n_verts, 3): accumulates into dverts
 * (n_verts, 3). scratch: (n_verts, 3). */
void dm_vertex_normals_vjp(const float *verts, size_t n_verts, const int32_t *faces,
                           size_t n_faces, const float *raw, const float *dnormal,
                           float *scratch, float *dverts);

/* Normal consistency: weight times the mean over interior edges of 1 - <n_f, n_g> for the
 * unit normals of the two faces sharing the edge (Magic3D / threestudio). Returns the
 * value; when dverts is not NULL accumulates its gradient into it (n_verts, 3). 0 when the
 * mesh has no interior edge. */
double dm_normal_consistency(const float *verts, const int32_t *faces, size_t n_faces,
                             const dm_topology *t, double weight, float *dverts);

/* Uniform Laplacian smoothing: weight times the mean over vertices of
 * |x_v - (1 / deg v) sum_{u ~ v} x_u|^2 (vertices without an edge count 0). Returns the
 * value; when dverts is not NULL accumulates its gradient into it. scratch: (n_verts, 3). */
double dm_laplacian(const float *verts, size_t n_verts, const dm_topology *t, double weight,
                    float *scratch, float *dverts);

#endif
