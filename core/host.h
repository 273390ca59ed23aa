/* core/host.h — host helpers shared by the driver and tests. */
#ifndef STEINLAB_CORE_HOST_H
#define STEINLAB_CORE_HOST_H

#include <stddef.h>

#include "steinlab/plugin.h"

/* 64-byte aligned, zero-filled; free with free(). NULL on failure or overflow. */
void *sl_aligned_zalloc(size_t bytes);

#endif
