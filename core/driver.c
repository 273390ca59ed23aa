/* core/driver.c — see driver.h. The run has three phases:
 *   1. validate: parse the spec, apply overrides, resolve every section against its
 *      schema, create the plugins and check what they need from each other;
 *   2. define the log: attributes, series (the core's and those plugins declared in
 *      create()), render datasets; then start SWMR;
 *   3. the step loop (run_step), evaluations and renders, checkpoints, and the final
 *      summary.
 * A resumed run (opt->resume_path) takes its spec from the log, loads the checkpoint's
 * state after creating the plugins, reopens the log instead of defining it, cuts it back to
 * the checkpoint, and enters the loop where the checkpoint left it. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blas_cpu.h"
#include "camera_sampler.h"
#include "checkpoint.h"
#include "driver.h"
#include "host.h"
#include "loader.h"
#include "log.h"
#include "probe.h"
#include "progress.h"
#include "sections.h"
#include "sl_build_config.h"
#include "sl_git_describe.h"
#include "spec.h"
#include "strbuf.h"
#include "sweep.h"

#include "steinlab/image.h"
#include "steinlab/mesh.h"
#include "steinlab/metrics.h"
#include "steinlab/plugin.h"
#include "steinlab/surface.h"
#include "steinlab/version.h"

/* ------------------------------------------------------------------ run state */

typedef struct run run;

typedef struct instance instance;

/* An estimator's own probe diagnostics (sl_estimator_vtable.probe_stats): its values and
 * their columns in /probes/<label>. */
enum { PROBE_STATS_MAX = 64 };
typedef struct probe_extra {
    sl_probe_stat stats[PROBE_STATS_MAX];
    int cols[PROBE_STATS_MAX];
    size_t n;
} probe_extra;

/* The baselines created from one PLUGIN_LIST parameter of an instance. */
typedef struct baseline_set {
    const char *param;            /* the parameter's name in the owner's schema */
    size_t n;
    instance **insts;             /* (n,) */
    sl_baseline_ref *refs;        /* (n,) what host->baselines() hands out */
} baseline_set;

struct instance {
    const char *section;          /* "prior", "representation", "estimator", or the dotted
                                     key of a baseline entry ("estimator.baselines[1]") */
    char section_buf[96];         /* storage of `section` for baselines */
    const sl_plugin *desc;
    const char *lib_path;
    char label[160];              /* baselines: "<owner label>/<entry label>"; probes: "probe/<label>" */
    sl_params *params;
    sl_host host;
    run *owner;
    void *state;                  /* NULL until created */
    baseline_set *sets;           /* (n_sets,) this instance's baselines */
    size_t n_sets;
};

typedef struct series_decl {
    char *name;
    char *doc;
    const instance *owner;        /* NULL: the core */
    int col;                      /* column in /steps once the log exists */
    int warned;
} series_decl;

struct run {
    const sl_run_options *opt;
    FILE *out;
    sl_node *spec;
    char spec_dir[PATH_MAX];
    sl_params *root, *cameras, *optimizer, *est_core, *logp;
    sl_params **group_params;      /* (n_groups,) optimizer.groups.<name>, NULL if absent */
    sl_registry *registry;
    instance prior, repr, est;
    instance **baselines;          /* (n_baselines,) every baseline instance, creation order */
    size_t n_baselines;

    /* Variance probes (log.probes): estimators probed on common draws every probe_every
     * steps; n_probe_own instances are shadow-trained copies created for the probe list. */
    int64_t probe_every;
    int probe_samples, probe_drawn, probe_par;
    instance **probe_ests;         /* (n_probes,) the run's estimator or own instances */
    char (*probe_labels)[80];      /* (n_probes,) table names under /probes */
    size_t n_probes;
    int probe_owns;                /* the instances are the probe's own (else: &r->est) */
    sl_log_table **probe_tables;   /* (n_probes,) */
    int (*probe_cols)[4];          /* (n_probes, 4) step, var_img, var_par, mean_norm2 */
    probe_extra *probe_extras;     /* (n_probes,) the estimators' own probe_stats columns */
    int64_t *resume_probe_rows;    /* (n_probes,) */
    float *shadow_delta;           /* (B, P, P, C) scratch for shadow training */
    sl_prior_ref prior_ref;
    sl_prior_info pinfo;
    sl_diffusion diffusion;
    sl_camera_sampler cams;
    sl_weighting weighting;
    uint32_t repr_outputs;         /* SL_RENDER_* the representation renders (EVAL renders) */
    uint32_t train_outputs;        /* the subset TRAIN renders ask for (train_outputs()) */

    series_decl *series;
    size_t n_series, cap_series;
    int defining;                  /* plugins may declare series */

    sl_param_group *groups;
    size_t n_groups;
    sl_adam *adam;

    sl_log *log;
    sl_log_table *steps_table, *eval_table;
    int col_step, col_loss, col_grad_norm, col_t, col_lr, col_time, col_var_adam, col_var_img;
    int col_eval_step, col_eval_time, col_eval_psnr, col_eval_ssim, col_eval_depth, col_eval_iou;
    int has_reference;             /* the prior has ground-truth RGB */
    int has_geometry;              /* ... and ground-truth depth and mask */
    char log_path[PATH_MAX];

    /* Buffers; shapes with B = batch, R = render size, P = prior size, C = prior channels,
     * S = noise samples, V = eval views. */
    int batch, samples;
    size_t render_px;              /* B R R */
    size_t prior_elems;            /* B P P C */
    sl_render render;              /* outputs (B, R, R, ...) */
    sl_render render_grad;         /* dL/d outputs; only rgb is set */
    sl_camera *step_cams;          /* (B,) */
    float *x0;                     /* (B, P, P, C) */
    float *eps, *x_t, *eps_hat;    /* (S, B, P, P, C) */
    float *g;                      /* (S, B, P, P, C) w(t) Delta per sample */
    float *dL_dx0;                 /* (B, P, P, C) */
    float *rgb_scratch;            /* (B, R, R, 3) */
    int *t;                        /* (S, B) */
    double *alpha, *sigma;         /* (S, B) */
    double *weight;                /* (S, B) w(t) */
    sl_estimator_ctx *ctxs;        /* (S,) */
    const sl_estimator_ctx **ctx_ptrs;   /* (S,) */
    sl_camera *eval_cams;          /* (V,) */
    sl_render eval_render;         /* (V, R, R, ...) */
    float *reference;              /* (V, R, R, 3) ground truth, when the prior has it */
    float *ref_depth, *ref_mask;   /* (V, R, R) ground-truth z-depth and mask */
    float *eval_depth, *eval_mask; /* (V, R, R) render depth (sum w z / opacity) and mask */
    uint8_t *render_u8;            /* (V, R, R, 3) */

    /* Summary figures (saved in checkpoints: the final paragraph covers the whole run). */
    double first_loss, last_loss, first_psnr, last_psnr;
    int64_t first_psnr_step, last_psnr_step, renders_logged;

    /* Checkpoints and resume. */
    char ckpt_path[PATH_MAX];      /* beside the log: RUN.h5 -> RUN.ckpt.h5 */
    char abs_spec_dir[PATH_MAX];   /* spec_dir made absolute, saved for a resume elsewhere */
    int spec_from_file;            /* the spec was read from a file (not a checkpoint) */
    sl_ckpt *resume;               /* the checkpoint resumed from, open during setup only */
    int resuming;
    int64_t resume_done;           /* steps done at the checkpoint */
    double resume_elapsed;         /* the time_s clock at the checkpoint */
    int64_t resume_rows_steps, resume_rows_eval, resume_renders;

    /* The final mesh (log.mesh_resolution > 0 and a representation with sample_field) and
     * its Chamfer distance to the prior's surface (when it has SL_EXT_SURFACE_SAMPLER). */
    int mesh_enabled;
    const sl_surface_sampler *surface;
    int col_eval_chamfer, col_eval_chamfer_pt, col_eval_chamfer_tp;
    int mesh_done;                 /* extracted in this process */
    size_t mesh_vertices, mesh_faces;
    double mesh_chamfer;
};

static volatile sig_atomic_t g_stop_requested = 0;

static void on_signal(int sig)
{
    g_stop_requested = 1;
    /* A second signal ends the process at once (default action). */
    signal(sig, SIG_DFL);
}

/* ------------------------------------------------------------------ host services */


static sl_status add_series(run *r, const char *name, const char *doc, const instance *owner,
                            sl_error *err)
{
    if (!sl_valid_name(name))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "invalid series name '%s' (expected "
                            "[a-z0-9_]+)", name ? name : "(null)");
    for (size_t i = 0; i < r->n_series; i++)
        if (!strcmp(r->series[i].name, name))
            return sl_error_set(err, SL_ERR_INVALID_ARG, "series '%s' is already declared by %s",
                                name, r->series[i].owner ? r->series[i].owner->label : "the core");
    if (r->n_series == r->cap_series) {
        size_t cap = r->cap_series ? 2 * r->cap_series : 32;
        series_decl *s = realloc(r->series, cap * sizeof *s);
        if (!s)
            return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        r->series = s;
        r->cap_series = cap;
    }
    series_decl *s = &r->series[r->n_series];
    *s = (series_decl){ strdup(name), strdup(doc ? doc : ""), owner, -1, 0 };
    if (!s->name || !s->doc) {
        free(s->name);
        free(s->doc);
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    }
    r->n_series++;
    return SL_OK;
}

static sl_status host_declare_series(const sl_host *h, const char *name, const char *doc,
                                     sl_error *err)
{
    instance *inst = h->host_ctx;
    if (!inst->owner->defining)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "series '%s' declared after create(): the log is append-only "
                            "once the run starts (HDF5 SWMR)", name ? name : "(null)");
    return add_series(inst->owner, name, doc, inst, err);
}

static void host_record(const sl_host *h, const char *name, double value)
{
    instance *inst = h->host_ctx;
    run *r = inst->owner;
    for (size_t i = 0; i < r->n_series; i++) {
        series_decl *s = &r->series[i];
        if (strcmp(s->name, name) != 0)
            continue;
        if (s->col >= 0 && r->steps_table)
            sl_log_table_set(r->steps_table, s->col, value);
        return;
    }
    /* Unknown: warn once per instance (cheaply: the first unknown name only). */
    static __thread const instance *warned_for = NULL;
    if (warned_for != inst) {
        warned_for = inst;
        sl_host_stderr_log(h, SL_LOG_WARN, "record('%s'): no such series was declared; ignored", name);
    }
}

static const sl_prior_ref *host_prior(const sl_host *h)
{
    instance *inst = h->host_ctx;
    run *r = inst->owner;
    if (inst == &r->prior || !r->prior.state)
        return NULL;
    return &r->prior_ref;
}

static size_t host_baselines(const sl_host *h, const char *param, const sl_baseline_ref **out)
{
    instance *inst = h->host_ctx;
    *out = NULL;
    for (size_t k = 0; param && k < inst->n_sets; k++) {
        if (strcmp(inst->sets[k].param, param) == 0) {
            *out = inst->sets[k].refs;
            return inst->sets[k].n;
        }
    }
    return 0;
}

/* Densification and the like: the optimizer's moments follow the new layout and the host's
 * copy of the group points at the new arrays (sl_adam_remap documents the moments). */
static sl_status host_remap_group(const sl_host *h, const char *group, const int64_t *src,
                                  size_t new_n, float *new_data, float *new_grad, sl_error *err)
{
    instance *inst = h->host_ctx;
    run *r = inst->owner;
    if (inst != &r->repr)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "remap_group('%s'): only the "
                            "representation may resize its parameter groups", group);
    if (!r->adam)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "remap_group('%s'): called before the "
                            "optimizer exists (resize in load_state instead)", group);
    for (size_t g = 0; g < r->n_groups; g++) {
        if (strcmp(r->groups[g].name, group) != 0)
            continue;
        sl_status st = sl_adam_remap(r->adam, g, src, new_n, new_data, new_grad, err);
        if (st == SL_OK) {
            r->groups[g].data = new_data;
            r->groups[g].grad = new_grad;
            r->groups[g].n = new_n;
        }
        return st;
    }
    return sl_error_set(err, SL_ERR_INVALID_ARG, "remap_group: no parameter group '%s'", group);
}

static void init_host(run *r, instance *inst, uint32_t stream_base)
{
    inst->owner = r;
    inst->host = (sl_host){
        .struct_size = sizeof(sl_host),
        .abi_version = SL_ABI_VERSION,
        .label = inst->label,
        .seed = (uint64_t)sl_params_int(r->root, "seed"),
        .rng_stream_base = stream_base,
        .host_ctx = inst,
        .log = sl_host_stderr_log,
        .alloc = sl_host_aligned_alloc,
        .free_mem = sl_host_aligned_free,
        .declare_series = host_declare_series,
        .record = host_record,
        .prior = host_prior,
        .diffusion = inst == &r->prior ? NULL : &r->diffusion,
        .spec_dir = r->spec_dir,
        .baselines = host_baselines,
        .remap_group = host_remap_group,
    };
}

/* ------------------------------------------------------------------ validation */

static const char *const plugin_section_keys[] = { "plugin", "label", NULL };

static const char *article(sl_plugin_kind kind)
{
    return kind == SL_KIND_ESTIMATOR ? "an" : "a";
}

/* The error for a plugin name that is not a plugin of `kind`: the plugins of that kind, and
 * either the kind the name has or the nearest name. */
static sl_status wrong_plugin_error(const run *r, sl_plugin_kind kind, const sl_node *name,
                                    const char *key, sl_error *err)
{
    const char *cands[256];
    size_t n = 0;
    char list[1024] = "";
    size_t len = 0;
    for (size_t i = 0; i < sl_registry_count(r->registry) && n < 256; i++) {
        const sl_plugin *d = sl_registry_at(r->registry, i, NULL);
        if (d->kind != kind)
            continue;
        cands[n++] = d->name;
        len += (size_t)snprintf(list + len, len < sizeof list ? sizeof list - len : 0,
                                "%s%s", n > 1 ? ", " : "", d->name);
    }
    const char *near = sl_nearest_word(name->text, cands, n);
    char hint[160] = "";
    if (near)
        snprintf(hint, sizeof hint, "; did you mean '%s'?", near);
    const sl_plugin *other = sl_registry_find(r->registry, 0, name->text, NULL);
    if (other)
        return sl_spec_error_at(err, name, key, "expected %s %s plugin (one of: %s), found "
                                "'%s', which is %s %s plugin", article(kind),
                                sl_plugin_kind_name(kind), list, name->text,
                                article(other->kind), sl_plugin_kind_name(other->kind));
    return sl_spec_error_at(err, name, key, "expected %s %s plugin (one of: %s), found "
                            "unknown plugin '%s'%s", article(kind), sl_plugin_kind_name(kind),
                            n ? list : "none installed", name->text, hint);
}

static sl_status find_plugin(run *r, const char *section, sl_plugin_kind kind, instance *inst,
                             sl_error *err)
{
    const sl_node *node = sl_node_get(r->spec, section);
    inst->section = section;
    if (!node)
        return sl_spec_error_at(err, r->spec, section,
                                "missing required section (expected a map with 'plugin:')");
    if (node->kind != SL_NODE_MAP)
        return sl_spec_error_at(err, node, section, "expected a map with 'plugin:', found %s",
                                node->kind == SL_NODE_SEQ ? "a list" : "a scalar");
    const sl_node *name = sl_node_get(node, "plugin");
    char key[64];
    snprintf(key, sizeof key, "%s.plugin", section);
    if (!name)
        return sl_spec_error_at(err, node, key, "missing required key (expected the name of "
                                "%s %s plugin)", article(kind), sl_plugin_kind_name(kind));
    if (name->kind != SL_NODE_SCALAR)
        return sl_spec_error_at(err, name, key, "expected a plugin name, found a %s",
                                name->kind == SL_NODE_SEQ ? "list" : "map");
    inst->desc = sl_registry_find(r->registry, kind, name->text, &inst->lib_path);
    if (!inst->desc)
        return wrong_plugin_error(r, kind, name, key, err);
    const sl_node *label = sl_node_get(node, "label");
    if (label) {
        snprintf(key, sizeof key, "%s.label", section);
        if (label->kind != SL_NODE_SCALAR || !sl_valid_name(label->text))
            return sl_spec_error_at(err, label, key, "expected a label of [a-z0-9_]+, found %s",
                                    label->kind == SL_NODE_SCALAR ? label->text : "a collection");
        snprintf(inst->label, sizeof inst->label, "%s", label->text);
    } else {
        snprintf(inst->label, sizeof inst->label, "%s", inst->desc->name);
    }
    return SL_OK;
}

