/* plugins/representations/dmtet/mesh_init.c — initial SDF from a mesh (contract in
 * mesh_init.h). */
#include "mesh_init.h"

#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/rng.h"

/* Reads a (rows, 3) dataset of the given memory type into a malloc'd array. */
static int read_rows3(hid_t file, const char *name, hid_t type, size_t elem, void **data,
                      size_t *rows)
{
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0)
        return 0;
    hid_t space = H5Dget_space(ds);
    hsize_t dims[2] = { 0, 0 };
    int ok = space >= 0 && H5Sget_simple_extent_ndims(space) == 2 &&
             H5Sget_simple_extent_dims(space, dims, NULL) == 2 && dims[1] == 3;
    *data = NULL;
    if (ok && dims[0] > 0) {
        *data = malloc((size_t)dims[0] * 3 * elem);
        ok = *data && H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) >= 0;
    }
    if (space >= 0)
        H5Sclose(space);
    H5Dclose(ds);
    *rows = ok ? (size_t)dims[0] : 0;
    if (!ok) {
        free(*data);
        *data = NULL;
    }
    return ok;
}

sl_status dm_read_run_mesh(const char *path, sl_mesh *m, sl_error *err)
{
    memset(m, 0, sizeof *m);
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    sl_status st = SL_OK;
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        st = sl_error_set(err, SL_ERR_IO, "dmtet: cannot open the run log '%s' (init_run "
                          "of init: run_mesh: has the first stage run?)", path);
        goto done;
    }
    void *v = NULL, *f = NULL;
    size_t nv = 0, nf = 0;
    if (!read_rows3(file, "/mesh/vertices", H5T_NATIVE_FLOAT, sizeof(float), &v, &nv) ||
        !read_rows3(file, "/mesh/faces", H5T_NATIVE_INT32, sizeof(int32_t), &f, &nf)) {
        free(v);
        st = sl_error_set(err, SL_ERR_FORMAT, "dmtet: '%s' has no readable /mesh (vertices "
                          "(V, 3) float, faces (F, 3) int32): is it the log of a run of a "
                          "field representation with log.mesh_resolution > 0?", path);
        H5Fclose(file);
        goto done;
    }
    H5Fclose(file);
    if (nv == 0 || nf == 0) {
        free(v);
        free(f);
        st = sl_error_set(err, SL_ERR_FORMAT, "dmtet: the mesh of '%s' is empty (the run has "
                          "not finished, or its field has no surface)", path);
        goto done;
    }
    const int32_t *fi = f;
    for (size_t i = 0; i < 3 * nf; i++)
        if (fi[i] < 0 || (size_t)fi[i] >= nv) {
            free(v);
            free(f);
            st = sl_error_set(err, SL_ERR_FORMAT, "dmtet: the mesh of '%s' has a face index "
                              "%d outside [0, %zu)", path, (int)fi[i], nv);
            goto done;
        }
    m->vertices = v;
    m->faces = f;
    m->n_vertices = nv;
    m->n_faces = nf;
done:
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    return st;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

