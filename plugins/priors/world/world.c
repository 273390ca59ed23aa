/* plugins/priors/world/world.c — prior `world`: the ideal denoiser of a procedural world
 * (method.md section 5; docs/world.md, "The world prior").
 *
 * The data are the views of the prompt's scene (and, for the unconditional prediction, of
 * every library scene of the same level) on a camera grid, each smoothed by a Gaussian of
 * bandwidth s0. The prior is the exact noise predictor of that data, computed with its own
 * bandwidth s0' (prior_bandwidth) on a subsample of the views (subsample): the two
 * controlled imperfections. Per batch element, with v = alpha^2 s0'^2 + sigma^2:
 *
 *   U = the unconditional set (all views of all scenes of the level, or all of the prompt's)
 *   Y = the conditional set for the query camera: the prompt's views in the camera's view
 *       bucket (bucket), all of them with log kappa_k = -angle(c, c_k)^2 / (2 w^2) in the
 *       softmax (kernel), or all of them (none)
 *   eps = (1 - s) eps_U + s eps_Y      (diffusers' CFG, spelled so that s = 1 is exact)
 *
 * Y is always a subset of U, so one pass over U's images gives every distance.
 *
 * Geometry estimators (extension): the Bayes depth and normals of the estimator posterior
 * (U without weights by default: a monocular estimator does not know the prompt), with
 * their VJPs; predict() keeps the responsibilities that vjp() needs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bank.h"
#include "denoiser.h"
#include "render.h"
#include "scene.h"
#include "steinlab/steinlab.h"
#include "steinlab/surface.h"
#include "surface.h"

enum {
    WORLD_T_BINS = 10,         /* entropy series: t in [100 b, 100 b + 100), t = 1000 in bin 9 */
    WORLD_SERIES_ALL = WORLD_T_BINS
};

typedef enum world_conditioning { WORLD_COND_BUCKET, WORLD_COND_KERNEL, WORLD_COND_NONE } world_conditioning;

/* What a geometry estimator's predict() keeps for its vjp(). */
typedef struct world_geo_cache {
    int valid;
    int batch;
    int cap;                   /* batch capacity of the arrays */
    uint64_t x_sum;            /* checksum of the query's x_t, to catch a mismatched vjp */
    int *t;                    /* (cap,) */
    double *alpha, *v;         /* (cap,) */
    world_set *set;            /* (cap,) the posterior's set per element (idx owned by state) */
    double *r;                 /* (cap, K) responsibilities per element (first set.n used) */
    double *m;                 /* (cap, P, 3) unnormalised mean normals (normal cache only) */
} world_geo_cache;

typedef struct world_state {
    const sl_host *host;
    sl_diffusion diffusion;
    int res;
    world_scene *scenes;         /* (n_scenes,) scene 0 is the prompt's (the truth) */
    size_t n_scenes;
    world_shading shading;
    world_bank bank;             /* every scene's views, concatenated */
    world_work work;
    size_t n_prompt_views;       /* views of scene 0 in the bank (before subsampling) */
    /* sets (views kept by the subsample only) */
    size_t *uncond;              /* (n_uncond,) */
    size_t n_uncond;
    size_t *prompt_views;        /* (n_prompt,) kept views of scene 0 */
    size_t n_prompt;
    size_t *bucket[SL_VIEW_BUCKETS];   /* kept views of scene 0 per bucket (may alias prompt) */
    size_t n_bucket[SL_VIEW_BUCKETS];
    int bucket_fallback[SL_VIEW_BUCKETS];   /* 1: the bucket had no view, uses prompt_views */
    world_conditioning conditioning;
    double kernel_width_deg;
    int estimator_conditional;
    double s0, s0_prior, subsample;
    sl_schedule guidance;
    /* per-call scratch */
    double *logw;                /* (K,) kernel log-weights */
    double *r_u, *r_y;           /* (K,) */
    /* entropy series of the current step */
    int64_t series_step;
    double ent_sum[WORLD_T_BINS + 1];
    double rmax_sum;
    int ent_count[WORLD_T_BINS + 1];
    world_geo_cache geo[2];      /* 0 depth, 1 normal */
    /* counters (logs and tests) */
    int banks_loaded, banks_rendered, banks_rebuilt;
} world_state;