/* The estimator section holds the plugin's keys and the core's: each is resolved with the
 * other's names reserved, so an unknown key is reported once, with suggestions from both. */
static sl_status resolve_estimator(run *r, sl_error *err)
{
    const sl_node *node = sl_node_get(r->spec, "estimator");
    const sl_param_schema *ps = &r->est.desc->params;
    const sl_param_schema *cs = &sl_schema_estimator_core;
    size_t n = ps->count + cs->count + 3;
    const char **reserved = calloc(n, sizeof *reserved);
    if (!reserved)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    size_t k = 0;
    reserved[k++] = "plugin";
    reserved[k++] = "label";
    for (size_t i = 0; i < cs->count; i++)
        reserved[k++] = cs->defs[i].name;
    reserved[k] = NULL;
    sl_status st = sl_params_resolve(node, "estimator", ps, reserved, &r->est.params, err);
    if (st == SL_OK) {
        k = 2;
        for (size_t i = 0; i < ps->count; i++)
            reserved[k++] = ps->defs[i].name;
        reserved[k] = NULL;
        st = sl_params_resolve(node, "estimator", cs, reserved, &r->est_core, err);
    }
    free(reserved);
    return st;
}

static sl_status resolve_plugin_section(run *r, instance *inst, sl_error *err)
{
    return sl_params_resolve(sl_node_get(r->spec, inst->section), inst->section,
                             &inst->desc->params, plugin_section_keys, &inst->params, err);
}

static sl_status check_section_is_map(run *r, const char *key, sl_error *err)
{
    const sl_node *n = sl_node_get(r->spec, key);
    if (n && n->kind != SL_NODE_MAP)
        return sl_spec_error_at(err, n, key, "expected a map, found %s",
                                n->kind == SL_NODE_SEQ ? "a list" : "a scalar");
    return SL_OK;
}

/* The root key paths_relative_to moves the directory relative paths start from (a spec
 * read from a file only: a resumed or exported run has its directory from the checkpoint,
 * where this key was already applied). */
static sl_status apply_paths_relative_to(run *r, sl_error *err)
{
    if (!r->spec_from_file || !sl_params_has(r->root, "paths_relative_to"))
        return SL_OK;
    const char *to = sl_params_string(r->root, "paths_relative_to");
    char dir[PATH_MAX];
    const sl_host base = { .spec_dir = r->spec_dir };
    sl_status st = sl_host_path(&base, to, dir, sizeof dir, err);
    if (st != SL_OK)
        return st;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return sl_spec_error_at(err, sl_node_get(r->spec, "paths_relative_to"),
                                "paths_relative_to", "expected an existing directory, found "
                                "'%s' (%s)", dir, stat(dir, &sb) != 0 ? strerror(errno)
                                                                      : "not a directory");
    snprintf(r->spec_dir, sizeof r->spec_dir, "%s", dir);
    if (!realpath(r->spec_dir, r->abs_spec_dir))
        snprintf(r->abs_spec_dir, sizeof r->abs_spec_dir, "%s", r->spec_dir);
    return SL_OK;
}

static sl_status resolve_core_sections(run *r, sl_error *err)
{
    static const char *const optimizer_reserved[] = { "groups", NULL };
    sl_status st;
    if (r->spec->kind != SL_NODE_MAP)
        return sl_spec_error_at(err, r->spec, "", "expected a map of top-level keys, found %s",
                                r->spec->kind == SL_NODE_SEQ ? "a list" : "a scalar");
    if ((st = sl_params_resolve(r->spec, "", &sl_schema_root, (const char *const *)sl_root_sections,
                                &r->root, err)) != SL_OK)
        return st;
    if ((st = apply_paths_relative_to(r, err)) != SL_OK)
        return st;
    const char *const maps[] = { "cameras", "optimizer", "log" };
    for (size_t i = 0; i < 3; i++)
        if ((st = check_section_is_map(r, maps[i], err)) != SL_OK)
            return st;
    if ((st = sl_params_resolve(sl_node_get(r->spec, "cameras"), "cameras", &sl_schema_cameras,
                                NULL, &r->cameras, err)) != SL_OK)
        return st;
    if ((st = sl_params_resolve(sl_node_get(r->spec, "optimizer"), "optimizer",
                                &sl_schema_optimizer, optimizer_reserved, &r->optimizer, err)) != SL_OK)
        return st;
    return sl_params_resolve(sl_node_get(r->spec, "log"), "log", &sl_schema_log, NULL, &r->logp,
                             err);
}

static sl_status load_registry(run *r, sl_error *err)
{
    sl_status st = sl_registry_create(&r->registry, err);
    if (st != SL_OK)
        return st;
    size_t n = sl_params_list_len(r->root, "plugin_paths");
    char (*paths)[PATH_MAX] = n ? calloc(n, sizeof *paths) : NULL;
    const char **ptrs = n ? calloc(n, sizeof *ptrs) : NULL;
    if (n && (!paths || !ptrs)) {
        free(paths);
        free(ptrs);
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    }
    sl_host tmp = { .spec_dir = r->spec_dir };
    for (size_t i = 0; i < n && st == SL_OK; i++) {
        st = sl_host_path(&tmp, sl_params_list_string(r->root, "plugin_paths", i), paths[i],
                          PATH_MAX, err);
        ptrs[i] = paths[i];
    }
    if (st == SL_OK)
        st = sl_registry_load_search_path(r->registry, ptrs, n, err);
    free(paths);
    free(ptrs);
    return st;
}

static sl_status create_instance(run *r, instance *inst, uint32_t stream_base, sl_error *err)
{
    init_host(r, inst, stream_base);
    sl_status st = sl_plugin_common_fns(inst->desc).create(&inst->host, inst->params,
                                                           &inst->state, err);
    if (st != SL_OK) {
        inst->state = NULL;
        sl_error_prefix(err, "%s '%s' (%s)", inst->section, inst->label, inst->lib_path);
    }
    return st;
}

static void destroy_instance(instance *inst)
{
    if (!inst->state)
        return;
    sl_plugin_common_fns(inst->desc).destroy(inst->state);
    inst->state = NULL;
}

static const char *output_name(uint32_t bit);

/* The baselines listed in `owner`'s PLUGIN_LIST parameters of kind BASELINE: each entry is
 * resolved against its plugin's schema (keys `plugin` and `label` reserved), checked
 * against what the representation renders, and created, before the owner itself is
 * created (its create() may look at them through host->baselines). Labels are the entry's
 * `label:` or the plugin's name, numbered when repeated ("depth", "depth_2"). */
static sl_status create_baselines(run *r, instance *owner, sl_error *err)
{
    const sl_param_schema *schema = &owner->desc->params;
    size_t n_lists = 0;
    for (size_t d = 0; d < schema->count; d++)
        n_lists += schema->defs[d].type == SL_PARAM_PLUGIN_LIST &&
                   schema->defs[d].plugin_kind == SL_KIND_BASELINE;
    if (!n_lists)
        return SL_OK;
    owner->sets = calloc(n_lists, sizeof *owner->sets);
    if (!owner->sets)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    for (size_t d = 0; d < schema->count; d++) {
        const sl_param_def *def = &schema->defs[d];
        if (def->type != SL_PARAM_PLUGIN_LIST || def->plugin_kind != SL_KIND_BASELINE ||
            !sl_params_has(owner->params, def->name))
            continue;
        baseline_set *set = &owner->sets[owner->n_sets++];
        set->param = def->name;
        size_t n = sl_params_list_len(owner->params, def->name);
        set->insts = calloc(n ? n : 1, sizeof *set->insts);
        set->refs = calloc(n ? n : 1, sizeof *set->refs);
        instance **grown = realloc(r->baselines, (r->n_baselines + n + 1) * sizeof *grown);
        if (!set->insts || !set->refs || !grown) {
            free(grown == r->baselines ? NULL : grown);
            return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        }
        r->baselines = grown;
        for (size_t i = 0; i < n; i++) {
            const sl_node *entry = sl_params_plugin_entry(owner->params, def->name, i);
            const sl_node *name = sl_node_get(entry, "plugin");
            instance *b = calloc(1, sizeof *b);
            if (!b)
                return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
            r->baselines[r->n_baselines++] = b;
            set->insts[set->n++] = b;
            snprintf(b->section_buf, sizeof b->section_buf, "%s.%s[%zu]", owner->section,
                     def->name, i);
            b->section = b->section_buf;
            char key[128];
            snprintf(key, sizeof key, "%s.plugin", b->section);
            b->desc = sl_registry_find(r->registry, SL_KIND_BASELINE, name->text, &b->lib_path);
            if (!b->desc)
                return wrong_plugin_error(r, SL_KIND_BASELINE, name, key, err);
            const sl_node *label = sl_node_get(entry, "label");
            char short_label[64];
            if (label) {
                snprintf(key, sizeof key, "%s.label", b->section);
                if (label->kind != SL_NODE_SCALAR || !sl_valid_name(label->text))
                    return sl_spec_error_at(err, label, key, "expected a label of [a-z0-9_]+, "
                                            "found %s", label->kind == SL_NODE_SCALAR
                                                            ? label->text : "a collection");
                snprintf(short_label, sizeof short_label, "%s", label->text);
            } else {
                snprintf(short_label, sizeof short_label, "%s", b->desc->name);
                int copies = 1;
                for (size_t j = 0; j + 1 < set->n; j++)
                    copies += set->insts[j]->desc == b->desc;
                if (copies > 1)
                    snprintf(short_label, sizeof short_label, "%s_%d", b->desc->name, copies);
            }
            for (size_t j = 0; j + 1 < set->n; j++)
                if (!strcmp(set->refs[j].label, short_label))
                    return sl_spec_error_at(err, label ? label : entry, b->section,
                                            "expected distinct baseline labels, found '%s' "
                                            "twice", short_label);
            snprintf(b->label, sizeof b->label, "%.64s/%.64s", owner->label, short_label);
            static const char *const reserved[] = { "plugin", "label", NULL };
            sl_status st = sl_params_resolve(entry, b->section, &b->desc->params, reserved,
                                             &b->params, err);
            if (st != SL_OK)
                return st;
            const sl_baseline_vtable *bv = b->desc->vtable;
            uint32_t needs = bv->required_outputs ? bv->required_outputs(b->params)
                                                  : SL_RENDER_RGB;
            for (uint32_t bit = 1; bit <= SL_RENDER_OPACITY; bit <<= 1)
                if ((needs & bit) && !(r->repr_outputs & bit)) {
                    snprintf(key, sizeof key, "%s.plugin", b->section);
                    return sl_spec_error_at(err, name, key,
                                            "baseline '%s' needs the representation's %s "
                                            "output, but representation '%s' does not render "
                                            "it", b->desc->name, output_name(bit),
                                            r->repr.label);
                }
            st = create_instance(r, b, SL_STREAM_PLUGIN_BASE + 0x300 +
                                           0x100 * (uint32_t)(r->n_baselines - 1), err);
            if (st != SL_OK)
                return st;
            set->refs[set->n - 1] = (sl_baseline_ref){ bv, b->state, b->label +
                                                       strlen(owner->label) + 1, b->desc };
        }
    }
    return SL_OK;
}

static const char *output_name(uint32_t bit)
{
    switch (bit) {
    case SL_RENDER_RGB: return "rgb";
    case SL_RENDER_DEPTH: return "depth";
    case SL_RENDER_NORMAL: return "normal";
    case SL_RENDER_OPACITY: return "opacity";
    }
    return "?";
}

/* Parameter groups and their optimizer settings; optimizer.groups keys must name groups
 * the representation has. */
static sl_status setup_optimizer(run *r, sl_error *err)
{
    const sl_representation_vtable *vt = r->repr.desc->vtable;
    size_t n = vt->param_groups(r->repr.state, NULL, 0);
    if (n == 0)
        return sl_error_set(err, SL_ERR_PLUGIN, "representation '%s' has no parameter groups",
                            r->repr.label);
    r->groups = calloc(n, sizeof *r->groups);
    r->group_params = calloc(n, sizeof *r->group_params);
    sl_adam_config *cfg = calloc(n, sizeof *cfg);
    if (!r->groups || !r->group_params || !cfg) {
        free(cfg);
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    }
    r->n_groups = vt->param_groups(r->repr.state, r->groups, n);
    const sl_node *groups_node = sl_node_get(sl_node_get(r->spec, "optimizer"), "groups");
    sl_status st = SL_OK;
    if (groups_node && groups_node->kind != SL_NODE_MAP)
        st = sl_spec_error_at(err, groups_node, "optimizer.groups",
                              "expected a map of parameter group names, found %s",
                              groups_node->kind == SL_NODE_SEQ ? "a list" : "a scalar");
    for (size_t i = 0; st == SL_OK && groups_node && i < groups_node->n; i++) {
        const char *gname = groups_node->keys[i]->text;
        size_t g = 0;
        while (g < r->n_groups && strcmp(r->groups[g].name, gname) != 0)
            g++;
        char key[160];
        snprintf(key, sizeof key, "optimizer.groups.%s", gname);
        if (g == r->n_groups) {
            const char *cands[64];
            char list[512] = "";
            size_t len = 0;
            for (size_t j = 0; j < r->n_groups && j < 64; j++) {
                cands[j] = r->groups[j].name;
                len += (size_t)snprintf(list + len, len < sizeof list ? sizeof list - len : 0,
                                        "%s%s", j ? ", " : "", r->groups[j].name);
            }
            const char *near = sl_nearest_word(gname, cands, r->n_groups < 64 ? r->n_groups : 64);
            char hint[128] = "";
            if (near)
                snprintf(hint, sizeof hint, "; did you mean '%s'?", near);
            st = sl_spec_error_at(err, groups_node->keys[i], key,
                                  "unknown parameter group (expected one of: %s)%s", list, hint);
            break;
        }
        st = sl_params_resolve(groups_node->items[i], key, &sl_schema_optimizer_group, NULL,
                               &r->group_params[g], err);
    }
    for (size_t g = 0; st == SL_OK && g < r->n_groups; g++) {
        const sl_params *gp = r->group_params[g];
        cfg[g].lr = gp && sl_params_has(gp, "lr") ? sl_params_schedule(gp, "lr")
                                                  : sl_params_schedule(r->optimizer, "lr");
        cfg[g].beta1 = sl_params_list_float(r->optimizer, "betas", 0);
        cfg[g].beta2 = sl_params_list_float(r->optimizer, "betas", 1);
        cfg[g].eps = sl_params_float(r->optimizer, "eps");
        cfg[g].weight_decay = gp && sl_params_has(gp, "weight_decay")
                                  ? sl_params_float(gp, "weight_decay")
                                  : sl_params_float(r->optimizer, "weight_decay");
    }
    if (st == SL_OK)
        st = sl_adam_create(r->groups, cfg, r->n_groups, &r->adam, err);
    free(cfg);
    return st;
}

static void *xalloc(size_t count, size_t size, int *failed)
{
    if (count && size > SIZE_MAX / count) {
        *failed = 1;
        return NULL;
    }
    void *p = sl_aligned_zalloc(count * size);
    if (!p)
        *failed = 1;
    return p;
}

