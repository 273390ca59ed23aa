/* core/optim.c — Adam over parameter groups, gradient norms and checks
 * (steinlab/optim.h).
 *
 * Update (k = number of updates including this one, lr from the group's schedule):
 *     m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
 *     m_hat = m / (1 - b1^k),   v_hat = v / (1 - b2^k)
 *     theta <- theta - lr (m_hat / (sqrt(v_hat) + eps) + wd theta)
 * The decay term uses theta before this update (AdamW, decoupled from the moments).
 * Moments are stored in float like the parameters; each element's update is computed in
 * double and depends on that element only, so an OpenMP split over elements gives the
 * same bits for any thread count.
 *
 * Reductions (gradient norm, variance proxy) must not depend on the thread count either:
 * each group is cut into fixed blocks of REDUCE_BLOCK elements, every block is summed
 * sequentially in double (in parallel across blocks), then the block sums are added in
 * block order, and the group totals in group order. The association of the additions is
 * therefore fixed by n alone. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/optim.h"

enum {
    REDUCE_BLOCK = 4096,
    /* Element loops below this size run on the calling thread (fork/join costs more). */
    PARALLEL_MIN = 1 << 15
};

struct sl_adam {
    size_t n_groups;
    sl_param_group *groups;   /* (n_groups,) copies; data/grad owned by the plugins */
    sl_adam_config *configs;  /* (n_groups,) */
    float **m;                /* (n_groups,) each (groups[g].n,) first moment */
    float **v;                /* (n_groups,) each (groups[g].n,) second moment */
    int64_t k;                /* updates done */
};

sl_status sl_adam_create(const sl_param_group *groups, const sl_adam_config *configs,
                         size_t n_groups, sl_adam **out, sl_error *err)
{
    if (!out || (n_groups > 0 && (!groups || !configs)))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "adam: NULL argument");
    *out = NULL;
    for (size_t g = 0; g < n_groups; g++) {
        const char *name = groups[g].name ? groups[g].name : "(unnamed)";
        if (groups[g].n > 0 && (!groups[g].data || !groups[g].grad))
            return sl_error_set(err, SL_ERR_INVALID_ARG,
                                "adam: group '%s' has %zu elements but no data or grad",
                                name, groups[g].n);
        const sl_adam_config *c = &configs[g];
        if (!(c->beta1 >= 0.0 && c->beta1 < 1.0) || !(c->beta2 >= 0.0 && c->beta2 < 1.0))
            return sl_error_set(err, SL_ERR_INVALID_ARG,
                                "adam: group '%s': betas must be in [0, 1), got %g and %g",
                                name, c->beta1, c->beta2);
        if (!(c->eps >= 0.0) || !(c->weight_decay >= 0.0) || !isfinite(c->weight_decay) ||
            !isfinite(c->eps))
            return sl_error_set(err, SL_ERR_INVALID_ARG,
                                "adam: group '%s': eps and weight_decay must be finite and "
                                ">= 0, got %g and %g",
                                name, c->eps, c->weight_decay);
    }
    sl_adam *a = calloc(1, sizeof *a);
    if (!a)
        goto nomem;
    a->n_groups = n_groups;
    if (n_groups > 0) {
        a->groups = malloc(n_groups * sizeof *a->groups);
        a->configs = malloc(n_groups * sizeof *a->configs);
        a->m = calloc(n_groups, sizeof *a->m);
        a->v = calloc(n_groups, sizeof *a->v);
        if (!a->groups || !a->configs || !a->m || !a->v)
            goto nomem;
        memcpy(a->groups, groups, n_groups * sizeof *groups);
        memcpy(a->configs, configs, n_groups * sizeof *configs);
        for (size_t g = 0; g < n_groups; g++) {
            size_t n = groups[g].n ? groups[g].n : 1;   /* calloc(0) may return NULL */
            a->m[g] = calloc(n, sizeof(float));
            a->v[g] = calloc(n, sizeof(float));
            if (!a->m[g] || !a->v[g])
                goto nomem;
        }
    }
    *out = a;
    return SL_OK;
nomem:
    sl_adam_destroy(a);
    return sl_error_set(err, SL_ERR_NOMEM, "adam: out of memory for the moments");
}

