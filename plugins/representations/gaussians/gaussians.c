/* plugins/representations/gaussians/gaussians.c — representation `gaussians`: 3-D Gaussian
 * splatting (Kerbl et al. 2023) with adaptive density control.
 *
 * Parameters, as six groups of per-Gaussian rows (N Gaussians):
 *     means (N, 3), scales (N, 3) log-scales, rotations (N, 4) quaternions (w, x, y, z),
 *     opacities (N,) logits, sh_dc (N, 3), sh_rest (N, K-1, 3) with K = (sh_degree+1)^2.
 * Colour = max(0, 0.5 + SH(view direction)); the active SH degree grows by one every
 * sh_degree_interval steps (a function of the step, so resumed runs agree) up to sh_degree.
 *
 * Rendering and its backward pass: raster.c (tiles of 16x16, opacity-aware extents,
 * per-tile depth order, front-to-back blending; thread-count independent, see there).
 * Outputs: rgb with the background composited, depth = sum w z (z-depth), normal = sum w n
 * (each Gaussian's shortest axis, facing the camera, world space), opacity = sum w.
 *
 * Adaptive density control (step_end, needs the host's remap_group):
 *   at steps s with densify_from < s < densify_until and s % densify_interval == 0:
 *   - g_i = mean over the views since the last densification in which Gaussian i was
 *     visible of |dL/d(projected mean in NDC)| (the reference implementation's statistic);
 *   - Gaussians with g_i >= densify_grad_threshold, in index order while the count stays
 *     <= max_gaussians: if max_k scale_k <= percent_dense * extent they are CLONED (an
 *     identical copy is appended), otherwise SPLIT: replaced by 2 children with means
 *     mean + R (scale * z), z ~ N(0, I) (Philox, keyed by step and parent index), scales
 *     scale / 1.6, everything else copied;
 *   - then every Gaussian of the result with opacity < min_opacity or (max_scale_fraction
 *     > 0) max scale > max_scale_fraction * extent is PRUNED.
 *   New order: survivors of the old set in index order, clones in parent order, children
 *   (child 0, child 1 per parent) in parent order; pruning keeps the order.
 *   Optimizer moments (the reference implementation's rule): survivors keep theirs; clones
 *   and split children start from zero moments.
 *   - every opacity_reset_interval steps (before densify_until) opacities are clamped to
 *     at most 0.01 and their moments zeroed.
 * Memory is bounded by max_gaussians: per Gaussian 4 copies (value, gradient, Adam m, v)
 * of 14 + 3(K-1) floats plus 8 bytes of statistics: 944 bytes at degree 3, 248 at
 * degree 0; a render adds ~110 bytes per Gaussian and view, 56 bytes per tile entry
 * (backward) and 8 per pixel.
 *
 * Checkpoints: the count and the densification statistics (save_state); on load the groups
 * are first resized to the saved count, then the host restores values and moments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/steinlab.h"

#include "gs_math.h"
#include "ply.h"
#include "raster.h"

enum { G_MEANS = 0, G_SCALES, G_ROTS, G_OPAC, G_DC, G_REST, G_COUNT };
static const char *const gaussians_group_names[G_COUNT] = {
    "means", "scales", "rotations", "opacities", "sh_dc", "sh_rest"
};
enum { GAUSSIANS_MAX_BATCH = 64 };

typedef struct gaussians_state {
    const sl_host *host;
    size_t n, max_n;
    int sh_max;                  /* stored degree */
    int sh_rest;                 /* (sh_max+1)^2 - 1 coefficients per channel beyond dc */
    int64_t sh_interval;         /* steps per degree; 0: all from the start */
    float bg[3];
    int stride[G_COUNT];         /* floats per Gaussian in each group */
    float *data[G_COUNT];        /* (n, stride) */
    float *grad[G_COUNT];        /* (n, stride) */

    /* densification */
    int64_t dens_from, dens_until, dens_interval, reset_interval;
    double grad_threshold, percent_dense, extent, min_opacity, max_scale_fraction;
    float *grad_accum;           /* (n,) sum of |dL/d mean_ndc| */
    float *denom;                /* (n,) views in which visible */
    int warned_no_remap;

    /* views of the last TRAIN render, for backward */
    gs_view *views[GAUSSIANS_MAX_BATCH];
    int saved_batch, saved_h, saved_w, saved_degree;
    gs_view *eval_view;
} gaussians_state;