static void alloc_render(sl_render *rd, int batch, int res, uint32_t outputs, int *failed)
{
    size_t px = (size_t)batch * (size_t)res * (size_t)res;
    rd->batch = batch;
    rd->height = rd->width = res;
    rd->rgb = xalloc(px * 3, sizeof(float), failed);
    if (outputs & SL_RENDER_DEPTH)
        rd->depth = xalloc(px, sizeof(float), failed);
    if (outputs & SL_RENDER_NORMAL)
        rd->normal = xalloc(px * 3, sizeof(float), failed);
    if (outputs & SL_RENDER_OPACITY)
        rd->opacity = xalloc(px, sizeof(float), failed);
}

static void free_render(sl_render *rd)
{
    free(rd->rgb);
    free(rd->depth);
    free(rd->normal);
    free(rd->opacity);
}

/* What TRAIN renders ask for (the render contract: a representation renders every non-NULL
 * output): rgb, and what the estimator, the probed estimators and every baseline need. An
 * output nothing reads is not rendered (NeRF's normals cost several times the rest of a
 * step); a representation's own regularisers compute what they need internally (nerf's
 * lambda_orient computes its normals whether or not they are requested). EVAL renders keep
 * asking for every output, for the log. */
static uint32_t train_outputs(const run *r)
{
    uint32_t need = SL_RENDER_RGB;
    const sl_estimator_vtable *ev = r->est.desc->vtable;
    if (ev->required_outputs)
        need |= ev->required_outputs(r->est.params);
    for (size_t e = 0; e < r->n_probes; e++) {
        const sl_estimator_vtable *pv = r->probe_ests[e]->desc->vtable;
        if (pv->required_outputs)
            need |= pv->required_outputs(r->probe_ests[e]->params);
    }
    for (size_t b = 0; b < r->n_baselines; b++) {
        const sl_baseline_vtable *bv = r->baselines[b]->desc->vtable;
        if (bv->required_outputs)
            need |= bv->required_outputs(r->baselines[b]->params);
    }
    return need & r->repr_outputs;
}

static sl_status alloc_buffers(run *r, sl_error *err)
{
    int failed = 0;
    int B = r->batch, S = r->samples, R = r->cams.resolution, V = r->cams.eval_views;
    r->render_px = (size_t)B * (size_t)R * (size_t)R;
    r->prior_elems = (size_t)B * (size_t)r->pinfo.height * (size_t)r->pinfo.width *
                     (size_t)r->pinfo.channels;
    size_t pe = r->prior_elems;
    r->train_outputs = train_outputs(r);
    alloc_render(&r->render, B, R, r->train_outputs, &failed);
    r->render_grad = (sl_render){ B, R, R, xalloc(r->render_px * 3, sizeof(float), &failed),
                                  NULL, NULL, NULL };
    r->step_cams = xalloc((size_t)B, sizeof(sl_camera), &failed);
    r->x0 = xalloc(pe, sizeof(float), &failed);
    r->eps = xalloc((size_t)S * pe, sizeof(float), &failed);
    r->x_t = xalloc((size_t)S * pe, sizeof(float), &failed);
    r->eps_hat = xalloc((size_t)S * pe, sizeof(float), &failed);
    r->g = xalloc((size_t)S * pe, sizeof(float), &failed);
    r->dL_dx0 = xalloc(pe, sizeof(float), &failed);
    r->rgb_scratch = xalloc(r->render_px * 3, sizeof(float), &failed);
    r->t = xalloc((size_t)S * (size_t)B, sizeof(int), &failed);
    r->alpha = xalloc((size_t)S * (size_t)B, sizeof(double), &failed);
    r->sigma = xalloc((size_t)S * (size_t)B, sizeof(double), &failed);
    r->weight = xalloc((size_t)S * (size_t)B, sizeof(double), &failed);
    r->ctxs = xalloc((size_t)S, sizeof(sl_estimator_ctx), &failed);
    r->ctx_ptrs = xalloc((size_t)S, sizeof(*r->ctx_ptrs), &failed);
    r->eval_cams = xalloc((size_t)V, sizeof(sl_camera), &failed);
    alloc_render(&r->eval_render, V, R, r->repr_outputs, &failed);
    r->reference = xalloc((size_t)V * R * R * 3, sizeof(float), &failed);
    r->ref_depth = xalloc((size_t)V * R * R, sizeof(float), &failed);
    r->ref_mask = xalloc((size_t)V * R * R, sizeof(float), &failed);
    r->eval_depth = xalloc((size_t)V * R * R, sizeof(float), &failed);
    r->eval_mask = xalloc((size_t)V * R * R, sizeof(float), &failed);
    r->render_u8 = xalloc((size_t)V * R * R * 3, 1, &failed);
    if (failed)
        return sl_error_set(err, SL_ERR_NOMEM,
                            "out of memory allocating the run's buffers (batch %d, render %dx%d, "
                            "prior %dx%dx%d, %d noise samples)",
                            B, R, R, r->pinfo.height, r->pinfo.width, r->pinfo.channels, S);
    return SL_OK;
}

static sl_status setup_eval(run *r, sl_error *err)
{
    sl_camera_sampler_eval(&r->cams, r->eval_cams);
    const sl_prior_vtable *pv = r->prior.desc->vtable;
    r->has_reference = 0;
    if (!pv->reference)
        return SL_OK;
    size_t view = (size_t)r->cams.resolution * r->cams.resolution * 3;
    for (int v = 0; v < r->cams.eval_views; v++) {
        sl_status st = pv->reference(r->prior.state, &r->eval_cams[v], r->reference + v * view,
                                     err);
        if (st == SL_ERR_UNSUPPORTED)
            return SL_OK;
        if (st != SL_OK) {
            sl_error_prefix(err, "prior '%s': reference", r->prior.label);
            return st;
        }
    }
    r->has_reference = 1;
    /* Geometry metrics need the prior's ground truth and the representation's opacity. */
    r->has_geometry = 0;
    if (!pv->reference_geometry || !(r->repr_outputs & SL_RENDER_OPACITY))
        return SL_OK;
    size_t px = (size_t)r->cams.resolution * r->cams.resolution;
    for (int v = 0; v < r->cams.eval_views; v++) {
        sl_status st = pv->reference_geometry(r->prior.state, &r->eval_cams[v],
                                              r->ref_depth + v * px, NULL, r->ref_mask + v * px,
                                              err);
        if (st == SL_ERR_UNSUPPORTED)
            return SL_OK;
        if (st != SL_OK) {
            sl_error_prefix(err, "prior '%s': reference_geometry", r->prior.label);
            return st;
        }
    }
    r->has_geometry = 1;
    return SL_OK;
}

/* ------------------------------------------------------------------ checkpoints */

/* Every plugin instance of the run, in creation order (destroy in reverse); at most
 * `max`. Returns how many there are. */
static size_t all_instances(run *r, instance **out, size_t max)
{
    size_t n = 0;
    instance *fixed[3] = { &r->prior, &r->repr, &r->est };
    for (int i = 0; i < 3; i++)
        if (n < max)
            out[n++] = fixed[i];
    for (size_t b = 0; b < r->n_baselines; b++)
        if (n < max)
            out[n++] = r->baselines[b];
    for (size_t e = 0; r->probe_owns && e < r->n_probes; e++)
        if (n < max)
            out[n++] = r->probe_ests[e];
    return n;
}

enum { MAX_INSTANCES = 3 + 512 };

static char *resolved_spec_yaml(const run *r);

/* Scalars of the core's section: one-element arrays, so that one mechanism (and one
 * bit-exact round trip) carries everything. */
static sl_status put_i64(sl_state_io *io, const char *name, int64_t v, sl_error *err)
{
    return sl_state_put(io, name, SL_STATE_I64, &v, 1, err);
}

static sl_status put_f64(sl_state_io *io, const char *name, double v, sl_error *err)
{
    return sl_state_put(io, name, SL_STATE_F64, &v, 1, err);
}

static sl_status get_i64(sl_state_io *io, const char *name, int64_t *v, sl_error *err)
{
    return sl_state_get(io, name, SL_STATE_I64, v, 1, err);
}

static sl_status get_f64(sl_state_io *io, const char *name, double *v, sl_error *err)
{
    return sl_state_get(io, name, SL_STATE_F64, v, 1, err);
}

/* Everything a run needs to continue after `done` steps, before the evaluation that
 * follows step `done` (train() explains the order). The log's rows are made durable
 * first, so that the checkpoint never counts rows the file might lose. */
static sl_status write_checkpoint(run *r, int64_t done, double elapsed, sl_error *err)
{
    sl_status st = sl_log_sync(r->log, err);
    if (st != SL_OK)
        return st;
    sl_ckpt *c = NULL;
    if ((st = sl_ckpt_begin(r->ckpt_path, &c, err)) != SL_OK)
        return st;
    char *spec = resolved_spec_yaml(r);
    if (!spec) {
        sl_ckpt_close(c);
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    }
    st = sl_ckpt_set_string(c, "spec", spec, err);
    free(spec);
    if (st == SL_OK) st = sl_ckpt_set_string(c, "spec_dir", r->abs_spec_dir, err);
    if (st == SL_OK) st = sl_ckpt_set_string(c, "steinlab_version", SL_VERSION_STRING, err);
    if (st == SL_OK) st = sl_ckpt_set_string(c, "log", r->log_path, err);
    sl_state_io *io = NULL;
    if (st == SL_OK) st = sl_ckpt_section(c, "core", &io, err);
    if (st == SL_OK) st = put_i64(io, "steps_done", done, err);
    if (st == SL_OK) st = put_f64(io, "elapsed_s", elapsed, err);
    if (st == SL_OK) st = put_i64(io, "log/rows_steps", sl_log_table_rows(r->steps_table), err);
    if (st == SL_OK) st = put_i64(io, "log/rows_eval", sl_log_table_rows(r->eval_table), err);
    for (size_t e = 0; e < r->n_probes && st == SL_OK; e++) {
        char name[160];
        snprintf(name, sizeof name, "log/rows_probes/%s", r->probe_labels[e]);
        st = put_i64(io, name, sl_log_table_rows(r->probe_tables[e]), err);
    }
    if (st == SL_OK) st = put_i64(io, "log/renders", sl_log_renders_count(r->log), err);
    if (st == SL_OK) st = put_f64(io, "summary/first_loss", r->first_loss, err);
    if (st == SL_OK) st = put_f64(io, "summary/last_loss", r->last_loss, err);
    if (st == SL_OK) st = put_f64(io, "summary/first_psnr", r->first_psnr, err);
    if (st == SL_OK) st = put_f64(io, "summary/last_psnr", r->last_psnr, err);
    if (st == SL_OK) st = put_i64(io, "summary/first_psnr_step", r->first_psnr_step, err);
    if (st == SL_OK) st = put_i64(io, "summary/last_psnr_step", r->last_psnr_step, err);
    if (st == SL_OK) st = put_i64(io, "summary/renders_logged", r->renders_logged, err);
    if (st == SL_OK) st = put_i64(io, "adam/count", sl_adam_count(r->adam), err);
    if (st == SL_OK) st = put_i64(io, "groups/count", (int64_t)r->n_groups, err);
    for (size_t g = 0; g < r->n_groups && st == SL_OK; g++) {
        char name[160];
        const sl_param_group *pg = &r->groups[g];
        snprintf(name, sizeof name, "groups/%s/data", pg->name);
        st = sl_state_put(io, name, SL_STATE_F32, pg->data, pg->n, err);
        snprintf(name, sizeof name, "groups/%s/adam_m", pg->name);
        if (st == SL_OK)
            st = sl_state_put(io, name, SL_STATE_F32, sl_adam_moment(r->adam, g, 1), pg->n, err);
        snprintf(name, sizeof name, "groups/%s/adam_v", pg->name);
        if (st == SL_OK)
            st = sl_state_put(io, name, SL_STATE_F32, sl_adam_moment(r->adam, g, 2), pg->n, err);
    }
    instance *insts[MAX_INSTANCES];
    size_t n_insts = all_instances(r, insts, MAX_INSTANCES);
    for (size_t i = 0; i < n_insts && st == SL_OK; i++) {
        const sl_state_fn save = sl_plugin_common_fns(insts[i]->desc).save_state;
        if (!save)
            continue;
        char section[200];
        snprintf(section, sizeof section, "plugins/%s", insts[i]->label);
        if ((st = sl_ckpt_section(c, section, &io, err)) == SL_OK &&
            (st = save(insts[i]->state, io, err)) != SL_OK)
            sl_error_prefix(err, "checkpoint after %lld steps: %s '%s': save_state",
                            (long long)done, insts[i]->section, insts[i]->label);
    }
    if (st != SL_OK) {
        sl_ckpt_close(c);   /* the previous checkpoint stays */
        return st;
    }
    return sl_ckpt_commit(c, err);
}

static sl_status load_plugin_states(run *r, sl_error *err)
{
    instance *insts[MAX_INSTANCES];
    size_t n_insts = all_instances(r, insts, MAX_INSTANCES);
    for (size_t i = 0; i < n_insts; i++) {
        const sl_state_fn load = sl_plugin_common_fns(insts[i]->desc).load_state;
        if (!load)
            continue;
        char section[200];
        sl_state_io *io;
        snprintf(section, sizeof section, "plugins/%s", insts[i]->label);
        sl_status st = sl_ckpt_section(r->resume, section, &io, err);
        if (st == SL_OK && (st = load(insts[i]->state, io, err)) != SL_OK)
            sl_error_prefix(err, "resume: %s '%s': load_state", insts[i]->section,
                            insts[i]->label);
        if (st != SL_OK)
            return st;
    }
    return SL_OK;
}

/* Parameter values, Adam's moments and count, and the run's counters. Group names and
 * sizes must match what the representation has now (after its load_state). */
static sl_status load_core_state(run *r, sl_error *err)
{
    sl_state_io *io;
    sl_status st = sl_ckpt_section(r->resume, "core", &io, err);
    int64_t n_groups = 0, count = 0;
    if (st == SL_OK) st = get_i64(io, "steps_done", &r->resume_done, err);
    if (st == SL_OK) st = get_f64(io, "elapsed_s", &r->resume_elapsed, err);
    if (st == SL_OK) st = get_i64(io, "log/rows_steps", &r->resume_rows_steps, err);
    if (st == SL_OK) st = get_i64(io, "log/rows_eval", &r->resume_rows_eval, err);
    for (size_t e = 0; e < r->n_probes && st == SL_OK; e++) {
        char name[160];
        snprintf(name, sizeof name, "log/rows_probes/%s", r->probe_labels[e]);
        st = get_i64(io, name, &r->resume_probe_rows[e], err);
    }
    if (st == SL_OK) st = get_i64(io, "log/renders", &r->resume_renders, err);
    if (st == SL_OK) st = get_f64(io, "summary/first_loss", &r->first_loss, err);
    if (st == SL_OK) st = get_f64(io, "summary/last_loss", &r->last_loss, err);
    if (st == SL_OK) st = get_f64(io, "summary/first_psnr", &r->first_psnr, err);
    if (st == SL_OK) st = get_f64(io, "summary/last_psnr", &r->last_psnr, err);
    if (st == SL_OK) st = get_i64(io, "summary/first_psnr_step", &r->first_psnr_step, err);
    if (st == SL_OK) st = get_i64(io, "summary/last_psnr_step", &r->last_psnr_step, err);
    if (st == SL_OK) st = get_i64(io, "summary/renders_logged", &r->renders_logged, err);
    if (st == SL_OK) st = get_i64(io, "adam/count", &count, err);
    if (st == SL_OK) st = get_i64(io, "groups/count", &n_groups, err);
    if (st != SL_OK)
        return st;
    if (n_groups != (int64_t)r->n_groups)
        return sl_error_set(err, SL_ERR_FORMAT,
                            "checkpoint '%s' holds %lld parameter groups, representation '%s' "
                            "has %zu", r->ckpt_path, (long long)n_groups, r->repr.label,
                            r->n_groups);
    for (size_t g = 0; g < r->n_groups && st == SL_OK; g++) {
        char name[160];
        const sl_param_group *pg = &r->groups[g];
        snprintf(name, sizeof name, "groups/%s/data", pg->name);
        st = sl_state_get(io, name, SL_STATE_F32, pg->data, pg->n, err);
        snprintf(name, sizeof name, "groups/%s/adam_m", pg->name);
        if (st == SL_OK)
            st = sl_state_get(io, name, SL_STATE_F32, sl_adam_moment(r->adam, g, 1), pg->n, err);
        snprintf(name, sizeof name, "groups/%s/adam_v", pg->name);
        if (st == SL_OK)
            st = sl_state_get(io, name, SL_STATE_F32, sl_adam_moment(r->adam, g, 2), pg->n, err);
    }
    if (st != SL_OK)
        return st;
    sl_adam_set_count(r->adam, count);
    if (r->resume_done < 0 || r->resume_rows_steps != r->resume_done)
        return sl_error_set(err, SL_ERR_FORMAT,
                            "checkpoint '%s': %lld steps done but %lld rows of /steps",
                            r->ckpt_path, (long long)r->resume_done,
                            (long long)r->resume_rows_steps);
    return SL_OK;
}

