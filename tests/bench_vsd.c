/* tests/bench_vsd.c — VSD's cost per step (a benchmark, not a test): the time of update()
 * per render (psi's forward, backward and Adam step on `train_samples` draws) and of delta()
 * per render (one forward), for the default network (channels 32, levels 2) at 32x32 (the
 * quickstart) and 64x64, batch 1 and 4. Median of `reps` calls after 3 warm-up calls, in
 * wall-clock time and in process CPU time (all threads; on a shared, loaded machine the CPU
 * time divided by the thread count is the better estimate of an unloaded wall time).
 *
 * Usage: bench_vsd [reps]        (threads: OMP_NUM_THREADS, default all cores) */
#include <omp.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#define steinlab_plugin_entry bench_vsd_entry
#include "../plugins/estimators/vsd/vsd.c"
#undef steinlab_plugin_entry

static sl_diffusion bench_diffusion;
static int bench_size;

static void bench_info(const void *state, sl_prior_info *info)
{
    (void)state;
    *info = (sl_prior_info){ .height = bench_size, .width = bench_size, .channels = 3,
                             .diffusion = &bench_diffusion, .guidance_scale = 1.0 };
}

static const sl_prior_vtable bench_prior_vt = { .struct_size = sizeof(sl_prior_vtable),
                                                .info = bench_info };
static const sl_prior_ref bench_prior = { &bench_prior_vt, NULL };

static void bench_log(const sl_host *h, sl_log_level l, const char *fmt, ...)
{
    (void)h; (void)l; (void)fmt;
}
static void *bench_alloc(const sl_host *h, size_t n) { (void)h; return calloc(1, n ? n : 1); }
static void bench_free(const sl_host *h, void *p) { (void)h; free(p); }
static sl_status bench_declare(const sl_host *h, const char *n, const char *d, sl_error *e)
{
    (void)h; (void)n; (void)d; (void)e;
    return SL_OK;
}
static void bench_record(const sl_host *h, const char *n, double v) { (void)h; (void)n; (void)v; }
static const sl_prior_ref *bench_prior_of(const sl_host *h) { (void)h; return &bench_prior; }

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void bench(int size, int B, int train_samples, int reps)
{
    static const char *const reserved[] = { "plugin", "label", NULL };
    bench_size = size;
    sl_host host = {
        .struct_size = sizeof(sl_host), .abi_version = SL_ABI_VERSION, .label = "vsd",
        .seed = 1, .rng_stream_base = SL_STREAM_PLUGIN_BASE, .log = bench_log,
        .alloc = bench_alloc, .free_mem = bench_free, .declare_series = bench_declare,
        .record = bench_record, .prior = bench_prior_of, .diffusion = &bench_diffusion,
        .spec_dir = ".",
    };
    char yaml[64];
    snprintf(yaml, sizeof yaml, "train_samples: %d\n", train_samples);
    const sl_plugin *p = bench_vsd_entry(0);
    sl_node *root = NULL;
    sl_params *params = NULL;
    sl_error err = { "" };
    void *state = NULL;
    if (sl_spec_parse_string(yaml, strlen(yaml), "<bench>", &root, &err) != SL_OK ||
        sl_params_resolve(root, p->name, &p->params, reserved, &params, &err) != SL_OK ||
        vsd_create(&host, params, &state, &err) != SL_OK) {
        fprintf(stderr, "bench_vsd: %s\n", err.msg);
        exit(1);
    }
    sl_node_free(root);
    const size_t D = (size_t)size * size * 3, n = (size_t)B * D;
    float *x0 = malloc(n * 4), *eps = malloc(n * 4), *xt = malloc(n * 4), *zero = calloc(n, 4);
    float *delta = malloc(n * 4);
    sl_rng_normal((sl_rng_key){ 1, 0, 1, 0 }, 0, n, x0);
    sl_rng_normal((sl_rng_key){ 1, 0, 2, 0 }, 0, n, eps);
    int t[16];
    double alpha[16], sigma[16];
    sl_camera cams[16];
    for (int b = 0; b < B; b++) {
        t[b] = 100 + 200 * b;
        alpha[b] = sl_diffusion_alpha(&bench_diffusion, t[b]);
        sigma[b] = sl_diffusion_sigma(&bench_diffusion, t[b]);
        sl_camera_orbit(90.0f * b, 15.0f, 2.0f, NULL, 50.0f, size, size, &cams[b]);
        for (size_t i = 0; i < D; i++)
            xt[b * D + i] = (float)(alpha[b] * x0[b * D + i] + sigma[b] * eps[b * D + i]);
    }
    sl_estimator_ctx ctx = { .batch = B, .height = size, .width = size, .channels = 3,
                             .t = t, .alpha = alpha, .sigma = sigma, .x0 = x0, .eps = eps,
                             .x_t = xt, .eps_hat = zero, .cams = cams };
    const sl_estimator_ctx *ctxs[1] = { &ctx };
    double *tu = malloc((size_t)reps * sizeof *tu), *td = malloc((size_t)reps * sizeof *td);
    double *cu = malloc((size_t)reps * sizeof *cu);
    for (int r = -3; r < reps; r++) {
        ctx.step = r + 3;
        double t0 = omp_get_wtime();
        vsd_delta(state, &ctx, delta, &err);
        double t1 = omp_get_wtime(), c1 = cpu_seconds();
        if (vsd_update(state, ctxs, 1, &err) != SL_OK) {
            fprintf(stderr, "bench_vsd: %s\n", err.msg);
            exit(1);
        }
        double t2 = omp_get_wtime(), c2 = cpu_seconds();
        if (r >= 0) {
            cu[r] = c2 - c1;
            td[r] = t1 - t0;
            tu[r] = t2 - t1;
        }
    }
    printf("%3dx%-3d batch %d, %d draw%s/render: update %7.2f ms/render (CPU %7.2f ms), delta "
           "%6.2f ms/render (%zu parameters, %d threads)\n", size, size, B, train_samples,
           train_samples == 1 ? " " : "s", 1e3 * median(tu, reps) / B,
           1e3 * median(cu, reps) / B, 1e3 * median(td, reps) / B, ((vsd_state *)state)->net.params.total,
           omp_get_max_threads());
    vsd_destroy(state);
    sl_params_free(params);
    free(x0); free(eps); free(xt); free(zero); free(delta); free(tu); free(td); free(cu);
}

int main(int argc, char **argv)
{
    const int reps = argc > 1 ? atoi(argv[1]) : 10;
    sl_diffusion_default(&bench_diffusion);
    bench(32, 1, 1, reps);
    bench(32, 4, 1, reps);
    bench(64, 1, 1, reps);
    bench(64, 4, 1, reps);
    bench(64, 1, 4, reps);
    return 0;
}
