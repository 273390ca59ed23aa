/* plugins/estimators/ssd.c — estimator `ssd`: Stein Score Distillation (SteinDreamer), with
 * the sign of the Stein control variate fixed and a learnable weight mu per baseline
 * (method.md section 2; docs/estimators.md).
 *
 *     Delta = eps_hat - sum_j mu_j (.) ( eps phi_j - sigma_t grad_{x_t} phi_j )
 *
 * Why the bracket has zero mean. Stein's lemma for eps ~ N(0, I) and a differentiable
 * scalar f: E[eps f(eps)] = E[grad_eps f(eps)]. With f(eps) = phi(t, x_t(eps), theta, c) and
 * x_t = alpha_t x0 + sigma_t eps, grad_eps = sigma_t grad_{x_t}, so for fixed (t, theta, c)
 *     E_eps[ eps phi - sigma_t grad_{x_t} phi ] = 0.
 * The project page of the paper writes the bracket as eps phi + grad_x phi: a global sign
 * would be absorbed by mu, but the relative sign and the missing sigma_t are errors, and that
 * form has a mean far from 0 (tests/test_ssd.c shows it fails the zero-mean test decisively).
 *
 * With phi = 1 (baseline `constant`, grad 0) and mu = 1 the bracket is eps and Delta is
 * SDS's eps_hat - eps; the arithmetic below is arranged so that this holds bit for bit:
 * c = (float)(eps * 1.0 - sigma * 0.0) = eps exactly, h = 1.0 * c = c exactly, and
 * Delta = eps_hat - (float)h is the same single float subtraction sds.c does.
 *
 * mu. One weight array per baseline j, of a configurable shape (mu.shape):
 *   scalar   one value
 *   channel  one per channel of the prior's space (C)
 *   pixel    one per element of the prior's image (H, W, C): every pixel and channel
 *   tbins    one per t-bin: bins equal bins over [0, T], bin(t) = min(bins - 1, t bins / T)
 * mu is chosen to minimise the w-weighted second moment of the direction,
 *     J(mu) = E || w(t) Delta ||^2,
 * which, since E[Delta] does not depend on mu (every bracket has mean 0), is its variance
 * plus a constant. Per weight index m (the elements e that share mu_{., m}) J is quadratic:
 *     J = sum_e w^2 (eps_hat_e - sum_j mu_jm c_je)^2
 *     dJ/dmu_jm = -2 sum_{e in m} w^2 Delta_e c_je
 *     normal equations  A_m mu_m = b_m,  A_m[j][k] = sum_{e in m} w^2 c_je c_ke,
 *                                        b_m[j]    = sum_{e in m} w^2 c_je eps_hat_e
 * Fits (mu.fit): `adam` takes one Adam step per training step on the step's samples
 * (objective normalised by the number of elements, N = samples B H W C); `least_squares`
 * keeps running sums A <- decay A + (step's sums), b likewise, and solves
 *     (A_m + lambda_m I) mu_m = b_m + lambda_m mu0,   lambda_m = ridge tr(A_m) / J
 * by Cholesky (a ridge relative to the data's scale that shrinks toward the initial value
 * mu0 = mu.value, so an index without data keeps mu0); `none` keeps mu = mu.value.
 * w is the run's weighting (the estimator section's `weighting`), which the host passes per
 * batch element in ctx->weight: mu minimises the second moment of the very direction the
 * core back-propagates.
 *
 * Unbiasedness. mu is fitted only in update(), which the driver calls after the step's
 * directions were used, on that step's samples; delta() only reads mu. So the mu that
 * multiplies a bracket at step k is a function of the samples of steps < k, independent of
 * the step-k noise, and E[mu (.) bracket] = mu (.) E[bracket] = 0: the expected direction is
 * SDS's whatever mu is. (Fitting on the current sample would correlate mu with eps and bias
 * Delta.) The guarantee "never worse than SDS" holds only approximately: at the exact
 * least-squares optimum of the image-space second moment the constant baseline's mu = 1 is
 * one of the candidates, but mu is fitted on earlier samples (earlier theta), per-pixel
 * weights from few samples are noisy, and the parameter-space variance is not the
 * image-space one (method.md section 2).
 *
 * Cost: delta() evaluates every baseline once and keeps the brackets per sample; update()
 * reuses them when the context is the one delta() saw (checked by step, sample, t and a
 * fingerprint of x_t and eps), otherwise (a probe's delta in between, shadow training)
 * evaluates the baselines again: the result is the same either way. The baselines' own
 * update() runs after mu's fit, so mu is fitted to the brackets delta() used.
 *
 * Series per step (declared in create; names sanitised to [a-z0-9_], at most 63 chars):
 *   <label>_mu_<baseline>_mean / _min / _max   mu used in this step's deltas (before the fit)
 *   <label>_objective       (1/N) sum w^2 |Delta|^2 of the step's samples with that mu
 *   <label>_objective_sds   the same with Delta = eps_hat - eps (SDS), for the ratio
 * All reductions run serially in a fixed order, in double. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/steinlab.h"

enum { SSD_NAME_MAX = 64 };

typedef enum ssd_shape { SSD_SCALAR, SSD_CHANNEL, SSD_PIXEL, SSD_TBINS } ssd_shape;
typedef enum ssd_fit { SSD_FIT_ADAM, SSD_FIT_LSQ, SSD_FIT_NONE } ssd_fit;

/* Adam's constants for mu (fixed: mu is a handful of well-scaled numbers). */
#define SSD_ADAM_B1 0.9
#define SSD_ADAM_B2 0.999
#define SSD_ADAM_EPS 1e-8