/* log.probes: the estimators to probe. Listed entries become instances of their own
 * (labelled "probe/<label>" under /plugins and in checkpoints), with their baselines; an
 * empty list probes the run's own estimator. */
static sl_status setup_probes(run *r, sl_error *err)
{
    const sl_params *pp = sl_params_section(r->logp, "probes");
    r->probe_every = sl_params_int(pp, "every");
    if (r->probe_every == 0)
        return SL_OK;
    r->probe_samples = (int)sl_params_int(pp, "samples");
    r->probe_drawn = !strcmp(sl_params_string(pp, "camera"), "drawn");
    r->probe_par = sl_params_bool(pp, "parameter_space");
    size_t n = sl_params_list_len(pp, "estimators");
    r->probe_owns = n > 0;
    r->n_probes = n ? n : 1;
    r->probe_ests = calloc(r->n_probes, sizeof *r->probe_ests);
    r->probe_labels = calloc(r->n_probes, sizeof *r->probe_labels);
    r->probe_tables = calloc(r->n_probes, sizeof *r->probe_tables);
    r->probe_cols = calloc(r->n_probes, sizeof *r->probe_cols);
    r->resume_probe_rows = calloc(r->n_probes, sizeof *r->resume_probe_rows);
    r->probe_extras = calloc(r->n_probes, sizeof *r->probe_extras);
    r->shadow_delta = sl_aligned_zalloc(r->prior_elems * sizeof(float));
    if (!r->probe_ests || !r->probe_labels || !r->probe_tables || !r->probe_cols ||
        !r->resume_probe_rows || !r->probe_extras || !r->shadow_delta)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    if (!n) {
        r->probe_ests[0] = &r->est;
        snprintf(r->probe_labels[0], sizeof r->probe_labels[0], "%.64s", r->est.label);
        return SL_OK;
    }
    static const char *const reserved[] = { "plugin", "label", NULL };
    for (size_t e = 0; e < n; e++) {
        const sl_node *entry = sl_params_plugin_entry(pp, "estimators", e);
        const sl_node *name = sl_node_get(entry, "plugin");
        instance *inst = calloc(1, sizeof *inst);
        if (!inst)
            return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        r->probe_ests[e] = inst;
        snprintf(inst->section_buf, sizeof inst->section_buf, "log.probes.estimators[%zu]", e);
        inst->section = inst->section_buf;
        char key[128];
        snprintf(key, sizeof key, "%s.plugin", inst->section);
        inst->desc = sl_registry_find(r->registry, SL_KIND_ESTIMATOR, name->text, &inst->lib_path);
        if (!inst->desc)
            return sl_spec_error_at(err, name, key, "expected an estimator plugin, found "
                                    "unknown plugin '%s'", name->text);
        const sl_node *label = sl_node_get(entry, "label");
        if (label && (label->kind != SL_NODE_SCALAR || !sl_valid_name(label->text))) {
            snprintf(key, sizeof key, "%s.label", inst->section);
            return sl_spec_error_at(err, label, key, "expected a label of [a-z0-9_]+, found %s",
                                    label->kind == SL_NODE_SCALAR ? label->text
                                                                  : "a collection");
        }
        snprintf(r->probe_labels[e], sizeof r->probe_labels[e], "%s",
                 label ? label->text : inst->desc->name);
        for (size_t j = 0; j < e; j++)
            if (!strcmp(r->probe_labels[j], r->probe_labels[e]))
                return sl_spec_error_at(err, label ? label : entry, inst->section,
                                        "expected distinct probe labels, found '%s' twice "
                                        "(set label: on one of them)", r->probe_labels[e]);
        snprintf(inst->label, sizeof inst->label, "probe/%s", r->probe_labels[e]);
        sl_status st = sl_params_resolve(entry, inst->section, &inst->desc->params, reserved,
                                         &inst->params, err);
        if (st != SL_OK)
            return st;
        const sl_estimator_vtable *ev = inst->desc->vtable;
        uint32_t needs = ev->required_outputs ? ev->required_outputs(inst->params) : 0;
        for (uint32_t bit = 1; bit <= SL_RENDER_OPACITY; bit <<= 1)
            if ((needs & bit) && !(r->repr_outputs & bit))
                return sl_spec_error_at(err, name, key, "estimator '%s' needs the "
                                        "representation's %s output, but representation '%s' "
                                        "does not render it", inst->desc->name,
                                        output_name(bit), r->repr.label);
        if ((st = create_baselines(r, inst, err)) != SL_OK ||
            (st = create_instance(r, inst, 0x20000u + 0x1000u * (uint32_t)e, err)) != SL_OK)
            return st;
    }
    return SL_OK;
}

/* Shadow training: every probed instance of its own sees the step's draws (its delta() on
 * each, then its update()), as the driving estimator does, so its state follows the run. */
static sl_status shadow_train(run *r, int64_t step, sl_error *err)
{
    for (size_t e = 0; r->probe_owns && e < r->n_probes; e++) {
        instance *inst = r->probe_ests[e];
        const sl_estimator_vtable *ev = inst->desc->vtable;
        if (!ev->update)
            continue;
        sl_status st = SL_OK;
        for (int s = 0; s < r->samples && st == SL_OK; s++)
            st = ev->delta(inst->state, &r->ctxs[s], r->shadow_delta, err);
        if (st == SL_OK)
            st = ev->update(inst->state, r->ctx_ptrs, r->samples, err);
        if (st != SL_OK) {
            sl_error_prefix(err, "step %lld: probed estimator '%s'", (long long)step,
                            r->probe_labels[e]);
            return st;
        }
    }
    return SL_OK;
}

static void t_bounds(const run *r, int64_t step, int *lo, int *hi);

static sl_status run_probe(run *r, int64_t step, sl_error *err)
{
    sl_probe_estimator ests[512];
    size_t n = r->n_probes < 512 ? r->n_probes : 512;
    for (size_t e = 0; e < n; e++)
        ests[e] = (sl_probe_estimator){ r->probe_ests[e]->desc->vtable,
                                        r->probe_ests[e]->state, r->probe_labels[e],
                                        r->probe_extras[e].stats, r->probe_extras[e].n };
    sl_probe_env env = {
        .repr = r->repr.desc->vtable, .repr_state = r->repr.state, .prior = &r->prior_ref,
        .pinfo = &r->pinfo, .diffusion = &r->diffusion, .weighting = r->weighting,
        .cams = &r->cams, .repr_outputs = r->train_outputs, .groups = r->groups,
        .n_groups = r->n_groups, .seed = (uint64_t)sl_params_int(r->root, "seed"),
    };
    t_bounds(r, step, &env.t_lo, &env.t_hi);
    sl_probe_result res[512];
    sl_status st = sl_probe_run(&env, ests, n, r->probe_samples, r->probe_drawn, r->probe_par,
                                step, res, err);
    for (size_t e = 0; e < n && st == SL_OK; e++) {
        sl_log_table *t = r->probe_tables[e];
        sl_log_table_set(t, r->probe_cols[e][0], (double)step);
        sl_log_table_set(t, r->probe_cols[e][1], res[e].var_img);
        sl_log_table_set(t, r->probe_cols[e][2], res[e].var_par);
        sl_log_table_set(t, r->probe_cols[e][3], res[e].mean_norm2);
        for (size_t c = 0; c < r->probe_extras[e].n; c++)
            sl_log_table_set(t, r->probe_extras[e].cols[c], r->probe_extras[e].stats[c].value);
        st = sl_log_table_commit_row(t, err);
    }
    return st;
}

static void format_bytes(double bytes, char *buf, size_t size)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

/* The memory the run's own buffers take (driver.c's alloc_buffers and a probe's), from the
 * sizes alone: an upper bound (every optional render output counted). */
static double core_buffer_bytes(const run *r)
{
    double B = r->batch, S = r->samples, R2 = (double)r->cams.resolution * r->cams.resolution;
    double V = r->cams.eval_views;
    double pe = B * r->pinfo.height * r->pinfo.width * r->pinfo.channels;
    double floats = B * R2 * (8 + 3 + 3) + pe * (2 + 4 * S) + V * R2 * (8 + 3 + 4);
    const sl_params *pp = sl_params_section(r->logp, "probes");
    if (sl_params_int(pp, "every") > 0) {
        double K = (double)sl_params_int(pp, "samples");
        double n = (double)(sl_params_list_len(pp, "estimators") ? sl_params_list_len(pp, "estimators") : 1);
        floats += K * pe * (3 + n) + B * R2 * 14;
    }
    return 4 * floats + V * R2 * 3;
}

