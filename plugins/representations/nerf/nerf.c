/* plugins/representations/nerf/nerf.c — representation `nerf`: a neural radiance field
 * with a multi-resolution hash encoding (instant-NGP), rendered by volume compositing.
 *
 * Field, at a world point x inside the scene box [bmin, bmax]:
 *     u      = (x - bmin) / (bmax - bmin)                            in [0, 1]^3
 *     enc    = hash_encode(table, u)                                  (L F,)
 *     [r, h] = density_mlp(enc)                                       r: 1, h: G geo features
 *     sigma  = act(r + blob(x))                                       softplus or exp
 *     rgb    = sigmoid(color_mlp([h, d]))                             d: view dir (optional)
 * Rays: o + t d, t in [max(near_t, t_enter), t_exit] of the box (cameras inside the box —
 * rooms, inside-out — start at the near plane); N strata of width dt, one sample per
 * stratum at t_k = t0 + (k + u_k) dt (u_k = 0.5 in EVAL renders, uniform jitter from the
 * plugin's Philox stream keyed by (step, ray) in TRAIN renders, so renders do not depend on
 * the thread count). Samples in empty cells of the occupancy grid are skipped; a ray stops
 * when its transmittance falls below `early_stop`. Outputs (conventions.md):
 *     rgb = sum w_k c_k + T_n bg,  depth = sum w_k z_k (unnormalised z-depth),
 *     normal = sum w_k n_k (world, n = -grad sigma / |grad sigma|, the gradient by central
 *              differences or analytic: nerf_density_grad),
 *     opacity = sum w_k.
 *
 * Forward keeps, per ray, a compact list of the samples it used (a record per sample with
 * every activation backward needs), stored per fixed block of NERF_RAY_BLOCK rays: memory is
 * proportional to the samples used. Backward folds the upstream gradients into one scalar
 * per sample (nerf_composite_vjp), then back-propagates through the colour MLP, the density
 * MLP and the hash table; FD normals re-evaluate the density at their six offset points
 * (recomputed in backward on purpose: keeping six more activation records per sample would
 * multiply the memory by seven for an output that is rarely differentiated); analytic
 * normals recompute their reverse sweep and add the second-order terms
 * (nerf_density_grad_backward).
 *
 * Determinism of the gradient (no float atomics): the rays are split into blocks of a
 * fixed size, and block b belongs to shard b mod NERF_GRAD_SHARDS — both independent of
 * the thread count. Each shard accumulates its rays' contributions, in ray order, into a
 * private gradient buffer; the buffers are then added to the groups' grad element by
 * element in shard order. Any number of threads therefore gives the same bits (threads only
 * decide which shard runs where); up to NERF_GRAD_SHARDS threads work in backward. The
 * alternatives were worse here: a per-thread buffer makes the sum depend on the thread
 * count, and a list of (index, value) contributions for a fixed-order scatter costs
 * L x 8 x F entries per sample (hundreds of MB per view).
 *
 * Regularisers (DreamFusion / threestudio), added to the loss of the TRAIN render whose
 * backward follows, with P = B H W the batch's pixels:
 *     L_sparsity = lambda_sparsity / P  sum_p opacity_p
 *     L_orient   = lambda_orient   / P  sum_p sum_k stopgrad(w_k) max(0, <n_k, d_p>)^2
 * (the orientation term penalises normals facing away from the camera; as in threestudio
 * the weights are detached, so its gradient flows through the normals only). Their values
 * (including the lambdas) are logged as nerf_sparsity and nerf_orient every TRAIN render.
 * Other series: nerf_samples (mean samples per ray of the TRAIN render) and
 * nerf_occupancy (fraction of occupied cells, after each grid update). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/steinlab.h"
#include "steinlab/thread_scratch.h"
#include "nerf_math.h"
#include "nerf_mlp.h"

enum {
    NERF_RAY_BLOCK = 64,      /* rays per block of forward storage (fixed: determinism) */
    NERF_GRAD_SHARDS = 8,     /* private gradient buffers of backward (fixed: determinism) */
    NERF_MAX_SAMPLES = 1024   /* samples_per_ray upper bound (stack arrays in backward) */
};

enum { NERF_BG_SOLID = 0, NERF_BG_RANDOM = 1, NERF_BG_LEARNED = 2 };
enum { NERF_NORMALS_FD = 0, NERF_NORMALS_NONE = 1, NERF_NORMALS_ANALYTIC = 2 };

/* Streams of the plugin (offsets from host->rng_stream_base). */
enum { NERF_STREAM_INIT = 0, NERF_STREAM_JITTER = 1, NERF_STREAM_BG = 2, NERF_STREAM_OCC = 3 };


/* Forward storage of one block of rays: records of the samples used, in ray order. */
typedef struct nerf_block {
    float *recs;     /* (cap, rec_size) */
    size_t cap;      /* records allocated */
    size_t count;    /* records used */
} nerf_block;

/* Gradient destinations (a shard's buffers or the groups' own grads). */
typedef struct nerf_grads {
    float *table;    /* (entries, F) */
    float *dens;     /* (dens.n_params,) */
    float *col;      /* (col.n_params,) */
    float *bg;       /* (bgm.n_params,) or NULL */
} nerf_grads;

/* Test hook (tests only; not reachable from a spec): replaces the network by an analytic
 * field. Forward only: backward refuses while it is set. */
typedef void (*nerf_field_fn)(const float x[3], float *sigma, float rgb[3], void *ctx);

typedef struct nerf_state {
    const sl_host *host;
    /* configuration */
    nerf_grid grid;
    nerf_mlp dens, col, bgm;
    int geo;                         /* G: geo features from the density to the colour MLP */
    int view_dep;                    /* colour MLP also sees the view direction */
    int act;                         /* NERF_ACT_* */
    int blob;
    float blob_scale, blob_std;
    float bmin[3], bmax[3], center[3];
    int n_samples;
    float early_stop;
    int occ_on, occ_res, occ_every;
    float occ_thresh, occ_decay;
    int bg_mode;
    float bg_color[3];
    int normals;                     /* NERF_NORMALS_* */
    float fd_eps;
    float lambda_sparsity, lambda_orient;
    /* parameter groups */
    size_t n_table;                  /* entries * F */
    float *table, *dtable;           /* (entries, F) "encoding" */
    float *dens_p, *ddens_p;         /* (dens.n_params,) "density_mlp" */
    float *col_p, *dcol_p;           /* (col.n_params,) "color_mlp" */
    float *bg_p, *dbg_p;             /* (bgm.n_params,) "background" (learned only) */
    /* transposed weights (same offsets as the parameters), refreshed before evaluating */
    float *dens_t, *col_t, *bg_t;
    /* occupancy grid */
    size_t occ_cells;                /* occ_res^3 */
    float *occ_val;                  /* (R, R, R) z-major: decayed max density seen */
    uint8_t *occ_bits;               /* (R, R, R) 1: samples there are evaluated */
    /* one sample's record: offsets (floats) of its parts */
    int r_t, r_x, r_enc, r_dh, r_dout, r_sigma, r_ch, r_rgb, r_n, r_g;
    int rec_size;
    /* saved by the last TRAIN render for backward */
    int saved_batch, saved_h, saved_w;   /* saved_batch 0: nothing saved */
    int saved_normals;               /* normals were computed (their gradient can flow) */
    size_t rays_cap, blocks_cap;
    nerf_block *blocks;              /* (blocks_cap,) */
    uint32_t *ray_start;             /* (rays,) first record in its block */
    uint16_t *ray_n;                 /* (rays,) records used */
    float *ray_dt;                   /* (rays,) stratum width */
    float *ray_T;                    /* (rays,) final transmittance */
    float *ray_dir;                  /* (rays, 3) unit direction */
    float *ray_cosz;                 /* (rays,) <dir, camera forward>: z = t cosz */
    float *ray_bg;                   /* (rays, 3) background colour used */
    float *ray_bgh;                  /* (rays, bgm.hidden_total) learned background's acts */
    float *ray_orient;               /* (rays,) sum_k w_k max(0, <n_k, d>)^2 */
    float *shard_grad;               /* (NERF_GRAD_SHARDS, n_grad) */
    size_t n_grad;                   /* n_table + dens + col + bg parameters */
    /* tests */
    nerf_field_fn test_field;
    void *test_ctx;
} nerf_state;

