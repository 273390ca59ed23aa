/* core/nn/conv2d.c — 2-D convolution in NHWC by patch matrices (im2col) and SGEMM (nn.h).
 *
 * With the weights as a (cout, K) matrix, K = k k cin in (ky, kx, c) order, and the patch
 * matrix P of an image as (Ho Wo, K) — row m holds the k x k x cin input patch under
 * output pixel m, zeros where it falls in the padding —
 *   Y = P W^T + b,   dW += dY^T P,   dP = dY W,   dX = col2im(dP)
 * where col2im adds every patch entry back to the input pixel it was copied from. In NHWC a
 * patch row is k k runs of cin contiguous floats, so im2col is memcpy's of whole runs. The
 * dX of a stride-1 "same" convolution skips dP and col2im: it is a convolution of dY
 * (input_grad_by_conv).
 *
 * Memory is bounded by building P in fixed chunks of output pixels rather than for the
 * whole batch (docs/nn.md has the measurements behind the chunk sizes). */
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "steinlab/nn.h"
#include "steinlab/thread_scratch.h"

/* Output pixels per forward and weight-gradient chunk (one thread builds the chunk's
 * patches and multiplies: the patches stay in its cache), per col2im chunk (shared by all
 * threads), and the weight gradient's fixed number of partial sums. */
enum { FWD_ROWS = 128, DW_ROWS = 256, BWD_ROWS = 1024, DW_SHARDS = 8 };

int sl_conv2d_out_h(const sl_conv2d_shape *s)
{
    if (s->k < 1 || s->stride < 1 || s->pad < 0 || s->H < 1)
        return 0;
    int span = s->H + 2 * s->pad - s->k;
    return span < 0 ? 0 : span / s->stride + 1;
}

int sl_conv2d_out_w(const sl_conv2d_shape *s)
{
    if (s->k < 1 || s->stride < 1 || s->pad < 0 || s->W < 1)
        return 0;
    int span = s->W + 2 * s->pad - s->k;
    return span < 0 ? 0 : span / s->stride + 1;
}

size_t sl_conv2d_weight_numel(const sl_conv2d_shape *s)
{
    return (size_t)s->cout * s->k * s->k * s->cin;
}

static sl_status check_shape(const sl_conv2d_shape *s, sl_error *err)
{
    if (s->B < 1 || s->cin < 1 || s->cout < 1 || s->stride < 1 || s->stride > 2 ||
        sl_conv2d_out_h(s) < 1 || sl_conv2d_out_w(s) < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "conv2d: invalid shape B=%d H=%d W=%d cin=%d cout=%d k=%d "
                            "stride=%d pad=%d",
                            s->B, s->H, s->W, s->cin, s->cout, s->k, s->stride, s->pad);
    return SL_OK;
}

/* The 1x1, stride 1, no-padding case is a linear layer over all B H W pixels. */
static int is_pointwise(const sl_conv2d_shape *s)
{
    return s->k == 1 && s->stride == 1 && s->pad == 0;
}

/* Patch rows m0 .. m0+rows-1 of image x_img (H, W, cin) into P (rows, K). */
static void im2col_rows(float *P, const float *x_img, const sl_conv2d_shape *s, int Wo,
                        int m0, int rows)
{
    const int k = s->k, cin = s->cin, K = k * k * cin;
    for (int r = 0; r < rows; r++) {
        int m = m0 + r, ho = m / Wo, wo = m % Wo;
        float *row = P + (size_t)r * K;
        for (int ky = 0; ky < k; ky++) {
            int h = ho * s->stride - s->pad + ky;
            for (int kx = 0; kx < k; kx++) {
                int w = wo * s->stride - s->pad + kx;
                float *dst = row + (size_t)(ky * k + kx) * cin;
                if (h < 0 || h >= s->H || w < 0 || w >= s->W)
                    memset(dst, 0, sizeof(float) * (size_t)cin);
                else
                    memcpy(dst, x_img + ((size_t)h * s->W + w) * cin,
                           sizeof(float) * (size_t)cin);
            }
        }
    }
}

