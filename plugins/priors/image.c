/* plugins/priors/image.c — prior `image`: the ideal denoiser of a few target images.
 *
 * method.md section 5 with images in place of views and no view conditioning. The bank
 * holds K images x^(k) in [-1, 1] (x = 2 rgb - 1), each resampled to (R, R, 3) on load
 * and labelled. The data distribution is the s0-smoothed bank, so at diffusion time t
 *
 *     p_t(x_t | S) = (1/|S|) sum_{k in S} N(x_t; alpha_t x^(k), v_t I),  v_t = alpha_t^2 s0^2 + sigma_t^2
 *     r_k          = softmax_{k in S}( -||x_t - alpha_t x^(k)||^2 / (2 v_t) )
 *     eps_S        = -sigma_t grad log p_t = (sigma_t / v_t) (x_t - alpha_t sum_k r_k x^(k))
 *
 * which is the exact optimum of a noise-prediction network trained on that distribution.
 * The conditional set S_y is every image whose label equals the prompt, the unconditional
 * set is the whole bank, and classifier-free guidance (diffusers' form, method.md 1) is
 *
 *     eps_hat = eps_u + s (eps_y - eps_u),   computed as (1 - s) eps_u + s eps_y
 *
 * The second spelling is the same number mathematically, and it makes s = 1 return the
 * conditional prediction bit for bit (and s = 0 the unconditional one), which tests use.
 * With guidance there is no single density: eps_hat = -sigma_t grad[(1-s) log p_u + s log p_y].
 *
 * Numerics: the squared distances are accumulated in double (D = 3 R^2 terms whose sum
 * sets logits of size D / v_t; float would lose the small differences between images
 * that decide r), and the softmax uses log-sum-exp. Every reduction runs in a fixed
 * order inside one thread, so the result does not depend on the thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/steinlab.h"

enum { IMAGE_PATH_MAX = 4096 };

typedef struct image_prior_state {
    const sl_host *host;
    sl_diffusion diffusion;   /* the schedule info() hands out */
    int res;                  /* R: images are (R, R, 3) */
    size_t dim;               /* D = R * R * 3 */
    size_t n_images;          /* K */
    float *bank;              /* (K, R, R, 3) images in [-1, 1] */
    char **labels;            /* (K,) owned strings */
    size_t *all;              /* (K,) 0, 1, ..., K-1: the unconditional set */
    size_t *cond;             /* (n_cond,) bank indices of the conditional set, ascending */
    size_t n_cond;
    double s0;                /* data bandwidth */
    sl_schedule guidance;     /* CFG scale s, by step */
    double *dist2;            /* (cap_batch, K) squared distances, scratch */
    double *resp;             /* (cap_batch, 2, K) responsibilities (u then y), scratch */
    size_t cap_batch;         /* batch size the scratch holds */
} image_prior_state;

static const sl_param_def image_prior_params[] = {
    { .name = "images", .type = SL_PARAM_STRING_LIST, .flags = SL_PARAM_REQUIRED,
      .min_len = 1, .max_len = 0,
      .doc = "PNG files of the target images, relative to the spec's directory" },
    { .name = "labels", .type = SL_PARAM_STRING_LIST, .min_len = 1, .max_len = 0,
      .doc = "one label per image (default: each file's name without directory and extension)" },
    { .name = "prompt", .type = SL_PARAM_STRING, .flags = SL_PARAM_REQUIRED,
      .doc = "the label to distil: the conditional set is every image with this label" },
    { .name = "resolution", .type = SL_PARAM_INT, .default_value = "32", .min = 1, .max = 4096,
      .doc = "the prior's image size R: every image is resampled to R x R on load" },
    { .name = "bandwidth", .type = SL_PARAM_FLOAT, .default_value = "0.05", .min = 1e-6,
      .max = INFINITY,
      .doc = "data bandwidth s0 > 0 (std of the Gaussian around each image, in [-1, 1] units)" },
    { .name = "guidance_scale", .type = SL_PARAM_FLOAT, .flags = SL_PARAM_SCHEDULABLE,
      .default_value = "7.5", .min = 0, .max = INFINITY,
      .doc = "CFG scale s in eps_u + s (eps_y - eps_u) (diffusers' form; 1: no guidance)" },
};

