/* plugins/representations/gaussians/raster.c — tiled CPU rasterizer (raster.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gs_math.h"
#include "raster.h"

/* Per-Gaussian record of the preprocessing, GS_PRE floats: what blending reads, packed so
 * one tile's loop touches one cache line per Gaussian. */
enum { GS_PRE = 16 };
enum { PRE_U = 0, PRE_V = 1, PRE_A = 2, PRE_B = 3, PRE_C = 4, PRE_OP = 5, PRE_FEAT = 6,
       PRE_LT = 14 };
/* 6 + 8 channels, then PRE_LT: a power below which alpha is surely under 1/255,
 * -ln(255 op) - 1e-3 (alpha = op e^power; the margin dwarfs float rounding), so most
 * pixels a Gaussian does not reach skip the exponential. The exact test still decides
 * every other case, so the result is the same as without the shortcut. */
static inline int cheap_skip(const float *p, float px, float py)
{
    float dx = px - p[PRE_U], dy = py - p[PRE_V];
    float power = -0.5f * (p[PRE_A] * dx * dx + p[PRE_C] * dy * dy) - p[PRE_B] * dx * dy;
    return power < p[PRE_LT];
}

struct gs_view {
    /* camera of the last render */
    sl_camera cam;
    float Wr[9];        /* (3, 3) world-to-camera rotation, rows = camera axes */
    float bg[3];
    float lim_x, lim_y; /* EWA clamp of x/z and y/z (1.3 x the half field of view) */
    int W, H, tiles_x, tiles_y;
    int sh_degree;
    size_t n, cap_n;

    /* per Gaussian, (cap_n, ...) */
    float *pre;              /* (n, GS_PRE) uv, conic, op, feat (see PRE_*) */
    float *depth;            /* (n,) camera z */
    float *radius;           /* (n,) extent in pixels, 0 when culled */
    int32_t *rect;           /* (n, 4) tile rect [x0, x1) x [y0, y1); empty when culled */
    int8_t *normal_axis;     /* (n,) shortest axis index */
    float *normal_sign;      /* (n,) +-1 */
    int64_t *gauss_start;    /* (n + 1,) offsets into gauss_entry */
    uint32_t *keys, *keys_tmp;  /* (n,) radix sort keys */
    int32_t *order, *order_tmp; /* (n,) visible Gaussians sorted by depth */
    size_t n_visible;

    /* binning */
    size_t n_entries, cap_entries;
    int32_t *entry_gauss;    /* (n_entries,) Gaussian of each entry, tile-major, depth order */
    int64_t *gauss_entry;    /* (n_entries,) entry indices per Gaussian (gauss_start) */
    float *entry_grad;       /* (n_entries, GS_ENTRY_GRAD) backward scratch */
    int64_t *tile_start;     /* (tiles + 1,) */
    int64_t *tile_cursor;    /* (tiles,) */
    size_t cap_tiles;

    /* per pixel */
    size_t cap_px;
    float *final_T;          /* (H, W) */
    int32_t *n_contrib;      /* (H, W) list entries up to and including the last added */
};

gs_view *gs_view_create(void)
{
    return calloc(1, sizeof(gs_view));
}

void gs_view_destroy(gs_view *v)
{
    if (!v)
        return;
    free(v->pre); free(v->depth); free(v->radius); free(v->rect); free(v->normal_axis);
    free(v->normal_sign); free(v->gauss_start); free(v->keys); free(v->keys_tmp);
    free(v->order); free(v->order_tmp); free(v->entry_gauss); free(v->gauss_entry);
    free(v->entry_grad); free(v->tile_start); free(v->tile_cursor); free(v->final_T);
    free(v->n_contrib);
    free(v);
}

size_t gs_view_visible(const gs_view *v) { return v->n_visible; }
size_t gs_view_entries(const gs_view *v) { return v->n_entries; }
const float *gs_view_radii(const gs_view *v) { return v->radius; }

/* Grows *p to hold n elements of `size` bytes (contents kept). */
static int grow(void **p, size_t n, size_t size)
{
    void *q = realloc(*p, (n ? n : 1) * size);
    if (!q)
        return 0;
    *p = q;
    return 1;
}