static const sl_param_def world_params[] = {
    { .name = "prompt", .type = SL_PARAM_STRING,
      .doc = "scene of the data, in the prompt grammar of docs/world.md (exactly one of "
             "prompt and scene_file)" },
    { .name = "scene_file", .type = SL_PARAM_STRING,
      .doc = "YAML scene file (docs/world.md), relative to the spec's directory (exactly one "
             "of prompt and scene_file)" },
    { .name = "resolution", .type = SL_PARAM_INT, .default_value = "64", .min = 16, .max = 256,
      .doc = "the prior's image size R (views are R x R)" },
    { .name = "azimuths", .type = SL_PARAM_INT, .default_value = "24", .min = 1, .max = 3600,
      .doc = "bank grid: number of azimuths, evenly spaced from -180 degrees" },
    { .name = "elevations", .type = SL_PARAM_FLOAT_LIST, .default_value = "[-10, 10, 30, 50, 70]",
      .min = -90, .max = 90, .min_len = 1, .max_len = WORLD_GRID_MAX,
      .doc = "bank grid: elevations in degrees (rooms: of the viewing direction)" },
    { .name = "distances", .type = SL_PARAM_FLOAT_LIST, .default_value = "[1.5, 2.0]",
      .min = 0.01, .max = 1e6, .min_len = 1, .max_len = WORLD_GRID_MAX,
      .doc = "bank grid: orbit distances of object-level views (ignored for rooms)" },
    { .name = "fovy", .type = SL_PARAM_FLOAT, .default_value = "55", .min = 1, .max = 179,
      .doc = "bank grid: vertical field of view in degrees" },
    { .name = "conditioning", .type = SL_PARAM_CHOICE, .default_value = "bucket",
      .choices = "bucket|kernel|none",
      .doc = "conditional set: the prompt's views in the camera's view bucket, all of them "
             "weighted by a camera-angle kernel, or all of them" },
    { .name = "kernel_width", .type = SL_PARAM_FLOAT, .default_value = "30", .min = 1e-3,
      .max = 1e6, .doc = "kernel conditioning: width w in degrees of exp(-angle^2 / (2 w^2))" },
    { .name = "unconditional", .type = SL_PARAM_CHOICE, .default_value = "all_scenes",
      .choices = "all_scenes|all_buckets",
      .doc = "unconditional set: every view of every library scene of the prompt's level "
             "plus the prompt's, or every view of the prompt's scene" },
    { .name = "bandwidth", .type = SL_PARAM_FLOAT, .default_value = "0.05", .min = 1e-6,
      .max = 1e3, .doc = "data bandwidth s0: the data are the views smoothed by N(0, s0^2 I)" },
    { .name = "prior_bandwidth", .type = SL_PARAM_FLOAT, .min = 1e-6, .max = 1e3,
      .doc = "the bandwidth s0' the prior's predictions use (default: bandwidth); != s0 is a "
             "controlled imperfection (over- or under-smoothed)" },
    { .name = "subsample", .type = SL_PARAM_FLOAT, .default_value = "1", .min = 1e-6, .max = 1,
      .doc = "fraction of each scene's views the prior knows (chosen from the run's seed); "
             "references use the full scene" },
    { .name = "storage", .type = SL_PARAM_CHOICE, .default_value = "float32",
      .choices = "float32|float16",
      .doc = "bank storage: float16 halves memory and bandwidth (x error <= 2^-11)" },
    { .name = "guidance_scale", .type = SL_PARAM_FLOAT, .flags = SL_PARAM_SCHEDULABLE,
      .default_value = "7.5", .min = 0, .max = INFINITY,
      .doc = "CFG scale s in eps_u + s (eps_y - eps_u) (diffusers' form; 1: no guidance)" },
    { .name = "estimator_posterior", .type = SL_PARAM_CHOICE, .default_value = "unconditional",
      .choices = "unconditional|conditional",
      .doc = "posterior of the depth / normal estimators (extension): the unconditional set, "
             "or the conditional one of the query camera" },
    { .name = "cache", .type = SL_PARAM_BOOL, .default_value = "true",
      .doc = "keep rendered view banks in an HDF5 cache (verified by checksum)" },
    { .name = "cache_dir", .type = SL_PARAM_STRING,
      .doc = "cache directory (default: $STEINLAB_CACHE_DIR, else $XDG_CACHE_HOME/steinlab, "
             "else ~/.cache/steinlab)" },
};

/* ------------------------------------------------------------------ helpers */

static double world_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void world_geo_free(world_geo_cache *g)
{
    free(g->t);
    free(g->alpha);
    free(g->v);
    free(g->set);
    free(g->r);
    free(g->m);
    memset(g, 0, sizeof *g);
}

static void world_destroy(void *state)
{
    world_state *s = state;
    if (!s)
        return;
    for (size_t i = 0; i < s->n_scenes; i++)
        world_scene_free(&s->scenes[i]);
    free(s->scenes);
    world_bank_free(&s->bank);
    world_work_free(&s->work);
    free(s->uncond);
    free(s->prompt_views);
    for (int b = 0; b < SL_VIEW_BUCKETS; b++)
        if (!s->bucket_fallback[b])
            free(s->bucket[b]);
    free(s->logw);
    free(s->r_u);
    free(s->r_y);
    world_geo_free(&s->geo[0]);
    world_geo_free(&s->geo[1]);
    free(s);
}

/* One (uniform, view) pair of the subsample draw. */
typedef struct world_draw {
    double u;
    size_t k;
} world_draw;

static int world_draw_cmp(const void *a, const void *b)
{
    const world_draw *x = a, *y = b;
    if (x->u != y->u)
        return x->u < y->u ? -1 : 1;
    return x->k < y->k ? -1 : (x->k > y->k);
}

static int world_size_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : (x > y);
}

/* The subsample of scene `si`'s views [first, first + n): the m = max(1, round(f n)) views
 * with the smallest uniforms u_k = U(seed, step 0, stream base, sample si, index k), k the
 * view's index within its scene; written ascending to out, returns m. */
