/* plugins/baselines/constant.c — baseline `constant`: phi = 1, grad_{x_t} phi = 0.
 *
 * With this baseline the Stein control variate mu (eps phi - sigma_t grad phi) becomes
 * mu eps, so SSD with mu = 1 is exactly SDS (method.md section 2). It is the anchor of the
 * SSD tests, and the term that carries the weight of eps when an informative baseline is
 * fitted next to it (then SDS is the special case where every other mu_j is 0). */
#include <stdlib.h>
#include <string.h>

#include "steinlab/steinlab.h"

typedef struct constant_state {
    const sl_host *host;
} constant_state;

static sl_status constant_create(const sl_host *host, const sl_params *params, void **state,
                                 sl_error *err)
{
    (void)params;
    constant_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "constant: out of memory");
    s->host = host;
    *state = s;
    return SL_OK;
}

static void constant_destroy(void *state)
{
    free(state);
}

static sl_status constant_eval(void *state, const sl_estimator_ctx *ctx, float *phi,
                               float *grad_phi, sl_error *err)
{
    (void)state;
    (void)err;
    const size_t per = (size_t)ctx->height * ctx->width * ctx->channels;
    for (int b = 0; b < ctx->batch; b++)
        phi[b] = 1.0f;                                                /* (B,) */
    memset(grad_phi, 0, (size_t)ctx->batch * per * sizeof(float));  /* (B, H, W, C) */
    return SL_OK;
}

static const sl_baseline_vtable constant_vtable = {
    .struct_size = sizeof(sl_baseline_vtable),
    .create = constant_create,
    .destroy = constant_destroy,
    .required_outputs = NULL,   /* needs nothing from the representation */
    .eval = constant_eval,
    .update = NULL,             /* nothing to learn */
};

static const sl_plugin constant_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_BASELINE,
    .name = "constant",
    .version = "1.0.0",
    .summary = "Constant Stein baseline phi = 1 (SSD with it and mu = 1 is SDS)",
    .params = { .defs = NULL, .count = 0 },
    .vtable = &constant_vtable,
};

SL_PLUGIN_ENTRY(&constant_plugin)