static sl_status reserve(gs_view *v, size_t n, size_t tiles, size_t px, sl_error *err)
{
    int ok = 1;
    if (n > v->cap_n) {
        ok = ok && grow((void **)&v->pre, n, GS_PRE * sizeof(float));
        ok = ok && grow((void **)&v->depth, n, sizeof(float));
        ok = ok && grow((void **)&v->radius, n, sizeof(float));
        ok = ok && grow((void **)&v->rect, n, 4 * sizeof(int32_t));
        ok = ok && grow((void **)&v->normal_axis, n, 1);
        ok = ok && grow((void **)&v->normal_sign, n, sizeof(float));
        ok = ok && grow((void **)&v->gauss_start, n + 1, sizeof(int64_t));
        ok = ok && grow((void **)&v->keys, n, sizeof(uint32_t));
        ok = ok && grow((void **)&v->keys_tmp, n, sizeof(uint32_t));
        ok = ok && grow((void **)&v->order, n, sizeof(int32_t));
        ok = ok && grow((void **)&v->order_tmp, n, sizeof(int32_t));
        if (ok)
            v->cap_n = n;
    }
    if (ok && tiles > v->cap_tiles) {
        ok = ok && grow((void **)&v->tile_start, tiles + 1, sizeof(int64_t));
        ok = ok && grow((void **)&v->tile_cursor, tiles, sizeof(int64_t));
        if (ok)
            v->cap_tiles = tiles;
    }
    if (ok && px > v->cap_px) {
        ok = ok && grow((void **)&v->final_T, px, sizeof(float));
        ok = ok && grow((void **)&v->n_contrib, px, sizeof(int32_t));
        if (ok)
            v->cap_px = px;
    }
    if (!ok)
        return sl_error_set(err, SL_ERR_NOMEM,
                            "gaussians: out of memory for a render of %zu Gaussians at %zu "
                            "pixels", n, px);
    return SL_OK;
}