static const sl_param_def gaussians_params[] = {
    { .name = "init", .type = SL_PARAM_CHOICE, .default_value = "random",
      .choices = "random|points|ply",
      .doc = "initialisation: random in a ball, the points list, or a PLY file" },
    { .name = "count", .type = SL_PARAM_INT, .default_value = "5000", .min = 1, .max = 1e8,
      .doc = "number of Gaussians (init: random)" },
    { .name = "radius", .type = SL_PARAM_FLOAT, .default_value = "0.5", .min = 1e-6,
      .max = INFINITY, .doc = "radius of the ball around the origin (init: random)" },
    { .name = "points", .type = SL_PARAM_FLOAT_LIST, .default_value = NULL,
      .min = -INFINITY, .max = INFINITY, .min_len = 3,
      .doc = "flat list x0, y0, z0, x1, ... of initial means (init: points)" },
    { .name = "ply", .type = SL_PARAM_STRING, .default_value = NULL,
      .doc = "PLY file in the 3DGS layout, relative to the spec (init: ply)" },
    { .name = "init_opacity", .type = SL_PARAM_FLOAT, .default_value = "0.1", .min = 1e-4,
      .max = 0.9999, .doc = "initial opacity (init: random, points)" },
    { .name = "init_scale", .type = SL_PARAM_FLOAT, .default_value = "0", .min = 0,
      .max = INFINITY,
      .doc = "initial scale; 0: half the mean spacing of the initial points" },
    { .name = "sh_degree", .type = SL_PARAM_INT, .default_value = "3", .min = 0, .max = 3,
      .doc = "highest spherical-harmonic degree of the colour" },
    { .name = "sh_degree_interval", .type = SL_PARAM_INT, .default_value = "1000", .min = 0,
      .max = 1e12, .doc = "steps per increase of the active SH degree; 0: all from step 0" },
    { .name = "background", .type = SL_PARAM_FLOAT_LIST, .default_value = "[1, 1, 1]",
      .min = 0, .max = 1, .min_len = 3, .max_len = 3,
      .doc = "background colour composited behind the Gaussians" },
    { .name = "max_gaussians", .type = SL_PARAM_INT, .default_value = "200000", .min = 1,
      .max = 1e9, .doc = "cap on the count (densification stops adding at it)" },
    { .name = "densify_from", .type = SL_PARAM_INT, .default_value = "100", .min = 0,
      .max = 1e12, .doc = "first step after which densification runs" },
    { .name = "densify_until", .type = SL_PARAM_INT, .default_value = "1500", .min = 0,
      .max = 1e12, .doc = "densification (and opacity reset) stop at this step" },
    { .name = "densify_interval", .type = SL_PARAM_INT, .default_value = "100", .min = 0,
      .max = 1e12, .doc = "steps between densifications; 0: never densify" },
    { .name = "densify_grad_threshold", .type = SL_PARAM_FLOAT, .default_value = "0.0002",
      .min = 0, .max = INFINITY,
      .doc = "mean |dL/d projected mean| (NDC units) above which a Gaussian densifies" },
    { .name = "percent_dense", .type = SL_PARAM_FLOAT, .default_value = "0.01", .min = 0,
      .max = INFINITY,
      .doc = "clone when max scale <= percent_dense * extent, else split" },
    { .name = "extent", .type = SL_PARAM_FLOAT, .default_value = "0", .min = 0,
      .max = INFINITY,
      .doc = "scene extent; 0: max distance of the initial means from their centroid" },
    { .name = "min_opacity", .type = SL_PARAM_FLOAT, .default_value = "0.005", .min = 0,
      .max = 1, .doc = "prune Gaussians with a lower opacity" },
    { .name = "max_scale_fraction", .type = SL_PARAM_FLOAT, .default_value = "0.1", .min = 0,
      .max = INFINITY,
      .doc = "prune Gaussians whose max scale exceeds this fraction of the extent; 0: off" },
    { .name = "opacity_reset_interval", .type = SL_PARAM_INT, .default_value = "0", .min = 0,
      .max = 1e12, .doc = "steps between opacity resets to <= 0.01; 0: never" },
};

/* ------------------------------------------------------------------ storage */

static void gaussians_free_arrays(gaussians_state *s)
{
    const sl_host *h = s->host;
    for (int g = 0; g < G_COUNT; g++) {
        h->free_mem(h, s->data[g]);
        h->free_mem(h, s->grad[g]);
        s->data[g] = s->grad[g] = NULL;
    }
    h->free_mem(h, s->grad_accum);
    h->free_mem(h, s->denom);
    s->grad_accum = s->denom = NULL;
}

/* Allocates zeroed arrays for n Gaussians (replacing the current ones). */
static sl_status gaussians_alloc(gaussians_state *s, size_t n, sl_error *err)
{
    const sl_host *h = s->host;
    gaussians_free_arrays(s);
    s->n = n;
    size_t nn = n ? n : 1;
    for (int g = 0; g < G_COUNT; g++) {
        size_t bytes = nn * (size_t)(s->stride[g] ? s->stride[g] : 1) * sizeof(float);
        s->data[g] = h->alloc(h, bytes);
        s->grad[g] = h->alloc(h, bytes);
        if (!s->data[g] || !s->grad[g])
            return sl_error_set(err, SL_ERR_NOMEM, "gaussians: cannot allocate %zu Gaussians",
                                n);
    }
    s->grad_accum = h->alloc(h, nn * sizeof(float));
    s->denom = h->alloc(h, nn * sizeof(float));
    if (!s->grad_accum || !s->denom)
        return sl_error_set(err, SL_ERR_NOMEM, "gaussians: cannot allocate %zu Gaussians", n);
    return SL_OK;
}