/* The brackets of one sample, kept from delta() for update(). */
typedef struct ssd_cache {
    int valid;
    int64_t step;
    int sample, batch;
    uint64_t key;        /* fingerprint of (t, x_t, eps) */
    size_t cap;          /* floats allocated in c */
    float *c;            /* (J, B, H, W, C) c_j = eps phi_j - sigma grad phi_j */
} ssd_cache;

typedef struct ssd_state {
    const sl_host *host;
    const sl_diffusion *diffusion;
    const sl_baseline_ref *bl;   /* (J,) owned by the host */
    size_t J;
    int H, W, C;
    size_t D;                    /* H W C, elements per batch element */
    ssd_shape shape;
    int bins;
    size_t M;                    /* weights per baseline */
    ssd_fit fit;
    double mu0;                  /* mu.value */
    sl_schedule lr;
    double decay, ridge;
    double *mu;                  /* (J, M) */
    double *adam_m, *adam_v;     /* (J, M) Adam's moments */
    int64_t adam_t;              /* Adam steps taken */
    double *lsq_a;               /* (M, J, J) running sums sum w^2 c_j c_k */
    double *lsq_b;               /* (M, J) running sums sum w^2 c_j eps_hat */
    int64_t lsq_n;               /* steps accumulated */
    int64_t lsq_failed;          /* indices whose system was not positive definite */
    /* scratch */
    float *phi;                  /* (Bcap,) */
    float *grad;                 /* (Bcap, H, W, C) */
    int bcap;
    double *grad_mu;             /* (J, M) */
    double *sys;                 /* (J, J + 1) one system */
    ssd_cache *cache;            /* (n_cache,) by sample index */
    int n_cache;
    /* series names */
    char (*names)[3][SSD_NAME_MAX];   /* (J, 3) mean, min, max */
    char name_obj[SSD_NAME_MAX], name_obj_sds[SSD_NAME_MAX];
    /* probe statistics (probe_stats): names, and the oracle fit's scratch */
    char (*oracle_names)[3][SSD_NAME_MAX];   /* (J, 3) oracle mu mean, min, max */
    double *oracle_a, *oracle_b, *oracle_e2, *oracle_mu;   /* (M,J,J), (M,J), (M,), (J,M) */
} ssd_state;

static const sl_param_def ssd_mu_defs[] = {
    { .name = "shape", .type = SL_PARAM_CHOICE, .default_value = "scalar",
      .choices = "scalar|channel|pixel|tbins",
      .doc = "shape of each baseline's weight: one value, one per channel, one per element "
             "(H, W, C) of the prior's image, or a piecewise-constant function of t" },
    { .name = "bins", .type = SL_PARAM_INT, .default_value = "10", .min = 1, .max = 1000,
      .doc = "shape tbins: number of equal t-bins over [0, T]" },
    { .name = "fit", .type = SL_PARAM_CHOICE, .default_value = "least_squares",
      .choices = "adam|least_squares|none",
      .doc = "how mu minimises E|w Delta|^2 on earlier steps' samples: Adam, closed-form "
             "least squares on running sums, or not at all (mu = value)" },
    { .name = "value", .type = SL_PARAM_FLOAT, .default_value = "1", .min = -1e6, .max = 1e6,
      .doc = "initial mu (fixed with fit none; the least-squares ridge shrinks toward it)" },
    { .name = "lr", .type = SL_PARAM_FLOAT, .flags = SL_PARAM_SCHEDULABLE,
      .default_value = "0.01", .min = 0, .max = 1e3, .doc = "fit adam: learning rate" },
    { .name = "decay", .type = SL_PARAM_FLOAT, .default_value = "0.99", .min = 0, .max = 1,
      .doc = "fit least_squares: factor on the running sums per step (1 keeps every step; "
             "0.99 weighs the last ~100 steps, as theta moves)" },
    { .name = "ridge", .type = SL_PARAM_FLOAT, .default_value = "0.001", .min = 0, .max = 1e6,
      .doc = "fit least_squares: ridge lambda = ridge tr(A) / J added to the normal "
             "equations, shrinking mu toward value" },
};
static const sl_param_schema ssd_mu_schema = SL_PARAM_SCHEMA(ssd_mu_defs);

static const sl_param_def ssd_params[] = {
    { .name = "baselines", .type = SL_PARAM_PLUGIN_LIST, .default_value = "[constant]",
      .min_len = 1, .plugin_kind = SL_KIND_BASELINE,
      .doc = "Stein baselines phi_j, each with its own mu_j (constant reproduces SDS with "
             "mu = 1; depth, normal need the representation's depth / normal)" },
    { .name = "mu", .type = SL_PARAM_SECTION, .section = &ssd_mu_schema,
      .doc = "the control-variate weights: shape, fit, value, lr, decay, ridge, bins" },
};

/* ------------------------------------------------------------------ helpers */

/* Copies src into dst as [a-z0-9_]: lower-case letters and digits kept, the rest '_'. */
static void ssd_sanitize(char *dst, size_t size, const char *src)
{
    size_t k = 0;
    for (; src[k] && k + 1 < size; k++) {
        char ch = src[k];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        dst[k] = ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) ? ch : '_';
    }
    dst[k] = '\0';
}

