/* core/schedule.c — scheduled scalar values (threestudio's [start_step, start_value,
 * end_value, end_step]).
 *
 * The value is start_value for step <= start_step, end_value for step >= end_step, and the
 * straight line between (start_step, start_value) and (end_step, end_value) in between.
 * The end test comes first, so equal steps give a step function that switches to
 * end_value AT that step (start_value strictly before it). The same order also makes a
 * malformed schedule with end_step < start_step a step function at end_step instead of a
 * division by a negative length (the spec parser rejects such schedules anyway). */
#include "steinlab/schedule.h"

sl_schedule sl_schedule_constant(double value)
{
    sl_schedule s = {0.0, value, value, 0.0};
    return s;
}

double sl_schedule_at(const sl_schedule *s, int64_t step)
{
    double k = (double)step;
    if (k >= s->end_step)
        return s->end_value;
    if (k <= s->start_step)
        return s->start_value;
    /* Here start_step < k < end_step, so the length is positive and the fraction is in
     * (0, 1). */
    double frac = (k - s->start_step) / (s->end_step - s->start_step);
    return s->start_value + frac * (s->end_value - s->start_value);
}
