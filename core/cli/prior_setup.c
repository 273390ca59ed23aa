/* core/cli/prior_setup.c — the training spec, the teachers, the views and the evaluation
 * set of `steinlab prior train / eval` (prior_setup.h). */
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "prior_setup.h"
#include "scene.h"
#include "spec.h"
#include "steinlab/steinlab.h"

/* Streams of the trainer's draws (its own, as a run's streams are the driver's). */
enum { PT_STREAM_PICK = 1, PT_STREAM_T = 2, PT_STREAM_NOISE = 3, PT_STREAM_SMOOTH = 4 };
/* The evaluation set draws with this step index, which no training step reaches. */
#define PT_EVAL_STEP 0xFFFFFFFFu

static const sl_param_def model_defs[] = {
    { .name = "base_channels", .type = SL_PARAM_INT, .default_value = "32", .min = 2,
      .max = 1024, .doc = "channels of the first level (even)" },
    { .name = "channel_mult", .type = SL_PARAM_FLOAT_LIST, .default_value = "[1, 2, 2]",
      .min = 1, .max = 16, .min_len = 1, .max_len = SL_UNET_MAX_LEVELS,
      .doc = "per level: channels = base_channels x mult (integers); one entry per level" },
    { .name = "res_blocks", .type = SL_PARAM_INT, .default_value = "1", .min = 1, .max = 8,
      .doc = "residual blocks per level (the way up has one more)" },
    { .name = "attention_resolutions", .type = SL_PARAM_FLOAT_LIST, .default_value = "[8]",
      .min = 1, .max = 1024, .min_len = 0, .max_len = SL_UNET_MAX_LEVELS,
      .doc = "feature-map sizes with self-attention after each block (each must be a "
             "level's size: R, R/2, ...)" },
    { .name = "heads", .type = SL_PARAM_INT, .default_value = "2", .min = 1, .max = 64,
      .doc = "attention heads" },
    { .name = "groups", .type = SL_PARAM_INT, .default_value = "8", .min = 1, .max = 1024,
      .doc = "group-norm groups (divides every level's channels)" },
};
static const sl_param_schema model_schema = SL_PARAM_SCHEMA(model_defs);

static const sl_param_def train_defs[] = {
    { .name = "steps", .type = SL_PARAM_INT, .default_value = "2000", .min = 1, .max = 1e9,
      .doc = "optimizer steps" },
    { .name = "batch", .type = SL_PARAM_INT, .default_value = "16", .min = 1, .max = 4096,
      .doc = "images per step" },
    { .name = "lr", .type = SL_PARAM_FLOAT, .default_value = "0.002", .min = 0, .max = 10,
      .doc = "peak learning rate of Adam" },
    { .name = "warmup", .type = SL_PARAM_INT, .default_value = "100", .min = 0, .max = 1e9,
      .doc = "steps of linear warm-up from 0 to lr" },
    { .name = "lr_final", .type = SL_PARAM_FLOAT, .default_value = "0.05", .min = 0, .max = 1,
      .doc = "the cosine decay ends at lr x lr_final at the last step" },
    { .name = "ema", .type = SL_PARAM_FLOAT, .default_value = "0.999", .min = 0, .max = 1,
      .doc = "EMA decay of the weights (warmed up as min(ema, (1 + k) / (10 + k)))" },
    { .name = "cfg_dropout", .type = SL_PARAM_FLOAT, .default_value = "0.1", .min = 0,
      .max = 1, .doc = "probability of replacing class and view by the null ids" },
    { .name = "grad_clip", .type = SL_PARAM_FLOAT, .default_value = "1", .min = 0,
      .max = INFINITY, .doc = "global gradient-norm clip (0: none)" },
};
static const sl_param_schema train_schema = SL_PARAM_SCHEMA(train_defs);

