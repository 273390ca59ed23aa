/* tests/bench_dmtet.c — time of the `dmtet` representation per view (a benchmark, not a
 * test; docs/perf.md, section "DMTet").
 *
 *     bench_dmtet [threads] [repeats]
 *
 * For grids of 64^3 and 128^3 cubes (sphere of radius 0.5 in [-1, 1]^3, deformations and
 * SDF perturbed at random so nothing is axis-aligned) and views of 64x64 and 256x256: the
 * extraction alone (deformation, marching tetrahedra, topology, vertex normals), then one
 * TRAIN render of one view (extraction included; rgb, depth, normal, opacity) and its
 * backward with random upstream gradients on every output and both regularisers on, best
 * of `repeats` after a warm-up. Wall-clock times, and the process's CPU time of the best
 * render + backward (all threads together): on a machine shared with other jobs the CPU
 * time is the steadier number. Peak memory is the process's max RSS. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "steinlab/steinlab.h"
#include "support/plugin_setup.h"

#define steinlab_plugin_entry bench_entry_dmtet
#include "../plugins/representations/dmtet/dmtet.c"
#undef steinlab_plugin_entry

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int repeats = argc > 2 ? atoi(argv[2]) : 3;
    omp_set_num_threads(threads);
    sl_host host;
    plugin_setup_host(&host, "dmtet");
    const sl_plugin *p = bench_entry_dmtet(0);
    const sl_representation_vtable *vt = p->vtable;
    printf("threads %d, repeats %d\n", threads, repeats);
    printf("%-6s %-8s %8s %10s %10s %10s %10s %10s\n", "grid", "view", "faces", "extract ms",
           "render ms", "bwd ms", "total ms", "CPU ms");
    const int grids[2] = { 64, 128 }, sizes[2] = { 64, 256 };
    for (int gi = 0; gi < 2; gi++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, "grid_resolution: %d\nlambda_normal_consistency: 0.1\n"
                 "lambda_laplacian: 1.0\n", grids[gi]);
        sl_params *params = NULL;
        sl_error err = { "" };
        void *state = NULL;
        if (plugin_setup_params(p, yaml, &params, &err) != SL_OK ||
            vt->create(&host, params, &state, &err) != SL_OK) {
            fprintf(stderr, "bench_dmtet: %s\n", err.msg);
            return 1;
        }
        dmtet_state *s = state;
        sl_rng_key k = { .seed = 1, .step = 0, .stream = 78, .sample = 0 };
        size_t nv = s->grid.n_vertices;
        float *noise = malloc(nv * 4 * sizeof(float));
        sl_rng_normal(k, 0, nv * 4, noise);
        for (size_t v = 0; v < nv; v++) {
            for (int c = 0; c < 3; c++)
                s->def[3 * v + c] = 0.5f * noise[4 * v + c];
            s->sdf[v] += 0.1f * s->grid.cell[0] * noise[4 * v + 3];
        }
        free(noise);
        for (int si = 0; si < 2; si++) {
            int R = sizes[si];
            sl_camera cam;
            sl_camera_orbit(30.0f, 15.0f, 2.0f, NULL, 50.0f, R, R, &cam);
            size_t px = (size_t)R * R;
            float *buf = malloc(px * 8 * sizeof(float)), *G = malloc(px * 8 * sizeof(float));
            sl_rng_key kg = { .seed = 1, .step = 0, .stream = 77, .sample = 0 };
            sl_rng_normal(kg, 0, px * 8, G);
            sl_render out = { 1, R, R, buf, buf + 3 * px, buf + 4 * px, buf + 7 * px };
            sl_render grad = { 1, R, R, G, G + 3 * px, G + 4 * px, G + 7 * px };
            sl_render_request req = { &cam, 1, 0, SL_RENDER_TRAIN };
            double best_e = 1e30, best_r = 1e30, best_b = 1e30, best_t = 1e30, best_c = 1e30;
            for (int rep = 0; rep < repeats + 1; rep++) {   /* the first is a warm-up */
                double t0 = now_s();
                if (dmtet_extract(s, &err) != SL_OK) {
                    fprintf(stderr, "bench_dmtet: %s\n", err.msg);
                    return 1;
                }
                double t1 = now_s(), c1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
                if (vt->render(state, &req, &out, &err) != SL_OK) {
                    fprintf(stderr, "bench_dmtet: %s\n", err.msg);
                    return 1;
                }
                double t2 = now_s();
                if (vt->backward(state, &grad, &err) != SL_OK) {
                    fprintf(stderr, "bench_dmtet: %s\n", err.msg);
                    return 1;
                }
                double t3 = now_s(), c3 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
                if (rep == 0)
                    continue;
                best_e = t1 - t0 < best_e ? t1 - t0 : best_e;
                best_c = c3 - c1 < best_c ? c3 - c1 : best_c;
                if (t3 - t1 < best_t) {
                    best_t = t3 - t1;
                    best_r = t2 - t1;
                    best_b = t3 - t2;
                }
            }
            printf("%-6d %-8s %8zu %10.2f %10.2f %10.2f %10.2f %10.2f\n", grids[gi],
                   R == 64 ? "64x64" : "256x256", s->surf.n_faces, 1e3 * best_e, 1e3 * best_r,
                   1e3 * best_b, 1e3 * best_t, 1e3 * best_c);
            fflush(stdout);
            free(buf);
            free(G);
        }
        vt->destroy(state);
        sl_params_free(params);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak memory (max RSS): %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
    return 0;
}
