/* core/nn/gemm.c — tiled, thread-count-independent SGEMM (gemm.h). */
#include "gemm.h"

#include <cblas.h>

/* Tile sizes: big enough that OpenBLAS's packing of a tile's panels (O(TM K + TN K)) is
 * small against its O(TM TN K) work, small enough that a (B H W, C) activation matrix
 * gives both threads many tiles. Changing them changes results in the last bits (the
 * kernel's edge handling), never their independence of the thread count. */
enum { TILE_M = 256, TILE_N = 256 };

void sl_nn_gemm1(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        /* C = beta C: OpenBLAS handles K = 0, but spell it out (no reads of A or B). */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                ldc);
}

void sl_nn_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    int tm = (M + TILE_M - 1) / TILE_M, tn = (N + TILE_N - 1) / TILE_N;
    long tiles = (long)tm * tn;
    /* Always inside a parallel region, even for one tile: outside one, OpenBLAS would use
     * its own threads and its own split. */
#pragma omp parallel for schedule(dynamic, 1)
    for (long t = 0; t < tiles; t++) {
        int i0 = (int)(t / tn) * TILE_M, j0 = (int)(t % tn) * TILE_N;
        int mi = M - i0 < TILE_M ? M - i0 : TILE_M;
        int nj = N - j0 < TILE_N ? N - j0 : TILE_N;
        /* op(A) rows i0.. : stored rows i0 (no trans) or columns i0 (trans). */
        const float *a = trans_a ? A + i0 : A + (size_t)i0 * lda;
        const float *b = trans_b ? B + (size_t)j0 * ldb : B + j0;
        sl_nn_gemm1(trans_a, trans_b, mi, nj, K, alpha, a, lda, b, ldb, beta,
                    C + (size_t)i0 * ldc + j0, ldc);
    }
}
