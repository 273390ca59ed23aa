/* core/nn/linear.c — y = x W^T + b over a batch of rows (nn.h). */
#include <stddef.h>

#include "gemm.h"
#include "steinlab/nn.h"

void sl_linear_forward(float *y, const float *x, const float *w, const float *b, int N,
                       int in, int out)
{
    /* y (N, out): bias rows first, then y += x (N, in) . W^T (in, out). */
    float beta = 0.0f;
    if (b) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < N; i++)
            for (int o = 0; o < out; o++)
                y[(size_t)i * out + o] = b[o];
        beta = 1.0f;
    }
    sl_nn_gemm(0, 1, N, out, in, 1.0f, x, in, w, in, beta, y, out);
}

void sl_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int N, int in, int out)
{
    /* y_no = sum_i x_ni w_oi + b_o  =>  dx_ni = sum_o dy_no w_oi  (dx = dy W),
     * dw_oi = sum_n dy_no x_ni  (dw = dy^T x),  db_o = sum_n dy_no. */
    if (dx)
        sl_nn_gemm(0, 0, N, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
    if (dw)
        sl_nn_gemm(1, 0, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (db)
        sl_nn_colsum_add(db, dy, N, out);
}

void sl_nn_colsum_add(float *db, const float *dy, size_t R, int C)
{
    /* Parallel over blocks of 16 columns, each block summed over rows in order (in
     * double): the reduction is never split, so no dependence on the thread count; a
     * block reads a 64-byte run of each row. */
    int nb = (C + 15) / 16;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nb; blk++) {
        int c0 = blk * 16, c1 = c0 + 16 < C ? c0 + 16 : C;
        double s[16] = { 0 };
        for (size_t r = 0; r < R; r++)
            for (int c = c0; c < c1; c++)
                s[c - c0] += dy[r * (size_t)C + c];
        for (int c = c0; c < c1; c++)
            db[c] += (float)s[c - c0];
    }
}