static const sl_param_def views_defs[] = {
    { .name = "rig", .type = SL_PARAM_CHOICE, .default_value = "orbit",
      .choices = "orbit|inside_out",
      .doc = "view grid: orbit cameras around the origin (object prompts), or inside-out "
             "cameras at the origin looking along each azimuth and elevation (room prompts; "
             "`distances` unused) — the world prior's bank grid for that scene level" },
    { .name = "resolution", .type = SL_PARAM_INT, .default_value = "16", .min = 8, .max = 256,
      .doc = "image size R (R x R); also the teacher's resolution" },
    { .name = "azimuths", .type = SL_PARAM_INT, .default_value = "12", .min = 1, .max = 3600,
      .doc = "view grid: azimuths evenly spaced from -180 degrees" },
    { .name = "elevations", .type = SL_PARAM_FLOAT_LIST, .default_value = "[0, 20, 40]",
      .min = -90, .max = 90, .min_len = 1, .max_len = 16, .doc = "view grid: elevations" },
    { .name = "distances", .type = SL_PARAM_FLOAT_LIST, .default_value = "[1.8]", .min = 0.01,
      .max = 1e6, .min_len = 1, .max_len = 16,
      .doc = "view grid: orbit distances (rig orbit)" },
    { .name = "fovy", .type = SL_PARAM_FLOAT, .default_value = "50", .min = 1, .max = 179,
      .doc = "view grid: vertical field of view in degrees" },
    { .name = "bandwidth", .type = SL_PARAM_FLOAT, .default_value = "0.05", .min = 0,
      .max = 1e3, .doc = "data bandwidth s0: a training image is a view plus N(0, s0^2 I)" },
};
static const sl_param_schema views_schema = SL_PARAM_SCHEMA(views_defs);

static const sl_param_def eval_defs[] = {
    { .name = "every", .type = SL_PARAM_INT, .default_value = "200", .min = 1, .max = 1e9,
      .doc = "steps between score-error evaluations (and one at the end)" },
    { .name = "samples", .type = SL_PARAM_INT, .default_value = "200", .min = PT_T_BINS,
      .max = 1e6, .doc = "evaluation set size (fixed x_t, spread evenly over the t-bins)" },
};
static const sl_param_schema eval_schema = SL_PARAM_SCHEMA(eval_defs);

static const sl_param_def out_defs[] = {
    { .name = "weights", .type = SL_PARAM_STRING,
      .doc = "final (EMA) weights, safetensors, relative to the working directory (default: "
             "runs/NAME.safetensors)" },
    { .name = "log", .type = SL_PARAM_STRING,
      .doc = "HDF5 training log, relative to the working directory (default: runs/NAME.h5); "
             "the checkpoint is LOG.ckpt.safetensors" },
    { .name = "checkpoint_every", .type = SL_PARAM_INT, .default_value = "500", .min = 1,
      .max = 1e9, .doc = "steps between checkpoints (and one at the end or on a stop)" },
};
static const sl_param_schema out_schema = SL_PARAM_SCHEMA(out_defs);

static const sl_param_def root_defs[] = {
    { .name = "name", .type = SL_PARAM_STRING, .default_value = "prior",
      .doc = "name of the training (default file names)" },
    { .name = "seed", .type = SL_PARAM_INT, .default_value = "0", .min = 0, .max = 4294967295.0,
      .doc = "seed of initialisation and every draw" },
    { .name = "prompts", .type = SL_PARAM_STRING_LIST, .flags = SL_PARAM_REQUIRED,
      .min_len = 1, .max_len = 1000, .doc = "the classes: one teacher instance per prompt" },
    { .name = "plugin_paths", .type = SL_PARAM_STRING_LIST, .default_value = "[]",
      .doc = "extra plugin files or directories, relative to the spec" },
    { .name = "model", .type = SL_PARAM_SECTION, .section = &model_schema,
      .doc = "the UNet (steinlab/unet.h)" },
    { .name = "train", .type = SL_PARAM_SECTION, .section = &train_schema,
      .doc = "optimisation" },
    { .name = "views", .type = SL_PARAM_SECTION, .section = &views_schema,
      .doc = "the view grid of the training data (also given to the teacher)" },
    { .name = "eval", .type = SL_PARAM_SECTION, .section = &eval_schema,
      .doc = "score error against the teacher's exact denoiser" },
    { .name = "out", .type = SL_PARAM_SECTION, .section = &out_schema, .doc = "outputs" },
};
static const sl_param_schema root_schema = SL_PARAM_SCHEMA(root_defs);

/* ------------------------------------------------------------------ teacher hosts */

