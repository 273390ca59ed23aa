/* steinlab/status.h — status codes and error messages shared by the host and plugins.
 *
 * Contract: every function that can fail at run time returns an sl_status and, when it
 * fails, writes a one-line human-readable message into the caller's sl_error (when the
 * pointer is not NULL). Nothing in the library or a plugin calls exit(). */
#ifndef STEINLAB_STATUS_H
#define STEINLAB_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sl_status {
    SL_OK = 0,
    SL_ERR_INVALID_ARG,   /* a caller broke a documented precondition */
    SL_ERR_SPEC,          /* the experiment spec is wrong (message names file:line:col) */
    SL_ERR_IO,            /* a file could not be opened, read or written */
    SL_ERR_FORMAT,        /* a file was read but its content is malformed */
    SL_ERR_NOMEM,         /* an allocation failed */
    SL_ERR_PLUGIN,        /* a plugin could not be loaded or is invalid */
    SL_ERR_NONFINITE,     /* a NaN or infinity appeared where it must not */
    SL_ERR_UNSUPPORTED,   /* an optional operation is not provided */
    SL_ERR_INTERRUPTED    /* the run was stopped by a signal */
} sl_status;

enum { SL_ERR_MSG_MAX = 1024 };

typedef struct sl_error {
    char msg[SL_ERR_MSG_MAX];   /* NUL-terminated, one line, no trailing newline */
} sl_error;

/* Formats the message into err (if err is not NULL) and returns code, so that
 * `return sl_error_set(err, SL_ERR_IO, "cannot open '%s'", path);` reads naturally. */
sl_status sl_error_set(sl_error *err, sl_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (for adding context on the way up). */
void sl_error_prefix(sl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A short stable name for the code, e.g. "SL_ERR_SPEC". */
const char *sl_status_name(sl_status code);

#ifdef __cplusplus
}
#endif
#endif
