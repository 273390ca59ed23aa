/* steinlab/diffusion.h — the variance-preserving diffusion schedule and w(t) weightings.
 *
 * x_t = alpha_t x0 + sigma_t eps, alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t),
 * integer t in [1, T], T = 1000. The default schedule is Stable Diffusion's "scaled
 * linear" betas: beta_s = (sqrt(0.00085) + (s-1)/(T-1) (sqrt(0.012) - sqrt(0.00085)))^2,
 * abar_t = prod_{s<=t} (1 - beta_s). */
#ifndef STEINLAB_DIFFUSION_H
#define STEINLAB_DIFFUSION_H

#include "steinlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { SL_DIFFUSION_T = 1000 };

typedef struct sl_diffusion {
    int T;                                   /* number of steps (1000) */
    double alphas_cumprod[SL_DIFFUSION_T + 1];  /* (T+1,) abar_t; index 0 is 1.0 (clean) */
} sl_diffusion;

/* Fills the scaled-linear schedule with betas from beta_start to beta_end. */
void sl_diffusion_scaled_linear(sl_diffusion *d, double beta_start, double beta_end);

/* The default (Stable Diffusion) schedule: sl_diffusion_scaled_linear(d, 0.00085, 0.012). */
void sl_diffusion_default(sl_diffusion *d);

double sl_diffusion_alpha(const sl_diffusion *d, int t);   /* sqrt(abar_t) */
double sl_diffusion_sigma(const sl_diffusion *d, int t);   /* sqrt(1 - abar_t) */

typedef enum sl_weighting {
    SL_WEIGHT_SDS = 0,       /* w = sigma_t^2 */
    SL_WEIGHT_UNIFORM,       /* w = 1 */
    SL_WEIGHT_FANTASIA3D     /* w = alpha_t sigma_t^2 */
} sl_weighting;

double sl_diffusion_weight(const sl_diffusion *d, sl_weighting w, int t);

/* Parses "sds" | "uniform" | "fantasia3d". */
sl_status sl_weighting_parse(const char *name, sl_weighting *out, sl_error *err);

#ifdef __cplusplus
}
#endif
#endif
