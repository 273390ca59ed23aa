/* core/h5util.c — see h5util.h. */
#include <stdio.h>

#include "h5util.h"

sl_h5_quiet sl_h5_quiet_begin(void)
{
    sl_h5_quiet q = { NULL, NULL };
    H5Eget_auto2(H5E_DEFAULT, &q.fn, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

void sl_h5_quiet_end(sl_h5_quiet q) { H5Eset_auto2(H5E_DEFAULT, q.fn, q.data); }

typedef struct detail {
    char *buf;
    size_t size;
} detail;

static herr_t detail_walk(unsigned n, const H5E_error2_t *e, void *data)
{
    detail *d = data;
    /* Walking upward, n == 0 is where the error was first detected: the most specific
     * description. Some descriptions embed ctime() output; messages stay on one line. */
    if (n == 0 && e->desc) {
        snprintf(d->buf, d->size, "%s", e->desc);
        for (char *c = d->buf; *c; c++)
            if (*c == '\n' || *c == '\r')
                *c = ' ';
    }
    return 0;
}

void sl_h5_error_detail(char *buf, size_t size)
{
    if (!size)
        return;
    buf[0] = '\0';
    detail d = { buf, size };
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, detail_walk, &d);
}
