/* core/host.c — host services that do not depend on a run: path resolution and aligned
 * allocation. The run-specific services (series, prior access) live in driver.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

sl_status sl_host_path(const sl_host *host, const char *path, char *out, size_t size,
                       sl_error *err)
{
    int n;
    if (path[0] == '/' || !host || !host->spec_dir || !*host->spec_dir)
        n = snprintf(out, size, "%s", path);
    else
        n = snprintf(out, size, "%s/%s", host->spec_dir, path);
    if (n < 0 || (size_t)n >= size)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "path too long: '%s'", path);
    return SL_OK;
}

void *sl_aligned_zalloc(size_t bytes)
{
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded < bytes)
        return NULL;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p)
        memset(p, 0, rounded ? rounded : 64);
    return p;
}