static const sl_param_def nerf_params[] = {
    { .name = "radius", .type = SL_PARAM_FLOAT, .default_value = "1.0", .min = 1e-3, .max = 1e4,
      .doc = "half size of the cubic scene box around center (density is 0 outside)" },
    { .name = "extent", .type = SL_PARAM_FLOAT_LIST, .default_value = NULL, .min = 1e-3,
      .max = 1e4, .min_len = 3, .max_len = 3,
      .doc = "half extents [hx, hy, hz] of the scene box, overriding radius (rooms: e.g. "
             "[2.1, 2.1, 1.1] around [0, 0, 0.2])" },
    { .name = "center", .type = SL_PARAM_FLOAT_LIST, .default_value = "[0, 0, 0]",
      .min = -1e4, .max = 1e4, .min_len = 3, .max_len = 3,
      .doc = "centre of the scene box (and of the density blob)" },
    { .name = "levels", .type = SL_PARAM_INT, .default_value = "8", .min = 1,
      .max = NERF_MAX_LEVELS, .doc = "hash encoding: number of levels L" },
    { .name = "features_per_level", .type = SL_PARAM_INT, .default_value = "2", .min = 1,
      .max = 8, .doc = "hash encoding: features per level F" },
    { .name = "log2_table_size", .type = SL_PARAM_INT, .default_value = "15", .min = 4,
      .max = 24, .doc = "hash encoding: log2 of the entries of a hashed level T" },
    { .name = "base_resolution", .type = SL_PARAM_INT, .default_value = "16", .min = 1,
      .max = 4096, .doc = "hash encoding: cells per axis of the coarsest level N_min" },
    { .name = "growth_factor", .type = SL_PARAM_FLOAT, .default_value = "1.447", .min = 1,
      .max = 4, .doc = "hash encoding: resolution ratio b of consecutive levels "
                       "(level l has floor(N_min b^l) cells per axis)" },
    { .name = "hash_init", .type = SL_PARAM_FLOAT, .default_value = "1e-4", .min = 0,
      .max = 1, .doc = "hash table entries start uniform in [-hash_init, hash_init]" },
    { .name = "density_width", .type = SL_PARAM_INT, .default_value = "32", .min = 1,
      .max = NERF_MAX_WIDTH, .doc = "density MLP: hidden width" },
    { .name = "density_layers", .type = SL_PARAM_INT, .default_value = "1", .min = 0,
      .max = NERF_MAX_LAYERS - 1, .doc = "density MLP: hidden layers (ReLU)" },
    { .name = "geo_features", .type = SL_PARAM_INT, .default_value = "15", .min = 1, .max = 64,
      .doc = "features passed from the density MLP to the colour MLP" },
    { .name = "color_width", .type = SL_PARAM_INT, .default_value = "32", .min = 1,
      .max = NERF_MAX_WIDTH, .doc = "colour MLP: hidden width" },
    { .name = "color_layers", .type = SL_PARAM_INT, .default_value = "1", .min = 0,
      .max = NERF_MAX_LAYERS - 1, .doc = "colour MLP: hidden layers (ReLU)" },
    { .name = "view_dependent", .type = SL_PARAM_BOOL, .default_value = "false",
      .doc = "the colour MLP also takes the unit view direction" },
    { .name = "density_activation", .type = SL_PARAM_CHOICE, .default_value = "softplus",
      .choices = "softplus|exp", .doc = "density = act(raw + bias); exp is truncated at 15" },
    { .name = "density_bias", .type = SL_PARAM_CHOICE, .default_value = "blob",
      .choices = "blob|none",
      .doc = "blob: add density_blob_scale (1 - |x - center| / density_blob_std) before the "
             "activation (Magic3D); none: no bias (rooms)" },
    { .name = "density_blob_scale", .type = SL_PARAM_FLOAT, .default_value = "10", .min = 0,
      .max = 1e3, .doc = "height of the density blob" },
    { .name = "density_blob_std", .type = SL_PARAM_FLOAT, .default_value = "0.5", .min = 1e-3,
      .max = 1e4, .doc = "radius scale of the density blob" },
    { .name = "samples_per_ray", .type = SL_PARAM_INT, .default_value = "64", .min = 1,
      .max = NERF_MAX_SAMPLES, .doc = "strata per ray across the scene box" },
    { .name = "early_stop", .type = SL_PARAM_FLOAT, .default_value = "1e-4", .min = 0, .max = 1,
      .doc = "a ray stops when its transmittance falls below this (0: never)" },
    { .name = "occupancy", .type = SL_PARAM_BOOL, .default_value = "true",
      .doc = "skip samples in empty cells of an occupancy grid" },
    { .name = "occupancy_resolution", .type = SL_PARAM_INT, .default_value = "32", .min = 1,
      .max = 256, .doc = "occupancy grid cells per axis" },
    { .name = "occupancy_update_every", .type = SL_PARAM_INT, .default_value = "16", .min = 1,
      .max = 1000000, .doc = "update the grid after every N-th optimizer step" },
    { .name = "occupancy_threshold", .type = SL_PARAM_FLOAT, .default_value = "0.01", .min = 0,
      .max = 1e6, .doc = "a cell is occupied when its decayed max density exceeds this "
                         "(then dilated by one cell)" },
    { .name = "occupancy_decay", .type = SL_PARAM_FLOAT, .default_value = "0.95", .min = 0,
      .max = 1, .doc = "per update: value = max(decay * value, density at a random point)" },
    { .name = "background", .type = SL_PARAM_CHOICE, .default_value = "solid",
      .choices = "solid|random|learned",
      .doc = "solid: background_color; random: a uniform random colour per render and step "
             "in training (background_color in evaluation); learned: an MLP of the view "
             "direction" },
    { .name = "background_color", .type = SL_PARAM_FLOAT_LIST, .default_value = "[1, 1, 1]",
      .min = 0, .max = 1, .min_len = 3, .max_len = 3, .doc = "solid background colour" },
    { .name = "background_width", .type = SL_PARAM_INT, .default_value = "16", .min = 1,
      .max = NERF_MAX_WIDTH, .doc = "learned background: hidden width (one hidden layer)" },
    { .name = "normals", .type = SL_PARAM_CHOICE, .default_value = "finite_difference",
      .choices = "finite_difference|analytic|none",
      .doc = "normals -grad sigma / |grad sigma|: finite_difference (central differences, "
             "6 density evaluations per sample), analytic (the exact gradient through the "
             "activation, the density MLP and the hash encoding), or none (no normal output)" },
    { .name = "normal_fd_eps", .type = SL_PARAM_FLOAT, .default_value = "0.01", .min = 1e-6,
      .max = 1, .doc = "finite-difference step of the normals, in world units" },
    { .name = "lambda_sparsity", .type = SL_PARAM_FLOAT, .default_value = "0", .min = 0,
      .max = 1e6, .doc = "weight of the opacity sparsity regulariser mean_p opacity_p" },
    { .name = "lambda_orient", .type = SL_PARAM_FLOAT, .default_value = "0", .min = 0,
      .max = 1e6, .doc = "weight of the orientation regulariser mean_p sum_k w_k "
                         "max(0, <n_k, d>)^2 (weights detached)" },
};

/* ------------------------------------------------------------------ MLPs */

/* Xavier-uniform weights (tiny-cuda-nn's default), zero biases, from the plugin's init
 * stream (sample = which MLP). */
static void nerf_mlp_init_params(const nerf_mlp *m, float *p, const sl_host *host,
                                 uint32_t sample)
{
    sl_rng_key key = { .seed = host->seed, .step = 0,
                       .stream = host->rng_stream_base + NERF_STREAM_INIT, .sample = sample };
    for (int k = 0; k < m->n_layers; k++) {
        size_t n = (size_t)m->dims[k] * m->dims[k + 1];
        float a = sqrtf(6.0f / (float)(m->dims[k] + m->dims[k + 1]));
        sl_rng_uniform(key, m->w_off[k], n, p + m->w_off[k]);
        for (size_t i = 0; i < n; i++)
            p[m->w_off[k] + i] = a * (2 * p[m->w_off[k] + i] - 1);
    }
}


/* ------------------------------------------------------------------ the field */

static void nerf_to_unit(const nerf_state *s, const float x[3], float u[3])
{
    for (int k = 0; k < 3; k++) {
        float v = (x[k] - s->bmin[k]) / (s->bmax[k] - s->bmin[k]);
        u[k] = v < 0 ? 0 : (v > 1 ? 1 : v);
    }
}

/* Input of the colour MLP: the geo features, then the view direction if used. */
static int nerf_color_input(const nerf_state *s, const float *rec, const float dir[3],
                            float *cin)   /* (col.dims[0],) */
{
    memcpy(cin, rec + s->r_dout + 1, (size_t)s->geo * sizeof(float));
    if (s->view_dep)
        memcpy(cin + s->geo, dir, 3 * sizeof(float));
    return s->col.dims[0];
}

/* Evaluates the field at x into a record: position, encoding, activations, density and
 * (when dir is not NULL) colour. Returns the density. */
