/* tests/bench_gaussians.c — forward + backward throughput of the Gaussian rasterizer.
 *
 * Usage: bench_gaussians [REPS]   (threads: OMP_NUM_THREADS; docs/perf.md uses 2)
 * Scenes: N Gaussians uniform in a ball of radius 0.5, isotropic-ish log-scales around
 * log(0.5 r (4.19/N)^(1/3)) +- 0.5, random rotations, opacity logits in [-1, 2], SH degree
 * 3 with small higher bands; camera on an orbit at distance 2, fovy 50, square images.
 * Upstream gradients on rgb, depth, normal and opacity. Prints the median over REPS of
 * render + backward, per view, and the scene statistics (visible, tile entries). The same
 * scene distribution is used by tests/bench_gaussians.py (PyTorch). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "raster.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static uint32_t rs = 12345;
static double ur(void)
{
    rs ^= rs << 13; rs ^= rs >> 17; rs ^= rs << 5;
    return (rs >> 8) * (1.0 / 16777216.0);
}
static double nr(void) { return sqrt(-2 * log(ur() + 1e-12)) * cos(6.283185307 * ur()); }

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    const size_t Ns[2] = { 10000, 100000 };
    const int Rs[3] = { 64, 256, 512 };
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("threads %d, reps %d (median)\n", threads, reps);
    printf("%8s %6s %10s %10s %12s %12s %14s\n", "N", "res", "visible", "entries",
           "fwd ms", "fwd+bwd ms", "Mpx/s (f+b)");
    for (int a = 0; a < 2; a++) {
        size_t n = Ns[a];
        float *m = malloc(n * 12), *ls = malloc(n * 12), *q = malloc(n * 16), *op = malloc(n * 4),
              *dc = malloc(n * 12), *rest = malloc(n * 180);
        float *g = calloc(n * 59, 4);
        double base = log(0.5 * 0.5 * cbrt(4.19 / (double)n));
        for (size_t i = 0; i < n; i++) {
            double d[3] = { nr(), nr(), nr() }, l = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
            double r = 0.5 * cbrt(ur()) / (l > 0 ? l : 1);
            for (int c = 0; c < 3; c++) {
                m[i * 3 + c] = (float)(d[c] * r);
                ls[i * 3 + c] = (float)(base + (ur() - 0.5));
                dc[i * 3 + c] = (float)(ur() * 2 - 1);
            }
            for (int c = 0; c < 4; c++)
                q[i * 4 + c] = (float)nr();
            op[i] = (float)(-1 + 3 * ur());
            for (int c = 0; c < 45; c++)
                rest[i * 45 + c] = (float)(0.1 * (ur() * 2 - 1));
        }
        gs_scene s = { n, m, ls, q, op, dc, rest, 15, 3 };
        gs_scene_grad gr = { g, g + n * 3, g + n * 6, g + n * 10, g + n * 11, g + n * 14, NULL, NULL };
        for (int b = 0; b < 3; b++) {
            int R = Rs[b];
            size_t px = (size_t)R * R;
            float *out = malloc(px * 8 * 4), *G = malloc(px * 8 * 4);
            for (size_t i = 0; i < px * 8; i++)
                G[i] = (float)(ur() * 2 - 1) * 1e-3f;
            sl_camera cam;
            sl_camera_orbit(30, 20, 2.0f, NULL, 50, R, R, &cam);
            gs_view *v = gs_view_create();
            float bg[3] = { 1, 1, 1 };
            sl_error err;
            double tf[64], tt[64];
            int nrep = reps < 64 ? reps : 64;
            for (int k = -1; k < nrep; k++) {   /* one warm-up */
                double t0 = now();
                if (gs_render(v, &s, &cam, bg, out, out + px * 3, out + px * 4, out + px * 7, &err)) {
                    fprintf(stderr, "%s\n", err.msg);
                    return 1;
                }
                double t1 = now();
                gs_backward(v, &s, G, G + px * 3, G + px * 4, G + px * 7, &gr, &err);
                double t2 = now();
                if (k >= 0) {
                    tf[k] = (t1 - t0) * 1e3;
                    tt[k] = (t2 - t0) * 1e3;
                }
            }
            qsort(tf, (size_t)nrep, sizeof(double), cmp_d);
            qsort(tt, (size_t)nrep, sizeof(double), cmp_d);
            double mf = tf[nrep / 2], mt = tt[nrep / 2];
            printf("%8zu %6d %10zu %10zu %12.2f %12.2f %14.2f\n", n, R, gs_view_visible(v),
                   gs_view_entries(v), mf, mt, (double)px / (mt * 1e3));
            gs_view_destroy(v);
            free(out);
            free(G);
        }
        free(m); free(ls); free(q); free(op); free(dc); free(rest); free(g);
    }
    return 0;
}
