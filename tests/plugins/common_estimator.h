/* tests/plugins/common_estimator.h — the smallest valid estimator pieces, shared by the
 * loader's test plugins (each plugin file breaks the contract in one way). */
#ifndef STEINLAB_TEST_COMMON_ESTIMATOR_H
#define STEINLAB_TEST_COMMON_ESTIMATOR_H

#include <stddef.h>

#include <steinlab/steinlab.h>

static int test_token;   /* a non-NULL state */

static inline sl_status test_create(const sl_host *host, const sl_params *params, void **state,
                             sl_error *err)
{
    *state = &test_token;
    return SL_OK;
}

static inline void test_destroy(void *state) {}

/* Delta = eps_hat - eps (SDS). */
static inline sl_status test_delta(void *state, const sl_estimator_ctx *ctx, float *delta,
                            sl_error *err)
{
    size_t n = (size_t)ctx->batch * ctx->height * ctx->width * ctx->channels;
    for (size_t i = 0; i < n; i++)
        delta[i] = ctx->eps_hat[i] - ctx->eps[i];
    return SL_OK;
}

#endif
