/* steinlab/plugin.h — the plugin contract.
 *
 * A plugin is a shared object that exports one symbol, steinlab_plugin_entry, returning
 * descriptors for index 0, 1, ... until NULL (one library may hold several plugins).
 * The host rejects a descriptor whose abi_version differs from SL_ABI_VERSION, whose
 * struct_size is smaller than the host's first published size, whose name is taken, or
 * whose vtable lacks a member marked (required) below. Build plugins with
 * -fvisibility=hidden; SL_PLUGIN_EXPORT marks the entry symbol.
 *
 * Lifecycle rules for every kind:
 * - create() MUST fill *state and return SL_OK, or return an error with a message and leave
 *   nothing allocated. It is called once per instance, after the spec is validated and
 *   before the run's log enters its append-only phase: it is the only place where a
 *   plugin may declare log series (sl_host.declare_series).
 * - destroy() MUST free everything create() and later calls allocated. It is called once,
 *   also after a failed run. It may be called with a state on which no other call was made.
 * - No member is called concurrently on the same state; a plugin may use OpenMP inside a call.
 * - Plugins MUST NOT call exit() or abort() on bad input: they return a status.
 * - All tensors are float32, row-major, with the shapes given in the comments; `const`
 *   inputs are owned by the caller and valid only during the call.
 *
 * Growth: fields are only ever appended to these structs; struct_size tells the host how
 * much of a struct the plugin knows. Removing or reordering a field bumps SL_ABI_VERSION. */
#ifndef STEINLAB_PLUGIN_H
#define STEINLAB_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/camera.h"
#include "steinlab/diffusion.h"
#include "steinlab/mesh.h"
#include "steinlab/optim.h"
#include "steinlab/params.h"
#include "steinlab/rng.h"
#include "steinlab/state_io.h"
#include "steinlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SL_ABI_VERSION 1u
#define SL_PLUGIN_ENTRY_SYMBOL "steinlab_plugin_entry"
#define SL_PLUGIN_EXPORT __attribute__((visibility("default")))

typedef struct sl_host sl_host;   /* host services, defined below */
typedef struct sl_baseline_ref sl_baseline_ref;   /* a live baseline, defined below */

typedef enum sl_plugin_kind {
    SL_KIND_PRIOR = 1,
    SL_KIND_REPRESENTATION = 2,
    SL_KIND_ESTIMATOR = 3,
    SL_KIND_BASELINE = 4
} sl_plugin_kind;

const char *sl_plugin_kind_name(sl_plugin_kind kind);   /* "prior", "representation", ... */

typedef enum sl_log_level { SL_LOG_DEBUG = 0, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR } sl_log_level;

/* ---------------------------------------------------------------- render buffers */

enum {
    SL_RENDER_RGB = 1u << 0,
    SL_RENDER_DEPTH = 1u << 1,
    SL_RENDER_NORMAL = 1u << 2,
    SL_RENDER_OPACITY = 1u << 3
};

/* Outputs of a representation for a batch of cameras of one size (architecture.md,
 * Conventions). Allocated by the host: for EVAL renders every output the representation
 * declares, for TRAIN renders only rgb and what the run reads (the estimators' and
 * baselines' required_outputs); a NULL field is not requested (a representation's own
 * regularisers compute what they need themselves). The same struct carries gradients dL/d(output) into
 * backward, where a NULL field means no gradient flows into that output. */
typedef struct sl_render {
    int batch, height, width;
    float *rgb;      /* (B, H, W, 3) in [0, 1] */
    float *depth;    /* (B, H, W) unnormalised expected z-depth sum_i w_i z_i; background 0 */
    float *normal;   /* (B, H, W, 3) world-space unit normals weighted by opacity; background 0 */
    float *opacity;  /* (B, H, W) sum_i w_i in [0, 1] */
} sl_render;

typedef enum sl_render_mode {
    SL_RENDER_TRAIN = 0,   /* a training step: keep what backward needs */
    SL_RENDER_EVAL = 1     /* evaluation / logging: no backward follows, no randomness */
} sl_render_mode;

typedef struct sl_render_request {
    const sl_camera *cams;   /* (batch,) all of the same width and height */
    int batch;
    int64_t step;            /* training step (selects per-step randomness) */
    sl_render_mode mode;
} sl_render_request;

/* ---------------------------------------------------------------- prior */