static float nerf_eval(const nerf_state *s, const float x[3], const float *dir, float *rec)
{
    memcpy(rec + s->r_x, x, 3 * sizeof(float));
    if (s->test_field) {
        float rgb[3];
        s->test_field(x, rec + s->r_sigma, rgb, s->test_ctx);
        if (dir)
            memcpy(rec + s->r_rgb, rgb, sizeof rgb);
        return rec[s->r_sigma];
    }
    float u[3];
    nerf_to_unit(s, x, u);
    nerf_hash_encode(&s->grid, s->table, u, rec + s->r_enc);
    nerf_mlp_forward(&s->dens, s->dens_p, s->dens_t, rec + s->r_enc, rec + s->r_dh,
                     rec + s->r_dout);
    /* The bias is folded into the stored pre-activation: d raw / d mlp_out = 1. */
    if (s->blob)
        rec[s->r_dout] += nerf_blob_bias(x, s->center, s->blob_scale, s->blob_std);
    float sigma = nerf_density_act(s->act, rec[s->r_dout]);
    rec[s->r_sigma] = sigma;
    if (dir) {
        float cin[NERF_MAX_WIDTH], logit[3];
        nerf_color_input(s, rec, dir, cin);
        nerf_mlp_forward(&s->col, s->col_p, s->col_t, cin, rec + s->r_ch, logit);
        for (int c = 0; c < 3; c++)
            rec[s->r_rgb + c] = nerf_sigmoid(logit[c]);
    }
    return sigma;
}

/* Central-difference density gradient at x (scratch: one record), then the normal. */
static void nerf_fd_normal(const nerf_state *s, const float x[3], float *scratch,
                           float g[3], float n[3])
{
    const float h = s->fd_eps;
    for (int k = 0; k < 3; k++) {
        float xp[3] = { x[0], x[1], x[2] }, xm[3] = { x[0], x[1], x[2] };
        xp[k] += h;
        xm[k] -= h;
        float sp = nerf_eval(s, xp, NULL, scratch);
        float sm = nerf_eval(s, xm, NULL, scratch);
        g[k] = (sp - sm) / (2 * h);
    }
    nerf_normal_from_grad(g, n);
}

/* The exact density gradient at an evaluation recorded in rec (analytic normals), and what
 * its backward reuses. With raw = out_0(enc(u(x))) + blob(x) and sigma = act(raw):
 *     grad sigma = act'(raw) (d out_0/du diag(du/dx) + grad blob),
 *     d out_0/du = hash_encode_vjp_u(gamma_0),  gamma_0 = d out_0 / d enc,
 * gamma by one reverse sweep of the density MLP for output 0 alone: gamma_{K-1} = row 0 of
 * the last layer's W, t_{k+1} = relu'(a_k) gamma_{k+1}, gamma_k = W_k^T t_{k+1}. */
typedef struct nerf_dgrad {
    float u[3];                      /* unit-box position */
    float du_dx[3];                  /* 1 / box side; 0 where u was clamped */
    float dout_du[3];                /* d out_0 / du */
    float draw_dx[3];                /* d raw / dx */
    float act1;                      /* act'(raw) */
    float gamma0[NERF_MAX_LEVELS * 8];                  /* (L F,) d out_0 / d enc */
    float t[(NERF_MAX_LAYERS - 1) * NERF_MAX_WIDTH];    /* (hidden_total,) t_{k+1} at h_off[k] */
} nerf_dgrad;

static void nerf_density_grad(const nerf_state *s, const float *rec, nerf_dgrad *dg,
                              float grad[3])   /* (3,) = d sigma / dx */
{
    const nerf_mlp *m = &s->dens;
    const float *x = rec + s->r_x;
    for (int k = 0; k < 3; k++) {
        float side = s->bmax[k] - s->bmin[k];
        float v = (x[k] - s->bmin[k]) / side;
        dg->u[k] = v < 0 ? 0 : (v > 1 ? 1 : v);
        dg->du_dx[k] = v < 0 || v > 1 ? 0.0f : 1.0f / side;
    }
    float buf[2][NERF_MAX_WIDTH];
    const int last = m->n_layers - 1;
    const float *gam = s->dens_p + m->w_off[last];   /* row 0 of (dims[last+1], dims[last]) */
    for (int k = last - 1; k >= 0; k--) {
        const float *acts = rec + s->r_dh + m->h_off[k];
        float *t = dg->t + m->h_off[k];
        for (int j = 0; j < m->dims[k + 1]; j++)
            t[j] = acts[j] > 0 ? gam[j] : 0;   /* ReLU output > 0 <=> pre-activation > 0 */
        float *out = k == 0 ? dg->gamma0 : buf[k & 1];
        nerf_dense_input_grad(s->dens_p + m->w_off[k], t, out, m->dims[k], m->dims[k + 1]);
        gam = out;
    }
    if (last == 0)
        memcpy(dg->gamma0, gam, (size_t)m->dims[0] * sizeof(float));
    nerf_hash_encode_vjp_u(&s->grid, s->table, dg->u, dg->gamma0, dg->dout_du);
    float blob[3] = { 0, 0, 0 };
    if (s->blob)
        nerf_blob_bias_grad(x, s->center, s->blob_scale, s->blob_std, blob);
    dg->act1 = nerf_density_act_grad(s->act, rec[s->r_dout]);
    for (int k = 0; k < 3; k++) {
        dg->draw_dx[k] = dg->dout_du[k] * dg->du_dx[k] + blob[k];
        grad[k] = dg->act1 * dg->draw_dx[k];
    }
}

/* VJP of nerf_density_grad for an upstream dgrad (3,) on d sigma / dx: the second-order
 * terms into the hash table and the density MLP's weights (accumulated into g), and the
 * returned dL/draw that the first-order backward of this evaluation adds (the biases and
 * everything else reach the gradient through act'(raw)):
 *     dL/draw       = act''(raw) <dgrad, draw_dx>
 *     dL/d dout_du  = act'(raw) dgrad diag(du/dx)
 *     -> table and tau_0 = dL/dgamma_0 (hash_encode_vjp_u_vjp), then forward through the
 *        layers: dW_k += t_{k+1} tau_k^T, tau_{k+1} = relu'(a_k) W_k tau_k, and row 0 of
 *        the last layer's dW += tau_{K-1}. */
static float nerf_density_grad_backward(const nerf_state *s, const float *rec,
                                        const nerf_dgrad *dg, const float dgrad[3],
                                        const nerf_grads *g)
{
    const nerf_mlp *m = &s->dens;
    float ddu[3];
    for (int k = 0; k < 3; k++)
        ddu[k] = dgrad[k] * dg->act1 * dg->du_dx[k];
    float tau[2][NERF_MAX_WIDTH];
    nerf_hash_encode_vjp_u_vjp(&s->grid, s->table, dg->u, dg->gamma0, ddu, tau[0], g->table);
    const int last = m->n_layers - 1;
    int cur = 0;
    for (int k = 0; k < last; k++) {
        const float *acts = rec + s->r_dh + m->h_off[k];
        float *next = tau[cur ^ 1];
        nerf_dense_input_grad_vjp(s->dens_p + m->w_off[k], dg->t + m->h_off[k], tau[cur], next,
                                  g->dens + m->w_off[k], m->dims[k], m->dims[k + 1]);
        for (int j = 0; j < m->dims[k + 1]; j++)
            next[j] = acts[j] > 0 ? next[j] : 0;
        cur ^= 1;
    }
    float *dW0 = g->dens + m->w_off[last];
    for (int i = 0; i < m->dims[last]; i++)
        dW0[i] += tau[cur][i];
    float dot = dgrad[0] * dg->draw_dx[0] + dgrad[1] * dg->draw_dx[1] + dgrad[2] * dg->draw_dx[2];
    return dot * nerf_density_act_grad2(s->act, rec[s->r_dout]);
}

/* Backward of one evaluation recorded in rec: dL/dsigma and (if drgb) dL/drgb, plus draw
 * (a gradient on the pre-activation raw from analytic normals; 0 otherwise), into g. */
static void nerf_eval_backward(const nerf_state *s, const float *rec, const float dir[3],
                               float dsigma, const float *drgb, float draw,
                               const nerf_grads *g)
{
    float dout[1 + 64];   /* geo <= 64 (schema) */
    memset(dout, 0, sizeof(float) * (size_t)(1 + s->geo));
    if (drgb && (drgb[0] != 0 || drgb[1] != 0 || drgb[2] != 0)) {
        const float *rgb = rec + s->r_rgb;
        float dlogit[3], cin[NERF_MAX_WIDTH], dcin[NERF_MAX_WIDTH];
        for (int c = 0; c < 3; c++)
            dlogit[c] = drgb[c] * rgb[c] * (1 - rgb[c]);   /* sigmoid' = s (1 - s) */
        nerf_color_input(s, rec, dir, cin);
        nerf_mlp_backward(&s->col, s->col_p, g->col, cin, rec + s->r_ch, dlogit, dcin);
        memcpy(dout + 1, dcin, (size_t)s->geo * sizeof(float));
    }
    dout[0] = dsigma * nerf_density_act_grad(s->act, rec[s->r_dout]) + draw;
    float denc[NERF_MAX_LEVELS * 8];
    nerf_mlp_backward(&s->dens, s->dens_p, g->dens, rec + s->r_enc, rec + s->r_dh, dout, denc);
    float u[3];
    nerf_to_unit(s, rec + s->r_x, u);
    nerf_hash_encode_vjp(&s->grid, u, denc, g->table);
}

