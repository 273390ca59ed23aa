/* core/nn/elementwise.c — SiLU, channel concatenation and per-image channel bias (nn.h).
 * Pure per-element maps (or per-row copies): any split over threads gives the same bits. */
#include <string.h>

#include "steinlab/nn.h"
#include "steinlab/nn_math.h"

void sl_silu_forward(float *y, const float *x, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        y[i] = sl_silu(x[i]);
}

void sl_silu_backward(float *dx, const float *dy, const float *x, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        dx[i] += sl_silu_vjp(x[i], dy[i]);
}

void sl_concat_forward(float *y, const float *a, const float *b, size_t R, int ca, int cb)
{
    const int c = ca + cb;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < R; r++) {
        memcpy(y + r * c, a + r * ca, sizeof(float) * (size_t)ca);
        memcpy(y + r * c + ca, b + r * cb, sizeof(float) * (size_t)cb);
    }
}

void sl_concat_backward(float *da, float *db, const float *dy, size_t R, int ca, int cb)
{
    const int c = ca + cb;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < R; r++) {
        if (da)
            for (int j = 0; j < ca; j++)
                da[r * ca + j] += dy[r * c + j];
        if (db)
            for (int j = 0; j < cb; j++)
                db[r * cb + j] += dy[r * c + ca + j];
    }
}

void sl_add_channel_bias_forward(float *y, const float *v, int B, int N, int C)
{
#pragma omp parallel for schedule(static)
    for (long r = 0; r < (long)B * N; r++) {
        const float *vb = v + (size_t)(r / N) * C;
        for (int c = 0; c < C; c++)
            y[(size_t)r * C + c] += vb[c];
    }
}

void sl_add_channel_bias_backward(float *dv, const float *dy, int B, int N, int C)
{
    /* One image per iteration, positions summed in order (double). */
#pragma omp parallel for schedule(static)
    for (int bi = 0; bi < B; bi++) {
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                s += dy[((size_t)bi * N + n) * C + c];
            dv[(size_t)bi * C + c] += (float)s;
        }
    }
}

void sl_time_embedding(float *out, const float *t, int B, int dim, float max_period)
{
    const int half = dim / 2;
    for (int bi = 0; bi < B; bi++)
        for (int i = 0; i < half; i++) {
            /* The argument in double: t up to 1000 times f_0 = 1 must keep its fraction. */
            double a = (double)t[bi] * sl_time_freq(i, half, max_period);
            out[(size_t)bi * dim + i] = (float)sin(a);
            out[(size_t)bi * dim + half + i] = (float)cos(a);
        }
}
