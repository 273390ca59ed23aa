/* core/nn/attention.c — multi-head scaled dot-product self-attention (nn.h).
 *
 * One (image, head) pair is one unit of work: its three products run as single-threaded
 * SGEMMs with the head's slices addressed through leading dimensions (no copies), and its
 * gradient writes touch only that head's slices of dqkv, so units never race and the
 * result does not depend on which thread ran which unit. */
#include <math.h>
#include <stdlib.h>

#include "gemm.h"
#include "steinlab/nn.h"
#include "steinlab/nn_math.h"
#include "steinlab/thread_scratch.h"

static sl_status check(int B, int N, int C, int nh, sl_error *err)
{
    if (B < 1 || N < 1 || C < 1 || nh < 1 || C % nh)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "attention: invalid shape B=%d N=%d C=%d heads=%d (C %% heads "
                            "must be 0)", B, N, C, nh);
    return SL_OK;
}

sl_status sl_attention_forward(float *out, float *probs, const float *qkv, int B, int N, int C,
                               int nh, sl_error *err)
{
    sl_status st = check(B, N, C, nh, err);
    if (st != SL_OK)
        return st;
    const int d = C / nh, ld = 3 * C;
    const float scale = 1.0f / sqrtf((float)d);
#pragma omp parallel for schedule(dynamic, 1)
    for (int u = 0; u < B * nh; u++) {
        int bi = u / nh, h = u % nh;
        const float *q = qkv + (size_t)bi * N * ld + (size_t)h * d;   /* (N, d), ld 3C */
        const float *k = q + C, *v = q + 2 * C;
        float *P = probs + (size_t)u * N * N;                          /* (N, N) */
        /* S = Q K^T / sqrt(d) */
        sl_nn_gemm1(0, 1, N, N, d, scale, q, ld, k, ld, 0.0f, P, N);
        /* Row softmax. Subtracting the row max makes every exponent <= 0: no overflow,
         * and the largest term is exactly 1 so the sum is >= 1 (no division by 0). */
        for (int i = 0; i < N; i++) {
            float *row = P + (size_t)i * N, mx = row[0];
            for (int j = 1; j < N; j++)
                mx = row[j] > mx ? row[j] : mx;
            double s = 0.0;
            for (int j = 0; j < N; j++) {
                row[j] = expf(row[j] - mx);
                s += row[j];
            }
            float inv = (float)(1.0 / s);
            for (int j = 0; j < N; j++)
                row[j] *= inv;
        }
        /* O = P V, into the head's channels of out (ld C). */
        sl_nn_gemm1(0, 0, N, d, N, 1.0f, P, N, v, ld, 0.0f,
                    out + (size_t)bi * N * C + (size_t)h * d, C);
    }
    return SL_OK;
}

sl_status sl_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                const float *probs, int B, int N, int C, int nh, sl_error *err)
{
    sl_status st = check(B, N, C, nh, err);
    if (st != SL_OK)
        return st;
    const int d = C / nh, ld = 3 * C;
    const float scale = 1.0f / sqrtf((float)d);
    float *scratch = sl_thread_scratch_alloc((size_t)N * N);
    if (!scratch)
        return sl_error_set(err, SL_ERR_NOMEM, "attention: cannot allocate %d x %d scratch",
                            N, N);
#pragma omp parallel for schedule(dynamic, 1)
    for (int u = 0; u < B * nh; u++) {
        float *dS = sl_thread_scratch(scratch, (size_t)N * N);
        int bi = u / nh, h = u % nh;
        size_t off = (size_t)bi * N * ld + (size_t)h * d;
        const float *q = qkv + off, *k = q + C, *v = q + 2 * C;   /* (N, d), ld 3C */
        float *dq = dqkv + off, *dk = dq + C, *dv = dq + 2 * C;   /* (N, d), ld 3C */
        const float *P = probs + (size_t)u * N * N;                /* (N, N) */
        const float *dO = dout + (size_t)bi * N * C + (size_t)h * d;   /* (N, d), ld C */
        /* dP = dO V^T;  dV += P^T dO */
        sl_nn_gemm1(0, 1, N, N, d, 1.0f, dO, C, v, ld, 0.0f, dS, N);
        sl_nn_gemm1(1, 0, N, d, N, 1.0f, P, N, dO, C, 1.0f, dv, ld);
        /* dS = P (dP - <P, dP>_row) / sqrt(d): the softmax VJP, then the scale of S. */
        for (int i = 0; i < N; i++) {
            const float *p = P + (size_t)i * N;
            float *g = dS + (size_t)i * N;
            double dot = 0.0;
            for (int j = 0; j < N; j++)
                dot += (double)p[j] * g[j];
            for (int j = 0; j < N; j++)
                g[j] = scale * sl_softmax_vjp(p[j], g[j], (float)dot);
        }
        /* S = Q K^T:  dQ += dS K,  dK += dS^T Q */
        sl_nn_gemm1(0, 0, N, d, N, 1.0f, dS, N, k, ld, 1.0f, dq, ld);
        sl_nn_gemm1(1, 0, N, d, N, 1.0f, dS, N, q, ld, 1.0f, dk, ld);
    }
    free(scratch);
    return SL_OK;
}