/* Occupancy cell of x (inside the box). */
static size_t nerf_occ_cell(const nerf_state *s, const float x[3])
{
    size_t idx[3];
    for (int k = 0; k < 3; k++) {
        float v = (x[k] - s->bmin[k]) / (s->bmax[k] - s->bmin[k]) * (float)s->occ_res;
        int i = (int)v;
        idx[k] = (size_t)(i < 0 ? 0 : (i >= s->occ_res ? s->occ_res - 1 : i));
    }
    return idx[0] + (size_t)s->occ_res * (idx[1] + (size_t)s->occ_res * idx[2]);
}

static void nerf_refresh_transposed(nerf_state *s)
{
    nerf_mlp_transpose(&s->dens, s->dens_p, s->dens_t);
    nerf_mlp_transpose(&s->col, s->col_p, s->col_t);
    if (s->bg_mode == NERF_BG_LEARNED)
        nerf_mlp_transpose(&s->bgm, s->bg_p, s->bg_t);
}

/* Binary grid from the values: occupied above the threshold, then dilated by one cell
 * (26-neighbourhood), so a surface crossing a cell whose random probe missed it is still
 * sampled when a neighbour saw density. */
static void nerf_occ_rebuild(nerf_state *s)
{
    const int R = s->occ_res;
    memset(s->occ_bits, 0, s->occ_cells);
    for (int z = 0; z < R; z++)
        for (int y = 0; y < R; y++)
            for (int x = 0; x < R; x++) {
                if (!(s->occ_val[x + (size_t)R * (y + (size_t)R * z)] > s->occ_thresh))
                    continue;
                for (int dz = -1; dz <= 1; dz++)
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++) {
                            int a = x + dx, b = y + dy, c = z + dz;
                            if (a >= 0 && a < R && b >= 0 && b < R && c >= 0 && c < R)
                                s->occ_bits[a + (size_t)R * (b + (size_t)R * c)] = 1;
                        }
            }
}

/* One grid update (instant-NGP): every cell's value becomes max(decay * value, density
 * at a uniform random point of the cell), the point drawn from (step, sample) of the
 * occupancy stream. Deterministic: cells are independent. */
static sl_status nerf_occ_update(nerf_state *s, uint32_t step, uint32_t sample, float decay,
                                 sl_error *err)
{
    nerf_refresh_transposed(s);
    const int R = s->occ_res;
    const sl_rng_key key = { .seed = s->host->seed, .step = step,
                             .stream = s->host->rng_stream_base + NERF_STREAM_OCC,
                             .sample = sample };
    float *scratch = sl_thread_scratch_alloc((size_t)s->rec_size);
    if (!scratch)
        return sl_error_set(err, SL_ERR_NOMEM, "nerf: out of memory in the occupancy update");
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < s->occ_cells; c++) {
        float *rec = sl_thread_scratch(scratch, (size_t)s->rec_size);
        size_t ix = c % (size_t)R, iy = (c / (size_t)R) % (size_t)R, iz = c / ((size_t)R * R);
        float u[3], x[3];
        sl_rng_uniform(key, 3 * (uint64_t)c, 3, u);
        size_t idx[3] = { ix, iy, iz };
        for (int k = 0; k < 3; k++)
            x[k] = s->bmin[k] + ((float)idx[k] + u[k]) / (float)R * (s->bmax[k] - s->bmin[k]);
        float sigma = nerf_eval(s, x, NULL, rec);
        float v = decay * s->occ_val[c];
        s->occ_val[c] = sigma > v ? sigma : v;
    }
    free(scratch);
    nerf_occ_rebuild(s);
    return SL_OK;
}

/* ------------------------------------------------------------------ create / destroy */

static void nerf_free_saved(nerf_state *s)
{
    for (size_t b = 0; b < s->blocks_cap; b++)
        free(s->blocks[b].recs);
    free(s->blocks);
    free(s->ray_start);
    free(s->ray_n);
    free(s->ray_dt);
    free(s->ray_T);
    free(s->ray_dir);
    free(s->ray_cosz);
    free(s->ray_bg);
    free(s->ray_bgh);
    free(s->ray_orient);
    s->blocks = NULL;
    s->ray_start = NULL;
    s->ray_n = NULL;
    s->ray_dt = s->ray_T = s->ray_dir = s->ray_cosz = s->ray_bg = s->ray_bgh = NULL;
    s->ray_orient = NULL;
    s->blocks_cap = s->rays_cap = 0;
}

static void nerf_destroy(void *state)
{
    nerf_state *s = state;
    if (!s)
        return;
    const sl_host *h = s->host;
    h->free_mem(h, s->table);
    h->free_mem(h, s->dtable);
    h->free_mem(h, s->dens_p);
    h->free_mem(h, s->ddens_p);
    h->free_mem(h, s->col_p);
    h->free_mem(h, s->dcol_p);
    h->free_mem(h, s->bg_p);
    h->free_mem(h, s->dbg_p);
    h->free_mem(h, s->dens_t);
    h->free_mem(h, s->col_t);
    h->free_mem(h, s->bg_t);
    h->free_mem(h, s->occ_val);
    h->free_mem(h, s->occ_bits);
    h->free_mem(h, s->shard_grad);
    nerf_free_saved(s);
    free(s);
}

