/* core/nn/resample.c — nearest 2x upsampling and 2x2 average pooling, NHWC (nn.h). */
#include <string.h>

#include "steinlab/nn.h"

void sl_upsample2x_forward(float *y, const float *x, int B, int H, int W, int C)
{
    const int H2 = 2 * H, W2 = 2 * W;
    /* Output pixel (i, j) copies input pixel (i / 2, j / 2). */
#pragma omp parallel for schedule(static)
    for (long r = 0; r < (long)B * H2; r++) {
        int bi = (int)(r / H2), i = (int)(r % H2);
        const float *xr = x + ((size_t)bi * H + i / 2) * W * C;
        float *yr = y + (size_t)r * W2 * C;
        for (int j = 0; j < W2; j++)
            memcpy(yr + (size_t)j * C, xr + (size_t)(j / 2) * C, sizeof(float) * (size_t)C);
    }
}

void sl_upsample2x_backward(float *dx, const float *dy, int B, int H, int W, int C)
{
    const int W2 = 2 * W;
    /* Input pixel (i, j) receives its four copies, always in the same order. */
#pragma omp parallel for schedule(static)
    for (long r = 0; r < (long)B * H; r++) {
        int bi = (int)(r / H), i = (int)(r % H);
        const float *d0 = dy + ((size_t)bi * 2 * H + 2 * i) * W2 * C, *d1 = d0 + (size_t)W2 * C;
        float *dxr = dx + (size_t)r * W * C;
        for (int j = 0; j < W; j++)
            for (int c = 0; c < C; c++) {
                size_t a = (size_t)(2 * j) * C + c, b = a + C;
                dxr[(size_t)j * C + c] += (d0[a] + d0[b]) + (d1[a] + d1[b]);
            }
    }
}

void sl_avgpool2x_forward(float *y, const float *x, int B, int H, int W, int C)
{
    const int Ho = H / 2, Wo = W / 2;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < (long)B * Ho; r++) {
        int bi = (int)(r / Ho), i = (int)(r % Ho);
        const float *x0 = x + ((size_t)bi * H + 2 * i) * W * C, *x1 = x0 + (size_t)W * C;
        float *yr = y + (size_t)r * Wo * C;
        for (int j = 0; j < Wo; j++)
            for (int c = 0; c < C; c++) {
                size_t a = (size_t)(2 * j) * C + c, b = a + C;
                yr[(size_t)j * C + c] = 0.25f * ((x0[a] + x0[b]) + (x1[a] + x1[b]));
            }
    }
}

void sl_avgpool2x_backward(float *dx, const float *dy, int B, int H, int W, int C)
{
    const int Ho = H / 2, Wo = W / 2;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < (long)B * Ho; r++) {
        int bi = (int)(r / Ho), i = (int)(r % Ho);
        float *d0 = dx + ((size_t)bi * H + 2 * i) * W * C, *d1 = d0 + (size_t)W * C;
        const float *dyr = dy + (size_t)r * Wo * C;
        for (int j = 0; j < Wo; j++)
            for (int c = 0; c < C; c++) {
                float g = 0.25f * dyr[(size_t)j * C + c];
                size_t a = (size_t)(2 * j) * C + c, b = a + C;
                d0[a] += g;
                d0[b] += g;
                d1[a] += g;
                d1[b] += g;
            }
    }
}
