/* mean_intensity.c — a Stein baseline written outside the steinlab tree, in one file, built
 * against the installed headers (docs/plugins.md, "Writing a baseline"):
 *
 *   cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags steinlab) \
 *      mean_intensity.c -o mean_intensity.so $(pkg-config --libs steinlab)
 *   STEINLAB_PLUGIN_PATH=$PWD steinlab run experiments/ssd-2d.yaml \
 *      'estimator.baselines=[constant, {plugin: mean_intensity, scale: 2}]'
 *
 * phi = scale * mean(x_t) over the batch element's H W C values, so
 * grad_{x_t} phi = scale / (H W C) everywhere. Any differentiable phi keeps SSD's bracket
 * eps phi - sigma_t grad phi at mean zero (Stein's lemma); this one lets mu use how bright
 * the noisy image is. */
#include <stddef.h>

#include <steinlab/steinlab.h>

typedef struct state {
    const sl_host *host;
    double scale;
} state;

static const sl_param_def params[] = {
    { .name = "scale", .type = SL_PARAM_FLOAT, .default_value = "1.0", .min = -1e6,
      .max = 1e6, .doc = "phi = scale * mean(x_t)" },
};

static sl_status create(const sl_host *host, const sl_params *p, void **out, sl_error *err)
{
    state *s = host->alloc(host, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "mean_intensity: out of memory");
    s->host = host;
    s->scale = sl_params_float(p, "scale");
    *out = s;
    return SL_OK;
}

static void destroy(void *p)
{
    state *s = p;
    s->host->free_mem(s->host, s);
}

static sl_status eval(void *p, const sl_estimator_ctx *ctx, float *phi, float *grad_phi,
                      sl_error *err)
{
    const state *s = p;
    const size_t n = (size_t)ctx->height * ctx->width * ctx->channels;
    for (int b = 0; b < ctx->batch; b++) {
        const float *x = ctx->x_t + (size_t)b * n;   /* (H, W, C) */
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += x[i];
        phi[b] = (float)(s->scale * sum / (double)n);
        for (size_t i = 0; i < n; i++)
            grad_phi[(size_t)b * n + i] = (float)(s->scale / (double)n);
    }
    return SL_OK;
}

static const sl_baseline_vtable vtable = {
    .struct_size = sizeof(sl_baseline_vtable),
    .create = create,
    .destroy = destroy,
    .eval = eval,
};

static const sl_plugin plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_BASELINE,
    .name = "mean_intensity",
    .version = "1.0.0",
    .summary = "Stein baseline phi = scale * mean(x_t) (an out-of-tree example)",
    .params = SL_PARAM_SCHEMA(params),
    .vtable = &vtable,
};

SL_PLUGIN_ENTRY(&plugin)
