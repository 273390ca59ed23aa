/* core/status.c — status names and error message helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "steinlab/status.h"

sl_status sl_error_set(sl_error *err, sl_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void sl_error_prefix(sl_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[SL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* "prefix: message", cut at the message size like any message. */
    size_t cap = sizeof err->msg - 1;
    size_t pl = strlen(prefix);
    if (pl > cap - 2)
        pl = cap - 2;
    size_t ml = strlen(err->msg);
    if (ml > cap - pl - 2)
        ml = cap - pl - 2;
    memmove(err->msg + pl + 2, err->msg, ml);
    err->msg[pl + 2 + ml] = 0;
    memcpy(err->msg, prefix, pl);
    err->msg[pl] = ':';
    err->msg[pl + 1] = ' ';
}

const char *sl_status_name(sl_status code)
{
    switch (code) {
    case SL_OK: return "SL_OK";
    case SL_ERR_INVALID_ARG: return "SL_ERR_INVALID_ARG";
    case SL_ERR_SPEC: return "SL_ERR_SPEC";
    case SL_ERR_IO: return "SL_ERR_IO";
    case SL_ERR_FORMAT: return "SL_ERR_FORMAT";
    case SL_ERR_NOMEM: return "SL_ERR_NOMEM";
    case SL_ERR_PLUGIN: return "SL_ERR_PLUGIN";
    case SL_ERR_NONFINITE: return "SL_ERR_NONFINITE";
    case SL_ERR_UNSUPPORTED: return "SL_ERR_UNSUPPORTED";
    case SL_ERR_INTERRUPTED: return "SL_ERR_INTERRUPTED";
    }
    return "SL_ERR_UNKNOWN";
}
