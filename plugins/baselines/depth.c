/* plugins/baselines/depth.c — baseline `depth`: the paper's depth-consistency baseline,
 *
 *     phi = offset - rho( D_render(theta, c), D_hat(x_t) )
 *
 * with rho Pearson's correlation over the foreground mask (render opacity > 0.5), D_render
 * the representation's z-depth (sum w z / opacity on the mask; constant w.r.t. x_t) and
 * D_hat the prior's depth estimator applied to the NOISY image x_t (SL_EXT_DEPTH_ESTIMATOR;
 * method.md section 2). Pearson is invariant to scale and shift, so a relative-depth
 * estimator compares fine; but not to inversion: when the estimator returns inverse depth
 * (SL_GEOMETRY_INVERSE_DEPTH, as most monocular networks do) the render's side is 1/D_render
 * on the mask (pixels with D_render <= 0 leave the mask). The world prior's estimator gives
 * z-depth (SL_GEOMETRY_Z_DEPTH) and is compared directly.
 *
 * Gradient. With A = a - mean(a), E = d - mean(d) on the mask (a the render side, d = D_hat),
 * S_aa = |A|^2, S_dd = |E|^2, rho = <A, E> / sqrt(S_aa S_dd):
 *     d rho / d d_i = A_i / sqrt(S_aa S_dd) - rho E_i / S_dd          (i on the mask, else 0)
 * (the mean subtraction drops out because sum A = sum E = 0), and
 *     grad_{x_t} phi = - (d D_hat / d x_t)^T (d rho / d D_hat)
 * through the estimator's vjp. Sums in double, row-major order over the mask.
 *
 * Degenerate cases: fewer than 2 mask pixels, or either map constant on the mask (sum of
 * squared deviations <= n (1e-6 max|value|)^2, i.e. at float rounding level), leave Pearson
 * undefined: then rho = 0, phi = offset and grad phi = 0 exactly.
 *
 * Resolution: render outputs of another size are resampled to the prior's (see
 * render_geometry.h). required_outputs: DEPTH | OPACITY, so the host refuses a
 * representation without depth (image2d) at validation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "render_geometry.h"
#include "steinlab/steinlab.h"

typedef struct depth_state {
    const sl_host *host;
    const sl_prior_ref *prior;
    const sl_geometry_estimator *est;
    double offset;
    rg_buf rz, rw;       /* (H, W) resampled sum w z and opacity of one element */
    rg_buf target;       /* (B, H, W) the render side a (z-depth or inverse), 0 off the mask */
    rg_buf mask;         /* (B, H, W) 1 on the mask, else 0 */
    rg_buf pred;         /* (B, H, W) D_hat */
    rg_buf dpred;        /* (B, H, W) d phi / d D_hat */
} depth_state;

static const sl_param_def depth_params[] = {
    { .name = "offset", .type = SL_PARAM_FLOAT, .default_value = "1", .min = -1e6, .max = 1e6,
      .doc = "phi = offset - Pearson(D_render, D_hat(x_t)) (the paper: 1)" },
};

static void depth_destroy(void *state)
{
    depth_state *s = state;
    if (!s)
        return;
    rg_free(&s->rz);
    rg_free(&s->rw);
    rg_free(&s->target);
    rg_free(&s->mask);
    rg_free(&s->pred);
    rg_free(&s->dpred);
    free(s);
}

static sl_status depth_create(const sl_host *host, const sl_params *params, void **state,
                              sl_error *err)
{
    depth_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "depth: out of memory");
    s->host = host;
    s->offset = sl_params_float(params, "offset");
    sl_status st = rg_estimator(host, "depth", SL_EXT_DEPTH_ESTIMATOR, 1, &s->prior, &s->est,
                                err);
    if (st == SL_OK && s->est->output != SL_GEOMETRY_Z_DEPTH &&
        s->est->output != SL_GEOMETRY_INVERSE_DEPTH)
        st = sl_error_set(err, SL_ERR_PLUGIN, "depth: the prior's depth estimator returns "
                          "output kind %d, expected z-depth or inverse depth", (int)s->est->output);
    if (st != SL_OK) {
        depth_destroy(s);
        return st;
    }
    *state = s;
    return SL_OK;
}

static uint32_t depth_required_outputs(const sl_params *params)
{
    (void)params;
    return SL_RENDER_DEPTH | SL_RENDER_OPACITY;
}

/* Pearson's rho of a and d over the mask (n = P pixels, mask 0/1) and, when not degenerate,
 * d rho / d d into g (P,) (0 off the mask). Returns 0 for the degenerate cases with g = 0. */
