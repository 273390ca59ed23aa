/* core/log.h — the run's HDF5 log (layout: docs/log-format.md).
 *
 *   /                 attrs: steinlab_version, git_describe, created, host, name, seed, spec
 *   /plugins/<label>  attrs: plugin, kind, version, then every resolved parameter (YAML text)
 *   /steps/<series>   1-D extendable chunked datasets, one row per training step
 *   /eval/<series>    1-D, one row per evaluation
 *   /renders/<kind>   uint8 (n, views, H, W, C) extendable; /renders/step (n,) int64
 *
 * HDF5 1.10's single-writer/multiple-reader mode forbids creating objects or attributes
 * after it starts, so the life of a log has two phases:
 *   1. definition: create, attributes, tables and their columns, render datasets;
 *   2. append (after sl_log_start_swmr): rows and renders only, flushed on a schedule, so
 *      h5py.File(path, "r", swmr=True) can read the log while the run goes.
 * Calls that define objects fail with SL_ERR_INVALID_ARG in phase 2.
 *
 * A resumed run (steinlab run --resume) reopens its log with sl_log_open_append instead:
 * the definition phase then attaches the existing tables, columns and render kinds
 * (the *_open calls), cuts them back to the rows a checkpoint recorded (*_truncate), may
 * rewrite attributes, and ends with sl_log_start_swmr as for a new log. Objects cannot be
 * created in a reopened log: its layout is the one the first run defined. */
#ifndef STEINLAB_CORE_LOG_H
#define STEINLAB_CORE_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "steinlab/status.h"

typedef struct sl_log sl_log;
typedef struct sl_log_table sl_log_table;   /* owned by its log */

typedef enum sl_log_dtype { SL_LOG_F64 = 0, SL_LOG_I64 = 1 } sl_log_dtype;

/* Creates (truncates) the file, in the latest file format (required for SWMR). */
sl_status sl_log_create(const char *path, sl_log **out, sl_error *err);

/* Attributes on an object path ("/" or "/plugins/sds"; missing groups are created). */
sl_status sl_log_attr_string(sl_log *log, const char *obj_path, const char *name,
                             const char *value, sl_error *err);
sl_status sl_log_attr_int(sl_log *log, const char *obj_path, const char *name, int64_t value,
                          sl_error *err);
sl_status sl_log_attr_double(sl_log *log, const char *obj_path, const char *name,
                             double value, sl_error *err);

/* A table is a group of equal-length 1-D series ("/steps", "/eval", "/probes/sds"). */
sl_status sl_log_table_create(sl_log *log, const char *group_path, sl_log_table **out,
                              sl_error *err);
/* Adds a column (dataset group_path/name; `doc` becomes its "doc" attribute). Duplicate
 * names fail. *col receives the column's index. */
sl_status sl_log_table_column(sl_log_table *t, const char *name, const char *doc,
                              sl_log_dtype dtype, int *col, sl_error *err);
/* Index of a column by name, or -1. */
int sl_log_table_find(const sl_log_table *t, const char *name);
/* Value of a column in the current row (I64 columns take the value rounded). */
void sl_log_table_set(sl_log_table *t, int col, double value);
/* Ends the current row: it is buffered until the next flush; columns not set in this row
 * are written as NaN (F64) or INT64_MIN (I64). */
sl_status sl_log_table_commit_row(sl_log_table *t, sl_error *err);
int64_t sl_log_table_rows(const sl_log_table *t);   /* committed rows, flushed or not */

/* /renders/<kind>: uint8 (n, views, height, width, channels), chunked one entry per chunk. */
sl_status sl_log_renders_create(sl_log *log, const char *kind, int views, int height,
                                int width, int channels, sl_error *err);
/* Appends one entry (views, H, W, C) for `step`, written at once. The first kind created
 * owns /renders/step; every kind must be appended once per render step, in creation order. */
sl_status sl_log_renders_append(sl_log *log, const char *kind, int64_t step,
                                const uint8_t *data, sl_error *err);

/* Arrays: an extendable dataset (n,) or (n, cols) of one dtype, written whole at once
 * (e.g. /mesh/vertices (V, 3) float32, filled at the end of a run). Created empty in the
 * definition phase; sl_log_array_write replaces its content (any number of rows, also 0)
 * at any time, SWMR included: HDF5 1.10 lets a SWMR writer change a dataset's extent. */
