/* A stateful estimator for the checkpoint tests: SDS plus a decaying memory of earlier
 * steps, Delta_k = (eps_hat - eps) + beta m_{k-1}, where update() sets m_k to the mean over
 * the step's draws of eps_hat - eps. Its future depends on the state it saves
 * (save_state/load_state), so a resume that dropped or garbled the state would not
 * reproduce an uninterrupted run. Not a method anyone should use. */
#include <stddef.h>
#include <string.h>

#include <steinlab/steinlab.h>

typedef struct momentum_state {
    const sl_host *host;
    double beta;
    float *memory;        /* (n,) m, in prior space; allocated at the first delta() */
    size_t n;
    int64_t updates;      /* number of update() calls so far */
} momentum_state;

static const sl_param_def defs[] = {
    { "beta", SL_PARAM_FLOAT, 0, "0.5", 0, 1, NULL, 0, 0, "Weight of the previous step's mean" },
};

static sl_status create(const sl_host *host, const sl_params *params, void **out, sl_error *err)
{
    momentum_state *s = host->alloc(host, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    s->host = host;
    s->beta = sl_params_float(params, "beta");
    *out = s;
    return SL_OK;
}

static void destroy(void *p)
{
    momentum_state *s = p;
    s->host->free_mem(s->host, s->memory);
    s->host->free_mem(s->host, s);
}

static sl_status ensure_memory(momentum_state *s, size_t n, sl_error *err)
{
    if (s->memory && s->n == n)
        return SL_OK;
    if (s->memory)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "momentum_sds: image size changed");
    s->memory = s->host->alloc(s->host, n * sizeof(float));
    if (!s->memory)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    s->n = n;
    return SL_OK;
}

static sl_status delta(void *p, const sl_estimator_ctx *ctx, float *out, sl_error *err)
{
    momentum_state *s = p;
    size_t n = (size_t)ctx->batch * ctx->height * ctx->width * ctx->channels;
    sl_status st = ensure_memory(s, n, err);
    if (st != SL_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        out[i] = ctx->eps_hat[i] - ctx->eps[i] + (float)s->beta * s->memory[i];
    return SL_OK;
}

static sl_status update(void *p, const sl_estimator_ctx *const *ctxs, int count, sl_error *err)
{
    momentum_state *s = p;
    memset(s->memory, 0, s->n * sizeof(float));
    for (int k = 0; k < count; k++)
        for (size_t i = 0; i < s->n; i++)
            s->memory[i] += (ctxs[k]->eps_hat[i] - ctxs[k]->eps[i]) / (float)count;
    s->updates++;
    return SL_OK;
}

static sl_status save_state(void *p, sl_state_io *io, sl_error *err)
{
    momentum_state *s = p;
    sl_status st = sl_state_put(io, "updates", SL_STATE_I64, &s->updates, 1, err);
    if (st == SL_OK && s->memory)
        st = sl_state_put(io, "memory", SL_STATE_F32, s->memory, s->n, err);
    return st;
}

static sl_status load_state(void *p, sl_state_io *io, sl_error *err)
{
    momentum_state *s = p;
    sl_status st = sl_state_get(io, "updates", SL_STATE_I64, &s->updates, 1, err);
    if (st != SL_OK || s->updates == 0)
        return st;
    size_t n = 0;
    if ((st = sl_state_count(io, "memory", &n, err)) != SL_OK ||
        (st = ensure_memory(s, n, err)) != SL_OK)
        return st;
    return sl_state_get(io, "memory", SL_STATE_F32, s->memory, n, err);
}

/* Built as a plugin of ABI 1's first published size (before probe_stats was appended):
 * the loader accepts it and the probes never read past it (tests/test_resume.py probes it). */
static const sl_estimator_vtable vt = {
    .struct_size = offsetof(sl_estimator_vtable, probe_stats),
    .create = create,
    .destroy = destroy,
    .delta = delta,
    .update = update,
    .save_state = save_state,
    .load_state = load_state,
};
static const sl_plugin desc = { SL_ABI_VERSION, sizeof(sl_plugin), SL_KIND_ESTIMATOR,
                                "momentum_sds", "1.0.0",
                                "SDS with a memory of the previous step (checkpoint tests)",
                                SL_PARAM_SCHEMA(defs), &vt };
SL_PLUGIN_ENTRY(&desc)
