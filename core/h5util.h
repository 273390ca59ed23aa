/* core/h5util.h — HDF5 error handling shared by the modules that use libhdf5 (the log, its
 * inspector, checkpoints, sweep indexes): HDF5's automatic error printing silenced around
 * our calls, and its most specific reason for a failure as one line of text. */
#ifndef STEINLAB_CORE_H5UTIL_H
#define STEINLAB_CORE_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>

typedef struct sl_h5_quiet {
    H5E_auto2_t fn;
    void *data;
} sl_h5_quiet;

/* Turns HDF5's error printing off and returns what to restore. */
sl_h5_quiet sl_h5_quiet_begin(void);
void sl_h5_quiet_end(sl_h5_quiet q);

/* The description of the innermost error on HDF5's default stack ("unable to open file:
 * name = ..."), newlines replaced by spaces; "" when the stack is empty. */
void sl_h5_error_detail(char *buf, size_t size);

#endif