/* "<label>_mu_<baseline>_<what>" sanitised; when that exceeds 63 characters, the baseline
 * is named by its index ("<label>_mu<j>_<what>", the label cut to fit), which stays unique. */
static void ssd_series_name(char *out, const char *label, const char *blabel, size_t j,
                            const char *what)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s_mu_%s_%s", label, blabel, what);
    if (strlen(buf) < SSD_NAME_MAX) {
        ssd_sanitize(out, SSD_NAME_MAX, buf);
        return;
    }
    char tail[32];
    snprintf(tail, sizeof tail, "_mu%zu_%s", j, what);
    snprintf(buf, sizeof buf, "%.*s%s", (int)(SSD_NAME_MAX - 1 - strlen(tail)), label, tail);
    ssd_sanitize(out, SSD_NAME_MAX, buf);
}

static void ssd_plain_name(char *out, const char *label, const char *what)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%.*s_%s", (int)(SSD_NAME_MAX - 2 - strlen(what)), label, what);
    ssd_sanitize(out, SSD_NAME_MAX, buf);
}

/* FNV-1a over bytes, continuing from h. */
static uint64_t ssd_fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t ssd_ctx_key(const ssd_state *s, const sl_estimator_ctx *ctx)
{
    const size_t n = (size_t)ctx->batch * s->D;
    uint64_t h = 0xcbf29ce484222325ull;
    h = ssd_fnv(h, ctx->t, (size_t)ctx->batch * sizeof *ctx->t);
    h = ssd_fnv(h, ctx->x_t, n * sizeof *ctx->x_t);
    h = ssd_fnv(h, ctx->eps, n * sizeof *ctx->eps);
    return h;
}

/* t-bin of an integer t in [1, T]: bins equal bins over [0, T], t = T in the last. */
static int ssd_tbin(const ssd_state *s, int t)
{
    long b = (long)t * s->bins / s->diffusion->T;
    if (b < 0)
        b = 0;
    if (b >= s->bins)
        b = s->bins - 1;
    return (int)b;
}

/* Weight index of element i (within one batch element, (H, W, C) row-major) at time t. */
static size_t ssd_index(const ssd_state *s, size_t i, int t)
{
    switch (s->shape) {
    case SSD_SCALAR: return 0;
    case SSD_CHANNEL: return i % (size_t)s->C;
    case SSD_PIXEL: return i;
    case SSD_TBINS: return (size_t)ssd_tbin(s, t);
    }
    return 0;
}

static void ssd_destroy(void *state)
{
    ssd_state *s = state;
    if (!s)
        return;
    free(s->mu);
    free(s->adam_m);
    free(s->adam_v);
    free(s->lsq_a);
    free(s->lsq_b);
    free(s->phi);
    free(s->grad);
    free(s->grad_mu);
    free(s->sys);
    for (int k = 0; k < s->n_cache; k++)
        free(s->cache[k].c);
    free(s->cache);
    free(s->names);
    free(s->oracle_names);
    free(s->oracle_a);
    free(s->oracle_b);
    free(s->oracle_e2);
    free(s->oracle_mu);
    free(s);
}

