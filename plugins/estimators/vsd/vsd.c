/* plugins/estimators/vsd/vsd.c — estimator `vsd`: Variational Score Distillation
 * (ProlificDreamer), method.md section 3; docs/estimators.md.
 *
 *     Delta = eps_hat - eps_psi(x_t; t, c)
 *
 * where eps_psi is the noise prediction of a model of the RENDER distribution, fitted online
 * to the detached renders. Its mean over eps is not 0 for a fixed render (it is 0 only
 * averaged over the render distribution), so VSD's expected direction is not SDS's: it is
 * another objective (the KL between the render distribution and the prior), and the tests
 * check VSD against its own definition.
 *
 * Two models of the render distribution (mode):
 *
 * network  eps_psi = eps_G(x_t; t) + N_psi(x_t; t, c), with N_psi the UNet of net.h and
 *          eps_G the ideal denoiser of a Gaussian N(m, s^2 I) fitted to the renders:
 *              eps_G = sigma (x_t - alpha m) / (alpha^2 s^2 + sigma^2)
 *          m (H, W, C) and s^2 are running moments of the renders (decay moment_decay, 0.9: a window of about 10 steps),
 *          s floored at min_std. N_psi's output layer starts at zero, so the untrained
 *          model IS the Gaussian's denoiser, a meaningful noise prediction of magnitude ~|eps|
 *          from the first step instead of a random network's arbitrary output. Before any
 *          render was seen (the first step), m is the current render itself and s = min_std:
 *          the render distribution is taken to be (nearly) the point mass at the render, and
 *          eps_G = sigma^2 eps / (alpha^2 min_std^2 + sigma^2) makes the first step nearly SDS.
 *          Training, in update(), after each step on the detached renders ctx->x0: for every
 *          render `train_samples` draws of a fresh tau (uniform integer in train_t_range) and
 *          eps' ~ N(0, I), the camera dropped with probability camera_dropout, and one Adam
 *          step (core optimiser, its own lr) on
 *              L(psi) = (1/N) sum |eps_psi(alpha_tau x0 + sigma_tau eps'; tau, c) - eps'|^2
 *          (N = draws x H W C). The moments are updated first, so the network always learns
 *          the residual of the Gaussian it will be added to.
 * replay   the ideal denoiser of a replay buffer of the last replay_size renders, smoothed
 *          by a data bandwidth s0 (the world prior's formula, method.md section 5):
 *              v = alpha^2 s0^2 + sigma^2,  r_k = softmax_k(-|x_t - alpha x_k|^2 / (2 v)),
 *              eps_psi = (sigma / v) sum_k r_k (x_t - alpha x_k)
 *          exact for the empirical render distribution. Camera conditioning, as the world
 *          prior's kernel: with camera_kernel_width w > 0 each entry's logit gets
 *          log kappa_k = -angle(c, c_k)^2 / (2 w^2), the angle in degrees between the
 *          viewing directions of the query's camera and the render's; w = 0 mixes every view.
 *          Before the buffer holds a render, the current render is its only entry (as for
 *          the network: the first step is nearly SDS).
 *
 * Randomness: the training draws come from this instance's RNG streams keyed by (seed,
 * step, stream, draw), so they are a function of the step alone: a resumed run draws what an
 * uninterrupted one would, and nothing about the RNG needs saving. Network results are
 * bit-identical whatever the thread count (nn.h's blocks are; the loops here are per element
 * or serial reductions in double).
 *
 * Series (network mode): <label>_psi_loss, the training loss of the step's draws before the
 * Adam step, and <label>_psi_loss_gaussian, the same loss of eps_G alone (what the network
 * has to improve on). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "steinlab/steinlab.h"

enum { VSD_NAME_MAX = 64, VSD_STREAM_T = 0, VSD_STREAM_EPS = 1, VSD_STREAM_DROP = 2,
       VSD_STREAM_INIT = 3 };

typedef enum vsd_mode { VSD_NETWORK, VSD_REPLAY } vsd_mode;

typedef struct vsd_state {
    const sl_host *host;
    const sl_diffusion *diffusion;
    int H, W, C;
    size_t D;                    /* H W C */
    vsd_mode mode;
    /* network mode */
    vsd_net net;
    sl_adam *adam;
    vsd_net_ctx *eval_ctx, *train_ctx;
    int train_samples;
    double camera_dropout;
    int t_lo, t_hi;              /* training tau range, integers in [1, T] */
    double moment_decay, min_std;
    float *mean;                 /* (H, W, C) running mean m of the renders */
    double var;                  /* running s^2 (before the min_std floor) */
    int64_t seen;                /* steps whose renders entered the moments */
    /* replay mode */
    int replay_size;
    double bandwidth;
    double kernel_width;         /* degrees; 0: camera-unconditional */
    float *replay;               /* (replay_size, H, W, C) ring of renders */
    float *replay_dir;           /* (replay_size, 3) their cameras' viewing directions */
    int64_t replay_count, replay_next;
    double *logit;               /* (replay_size,) scratch */
    double *acc;                 /* (H, W, C) scratch */
    /* scratch, grown on demand */
    size_t cap_rows;
    float *xt, *eps, *out, *dy;  /* (rows, H, W, C) */
    float *tf, *pose, *mask;     /* (rows,), (rows, 12), (rows,) */
    double *alpha, *sigma;       /* (rows,) */
    const float **x0_rows;       /* (rows,) the render of each row */
    char name_loss[VSD_NAME_MAX], name_loss_gauss[VSD_NAME_MAX];
} vsd_state;

