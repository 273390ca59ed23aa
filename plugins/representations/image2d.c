/* plugins/representations/image2d.c — representation `image2d`: an RGB pixel grid.
 *
 * The simplest differentiable "scene": a stack of logit grids, level l of size
 * (R_l, R_l, 3) with R_l = floor(resolution / 2^l). A render ignores the camera's pose
 * (it is a 2-D test bed for priors and estimators, not a 3-D model) and shows
 *
 *     rgb = sigmoid( sum_l A_l g_l )
 *
 * at the camera's size, where A_l is sl_resample from (R_l, R_l) to (H, W) (the identity
 * when the sizes agree). Coarse levels act as a multi-resolution parametrisation: a step
 * on level l moves a 2^l x 2^l block of pixels at once, which speeds up early training
 * the way a hash-grid's coarse levels do.
 *
 * Backward, for an upstream dL/drgb (B, H, W, 3):
 *     dL/dz   = sum_b dL/drgb[b] * s (1 - s)         (z: the pre-sigmoid sum, s = sigmoid(z);
 *                                                     every batch element shows the same image)
 *     dL/dg_l += A_l^T dL/dz                         (sl_resample_adjoint, accumulates)
 *
 * What backward needs from the forward pass is s, (H, W, 3), saved by TRAIN renders only:
 * EVAL renders (logging, probes at another size) use scratch buffers and leave it alone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/steinlab.h"

enum { IMAGE2D_MAX_LEVELS = 12 };

typedef struct image2d_state {
    const sl_host *host;
    int resolution;                          /* finest grid size (square) */
    int levels;                              /* number of grids */
    int level_res[IMAGE2D_MAX_LEVELS];       /* (levels,) R_l = resolution >> l */
    char level_name[IMAGE2D_MAX_LEVELS][16]; /* (levels,) "level0", "level1", ... */
    float *data[IMAGE2D_MAX_LEVELS];         /* each (R_l, R_l, 3) logits */
    float *grad[IMAGE2D_MAX_LEVELS];         /* each (R_l, R_l, 3) dL/dlogits, accumulated */

    /* Saved by the last TRAIN render for backward. */
    float *saved_s;        /* (saved_h, saved_w, 3) sigmoid output */
    size_t saved_cap;      /* floats allocated in saved_s */
    int saved_batch, saved_h, saved_w;   /* saved_batch == 0: nothing saved yet */

    /* Scratch, reused by every call (never read across calls). */
    float *sum;            /* (H, W, 3) pre-sigmoid sum being built / dL/dz in backward */
    float *tmp;            /* (H, W, 3) one level resampled to the render size */
    size_t sum_cap, tmp_cap;   /* floats allocated in sum and tmp */
} image2d_state;

static const sl_param_def image2d_params[] = {
    { .name = "resolution", .type = SL_PARAM_INT, .default_value = "64",
      .min = 1, .max = 8192,
      .doc = "size of the finest grid (square), in pixels" },
    { .name = "levels", .type = SL_PARAM_INT, .default_value = "1",
      .min = 1, .max = IMAGE2D_MAX_LEVELS,
      .doc = "number of grids summed before the sigmoid; level l has resolution/2^l" },
    { .name = "init", .type = SL_PARAM_CHOICE, .default_value = "zeros",
      .choices = "zeros|random",
      .doc = "initial logits: zeros (a grey image) or random N(0, init_std)" },
    { .name = "init_std", .type = SL_PARAM_FLOAT, .default_value = "0.1",
      .min = 0, .max = INFINITY,
      .doc = "standard deviation of the random initial logits (init: random)" },
};

/* Grows a host-allocated float buffer to hold at least n floats; contents are lost. */
static sl_status image2d_reserve(const sl_host *host, float **buf, size_t *cap, size_t n,
                                 sl_error *err)
{
    if (*cap >= n)
        return SL_OK;
    host->free_mem(host, *buf);
    *buf = host->alloc(host, n * sizeof(float));
    if (!*buf) {
        *cap = 0;
        return sl_error_set(err, SL_ERR_NOMEM, "image2d: cannot allocate %zu bytes",
                            n * sizeof(float));
    }
    *cap = n;
    return SL_OK;
}

