/* core/nn/gemm.h — internal: SGEMM cut into tiles whose boundaries depend only on the
 * shapes, each tile one single-threaded OpenBLAS call inside an OpenMP loop.
 *
 * Why not let OpenBLAS thread a big call itself: its split depends on the thread count, and
 * the project promises results independent of it (nn.h, DETERMINISM). Here every element
 * of C is computed by exactly one cblas_sgemm call over the full K, whose shape (and so its
 * kernel's summation order) is the same whatever the number of threads; OpenBLAS built for
 * OpenMP runs single-threaded inside a parallel region. */
#ifndef STEINLAB_NN_GEMM_H
#define STEINLAB_NN_GEMM_H

#include <stddef.h>

/* Row-major C (M, N) = alpha op(A) op(B) + beta C, op(A): (M, K), op(B): (K, N).
 * trans_a: A is stored (K, M) with leading dimension lda (else (M, K)); same for trans_b.
 * Parallel over (TM x TN) tiles of C (gemm.c). */
void sl_nn_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* The same, single call, no OpenMP region of its own: for callers already inside one
 * (one tile of their own decomposition). */
void sl_nn_gemm1(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* db (C,) += column sums of dy (R, C), each in double in row order (linear.c). */
void sl_nn_colsum_add(float *db, const float *dy, size_t R, int C);

#endif
