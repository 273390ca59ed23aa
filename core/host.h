/* core/host.h — host helpers shared by the driver and tests. */
#ifndef STEINLAB_CORE_HOST_H
#define STEINLAB_CORE_HOST_H

#include <stddef.h>

#include "steinlab/plugin.h"

/* 64-byte aligned, zero-filled; free with free(). NULL on failure or overflow. */
void *sl_aligned_zalloc(size_t bytes);

/* The host services every host of the executable shares: messages to stderr as
 * "label: level: text" (debug only with STEINLAB_DEBUG set), allocation by
 * sl_aligned_zalloc and its free. */
void sl_host_stderr_log(const sl_host *h, sl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void *sl_host_aligned_alloc(const sl_host *h, size_t bytes);
void sl_host_aligned_free(const sl_host *h, void *ptr);

/* Creates the directories of `path` that are missing (mkdir -p): every parent of its last
 * component, and the last component too when `including_last`. */
sl_status sl_make_dirs(const char *path, int including_last, sl_error *err);

#endif