void sl_adam_destroy(sl_adam *a)
{
    if (!a)
        return;
    for (size_t g = 0; g < a->n_groups; g++) {
        if (a->m)
            free(a->m[g]);
        if (a->v)
            free(a->v[g]);
    }
    free(a->m);
    free(a->v);
    free(a->groups);
    free(a->configs);
    free(a);
}

double sl_adam_lr(const sl_adam *a, size_t g, int64_t step)
{
    if (g >= a->n_groups)
        return 0.0;
    return sl_schedule_at(&a->configs[g].lr, step);
}

void sl_adam_set_lr(sl_adam *a, size_t g, sl_schedule lr)
{
    if (g < a->n_groups)
        a->configs[g].lr = lr;
}

int64_t sl_adam_count(const sl_adam *a)
{
    return a->k;
}

float *sl_adam_moment(sl_adam *a, size_t g, int which)
{
    if (!a || g >= a->n_groups || (which != 1 && which != 2))
        return NULL;
    return which == 1 ? a->m[g] : a->v[g];
}

void sl_adam_set_count(sl_adam *a, int64_t k)
{
    a->k = k;
}

void sl_adam_step(sl_adam *a, int64_t step)
{
    a->k++;
    for (size_t g = 0; g < a->n_groups; g++) {
        const sl_adam_config *c = &a->configs[g];
        const double lr = sl_schedule_at(&c->lr, step);
        const double b1 = c->beta1, b2 = c->beta2, eps = c->eps, wd = c->weight_decay;
        const double bc1 = 1.0 - pow(b1, (double)a->k);
        const double bc2 = 1.0 - pow(b2, (double)a->k);
        float *theta = a->groups[g].data;       /* (n,) */
        const float *grad = a->groups[g].grad;  /* (n,) */
        float *m = a->m[g];                     /* (n,) */
        float *v = a->v[g];                     /* (n,) */
        const int64_t n = (int64_t)a->groups[g].n;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++) {
            double gi = grad[i];
            double mi = b1 * m[i] + (1.0 - b1) * gi;
            double vi = b2 * v[i] + (1.0 - b2) * gi * gi;
            m[i] = (float)mi;
            v[i] = (float)vi;
            /* The update uses the unrounded moments, so the float storage of m and v only
             * affects later steps. */
            double upd = (mi / bc1) / (sqrt(vi / bc2) + eps) + wd * theta[i];
            theta[i] = (float)(theta[i] - lr * upd);
        }
    }
}

sl_status sl_adam_remap(sl_adam *a, size_t group, const int64_t *src, size_t new_n,
                        float *new_data, float *new_grad, sl_error *err)
{
    if (!a || group >= a->n_groups)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "adam remap: group %zu out of range "
                            "(%zu groups)", group, a ? a->n_groups : 0);
    const char *name = a->groups[group].name ? a->groups[group].name : "(unnamed)";
    if (new_n > 0 && (!src || !new_data || !new_grad))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "adam remap: group '%s': NULL array for "
                            "%zu new elements", name, new_n);
    const size_t old_n = a->groups[group].n;
    for (size_t i = 0; i < new_n; i++)
        if (src[i] < -1 || (src[i] >= 0 && (uint64_t)src[i] >= old_n))
            return sl_error_set(err, SL_ERR_INVALID_ARG, "adam remap: group '%s': source "
                                "index %lld of new element %zu is outside [-1, %zu)", name,
                                (long long)src[i], i, old_n);
    float *m = calloc(new_n ? new_n : 1, sizeof(float));   /* (new_n,) */
    float *v = calloc(new_n ? new_n : 1, sizeof(float));   /* (new_n,) */
    if (!m || !v) {
        free(m);
        free(v);
        return sl_error_set(err, SL_ERR_NOMEM, "adam remap: group '%s': out of memory for "
                            "%zu moments", name, new_n);
    }
    const float *om = a->m[group], *ov = a->v[group];
    for (size_t i = 0; i < new_n; i++)
        if (src[i] >= 0) {
            m[i] = om[src[i]];
            v[i] = ov[src[i]];
        }
    free(a->m[group]);
    free(a->v[group]);
    a->m[group] = m;
    a->v[group] = v;
    a->groups[group].data = new_data;
    a->groups[group].grad = new_grad;
    a->groups[group].n = new_n;
    return SL_OK;
}