static size_t world_subsample(const world_state *s, size_t si, size_t first, size_t n,
                              size_t *out, world_draw *tmp)
{
    const double f = s->subsample;
    size_t m = (size_t)llround(f * (double)n);
    if (m < 1)
        m = 1;
    if (m >= n) {
        for (size_t k = 0; k < n; k++)
            out[k] = first + k;
        return n;
    }
    sl_rng_key key = { .seed = s->host->seed, .step = 0, .stream = s->host->rng_stream_base,
                       .sample = (uint32_t)si };
    for (size_t k = 0; k < n; k++)
        tmp[k] = (world_draw){ sl_rng_uniform1(key, k), k };
    qsort(tmp, n, sizeof *tmp, world_draw_cmp);
    for (size_t j = 0; j < m; j++)
        out[j] = first + tmp[j].k;
    qsort(out, m, sizeof *out, world_size_cmp);
    return m;
}

/* Builds the index sets from the bank and the subsample. */
static sl_status world_build_sets(world_state *s, int all_scenes, sl_error *err)
{
    const size_t K = s->bank.n_views;
    s->uncond = malloc(K * sizeof *s->uncond);
    s->prompt_views = malloc(s->n_prompt_views * sizeof *s->prompt_views);
    world_draw *tmp = malloc(K * sizeof *tmp);
    if (!s->uncond || !s->prompt_views || !tmp) {
        free(tmp);
        return sl_error_set(err, SL_ERR_NOMEM, "world: out of memory");
    }
    /* Scene si occupies a contiguous range of the bank (world_bank_concat). */
    size_t first = 0;
    for (size_t si = 0; si < s->n_scenes; si++) {
        size_t n = 0;
        while (first + n < K && s->bank.scene[first + n] == (int)si)
            n++;
        if (si == 0) {
            s->n_prompt = world_subsample(s, 0, 0, n, s->prompt_views, tmp);
            memcpy(s->uncond, s->prompt_views, s->n_prompt * sizeof *s->uncond);
            s->n_uncond = s->n_prompt;
        } else if (all_scenes) {
            s->n_uncond += world_subsample(s, si, first, n, s->uncond + s->n_uncond, tmp);
        }
        first += n;
    }
    free(tmp);
    /* Buckets of the prompt's kept views. */
    for (int b = 0; b < SL_VIEW_BUCKETS; b++) {
        s->bucket[b] = malloc((s->n_prompt ? s->n_prompt : 1) * sizeof **s->bucket);
        if (!s->bucket[b])
            return sl_error_set(err, SL_ERR_NOMEM, "world: out of memory");
        s->n_bucket[b] = 0;
    }
    for (size_t j = 0; j < s->n_prompt; j++) {
        const size_t k = s->prompt_views[j];
        sl_view_bucket b = sl_camera_bucket(&s->bank.cams[k]);
        s->bucket[b][s->n_bucket[b]++] = k;
    }
    for (int b = 0; b < SL_VIEW_BUCKETS; b++)
        if (s->n_bucket[b] == 0) {
            free(s->bucket[b]);
            s->bucket[b] = s->prompt_views;
            s->n_bucket[b] = s->n_prompt;
            s->bucket_fallback[b] = 1;
        }
    return SL_OK;
}

/* Loads or renders the bank of every scene and concatenates them. */
static sl_status world_build_bank(world_state *s, const world_bank_opts *opts, sl_error *err)
{
    world_bank *parts = calloc(s->n_scenes, sizeof *parts);
    if (!parts)
        return sl_error_set(err, SL_ERR_NOMEM, "world: out of memory");
    sl_status st = SL_OK;
    const double t_all = world_seconds();
    for (size_t i = 0; i < s->n_scenes && st == SL_OK; i++) {
        world_bank_report rep;
        const double t0 = world_seconds();
        st = world_bank_obtain(&s->scenes[i], opts, &parts[i], &rep, err);
        if (st != SL_OK) {
            sl_error_prefix(err, "world: scene '%s'", s->scenes[i].name);
            break;
        }
        const double dt = world_seconds() - t0;
        if (rep.problem[0])
            s->host->log(s->host, SL_LOG_WARN, "world: view bank of '%s': %s",
                         s->scenes[i].name, rep.problem);
        if (rep.source == WORLD_BANK_LOADED) {
            s->banks_loaded++;
            s->host->log(s->host, SL_LOG_INFO, "world: view bank of '%s' (%zu views) loaded "
                         "from %s in %.2f s", s->scenes[i].name, parts[i].n_views, rep.path, dt);
        } else {
            s->banks_rendered++;
            s->banks_rebuilt += rep.source == WORLD_BANK_REBUILT;
            s->host->log(s->host, SL_LOG_INFO, "world: view bank of '%s' (%zu views) %s in "
                         "%.2f s%s%s", s->scenes[i].name, parts[i].n_views,
                         rep.source == WORLD_BANK_REBUILT ? "rebuilt" : "rendered", dt,
                         rep.cache_written ? ", cached to " : "",
                         rep.cache_written ? rep.path : "");
        }
    }
    if (st == SL_OK) {
        s->n_prompt_views = parts[0].n_views;
        st = world_bank_concat(parts, s->n_scenes, &s->bank, err);
    }
    for (size_t i = 0; i < s->n_scenes; i++)
        world_bank_free(&parts[i]);
    free(parts);
    if (st == SL_OK)
        s->host->log(s->host, SL_LOG_INFO, "world: %zu scenes, %zu views at %dx%d (%s, %.1f MiB) "
                     "ready in %.2f s", s->n_scenes, s->bank.n_views, s->res, s->res,
                     s->bank.storage == WORLD_STORE_F16 ? "float16" : "float32",
                     (double)s->bank.n_views *
                         ((double)(2 * s->bank.dim + s->bank.npix) *
                              (s->bank.storage == WORLD_STORE_F16 ? 2 : 4) +
                          (double)s->bank.npix) / 1048576.0,
                     world_seconds() - t_all);
    return st;
}

