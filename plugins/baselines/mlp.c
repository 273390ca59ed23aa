/* plugins/baselines/mlp.c — baseline `mlp`: a learned Stein baseline phi_psi(t, x_t, c)
 * (method.md section 2; docs/estimators.md, "mlp", has the derivation written out).
 *
 * The network, per batch element (one hidden layer, SiLU: smooth, because training
 * differentiates grad_x phi once more):
 *   p = P x_t                     (Gx,)  x_t averaged over blocks to a grid x grid image,
 *                                        Gx = grid grid C; P is linear, P^T spreads back
 *   e = [t/T, sin(t f_i), cos(t f_i), cos az, sin az, cos el, sin el]      (E,)
 *   z = [p | e]                   (Z,) = (Gx + E,)
 *   a = W1 z + b1                 (Hd,)
 *   h = silu(a)
 *   phi = w2 . h + b2
 * and its input gradient (exact, through the pooling):
 *   u = w2 (.) silu'(a)           (Hd,)
 *   grad_x phi = P^T (W1^T u)[:Gx]                                      (H, W, C)
 * Initialisation: W1 U(+-1/sqrt(Z)), b1 = 0, w2 = 0, b2 = 1, so phi = 1 and grad phi = 0
 * at the start: the untrained baseline is `constant` (SSD with mu = 1 is SDS).
 *
 * Training (update(), Adam through steinlab/optim.h with its own lr): the network is fitted
 * as a control variate on its own, with weight 1 (its scale plays mu's part):
 *   J(psi) = (1/N) sum_samples sum_b w_b^2 | eps_hat - (eps phi - sigma grad_x phi) |^2,
 * N = samples B H W C, w = ctx->weight (the run's weighting). The estimator's mu_mlp is
 * then fitted on top, as for any baseline, so J and mu do not fight: at the optimum of J,
 * mu = 1 is least squares for the network alone. Per batch element, with
 * r = eps_hat - eps phi + sigma grad phi:
 *   g_phi = dJ/dphi         = -2 w^2 <eps, r> / N
 *   G     = dJ/d(grad phi)  =  2 w^2 sigma r / N           (H, W, C)
 *   q     = [P G | 0]                                        (Z,)
 * The grad-phi term reaches psi through u and a: <G, grad phi> = <q, W1^T u> = v . u with
 * v = W1 q (Hd,), so with delta_a = g_phi u + v (.) w2 (.) silu''(a):
 *   dW1 += delta_a z^T + u q^T      db1 += delta_a
 *   dw2 += g_phi h + v (.) silu'(a) db2 += g_phi
 * (an R-op-like second pass: one extra matrix-vector product v = W1 q; checked against
 * central differences of a double copy in tests/test_ssd.c).
 *
 * Unbiasedness: update() trains on the step's samples after they were used; eval() only
 * reads psi, so the psi of step k depends on steps < k only and Stein's identity holds for
 * the bracket of step k (asserted numerically in tests/test_ssd.c).
 *
 * Determinism and cost: everything runs serially in a fixed order, with double
 * accumulators. The matrix products are a few thousand multiply-adds per batch element, so
 * they are plain loops here: an OpenMP region per product (sl_linear_*) costs more than it
 * saves, and on a loaded machine far more (each barrier waits for a descheduled thread). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/steinlab.h"
#include "steinlab/nn.h"
#include "steinlab/nn_math.h"

enum { MLP_CAM_FEATURES = 4, MLP_NAME_MAX = 64 };

typedef struct mlp_state {
    const sl_host *host;
    int H, W, C;               /* the prior's space */
    size_t D;                  /* H W C */
    int grid, kh, kw;          /* pooled grid; block size kh x kw = (H / grid) x (W / grid) */
    int Gx, E, Z, Hd;          /* pooled inputs, conditioning features, Gx + E, hidden */
    int time_dim;
    int T;                     /* diffusion steps, for t / T */
    sl_nn_params params;       /* w1 (Hd, Z), b1 (Hd), w2 (1, Hd), b2 (1) */
    size_t i_w1, i_b1, i_w2, i_b2;
    sl_adam *adam;
    /* scratch, (bcap, .) */
    int bcap;
    float *z, *a, *hh, *u, *v, *q, *gz, *tf, *phi, *dy;   /* z, q, gz: (B, Z); a..v: (B, Hd) */
    float *grad;               /* (B, H, W, C) grad_x phi of update()'s forward */
    double *acc;               /* (Z,) accumulators of W1^T u */
    char series[MLP_NAME_MAX];
} mlp_state;