static sl_status nerf_create(const sl_host *host, const sl_params *params, void **state,
                             sl_error *err)
{
    nerf_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "nerf: out of memory");
    s->host = host;
    sl_status st = SL_OK;

    /* Scene box. */
    for (int k = 0; k < 3; k++) {
        s->center[k] = (float)sl_params_list_float(params, "center", (size_t)k);
        float hk = sl_params_has(params, "extent")
                       ? (float)sl_params_list_float(params, "extent", (size_t)k)
                       : (float)sl_params_float(params, "radius");
        s->bmin[k] = s->center[k] - hk;
        s->bmax[k] = s->center[k] + hk;
    }

    /* Hash grid. */
    nerf_grid *g = &s->grid;
    g->levels = (int)sl_params_int(params, "levels");
    g->feat = (int)sl_params_int(params, "features_per_level");
    int log2T = (int)sl_params_int(params, "log2_table_size");
    int nmin = (int)sl_params_int(params, "base_resolution");
    double b = sl_params_float(params, "growth_factor");
    uint64_t total = 0;
    for (int l = 0; l < g->levels; l++) {
        double r = floor((double)nmin * pow(b, l));
        if (r > 1e6) {
            st = sl_error_set(err, SL_ERR_SPEC, "nerf: level %d would have %.0f cells per "
                              "axis (base_resolution %d, growth_factor %g): at most 1e6",
                              l, r, nmin, b);
            goto fail;
        }
        g->res[l] = (int)r;
        uint64_t verts = (uint64_t)(g->res[l] + 1) * (g->res[l] + 1) * (g->res[l] + 1);
        g->dense[l] = verts <= (1ull << log2T);
        g->size[l] = g->dense[l] ? (uint32_t)verts : (1u << log2T);
        g->offset[l] = (uint32_t)total;
        total += g->size[l];
    }
    if (total * (uint64_t)g->feat > (1ull << 31)) {
        st = sl_error_set(err, SL_ERR_SPEC, "nerf: the hash table would have %llu entries "
                          "of %d features: too large", (unsigned long long)total, g->feat);
        goto fail;
    }
    g->entries = (uint32_t)total;
    s->n_table = (size_t)total * (size_t)g->feat;

    /* MLPs. */
    s->geo = (int)sl_params_int(params, "geo_features");
    s->view_dep = sl_params_bool(params, "view_dependent");
    int ok = nerf_mlp_init(&s->dens, g->levels * g->feat, (int)sl_params_int(params, "density_width"),
                           (int)sl_params_int(params, "density_layers"), 1 + s->geo);
    ok = ok && nerf_mlp_init(&s->col, s->geo + (s->view_dep ? 3 : 0),
                             (int)sl_params_int(params, "color_width"),
                             (int)sl_params_int(params, "color_layers"), 3);
    const char *bgname = sl_params_string(params, "background");
    s->bg_mode = strcmp(bgname, "solid") == 0    ? NERF_BG_SOLID
                 : strcmp(bgname, "random") == 0 ? NERF_BG_RANDOM
                                                  : NERF_BG_LEARNED;
    if (s->bg_mode == NERF_BG_LEARNED)
        ok = ok && nerf_mlp_init(&s->bgm, 3, (int)sl_params_int(params, "background_width"), 1, 3);
    if (!ok) {
        st = sl_error_set(err, SL_ERR_SPEC, "nerf: an MLP layer is wider than %d (geo_features "
                          "+ 3 or levels x features_per_level too large)", NERF_MAX_WIDTH);
        goto fail;
    }
    for (int k = 0; k < 3; k++)
        s->bg_color[k] = (float)sl_params_list_float(params, "background_color", (size_t)k);

    s->act = strcmp(sl_params_string(params, "density_activation"), "exp") == 0 ? NERF_ACT_EXP
                                                                                : NERF_ACT_SOFTPLUS;
    s->blob = strcmp(sl_params_string(params, "density_bias"), "blob") == 0;
    s->blob_scale = (float)sl_params_float(params, "density_blob_scale");
    s->blob_std = (float)sl_params_float(params, "density_blob_std");
    s->n_samples = (int)sl_params_int(params, "samples_per_ray");
    s->early_stop = (float)sl_params_float(params, "early_stop");
    s->occ_on = sl_params_bool(params, "occupancy");
    s->occ_res = (int)sl_params_int(params, "occupancy_resolution");
    s->occ_every = (int)sl_params_int(params, "occupancy_update_every");
    s->occ_thresh = (float)sl_params_float(params, "occupancy_threshold");
    s->occ_decay = (float)sl_params_float(params, "occupancy_decay");
    const char *normals = sl_params_string(params, "normals");
    s->normals = strcmp(normals, "none") == 0       ? NERF_NORMALS_NONE
                 : strcmp(normals, "analytic") == 0 ? NERF_NORMALS_ANALYTIC
                                                    : NERF_NORMALS_FD;
    s->fd_eps = (float)sl_params_float(params, "normal_fd_eps");
    s->lambda_sparsity = (float)sl_params_float(params, "lambda_sparsity");
    s->lambda_orient = (float)sl_params_float(params, "lambda_orient");
    if (s->lambda_orient > 0 && s->normals == NERF_NORMALS_NONE) {
        st = sl_error_set(err, SL_ERR_SPEC, "nerf: lambda_orient %g needs normals (normals: "
                          "none given; use analytic or finite_difference)", (double)s->lambda_orient);
        goto fail;
    }

    /* Record layout. */
    int off = 0;
    s->r_t = off, off += 1;
    s->r_x = off, off += 3;
    s->r_enc = off, off += g->levels * g->feat;
    s->r_dh = off, off += s->dens.hidden_total;
    s->r_dout = off, off += 1 + s->geo;
    s->r_sigma = off, off += 1;
    s->r_ch = off, off += s->col.hidden_total;
    s->r_rgb = off, off += 3;
    s->r_n = off, off += 3;
    s->r_g = off, off += 3;
    s->rec_size = off;

    /* Parameters. */
    s->n_grad = s->n_table + s->dens.n_params + s->col.n_params + s->bgm.n_params;
    s->occ_cells = (size_t)s->occ_res * s->occ_res * s->occ_res;
#define NERF_ALLOC(ptr, count, type)                                                       \
    do {                                                                                   \
        (ptr) = host->alloc(host, ((count) > 0 ? (count) : 1) * sizeof(type));                 \
        if (!(ptr)) {                                                                      \
            st = sl_error_set(err, SL_ERR_NOMEM, "nerf: cannot allocate %s (%zu bytes)",   \
                              #ptr, (size_t)(count) * sizeof(type));                       \
            goto fail;                                                                     \
        }                                                                                  \
    } while (0)
    NERF_ALLOC(s->table, s->n_table, float);
    NERF_ALLOC(s->dtable, s->n_table, float);
    NERF_ALLOC(s->dens_p, s->dens.n_params, float);
    NERF_ALLOC(s->ddens_p, s->dens.n_params, float);
    NERF_ALLOC(s->dens_t, s->dens.n_params, float);
    NERF_ALLOC(s->col_p, s->col.n_params, float);
    NERF_ALLOC(s->dcol_p, s->col.n_params, float);
    NERF_ALLOC(s->col_t, s->col.n_params, float);
    if (s->bg_mode == NERF_BG_LEARNED) {
        NERF_ALLOC(s->bg_p, s->bgm.n_params, float);
        NERF_ALLOC(s->dbg_p, s->bgm.n_params, float);
        NERF_ALLOC(s->bg_t, s->bgm.n_params, float);
    }
    NERF_ALLOC(s->occ_val, s->occ_cells, float);
    NERF_ALLOC(s->occ_bits, s->occ_cells, uint8_t);
    NERF_ALLOC(s->shard_grad, (size_t)NERF_GRAD_SHARDS * s->n_grad, float);
#undef NERF_ALLOC

    /* Initialisation: the table uniform in [-a, a] (sample 0 of the init stream), MLP
     * weights Xavier-uniform (samples 1, 2, 3). */
    {
        float a = (float)sl_params_float(params, "hash_init");
        sl_rng_key key = { .seed = host->seed, .step = 0,
                           .stream = host->rng_stream_base + NERF_STREAM_INIT, .sample = 0 };
        sl_rng_uniform(key, 0, s->n_table, s->table);
        for (size_t i = 0; i < s->n_table; i++)
            s->table[i] = a * (2 * s->table[i] - 1);
        nerf_mlp_init_params(&s->dens, s->dens_p, host, 1);
        nerf_mlp_init_params(&s->col, s->col_p, host, 2);
        if (s->bg_mode == NERF_BG_LEARNED)
            nerf_mlp_init_params(&s->bgm, s->bg_p, host, 3);
    }

    /* The grid starts from the initial field (one update without decay, sample 1 of the
     * occupancy stream at step 0; regular updates use sample 0), so the first steps already
     * skip the empty space around the blob. */
    if (s->occ_on && (st = nerf_occ_update(s, 0, 1, 0.0f, err)) != SL_OK)
        goto fail;

    static const char *const series[][2] = {
        { "nerf_sparsity", "opacity sparsity regulariser lambda_sparsity mean_p opacity_p of "
                           "the TRAIN render (included in the gradient when lambda > 0)" },
        { "nerf_orient", "orientation regulariser lambda_orient mean_p sum_k w_k "
                         "max(0, <n_k, d>)^2 of the TRAIN render" },
        { "nerf_samples", "mean samples evaluated per ray in the TRAIN render (after "
                          "occupancy skipping and early termination)" },
        { "nerf_occupancy", "fraction of occupied occupancy-grid cells after an update" },
    };
    for (size_t i = 0; i < sizeof series / sizeof series[0]; i++)
        if ((st = host->declare_series(host, series[i][0], series[i][1], err)) != SL_OK)
            goto fail;
    host->log(host, SL_LOG_INFO,
              "hash grid %d levels x %d features, %u entries (%.1f MiB), resolutions %d..%d; "
              "MLPs %zu + %zu parameters; record %d floats per sample",
              g->levels, g->feat, g->entries, (double)s->n_table * 4 / 1048576.0, g->res[0],
              g->res[g->levels - 1], s->dens.n_params, s->col.n_params, s->rec_size);
    *state = s;
    return SL_OK;
fail:
    nerf_destroy(s);
    return st;
}

static uint32_t nerf_outputs(const void *state)
{
    const nerf_state *s = state;
    return SL_RENDER_RGB | SL_RENDER_DEPTH | SL_RENDER_OPACITY |
           (s->normals != NERF_NORMALS_NONE ? SL_RENDER_NORMAL : 0);
}

static size_t nerf_param_groups(void *state, sl_param_group *groups, size_t max)
{
    nerf_state *s = state;
    sl_param_group all[4] = {
        { .name = "encoding", .data = s->table, .grad = s->dtable, .n = s->n_table },
        { .name = "density_mlp", .data = s->dens_p, .grad = s->ddens_p, .n = s->dens.n_params },
        { .name = "color_mlp", .data = s->col_p, .grad = s->dcol_p, .n = s->col.n_params },
        { .name = "background", .data = s->bg_p, .grad = s->dbg_p, .n = s->bgm.n_params },
    };
    size_t n = s->bg_mode == NERF_BG_LEARNED ? 4 : 3;
    for (size_t i = 0; i < n && i < max; i++)
        groups[i] = all[i];
    return n;
}

/* ------------------------------------------------------------------ render */

