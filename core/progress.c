/* core/progress.c — see progress.h. */
#include "progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

double sl_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sl_format_duration(double seconds, char *buf, size_t size)
{
    if (!(seconds >= 0) || seconds > 1e7) {
        snprintf(buf, size, "--:--");
        return;
    }
    if (seconds < 60) {
        snprintf(buf, size, "%.2f s", seconds);
        return;
    }
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else
        snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
}

void sl_progress_start(sl_progress *p, FILE *out, sl_progress_style style, int64_t first,
                       int64_t total)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    if (style == SL_PROGRESS_AUTO)
        style = isatty(fileno(out)) ? SL_PROGRESS_BAR : SL_PROGRESS_LINES;
    p->style = style;
    p->total = total;
    p->first = first;
    p->start_s = sl_now_s();
    int64_t stride = total >= 10 ? total / 10 : 1;
    p->next_line_step = (first / stride + 1) * stride;
}

void sl_progress_update(sl_progress *p, int64_t done, double loss)
{
    if (p->style == SL_PROGRESS_NONE)
        return;
    double now = sl_now_s();
    double elapsed = now - p->start_s;
    double rate = elapsed > 0 ? (double)(done - p->first) / elapsed : 0.0;
    char eta[32];
    sl_format_duration(rate > 0 ? (double)(p->total - done) / rate : -1, eta, sizeof eta);
    if (p->style == SL_PROGRESS_BAR) {
        /* Redraw at most 10 times a second, and always at the end. */
        if (done < p->total && now - p->last_draw_s < 0.1)
            return;
        p->last_draw_s = now;
        enum { WIDTH = 30 };
        int filled = (int)(WIDTH * done / (p->total ? p->total : 1));
        char bar[WIDTH + 1];
        for (int i = 0; i < WIDTH; i++)
            bar[i] = i < filled ? '#' : '-';
        bar[WIDTH] = 0;
        fprintf(p->out, "\r[%s] %lld/%lld  %.1f it/s  ETA %s  loss %.4g\033[K", bar,
                (long long)done, (long long)p->total, rate, eta, loss);
        fflush(p->out);
        p->bar_drawn = 1;
    } else if (done >= p->next_line_step || done == p->total) {
        while (p->next_line_step <= done)
            p->next_line_step += p->total >= 10 ? p->total / 10 : 1;
        fprintf(p->out, "step %lld/%lld  %.1f it/s  ETA %s  loss %.4g\n", (long long)done,
                (long long)p->total, rate, eta, loss);
        fflush(p->out);
    }
}

void sl_progress_finish(sl_progress *p)
{
    if (p->style == SL_PROGRESS_BAR && p->bar_drawn) {
        fputc('\n', p->out);
        fflush(p->out);
        p->bar_drawn = 0;
    }
}
