/* core/cli/prior_setup.h — what `steinlab prior train` and `steinlab prior eval` share
 * (docs/prior-training.md): the training spec, the teacher priors (one instance per
 * prompt, created through the plugin loader), the clean training views they render, and
 * the fixed evaluation set whose exact noise predictions come from the teachers.
 *
 * Only public prior interfaces are used: reference(cam) for clean images and noise_pred
 * at guidance 1 for the ideal epsilon of the same x_t, so any prior with a reference can be
 * distilled. The teacher's view grid, bandwidth, prompt and guidance are set by the
 * trainer (keys of the `views` section, and guidance_scale = 1) wherever the teacher's
 * schema declares them, so the data the network sees and the denoiser it is compared to
 * describe the same distribution. */
#ifndef STEINLAB_CLI_PRIOR_SETUP_H
#define STEINLAB_CLI_PRIOR_SETUP_H

#include <stddef.h>
#include <stdint.h>

#include "loader.h"
#include "steinlab/plugin.h"
#include "steinlab/spec_tree.h"
#include "steinlab/unet.h"

enum { PT_T_BINS = 10 };   /* t-bins of the logs: [1 + 100 j, 100 (j + 1)] */

typedef struct pt_teacher {
    const sl_plugin *plugin;
    sl_host host;
    char label[64];
    sl_params *params;
    void *state;
} pt_teacher;

typedef struct pt_setup {
    sl_node *spec;              /* the spec with overrides applied */
    char *spec_text;            /* its YAML, train.steps blanked (what a resume must match) */
    char spec_dir[4096];
    sl_params *root;            /* resolved core keys */
    sl_registry *registry;
    /* core settings */
    const char *name;
    uint64_t seed;
    int64_t steps;
    int batch;
    double lr, lr_final_ratio, ema_decay, cfg_dropout, grad_clip;
    int64_t warmup, eval_every, checkpoint_every;
    char weights_path[4096], log_path[4096], ckpt_path[4096];
    sl_unet_config model;
    /* data */
    size_t n_prompts;
    const char **prompts;       /* (n_prompts,) owned by root */
    pt_teacher *teachers;       /* (n_prompts,) */
    const sl_diffusion *diffusion;   /* the teachers' schedule (the default one) */
    double bandwidth;           /* s0: x0 = view + s0 n */
    int res;                    /* R */
    size_t dim;                 /* D = R R 3 */
    size_t n_views;
    sl_camera *cams;            /* (n_views,) the view grid */
    int *bucket;                /* (n_views,) their view buckets */
    float *views;               /* (n_prompts, n_views, R, R, 3) clean views in [-1, 1] */
    /* the fixed evaluation set */
    int n_eval;
    float *eval_xt, *eval_ideal;   /* (n_eval, D) x_t and the teacher's epsilon on it */
    float *eval_t;              /* (n_eval,) */
    int *eval_cls, *eval_view, *eval_bin;   /* (n_eval,) */
    /* Yardstick: sum ||sigma_t x_t - eps_ideal||^2 per bin, the error of the exact denoiser
     * of N(0, I) data (a network that learned nothing about the views). */
    double eval_gauss_err2[PT_T_BINS];
} pt_setup;

/* Parses SPEC.yaml, applies overrides ("key.sub=value"), validates the core keys and the
 * teacher section against their schemas, loads the plugins, creates the teachers, renders
 * the views and builds the evaluation set. SL_ERR_SPEC for a bad spec. */
sl_status pt_setup_create(const char *spec_path, const char *const *overrides,
                          size_t n_overrides, pt_setup *s, sl_error *err);
void pt_setup_free(pt_setup *s);

/* Training element draws of `step`, element b (philox streams keyed by seed and step):
 * the prompt, the grid view, t in [1, T], whether the condition is dropped (CFG). */
typedef struct pt_draw {
    int prompt, view, t, dropped;
} pt_draw;
pt_draw pt_draw_element(const pt_setup *s, uint32_t step, int b);
/* x_t (D,) and the injected noise eps (D,) of that draw: x0 = view + s0 n. */
void pt_make_xt(const pt_setup *s, const pt_draw *d, uint32_t step, int b, float *x_t,
                float *eps);
int pt_t_bin(int t);   /* t in [1, 1000] -> 0 .. PT_T_BINS - 1 */

/* Per-bin score error of a model on the evaluation set (batched by the context's batch):
 * err2[j] = sum ||eps_net - eps_ideal||^2, ref2[j] = sum ||eps_ideal||^2, n[j] samples. */
sl_status pt_score_error(const pt_setup *s, const sl_unet *net, sl_unet_ctx *ctx,
                         double err2[PT_T_BINS], double ref2[PT_T_BINS], int n[PT_T_BINS],
                         sl_error *err);

#endif
