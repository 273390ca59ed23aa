/* core/strbuf.c — see strbuf.h. */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void sl_strbuf_init(sl_strbuf *sb)
{
    sb->data = NULL;
    sb->len = sb->cap = 0;
    sb->failed = 0;
}

void sl_strbuf_printf(sl_strbuf *sb, const char *fmt, ...)
{
    if (sb->failed)
        return;
    for (;;) {
        size_t room = sb->cap - sb->len;
        va_list ap;
        va_start(ap, fmt);
        int n = sb->data ? vsnprintf(sb->data + sb->len, room, fmt, ap) : -2;
        va_end(ap);
        if (n >= 0 && (size_t)n < room) {
            sb->len += (size_t)n;
            return;
        }
        if (n == -1) {
            sb->failed = 1;
            return;
        }
        size_t need = sb->len + (n > 0 ? (size_t)n : 0) + 1;
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < need)
            cap *= 2;
        char *d = realloc(sb->data, cap);
        if (!d) {
            free(sb->data);
            sb->data = NULL;
            sb->failed = 1;
            return;
        }
        if (!sb->data)
            d[0] = 0;
        sb->data = d;
        sb->cap = cap;
    }
}

char *sl_strbuf_take(sl_strbuf *sb)
{
    char *d = sb->failed ? NULL : sb->data;
    if (!d && !sb->failed)
        d = calloc(1, 1);
    sl_strbuf_init(sb);
    return d;
}
