/* steinlab/state_io.h — a plugin's part of a checkpoint.
 *
 * A checkpoint holds everything a run needs to continue exactly as if it had never
 * stopped. The core saves what it owns: every parameter group's values, the optimizer's
 * moments, the step, and the RNG position (nothing: the generator is counter-based).
 * A plugin saves the rest of its state — an occupancy grid, densification statistics,
 * an estimator's mu or network weights, ... — as named arrays through this interface, in
 * its save_state() / load_state() vtable members. Names are the plugin's own namespace
 * ([a-z0-9_]+ components separated by '/'); each array has a dtype and an element count.
 *
 * Order on resume: the plugin is created from the same resolved spec, then load_state()
 * runs (a representation whose groups change size resizes them there), then the core
 * reads the parameter groups (param_groups() again) and restores their values and moments.
 * A value loaded must be exactly the value saved: resumed runs are bit-identical. */
#ifndef STEINLAB_STATE_IO_H
#define STEINLAB_STATE_IO_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_state_io sl_state_io;   /* owned by the host; valid during the call */

typedef enum sl_state_dtype {
    SL_STATE_F32 = 0,
    SL_STATE_F64 = 1,
    SL_STATE_I64 = 2,
    SL_STATE_U8 = 3
} sl_state_dtype;

/* Saving: stores count elements under name (a name may be written once per checkpoint). */
sl_status sl_state_put(sl_state_io *io, const char *name, sl_state_dtype dtype,
                       const void *data, size_t count, sl_error *err);

/* Loading: the element count stored under name (SL_ERR_FORMAT if absent). */
sl_status sl_state_count(sl_state_io *io, const char *name, size_t *count, sl_error *err);

/* Loading: reads exactly count elements of dtype; a missing name, another dtype or another
 * count is SL_ERR_FORMAT with a message naming the array and both shapes. */
sl_status sl_state_get(sl_state_io *io, const char *name, sl_state_dtype dtype, void *data,
                       size_t count, sl_error *err);

#ifdef __cplusplus
}
#endif
#endif