/* Adds the library scenes of the prompt scene's level (skipping the prompt's own scene). */
static sl_status world_add_library(world_state *s, sl_error *err)
{
    const char *const *prompts = NULL;
    size_t n = s->scenes[0].is_room ? world_library_rooms(&prompts)
                                    : world_library_objects(&prompts);
    world_scene *grown = realloc(s->scenes, (1 + n) * sizeof *grown);
    if (!grown)
        return sl_error_set(err, SL_ERR_NOMEM, "world: out of memory");
    s->scenes = grown;
    char *own = world_scene_canonical(&s->scenes[0]);
    if (!own)
        return sl_error_set(err, SL_ERR_NOMEM, "world: out of memory");
    sl_status st = SL_OK;
    for (size_t i = 0; i < n && st == SL_OK; i++) {
        world_scene sc;
        memset(&sc, 0, sizeof sc);
        st = world_scene_from_prompt(prompts[i], &sc, err);
        if (st != SL_OK) {
            sl_error_prefix(err, "world: library scene '%s'", prompts[i]);
            break;
        }
        char *canon = world_scene_canonical(&sc);
        int same = canon && strcmp(canon, own) == 0;
        free(canon);
        if (same)
            world_scene_free(&sc);
        else
            s->scenes[s->n_scenes++] = sc;
    }
    free(own);
    return st;
}

