/* core/strbuf.c — see strbuf.h. */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_strbuf_init(sl_strbuf *sb)
{
    sb->data = NULL;
    sb->len = sb->cap = 0;
    sb->failed = 0;
}

/* Room for `extra` more bytes plus the terminating NUL. */
static int reserve(sl_strbuf *sb, size_t extra)
{
    if (sb->failed)
        return 0;
    if (sb->len + extra + 1 <= sb->cap)
        return 1;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + extra + 1)
        cap *= 2;
    char *d = realloc(sb->data, cap);
    if (!d) {
        free(sb->data);
        sb->data = NULL;
        sb->failed = 1;
        return 0;
    }
    if (!sb->data)
        d[0] = 0;
    sb->data = d;
    sb->cap = cap;
    return 1;
}

void sl_strbuf_printf(sl_strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        sb->failed = 1;
        return;
    }
    if (!reserve(sb, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void sl_strbuf_putn(sl_strbuf *sb, const char *s, size_t n)
{
    if (!reserve(sb, n))
        return;
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = 0;
}

void sl_strbuf_puts(sl_strbuf *sb, const char *s) { sl_strbuf_putn(sb, s, strlen(s)); }

char *sl_strbuf_take(sl_strbuf *sb)
{
    char *d = sb->failed ? NULL : sb->data;
    if (!d && !sb->failed)
        d = calloc(1, 1);
    sl_strbuf_init(sb);
    return d;
}
