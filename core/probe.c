/* core/probe.c — see probe.h. Memory: the K directions of one estimator (K D floats) and
 * two double accumulators per parameter for the parameter-space variance (Welford over
 * draws, in draw order, so the result does not depend on threads). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "probe.h"
#include "steinlab/image.h"
#include "steinlab/rng.h"

/* B = the run's batch: a draw is one training step's worth of renders, so estimators see
 * the shapes they see in training. D = B H W C in prior space. */
typedef struct probe_buffers {
    int B;
    sl_render render;          /* (B, R, R, ...) */
    sl_render grad;            /* rgb only */
    float *rgb_x;              /* (B, R, R, 3) 2 rgb - 1 before resampling */
    float *x0;                 /* (D,) */
    float *eps, *x_t, *eps_hat;   /* (K, D) */
    float *g;                  /* (n, K, D) w(t) Delta per estimator and draw */
    int *t;                    /* (K, B) */
    double *alpha, *sigma;     /* (K, B) */
    double *weight;            /* (K, B) w(t) */
    sl_camera *cams;           /* (K, B) */
    sl_estimator_ctx *ctxs;    /* (K,) the draws as the estimators saw them */
    const sl_estimator_ctx **ctx_ptrs;   /* (K,) */
    double *par_mean, *par_m2; /* (P,) */
} probe_buffers;

static void free_buffers(probe_buffers *b)
{
    free(b->render.rgb);
    free(b->render.depth);
    free(b->render.normal);
    free(b->render.opacity);
    free(b->grad.rgb);
    free(b->rgb_x);
    free(b->x0);
    free(b->eps);
    free(b->x_t);
    free(b->eps_hat);
    free(b->g);
    free(b->t);
    free(b->alpha);
    free(b->sigma);
    free(b->weight);
    free(b->cams);
    free(b->ctxs);
    free(b->ctx_ptrs);
    free(b->par_mean);
    free(b->par_m2);
}

static sl_status render_cameras(const sl_probe_env *env, probe_buffers *b, const sl_camera *cams,
                                int64_t step, sl_error *err)
{
    sl_render_request req = { cams, b->B, step, SL_RENDER_TRAIN };
    sl_status st = env->repr->render(env->repr_state, &req, &b->render, err);
    if (st != SL_OK)
        return st;
    int R = env->cams->resolution;
    size_t view = (size_t)R * R * 3;
    size_t out = (size_t)env->pinfo->height * env->pinfo->width * 3;
    for (size_t i = 0; i < view * (size_t)b->B; i++)
        b->rgb_x[i] = 2.0f * b->render.rgb[i] - 1.0f;
    for (int j = 0; j < b->B; j++)
        sl_resample(b->rgb_x + j * view, R, R, 3, b->x0 + j * out, env->pinfo->height,
                    env->pinfo->width);
    return SL_OK;
}

/* Backward of one direction g (D,) at the current render into zeroed grads, then the
 * Welford update of every parameter's mean and second central moment with draw k. */
static sl_status accumulate_par(const sl_probe_env *env, probe_buffers *b, const float *g, int k,
                                sl_error *err)
{
    int R = env->cams->resolution;
    size_t view = (size_t)R * R * 3;
    size_t in = (size_t)env->pinfo->height * env->pinfo->width * 3;
    memset(b->grad.rgb, 0, view * (size_t)b->B * sizeof(float));
    for (int j = 0; j < b->B; j++)
        sl_resample_adjoint(g + j * in, env->pinfo->height, env->pinfo->width, 3,
                            b->grad.rgb + j * view, R, R);
    for (size_t i = 0; i < view * (size_t)b->B; i++)
        b->grad.rgb[i] *= 2.0f;
    for (size_t gi = 0; gi < env->n_groups; gi++)
        memset(env->groups[gi].grad, 0, env->groups[gi].n * sizeof(float));
    sl_status st = env->repr->backward(env->repr_state, &b->grad, err);
    if (st != SL_OK)
        return st;
    size_t p = 0;
    for (size_t gi = 0; gi < env->n_groups; gi++) {
        const float *grad = env->groups[gi].grad;
        for (size_t i = 0; i < env->groups[gi].n; i++, p++) {
            double x = grad[i], d = x - b->par_mean[p];
            b->par_mean[p] += d / (k + 1);
            b->par_m2[p] += d * (x - b->par_mean[p]);
        }
    }
    return SL_OK;
}

