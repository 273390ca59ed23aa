/* tests/bench_nn.c — conv2d forward and backward throughput (a benchmark, not a test).
 *
 * Prints, for each layer shape, GFLOP/s of forward (Y = conv(X)) and of backward (dX, dW
 * and db together), and the fraction of OpenBLAS SGEMM's peak measured in the same run
 * (a 2048^3 SGEMM with OpenBLAS's own threads, best of 5). FLOPs: forward 2 B Ho Wo cout
 * k^2 cin; backward twice that (one GEMM for dX, one for dW). Best of `reps` runs each.
 * tests/bench_nn_torch.py runs this and PyTorch on the same shapes (docs/perf.md).
 *
 * Usage: bench_nn [reps]        (threads: OMP_NUM_THREADS, default all cores) */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "steinlab/nn.h"
#include "steinlab/rng.h"

static float *randn(size_t n, uint32_t stream)
{
    float *v = malloc(n * sizeof(float));
    sl_rng_key k = { 1, 0, stream, 0 };
    sl_rng_normal(k, 0, n, v);
    return v;
}

static double sgemm_peak(void)
{
    const int n = 2048;
    float *a = randn((size_t)n * n, 1), *b = randn((size_t)n * n, 2), *c = malloc(sizeof(float) * n * n);
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t = omp_get_wtime();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t = omp_get_wtime() - t;
        best = t < best ? t : best;
    }
    free(a), free(b), free(c);
    return 2.0 * n * n * n / best / 1e9;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    double peak = sgemm_peak();
    printf("threads %d\n", omp_get_max_threads());
    printf("blas_core %s\n", openblas_get_corename());
    printf("sgemm_peak_gflops %.1f\n", peak);
    printf("# B H W cin cout k stride fwd_gflops bwd_gflops fwd_frac_peak bwd_frac_peak\n");
    sl_conv2d_shape shapes[] = {
        { 8, 32, 32, 64, 64, 3, 1, 1 },   { 8, 32, 32, 128, 128, 3, 1, 1 },
        { 8, 64, 64, 64, 64, 3, 1, 1 },   { 8, 64, 64, 128, 128, 3, 1, 1 },
        { 8, 64, 64, 64, 128, 3, 2, 1 },  { 8, 32, 32, 128, 64, 1, 1, 0 },
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        sl_conv2d_shape *s = &shapes[i];
        int Ho = sl_conv2d_out_h(s), Wo = sl_conv2d_out_w(s);
        size_t nx = (size_t)s->B * s->H * s->W * s->cin, nw = sl_conv2d_weight_numel(s);
        size_t ny = (size_t)s->B * Ho * Wo * s->cout;
        float *x = randn(nx, 3), *w = randn(nw, 4), *b = randn(s->cout, 5), *dy = randn(ny, 6);
        float *y = malloc(ny * sizeof(float)), *dx = calloc(nx, sizeof(float));
        float *dw = calloc(nw, sizeof(float)), *db = calloc(s->cout, sizeof(float));
        sl_error err;
        double tf = 1e30, tb = 1e30;
        for (int r = 0; r < reps + 1; r++) {   /* the first run warms caches and allocators */
            double t = omp_get_wtime();
            if (sl_conv2d_forward(y, x, w, b, s, &err) != SL_OK) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            t = omp_get_wtime() - t;
            if (r)
                tf = t < tf ? t : tf;
            t = omp_get_wtime();
            if (sl_conv2d_backward(dx, dw, db, dy, x, w, s, &err) != SL_OK) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            t = omp_get_wtime() - t;
            if (r)
                tb = t < tb ? t : tb;
        }
        double flops = 2.0 * s->B * Ho * Wo * s->cout * (double)s->k * s->k * s->cin;
        double gf = flops / tf / 1e9, gb = 2.0 * flops / tb / 1e9;
        printf("%d %d %d %d %d %d %d %.1f %.1f %.2f %.2f\n", s->B, s->H, s->W, s->cin, s->cout,
               s->k, s->stride, gf, gb, gf / peak, gb / peak);
        free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
    }
    return 0;
}