static double memory_limit(const char **source)
{
    const char *env = getenv("STEINLAB_MEMORY_LIMIT");
    *source = env && *env ? " (STEINLAB_MEMORY_LIMIT)" : "";
    if (env && *env)
        return strtod(env, NULL);
    return (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
}

/* Refuses, before the prior exists, a prior whose own estimate (memory_bytes) exceeds the
 * machine's memory (STEINLAB_MEMORY_LIMIT, in bytes, overrides the physical memory: for
 * tests and shared machines), so a huge view bank is not built only to be refused. */
static sl_status check_prior_memory(run *r, sl_error *err)
{
    const char *source;
    const double limit = memory_limit(&source);
    const sl_prior_vtable *pv = r->prior.desc->vtable;
    const double prior = pv->memory_bytes ? (double)pv->memory_bytes(r->prior.params) : 0;
    if (!(limit > 0) || prior <= limit)
        return SL_OK;
    char p[32], l[32];
    format_bytes(prior, p, sizeof p);
    format_bytes(limit, l, sizeof l);
    return sl_error_set(err, SL_ERR_SPEC,
                        "the run needs about %s for prior '%s' alone, more than the %s of "
                        "memory available%s; reduce the prior's sizes", p, r->prior.label, l,
                        source);
}

/* Refuses, before the representation exists and before anything is written, a run that
 * would need more memory than the machine has. Plugins contribute their own estimates
 * (memory_bytes); without one they count as unknown, not as zero. */
static sl_status check_memory(run *r, sl_error *err)
{
    const char *source;
    const double limit = memory_limit(&source);
    const sl_prior_vtable *pv = r->prior.desc->vtable;
    const sl_representation_vtable *rv = r->repr.desc->vtable;
    double core = core_buffer_bytes(r);
    double prior = pv->memory_bytes ? (double)pv->memory_bytes(r->prior.params) : 0;
    double repr = rv->memory_bytes ? (double)rv->memory_bytes(r->repr.params,
                                                              r->cams.resolution, r->batch) : 0;
    double total = core + prior + repr;
    if (!(limit > 0) || total <= limit)
        return SL_OK;
    char t[32], c[32], p[32], rp[32], l[32];
    format_bytes(total, t, sizeof t);
    format_bytes(core, c, sizeof c);
    format_bytes(prior, p, sizeof p);
    format_bytes(repr, rp, sizeof rp);
    format_bytes(limit, l, sizeof l);
    return sl_error_set(err, SL_ERR_SPEC,
                        "the run needs about %s (core buffers %s for batch %d, %dx%d renders, "
                        "%d noise samples, %d eval views; representation '%s' %s; prior '%s' "
                        "%s), more than the %s of memory available%s; reduce "
                        "cameras.batch_size, cameras.resolution or the plugins' sizes",
                        t, c, r->batch, r->cams.resolution, r->cams.resolution, r->samples,
                        r->cams.eval_views, r->repr.label, rv->memory_bytes ? rp : "unknown",
                        r->prior.label, pv->memory_bytes ? p : "unknown", l, source);
}

static sl_status validate_and_create(run *r, sl_error *err)
{
    sl_status st;
    if ((st = resolve_core_sections(r, err)) != SL_OK)
        return st;
    if ((st = load_registry(r, err)) != SL_OK)
        return st;
    if ((st = find_plugin(r, "prior", SL_KIND_PRIOR, &r->prior, err)) != SL_OK ||
        (st = find_plugin(r, "representation", SL_KIND_REPRESENTATION, &r->repr, err)) != SL_OK ||
        (st = find_plugin(r, "estimator", SL_KIND_ESTIMATOR, &r->est, err)) != SL_OK)
        return st;
    if ((st = resolve_plugin_section(r, &r->prior, err)) != SL_OK ||
        (st = resolve_plugin_section(r, &r->repr, err)) != SL_OK ||
        (st = resolve_estimator(r, err)) != SL_OK)
        return st;
    if (!strcmp(r->prior.label, r->repr.label) || !strcmp(r->prior.label, r->est.label) ||
        !strcmp(r->repr.label, r->est.label))
        return sl_spec_error_at(err, sl_node_get(r->spec, "estimator"), "label",
                                "expected distinct labels for the plugins, found '%s', '%s', "
                                "'%s'", r->prior.label, r->repr.label, r->est.label);
    st = sl_weighting_parse(sl_params_string(r->est_core, "weighting"), &r->weighting, err);
    if (st != SL_OK)
        return st;
    r->samples = (int)sl_params_int(r->est_core, "noise_samples");

    r->defining = 1;
    if ((st = check_prior_memory(r, err)) != SL_OK)
        return st;
    if ((st = create_instance(r, &r->prior, SL_STREAM_PLUGIN_BASE, err)) != SL_OK)
        return st;
    const sl_prior_vtable *pv = r->prior.desc->vtable;
    r->prior_ref = (sl_prior_ref){ pv, r->prior.state };
    pv->info(r->prior.state, &r->pinfo);
    if (r->pinfo.diffusion)
        r->diffusion = *r->pinfo.diffusion;
    else
        sl_diffusion_default(&r->diffusion);
    if (r->pinfo.channels != 3)
        return sl_error_set(err, SL_ERR_SPEC,
                            "prior '%s' works in %d channels; only pixel-space priors (3 "
                            "channels) are supported by this version of the driver",
                            r->prior.label, r->pinfo.channels);
    sl_camera_sampler_init(&r->cams, r->cameras, r->pinfo.height);
    r->batch = r->cams.batch;
    if ((st = check_memory(r, err)) != SL_OK)
        return st;

    if ((st = create_instance(r, &r->repr, SL_STREAM_PLUGIN_BASE + 0x100, err)) != SL_OK)
        return st;
    const sl_representation_vtable *rv = r->repr.desc->vtable;
    r->repr_outputs = rv->outputs(r->repr.state);
    const sl_estimator_vtable *ev = r->est.desc->vtable;
    uint32_t needs = ev->required_outputs ? ev->required_outputs(r->est.params) : SL_RENDER_RGB;
    for (uint32_t bit = 1; bit <= SL_RENDER_OPACITY; bit <<= 1)
        if ((needs & bit) && !(r->repr_outputs & bit))
            return sl_spec_error_at(err, sl_node_get(sl_node_get(r->spec, "estimator"), "plugin"),
                                    "estimator.plugin",
                                    "estimator '%s' needs the representation's %s output, but "
                                    "representation '%s' does not render it",
                                    r->est.label, output_name(bit), r->repr.label);
    if ((st = create_baselines(r, &r->est, err)) != SL_OK)
        return st;
    if ((st = create_instance(r, &r->est, SL_STREAM_PLUGIN_BASE + 0x200, err)) != SL_OK)
        return st;
    r->prior_elems = (size_t)r->batch * (size_t)r->pinfo.height * (size_t)r->pinfo.width *
                     (size_t)r->pinfo.channels;
    if ((st = setup_probes(r, err)) != SL_OK)
        return st;
    r->defining = 0;
    /* Plugin state first: a representation may resize its groups in load_state, and the
     * optimizer is built on the groups as they are then (state_io.h). */
    if (r->resume && (st = load_plugin_states(r, err)) != SL_OK)
        return st;
    if ((st = setup_optimizer(r, err)) != SL_OK)
        return st;
    if (r->resume && (st = load_core_state(r, err)) != SL_OK)
        return st;
    if ((st = alloc_buffers(r, err)) != SL_OK)
        return st;
    return setup_eval(r, err);
}

/* ------------------------------------------------------------------ the log */

static void default_log_path(run *r)
{
    if (sl_params_has(r->logp, "path"))
        snprintf(r->log_path, sizeof r->log_path, "%s", sl_params_string(r->logp, "path"));
    else
        snprintf(r->log_path, sizeof r->log_path, "runs/%s.h5", sl_params_string(r->root, "name"));
}

static void append_params(sl_strbuf *sb, const sl_params *p, int indent)
{
    for (size_t i = 0; i < sl_params_count(p); i++)
        sl_strbuf_printf(sb, "%*s%s: %s\n", indent, "", sl_params_name_at(p, i),
                         sl_params_yaml_at(p, i));
}

static void append_plugin_section(sl_strbuf *sb, const instance *inst, const sl_params *extra)
{
    sl_strbuf_printf(sb, "%s:\n  plugin: %s\n", inst->section, inst->desc->name);
    if (strcmp(inst->label, inst->desc->name) != 0)
        sl_strbuf_printf(sb, "  label: %s\n", inst->label);
    append_params(sb, inst->params, 2);
    if (extra)
        append_params(sb, extra, 2);
}

/* The resolved spec: every key with its value after overrides and defaults. */
static char *resolved_spec_yaml(const run *r)
{
    sl_strbuf sb;
    sl_strbuf_init(&sb);
    append_params(&sb, r->root, 0);
    append_plugin_section(&sb, &r->prior, NULL);
    append_plugin_section(&sb, &r->repr, NULL);
    append_plugin_section(&sb, &r->est, r->est_core);
    sl_strbuf_printf(&sb, "cameras:\n");
    append_params(&sb, r->cameras, 2);
    sl_strbuf_printf(&sb, "optimizer:\n");
    append_params(&sb, r->optimizer, 2);
    int any_group = 0;
    for (size_t g = 0; g < r->n_groups; g++) {
        if (!r->group_params[g] || !sl_params_count(r->group_params[g]))
            continue;
        if (!any_group++)
            sl_strbuf_printf(&sb, "  groups:\n");
        sl_strbuf_printf(&sb, "    %s:\n", r->groups[g].name);
        append_params(&sb, r->group_params[g], 6);
    }
    sl_strbuf_printf(&sb, "log:\n");
    append_params(&sb, r->logp, 2);
    return sl_strbuf_take(&sb);
}

static sl_status log_instance_attrs(run *r, const instance *inst, const sl_params *extra,
                                    sl_error *err)
{
    char path[200];
    snprintf(path, sizeof path, "/plugins/%s", inst->label);
    sl_status st = sl_log_attr_string(r->log, path, "plugin", inst->desc->name, err);
    if (st == SL_OK)
        st = sl_log_attr_string(r->log, path, "kind", sl_plugin_kind_name(inst->desc->kind), err);
    if (st == SL_OK)
        st = sl_log_attr_string(r->log, path, "version", inst->desc->version, err);
    const sl_params *lists[2] = { inst->params, extra };
    for (int l = 0; l < 2 && st == SL_OK; l++)
        for (size_t i = 0; lists[l] && i < sl_params_count(lists[l]) && st == SL_OK; i++)
            st = sl_log_attr_string(r->log, path, sl_params_name_at(lists[l], i),
                                    sl_params_yaml_at(lists[l], i), err);
    return st;
}

/* A new log defines its tables and columns; a resumed one attaches the same ones. */
static sl_status log_table(run *r, const char *path, sl_log_table **t, sl_error *err)
{
    return r->resuming ? sl_log_table_open(r->log, path, t, err)
                       : sl_log_table_create(r->log, path, t, err);
}

static sl_status log_column(run *r, sl_log_table *t, const char *name, const char *doc,
                            sl_log_dtype type, int *col, sl_error *err)
{
    return r->resuming ? sl_log_table_column_open(t, name, type, col, err)
                       : sl_log_table_column(t, name, doc, type, col, err);
}

/* The columns of probed estimator e's own diagnostics, named by its probe_stats (called
 * once with no draws for the names). */
static sl_status define_probe_extras(run *r, size_t e, sl_error *err)
{
    const sl_estimator_vtable *vt = r->probe_ests[e]->desc->vtable;
    probe_extra *x = &r->probe_extras[e];
    x->n = 0;
    if (!SL_ESTIMATOR_HAS(vt, probe_stats))
        return SL_OK;
    sl_status st = vt->probe_stats(r->probe_ests[e]->state, NULL, 0, x->stats,
                                   PROBE_STATS_MAX, &x->n, err);
    if (st == SL_OK && x->n > PROBE_STATS_MAX)
        st = sl_error_set(err, SL_ERR_PLUGIN, "reported %zu probe statistics, at most %d",
                          x->n, (int)PROBE_STATS_MAX);
    for (size_t c = 0; c < x->n && st == SL_OK; c++)
        st = log_column(r, r->probe_tables[e], x->stats[c].name, x->stats[c].doc, SL_LOG_F64,
                        &x->cols[c], err);
    if (st != SL_OK) {
        x->n = 0;
        sl_error_prefix(err, "probed estimator '%s': probe statistics", r->probe_labels[e]);
    }
    return st;
}

/* Resumed run: reopen the log (clearing a killed writer's flags), refresh the attributes
 * that steps=N changes (so they read as an uninterrupted run with that N). */
static sl_status reopen_log(run *r, sl_error *err)
{
    sl_status st = sl_log_open_append(r->log_path, &r->log, err);
    if (st != SL_OK)
        return st;
    char *spec_yaml = resolved_spec_yaml(r);
    if (!spec_yaml)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    st = sl_log_attr_int(r->log, "/", "steps", sl_params_int(r->root, "steps"), err);
    if (st == SL_OK)
        st = sl_log_attr_string(r->log, "/", "spec", spec_yaml, err);
    free(spec_yaml);
    return st;
}

static sl_status define_tables(run *r, sl_error *err);
static sl_status define_mesh_columns(run *r, sl_error *err);
static sl_status define_mesh_arrays(run *r, sl_error *err);

static sl_status define_log(run *r, sl_error *err)
{
    if (r->resuming)
        return define_tables(r, err);
    sl_status st = sl_make_dirs(r->log_path, 0, err);
    if (st != SL_OK)
        return st;
    if ((st = sl_log_create(r->log_path, &r->log, err)) != SL_OK)
        return st;

    char created[64], host[256] = "unknown";
    time_t now = time(NULL);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    gethostname(host, sizeof host - 32);
    host[sizeof host - 33] = 0;
    size_t hl = strlen(host);
    int threads = omp_get_max_threads();
    snprintf(host + hl, sizeof host - hl, " (%d thread%s)", threads, threads == 1 ? "" : "s");
    char *spec_yaml = resolved_spec_yaml(r);
    if (!spec_yaml)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    st = sl_log_attr_string(r->log, "/", "steinlab_version", SL_VERSION_STRING, err);
    if (st == SL_OK) st = sl_log_attr_string(r->log, "/", "git_describe", SL_GIT_DESCRIBE, err);
    if (st == SL_OK) st = sl_log_attr_string(r->log, "/", "created", created, err);
    if (st == SL_OK) st = sl_log_attr_string(r->log, "/", "host", host, err);
    if (st == SL_OK) st = sl_log_attr_string(r->log, "/", "blas_core", sl_blas_core(), err);
    if (st == SL_OK) st = sl_log_attr_string(r->log, "/", "name", sl_params_string(r->root, "name"), err);
    if (st == SL_OK) st = sl_log_attr_int(r->log, "/", "seed", sl_params_int(r->root, "seed"), err);
    if (st == SL_OK) st = sl_log_attr_int(r->log, "/", "steps", sl_params_int(r->root, "steps"), err);
    if (st == SL_OK) st = sl_log_attr_string(r->log, "/", "spec", spec_yaml, err);
    if (st == SL_OK) st = sl_log_attr_string(r->log, "/", "spec_path", r->opt->spec_path, err);
    free(spec_yaml);
    if (st == SL_OK) st = log_instance_attrs(r, &r->prior, NULL, err);
    if (st == SL_OK) st = log_instance_attrs(r, &r->repr, NULL, err);
    if (st == SL_OK) st = log_instance_attrs(r, &r->est, r->est_core, err);
    for (size_t b = 0; b < r->n_baselines && st == SL_OK; b++)
        st = log_instance_attrs(r, r->baselines[b], NULL, err);
    for (size_t e = 0; r->probe_owns && e < r->n_probes && st == SL_OK; e++)
        st = log_instance_attrs(r, r->probe_ests[e], NULL, err);
    if (st != SL_OK)
        return st;
    return define_tables(r, err);
}

/* Tables, columns and renders (created, or attached when resuming: then cut back to the
 * checkpoint), then SWMR starts. */
static sl_status define_tables(run *r, sl_error *err)
{
    sl_status st = SL_OK;
    if (r->resuming && (st = reopen_log(r, err)) != SL_OK)
        return st;
    /* /steps: the core's series first, then those the plugins declared. */
    if ((st = log_table(r, "/steps", &r->steps_table, err)) != SL_OK)
        return st;
    struct { const char *name, *doc; sl_log_dtype type; int *col; } core[] = {
        { "step", "training step (0-based) this row describes", SL_LOG_I64, &r->col_step },
        { "loss", "0.5 mean(g^2) of the step's direction g = w(t) Delta in prior space (a "
                  "surrogate: its gradient w.r.t. x0 with the target held fixed is g/numel)",
          SL_LOG_F64, &r->col_loss },
        { "grad_norm", "global L2 norm of the parameter gradient (before clipping)", SL_LOG_F64,
          &r->col_grad_norm },
        { "t", "diffusion time t (integer in [1, T]), mean over the step's draws", SL_LOG_F64,
          &r->col_t },
        { "lr", "learning rate of the first parameter group", SL_LOG_F64, &r->col_lr },
        { "time_s", "wall-clock seconds since the first step started", SL_LOG_F64, &r->col_time },
        { "var_par_adam", "PROXY, not a variance estimate: mean(v_hat - m_hat^2) over all "
                          "parameters from Adam's moments (method.md section 4); can be negative",
          SL_LOG_F64, &r->col_var_adam },
    };
    for (size_t i = 0; i < sizeof core / sizeof core[0] && st == SL_OK; i++)
        st = log_column(r, r->steps_table, core[i].name, core[i].doc, core[i].type,
                        core[i].col, err);
    r->col_var_img = -1;
    if (st == SL_OK && r->samples > 1)
        st = log_column(r, r->steps_table, "var_img",
                                 "image-space variance over the step's own noise samples: "
                                 "(1/D) sum_d Var_k[g_k,d], unbiased (K-1)", SL_LOG_F64,
                                 &r->col_var_img, err);
    for (size_t i = 0; i < r->n_series && st == SL_OK; i++)
        st = log_column(r, r->steps_table, r->series[i].name, r->series[i].doc, SL_LOG_F64,
                        &r->series[i].col, err);
    if (st != SL_OK)
        return st;

    if ((st = log_table(r, "/eval", &r->eval_table, err)) != SL_OK)
        return st;
    st = log_column(r, r->eval_table, "step", "optimizer steps done when evaluated",
                             SL_LOG_I64, &r->col_eval_step, err);
    if (st == SL_OK)
        st = log_column(r, r->eval_table, "time_s", "wall-clock seconds since the run "
                                 "started", SL_LOG_F64, &r->col_eval_time, err);
    r->col_eval_psnr = r->col_eval_ssim = r->col_eval_depth = r->col_eval_iou = -1;
    if (st == SL_OK && r->has_reference)
        st = log_column(r, r->eval_table, "psnr",
                                 "mean over the evaluation views of the PSNR (dB) of the render "
                                 "against the prior's ground truth", SL_LOG_F64,
                                 &r->col_eval_psnr, err);
    if (st == SL_OK && r->has_reference)
        st = log_column(r, r->eval_table, "ssim",
                                 "mean over the evaluation views of the SSIM of the render "
                                 "against the prior's ground truth (11x11 Gaussian window)",
                                 SL_LOG_F64, &r->col_eval_ssim, err);
    if (st == SL_OK && r->has_geometry)
        st = log_column(r, r->eval_table, "mask_iou",
                                 "IoU of the render's mask (opacity > 0.5) and the true mask, "
                                 "pooled over the evaluation views", SL_LOG_F64,
                                 &r->col_eval_iou, err);
    if (st == SL_OK && r->has_geometry && (r->repr_outputs & SL_RENDER_DEPTH))
        st = log_column(r, r->eval_table, "depth_l1",
                                 "mean |z-depth error| over pixels inside both masks, pooled "
                                 "over the evaluation views (depth = sum w z / opacity)",
                                 SL_LOG_F64, &r->col_eval_depth, err);
    if (st == SL_OK)
        st = define_mesh_columns(r, err);
    for (size_t e = 0; e < r->n_probes && st == SL_OK; e++) {
        char path[160];
        snprintf(path, sizeof path, "/probes/%s", r->probe_labels[e]);
        static const char *const names[4] = { "step", "var_img", "var_par", "mean_norm2" };
        static const char *const docs[4] = {
            "optimizer steps done when probed (the probe precedes that step)",
            "(1/D) sum_d Var_k[g_k,d] over the probe's draws of g = w(t) Delta, unbiased",
            "(1/P) sum_p Var_k[(J^T g_k)_p], one backward pass per draw, unbiased (NaN: off)",
            "(|mean_k g_k|^2 - tr Cov / K) / D: unbiased squared norm of the mean direction",
        };
        if ((st = log_table(r, path, &r->probe_tables[e], err)) != SL_OK)
            break;
        for (int c = 0; c < 4 && st == SL_OK; c++)
            st = log_column(r, r->probe_tables[e], names[c], docs[c],
                            c == 0 ? SL_LOG_I64 : SL_LOG_F64, &r->probe_cols[e][c], err);
        if (st == SL_OK)
            st = define_probe_extras(r, e, err);
        if (st == SL_OK && !r->resuming)
            st = sl_log_attr_string(r->log, path, "estimator", r->probe_ests[e]->label, err);
        if (st == SL_OK && !r->resuming)
            st = sl_log_attr_int(r->log, path, "samples", r->probe_samples, err);
        if (st == SL_OK && !r->resuming)
            st = sl_log_attr_string(r->log, path, "camera", r->probe_drawn ? "drawn" : "fixed",
                                    err);
        if (st == SL_OK && r->resuming)
            st = sl_log_table_truncate(r->probe_tables[e], r->resume_probe_rows[e], err);
    }
    if (st == SL_OK && !r->resuming)
        st = sl_log_renders_create(r->log, "rgb", r->cams.eval_views, r->cams.resolution,
                                   r->cams.resolution, 3, err);
    if (st == SL_OK && r->resuming)
        st = sl_log_renders_open(r->log, "rgb", r->cams.eval_views, r->cams.resolution,
                                 r->cams.resolution, 3, err);
    /* Rows a killed or stopped run logged after its checkpoint go: the resumed run logs
     * them again, identically. */
    if (st == SL_OK && r->resuming)
        st = sl_log_table_truncate(r->steps_table, r->resume_rows_steps, err);
    if (st == SL_OK && r->resuming)
        st = sl_log_table_truncate(r->eval_table, r->resume_rows_eval, err);
    if (st == SL_OK && r->resuming)
        st = sl_log_renders_truncate(r->log, r->resume_renders, err);
    if (st == SL_OK)
        st = define_mesh_arrays(r, err);
    if (st == SL_OK)
        st = sl_log_start_swmr(r->log, err);
    return st;
}

/* ------------------------------------------------------------------ steps */

static sl_status check_finite(const float *x, size_t n, int64_t step, const char *plugin,
                              const char *tensor, sl_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return sl_error_set(err, SL_ERR_NONFINITE,
                                "step %lld: non-finite value %g in %s of '%s' (element %zu); "
                                "the run stops here, the log keeps every step before it",
                                (long long)step, (double)x[i], tensor, plugin, i);
    return SL_OK;
}

/* x0 = 2 rgb - 1 in prior space, resampled when the render and prior sizes differ. */
static void encode_x0(run *r)
{
    int R = r->cams.resolution, P = r->pinfo.height, B = r->batch;
    size_t n = r->render_px * 3;
    for (size_t i = 0; i < n; i++)
        r->rgb_scratch[i] = 2.0f * r->render.rgb[i] - 1.0f;
    size_t in_view = (size_t)R * R * 3, out_view = (size_t)P * r->pinfo.width * 3;
    for (int b = 0; b < B; b++)
        sl_resample(r->rgb_scratch + b * in_view, R, R, 3, r->x0 + b * out_view, P,
                    r->pinfo.width);
}

/* dL/drgb = 2 A^T dL/dx0 (the adjoint of encode_x0). */
static void decode_grad(run *r)
{
    int R = r->cams.resolution, P = r->pinfo.height, B = r->batch;
    size_t n = r->render_px * 3;
    memset(r->render_grad.rgb, 0, n * sizeof(float));
    size_t in_view = (size_t)R * R * 3, out_view = (size_t)P * r->pinfo.width * 3;
    for (int b = 0; b < B; b++)
        sl_resample_adjoint(r->dL_dx0 + b * out_view, P, r->pinfo.width, 3,
                            r->render_grad.rgb + b * in_view, R, R);
    for (size_t i = 0; i < n; i++)
        r->render_grad.rgb[i] *= 2.0f;
}

static void t_bounds(const run *r, int64_t step, int *lo, int *hi)
{
    sl_schedule s0 = sl_params_list_schedule(r->est_core, "t_range", 0);
    sl_schedule s1 = sl_params_list_schedule(r->est_core, "t_range", 1);
    int T = r->diffusion.T;
    double f0 = sl_schedule_at(&s0, step), f1 = sl_schedule_at(&s1, step);
    if (f1 < f0) {
        double tmp = f0;
        f0 = f1;
        f1 = tmp;
    }
    *lo = (int)lround(f0 * T);
    *hi = (int)lround(f1 * T);
    if (*lo < 1) *lo = 1;
    if (*hi > T) *hi = T;
    if (*hi < *lo) *hi = *lo;
}

/* One (t, eps) draw for every batch element: fills the sample's slices and its ctx. */
static sl_status draw_sample(run *r, int64_t step, int s, sl_error *err)
{
    size_t pe = r->prior_elems, per = pe / (size_t)r->batch;
    uint64_t seed = (uint64_t)sl_params_int(r->root, "seed");
    int lo, hi;
    t_bounds(r, step, &lo, &hi);
    int *t = r->t + (size_t)s * r->batch;
    double *alpha = r->alpha + (size_t)s * r->batch, *sigma = r->sigma + (size_t)s * r->batch;
    double *weight = r->weight + (size_t)s * r->batch;
    float *eps = r->eps + s * pe, *x_t = r->x_t + s * pe, *eps_hat = r->eps_hat + s * pe;
    sl_rng_key tkey = { seed, (uint32_t)step, SL_STREAM_TIMESTEP, (uint32_t)s };
    for (int b = 0; b < r->batch; b++) {
        t[b] = (int)sl_rng_int1(tkey, (uint64_t)b, lo, hi);
        alpha[b] = sl_diffusion_alpha(&r->diffusion, t[b]);
        sigma[b] = sl_diffusion_sigma(&r->diffusion, t[b]);
        weight[b] = sl_diffusion_weight(&r->diffusion, r->weighting, t[b]);
    }
    sl_rng_key nkey = { seed, (uint32_t)step, SL_STREAM_NOISE, (uint32_t)s };
    sl_rng_normal(nkey, 0, pe, eps);
    for (int b = 0; b < r->batch; b++) {
        float a = (float)alpha[b], sg = (float)sigma[b];
        size_t off = (size_t)b * per;
        for (size_t i = 0; i < per; i++)
            x_t[off + i] = a * r->x0[off + i] + sg * eps[off + i];
    }
    sl_prior_query q = { r->batch, x_t, t, r->step_cams, step };
    sl_status st = r->prior_ref.vt->noise_pred(r->prior.state, &q, eps_hat, err);
    if (st != SL_OK) {
        sl_error_prefix(err, "step %lld: prior '%s'", (long long)step, r->prior.label);
        return st;
    }
    if ((st = check_finite(eps_hat, pe, step, r->prior.label, "the noise prediction", err)) != SL_OK)
        return st;
    r->ctxs[s] = (sl_estimator_ctx){
        .batch = r->batch, .height = r->pinfo.height, .width = r->pinfo.width,
        .channels = r->pinfo.channels, .step = step, .sample = s, .t = t, .alpha = alpha,
        .sigma = sigma, .x0 = r->x0, .eps = eps, .x_t = x_t, .eps_hat = eps_hat,
        .cams = r->step_cams, .render = &r->render, .weight = weight,
    };
    r->ctx_ptrs[s] = &r->ctxs[s];
    return SL_OK;
}

/* Image-space variance of the step's samples: (1/D) sum_d Var_k[g_k,d], unbiased,
 * two-pass in double, fixed order. */
static double sample_variance(const run *r)
{
    size_t pe = r->prior_elems;
    int S = r->samples;
    double total = 0;
    for (size_t d = 0; d < pe; d++) {
        double mean = 0;
        for (int s = 0; s < S; s++)
            mean += r->g[s * pe + d];
        mean /= S;
        double ss = 0;
        for (int s = 0; s < S; s++) {
            double dv = r->g[s * pe + d] - mean;
            ss += dv * dv;
        }
        total += ss / (S - 1);
    }
    return total / (double)pe;
}

static sl_status run_step(run *r, int64_t step, double t_start, sl_error *err)
{
    const sl_representation_vtable *rv = r->repr.desc->vtable;
    const sl_estimator_vtable *ev = r->est.desc->vtable;
    uint64_t seed = (uint64_t)sl_params_int(r->root, "seed");
    sl_camera_sampler_draw(&r->cams, seed, step, r->step_cams);
    sl_render_request req = { r->step_cams, r->batch, step, SL_RENDER_TRAIN };
    sl_status st = rv->render(r->repr.state, &req, &r->render, err);
    if (st != SL_OK) {
        sl_error_prefix(err, "step %lld: representation '%s': render", (long long)step, r->repr.label);
        return st;
    }
    if ((st = check_finite(r->render.rgb, r->render_px * 3, step, r->repr.label, "the rendered rgb",
                           err)) != SL_OK)
        return st;
    encode_x0(r);

    size_t pe = r->prior_elems, per = pe / (size_t)r->batch;
    double loss = 0, t_sum = 0;
    memset(r->dL_dx0, 0, pe * sizeof(float));
    /* dL/dx0[b] = (1 / (B S)) sum_s w(t_bs) Delta_bs: the mean over draws and over the
     * batch, so the learning rate does not scale with either. */
    const float scale = 1.0f / (float)(r->batch * r->samples);
    for (int s = 0; s < r->samples; s++) {
        if ((st = draw_sample(r, step, s, err)) != SL_OK)
            return st;
        float *g = r->g + s * pe;
        st = ev->delta(r->est.state, &r->ctxs[s], g, err);
        if (st != SL_OK) {
            sl_error_prefix(err, "step %lld: estimator '%s'", (long long)step, r->est.label);
            return st;
        }
        if ((st = check_finite(g, pe, step, r->est.label, "the direction Delta", err)) != SL_OK)
            return st;
        for (int b = 0; b < r->batch; b++) {
            int t = r->t[s * r->batch + b];
            t_sum += t;
            float w = (float)r->weight[s * r->batch + b];
            float *gb = g + (size_t)b * per;
            float *db = r->dL_dx0 + (size_t)b * per;
            for (size_t i = 0; i < per; i++) {
                gb[i] *= w;
                db[i] += scale * gb[i];
            }
        }
    }
    for (size_t i = 0; i < pe; i++)
        loss += (double)r->dL_dx0[i] * r->dL_dx0[i] * (double)r->batch * r->batch;
    loss = 0.5 * loss / (double)pe;
    decode_grad(r);

    for (size_t g = 0; g < r->n_groups; g++)
        memset(r->groups[g].grad, 0, r->groups[g].n * sizeof(float));
    if ((st = rv->backward(r->repr.state, &r->render_grad, err)) != SL_OK) {
        sl_error_prefix(err, "step %lld: representation '%s': backward", (long long)step,
                        r->repr.label);
        return st;
    }
    size_t elem = 0;
    long bad = sl_grad_first_nonfinite(r->groups, r->n_groups, &elem);
    if (bad >= 0)
        return sl_error_set(err, SL_ERR_NONFINITE,
                            "step %lld: non-finite gradient in parameter group '%s' of '%s' "
                            "(element %zu); the step is refused, the run stops, the log keeps "
                            "every step before it",
                            (long long)step, r->groups[bad].name, r->repr.label, elem);
    double grad_norm = sl_grad_norm(r->groups, r->n_groups);
    double clip = sl_params_float(r->optimizer, "grad_clip");
    if (clip > 0 && grad_norm > clip)
        sl_grad_scale(r->groups, r->n_groups, clip / grad_norm);
    sl_adam_step(r->adam, step);
    if (rv->step_end && (st = rv->step_end(r->repr.state, step, err)) != SL_OK) {
        sl_error_prefix(err, "step %lld: representation '%s': step_end", (long long)step,
                        r->repr.label);
        return st;
    }
    if (ev->update && (st = ev->update(r->est.state, r->ctx_ptrs, r->samples, err)) != SL_OK) {
        sl_error_prefix(err, "step %lld: estimator '%s': update", (long long)step, r->est.label);
        return st;
    }
    if ((st = shadow_train(r, step, err)) != SL_OK)
        return st;

    sl_log_table *tb = r->steps_table;
    sl_log_table_set(tb, r->col_step, (double)step);
    sl_log_table_set(tb, r->col_loss, loss);
    sl_log_table_set(tb, r->col_grad_norm, grad_norm);
    sl_log_table_set(tb, r->col_t, t_sum / (double)(r->batch * r->samples));
    sl_log_table_set(tb, r->col_lr, sl_adam_lr(r->adam, 0, step));
    sl_log_table_set(tb, r->col_time, sl_now_s() - t_start);
    sl_log_table_set(tb, r->col_var_adam, sl_adam_var_proxy(r->adam));
    if (r->col_var_img >= 0)
        sl_log_table_set(tb, r->col_var_img, sample_variance(r));
    if (step == 0)
        r->first_loss = loss;
    r->last_loss = loss;
    return sl_log_table_commit_row(tb, err);
}

/* Mask and depth of the evaluation render (conventions: mask = opacity > 0.5, depth =
 * sum w z / opacity there), then IoU and depth error against the ground truth. */
static void log_geometry_metrics(run *r)
{
    size_t px = (size_t)r->cams.eval_views * r->cams.resolution * r->cams.resolution;
    const sl_render *er = &r->eval_render;
    for (size_t p = 0; p < px; p++) {
        int fg = er->opacity[p] > 0.5f;
        r->eval_mask[p] = (float)fg;
        r->eval_depth[p] = fg && er->depth ? er->depth[p] / er->opacity[p] : 0.0f;
    }
    sl_log_table_set(r->eval_table, r->col_eval_iou, sl_mask_iou(r->eval_mask, r->ref_mask, px));
    if (r->col_eval_depth >= 0)
        sl_log_table_set(r->eval_table, r->col_eval_depth,
                         sl_masked_depth_l1(r->eval_depth, r->eval_mask, r->ref_depth,
                                            r->ref_mask, px));
}

/* Renders the evaluation cameras; logs PSNR (when the prior has ground truth) and/or the
 * uint8 renders. `done` is the number of optimizer steps finished. */
static sl_status evaluate(run *r, int64_t done, int do_eval, int do_render, double t_start,
                          sl_error *err)
{
    const sl_representation_vtable *rv = r->repr.desc->vtable;
    int V = r->cams.eval_views, R = r->cams.resolution;
    sl_render_request req = { r->eval_cams, V, done, SL_RENDER_EVAL };
    sl_status st = rv->render(r->repr.state, &req, &r->eval_render, err);
    if (st != SL_OK) {
        sl_error_prefix(err, "evaluation after %lld steps: representation '%s'", (long long)done,
                        r->repr.label);
        return st;
    }
    size_t view = (size_t)R * R * 3;
    if (do_eval) {
        sl_log_table_set(r->eval_table, r->col_eval_step, (double)done);
        sl_log_table_set(r->eval_table, r->col_eval_time, sl_now_s() - t_start);
        if (r->has_reference) {
            double psnr = 0;
            for (int v = 0; v < V; v++)
                psnr += sl_image_psnr(r->eval_render.rgb + v * view, r->reference + v * view, view);
            psnr /= V;
            sl_log_table_set(r->eval_table, r->col_eval_psnr, psnr);
            if (r->first_psnr_step < 0) {
                r->first_psnr = psnr;
                r->first_psnr_step = done;
            }
            r->last_psnr = psnr;
            r->last_psnr_step = done;
            double ssim = 0;
            for (int v = 0; v < V; v++)
                ssim += sl_ssim(r->eval_render.rgb + v * view, r->reference + v * view, R, R, 3);
            sl_log_table_set(r->eval_table, r->col_eval_ssim, ssim / V);
        }
        if (r->has_geometry)
            log_geometry_metrics(r);
        if ((st = sl_log_table_commit_row(r->eval_table, err)) != SL_OK)
            return st;
    }
    if (do_render) {
        sl_image_to_u8(r->eval_render.rgb, (size_t)V * view, r->render_u8);
        if ((st = sl_log_renders_append(r->log, "rgb", done, r->render_u8, err)) != SL_OK)
            return st;
        r->renders_logged++;
    }
    return SL_OK;
}

static int due(int64_t done, int64_t every, int64_t total)
{
    return done == 0 || done == total || (every > 0 && done % every == 0);
}

/* `seconds` and `ran` cover this process only (a resumed run counts from its checkpoint). */
static void print_summary(run *r, int64_t done, int64_t ran, double seconds, sl_status outcome)
{
    FILE *out = r->out;
    char dur[32];
    sl_format_duration(seconds, dur, sizeof dur);
    int threads = omp_get_max_threads();
    fprintf(out, "%s: %lld/%lld steps in %s (%.1f it/s, %d thread%s)",
            sl_params_string(r->root, "name"), (long long)done,
            (long long)sl_params_int(r->root, "steps"), dur, seconds > 0 ? ran / seconds : 0.0,
            threads, threads == 1 ? "" : "s");
    if (r->resuming)
        fprintf(out, ", resumed after %lld", (long long)r->resume_done);
    if (outcome == SL_ERR_INTERRUPTED)
        fprintf(out, ", interrupted");
    else if (outcome != SL_OK)
        fprintf(out, ", stopped by an error");
    fprintf(out, "; %s + %s + %s", r->prior.label, r->repr.label, r->est.label);
    if (done > 0)
        fprintf(out, "; loss %.4g at the first step, %.4g at the last", r->first_loss,
                r->last_loss);
    if (r->has_reference && r->first_psnr_step >= 0)
        fprintf(out, "; eval PSNR %.2f dB after %lld steps -> %.2f dB after %lld (%d view%s)",
                r->first_psnr, (long long)r->first_psnr_step, r->last_psnr,
                (long long)r->last_psnr_step, r->cams.eval_views,
                r->cams.eval_views == 1 ? "" : "s");
    if (r->mesh_done) {
        fprintf(out, "; mesh %zu vertices, %zu triangles", r->mesh_vertices, r->mesh_faces);
        if (r->surface && isfinite(r->mesh_chamfer))
            fprintf(out, ", chamfer %.4g", r->mesh_chamfer);
    }
    fprintf(out, "; %lld render sets logged.\n", (long long)r->renders_logged);
}

static sl_status final_mesh(run *r, int64_t done, sl_error *err);

typedef struct schedule_cfg {
    int64_t steps, flush_every, render_every, eval_every, ckpt_every;
} schedule_cfg;

/* What follows step `done` (done steps finished): the checkpoint, then the evaluation and
 * renders due at `done`, then the flush. The checkpoint comes first so that it records the
 * log as an uninterrupted run has it whatever happens next: an evaluation forced by a stop
 * or by the end of the run is not part of a continued run's log (a resume cuts it off),
 * and the resumed run performs the evaluation due at `done` itself, with the same state
 * and therefore the same numbers. `resumed_here`: the checkpoint being resumed from
 * describes exactly this point, so none is written. */
static sl_status after_step(run *r, const schedule_cfg *c, int64_t done, int resumed_here,
                            double t_start, sl_error *err)
{
    int stopping = g_stop_requested != 0;
    int final = done == c->steps || stopping;
    sl_status st = SL_OK;
    if (!resumed_here && (final || (c->ckpt_every > 0 && done % c->ckpt_every == 0)))
        st = write_checkpoint(r, done, sl_now_s() - t_start, err);
    int do_eval = stopping || due(done, c->eval_every, c->steps);
    int do_render = stopping || due(done, c->render_every, c->steps);
    /* The final mesh and its Chamfer distance (set in the eval row that evaluate commits). */
    if (st == SL_OK && final && r->mesh_enabled)
        st = final_mesh(r, done, err);
    if (st == SL_OK && (do_eval || do_render))
        st = evaluate(r, done, do_eval, do_render, t_start, err);
    if (st == SL_OK && (done % c->flush_every == 0 || final))
        st = sl_log_flush(r->log, err);
    if (st == SL_OK && stopping)
        st = sl_error_set(err, SL_ERR_INTERRUPTED,
                          "interrupted after %lld steps; the log holds every finished step "
                          "and the checkpoint '%s' continues it (steinlab run --resume %s)",
                          (long long)done, r->ckpt_path, r->log_path);
    return st;
}

static sl_status train(run *r, sl_error *err)
{
    schedule_cfg c = {
        .steps = sl_params_int(r->root, "steps"),
        .flush_every = sl_params_int(r->logp, "flush_every"),
        .render_every = sl_params_int(r->logp, "render_every"),
        .eval_every = sl_params_int(r->logp, "eval_every"),
        .ckpt_every = sl_params_int(r->logp, "checkpoint_every"),
    };
    static const sl_progress_style styles[] = { SL_PROGRESS_AUTO, SL_PROGRESS_BAR,
                                                SL_PROGRESS_LINES, SL_PROGRESS_NONE };
    const char *pname = sl_params_string(r->logp, "progress");
    sl_progress_style style = styles[!strcmp(pname, "bar") ? 1 : !strcmp(pname, "lines") ? 2
                                     : !strcmp(pname, "none") ? 3 : 0];
    double session_start = sl_now_s();
    /* time_s continues the checkpoint's clock, so a resumed log reads as one run. */
    double t_start = session_start - (r->resuming ? r->resume_elapsed : 0.0);
    int64_t done = r->resuming ? r->resume_done : 0;
    sl_status st = SL_OK;
    if (!r->resuming) {
        r->first_psnr_step = -1;
        st = evaluate(r, 0, 1, 1, t_start, err);
        if (st == SL_OK)
            st = sl_log_flush(r->log, err);
    }
    sl_progress prog;
    sl_progress_start(&prog, r->out, style, done, c.steps);
    if (st == SL_OK && r->resuming)
        st = after_step(r, &c, done, 1, t_start, err);
    while (st == SL_OK && done < c.steps) {
        if (r->probe_every > 0 && done % r->probe_every == 0)
            st = run_probe(r, done, err);
        if (st == SL_OK)
            st = run_step(r, done, t_start, err);
        if (st != SL_OK)
            break;
        done++;
        sl_progress_update(&prog, done, r->last_loss);
        st = after_step(r, &c, done, 0, t_start, err);
    }
    sl_progress_finish(&prog);
    /* Keep what was logged before a failure: flush it (its own error is secondary). */
    if (st != SL_OK) {
        sl_error flush_err;
        sl_log_flush(r->log, &flush_err);
    }
    print_summary(r, done, done - (r->resuming ? r->resume_done : 0), sl_now_s() - session_start,
                  st);
    return st;
}

/* ------------------------------------------------------------------ the final mesh */

/* A core stream of its own for the points sampled on the extracted mesh (the core's named
 * streams are small integers, steinlab/rng.h; plugins start at SL_STREAM_PLUGIN_BASE). */
enum { STREAM_MESH_SAMPLES = 0x0F01 };

static int repr_has_field(const sl_representation_vtable *rv)
{
    return rv->sample_field && rv->field_bounds;
}

sl_status sl_repr_extract_mesh(const sl_representation_vtable *rv, void *state, int resolution,
                               double threshold, sl_mesh *out, float bounds[6], float *level,
                               sl_error *err)
{
    memset(out, 0, sizeof *out);
    if (!repr_has_field(rv))
        return sl_error_set(err, SL_ERR_UNSUPPORTED, "the representation has no density field "
                            "(sample_field / field_bounds), so no mesh can be extracted");
    float own = 0;
    rv->field_bounds(state, bounds, &own);
    if (SL_REPRESENTATION_HAS(rv, surface_mesh)) {
        /* The surface that renders, not a level set resampled from it. */
        *level = own;
        return rv->surface_mesh(state, out, err);
    }
    *level = isnan(threshold) ? own : (float)threshold;
    /* sample_field has the sl_field_fn signature; the state is its context. */
    return sl_mesh_extract((sl_field_fn)rv->sample_field, state, bounds, resolution, *level, 1,
                           out, err);
}

/* /eval columns of the Chamfer distance: attached (resume) or created with the other eval
 * columns, before the table is cut back to a checkpoint. */
static sl_status define_mesh_columns(run *r, sl_error *err)
{
    const sl_representation_vtable *rv = r->repr.desc->vtable;
    const sl_prior_vtable *pv = r->prior.desc->vtable;
    r->mesh_enabled = sl_params_int(r->logp, "mesh_resolution") > 0 && repr_has_field(rv);
    r->surface = NULL;
    if (!r->mesh_enabled)
        return SL_OK;
    const sl_surface_sampler *s = pv->extension ? pv->extension(r->prior.state,
                                                                SL_EXT_SURFACE_SAMPLER) : NULL;
    if (s && s->struct_size >= sizeof *s && s->sample)
        r->surface = s;
    if (!r->surface)
        return SL_OK;
    sl_status st = log_column(r, r->eval_table, "chamfer",
                              "symmetric Chamfer distance 0.5 (a + b) between the final mesh "
                              "and the prior's true surface, log.chamfer_points points on "
                              "each; NaN on every row but the last (the end of the run)",
                              SL_LOG_F64, &r->col_eval_chamfer, err);
    if (st == SL_OK)
        st = log_column(r, r->eval_table, "chamfer_mesh_to_true",
                        "a: mean distance from a point of the final mesh to the nearest "
                        "true-surface point (accuracy); last row only", SL_LOG_F64,
                        &r->col_eval_chamfer_pt, err);
    if (st == SL_OK)
        st = log_column(r, r->eval_table, "chamfer_true_to_mesh",
                        "b: mean distance from a true-surface point to the nearest point of the "
                        "final mesh (completeness); last row only", SL_LOG_F64,
                        &r->col_eval_chamfer_tp, err);
    return st;
}

static const struct {
    const char *path;
    sl_log_array_type type;
    int cols;
    const char *doc;
} mesh_arrays[] = {
    { "/mesh/vertices", SL_LOG_ARRAY_F32, 3, "(V, 3) float32 vertex positions (world) of the "
      "marching-cubes mesh of the representation's density at the end of the run" },
    { "/mesh/colors", SL_LOG_ARRAY_U8, 3, "(V, 3) uint8 vertex colours: the representation's "
      "rgb at each vertex" },
    { "/mesh/faces", SL_LOG_ARRAY_I32, 3, "(F, 3) int32 vertex indices, counter-clockwise seen "
      "from outside (normals toward lower density)" },
    { "/mesh/bounds", SL_LOG_ARRAY_F32, 6, "(1, 6) float32 box sampled: min xyz, max xyz" },
    { "/mesh/threshold", SL_LOG_ARRAY_F32, 0, "(1,) float32 density iso-level of the surface" },
    { "/mesh/step", SL_LOG_ARRAY_I64, 0, "(1,) int64 optimizer steps done when the mesh was "
      "extracted; written last, so one row means the mesh is complete" },
};

/* /mesh: created empty with the log (SWMR forbids creating it at the end); a resumed run
 * attaches it and empties it, since the mesh belongs to the run's end. */
static sl_status define_mesh_arrays(run *r, sl_error *err)
{
    if (!r->mesh_enabled)
        return SL_OK;
    size_t n = sizeof mesh_arrays / sizeof mesh_arrays[0];
    sl_status st = SL_OK;
    for (size_t i = 0; i < n && st == SL_OK; i++) {
        if (r->resuming) {
            st = sl_log_array_open(r->log, mesh_arrays[i].path, mesh_arrays[i].type,
                                   mesh_arrays[i].cols, err);
            if (st == SL_OK)
                st = sl_log_array_write(r->log, mesh_arrays[i].path, NULL, 0, err);
        } else {
            st = sl_log_array_create(r->log, mesh_arrays[i].path, mesh_arrays[i].type,
                                     mesh_arrays[i].cols, mesh_arrays[i].doc, err);
        }
    }
    if (st == SL_OK && !r->resuming)
        st = sl_log_attr_int(r->log, "/mesh", "resolution",
                             sl_params_int(r->logp, "mesh_resolution"), err);
    return st;
}

/* The Chamfer distance of the mesh to the prior's surface, chamfer_points on each side:
 * both samples are pure functions of the seed, so the figure is deterministic. A prior
 * that cannot sample its scene (SL_ERR_UNSUPPORTED) leaves NaN with a warning. */
static sl_status mesh_chamfer(run *r, const sl_mesh *m, sl_chamfer *cd, sl_error *err)
{
    size_t n = (size_t)sl_params_int(r->logp, "chamfer_points");
    uint64_t seed = (uint64_t)sl_params_int(r->root, "seed");
    float *pred = malloc(n * 3 * sizeof(float)), *truth = malloc(n * 3 * sizeof(float));
    sl_status st = SL_OK;
    cd->chamfer = cd->a_to_b = cd->b_to_a = NAN;
    if (!pred || !truth)
        st = sl_error_set(err, SL_ERR_NOMEM, "chamfer: out of memory (%zu points)", n);
    if (st == SL_OK) {
        st = r->surface->sample(r->prior.state, n, seed, truth, err);
        if (st != SL_OK) {
            sl_error_prefix(err, "prior '%s': surface sampler", r->prior.label);
            if (st == SL_ERR_UNSUPPORTED) {
                fprintf(stderr, "warning: no chamfer distance: %s\n", err->msg);
                st = SL_OK;
                n = 0;
            }
        }
    }
    if (st == SL_OK && n && m->n_faces == 0) {
        fprintf(stderr, "warning: no chamfer distance: the mesh is empty (the density never "
                "crosses the threshold inside the field's bounds)\n");
        n = 0;
    }
    if (st == SL_OK && n) {
        sl_rng_key key = { seed, 0, STREAM_MESH_SAMPLES, 0 };
        st = sl_mesh_sample(m, n, key, pred, err);
        if (st == SL_OK)
            st = sl_chamfer_distance(pred, n, truth, n, cd, err);
    }
    free(pred);
    free(truth);
    return st;
}

/* At the end of the run (or a stop by signal): the mesh into /mesh, the Chamfer distance
 * into the eval row that the following evaluation commits. */
static sl_status final_mesh(run *r, int64_t done, sl_error *err)
{
    const sl_representation_vtable *rv = r->repr.desc->vtable;
    double thr = sl_params_has(r->logp, "mesh_threshold") ? sl_params_float(r->logp, "mesh_threshold")
                                                          : NAN;
    sl_mesh m;
    float bounds[6], level = 0;
    sl_status st = sl_repr_extract_mesh(rv, r->repr.state,
                                        (int)sl_params_int(r->logp, "mesh_resolution"), thr, &m,
                                        bounds, &level, err);
    if (st != SL_OK) {
        sl_error_prefix(err, "mesh after %lld steps: representation '%s'", (long long)done,
                        r->repr.label);
        return st;
    }
    int64_t step = done;
    st = sl_log_array_write(r->log, "/mesh/vertices", m.vertices, (int64_t)m.n_vertices, err);
    if (st == SL_OK)
        st = sl_log_array_write(r->log, "/mesh/colors", m.colors, (int64_t)m.n_vertices, err);
    if (st == SL_OK)
        st = sl_log_array_write(r->log, "/mesh/faces", m.faces, (int64_t)m.n_faces, err);
    if (st == SL_OK)
        st = sl_log_array_write(r->log, "/mesh/bounds", bounds, 1, err);
    if (st == SL_OK)
        st = sl_log_array_write(r->log, "/mesh/threshold", &level, 1, err);
    if (st == SL_OK)
        st = sl_log_array_write(r->log, "/mesh/step", &step, 1, err);
    r->mesh_done = st == SL_OK;
    r->mesh_vertices = m.n_vertices;
    r->mesh_faces = m.n_faces;
    r->mesh_chamfer = NAN;
    if (st == SL_OK && r->surface) {
        sl_chamfer cd;
        st = mesh_chamfer(r, &m, &cd, err);
        if (st == SL_OK) {
            sl_log_table_set(r->eval_table, r->col_eval_chamfer, cd.chamfer);
            sl_log_table_set(r->eval_table, r->col_eval_chamfer_pt, cd.a_to_b);
            sl_log_table_set(r->eval_table, r->col_eval_chamfer_tp, cd.b_to_a);
            r->mesh_chamfer = cd.chamfer;
        }
    }
    sl_mesh_free(&m);
    return st;
}

/* ------------------------------------------------------------------ entry */

static void run_free(run *r)
{
    for (size_t e = 0; r->probe_owns && e < r->n_probes; e++) {
        instance *inst = r->probe_ests[e];
        if (!inst)
            continue;
        destroy_instance(inst);
        sl_params_free(inst->params);
        for (size_t k = 0; k < inst->n_sets; k++) {
            free(inst->sets[k].insts);
            free(inst->sets[k].refs);
        }
        free(inst->sets);
        free(inst);
    }
    free(r->probe_ests);
    free(r->probe_labels);
    free(r->probe_tables);
    free(r->probe_cols);
    free(r->resume_probe_rows);
    free(r->probe_extras);
    free(r->shadow_delta);
    destroy_instance(&r->est);
    for (size_t b = r->n_baselines; b-- > 0;) {
        destroy_instance(r->baselines[b]);
        sl_params_free(r->baselines[b]->params);
        free(r->baselines[b]);
    }
    free(r->baselines);
    for (size_t k = 0; k < r->est.n_sets; k++) {
        free(r->est.sets[k].insts);
        free(r->est.sets[k].refs);
    }
    free(r->est.sets);
    destroy_instance(&r->repr);
    destroy_instance(&r->prior);
    sl_adam_destroy(r->adam);
    if (r->log) {
        sl_error ignore;
        sl_log_close(r->log, &ignore);
    }
    for (size_t g = 0; r->group_params && g < r->n_groups; g++)
        sl_params_free(r->group_params[g]);
    free(r->group_params);
    free(r->groups);
    for (size_t i = 0; i < r->n_series; i++) {
        free(r->series[i].name);
        free(r->series[i].doc);
    }
    free(r->series);
    sl_params_free(r->prior.params);
    sl_params_free(r->repr.params);
    sl_params_free(r->est.params);
    sl_params_free(r->root);
    sl_params_free(r->cameras);
    sl_params_free(r->optimizer);
    sl_params_free(r->est_core);
    sl_params_free(r->logp);
    free_render(&r->render);
    free_render(&r->eval_render);
    free(r->render_grad.rgb);
    free(r->step_cams);
    free(r->x0);
    free(r->eps);
    free(r->x_t);
    free(r->eps_hat);
    free(r->g);
    free(r->dL_dx0);
    free(r->rgb_scratch);
    free(r->t);
    free(r->alpha);
    free(r->sigma);
    free(r->weight);
    free(r->ctxs);
    free(r->ctx_ptrs);
    free(r->eval_cams);
    free(r->reference);
    free(r->ref_depth);
    free(r->ref_mask);
    free(r->eval_depth);
    free(r->eval_mask);
    free(r->render_u8);
    /* Plugins' code must stay mapped until their states are destroyed (above). */
    sl_registry_destroy(r->registry);
    sl_node_free(r->spec);
}

/* Resuming RUN.h5: its checkpoint RUN.ckpt.h5 must exist and be readable, and the spec is
 * the one stored in the log, with at most steps=N changed (checked before anything is
 * written). */
static sl_status prepare_resume(run *r, sl_error *err)
{
    const sl_run_options *opt = r->opt;
    const char *log = opt->resume_path;
    snprintf(r->log_path, sizeof r->log_path, "%s", log);
    struct stat sb;
    if (stat(log, &sb) != 0)
        return sl_error_set(err, SL_ERR_IO, "cannot resume '%s': %s", log, strerror(errno));
    sl_status st = sl_ckpt_path_for_log(log, r->ckpt_path, sizeof r->ckpt_path, err);
    if (st != SL_OK)
        return st;
    if (stat(r->ckpt_path, &sb) != 0)
        return sl_error_set(err, SL_ERR_IO,
                            "cannot resume '%s': no checkpoint '%s' beside it (%s; a run writes "
                            "one every log.checkpoint_every steps, at its end and when stopped "
                            "by a signal)", log, r->ckpt_path, strerror(errno));
    for (size_t i = 0; i < opt->n_overrides; i++) {
        const char *o = opt->overrides[i];
        if (strncmp(o, "steps=", 6) != 0)
            return sl_error_set(err, SL_ERR_SPEC,
                                "<command line>: --resume accepts only steps=N (the rest of the "
                                "spec is the run's own, stored in its log); found '%s'", o);
    }
    if ((st = sl_ckpt_open(r->ckpt_path, &r->resume, err)) != SL_OK) {
        sl_error_prefix(err, "cannot resume '%s'", log);
        return st;
    }
    char *text = NULL, *dir = NULL;
    st = sl_log_read_attr_string(log, "/", "spec", &text, err);
    if (st == SL_OK) {
        char label[PATH_MAX + 16];
        snprintf(label, sizeof label, "%s:/spec", log);
        st = sl_spec_parse_string(text, strlen(text), label, &r->spec, err);
    }
    free(text);
    if (st == SL_OK && (st = sl_ckpt_get_string(r->resume, "spec_dir", &dir, err)) == SL_OK) {
        snprintf(r->spec_dir, sizeof r->spec_dir, "%s", dir);
        snprintf(r->abs_spec_dir, sizeof r->abs_spec_dir, "%s", dir);
        free(dir);
    }
    if (st != SL_OK) {
        sl_error_prefix(err, "cannot resume '%s'", log);
        return st;
    }
    r->resuming = 1;
    return SL_OK;
}

/* Returns a copy of a resolved spec without its top-level "steps:" line, the one key a
 * resume may change. */
static char *without_steps(const char *yaml)
{
    char *out = malloc(strlen(yaml) + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const char *line = yaml; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line + 1) : strlen(line);
        if (strncmp(line, "steps:", 6) != 0) {
            memcpy(o, line, len);
            o += len;
        }
        line += len;
    }
    *o = '\0';
    return out;
}

