/* core/progress.h — the run's progress display: a bar redrawn in place on a terminal
 * (step/total, it/s, ETA, loss), or a plain line every tenth of the run otherwise. */
#ifndef STEINLAB_CORE_PROGRESS_H
#define STEINLAB_CORE_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef enum sl_progress_style {
    SL_PROGRESS_AUTO = 0,  /* BAR when `out` is a terminal, else LINES */
    SL_PROGRESS_BAR,
    SL_PROGRESS_LINES,
    SL_PROGRESS_NONE
} sl_progress_style;

typedef struct sl_progress {
    FILE *out;
    sl_progress_style style;
    int64_t total;
    int64_t first;          /* steps already done at start (a resumed run) */
    double start_s;         /* monotonic clock at start */
    double last_draw_s;
    int64_t next_line_step; /* LINES: next step that prints */
    int bar_drawn;
} sl_progress;

/* Monotonic wall-clock seconds. */
double sl_now_s(void);

/* `first`: steps already done when the display starts (non-zero on resume); the rate and the
 * ETA count only the steps done since. */
void sl_progress_start(sl_progress *p, FILE *out, sl_progress_style style, int64_t first,
                       int64_t total);
/* After step `done` (1-based count of finished steps). */
void sl_progress_update(sl_progress *p, int64_t done, double loss);
/* Clears the bar line (before printing anything else). */
void sl_progress_finish(sl_progress *p);

/* "12.34 s" under a minute, else "2:03" or "1:02:03", into buf. */
void sl_format_duration(double seconds, char *buf, size_t size);

#endif