/* A teacher's series have nowhere to go: the training log is the trainer's. */
static sl_status th_declare(const sl_host *h, const char *n, const char *d, sl_error *e)
{
    (void)h, (void)n, (void)d, (void)e;
    return SL_OK;
}
static void th_record(const sl_host *h, const char *n, double v) { (void)h, (void)n, (void)v; }
static const sl_prior_ref *th_prior(const sl_host *h) { (void)h; return NULL; }
static size_t th_baselines(const sl_host *h, const char *p, const sl_baseline_ref **out)
{
    (void)h, (void)p;
    *out = NULL;
    return 0;
}

/* ------------------------------------------------------------------ helpers */

static int schema_has(const sl_param_schema *s, const char *key)
{
    for (size_t i = 0; i < s->count; i++)
        if (!strcmp(s->defs[i].name, key))
            return 1;
    return 0;
}

/* Sets teacher.KEY = yaml in the section (which must not give it itself). */
static sl_status inject(sl_node *section, const sl_param_schema *schema, const char *key,
                        const char *yaml, const char *why, sl_error *err)
{
    if (!schema_has(schema, key))
        return SL_OK;
    const sl_node *given = sl_node_get(section, key);
    if (given)
        return sl_spec_error_at(err, given, "teacher", "'%s' is set by the trainer (%s); "
                                "remove it", key, why);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s=%s", key, yaml);
    return sl_spec_override(section, buf, err);
}

static const char *yaml_of(const sl_params *p, const char *name)
{
    for (size_t i = 0; i < sl_params_count(p); i++)
        if (!strcmp(sl_params_name_at(p, i), name))
            return sl_params_yaml_at(p, i);
    return "null";
}

static sl_status read_model(const sl_params *m, int res, int n_prompts, sl_unet_config *c,
                            const sl_node *spec, sl_error *err)
{
    sl_unet_config_default(c);
    c->image_size = res;
    c->channels = 3;
    c->base_channels = (int)sl_params_int(m, "base_channels");
    c->levels = (int)sl_params_list_len(m, "channel_mult");
    for (int l = 0; l < c->levels; l++) {
        double v = sl_params_list_float(m, "channel_mult", (size_t)l);
        if (v != floor(v))
            return sl_spec_error_at(err, sl_node_get(sl_node_get(spec, "model"), "channel_mult"),
                                    "model.channel_mult", "expected integers, found %g", v);
        c->channel_mult[l] = (int)v;
    }
    c->res_blocks = (int)sl_params_int(m, "res_blocks");
    c->heads = (int)sl_params_int(m, "heads");
    c->groups = (int)sl_params_int(m, "groups");
    c->classes = n_prompts;
    c->views = SL_VIEW_BUCKETS;
    c->attn_mask = 0;
    for (size_t i = 0; i < sl_params_list_len(m, "attention_resolutions"); i++) {
        const double r = sl_params_list_float(m, "attention_resolutions", i);
        int level = -1;
        for (int l = 0; l < c->levels; l++)
            if ((double)(res >> l) == r)
                level = l;
        if (level < 0)
            return sl_spec_error_at(err, sl_node_get(sl_node_get(spec, "model"),
                                                     "attention_resolutions"),
                                    "model.attention_resolutions", "%g is not the size of a "
                                    "level (%d levels from %d)", r, c->levels, res);
        c->attn_mask |= 1 << level;
    }
    sl_error why;
    if (sl_unet_config_check(c, &why) != SL_OK)
        return sl_spec_error_at(err, sl_node_get(spec, "model"), "model", "%s", why.msg);
    return SL_OK;
}

/* Outputs are relative to the working directory, as a run's log.path. */
static sl_status make_path(const pt_setup *s, const sl_params *out, const char *key,
                           const char *ext, char *dst, size_t size, sl_error *err)
{
    const int n = sl_params_has(out, key)
                      ? snprintf(dst, size, "%s", sl_params_string(out, key))
                      : snprintf(dst, size, "runs/%s%s", s->name, ext);
    if (n < 0 || (size_t)n >= size)
        return sl_error_set(err, SL_ERR_SPEC, "out.%s: path too long", key);
    return SL_OK;
}

/* ------------------------------------------------------------------ setup */

