/* plugins/priors/unet/unet.c — prior `unet`: a diffusion UNet trained by `steinlab prior
 * train` (docs/prior-training.md), predicting noise with classifier-free guidance.
 *
 * The weights file describes itself (steinlab/unet.h): the architecture in its metadata,
 * the classes' prompts ("classes.K"), the schedule it was trained on ("diffusion"). The
 * model is conditioned on the prompt's class and on the view bucket of the query camera
 * (camera.h), and its unconditional input is the null class with the null view, so
 *
 *     eps_hat = (1 - s) eps_u + s eps_y     (diffusers' CFG; s = 1 is the conditional)
 *
 * with eps_y and eps_u from one forward pass over a batch of 2B.
 *
 * Ground truth: when the file says its teacher was the world prior (metadata "teacher"),
 * the class's prompt names a world scene, and this prior renders it exactly as the world
 * prior does (reference, reference_geometry, the visible-surface sampler), so runs on a
 * trained network report PSNR, mask IoU, depth error and Chamfer against the same truth as
 * runs on the exact prior. Other teachers: no ground truth (SL_ERR_UNSUPPORTED). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/safetensors.h"
#include "steinlab/steinlab.h"
#include "steinlab/unet.h"
#include "steinlab/surface.h"

#include "render.h"
#include "scene.h"
#include "surface.h"

typedef struct unet_prior {
    const sl_host *host;
    sl_diffusion diffusion;
    sl_unet *net;
    sl_unet_ctx *ctx;          /* for batches of 2 B (conditional and unconditional) */
    int cls;                   /* the prompt's class id */
    int view_conditioning;     /* 0: always the null view */
    sl_schedule guidance;
    float *x2, *eps2, *t2;     /* (2B, S, S, C), (2B, S, S, C), (2B,) */
    int *cls2, *view2;         /* (2B,) */
    int has_scene;             /* the teacher was the world prior: ground truth below */
    world_scene scene;         /* the class prompt's scene */
    world_shading shading;     /* the world prior's (default) shading */
} unet_prior;

static const sl_param_def unet_params[] = {
    { .name = "weights", .type = SL_PARAM_STRING, .flags = SL_PARAM_REQUIRED,
      .doc = "safetensors file written by `steinlab prior train`, relative to the spec's "
             "directory" },
    { .name = "prompt", .type = SL_PARAM_STRING,
      .doc = "one of the prompts the model was trained on (default: its only one)" },
    { .name = "view_conditioning", .type = SL_PARAM_BOOL, .default_value = "true",
      .doc = "condition on the query camera's view bucket (false: the null view)" },
    { .name = "guidance_scale", .type = SL_PARAM_FLOAT, .flags = SL_PARAM_SCHEDULABLE,
      .default_value = "7.5", .min = 0, .max = INFINITY,
      .doc = "CFG scale s in eps_u + s (eps_y - eps_u) (diffusers' form; 1: no guidance)" },
};

static void unet_prior_free_batch(unet_prior *s)
{
    sl_unet_ctx_destroy(s->ctx);
    free(s->x2), free(s->eps2), free(s->t2), free(s->cls2), free(s->view2);
    s->ctx = NULL;
    s->x2 = s->eps2 = s->t2 = NULL;
    s->cls2 = s->view2 = NULL;
}

static void unet_prior_destroy(void *state)
{
    unet_prior *s = state;
    if (!s)
        return;
    unet_prior_free_batch(s);
    sl_unet_destroy(s->net);
    if (s->has_scene)
        world_scene_free(&s->scene);
    free(s);
}

/* The class whose prompt is `prompt`, listing the file's prompts when none matches. */
static sl_status find_class(const sl_safetensors *st, int classes, const char *prompt,
                            const char *path, int *out, sl_error *err)
{
    char key[32], list[1024] = "";
    size_t used = 0;
    for (int k = 0; k < classes; k++) {
        snprintf(key, sizeof key, "classes.%d", k);
        const char *name = sl_safetensors_meta_get(st, key);
        if (!name)
            return sl_error_set(err, SL_ERR_FORMAT, "unet: '%s' lacks metadata '%s' (the "
                                "prompt of class %d)", path, key, k);
        if (prompt && strcmp(name, prompt) == 0) {
            *out = k;
            return SL_OK;
        }
        int n = snprintf(list + used, sizeof list - used, "%s'%s'", k ? ", " : "", name);
        if (n > 0 && used + (size_t)n < sizeof list)
            used += (size_t)n;
    }
    if (!prompt && classes == 1) {
        *out = 0;
        return SL_OK;
    }
    if (!prompt)
        return sl_error_set(err, SL_ERR_SPEC, "unet: '%s' was trained on %d prompts; choose "
                            "one with 'prompt' (one of: %s)", path, classes, list);
    return sl_error_set(err, SL_ERR_SPEC, "unet: '%s' was not trained on the prompt '%s' (one "
                        "of: %s)", path, prompt, list);
}