static sl_status world_create(const sl_host *host, const sl_params *params, void **state,
                              sl_error *err)
{
    world_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "world: out of memory");
    s->host = host;
    s->series_step = -1;
    sl_diffusion_default(&s->diffusion);
    s->res = (int)sl_params_int(params, "resolution");
    s->s0 = sl_params_float(params, "bandwidth");
    s->s0_prior = sl_params_has(params, "prior_bandwidth")
                      ? sl_params_float(params, "prior_bandwidth") : s->s0;
    s->subsample = sl_params_float(params, "subsample");
    s->guidance = sl_params_schedule(params, "guidance_scale");
    s->kernel_width_deg = sl_params_float(params, "kernel_width");
    const char *cond = sl_params_string(params, "conditioning");
    s->conditioning = strcmp(cond, "bucket") == 0 ? WORLD_COND_BUCKET
                      : strcmp(cond, "kernel") == 0 ? WORLD_COND_KERNEL : WORLD_COND_NONE;
    s->estimator_conditional = strcmp(sl_params_string(params, "estimator_posterior"),
                                      "conditional") == 0;
    const int all_scenes = strcmp(sl_params_string(params, "unconditional"), "all_scenes") == 0;
    s->shading = world_shading_default();
    sl_status st = SL_OK;

    /* The scene: exactly one of prompt and scene_file. */
    const int has_prompt = sl_params_has(params, "prompt");
    const int has_file = sl_params_has(params, "scene_file");
    if (has_prompt == has_file) {
        st = sl_error_set(err, SL_ERR_SPEC, "world: give exactly one of 'prompt' and "
                          "'scene_file' (%s)", has_prompt ? "both given" : "neither given");
        goto fail;
    }
    s->scenes = calloc(1, sizeof *s->scenes);
    if (!s->scenes) {
        st = sl_error_set(err, SL_ERR_NOMEM, "world: out of memory");
        goto fail;
    }
    if (has_prompt) {
        st = world_scene_from_prompt(sl_params_string(params, "prompt"), &s->scenes[0], err);
    } else {
        char path[4096];
        st = sl_host_path(host, sl_params_string(params, "scene_file"), path, sizeof path, err);
        if (st == SL_OK)
            st = world_scene_from_file(path, &s->scenes[0], err);
    }
    if (st != SL_OK)
        goto fail;
    s->n_scenes = 1;
    if (all_scenes) {
        st = world_add_library(s, err);
        if (st != SL_OK)
            goto fail;
    }

    /* The bank options. */
    world_bank_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.res = s->res;
    opts.shading = s->shading;
    opts.storage = strcmp(sl_params_string(params, "storage"), "float16") == 0
                       ? WORLD_STORE_F16 : WORLD_STORE_F32;
    opts.grid.azimuths = (int)sl_params_int(params, "azimuths");
    opts.grid.fovy = (float)sl_params_float(params, "fovy");
    opts.grid.n_elevations = (int)sl_params_list_len(params, "elevations");
    for (int i = 0; i < opts.grid.n_elevations; i++)
        opts.grid.elevations[i] = (float)sl_params_list_float(params, "elevations", (size_t)i);
    opts.grid.n_distances = (int)sl_params_list_len(params, "distances");
    for (int i = 0; i < opts.grid.n_distances; i++)
        opts.grid.distances[i] = (float)sl_params_list_float(params, "distances", (size_t)i);
    char cache_dir[WORLD_PATH_MAX];
    if (sl_params_bool(params, "cache")) {
        if (sl_params_has(params, "cache_dir")) {
            st = sl_host_path(host, sl_params_string(params, "cache_dir"), cache_dir,
                              sizeof cache_dir, err);
            if (st != SL_OK)
                goto fail;
            opts.cache_dir = cache_dir;
        } else {
            sl_error why;
            if (world_cache_dir_default(cache_dir, sizeof cache_dir, &why) == SL_OK)
                opts.cache_dir = cache_dir;
            else
                host->log(host, SL_LOG_WARN, "%s; continuing without a cache", why.msg);
        }
    }

    st = world_build_bank(s, &opts, err);
    if (st != SL_OK)
        goto fail;
    st = world_build_sets(s, all_scenes, err);
    if (st != SL_OK)
        goto fail;
    const size_t K = s->bank.n_views;
    st = world_work_init(&s->work, K, s->bank.dim, err);
    if (st != SL_OK)
        goto fail;
    s->logw = malloc(K * sizeof *s->logw);
    s->r_u = malloc(K * sizeof *s->r_u);
    s->r_y = malloc(K * sizeof *s->r_y);
    if (!s->logw || !s->r_u || !s->r_y) {
        st = sl_error_set(err, SL_ERR_NOMEM, "world: out of memory");
        goto fail;
    }
    for (int b = 0; b < SL_VIEW_BUCKETS; b++)
        if (s->conditioning == WORLD_COND_BUCKET && s->bucket_fallback[b])
            host->log(host, SL_LOG_WARN, "world: the grid has no view in bucket '%s'; cameras "
                      "in it condition on all of the prompt's views", sl_view_bucket_name(b));

    /* Series: entropy of the conditional responsibilities per t-bin (posterior collapse). */
    char name[64], doc[256];
    for (int b = 0; b <= WORLD_T_BINS; b++) {
        if (b < WORLD_T_BINS) {
            snprintf(name, sizeof name, "world_entropy_t%d", b);
            snprintf(doc, sizeof doc, "mean entropy (nats) of the world prior's conditional "
                     "responsibilities over the step's draws with t in [%d, %d)", 100 * b,
                     b == WORLD_T_BINS - 1 ? 1001 : 100 * b + 100);
        } else {
            snprintf(name, sizeof name, "world_entropy");
            snprintf(doc, sizeof doc, "mean entropy (nats) of the world prior's conditional "
                     "responsibilities over all of the step's draws");
        }
        st = host->declare_series(host, name, doc, err);
        if (st != SL_OK)
            goto fail;
    }
    st = host->declare_series(host, "world_rmax", "mean largest conditional responsibility "
                              "of the world prior over the step's draws", err);
    if (st != SL_OK)
        goto fail;

    host->log(host, SL_LOG_INFO, "world: prompt scene '%s' (%s), %zu of %zu prompt views and "
              "%zu unconditional views kept (subsample %g), s0 %g, s0' %g, conditioning %s, "
              "unconditional %s", s->scenes[0].name, s->scenes[0].is_room ? "room" : "object",
              s->n_prompt, s->n_prompt_views, s->n_uncond, s->subsample, s->s0, s->s0_prior,
              cond, all_scenes ? "all_scenes" : "all_buckets");
    *state = s;
    return SL_OK;
fail:
    world_destroy(s);
    return st;
}

static void world_info(const void *state, sl_prior_info *info)
{
    const world_state *s = state;
    info->height = s->res;
    info->width = s->res;
    info->channels = 3;
    info->diffusion = &s->diffusion;
    info->guidance_scale = sl_schedule_at(&s->guidance, 0);
}

/* ------------------------------------------------------------------ sets per camera */

/* Forward (viewing) axis of a camera in world space: the third column of rot. */
static void world_forward(const sl_camera *c, double f[3])
{
    f[0] = c->rot[2];
    f[1] = c->rot[5];
    f[2] = c->rot[8];
}