typedef enum sl_log_array_type {
    SL_LOG_ARRAY_F32 = 0, SL_LOG_ARRAY_F64, SL_LOG_ARRAY_I32, SL_LOG_ARRAY_I64, SL_LOG_ARRAY_U8
} sl_log_array_type;
/* cols == 0: a 1-D dataset (n,); cols > 0: (n, cols). `path` is absolute ("/mesh/faces");
 * missing groups are created. Not in a reopened log (use sl_log_array_open). */
sl_status sl_log_array_create(sl_log *log, const char *path, sl_log_array_type type, int cols,
                              const char *doc, sl_error *err);
/* A reopened log: attaches an existing array, which must have this type and column count.
 * SL_ERR_FORMAT when it is missing or differs. */
sl_status sl_log_array_open(sl_log *log, const char *path, sl_log_array_type type, int cols,
                            sl_error *err);
/* Sets the array's rows to data (rows x max(cols, 1) elements of its type), flushed. */
sl_status sl_log_array_write(sl_log *log, const char *path, const void *data, int64_t rows,
                             sl_error *err);
/* Reads an array of a log file (opened read-only in SWMR mode, so live and killed logs
 * work): *data is malloc'd (NULL when rows == 0), *rows its rows. SL_ERR_FORMAT (message
 * names the path) when it is missing or has another type or column count. */
sl_status sl_log_read_array(const char *log_path, const char *path, sl_log_array_type type,
                            int cols, void **data, int64_t *rows, sl_error *err);
/* 1 when the log file has an object at `path`, 0 when not, -1 (with err) when it cannot be
 * read. */
int sl_log_has_object(const char *log_path, const char *path, sl_error *err);

/* Ends the definition phase (writes everything defined so far, then H5Fstart_swmr_write). */
sl_status sl_log_start_swmr(sl_log *log, sl_error *err);

/* Writes buffered rows of every table and flushes every dataset (readers see them). */
sl_status sl_log_flush(sl_log *log, sl_error *err);

/* Flushes and closes; frees the log (also on error). NULL is a no-op. */
sl_status sl_log_close(sl_log *log, sl_error *err);

/* ---- resuming ---------------------------------------------------------------------- */

/* Opens an existing log read-write for appending. A writer killed in SWMR mode leaves the
 * superblock's "open for write" flags set, which makes every later writable open fail;
 * this clears them first, as `h5clear -s` does (HDF5 1.10's file-access property
 * "clear_status_flags"). The caller must be the only writer: nothing can tell a killed
 * writer from a live one once SWMR has started (it releases its file lock). */
sl_status sl_log_open_append(const char *path, sl_log **out, sl_error *err);
/* Attaches the existing table at group_path (a reopened log only). */
sl_status sl_log_table_open(sl_log *log, const char *group_path, sl_log_table **out,
                            sl_error *err);
/* Attaches the existing column `name`, which must have `dtype`; *col receives its index. */
sl_status sl_log_table_column_open(sl_log_table *t, const char *name, sl_log_dtype dtype,
                                   int *col, sl_error *err);
/* Cuts every attached column to `rows` rows (each must hold at least that many; rows a
 * killed run flushed after its checkpoint are dropped). Only before sl_log_start_swmr. */
sl_status sl_log_table_truncate(sl_log_table *t, int64_t rows, sl_error *err);
/* Attaches the existing render kind `kind`, which must have this entry shape. */
sl_status sl_log_renders_open(sl_log *log, const char *kind, int views, int height, int width,
                              int channels, sl_error *err);
/* Cuts /renders/step and every attached kind to n entries (only before start_swmr). */
sl_status sl_log_renders_truncate(sl_log *log, int64_t n, sl_error *err);
/* Render steps appended so far (rows of /renders/step). */
int64_t sl_log_renders_count(const sl_log *log);

/* Flushes (as sl_log_flush) and fsyncs the file: every row written so far is on disk
 * before, say, a checkpoint that refers to it is renamed into place. */
sl_status sl_log_sync(sl_log *log, sl_error *err);

/* Reads a string attribute of a log without modifying it (opened read-only in SWMR mode,
 * so a live log or one a killed run left behind works too). *value is malloc'd. */
sl_status sl_log_read_attr_string(const char *path, const char *obj_path, const char *name,
                                  char **value, sl_error *err);

/* Prints a summary of a log (live or finished) to `out`: root attributes, plugins with
 * versions, every table with its row count and each column's last / min / max, renders,
 * and the last eval row. Opens the file read-only in SWMR mode. */
sl_status sl_log_inspect(const char *path, FILE *out, sl_error *err);

#endif
