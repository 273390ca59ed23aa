/* steinlab/nn_math.h — the per-element math of the NN building blocks, each next to its VJP.
 *
 * static inline SL_HD functions: the CPU loops in core/nn/ call them, and a CUDA kernel can
 * call the same ones (device.h). Scalars only: no pointers, no allocation, no libc beyond
 * expf/logf/cosf/sinf (which CUDA provides as device functions). */
#ifndef STEINLAB_NN_MATH_H
#define STEINLAB_NN_MATH_H

#include <math.h>

#include "steinlab/device.h"

/* ---- SiLU: y = x sigmoid(x) ----
 * dy/dx = s + x s (1 - s) = s (1 + x (1 - s)),  s = sigmoid(x).
 * sigmoid is written as 1 / (1 + exp(-x)); for x -> -inf, exp overflows to inf and s -> 0,
 * which is the right limit, so no branch is needed. */
static inline SL_HD float sl_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static inline SL_HD float sl_silu(float x) { return x * sl_sigmoidf(x); }

/* VJP: upstream dy, input x -> contribution to dx. */
static inline SL_HD float sl_silu_vjp(float x, float dy)
{
    float s = sl_sigmoidf(x);
    return dy * s * (1.0f + x * (1.0f - s));
}

/* First and second derivatives, for networks whose input gradient is itself trained (a
 * learned Stein baseline differentiates grad_x phi w.r.t. its weights, which brings in
 * silu''): with s' = s (1 - s),
 *   silu'(x)  = s (1 + x (1 - s))
 *   silu''(x) = s' + s' + x s' (1 - s) - x s s' = s (1 - s) (2 + x (1 - 2 s)). */
static inline SL_HD float sl_silu_d1(float x)
{
    float s = sl_sigmoidf(x);
    return s * (1.0f + x * (1.0f - s));
}

static inline SL_HD float sl_silu_d2(float x)
{
    float s = sl_sigmoidf(x);
    return s * (1.0f - s) * (2.0f + x * (1.0f - 2.0f * s));
}

/* ---- Group norm, applied to one element ----
 * xhat = (x - mean) rstd;  y = gamma xhat + beta,  rstd = 1 / sqrt(var + eps) with the
 * biased variance over the group (as torch.nn.GroupNorm). */
static inline SL_HD float sl_gn_xhat(float x, float mean, float rstd) { return (x - mean) * rstd; }

static inline SL_HD float sl_gn_apply(float x, float mean, float rstd, float gamma, float beta)
{
    return gamma * sl_gn_xhat(x, mean, rstd) + beta;
}

/* VJP w.r.t. x of one element, given the group's two reductions of g = dy gamma:
 *   mg = mean(g),  mgx = mean(g xhat)   (over the n elements of the group).
 * Derivation: xhat_i = (x_i - m) r with m = mean(x), r = (var + eps)^-1/2.
 *   d xhat_i / d x_j = r (delta_ij - 1/n) - (x_i - m) r^3 (x_j - m) / n
 *                    = r (delta_ij - 1/n - xhat_i xhat_j / n)
 *   so dx_j = sum_i g_i d xhat_i/dx_j = r (g_j - mg - xhat_j mgx). */
static inline SL_HD float sl_gn_vjp_x(float g, float xhat, float rstd, float mg, float mgx)
{
    return rstd * (g - mg - xhat * mgx);
}

/* ---- Sinusoidal time embedding ----
 * Element i of half = dim/2 frequencies: f_i = exp(-ln(max_period) i / half), so f_0 = 1 and
 * the frequencies decay geometrically towards 1/max_period (Vaswani et al.; DDPM uses
 * the same with max_period = 10000). The embedding is [sin(t f_0..), cos(t f_0..)]. */
static inline SL_HD float sl_time_freq(int i, int half, float max_period)
{
    return expf(-logf(max_period) * (float)i / (float)half);
}

/* ---- Softmax row helper ----
 * VJP of p = softmax(s) for one element: ds_j = p_j (dp_j - sum_k p_k dp_k); the caller
 * computes the row's dot = sum_k p_k dp_k once. */
static inline SL_HD float sl_softmax_vjp(float p, float dp, float dot) { return p * (dp - dot); }

#endif
