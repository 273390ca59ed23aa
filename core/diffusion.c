/* core/diffusion.c — the variance-preserving schedule and the w(t) weightings
 * (steinlab/diffusion.h).
 *
 * "Scaled linear" betas (Stable Diffusion, diffusers' beta_schedule="scaled_linear") are
 * linear in sqrt(beta): beta_s = (sqrt(b0) + (s-1)/(T-1) (sqrt(b1) - sqrt(b0)))^2 for
 * s = 1..T, so beta_1 = b0 and beta_T = b1 exactly (up to rounding). The cumulative
 * product is formed in double, in order s = 1..T. */
#include <math.h>
#include <string.h>

#include "steinlab/diffusion.h"

void sl_diffusion_scaled_linear(sl_diffusion *d, double beta_start, double beta_end)
{
    const int T = SL_DIFFUSION_T;
    const double r0 = sqrt(beta_start), r1 = sqrt(beta_end);
    d->T = T;
    d->alphas_cumprod[0] = 1.0;
    double abar = 1.0;
    for (int s = 1; s <= T; s++) {
        double r = r0 + (double)(s - 1) / (double)(T - 1) * (r1 - r0);
        abar *= 1.0 - r * r;
        d->alphas_cumprod[s] = abar;
    }
}

void sl_diffusion_default(sl_diffusion *d)
{
    sl_diffusion_scaled_linear(d, 0.00085, 0.012);
}

/* Out-of-range t is clamped to [0, T] (t = 0 is the clean image: alpha 1, sigma 0), so a
 * caller's off-by-one reads a neighbouring value instead of memory outside the table. */
static double abar_at(const sl_diffusion *d, int t)
{
    if (t < 0)
        t = 0;
    if (t > d->T)
        t = d->T;
    return d->alphas_cumprod[t];
}

double sl_diffusion_alpha(const sl_diffusion *d, int t)
{
    return sqrt(abar_at(d, t));
}

double sl_diffusion_sigma(const sl_diffusion *d, int t)
{
    return sqrt(1.0 - abar_at(d, t));
}

double sl_diffusion_weight(const sl_diffusion *d, sl_weighting w, int t)
{
    double abar = abar_at(d, t);
    switch (w) {
    case SL_WEIGHT_SDS: return 1.0 - abar;                   /* sigma_t^2 */
    case SL_WEIGHT_UNIFORM: return 1.0;
    case SL_WEIGHT_FANTASIA3D: return sqrt(abar) * (1.0 - abar);   /* alpha_t sigma_t^2 */
    }
    return 1.0;
}

sl_status sl_weighting_parse(const char *name, sl_weighting *out, sl_error *err)
{
    static const struct {
        const char *name;
        sl_weighting w;
    } table[] = {
        {"sds", SL_WEIGHT_SDS},
        {"uniform", SL_WEIGHT_UNIFORM},
        {"fantasia3d", SL_WEIGHT_FANTASIA3D},
    };
    if (!name || !out)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "weighting: NULL argument");
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0) {
            *out = table[i].w;
            return SL_OK;
        }
    return sl_error_set(err, SL_ERR_INVALID_ARG,
                        "unknown weighting '%s' (expected sds, uniform or fantasia3d)", name);
}