/* ------------------------------------------------------------------ helpers */

static char *image_prior_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* "dir/name.png" -> "name" (the default label). */
static char *image_prior_stem(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = (dot && dot != base) ? (size_t)(dot - base) : strlen(base);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, base, n);
        d[n] = '\0';
    }
    return d;
}

/* The error for a prompt that is no label: lists the labels (each once) and suggests the
 * nearest one when it is a plausible typo. */
static sl_status image_prior_unknown_prompt(const image_prior_state *s, const char *prompt,
                                            sl_error *err)
{
    char list[SL_ERR_MSG_MAX / 2] = "";
    size_t used = 0;
    for (size_t k = 0; k < s->n_images; k++) {
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = strcmp(s->labels[j], s->labels[k]) == 0;
        if (seen)
            continue;
        if (used < sizeof list) {
            int w = snprintf(list + used, sizeof list - used, "%s'%s'", used ? ", " : "",
                             s->labels[k]);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    const char *nearest = sl_nearest_word(prompt, (const char *const *)s->labels, s->n_images);
    if (nearest)
        return sl_error_set(err, SL_ERR_SPEC,
                            "image: prompt '%s' is not a label of any image (labels: %s); "
                            "did you mean '%s'?", prompt, list, nearest);
    return sl_error_set(err, SL_ERR_SPEC,
                        "image: prompt '%s' is not a label of any image (labels: %s)", prompt,
                        list);
}

/* Loads image k into the bank: read, resample to (R, R), map to [-1, 1]. */
static sl_status image_prior_load(image_prior_state *s, size_t k, const char *spec_path,
                                  sl_error *err)
{
    char path[IMAGE_PATH_MAX];
    sl_status st = sl_host_path(s->host, spec_path, path, sizeof path, err);
    if (st != SL_OK) {
        sl_error_prefix(err, "image: images[%zu]", k);
        return st;
    }
    float *rgb = NULL;   /* (h, w, 3) in [0, 1], malloc'd by the reader */
    int w = 0, h = 0;
    st = sl_png_read_rgb(path, &rgb, &w, &h, err);
    if (st != SL_OK) {
        /* Keep the reader's status; make sure the message names the file. */
        if (err && !strstr(err->msg, path))
            sl_error_prefix(err, "image: images[%zu] '%s'", k, path);
        else
            sl_error_prefix(err, "image: images[%zu]", k);
        free(rgb);
        return st;
    }
    float *x = s->bank + k * s->dim;   /* (R, R, 3) */
    sl_resample(rgb, h, w, 3, x, s->res, s->res);
    for (size_t i = 0; i < s->dim; i++)
        x[i] = 2.0f * x[i] - 1.0f;
    free(rgb);
    return SL_OK;
}

/* ------------------------------------------------------------------ lifecycle */

static void image_prior_destroy(void *state)
{
    image_prior_state *s = state;
    if (!s)
        return;
    if (s->labels)
        for (size_t k = 0; k < s->n_images; k++)
            free(s->labels[k]);
    free(s->labels);
    free(s->all);
    free(s->cond);
    free(s->dist2);
    free(s->resp);
    s->host->free_mem(s->host, s->bank);
    free(s);
}

static sl_status image_prior_create(const sl_host *host, const sl_params *params,
                                    void **state, sl_error *err)
{
    image_prior_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "image: out of memory");
    s->host = host;
    sl_diffusion_default(&s->diffusion);
    s->res = (int)sl_params_int(params, "resolution");
    s->dim = (size_t)s->res * s->res * 3;
    s->s0 = sl_params_float(params, "bandwidth");
    s->guidance = sl_params_schedule(params, "guidance_scale");
    s->n_images = sl_params_list_len(params, "images");
    const char *prompt = sl_params_string(params, "prompt");
    sl_status st = SL_OK;

    bool has_labels = sl_params_has(params, "labels");
    if (has_labels && sl_params_list_len(params, "labels") != s->n_images) {
        st = sl_error_set(err, SL_ERR_SPEC,
                          "image: labels has %zu entries but images has %zu (one label per "
                          "image, or leave labels out to use the file names)",
                          sl_params_list_len(params, "labels"), s->n_images);
        goto fail;
    }
    s->labels = calloc(s->n_images, sizeof *s->labels);
    s->all = calloc(s->n_images, sizeof *s->all);
    s->cond = calloc(s->n_images, sizeof *s->cond);
    s->bank = host->alloc(host, s->n_images * s->dim * sizeof(float));
    if (!s->labels || !s->all || !s->cond || !s->bank) {
        st = sl_error_set(err, SL_ERR_NOMEM, "image: cannot allocate a bank of %zu images "
                          "of %dx%d", s->n_images, s->res, s->res);
        goto fail;
    }
    for (size_t k = 0; k < s->n_images; k++) {
        s->all[k] = k;
        const char *file = sl_params_list_string(params, "images", k);
        s->labels[k] = has_labels ? image_prior_strdup(sl_params_list_string(params, "labels", k))
                                  : image_prior_stem(file);
        if (!s->labels[k]) {
            st = sl_error_set(err, SL_ERR_NOMEM, "image: out of memory");
            goto fail;
        }
    }
    /* Check the prompt before decoding anything, so a typo fails fast. */
    for (size_t k = 0; k < s->n_images; k++)
        if (strcmp(s->labels[k], prompt) == 0)
            s->cond[s->n_cond++] = k;
    if (s->n_cond == 0) {
        st = image_prior_unknown_prompt(s, prompt, err);
        goto fail;
    }
    for (size_t k = 0; k < s->n_images; k++) {
        st = image_prior_load(s, k, sl_params_list_string(params, "images", k), err);
        if (st != SL_OK)
            goto fail;
    }
    host->log(host, SL_LOG_INFO,
              "image prior: %zu images at %dx%d, prompt '%s' selects %zu, s0 = %g", s->n_images,
              s->res, s->res, prompt, s->n_cond, s->s0);
    *state = s;
    return SL_OK;
fail:
    image_prior_destroy(s);
    return st;
}

static void image_prior_info(const void *state, sl_prior_info *info)
{
    const image_prior_state *s = state;
    info->height = s->res;
    info->width = s->res;
    info->channels = 3;
    info->diffusion = &s->diffusion;
    info->guidance_scale = sl_schedule_at(&s->guidance, 0);
}

/* ------------------------------------------------------------------ the denoiser */

/* r over the bank indices `idx` (n,) from the squared distances d2 (K,): softmax of
 * -d2 / (2 v) by log-sum-exp. r: (K,), only the entries of idx are written. */
static void image_prior_softmax(const double *d2, const size_t *idx, size_t n, double v,
                                double *r)
{
    double top = -INFINITY;
    for (size_t j = 0; j < n; j++) {
        double logit = -d2[idx[j]] / (2.0 * v);
        if (logit > top)
            top = logit;
    }
    double z = 0.0;
    for (size_t j = 0; j < n; j++) {
        r[idx[j]] = exp(-d2[idx[j]] / (2.0 * v) - top);
        z += r[idx[j]];
    }
    for (size_t j = 0; j < n; j++)
        r[idx[j]] /= z;
}

static sl_status image_prior_reserve(image_prior_state *s, size_t batch, sl_error *err)
{
    if (batch <= s->cap_batch)
        return SL_OK;
    free(s->dist2);
    free(s->resp);
    s->dist2 = malloc(batch * s->n_images * sizeof *s->dist2);
    s->resp = malloc(batch * 2 * s->n_images * sizeof *s->resp);
    if (!s->dist2 || !s->resp) {
        s->cap_batch = 0;
        return sl_error_set(err, SL_ERR_NOMEM, "image: out of memory (batch %zu)", batch);
    }
    s->cap_batch = batch;
    return SL_OK;
}

static sl_status image_prior_noise_pred(void *state, const sl_prior_query *q, float *eps_hat,
                                        sl_error *err)
{
    image_prior_state *s = state;
    const size_t B = q->batch > 0 ? (size_t)q->batch : 0, K = s->n_images, D = s->dim;
    if (B == 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "image: batch %d", q->batch);
    for (size_t b = 0; b < B; b++)
        if (q->t[b] < 1 || q->t[b] > s->diffusion.T)
            return sl_error_set(err, SL_ERR_INVALID_ARG,
                                "image: t[%zu] = %d is outside [1, %d]", b, q->t[b],
                                s->diffusion.T);
    sl_status st = image_prior_reserve(s, B, err);
    if (st != SL_OK)
        return st;
    const double gs = sl_schedule_at(&s->guidance, q->step);

    /* Squared distances ||x_t - alpha x^(k)||^2, one sequential double sum per (b, k). */
    double *dist2 = s->dist2;   /* (B, K) */
#pragma omp parallel for collapse(2) schedule(static) if (B * K * D > 100000)
    for (size_t b = 0; b < B; b++)
        for (size_t k = 0; k < K; k++) {
            const double alpha = sl_diffusion_alpha(&s->diffusion, q->t[b]);
            const float *x = q->x_t + b * D;       /* (R, R, 3) */
            const float *xk = s->bank + k * D;     /* (R, R, 3) */
            double acc = 0.0;
            for (size_t i = 0; i < D; i++) {
                double d = (double)x[i] - alpha * (double)xk[i];
                acc += d * d;
            }
            dist2[b * K + k] = acc;
        }

    for (size_t b = 0; b < B; b++) {
        const double alpha = sl_diffusion_alpha(&s->diffusion, q->t[b]);
        const double sigma = sl_diffusion_sigma(&s->diffusion, q->t[b]);
        const double v = alpha * alpha * s->s0 * s->s0 + sigma * sigma;
        const double c = sigma / v;
        double *r_u = s->resp + b * 2 * K;   /* (K,) */
        double *r_y = r_u + K;               /* (K,), entries of the conditional set */
        image_prior_softmax(dist2 + b * K, s->all, K, v, r_u);
        image_prior_softmax(dist2 + b * K, s->cond, s->n_cond, v, r_y);
        const float *x = q->x_t + b * D;   /* (R, R, 3) */
        float *out = eps_hat + b * D;      /* (R, R, 3) */
#pragma omp parallel for schedule(static) if (K * D > 100000)
        for (size_t i = 0; i < D; i++) {
            double mean_u = 0.0, mean_y = 0.0;   /* sum_k r_k x^(k)_i */
            for (size_t k = 0; k < K; k++)
                mean_u += r_u[k] * (double)s->bank[k * D + i];
            for (size_t j = 0; j < s->n_cond; j++)
                mean_y += r_y[s->cond[j]] * (double)s->bank[s->cond[j] * D + i];
            double eps_u = c * ((double)x[i] - alpha * mean_u);
            double eps_y = c * ((double)x[i] - alpha * mean_y);
            out[i] = (float)((1.0 - gs) * eps_u + gs * eps_y);
        }
    }
    return SL_OK;
}

/* The ground truth is the prior's own data: the first image of the conditional set as
 * the bank holds it (at R x R), resampled to the camera's size and mapped back to [0, 1].
 * The pose is ignored, as the bank has no views. */
static sl_status image_prior_reference(void *state, const sl_camera *cam, float *rgb,
                                       sl_error *err)
{
    image_prior_state *s = state;
    if (cam->width < 1 || cam->height < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "image: camera size %dx%d", cam->width,
                            cam->height);
    sl_resample(s->bank + s->cond[0] * s->dim, s->res, s->res, 3, rgb, cam->height,
                cam->width);
    const size_t n = (size_t)cam->height * cam->width * 3;
    for (size_t i = 0; i < n; i++)
        rgb[i] = 0.5f * (rgb[i] + 1.0f);
    return SL_OK;
}

static const sl_prior_vtable image_prior_vtable = {
    .struct_size = sizeof(sl_prior_vtable),
    .create = image_prior_create,
    .destroy = image_prior_destroy,
    .info = image_prior_info,
    .noise_pred = image_prior_noise_pred,
    .reference = image_prior_reference,
    .extension = NULL,
};

static const sl_plugin image_prior_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_PRIOR,
    .name = "image",
    .version = "1.0.0",
    .summary = "Ideal denoiser of a few labelled target images (PNG), with classifier-free "
               "guidance",
    .params = SL_PARAM_SCHEMA(image_prior_params),
    .vtable = &image_prior_vtable,
};

SL_PLUGIN_ENTRY(&image_prior_plugin)
