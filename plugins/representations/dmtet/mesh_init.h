/* plugins/representations/dmtet/mesh_init.h — DMTet's initial SDF from a triangle mesh, in
 * particular the final mesh of a finished run of a field representation (a NeRF): the
 * stage chaining of Magic3D / threestudio's geometry_convert_from, through the mesh that
 * the run's log keeps (/mesh, written at the end of a run, docs/log-format.md).
 *
 * The SDF at a grid vertex is the distance to the mesh, negative inside:
 *  - inside / outside by ray parity: each grid row along x is intersected with every
 *    triangle (the crossings' x sorted per row), and a vertex is inside when an odd number
 *    of crossings lies before it. The rows are shifted by a tiny fixed offset (1e-4 and
 *    1.3e-4 of a cell in y and z) so a lattice-aligned mesh never has a crossing exactly on
 *    an edge or vertex; the sign is therefore that of a point within 1e-4 cell of the
 *    vertex. A mesh that is not closed gives signs that depend on the row.
 *  - distance: to the nearest of `samples` points spread uniformly over the mesh's area
 *    (sl_mesh_sample, then sl_nearest_distances' k-d tree), which over-estimates the true
 *    distance by at most the samples' spacing (~ sqrt(area / samples)). */
#ifndef DMTET_MESH_INIT_H
#define DMTET_MESH_INIT_H

#include <stddef.h>

#include "steinlab/mesh.h"
#include "steinlab/status.h"
#include "tetgrid.h"

/* Reads /mesh/vertices and /mesh/faces of a run's log (HDF5) into m (arrays malloc'd; free
 * with sl_mesh_free). Fails with SL_ERR_IO (cannot open the file), SL_ERR_FORMAT (no /mesh,
 * an empty one — the run has not finished — or a face index out of range). */
sl_status dm_read_run_mesh(const char *path, sl_mesh *m, sl_error *err);

/* sdf (n_vertices,) overwritten from the mesh at the undeformed grid vertices. Fails with
 * SL_ERR_INVALID_ARG (empty mesh) or SL_ERR_NOMEM. */
sl_status dm_sdf_from_mesh(const sl_mesh *m, const dm_tetgrid *g, size_t samples, float *sdf,
                           sl_error *err);

#endif