static const sl_param_def mlp_params[] = {
    { .name = "grid", .type = SL_PARAM_INT, .default_value = "4", .min = 1, .max = 64,
      .doc = "x_t is averaged over blocks to a grid x grid image before the MLP (the prior's "
             "height and width must be multiples of it)" },
    { .name = "hidden", .type = SL_PARAM_INT, .default_value = "64", .min = 1, .max = 4096,
      .doc = "width of the hidden layer (SiLU)" },
    { .name = "time_dim", .type = SL_PARAM_INT, .default_value = "16", .min = 2, .max = 256,
      .doc = "sinusoidal time-embedding size (even); t / T is an input too" },
    { .name = "lr", .type = SL_PARAM_FLOAT, .flags = SL_PARAM_SCHEDULABLE,
      .default_value = "0.001", .min = 0, .max = 10,
      .doc = "Adam's learning rate for the network (one step per training step)" },
};

static void mlp_destroy(void *state)
{
    mlp_state *s = state;
    if (!s)
        return;
    sl_adam_destroy(s->adam);
    sl_nn_params_free(&s->params);
    free(s->z), free(s->a), free(s->hh), free(s->u), free(s->v), free(s->q), free(s->gz);
    free(s->tf), free(s->phi), free(s->dy), free(s->grad), free(s->acc);
    free(s);
}

static sl_status mlp_declare(mlp_state *s, const char *name, int ndim, int64_t d0, int64_t d1,
                             sl_nn_init init, int fan_in, size_t *index, sl_error *err)
{
    const int64_t shape[2] = { d0, d1 };
    return sl_nn_params_declare(&s->params, name, ndim, shape, init, fan_in, index, err);
}

