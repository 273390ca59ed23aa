/* core/host.c — host services that do not depend on a run: path resolution, aligned
 * allocation, messages, directories. The run-specific services (series, prior access)
 * live in driver.c. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

sl_status sl_host_prior_info(const sl_host *host, const char *who,
                             const sl_prior_ref **prior_out, sl_prior_info *info,
                             sl_error *err)
{
    const sl_prior_ref *prior = host->prior(host);
    if (!prior || !host->diffusion)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "%s: the host gives no prior or schedule",
                            who);
    prior->vt->info(prior->state, info);
    if (prior_out)
        *prior_out = prior;
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

void sl_host_stderr_log(const sl_host *h, sl_log_level level, const char *fmt, ...)
{
    static const char *const names[] = { "debug", "info", "warning", "error" };
    if (level == SL_LOG_DEBUG && !getenv("STEINLAB_DEBUG"))
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: %s: ", h->label, names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void *sl_host_aligned_alloc(const sl_host *h, size_t bytes)
{
    (void)h;
    return sl_aligned_zalloc(bytes);
}

void sl_host_aligned_free(const sl_host *h, void *ptr)
{
    (void)h;
    free(ptr);
}

sl_status sl_make_dirs(const char *path, int including_last, sl_error *err)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "path too long: '%s'", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && !(*p == '\0' && including_last)) {
            if (*p == '\0')
                break;
            continue;
        }
        const char c = *p;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return sl_error_set(err, SL_ERR_IO, "cannot create directory '%s': %s", buf,
                                strerror(errno));
        *p = c;
        if (c == '\0')
            break;
    }
    return SL_OK;
}
