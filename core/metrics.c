/* core/metrics.c — see steinlab/metrics.h. */
#include <math.h>
#include <stdlib.h>

#include "steinlab/metrics.h"

enum { SSIM_WINDOW = 11 };

/* Normalised 1-D Gaussian taps of odd size n (sigma 1.5): the 2-D window is their outer
 * product, so the local moments are separable sums. */
static void gaussian_taps(int n, double *w)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double x = i - (n - 1) / 2.0;
        w[i] = exp(-x * x / (2 * 1.5 * 1.5));
        sum += w[i];
    }
    for (int i = 0; i < n; i++)
        w[i] /= sum;
}

double sl_ssim(const float *a, const float *b, int height, int width, int channels)
{
    int n = SSIM_WINDOW;
    if (n > height) n = height;
    if (n > width) n = width;
    if (n % 2 == 0) n--;
    if (n < 1)
        return NAN;
    double w[SSIM_WINDOW];
    gaussian_taps(n, w);
    const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
    int oh = height - n + 1, ow = width - n + 1;
    double total = 0;
    for (int c = 0; c < channels; c++) {
        for (int i = 0; i < oh; i++) {
            for (int j = 0; j < ow; j++) {
                double ma = 0, mb = 0, saa = 0, sbb = 0, sab = 0;
                for (int di = 0; di < n; di++) {
                    for (int dj = 0; dj < n; dj++) {
                        size_t idx = ((size_t)(i + di) * width + (j + dj)) * channels + c;
                        double wt = w[di] * w[dj], x = a[idx], y = b[idx];
                        ma += wt * x;
                        mb += wt * y;
                        saa += wt * x * x;
                        sbb += wt * y * y;
                        sab += wt * x * y;
                    }
                }
                double va = saa - ma * ma, vb = sbb - mb * mb, cov = sab - ma * mb;
                total += ((2 * ma * mb + c1) * (2 * cov + c2)) /
                         ((ma * ma + mb * mb + c1) * (va + vb + c2));
            }
        }
    }
    return total / ((double)oh * ow * channels);
}

double sl_masked_depth_l1(const float *depth_a, const float *mask_a, const float *depth_b,
                          const float *mask_b, size_t pixels)
{
    double sum = 0;
    size_t count = 0;
    for (size_t p = 0; p < pixels; p++) {
        if (mask_a[p] > 0.5f && mask_b[p] > 0.5f) {
            sum += fabs((double)depth_a[p] - depth_b[p]);
            count++;
        }
    }
    return count ? sum / (double)count : NAN;
}

double sl_mask_iou(const float *mask_a, const float *mask_b, size_t pixels)
{
    size_t inter = 0, uni = 0;
    for (size_t p = 0; p < pixels; p++) {
        int x = mask_a[p] > 0.5f, y = mask_b[p] > 0.5f;
        inter += (size_t)(x && y);
        uni += (size_t)(x || y);
    }
    return uni ? (double)inter / (double)uni : 1.0;
}