static inline float sigmoidf_(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* Preprocessing of Gaussian i (step 1 of the file comment); culled Gaussians get radius 0
 * and an empty rect. */
static void preprocess_one(gs_view *v, const gs_scene *s, size_t i)
{
    float *pre = v->pre + i * GS_PRE;
    int32_t *rect = v->rect + i * 4;
    v->radius[i] = 0.0f;
    rect[0] = rect[1] = rect[2] = rect[3] = 0;
    const float *mean = s->means + i * 3;
    float pc[3];
    gs_world_to_cam(v->Wr, v->cam.eye, mean, pc);
    v->depth[i] = pc[2];
    if (!(pc[2] > v->cam.near))
        return;   /* behind the near plane (or the camera), or NaN */
    float cov3[6], cov2[3], conic[3], uv[2];
    gs_cov3d(s->log_scales + i * 3, s->quats + i * 4, cov3);
    gs_cov2d(pc, v->Wr, cov3, v->cam.fx, v->cam.fy, v->lim_x, v->lim_y, cov2);
    if (!(gs_conic(cov2, conic) > 0))
        return;
    float op = sigmoidf_(s->opacity_logits[i]);
    float r = gs_extent(cov2, op);
    if (!(r > 0))
        return;
    gs_project(pc, v->cam.fx, v->cam.fy, v->cam.cx, v->cam.cy, uv);
    /* Pixel columns j whose centre j + 0.5 lies within r of u (a small margin absorbs the
     * rounding of the alpha test; tiles with nothing to draw cost time, not correctness). */
    float rm = r * 1.0001f + 1e-3f;
    float jx0 = ceilf(uv[0] - rm - 0.5f), jx1 = floorf(uv[0] + rm - 0.5f);
    float jy0 = ceilf(uv[1] - rm - 0.5f), jy1 = floorf(uv[1] + rm - 0.5f);
    if (!(jx1 >= 0.0f && jy1 >= 0.0f && jx0 <= (float)(v->W - 1) && jy0 <= (float)(v->H - 1)))
        return;   /* off screen (also catches NaN) */
    int x0 = jx0 < 0.0f ? 0 : (int)jx0, y0 = jy0 < 0.0f ? 0 : (int)jy0;
    int x1 = jx1 > (float)(v->W - 1) ? v->W - 1 : (int)jx1;
    int y1 = jy1 > (float)(v->H - 1) ? v->H - 1 : (int)jy1;
    rect[0] = x0 / GS_TILE;
    rect[1] = x1 / GS_TILE + 1;
    rect[2] = y0 / GS_TILE;
    rect[3] = y1 / GS_TILE + 1;
    v->radius[i] = r;
    pre[PRE_U] = uv[0];
    pre[PRE_V] = uv[1];
    pre[PRE_A] = conic[0];
    pre[PRE_B] = conic[1];
    pre[PRE_C] = conic[2];
    pre[PRE_OP] = op;
    pre[PRE_LT] = -logf(255.0f * op) - 1e-3f;
    float *feat = pre + PRE_FEAT;
    gs_sh_color(s->sh_degree, mean, v->cam.eye, s->sh_dc + i * 3,
                s->sh_rest ? s->sh_rest + i * (size_t)s->sh_rest_coeffs * 3 : NULL, feat);
    feat[GS_CH_DEPTH] = pc[2];
    float R[9], sign;
    gs_quat_to_rot(s->quats + i * 4, R);
    v->normal_axis[i] = (int8_t)gs_normal(R, s->log_scales + i * 3, mean, v->cam.eye,
                                          feat + GS_CH_NORMAL, &sign);
    v->normal_sign[i] = sign;
    feat[GS_CH_ONE] = 1.0f;
}

/* Stable LSD radix sort of order[0..m) by keys (uint32), 4 passes of 8 bits. */
static void radix_sort(gs_view *v, size_t m)
{
    uint32_t *k = v->keys, *kt = v->keys_tmp;
    int32_t *o = v->order, *ot = v->order_tmp;
    for (int pass = 0; pass < 4; pass++) {
        int shift = pass * 8;
        size_t count[257] = { 0 };
        for (size_t i = 0; i < m; i++)
            count[((k[i] >> shift) & 255u) + 1]++;
        for (int b = 0; b < 256; b++)
            count[b + 1] += count[b];
        for (size_t i = 0; i < m; i++) {
            size_t dst = count[(k[i] >> shift) & 255u]++;
            kt[dst] = k[i];
            ot[dst] = o[i];
        }
        uint32_t *tk = k; k = kt; kt = tk;
        int32_t *to = o; o = ot; ot = to;
    }
    /* After an even number of passes the result is back in v->keys / v->order. */
}

sl_status gs_render(gs_view *v, const gs_scene *s, const sl_camera *cam, const float bg[3],
                    float *rgb, float *depth, float *normal, float *opacity, sl_error *err)
{
    if (!v || !s || !cam || cam->width < 1 || cam->height < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "gaussians: bad render arguments");
    if (s->n > (size_t)INT32_MAX)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "gaussians: %zu Gaussians exceed the "
                            "rasterizer's limit of %d", s->n, INT32_MAX);
    const int W = cam->width, H = cam->height;
    const int tx = (W + GS_TILE - 1) / GS_TILE, ty = (H + GS_TILE - 1) / GS_TILE;
    const size_t n = s->n, tiles = (size_t)tx * ty, px = (size_t)W * H;
    sl_status st = reserve(v, n, tiles, px, err);
    if (st != SL_OK)
        return st;
    v->cam = *cam;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            v->Wr[r * 3 + c] = cam->rot[c * 3 + r];
    v->bg[0] = bg[0]; v->bg[1] = bg[1]; v->bg[2] = bg[2];
    v->W = W; v->H = H; v->tiles_x = tx; v->tiles_y = ty;
    v->n = n;
    v->sh_degree = s->sh_degree;
    v->lim_x = 1.3f * fmaxf(cam->cx, (float)W - cam->cx) / cam->fx;
    v->lim_y = 1.3f * fmaxf(cam->cy, (float)H - cam->cy) / cam->fy;

    /* 1. preprocess */
    const int64_t ni = (int64_t)n;
#pragma omp parallel for schedule(static) if (ni > 2048)
    for (int64_t i = 0; i < ni; i++)
        preprocess_one(v, s, (size_t)i);

    /* 2. sort the visible Gaussians by depth (z > near > 0, so the float's bits order like
     * the value), then bin. Serial: O(n + entries), a small part of the render. */
    size_t m = 0, entries = 0;
    for (size_t i = 0; i < n; i++) {
        const int32_t *rc = v->rect + i * 4;
        v->gauss_start[i] = (int64_t)entries;
        if (v->radius[i] > 0.0f) {
            uint32_t key;
            memcpy(&key, &v->depth[i], sizeof key);
            v->keys[m] = key;
            v->order[m] = (int32_t)i;
            m++;
            entries += (size_t)(rc[1] - rc[0]) * (size_t)(rc[3] - rc[2]);
        }
    }
    v->gauss_start[n] = (int64_t)entries;
    v->n_visible = m;
    radix_sort(v, m);
    if (entries > v->cap_entries) {
        int ok = grow((void **)&v->entry_gauss, entries, sizeof(int32_t)) &&
                 grow((void **)&v->gauss_entry, entries, sizeof(int64_t));
        free(v->entry_grad);   /* backward scratch: allocated lazily, contents not kept */
        v->entry_grad = NULL;
        if (!ok)
            return sl_error_set(err, SL_ERR_NOMEM, "gaussians: out of memory for %zu tile "
                                "entries", entries);
        v->cap_entries = entries;
    }
    v->n_entries = entries;
    memset(v->tile_start, 0, (tiles + 1) * sizeof(int64_t));
    for (size_t o = 0; o < m; o++) {
        const int32_t *rc = v->rect + (size_t)v->order[o] * 4;
        for (int y = rc[2]; y < rc[3]; y++)
            for (int x = rc[0]; x < rc[1]; x++)
                v->tile_start[(size_t)y * tx + x + 1]++;
    }
    for (size_t t = 0; t < tiles; t++) {
        v->tile_start[t + 1] += v->tile_start[t];
        v->tile_cursor[t] = v->tile_start[t];
    }
    for (size_t o = 0; o < m; o++) {
        const int32_t g = v->order[o];
        const int32_t *rc = v->rect + (size_t)g * 4;
        int64_t k = v->gauss_start[g];
        for (int y = rc[2]; y < rc[3]; y++)
            for (int x = rc[0]; x < rc[1]; x++) {
                int64_t e = v->tile_cursor[(size_t)y * tx + x]++;
                v->entry_gauss[e] = g;
                v->gauss_entry[k++] = e;
            }
    }

    /* 3. blend, one tile per task; every pixel is written by exactly one task. */
    const int64_t nt = (int64_t)tiles;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < nt; t++) {
        const int tile_x = (int)(t % tx), tile_y = (int)(t / tx);
        const int64_t e0 = v->tile_start[t], e1 = v->tile_start[t + 1];
        const int32_t *list = v->entry_gauss + e0;   /* (e1 - e0,) */
        const int cnt = (int)(e1 - e0);
        for (int py = tile_y * GS_TILE; py < (tile_y + 1) * GS_TILE && py < H; py++)
            for (int pxl = tile_x * GS_TILE; pxl < (tile_x + 1) * GS_TILE && pxl < W; pxl++) {
                const float fx = (float)pxl + 0.5f, fy = (float)py + 0.5f;
                float T = 1.0f, acc[GS_NCH] = { 0 };
                int last = 0;
                for (int k = 0; k < cnt; k++) {
                    const float *p = v->pre + (size_t)list[k] * GS_PRE;
                    if (cheap_skip(p, fx, fy))
                        continue;
                    float g;
                    float a = gs_alpha(p + PRE_A, p + PRE_U, p[PRE_OP], fx, fy, &g);
                    int r = gs_blend(a, p + PRE_FEAT, &T, acc);
                    if (r == 2)
                        break;
                    if (r == 1)
                        last = k + 1;
                }
                const size_t pi = (size_t)py * W + pxl;
                v->final_T[pi] = T;
                v->n_contrib[pi] = last;
                if (rgb) {
                    rgb[pi * 3 + 0] = acc[0] + T * bg[0];
                    rgb[pi * 3 + 1] = acc[1] + T * bg[1];
                    rgb[pi * 3 + 2] = acc[2] + T * bg[2];
                }
                if (depth)
                    depth[pi] = acc[GS_CH_DEPTH];
                if (normal) {
                    normal[pi * 3 + 0] = acc[GS_CH_NORMAL];
                    normal[pi * 3 + 1] = acc[GS_CH_NORMAL + 1];
                    normal[pi * 3 + 2] = acc[GS_CH_NORMAL + 2];
                }
                if (opacity)
                    opacity[pi] = acc[GS_CH_ONE];
            }
    }
    return SL_OK;
}