/* Grows the per-ray and per-block arrays of TRAIN renders. */
static sl_status nerf_reserve_rays(nerf_state *s, size_t rays, sl_error *err)
{
    size_t nb = (rays + NERF_RAY_BLOCK - 1) / NERF_RAY_BLOCK;
    if (nb > s->blocks_cap) {
        nerf_block *blocks = realloc(s->blocks, nb * sizeof *blocks);
        if (!blocks)
            return sl_error_set(err, SL_ERR_NOMEM, "nerf: out of memory (%zu ray blocks)", nb);
        memset(blocks + s->blocks_cap, 0, (nb - s->blocks_cap) * sizeof *blocks);
        s->blocks = blocks;
        s->blocks_cap = nb;
    }
    if (rays <= s->rays_cap)
        return SL_OK;
    int bgh = s->bgm.hidden_total;
#define NERF_GROW(ptr, per)                                                                \
    do {                                                                                   \
        void *p_ = realloc((ptr), rays * (per) * sizeof(*(ptr)) + 1);                      \
        if (!p_)                                                                           \
            return sl_error_set(err, SL_ERR_NOMEM, "nerf: out of memory (%zu rays)", rays); \
        (ptr) = p_;                                                                        \
    } while (0)
    NERF_GROW(s->ray_start, 1);
    NERF_GROW(s->ray_n, 1);
    NERF_GROW(s->ray_dt, 1);
    NERF_GROW(s->ray_T, 1);
    NERF_GROW(s->ray_dir, 3);
    NERF_GROW(s->ray_cosz, 1);
    NERF_GROW(s->ray_bg, 3);
    NERF_GROW(s->ray_bgh, (size_t)bgh);
    NERF_GROW(s->ray_orient, 1);
#undef NERF_GROW
    s->rays_cap = rays;
    return SL_OK;
}

/* A record slot at the end of a block (grows it); NULL when out of memory. */
static float *nerf_block_append(const nerf_state *s, nerf_block *blk)
{
    if (blk->count == blk->cap) {
        size_t cap = blk->cap ? 2 * blk->cap : (size_t)NERF_RAY_BLOCK * 8;
        float *p = realloc(blk->recs, cap * (size_t)s->rec_size * sizeof(float));
        if (!p)
            return NULL;
        blk->recs = p;
        blk->cap = cap;
    }
    return blk->recs + blk->count++ * (size_t)s->rec_size;
}

/* What one ray writes. */
typedef struct nerf_ray_out {
    float rgb[3], depth, normal[3], opacity, orient;
    int n;          /* samples kept */
    float dt, T;
} nerf_ray_out;

/* Marches one ray. rec_scratch: two records (EVAL samples, FD probes); blk: where TRAIN
 * records go (NULL in EVAL). Returns 0 when out of memory. */
static int nerf_march(const nerf_state *s, const float o[3], const float d[3], float cosz,
                      float near_t, const float bg[3], const float *jitter, int need_n,
                      nerf_block *blk, float *rec_scratch, nerf_ray_out *ro)
{
    memset(ro, 0, sizeof *ro);
    float T = 1;
    float t0, t1;
    if (nerf_ray_box(o, d, s->bmin, s->bmax, &t0, &t1)) {
        t0 = t0 > near_t ? t0 : near_t;
        if (t1 > t0) {
            const float dt = (t1 - t0) / (float)s->n_samples;
            ro->dt = dt;
            for (int k = 0; k < s->n_samples; k++) {
                float t = t0 + ((float)k + (jitter ? jitter[k] : 0.5f)) * dt;
                float x[3] = { o[0] + t * d[0], o[1] + t * d[1], o[2] + t * d[2] };
                if (s->occ_on && !s->occ_bits[nerf_occ_cell(s, x)])
                    continue;
                float *rec = blk ? nerf_block_append(s, blk) : rec_scratch;
                if (!rec)
                    return 0;
                rec[s->r_t] = t;
                float sigma = nerf_eval(s, x, d, rec);
                float w = nerf_composite_step(sigma, dt, &T);
                const float *c = rec + s->r_rgb;
                for (int ch = 0; ch < 3; ch++)
                    ro->rgb[ch] += w * c[ch];
                ro->depth += w * t * cosz;
                ro->opacity += w;
                if (need_n) {
                    float *n = rec + s->r_n;
                    if (s->normals == NERF_NORMALS_ANALYTIC) {
                        nerf_dgrad dg;
                        nerf_density_grad(s, rec, &dg, rec + s->r_g);
                        nerf_normal_from_grad(rec + s->r_g, n);
                    } else {
                        nerf_fd_normal(s, x, rec_scratch + s->rec_size, rec + s->r_g, n);
                    }
                    for (int ch = 0; ch < 3; ch++)
                        ro->normal[ch] += w * n[ch];
                    float nd = n[0] * d[0] + n[1] * d[1] + n[2] * d[2];
                    if (nd > 0)
                        ro->orient += w * nd * nd;
                }
                ro->n++;
                if (T < s->early_stop)
                    break;
            }
        }
    }
    for (int ch = 0; ch < 3; ch++)
        ro->rgb[ch] += T * bg[ch];
    ro->T = T;
    return 1;
}

static sl_status nerf_render(void *state, const sl_render_request *req, sl_render *out,
                             sl_error *err)
{
    nerf_state *s = state;
    const int B = out->batch, H = out->height, W = out->width;
    if (B < 1 || H < 1 || W < 1 || req->batch != B)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "nerf: bad render size (batch %d, %dx%d; request batch %d)", B, H,
                            W, req->batch);
    for (int b = 0; b < B; b++)
        if (req->cams[b].width != W || req->cams[b].height != H)
            return sl_error_set(err, SL_ERR_INVALID_ARG, "nerf: camera %d is %dx%d, the "
                                "render %dx%d", b, req->cams[b].width, req->cams[b].height, W, H);
    const int train = req->mode == SL_RENDER_TRAIN;
    const int need_n = out->normal != NULL || (train && s->lambda_orient > 0);
    if (need_n && s->normals == NERF_NORMALS_NONE)
        return sl_error_set(err, SL_ERR_UNSUPPORTED, "nerf: normals requested but the "
                            "representation has normals: none");
    if (need_n && s->normals == NERF_NORMALS_ANALYTIC && s->test_field)
        return sl_error_set(err, SL_ERR_UNSUPPORTED, "nerf: analytic normals of an analytic "
                            "test field (it has no network to differentiate)");
    const size_t px = (size_t)H * W, rays = (size_t)B * px;
    if (rays > UINT32_MAX)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "nerf: too many rays (%zu)", rays);
    sl_status st;
    if (train) {
        s->saved_batch = 0;   /* invalid until this render completes */
        if ((st = nerf_reserve_rays(s, rays, err)) != SL_OK)
            return st;
    }
    nerf_refresh_transposed(s);

    /* Background colour per batch element (solid and random); learned is per ray. */
    float bgcol[3 * 256];
    float *bgb = B <= 256 ? bgcol : malloc((size_t)B * 3 * sizeof(float));
    if (!bgb)
        return sl_error_set(err, SL_ERR_NOMEM, "nerf: out of memory");
    for (int b = 0; b < B; b++) {
        if (train && s->bg_mode == NERF_BG_RANDOM) {
            sl_rng_key key = { .seed = s->host->seed, .step = (uint32_t)req->step,
                               .stream = s->host->rng_stream_base + NERF_STREAM_BG,
                               .sample = (uint32_t)b };
            sl_rng_uniform(key, 0, 3, bgb + 3 * b);
        } else {
            memcpy(bgb + 3 * b, s->bg_color, sizeof s->bg_color);
        }
    }

    const size_t nblocks = (rays + NERF_RAY_BLOCK - 1) / NERF_RAY_BLOCK;
    int failed = 0;