static sl_status ssd_create(const sl_host *host, const sl_params *params, void **state,
                            sl_error *err)
{
    ssd_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "ssd: out of memory");
    s->host = host;
    s->diffusion = host->diffusion;
    sl_status st = SL_OK;
    sl_prior_info info;
    st = sl_host_prior_info(host, "ssd", NULL, &info, err);
    if (st != SL_OK)
        goto fail;
    s->H = info.height;
    s->W = info.width;
    s->C = info.channels;
    s->D = (size_t)s->H * s->W * s->C;
    s->J = host->baselines(host, "baselines", &s->bl);
    if (s->J == 0) {
        st = sl_error_set(err, SL_ERR_INVALID_ARG, "ssd: the host created no baselines for "
                          "'baselines' (expected at least one, e.g. [constant])");
        goto fail;
    }
    const sl_params *mu = sl_params_section(params, "mu");
    const char *shape = sl_params_string(mu, "shape");
    s->shape = !strcmp(shape, "scalar") ? SSD_SCALAR : !strcmp(shape, "channel") ? SSD_CHANNEL
               : !strcmp(shape, "pixel") ? SSD_PIXEL : SSD_TBINS;
    s->bins = (int)sl_params_int(mu, "bins");
    s->M = s->shape == SSD_SCALAR ? 1 : s->shape == SSD_CHANNEL ? (size_t)s->C
           : s->shape == SSD_PIXEL ? s->D : (size_t)s->bins;
    const char *fit = sl_params_string(mu, "fit");
    s->fit = !strcmp(fit, "adam") ? SSD_FIT_ADAM : !strcmp(fit, "none") ? SSD_FIT_NONE
                                                                         : SSD_FIT_LSQ;
    s->mu0 = sl_params_float(mu, "value");
    s->lr = sl_params_schedule(mu, "lr");
    s->decay = sl_params_float(mu, "decay");
    s->ridge = sl_params_float(mu, "ridge");

    const size_t JM = s->J * s->M;
    s->mu = malloc(JM * sizeof *s->mu);
    s->adam_m = calloc(JM, sizeof *s->adam_m);
    s->adam_v = calloc(JM, sizeof *s->adam_v);
    s->lsq_a = calloc(s->M * s->J * s->J, sizeof *s->lsq_a);
    s->lsq_b = calloc(JM, sizeof *s->lsq_b);
    s->grad_mu = calloc(JM, sizeof *s->grad_mu);
    s->sys = calloc(s->J * (s->J + 1), sizeof *s->sys);
    s->names = calloc(s->J, sizeof *s->names);
    s->oracle_names = calloc(s->J, sizeof *s->oracle_names);
    if (!s->mu || !s->adam_m || !s->adam_v || !s->lsq_a || !s->lsq_b || !s->grad_mu ||
        !s->sys || !s->names || !s->oracle_names) {
        st = sl_error_set(err, SL_ERR_NOMEM, "ssd: out of memory (%zu baselines x %zu "
                          "weights)", s->J, s->M);
        goto fail;
    }
    for (size_t k = 0; k < JM; k++)
        s->mu[k] = s->mu0;

    static const char *const what[3] = { "mean", "min", "max" };
    for (size_t j = 0; j < s->J; j++)
        for (int w = 0; w < 3; w++) {
            ssd_series_name(s->names[j][w], host->label, s->bl[j].label, j, what[w]);
            ssd_series_name(s->oracle_names[j][w], "oracle", s->bl[j].label, j, what[w]);
            char doc[256];
            snprintf(doc, sizeof doc, "%s of the SSD weight mu of baseline '%s' used in the "
                     "step's directions (fitted on earlier steps)", what[w], s->bl[j].label);
            if ((st = host->declare_series(host, s->names[j][w], doc, err)) != SL_OK)
                goto fail;
        }
    ssd_plain_name(s->name_obj, host->label, "objective");
    ssd_plain_name(s->name_obj_sds, host->label, "objective_sds");
    if ((st = host->declare_series(host, s->name_obj, "SSD's objective (1/N) sum w(t)^2 "
                                   "|Delta|^2 over the step's samples (N = samples B H W C)",
                                   err)) != SL_OK ||
        (st = host->declare_series(host, s->name_obj_sds, "the same objective for SDS's "
                                   "Delta = eps_hat - eps on the same samples", err)) != SL_OK)
        goto fail;
    host->log(host, SL_LOG_INFO, "ssd: %zu baseline%s, mu shape %s (%zu weight%s each), fit "
              "%s, value %g", s->J, s->J == 1 ? "" : "s", shape, s->M, s->M == 1 ? "" : "s",
              fit, s->mu0);
    *state = s;
    return SL_OK;
fail:
    ssd_destroy(s);
    return st;
}

static sl_status ssd_check_ctx(const ssd_state *s, const sl_estimator_ctx *ctx, sl_error *err)
{
    if (ctx->height != s->H || ctx->width != s->W || ctx->channels != s->C || ctx->batch < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "ssd: context of batch %d and size "
                            "%dx%dx%d, expected the prior's %dx%dx%d", ctx->batch, ctx->height,
                            ctx->width, ctx->channels, s->H, s->W, s->C);
    if (!ctx->weight)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "ssd: the context carries no weighting "
                            "w(t) (sl_estimator_ctx.weight)");
    return SL_OK;
}

static sl_status ssd_reserve_batch(ssd_state *s, int batch, sl_error *err)
{
    if (batch <= s->bcap)
        return SL_OK;
    float *phi = realloc(s->phi, (size_t)batch * sizeof *phi);
    if (phi)
        s->phi = phi;
    float *grad = realloc(s->grad, (size_t)batch * s->D * sizeof *grad);
    if (grad)
        s->grad = grad;
    if (!phi || !grad)
        return sl_error_set(err, SL_ERR_NOMEM, "ssd: out of memory (batch %d)", batch);
    s->bcap = batch;
    return SL_OK;
}

/* The cache slot of a sample, with room for the brackets of a batch. */
static sl_status ssd_slot(ssd_state *s, int sample, int batch, ssd_cache **out, sl_error *err)
{
    if (sample < 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "ssd: sample index %d", sample);
    if (sample >= s->n_cache) {
        ssd_cache *grown = realloc(s->cache, (size_t)(sample + 1) * sizeof *grown);
        if (!grown)
            return sl_error_set(err, SL_ERR_NOMEM, "ssd: out of memory");
        memset(grown + s->n_cache, 0, (size_t)(sample + 1 - s->n_cache) * sizeof *grown);
        s->cache = grown;
        s->n_cache = sample + 1;
    }
    ssd_cache *c = &s->cache[sample];
    const size_t need = s->J * (size_t)batch * s->D;
    if (need > c->cap) {
        float *buf = realloc(c->c, need * sizeof *buf);
        if (!buf)
            return sl_error_set(err, SL_ERR_NOMEM, "ssd: out of memory (brackets of batch %d)",
                                batch);
        c->c = buf;
        c->cap = need;
    }
    *out = c;
    return SL_OK;
}

/* Evaluates every baseline on ctx and writes the brackets into the sample's cache slot:
 *   c_j[b, i] = (float)(eps[b, i] phi_j[b] - sigma_b grad phi_j[b, i])      (J, B, H, W, C)
 * computed in double and rounded once (phi = 1, grad = 0 give eps exactly). */