static const sl_param_def vsd_params[] = {
    { .name = "mode", .type = SL_PARAM_CHOICE, .default_value = "network",
      .choices = "network|replay",
      .doc = "model of the render distribution: a UNet trained online (ProlificDreamer) or "
             "the ideal denoiser of a replay buffer of the last renders" },
    { .name = "channels", .type = SL_PARAM_INT, .default_value = "32", .min = 2, .max = 512,
      .doc = "network: channels of the first level (doubled per level; even, divisible by "
             "groups)" },
    { .name = "levels", .type = SL_PARAM_INT, .default_value = "2", .min = 1,
      .max = VSD_MAX_LEVELS, .doc = "network: resolution levels (the image size must be "
                                    "divisible by 2^(levels-1))" },
    { .name = "groups", .type = SL_PARAM_INT, .default_value = "8", .min = 1, .max = 512,
      .doc = "network: group-norm groups" },
    { .name = "attention", .type = SL_PARAM_BOOL, .default_value = "false",
      .doc = "network: a self-attention block at the lowest resolution" },
    { .name = "lr", .type = SL_PARAM_FLOAT, .flags = SL_PARAM_SCHEDULABLE,
      .default_value = "0.001", .min = 0, .max = 1,
      .doc = "network: Adam learning rate of psi (its own optimiser)" },
    { .name = "train_samples", .type = SL_PARAM_INT, .default_value = "1", .min = 1,
      .max = 64, .doc = "network: (tau, eps') draws per render per training step" },
    { .name = "camera_dropout", .type = SL_PARAM_FLOAT, .default_value = "0.1", .min = 0,
      .max = 1, .doc = "network: probability that a training draw drops the camera" },
    { .name = "train_t_range", .type = SL_PARAM_FLOAT_LIST, .default_value = "[0.02, 0.98]",
      .min = 0, .max = 1, .min_len = 2, .max_len = 2,
      .doc = "network: training tau range as fractions of T (uniform integers)" },
    { .name = "moment_decay", .type = SL_PARAM_FLOAT, .default_value = "0.9", .min = 0,
      .max = 1, .doc = "network: decay per step of the renders' running mean and variance "
                       "(the Gaussian part of eps_psi)" },
    { .name = "min_std", .type = SL_PARAM_FLOAT, .default_value = "0.05", .min = 1e-4,
      .max = 10, .doc = "network: floor on the Gaussian part's standard deviation s" },
    { .name = "replay_size", .type = SL_PARAM_INT, .default_value = "16", .min = 1,
      .max = 100000, .doc = "replay: renders kept (the last N)" },
    { .name = "bandwidth", .type = SL_PARAM_FLOAT, .default_value = "0.05", .min = 1e-4,
      .max = 10, .doc = "replay: data bandwidth s0 smoothing each buffered render" },
    { .name = "camera_kernel_width", .type = SL_PARAM_FLOAT, .default_value = "0", .min = 0,
      .max = 1e6, .doc = "replay: width w in degrees of the camera kernel exp(-angle^2 / "
                         "(2 w^2)) between viewing directions (0: every view weighs the same)" },
};

/* ------------------------------------------------------------------ helpers */

