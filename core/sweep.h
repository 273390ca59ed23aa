/* core/sweep.h — sweeps: a spec's top-level `sweep:` block expanded into one resolved spec
 * per grid cell, the sweep directory those specs and their logs live in, the state of each
 * cell (finished, resumable, to run), the sweep index (an HDF5 file that links every
 * cell's log) and the Slurm job-array script. Running the cells is the CLI's job
 * (core/cli/cmd_sweep.c); everything here writes files but starts no process, so tests and
 * other front ends can reuse it. Documentation: docs/sweeps.md.
 *
 *   sweep:                          keys are dotted spec keys, values non-empty lists;
 *     seed: [0, 1, 2]               the grid is their product, the first key varying
 *     optimizer.lr: [0.01, 0.05]    slowest (cell = row-major index over the lists)
 *
 * A cell's spec is the document without `sweep:`, with the command-line overrides applied
 * (to the whole document first, so `sweep.seed=[0,1]` edits the grid), then the cell's
 * values, then log.path = SWEEPDIR/cell-NNNN/run.h5. Relative paths in the spec are
 * relative to the spec's directory, but the cell spec lives elsewhere: string values that
 * look like paths (they contain '/' or a '.') and name an existing file or directory
 * relative to the spec's directory are made absolute in the cell specs.
 *
 * Errors have the project's one shape (core/spec.h): a bad swept key or value names the
 * original spec file, the line and column of the sweep entry, and `sweep.KEY`. */
#ifndef STEINLAB_CORE_SWEEP_H
#define STEINLAB_CORE_SWEEP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "steinlab/spec_tree.h"
#include "steinlab/status.h"

/* Upper bound on the number of cells: a grid larger than this is almost certainly a typo. */
#define SL_SWEEP_MAX_CELLS 100000

/* Files of a sweep directory and of each cell directory. */
#define SL_SWEEP_SPEC_FILE "sweep.yaml"       /* the sweep spec, overrides applied */
#define SL_SWEEP_INDEX_FILE "index.h5"
#define SL_SWEEP_SLURM_FILE "sweep.sbatch"
#define SL_CELL_SPEC_FILE "spec.yaml"
#define SL_CELL_LOG_FILE "run.h5"
#define SL_CELL_CKPT_FILE "run.ckpt.h5"       /* sl_ckpt_path_for_log(run.h5) */
#define SL_CELL_STDOUT_FILE "stdout.txt"
#define SL_CELL_STDERR_FILE "stderr.txt"
#define SL_CELL_STATUS_FILE "exit_status"     /* the run's exit code, one line; absent while
                                                 it runs or when it was killed */

typedef struct sl_sweep sl_sweep;

/* Parses spec_path, applies the overrides ("dotted.key=value", n_overrides of them) and
 * expands the sweep block. A spec without `sweep:` is one cell. Errors (SL_ERR_SPEC):
 * `sweep` not a map or empty, a value that is not a non-empty list, a key that is not a
 * dotted name, log.path swept (the sweep sets it), two keys where one contains the other,
 * an override of a swept key, more than SL_SWEEP_MAX_CELLS cells. Nothing is written.
 * *out is freed with sl_sweep_free. */
sl_status sl_sweep_load(const char *spec_path, const char *const *overrides,
                        size_t n_overrides, sl_sweep **out, sl_error *err);
void sl_sweep_free(sl_sweep *sw);

size_t sl_sweep_n_cells(const sl_sweep *sw);
size_t sl_sweep_n_axes(const sl_sweep *sw);
const char *sl_sweep_axis_key(const sl_sweep *sw, size_t axis);   /* "estimator.noise_samples" */
/* The value node of `axis` in `cell` (owned by sw). */
const sl_node *sl_sweep_value(const sl_sweep *sw, size_t cell, size_t axis);
/* The spec's `name` (default "run"): the default sweep directory is sweeps/<name>. */
const char *sl_sweep_name(const sl_sweep *sw);
/* "seed=1 estimator.noise_samples=4" (flow YAML values) into buf; "" for a one-cell sweep. */
void sl_sweep_describe_cell(const sl_sweep *sw, size_t cell, char *buf, size_t size);
/* "cell-0007" into buf. */
void sl_sweep_cell_name(size_t cell, char *buf, size_t size);
/* DIR/cell-NNNN, or DIR/cell-NNNN/FILE when file is not NULL, into out. Returns false (out
 * empty) when it does not fit. */
bool sl_sweep_cell_path(const char *dir, size_t cell, const char *file, char *out, size_t size);