/* y = conv(x) + b (accumulate 0: y overwritten) or y += conv(x) (accumulate 1, b NULL).
 * Each thread takes whole chunks of FWD_ROWS output pixels: builds their patches and
 * multiplies them by W^T in one single-threaded SGEMM (the patches stay in its cache); the
 * chunks follow from the shape alone, so the result does not depend on the thread count. */
static sl_status conv_apply(float *y, const float *x, const float *w, const float *b,
                            const sl_conv2d_shape *s, int accumulate, sl_error *err)
{
    const int Ho = sl_conv2d_out_h(s), Wo = sl_conv2d_out_w(s);
    const int K = s->k * s->k * s->cin, M = Ho * Wo, cout = s->cout;
    const int chunks = (M + FWD_ROWS - 1) / FWD_ROWS;
    const long units = (long)s->B * chunks;
    float *scratch = sl_thread_scratch_alloc((size_t)FWD_ROWS * K);
    if (!scratch)
        return sl_error_set(err, SL_ERR_NOMEM, "conv2d: cannot allocate %d x %d patches",
                            FWD_ROWS, K);
#pragma omp parallel for schedule(dynamic, 1)
    for (long u = 0; u < units; u++) {
        float *P = sl_thread_scratch(scratch, (size_t)FWD_ROWS * K);
        int bi = (int)(u / chunks), m0 = (int)(u % chunks) * FWD_ROWS;
        int rows = M - m0 < FWD_ROWS ? M - m0 : FWD_ROWS;
        im2col_rows(P, x + (size_t)bi * s->H * s->W * s->cin, s, Wo, m0, rows);
        float *yc = y + ((size_t)bi * M + m0) * cout;   /* (rows, cout) */
        float beta = accumulate ? 1.0f : 0.0f;
        if (b) {
            for (int r = 0; r < rows; r++)
                memcpy(yc + (size_t)r * cout, b, sizeof(float) * (size_t)cout);
            beta = 1.0f;
        }
        /* One tile, this thread: single-threaded OpenBLAS. */
        sl_nn_gemm1(0, 1, rows, cout, K, 1.0f, P, K, w, K, beta, yc, cout);
    }
    free(scratch);
    return SL_OK;
}

sl_status sl_conv2d_forward(float *y, const float *x, const float *w, const float *b,
                            const sl_conv2d_shape *s, sl_error *err)
{
    sl_status st = check_shape(s, err);
    if (st != SL_OK)
        return st;
    if (is_pointwise(s)) {
        sl_linear_forward(y, x, w, b, s->B * s->H * s->W, s->cin, s->cout);
        return SL_OK;
    }
    return conv_apply(y, x, w, b, s, 0, err);
}

/* A stride-1 convolution that keeps the size (2 pad = k - 1): its input gradient is itself
 * such a convolution, of dY with the flipped, transposed kernel,
 *   dX[h, w, c] = sum_{ky, kx, o} dY[h + pad - ky, w + pad - kx, o] W[o, ky, kx, c]
 *               = sum_{ky', kx', o} dY[h - pad + ky', w - pad + kx', o] Wt[c, ky', kx', o],
 *   Wt[c, ky', kx', o] = W[o, k-1-ky', k-1-kx', c],
 * so it runs as a forward pass (gathers, no scatter of patch gradients). */
static int input_grad_is_conv(const sl_conv2d_shape *s)
{
    return s->stride == 1 && 2 * s->pad == s->k - 1;
}