/* "<label>_<what>" as [a-z0-9_], cut to fit. */
static void vsd_series_name(char *out, const char *label, const char *what)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%.*s_%s", (int)(VSD_NAME_MAX - 2 - strlen(what)), label, what);
    size_t k = 0;
    for (; buf[k] && k + 1 < VSD_NAME_MAX; k++) {
        char ch = buf[k];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        out[k] = ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) ? ch : '_';
    }
    out[k] = '\0';
}

static void vsd_destroy(void *state)
{
    vsd_state *s = state;
    if (!s)
        return;
    sl_adam_destroy(s->adam);
    vsd_net_ctx_destroy(s->eval_ctx);
    vsd_net_ctx_destroy(s->train_ctx);
    vsd_net_free(&s->net);
    free(s->mean);
    free(s->replay);
    free(s->replay_dir);
    free(s->logit);
    free(s->acc);
    free(s->xt);
    free(s->eps);
    free(s->out);
    free(s->dy);
    free(s->tf);
    free(s->pose);
    free(s->mask);
    free(s->alpha);
    free(s->sigma);
    free(s->x0_rows);
    free(s);
}

static sl_status vsd_reserve(vsd_state *s, size_t rows, sl_error *err)
{
    if (rows <= s->cap_rows)
        return SL_OK;
    const size_t n = rows * s->D;
#define GROW(ptr, count)                                                   \
    do {                                                                   \
        void *p_ = realloc((ptr), (count) * sizeof *(ptr));                \
        if (!p_)                                                           \
            return sl_error_set(err, SL_ERR_NOMEM, "vsd: out of memory "   \
                                "(%zu rows of %zu)", rows, s->D);          \
        (ptr) = p_;                                                        \
    } while (0)
    GROW(s->xt, n);
    GROW(s->eps, n);
    GROW(s->out, n);
    GROW(s->dy, n);
    GROW(s->tf, rows);
    GROW(s->pose, rows * VSD_POSE_FEATURES);
    GROW(s->mask, rows);
    GROW(s->alpha, rows);
    GROW(s->sigma, rows);
    GROW(s->x0_rows, rows);
#undef GROW
    s->cap_rows = rows;
    return SL_OK;
}

/* The network context for a batch of B (re-made when the batch size changes). */
static sl_status vsd_net_ctx_for(vsd_state *s, vsd_net_ctx **slot, int B, sl_error *err)
{
    if (*slot && vsd_net_ctx_batch(*slot) == B)
        return SL_OK;
    vsd_net_ctx_destroy(*slot);
    *slot = NULL;
    return vsd_net_ctx_create(&s->net, B, s->H, s->W, slot, err);
}

