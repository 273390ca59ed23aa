/* plugins/priors/world/denoiser.c — the ideal denoiser and the Bayes geometry estimators
 * (derivations in denoiser.h). Memory-bound: one pass over the set's images for the
 * distances, one pass over the views that keep a weight for each weighted sum. */
#include "denoiser.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { WORLD_LANES = 8 };   /* interleaved partial sums of a distance */

/* The hot loops are compiled twice (AVX2 and baseline x86-64) and picked at load time
 * (GCC function multiversioning). Both clones evaluate the same operations in the same
 * order: no FMA is enabled, and the vectorised partial sums are the interleaved ones the
 * scalar code writes, so the results are bitwise identical on every x86-64 machine. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(WORLD_NO_CLONES)
#define WORLD_HOT __attribute__((target_clones("avx2", "default")))
#else
#define WORLD_HOT
#endif

sl_status world_work_init(world_work *w, size_t n_views, size_t dim, sl_error *err)
{
    memset(w, 0, sizeof *w);
    w->n_views = n_views;
    w->tmp = calloc(dim ? dim : 1, sizeof *w->tmp);
    w->acc = calloc(2 * (dim ? dim : 1), sizeof *w->acc);
    w->d2 = calloc(n_views, sizeof *w->d2);
    w->w = calloc(2 * n_views, sizeof *w->w);
    w->active = calloc(n_views, sizeof *w->active);
    w->aw = calloc(2 * n_views, sizeof *w->aw);
    w->q = calloc(n_views, sizeof *w->q);
    if (!w->d2 || !w->w || !w->active || !w->aw || !w->q || !w->tmp || !w->acc) {
        world_work_free(w);
        return sl_error_set(err, SL_ERR_NOMEM, "world: cannot allocate scratch for %zu views",
                            n_views);
    }
    return SL_OK;
}

void world_work_free(world_work *w)
{
    free(w->d2);
    free(w->w);
    free(w->active);
    free(w->aw);
    free(w->q);
    free(w->tmp);
    free(w->acc);
    memset(w, 0, sizeof *w);
}

/* ------------------------------------------------------------------ distances */

/* ||x - alpha xk||^2 over n elements, 8 partial sums in double (element i into sum i % 8),
 * combined pairwise in a fixed order. The fixed interleaving is what lets the compiler keep
 * the partial sums in vector registers without changing the result. */