static sl_status ssd_brackets(ssd_state *s, const sl_estimator_ctx *ctx, ssd_cache **out,
                              sl_error *err)
{
    const int B = ctx->batch;
    ssd_cache *c = NULL;
    sl_status st = ssd_reserve_batch(s, B, err);
    if (st == SL_OK)
        st = ssd_slot(s, ctx->sample, B, &c, err);
    if (st != SL_OK)
        return st;
    c->valid = 0;
    for (size_t j = 0; j < s->J; j++) {
        st = s->bl[j].vt->eval(s->bl[j].state, ctx, s->phi, s->grad, err);
        if (st != SL_OK) {
            sl_error_prefix(err, "ssd: baseline '%s'", s->bl[j].label);
            return st;
        }
        float *cj = c->c + j * (size_t)B * s->D;   /* (B, H, W, C) */
        for (int b = 0; b < B; b++) {
            const double phi = s->phi[b], sigma = ctx->sigma[b];
            if (!isfinite(phi))
                return sl_error_set(err, SL_ERR_NONFINITE, "ssd: baseline '%s' returned phi "
                                    "= %g for batch element %d", s->bl[j].label, phi, b);
            const size_t off = (size_t)b * s->D;
            for (size_t i = 0; i < s->D; i++)
                cj[off + i] = (float)((double)ctx->eps[off + i] * phi -
                                      sigma * (double)s->grad[off + i]);
        }
    }
    c->step = ctx->step;
    c->sample = ctx->sample;
    c->batch = B;
    c->key = ssd_ctx_key(s, ctx);
    c->valid = 1;
    *out = c;
    return SL_OK;
}

/* h = sum_j mu_j c_j for element i of batch element b (the first term starts the sum, so a
 * single baseline gives mu_0 c_0 with no added zero). */
static double ssd_h(const ssd_state *s, const float *c, int B, int b, size_t i, size_t m)
{
    const size_t stride = (size_t)B * s->D, at = (size_t)b * s->D + i;
    double h = s->mu[m] * (double)c[at];
    for (size_t j = 1; j < s->J; j++)
        h += s->mu[j * s->M + m] * (double)c[j * stride + at];
    return h;
}

static sl_status ssd_delta(void *state, const sl_estimator_ctx *ctx, float *delta,
                           sl_error *err)
{
    ssd_state *s = state;
    sl_status st = ssd_check_ctx(s, ctx, err);
    ssd_cache *c = NULL;
    if (st == SL_OK)
        st = ssd_brackets(s, ctx, &c, err);
    if (st != SL_OK)
        return st;
    /* Delta = eps_hat - h: only reads mu (fitted on earlier steps). */
    const int B = ctx->batch;
    for (int b = 0; b < B; b++) {
        const size_t off = (size_t)b * s->D;
        for (size_t i = 0; i < s->D; i++) {
            const size_t m = ssd_index(s, i, ctx->t[b]);
            delta[off + i] = ctx->eps_hat[off + i] - (float)ssd_h(s, c->c, B, b, i, m);
        }
    }
    return SL_OK;
}

/* Solves (A + lambda I) x = b + lambda x0 for one index by Cholesky on s->sys, lambda =
 * ridge tr(A) / J, x0 = mu.value; returns 0 when the matrix is not positive definite (x
 * untouched), 1 otherwise (also when A is 0: no data, x untouched). a: (J, J), bv: (J,),
 * x: (J,) strided. */
static int ssd_solve(ssd_state *s, const double *a, const double *bv, double *x,
                     size_t stride, double ridge)
{
    const size_t J = s->J;
    double tr = 0.0;
    for (size_t j = 0; j < J; j++)
        tr += a[j * J + j];
    if (!(tr > 0.0))
        return 1;   /* no data at this index yet: keep mu */
    const double lambda = ridge * tr / (double)J;
    double *L = s->sys;                /* (J, J) lower factor, then (J,) rhs in the last row */
    double *y = s->sys + J * J;
    for (size_t i = 0; i < J; i++)
        for (size_t j = 0; j <= i; j++) {
            double v = a[i * J + j] + (i == j ? lambda : 0.0);
            for (size_t k = 0; k < j; k++)
                v -= L[i * J + k] * L[j * J + k];
            if (i == j) {
                /* a pivot at rounding level of the diagonal: (numerically) singular */
                if (!(v > 1e-13 * (a[i * J + i] + lambda)))
                    return 0;
                L[i * J + i] = sqrt(v);
            } else {
                L[i * J + j] = v / L[j * J + j];
            }
        }
    for (size_t i = 0; i < J; i++) {   /* L y = b + lambda x0 */
        double v = bv[i] + lambda * s->mu0;
        for (size_t k = 0; k < i; k++)
            v -= L[i * J + k] * y[k];
        y[i] = v / L[i * J + i];
    }
    for (size_t ii = J; ii-- > 0;) {   /* L^T x = y */
        double v = y[ii];
        for (size_t k = ii + 1; k < J; k++)
            v -= L[k * J + ii] * y[k];
        y[ii] = v / L[ii * J + ii];
    }
    for (size_t j = 0; j < J; j++)
        x[j * stride] = y[j];
    return 1;
}

/* The brackets of ctx: delta()'s, reused only for the very context they were computed on,
 * else evaluated again. */