typedef struct sl_prior_info {
    int height, width, channels;      /* the space the prior works in (pixel priors: C = 3) */
    const sl_diffusion *diffusion;    /* its schedule; valid while the prior lives */
    double guidance_scale;            /* CFG scale s in eps_u + s (eps_y - eps_u) (diffusers form) */
} sl_prior_info;

typedef struct sl_prior_query {
    int batch;
    const float *x_t;         /* (B, H, W, C) noisy image in prior space ([-1, 1] for pixels) */
    const int *t;             /* (B,) integer diffusion times in [1, T] */
    const sl_camera *cams;    /* (B,) the cameras the clean images were rendered from */
    int64_t step;
} sl_prior_query;

typedef struct sl_prior_vtable {
    uint32_t struct_size;
    /* (required) */
    sl_status (*create)(const sl_host *host, const sl_params *params, void **state,
                        sl_error *err);
    /* (required) */
    void (*destroy)(void *state);
    /* (required) Fills *info; may be called at any time after create. */
    void (*info)(const void *state, sl_prior_info *info);
    /* (required) eps_hat: (B, H, W, C), overwritten with the guided noise prediction. */
    sl_status (*noise_pred)(void *state, const sl_prior_query *q, float *eps_hat,
                            sl_error *err);
    /* (optional) Ground truth for evaluation: the clean RGB image in [0, 1] that the prior's
     * data shows from `cam`, (cam->height, cam->width, 3), overwritten. NULL or
     * SL_ERR_UNSUPPORTED when the prior has no ground truth. */
    sl_status (*reference)(void *state, const sl_camera *cam, float *rgb, sl_error *err);
    /* (optional) An extension interface by URI (e.g. a depth estimator on x_t); NULL when
     * unknown. The returned pointer lives as long as the state. */
    const void *(*extension)(void *state, const char *uri);
    /* (optional) Ground-truth geometry for evaluation from `cam`, each (cam->height,
     * cam->width[, 3]) and overwritten; any output may be NULL (not wanted): z-depth (0 on
     * the background), world-space unit normals (0 on the background), and the mask (1
     * where the data has a surface, else 0). NULL or SL_ERR_UNSUPPORTED: no ground truth. */
    sl_status (*reference_geometry)(void *state, const sl_camera *cam, float *depth,
                                    float *normal, float *mask, sl_error *err);
    /* (optional) Checkpoints (steinlab/state_io.h): save everything beyond what the host
     * saves itself that the next steps depend on; load it back into a freshly created
     * state. Both NULL: the plugin has no such state. One without the other is refused. */
    sl_status (*save_state)(void *state, sl_state_io *io, sl_error *err);
    sl_status (*load_state)(void *state, sl_state_io *io, sl_error *err);
    /* (optional) Bytes this instance will need for the given parameters, estimated BEFORE
     * create() (see sl_representation_vtable.memory_bytes); 0: unknown. */
    uint64_t (*memory_bytes)(const sl_params *params);
} sl_prior_vtable;

/* A handle on a live prior, handed to other plugins through the host. */
typedef struct sl_prior_ref {
    const sl_prior_vtable *vt;
    void *state;
} sl_prior_ref;

/* ---------------------------------------------------------------- host services */