static void gaussians_destroy(void *state)
{
    gaussians_state *s = state;
    if (!s)
        return;
    gaussians_free_arrays(s);
    for (int b = 0; b < GAUSSIANS_MAX_BATCH; b++)
        gs_view_destroy(s->views[b]);
    gs_view_destroy(s->eval_view);
    free(s);
}

static inline float gaussians_logit(double p)
{
    return (float)log(p / (1.0 - p));
}

/* Sets Gaussian i to an isotropic, grey-or-given-colour initial state at mean p. */
static void gaussians_init_one(gaussians_state *s, size_t i, const float p[3], const float rgb[3],
                               float log_scale, float op_logit)
{
    for (int c = 0; c < 3; c++) {
        s->data[G_MEANS][i * 3 + c] = p[c];
        s->data[G_SCALES][i * 3 + c] = log_scale;
        s->data[G_DC][i * 3 + c] = (float)((rgb[c] - 0.5) / GS_SH_C0);
    }
    float *q = s->data[G_ROTS] + i * 4;
    q[0] = 1.0f;
    q[1] = q[2] = q[3] = 0.0f;
    s->data[G_OPAC][i] = op_logit;
}

/* Max distance of the means from their centroid (fixed-order double sums). */
static double gaussians_spread(const gaussians_state *s)
{
    double c[3] = { 0, 0, 0 }, r2 = 0;
    for (size_t i = 0; i < s->n; i++)
        for (int k = 0; k < 3; k++)
            c[k] += s->data[G_MEANS][i * 3 + k];
    for (int k = 0; k < 3; k++)
        c[k] /= (double)(s->n ? s->n : 1);
    for (size_t i = 0; i < s->n; i++) {
        double d2 = 0;
        for (int k = 0; k < 3; k++) {
            double d = s->data[G_MEANS][i * 3 + k] - c[k];
            d2 += d * d;
        }
        r2 = d2 > r2 ? d2 : r2;
    }
    return sqrt(r2);
}

static sl_status gaussians_init(gaussians_state *s, const sl_params *p, sl_error *err)
{
    const sl_host *h = s->host;
    const char *init = sl_params_string(p, "init");
    const float op_logit = gaussians_logit(sl_params_float(p, "init_opacity"));
    double init_scale = sl_params_float(p, "init_scale");
    sl_status st;
    if (!strcmp(init, "ply")) {
        if (!sl_params_has(p, "ply"))
            return sl_error_set(err, SL_ERR_SPEC, "gaussians: init: ply needs the 'ply' "
                                "parameter (a PLY file)");
        char path[4096];
        if ((st = sl_host_path(h, sl_params_string(p, "ply"), path, sizeof path, err)) != SL_OK)
            return st;
        gs_ply_data d;
        if ((st = gs_ply_read(path, &d, err)) != SL_OK)
            return st;
        if (d.n == 0 || d.n > s->max_n) {
            st = sl_error_set(err, SL_ERR_SPEC, "gaussians: '%s' holds %zu Gaussians (allowed: "
                              "1 to max_gaussians = %zu)", path, d.n, s->max_n);
            gs_ply_free(&d);
            return st;
        }
        if (d.sh_degree > s->sh_max)
            h->log(h, SL_LOG_WARN, "'%s' has SH degree %d; bands above sh_degree %d are "
                   "dropped", path, d.sh_degree, s->sh_max);
        if ((st = gaussians_alloc(s, d.n, err)) == SL_OK) {
            memcpy(s->data[G_MEANS], d.means, d.n * 3 * sizeof(float));
            memcpy(s->data[G_SCALES], d.log_scales, d.n * 3 * sizeof(float));
            memcpy(s->data[G_ROTS], d.quats, d.n * 4 * sizeof(float));
            memcpy(s->data[G_OPAC], d.opacity, d.n * sizeof(float));
            memcpy(s->data[G_DC], d.sh_dc, d.n * 3 * sizeof(float));
            int dk = (d.sh_degree + 1) * (d.sh_degree + 1) - 1;
            int kk = dk < s->sh_rest ? dk : s->sh_rest;
            for (size_t i = 0; i < d.n; i++)
                for (int k = 0; k < kk * 3; k++)
                    s->data[G_REST][i * (size_t)s->sh_rest * 3 + k] = d.sh_rest[i * (size_t)dk * 3 + k];
        }
        gs_ply_free(&d);
        return st;
    }
    if (!strcmp(init, "points")) {
        if (!sl_params_has(p, "points"))
            return sl_error_set(err, SL_ERR_SPEC, "gaussians: init: points needs the 'points' "
                                "parameter (x0, y0, z0, x1, ...)");
        size_t len = sl_params_list_len(p, "points");
        if (len % 3 != 0 || len / 3 > s->max_n)
            return sl_error_set(err, SL_ERR_SPEC, "gaussians: 'points' has %zu numbers (expected "
                                "a multiple of 3, at most 3 max_gaussians)", len);
        if ((st = gaussians_alloc(s, len / 3, err)) != SL_OK)
            return st;
        float grey[3] = { 0.5f, 0.5f, 0.5f };
        for (size_t i = 0; i < s->n; i++) {
            float m[3];
            for (int c = 0; c < 3; c++)
                m[c] = (float)sl_params_list_float(p, "points", i * 3 + c);
            gaussians_init_one(s, i, m, grey, 0.0f, op_logit);
        }
        double spread = gaussians_spread(s);
        if (init_scale <= 0)
            init_scale = 0.5 * (spread > 0 ? spread : 1.0) * cbrt(4.19 / (double)s->n);
        for (size_t i = 0; i < s->n * 3; i++)
            s->data[G_SCALES][i] = (float)log(init_scale);
        return SL_OK;
    }
    /* random: uniform in the ball (direction from 3 normals, radius r u^(1/3)), colours
     * uniform in [0, 1]^3. One RNG sample index per quantity. */
    size_t n = (size_t)sl_params_int(p, "count");
    double radius = sl_params_float(p, "radius");
    if (n > s->max_n)
        return sl_error_set(err, SL_ERR_SPEC, "gaussians: count %zu exceeds max_gaussians %zu",
                            n, s->max_n);
    if ((st = gaussians_alloc(s, n, err)) != SL_OK)
        return st;
    float *dir = malloc(n * 3 * sizeof(float)), *u = malloc(n * sizeof(float)),
          *col = malloc(n * 3 * sizeof(float));
    if (!dir || !u || !col) {
        free(dir); free(u); free(col);
        return sl_error_set(err, SL_ERR_NOMEM, "gaussians: out of memory");
    }
    sl_rng_key key = { .seed = h->seed, .step = 0, .stream = h->rng_stream_base, .sample = 0 };
    sl_rng_normal(key, 0, n * 3, dir);
    key.sample = 1;
    sl_rng_uniform(key, 0, n, u);
    key.sample = 2;
    sl_rng_uniform(key, 0, n * 3, col);
    if (init_scale <= 0)
        init_scale = 0.5 * radius * cbrt(4.19 / (double)n);
    for (size_t i = 0; i < n; i++) {
        float *d = dir + i * 3;
        double len = sqrt((double)d[0] * d[0] + (double)d[1] * d[1] + (double)d[2] * d[2]);
        double r = radius * cbrt((double)u[i]) / (len > 0 ? len : 1);
        float m[3] = { (float)(d[0] * r), (float)(d[1] * r), (float)(d[2] * r) };
        gaussians_init_one(s, i, m, col + i * 3, (float)log(init_scale), op_logit);
    }
    free(dir); free(u); free(col);
    return SL_OK;
}