/* The checkpoint must come from this very spec (a log overwritten by another run of the
 * same name leaves a stale checkpoint beside it), and N must not undo finished steps. */
static sl_status check_resume(run *r, sl_error *err)
{
    int64_t steps = sl_params_int(r->root, "steps");
    if (steps < r->resume_done)
        return sl_error_set(err, SL_ERR_SPEC,
                            "cannot resume '%s' with steps=%lld: its checkpoint has done %lld "
                            "steps already", r->log_path, (long long)steps,
                            (long long)r->resume_done);
    char *saved = NULL;
    sl_status st = sl_ckpt_get_string(r->resume, "spec", &saved, err);
    if (st != SL_OK)
        return st;
    char *now = resolved_spec_yaml(r);
    char *a = now ? without_steps(now) : NULL, *b = without_steps(saved);
    if (!a || !b) {
        st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    } else if (strcmp(a, b) != 0) {
        size_t i = 0, line = 1, start = 0;
        while (a[i] && a[i] == b[i]) {
            if (a[i] == '\n') {
                line++;
                start = i + 1;
            }
            i++;
        }
        const char *ea = strchr(a + start, '\n'), *eb = strchr(b + start, '\n');
        int la = ea ? (int)(ea - (a + start)) : (int)strlen(a + start);
        int lb = eb ? (int)(eb - (b + start)) : (int)strlen(b + start);
        st = sl_error_set(err, SL_ERR_FORMAT,
                          "cannot resume '%s': its checkpoint '%s' was written by another spec "
                          "(line %zu of the resolved spec: the log has '%.*s', the checkpoint "
                          "'%.*s')", r->log_path, r->ckpt_path, line, la, a + start, lb,
                          b + start);
    }
    free(a);
    free(b);
    free(now);
    free(saved);
    return st;
}