/* The YAML text of a cell's spec with log.path = log_path (malloc'd, caller frees), headed
 * by comment lines that say which cell it is and how to re-run it. */
sl_status sl_sweep_cell_spec(const sl_sweep *sw, size_t cell, const char *log_path,
                             char **yaml, sl_error *err);

/* Validates every cell as `steinlab run CELL --dry-run` would (the driver, in process,
 * plugins created), through specs in a temporary directory that is removed afterwards, so
 * nothing is written where the user looks. An error in a swept key or value is reported
 * at the sweep entry of the original spec (FILE:LINE:COL: sweep.KEY: ...); any other error
 * at its place in the original spec or on the command line. */
sl_status sl_sweep_validate(const sl_sweep *sw, sl_error *err);

/* Creates dir (and its parents) and writes sweep.yaml and every cell-NNNN/spec.yaml. A
 * directory that already holds this sweep is reused as it is (its cells' logs kept); one
 * whose cell specs differ is refused (SL_ERR_INVALID_ARG: another --out, or remove it),
 * so that an earlier sweep's results are never overwritten by a different one. abs_dir
 * receives the directory's absolute path. */
sl_status sl_sweep_prepare_dir(const sl_sweep *sw, const char *dir, char abs_dir[PATH_MAX],
                               sl_error *err);

typedef enum sl_cell_state {
    SL_CELL_TODO = 0,   /* no usable log or checkpoint: run from scratch */
    SL_CELL_RESUME,     /* a checkpoint exists: `steinlab run --resume` */
    SL_CELL_DONE        /* exit status 0 recorded and the log holds every step */
} sl_cell_state;

/* The state of a cell directory, from its exit_status file, its log (rows of /steps/step
 * against the `steps` attribute, read in SWMR mode so a killed writer's log opens) and its
 * checkpoint. *exit_status: the recorded exit code, or -1 when none is recorded. */
sl_cell_state sl_sweep_cell_state(const char *cell_dir, int *exit_status);

/* Records a finished cell's exit code (written to a temporary name and renamed, so a
 * reader never sees half a file) / forgets it before the cell runs again. */
sl_status sl_sweep_record_exit(const char *cell_dir, int exit_code, sl_error *err);
void sl_sweep_clear_exit(const char *cell_dir);

/* Writes SWEEPDIR/index.h5 (through a temporary name and a rename):
 *   /                attrs: format = "steinlab-sweep-index", format_version, steinlab_version,
 *                    name, spec_path, spec (sweep.yaml text), keys (the swept keys),
 *                    n_cells, created
 *   /cells/cell-NNNN external link -> cell-NNNN/run.h5:/ (relative to the index's directory)
 *   /values/cell-NNNN attrs: one per swept key (int64, float64 or string: YAML flow text),
 *                    cell (index), spec, log (paths relative to SWEEPDIR), exit_status
 *                    (-1: none recorded yet)
 *   /table/<key>     one row per cell: the swept values (int64 / float64 / strings)
 *   /table/cell, /table/exit_status
 * Exit statuses are read from the cell directories at the time of writing. */
sl_status sl_sweep_write_index(const sl_sweep *sw, const char *abs_dir, char *index_path,
                               size_t size, sl_error *err);

/* Slurm job-array script options; NULL strings are left out of the script. */
typedef struct sl_slurm_options {
    const char *partition;
    const char *time;            /* --time, e.g. "01:00:00" */
    const char *mem;             /* --mem, e.g. "4G" */
    int cpus_per_task;           /* also the run's --threads; 0: 1 */
    int max_parallel;            /* the array's %N throttle; 0: none */
    const char *steinlab_exe;    /* absolute path of the steinlab executable */
} sl_slurm_options;

/* Writes SWEEPDIR/sweep.sbatch: one array task per cell listed in cells (n of them; the
 * cells that are not finished), each running or resuming its cell with its output in the
 * cell directory and its exit code recorded as the local runner does. */
sl_status sl_sweep_write_slurm(const sl_sweep *sw, const char *abs_dir,
                               const sl_slurm_options *opt, const size_t *cells, size_t n,
                               char *script_path, size_t size, sl_error *err);

/* For the driver: a spec with a `sweep:` block is not one run. Returns SL_ERR_SPEC with
 * "FILE:LINE:COL: sweep: a sweep block: run it with 'steinlab sweep SPEC' ..." when spec
 * has one, else SL_OK. */
sl_status sl_sweep_refuse_in_run(const sl_node *spec, const char *spec_path, sl_error *err);

#endif