static sl_status ssd_ctx_brackets(ssd_state *s, const sl_estimator_ctx *ctx, ssd_cache **out,
                                  sl_error *err)
{
    ssd_cache *c = ctx->sample >= 0 && ctx->sample < s->n_cache ? &s->cache[ctx->sample] : NULL;
    if (!c || !c->valid || c->step != ctx->step || c->batch != ctx->batch ||
        c->key != ssd_ctx_key(s, ctx))
        return ssd_brackets(s, ctx, out, err);
    *out = c;
    return SL_OK;
}

static void ssd_record_mu(const ssd_state *s)
{
    for (size_t j = 0; j < s->J; j++) {
        const double *mj = s->mu + j * s->M;
        double sum = 0.0, lo = mj[0], hi = mj[0];
        for (size_t m = 0; m < s->M; m++) {
            sum += mj[m];
            lo = fmin(lo, mj[m]);
            hi = fmax(hi, mj[m]);
        }
        s->host->record(s->host, s->names[j][0], sum / (double)s->M);
        s->host->record(s->host, s->names[j][1], lo);
        s->host->record(s->host, s->names[j][2], hi);
    }
}

static sl_status ssd_update(void *state, const sl_estimator_ctx *const *ctxs, int n,
                            sl_error *err)
{
    ssd_state *s = state;
    sl_status st = SL_OK;
    const size_t J = s->J, M = s->M;
    ssd_record_mu(s);
    if (s->fit == SSD_FIT_LSQ) {   /* forget, then add this step's sums */
        for (size_t k = 0; k < M * J * J; k++)
            s->lsq_a[k] *= s->decay;
        for (size_t k = 0; k < M * J; k++)
            s->lsq_b[k] *= s->decay;
    }
    memset(s->grad_mu, 0, J * M * sizeof *s->grad_mu);
    double obj = 0.0, obj_sds = 0.0, count = 0.0;
    for (int k = 0; k < n; k++) {
        const sl_estimator_ctx *ctx = ctxs[k];
        if ((st = ssd_check_ctx(s, ctx, err)) != SL_OK)
            return st;
        ssd_cache *c = NULL;
        if ((st = ssd_ctx_brackets(s, ctx, &c, err)) != SL_OK)
            return st;
        const int B = ctx->batch;
        const size_t stride = (size_t)B * s->D;
        for (int b = 0; b < B; b++) {
            const double w = ctx->weight[b];
            const double w2 = w * w;
            const size_t off = (size_t)b * s->D;
            for (size_t i = 0; i < s->D; i++) {
                const size_t m = ssd_index(s, i, ctx->t[b]);
                const double e_hat = ctx->eps_hat[off + i];
                const double d = e_hat - ssd_h(s, c->c, B, b, i, m);
                const double d_sds = e_hat - (double)ctx->eps[off + i];
                obj += w2 * d * d;
                obj_sds += w2 * d_sds * d_sds;
                if (s->fit == SSD_FIT_ADAM) {
                    for (size_t j = 0; j < J; j++)   /* dJ/dmu_jm = -2 w^2 Delta c_j */
                        s->grad_mu[j * M + m] -= 2.0 * w2 * d * (double)c->c[j * stride + off + i];
                } else if (s->fit == SSD_FIT_LSQ) {
                    double *a = s->lsq_a + m * J * J, *bv = s->lsq_b + m * J;
                    for (size_t j = 0; j < J; j++) {
                        const double cj = c->c[j * stride + off + i];
                        bv[j] += w2 * cj * e_hat;
                        for (size_t q = 0; q <= j; q++)
                            a[j * J + q] += w2 * cj * (double)c->c[q * stride + off + i];
                    }
                }
            }
            count += (double)s->D;
        }
    }
    if (count > 0) {
        s->host->record(s->host, s->name_obj, obj / count);
        s->host->record(s->host, s->name_obj_sds, obj_sds / count);
    }

    if (s->fit == SSD_FIT_ADAM && count > 0) {
        /* One Adam step on J(mu) / N (bias-corrected moments, as the core's optimizer). */
        s->adam_t++;
        const double lr = sl_schedule_at(&s->lr, ctxs[0]->step);
        const double bc1 = 1.0 - pow(SSD_ADAM_B1, (double)s->adam_t);
        const double bc2 = 1.0 - pow(SSD_ADAM_B2, (double)s->adam_t);
        for (size_t k = 0; k < J * M; k++) {
            const double g = s->grad_mu[k] / count;
            s->adam_m[k] = SSD_ADAM_B1 * s->adam_m[k] + (1.0 - SSD_ADAM_B1) * g;
            s->adam_v[k] = SSD_ADAM_B2 * s->adam_v[k] + (1.0 - SSD_ADAM_B2) * g * g;
            s->mu[k] -= lr * (s->adam_m[k] / bc1) / (sqrt(s->adam_v[k] / bc2) + SSD_ADAM_EPS);
        }
    } else if (s->fit == SSD_FIT_LSQ && n > 0) {
        s->lsq_n++;
        for (size_t m = 0; m < M; m++) {
            double *a = s->lsq_a + m * J * J;
            for (size_t j = 0; j < J; j++)   /* mirror the lower triangle */
                for (size_t q = j + 1; q < J; q++)
                    a[j * J + q] = a[q * J + j];
            if (!ssd_solve(s, a, s->lsq_b + m * J, s->mu + m, M, s->ridge)) {
                if (s->lsq_failed++ == 0)
                    s->host->log(s->host, SL_LOG_WARN, "ssd: step %lld: the normal equations "
                                 "of weight index %zu are singular (collinear baselines and "
                                 "ridge 0?); that mu is kept (reported once)",
                                 (long long)ctxs[0]->step, m);
            }
        }
    }

    /* The baselines learn after mu was fitted to the brackets delta() used. */
    for (size_t j = 0; j < J; j++)
        if (s->bl[j].vt->update &&
            (st = s->bl[j].vt->update(s->bl[j].state, ctxs, n, err)) != SL_OK) {
            sl_error_prefix(err, "ssd: baseline '%s': update", s->bl[j].label);
            return st;
        }
    return SL_OK;
}

