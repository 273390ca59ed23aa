/* plugins/representations/dmtet/raster.c — rasterisation and antialiasing (contract in
 * raster.h). */
#include "raster.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dmtet_math.h"

void dm_raster_scratch_free(dm_raster_scratch *s)
{
    free(s->bbox);
    free(s->band_start);
    free(s->band_faces);
    memset(s, 0, sizeof *s);
}

void dm_pixel_ray(const sl_camera *cam, int i, int j, float d[3])
{
    float c[3] = { ((float)j + 0.5f - cam->cx) / cam->fx, ((float)i + 0.5f - cam->cy) / cam->fy,
                   1.0f };
    for (int k = 0; k < 3; k++)
        d[k] = cam->rot[3 * k] * c[0] + cam->rot[3 * k + 1] * c[1] + cam->rot[3 * k + 2] * c[2];
}

static int clampi(int x, int lo, int hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

sl_status dm_rasterize(const dm_raster_mesh *m, const sl_camera *cam, dm_raster_view *view,
                       dm_raster_scratch *sc, sl_error *err)
{
    const int H = cam->height, W = cam->width;
    const size_t nf = m->n_faces;
    const int bands = (H + DM_RASTER_BAND - 1) / DM_RASTER_BAND;
    if (nf > sc->cap_faces) {
        free(sc->bbox);
        sc->bbox = malloc(nf * 4 * sizeof(int32_t));
        sc->cap_faces = sc->bbox ? nf : 0;
        if (!sc->bbox)
            return sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory (raster boxes)");
    }
    if ((size_t)bands + 1 > sc->cap_bands) {
        free(sc->band_start);
        sc->band_start = malloc(((size_t)bands + 1) * sizeof(int32_t));
        sc->cap_bands = sc->band_start ? (size_t)bands + 1 : 0;
        if (!sc->band_start)
            return sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory (raster bands)");
    }
#pragma omp parallel for schedule(static)
    for (size_t v = 0; v < m->n_verts; v++)
        view->zc[v] = dmtet_project(cam->rot, cam->eye, cam->fx, cam->fy, cam->cx, cam->cy,
                                    m->verts + 3 * v, view->uv + 2 * v);
    /* Boxes of the pixel centres each face may cover, and which way it faces. */
#pragma omp parallel for schedule(static)
    for (size_t f = 0; f < nf; f++) {
        const int32_t *fv = m->faces + 3 * f;
        int32_t *bb = sc->bbox + 4 * f;
        bb[0] = 1, bb[1] = 0;
        const float *x0 = m->verts + 3 * (size_t)fv[0];
        float e1[3], e2[3], n[3], toward[3];
        for (int k = 0; k < 3; k++) {
            e1[k] = m->verts[3 * (size_t)fv[1] + k] - x0[k];
            e2[k] = m->verts[3 * (size_t)fv[2] + k] - x0[k];
            toward[k] = cam->eye[k] - x0[k];
        }
        dmtet_cross3(e1, e2, n);
        view->facing[f] = dmtet_dot3(n, toward) > 0;
        float umin = INFINITY, umax = -INFINITY, vmin = INFINITY, vmax = -INFINITY;
        int behind = 0;
        for (int q = 0; q < 3; q++) {
            size_t v = (size_t)fv[q];
            behind |= !(view->zc[v] >= cam->near);
            const float *uv = view->uv + 2 * v;
            umin = fminf(umin, uv[0]), umax = fmaxf(umax, uv[0]);
            vmin = fminf(vmin, uv[1]), vmax = fmaxf(vmax, uv[1]);
        }
        if (behind || !(umax >= 0.0f) || !(vmax >= 0.0f) || umin > (float)W || vmin > (float)H)
            continue;
        /* Centres j + 0.5 in [umin, umax], widened by one pixel: the exact test is the
         * ray's, so the box only has to contain every candidate. */
        bb[2] = clampi((int)floorf(umin - 0.5f) - 1, 0, W - 1);
        bb[3] = clampi((int)ceilf(umax - 0.5f) + 1, 0, W - 1);
        bb[0] = clampi((int)floorf(vmin - 0.5f) - 1, 0, H - 1);
        bb[1] = clampi((int)ceilf(vmax - 0.5f) + 1, 0, H - 1);
    }
    /* Bin the faces into bands, in face order. */
    memset(sc->band_start, 0, ((size_t)bands + 1) * sizeof(int32_t));
    for (size_t f = 0; f < nf; f++) {
        const int32_t *bb = sc->bbox + 4 * f;
        if (bb[0] > bb[1])
            continue;
        for (int b = bb[0] / DM_RASTER_BAND; b <= bb[1] / DM_RASTER_BAND; b++)
            sc->band_start[b + 1]++;
    }
    for (int b = 0; b < bands; b++)
        sc->band_start[b + 1] += sc->band_start[b];
    size_t entries = (size_t)sc->band_start[bands];
    if (entries > sc->cap_entries) {
        free(sc->band_faces);
        sc->band_faces = malloc((entries ? entries : 1) * sizeof(int32_t));
        sc->cap_entries = sc->band_faces ? entries : 0;
        if (!sc->band_faces)
            return sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory (raster bins)");
    }
    {
        int32_t fill[bands > 0 ? bands : 1];
        for (int b = 0; b < bands; b++)
            fill[b] = sc->band_start[b];
        for (size_t f = 0; f < nf; f++) {
            const int32_t *bb = sc->bbox + 4 * f;
            if (bb[0] > bb[1])
                continue;
            for (int b = bb[0] / DM_RASTER_BAND; b <= bb[1] / DM_RASTER_BAND; b++)
                sc->band_faces[fill[b]++] = (int32_t)f;
        }
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < bands; b++) {
        int r0 = b * DM_RASTER_BAND, r1 = r0 + DM_RASTER_BAND < H ? r0 + DM_RASTER_BAND : H;
        for (int i = r0; i < r1; i++)
            for (int j = 0; j < W; j++) {
                view->tri[(size_t)i * W + j] = -1;
                float *h = view->hit + 3 * ((size_t)i * W + j);
                h[0] = INFINITY, h[1] = h[2] = 0;
            }
        for (int32_t e = sc->band_start[b]; e < sc->band_start[b + 1]; e++) {
            int32_t f = sc->band_faces[e];
            const int32_t *bb = sc->bbox + 4 * (size_t)f;
            const int32_t *fv = m->faces + 3 * (size_t)f;
            const float *x0 = m->verts + 3 * (size_t)fv[0], *x1 = m->verts + 3 * (size_t)fv[1],
                        *x2 = m->verts + 3 * (size_t)fv[2];
            int i0 = bb[0] > r0 ? bb[0] : r0, i1 = bb[1] < r1 - 1 ? bb[1] : r1 - 1;
            for (int i = i0; i <= i1; i++)
                for (int j = bb[2]; j <= bb[3]; j++) {
                    float d[3], out[3];
                    dm_pixel_ray(cam, i, j, d);
                    if (!dmtet_ray_triangle(cam->eye, d, x0, x1, x2, out))
                        continue;
                    if (!(out[1] >= 0 && out[2] >= 0 && out[1] + out[2] <= 1 &&
                          out[0] >= cam->near))
                        continue;
                    size_t p = (size_t)i * W + j;
                    float *h = view->hit + 3 * p;
                    if (out[0] < h[0]) {
                        memcpy(h, out, sizeof out);
                        view->tri[p] = f;
                    }
                }
        }
    }
    return SL_OK;
}

void dm_pixel_attributes(const dm_raster_mesh *m, int32_t f, const float hit[3],
                         float pos[3], float normal[3])
{
    const int32_t *fv = m->faces + 3 * (size_t)f;
    float l[3] = { 1 - hit[1] - hit[2], hit[1], hit[2] }, nsum[3] = { 0, 0, 0 };
    for (int k = 0; k < 3; k++)
        pos[k] = 0;
    for (int q = 0; q < 3; q++)
        for (int k = 0; k < 3; k++) {
            pos[k] += l[q] * m->verts[3 * (size_t)fv[q] + k];
            nsum[k] += l[q] * m->vnormal[3 * (size_t)fv[q] + k];
        }
    dmtet_normalize(nsum, normal);
}

void dm_pixel_attributes_vjp(const dm_raster_mesh *m, const sl_camera *cam, int i, int j,
                             int32_t f, const float hit[3], float ddepth,
                             const float dnormal[3], const float dpos[3], float dx[9],
                             float dn[9])
{
    const int32_t *fv = m->faces + 3 * (size_t)f;
    float l[3] = { 1 - hit[1] - hit[2], hit[1], hit[2] }, nsum[3] = { 0, 0, 0 };
    for (int q = 0; q < 3; q++)
        for (int k = 0; k < 3; k++)
            nsum[k] += l[q] * m->vnormal[3 * (size_t)fv[q] + k];
    float dsum[3] = { 0, 0, 0 };
    dmtet_normalize_vjp(nsum, dnormal, dsum);
    float dl[3];
    memset(dx, 0, 9 * sizeof(float));
    for (int q = 0; q < 3; q++) {
        const float *xq = m->verts + 3 * (size_t)fv[q];
        dl[q] = dmtet_dot3(dsum, m->vnormal + 3 * (size_t)fv[q]) + dmtet_dot3(dpos, xq);
        for (int k = 0; k < 3; k++) {
            dn[3 * q + k] = l[q] * dsum[k];
            dx[3 * q + k] = l[q] * dpos[k];
        }
    }
    /* l0 = 1 - l1 - l2. */
    float dout[3] = { ddepth, dl[1] - dl[0], dl[2] - dl[0] };
    float d[3];
    dm_pixel_ray(cam, i, j, d);
    dmtet_ray_triangle_vjp(d, m->verts + 3 * (size_t)fv[0], m->verts + 3 * (size_t)fv[1],
                           m->verts + 3 * (size_t)fv[2], hit, dout, dx, dx + 3, dx + 6);
}

/* One pixel pair's silhouette: the pixels p < q (indices), adjacent. Returns 1 when the
 * pair is blended, with the occluder (0: p, 1: q), the crossing fraction t and the edge's
 * vertices a, b. */
static int aa_pair(const dm_raster_mesh *m, const dm_raster_view *view, int W, size_t p,
                   size_t q, int *occ, float *t, int32_t *va, int32_t *vb)
{
    int32_t tp = view->tri[p], tq = view->tri[q];
    if (tp == tq)
        return 0;
    float zp = tp >= 0 ? view->hit[3 * p] : INFINITY, zq = tq >= 0 ? view->hit[3 * q] : INFINITY;
    *occ = zp <= zq ? 0 : 1;
    size_t po = *occ ? q : p, pb = *occ ? p : q;
    int32_t f = view->tri[po];
    float cf[2] = { (float)(po % (size_t)W) + 0.5f, (float)(po / (size_t)W) + 0.5f };
    float cb[2] = { (float)(pb % (size_t)W) + 0.5f, (float)(pb / (size_t)W) + 0.5f };
    const int32_t *fv = m->faces + 3 * (size_t)f;
    const float *u0 = view->uv + 2 * (size_t)fv[0], *u1 = view->uv + 2 * (size_t)fv[1],
                *u2 = view->uv + 2 * (size_t)fv[2];
    float sgn = dmtet_edge_fn(u0, u1, u2) >= 0 ? 1.0f : -1.0f;
    int best = -1;
    float tbest = 2;
    for (int k = 0; k < 3; k++) {
        const float *ua = view->uv + 2 * (size_t)fv[k], *ub = view->uv + 2 * (size_t)fv[(k + 1) % 3];
        float ef = sgn * dmtet_edge_fn(ua, ub, cf), eb = sgn * dmtet_edge_fn(ua, ub, cb);
        if (ef > 0 && eb < 0) {
            float tk = ef / (ef - eb);
            if (tk < tbest)
                tbest = tk, best = k;
        }
    }
    if (best < 0)
        return 0;
    int32_t g = m->opposite[3 * (size_t)f + best];
    if (g >= 0 && view->facing[g] == view->facing[f])
        return 0;   /* an interior edge: coverage does not change when it moves */
    *t = tbest;
    *va = fv[best];
    *vb = fv[(best + 1) % 3];
    return 1;
}

/* The (up to) four neighbours of pixel p in a fixed order: left, right, up, down. */
static int neighbours(int H, int W, size_t p, size_t nb[4])
{
    int i = (int)(p / (size_t)W), j = (int)(p % (size_t)W), n = 0;
    if (j > 0)
        nb[n++] = p - 1;
    if (j + 1 < W)
        nb[n++] = p + 1;
    if (i > 0)
        nb[n++] = p - (size_t)W;
    if (i + 1 < H)
        nb[n++] = p + (size_t)W;
    return n;
}

void dm_antialias(const dm_raster_mesh *m, const dm_raster_view *view, int H, int W, int C,
                  const float *pre, float *out)
{
    const size_t np = (size_t)H * W;
#pragma omp parallel for schedule(static)
    for (size_t p = 0; p < np; p++) {
        float *o = out + (size_t)C * p;
        const float *vp = pre + (size_t)C * p;
        memcpy(o, vp, (size_t)C * sizeof(float));
        size_t nb[4];
        int n = neighbours(H, W, p, nb);
        for (int e = 0; e < n; e++) {
            size_t lo = p < nb[e] ? p : nb[e], hi = p < nb[e] ? nb[e] : p;
            int occ;
            float t;
            int32_t va, vb;
            if (!aa_pair(m, view, W, lo, hi, &occ, &t, &va, &vb))
                continue;
            int p_is_occ = (occ == 0) == (p == lo);
            float w = dmtet_aa_weight(p_is_occ ? 0 : 1, t);
            if (w == 0)
                continue;
            const float *vq = pre + (size_t)C * nb[e];
            for (int c = 0; c < C; c++)
                o[c] += w * (vq[c] - vp[c]);
        }
    }
}

void dm_antialias_vjp(const dm_raster_mesh *m, const dm_raster_view *view,
                      const sl_camera *cam, int H, int W, int C, const float *pre,
                      const float *dout, float *dpre, float *pair_f, int32_t *pair_v,
                      float *dverts)
{
    const size_t np = (size_t)H * W;
#pragma omp parallel for schedule(static)
    for (size_t p = 0; p < np; p++) {
        const float *gp = dout + (size_t)C * p;
        float *dp = dpre + (size_t)C * p;
        memcpy(dp, gp, (size_t)C * sizeof(float));
        size_t nb[4];
        int n = neighbours(H, W, p, nb);
        /* Pixel values: out_x = pre_x + w_x (pre_y - pre_x) for the pixel x blended from y. */
        for (int e = 0; e < n; e++) {
            size_t q = nb[e];
            size_t lo = p < q ? p : q, hi = p < q ? q : p;
            int occ;
            float t;
            int32_t va, vb;
            if (!aa_pair(m, view, W, lo, hi, &occ, &t, &va, &vb))
                continue;
            int p_is_occ = (occ == 0) == (p == lo);
            float wp = dmtet_aa_weight(p_is_occ ? 0 : 1, t);   /* p blended from q */
            float wq = dmtet_aa_weight(p_is_occ ? 1 : 0, t);   /* q blended from p */
            const float *gq = dout + (size_t)C * q;
            for (int c = 0; c < C; c++)
                dp[c] += -wp * gp[c] + wq * gq[c];
        }
        /* The pairs this pixel owns (right, then down): the gradient w.r.t. t, pushed to the
         * edge's projected end points. */
        for (int e = 0; e < 2; e++) {
            float *rec = pair_f + 8 * p + 4 * (size_t)e;
            int32_t *rv = pair_v + 4 * p + 2 * (size_t)e;
            rv[0] = rv[1] = -1;
            int i = (int)(p / (size_t)W), j = (int)(p % (size_t)W);
            if ((e == 0 && j + 1 >= W) || (e == 1 && i + 1 >= H))
                continue;
            size_t q = e == 0 ? p + 1 : p + (size_t)W;
            int occ;
            float t;
            int32_t va, vb;
            if (!aa_pair(m, view, W, p, q, &occ, &t, &va, &vb))
                continue;
            size_t po = occ ? q : p, pn = occ ? p : q;
            const float *vo = pre + (size_t)C * po, *vn = pre + (size_t)C * pn;
            const float *go = dout + (size_t)C * po, *gn = dout + (size_t)C * pn;
            float g0 = dmtet_aa_weight_grad(0, t), g1 = dmtet_aa_weight_grad(1, t), dt = 0;
            for (int c = 0; c < C; c++)
                dt += g0 * go[c] * (vn[c] - vo[c]) + g1 * gn[c] * (vo[c] - vn[c]);
            if (dt == 0)
                continue;
            float cf[2] = { (float)(po % (size_t)W) + 0.5f, (float)(po / (size_t)W) + 0.5f };
            float cb[2] = { (float)(pn % (size_t)W) + 0.5f, (float)(pn / (size_t)W) + 0.5f };
            memset(rec, 0, 4 * sizeof(float));
            dmtet_edge_crossing_vjp(view->uv + 2 * (size_t)va, view->uv + 2 * (size_t)vb, cf,
                                    cb, dt, rec, rec + 2);
            rv[0] = va, rv[1] = vb;
        }
    }
    /* Fixed-order scatter through the projection. */
    for (size_t r = 0; r < 2 * np; r++) {
        const int32_t *rv = pair_v + 2 * r;
        if (rv[0] < 0)
            continue;
        for (int e = 0; e < 2; e++) {
            size_t v = (size_t)rv[e];
            dmtet_project_vjp(cam->rot, cam->eye, cam->fx, cam->fy, m->verts + 3 * v,
                              pair_f + 4 * r + 2 * (size_t)e, dverts + 3 * v);
        }
    }
}