#pragma omp parallel
    {
        float *scratch = malloc(2 * (size_t)s->rec_size * sizeof(float));
        float jit[NERF_MAX_SAMPLES];
        float bgh[NERF_MAX_WIDTH];
        if (!scratch) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (size_t blk = 0; blk < nblocks; blk++) {
            if (!scratch)
                continue;
            nerf_block *block = train ? &s->blocks[blk] : NULL;
            if (block)
                block->count = 0;
            size_t r_end = (blk + 1) * NERF_RAY_BLOCK < rays ? (blk + 1) * NERF_RAY_BLOCK : rays;
            for (size_t r = blk * NERF_RAY_BLOCK; r < r_end; r++) {
                const int b = (int)(r / px), pix = (int)(r % px);
                const sl_camera *cam = &req->cams[b];
                float d[3];
                sl_camera_ray_dir(cam, pix / W, pix % W, d);
                /* Column 2 of the camera-to-world rotation is the forward axis. */
                float cosz = d[0] * cam->rot[2] + d[1] * cam->rot[5] + d[2] * cam->rot[8];
                float near_t = cam->near / cosz;
                float bg[3];
                if (s->bg_mode == NERF_BG_LEARNED) {
                    float logit[3];
                    nerf_mlp_forward(&s->bgm, s->bg_p, s->bg_t, d, bgh, logit);
                    for (int c = 0; c < 3; c++)
                        bg[c] = nerf_sigmoid(logit[c]);
                } else {
                    memcpy(bg, bgb + 3 * b, sizeof bg);
                }
                const float *jitter = NULL;
                if (train) {
                    sl_rng_key key = { .seed = s->host->seed, .step = (uint32_t)req->step,
                                       .stream = s->host->rng_stream_base + NERF_STREAM_JITTER,
                                       .sample = (uint32_t)r };
                    sl_rng_uniform(key, 0, (size_t)s->n_samples, jit);
                    jitter = jit;
                }
                size_t start = block ? block->count : 0;
                nerf_ray_out ro;
                if (!nerf_march(s, cam->eye, d, cosz, near_t, bg, jitter, need_n, block,
                                scratch, &ro)) {
#pragma omp atomic write
                    failed = 1;
                    break;
                }
                if (out->rgb)
                    memcpy(out->rgb + 3 * r, ro.rgb, sizeof ro.rgb);
                if (out->depth)
                    out->depth[r] = ro.depth;
                if (out->normal)
                    memcpy(out->normal + 3 * r, ro.normal, sizeof ro.normal);
                if (out->opacity)
                    out->opacity[r] = ro.opacity;
                if (train) {
                    s->ray_start[r] = (uint32_t)start;
                    s->ray_n[r] = (uint16_t)ro.n;
                    s->ray_dt[r] = ro.dt;
                    s->ray_T[r] = ro.T;
                    memcpy(s->ray_dir + 3 * r, d, sizeof d);
                    s->ray_cosz[r] = cosz;
                    memcpy(s->ray_bg + 3 * r, bg, sizeof bg);
                    if (s->bg_mode == NERF_BG_LEARNED)
                        memcpy(s->ray_bgh + (size_t)s->bgm.hidden_total * r, bgh,
                               (size_t)s->bgm.hidden_total * sizeof(float));
                    s->ray_orient[r] = ro.orient;
                }
            }
        }
        free(scratch);
    }
    if (bgb != bgcol)
        free(bgb);
    if (failed)
        return sl_error_set(err, SL_ERR_NOMEM, "nerf: out of memory storing the samples of "
                            "a %d x %dx%d render", B, H, W);
    if (train) {
        /* Regulariser values and diagnostics, summed in ray order (fixed). */
        double samples = 0, orient = 0, opac = 0;
        for (size_t r = 0; r < rays; r++) {
            samples += s->ray_n[r];
            orient += s->ray_orient[r];
            opac += 1.0 - s->ray_T[r];   /* = sum_k w_k up to rounding */
        }
        s->host->record(s->host, "nerf_samples", samples / (double)rays);
        s->host->record(s->host, "nerf_sparsity", s->lambda_sparsity * opac / (double)rays);
        s->host->record(s->host, "nerf_orient",
                        need_n ? s->lambda_orient * orient / (double)rays : 0.0);
        s->saved_batch = B;
        s->saved_h = H;
        s->saved_w = W;
        s->saved_normals = need_n;
    }
    return SL_OK;
}

/* ------------------------------------------------------------------ backward */

/* Backward of one ray into the shard's buffers g. */
static void nerf_ray_backward(const nerf_state *s, size_t r, const sl_render *grad,
                              float reg_sparsity, float reg_orient, const nerf_grads *g,
                              float *scratch)
{
    const int n = s->ray_n[r];
    const float *d = s->ray_dir + 3 * r;
    const float *gC = grad->rgb ? grad->rgb + 3 * r : NULL;
    const float gD = grad->depth ? grad->depth[r] : 0.0f;
    const float *gN = grad->normal ? grad->normal + 3 * r : NULL;
    const float gO = (grad->opacity ? grad->opacity[r] : 0.0f) + reg_sparsity;
    const float *recs = s->blocks[r / NERF_RAY_BLOCK].recs + (size_t)s->ray_start[r] * s->rec_size;
    const float cosz = s->ray_cosz[r];

    float sigma[NERF_MAX_SAMPLES], delta[NERF_MAX_SAMPLES], e[NERF_MAX_SAMPLES];
    float dsig[NERF_MAX_SAMPLES], w[NERF_MAX_SAMPLES], tr[NERF_MAX_SAMPLES];
    for (int k = 0; k < n; k++) {
        const float *rec = recs + (size_t)k * s->rec_size;
        sigma[k] = rec[s->r_sigma];
        delta[k] = s->ray_dt[r];
        float ek = gD * rec[s->r_t] * cosz + gO;
        if (gC)
            ek += gC[0] * rec[s->r_rgb] + gC[1] * rec[s->r_rgb + 1] + gC[2] * rec[s->r_rgb + 2];
        if (gN)
            ek += gN[0] * rec[s->r_n] + gN[1] * rec[s->r_n + 1] + gN[2] * rec[s->r_n + 2];
        e[k] = ek;
    }
    const float *bg = s->ray_bg + 3 * r;
    float e_bg = gC ? gC[0] * bg[0] + gC[1] * bg[1] + gC[2] * bg[2] : 0.0f;
    float T = nerf_composite_vjp(n, sigma, delta, e, e_bg, dsig, w, tr);

    const int normal_grad = s->saved_normals && (gN || reg_orient > 0);
    for (int k = 0; k < n; k++) {
        const float *rec = recs + (size_t)k * s->rec_size;
        float drgb[3] = { 0, 0, 0 }, draw = 0;
        if (gC)
            for (int c = 0; c < 3; c++)
                drgb[c] = w[k] * gC[c];
        if (normal_grad) {
            /* dL/dn_k = w_k gN + lambda_o/P stopgrad(w_k) 2 max(0, <n, d>) d. */
            const float *nk = rec + s->r_n;
            float dn[3] = { 0, 0, 0 };
            if (gN)
                for (int c = 0; c < 3; c++)
                    dn[c] = w[k] * gN[c];
            float nd = nk[0] * d[0] + nk[1] * d[1] + nk[2] * d[2];
            if (reg_orient > 0 && nd > 0)
                for (int c = 0; c < 3; c++)
                    dn[c] += reg_orient * w[k] * 2 * nd * d[c];
            float dg[3];
            nerf_normal_vjp(rec + s->r_g, dn, dg);
            if (s->normals == NERF_NORMALS_ANALYTIC) {
                /* The sweep is recomputed rather than stored: it costs about one MLP
                 * backward, storing it would double the record. */
                nerf_dgrad dgr;
                float grad_again[3];
                nerf_density_grad(s, rec, &dgr, grad_again);
                draw = nerf_density_grad_backward(s, rec, &dgr, dg, g);
            } else {
                /* g_a = (sigma(x + h e_a) - sigma(x - h e_a)) / (2h): each probe gets
                 * +-dg_a / (2h) as its dL/dsigma, back-propagated from a re-evaluation. */
                const float h = s->fd_eps;
                for (int a = 0; a < 3; a++) {
                    if (dg[a] == 0)
                        continue;
                    for (int sgn = -1; sgn <= 1; sgn += 2) {
                        float xp[3] = { rec[s->r_x], rec[s->r_x + 1], rec[s->r_x + 2] };
                        xp[a] += (float)sgn * h;
                        nerf_eval(s, xp, NULL, scratch);
                        nerf_eval_backward(s, scratch, d, (float)sgn * dg[a] / (2 * h), NULL,
                                           0.0f, g);
                    }
                }
            }
        }
        nerf_eval_backward(s, rec, d, dsig[k], drgb, draw, g);
    }
    if (s->bg_mode == NERF_BG_LEARNED && gC) {
        /* bg = sigmoid(mlp(d)); dL/dbg = T_n gC. */
        const float *bgh = s->ray_bgh + (size_t)s->bgm.hidden_total * r;
        float dlogit[3];
        for (int c = 0; c < 3; c++)
            dlogit[c] = T * gC[c] * bg[c] * (1 - bg[c]);
        nerf_mlp_backward(&s->bgm, s->bg_p, g->bg, d, bgh, dlogit, NULL);
    }
}

