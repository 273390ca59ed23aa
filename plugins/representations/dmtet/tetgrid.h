/* plugins/representations/dmtet/tetgrid.h — the tetrahedral grid and differentiable
 * marching tetrahedra (DMTet, Shen et al. 2021).
 *
 * Grid: a lattice of N^3 cubes over the box [bmin, bmax], (N + 1)^3 vertices, vertex
 * (i, j, k) at index i + (N + 1) (j + (N + 1) k). Each cube is split into the 6 Kuhn
 * (Freudenthal) tetrahedra around its main diagonal: for a permutation p of the axes the
 * tetrahedron runs corner 0 -> 0 + e_p0 -> 0 + e_p0 + e_p1 -> corner 7. The split is the same
 * in every cube and every face diagonal runs from a face's lowest to its highest corner, so
 * the faces of neighbouring cubes match (the tetrahedra form a conforming mesh). The
 * corners are stored with positive orientation (det(v1 - v0, v2 - v0, v3 - v0) > 0; odd
 * permutations have their last two corners swapped). Every grid edge joins a vertex to one
 * of 7 higher neighbours (offset in {0, 1}^3 minus 0): edge id = 7 v + offset - 1, so no
 * per-tetrahedron storage is needed at any resolution.
 *
 * Marching tetrahedra: a vertex is inside when its SDF < 0. A tetrahedron with 1 or 3
 * inside vertices holds one triangle, with 2 a quad (two triangles); the crossing on an
 * edge (a, b) is the zero of the linear interpolation of the SDF (dmtet_crossing). The
 * 16-case table is generated from three rules on a positively oriented tetrahedron
 * (i, j, k, l) an even permutation of (0, 1, 2, 3):
 *     inside {i} alone:      triangle (ij, ik, il)         — its normal points away from i
 *     outside {i} alone:     triangle (ij, il, ik)         — toward i
 *     inside {i, j}:         triangles (ik, il, jl), (ik, jl, jk)
 * so every triangle is wound counter-clockwise seen from outside (normals point to
 * SDF > 0), and since the orientation comes from the tetrahedra's combinatorics, two
 * triangles sharing an edge traverse it in opposite directions whatever the deformation.
 * The quad's diagonal lies inside the tetrahedron, never on a face, so neighbouring
 * tetrahedra never disagree. Crossings are shared: one surface vertex per crossed grid
 * edge, numbered in order of first use, cubes in index order (deterministic).
 *
 * Precision: float positions and SDF; the extraction is sequential over the cubes that
 * straddle the surface (thread-count independent). */
#ifndef DMTET_TETGRID_H
#define DMTET_TETGRID_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/status.h"

typedef struct dm_tetgrid {
    int res;                  /* N cubes per axis */
    size_t n_vertices;        /* (N + 1)^3 */
    float bmin[3], bmax[3];   /* the lattice's box */
    float cell[3];            /* cell size per axis */
    uint8_t tets[6][4];       /* (6, 4) cube corner bits (x | y << 1 | z << 2), positive */
} dm_tetgrid;

/* One case of the marching-tetrahedra table: up to two triangles, each as three edges,
 * each edge as two tetrahedron-local vertex indices (0..3). */
typedef struct dm_mt_case {
    int n_tris;
    uint8_t edge[2][3][2];
} dm_mt_case;

/* The table, indexed by the inside mask (bit i: tetrahedron vertex i has SDF < 0). */
void dm_mt_table(dm_mt_case table[16]);

/* Fills the grid for res in [1, 1024] over the box (bmax > bmin per axis). */
void dm_tetgrid_init(dm_tetgrid *g, int res, const float bmin[3], const float bmax[3]);

/* Undeformed position of vertex v. */
void dm_tetgrid_vertex(const dm_tetgrid *g, size_t v, float x[3]);

/* The extracted surface: a triangle mesh plus, per vertex, the grid edge it lies on. */
typedef struct dm_surface {
    float *verts;          /* (n_verts, 3) world positions */
    int32_t *faces;        /* (n_faces, 3) counter-clockwise seen from outside */
    int32_t *edge_a;       /* (n_verts,) grid vertex at the edge's lower corner */
    int32_t *edge_b;       /* (n_verts,) grid vertex at the edge's upper corner */
    int64_t *edge_id;      /* (n_verts,) grid edge id (7 v + offset - 1) */
    size_t n_verts, n_faces;
    size_t cap_verts, cap_faces;
    int32_t *edge_map;     /* (7 n_vertices,) surface vertex of a grid edge or -1; all -1
                              between calls (entries used are reset after extraction) */
    size_t edge_map_n;
    uint8_t *inside;       /* (n_vertices,) scratch: SDF < 0 */
} dm_surface;

/* Frees everything (malloc'd); zeroes the struct. */
void dm_surface_free(dm_surface *s);

/* Marching tetrahedra on the deformed grid x_v = base_v + scale tanh(def_v) (per axis;
 * dmtet_deform), base and def (n_vertices, 3), and the SDF sdf (n_vertices,). Positions are
 * computed only for the end points of crossed edges (a few per cent of the grid), so the
 * cost is one pass over the signs plus the surface. The surface's arrays grow as needed (kept between calls). A cube on the lattice's border
 * is treated like any other, so an SDF negative on the border gives an open surface there.
 * Fails with SL_ERR_NOMEM or SL_ERR_NONFINITE (an SDF value is NaN / infinite). */
sl_status dm_marching_tets(const dm_tetgrid *g, const dm_mt_case table[16], const float *base,
                           const float *def, const float scale[3], const float *sdf,
                           dm_surface *s, sl_error *err);

/* VJP of the extraction (away from topology changes the surface is a smooth function of
 * def and sdf): dverts (n_verts, 3) upstream; accumulates into ddef (n_vertices, 3) and
 * dsdf (n_vertices,), touching only the end points of crossed edges. Sequential in vertex
 * order (deterministic). */
void dm_marching_tets_backward(const dm_surface *s, const float *base, const float *def,
                               const float scale[3], const float *sdf, const float *dverts,
                               float *ddef, float *dsdf);

#endif