static void set_spec_dir(run *r, const char *spec_path)
{
    const char *slash = strrchr(spec_path, '/');
    if (!slash)
        snprintf(r->spec_dir, sizeof r->spec_dir, ".");
    else if (slash == spec_path)
        snprintf(r->spec_dir, sizeof r->spec_dir, "/");
    else
        snprintf(r->spec_dir, sizeof r->spec_dir, "%.*s", (int)(slash - spec_path), spec_path);
}

sl_status sl_run(const sl_run_options *opt, sl_run_result *result, sl_error *err)
{
    run r;
    memset(&r, 0, sizeof r);
    r.opt = opt;
    r.out = opt->out ? opt->out : stdout;
    r.col_var_img = r.col_eval_psnr = r.col_eval_ssim = r.col_eval_depth = r.col_eval_iou = -1;
    r.col_eval_chamfer = r.col_eval_chamfer_pt = r.col_eval_chamfer_tp = -1;
    if (result)
        memset(result, 0, sizeof *result);
    if (opt->threads > 0)
        omp_set_num_threads(opt->threads);

    sl_status st;
    if (opt->resume_path) {
        st = prepare_resume(&r, err);
    } else {
        set_spec_dir(&r, opt->spec_path);
        r.spec_from_file = 1;
        if (!realpath(r.spec_dir, r.abs_spec_dir))
            snprintf(r.abs_spec_dir, sizeof r.abs_spec_dir, "%s", r.spec_dir);
        st = sl_spec_parse_file(opt->spec_path, &r.spec, err);
    }
    for (size_t i = 0; st == SL_OK && i < opt->n_overrides; i++)
        st = sl_spec_override(r.spec, opt->overrides[i], err);
    if (st == SL_OK && !opt->resume_path)
        st = sl_sweep_refuse_in_run(r.spec, opt->spec_path, err);
    if (st == SL_OK)
        st = validate_and_create(&r, err);
    if (st == SL_OK && r.resuming)
        st = check_resume(&r, err);
    /* Everything the checkpoint holds is loaded: the file is not needed any more. */
    sl_ckpt_close(r.resume);
    r.resume = NULL;
    if (st == SL_OK && !opt->dry_run) {
        if (!r.resuming)
            default_log_path(&r);
        if (r.ckpt_path[0] == '\0')
            st = sl_ckpt_path_for_log(r.log_path, r.ckpt_path, sizeof r.ckpt_path, err);
        if (st == SL_OK)
            st = define_log(&r, err);
        /* A new log makes a checkpoint left beside it by an earlier run meaningless: remove
         * it, so that a resume after an early crash reports "no checkpoint" instead of
         * finding a stale one. */
        if (st == SL_OK && !r.resuming && unlink(r.ckpt_path) != 0 && errno != ENOENT)
            st = sl_error_set(err, SL_ERR_IO, "cannot remove the old checkpoint '%s': %s",
                              r.ckpt_path, strerror(errno));
        if (result)
            snprintf(result->log_path, sizeof result->log_path, "%s", r.log_path);
        if (st == SL_OK) {
            struct sigaction sa, old_int, old_term;
            if (opt->handle_signals) {
                g_stop_requested = 0;
                memset(&sa, 0, sizeof sa);
                sa.sa_handler = on_signal;
                sigaction(SIGINT, &sa, &old_int);
                sigaction(SIGTERM, &sa, &old_term);
            }
            st = train(&r, err);
            if (opt->handle_signals) {
                sigaction(SIGINT, &old_int, NULL);
                sigaction(SIGTERM, &old_term, NULL);
            }
            if (result)
                result->steps_done = sl_log_table_rows(r.steps_table);
        }
        if (r.log) {
            sl_error close_err;
            sl_status cst = sl_log_close(r.log, &close_err);
            r.log = NULL;
            if (st == SL_OK && cst != SL_OK) {
                *err = close_err;
                st = cst;
            }
        }
    }
    run_free(&r);
    return st;
}

