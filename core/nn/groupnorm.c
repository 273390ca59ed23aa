/* core/nn/groupnorm.c — group normalisation with affine, NHWC-style (B, N, C) (nn.h). */
#include <math.h>

#include "steinlab/nn.h"
#include "steinlab/nn_math.h"

void sl_groupnorm_forward(float *y, float *mean, float *rstd, const float *x,
                          const float *gamma, const float *beta, int B, int N, int C, int G,
                          float eps)
{
    const int cg = C / G;
    /* One (image, group) per iteration: its reduction runs in one thread, in order. */
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * G; bg++) {
        int bi = bg / G, g = bg % G;
        const float *xb = x + (size_t)bi * N * C + (size_t)g * cg;
        /* Two passes in double: the mean first, then the centred second moment (no
         * catastrophic cancellation when |mean| >> std). */
        double s = 0.0;
        for (int n = 0; n < N; n++)
            for (int c = 0; c < cg; c++)
                s += xb[(size_t)n * C + c];
        double cnt = (double)N * cg, m = s / cnt, v = 0.0;
        for (int n = 0; n < N; n++)
            for (int c = 0; c < cg; c++) {
                double d = xb[(size_t)n * C + c] - m;
                v += d * d;
            }
        float mf = (float)m, rf = (float)(1.0 / sqrt(v / cnt + eps));
        mean[bg] = mf;
        rstd[bg] = rf;
        float *yb = y + (size_t)bi * N * C + (size_t)g * cg;
        for (int n = 0; n < N; n++)
            for (int c = 0; c < cg; c++)
                yb[(size_t)n * C + c] = sl_gn_apply(xb[(size_t)n * C + c], mf, rf,
                                                    gamma[g * cg + c], beta[g * cg + c]);
    }
}

void sl_groupnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                           const float *x, const float *mean, const float *rstd,
                           const float *gamma, int B, int N, int C, int G)
{
    const int cg = C / G;
    if (dgamma || dbeta) {
        /* dgamma_c = sum dy xhat, dbeta_c = sum dy over images and positions. One group
         * of channels per iteration, each channel's sum in (image, position) order. */
#pragma omp parallel for schedule(static)
        for (int g = 0; g < G; g++) {
            for (int c = g * cg; c < (g + 1) * cg; c++) {
                double sg = 0.0, sb = 0.0;
                for (int bi = 0; bi < B; bi++) {
                    float mf = mean[bi * G + g], rf = rstd[bi * G + g];
                    const float *dyb = dy + (size_t)bi * N * C, *xb = x + (size_t)bi * N * C;
                    for (int n = 0; n < N; n++) {
                        float d = dyb[(size_t)n * C + c];
                        sg += (double)d * sl_gn_xhat(xb[(size_t)n * C + c], mf, rf);
                        sb += d;
                    }
                }
                if (dgamma)
                    dgamma[c] += (float)sg;
                if (dbeta)
                    dbeta[c] += (float)sb;
            }
        }
    }
    if (!dx)
        return;
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * G; bg++) {
        int bi = bg / G, g = bg % G;
        size_t base = (size_t)bi * N * C + (size_t)g * cg;
        float mf = mean[bg], rf = rstd[bg];
        /* The group's means of g = dy gamma and of g xhat (nn_math.h, sl_gn_vjp_x). */
        double s1 = 0.0, s2 = 0.0;
        for (int n = 0; n < N; n++)
            for (int c = 0; c < cg; c++) {
                size_t i = base + (size_t)n * C + c;
                double gi = (double)dy[i] * gamma[g * cg + c];
                s1 += gi;
                s2 += gi * sl_gn_xhat(x[i], mf, rf);
            }
        double cnt = (double)N * cg;
        float mg = (float)(s1 / cnt), mgx = (float)(s2 / cnt);
        for (int n = 0; n < N; n++)
            for (int c = 0; c < cg; c++) {
                size_t i = base + (size_t)n * C + c;
                dx[i] += sl_gn_vjp_x(dy[i] * gamma[g * cg + c], sl_gn_xhat(x[i], mf, rf), rf,
                                     mg, mgx);
            }
    }
}