/* ------------------------------------------------------------------ probe statistics */

/* The least-squares oracle of a probe: mu fitted on the probe's own K draws (the same
 * normal equations as the least-squares fit, without decay; a ridge of 1e-9 tr(A)/J only
 * guards collinear baselines, e.g. an untrained mlp next to constant, where it picks the
 * near-minimum-norm solution among the equally good ones), and the second
 * moment J(mu) = (1/N) sum w^2 |eps_hat - sum_j mu_j c_j|^2 it reaches on those draws,
 * next to J with the mu in use and SDS's. A diagnostic: it is fitted on the very samples it
 * is scored on (so it is optimistic by about M J / N) and never used for a step. Per index
 * m, J_m(mu) = e2_m - 2 mu . b_m + mu . A_m mu with e2_m = sum w^2 eps_hat^2, which gives
 * the oracle's J without a second pass over the draws. An index whose system is singular
 * keeps the mu in use. */
#define SSD_ORACLE_RIDGE 1e-9
static const char SSD_PROBE_J[] = "second_moment", SSD_PROBE_JO[] = "oracle_second_moment",
                  SSD_PROBE_JS[] = "sds_second_moment";

static sl_status ssd_probe_stats(void *state, const sl_estimator_ctx *const *ctxs, int n,
                                 sl_probe_stat *out, size_t max, size_t *count, sl_error *err)
{
    ssd_state *s = state;
    const size_t J = s->J, M = s->M, n_stats = 3 * J + 3;
    if (max < n_stats)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "ssd: %zu probe statistics do not fit in "
                            "%zu (%zu baselines)", n_stats, max, J);
    for (size_t j = 0; j < J; j++)
        for (int w = 0; w < 3; w++)
            out[3 * j + w] = (sl_probe_stat){ s->oracle_names[j][w],
                "least-squares oracle mu of a baseline fitted on the probe's own draws "
                "(mean, min or max over its weights; a diagnostic)", NAN };
    out[3 * J] = (sl_probe_stat){ SSD_PROBE_J, "(1/N) sum w^2 |Delta|^2 over the probe's "
                                  "draws with the mu in use", NAN };
    out[3 * J + 1] = (sl_probe_stat){ SSD_PROBE_JO, "the same with the oracle mu (fitted on "
                                      "these draws: optimistic)", NAN };
    out[3 * J + 2] = (sl_probe_stat){ SSD_PROBE_JS, "the same with Delta = eps_hat - eps "
                                      "(SDS)", NAN };
    *count = n_stats;
    if (!ctxs || n < 1)
        return SL_OK;
    if (!s->oracle_a) {
        s->oracle_a = malloc(M * J * J * sizeof *s->oracle_a);
        s->oracle_b = malloc(M * J * sizeof *s->oracle_b);
        s->oracle_e2 = malloc(M * sizeof *s->oracle_e2);
        s->oracle_mu = malloc(J * M * sizeof *s->oracle_mu);
        if (!s->oracle_a || !s->oracle_b || !s->oracle_e2 || !s->oracle_mu)
            return sl_error_set(err, SL_ERR_NOMEM, "ssd: out of memory (probe oracle)");
    }
    double *A = s->oracle_a, *bv = s->oracle_b, *e2 = s->oracle_e2, *mu = s->oracle_mu;
    memset(A, 0, M * J * J * sizeof *A);
    memset(bv, 0, M * J * sizeof *bv);
    memset(e2, 0, M * sizeof *e2);
    memcpy(mu, s->mu, J * M * sizeof *mu);
    double j_use = 0, j_sds = 0, total = 0;
    sl_status st = SL_OK;
    for (int k = 0; k < n; k++) {
        const sl_estimator_ctx *ctx = ctxs[k];
        ssd_cache *c = NULL;
        if ((st = ssd_check_ctx(s, ctx, err)) != SL_OK ||
            (st = ssd_ctx_brackets(s, ctx, &c, err)) != SL_OK)
            return st;
        const int B = ctx->batch;
        const size_t stride = (size_t)B * s->D;
        for (int b = 0; b < B; b++) {
            const double w2 = ctx->weight[b] * ctx->weight[b];
            const size_t off = (size_t)b * s->D;
            for (size_t i = 0; i < s->D; i++) {
                const size_t m = ssd_index(s, i, ctx->t[b]);
                const double e_hat = ctx->eps_hat[off + i];
                const double d = e_hat - ssd_h(s, c->c, B, b, i, m);
                const double d_sds = e_hat - (double)ctx->eps[off + i];
                j_use += w2 * d * d;
                j_sds += w2 * d_sds * d_sds;
                e2[m] += w2 * e_hat * e_hat;
                for (size_t j = 0; j < J; j++) {
                    const double cj = c->c[j * stride + off + i];
                    bv[m * J + j] += w2 * cj * e_hat;
                    for (size_t q = 0; q < J; q++)
                        A[(m * J + j) * J + q] += w2 * cj * (double)c->c[q * stride + off + i];
                }
            }
            total += (double)s->D;
        }
    }
    double j_oracle = 0;
    for (size_t m = 0; m < M; m++) {
        const double *a = A + m * J * J, *bm = bv + m * J;
        ssd_solve(s, a, bm, mu + m, M, SSD_ORACLE_RIDGE);   /* singular: mu in use kept */
        double jm = e2[m];
        for (size_t j = 0; j < J; j++) {
            const double mj = mu[j * M + m];
            jm -= 2.0 * mj * bm[j];
            for (size_t q = 0; q < J; q++)
                jm += mj * a[j * J + q] * mu[q * M + m];
        }
        j_oracle += jm;
    }
    for (size_t j = 0; j < J; j++) {
        const double *mj = mu + j * M;
        double sum = 0, lo = mj[0], hi = mj[0];
        for (size_t m = 0; m < M; m++) {
            sum += mj[m];
            lo = fmin(lo, mj[m]);
            hi = fmax(hi, mj[m]);
        }
        out[3 * j].value = sum / (double)M;
        out[3 * j + 1].value = lo;
        out[3 * j + 2].value = hi;
    }
    out[3 * J].value = j_use / total;
    out[3 * J + 1].value = j_oracle / total;
    out[3 * J + 2].value = j_sds / total;
    return SL_OK;
}