static sl_status create_teachers(pt_setup *s, const sl_params *views, sl_error *err)
{
    sl_node *section = sl_node_get(s->spec, "teacher");
    if (!section || section->kind != SL_NODE_MAP)
        return sl_spec_error_at(err, section, "teacher", "expected a prior section "
                                "({plugin: world, ...}), found %s", section ? "another value"
                                                                             : "nothing");
    const sl_node *pn = sl_node_get(section, "plugin");
    if (!pn || pn->kind != SL_NODE_SCALAR)
        return sl_spec_error_at(err, section, "teacher.plugin", "expected the name of a prior "
                                "plugin");
    s->teachers = calloc(s->n_prompts, sizeof *s->teachers);
    if (!s->teachers)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    const sl_plugin *d = sl_registry_find(s->registry, SL_KIND_PRIOR, pn->text, NULL);
    if (!d) {
        char names[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < sl_registry_count(s->registry); i++) {
            const sl_plugin *q = sl_registry_at(s->registry, i, NULL);
            if (q->kind != SL_KIND_PRIOR)
                continue;
            int n = snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "",
                             q->name);
            if (n > 0 && used + (size_t)n < sizeof names)
                used += (size_t)n;
        }
        return sl_spec_error_at(err, pn, "teacher.plugin", "no prior plugin named '%s' (one "
                                "of: %s)", pn->text, names);
    }
    static const char *const reserved[] = { "plugin", "label", NULL };
    for (size_t k = 0; k < s->n_prompts; k++) {
        pt_teacher *tc = &s->teachers[k];
        tc->plugin = d;
        sl_node *sec = sl_node_clone(section);
        if (!sec)
            return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        char q[1100];
        const char *prompt = s->prompts[k];
        sl_status st = SL_OK;
        if (strpbrk(prompt, "\"\\"))
            st = sl_error_set(err, SL_ERR_SPEC, "prompts[%zu]: quotes and backslashes are not "
                              "supported", k);
        snprintf(q, sizeof q, "\"%s\"", prompt);
        const char *from = "from the trainer's views section";
        if (st == SL_OK)
            st = inject(sec, &d->params, "prompt", q, "one instance per entry of prompts", err);
        static const char *const shared[] = { "resolution", "azimuths", "elevations",
                                              "distances", "fovy", "bandwidth" };
        for (size_t i = 0; st == SL_OK && i < sizeof shared / sizeof shared[0]; i++)
            st = inject(sec, &d->params, shared[i], yaml_of(views, shared[i]), from, err);
        if (st == SL_OK)
            st = inject(sec, &d->params, "guidance_scale", "1",
                        "its conditional prediction is the reference", err);
        if (st == SL_OK)
            st = sl_params_resolve(sec, "teacher", &d->params, reserved, &tc->params, err);
        sl_node_free(sec);
        if (st != SL_OK)
            return st;
        snprintf(tc->label, sizeof tc->label, "teacher.%zu", k);
        tc->host = (sl_host){
            .struct_size = sizeof(sl_host), .abi_version = SL_ABI_VERSION, .label = tc->label,
            .seed = s->seed, .rng_stream_base = SL_STREAM_PLUGIN_BASE, .host_ctx = s,
            .log = sl_host_stderr_log, .alloc = sl_host_aligned_alloc,
            .free_mem = sl_host_aligned_free, .declare_series = th_declare,
            .record = th_record, .prior = th_prior, .diffusion = NULL,
            .spec_dir = s->spec_dir, .baselines = th_baselines, .remap_group = NULL,
        };
        const sl_prior_vtable *vt = d->vtable;
        st = vt->create(&tc->host, tc->params, &tc->state, err);
        if (st != SL_OK) {
            tc->state = NULL;
            sl_error_prefix(err, "teacher '%s' (prompt '%s')", d->name, prompt);
            return st;
        }
        if (!vt->reference)
            return sl_error_set(err, SL_ERR_SPEC, "teacher '%s' has no reference(): the "
                                "trainer needs its clean images", d->name);
        sl_prior_info info;
        vt->info(tc->state, &info);
        if (info.height != s->res || info.width != s->res || info.channels != 3)
            return sl_error_set(err, SL_ERR_SPEC, "teacher '%s' works at %dx%dx%d, the "
                                "trainer at %dx%dx3 (views.resolution)", d->name, info.height,
                                info.width, info.channels, s->res, s->res);
        sl_diffusion def;
        sl_diffusion_default(&def);
        if (memcmp(info.diffusion->alphas_cumprod, def.alphas_cumprod,
                   sizeof def.alphas_cumprod) != 0)
            return sl_error_set(err, SL_ERR_SPEC, "teacher '%s' runs a schedule other than "
                                "the default one, which the unet prior assumes", d->name);
        s->diffusion = info.diffusion;
    }
    return SL_OK;
}