size_t sl_adam_group_size(const sl_adam *a, size_t g)
{
    return a && g < a->n_groups ? a->groups[g].n : 0;
}

/* Sum over i in [0, n) of term(ctx, lo, hi) block by block, in the fixed order described
 * in the file comment. term sums its block sequentially. */
typedef double (*block_sum_fn)(const void *ctx, size_t lo, size_t hi);

static double fixed_order_sum(const void *ctx, size_t n, block_sum_fn term)
{
    if (n == 0)
        return 0.0;
    const size_t nb = (n + REDUCE_BLOCK - 1) / REDUCE_BLOCK;
    double *part = malloc(nb * sizeof *part);
    double total = 0.0;
    if (!part) {
        /* Same association, computed serially: identical result. */
        for (size_t b = 0; b < nb; b++) {
            size_t lo = b * REDUCE_BLOCK, hi = lo + REDUCE_BLOCK < n ? lo + REDUCE_BLOCK : n;
            total += term(ctx, lo, hi);
        }
        return total;
    }
    const int64_t nbi = (int64_t)nb;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
    for (int64_t b = 0; b < nbi; b++) {
        size_t lo = (size_t)b * REDUCE_BLOCK;
        size_t hi = lo + REDUCE_BLOCK < n ? lo + REDUCE_BLOCK : n;
        part[b] = term(ctx, lo, hi);
    }
    for (size_t b = 0; b < nb; b++)
        total += part[b];
    free(part);
    return total;
}

static double sum_squares(const void *ctx, size_t lo, size_t hi)
{
    const float *x = ctx;
    double s = 0.0;
    for (size_t i = lo; i < hi; i++)
        s += (double)x[i] * x[i];
    return s;
}

typedef struct var_ctx {
    const float *m, *v;   /* (n,) each */
    double bc1, bc2;      /* bias corrections 1 - b^k */
} var_ctx;

static double sum_var(const void *ctx, size_t lo, size_t hi)
{
    const var_ctx *c = ctx;
    double s = 0.0;
    for (size_t i = lo; i < hi; i++) {
        double mh = c->m[i] / c->bc1, vh = c->v[i] / c->bc2;
        s += vh - mh * mh;
    }
    return s;
}

double sl_adam_var_proxy(const sl_adam *a)
{
    if (a->k == 0)
        return 0.0;
    double total = 0.0;
    size_t count = 0;
    for (size_t g = 0; g < a->n_groups; g++) {
        const sl_adam_config *c = &a->configs[g];
        var_ctx ctx = {a->m[g], a->v[g], 1.0 - pow(c->beta1, (double)a->k),
                       1.0 - pow(c->beta2, (double)a->k)};
        total += fixed_order_sum(&ctx, a->groups[g].n, sum_var);
        count += a->groups[g].n;
    }
    return count ? total / (double)count : 0.0;
}

double sl_grad_norm(const sl_param_group *groups, size_t n_groups)
{
    double total = 0.0;
    for (size_t g = 0; g < n_groups; g++)
        if (groups[g].n > 0)
            total += fixed_order_sum(groups[g].grad, groups[g].n, sum_squares);
    return sqrt(total);
}

long sl_grad_first_nonfinite(const sl_param_group *groups, size_t n_groups, size_t *elem)
{
    for (size_t g = 0; g < n_groups; g++) {
        const float *grad = groups[g].grad;   /* (n,) */
        for (size_t i = 0; i < groups[g].n; i++)
            if (!isfinite(grad[i])) {
                if (elem)
                    *elem = i;
                return (long)g;
            }
    }
    return -1;
}

void sl_grad_scale(const sl_param_group *groups, size_t n_groups, double scale)
{
    for (size_t g = 0; g < n_groups; g++) {
        float *grad = groups[g].grad;   /* (n,) */
        const int64_t n = (int64_t)groups[g].n;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
        for (int64_t i = 0; i < n; i++)
            grad[i] = (float)(grad[i] * scale);
    }
}