WORLD_HOT static double world_d2_f32(const float *restrict x, const float *restrict xk, double alpha,
                           size_t n)
{
    double acc[WORLD_LANES] = { 0 };
    size_t i = 0;
    for (; i + WORLD_LANES <= n; i += WORLD_LANES)
        for (int l = 0; l < WORLD_LANES; l++) {
            double d = (double)x[i + l] - alpha * (double)xk[i + l];
            acc[l] += d * d;
        }
    for (int l = 0; i < n; i++, l++) {
        double d = (double)x[i] - alpha * (double)xk[i];
        acc[l] += d * d;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

WORLD_HOT static double world_d2_f16(const float *restrict x, const uint16_t *restrict xk, double alpha,
                           size_t n)
{
    double acc[WORLD_LANES] = { 0 };
    size_t i = 0;
    for (; i + WORLD_LANES <= n; i += WORLD_LANES)
        for (int l = 0; l < WORLD_LANES; l++) {
            double d = (double)x[i + l] - alpha * (double)world_half_to_float(xk[i + l]);
            acc[l] += d * d;
        }
    for (int l = 0; i < n; i++, l++) {
        double d = (double)x[i] - alpha * (double)world_half_to_float(xk[i]);
        acc[l] += d * d;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

void world_dist2(const world_bank *bank, const size_t *idx, size_t n, const float *x_t,
                 double alpha, double *d2)
{
    const size_t D = bank->dim;
    /* One view per iteration: each distance is one thread's fixed-order sum. */
#pragma omp parallel for schedule(static) if (n * D > 200000)
    for (size_t j = 0; j < n; j++) {
        const size_t k = idx[j];
        d2[k] = bank->storage == WORLD_STORE_F16
                    ? world_d2_f16(x_t, (const uint16_t *)bank->x + k * D, alpha, D)
                    : world_d2_f32(x_t, (const float *)bank->x + k * D, alpha, D);
    }
}

/* ------------------------------------------------------------------ responsibilities */

double world_responsibilities(const double *d2, const world_set *set, double v, double *r,
                              double *lse, double *rmax)
{
    /* logits l_j = -d2_j / (2v) + log kappa_j; r = exp(l - lse) with lse = top + log Z. */
    double top = -INFINITY;
    for (size_t j = 0; j < set->n; j++) {
        double l = -d2[set->idx[j]] / (2.0 * v) + (set->logw ? set->logw[j] : 0.0);
        r[j] = l;   /* keep the logit for the entropy below */
        if (l > top)
            top = l;
    }
    double z = 0.0;
    for (size_t j = 0; j < set->n; j++)
        z += exp(r[j] - top);
    const double log_z = top + log(z);
    /* H = -sum r_j log r_j with log r_j = l_j - lse (no log of an underflowed r). */
    double h = 0.0, best = 0.0;
    for (size_t j = 0; j < set->n; j++) {
        double log_r = r[j] - log_z;
        r[j] = exp(log_r);
        h -= r[j] * log_r;
        if (r[j] > best)
            best = r[j];
    }
    if (lse)
        *lse = log_z;
    if (rmax)
        *rmax = best;
    return h;
}

/* ------------------------------------------------------------------ weighted sums */

/* Gathers the views that keep a weight in set a (and b, if not NULL) into w->active
 * (ascending view order) with their weights in w->aw[2 j + c]; returns their count.
 * Weights below WORLD_R_SKIP times the set's largest become 0. */
static size_t world_collect(world_work *w, const world_set *a, const double *ra,
                            const world_set *b, const double *rb)
{
    const size_t K = w->n_views;
    const world_set *sets[2] = { a, b };
    const double *rs[2] = { ra, rb };
    for (int c = 0; c < 2; c++) {
        if (!sets[c])
            continue;
        double best = 0.0;
        for (size_t j = 0; j < sets[c]->n; j++)
            best = rs[c][j] > best ? rs[c][j] : best;
        for (size_t j = 0; j < sets[c]->n; j++)
            if (rs[c][j] >= WORLD_R_SKIP * best && rs[c][j] > 0.0)
                w->w[c * K + sets[c]->idx[j]] = rs[c][j];
    }
    size_t na = 0;
    for (size_t k = 0; k < K; k++) {
        if (w->w[k] != 0.0 || w->w[K + k] != 0.0) {
            w->active[na] = k;
            w->aw[2 * na] = w->w[k];
            w->aw[2 * na + 1] = w->w[K + k];
            na++;
            w->w[k] = 0.0;
            w->w[K + k] = 0.0;
        }
    }
    return na;
}


/* acc[c * len + i] = sum_a aw[2a + c] field[active[a] * len + i] for i in [i0, i1), c < nw,
 * in ascending a, in double. field: (K, len) in the bank's storage; acc: (2, len). */
WORLD_HOT static void world_accum_range(const void *field, world_storage st, size_t len,
                                        size_t i0, size_t i1, const size_t *active,
                                        const double *aw, size_t na, int nw, double *acc)
{
    double *restrict a0 = acc + i0, *restrict a1 = acc + len + i0;
    const size_t nb = i1 - i0;
    memset(a0, 0, nb * sizeof(double));
    if (nw > 1)
        memset(a1, 0, nb * sizeof(double));
    for (size_t a = 0; a < na; a++) {
        const double w0 = aw[2 * a], w1 = aw[2 * a + 1];
        if (st == WORLD_STORE_F16) {
            const uint16_t *restrict f = (const uint16_t *)field + active[a] * len + i0;
            if (nw > 1)
                for (size_t i = 0; i < nb; i++) {
                    const double xv = world_half_to_float(f[i]);
                    a0[i] += w0 * xv;
                    a1[i] += w1 * xv;
                }
            else
                for (size_t i = 0; i < nb; i++)
                    a0[i] += w0 * (double)world_half_to_float(f[i]);
        } else {
            const float *restrict f = (const float *)field + active[a] * len + i0;
            if (nw > 1)
                for (size_t i = 0; i < nb; i++) {
                    a0[i] += w0 * (double)f[i];
                    a1[i] += w1 * (double)f[i];
                }
            else
                for (size_t i = 0; i < nb; i++)
                    a0[i] += w0 * (double)f[i];
        }
    }
}

/* The weighted sums over the gathered views into w->acc, (2, len). Threads take one
 * contiguous range of elements each (a multiple of 24 elements: whole pixels, whole
 * vectors), so every view is streamed in long runs; each element's sum runs over the views
 * in ascending order whatever the partition, so the thread count does not change a bit. */
static void world_accum(const void *field, world_storage st, size_t len, world_work *w,
                        size_t na, int nw)
{
#pragma omp parallel if (na * len > 100000)
    {
        const size_t nth = (size_t)omp_get_num_threads(), tid = (size_t)omp_get_thread_num();
        const size_t chunk = ((len + nth - 1) / nth + 23) / 24 * 24;
        const size_t i0 = tid * chunk < len ? tid * chunk : len;
        const size_t i1 = i0 + chunk < len ? i0 + chunk : len;
        if (i1 > i0)
            world_accum_range(field, st, len, i0, i1, w->active, w->aw, na, nw, w->acc);
    }
}

size_t world_eps(const world_bank *bank, world_work *w, const float *x_t, double alpha,
                 double sigma, double v, const world_set *u, const double *r_u,
                 const world_set *y, const double *r_y, double s, float *eps)
{
    /* Channel 0 of the gathered weights is U (when given), channel 1 is Y. */
    const size_t na = world_collect(w, u, r_u, y, r_y);
    const size_t D = bank->dim;
    world_accum(bank->x, bank->storage, D, w, na, 2);
    const double c = sigma / v;
    const double *m_u = w->acc, *m_y = w->acc + D;   /* sum_k r_k x^(k) over U and Y */
    if (u) {
        for (size_t i = 0; i < D; i++) {
            const double xi = x_t[i];
            const double eps_u = c * (xi - alpha * m_u[i]);
            const double eps_y = c * (xi - alpha * m_y[i]);
            eps[i] = (float)((1.0 - s) * eps_u + s * eps_y);
        }
    } else {
        for (size_t i = 0; i < D; i++)
            eps[i] = (float)(c * ((double)x_t[i] - alpha * m_y[i]));
    }
    return na;
}

/* ------------------------------------------------------------------ geometry */

void world_depth_predict(const world_bank *bank, world_work *w, const world_set *set,
                         const double *r, float *depth)
{
    const size_t na = world_collect(w, set, r, NULL, NULL);
    const size_t P = bank->npix;
    world_accum(bank->depth, bank->storage, P, w, na, 1);
    for (size_t i = 0; i < P; i++)
        depth[i] = (float)w->acc[i];
}

/* d_x = (alpha / v) sum_a r_a (q_a - sum_b r_b q_b) x^(a) over the gathered views, where
 * q_a = <g, field^(a)> has been written to w->q[a] (gathered order). */
static void world_vjp_from_q(const world_bank *bank, world_work *w, size_t na, double alpha,
                             double v, float *d_x)
{
    double mean_q = 0.0;   /* <g, E_r[field]> */
    for (size_t a = 0; a < na; a++)
        mean_q += w->aw[2 * a] * w->q[a];
    for (size_t a = 0; a < na; a++) {
        w->aw[2 * a] = (alpha / v) * w->aw[2 * a] * (w->q[a] - mean_q);
        w->aw[2 * a + 1] = 0.0;
    }
    const size_t D = bank->dim;
    world_accum(bank->x, bank->storage, D, w, na, 1);
    for (size_t i = 0; i < D; i++)
        d_x[i] = (float)w->acc[i];
}

void world_depth_vjp(const world_bank *bank, world_work *w, const world_set *set,
                     const double *r, double alpha, double v, const float *a, float *d_x)
{
    const size_t na = world_collect(w, set, r, NULL, NULL);
    const size_t P = bank->npix;
    /* q_j = <a, depth^(j)>: one fixed-order sum per view. */
#pragma omp parallel for schedule(static) if (na * P > 200000)
    for (size_t j = 0; j < na; j++) {
        const size_t k = w->active[j];
        double q = 0.0;
        for (size_t i = 0; i < P; i++)
            q += (double)a[i] * (double)world_bank_get(bank->depth, bank->storage, k * P + i);
        w->q[j] = q;
    }
    world_vjp_from_q(bank, w, na, alpha, v, d_x);
}

void world_normal_predict(const world_bank *bank, world_work *w, const world_set *set,
                          const double *r, float *normal, double *m)
{
    const size_t na = world_collect(w, set, r, NULL, NULL);
    const size_t P = bank->npix;
    world_accum(bank->normal, bank->storage, 3 * P, w, na, 1);
    for (size_t p = 0; p < P; p++) {
        const double *mv = w->acc + 3 * p;
        const double len = sqrt(mv[0] * mv[0] + mv[1] * mv[1] + mv[2] * mv[2]);
        for (size_t c = 0; c < 3; c++) {
            normal[3 * p + c] = len < WORLD_NORMAL_GUARD ? 0.0f : (float)(mv[c] / len);
            if (m)
                m[3 * p + c] = mv[c];
        }
    }
}

void world_normal_vjp(const world_bank *bank, world_work *w, const world_set *set,
                      const double *r, double alpha, double v, const double *m,
                      const float *a, float *d_x)
{
    const size_t P = bank->npix;
    /* b_p = (I - N N^T) a_p / |m_p|, the VJP of m -> m / |m|; 0 under the guard. */
    double *b = w->tmp;   /* (P, 3) */
    for (size_t p = 0; p < P; p++) {
        const double *mp = m + 3 * p;
        const double len = sqrt(mp[0] * mp[0] + mp[1] * mp[1] + mp[2] * mp[2]);
        if (len < WORLD_NORMAL_GUARD) {
            b[3 * p] = b[3 * p + 1] = b[3 * p + 2] = 0.0;
            continue;
        }
        const double n[3] = { mp[0] / len, mp[1] / len, mp[2] / len };
        const double na_ = n[0] * a[3 * p] + n[1] * a[3 * p + 1] + n[2] * a[3 * p + 2];
        for (int c = 0; c < 3; c++)
            b[3 * p + c] = ((double)a[3 * p + c] - n[c] * na_) / len;
    }
    const size_t na = world_collect(w, set, r, NULL, NULL);
#pragma omp parallel for schedule(static) if (na * P > 100000)
    for (size_t j = 0; j < na; j++) {
        const size_t k = w->active[j];
        double q = 0.0;   /* <b, normal^(k)> */
        for (size_t i = 0; i < 3 * P; i++)
            q += b[i] * (double)world_bank_get(bank->normal, bank->storage, k * 3 * P + i);
        w->q[j] = q;
    }
    world_vjp_from_q(bank, w, na, alpha, v, d_x);
}