/* ------------------------------------------------------------------ a run's representation */

/* The resume path without its writes: the checkpoint's resolved spec, the representation
 * alone (created, its load_state, its parameter values); neither the log nor the
 * checkpoint is modified. The prior and the estimator are not created: host->prior()
 * returns NULL to the representation here. */
sl_status sl_run_open_representation(const char *log_path, sl_run_repr **out, sl_error *err)
{
    if (!out || !log_path)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_run_open_representation: NULL argument");
    *out = NULL;
    run *r = calloc(1, sizeof *r);
    sl_run_repr *h = calloc(1, sizeof *h);
    if (!r || !h) {
        free(r);
        free(h);
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    }
    sl_diffusion_default(&r->diffusion);
    snprintf(r->log_path, sizeof r->log_path, "%s", log_path);
    sl_status st = sl_ckpt_path_for_log(log_path, r->ckpt_path, sizeof r->ckpt_path, err);
    struct stat sb;
    if (st == SL_OK && stat(r->ckpt_path, &sb) != 0)
        st = sl_error_set(err, SL_ERR_IO, "'%s': no checkpoint '%s' beside it (%s); the run's "
                          "parameters are only kept there", log_path, r->ckpt_path,
                          strerror(errno));
    if (st == SL_OK)
        st = sl_ckpt_open(r->ckpt_path, &r->resume, err);
    char *text = NULL, *dir = NULL;
    if (st == SL_OK)
        st = sl_ckpt_get_string(r->resume, "spec", &text, err);
    if (st == SL_OK)
        st = sl_ckpt_get_string(r->resume, "spec_dir", &dir, err);
    if (st == SL_OK) {
        snprintf(r->spec_dir, sizeof r->spec_dir, "%s", dir);
        snprintf(r->abs_spec_dir, sizeof r->abs_spec_dir, "%s", dir);
        char label[PATH_MAX + 16];
        snprintf(label, sizeof label, "%s:/spec", r->ckpt_path);
        st = sl_spec_parse_string(text, strlen(text), label, &r->spec, err);
    }
    free(text);
    free(dir);
    if (st == SL_OK) st = resolve_core_sections(r, err);
    if (st == SL_OK) st = load_registry(r, err);
    if (st == SL_OK) st = find_plugin(r, "representation", SL_KIND_REPRESENTATION, &r->repr, err);
    if (st == SL_OK) st = resolve_plugin_section(r, &r->repr, err);
    if (st == SL_OK) {
        r->defining = 1;   /* its series are recorded nowhere: there is no log */
        st = create_instance(r, &r->repr, SL_STREAM_PLUGIN_BASE + 0x100, err);
        r->defining = 0;
    }
    sl_state_io *io = NULL;
    if (st == SL_OK) {
        const sl_state_fn load = sl_plugin_common_fns(r->repr.desc).load_state;
        char section[200];
        snprintf(section, sizeof section, "plugins/%s", r->repr.label);
        if (load && (st = sl_ckpt_section(r->resume, section, &io, err)) == SL_OK &&
            (st = load(r->repr.state, io, err)) != SL_OK)
            sl_error_prefix(err, "representation '%s': load_state", r->repr.label);
    }
    /* Parameter values only: Adam's moments are of no use here. */
    const sl_representation_vtable *rv = r->repr.desc ? r->repr.desc->vtable : NULL;
    int64_t n_groups = 0;
    if (st == SL_OK) {
        size_t n = rv->param_groups(r->repr.state, NULL, 0);
        r->groups = calloc(n ? n : 1, sizeof *r->groups);
        if (!r->groups)
            st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        else
            r->n_groups = rv->param_groups(r->repr.state, r->groups, n);
    }
    if (st == SL_OK) st = sl_ckpt_section(r->resume, "core", &io, err);
    if (st == SL_OK) st = get_i64(io, "steps_done", &h->steps_done, err);
    if (st == SL_OK) st = get_i64(io, "groups/count", &n_groups, err);
    if (st == SL_OK && n_groups != (int64_t)r->n_groups)
        st = sl_error_set(err, SL_ERR_FORMAT, "checkpoint '%s' holds %lld parameter groups, "
                          "representation '%s' has %zu", r->ckpt_path, (long long)n_groups,
                          r->repr.label, r->n_groups);
    for (size_t g = 0; st == SL_OK && g < r->n_groups; g++) {
        char name[160];
        snprintf(name, sizeof name, "groups/%s/data", r->groups[g].name);
        st = sl_state_get(io, name, SL_STATE_F32, r->groups[g].data, r->groups[g].n, err);
    }
    sl_ckpt_close(r->resume);
    r->resume = NULL;
    if (st != SL_OK) {
        sl_error_prefix(err, "cannot open the representation of '%s'", log_path);
        run_free(r);
        free(r);
        free(h);
        return st;
    }
    h->vt = rv;
    h->state = r->repr.state;
    h->label = r->repr.label;
    h->mesh_resolution = (int)sl_params_int(r->logp, "mesh_resolution");
    h->mesh_threshold = sl_params_has(r->logp, "mesh_threshold")
                            ? sl_params_float(r->logp, "mesh_threshold") : NAN;
    sl_camera_sampler_init(&h->cameras, r->cameras, 0);
    h->priv = r;
    *out = h;
    return SL_OK;
}

void sl_run_repr_close(sl_run_repr *h)
{
    if (!h)
        return;
    run *r = h->priv;
    if (r) {
        run_free(r);
        free(r);
    }
    free(h);
}