static sl_status vsd_create(const sl_host *host, const sl_params *params, void **state,
                            sl_error *err)
{
    vsd_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "vsd: out of memory");
    s->host = host;
    s->diffusion = host->diffusion;
    sl_status st = SL_OK;
    sl_prior_info info;
    st = sl_host_prior_info(host, "vsd", NULL, &info, err);
    if (st != SL_OK)
        goto fail;
    s->H = info.height;
    s->W = info.width;
    s->C = info.channels;
    s->D = (size_t)s->H * s->W * s->C;
    s->mode = !strcmp(sl_params_string(params, "mode"), "replay") ? VSD_REPLAY : VSD_NETWORK;

    if (s->mode == VSD_REPLAY) {
        s->replay_size = (int)sl_params_int(params, "replay_size");
        s->bandwidth = sl_params_float(params, "bandwidth");
        s->kernel_width = sl_params_float(params, "camera_kernel_width");
        s->replay = calloc((size_t)s->replay_size * s->D, sizeof *s->replay);
        s->replay_dir = calloc((size_t)s->replay_size * 3, sizeof *s->replay_dir);
        s->logit = calloc((size_t)s->replay_size, sizeof *s->logit);
        s->acc = calloc(s->D, sizeof *s->acc);
        if (!s->replay || !s->replay_dir || !s->logit || !s->acc) {
            st = sl_error_set(err, SL_ERR_NOMEM, "vsd: cannot allocate a replay buffer of %d "
                              "renders of %dx%dx%d", s->replay_size, s->H, s->W, s->C);
            goto fail;
        }
        host->log(host, SL_LOG_INFO, "vsd: replay buffer of %d renders, bandwidth %g, camera "
                  "kernel %g deg", s->replay_size, s->bandwidth, s->kernel_width);
        *state = s;
        return SL_OK;
    }

    vsd_net_config cfg = {
        .in_channels = s->C,
        .channels = (int)sl_params_int(params, "channels"),
        .levels = (int)sl_params_int(params, "levels"),
        .groups = (int)sl_params_int(params, "groups"),
        .attention = sl_params_bool(params, "attention"),
    };
    if ((st = vsd_net_check_size(&cfg, s->H, s->W, err)) != SL_OK)
        goto fail;
    sl_rng_key init = { .seed = host->seed, .step = 0,
                        .stream = host->rng_stream_base + VSD_STREAM_INIT, .sample = 0 };
    if ((st = vsd_net_create(&s->net, &cfg, init, err)) != SL_OK)
        goto fail;
    sl_param_group group = sl_nn_params_group(&s->net.params, "psi");
    sl_adam_config adam = { .lr = sl_params_schedule(params, "lr"), .beta1 = 0.9,
                            .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0 };
    if ((st = sl_adam_create(&group, &adam, 1, &s->adam, err)) != SL_OK)
        goto fail;
    s->train_samples = (int)sl_params_int(params, "train_samples");
    s->camera_dropout = sl_params_float(params, "camera_dropout");
    const int T = s->diffusion->T;
    double f0 = sl_params_list_float(params, "train_t_range", 0);
    double f1 = sl_params_list_float(params, "train_t_range", 1);
    if (f1 < f0) {
        double tmp = f0;
        f0 = f1;
        f1 = tmp;
    }
    s->t_lo = (int)lround(f0 * T);
    s->t_hi = (int)lround(f1 * T);
    if (s->t_lo < 1) s->t_lo = 1;
    if (s->t_hi > T) s->t_hi = T;
    if (s->t_hi < s->t_lo) s->t_hi = s->t_lo;
    s->moment_decay = sl_params_float(params, "moment_decay");
    s->min_std = sl_params_float(params, "min_std");
    s->mean = calloc(s->D, sizeof *s->mean);
    if (!s->mean) {
        st = sl_error_set(err, SL_ERR_NOMEM, "vsd: out of memory");
        goto fail;
    }
    vsd_series_name(s->name_loss, host->label, "psi_loss");
    vsd_series_name(s->name_loss_gauss, host->label, "psi_loss_gaussian");
    if ((st = host->declare_series(host, s->name_loss, "VSD: the denoising loss (1/N) sum "
                                   "|eps_psi - eps'|^2 of the step's training draws, before "
                                   "psi's Adam step", err)) != SL_OK ||
        (st = host->declare_series(host, s->name_loss_gauss, "VSD: the same loss of the "
                                   "Gaussian part eps_G alone (the network's baseline)",
                                   err)) != SL_OK)
        goto fail;
    host->log(host, SL_LOG_INFO, "vsd: network of %zu parameters (channels %d, levels %d%s), "
              "lr %g, %d training draw%s per render", s->net.params.total, cfg.channels,
              cfg.levels, cfg.attention ? ", attention" : "", sl_params_float(params, "lr"),
              s->train_samples, s->train_samples == 1 ? "" : "s");
    *state = s;
    return SL_OK;
fail:
    vsd_destroy(s);
    return st;
}

static sl_status vsd_check_ctx(const vsd_state *s, const sl_estimator_ctx *ctx, sl_error *err)
{
    if (ctx->height != s->H || ctx->width != s->W || ctx->channels != s->C || ctx->batch < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "vsd: context of batch %d and size "
                            "%dx%dx%d, expected the prior's %dx%dx%d", ctx->batch, ctx->height,
                            ctx->width, ctx->channels, s->H, s->W, s->C);
    return SL_OK;
}

/* ------------------------------------------------------------------ the Gaussian part */

/* Standard deviation s of the Gaussian part (the running variance, floored). */
static double vsd_gauss_std(const vsd_state *s)
{
    const double v = s->seen ? s->var : 0.0;
    return sqrt(fmax(v, s->min_std * s->min_std));
}

/* g (D,) = sigma (x_t - alpha m) / (alpha^2 s^2 + sigma^2) for one image; m (D,). */
static void vsd_gauss(float *g, const float *x_t, const float *m, double alpha, double sigma,
                      double std, size_t D)
{
    const double scale = sigma / (alpha * alpha * std * std + sigma * sigma);
    for (size_t i = 0; i < D; i++)
        g[i] = (float)(scale * ((double)x_t[i] - alpha * (double)m[i]));
}

