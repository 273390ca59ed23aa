/* core/resample.c — image resampling A: (hi, wi, c) -> (ho, wo, c) and its exact
 * transpose (steinlab/image.h).
 *
 * Definition. A is separable: A = A_y (x) A_x, each a 1-D map from n_in to n_out samples
 * chosen per axis by the ratio s = n_in / n_out:
 *
 *   n_out == n_in      identity.
 *   s <= 2 (up, or down by at most 2x)
 *                      bilinear with aligned pixel centres: output j samples the input at
 *                      x = (j + 0.5) s - 0.5, clamped to [0, n_in - 1] (clamped edges);
 *                      weights (1 - f, f) on floor(x) and floor(x) + 1, f = x - floor(x).
 *                      At s = 2 this averages input pixels 2j and 2j + 1, so no pixel is
 *                      skipped; for s < 2 consecutive samples are less than 2 apart and
 *                      again every input pixel is touched.
 *   s > 2 (down by more than 2x)
 *                      area average: input pixel i covers [i, i + 1), output j covers the
 *                      footprint [j s, (j + 1) s) in input coordinates, and
 *                          w(j, i) = |[i, i + 1) n [j s, (j + 1) s)| / s,
 *                      the exact mean of the piecewise-constant image over the footprint
 *                      (OpenCV's INTER_AREA, torch's adaptive average pooling). The
 *                      footprints tile [0, n_in), so every input pixel contributes with
 *                      total weight 1/s. When n_out divides n_in this is the mean of
 *                      s x s blocks. The bilinear rule would skip pixels here (sample
 *                      spacing > 2).
 *
 * At exactly s = 2 both rules give the same weights, so the switch is continuous there.
 * Every row of A sums to 1 (constants are preserved). The footprint boundaries are
 * computed in exact integer arithmetic (j n_in / n_out), so the last footprint ends at
 * n_in exactly.
 *
 * Both directions are written as gathers, each output value owned by one loop iteration,
 * so they parallelise over rows without atomics and give the same bits for any thread
 * count. The adjoint needs, for input pixel i, the outputs whose taps include i: since
 * the first and last taps of output j are non-decreasing in j, that set is a contiguous
 * range found by binary search. Forward and adjoint use the same weight function, so A^T
 * is the exact transpose (up to float summation order). */
#include <math.h>
#include <stdint.h>

#include "steinlab/image.h"

typedef enum { AXIS_IDENTITY, AXIS_BILINEAR, AXIS_AREA } axis_mode;

typedef struct axis {
    int n_in, n_out;
    axis_mode mode;
} axis;

static axis make_axis(int n_in, int n_out)
{
    axis a = {n_in, n_out, AXIS_BILINEAR};
    if (n_in == n_out)
        a.mode = AXIS_IDENTITY;
    else if ((int64_t)n_in > 2 * (int64_t)n_out)
        a.mode = AXIS_AREA;
    return a;
}

/* Bilinear sample position of output j in input coordinates, clamped:
 * x = (j + 0.5) n_in / n_out - 0.5 = ((2j + 1) n_in - n_out) / (2 n_out). */
static double bilinear_pos(const axis *a, int j)
{
    double x = ((2.0 * j + 1.0) * a->n_in - a->n_out) / (2.0 * a->n_out);
    if (x < 0.0)
        x = 0.0;
    if (x > a->n_in - 1)
        x = a->n_in - 1;
    return x;
}

/* Inclusive range [first, last] of input taps of output j. */
static void taps(const axis *a, int j, int *first, int *last)
{
    switch (a->mode) {
    case AXIS_IDENTITY:
        *first = *last = j;
        return;
    case AXIS_BILINEAR: {
        int i0 = (int)floor(bilinear_pos(a, j));
        *first = i0;
        *last = i0 + 1 < a->n_in ? i0 + 1 : i0;
        return;
    }
    case AXIS_AREA: {
        int64_t lo = (int64_t)j * a->n_in;          /* footprint start times n_out */
        int64_t hi = (int64_t)(j + 1) * a->n_in;    /* footprint end times n_out */
        *first = (int)(lo / a->n_out);
        *last = (int)((hi + a->n_out - 1) / a->n_out) - 1;
        return;
    }
    }
}