static sl_status mlp_create(const sl_host *host, const sl_params *params, void **state,
                            sl_error *err)
{
    mlp_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "mlp: out of memory");
    s->host = host;
    sl_nn_params_init(&s->params);
    sl_status st = SL_OK;
    sl_prior_info info;
    st = sl_host_prior_info(host, "mlp", NULL, &info, err);
    if (st != SL_OK)
        goto fail;
    s->H = info.height, s->W = info.width, s->C = info.channels;
    s->D = (size_t)s->H * s->W * s->C;
    s->T = host->diffusion->T;
    s->grid = (int)sl_params_int(params, "grid");
    s->Hd = (int)sl_params_int(params, "hidden");
    s->time_dim = (int)sl_params_int(params, "time_dim");
    if (s->time_dim % 2) {
        st = sl_error_set(err, SL_ERR_SPEC, "mlp: time_dim %d must be even", s->time_dim);
        goto fail;
    }
    if (s->H % s->grid || s->W % s->grid) {
        st = sl_error_set(err, SL_ERR_SPEC, "mlp: grid %d does not divide the prior's %dx%d "
                          "image (choose a divisor of both)", s->grid, s->H, s->W);
        goto fail;
    }
    s->kh = s->H / s->grid, s->kw = s->W / s->grid;
    s->Gx = s->grid * s->grid * s->C;
    s->E = 1 + s->time_dim + MLP_CAM_FEATURES;
    s->Z = s->Gx + s->E;
    if ((st = mlp_declare(s, "w1", 2, s->Hd, s->Z, SL_NN_INIT_UNIFORM, s->Z, &s->i_w1, err)) ||
        (st = mlp_declare(s, "b1", 1, s->Hd, 0, SL_NN_INIT_ZERO, 0, &s->i_b1, err)) ||
        (st = mlp_declare(s, "w2", 2, 1, s->Hd, SL_NN_INIT_ZERO, 0, &s->i_w2, err)) ||
        (st = mlp_declare(s, "b2", 1, 1, 0, SL_NN_INIT_ONE, 0, &s->i_b2, err)) ||
        (st = sl_nn_params_alloc(&s->params, err)))
        goto fail;
    sl_rng_key key = { host->seed, 0, host->rng_stream_base, 0 };
    sl_nn_params_randomize(&s->params, key);
    sl_param_group group = sl_nn_params_group(&s->params, "mlp");
    sl_adam_config cfg = { .lr = sl_params_schedule(params, "lr"), .beta1 = 0.9,
                           .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0 };
    if ((st = sl_adam_create(&group, &cfg, 1, &s->adam, err)) != SL_OK)
        goto fail;
    s->acc = malloc((size_t)s->Z * sizeof *s->acc);
    if (!s->acc) {
        st = sl_error_set(err, SL_ERR_NOMEM, "mlp: out of memory");
        goto fail;
    }
    /* "<label>_objective", sanitised: the label of a baseline is "<estimator>/<entry>". */
    char buf[256];
    snprintf(buf, sizeof buf, "%.50s_objective", host->label);
    size_t k = 0;
    for (; buf[k] && k + 1 < sizeof s->series; k++) {
        char ch = buf[k];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        s->series[k] = ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) ? ch : '_';
    }
    s->series[k] = '\0';
    if ((st = host->declare_series(host, s->series, "(1/N) sum w^2 |eps_hat - (eps phi - "
                                   "sigma grad phi)|^2 of the step's samples before the "
                                   "network's update (its training objective)", err)) != SL_OK)
        goto fail;
    host->log(host, SL_LOG_INFO, "mlp baseline: x_t pooled to %dx%dx%d, %d conditioning "
              "features, hidden %d, %zu parameters", s->grid, s->grid, s->C, s->E, s->Hd,
              s->params.total);
    *state = s;
    return SL_OK;
fail:
    mlp_destroy(s);
    return st;
}

static sl_status mlp_reserve(mlp_state *s, int B, sl_error *err)
{
    if (B <= s->bcap)
        return SL_OK;
    float **bufs[] = { &s->z, &s->q, &s->gz, &s->a, &s->hh, &s->u, &s->v, &s->tf, &s->phi,
                       &s->dy, &s->grad };
    const size_t sizes[] = { (size_t)s->Z, (size_t)s->Z, (size_t)s->Z, (size_t)s->Hd,
                             (size_t)s->Hd, (size_t)s->Hd, (size_t)s->Hd, 1, 1, 1, s->D };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        float *p = realloc(*bufs[k], (size_t)B * sizes[k] * sizeof *p);
        if (!p)
            return sl_error_set(err, SL_ERR_NOMEM, "mlp: out of memory (batch %d)", B);
        *bufs[k] = p;
    }
    s->bcap = B;
    return SL_OK;
}

/* p = P x: the mean of each kh x kw block, per channel. x: (H, W, C); p: (grid, grid, C). */
static void mlp_pool(const mlp_state *s, const float *x, float *p)
{
    const double inv = 1.0 / ((double)s->kh * s->kw);
    for (int gy = 0; gy < s->grid; gy++)
        for (int gx = 0; gx < s->grid; gx++)
            for (int c = 0; c < s->C; c++) {
                double sum = 0;
                for (int y = gy * s->kh; y < (gy + 1) * s->kh; y++)
                    for (int x0 = gx * s->kw; x0 < (gx + 1) * s->kw; x0++)
                        sum += x[((size_t)y * s->W + x0) * s->C + c];
                p[((size_t)gy * s->grid + gx) * s->C + c] = (float)(sum * inv);
            }
}

/* g = P^T p: each block's pixels get p / (kh kw). p: (grid, grid, C); g: (H, W, C). */
static void mlp_unpool(const mlp_state *s, const float *p, float *g)
{
    const float inv = (float)(1.0 / ((double)s->kh * s->kw));
    for (int y = 0; y < s->H; y++)
        for (int x0 = 0; x0 < s->W; x0++)
            for (int c = 0; c < s->C; c++)
                g[((size_t)y * s->W + x0) * s->C + c] =
                    p[((size_t)(y / s->kh) * s->grid + x0 / s->kw) * s->C + c] * inv;
}

