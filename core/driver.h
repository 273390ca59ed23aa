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

#endif
