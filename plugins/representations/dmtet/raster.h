/* plugins/representations/dmtet/raster.h — differentiable rasterisation of a triangle mesh
 * for one pinhole camera: visibility by z-buffer, perspective-correct barycentrics, depth
 * and interpolated normals, and an antialiasing step whose analytic coverage gives
 * gradients at silhouettes.
 *
 * Visibility. Pixel (i, j) shoots the ray eye + s d with d = R ((j + 0.5 - cx)/fx,
 * (i + 0.5 - cy)/fy, 1): its forward component is 1, so s is the z-depth. A triangle
 * covers the pixel when the ray hits it (dmtet_ray_triangle: barycentrics l0, l1, l2 >= 0)
 * at s >= near; the smallest s wins, ties to the lower face index. The hit (s, l1, l2) is
 * also the perspective-correct interpolation, differentiable w.r.t. the triangle's vertices
 * (dmtet_ray_triangle_vjp), so depth and normals get interior gradients. Triangles with a
 * vertex closer than the near plane are skipped (not clipped). Candidate pixels come from
 * each triangle's projected bounding box; triangles are binned into bands of
 * DM_RASTER_BAND rows, each band filled by one thread in face order (deterministic).
 *
 * Attributes at a covered pixel: depth s; normal = normalize(sum_k l_k n_k) with the
 * vertex normals n_k (surface_ops.h); world position sum_k l_k x_k (for the texture, which
 * does not differentiate through it).
 *
 * Antialiasing (the role of nvdiffrast's antialias, Laine et al. 2020). For every pair of
 * horizontally or vertically adjacent pixels showing different faces (or a face and the
 * background), the pixel whose surface is closer is the occluder, with face f. The segment
 * from its centre to the neighbour's leaves f's projection through one of f's edges, at
 * fraction t (the first edge crossed, dmtet_edge_crossing). If that edge is a silhouette
 * edge — no face across it, or the face across it faces the camera the other way — the two
 * pixels are blended by the coverage weights of dmtet_aa_weight; every channel (colour,
 * depth, normal, opacity) is blended alike. The deltas of all pairs are computed from the
 * unblended image and added up, each pixel gathering its own (no write conflicts). t
 * depends on the projected end points of the edge, so the blend's gradient flows to those
 * two vertices: this is where silhouettes get their gradient. Interior edges (a face
 * across them facing the same way) are not blended: moving them does not change coverage. */
#ifndef DMTET_RASTER_H
#define DMTET_RASTER_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/camera.h"
#include "steinlab/status.h"

enum { DM_RASTER_BAND = 8 };

/* A mesh as the rasteriser sees it. */
typedef struct dm_raster_mesh {
    const float *verts;      /* (n_verts, 3) world */
    const float *vnormal;    /* (n_verts, 3) unit vertex normals */
    const int32_t *faces;    /* (n_faces, 3) */
    const int32_t *opposite; /* (n_faces, 3) face across edge k or -1 (surface_ops.h) */
    size_t n_verts, n_faces;
} dm_raster_mesh;

/* What one camera's forward pass keeps (owned by the caller, sized for H x W and the mesh). */
typedef struct dm_raster_view {
    int32_t *tri;     /* (H, W) visible face, -1 for the background */
    float *hit;       /* (H, W, 3) (s, l1, l2) of the visible face */
    float *uv;        /* (n_verts, 2) projected vertices (pixels) */
    float *zc;        /* (n_verts,) camera-space depth of the vertices */
    uint8_t *facing;  /* (n_faces,) 1: the face's normal points toward the camera */
} dm_raster_view;

/* Scratch for the band binning, grown as needed; free with dm_raster_scratch_free. */
typedef struct dm_raster_scratch {
    int32_t *bbox;          /* (n_faces, 4) row0, row1, col0, col1 (inclusive); row0 > row1: none */
    int32_t *band_start;    /* (bands + 1,) */
    int32_t *band_faces;    /* (sum over bands,) face indices */
    size_t cap_faces, cap_bands, cap_entries;
} dm_raster_scratch;

void dm_raster_scratch_free(dm_raster_scratch *s);

/* World direction of pixel (i, j)'s ray, forward component 1. */
void dm_pixel_ray(const sl_camera *cam, int i, int j, float d[3]);

/* Rasterises the mesh for cam into view (tri, hit, uv, zc, facing overwritten). Fails with
 * SL_ERR_NOMEM. */
sl_status dm_rasterize(const dm_raster_mesh *m, const sl_camera *cam, dm_raster_view *view,
                       dm_raster_scratch *scratch, sl_error *err);

/* Attributes of the covered pixel (i, j) with face f and hit: position (3,), normal (3,) unit. */
void dm_pixel_attributes(const dm_raster_mesh *m, int32_t f, const float hit[3],
                         float pos[3], float normal[3]);

/* VJP of the pixel's depth s, normal and position for upstream ddepth, dnormal (3,) and
 * dpos (3,): the gradients of the face's three vertices' positions (dx, (3, 3),
 * overwritten) and vertex normals (dn, (3, 3), overwritten), in the order of the face's
 * vertices. The position p = sum_k l_k x_k depends on the vertices directly and through the
 * barycentrics of the hit. */
void dm_pixel_attributes_vjp(const dm_raster_mesh *m, const sl_camera *cam, int i, int j,
                             int32_t f, const float hit[3], float ddepth,
                             const float dnormal[3], const float dpos[3], float dx[9],
                             float dn[9]);

/* Antialiasing: out (H, W, C) = pre (H, W, C) plus the silhouette blends (see above). */
void dm_antialias(const dm_raster_mesh *m, const dm_raster_view *view, int H, int W, int C,
                  const float *pre, float *out);

/* VJP of dm_antialias for an upstream dout (H, W, C): dpre (H, W, C) is overwritten;
 * the silhouette gradients w.r.t. the mesh vertices accumulate into dverts (n_verts, 3),
 * in a fixed order (pairs by pixel, then right before down). scratch: (H, W, 2) pair
 * records: pair_f (H W 2 4,) the two end points' screen gradients, pair_v (H W 2 2,)
 * their vertices (-1: no blend). */
void dm_antialias_vjp(const dm_raster_mesh *m, const dm_raster_view *view,
                      const sl_camera *cam, int H, int W, int C, const float *pre,
                      const float *dout, float *dpre, float *pair_f, int32_t *pair_v,
                      float *dverts);

#endif