static double depth_pearson(const float *a, const float *d, const float *mask, size_t P,
                            float *g)
{
    double n = 0.0, sa = 0.0, sd = 0.0, amax = 0.0, dmax = 0.0;
    for (size_t p = 0; p < P; p++)
        if (mask[p] > 0.0f) {
            n += 1.0;
            sa += a[p];
            sd += d[p];
            amax = fmax(amax, fabs(a[p]));
            dmax = fmax(dmax, fabs(d[p]));
        }
    memset(g, 0, P * sizeof *g);
    if (n < 2.0)
        return 0.0;
    const double ma = sa / n, md = sd / n;
    double saa = 0.0, sdd = 0.0, sad = 0.0;
    for (size_t p = 0; p < P; p++)
        if (mask[p] > 0.0f) {
            const double A = a[p] - ma, E = d[p] - md;
            saa += A * A;
            sdd += E * E;
            sad += A * E;
        }
    /* Constant at float rounding level: Pearson is undefined (and its gradient explodes). */
    if (saa <= n * (1e-6 * amax) * (1e-6 * amax) || sdd <= n * (1e-6 * dmax) * (1e-6 * dmax))
        return 0.0;
    const double rho = sad / sqrt(saa * sdd);
    const double inv = 1.0 / sqrt(saa * sdd);
    for (size_t p = 0; p < P; p++)
        if (mask[p] > 0.0f)
            g[p] = (float)((a[p] - ma) * inv - rho * (d[p] - md) / sdd);
    return rho;
}

static sl_status depth_eval(void *state, const sl_estimator_ctx *ctx, float *phi,
                            float *grad_phi, sl_error *err)
{
    depth_state *s = state;
    sl_status st = rg_check_ctx(ctx, "depth", 1, 0, err);
    if (st != SL_OK)
        return st;
    const int B = ctx->batch, H = ctx->height, W = ctx->width;
    const size_t P = (size_t)H * W;
    const sl_render *r = ctx->render;
    if (!rg_reserve(&s->rz, P) || !rg_reserve(&s->rw, P) || !rg_reserve(&s->target, B * P) ||
        !rg_reserve(&s->mask, B * P) || !rg_reserve(&s->pred, B * P) ||
        !rg_reserve(&s->dpred, B * P))
        return sl_error_set(err, SL_ERR_NOMEM, "depth: out of memory (batch %d, %dx%d)", B, H, W);
    const int inverse = s->est->output == SL_GEOMETRY_INVERSE_DEPTH;
    /* The render side, constant w.r.t. x_t. */
    for (int b = 0; b < B; b++) {
        const float *z = rg_at_prior(r->depth, b, r->height, r->width, 1, s->rz.p, H, W);
        const float *o = rg_at_prior(r->opacity, b, r->height, r->width, 1, s->rw.p, H, W);
        float *a = s->target.p + b * P, *m = s->mask.p + b * P;
        for (size_t p = 0; p < P; p++) {
            const int fg = o[p] > RG_MASK_THRESHOLD;
            const float zd = fg ? z[p] / o[p] : 0.0f;
            const int keep = fg && (!inverse || zd > 0.0f);
            m[p] = keep ? 1.0f : 0.0f;
            a[p] = keep ? (inverse ? 1.0f / zd : zd) : 0.0f;
        }
    }
    sl_prior_query q = { .batch = B, .x_t = ctx->x_t, .t = ctx->t, .cams = ctx->cams,
                         .step = ctx->step };
    if ((st = s->est->predict(s->prior->state, &q, s->pred.p, err)) != SL_OK) {
        sl_error_prefix(err, "depth: the prior's depth estimator");
        return st;
    }
    int any = 0;
    for (int b = 0; b < B; b++) {
        float *g = s->dpred.p + b * P;   /* d rho / d D_hat, then d phi / d D_hat */
        const double rho = depth_pearson(s->target.p + b * P, s->pred.p + b * P,
                                         s->mask.p + b * P, P, g);
        phi[b] = (float)(s->offset - rho);
        for (size_t p = 0; p < P; p++) {
            g[p] = -g[p];
            any |= g[p] != 0.0f;
        }
    }
    const size_t D = P * (size_t)ctx->channels;
    if (!any) {   /* every element degenerate: exactly 0, no vjp needed */
        memset(grad_phi, 0, (size_t)B * D * sizeof *grad_phi);
        return SL_OK;
    }
    if ((st = s->est->vjp(s->prior->state, &q, s->dpred.p, grad_phi, err)) != SL_OK) {
        sl_error_prefix(err, "depth: the prior's depth estimator (vjp)");
        return st;
    }
    /* Degenerate elements: exactly 0 (a zero upstream may leave -0 or rounding dust). */
    for (int b = 0; b < B; b++) {
        int zero = 1;
        for (size_t p = 0; p < P && zero; p++)
            zero = s->dpred.p[b * P + p] == 0.0f;
        if (zero)
            memset(grad_phi + b * D, 0, D * sizeof *grad_phi);
    }
    return SL_OK;
}

static const sl_baseline_vtable depth_vtable = {
    .struct_size = sizeof(sl_baseline_vtable),
    .create = depth_create,
    .destroy = depth_destroy,
    .required_outputs = depth_required_outputs,
    .eval = depth_eval,
    .update = NULL,   /* nothing to learn */
};

static const sl_plugin depth_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_BASELINE,
    .name = "depth",
    .version = "1.0.0",
    .summary = "Stein baseline phi = offset - Pearson(render depth, prior's depth estimate "
               "from x_t) over the foreground",
    .params = SL_PARAM_SCHEMA(depth_params),
    .vtable = &depth_vtable,
};

SL_PLUGIN_ENTRY(&depth_plugin)
