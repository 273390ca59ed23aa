/* steinlab/optim.h — named parameter groups and the Adam optimizer.
 *
 * A representation (or a stateful estimator) exposes its trainable tensors as parameter
 * groups. The plugin owns `data` and `grad`; backward passes ACCUMULATE into grad (+=), the
 * owner of the optimizer zeroes grad before each step. */
#ifndef STEINLAB_OPTIM_H
#define STEINLAB_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/schedule.h"
#include "steinlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_param_group {
    const char *name;   /* unique within its owner, [a-z0-9_]+; valid while the owner lives */
    float *data;        /* (n,) parameters, owned by the plugin */
    float *grad;        /* (n,) gradient accumulator, owned by the plugin */
    size_t n;
} sl_param_group;

typedef struct sl_adam_config {
    sl_schedule lr;        /* learning rate (scheduled by step) */
    double beta1, beta2;   /* moment decay rates */
    double eps;            /* added to sqrt(v_hat) */
    double weight_decay;   /* decoupled (AdamW) decay, multiplied by lr; 0 for plain Adam */
} sl_adam_config;

/* Adam over a set of groups, with bias-corrected moments:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  m_hat = m/(1-b1^k);  v_hat = v/(1-b2^k)
 *   theta -= lr (m_hat / (sqrt(v_hat) + eps) + wd theta)      (k = 1, 2, ... step count) */
typedef struct sl_adam sl_adam;

/* groups and configs: (n_groups,), one config per group. The optimizer keeps pointers to the
 * groups' data and grad (they must outlive it) and owns its moments. */
sl_status sl_adam_create(const sl_param_group *groups, const sl_adam_config *configs,
                         size_t n_groups, sl_adam **out, sl_error *err);
void sl_adam_destroy(sl_adam *a);

/* One update of every group at training step `step` (which selects scheduled lrs).
 * Deterministic: the result does not depend on the thread count. */
void sl_adam_step(sl_adam *a, int64_t step);

/* Learning rate group g would use at `step`. */
double sl_adam_lr(const sl_adam *a, size_t g, int64_t step);

/* Replaces group g's learning-rate schedule from now on (a trainer whose schedule is not
 * piecewise linear, e.g. cosine decay, sets a constant before each step). */
void sl_adam_set_lr(sl_adam *a, size_t g, sl_schedule lr);

/* Number of updates done so far (k). */
int64_t sl_adam_count(const sl_adam *a);

/* Checkpoints: the moments of group g, (groups[g].n,) floats each, owned by the optimizer
 * (NULL for g out of range). Writable so that a resumed run restores them exactly; together
 * with the groups' data and the count they are the optimizer's whole state. */
float *sl_adam_moment(sl_adam *a, size_t g, int which);   /* which: 1 = m, 2 = v */
/* Sets the number of updates done (a resumed run's bias corrections continue from it). */
void sl_adam_set_count(sl_adam *a, int64_t k);

/* Resizes / reorders group `group` (a representation whose parameter count changes, e.g.
 * Gaussian densification). src: (new_n,) for each new element the old element whose
 * moments it takes, or -1 for zero moments (a newly created parameter: Adam treats it as
 * never updated, the rule of the reference 3DGS implementation for clones and split
 * children). new_data, new_grad: (new_n,) the group's new arrays, owned by the plugin and
 * already filled with the new values; the optimizer keeps these pointers from now on (the
 * old arrays are no longer read, the plugin frees them after a successful call). The step
 * count k is shared by all groups and unchanged. Fails (SL_ERR_INVALID_ARG) on a group
 * out of range, an index outside [-1, old n) or NULL arrays with new_n > 0, and
 * (SL_ERR_NOMEM) when the new moments cannot be allocated; on failure nothing changes. */
sl_status sl_adam_remap(sl_adam *a, size_t group, const int64_t *src, size_t new_n,
                        float *new_data, float *new_grad, sl_error *err);

/* Number of elements of group g as the optimizer sees it (0 for g out of range). */
size_t sl_adam_group_size(const sl_adam *a, size_t g);

/* The proxy for parameter-space gradient variance held by Adam's moments:
 * mean over all parameters of (v_hat - m_hat^2). Only a proxy (method.md section 4): the
 * two moments average over different windows and theta drifts; it can be negative.
 * 0 before the first step. Fixed-order sum (thread-count independent). */
double sl_adam_var_proxy(const sl_adam *a);

/* Global L2 norm of all groups' gradients, summed in a fixed order. */
double sl_grad_norm(const sl_param_group *groups, size_t n_groups);

/* Index of the first group holding a non-finite gradient value, or -1; *elem receives
 * the element index when found. */
long sl_grad_first_nonfinite(const sl_param_group *groups, size_t n_groups, size_t *elem);

/* Multiplies every gradient by `scale`. */
void sl_grad_scale(const sl_param_group *groups, size_t n_groups, double scale);

#ifdef __cplusplus
}
#endif
#endif