static sl_status gaussians_create(const sl_host *host, const sl_params *params, void **state,
                                  sl_error *err)
{
    gaussians_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "gaussians: out of memory");
    s->host = host;
    s->max_n = (size_t)sl_params_int(params, "max_gaussians");
    s->sh_max = (int)sl_params_int(params, "sh_degree");
    s->sh_rest = (s->sh_max + 1) * (s->sh_max + 1) - 1;
    s->sh_interval = sl_params_int(params, "sh_degree_interval");
    for (int c = 0; c < 3; c++)
        s->bg[c] = (float)sl_params_list_float(params, "background", (size_t)c);
    const int strides[G_COUNT] = { 3, 3, 4, 1, 3, 3 * s->sh_rest };
    memcpy(s->stride, strides, sizeof strides);
    s->dens_from = sl_params_int(params, "densify_from");
    s->dens_until = sl_params_int(params, "densify_until");
    s->dens_interval = sl_params_int(params, "densify_interval");
    s->reset_interval = sl_params_int(params, "opacity_reset_interval");
    s->grad_threshold = sl_params_float(params, "densify_grad_threshold");
    s->percent_dense = sl_params_float(params, "percent_dense");
    s->min_opacity = sl_params_float(params, "min_opacity");
    s->max_scale_fraction = sl_params_float(params, "max_scale_fraction");
    sl_status st = gaussians_init(s, params, err);
    if (st == SL_OK) {
        s->extent = sl_params_float(params, "extent");
        if (s->extent <= 0) {
            s->extent = gaussians_spread(s);
            if (s->extent <= 0)
                s->extent = 1.0;
        }
        s->eval_view = gs_view_create();
        if (!s->eval_view)
            st = sl_error_set(err, SL_ERR_NOMEM, "gaussians: out of memory");
    }
    if (st == SL_OK)
        st = host->declare_series(host, "gaussians_count", "number of Gaussians after the "
                                  "step's densification, pruning and opacity reset", err);
    if (st != SL_OK) {
        gaussians_destroy(s);
        return st;
    }
    *state = s;
    return SL_OK;
}

static uint32_t gaussians_outputs(const void *state)
{
    (void)state;
    return SL_RENDER_RGB | SL_RENDER_DEPTH | SL_RENDER_NORMAL | SL_RENDER_OPACITY;
}