sl_status sl_probe_run(const sl_probe_env *env, const sl_probe_estimator *ests, size_t n,
                       int K, int camera_drawn, int want_par, int64_t step,
                       sl_probe_result *results, sl_error *err)
{
    if (K < 2 || n == 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "a probe needs at least 2 draws and one "
                            "estimator");
    int R = env->cams->resolution, B = env->cams->batch;
    size_t per = (size_t)env->pinfo->height * env->pinfo->width * env->pinfo->channels;
    size_t D = (size_t)B * per;
    size_t P = 0;
    for (size_t gi = 0; gi < env->n_groups; gi++)
        P += env->groups[gi].n;
    probe_buffers b;
    memset(&b, 0, sizeof b);
    b.B = B;
    size_t px = (size_t)B * R * R;
    b.render = (sl_render){ B, R, R, sl_aligned_zalloc(px * 3 * sizeof(float)),
                            (env->repr_outputs & SL_RENDER_DEPTH) ? sl_aligned_zalloc(px * sizeof(float)) : NULL,
                            (env->repr_outputs & SL_RENDER_NORMAL) ? sl_aligned_zalloc(px * 3 * sizeof(float)) : NULL,
                            (env->repr_outputs & SL_RENDER_OPACITY) ? sl_aligned_zalloc(px * sizeof(float)) : NULL };
    b.grad = (sl_render){ B, R, R, sl_aligned_zalloc(px * 3 * sizeof(float)), NULL, NULL, NULL };
    b.rgb_x = sl_aligned_zalloc(px * 3 * sizeof(float));
    b.x0 = sl_aligned_zalloc(D * sizeof(float));
    b.eps = sl_aligned_zalloc((size_t)K * D * sizeof(float));
    b.x_t = sl_aligned_zalloc((size_t)K * D * sizeof(float));
    b.eps_hat = sl_aligned_zalloc((size_t)K * D * sizeof(float));
    b.g = sl_aligned_zalloc(n * (size_t)K * D * sizeof(float));
    size_t KB = (size_t)K * B;
    b.t = calloc(KB, sizeof *b.t);
    b.alpha = calloc(KB, sizeof *b.alpha);
    b.sigma = calloc(KB, sizeof *b.sigma);
    b.weight = calloc(KB, sizeof *b.weight);
    b.cams = calloc(KB, sizeof *b.cams);
    b.ctxs = calloc((size_t)K, sizeof *b.ctxs);
    b.ctx_ptrs = calloc((size_t)K, sizeof *b.ctx_ptrs);
    if (want_par) {
        b.par_mean = calloc(P ? P : 1, sizeof *b.par_mean);
        b.par_m2 = calloc(P ? P : 1, sizeof *b.par_m2);
    }
    sl_status st = SL_OK;
    if (!b.render.rgb || !b.grad.rgb || !b.rgb_x || !b.x0 || !b.eps || !b.x_t || !b.eps_hat ||
        !b.g || !b.t || !b.alpha || !b.sigma || !b.weight || !b.cams || !b.ctxs || !b.ctx_ptrs ||
        (want_par && (!b.par_mean || !b.par_m2))) {
        free_buffers(&b);
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory for a probe (K %d, D %zu, P %zu)",
                            K, D, P);
    }

    /* The draws: cameras, t and eps from the probe's own streams at this step (t per batch
     * element, as in training). */
    for (int k = 0; k < K; k++) {
        sl_rng_key ck = { env->seed, (uint32_t)step, SL_STREAM_PROBE_CAMERA,
                          (uint32_t)(camera_drawn ? k : 0) };
        sl_camera_sampler_draw_key(env->cams, ck, &b.cams[(size_t)k * B]);
        sl_rng_key tk = { env->seed, (uint32_t)step, SL_STREAM_PROBE_T, (uint32_t)k };
        for (int j = 0; j < B; j++) {
            size_t kj = (size_t)k * B + j;
            b.t[kj] = (int)sl_rng_int1(tk, (uint64_t)j, env->t_lo, env->t_hi);
            b.alpha[kj] = sl_diffusion_alpha(env->diffusion, b.t[kj]);
            b.sigma[kj] = sl_diffusion_sigma(env->diffusion, b.t[kj]);
            b.weight[kj] = sl_diffusion_weight(env->diffusion, env->weighting, b.t[kj]);
        }
        sl_rng_key nk = { env->seed, (uint32_t)step, SL_STREAM_PROBE, (uint32_t)k };
        sl_rng_normal(nk, 0, D, b.eps + (size_t)k * D);
    }

    /* Directions of every estimator on every draw (the render is redone per draw only when
     * cameras are drawn per draw). */
    for (int k = 0; k < K && st == SL_OK; k++) {
        const sl_camera *cams = &b.cams[(size_t)(camera_drawn ? k : 0) * B];
        if (k == 0 || camera_drawn)
            st = render_cameras(env, &b, cams, step, err);
        if (st != SL_OK)
            break;
        float *x_t = b.x_t + (size_t)k * D, *eps = b.eps + (size_t)k * D;
        float *eps_hat = b.eps_hat + (size_t)k * D;
        for (int j = 0; j < B; j++) {
            float a = (float)b.alpha[(size_t)k * B + j], sg = (float)b.sigma[(size_t)k * B + j];
            for (size_t i = (size_t)j * per; i < (size_t)(j + 1) * per; i++)
                x_t[i] = a * b.x0[i] + sg * eps[i];
        }
        sl_prior_query q = { B, x_t, &b.t[(size_t)k * B], cams, step };
        st = env->prior->vt->noise_pred(env->prior->state, &q, eps_hat, err);
        if (st != SL_OK)
            break;
        b.ctxs[k] = (sl_estimator_ctx){
            .batch = B, .height = env->pinfo->height, .width = env->pinfo->width,
            .channels = env->pinfo->channels, .step = step, .sample = k,
            .t = &b.t[(size_t)k * B], .alpha = &b.alpha[(size_t)k * B],
            .sigma = &b.sigma[(size_t)k * B], .x0 = b.x0, .eps = eps, .x_t = x_t,
            .eps_hat = eps_hat, .cams = cams, .render = &b.render,
            .weight = &b.weight[(size_t)k * B],
        };
        b.ctx_ptrs[k] = &b.ctxs[k];
        for (size_t e = 0; e < n && st == SL_OK; e++) {
            float *g = b.g + (e * (size_t)K + (size_t)k) * D;
            st = ests[e].vt->delta(ests[e].state, &b.ctxs[k], g, err);
            if (st != SL_OK) {
                sl_error_prefix(err, "probe at step %lld: estimator '%s'", (long long)step,
                                ests[e].label);
                break;
            }
            for (int j = 0; j < B; j++) {
                float w = (float)b.weight[(size_t)k * B + j];
                for (size_t i = (size_t)j * per; i < (size_t)(j + 1) * per; i++)
                    g[i] *= w;
            }
        }
    }

    /* The estimators' own diagnostics on the same draws, right after their directions. */
    for (size_t e = 0; e < n && st == SL_OK; e++) {
        if (ests[e].n_stats == 0)
            continue;
        size_t count = 0;
        st = ests[e].vt->probe_stats(ests[e].state, b.ctx_ptrs, K, ests[e].stats,
                                     ests[e].n_stats, &count, err);
        if (st == SL_OK && count != ests[e].n_stats)
            st = sl_error_set(err, SL_ERR_PLUGIN, "probe_stats returned %zu values, its "
                              "names-only call %zu", count, ests[e].n_stats);
        if (st != SL_OK)
            sl_error_prefix(err, "probe at step %lld: estimator '%s'", (long long)step,
                            ests[e].label);
    }

    /* Image space: per element, two passes over the K draws in double. */
    for (size_t e = 0; e < n && st == SL_OK; e++) {
        const float *g = b.g + e * (size_t)K * D;
        double var_sum = 0, mean_sq = 0;
        for (size_t d = 0; d < D; d++) {
            double m = 0;
            for (int k = 0; k < K; k++)
                m += g[(size_t)k * D + d];
            m /= K;
            double ss = 0;
            for (int k = 0; k < K; k++) {
                double dv = g[(size_t)k * D + d] - m;
                ss += dv * dv;
            }
            var_sum += ss / (K - 1);
            mean_sq += m * m;
        }
        results[e].var_img = var_sum / (double)D;
        results[e].mean_norm2 = (mean_sq - var_sum / K) / (double)D;
        results[e].var_par = NAN;
    }

    /* Parameter space: one backward per draw, at that draw's render. */
    for (size_t e = 0; want_par && e < n && st == SL_OK; e++) {
        memset(b.par_mean, 0, P * sizeof *b.par_mean);
        memset(b.par_m2, 0, P * sizeof *b.par_m2);
        for (int k = 0; k < K && st == SL_OK; k++) {
            /* A fixed camera's render is still the current one (estimators do not render). */
            if (camera_drawn)
                st = render_cameras(env, &b, &b.cams[(size_t)k * B], step, err);
            if (st == SL_OK)
                st = accumulate_par(env, &b, b.g + (e * (size_t)K + (size_t)k) * D, k, err);
        }
        double total = 0;
        for (size_t p = 0; p < P; p++)
            total += b.par_m2[p] / (K - 1);
        results[e].var_par = P ? total / (double)P : NAN;
    }
    for (size_t gi = 0; gi < env->n_groups; gi++)
        memset(env->groups[gi].grad, 0, env->groups[gi].n * sizeof(float));
    free_buffers(&b);
    return st;
}
