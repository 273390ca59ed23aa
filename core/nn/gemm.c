/* core/nn/gemm.c — tiled, thread-count-independent SGEMM (gemm.h). */
#include "gemm.h"

#include <cblas.h>

/* Tile sizes: big enough that OpenBLAS's packing of a tile's panels (O(TM K + TN K)) is
 * small against its O(TM TN K) work, small enough that a (B H W, C) activation matrix
 * gives both threads many tiles. A small C (a weight gradient of (cout, k k cin), say
 * 64 x 576) is cut finer, down to MIN_TILE, until it has MIN_TILES tiles, so that a few
 * threads share it evenly. The sizes follow from the shape alone: changing the rule changes
 * results in the last bits (the kernel's edge handling), never their independence of the
 * thread count. */
enum { TILE_M = 256, TILE_N = 256, MIN_TILE = 64, MIN_TILES = 8 };

static long count_tiles(int M, int N, int tm, int tn)
{
    return (long)((M + tm - 1) / tm) * ((N + tn - 1) / tn);
}

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
    int TM = TILE_M, TN = TILE_N;
    while (count_tiles(M, N, TM, TN) < MIN_TILES) {
        /* Halve the larger tile side among those whose halving adds tiles (N on a tie). */
        const int split_n = TN > MIN_TILE && N > TN / 2, split_m = TM > MIN_TILE && M > TM / 2;
        if (split_n && (TN >= TM || !split_m))
            TN /= 2;
        else if (split_m)
            TM /= 2;
        else
            break;
    }
    const int tm = (M + TM - 1) / TM, tn = (N + TN - 1) / TN;
    const long tiles = (long)tm * tn;
    /* Always inside a parallel region, even for one tile: outside one, OpenBLAS would use
     * its own threads and its own split. */
#pragma omp parallel for schedule(dynamic, 1)
    for (long t = 0; t < tiles; t++) {
        int i0 = (int)(t / tn) * TM, j0 = (int)(t % tn) * TN;
        int mi = M - i0 < TM ? M - i0 : TM;
        int nj = N - j0 < TN ? N - j0 : TN;
        /* op(A) rows i0.. : stored rows i0 (no trans) or columns i0 (trans). */
        const float *a = trans_a ? A + i0 : A + (size_t)i0 * lda;
        const float *b = trans_b ? B + (size_t)j0 * ldb : B + j0;
        sl_nn_gemm1(trans_a, trans_b, mi, nj, K, alpha, a, lda, b, ldb, beta,
                    C + (size_t)i0 * ldc + j0, ldc);
    }
}
