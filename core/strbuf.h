/* core/strbuf.h — a growable string for building text (YAML, messages). */
#ifndef STEINLAB_CORE_STRBUF_H
#define STEINLAB_CORE_STRBUF_H

#include <stddef.h>

typedef struct sl_strbuf {
    char *data;     /* NUL-terminated; NULL after an allocation failure */
    size_t len, cap;
    int failed;     /* an allocation failed: the content is lost, take() returns NULL */
} sl_strbuf;

void sl_strbuf_init(sl_strbuf *sb);
void sl_strbuf_printf(sl_strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends n bytes (which may contain no NUL) / a NUL-terminated string. */
void sl_strbuf_putn(sl_strbuf *sb, const char *s, size_t n);
void sl_strbuf_puts(sl_strbuf *sb, const char *s);
/* Hands the string to the caller (free() it); NULL if any allocation failed. */
char *sl_strbuf_take(sl_strbuf *sb);

#endif