static size_t gaussians_param_groups(void *state, sl_param_group *groups, size_t max)
{
    gaussians_state *s = state;
    for (int g = 0; g < G_COUNT && (size_t)g < max; g++)
        groups[g] = (sl_param_group){ .name = gaussians_group_names[g], .data = s->data[g],
                                      .grad = s->grad[g], .n = s->n * (size_t)s->stride[g] };
    return G_COUNT;
}

static int gaussians_active_degree(const gaussians_state *s, int64_t step)
{
    if (s->sh_interval <= 0 || step < 0)
        return s->sh_interval <= 0 ? s->sh_max : 0;
    int64_t d = step / s->sh_interval;
    return d < s->sh_max ? (int)d : s->sh_max;
}

static gs_scene gaussians_scene(const gaussians_state *s, int degree)
{
    return (gs_scene){ .n = s->n, .means = s->data[G_MEANS], .log_scales = s->data[G_SCALES],
                       .quats = s->data[G_ROTS], .opacity_logits = s->data[G_OPAC],
                       .sh_dc = s->data[G_DC], .sh_rest = s->sh_rest ? s->data[G_REST] : NULL,
                       .sh_rest_coeffs = s->sh_rest, .sh_degree = degree };
}

static sl_status gaussians_render(void *state, const sl_render_request *req, sl_render *out,
                                  sl_error *err)
{
    gaussians_state *s = state;
    const int B = out->batch, H = out->height, W = out->width;
    if (B < 1 || H < 1 || W < 1 || req->batch != B || !req->cams)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "gaussians: bad render size (batch %d, "
                            "%dx%d; request batch %d)", B, H, W, req->batch);
    const bool train = req->mode == SL_RENDER_TRAIN;
    if (train && B > GAUSSIANS_MAX_BATCH)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "gaussians: batch %d exceeds %d", B,
                            GAUSSIANS_MAX_BATCH);
    const int degree = gaussians_active_degree(s, req->step);
    const gs_scene scene = gaussians_scene(s, degree);
    const size_t px = (size_t)H * W;
    if (train)
        s->saved_batch = 0;
    for (int b = 0; b < B; b++) {
        if (req->cams[b].width != W || req->cams[b].height != H)
            return sl_error_set(err, SL_ERR_INVALID_ARG, "gaussians: camera %d is %dx%d, the "
                                "render %dx%d", b, req->cams[b].width, req->cams[b].height, W, H);
        gs_view *v = s->eval_view;
        if (train) {
            if (!s->views[b] && !(s->views[b] = gs_view_create()))
                return sl_error_set(err, SL_ERR_NOMEM, "gaussians: out of memory");
            v = s->views[b];
        }
        sl_status st = gs_render(v, &scene, &req->cams[b], s->bg,
                                 out->rgb ? out->rgb + px * 3 * b : NULL,
                                 out->depth ? out->depth + px * b : NULL,
                                 out->normal ? out->normal + px * 3 * b : NULL,
                                 out->opacity ? out->opacity + px * b : NULL, err);
        if (st != SL_OK)
            return st;
    }
    if (train) {
        s->saved_batch = B;
        s->saved_h = H;
        s->saved_w = W;
        s->saved_degree = degree;
    }
    return SL_OK;
}

static sl_status gaussians_backward(void *state, const sl_render *grad, sl_error *err)
{
    gaussians_state *s = state;
    if (s->saved_batch == 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "gaussians: backward called before any "
                            "TRAIN render");
    if (grad->batch != s->saved_batch || grad->height != s->saved_h ||
        grad->width != s->saved_w)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "gaussians: gradient is (%d, %d, %d) but "
                            "the last TRAIN render was (%d, %d, %d)", grad->batch, grad->height,
                            grad->width, s->saved_batch, s->saved_h, s->saved_w);
    const gs_scene scene = gaussians_scene(s, s->saved_degree);
    gs_scene_grad g = { s->grad[G_MEANS], s->grad[G_SCALES], s->grad[G_ROTS], s->grad[G_OPAC],
                        s->grad[G_DC], s->sh_rest ? s->grad[G_REST] : NULL, s->grad_accum,
                        s->denom };
    const size_t px = (size_t)grad->height * grad->width;
    for (int b = 0; b < grad->batch; b++) {
        sl_status st = gs_backward(s->views[b], &scene,
                                   grad->rgb ? grad->rgb + px * 3 * b : NULL,
                                   grad->depth ? grad->depth + px * b : NULL,
                                   grad->normal ? grad->normal + px * 3 * b : NULL,
                                   grad->opacity ? grad->opacity + px * b : NULL, &g, err);
        if (st != SL_OK)
            return st;
    }
    return SL_OK;
}

/* ------------------------------------------------------------------ density control */

static int gaussians_can_remap(const sl_host *h)
{
    return h->struct_size >= offsetof(sl_host, remap_group) + sizeof(h->remap_group) &&
           h->remap_group != NULL;
}

/* Replaces every group by rows taken from `rows` (new_n,): row r of the new set is a copy
 * of old Gaussian src_g[r]; moments follow keep[r] (1: the old row's moments, 0: zero).
 * `edit` then adjusts the new values in place (split children, opacity reset). */
