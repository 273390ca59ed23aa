/* plugins/baselines/normal.c — baseline `normal`: normal consistency between the render
 * and the prior's estimate from the noisy image,
 *
 *     phi = offset - (1/n) sum_{p in mask} < N_render(p), N_hat(x_t)(p) >
 *
 * over the foreground mask (render opacity > 0.5, n pixels), N_render = normal / opacity
 * normalised to unit length (0 where it vanishes), held constant w.r.t. x_t, and N_hat the
 * prior's normal estimator (SL_EXT_NORMAL_ESTIMATOR), which returns unit vectors (0 where
 * it sees no surface): the mean cosine (method.md section 2). Render normals are in world
 * space (architecture.md); when the estimator returns camera-space normals
 * (SL_GEOMETRY_CAMERA_NORMALS) the render's are rotated into the camera of the batch
 * element: n_cam = R^T n_world (R = cam.rot, camera-to-world).
 *
 * Gradient: d phi / d N_hat(p) = -N_render(p) / n on the mask (0 elsewhere), taken back to
 * x_t by the estimator's vjp, which includes the VJP of the normalisation N = m/|m|,
 * (I - N N^T)/|m|, with its guard for |m| -> 0 (steinlab/geometry.h, the world prior's
 * denoiser.h). Sums in double, row-major.
 *
 * Degenerate case: an empty mask gives phi = offset and grad phi = 0 exactly.
 *
 * Resolution: as the depth baseline (render_geometry.h): sum w n and opacity resampled to
 * the prior's size, the mask thresholded again. required_outputs: NORMAL | OPACITY. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "render_geometry.h"
#include "steinlab/steinlab.h"

typedef struct normal_state {
    const sl_host *host;
    const sl_prior_ref *prior;
    const sl_geometry_estimator *est;
    double offset;
    rg_buf rn, rw;       /* (H, W, 3), (H, W) resampled sum w n and opacity of one element */
    rg_buf target;       /* (B, H, W, 3) unit render normals in the estimator's space, 0 off mask */
    rg_buf pred;         /* (B, H, W, 3) N_hat */
    rg_buf dpred;        /* (B, H, W, 3) d phi / d N_hat */
} normal_state;

static const sl_param_def normal_params[] = {
    { .name = "offset", .type = SL_PARAM_FLOAT, .default_value = "1", .min = -1e6, .max = 1e6,
      .doc = "phi = offset - mean cosine(N_render, N_hat(x_t)) over the foreground" },
};

static void normal_destroy(void *state)
{
    normal_state *s = state;
    if (!s)
        return;
    rg_free(&s->rn);
    rg_free(&s->rw);
    rg_free(&s->target);
    rg_free(&s->pred);
    rg_free(&s->dpred);
    free(s);
}

static sl_status normal_create(const sl_host *host, const sl_params *params, void **state,
                               sl_error *err)
{
    normal_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "normal: out of memory");
    s->host = host;
    s->offset = sl_params_float(params, "offset");
    sl_status st = rg_estimator(host, "normal", SL_EXT_NORMAL_ESTIMATOR, 3, &s->prior,
                                &s->est, err);
    if (st == SL_OK && s->est->output != SL_GEOMETRY_WORLD_NORMALS &&
        s->est->output != SL_GEOMETRY_CAMERA_NORMALS)
        st = sl_error_set(err, SL_ERR_PLUGIN, "normal: the prior's normal estimator returns "
                          "output kind %d, expected world or camera normals",
                          (int)s->est->output);
    if (st != SL_OK) {
        normal_destroy(s);
        return st;
    }
    *state = s;
    return SL_OK;
}

static uint32_t normal_required_outputs(const sl_params *params)
{
    (void)params;
    return SL_RENDER_NORMAL | SL_RENDER_OPACITY;
}

