/* core/nn/params.c — the parameter store: named tensors carved from one allocation (nn.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/nn.h"

/* Tensors start on 64-byte boundaries (16 floats): whole cache lines, aligned SIMD loads. */
enum { ALIGN_FLOATS = 16 };

void sl_nn_params_init(sl_nn_params *p)
{
    memset(p, 0, sizeof *p);
}

sl_status sl_nn_params_declare(sl_nn_params *p, const char *name, int ndim,
                               const int64_t *shape, sl_nn_init init, int fan_in,
                               size_t *index, sl_error *err)
{
    if (p->data)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "params: cannot declare '%s' after the store is allocated", name);
    size_t len = strlen(name);
    if (len == 0 || len >= SL_NN_NAME_MAX)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "params: tensor name '%s' must have 1 to %d bytes", name,
                            SL_NN_NAME_MAX - 1);
    if (ndim < 1 || ndim > SL_NN_MAX_DIMS)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "params: '%s' has %d dimensions (1..%d)",
                            name, ndim, SL_NN_MAX_DIMS);
    if (sl_nn_params_find(p, name) >= 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "params: duplicate tensor name '%s'",
                            name);
    if (init == SL_NN_INIT_UNIFORM && fan_in < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "params: '%s' needs fan_in >= 1", name);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        /* Bounded so that the product and the running total cannot overflow size_t. */
        if (shape[i] < 1 || shape[i] > (1 << 30) || numel > ((size_t)1 << 34) / shape[i])
            return sl_error_set(err, SL_ERR_INVALID_ARG,
                                "params: '%s' dimension %d has invalid size %lld", name, i,
                                (long long)shape[i]);
        numel *= (size_t)shape[i];
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 32;
        sl_nn_tensor *t = realloc(p->tensors, cap * sizeof *t);
        if (!t)
            return sl_error_set(err, SL_ERR_NOMEM, "params: out of memory declaring '%s'",
                                name);
        p->tensors = t;
        p->cap = cap;
    }
    sl_nn_tensor *t = &p->tensors[p->n];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, len + 1);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->numel = numel;
    t->offset = p->total;
    t->init = init;
    t->fan_in = fan_in;
    p->total += (numel + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    if (index)
        *index = p->n;
    p->n++;
    return SL_OK;
}

sl_status sl_nn_params_alloc(sl_nn_params *p, sl_error *err)
{
    if (p->data)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "params: already allocated");
    size_t total = p->total ? p->total : ALIGN_FLOATS;
    /* One allocation for both, as llm.c: data then grad, each 64-byte aligned since total
     * is a multiple of 16 floats. */
    float *mem = aligned_alloc(64, 2 * total * sizeof(float));
    if (!mem)
        return sl_error_set(err, SL_ERR_NOMEM, "params: cannot allocate %zu floats",
                            2 * total);
    memset(mem, 0, 2 * total * sizeof(float));
    p->data = mem;
    p->grad = mem + total;
    return SL_OK;
}

void sl_nn_params_free(sl_nn_params *p)
{
    free(p->data);   /* grad lives in the same block */
    free(p->tensors);
    memset(p, 0, sizeof *p);
}

float *sl_nn_param(const sl_nn_params *p, size_t i) { return p->data + p->tensors[i].offset; }
float *sl_nn_grad(const sl_nn_params *p, size_t i) { return p->grad + p->tensors[i].offset; }

long sl_nn_params_find(const sl_nn_params *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->tensors[i].name, name) == 0)
            return (long)i;
    return -1;
}

void sl_nn_params_randomize(sl_nn_params *p, sl_rng_key key)
{
    for (size_t i = 0; i < p->n; i++) {
        const sl_nn_tensor *t = &p->tensors[i];
        float *d = p->data + t->offset;
        switch (t->init) {
        case SL_NN_INIT_ZERO:
            memset(d, 0, t->numel * sizeof(float));
            break;
        case SL_NN_INIT_ONE:
            for (size_t j = 0; j < t->numel; j++)
                d[j] = 1.0f;
            break;
        case SL_NN_INIT_UNIFORM: {
            /* U(-a, a) with a = 1/sqrt(fan_in): torch's kaiming_uniform_(a = sqrt(5)) gives
             * gain sqrt(2 / (1 + 5)) and bound gain sqrt(3 / fan_in) = 1 / sqrt(fan_in). */
            float a = 1.0f / sqrtf((float)t->fan_in);
            sl_rng_uniform(key, t->offset, t->numel, d);
            for (size_t j = 0; j < t->numel; j++)
                d[j] = a * (2.0f * d[j] - 1.0f);
            break;
        }
        }
    }
}

void sl_nn_params_zero_grad(sl_nn_params *p)
{
    if (p->grad)
        memset(p->grad, 0, p->total * sizeof(float));
}

sl_param_group sl_nn_params_group(const sl_nn_params *p, const char *name)
{
    sl_param_group g = { name, p->data, p->grad, p->total };
    return g;
}

#include "declare.h"

sl_status sl_nn_declare_named(sl_nn_params *p, const char *prefix, const char *suffix,
                              int ndim, const int64_t dims[4], sl_nn_init init, int fan_in,
                              size_t *index, sl_error *err)
{
    char name[SL_NN_NAME_MAX];
    int n = snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    if (n < 0 || (size_t)n >= sizeof name)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "params: tensor name '%s.%s' is longer than %d bytes", prefix,
                            suffix, SL_NN_NAME_MAX - 1);
    return sl_nn_params_declare(p, name, ndim, dims, init, fan_in, index, err);
}