typedef void (*gaussians_edit_fn)(gaussians_state *s, float *const *data, size_t new_n,
                                  const void *ctx);

static sl_status gaussians_remap(gaussians_state *s, const int64_t *src_g, const uint8_t *keep,
                                 size_t new_n, gaussians_edit_fn edit, const void *ctx,
                                 sl_error *err)
{
    const sl_host *h = s->host;
    float *nd[G_COUNT] = { 0 }, *ng[G_COUNT] = { 0 };
    int64_t *src = NULL;
    size_t nn = new_n ? new_n : 1;
    sl_status st = SL_OK;
    src = malloc(nn * 45 * sizeof *src);   /* the widest group's rows */
    float *acc = h->alloc(h, nn * sizeof(float)), *den = h->alloc(h, nn * sizeof(float));
    if (!src || !acc || !den)
        goto nomem;
    for (int g = 0; g < G_COUNT; g++) {
        size_t w = (size_t)(s->stride[g] ? s->stride[g] : 1);
        nd[g] = h->alloc(h, nn * w * sizeof(float));
        ng[g] = h->alloc(h, nn * w * sizeof(float));
        if (!nd[g] || !ng[g])
            goto nomem;
        for (size_t r = 0; r < new_n; r++)
            memcpy(nd[g] + r * (size_t)s->stride[g], s->data[g] + (size_t)src_g[r] * s->stride[g],
                   (size_t)s->stride[g] * sizeof(float));
    }
    if (edit)
        edit(s, nd, new_n, ctx);
    for (int g = 0; g < G_COUNT; g++) {
        const size_t w = (size_t)s->stride[g];
        for (size_t r = 0; r < new_n; r++)
            for (size_t k = 0; k < w; k++)
                src[r * w + k] = keep[r] ? src_g[r] * (int64_t)w + (int64_t)k : -1;
        st = h->remap_group(h, gaussians_group_names[g], src, new_n * w, nd[g], ng[g], err);
        if (st != SL_OK) {
            sl_error_prefix(err, "gaussians: resizing group '%s' to %zu Gaussians%s",
                            gaussians_group_names[g], new_n,
                            g ? " (earlier groups were already resized: the run cannot go on)"
                              : "");
            goto fail;
        }
        h->free_mem(h, s->data[g]);
        h->free_mem(h, s->grad[g]);
        s->data[g] = nd[g];
        s->grad[g] = ng[g];
        nd[g] = ng[g] = NULL;
    }
    h->free_mem(h, s->grad_accum);
    h->free_mem(h, s->denom);
    s->grad_accum = acc;
    s->denom = den;
    s->n = new_n;
    s->saved_batch = 0;   /* the saved views describe the old set */
    free(src);
    return SL_OK;
nomem:
    st = sl_error_set(err, SL_ERR_NOMEM, "gaussians: out of memory resizing to %zu Gaussians",
                      new_n);
fail:
    for (int g = 0; g < G_COUNT; g++) {
        h->free_mem(h, nd[g]);
        h->free_mem(h, ng[g]);
    }
    h->free_mem(h, acc);
    h->free_mem(h, den);
    free(src);
    return st;
}

static float gaussians_max_log_scale(const float *ls)
{
    float m = ls[0] > ls[1] ? ls[0] : ls[1];
    return m > ls[2] ? m : ls[2];
}

enum { ROW_KEEP = 0, ROW_CLONE = 1, ROW_CHILD0 = 2, ROW_CHILD1 = 3 };

typedef struct split_ctx {
    const uint8_t *kind;  /* (new_n,) ROW_* */
    const int64_t *src;   /* (new_n,) parent index */
    int64_t step;
} split_ctx;

/* z ~ N(0, I) of child j of `parent`: Philox at (seed, step, stream base + 1, sample =
 * parent), elements 3j .. 3j+2, so a child's draw does not depend on which others split. */
static void gaussians_split_noise(const sl_host *h, int64_t step, int64_t parent, int child,
                                  float z[3])
{
    sl_rng_key key = { .seed = h->seed, .step = (uint64_t)step,
                       .stream = h->rng_stream_base + 1, .sample = (uint32_t)parent };
    sl_rng_normal(key, (uint64_t)child * 3, 3, z);
}

/* Split children: mean += R (scale * z) with the parent's scale; log-scale -= log(1.6). */
static void gaussians_edit_split(gaussians_state *s, float *const *data, size_t new_n,
                                 const void *vctx)
{
    const split_ctx *c = vctx;
    for (size_t r = 0; r < new_n; r++) {
        if (c->kind[r] != ROW_CHILD0 && c->kind[r] != ROW_CHILD1)
            continue;
        float *mean = data[G_MEANS] + r * 3, *ls = data[G_SCALES] + r * 3;
        float z[3], R[9];
        gaussians_split_noise(s->host, c->step, c->src[r], c->kind[r] - ROW_CHILD0, z);
        gs_quat_to_rot(data[G_ROTS] + r * 4, R);
        float sz[3] = { expf(ls[0]) * z[0], expf(ls[1]) * z[1], expf(ls[2]) * z[2] };
        for (int i = 0; i < 3; i++)
            mean[i] += R[i * 3] * sz[0] + R[i * 3 + 1] * sz[1] + R[i * 3 + 2] * sz[2];
        for (int i = 0; i < 3; i++)
            ls[i] -= logf(1.6f);
    }
}

