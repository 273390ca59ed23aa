/* core/probe.h — variance probes (method.md section 4).
 *
 * At a fixed theta, K draws (t_k, eps_k) — with one camera for all of them, or a camera per
 * draw — are shared by every probed estimator (common random numbers), and for each
 * estimator e the directions g_ek = w(t_k) Delta_ek give
 *   var_img    = (1/D) sum_d Var_k[g_ek,d]                  (unbiased, K - 1)
 *   mean_norm2 = (|mean_k g_ek|^2 - tr Cov / K) / D          (unbiased |E g|^2 per element)
 *   var_par    = (1/P) sum_p Var_k[(J^T g_ek)_p]             (one backward per draw)
 * where D is the image size (B H W C in prior space: a draw is one training step's batch of
 * B renders, so estimators see the shapes they see in training) and P the parameter count;
 * J^T g is the parameter gradient of the direction without the training step's 1/B.
 * An estimator with probe_stats (plugin.h) then reports its own diagnostics on the same
 * draws (ssd: the least-squares oracle mu of these draws and the second moment it reaches). */
#ifndef STEINLAB_CORE_PROBE_H
#define STEINLAB_CORE_PROBE_H

#include <stdint.h>

#include "camera_sampler.h"
#include "steinlab/plugin.h"

/* What a probe needs from the run; the representation's last TRAIN render is overwritten,
 * the parameter groups' grad arrays are used as scratch and left zeroed. */
typedef struct sl_probe_env {
    const sl_representation_vtable *repr;
    void *repr_state;
    const sl_prior_ref *prior;
    const sl_prior_info *pinfo;
    const sl_diffusion *diffusion;
    sl_weighting weighting;
    const sl_camera_sampler *cams;  /* resolution, ranges and batch of the training cameras */
    uint32_t repr_outputs;          /* SL_RENDER_* buffers to allocate for the render (the
                                     * run's TRAIN outputs: what the estimators read) */
    sl_param_group *groups;         /* (n_groups,) */
    size_t n_groups;
    uint64_t seed;
    int t_lo, t_hi;                 /* integer t range at this step */
} sl_probe_env;

typedef struct sl_probe_estimator {
    const sl_estimator_vtable *vt;
    void *state;
    const char *label;
    /* (n_stats,) the estimator's probe_stats, filled after its directions (names as its
     * names-only call gave them); n_stats 0: none wanted. */
    sl_probe_stat *stats;
    size_t n_stats;
} sl_probe_estimator;

typedef struct sl_probe_result {
    double var_img, var_par, mean_norm2;
} sl_probe_result;

/* Runs one probe at `step` with K draws for the n estimators; results: (n,). camera_drawn:
 * 0 = one camera for all draws, 1 = a camera per draw. want_par: compute var_par (one
 * backward per draw and estimator) or leave it NaN. Deterministic for any thread count. */
sl_status sl_probe_run(const sl_probe_env *env, const sl_probe_estimator *ests, size_t n,
                       int K, int camera_drawn, int want_par, int64_t step,
                       sl_probe_result *results, sl_error *err);

#endif