/* y = W x (+ b): W (rows, cols) row-major, x (cols,), y (rows,); b may be NULL. */
static void mlp_matvec(const float *w, const float *x, const float *b, int rows, int cols,
                       float *y)
{
    for (int j = 0; j < rows; j++) {
        double acc = b ? b[j] : 0.0;
        const float *wj = w + (size_t)j * cols;
        for (int k = 0; k < cols; k++)
            acc += (double)wj[k] * x[k];
        y[j] = (float)acc;
    }
}

/* y = (W^T u)[:n]: W (rows, cols), u (rows,), y (n,) with n <= cols. */
static void mlp_matvec_t(const float *w, const float *u, int rows, int cols, int n, float *y,
                         double *acc)
{
    for (int k = 0; k < n; k++)
        acc[k] = 0.0;
    for (int j = 0; j < rows; j++) {
        const float *wj = w + (size_t)j * cols;
        for (int k = 0; k < n; k++)
            acc[k] += (double)wj[k] * u[j];
    }
    for (int k = 0; k < n; k++)
        y[k] = (float)acc[k];
}

/* dw += a x^T: dw (rows, cols), a (rows,), x (cols,). */
static void mlp_outer_add(float *dw, const float *a, const float *x, int rows, int cols)
{
    for (int j = 0; j < rows; j++) {
        float *dj = dw + (size_t)j * cols;
        for (int k = 0; k < cols; k++)
            dj[k] += a[j] * x[k];
    }
}

/* Forward for a batch: z, a, h, phi, u = w2 silu'(a), and grad_x phi into grad. */
static void mlp_forward(mlp_state *s, const sl_estimator_ctx *ctx, float *phi, float *grad)
{
    const int B = ctx->batch, Z = s->Z, Hd = s->Hd, half = s->time_dim / 2;
    const float *w1 = sl_nn_param(&s->params, s->i_w1), *b1 = sl_nn_param(&s->params, s->i_b1);
    const float *w2 = sl_nn_param(&s->params, s->i_w2), *b2 = sl_nn_param(&s->params, s->i_b2);
    for (int b = 0; b < B; b++) {
        float *z = s->z + (size_t)b * Z;
        mlp_pool(s, ctx->x_t + (size_t)b * s->D, z);
        float *e = z + s->Gx;
        const float t = (float)ctx->t[b];
        e[0] = t / (float)s->T;
        s->tf[b] = t;
        sl_time_embedding(e + 1, &s->tf[b], 1, s->time_dim, 10000.0f);
        const double az = ctx->cams[b].azimuth_deg * (3.14159265358979323846 / 180.0);
        const double el = ctx->cams[b].elevation_deg * (3.14159265358979323846 / 180.0);
        e[1 + 2 * half + 0] = (float)cos(az);
        e[1 + 2 * half + 1] = (float)sin(az);
        e[1 + 2 * half + 2] = (float)cos(el);
        e[1 + 2 * half + 3] = (float)sin(el);
    }
    for (int b = 0; b < B; b++) {
        float *a = s->a + (size_t)b * Hd, *h = s->hh + (size_t)b * Hd, *u = s->u + (size_t)b * Hd;
        float *gz = s->gz + (size_t)b * Z;
        mlp_matvec(w1, s->z + (size_t)b * Z, b1, Hd, Z, a);               /* a = W1 z + b1 */
        for (int j = 0; j < Hd; j++) {
            h[j] = sl_silu(a[j]);
            u[j] = w2[j] * sl_silu_d1(a[j]);
        }
        mlp_matvec(w2, h, b2, 1, Hd, &phi[b]);                            /* phi = w2.h + b2 */
        mlp_matvec_t(w1, u, Hd, Z, s->Gx, gz, s->acc);                    /* (W1^T u)[:Gx] */
        mlp_unpool(s, gz, grad + (size_t)b * s->D);
    }
}