/* One host per plugin instance. Valid from create() until destroy() returns. */
struct sl_host {
    uint32_t struct_size;
    uint32_t abi_version;
    const char *label;             /* instance label (the plugin's name unless the spec sets one) */
    uint64_t seed;                 /* the run's seed */
    uint32_t rng_stream_base;      /* this instance owns RNG streams [base, base + 256) */
    void *host_ctx;                /* private to the host */
    /* (never NULL) Message to the run's console and log, prefixed with the label. */
    void (*log)(const sl_host *h, sl_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    /* (never NULL) 64-byte aligned, zero-filled memory, freed with free_mem; NULL on failure. */
    void *(*alloc)(const sl_host *h, size_t bytes);
    void (*free_mem)(const sl_host *h, void *ptr);
    /* (never NULL) Declares a per-step series /steps/NAME (double). Only during create();
     * fails on a duplicate name or when called later. */
    sl_status (*declare_series)(const sl_host *h, const char *name, const char *doc,
                                sl_error *err);
    /* (never NULL) The value of a declared series for the current step (last call wins;
     * a series without a value in a step logs NaN). Unknown names are ignored with a
     * warning the first time. */
    void (*record)(const sl_host *h, const char *name, double value);
    /* (never NULL) The run's prior; NULL when called from the prior itself. */
    const sl_prior_ref *(*prior)(const sl_host *h);
    /* The run's diffusion schedule (the prior's). NULL for the prior's own host. */
    const sl_diffusion *diffusion;
    /* Directory of the spec file ("." for a spec given on standard input). Relative paths
     * in a spec are relative to it: see sl_host_path. */
    const char *spec_dir;
    /* (never NULL) The baseline instances the host created from this plugin's PLUGIN_LIST
     * parameter `param` (entries of kind SL_KIND_BASELINE), in list order: *out receives an
     * array valid until destroy(), the return value its length (0 when the parameter is
     * absent or not a baseline list). The host creates, saves, restores and destroys them;
     * the plugin calls their eval() and update(). */
    size_t (*baselines)(const sl_host *h, const char *param, const sl_baseline_ref **out);
    /* (may be NULL: check struct_size and the pointer) Resizes a parameter group of the
     * representation that owns this host, e.g. after densification. Only a representation
     * may call it, and only from step_end(). (In load_state() a representation resizes its
     * own arrays without it: the host builds the optimizer on param_groups() afterwards,
     * steinlab/state_io.h.) `group` is a name from
     * param_groups(); new_data, new_grad: (new_n,) the group's new arrays, allocated by the
     * plugin with host->alloc and filled with the new values (grad zeroed); src: (new_n,)
     * for each new element the old element whose optimizer moments it takes, or -1 for zero
     * moments (sl_adam_remap). The host updates the optimizer and its own copy of the
     * group (pointers and size); after SL_OK the
     * plugin frees the old arrays and reports the new ones from param_groups(); on failure
     * nothing changed and the old arrays stay in use. A plugin remaps its groups one at a
     * time: between two calls they may disagree in size, which nothing observes before
     * step_end() returns. */
    sl_status (*remap_group)(const sl_host *h, const char *group, const int64_t *src,
                             size_t new_n, float *new_data, float *new_grad, sl_error *err);
};

/* Resolves a path from a spec: absolute paths are kept, relative ones are joined to
 * host->spec_dir. Fails when the result does not fit in `size` bytes. */
sl_status sl_host_path(const sl_host *host, const char *path, char *out, size_t size,
                       sl_error *err);

/* For estimators and baselines at create(): the run's prior and its info (image shape,
 * schedule). Fails, naming `who`, when the host gives no prior or no diffusion schedule. */
sl_status sl_host_prior_info(const sl_host *host, const char *who,
                             const sl_prior_ref **prior_out, sl_prior_info *info,
                             sl_error *err);

/* ---------------------------------------------------------------- representation */

typedef struct sl_representation_vtable {
    uint32_t struct_size;
    /* (required) */
    sl_status (*create)(const sl_host *host, const sl_params *params, void **state,
                        sl_error *err);
    /* (required) */
    void (*destroy)(void *state);
    /* (required) SL_RENDER_* mask of the outputs it can render; must include SL_RENDER_RGB. */
    uint32_t (*outputs)(const void *state);
    /* (required) Writes up to `max` groups into `groups` and returns how many it has. The
     * pointers stay valid until destroy (or until a documented resize). */
    size_t (*param_groups)(void *state, sl_param_group *groups, size_t max);
    /* (required) Renders every non-NULL output of `out` (overwrite). In SL_RENDER_TRAIN mode
     * it keeps what backward needs until the next render call. */
    sl_status (*render)(void *state, const sl_render_request *req, sl_render *out,
                        sl_error *err);
    /* (required) Gradients of the loss w.r.t. the outputs of the last TRAIN render
     * (NULL fields: no gradient), ACCUMULATED (+=) into the groups' grad arrays. */
    sl_status (*backward)(void *state, const sl_render *grad, sl_error *err);
    /* (optional) Called after each optimizer step (occupancy updates, densification). */
    sl_status (*step_end)(void *state, int64_t step, sl_error *err);
    /* (optional) For field representations (NeRF, ...): the density (and colour) of the
     * scene at world points, so the host can extract a mesh (marching cubes) and score it.
     * points: (n, 3); density: (n,) overwritten; rgb: (n, 3) in [0, 1] or NULL (not wanted).
     * `bounds` receives the axis-aligned box (min xyz, max xyz) outside which the density is
     * zero, and `threshold` a sensible default iso-level of the density. */
    sl_status (*sample_field)(void *state, const float *points, size_t n, float *density,
                              float *rgb, sl_error *err);
    void (*field_bounds)(const void *state, float bounds[6], float *threshold);
    /* (optional) Checkpoints (steinlab/state_io.h): save everything beyond what the host
     * saves itself that the next steps depend on; load it back into a freshly created
     * state. Both NULL: the plugin has no such state. One without the other is refused. */
    sl_status (*save_state)(void *state, sl_state_io *io, sl_error *err);
    sl_status (*load_state)(void *state, sl_state_io *io, sl_error *err);
    /* (optional) Bytes this instance will need for the given parameters, renders of
     * `resolution` pixels square and `batch` cameras (parameters, their gradients, the
     * optimizer's two moments, and what forward keeps for backward), estimated BEFORE
     * create() so that a spec asking for more memory than the machine has is refused with
     * the estimate; 0: unknown. */
    uint64_t (*memory_bytes)(const sl_params *params, int resolution, int batch);
    /* (optional; appended after ABI 1's first size: read only when struct_size covers it)
     * For representations with an explicit surface (DMTet): that surface as it renders,
     * vertices in world space, faces counter-clockwise seen from outside, colours when the
     * representation has them. *out is overwritten with malloc'd arrays (sl_mesh_free); an
     * empty surface is an empty mesh, not an error. The host's mesh and Chamfer distance use
     * it instead of marching cubes over sample_field (which it still needs: field_bounds). */
    sl_status (*surface_mesh)(void *state, sl_mesh *out, sl_error *err);
} sl_representation_vtable;

/* True when a representation's vtable has the appended member `field` (its struct_size
 * covers it) and sets it. */
#define SL_REPRESENTATION_HAS(vt, field)                                                   \
    ((vt)->struct_size >= offsetof(sl_representation_vtable, field) + sizeof((vt)->field) && \
     (vt)->field != NULL)

/* ---------------------------------------------------------------- estimators */

/* Everything an estimator (or baseline) may look at for one noise sample of one step. All
 * image tensors are in prior space, (B, H, W, C). */
typedef struct sl_estimator_ctx {
    int batch, height, width, channels;
    int64_t step;
    int sample;                  /* index of this (t, eps) draw within the step */
    const int *t;                /* (B,) */
    const double *alpha;         /* (B,) alpha_t */
    const double *sigma;         /* (B,) sigma_t */
    const float *x0;             /* (B, H, W, C) clean render in prior space */
    const float *eps;            /* (B, H, W, C) injected noise */
    const float *x_t;            /* (B, H, W, C) alpha x0 + sigma eps */
    const float *eps_hat;        /* (B, H, W, C) the prior's guided noise prediction */
    const sl_camera *cams;       /* (B,) */
    const sl_render *render;     /* representation outputs at render resolution (read-only) */
    const double *weight;        /* (B,) w(t): the run's weighting (estimator.weighting) at
                                    each t, the factor the host applies to Delta; estimators
                                    that minimise E|w Delta|^2 read it here */
} sl_estimator_ctx;

/* One named diagnostic value of a variance probe (sl_estimator_vtable.probe_stats). */
typedef struct sl_probe_stat {
    const char *name;   /* [a-z0-9_]+, under 64 characters: a column of /probes/<label>;
                           valid while the estimator lives */
    const char *doc;    /* one line: what the value is */
    double value;
} sl_probe_stat;

typedef struct sl_estimator_vtable {
    uint32_t struct_size;
    /* (required) */
    sl_status (*create)(const sl_host *host, const sl_params *params, void **state,
                        sl_error *err);
    /* (required) */
    void (*destroy)(void *state);
    /* (optional) SL_RENDER_* outputs it needs from the representation, decided from its
     * parameters alone (called before create, for validation). NULL: RGB only. */
    uint32_t (*required_outputs)(const sl_params *params);
    /* (required) The direction Delta (B, H, W, C), overwritten; the host multiplies by w(t). */
    sl_status (*delta)(void *state, const sl_estimator_ctx *ctx, float *delta, sl_error *err);
    /* (optional) After the optimizer step: train internal state (mu, networks) on this
     * step's samples, ctxs: (n,). Must only use these samples for the NEXT steps. */
    sl_status (*update)(void *state, const sl_estimator_ctx *const *ctxs, int n,
                        sl_error *err);
    /* (optional) Checkpoints (steinlab/state_io.h): save everything beyond what the host
     * saves itself that the next steps depend on; load it back into a freshly created
     * state. Both NULL: the plugin has no such state. One without the other is refused. */
    sl_status (*save_state)(void *state, sl_state_io *io, sl_error *err);
    sl_status (*load_state)(void *state, sl_state_io *io, sl_error *err);
    /* (optional; appended after ABI 1's first size: read only when struct_size covers it)
     * Diagnostics of a variance probe, logged as extra columns of /probes/<label>: fills
     * out[0 .. *count) (at most max) and sets *count.
     * - ctxs == NULL, n == 0: names and docs only, called once after create() so the host
     *   can declare the columns; every later call returns the same names in the same order.
     * - otherwise: the probe's n draws, in order, right after delta() ran on each of them
     *   (ctxs[k]->sample = k). Their t, eps, x_t, eps_hat, weight are the draws' own; when
     *   the probe draws a camera per draw, render and x0 are the last draw's, so an
     *   estimator that needs per-draw render quantities keeps them from its delta() calls.
     * Must not change anything that later steps depend on (a diagnostic, never used for a
     * step). */
    sl_status (*probe_stats)(void *state, const sl_estimator_ctx *const *ctxs, int n,
                             sl_probe_stat *out, size_t max, size_t *count, sl_error *err);
} sl_estimator_vtable;

/* True when an estimator's vtable has the appended member `field` (its struct_size covers
 * it) and sets it. */
#define SL_ESTIMATOR_HAS(vt, field)                                                       \
    ((vt)->struct_size >= offsetof(sl_estimator_vtable, field) + sizeof((vt)->field) &&   \
     (vt)->field != NULL)

/* ---------------------------------------------------------------- baselines */

typedef struct sl_baseline_vtable {
    uint32_t struct_size;
    /* (required) */
    sl_status (*create)(const sl_host *host, const sl_params *params, void **state,
                        sl_error *err);
    /* (required) */
    void (*destroy)(void *state);
    /* (optional) SL_RENDER_* outputs it needs (before create, for validation). */
    uint32_t (*required_outputs)(const sl_params *params);
    /* (required) phi: (B,) the scalar baseline per batch element; grad_phi: (B, H, W, C)
     * d phi / d x_t (both overwritten). */
    sl_status (*eval)(void *state, const sl_estimator_ctx *ctx, float *phi, float *grad_phi,
                      sl_error *err);
    /* (optional) As sl_estimator_vtable.update. */
    sl_status (*update)(void *state, const sl_estimator_ctx *const *ctxs, int n,
                        sl_error *err);
    /* (optional) Checkpoints (steinlab/state_io.h): save everything beyond what the host
     * saves itself that the next steps depend on; load it back into a freshly created
     * state. Both NULL: the plugin has no such state. One without the other is refused. */
    sl_status (*save_state)(void *state, sl_state_io *io, sl_error *err);
    sl_status (*load_state)(void *state, sl_state_io *io, sl_error *err);
} sl_baseline_vtable;

/* A live baseline instance, handed to the estimator that lists it. */
struct sl_baseline_ref {
    const sl_baseline_vtable *vt;
    void *state;
    const char *label;        /* the entry's `label:`, else its plugin name (made unique) */
    const struct sl_plugin *desc;
};

/* ---------------------------------------------------------------- descriptor */

typedef struct sl_plugin {
    uint32_t abi_version;    /* SL_ABI_VERSION the plugin was built against */
    uint32_t struct_size;    /* sizeof(sl_plugin) the plugin was built with */
    sl_plugin_kind kind;
    const char *name;        /* unique across all loaded plugins, [a-z0-9_]+ */
    const char *version;     /* the plugin's own version, e.g. "1.0.0" */
    const char *summary;     /* one line, no trailing period */
    sl_param_schema params;  /* its spec section's keys (besides `plugin` and `label`) */
    const void *vtable;      /* sl_<kind>_vtable matching `kind` */
} sl_plugin;

typedef const sl_plugin *(*sl_plugin_entry_fn)(uint32_t index);

/* Defines the entry symbol of a library holding the given descriptors:
 *   SL_PLUGIN_ENTRY(&my_plugin)   or   SL_PLUGIN_ENTRY(&a, &b) */
#define SL_PLUGIN_ENTRY(...)                                                        \
    SL_PLUGIN_EXPORT const sl_plugin *steinlab_plugin_entry(uint32_t index);        \
    SL_PLUGIN_EXPORT const sl_plugin *steinlab_plugin_entry(uint32_t index)         \
    {                                                                               \
        static const sl_plugin *const list[] = { __VA_ARGS__ };                     \
        return index < sizeof(list) / sizeof(list[0]) ? list[index] : NULL;         \
    }

#ifdef __cplusplus
}
#endif
#endif