/* ------------------------------------------------------------------ replay */

/* Viewing direction of a camera: its z (forward) axis in world space, (3,). */
static void vsd_view_dir(const sl_camera *cam, float dir[3])
{
    dir[0] = cam->rot[2];
    dir[1] = cam->rot[5];
    dir[2] = cam->rot[8];
}

/* eps (D,) = the buffer's ideal denoiser at x_t (D,) seen from cam; with an empty buffer the
 * single entry `fallback` (D,). Log-sum-exp over the entries in double, serial, fixed order. */
static void vsd_replay_eps(vsd_state *s, float *eps, const float *x_t, double alpha,
                           double sigma, const float *fallback, const sl_camera *cam)
{
    float dir[3];
    vsd_view_dir(cam, dir);
    const size_t D = s->D;
    const int64_t n = s->replay_count ? s->replay_count : 1;
    const double v = alpha * alpha * s->bandwidth * s->bandwidth + sigma * sigma;
    double logit_max = -INFINITY;
    for (int64_t k = 0; k < n; k++) {
        const float *xk = s->replay_count ? s->replay + (size_t)k * D : fallback;
        double d2 = 0.0;
        for (size_t i = 0; i < D; i++) {
            const double d = (double)x_t[i] - alpha * (double)xk[i];
            d2 += d * d;
        }
        s->logit[k] = -d2 / (2.0 * v);
        if (s->replay_count && s->kernel_width > 0) {
            const float *dk = s->replay_dir + (size_t)k * 3;
            double c = (double)dir[0] * dk[0] + (double)dir[1] * dk[1] + (double)dir[2] * dk[2];
            c = c > 1.0 ? 1.0 : (c < -1.0 ? -1.0 : c);
            const double ang = acos(c) * (180.0 / M_PI);
            s->logit[k] -= ang * ang / (2.0 * s->kernel_width * s->kernel_width);
        }
        logit_max = fmax(logit_max, s->logit[k]);
    }
    double z = 0.0;
    for (int64_t k = 0; k < n; k++)
        z += exp(s->logit[k] - logit_max);
    memset(s->acc, 0, D * sizeof *s->acc);
    for (int64_t k = 0; k < n; k++) {
        const float *xk = s->replay_count ? s->replay + (size_t)k * D : fallback;
        const double r = exp(s->logit[k] - logit_max) / z;
        for (size_t i = 0; i < D; i++)
            s->acc[i] += r * ((double)x_t[i] - alpha * (double)xk[i]);
    }
    for (size_t i = 0; i < D; i++)
        eps[i] = (float)(sigma / v * s->acc[i]);
}

/* ------------------------------------------------------------------ delta */

static sl_status vsd_delta(void *state, const sl_estimator_ctx *ctx, float *delta,
                           sl_error *err)
{
    vsd_state *s = state;
    sl_status st = vsd_check_ctx(s, ctx, err);
    const int B = ctx->batch;
    if (st == SL_OK)
        st = vsd_reserve(s, (size_t)B, err);
    if (st != SL_OK)
        return st;
    const size_t D = s->D;
    if (s->mode == VSD_REPLAY) {
        for (int b = 0; b < B; b++) {
            const size_t off = (size_t)b * D;
            vsd_replay_eps(s, s->out + off, ctx->x_t + off, ctx->alpha[b], ctx->sigma[b],
                           ctx->x0 + off, &ctx->cams[b]);
        }
    } else {
        if ((st = vsd_net_ctx_for(s, &s->eval_ctx, B, err)) != SL_OK)
            return st;
        for (int b = 0; b < B; b++) {
            s->tf[b] = (float)ctx->t[b];
            vsd_pose_features(&ctx->cams[b], s->pose + (size_t)b * VSD_POSE_FEATURES);
            s->mask[b] = 1.0f;
        }
        if ((st = vsd_net_forward(&s->net, s->eval_ctx, s->out, ctx->x_t, s->tf, s->pose,
                                  s->mask, err)) != SL_OK)
            return st;
        /* s->dy (unused by delta otherwise) holds eps_G per image */
        const double std = vsd_gauss_std(s);
        for (int b = 0; b < B; b++) {
            const size_t off = (size_t)b * D;
            /* before any render was seen, m is this render (the point-mass start) */
            vsd_gauss(s->dy + off, ctx->x_t + off, s->seen ? s->mean : ctx->x0 + off,
                      ctx->alpha[b], ctx->sigma[b], std, D);
            for (size_t i = 0; i < D; i++)
                s->out[off + i] += s->dy[off + i];
        }
    }
    const size_t n = (size_t)B * D;
    for (size_t i = 0; i < n; i++)
        delta[i] = ctx->eps_hat[i] - s->out[i];
    return SL_OK;
}