static sl_status mlp_check_ctx(const mlp_state *s, const sl_estimator_ctx *ctx, sl_error *err)
{
    if (ctx->height != s->H || ctx->width != s->W || ctx->channels != s->C || ctx->batch < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "mlp: context of batch %d and size "
                            "%dx%dx%d, expected the prior's %dx%dx%d", ctx->batch, ctx->height,
                            ctx->width, ctx->channels, s->H, s->W, s->C);
    if (!ctx->cams || !ctx->t || !ctx->x_t)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "mlp: the context lacks t, x_t or "
                            "the cameras");
    return SL_OK;
}

static sl_status mlp_eval(void *state, const sl_estimator_ctx *ctx, float *phi,
                          float *grad_phi, sl_error *err)
{
    mlp_state *s = state;
    sl_status st = mlp_check_ctx(s, ctx, err);
    if (st == SL_OK)
        st = mlp_reserve(s, ctx->batch, err);
    if (st != SL_OK)
        return st;
    mlp_forward(s, ctx, phi, grad_phi);
    return SL_OK;
}

/* Adds dJ/dpsi of the samples into the store's grad (not zeroed here) and returns
 * sum_samples sum_b w^2 |r|^2 (unnormalised); inv_n = 1 / N. See the header comment. */
static sl_status mlp_accumulate(mlp_state *s, const sl_estimator_ctx *const *ctxs, int n,
                                double inv_n, double *sum_out, sl_error *err)
{
    const int Z = s->Z, Hd = s->Hd;
    float *dw1 = sl_nn_grad(&s->params, s->i_w1), *db1 = sl_nn_grad(&s->params, s->i_b1);
    float *dw2 = sl_nn_grad(&s->params, s->i_w2), *db2 = sl_nn_grad(&s->params, s->i_b2);
    const float *w2 = sl_nn_param(&s->params, s->i_w2);
    const float *w1 = sl_nn_param(&s->params, s->i_w1);
    double total = 0;
    for (int k = 0; k < n; k++) {
        const sl_estimator_ctx *ctx = ctxs[k];
        sl_status st = mlp_check_ctx(s, ctx, err);
        if (st == SL_OK && !ctx->weight)
            st = sl_error_set(err, SL_ERR_INVALID_ARG, "mlp: the context carries no "
                              "weighting w(t) (sl_estimator_ctx.weight)");
        if (st == SL_OK)
            st = mlp_reserve(s, ctx->batch, err);
        if (st != SL_OK)
            return st;
        const int B = ctx->batch;
        mlp_forward(s, ctx, s->phi, s->grad);
        for (int b = 0; b < B; b++) {
            const size_t off = (size_t)b * s->D;
            const double w2b = ctx->weight[b] * ctx->weight[b], sg = ctx->sigma[b];
            const double phi = s->phi[b];
            /* r = eps_hat - eps phi + sigma grad phi; reuse grad as G = 2 w^2 sigma r / N. */
            double er = 0, rr = 0;
            for (size_t i = 0; i < s->D; i++) {
                const double r = (double)ctx->eps_hat[off + i] -
                                 (double)ctx->eps[off + i] * phi + sg * s->grad[off + i];
                er += (double)ctx->eps[off + i] * r;
                rr += r * r;
                s->grad[off + i] = (float)(2.0 * w2b * sg * r * inv_n);
            }
            total += w2b * rr;
            s->dy[b] = (float)(-2.0 * w2b * er * inv_n);                 /* g_phi */
            float *q = s->q + (size_t)b * Z;
            mlp_pool(s, s->grad + off, q);                                /* q = [P G | 0] */
            memset(q + s->Gx, 0, (size_t)s->E * sizeof *q);
        }
        for (int b = 0; b < B; b++) {
            const float gphi = s->dy[b];
            float *v = s->v + (size_t)b * Hd, *da = s->a + (size_t)b * Hd;
            const float *q = s->q + (size_t)b * Z, *u = s->u + (size_t)b * Hd;
            mlp_matvec(w1, q, NULL, Hd, Z, v);                            /* v = W1 q */
            db2[0] += gphi;
            for (int j = 0; j < Hd; j++) {
                const float a = da[j];
                dw2[j] += gphi * s->hh[(size_t)b * Hd + j] + v[j] * sl_silu_d1(a);
                da[j] = gphi * u[j] + v[j] * w2[j] * sl_silu_d2(a);   /* delta_a, in place */
                db1[j] += da[j];
            }
            mlp_outer_add(dw1, da, s->z + (size_t)b * Z, Hd, Z);          /* delta_a z^T */
            mlp_outer_add(dw1, u, q, Hd, Z);                              /* u q^T */
        }
    }
    *sum_out = total;
    return SL_OK;
}