/* The world scene of the class's prompt, when the teacher was the world prior. */
static sl_status load_ground_truth(unet_prior *s, const sl_safetensors *st, const char *path,
                                   sl_error *err)
{
    const char *teacher = sl_safetensors_meta_get(st, "teacher");
    if (!teacher || strcmp(teacher, "world") != 0)
        return SL_OK;
    char key[32];
    snprintf(key, sizeof key, "classes.%d", s->cls);
    const char *prompt = sl_safetensors_meta_get(st, key);
    sl_status rc = world_scene_from_prompt(prompt, &s->scene, err);
    if (rc != SL_OK) {
        sl_error_prefix(err, "unet: '%s': class %d's prompt is not a world prompt although "
                        "its teacher was the world prior", path, s->cls);
        return rc;
    }
    s->has_scene = 1;
    s->shading = world_shading_default();
    return SL_OK;
}

static sl_status unet_prior_create(const sl_host *host, const sl_params *params, void **state,
                                   sl_error *err)
{
    unet_prior *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "unet: out of memory");
    s->host = host;
    sl_diffusion_default(&s->diffusion);
    s->guidance = sl_params_schedule(params, "guidance_scale");
    s->view_conditioning = sl_params_bool(params, "view_conditioning");
    char path[4096];
    sl_safetensors *st = NULL;
    sl_status rc = sl_host_path(host, sl_params_string(params, "weights"), path, sizeof path,
                                err);
    if (rc == SL_OK) {
        rc = sl_safetensors_open(path, &st, err);
        if (rc != SL_OK)
            sl_error_prefix(err, "unet: weights");
    }
    if (rc == SL_OK) {
        rc = sl_unet_load(st, &s->net, err);
        if (rc != SL_OK)
            sl_error_prefix(err, "unet: '%s'", path);
    }
    if (rc == SL_OK) {
        const char *sched = sl_safetensors_meta_get(st, "diffusion");
        if (!sched || strcmp(sched, "default") != 0)
            rc = sl_error_set(err, SL_ERR_FORMAT, "unet: '%s' was trained on the schedule "
                              "'%s'; this prior runs the default (scaled-linear) one", path,
                              sched ? sched : "(not recorded)");
    }
    if (rc == SL_OK) {
        const sl_unet_config *c = sl_unet_config_of(s->net);
        rc = find_class(st, c->classes, sl_params_has(params, "prompt")
                                            ? sl_params_string(params, "prompt") : NULL,
                        path, &s->cls, err);
    }
    if (rc == SL_OK)
        rc = load_ground_truth(s, st, path, err);
    sl_safetensors_close(st);
    if (rc != SL_OK) {
        unet_prior_destroy(s);
        return rc;
    }
    const sl_unet_config *c = sl_unet_config_of(s->net);
    host->log(host, SL_LOG_INFO, "unet: %s, %dx%d, %d levels of %d base channels, %zu "
              "parameters, class %d of %d", path, c->image_size, c->image_size, c->levels,
              c->base_channels, sl_unet_params(s->net)->total, s->cls, c->classes);
    *state = s;
    return SL_OK;
}

static void unet_prior_info(const void *state, sl_prior_info *info)
{
    const unet_prior *s = state;
    const sl_unet_config *c = sl_unet_config_of(s->net);
    info->height = c->image_size;
    info->width = c->image_size;
    info->channels = c->channels;
    info->diffusion = &s->diffusion;
    info->guidance_scale = sl_schedule_at(&s->guidance, 0);
}

static sl_status reserve(unet_prior *s, int B, sl_error *err)
{
    if (s->ctx && sl_unet_ctx_batch(s->ctx) == 2 * B)
        return SL_OK;
    unet_prior_free_batch(s);
    const sl_unet_config *c = sl_unet_config_of(s->net);
    const size_t n = (size_t)2 * B * c->image_size * c->image_size * c->channels;
    s->x2 = malloc(n * sizeof(float));
    s->eps2 = malloc(n * sizeof(float));
    s->t2 = malloc((size_t)2 * B * sizeof(float));
    s->cls2 = malloc((size_t)2 * B * sizeof(int));
    s->view2 = malloc((size_t)2 * B * sizeof(int));
    if (!s->x2 || !s->eps2 || !s->t2 || !s->cls2 || !s->view2) {
        unet_prior_free_batch(s);
        return sl_error_set(err, SL_ERR_NOMEM, "unet: out of memory for a batch of %d", B);
    }
    sl_status st = sl_unet_ctx_create(s->net, 2 * B, &s->ctx, err);
    if (st != SL_OK)
        unet_prior_free_batch(s);
    return st;
}