/* With the world prior as teacher, the rig must be its bank's for every prompt's scene
 * level (orbit for objects, inside-out for rooms): otherwise the views the network learns
 * and the denoiser it is compared to describe different data. Checked from the spec alone,
 * before the teachers build their view banks. */
static sl_status check_rig(const pt_setup *s, const sl_params *v, sl_error *err)
{
    const sl_node *teacher = sl_node_get(s->spec, "teacher");
    const sl_node *plugin = teacher ? sl_node_get(teacher, "plugin") : NULL;
    if (!plugin || plugin->kind != SL_NODE_SCALAR || strcmp(plugin->text, "world") != 0)
        return SL_OK;
    const int inside_out = !strcmp(sl_params_string(v, "rig"), "inside_out");
    const sl_node *views = sl_node_get(s->spec, "views");
    const sl_node *at = views ? sl_node_get(views, "rig") : NULL;
    for (size_t k = 0; k < s->n_prompts; k++) {
        world_scene scene;
        sl_status st = world_scene_from_prompt(s->prompts[k], &scene, err);
        if (st != SL_OK)
            return st;
        const int is_room = scene.is_room;
        world_scene_free(&scene);
        if (is_room != inside_out)
            return sl_spec_error_at(err, at ? at : sl_node_get(s->spec, "prompts"), "views.rig",
                                    "prompt '%s' is %s: the world prior sees it with %s "
                                    "cameras, so set views.rig: %s (prompts of both levels "
                                    "need two models)", s->prompts[k],
                                    is_room ? "a room" : "an object",
                                    is_room ? "inside-out" : "orbit",
                                    is_room ? "inside_out" : "orbit");
    }
    return SL_OK;
}

static sl_status build_views(pt_setup *s, const sl_params *v, sl_error *err)
{
    const int A = (int)sl_params_int(v, "azimuths");
    const int inside_out = !strcmp(sl_params_string(v, "rig"), "inside_out");
    const size_t E = sl_params_list_len(v, "elevations");
    const size_t Dn = inside_out ? 1 : sl_params_list_len(v, "distances");
    const float fovy = (float)sl_params_float(v, "fovy");
    s->n_views = (size_t)A * E * Dn;
    s->cams = calloc(s->n_views, sizeof *s->cams);
    s->bucket = calloc(s->n_views, sizeof *s->bucket);
    s->views = malloc(s->n_prompts * s->n_views * s->dim * sizeof(float));
    if (!s->cams || !s->bucket || !s->views)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory for %zu views", s->n_views);
    size_t k = 0;
    for (int a = 0; a < A; a++)
        for (size_t e = 0; e < E; e++)
            for (size_t d = 0; d < Dn; d++, k++) {
                const float az = -180.0f + 360.0f * (float)a / (float)A;
                const float el = (float)sl_params_list_float(v, "elevations", e);
                if (inside_out)
                    sl_camera_inside_out(az, el, NULL, fovy, s->res, s->res, &s->cams[k]);
                else
                    sl_camera_orbit(az, el, (float)sl_params_list_float(v, "distances", d),
                                    NULL, fovy, s->res, s->res, &s->cams[k]);
                s->bucket[k] = (int)sl_camera_bucket(&s->cams[k]);
            }
    for (size_t p = 0; p < s->n_prompts; p++) {
        const sl_prior_vtable *vt = s->teachers[p].plugin->vtable;
        for (k = 0; k < s->n_views; k++) {
            float *img = s->views + (p * s->n_views + k) * s->dim;
            sl_status st = vt->reference(s->teachers[p].state, &s->cams[k], img, err);
            if (st != SL_OK)
                return st;
            for (size_t i = 0; i < s->dim; i++)
                img[i] = 2.0f * img[i] - 1.0f;
        }
    }
    return SL_OK;
}

