/* core/driver.h — one run of an experiment spec (architecture.md, "One step of the driver").
 *
 * sl_run validates everything before it writes anything: the spec and its overrides
 * against the core's and the plugins' schemas, the plugins themselves (created, so their
 * own checks run), and the cross-plugin requirements. Only then does it create the log.
 * A run stopped by SIGINT (first signal: at the end of the current step) or by a
 * non-finite value closes its log properly before returning.
 *
 * Checkpoints (docs/reliability.md): every log.checkpoint_every steps, at the end and on a
 * stop by signal, the run writes RUN.ckpt.h5 beside its log RUN.h5. With resume_path set,
 * sl_run continues the run logged there instead of starting one: the spec is the log's
 * own, the only override accepted is steps=N (N >= the steps done), and the continued log
 * is bit for bit the log of an uninterrupted run (every series but time_s). */
#ifndef STEINLAB_CORE_DRIVER_H
#define STEINLAB_CORE_DRIVER_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "steinlab/status.h"
#include "camera_sampler.h"

typedef struct sl_run_options {
    const char *spec_path;
    const char *const *overrides;   /* (n_overrides,) "dotted.key=value" */
    size_t n_overrides;
    int threads;                    /* OpenMP threads; 0: OpenMP's default */
    FILE *out;                      /* progress and summary; NULL: stdout */
    int dry_run;                    /* validate and create the plugins, write nothing */
    int handle_signals;             /* install the SIGINT/SIGTERM handler for the run */
    const char *resume_path;        /* a log to continue (spec_path is then unused), or NULL */
} sl_run_options;

typedef struct sl_run_result {
    char log_path[PATH_MAX];        /* the log written ("" when none was created) */
    int64_t steps_done;
} sl_run_result;

/* Returns SL_OK, SL_ERR_SPEC (nothing written), SL_ERR_INTERRUPTED (log closed after the
 * last finished step), SL_ERR_NONFINITE (log closed; the message names the step, the
 * plugin and the tensor) or another error. Resuming: SL_ERR_IO for a missing log or
 * checkpoint, SL_ERR_FORMAT for one that cannot be used (both before anything is written),
 * SL_ERR_SPEC for an override other than steps=N or too few steps. */
sl_status sl_run(const sl_run_options *opt, sl_run_result *result, sl_error *err);

/* ---- meshes (docs/log-format.md, /mesh; docs/user-guide.md, "Exporting meshes") ---- */

struct sl_representation_vtable;
struct sl_mesh;

/* The representation's mesh: its own surface when it has one (surface_mesh; resolution
 * and threshold unused, *level its field_bounds level), else marching cubes of its density
 * over its field_bounds box at `resolution` grid points per axis, at iso-level `threshold`
 * (NaN: the representation's own), with vertex colours from its rgb. bounds (6,) and
 * *level receive what was used. *out is freed by the caller (sl_mesh_free).
 * SL_ERR_UNSUPPORTED when the representation has no sample_field/field_bounds. */
sl_status sl_repr_extract_mesh(const struct sl_representation_vtable *rv, void *state,
                               int resolution, double threshold, struct sl_mesh *out,
                               float bounds[6], float *level, sl_error *err);

/* The representation of a finished (or stopped) run, recreated from the checkpoint beside
 * its log (RUN.h5 -> RUN.ckpt.h5): the checkpoint's resolved spec, the plugin created,
 * its load_state and its parameter values. Nothing is written. Only the representation
 * is created (its host's prior() returns NULL). */
typedef struct sl_run_repr {
    const struct sl_representation_vtable *vt;
    void *state;
    const char *label;
    int64_t steps_done;          /* the checkpoint's */
    int mesh_resolution;         /* the run's log.mesh_resolution */
    double mesh_threshold;       /* the run's log.mesh_threshold; NaN when not set */
    sl_camera_sampler cameras;   /* the run's `cameras` section (mode, target, eval views);
                                    resolution 0 where the spec gives none */
    void *priv;                  /* the run it lives in */
} sl_run_repr;

/* SL_ERR_IO when the checkpoint is missing (the message says so), SL_ERR_FORMAT when it
 * cannot be used, SL_ERR_SPEC / SL_ERR_PLUGIN when the plugin cannot be found or created. */
sl_status sl_run_open_representation(const char *log_path, sl_run_repr **out, sl_error *err);
void sl_run_repr_close(sl_run_repr *h);   /* NULL: no-op */

#endif
