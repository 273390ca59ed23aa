/* An SDS estimator that returns NaN from a chosen step on: exercises the driver's guard
 * against non-finite values (the run must stop at that step with its log intact). */
#include <math.h>

#include "common_estimator.h"

typedef struct nan_state {
    const sl_host *host;
    long long from_step;
} nan_state;

static const sl_param_def defs[] = {
    { "nan_from_step", SL_PARAM_INT, 0, "3", 0, 1e9, NULL, 0, 0,
      "First step whose direction is NaN" },
};

static sl_status nan_create(const sl_host *host, const sl_params *params, void **state,
                            sl_error *err)
{
    nan_state *s = host->alloc(host, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    s->host = host;
    s->from_step = sl_params_int(params, "nan_from_step");
    *state = s;
    return SL_OK;
}

static void nan_destroy(void *state)
{
    nan_state *s = state;
    s->host->free_mem(s->host, s);
}

static sl_status nan_delta(void *state, const sl_estimator_ctx *ctx, float *delta, sl_error *err)
{
    const nan_state *s = state;
    sl_status st = test_delta(state, ctx, delta, err);
    if (ctx->step >= s->from_step)
        delta[0] = NAN;
    return st;
}

static const sl_estimator_vtable vt = { .struct_size = sizeof(sl_estimator_vtable),
                                        .create = nan_create, .destroy = nan_destroy, .delta = nan_delta };
static const sl_plugin desc = { SL_ABI_VERSION, sizeof(sl_plugin), SL_KIND_ESTIMATOR,
                                "nan_at_step", "1.0.0", "SDS that turns NaN at a given step",
                                SL_PARAM_SCHEMA(defs), &vt };
SL_PLUGIN_ENTRY(&desc)