static sl_status input_grad_by_conv(float *dx, const float *dy, const float *w,
                                    const sl_conv2d_shape *s, sl_error *err)
{
    const int k = s->k, cin = s->cin, cout = s->cout;
    float *wt = malloc(sizeof(float) * sl_conv2d_weight_numel(s));   /* (cin, k, k, cout) */
    if (!wt)
        return sl_error_set(err, SL_ERR_NOMEM, "conv2d: cannot allocate a %d x %d x %d x %d "
                            "kernel", cin, k, k, cout);
    for (int c = 0; c < cin; c++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
                for (int o = 0; o < cout; o++)
                    wt[(((size_t)c * k + ky) * k + kx) * cout + o] =
                        w[(((size_t)o * k + (k - 1 - ky)) * k + (k - 1 - kx)) * cin + c];
    const sl_conv2d_shape t = { .B = s->B, .H = s->H, .W = s->W, .cin = cout, .cout = cin,
                                .k = k, .stride = 1, .pad = s->pad };
    sl_status st = conv_apply(dx, dy, wt, NULL, &t, 1, err);
    free(wt);
    return st;
}

/* dx_img (H, W, cin) += col2im of dP (rows, K), the patch gradients of output pixels
 * m0 .. m0+rows-1. Gather form: each input pixel sums the patch entries copied from it,
 * taps in (ky, kx) order, so threads (over input rows) never write the same pixel and the
 * order of additions is fixed. */
static void col2im_rows(float *dx_img, const float *dP, const sl_conv2d_shape *s, int Ho,
                        int Wo, int m0, int rows)
{
    const int k = s->k, cin = s->cin, K = k * k * cin, st = s->stride, pad = s->pad;
    int ho_first = m0 / Wo, ho_last = (m0 + rows - 1) / Wo;
    int h_lo = ho_first * st - pad, h_hi = ho_last * st - pad + k - 1;
    if (h_lo < 0)
        h_lo = 0;
    if (h_hi > s->H - 1)
        h_hi = s->H - 1;
    (void)Ho;
#pragma omp parallel for schedule(static)
    for (int h = h_lo; h <= h_hi; h++) {
        for (int w = 0; w < s->W; w++) {
            float *d = dx_img + ((size_t)h * s->W + w) * cin;
            for (int ky = 0; ky < k; ky++) {
                /* ho st - pad + ky = h */
                int num_h = h + pad - ky;
                if (num_h < 0 || num_h % st)
                    continue;
                int ho = num_h / st;
                for (int kx = 0; kx < k; kx++) {
                    int num_w = w + pad - kx;
                    if (num_w < 0 || num_w % st)
                        continue;
                    int wo = num_w / st;
                    if (wo >= Wo)
                        continue;
                    int m = ho * Wo + wo;
                    if (m < m0 || m >= m0 + rows)
                        continue;
                    const float *src = dP + (size_t)(m - m0) * K + (size_t)(ky * k + kx) * cin;
                    for (int c = 0; c < cin; c++)
                        d[c] += src[c];
                }
            }
        }
    }
}

/* dW (cout, K) += sum over all B Ho Wo output pixels of dY_m^T P_m. The pixels are cut into
 * chunks of DW_ROWS per image, dealt round robin to DW_SHARDS shards; a shard sums its
 * chunks into a partial of its own (im2col of the chunk into this thread's buffer, then one
 * single-threaded SGEMM while the patches are in cache), and the partials are added in shard
 * order. The chunks, the shards and the order of every sum follow from the shape alone, so
 * the result does not depend on the thread count. */
static sl_status weight_grad(float *dw, const float *dy, const float *x,
                             const sl_conv2d_shape *s, sl_error *err)
{
    const int Wo = sl_conv2d_out_w(s), M = sl_conv2d_out_h(s) * Wo;
    const int K = s->k * s->k * s->cin, cout = s->cout;
    const int per_img = (M + DW_ROWS - 1) / DW_ROWS;
    const long chunks = (long)s->B * per_img;
    const int shards = chunks < DW_SHARDS ? (int)chunks : DW_SHARDS;
    const size_t nw = (size_t)cout * K;
    float *partial = calloc((size_t)shards * nw, sizeof(float));   /* (shards, cout, K) */
    float *scratch = sl_thread_scratch_alloc((size_t)DW_ROWS * K);
    if (!partial || !scratch) {
        free(partial);
        free(scratch);
        return sl_error_set(err, SL_ERR_NOMEM, "conv2d: cannot allocate %d weight-gradient "
                            "partials of %d x %d", shards, cout, K);
    }
    const size_t in_img = (size_t)s->H * s->W * s->cin;
#pragma omp parallel for schedule(dynamic, 1)
    for (int sh = 0; sh < shards; sh++) {
        float *P = sl_thread_scratch(scratch, (size_t)DW_ROWS * K);
        for (long c = sh; c < chunks; c += shards) {
            int bi = (int)(c / per_img), m0 = (int)(c % per_img) * DW_ROWS;
            int rows = M - m0 < DW_ROWS ? M - m0 : DW_ROWS;
            im2col_rows(P, x + bi * in_img, s, Wo, m0, rows);
            /* partial (cout, K) += dY_c^T (cout, rows) . P (rows, K) */
            sl_nn_gemm1(1, 0, cout, K, rows, 1.0f, dy + ((size_t)bi * M + m0) * cout, cout,
                        P, K, 1.0f, partial + (size_t)sh * nw, K);
        }
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nw; i++) {
        float acc = 0.0f;
        for (int sh = 0; sh < shards; sh++)
            acc += partial[(size_t)sh * nw + i];
        dw[i] += acc;
    }
    free(partial);
    free(scratch);
    return SL_OK;
}

/* dX += col2im of dY W, for the layers whose input gradient is not a convolution of the
 * same form (strided or other padding): per image, chunks of BWD_ROWS output pixels. */
static sl_status input_grad_by_col2im(float *dx, const float *dy, const float *w,
                                      const sl_conv2d_shape *s, sl_error *err)
{
    const int Ho = sl_conv2d_out_h(s), Wo = sl_conv2d_out_w(s);
    const int K = s->k * s->k * s->cin, M = Ho * Wo, cout = s->cout;
    const int cap = M < BWD_ROWS ? M : BWD_ROWS;
    float *dP = malloc(sizeof(float) * (size_t)cap * K);
    if (!dP)
        return sl_error_set(err, SL_ERR_NOMEM, "conv2d: cannot allocate %d x %d patches",
                            cap, K);
    const size_t in_img = (size_t)s->H * s->W * s->cin;
    for (int bi = 0; bi < s->B; bi++) {
        for (int m0 = 0; m0 < M; m0 += cap) {
            int rows = M - m0 < cap ? M - m0 : cap;
            const float *dyc = dy + ((size_t)bi * M + m0) * cout;   /* (rows, cout) */
            /* dP (rows, K) = dY_c (rows, cout) . W (cout, K), then scattered back. */
            sl_nn_gemm(0, 0, rows, K, cout, 1.0f, dyc, cout, w, K, 0.0f, dP, K);
            col2im_rows(dx + bi * in_img, dP, s, Ho, Wo, m0, rows);
        }
    }
    free(dP);
    return SL_OK;
}

sl_status sl_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                             const float *w, const sl_conv2d_shape *s, sl_error *err)
{
    sl_status st = check_shape(s, err);
    if (st != SL_OK)
        return st;
    if (is_pointwise(s)) {
        sl_linear_backward(dx, dw, db, dy, x, w, s->B * s->H * s->W, s->cin, s->cout);
        return SL_OK;
    }
    if (db)
        sl_nn_colsum_add(db, dy, (size_t)s->B * sl_conv2d_out_h(s) * sl_conv2d_out_w(s),
                         s->cout);
    if (dw && (st = weight_grad(dw, dy, x, s, err)) != SL_OK)
        return st;
    if (dx)
        st = input_grad_is_conv(s) ? input_grad_by_conv(dx, dy, w, s, err)
                                   : input_grad_by_col2im(dx, dy, w, s, err);
    return st;
}