int pt_t_bin(int t)
{
    int j = (t - 1) * PT_T_BINS / SL_DIFFUSION_T;
    return j < 0 ? 0 : j >= PT_T_BINS ? PT_T_BINS - 1 : j;
}

pt_draw pt_draw_element(const pt_setup *s, uint32_t step, int b)
{
    const sl_rng_key pick = { s->seed, step, PT_STREAM_PICK, 0 };
    const sl_rng_key tk = { s->seed, step, PT_STREAM_T, 0 };
    const uint64_t i = 3 * (uint64_t)b;
    pt_draw d;
    d.prompt = (int)sl_rng_int1(pick, i, 0, (int64_t)s->n_prompts - 1);
    d.view = (int)sl_rng_int1(pick, i + 1, 0, (int64_t)s->n_views - 1);
    d.dropped = sl_rng_uniform1(pick, i + 2) < s->cfg_dropout;
    d.t = (int)sl_rng_int1(tk, (uint64_t)b, 1, SL_DIFFUSION_T);
    return d;
}

void pt_make_xt(const pt_setup *s, const pt_draw *d, uint32_t step, int b, float *x_t,
                float *eps)
{
    const sl_rng_key nk = { s->seed, step, PT_STREAM_NOISE, 0 };
    const sl_rng_key sk = { s->seed, step, PT_STREAM_SMOOTH, 0 };
    const size_t D = s->dim;
    sl_rng_normal(nk, (uint64_t)b * D, D, eps);
    sl_rng_normal(sk, (uint64_t)b * D, D, x_t);   /* the smoothing noise n, for now */
    const float *view = s->views + ((size_t)d->prompt * s->n_views + (size_t)d->view) * D;
    const double alpha = sl_diffusion_alpha(s->diffusion, d->t);
    const double sigma = sl_diffusion_sigma(s->diffusion, d->t);
    for (size_t i = 0; i < D; i++) {
        const double x0 = (double)view[i] + s->bandwidth * x_t[i];
        x_t[i] = (float)(alpha * x0 + sigma * eps[i]);
    }
}

/* The evaluation set: sample i has t in bin i % PT_T_BINS (uniform inside it), a random
 * prompt and view, never dropped; its ideal epsilon is the teacher's at guidance 1. */
static sl_status build_eval(pt_setup *s, int n, sl_error *err)
{
    const size_t D = s->dim;
    s->n_eval = n;
    s->eval_xt = malloc((size_t)n * D * sizeof(float));
    s->eval_ideal = malloc((size_t)n * D * sizeof(float));
    s->eval_t = malloc((size_t)n * sizeof(float));
    s->eval_cls = malloc((size_t)n * sizeof(int));
    s->eval_view = malloc((size_t)n * sizeof(int));
    s->eval_bin = malloc((size_t)n * sizeof(int));
    float *eps = malloc(D * sizeof(float));
    if (!s->eval_xt || !s->eval_ideal || !s->eval_t || !s->eval_cls || !s->eval_view ||
        !s->eval_bin || !eps) {
        free(eps);
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory for the evaluation set");
    }
    const sl_rng_key tk = { s->seed, PT_EVAL_STEP, PT_STREAM_T, 1 };
    const int width = SL_DIFFUSION_T / PT_T_BINS;
    sl_status st = SL_OK;
    for (int i = 0; i < n && st == SL_OK; i++) {
        pt_draw d = pt_draw_element(s, PT_EVAL_STEP, i);
        const int j = i % PT_T_BINS;
        d.t = (int)sl_rng_int1(tk, (uint64_t)i, 1 + j * width, (j + 1) * width);
        d.dropped = 0;
        float *xt = s->eval_xt + (size_t)i * D;
        pt_make_xt(s, &d, PT_EVAL_STEP, i, xt, eps);
        s->eval_t[i] = (float)d.t;
        s->eval_cls[i] = d.prompt;
        s->eval_view[i] = s->bucket[d.view];
        s->eval_bin[i] = pt_t_bin(d.t);
        const pt_teacher *tc = &s->teachers[d.prompt];
        const sl_prior_query q = { .batch = 1, .x_t = xt, .t = &d.t, .cams = &s->cams[d.view],
                                   .step = 0 };
        const sl_prior_vtable *vt = tc->plugin->vtable;
        float *ideal = s->eval_ideal + (size_t)i * D;
        st = vt->noise_pred(tc->state, &q, ideal, err);
        const double sigma = sl_diffusion_sigma(s->diffusion, d.t);
        double g = 0.0;
        for (size_t k = 0; k < D; k++) {
            const double r = sigma * xt[k] - ideal[k];
            g += r * r;
        }
        s->eval_gauss_err2[s->eval_bin[i]] += g;
    }
    free(eps);
    return st;
}

