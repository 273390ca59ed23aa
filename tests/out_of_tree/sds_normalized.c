/* sds_normalized.c — an estimator written outside the steinlab tree, in one file, built
 * against the installed headers:
 *
 *   cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags steinlab) \
 *      sds_normalized.c -o sds_normalized.so $(pkg-config --libs steinlab)
 *   STEINLAB_PLUGIN_PATH=$PWD steinlab run spec.yaml estimator.plugin=sds_normalized
 *
 * The direction is SDS's, Delta = eps_hat - eps, rescaled per batch element to a chosen
 * root-mean-square value: the step size then no longer follows the noise level of the
 * drawn t. (It changes the objective: a normalised direction is not the gradient of a
 * fixed loss.) docs/plugins.md walks through this file. */
#include <math.h>
#include <stdlib.h>

#include <steinlab/steinlab.h>

typedef struct state {
    const sl_host *host;
    double target_rms;
} state;

static const sl_param_def params[] = {
    { .name = "target_rms", .type = SL_PARAM_FLOAT, .default_value = "1.0", .min = 1e-6,
      .max = 1e6, .doc = "Root-mean-square value of Delta after rescaling, per batch element" },
};

static sl_status create(const sl_host *host, const sl_params *p, void **out, sl_error *err)
{
    state *s = host->alloc(host, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    s->host = host;
    s->target_rms = sl_params_float(p, "target_rms");
    host->declare_series(host, "delta_rms_raw", "RMS of eps_hat - eps before rescaling", NULL);
    *out = s;
    return SL_OK;
}

static void destroy(void *p)
{
    state *s = p;
    s->host->free_mem(s->host, s);
}

static sl_status delta(void *p, const sl_estimator_ctx *ctx, float *out, sl_error *err)
{
    state *s = p;
    size_t per = (size_t)ctx->height * ctx->width * ctx->channels;   /* one batch element */
    double raw_sum = 0;
    for (int b = 0; b < ctx->batch; b++) {
        const float *eh = ctx->eps_hat + b * per, *e = ctx->eps + b * per;
        float *d = out + b * per;
        double ss = 0;
        for (size_t i = 0; i < per; i++) {
            d[i] = eh[i] - e[i];
            ss += (double)d[i] * d[i];
        }
        double rms = sqrt(ss / (double)per);
        raw_sum += rms;
        /* A zero direction stays zero rather than dividing by zero. */
        float k = rms > 0 ? (float)(s->target_rms / rms) : 0.0f;
        for (size_t i = 0; i < per; i++)
            d[i] *= k;
    }
    s->host->record(s->host, "delta_rms_raw", raw_sum / ctx->batch);
    return SL_OK;
}

static const sl_estimator_vtable vtable = {
    .struct_size = sizeof(sl_estimator_vtable),
    .create = create,
    .destroy = destroy,
    .delta = delta,
};

static const sl_plugin plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_ESTIMATOR,
    .name = "sds_normalized",
    .version = "1.0.0",
    .summary = "SDS direction rescaled to a fixed RMS per render (out-of-tree example)",
    .params = SL_PARAM_SCHEMA(params),
    .vtable = &vtable,
};

SL_PLUGIN_ENTRY(&plugin)