static sl_status mlp_update(void *state, const sl_estimator_ctx *const *ctxs, int n,
                            sl_error *err)
{
    mlp_state *s = state;
    if (n < 1)
        return SL_OK;
    double count = 0;
    for (int k = 0; k < n; k++)
        count += (double)ctxs[k]->batch * (double)s->D;
    sl_nn_params_zero_grad(&s->params);
    double total = 0;
    sl_status st = mlp_accumulate(s, ctxs, n, 1.0 / count, &total, err);
    if (st != SL_OK)
        return st;
    s->host->record(s->host, s->series, total / count);
    sl_adam_step(s->adam, ctxs[0]->step);
    return SL_OK;
}

/* ------------------------------------------------------------------ checkpoints */

static sl_status mlp_save_state(void *state, sl_state_io *io, sl_error *err)
{
    mlp_state *s = state;
    const int64_t count = sl_adam_count(s->adam);
    sl_status st = sl_state_put(io, "params", SL_STATE_F32, s->params.data, s->params.total,
                                err);
    if (st == SL_OK)
        st = sl_state_put(io, "adam_m", SL_STATE_F32, sl_adam_moment(s->adam, 0, 1),
                          s->params.total, err);
    if (st == SL_OK)
        st = sl_state_put(io, "adam_v", SL_STATE_F32, sl_adam_moment(s->adam, 0, 2),
                          s->params.total, err);
    if (st == SL_OK)
        st = sl_state_put(io, "adam_count", SL_STATE_I64, &count, 1, err);
    return st;
}

static sl_status mlp_load_state(void *state, sl_state_io *io, sl_error *err)
{
    mlp_state *s = state;
    int64_t count = 0;
    sl_status st = sl_state_get(io, "params", SL_STATE_F32, s->params.data, s->params.total,
                                err);
    if (st == SL_OK)
        st = sl_state_get(io, "adam_m", SL_STATE_F32, sl_adam_moment(s->adam, 0, 1),
                          s->params.total, err);
    if (st == SL_OK)
        st = sl_state_get(io, "adam_v", SL_STATE_F32, sl_adam_moment(s->adam, 0, 2),
                          s->params.total, err);
    if (st == SL_OK)
        st = sl_state_get(io, "adam_count", SL_STATE_I64, &count, 1, err);
    if (st == SL_OK)
        sl_adam_set_count(s->adam, count);
    else
        sl_error_prefix(err, "mlp");
    return st;
}

static const sl_baseline_vtable mlp_vtable = {
    .struct_size = sizeof(sl_baseline_vtable),
    .create = mlp_create,
    .destroy = mlp_destroy,
    .required_outputs = NULL,   /* reads x_t, t and the camera only */
    .eval = mlp_eval,
    .update = mlp_update,
    .save_state = mlp_save_state,
    .load_state = mlp_load_state,
};

static const sl_plugin mlp_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_BASELINE,
    .name = "mlp",
    .version = "1.0.0",
    .summary = "Learned Stein baseline phi_psi(t, x_t, c): an MLP on pooled x_t, a time and a "
               "camera embedding, trained online to minimise the SSD second moment",
    .params = SL_PARAM_SCHEMA(mlp_params),
    .vtable = &mlp_vtable,
};

SL_PLUGIN_ENTRY(&mlp_plugin)