static sl_status normal_eval(void *state, const sl_estimator_ctx *ctx, float *phi,
                             float *grad_phi, sl_error *err)
{
    normal_state *s = state;
    sl_status st = rg_check_ctx(ctx, "normal", 0, 1, err);
    if (st != SL_OK)
        return st;
    const int B = ctx->batch, H = ctx->height, W = ctx->width;
    const size_t P = (size_t)H * W;
    const sl_render *r = ctx->render;
    if (!rg_reserve(&s->rn, 3 * P) || !rg_reserve(&s->rw, P) ||
        !rg_reserve(&s->target, 3 * B * P) || !rg_reserve(&s->pred, 3 * B * P) ||
        !rg_reserve(&s->dpred, 3 * B * P))
        return sl_error_set(err, SL_ERR_NOMEM, "normal: out of memory (batch %d, %dx%d)", B, H,
                            W);
    const int camera_space = s->est->output == SL_GEOMETRY_CAMERA_NORMALS;
    double *count = calloc((size_t)B, sizeof *count);
    if (!count)
        return sl_error_set(err, SL_ERR_NOMEM, "normal: out of memory");
    /* The render side, constant w.r.t. x_t. */
    for (int b = 0; b < B; b++) {
        const float *nw = rg_at_prior(r->normal, b, r->height, r->width, 3, s->rn.p, H, W);
        const float *o = rg_at_prior(r->opacity, b, r->height, r->width, 1, s->rw.p, H, W);
        const float *R = ctx->cams[b].rot;   /* (3, 3) row-major, camera-to-world */
        float *a = s->target.p + (size_t)b * 3 * P;
        for (size_t p = 0; p < P; p++) {
            double v[3] = { 0.0, 0.0, 0.0 };
            if (o[p] > RG_MASK_THRESHOLD) {
                count[b] += 1.0;
                double w[3] = { nw[3 * p], nw[3 * p + 1], nw[3 * p + 2] };
                /* The opacity factor cancels in the normalisation. */
                const double len = sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2]);
                if (len > 1e-12)
                    for (int k = 0; k < 3; k++)
                        w[k] /= len;
                else
                    w[0] = w[1] = w[2] = 0.0;
                for (int k = 0; k < 3; k++)   /* camera space: (R^T w)_k = sum_i R[i][k] w_i */
                    v[k] = camera_space ? R[k] * w[0] + R[3 + k] * w[1] + R[6 + k] * w[2] : w[k];
            }
            for (int k = 0; k < 3; k++)
                a[3 * p + k] = (float)v[k];
        }
    }
    sl_prior_query q = { .batch = B, .x_t = ctx->x_t, .t = ctx->t, .cams = ctx->cams,
                         .step = ctx->step };
    if ((st = s->est->predict(s->prior->state, &q, s->pred.p, err)) != SL_OK) {
        sl_error_prefix(err, "normal: the prior's normal estimator");
        free(count);
        return st;
    }
    int any = 0;
    for (int b = 0; b < B; b++) {
        const float *a = s->target.p + (size_t)b * 3 * P, *nh = s->pred.p + (size_t)b * 3 * P;
        float *g = s->dpred.p + (size_t)b * 3 * P;
        double sum = 0.0;
        for (size_t i = 0; i < 3 * P; i++)   /* off the mask a = 0 */
            sum += (double)a[i] * nh[i];
        const double n = count[b];
        phi[b] = (float)(s->offset - (n > 0.0 ? sum / n : 0.0));
        for (size_t i = 0; i < 3 * P; i++) {
            g[i] = n > 0.0 ? (float)(-(double)a[i] / n) : 0.0f;
            any |= g[i] != 0.0f;
        }
    }
    free(count);
    const size_t D = P * (size_t)ctx->channels;
    if (!any) {
        memset(grad_phi, 0, (size_t)B * D * sizeof *grad_phi);
        return SL_OK;
    }
    if ((st = s->est->vjp(s->prior->state, &q, s->dpred.p, grad_phi, err)) != SL_OK) {
        sl_error_prefix(err, "normal: the prior's normal estimator (vjp)");
        return st;
    }
    for (int b = 0; b < B; b++) {   /* empty masks: exactly 0 */
        int zero = 1;
        for (size_t i = 0; i < 3 * P && zero; i++)
            zero = s->dpred.p[(size_t)b * 3 * P + i] == 0.0f;
        if (zero)
            memset(grad_phi + b * D, 0, D * sizeof *grad_phi);
    }
    return SL_OK;
}

static const sl_baseline_vtable normal_vtable = {
    .struct_size = sizeof(sl_baseline_vtable),
    .create = normal_create,
    .destroy = normal_destroy,
    .required_outputs = normal_required_outputs,
    .eval = normal_eval,
    .update = NULL,
};

static const sl_plugin normal_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_BASELINE,
    .name = "normal",
    .version = "1.0.0",
    .summary = "Stein baseline phi = offset - mean cosine(render normals, prior's normal "
               "estimate from x_t) over the foreground",
    .params = SL_PARAM_SCHEMA(normal_params),
    .vtable = &normal_vtable,
};

SL_PLUGIN_ENTRY(&normal_plugin)