/* Densification at `step` (file comment): clone, split, then prune. */
static sl_status gaussians_densify(gaussians_state *s, int64_t step, sl_error *err)
{
    const size_t n = s->n;
    const float log_dense = (float)log(s->percent_dense * s->extent);
    const double prune_scale = s->max_scale_fraction * s->extent;
    /* pre-prune rows: survivors, clones, children */
    size_t cap = 2 * n + 1;
    int64_t *src = malloc(cap * sizeof *src);
    uint8_t *kind = malloc(cap);
    uint8_t *action = calloc(n ? n : 1, 1);   /* (n,) 0 none, 1 clone, 2 split */
    if (!src || !kind || !action) {
        free(src); free(kind); free(action);
        return sl_error_set(err, SL_ERR_NOMEM, "gaussians: out of memory densifying");
    }
    size_t count = n, n_clone = 0, n_split = 0;
    for (size_t i = 0; i < n && count < s->max_n; i++) {
        float g = s->denom[i] > 0 ? s->grad_accum[i] / s->denom[i] : 0.0f;
        if (!(s->denom[i] > 0) || !(g >= s->grad_threshold))
            continue;   /* never visible since the last densification, or a small gradient */
        bool small = gaussians_max_log_scale(s->data[G_SCALES] + i * 3) <= log_dense;
        action[i] = small ? 1 : 2;
        count++;   /* a clone adds one; a split replaces one by two */
        if (small)
            n_clone++;
        else
            n_split++;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (action[i] != 2) { src[m] = (int64_t)i; kind[m++] = ROW_KEEP; }
    for (size_t i = 0; i < n; i++)
        if (action[i] == 1) { src[m] = (int64_t)i; kind[m++] = ROW_CLONE; }
    for (size_t i = 0; i < n; i++)
        if (action[i] == 2) {
            src[m] = (int64_t)i; kind[m++] = ROW_CHILD0;
            src[m] = (int64_t)i; kind[m++] = ROW_CHILD1;
        }
    /* prune on the values the rows will have (children: scale / 1.6) */
    size_t out = 0, pruned = 0;
    for (size_t r = 0; r < m; r++) {
        size_t i = (size_t)src[r];
        double op = 1.0 / (1.0 + exp(-(double)s->data[G_OPAC][i]));
        double ms = exp((double)gaussians_max_log_scale(s->data[G_SCALES] + i * 3));
        if (kind[r] >= ROW_CHILD0)
            ms /= 1.6;
        if (op < s->min_opacity || (prune_scale > 0 && ms > prune_scale)) {
            pruned++;
            continue;
        }
        src[out] = src[r];
        kind[out++] = kind[r];
    }
    sl_status st = SL_OK;
    if (out != n || n_clone || n_split) {
        uint8_t *keep = malloc(out ? out : 1);
        if (!keep)
            st = sl_error_set(err, SL_ERR_NOMEM, "gaussians: out of memory densifying");
        else {
            for (size_t r = 0; r < out; r++)
                keep[r] = kind[r] == ROW_KEEP;
            split_ctx ctx = { kind, src, step };
            st = gaussians_remap(s, src, keep, out, gaussians_edit_split, &ctx, err);
            free(keep);
        }
    } else {
        memset(s->grad_accum, 0, n * sizeof(float));
        memset(s->denom, 0, n * sizeof(float));
    }
    if (st == SL_OK)
        s->host->log(s->host, SL_LOG_DEBUG, "step %lld: %zu cloned, %zu split, %zu pruned: "
                     "%zu Gaussians", (long long)step, n_clone, n_split, pruned, s->n);
    free(src); free(kind); free(action);
    return st;
}

/* Opacity reset: opacities clamped to <= 0.01, the opacity group's moments zeroed (the
 * reference implementation replaces the tensor and its optimizer state). */
static sl_status gaussians_reset_opacity(gaussians_state *s, sl_error *err)
{
    const sl_host *h = s->host;
    const size_t n = s->n, nn = n ? n : 1;
    const float max_logit = gaussians_logit(0.01);
    int64_t *src = malloc(nn * sizeof *src);
    float *nd = h->alloc(h, nn * sizeof(float)), *ng = h->alloc(h, nn * sizeof(float));
    sl_status st = SL_OK;
    if (!src || !nd || !ng) {
        st = sl_error_set(err, SL_ERR_NOMEM, "gaussians: out of memory resetting opacities");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        src[i] = -1;
        float o = s->data[G_OPAC][i];
        nd[i] = o < max_logit ? o : max_logit;
    }
    st = h->remap_group(h, "opacities", src, n, nd, ng, err);
    if (st == SL_OK) {
        h->free_mem(h, s->data[G_OPAC]);
        h->free_mem(h, s->grad[G_OPAC]);
        s->data[G_OPAC] = nd;
        s->grad[G_OPAC] = ng;
        nd = ng = NULL;
    }
done:
    h->free_mem(h, nd);
    h->free_mem(h, ng);
    free(src);
    return st;
}

/* Densification and opacity reset at their steps. */
static sl_status gaussians_adapt(gaussians_state *s, int64_t step, sl_error *err)
{
    if (step >= s->dens_until || (s->dens_interval <= 0 && s->reset_interval <= 0))
        return SL_OK;
    bool dens = s->dens_interval > 0 && step > s->dens_from && step % s->dens_interval == 0;
    bool reset = s->reset_interval > 0 && step > 0 && step % s->reset_interval == 0;
    if (!dens && !reset)
        return SL_OK;
    if (!gaussians_can_remap(s->host)) {
        if (!s->warned_no_remap++)
            s->host->log(s->host, SL_LOG_WARN, "the host cannot resize parameter groups "
                         "(no remap_group): densification and opacity reset are off");
        return SL_OK;
    }
    sl_status st = SL_OK;
    if (dens)
        st = gaussians_densify(s, step, err);
    if (st == SL_OK && reset)
        st = gaussians_reset_opacity(s, err);
    return st;
}

static sl_status gaussians_step_end(void *state, int64_t step, sl_error *err)
{
    gaussians_state *s = state;
    sl_status st = gaussians_adapt(s, step, err);
    s->host->record(s->host, "gaussians_count", (double)s->n);
    return st;
}

static sl_status gaussians_save_state(void *state, sl_state_io *io, sl_error *err)
{
    gaussians_state *s = state;
    int64_t n = (int64_t)s->n;
    sl_status st = sl_state_put(io, "gaussians/count", SL_STATE_I64, &n, 1, err);
    if (st == SL_OK)
        st = sl_state_put(io, "gaussians/grad_accum", SL_STATE_F32, s->grad_accum, s->n, err);
    if (st == SL_OK)
        st = sl_state_put(io, "gaussians/denom", SL_STATE_F32, s->denom, s->n, err);
    return st;
}

static sl_status gaussians_load_state(void *state, sl_state_io *io, sl_error *err)
{
    gaussians_state *s = state;
    int64_t n = 0;
    sl_status st = sl_state_get(io, "gaussians/count", SL_STATE_I64, &n, 1, err);
    if (st != SL_OK)
        return st;
    if (n < 0 || (uint64_t)n > s->max_n)
        return sl_error_set(err, SL_ERR_FORMAT, "gaussians: checkpoint holds %lld Gaussians "
                            "(allowed: 0 to max_gaussians = %zu)", (long long)n, s->max_n);
    /* Resize first: the host restores the groups' values and moments after this call, on
     * the arrays param_groups() reports then. */
    if ((size_t)n != s->n && (st = gaussians_alloc(s, (size_t)n, err)) != SL_OK)
        return st;
    s->saved_batch = 0;
    st = sl_state_get(io, "gaussians/grad_accum", SL_STATE_F32, s->grad_accum, s->n, err);
    if (st == SL_OK)
        st = sl_state_get(io, "gaussians/denom", SL_STATE_F32, s->denom, s->n, err);
    return st;
}

/* The bound of the file comment: 4 copies (value, gradient, Adam's m and v) of the
 * 14 + 3(K-1) floats of every Gaussian up to max_gaussians, its statistics, and what a
 * render of `batch` views keeps (~110 bytes per Gaussian and view, 8 per pixel). Tile
 * entries depend on the scene and are left out. */
static uint64_t gaussians_memory_bytes(const sl_params *params, int resolution, int batch)
{
    double n = (double)sl_params_int(params, "max_gaussians");
    double K = (double)((sl_params_int(params, "sh_degree") + 1) * (sl_params_int(params, "sh_degree") + 1));
    double per = 4.0 * 4.0 * (14.0 + 3.0 * (K - 1.0)) + 8.0 + 110.0 * batch;
    return (uint64_t)(n * per + 8.0 * batch * (double)resolution * resolution);
}

static const sl_representation_vtable gaussians_vtable = {
    .struct_size = sizeof(sl_representation_vtable),
    .create = gaussians_create,
    .destroy = gaussians_destroy,
    .outputs = gaussians_outputs,
    .param_groups = gaussians_param_groups,
    .render = gaussians_render,
    .backward = gaussians_backward,
    .step_end = gaussians_step_end,
    .save_state = gaussians_save_state,
    .load_state = gaussians_load_state,
    .memory_bytes = gaussians_memory_bytes,
};

static const sl_plugin gaussians_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_REPRESENTATION,
    .name = "gaussians",
    .version = "1.0.0",
    .summary = "3-D Gaussian splatting: tiled EWA rasterizer with SH colour, depth, normals "
               "and adaptive density control",
    .params = SL_PARAM_SCHEMA(gaussians_params),
    .vtable = &gaussians_vtable,
};

SL_PLUGIN_ENTRY(&gaussians_plugin)