/* Weight of input i in output j (0 when i is not a tap). */
static double weight(const axis *a, int j, int i)
{
    switch (a->mode) {
    case AXIS_IDENTITY:
        return i == j ? 1.0 : 0.0;
    case AXIS_BILINEAR: {
        double x = bilinear_pos(a, j);
        double i0 = floor(x), f = x - i0;
        if (i == (int)i0)
            return 1.0 - f;
        if (i == (int)i0 + 1)
            return f;
        return 0.0;
    }
    case AXIS_AREA: {
        /* Overlap of [i, i+1) with [j s, (j+1) s), in units of 1/n_out to stay exact:
         * [i n_out, (i+1) n_out) against [j n_in, (j+1) n_in). */
        int64_t lo = (int64_t)j * a->n_in, hi = (int64_t)(j + 1) * a->n_in;
        int64_t plo = (int64_t)i * a->n_out, phi = (int64_t)(i + 1) * a->n_out;
        int64_t ov = (phi < hi ? phi : hi) - (plo > lo ? plo : lo);
        return ov > 0 ? (double)ov / (double)a->n_in : 0.0;   /* (ov / n_out) / s */
    }
    }
    return 0.0;
}

/* Outputs j whose taps contain input i: [j_lo, j_hi] (empty when j_lo > j_hi). Uses
 * last(j) and first(j) non-decreasing in j. */
static void inverse_taps(const axis *a, int i, int *j_lo, int *j_hi)
{
    if (a->mode == AXIS_IDENTITY) {
        *j_lo = *j_hi = i;
        return;
    }
    /* j_lo: first j with last(j) >= i. */
    int lo = 0, hi = a->n_out;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, f, l;
        taps(a, mid, &f, &l);
        if (l >= i)
            hi = mid;
        else
            lo = mid + 1;
    }
    *j_lo = lo;
    /* j_hi: last j with first(j) <= i. */
    lo = 0;
    hi = a->n_out;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, f, l;
        taps(a, mid, &f, &l);
        if (f <= i)
            lo = mid + 1;
        else
            hi = mid;
    }
    *j_hi = lo - 1;
}

enum { CHUNK = 8 };   /* channels accumulated together in double */

void sl_resample(const float *in, int hi, int wi, int c, float *out, int ho, int wo)
{
    /* in: (hi, wi, c), out: (ho, wo, c) */
    if (!in || !out || hi <= 0 || wi <= 0 || ho <= 0 || wo <= 0 || c <= 0)
        return;
    const axis ay = make_axis(hi, ho), ax = make_axis(wi, wo);
#pragma omp parallel for schedule(static) if ((int64_t)ho * wo * c >= 65536)
    for (int y = 0; y < ho; y++) {
        int y0, y1;
        taps(&ay, y, &y0, &y1);
        for (int x = 0; x < wo; x++) {
            int x0, x1;
            taps(&ax, x, &x0, &x1);
            float *dst = out + ((size_t)y * wo + x) * c;
            for (int c0 = 0; c0 < c; c0 += CHUNK) {
                const int nc = c - c0 < CHUNK ? c - c0 : CHUNK;
                double acc[CHUNK] = {0};
                for (int iy = y0; iy <= y1; iy++) {
                    const double wy = weight(&ay, y, iy);
                    for (int ix = x0; ix <= x1; ix++) {
                        const double w = wy * weight(&ax, x, ix);
                        const float *src = in + ((size_t)iy * wi + ix) * c + c0;
                        for (int k = 0; k < nc; k++)
                            acc[k] += w * src[k];
                    }
                }
                for (int k = 0; k < nc; k++)
                    dst[c0 + k] = (float)acc[k];
            }
        }
    }
}

void sl_resample_adjoint(const float *d_out, int ho, int wo, int c, float *d_in, int hi,
                         int wi)
{
    /* d_out: (ho, wo, c), d_in: (hi, wi, c), accumulated: d_in += A^T d_out */
    if (!d_out || !d_in || hi <= 0 || wi <= 0 || ho <= 0 || wo <= 0 || c <= 0)
        return;
    const axis ay = make_axis(hi, ho), ax = make_axis(wi, wo);
#pragma omp parallel for schedule(static) if ((int64_t)hi * wi * c >= 65536)
    for (int iy = 0; iy < hi; iy++) {
        int y0, y1;
        inverse_taps(&ay, iy, &y0, &y1);
        for (int ix = 0; ix < wi; ix++) {
            int x0, x1;
            inverse_taps(&ax, ix, &x0, &x1);
            float *dst = d_in + ((size_t)iy * wi + ix) * c;
            for (int c0 = 0; c0 < c; c0 += CHUNK) {
                const int nc = c - c0 < CHUNK ? c - c0 : CHUNK;
                double acc[CHUNK] = {0};
                for (int y = y0; y <= y1; y++) {
                    const double wy = weight(&ay, y, iy);
                    if (wy == 0.0)
                        continue;
                    for (int x = x0; x <= x1; x++) {
                        const double w = wy * weight(&ax, x, ix);
                        const float *src = d_out + ((size_t)y * wo + x) * c + c0;
                        for (int k = 0; k < nc; k++)
                            acc[k] += w * src[k];
                    }
                }
                for (int k = 0; k < nc; k++)
                    dst[c0 + k] += (float)acc[k];
            }
        }
    }
}