/* ------------------------------------------------------------------ update */

/* The step's renders: the distinct x0 arrays of the contexts (the noise samples of one step
 * share their renders), each batch element once. rows[r] receives render r, cams[r] its
 * camera; returns the number of renders. */
static size_t vsd_renders(const sl_estimator_ctx *const *ctxs, int n, const float **rows,
                          const sl_camera **cams, size_t D)
{
    size_t count = 0;
    for (int k = 0; k < n; k++) {
        int repeat = 0;
        for (int j = 0; j < k && !repeat; j++)
            repeat = ctxs[j]->x0 == ctxs[k]->x0;
        if (repeat)
            continue;
        for (int b = 0; b < ctxs[k]->batch; b++) {
            if (rows)
                rows[count] = ctxs[k]->x0 + (size_t)b * D;
            if (cams)
                cams[count] = &ctxs[k]->cams[b];
            count++;
        }
    }
    return count;
}

/* Running moments of the renders: m <- d m + (1 - d) mean(x0), s^2 <- d s^2 + (1 - d) mean
 * (x0 - m_old)^2 (the spread of the renders over time around the mean they had); the first
 * step sets m = mean(x0) and s^2 = the spread within the step. */
static void vsd_update_moments(vsd_state *s, const float *const *x0, size_t R)
{
    const size_t D = s->D;
    const double d = s->seen ? s->moment_decay : 0.0;
    double dev2 = 0.0;
    for (size_t i = 0; i < D; i++) {
        double mean = 0.0;
        for (size_t r = 0; r < R; r++)
            mean += x0[r][i];
        mean /= (double)R;
        const double ref = s->seen ? s->mean[i] : mean;
        for (size_t r = 0; r < R; r++)
            dev2 += ((double)x0[r][i] - ref) * ((double)x0[r][i] - ref);
        s->mean[i] = (float)(d * s->mean[i] + (1.0 - d) * mean);
    }
    dev2 /= (double)(R * D);
    s->var = d * s->var + (1.0 - d) * dev2;
    s->seen++;
}

static sl_status vsd_train(vsd_state *s, const sl_estimator_ctx *const *ctxs, int n,
                           sl_error *err)
{
    const size_t D = s->D;
    const int64_t step = ctxs[0]->step;
    const size_t R = vsd_renders(ctxs, n, NULL, NULL, D);
    const size_t rows = R * (size_t)s->train_samples;
    sl_status st = vsd_reserve(s, rows, err);
    if (st != SL_OK)
        return st;
    const sl_camera **cams = malloc(R * sizeof *cams);
    if (!cams)
        return sl_error_set(err, SL_ERR_NOMEM, "vsd: out of memory");
    vsd_renders(ctxs, n, s->x0_rows, cams, D);
    vsd_update_moments(s, s->x0_rows, R);
    /* rows are render-major: row = r * train_samples + k */
    for (size_t r = R; r-- > 0;)
        for (int k = s->train_samples; k-- > 0;)
            s->x0_rows[r * s->train_samples + k] = s->x0_rows[r];
    const uint32_t base = s->host->rng_stream_base;
    sl_rng_key key_t = { s->host->seed, (uint32_t)step, base + VSD_STREAM_T, 0 };
    sl_rng_key key_drop = { s->host->seed, (uint32_t)step, base + VSD_STREAM_DROP, 0 };
    for (size_t q = 0; q < rows; q++) {
        const int tau = (int)sl_rng_int1(key_t, q, s->t_lo, s->t_hi);
        s->tf[q] = (float)tau;
        s->alpha[q] = sl_diffusion_alpha(s->diffusion, tau);
        s->sigma[q] = sl_diffusion_sigma(s->diffusion, tau);
        s->mask[q] = sl_rng_uniform1(key_drop, q) < s->camera_dropout ? 0.0f : 1.0f;
        vsd_pose_features(cams[q / (size_t)s->train_samples],
                          s->pose + q * VSD_POSE_FEATURES);
        sl_rng_key key_eps = { s->host->seed, (uint32_t)step, base + VSD_STREAM_EPS,
                               (uint32_t)q };
        sl_rng_normal(key_eps, 0, D, s->eps + q * D);
    }
    free(cams);
#pragma omp parallel for schedule(static)
    for (size_t q = 0; q < rows; q++)
        for (size_t i = 0; i < D; i++)
            s->xt[q * D + i] = (float)(s->alpha[q] * s->x0_rows[q][i] +
                                       s->sigma[q] * s->eps[q * D + i]);

    if ((st = vsd_net_ctx_for(s, &s->train_ctx, (int)rows, err)) != SL_OK ||
        (st = vsd_net_forward(&s->net, s->train_ctx, s->out, s->xt, s->tf, s->pose, s->mask,
                              err)) != SL_OK)
        return st;
    /* eps_psi = eps_G + N_psi; dL/dN = 2 (eps_psi - eps') / N */
    const double std = vsd_gauss_std(s), N = (double)rows * (double)D;
    double loss = 0.0, loss_gauss = 0.0;
    for (size_t q = 0; q < rows; q++) {
        float *g = s->dy + q * D;
        vsd_gauss(g, s->xt + q * D, s->mean, s->alpha[q], s->sigma[q], std, D);
        for (size_t i = 0; i < D; i++) {
            const double e = s->eps[q * D + i];
            const double rg = (double)g[i] - e;
            const double r = (double)g[i] + (double)s->out[q * D + i] - e;
            loss_gauss += rg * rg;
            loss += r * r;
            g[i] = (float)(2.0 * r / N);
        }
    }
    s->host->record(s->host, s->name_loss, loss / N);
    s->host->record(s->host, s->name_loss_gauss, loss_gauss / N);
    sl_nn_params_zero_grad(&s->net.params);
    if ((st = vsd_net_backward(&s->net, s->train_ctx, NULL, s->dy, s->xt, s->pose, s->mask,
                               err)) != SL_OK)
        return st;
    sl_adam_step(s->adam, step);
    return SL_OK;
}

