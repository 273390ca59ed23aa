/* plugins/estimators/sds.c — estimator `sds`: Score Distillation Sampling (DreamFusion).
 *
 *     Delta = eps_hat - eps
 *
 * the prior's guided noise prediction minus the injected noise (method.md section 1): the
 * control variate h = eps has exactly zero mean over eps, and removes the noise the ideal
 * denoiser sees again in x_t. It is SSD with the constant baseline phi = 1 and mu = 1
 * (method.md section 2). The core owns everything around it (t_range, weighting w(t),
 * noise_samples), so this plugin has no parameters and no state beyond its host. */
#include <stdlib.h>

#include "steinlab/steinlab.h"

typedef struct sds_state {
    const sl_host *host;
} sds_state;

static sl_status sds_create(const sl_host *host, const sl_params *params, void **state,
                            sl_error *err)
{
    (void)params;
    sds_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "sds: out of memory");
    s->host = host;
    *state = s;
    return SL_OK;
}

static void sds_destroy(void *state)
{
    free(state);
}

static sl_status sds_delta(void *state, const sl_estimator_ctx *ctx, float *delta,
                           sl_error *err)
{
    (void)state;
    (void)err;
    const size_t n = (size_t)ctx->batch * ctx->height * ctx->width * ctx->channels;
    const float *eps_hat = ctx->eps_hat;   /* (B, H, W, C) */
    const float *eps = ctx->eps;           /* (B, H, W, C) */
#pragma omp parallel for schedule(static) if (n > 262144)
    for (size_t i = 0; i < n; i++)
        delta[i] = eps_hat[i] - eps[i];
    return SL_OK;
}

static const sl_estimator_vtable sds_vtable = {
    .struct_size = sizeof(sl_estimator_vtable),
    .create = sds_create,
    .destroy = sds_destroy,
    .required_outputs = NULL,   /* RGB only */
    .delta = sds_delta,
    .update = NULL,             /* stateless */
};

static const sl_plugin sds_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_ESTIMATOR,
    .name = "sds",
    .version = "1.0.0",
    .summary = "Score Distillation Sampling (DreamFusion): Delta = eps_hat - eps",
    .params = { .defs = NULL, .count = 0 },   /* t_range, weighting, noise_samples: core */
    .vtable = &sds_vtable,
};

SL_PLUGIN_ENTRY(&sds_plugin)