sl_status pt_setup_create(const char *spec_path, const char *const *overrides,
                          size_t n_overrides, pt_setup *s, sl_error *err)
{
    memset(s, 0, sizeof *s);
    sl_status st = sl_spec_parse_file(spec_path, &s->spec, err);
    for (size_t i = 0; st == SL_OK && i < n_overrides; i++)
        st = sl_spec_override(s->spec, overrides[i], err);
    if (st != SL_OK)
        return st;
    if (s->spec->kind != SL_NODE_MAP)
        return sl_spec_error_at(err, s->spec, "", "expected a map of settings");
    char dir_buf[4096];
    snprintf(dir_buf, sizeof dir_buf, "%s", spec_path);
    snprintf(s->spec_dir, sizeof s->spec_dir, "%s", dirname(dir_buf));
    /* What a resume must find unchanged: everything but the number of steps. */
    sl_node *blank = sl_node_clone(s->spec);
    if (!blank)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    st = sl_spec_override(blank, "train.steps=0", err);
    s->spec_text = st == SL_OK ? sl_node_emit_yaml(blank) : NULL;
    sl_node_free(blank);
    if (st == SL_OK && !s->spec_text)
        st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    static const char *const reserved[] = { "teacher", NULL };
    if (st == SL_OK)
        st = sl_params_resolve(s->spec, "", &root_schema, reserved, &s->root, err);
    if (st != SL_OK)
        return st;
    const sl_params *r = s->root;
    const sl_params *train = sl_params_section(r, "train"), *views = sl_params_section(r, "views");
    const sl_params *ev = sl_params_section(r, "eval"), *out = sl_params_section(r, "out");
    s->name = sl_params_string(r, "name");
    s->seed = (uint64_t)sl_params_int(r, "seed");
    s->steps = sl_params_int(train, "steps");
    s->batch = (int)sl_params_int(train, "batch");
    s->lr = sl_params_float(train, "lr");
    s->warmup = sl_params_int(train, "warmup");
    s->lr_final_ratio = sl_params_float(train, "lr_final");
    s->ema_decay = sl_params_float(train, "ema");
    s->cfg_dropout = sl_params_float(train, "cfg_dropout");
    s->grad_clip = sl_params_float(train, "grad_clip");
    s->eval_every = sl_params_int(ev, "every");
    s->checkpoint_every = sl_params_int(out, "checkpoint_every");
    s->res = (int)sl_params_int(views, "resolution");
    s->dim = (size_t)s->res * s->res * 3;
    s->bandwidth = sl_params_float(views, "bandwidth");
    s->n_prompts = sl_params_list_len(r, "prompts");
    s->prompts = calloc(s->n_prompts, sizeof *s->prompts);
    if (!s->prompts)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < s->n_prompts; k++) {
        s->prompts[k] = sl_params_list_string(r, "prompts", k);
        for (size_t j = 0; j < k; j++)
            if (!strcmp(s->prompts[j], s->prompts[k]))
                return sl_spec_error_at(err, sl_node_get(s->spec, "prompts"), "prompts",
                                        "'%s' appears twice", s->prompts[k]);
    }
    st = read_model(sl_params_section(r, "model"), s->res, (int)s->n_prompts, &s->model,
                    s->spec, err);
    if (st == SL_OK)
        st = make_path(s, out, "weights", ".safetensors", s->weights_path,
                       sizeof s->weights_path, err);
    if (st == SL_OK)
        st = make_path(s, out, "log", ".h5", s->log_path, sizeof s->log_path, err);
    if (st == SL_OK && snprintf(s->ckpt_path, sizeof s->ckpt_path, "%s.ckpt.safetensors",
                                s->log_path) >= (int)sizeof s->ckpt_path)
        st = sl_error_set(err, SL_ERR_SPEC, "out.log: path too long");
    if (st != SL_OK)
        return st;

    /* Plugins: the spec's paths (relative to it), then the usual search path. */
    st = sl_registry_create(&s->registry, err);
    const size_t np = sl_params_list_len(r, "plugin_paths");
    char **paths = calloc(np ? np : 1, sizeof *paths);
    if (!paths)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == SL_OK && i < np; i++) {
        const char *p = sl_params_list_string(r, "plugin_paths", i);
        size_t len = strlen(s->spec_dir) + strlen(p) + 2;
        paths[i] = malloc(len);
        if (!paths[i])
            st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        else if (p[0] == '/')
            snprintf(paths[i], len, "%s", p);
        else
            snprintf(paths[i], len, "%s/%s", s->spec_dir, p);
    }
    if (st == SL_OK)
        st = sl_registry_load_search_path(s->registry, (const char *const *)paths, np, err);
    for (size_t i = 0; i < np; i++)
        free(paths[i]);
    free(paths);
    if (st == SL_OK)
        st = check_rig(s, views, err);
    if (st == SL_OK)
        st = create_teachers(s, views, err);
    if (st == SL_OK)
        st = build_views(s, views, err);
    if (st == SL_OK)
        st = build_eval(s, (int)sl_params_int(ev, "samples"), err);
    return st;
}