static void image2d_destroy(void *state)
{
    image2d_state *s = state;
    if (!s)
        return;
    const sl_host *h = s->host;
    for (int l = 0; l < s->levels; l++) {
        h->free_mem(h, s->data[l]);
        h->free_mem(h, s->grad[l]);
    }
    h->free_mem(h, s->saved_s);
    h->free_mem(h, s->sum);
    h->free_mem(h, s->tmp);
    free(s);
}

static sl_status image2d_create(const sl_host *host, const sl_params *params, void **state,
                                sl_error *err)
{
    int resolution = (int)sl_params_int(params, "resolution");
    int levels = (int)sl_params_int(params, "levels");
    bool random_init = strcmp(sl_params_string(params, "init"), "random") == 0;
    double init_std = sl_params_float(params, "init_std");

    /* The coarsest level must keep at least one pixel. */
    if ((resolution >> (levels - 1)) < 1)
        return sl_error_set(err, SL_ERR_SPEC,
                            "image2d: levels %d is too many for resolution %d (the coarsest "
                            "level would have resolution/2^%d = 0 pixels; at most %d levels)",
                            levels, resolution, levels - 1,
                            (int)floor(log2((double)resolution)) + 1);

    image2d_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "image2d: out of memory");
    s->host = host;
    s->resolution = resolution;
    s->levels = levels;
    sl_status st = SL_OK;
    for (int l = 0; l < levels; l++) {
        int r = resolution >> l;
        size_t n = (size_t)r * r * 3;
        s->level_res[l] = r;
        snprintf(s->level_name[l], sizeof s->level_name[l], "level%d", l);
        s->data[l] = host->alloc(host, n * sizeof(float));
        s->grad[l] = host->alloc(host, n * sizeof(float));
        if (!s->data[l] || !s->grad[l]) {
            st = sl_error_set(err, SL_ERR_NOMEM, "image2d: cannot allocate level %d (%dx%d)",
                              l, r, r);
            goto fail;
        }
        /* host->alloc zero-fills, which is the `zeros` init. Random logits: one RNG sample
         * index per level so that adding a level does not change the others' draws. */
        if (random_init && init_std > 0) {
            sl_rng_key key = { .seed = host->seed, .step = 0,
                               .stream = host->rng_stream_base, .sample = (uint32_t)l };
            sl_rng_normal(key, 0, n, s->data[l]);
            for (size_t i = 0; i < n; i++)
                s->data[l][i] *= (float)init_std;
        }
    }
    *state = s;
    return SL_OK;
fail:
    image2d_destroy(s);
    return st;
}

static uint32_t image2d_outputs(const void *state)
{
    (void)state;
    return SL_RENDER_RGB;
}

static size_t image2d_param_groups(void *state, sl_param_group *groups, size_t max)
{
    image2d_state *s = state;
    for (int l = 0; l < s->levels && (size_t)l < max; l++) {
        size_t r = (size_t)s->level_res[l];
        groups[l] = (sl_param_group){ .name = s->level_name[l], .data = s->data[l],
                                      .grad = s->grad[l], .n = r * r * 3 };
    }
    return (size_t)s->levels;
}

static inline float image2d_sigmoid(float z)
{
    return 1.0f / (1.0f + expf(-z));
}

