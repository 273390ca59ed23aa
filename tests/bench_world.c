/* tests/bench_world.c — benchmark of the world prior's noise prediction (not a test).
 *
 * Measures noise_pred with CFG (s = 7.5, bucket conditioning, unconditional = every view)
 * on banks of 250 .. 2000 views at 32 .. 128 pixels, and this machine's memory bandwidth in
 * the same run, and prints seconds per call, the bytes of bank read per call (the distance
 * pass over every view plus the weighted pass over the views that keep a weight) and the
 * achieved bytes per second as a fraction of the measured read bandwidth.
 *
 * Usage: bench_world [threads (default 2)] [calls per point (default 20)]
 * The banks are real renders of one scene ("a red sphere on a blue box") on a grid of
 * views/10 azimuths x 5 elevations x 2 distances, rendered here (cache off). */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "steinlab/steinlab.h"

#define steinlab_plugin_entry bench_world_entry
#include "../plugins/priors/world/world.c"
#undef steinlab_plugin_entry

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void bench_log(const sl_host *h, sl_log_level level, const char *fmt, ...)
{
    if (level < SL_LOG_WARN)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void *bench_alloc(const sl_host *h, size_t bytes)
{
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p)
        memset(p, 0, (bytes + 63) / 64 * 64);
    return p;
}
static void bench_free(const sl_host *h, void *p) { free(p); }
static sl_status bench_declare(const sl_host *h, const char *n, const char *d, sl_error *e)
{
    return SL_OK;
}
static void bench_record(const sl_host *h, const char *name, double value) {}
static const sl_prior_ref *bench_prior(const sl_host *h) { return NULL; }

/* STREAM-like read (sum) and triad bandwidth, best of 5, in bytes/s, over `n` doubles per
 * array. The sum reads 8 bytes per element; the triad a = b + 3 c moves 24 (2 reads, 1
 * write; write-allocate traffic not counted, as in STREAM). */
static void measure_bandwidth(size_t n, double *read_bw, double *triad_bw)
{
    double *a = aligned_alloc(64, n * 8), *b = aligned_alloc(64, n * 8),
           *c = aligned_alloc(64, n * 8);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 0.0;
        b[i] = 1.0 + (double)(i & 7);
        c[i] = 2.0;
    }
    double best_sum = INFINITY, best_triad = INFINITY, sink = 0.0;
    for (int rep = 0; rep < 5; rep++) {
        /* Eight partial sums per thread, so the sum is limited by memory, not by the
         * latency of one chain of additions. */
        double t0 = now(), s = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : s)
        for (size_t blk = 0; blk < n / 8; blk++) {
            const double *p = b + 8 * blk;
            s += ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
        }
        double t1 = now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] + 3.0 * c[i];
        double t2 = now();
        sink += s + a[n / 2];
        best_sum = fmin(best_sum, t1 - t0);
        best_triad = fmin(best_triad, t2 - t1);
    }
    if (sink == 42.0)
        printf("(unlikely)\n");
    *read_bw = (double)n * 8 / best_sum;
    *triad_bw = (double)n * 24 / best_triad;
    free(a), free(b), free(c);
}

typedef struct bench_result {
    double sec, bytes, active;
} bench_result;