void pt_setup_free(pt_setup *s)
{
    for (size_t k = 0; s->teachers && k < s->n_prompts; k++) {
        pt_teacher *tc = &s->teachers[k];
        if (tc->state)
            ((const sl_prior_vtable *)tc->plugin->vtable)->destroy(tc->state);
        sl_params_free(tc->params);
    }
    free(s->teachers);
    sl_registry_destroy(s->registry);
    free(s->prompts);
    sl_params_free(s->root);
    sl_node_free(s->spec);
    free(s->spec_text);
    free(s->cams), free(s->bucket), free(s->views);
    free(s->eval_xt), free(s->eval_ideal), free(s->eval_t), free(s->eval_cls),
        free(s->eval_view), free(s->eval_bin);
    memset(s, 0, sizeof *s);
}

sl_status pt_score_error(const pt_setup *s, const sl_unet *net, sl_unet_ctx *ctx,
                         double err2[PT_T_BINS], double ref2[PT_T_BINS], int n[PT_T_BINS],
                         sl_error *err)
{
    const int B = sl_unet_ctx_batch(ctx);
    const size_t D = s->dim;
    for (int j = 0; j < PT_T_BINS; j++)
        err2[j] = ref2[j] = 0.0, n[j] = 0;
    float *x = malloc((size_t)B * D * sizeof(float)), *e = malloc((size_t)B * D * sizeof(float));
    float *t = malloc((size_t)B * sizeof(float));
    int *cls = malloc((size_t)B * sizeof(int)), *view = malloc((size_t)B * sizeof(int));
    sl_status st = (x && e && t && cls && view) ? SL_OK
                   : sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    for (int i0 = 0; st == SL_OK && i0 < s->n_eval; i0 += B) {
        /* The last chunk is padded with copies of its first sample (ignored). */
        for (int b = 0; b < B; b++) {
            const int i = i0 + b < s->n_eval ? i0 + b : i0;
            memcpy(x + (size_t)b * D, s->eval_xt + (size_t)i * D, D * sizeof(float));
            t[b] = s->eval_t[i];
            cls[b] = s->eval_cls[i];
            view[b] = s->eval_view[i];
        }
        st = sl_unet_forward(net, ctx, e, x, t, cls, view, err);
        for (int b = 0; st == SL_OK && b < B && i0 + b < s->n_eval; b++) {
            const int i = i0 + b, j = s->eval_bin[i];
            const float *ideal = s->eval_ideal + (size_t)i * D, *pred = e + (size_t)b * D;
            double se = 0.0, sr = 0.0;
            for (size_t k = 0; k < D; k++) {
                const double d = (double)pred[k] - ideal[k];
                se += d * d;
                sr += (double)ideal[k] * ideal[k];
            }
            err2[j] += se;
            ref2[j] += sr;
            n[j]++;
        }
    }
    free(x), free(e), free(t), free(cls), free(view);
    return st;
}