static sl_status image2d_render(void *state, const sl_render_request *req, sl_render *out,
                                sl_error *err)
{
    image2d_state *s = state;
    const int B = out->batch, H = out->height, W = out->width;
    if (B < 1 || H < 1 || W < 1 || req->batch != B)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "image2d: bad render size (batch %d, %dx%d; request batch %d)",
                            B, H, W, req->batch);
    if (out->depth || out->normal || out->opacity)
        return sl_error_set(err, SL_ERR_UNSUPPORTED,
                            "image2d: renders rgb only (depth, normal or opacity requested)");
    if (!out->rgb)
        return SL_OK;   /* nothing requested */
    const size_t n = (size_t)H * W * 3;
    sl_status st = image2d_reserve(s->host, &s->sum, &s->sum_cap, n, err);
    if (st == SL_OK)
        st = image2d_reserve(s->host, &s->tmp, &s->tmp_cap, n, err);
    if (st != SL_OK)
        return st;

    float *sum = s->sum;   /* (H, W, 3) */
    float *tmp = s->tmp;   /* (H, W, 3) */
    sl_resample(s->data[0], s->level_res[0], s->level_res[0], 3, sum, H, W);
    for (int l = 1; l < s->levels; l++) {
        sl_resample(s->data[l], s->level_res[l], s->level_res[l], 3, tmp, H, W);
        for (size_t i = 0; i < n; i++)
            sum[i] += tmp[i];
    }

    /* The sigmoid goes straight into batch element 0 and is copied to the others (the
     * pose is ignored, so all are equal). */
    float *rgb0 = out->rgb;   /* (H, W, 3), the first batch element */
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        rgb0[i] = image2d_sigmoid(sum[i]);
    for (int b = 1; b < B; b++)
        memcpy(out->rgb + (size_t)b * n, rgb0, n * sizeof(float));

    if (req->mode == SL_RENDER_TRAIN) {
        st = image2d_reserve(s->host, &s->saved_s, &s->saved_cap, n, err);
        if (st != SL_OK) {
            s->saved_batch = 0;
            return st;
        }
        memcpy(s->saved_s, rgb0, n * sizeof(float));
        s->saved_batch = B;
        s->saved_h = H;
        s->saved_w = W;
    }
    return SL_OK;
}

static sl_status image2d_backward(void *state, const sl_render *grad, sl_error *err)
{
    image2d_state *s = state;
    if (!grad->rgb)
        return SL_OK;   /* no gradient flows into rgb: nothing to accumulate */
    if (s->saved_batch == 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "image2d: backward called before any TRAIN render");
    if (grad->batch != s->saved_batch || grad->height != s->saved_h ||
        grad->width != s->saved_w)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "image2d: gradient is (%d, %d, %d, 3) but the last TRAIN render "
                            "was (%d, %d, %d, 3)", grad->batch, grad->height, grad->width,
                            s->saved_batch, s->saved_h, s->saved_w);
    const int B = grad->batch, H = grad->height, W = grad->width;
    const size_t n = (size_t)H * W * 3;
    /* sum_cap >= n: the TRAIN render at this size reserved it, and later renders only grow it. */
    float *dz = s->sum;              /* (H, W, 3) dL/dz */
    const float *sig = s->saved_s;   /* (H, W, 3) */
    /* Per pixel, the batch sum runs in a fixed order: deterministic for any thread count. */
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float g = 0.0f;
        for (int b = 0; b < B; b++)
            g += grad->rgb[(size_t)b * n + i];
        dz[i] = g * sig[i] * (1.0f - sig[i]);
    }
    for (int l = 0; l < s->levels; l++)
        sl_resample_adjoint(dz, H, W, 3, s->grad[l], s->level_res[l], s->level_res[l]);
    return SL_OK;
}

static const sl_representation_vtable image2d_vtable = {
    .struct_size = sizeof(sl_representation_vtable),
    .create = image2d_create,
    .destroy = image2d_destroy,
    .outputs = image2d_outputs,
    .param_groups = image2d_param_groups,
    .render = image2d_render,
    .backward = image2d_backward,
    .step_end = NULL,
};

static const sl_plugin image2d_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_REPRESENTATION,
    .name = "image2d",
    .version = "1.0.0",
    .summary = "RGB pixel grid (optionally multi-resolution) that ignores the camera pose; "
               "a 2-D test bed",
    .params = SL_PARAM_SCHEMA(image2d_params),
    .vtable = &image2d_vtable,
};

SL_PLUGIN_ENTRY(&image2d_plugin)
