/* plugins/priors/world/denoiser.h — the ideal denoiser of a view bank and its Bayes
 * estimators of depth and normals (method.md section 5), independent of the plugin.
 *
 * For a set S of bank views with optional log-weights log kappa_k and the diffusion
 * state (x_t, alpha, sigma) with v = alpha^2 s0'^2 + sigma^2 (s0' the prior's bandwidth):
 *
 *   p_t(x_t | S) = sum_{k in S} kappa_k N(x_t; alpha x^(k), v I) / sum_k kappa_k
 *   r_k          = softmax_k( -||x_t - alpha x^(k)||^2 / (2 v) + log kappa_k )
 *   eps_S        = -sigma grad log p_t = (sigma / v) (x_t - alpha sum_k r_k x^(k))
 *   H(r)         = -sum_k r_k log r_k                                (nats)
 *
 * With guidance scale s, eps = (1 - s) eps_U + s eps_Y = -sigma grad[(1-s) log p_U + s log p_Y],
 * computed in that spelling so that s = 1 gives eps_Y bit for bit.
 *
 * Bayes estimators on x_t (posterior r over a set):
 *   D(x_t) = sum_k r_k depth^(k)                        (P,)
 *   m(x_t) = sum_k r_k normal^(k),  N = m / |m|          (P, 3), per pixel
 * and their vector-Jacobian products for an upstream a. With dr_k/dx_t = r_k (u_k - sum_j r_j u_j),
 * u_k = -(x_t - alpha x^(k)) / v:
 *   grad <a, D> = sum_k r_k c_k u_k,  c_k = <a, depth^(k)> - <a, D>
 * Because sum_k r_k c_k = 0, the x_t part of u_k cancels and
 *   grad <a, D> = (alpha / v) sum_k r_k c_k x^(k)
 * which is what the code evaluates (one weighted pass over the bank). For normals, per pixel
 * b = (I - N N^T) a / |m| (the VJP of m -> m/|m|), then the same formula with
 * c_k = <b, normal^(k)> - <b, m>. Guard: where |m| < WORLD_NORMAL_GUARD, N = 0 and b = 0
 * (no gradient): the views that carry the posterior's mass see no surface there.
 *
 * Numerics: squared distances are sums of D terms accumulated in double in 8 interleaved
 * partial sums (element i into partial i mod 8) combined in a fixed order; the softmax uses
 * log-sum-exp; the weighted sums over views run in ascending view order per element, in
 * double. Threads split views (distances) or elements (sums), never a single reduction, so
 * results are bitwise the same for any thread count.
 *
 * Skipping: in the weighted sums a view whose responsibility is below WORLD_R_SKIP times
 * the set's largest is left out. The dropped mass is at most n WORLD_R_SKIP (n views), so
 * the mean sum_k r_k x^(k) changes by at most n 1e-16 max|x| <= n 1e-16 (|x| <= 1), i.e.
 * < 1e-10 for up to a million views: far below float32 rounding of the outputs. */
#ifndef STEINLAB_WORLD_DENOISER_H
#define STEINLAB_WORLD_DENOISER_H

#include <stddef.h>

#include "bank.h"

#define WORLD_R_SKIP 1e-16
#define WORLD_NORMAL_GUARD 1e-6

/* A weighted subset of a bank. */
typedef struct world_set {
    const size_t *idx;     /* (n,) bank view indices, strictly ascending */
    const double *logw;    /* (n,) log kappa_k added to the logits; NULL: all 0 */
    size_t n;              /* >= 1 */
} world_set;

/* Scratch for one bank, reused across calls (world_work_init / world_work_free). */
typedef struct world_work {
    size_t n_views;        /* K of the bank */
    double *d2;            /* (K,) squared distances by view index */
    double *w;             /* (2, K) dense weights by view index (two weight vectors) */
    size_t *active;        /* (K,) views with a nonzero weight, ascending */
    double *aw;            /* (K, 2) their weights */
    double *q;             /* (K,) per-view inner products (VJPs) */
    double *tmp;           /* (D,) per-element scratch (the normal VJP's b) */
    double *acc;           /* (2, D) weighted sums over views */
} world_work;

/* Scratch for a bank of n_views views of dim = D elements each. */
sl_status world_work_init(world_work *w, size_t n_views, size_t dim, sl_error *err);
void world_work_free(world_work *w);

/* d2[idx[j]] = ||x_t - alpha x^(idx[j])||^2 for j < n (other entries untouched); one pass
 * over the bank's x of those views, OpenMP over views. x_t: (D,). */
void world_dist2(const world_bank *bank, const size_t *idx, size_t n, const float *x_t,
                 double alpha, double *d2);

/* r: (set->n,) responsibilities from d2 (indexed by view, as world_dist2 fills it).
 * Returns the entropy of r (nats); *lse (if not NULL) receives
 * log sum_j exp(-d2_j / (2v) + logw_j), i.e. log p_t up to terms that do not depend on x_t;
 * *rmax (if not NULL) the largest r. */
double world_responsibilities(const double *d2, const world_set *set, double v, double *r,
                              double *lse, double *rmax);

/* Guided noise prediction for one image, eps: (D,) overwritten:
 *   eps = (1 - s) (sigma/v)(x_t - alpha sum_{k in U} r_u,k x^(k)) + s (sigma/v)(x_t - alpha sum_{k in Y} r_y,k x^(k))
 * u may be NULL (then eps = the Y prediction, s ignored). r_u: (u->n,), r_y: (y->n,).
 * Returns the number of view reads of the weighted pass (views with a weight kept). */
size_t world_eps(const world_bank *bank, world_work *w, const float *x_t, double alpha,
                 double sigma, double v, const world_set *u, const double *r_u,
                 const world_set *y, const double *r_y, double s, float *eps);

/* Bayes depth: depth: (P,) overwritten. */
void world_depth_predict(const world_bank *bank, world_work *w, const world_set *set,
                         const double *r, float *depth);
/* d_x: (D,) = (dD/dx_t)^T a, overwritten; a: (P,). */
void world_depth_vjp(const world_bank *bank, world_work *w, const world_set *set,
                     const double *r, double alpha, double v, const float *a, float *d_x);

/* Bayes normals: normal: (P, 3) overwritten with N (0 where |m| < guard); m: (P, 3) the
 * unnormalised mean, overwritten when not NULL (what the VJP needs). */
void world_normal_predict(const world_bank *bank, world_work *w, const world_set *set,
                          const double *r, float *normal, double *m);
/* d_x: (D,) overwritten; a: (P, 3); m: (P, 3) from world_normal_predict with the same r. */
void world_normal_vjp(const world_bank *bank, world_work *w, const world_set *set,
                      const double *r, double alpha, double v, const double *m,
                      const float *a, float *d_x);

#endif
