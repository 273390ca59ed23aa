/* steinlab/schedule.h — scheduled scalar values.
 *
 * A spec value that accepts a schedule is either a number or threestudio's 4-list
 * [start_step, start_value, end_value, end_step]: the value is start_value up to
 * start_step, end_value from end_step on, and linear in the step between them. */
#ifndef STEINLAB_SCHEDULE_H
#define STEINLAB_SCHEDULE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_schedule {
    double start_step;
    double start_value;
    double end_value;
    double end_step;      /* >= start_step; equal steps give a step function at that step */
} sl_schedule;

/* A constant schedule. */
sl_schedule sl_schedule_constant(double value);

/* The value at `step` (see the file comment). */
double sl_schedule_at(const sl_schedule *s, int64_t step);

#ifdef __cplusplus
}
#endif
#endif