static sl_status unet_prior_noise_pred(void *state, const sl_prior_query *q, float *eps_hat,
                                       sl_error *err)
{
    unet_prior *s = state;
    const sl_unet_config *c = sl_unet_config_of(s->net);
    const int B = q->batch;
    if (B < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "unet: batch %d", B);
    sl_status st = reserve(s, B, err);
    if (st != SL_OK)
        return st;
    const size_t D = (size_t)c->image_size * c->image_size * c->channels;
    for (int b = 0; b < B; b++) {
        if (q->t[b] < 1 || q->t[b] > s->diffusion.T)
            return sl_error_set(err, SL_ERR_INVALID_ARG, "unet: t = %d outside [1, %d]",
                                q->t[b], s->diffusion.T);
        s->t2[b] = s->t2[B + b] = (float)q->t[b];
        s->cls2[b] = s->cls;
        s->cls2[B + b] = c->classes;
        s->view2[b] = s->view_conditioning ? (int)sl_camera_bucket(&q->cams[b]) : c->views;
        s->view2[B + b] = c->views;
    }
    memcpy(s->x2, q->x_t, (size_t)B * D * sizeof(float));
    memcpy(s->x2 + (size_t)B * D, q->x_t, (size_t)B * D * sizeof(float));
    st = sl_unet_forward(s->net, s->ctx, s->eps2, s->x2, s->t2, s->cls2, s->view2, err);
    if (st != SL_OK)
        return st;
    const double gs = sl_schedule_at(&s->guidance, q->step);
    const float *ey = s->eps2, *eu = s->eps2 + (size_t)B * D;
    for (size_t i = 0; i < (size_t)B * D; i++)
        eps_hat[i] = (float)((1.0 - gs) * eu[i] + gs * ey[i]);
    return SL_OK;
}

static sl_status unet_prior_reference(void *state, const sl_camera *cam, float *rgb,
                                      sl_error *err)
{
    unet_prior *s = state;
    if (!s->has_scene)
        return sl_error_set(err, SL_ERR_UNSUPPORTED, "unet: no ground truth (teacher not "
                            "the world prior)");
    world_render(&s->scene, &s->shading, cam, &(world_view){ .rgb = rgb });
    return SL_OK;
}

static sl_status unet_prior_reference_geometry(void *state, const sl_camera *cam, float *depth,
                                               float *normal, float *mask, sl_error *err)
{
    unet_prior *s = state;
    if (!s->has_scene)
        return sl_error_set(err, SL_ERR_UNSUPPORTED, "unet: no ground truth (teacher not "
                            "the world prior)");
    world_render(&s->scene, &s->shading, cam,
                 &(world_view){ .depth = depth, .normal = normal, .mask = mask });
    return SL_OK;
}

static sl_status unet_prior_sample_surface(void *state, size_t n, uint64_t seed, float *points,
                                           sl_error *err)
{
    unet_prior *s = state;
    if (!s->has_scene)
        return sl_error_set(err, SL_ERR_UNSUPPORTED, "unet: no ground-truth surface");
    sl_rng_key key = { seed, 0, s->host->rng_stream_base + 1, 0 };
    return world_surface_sample(&s->scene, n, key, points, err);
}

static const sl_surface_sampler unet_surface_ext = {
    .struct_size = sizeof(sl_surface_sampler),
    .sample = unet_prior_sample_surface,
};

static const void *unet_prior_extension(void *state, const char *uri)
{
    const unet_prior *s = state;
    if (s->has_scene && strcmp(uri, SL_EXT_SURFACE_SAMPLER) == 0)
        return &unet_surface_ext;
    return NULL;
}

static const sl_prior_vtable unet_vtable = {
    .struct_size = sizeof(sl_prior_vtable),
    .create = unet_prior_create,
    .destroy = unet_prior_destroy,
    .info = unet_prior_info,
    .noise_pred = unet_prior_noise_pred,
    .reference = unet_prior_reference,
    .extension = unet_prior_extension,
    .reference_geometry = unet_prior_reference_geometry,
};

static const sl_plugin unet_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_PRIOR,
    .name = "unet",
    .version = "1.0.0",
    .summary = "a diffusion UNet trained by `steinlab prior train`, with classifier-free "
               "guidance",
    .params = SL_PARAM_SCHEMA(unet_params),
    .vtable = &unet_vtable,
};

SL_PLUGIN_ENTRY(&unet_plugin)