/* Backward of the preprocessing of Gaussian i from its summed 2-D gradient g2
 * (GS_ENTRY_GRAD,): duv, dconic, dop, dfeat. Adds into g's slots of Gaussian i only. */
static void preprocess_vjp(const gs_view *v, const gs_scene *s, size_t i, const float *g2,
                           gs_scene_grad *g)
{
    const float *mean = s->means + i * 3;
    const float *ls = s->log_scales + i * 3;
    const float *q = s->quats + i * 4;
    const float *pre = v->pre + i * GS_PRE;
    float pc[3];
    gs_world_to_cam(v->Wr, v->cam.eye, mean, pc);
    float dpc[3] = { 0, 0, 0 }, dmean[3] = { 0, 0, 0 }, dls[3] = { 0, 0, 0 };
    float dq[4] = { 0, 0, 0, 0 };

    /* opacity: op = sigmoid(logit) */
    float op = pre[PRE_OP];
    if (g->opacity_logits)
        g->opacity_logits[i] += g2[5] * op * (1.0f - op);

    /* colour: SH */
    const float *dfeat = g2 + 6;
    const float *rest = s->sh_rest ? s->sh_rest + i * (size_t)s->sh_rest_coeffs * 3 : NULL;
    float dsh_dc[3], dsh_rest[45], dm_sh[3];
    gs_sh_color_vjp(s->sh_degree, mean, v->cam.eye, s->sh_dc + i * 3, rest, dfeat, dsh_dc,
                    dsh_rest, dm_sh);
    if (g->sh_dc)
        for (int c = 0; c < 3; c++)
            g->sh_dc[i * 3 + c] += dsh_dc[c];
    int K = (s->sh_degree + 1) * (s->sh_degree + 1);
    if (g->sh_rest && K > 1)
        for (int k = 0; k < (K - 1) * 3; k++)
            g->sh_rest[i * (size_t)s->sh_rest_coeffs * 3 + k] += dsh_rest[k];
    for (int c = 0; c < 3; c++)
        dmean[c] += dm_sh[c];

    /* depth channel: z */
    dpc[2] += dfeat[GS_CH_DEPTH];

    /* normal channel: sign * R[:, axis] */
    float dR[9] = { 0 };
    int ax = v->normal_axis[i];
    float sg = v->normal_sign[i];
    for (int r = 0; r < 3; r++)
        dR[r * 3 + ax] = sg * dfeat[GS_CH_NORMAL + r];
    float dq_n[4];
    gs_quat_to_rot_vjp(q, dR, dq_n);

    /* conic -> 2-D covariance -> 3-D covariance and camera-space mean */
    float cov3[6], cov2[3], dcov2[3], dcov3[6], dpc_cov[3], dq_cov[4];
    gs_cov3d(ls, q, cov3);
    gs_cov2d(pc, v->Wr, cov3, v->cam.fx, v->cam.fy, v->lim_x, v->lim_y, cov2);
    gs_conic_vjp(pre + PRE_A, g2 + 2, dcov2);
    gs_cov2d_vjp(pc, v->Wr, cov3, v->cam.fx, v->cam.fy, v->lim_x, v->lim_y, dcov2, dpc_cov,
                 dcov3);
    gs_cov3d_vjp(ls, q, dcov3, dls, dq_cov);

    /* projected mean */
    float dpc_uv[3];
    gs_project_vjp(pc, v->cam.fx, v->cam.fy, g2, dpc_uv);
    for (int c = 0; c < 3; c++)
        dpc[c] += dpc_cov[c] + dpc_uv[c];
    /* pc = Wr (mean - eye): dmean += Wr^T dpc */
    for (int c = 0; c < 3; c++)
        dmean[c] += v->Wr[c] * dpc[0] + v->Wr[3 + c] * dpc[1] + v->Wr[6 + c] * dpc[2];
    for (int c = 0; c < 4; c++)
        dq[c] = dq_n[c] + dq_cov[c];

    if (g->means)
        for (int c = 0; c < 3; c++)
            g->means[i * 3 + c] += dmean[c];
    if (g->log_scales)
        for (int c = 0; c < 3; c++)
            g->log_scales[i * 3 + c] += dls[c];
    if (g->quats)
        for (int c = 0; c < 4; c++)
            g->quats[i * 4 + c] += dq[c];
    /* Densification statistic: the gradient of the projected mean in normalised device
     * coordinates (u = (ndc_x + 1) W/2), the unit of the reference implementation. */
    if (g->mean2d_norm) {
        float gx = g2[0] * 0.5f * (float)v->W, gy = g2[1] * 0.5f * (float)v->H;
        g->mean2d_norm[i] += sqrtf(gx * gx + gy * gy);
    }
    if (g->visible)
        g->visible[i] += 1.0f;
}