sl_status dm_sdf_from_mesh(const sl_mesh *m, const dm_tetgrid *g, size_t samples, float *sdf,
                           sl_error *err)
{
    if (m->n_faces == 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "dmtet: the initial mesh has no face");
    const size_t n1 = (size_t)g->res + 1, rows = n1 * n1;
    const float oy = 1.0e-4f * g->cell[1], oz = 1.3e-4f * g->cell[2];
    /* Crossings per row (j, k), two passes: count, then fill. */
    size_t *start = calloc(rows + 1, sizeof(size_t));
    float *pts = malloc(samples * 3 * sizeof(float));
    double *dist = malloc(g->n_vertices * sizeof(double));
    float *query = malloc(g->n_vertices * 3 * sizeof(float));
    float *xs = NULL;
    size_t *fill = NULL;
    sl_status st = SL_OK;
    if (!start || !pts || !dist || !query) {
        st = sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory (SDF from a mesh)");
        goto done;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t f = 0; f < m->n_faces; f++) {
            const float *a = m->vertices + 3 * (size_t)m->faces[3 * f],
                        *b = m->vertices + 3 * (size_t)m->faces[3 * f + 1],
                        *c = m->vertices + 3 * (size_t)m->faces[3 * f + 2];
            float ymin = fminf(a[1], fminf(b[1], c[1])), ymax = fmaxf(a[1], fmaxf(b[1], c[1]));
            float zmin = fminf(a[2], fminf(b[2], c[2])), zmax = fmaxf(a[2], fmaxf(b[2], c[2]));
            long j0 = (long)ceilf((ymin - oy - g->bmin[1]) / g->cell[1]);
            long j1 = (long)floorf((ymax - oy - g->bmin[1]) / g->cell[1]);
            long k0 = (long)ceilf((zmin - oz - g->bmin[2]) / g->cell[2]);
            long k1 = (long)floorf((zmax - oz - g->bmin[2]) / g->cell[2]);
            j0 = j0 < 0 ? 0 : j0, k0 = k0 < 0 ? 0 : k0;
            j1 = j1 > g->res ? g->res : j1, k1 = k1 > g->res ? g->res : k1;
            /* yz-projected barycentrics, in double. */
            double det = ((double)b[1] - a[1]) * ((double)c[2] - a[2]) -
                         ((double)c[1] - a[1]) * ((double)b[2] - a[2]);
            if (det == 0)
                continue;
            for (long k = k0; k <= k1; k++)
                for (long j = j0; j <= j1; j++) {
                    double py = g->bmin[1] + (double)j * g->cell[1] + oy;
                    double pz = g->bmin[2] + (double)k * g->cell[2] + oz;
                    double l1 = ((py - a[1]) * ((double)c[2] - a[2]) -
                                 ((double)c[1] - a[1]) * (pz - a[2])) / det;
                    double l2 = (((double)b[1] - a[1]) * (pz - a[2]) -
                                 (py - a[1]) * ((double)b[2] - a[2])) / det;
                    if (l1 < 0 || l2 < 0 || l1 + l2 > 1)
                        continue;
                    size_t row = (size_t)j + n1 * (size_t)k;
                    if (pass == 0) {
                        start[row + 1]++;
                    } else {
                        xs[fill[row]++] = (float)((1 - l1 - l2) * a[0] + l1 * b[0] + l2 * c[0]);
                    }
                }
        }
        if (pass == 0) {
            for (size_t r = 0; r < rows; r++)
                start[r + 1] += start[r];
            xs = malloc((start[rows] ? start[rows] : 1) * sizeof(float));
            fill = malloc(rows * sizeof(size_t));
            if (!xs || !fill) {
                st = sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory (%zu ray "
                                  "crossings)", start[rows]);
                goto done;
            }
            memcpy(fill, start, rows * sizeof(size_t));
        }
    }
    /* Unsigned distance to dense surface samples (a fixed key: the same mesh always gives
     * the same SDF). */
    sl_rng_key key = { .seed = 0x5d7e7, .step = 0, .stream = 0, .sample = 0 };
    if ((st = sl_mesh_sample(m, samples, key, pts, err)) != SL_OK)
        goto done;
    for (size_t v = 0; v < g->n_vertices; v++)
        dm_tetgrid_vertex(g, v, query + 3 * v);
    if ((st = sl_nearest_distances(pts, samples, query, g->n_vertices, dist, err)) != SL_OK)
        goto done;
    /* Row (j, k) holds vertices row n1 .. row n1 + res, x increasing. */
    for (size_t row = 0; row < rows; row++) {
        float *x = xs + start[row];
        size_t n = start[row + 1] - start[row], before = 0;
        qsort(x, n, sizeof(float), cmp_float);
        for (size_t i = 0; i < n1; i++) {
            size_t v = row * n1 + i;
            while (before < n && x[before] < query[3 * v])
                before++;
            sdf[v] = (float)((before & 1) ? -dist[v] : dist[v]);
        }
    }
done:
    free(start);
    free(pts);
    free(dist);
    free(query);
    free(xs);
    free(fill);
    return st;
}