/* The replay buffer takes the step's renders and their cameras' viewing directions, oldest
 * overwritten first. */
static sl_status vsd_replay_push(vsd_state *s, const sl_estimator_ctx *const *ctxs, int n,
                                 sl_error *err)
{
    const size_t R = vsd_renders(ctxs, n, NULL, NULL, s->D);
    sl_status st = vsd_reserve(s, R, err);
    if (st != SL_OK)
        return st;
    const sl_camera **cams = malloc(R * sizeof *cams);
    if (!cams)
        return sl_error_set(err, SL_ERR_NOMEM, "vsd: out of memory");
    vsd_renders(ctxs, n, s->x0_rows, cams, s->D);
    for (size_t r = 0; r < R; r++) {
        memcpy(s->replay + (size_t)s->replay_next * s->D, s->x0_rows[r], s->D * sizeof(float));
        vsd_view_dir(cams[r], s->replay_dir + (size_t)s->replay_next * 3);
        s->replay_next = (s->replay_next + 1) % s->replay_size;
        if (s->replay_count < s->replay_size)
            s->replay_count++;
    }
    free(cams);
    return SL_OK;
}

static sl_status vsd_update(void *state, const sl_estimator_ctx *const *ctxs, int n,
                            sl_error *err)
{
    vsd_state *s = state;
    if (n < 1)
        return SL_OK;
    for (int k = 0; k < n; k++) {
        sl_status st = vsd_check_ctx(s, ctxs[k], err);
        if (st != SL_OK)
            return st;
    }
    return s->mode == VSD_REPLAY ? vsd_replay_push(s, ctxs, n, err) : vsd_train(s, ctxs, n, err);
}

/* ------------------------------------------------------------------ checkpoints */