/* ------------------------------------------------------------------ checkpoints */

static sl_status ssd_save_state(void *state, sl_state_io *io, sl_error *err)
{
    ssd_state *s = state;
    const size_t JM = s->J * s->M;
    sl_status st = sl_state_put(io, "mu", SL_STATE_F64, s->mu, JM, err);
    if (st == SL_OK)
        st = sl_state_put(io, "adam_m", SL_STATE_F64, s->adam_m, JM, err);
    if (st == SL_OK)
        st = sl_state_put(io, "adam_v", SL_STATE_F64, s->adam_v, JM, err);
    if (st == SL_OK)
        st = sl_state_put(io, "adam_t", SL_STATE_I64, &s->adam_t, 1, err);
    if (st == SL_OK)
        st = sl_state_put(io, "lsq_a", SL_STATE_F64, s->lsq_a, JM * s->J, err);
    if (st == SL_OK)
        st = sl_state_put(io, "lsq_b", SL_STATE_F64, s->lsq_b, JM, err);
    if (st == SL_OK)
        st = sl_state_put(io, "lsq_n", SL_STATE_I64, &s->lsq_n, 1, err);
    if (st == SL_OK)
        st = sl_state_put(io, "lsq_failed", SL_STATE_I64, &s->lsq_failed, 1, err);
    return st;
}

static sl_status ssd_load_state(void *state, sl_state_io *io, sl_error *err)
{
    ssd_state *s = state;
    const size_t JM = s->J * s->M;
    sl_status st = sl_state_get(io, "mu", SL_STATE_F64, s->mu, JM, err);
    if (st == SL_OK)
        st = sl_state_get(io, "adam_m", SL_STATE_F64, s->adam_m, JM, err);
    if (st == SL_OK)
        st = sl_state_get(io, "adam_v", SL_STATE_F64, s->adam_v, JM, err);
    if (st == SL_OK)
        st = sl_state_get(io, "adam_t", SL_STATE_I64, &s->adam_t, 1, err);
    if (st == SL_OK)
        st = sl_state_get(io, "lsq_a", SL_STATE_F64, s->lsq_a, JM * s->J, err);
    if (st == SL_OK)
        st = sl_state_get(io, "lsq_b", SL_STATE_F64, s->lsq_b, JM, err);
    if (st == SL_OK)
        st = sl_state_get(io, "lsq_n", SL_STATE_I64, &s->lsq_n, 1, err);
    if (st == SL_OK)
        st = sl_state_get(io, "lsq_failed", SL_STATE_I64, &s->lsq_failed, 1, err);
    if (st != SL_OK)
        sl_error_prefix(err, "ssd");
    for (int k = 0; k < s->n_cache; k++)   /* brackets of another session are not ours */
        s->cache[k].valid = 0;
    return st;
}

static const sl_estimator_vtable ssd_vtable = {
    .struct_size = sizeof(sl_estimator_vtable),
    .create = ssd_create,
    .destroy = ssd_destroy,
    .required_outputs = NULL,   /* RGB; each baseline states its own needs to the host */
    .delta = ssd_delta,
    .update = ssd_update,
    .save_state = ssd_save_state,
    .load_state = ssd_load_state,
    .probe_stats = ssd_probe_stats,
};

static const sl_plugin ssd_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_ESTIMATOR,
    .name = "ssd",
    .version = "1.0.0",
    .summary = "Stein Score Distillation (SteinDreamer, sign fixed): Delta = eps_hat - "
               "sum_j mu_j (eps phi_j - sigma_t grad phi_j)",
    .params = SL_PARAM_SCHEMA(ssd_params),
    .vtable = &ssd_vtable,
};

SL_PLUGIN_ENTRY(&ssd_plugin)