static sl_status nerf_backward(void *state, const sl_render *grad, sl_error *err)
{
    nerf_state *s = state;
    if (s->test_field)
        return sl_error_set(err, SL_ERR_UNSUPPORTED, "nerf: backward with an analytic test field");
    if (s->saved_batch == 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "nerf: backward called before any TRAIN "
                            "render");
    if (grad->batch != s->saved_batch || grad->height != s->saved_h || grad->width != s->saved_w)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "nerf: gradient is (%d, %d, %d) but the last TRAIN render was "
                            "(%d, %d, %d)", grad->batch, grad->height, grad->width,
                            s->saved_batch, s->saved_h, s->saved_w);
    if (grad->normal && !s->saved_normals)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "nerf: a normal gradient, but the last "
                            "TRAIN render did not render normals");
    const size_t rays = (size_t)grad->batch * grad->height * grad->width;
    const size_t nblocks = (rays + NERF_RAY_BLOCK - 1) / NERF_RAY_BLOCK;
    const float reg_sparsity = s->lambda_sparsity / (float)rays;
    const float reg_orient = s->saved_normals ? s->lambda_orient / (float)rays : 0.0f;
    nerf_refresh_transposed(s);   /* the FD-normal re-evaluations use them */
    int failed = 0;
#pragma omp parallel
    {
        float *scratch = malloc((size_t)s->rec_size * sizeof(float));
        if (!scratch) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int sh = 0; sh < NERF_GRAD_SHARDS; sh++) {
            float *buf = s->shard_grad + (size_t)sh * s->n_grad;
            memset(buf, 0, s->n_grad * sizeof(float));
            if (!scratch)
                continue;
            nerf_grads g = { buf, buf + s->n_table, buf + s->n_table + s->dens.n_params,
                             buf + s->n_table + s->dens.n_params + s->col.n_params };
            /* Shard sh owns blocks sh, sh + S, sh + 2S, ...: every shard gets rays from
             * the whole image, so the shards' loads are even (objects fill the middle). */
            for (size_t blk = (size_t)sh; blk < nblocks; blk += NERF_GRAD_SHARDS) {
                size_t r0 = blk * NERF_RAY_BLOCK;
                size_t r1 = r0 + NERF_RAY_BLOCK < rays ? r0 + NERF_RAY_BLOCK : rays;
                for (size_t r = r0; r < r1; r++)
                    nerf_ray_backward(s, r, grad, reg_sparsity, reg_orient, &g, scratch);
            }
        }
        free(scratch);
        /* Shards are summed into the groups element by element in shard order. */
#pragma omp for schedule(static)
        for (size_t i = 0; i < s->n_grad; i++) {
            float acc = 0;
            for (int sh = 0; sh < NERF_GRAD_SHARDS; sh++)
                acc += s->shard_grad[(size_t)sh * s->n_grad + i];
            size_t j = i;
            if (j < s->n_table) {
                s->dtable[j] += acc;
                continue;
            }
            j -= s->n_table;
            if (j < s->dens.n_params) {
                s->ddens_p[j] += acc;
                continue;
            }
            j -= s->dens.n_params;
            if (j < s->col.n_params) {
                s->dcol_p[j] += acc;
                continue;
            }
            s->dbg_p[j - s->col.n_params] += acc;
        }
    }
    if (failed)
        return sl_error_set(err, SL_ERR_NOMEM, "nerf: out of memory in backward");
    return SL_OK;
}

/* ------------------------------------------------------------------ step_end, state, field */

static sl_status nerf_step_end(void *state, int64_t step, sl_error *err)
{
    nerf_state *s = state;
    if (!s->occ_on || (step + 1) % s->occ_every != 0)
        return SL_OK;
    sl_status st = nerf_occ_update(s, (uint32_t)step, 0, s->occ_decay, err);
    if (st != SL_OK)
        return st;
    size_t occupied = 0;
    for (size_t c = 0; c < s->occ_cells; c++)
        occupied += s->occ_bits[c];
    s->host->record(s->host, "nerf_occupancy", (double)occupied / (double)s->occ_cells);
    return SL_OK;
}

/* The occupancy values are the only state beyond the parameter groups that later steps
 * read (the bits are a function of them; the RNG is counter-based). */
static sl_status nerf_save_state(void *state, sl_state_io *io, sl_error *err)
{
    nerf_state *s = state;
    return sl_state_put(io, "occupancy", SL_STATE_F32, s->occ_val, s->occ_cells, err);
}

static sl_status nerf_load_state(void *state, sl_state_io *io, sl_error *err)
{
    nerf_state *s = state;
    sl_status st = sl_state_get(io, "occupancy", SL_STATE_F32, s->occ_val, s->occ_cells, err);
    if (st == SL_OK)
        nerf_occ_rebuild(s);
    return st;
}

/* Density after activation, and the colour seen along -z (view-dependent fields: the view
 * from above; the default field ignores the direction), at world points; 0 outside the box. */
static sl_status nerf_sample_field(void *state, const float *points, size_t n, float *density,
                                   float *rgb, sl_error *err)
{
    nerf_state *s = state;
    nerf_refresh_transposed(s);
    static const float down[3] = { 0, 0, -1 };
    float *scratch = sl_thread_scratch_alloc((size_t)s->rec_size);
    if (!scratch)
        return sl_error_set(err, SL_ERR_NOMEM, "nerf: out of memory sampling the field");
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float *rec = sl_thread_scratch(scratch, (size_t)s->rec_size);
        const float *x = points + 3 * i;
        int inside = 1;
        for (int k = 0; k < 3; k++)
            inside &= x[k] >= s->bmin[k] && x[k] <= s->bmax[k];
        if (!inside) {
            density[i] = 0;
            if (rgb)
                rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = 0;
            continue;
        }
        density[i] = nerf_eval(s, x, rgb ? down : NULL, rec);
        if (rgb)
            memcpy(rgb + 3 * i, rec + s->r_rgb, 3 * sizeof(float));
    }
    free(scratch);
    return SL_OK;
}

/* Default iso-level: the density that makes a slab 1/32 of the box thick half opaque,
 * sigma = ln 2 / (mean box side / 32) (11.1 for the default box of side 2). Measured on the
 * trained quickstart (experiments/quickstart.yaml, 600 steps): where the rays of 64x64
 * views cross opacity 0.5 the density has median 11.1 (p25 8.6, p75 13.7), the field's
 * maximum is 20.6; threestudio's fixed 25 would leave that field without a surface. The
 * level does not depend on samples_per_ray, so a mesh does not change with the sampling. */
static void nerf_field_bounds(const void *state, float bounds[6], float *threshold)
{
    const nerf_state *s = state;
    float side = 0;
    for (int k = 0; k < 3; k++) {
        bounds[k] = s->bmin[k];
        bounds[3 + k] = s->bmax[k];
        side += (s->bmax[k] - s->bmin[k]) / 3;
    }
    *threshold = logf(2.0f) / (side / 32.0f);
}

/* An upper bound before create(): the hash tables (every level at full table size) and the
 * MLPs, 4 copies each (value, gradient, Adam's m and v) plus the 8 gradient shards of the
 * deterministic backward, and the forward's sample records (110 floats per sample, as
 * measured for the default widths; scaled with them) for every sample of every ray of the
 * batch, as if nothing were skipped. */
static uint64_t nerf_memory_bytes(const sl_params *params, int resolution, int batch)
{
    double levels = (double)sl_params_int(params, "levels");
    double feats = (double)sl_params_int(params, "features_per_level");
    double table = ldexp(1.0, (int)sl_params_int(params, "log2_table_size"));
    double dw = (double)sl_params_int(params, "density_width");
    double cw = (double)sl_params_int(params, "color_width");
    double enc = levels * feats;
    double params_n = levels * table * feats + (enc + 2) * dw + dw * dw * 2 + (dw + 16) * cw +
                      cw * cw * 2 + cw * 3;
    double per_sample = 110.0 * (enc + dw + cw + 40.0) / (16.0 + 32.0 + 32.0 + 40.0);
    double samples = (double)batch * resolution * resolution *
                     (double)sl_params_int(params, "samples_per_ray");
    return (uint64_t)(4.0 * params_n * (4 + 8) + 4.0 * per_sample * samples);
}

static const sl_representation_vtable nerf_vtable = {
    .struct_size = sizeof(sl_representation_vtable),
    .create = nerf_create,
    .destroy = nerf_destroy,
    .outputs = nerf_outputs,
    .param_groups = nerf_param_groups,
    .render = nerf_render,
    .backward = nerf_backward,
    .step_end = nerf_step_end,
    .sample_field = nerf_sample_field,
    .field_bounds = nerf_field_bounds,
    .save_state = nerf_save_state,
    .load_state = nerf_load_state,
    .memory_bytes = nerf_memory_bytes,
};

static const sl_plugin nerf_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_REPRESENTATION,
    .name = "nerf",
    .version = "1.0.0",
    .summary = "Neural radiance field: multi-resolution hash encoding, density and colour "
               "MLPs, occupancy-grid ray marching, volume compositing",
    .params = SL_PARAM_SCHEMA(nerf_params),
    .vtable = &nerf_vtable,
};

SL_PLUGIN_ENTRY(&nerf_plugin)