/* The conditional set Y of a query camera; kernel log-weights go to s->logw. */
static world_set world_cond_set(world_state *s, const sl_camera *cam)
{
    world_set y = { .idx = s->prompt_views, .logw = NULL, .n = s->n_prompt };
    if (s->conditioning == WORLD_COND_BUCKET) {
        sl_view_bucket b = sl_camera_bucket(cam);
        y.idx = s->bucket[b];
        y.n = s->n_bucket[b];
    } else if (s->conditioning == WORLD_COND_KERNEL) {
        /* log kappa_k = -angle(c, c_k)^2 / (2 w^2), angle between the viewing directions in
         * degrees (orbit cameras: the angle between the eye directions; the distance does
         * not enter). */
        double fq[3], fk[3];
        world_forward(cam, fq);
        const double w = s->kernel_width_deg;
        for (size_t j = 0; j < s->n_prompt; j++) {
            world_forward(&s->bank.cams[s->prompt_views[j]], fk);
            double c = fq[0] * fk[0] + fq[1] * fk[1] + fq[2] * fk[2];
            c = c > 1.0 ? 1.0 : (c < -1.0 ? -1.0 : c);
            const double ang = acos(c) * (180.0 / M_PI);
            s->logw[j] = -ang * ang / (2.0 * w * w);
        }
        y.logw = s->logw;
    }
    return y;
}

static world_set world_uncond_set(const world_state *s)
{
    return (world_set){ .idx = s->uncond, .logw = NULL, .n = s->n_uncond };
}

static sl_status world_check_query(const world_state *s, const sl_prior_query *q, sl_error *err)
{
    if (q->batch < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "world: batch %d", q->batch);
    for (int b = 0; b < q->batch; b++)
        if (q->t[b] < 1 || q->t[b] > s->diffusion.T)
            return sl_error_set(err, SL_ERR_INVALID_ARG, "world: t[%d] = %d is outside [1, %d]",
                                b, q->t[b], s->diffusion.T);
    return SL_OK;
}

/* ------------------------------------------------------------------ noise prediction */

static void world_series_add(world_state *s, int64_t step, int t, double entropy, double rmax)
{
    if (step != s->series_step) {
        s->series_step = step;
        memset(s->ent_sum, 0, sizeof s->ent_sum);
        memset(s->ent_count, 0, sizeof s->ent_count);
        s->rmax_sum = 0.0;
    }
    int bin = t / 100;
    bin = bin >= WORLD_T_BINS ? WORLD_T_BINS - 1 : bin;
    s->ent_sum[bin] += entropy;
    s->ent_count[bin]++;
    s->ent_sum[WORLD_SERIES_ALL] += entropy;
    s->ent_count[WORLD_SERIES_ALL]++;
    s->rmax_sum += rmax;
}

static void world_series_record(const world_state *s)
{
    char name[64];
    for (int b = 0; b < WORLD_T_BINS; b++)
        if (s->ent_count[b] > 0) {
            snprintf(name, sizeof name, "world_entropy_t%d", b);
            s->host->record(s->host, name, s->ent_sum[b] / s->ent_count[b]);
        }
    const int n = s->ent_count[WORLD_SERIES_ALL];
    if (n > 0) {
        s->host->record(s->host, "world_entropy", s->ent_sum[WORLD_SERIES_ALL] / n);
        s->host->record(s->host, "world_rmax", s->rmax_sum / n);
    }
}

static sl_status world_noise_pred(void *state, const sl_prior_query *q, float *eps_hat,
                                  sl_error *err)
{
    world_state *s = state;
    sl_status st = world_check_query(s, q, err);
    if (st != SL_OK)
        return st;
    const double gs = sl_schedule_at(&s->guidance, q->step);
    const size_t D = s->bank.dim;
    const world_set u = world_uncond_set(s);
    for (int b = 0; b < q->batch; b++) {
        const double alpha = sl_diffusion_alpha(&s->diffusion, q->t[b]);
        const double sigma = sl_diffusion_sigma(&s->diffusion, q->t[b]);
        const double v = alpha * alpha * s->s0_prior * s->s0_prior + sigma * sigma;
        const float *x = q->x_t + (size_t)b * D;   /* (R, R, 3) */
        /* Y is a subset of U: one pass over U's images gives every distance. */
        world_dist2(&s->bank, u.idx, u.n, x, alpha, s->work.d2);
        const world_set y = world_cond_set(s, &q->cams[b]);
        world_responsibilities(s->work.d2, &u, v, s->r_u, NULL, NULL);
        double rmax = 0.0;
        const double h = world_responsibilities(s->work.d2, &y, v, s->r_y, NULL, &rmax);
        world_series_add(s, q->step, q->t[b], h, rmax);
        world_eps(&s->bank, &s->work, x, alpha, sigma, v, &u, s->r_u, &y, s->r_y, gs,
                  eps_hat + (size_t)b * D);
    }
    world_series_record(s);
    return SL_OK;
}

/* ------------------------------------------------------------------ ground truth */

static sl_status world_check_camera(const sl_camera *cam, sl_error *err)
{
    if (cam->width < 1 || cam->height < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "world: camera size %dx%d", cam->width,
                            cam->height);
    return SL_OK;
}

static sl_status world_reference(void *state, const sl_camera *cam, float *rgb, sl_error *err)
{
    world_state *s = state;
    sl_status st = world_check_camera(cam, err);
    if (st != SL_OK)
        return st;
    world_view view = { .rgb = rgb };
    world_render(&s->scenes[0], &s->shading, cam, &view);
    return SL_OK;
}