/* One configuration: create the prior, then time `calls` noise predictions at time t. */
static int bench_point(int views, int res, int t, int calls, const char *storage,
                       bench_result *out)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "prompt: a red sphere on a blue box\nresolution: %d\n"
             "azimuths: %d\nelevations: [-10, 10, 30, 50, 70]\ndistances: [1.5, 2.0]\n"
             "unconditional: all_buckets\nconditioning: bucket\nguidance_scale: 7.5\n"
             "cache: false\nstorage: %s\n", res, views / 10, storage);
    static sl_diffusion diff;
    sl_diffusion_default(&diff);
    sl_host host = {
        .struct_size = sizeof(sl_host), .abi_version = SL_ABI_VERSION, .label = "world",
        .seed = 1, .rng_stream_base = SL_STREAM_PLUGIN_BASE, .log = bench_log,
        .alloc = bench_alloc, .free_mem = bench_free, .declare_series = bench_declare,
        .record = bench_record, .prior = bench_prior, .diffusion = &diff, .spec_dir = ".",
    };
    const sl_plugin *p = bench_world_entry(0);
    static const char *const reserved[] = { "plugin", "label", NULL };
    sl_node *root = NULL;
    sl_params *params = NULL;
    sl_error err;
    void *state = NULL;
    sl_status st = sl_spec_parse_string(yaml, strlen(yaml), "<bench>", &root, &err);
    if (st == SL_OK)
        st = sl_params_resolve(root, p->name, &p->params, reserved, &params, &err);
    sl_node_free(root);
    if (st == SL_OK)
        st = world_create(&host, params, &state, &err);
    if (st != SL_OK) {
        fprintf(stderr, "bench: %s\n", err.msg);
        sl_params_free(params);
        return 1;
    }
    world_state *s = state;
    const size_t D = s->bank.dim;
    float *x = malloc(D * sizeof *x), *eps = malloc(D * sizeof *eps);
    /* x_t from a view that is not on the grid's exact pose mix: view 7 plus noise. */
    const double alpha = sl_diffusion_alpha(&diff, t), sigma = sl_diffusion_sigma(&diff, t);
    sl_rng_key k = { .seed = 3, .step = 0, .stream = 77, .sample = 0 };
    sl_rng_normal(k, 0, D, eps);
    for (size_t i = 0; i < D; i++)
        x[i] = (float)(alpha * world_bank_get(s->bank.x, s->bank.storage, 7 * D + i) +
                       sigma * eps[i]);
    sl_camera cam;
    sl_camera_orbit(10.0f, 15.0f, 1.8f, NULL, 55.0f, res, res, &cam);
    int tt[1] = { t };
    sl_prior_query q = { .batch = 1, .x_t = x, .t = tt, .cams = &cam, .step = 0 };
    world_noise_pred(s, &q, eps, &err);   /* warm-up */
    double best = INFINITY;
    for (int c = 0; c < calls; c++) {
        double t0 = now();
        world_noise_pred(s, &q, eps, &err);
        best = fmin(best, now() - t0);
    }
    /* Views read by the weighted pass: those that keep a weight in U or Y (denoiser.c). */
    const world_set y = world_cond_set(s, &cam);
    double ru_max = 0, ry_max = 0;
    for (size_t j = 0; j < s->n_uncond; j++)
        ru_max = fmax(ru_max, s->r_u[j]);
    for (size_t j = 0; j < y.n; j++)
        ry_max = fmax(ry_max, s->r_y[j]);
    char *mark = calloc(s->bank.n_views, 1);
    size_t active = 0;
    for (size_t j = 0; j < s->n_uncond; j++)
        mark[s->uncond[j]] |= s->r_u[j] >= WORLD_R_SKIP * ru_max && s->r_u[j] > 0;
    for (size_t j = 0; j < y.n; j++)
        mark[y.idx[j]] |= s->r_y[j] >= WORLD_R_SKIP * ry_max && s->r_y[j] > 0;
    for (size_t k2 = 0; k2 < s->bank.n_views; k2++)
        active += mark[k2];
    free(mark);
    const double es = s->bank.storage == WORLD_STORE_F16 ? 2.0 : 4.0;
    out->sec = best;
    out->active = (double)active;
    out->bytes = ((double)s->n_uncond + (double)active) * (double)D * es;
    free(x), free(eps);
    world_destroy(s);
    sl_params_free(params);
    return 0;
}

int main(int argc, char **argv)
{
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    const int calls = argc > 2 ? atoi(argv[2]) : 20;
    omp_set_num_threads(threads);
    /* Arrays of 1 GiB (the sum reads one, the triad three): a few times the last-level
     * cache even of large-cache server parts. Note that a bank smaller than the L3 cache
     * (this machine: 508 MiB) is served from it between calls. */
    double read_bw, triad_bw;
    measure_bandwidth((size_t)1 << 27, &read_bw, &triad_bw);
    printf("threads %d; memory bandwidth (1 GiB arrays): read (sum) %.2f GB/s, triad %.2f GB/s\n",
           threads, read_bw / 1e9, triad_bw / 1e9);
    printf("%-8s %6s %5s %5s %8s %10s %10s %8s %7s %7s\n", "storage", "views", "res", "t",
           "active", "ms/call", "MB/call", "GB/s", "%read", "%triad");
    struct { int views, res, t; const char *storage; } pts[] = {
        { 1000, 64, 500, "float32" }, { 1000, 64, 980, "float32" },
        { 250, 64, 500, "float32" },  { 500, 64, 500, "float32" },
        { 2000, 64, 500, "float32" }, { 1000, 32, 500, "float32" },
        { 1000, 128, 500, "float32" }, { 1000, 64, 500, "float16" },
        { 1000, 64, 980, "float16" },
    };
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        bench_result r;
        if (bench_point(pts[i].views, pts[i].res, pts[i].t, calls, pts[i].storage, &r) != 0)
            return 1;
        const double bw = r.bytes / r.sec;
        printf("%-8s %6d %5d %5d %8.0f %10.3f %10.2f %8.2f %6.0f%% %6.0f%%\n", pts[i].storage,
               pts[i].views, pts[i].res, pts[i].t, r.active, 1e3 * r.sec, r.bytes / 1e6,
               bw / 1e9, 100 * bw / read_bw, 100 * bw / triad_bw);
        fflush(stdout);
    }
    return 0;
}
