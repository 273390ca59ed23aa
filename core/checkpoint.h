/* core/checkpoint.h — checkpoint files: the host's side of steinlab/state_io.h.
 *
 * A checkpoint is one HDF5 file beside the run's log (RUN.h5 -> RUN.ckpt.h5):
 *   /                      attrs: format = "steinlab-checkpoint", format_version, and the
 *                          strings the driver sets (spec, spec_dir, steinlab_version, ...)
 *   /core/<name>           the host's arrays: parameter groups, Adam's moments and count,
 *                          steps done, the log's row counts, the summary figures
 *   /plugins/<label>/...   each plugin's save_state() arrays, in its own namespace
 * Every array is 1-D, stored in the dtype it was put with (float32, float64, int64, uint8),
 * so a value read back is bit for bit the value saved.
 *
 * Writing never touches the previous checkpoint until the new one is complete:
 * sl_ckpt_begin writes PATH.tmp; sl_ckpt_commit closes it, fsyncs it, renames it over PATH
 * (rename(2) is atomic) and fsyncs the directory. A crash at any moment therefore leaves
 * either the previous checkpoint or the new one, never a mixture. */
#ifndef STEINLAB_CORE_CHECKPOINT_H
#define STEINLAB_CORE_CHECKPOINT_H

#include <stddef.h>

#include "steinlab/state_io.h"
#include "steinlab/status.h"

#define SL_CKPT_FORMAT "steinlab-checkpoint"
#define SL_CKPT_FORMAT_VERSION 1

typedef struct sl_ckpt sl_ckpt;

/* The checkpoint path of a log: "run.h5" -> "run.ckpt.h5", any other name -> NAME.ckpt.h5.
 * Fails (SL_ERR_INVALID_ARG) when the result does not fit in `size` bytes. */
sl_status sl_ckpt_path_for_log(const char *log_path, char *out, size_t size, sl_error *err);

/* Starts writing a checkpoint that will replace `path` when committed. */
sl_status sl_ckpt_begin(const char *path, sl_ckpt **out, sl_error *err);
/* Completes it (close, fsync, atomic rename, fsync of the directory) and frees c, also on
 * failure (then the temporary file is removed and the previous checkpoint is kept). */
sl_status sl_ckpt_commit(sl_ckpt *c, sl_error *err);

/* Opens a checkpoint for reading; checks the format name and version. A missing file is
 * SL_ERR_IO, a file that is not a readable checkpoint SL_ERR_FORMAT; messages name it. */
sl_status sl_ckpt_open(const char *path, sl_ckpt **out, sl_error *err);

/* Closes a checkpoint being read, or abandons one being written (its temporary file is
 * removed, the previous checkpoint stays). NULL is a no-op. */
void sl_ckpt_close(sl_ckpt *c);

/* The array namespace `section` ("core", "plugins/<label>"; [a-z0-9_/]+). The handle is
 * owned by c and valid until c is committed or closed. Writing: names are created under
 * /<section>/. Reading: a section that was never written reads as empty (every name
 * missing). */
sl_status sl_ckpt_section(sl_ckpt *c, const char *section, sl_state_io **io, sl_error *err);

/* String attributes of the root ("spec", "spec_dir", ...). get: *value is malloc'd. */
sl_status sl_ckpt_set_string(sl_ckpt *c, const char *name, const char *value, sl_error *err);
sl_status sl_ckpt_get_string(sl_ckpt *c, const char *name, char **value, sl_error *err);

/* The path given to begin / open. */
const char *sl_ckpt_file(const sl_ckpt *c);

#endif
