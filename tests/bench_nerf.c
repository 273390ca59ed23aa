/* tests/bench_nerf.c — forward+backward time of the `nerf` representation per view (a
 * benchmark, not a test; docs/perf.md, section "NeRF").
 *
 *     bench_nerf [threads] [repeats] [extra yaml for the representation]
 *
 * For each size (64x64, 128x128): one TRAIN render of one view (rgb, depth, opacity) and
 * its backward with a random upstream gradient on rgb, best of `repeats`; samples per
 * second count the samples evaluated (forward) per second of forward+backward; cpu ms is the
 * best process CPU time (all threads) of one forward+backward. The default
 * configuration matches tests/bench_nerf_torch.py: 8 levels x 2 features, 2^15 entries,
 * N_min 16, b 1.447, density MLP 16-32-16, colour MLP 15-32-3, 64 samples per ray, no
 * occupancy skipping and no early termination (every sample of a ray inside the box is
 * evaluated in both implementations). Peak memory is the process's max RSS. Normals are
 * not rendered unless the extra yaml asks for them through the orientation regulariser,
 * e.g. "normals: analytic\nlambda_orient: 0.1" (forward and backward through the normals). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "steinlab/steinlab.h"
#include "support/plugin_setup.h"

#define steinlab_plugin_entry bench_entry_nerf
#include "../plugins/representations/nerf/nerf.c"
#undef steinlab_plugin_entry

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the process (all threads): on a machine shared with other jobs it measures
 * the work, where wall time also measures the other jobs. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int repeats = argc > 2 ? atoi(argv[2]) : 5;
    const char *extra = argc > 3 ? argv[3] : "";
    omp_set_num_threads(threads);
    sl_host host;
    plugin_setup_host(&host, "nerf");
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "occupancy: false\nearly_stop: 0\n%s", extra);
    const sl_plugin *p = bench_entry_nerf(0);
    const sl_representation_vtable *vt = p->vtable;
    sl_params *params = NULL;
    sl_error err = { "" };
    void *state = NULL;
    if (plugin_setup_params(p, yaml, &params, &err) != SL_OK ||
        vt->create(&host, params, &state, &err) != SL_OK) {
        fprintf(stderr, "bench_nerf: %s\n", err.msg);
        return 1;
    }
    printf("threads %d, repeats %d, config: %s\n", threads, repeats,
           *extra ? extra : "(defaults, no occupancy, no early stop)");
    printf("%-8s %10s %10s %10s %10s %12s %14s\n", "size", "fwd ms", "bwd ms", "total ms",
           "cpu ms", "samples", "samples/s");
    const int sizes[2] = { 64, 128 };
    for (int si = 0; si < 2; si++) {
        int R = sizes[si];
        sl_camera cam;
        sl_camera_orbit(30.0f, 15.0f, 2.0f, NULL, 50.0f, R, R, &cam);
        size_t px = (size_t)R * R;
        float *rgb = malloc(px * 12), *depth = malloc(px * 4), *opac = malloc(px * 4);
        float *G = malloc(px * 12);
        sl_rng_key k = { .seed = 1, .step = 0, .stream = 77, .sample = 0 };
        sl_rng_normal(k, 0, px * 3, G);
        sl_render out = { 1, R, R, rgb, depth, NULL, opac };
        sl_render grad = { 1, R, R, G, NULL, NULL, NULL };
        sl_render_request req = { &cam, 1, 0, SL_RENDER_TRAIN };
        double best_f = 1e30, best_b = 1e30, best_t = 1e30, best_cpu = 1e30;
        double samples = 0;
        for (int rep = 0; rep < repeats + 1; rep++) {   /* the first is a warm-up */
            double c0 = cpu_s(), t0 = now_s();
            if (vt->render(state, &req, &out, &err) != SL_OK) {
                fprintf(stderr, "bench_nerf: %s\n", err.msg);
                return 1;
            }
            double t1 = now_s();
            if (vt->backward(state, &grad, &err) != SL_OK) {
                fprintf(stderr, "bench_nerf: %s\n", err.msg);
                return 1;
            }
            double t2 = now_s(), c2 = cpu_s();
            if (rep == 0)
                continue;
            best_cpu = c2 - c0 < best_cpu ? c2 - c0 : best_cpu;
            if (t2 - t0 < best_t) {
                best_t = t2 - t0;
                best_f = t1 - t0;
                best_b = t2 - t1;
            }
        }
        nerf_state *s = state;
        samples = 0;
        for (size_t r = 0; r < px; r++)
            samples += s->ray_n[r];
        printf("%-8s %10.2f %10.2f %10.2f %10.2f %12.0f %14.3g\n", R == 64 ? "64x64" : "128x128",
               1e3 * best_f, 1e3 * best_b, 1e3 * best_t, 1e3 * best_cpu, samples,
               samples / best_t);
        free(rgb);
        free(depth);
        free(opac);
        free(G);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak memory (max RSS): %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
    vt->destroy(state);
    sl_params_free(params);
    return 0;
}