static sl_status vsd_save_state(void *state, sl_state_io *io, sl_error *err)
{
    vsd_state *s = state;
    sl_status st;
    if (s->mode == VSD_REPLAY) {
        st = sl_state_put(io, "replay/renders", SL_STATE_F32, s->replay,
                          (size_t)s->replay_size * s->D, err);
        if (st == SL_OK)
            st = sl_state_put(io, "replay/directions", SL_STATE_F32, s->replay_dir,
                              (size_t)s->replay_size * 3, err);
        if (st == SL_OK)
            st = sl_state_put(io, "replay/count", SL_STATE_I64, &s->replay_count, 1, err);
        if (st == SL_OK)
            st = sl_state_put(io, "replay/next", SL_STATE_I64, &s->replay_next, 1, err);
        return st;
    }
    const size_t P = s->net.params.total;
    const int64_t count = sl_adam_count(s->adam);
    st = sl_state_put(io, "psi/weights", SL_STATE_F32, s->net.params.data, P, err);
    if (st == SL_OK)
        st = sl_state_put(io, "psi/adam_m", SL_STATE_F32, sl_adam_moment(s->adam, 0, 1), P, err);
    if (st == SL_OK)
        st = sl_state_put(io, "psi/adam_v", SL_STATE_F32, sl_adam_moment(s->adam, 0, 2), P, err);
    if (st == SL_OK)
        st = sl_state_put(io, "psi/adam_count", SL_STATE_I64, &count, 1, err);
    if (st == SL_OK)
        st = sl_state_put(io, "moments/mean", SL_STATE_F32, s->mean, s->D, err);
    if (st == SL_OK)
        st = sl_state_put(io, "moments/var", SL_STATE_F64, &s->var, 1, err);
    if (st == SL_OK)
        st = sl_state_put(io, "moments/seen", SL_STATE_I64, &s->seen, 1, err);
    return st;
}

static sl_status vsd_load_state(void *state, sl_state_io *io, sl_error *err)
{
    vsd_state *s = state;
    sl_status st;
    if (s->mode == VSD_REPLAY) {
        st = sl_state_get(io, "replay/renders", SL_STATE_F32, s->replay,
                          (size_t)s->replay_size * s->D, err);
        if (st == SL_OK)
            st = sl_state_get(io, "replay/directions", SL_STATE_F32, s->replay_dir,
                              (size_t)s->replay_size * 3, err);
        if (st == SL_OK)
            st = sl_state_get(io, "replay/count", SL_STATE_I64, &s->replay_count, 1, err);
        if (st == SL_OK)
            st = sl_state_get(io, "replay/next", SL_STATE_I64, &s->replay_next, 1, err);
        if (st == SL_OK && (s->replay_count < 0 || s->replay_count > s->replay_size ||
                            s->replay_next < 0 || s->replay_next >= s->replay_size))
            st = sl_error_set(err, SL_ERR_FORMAT, "replay buffer position %lld / %lld outside "
                              "a buffer of %d", (long long)s->replay_next,
                              (long long)s->replay_count, s->replay_size);
    } else {
        const size_t P = s->net.params.total;
        int64_t count = 0;
        st = sl_state_get(io, "psi/weights", SL_STATE_F32, s->net.params.data, P, err);
        if (st == SL_OK)
            st = sl_state_get(io, "psi/adam_m", SL_STATE_F32, sl_adam_moment(s->adam, 0, 1), P,
                              err);
        if (st == SL_OK)
            st = sl_state_get(io, "psi/adam_v", SL_STATE_F32, sl_adam_moment(s->adam, 0, 2), P,
                              err);
        if (st == SL_OK)
            st = sl_state_get(io, "psi/adam_count", SL_STATE_I64, &count, 1, err);
        if (st == SL_OK)
            sl_adam_set_count(s->adam, count);
        if (st == SL_OK)
            st = sl_state_get(io, "moments/mean", SL_STATE_F32, s->mean, s->D, err);
        if (st == SL_OK)
            st = sl_state_get(io, "moments/var", SL_STATE_F64, &s->var, 1, err);
        if (st == SL_OK)
            st = sl_state_get(io, "moments/seen", SL_STATE_I64, &s->seen, 1, err);
    }
    if (st != SL_OK)
        sl_error_prefix(err, "vsd");
    return st;
}

static const sl_estimator_vtable vsd_vtable = {
    .struct_size = sizeof(sl_estimator_vtable),
    .create = vsd_create,
    .destroy = vsd_destroy,
    .required_outputs = NULL,   /* RGB only */
    .delta = vsd_delta,
    .update = vsd_update,
    .save_state = vsd_save_state,
    .load_state = vsd_load_state,
};

static const sl_plugin vsd_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_ESTIMATOR,
    .name = "vsd",
    .version = "1.0.0",
    .summary = "Variational Score Distillation (ProlificDreamer): Delta = eps_hat - eps_psi, "
               "eps_psi fitted online to the renders",
    .params = SL_PARAM_SCHEMA(vsd_params),
    .vtable = &vsd_vtable,
};

SL_PLUGIN_ENTRY(&vsd_plugin)