static sl_status world_reference_geometry(void *state, const sl_camera *cam, float *depth,
                                          float *normal, float *mask, sl_error *err)
{
    world_state *s = state;
    sl_status st = world_check_camera(cam, err);
    if (st != SL_OK)
        return st;
    world_view view = { .depth = depth, .normal = normal, .mask = mask };
    world_render(&s->scenes[0], &s->shading, cam, &view);
    return SL_OK;
}

/* ------------------------------------------------------------------ geometry estimators */

static sl_status world_geo_reserve(world_state *s, world_geo_cache *g, int batch, int normals,
                                   sl_error *err)
{
    if (batch <= g->cap)
        return SL_OK;
    world_geo_free(g);
    const size_t B = (size_t)batch, K = s->bank.n_views;
    g->t = malloc(B * sizeof *g->t);
    g->alpha = malloc(B * sizeof *g->alpha);
    g->v = malloc(B * sizeof *g->v);
    g->set = malloc(B * sizeof *g->set);
    g->r = malloc(B * K * sizeof *g->r);
    g->m = normals ? malloc(B * s->bank.dim * sizeof *g->m) : NULL;
    if (!g->t || !g->alpha || !g->v || !g->set || !g->r || (normals && !g->m)) {
        world_geo_free(g);
        return sl_error_set(err, SL_ERR_NOMEM, "world: out of memory (estimator, batch %d)",
                            batch);
    }
    g->cap = batch;
    return SL_OK;
}

/* The posterior of the geometry estimators for one element: its set (kernel weights
 * included for the conditional posterior) and responsibilities. */
static void world_geo_posterior(world_state *s, world_geo_cache *g, const sl_prior_query *q,
                                int b)
{
    const size_t K = s->bank.n_views, D = s->bank.dim;
    const double alpha = sl_diffusion_alpha(&s->diffusion, q->t[b]);
    const double sigma = sl_diffusion_sigma(&s->diffusion, q->t[b]);
    const double v = alpha * alpha * s->s0_prior * s->s0_prior + sigma * sigma;
    world_set set = s->estimator_conditional ? world_cond_set(s, &q->cams[b])
                                             : world_uncond_set(s);
    world_dist2(&s->bank, set.idx, set.n, q->x_t + (size_t)b * D, alpha, s->work.d2);
    world_responsibilities(s->work.d2, &set, v, g->r + (size_t)b * K, NULL, NULL);
    set.logw = NULL;   /* folded into r; the buffer is reused by the next query */
    g->set[b] = set;
    g->t[b] = q->t[b];
    g->alpha[b] = alpha;
    g->v[b] = v;
}

static sl_status world_geo_predict(world_state *s, int which, const sl_prior_query *q,
                                   float *out, sl_error *err)
{
    sl_status st = world_check_query(s, q, err);
    if (st == SL_OK)
        st = world_geo_reserve(s, &s->geo[which], q->batch, which == 1, err);
    if (st != SL_OK)
        return st;
    world_geo_cache *g = &s->geo[which];
    const size_t K = s->bank.n_views, P = s->bank.npix;
    for (int b = 0; b < q->batch; b++) {
        world_geo_posterior(s, g, q, b);
        if (which == 0)
            world_depth_predict(&s->bank, &s->work, &g->set[b], g->r + (size_t)b * K,
                                out + (size_t)b * P);
        else
            world_normal_predict(&s->bank, &s->work, &g->set[b], g->r + (size_t)b * K,
                                 out + (size_t)b * 3 * P, g->m + (size_t)b * 3 * P);
    }
    g->batch = q->batch;
    g->x_sum = world_checksum(q->x_t, (size_t)q->batch * s->bank.dim * sizeof(float));
    g->valid = 1;
    return SL_OK;
}

static sl_status world_geo_vjp(world_state *s, int which, const sl_prior_query *q,
                               const float *d_out, float *d_x_t, sl_error *err)
{
    world_geo_cache *g = &s->geo[which];
    int same = g->valid && q->batch == g->batch;
    for (int b = 0; same && b < q->batch; b++)
        same = q->t[b] == g->t[b];
    if (same)
        same = world_checksum(q->x_t, (size_t)q->batch * s->bank.dim * sizeof(float)) ==
               g->x_sum;
    if (!same)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "world: %s estimator vjp() must follow "
                            "predict() with the same query", which == 0 ? "depth" : "normal");
    const size_t K = s->bank.n_views, P = s->bank.npix, D = s->bank.dim;
    for (int b = 0; b < q->batch; b++) {
        if (which == 0)
            world_depth_vjp(&s->bank, &s->work, &g->set[b], g->r + (size_t)b * K, g->alpha[b],
                            g->v[b], d_out + (size_t)b * P, d_x_t + (size_t)b * D);
        else
            world_normal_vjp(&s->bank, &s->work, &g->set[b], g->r + (size_t)b * K,
                             g->alpha[b], g->v[b], g->m + (size_t)b * 3 * P,
                             d_out + (size_t)b * 3 * P, d_x_t + (size_t)b * D);
    }
    return SL_OK;
}

static sl_status world_depth_ext_predict(void *st, const sl_prior_query *q, float *out,
                                         sl_error *err)
{
    return world_geo_predict(st, 0, q, out, err);
}