sl_status gs_backward(gs_view *v, const gs_scene *s, const float *drgb, const float *ddepth,
                      const float *dnormal, const float *dopacity, gs_scene_grad *g,
                      sl_error *err)
{
    if (!v || !s || !g || s->n != v->n)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "gaussians: backward does not match the last render (%zu "
                            "Gaussians now, %zu rendered)", s ? s->n : 0, v ? v->n : 0);
    const int W = v->W, H = v->H, tx = v->tiles_x;
    const size_t tiles = (size_t)v->tiles_x * v->tiles_y;
    if (!v->entry_grad && v->cap_entries > 0) {
        v->entry_grad = malloc(v->cap_entries * GS_ENTRY_GRAD * sizeof(float));
        if (!v->entry_grad)
            return sl_error_set(err, SL_ERR_NOMEM, "gaussians: out of memory for the "
                                "backward pass (%zu tile entries)", v->cap_entries);
    }
    if (v->n_entries)
        memset(v->entry_grad, 0, v->n_entries * GS_ENTRY_GRAD * sizeof(float));
    const float *bg = v->bg;

    /* 1. per tile, pixels in a fixed order, into the tile's own entry slots */
    const int64_t nt = (int64_t)tiles;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < nt; t++) {
        const int tile_x = (int)(t % tx), tile_y = (int)(t / tx);
        const int64_t e0 = v->tile_start[t];
        const int32_t *list = v->entry_gauss + e0;
        float *eg = v->entry_grad + (size_t)e0 * GS_ENTRY_GRAD;   /* (cnt, GS_ENTRY_GRAD) */
        for (int py = tile_y * GS_TILE; py < (tile_y + 1) * GS_TILE && py < H; py++)
            for (int pxl = tile_x * GS_TILE; pxl < (tile_x + 1) * GS_TILE && pxl < W; pxl++) {
                const size_t pi = (size_t)py * W + pxl;
                const int last = v->n_contrib[pi];
                if (last == 0)
                    continue;
                float dout[GS_NCH] = { 0 };
                if (drgb) {
                    dout[0] = drgb[pi * 3];
                    dout[1] = drgb[pi * 3 + 1];
                    dout[2] = drgb[pi * 3 + 2];
                }
                if (ddepth)
                    dout[GS_CH_DEPTH] = ddepth[pi];
                if (dnormal) {
                    dout[GS_CH_NORMAL] = dnormal[pi * 3];
                    dout[GS_CH_NORMAL + 1] = dnormal[pi * 3 + 1];
                    dout[GS_CH_NORMAL + 2] = dnormal[pi * 3 + 2];
                }
                if (dopacity)
                    dout[GS_CH_ONE] = dopacity[pi];
                const float T_final = v->final_T[pi];
                const float bg_term = T_final * (bg[0] * dout[0] + bg[1] * dout[1] +
                                                 bg[2] * dout[2]);
                const float fx = (float)pxl + 0.5f, fy = (float)py + 0.5f;
                float T = T_final, rec[GS_NCH] = { 0 };
                for (int k = last - 1; k >= 0; k--) {
                    const float *p = v->pre + (size_t)list[k] * GS_PRE;
                    if (cheap_skip(p, fx, fy))
                        continue;
                    float gv;
                    float a = gs_alpha(p + PRE_A, p + PRE_U, p[PRE_OP], fx, fy, &gv);
                    if (a < (float)GS_ALPHA_MIN)
                        continue;
                    float *e = eg + (size_t)k * GS_ENTRY_GRAD;
                    float dfeat[GS_NCH];
                    float da = gs_blend_vjp(a, p + PRE_FEAT, dout, bg_term, &T, rec, dfeat);
                    for (int c = 0; c < GS_NCH; c++)
                        e[6 + c] += dfeat[c];
                    gs_alpha_vjp_acc(p + PRE_A, p + PRE_U, p[PRE_OP], fx, fy, gv, da, e + 2,
                                     e, e + 5);
                }
            }
    }

    /* 2. per Gaussian: its entries summed in its fixed (tile) order, then the VJPs */
    const int64_t ni = (int64_t)v->n;
#pragma omp parallel for schedule(dynamic, 256)
    for (int64_t i = 0; i < ni; i++) {
        if (!(v->radius[i] > 0.0f))
            continue;
        float g2[GS_ENTRY_GRAD] = { 0 };
        for (int64_t k = v->gauss_start[i]; k < v->gauss_start[i + 1]; k++) {
            const float *e = v->entry_grad + (size_t)v->gauss_entry[k] * GS_ENTRY_GRAD;
            for (int c = 0; c < GS_ENTRY_GRAD; c++)
                g2[c] += e[c];
        }
        preprocess_vjp(v, s, (size_t)i, g2, g);
    }
    return SL_OK;
}