static sl_status world_depth_ext_vjp(void *st, const sl_prior_query *q, const float *d_out,
                                     float *d_x_t, sl_error *err)
{
    return world_geo_vjp(st, 0, q, d_out, d_x_t, err);
}

static sl_status world_normal_ext_predict(void *st, const sl_prior_query *q, float *out,
                                          sl_error *err)
{
    return world_geo_predict(st, 1, q, out, err);
}

static sl_status world_normal_ext_vjp(void *st, const sl_prior_query *q, const float *d_out,
                                      float *d_x_t, sl_error *err)
{
    return world_geo_vjp(st, 1, q, d_out, d_x_t, err);
}

static const sl_geometry_estimator world_depth_ext = {
    .struct_size = sizeof(sl_geometry_estimator),
    .output = SL_GEOMETRY_Z_DEPTH,
    .channels = 1,
    .predict = world_depth_ext_predict,
    .vjp = world_depth_ext_vjp,
};

static const sl_geometry_estimator world_normal_ext = {
    .struct_size = sizeof(sl_geometry_estimator),
    .output = SL_GEOMETRY_WORLD_NORMALS,
    .channels = 3,
    .predict = world_normal_ext_predict,
    .vjp = world_normal_ext_vjp,
};

/* Ground truth for the Chamfer metric: the prompt's scene (scene 0), on the plugin's stream
 * base + 1 (the base itself draws the subsample). */
static sl_status world_surface_ext_sample(void *state, size_t n, uint64_t seed, float *points,
                                          sl_error *err)
{
    world_state *s = state;
    sl_rng_key key = { seed, 0, s->host->rng_stream_base + 1, 0 };
    return world_surface_sample(&s->scenes[0], n, key, points, err);
}

static const sl_surface_sampler world_surface_ext = {
    .struct_size = sizeof(sl_surface_sampler),
    .sample = world_surface_ext_sample,
};

static const void *world_extension(void *state, const char *uri)
{
    if (strcmp(uri, SL_EXT_SURFACE_SAMPLER) == 0)
        return &world_surface_ext;
    if (strcmp(uri, SL_EXT_DEPTH_ESTIMATOR) == 0)
        return &world_depth_ext;
    if (strcmp(uri, SL_EXT_NORMAL_ESTIMATOR) == 0)
        return &world_normal_ext;
    return NULL;
}

/* Bytes the prior will hold, estimated before create(): the view banks of every scene it
 * loads (RGB, depth, normals in the chosen storage, mask, camera and scene index per view),
 * counted twice because the per-scene banks and their concatenation coexist while the bank
 * is built, plus the denoiser's scratch. The scene's level (room or object) comes from the
 * prompt; a scene file is counted as an object, whose grid (with its distances) is the
 * larger one. Library scenes are all counted, also the one equal to the prompt's. */
static uint64_t world_memory_bytes(const sl_params *params)
{
    int is_room = 0;
    if (sl_params_has(params, "prompt")) {
        world_scene sc;
        memset(&sc, 0, sizeof sc);
        sl_error ignored;
        if (world_scene_from_prompt(sl_params_string(params, "prompt"), &sc, &ignored) == SL_OK)
            is_room = sc.is_room;
        world_scene_free(&sc);
    }
    size_t n_scenes = 1;
    if (strcmp(sl_params_string(params, "unconditional"), "all_scenes") == 0) {
        const char *const *prompts = NULL;
        n_scenes += is_room ? world_library_rooms(&prompts) : world_library_objects(&prompts);
    }
    const uint64_t A = (uint64_t)sl_params_int(params, "azimuths");
    const uint64_t E = sl_params_list_len(params, "elevations");
    const uint64_t Dn = is_room ? 1 : sl_params_list_len(params, "distances");
    const uint64_t views = (uint64_t)n_scenes * A * E * Dn;
    const uint64_t R = (uint64_t)sl_params_int(params, "resolution");
    const uint64_t elem = strcmp(sl_params_string(params, "storage"), "float16") == 0 ? 2 : 4;
    const uint64_t per_view = R * R * (3 + 1 + 3) * elem + R * R + sizeof(sl_camera) +
                              sizeof(int);
    const uint64_t scratch = views * (6 * sizeof(double) + sizeof(size_t)) +
                             R * R * 3 * 3 * sizeof(double);
    return 2 * views * per_view + scratch;
}

static const sl_prior_vtable world_vtable = {
    .struct_size = sizeof(sl_prior_vtable),
    .create = world_create,
    .destroy = world_destroy,
    .info = world_info,
    .noise_pred = world_noise_pred,
    .reference = world_reference,
    .extension = world_extension,
    .reference_geometry = world_reference_geometry,
    .memory_bytes = world_memory_bytes,
};

static const sl_plugin world_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_PRIOR,
    .name = "world",
    .version = "1.0.0",
    .summary = "Ideal denoiser of a procedural world's view bank (exact scores, ground truth, "
               "Bayes depth and normal estimators), with classifier-free guidance",
    .params = SL_PARAM_SCHEMA(world_params),
    .vtable = &world_vtable,
};

SL_PLUGIN_ENTRY(&world_plugin)
