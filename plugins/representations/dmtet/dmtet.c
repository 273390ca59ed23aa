/* plugins/representations/dmtet/dmtet.c — representation `dmtet`: a deformable tetrahedral
 * grid with an SDF per vertex (DMTet, Shen et al. 2021; Magic3D's geometry stage), turned
 * into a triangle mesh by differentiable marching tetrahedra, rasterised with
 * silhouette-aware antialiasing, and coloured by a hash-grid texture field.
 *
 * Per render (the mesh is extracted once for the batch):
 *     x_v     = base_v + deform_fraction * cell * tanh(d_v)     grid vertices (tetgrid.h)
 *     mesh    = marching_tets(x, sdf)                           crossings on grid edges
 *     per camera: z-buffer visibility, hit (depth s, barycentrics) by ray-triangle,
 *       normal = normalize(sum_k l_k n_k) with area-weighted vertex normals,
 *       rgb    = sigmoid(mlp(hash_encode((p - bmin) / (bmax - bmin))))   p: surface point
 *       pre    = [rgb, s, normal, 1] on covered pixels, [bg, 0, 0, 0, 0, 0] elsewhere
 *       out    = antialias(pre)                               silhouette blends (raster.h)
 * Outputs (conventions.md): rgb, depth (z-depth times coverage), normal (unit world
 * normals times coverage), opacity (coverage: 1 inside, blended at silhouettes).
 *
 * Gradients: every output flows back through the antialiasing step (silhouette gradients to
 * the edge's vertices), depth and normals through the ray-triangle hit and the vertex
 * normals to the mesh vertices, the colour into the texture field's parameters and,
 * through its lookup position (dmtet_hash_encode_vjp_u, then the hit's barycentrics), into
 * the mesh vertices too; mesh vertices flow into the SDF values and deformations through
 * the crossings. Regularisers, added to
 * the loss of the TRAIN render whose backward follows:
 *     lambda_normal_consistency mean over interior edges (1 - <n_f, n_g>)
 *     lambda_laplacian          mean over vertices |x_v - mean of its neighbours|^2
 * logged as dmtet_normal_consistency and dmtet_laplacian; dmtet_faces logs the mesh size.
 *
 * Determinism: the extraction, the rasteriser's bands, the antialiasing's pair records and
 * the vertex scatters run in fixed orders; the texture's gradients accumulate in
 * DMTET_GRAD_SHARDS buffers fixed by pixel block (as nerf.c does), summed in shard order. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/steinlab.h"
#include "steinlab/thread_scratch.h"
#include "nerf_math.h"
#include "nerf_mlp.h"
#include "dmtet_math.h"
#include "mesh_init.h"
#include "raster.h"
#include "surface_ops.h"
#include "tetgrid.h"

enum {
    DMTET_CH = 8,               /* pre-antialiasing channels: rgb, depth, normal, opacity */
    DMTET_PIXEL_BLOCK = 256,    /* pixels per block of the texture backward */
    DMTET_GRAD_SHARDS = 8,      /* gradient buffers of the texture backward (fixed) */
    DMTET_MAX_LAYERS = 4,       /* texture MLP layers (hidden + output) */
    DMTET_MAX_WIDTH = 128       /* texture MLP hidden width */
};

enum { DMTET_BG_SOLID = 0, DMTET_BG_RANDOM = 1 };
enum { DMTET_STREAM_INIT = 0, DMTET_STREAM_BG = 1 };


/* One camera's forward state. */
typedef struct dm_view_buf {
    dm_raster_view v;
    float *pre;       /* (H, W, DMTET_CH) before antialiasing */
    float *rec;       /* (H, W, rec_size) texture activations: enc, hidden, rgb */
    float bg[3];
} dm_view_buf;

typedef struct dmtet_state {
    const sl_host *host;
    dm_tetgrid grid;
    dm_mt_case mt[16];              /* marching-tetrahedra cases */
    float deform_scale[3];          /* deform_fraction * cell, per axis */
    float *base;                    /* (nv, 3) undeformed vertices */
    /* parameter groups */
    float *sdf, *dsdf;              /* (nv,) "sdf" */
    float *def, *ddef;              /* (nv, 3) "deformation" (pre-tanh) */
    nerf_grid tex;                  /* texture hash grid */
    size_t n_table;
    float *table, *dtable;          /* (entries, F) "encoding" */
    nerf_mlp mlp;      /* the texture MLP (nerf_mlp.h) */
    float *mlp_p, *dmlp_p;          /* (mlp.n_params,) "color_mlp" */
    int rec_size;                   /* enc + hidden + 3 */
    int bg_mode;
    float bg_color[3];
    float lambda_nc, lambda_lap;
    /* the mesh of the last render */
    dm_surface surf;
    dm_topology topo;
    float *vn_raw, *vn;             /* (cap_sv, 3) vertex normals */
    size_t cap_sv;
    dm_raster_scratch rs;
    /* per-camera forward state */
    dm_view_buf *views;             /* (cap_views,) */
    int cap_views;
    size_t cap_px, cap_mv, cap_mf;  /* what each view is sized for */
    int saved_batch, saved_h, saved_w;
    sl_camera *saved_cams;          /* (cap_views,) */
    /* backward scratch */
    float *dsv, *dvn, *tmp3;        /* (cap_sv, 3) */
    float *dpre, *gout, *pair_f, *pix_rec, *pix_dpos;   /* per pixel of one view */
    int32_t *pair_v;
    float *shard;                   /* (DMTET_GRAD_SHARDS, n_table + mlp.n_params) */
} dmtet_state;

static const sl_param_def dmtet_params[] = {
    { .name = "grid_resolution", .type = SL_PARAM_INT, .default_value = "64", .min = 2,
      .max = 256, .doc = "cubes per axis of the tetrahedral grid (6 tetrahedra per cube; "
                         "32..128 in practice)" },
    { .name = "radius", .type = SL_PARAM_FLOAT, .default_value = "1.0", .min = 1e-3, .max = 1e4,
      .doc = "half size of the cubic grid box around center" },
    { .name = "center", .type = SL_PARAM_FLOAT_LIST, .default_value = "[0, 0, 0]",
      .min = -1e4, .max = 1e4, .min_len = 3, .max_len = 3, .doc = "centre of the grid box" },
    { .name = "deform_fraction", .type = SL_PARAM_FLOAT, .default_value = "0.25", .min = 0,
      .max = 0.5, .doc = "vertex deformation bound: fraction of the cell size per axis "
                         "(x = base + fraction * cell * tanh(d))" },
    { .name = "init", .type = SL_PARAM_CHOICE, .default_value = "sphere",
      .choices = "sphere|ellipsoid|run_mesh",
      .doc = "initial SDF: sphere of init_radius, ellipsoid of init_radii (at center), or "
             "run_mesh: the final mesh in the log init_run of a finished run (a NeRF's)" },
    { .name = "init_run", .type = SL_PARAM_STRING, .default_value = NULL,
      .doc = "init: run_mesh: path of the finished run's log (RUN.h5), relative to the spec" },
    { .name = "init_samples", .type = SL_PARAM_INT, .default_value = "200000", .min = 1000,
      .max = 100000000, .doc = "init: run_mesh: surface samples for the distance (its error "
                               "is about their spacing)" },
    { .name = "init_radius", .type = SL_PARAM_FLOAT, .default_value = "0.5", .min = 1e-3,
      .max = 1e4, .doc = "radius of the initial sphere" },
    { .name = "init_radii", .type = SL_PARAM_FLOAT_LIST, .default_value = "[0.5, 0.5, 0.5]",
      .min = 1e-3, .max = 1e4, .min_len = 3, .max_len = 3,
      .doc = "semi-axes of the initial ellipsoid (SDF approximated by (|x/r| - 1) min r)" },
    { .name = "levels", .type = SL_PARAM_INT, .default_value = "8", .min = 1,
      .max = NERF_MAX_LEVELS, .doc = "texture hash encoding: number of levels L" },
    { .name = "features_per_level", .type = SL_PARAM_INT, .default_value = "2", .min = 1,
      .max = 8, .doc = "texture hash encoding: features per level F" },
    { .name = "log2_table_size", .type = SL_PARAM_INT, .default_value = "15", .min = 4,
      .max = 22, .doc = "texture hash encoding: log2 of the entries of a hashed level" },
    { .name = "base_resolution", .type = SL_PARAM_INT, .default_value = "16", .min = 1,
      .max = 4096, .doc = "texture hash encoding: cells per axis of the coarsest level" },
    { .name = "growth_factor", .type = SL_PARAM_FLOAT, .default_value = "1.447", .min = 1,
      .max = 4, .doc = "texture hash encoding: resolution ratio of consecutive levels" },
    { .name = "hash_init", .type = SL_PARAM_FLOAT, .default_value = "1e-4", .min = 0, .max = 1,
      .doc = "hash table entries start uniform in [-hash_init, hash_init]" },
    { .name = "color_width", .type = SL_PARAM_INT, .default_value = "32", .min = 1,
      .max = DMTET_MAX_WIDTH, .doc = "texture MLP: hidden width" },
    { .name = "color_layers", .type = SL_PARAM_INT, .default_value = "1", .min = 0,
      .max = DMTET_MAX_LAYERS - 1, .doc = "texture MLP: hidden layers (ReLU)" },
    { .name = "background", .type = SL_PARAM_CHOICE, .default_value = "solid",
      .choices = "solid|random",
      .doc = "solid: background_color; random: a uniform random colour per render and step "
             "in training (background_color in evaluation)" },
    { .name = "background_color", .type = SL_PARAM_FLOAT_LIST, .default_value = "[1, 1, 1]",
      .min = 0, .max = 1, .min_len = 3, .max_len = 3, .doc = "solid background colour" },
    { .name = "lambda_normal_consistency", .type = SL_PARAM_FLOAT, .default_value = "0",
      .min = 0, .max = 1e6, .doc = "weight of mean over interior mesh edges of "
                                   "1 - <n_f, n_g> (adjacent face normals)" },
    { .name = "lambda_laplacian", .type = SL_PARAM_FLOAT, .default_value = "0", .min = 0,
      .max = 1e6, .doc = "weight of the uniform Laplacian smoothing mean_v |x_v - mean of "
                         "neighbours|^2" },
};

/* ------------------------------------------------------------------ the colour MLP */

/* Texture colour at world point x; rec (rec_size,) receives enc, hidden acts, rgb. */
static void dmtet_texture(const dmtet_state *s, const float x[3], float *rec)
{
    float u[3];
    for (int k = 0; k < 3; k++) {
        float t = (x[k] - s->grid.bmin[k]) / (s->grid.bmax[k] - s->grid.bmin[k]);
        u[k] = t < 0 ? 0 : (t > 1 ? 1 : t);
    }
    const int enc_n = s->tex.levels * s->tex.feat;
    float *enc = rec, *acts = rec + enc_n, *rgb = acts + s->mlp.hidden_total;
    nerf_hash_encode(&s->tex, s->table, u, enc);
    float logit[3];
    nerf_mlp_forward(&s->mlp, s->mlp_p, NULL, enc, acts, logit);
    for (int c = 0; c < 3; c++)
        rgb[c] = nerf_sigmoid(logit[c]);
}

/* ------------------------------------------------------------------ lifecycle */

/* Frees the per-camera buffers and the per-pixel backward scratch sized with them. */
static void dmtet_free_views(dmtet_state *s)
{
    for (int b = 0; b < s->cap_views; b++) {
        dm_view_buf *vb = &s->views[b];
        free(vb->v.tri);
        free(vb->v.hit);
        free(vb->v.uv);
        free(vb->v.zc);
        free(vb->v.facing);
        free(vb->pre);
        free(vb->rec);
    }
    free(s->views);
    free(s->saved_cams);
    float **scratch[] = { &s->dpre, &s->gout, &s->pair_f, &s->pix_rec, &s->pix_dpos };
    for (size_t k = 0; k < sizeof scratch / sizeof scratch[0]; k++) {
        free(*scratch[k]);
        *scratch[k] = NULL;
    }
    free(s->pair_v);
    s->pair_v = NULL;
    s->views = NULL;
    s->saved_cams = NULL;
    s->cap_views = 0;
    s->cap_px = s->cap_mv = s->cap_mf = 0;
}

static void dmtet_destroy(void *state)
{
    dmtet_state *s = state;
    if (!s)
        return;
    const sl_host *h = s->host;
    h->free_mem(h, s->sdf);
    h->free_mem(h, s->dsdf);
    h->free_mem(h, s->def);
    h->free_mem(h, s->ddef);
    h->free_mem(h, s->table);
    h->free_mem(h, s->dtable);
    h->free_mem(h, s->mlp_p);
    h->free_mem(h, s->dmlp_p);
    free(s->base);
    free(s->shard);
    dm_surface_free(&s->surf);
    dm_topology_free(&s->topo);
    dm_raster_scratch_free(&s->rs);
    free(s->vn_raw);
    free(s->vn);
    free(s->dsv);
    free(s->dvn);
    free(s->tmp3);
    dmtet_free_views(s);
    free(s);
}

/* Initial SDF of the analytic shape at world point x. */
static float dmtet_init_sdf(const sl_params *params, const float c[3], const float x[3])
{
    if (strcmp(sl_params_string(params, "init"), "sphere") == 0) {
        float r = (float)sl_params_float(params, "init_radius");
        float d[3] = { x[0] - c[0], x[1] - c[1], x[2] - c[2] };
        return sqrtf(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]) - r;
    }
    float q = 0, rmin = INFINITY;
    for (int k = 0; k < 3; k++) {
        float r = (float)sl_params_list_float(params, "init_radii", (size_t)k);
        q += (x[k] - c[k]) * (x[k] - c[k]) / (r * r);
        rmin = fminf(rmin, r);
    }
    return (sqrtf(q) - 1) * rmin;
}

static sl_status dmtet_create(const sl_host *host, const sl_params *params, void **state,
                              sl_error *err)
{
    dmtet_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory");
    s->host = host;
    sl_status st = SL_OK;
    float c[3], bmin[3], bmax[3];
    float r = (float)sl_params_float(params, "radius");
    for (int k = 0; k < 3; k++) {
        c[k] = (float)sl_params_list_float(params, "center", (size_t)k);
        bmin[k] = c[k] - r;
        bmax[k] = c[k] + r;
    }
    dm_tetgrid_init(&s->grid, (int)sl_params_int(params, "grid_resolution"), bmin, bmax);
    dm_mt_table(s->mt);
    float frac = (float)sl_params_float(params, "deform_fraction");
    for (int k = 0; k < 3; k++)
        s->deform_scale[k] = frac * s->grid.cell[k];
    const size_t nv = s->grid.n_vertices;

    /* Texture hash grid (nerf_math.h's layout). */
    nerf_grid *g = &s->tex;
    g->levels = (int)sl_params_int(params, "levels");
    g->feat = (int)sl_params_int(params, "features_per_level");
    int log2T = (int)sl_params_int(params, "log2_table_size");
    int nmin = (int)sl_params_int(params, "base_resolution");
    double gb = sl_params_float(params, "growth_factor");
    uint64_t total = 0;
    for (int l = 0; l < g->levels; l++) {
        double res = floor((double)nmin * pow(gb, l));
        if (res > 1e6) {
            st = sl_error_set(err, SL_ERR_SPEC, "dmtet: texture level %d would have %.0f cells "
                              "per axis: at most 1e6", l, res);
            goto fail;
        }
        g->res[l] = (int)res;
        uint64_t verts = (uint64_t)(g->res[l] + 1) * (g->res[l] + 1) * (g->res[l] + 1);
        g->dense[l] = verts <= (1ull << log2T);
        g->size[l] = g->dense[l] ? (uint32_t)verts : (1u << log2T);
        g->offset[l] = (uint32_t)total;
        total += g->size[l];
    }
    g->entries = (uint32_t)total;
    s->n_table = (size_t)total * (size_t)g->feat;
    if (!nerf_mlp_init(&s->mlp, g->levels * g->feat, (int)sl_params_int(params, "color_width"),
                       (int)sl_params_int(params, "color_layers"), 3)) {
        st = sl_error_set(err, SL_ERR_SPEC, "dmtet: levels x features_per_level = %d is wider "
                          "than %d", g->levels * g->feat, NERF_MAX_WIDTH);
        goto fail;
    }
    s->rec_size = g->levels * g->feat + s->mlp.hidden_total + 3;
    s->bg_mode = strcmp(sl_params_string(params, "background"), "random") == 0
                     ? DMTET_BG_RANDOM : DMTET_BG_SOLID;
    for (int k = 0; k < 3; k++)
        s->bg_color[k] = (float)sl_params_list_float(params, "background_color", (size_t)k);
    s->lambda_nc = (float)sl_params_float(params, "lambda_normal_consistency");
    s->lambda_lap = (float)sl_params_float(params, "lambda_laplacian");

#define DMTET_HALLOC(ptr, count)                                                          \
    do {                                                                                  \
        (ptr) = host->alloc(host, ((count) > 0 ? (count) : 1) * sizeof(float));          \
        if (!(ptr)) {                                                                     \
            st = sl_error_set(err, SL_ERR_NOMEM, "dmtet: cannot allocate %s (%zu floats)", \
                              #ptr, (size_t)(count));                                     \
            goto fail;                                                                    \
        }                                                                                 \
    } while (0)
    DMTET_HALLOC(s->sdf, nv);
    DMTET_HALLOC(s->dsdf, nv);
    DMTET_HALLOC(s->def, 3 * nv);
    DMTET_HALLOC(s->ddef, 3 * nv);
    DMTET_HALLOC(s->table, s->n_table);
    DMTET_HALLOC(s->dtable, s->n_table);
    DMTET_HALLOC(s->mlp_p, s->mlp.n_params);
    DMTET_HALLOC(s->dmlp_p, s->mlp.n_params);
#undef DMTET_HALLOC
    s->base = malloc(nv * 3 * sizeof(float));
    s->shard = malloc((size_t)DMTET_GRAD_SHARDS * (s->n_table + s->mlp.n_params) * sizeof(float));
    if (!s->base || !s->shard) {
        st = sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory (grid of %zu vertices)", nv);
        goto fail;
    }
    const int from_run = strcmp(sl_params_string(params, "init"), "run_mesh") == 0;
    for (size_t v = 0; v < nv; v++) {
        dm_tetgrid_vertex(&s->grid, v, s->base + 3 * v);
        if (!from_run)
            s->sdf[v] = dmtet_init_sdf(params, c, s->base + 3 * v);
    }
    if (from_run) {
        if (!sl_params_has(params, "init_run")) {
            st = sl_error_set(err, SL_ERR_SPEC, "dmtet: init: run_mesh needs init_run (the "
                              "log of a finished run)");
            goto fail;
        }
        char path[4096];
        sl_mesh m;
        if ((st = sl_host_path(host, sl_params_string(params, "init_run"), path, sizeof path,
                               err)) != SL_OK ||
            (st = dm_read_run_mesh(path, &m, err)) != SL_OK)
            goto fail;
        st = dm_sdf_from_mesh(&m, &s->grid, (size_t)sl_params_int(params, "init_samples"),
                              s->sdf, err);
        host->log(host, SL_LOG_INFO, "initial SDF from the mesh of '%s' (%zu vertices, %zu "
                  "triangles)", path, m.n_vertices, m.n_faces);
        sl_mesh_free(&m);
        if (st != SL_OK)
            goto fail;
    }
    /* Texture: table uniform in [-a, a] (sample 0 of the init stream), MLP weights
     * Xavier-uniform (sample 1), zero biases. */
    {
        float a = (float)sl_params_float(params, "hash_init");
        sl_rng_key key = { .seed = host->seed, .step = 0,
                           .stream = host->rng_stream_base + DMTET_STREAM_INIT, .sample = 0 };
        sl_rng_uniform(key, 0, s->n_table, s->table);
        for (size_t i = 0; i < s->n_table; i++)
            s->table[i] = a * (2 * s->table[i] - 1);
        key.sample = 1;
        const nerf_mlp *m = &s->mlp;
        for (int k = 0; k < m->n_layers; k++) {
            size_t n = (size_t)m->dims[k] * m->dims[k + 1];
            float lim = sqrtf(6.0f / (float)(m->dims[k] + m->dims[k + 1]));
            float *w = s->mlp_p + m->w_off[k];
            sl_rng_uniform(key, m->w_off[k], n, w);
            for (size_t i = 0; i < n; i++)
                w[i] = lim * (2 * w[i] - 1);
        }
    }
    static const char *const series[][2] = {
        { "dmtet_faces", "triangles of the mesh extracted by the TRAIN render" },
        { "dmtet_normal_consistency", "lambda_normal_consistency mean over interior edges of "
                                      "1 - <n_f, n_g> (in the gradient when lambda > 0)" },
        { "dmtet_laplacian", "lambda_laplacian mean_v |x_v - mean of neighbours|^2 (in the "
                             "gradient when lambda > 0)" },
    };
    for (size_t i = 0; i < sizeof series / sizeof series[0]; i++)
        if ((st = host->declare_series(host, series[i][0], series[i][1], err)) != SL_OK)
            goto fail;
    host->log(host, SL_LOG_INFO, "tetrahedral grid %d^3 cubes (%zu vertices, %zu tetrahedra); "
              "texture %d levels x %d features (%u entries), MLP %zu parameters",
              s->grid.res, nv, (size_t)6 * s->grid.res * s->grid.res * s->grid.res, g->levels,
              g->feat, g->entries, s->mlp.n_params);
    *state = s;
    return SL_OK;
fail:
    dmtet_destroy(s);
    return st;
}

static uint32_t dmtet_outputs(const void *state)
{
    (void)state;
    return SL_RENDER_RGB | SL_RENDER_DEPTH | SL_RENDER_NORMAL | SL_RENDER_OPACITY;
}

static size_t dmtet_param_groups(void *state, sl_param_group *groups, size_t max)
{
    dmtet_state *s = state;
    const size_t nv = s->grid.n_vertices;
    sl_param_group all[4] = {
        { .name = "sdf", .data = s->sdf, .grad = s->dsdf, .n = nv },
        { .name = "deformation", .data = s->def, .grad = s->ddef, .n = 3 * nv },
        { .name = "encoding", .data = s->table, .grad = s->dtable, .n = s->n_table },
        { .name = "color_mlp", .data = s->mlp_p, .grad = s->dmlp_p, .n = s->mlp.n_params },
    };
    for (size_t i = 0; i < 4 && i < max; i++)
        groups[i] = all[i];
    return 4;
}

/* ------------------------------------------------------------------ render */

/* The mesh of the deformed grid, its topology and vertex normals. */
static sl_status dmtet_extract(dmtet_state *s, sl_error *err)
{
    sl_status st = dm_marching_tets(&s->grid, s->mt, s->base, s->def, s->deform_scale, s->sdf,
                                    &s->surf, err);
    if (st != SL_OK)
        return st;
    const size_t n = s->surf.n_verts;
    if (n > s->cap_sv || !s->vn) {
        size_t cap = n > 1024 ? n : 1024;
        float **arrs[] = { &s->vn_raw, &s->vn, &s->dsv, &s->dvn, &s->tmp3 };
        for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
            free(*arrs[i]);
            *arrs[i] = malloc(cap * 3 * sizeof(float));
            if (!*arrs[i]) {
                s->cap_sv = 0;
                return sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory (%zu mesh "
                                    "vertices)", n);
            }
        }
        s->cap_sv = cap;
    }
    if ((st = dm_topology_build(s->surf.faces, s->surf.n_faces, n, &s->topo, err)) != SL_OK)
        return st;
    dm_vertex_normals(s->surf.verts, n, s->surf.faces, s->surf.n_faces, s->vn_raw, s->vn);
    return SL_OK;
}

/* Grows the per-camera buffers to B views of px pixels for the current mesh. */
static sl_status dmtet_reserve_views(dmtet_state *s, int B, size_t px, sl_error *err)
{
    size_t mv = s->surf.n_verts > 0 ? s->surf.n_verts : 1;
    size_t mf = s->surf.n_faces > 0 ? s->surf.n_faces : 1;
    if (B <= s->cap_views && px <= s->cap_px && mv <= s->cap_mv && mf <= s->cap_mf)
        return SL_OK;
    int nb = B > s->cap_views ? B : s->cap_views;
    px = px > s->cap_px ? px : s->cap_px;
    mv = mv > s->cap_mv ? mv + mv / 2 : s->cap_mv;
    mf = mf > s->cap_mf ? mf + mf / 2 : s->cap_mf;
    dmtet_free_views(s);
    s->views = calloc((size_t)nb, sizeof *s->views);
    s->saved_cams = calloc((size_t)nb, sizeof *s->saved_cams);
    s->dpre = malloc(px * DMTET_CH * sizeof(float));
    s->gout = malloc(px * DMTET_CH * sizeof(float));
    s->pair_f = malloc(px * 8 * sizeof(float));
    s->pix_rec = malloc(px * 18 * sizeof(float));
    s->pix_dpos = malloc(px * 3 * sizeof(float));
    s->pair_v = malloc(px * 4 * sizeof(int32_t));
    int ok = s->views && s->saved_cams && s->dpre && s->gout && s->pair_f && s->pix_rec &&
             s->pix_dpos && s->pair_v;
    if (s->views) {
        s->cap_views = nb;
        for (int b = 0; ok && b < nb; b++) {
            dm_view_buf *vb = &s->views[b];
            vb->v.tri = malloc(px * sizeof(int32_t));
            vb->v.hit = malloc(px * 3 * sizeof(float));
            vb->v.uv = malloc(mv * 2 * sizeof(float));
            vb->v.zc = malloc(mv * sizeof(float));
            vb->v.facing = malloc(mf);
            vb->pre = malloc(px * DMTET_CH * sizeof(float));
            vb->rec = malloc(px * (size_t)s->rec_size * sizeof(float));
            ok = vb->v.tri && vb->v.hit && vb->v.uv && vb->v.zc && vb->v.facing && vb->pre &&
                 vb->rec;
        }
    }
    if (!ok) {
        dmtet_free_views(s);
        return sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory (%d views of %zu pixels)",
                            B, px);
    }
    s->cap_px = px, s->cap_mv = mv, s->cap_mf = mf;
    return SL_OK;
}

static dm_raster_mesh dmtet_rmesh(const dmtet_state *s)
{
    return (dm_raster_mesh){ .verts = s->surf.verts, .vnormal = s->vn, .faces = s->surf.faces,
                             .opposite = s->topo.opposite, .n_verts = s->surf.n_verts,
                             .n_faces = s->surf.n_faces };
}

static sl_status dmtet_render(void *state, const sl_render_request *req, sl_render *out,
                              sl_error *err)
{
    dmtet_state *s = state;
    const int B = out->batch, H = out->height, W = out->width;
    if (B < 1 || H < 1 || W < 1 || req->batch != B)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "dmtet: bad render size (batch %d, "
                            "%dx%d; request batch %d)", B, H, W, req->batch);
    for (int b = 0; b < B; b++)
        if (req->cams[b].width != W || req->cams[b].height != H)
            return sl_error_set(err, SL_ERR_INVALID_ARG, "dmtet: camera %d is %dx%d, the "
                                "render %dx%d", b, req->cams[b].width, req->cams[b].height, W, H);
    const int train = req->mode == SL_RENDER_TRAIN;
    s->saved_batch = 0;
    sl_status st = dmtet_extract(s, err);
    if (st != SL_OK)
        return st;
    const size_t px = (size_t)H * W;
    if ((st = dmtet_reserve_views(s, B, px, err)) != SL_OK)
        return st;
    const dm_raster_mesh rm = dmtet_rmesh(s);
    float *post = s->gout;   /* (H, W, DMTET_CH) antialiased, reused per camera */
    for (int b = 0; b < B; b++) {
        dm_view_buf *vb = &s->views[b];
        const sl_camera *cam = &req->cams[b];
        s->saved_cams[b] = *cam;
        if (train && s->bg_mode == DMTET_BG_RANDOM) {
            sl_rng_key key = { .seed = s->host->seed, .step = (uint32_t)req->step,
                               .stream = s->host->rng_stream_base + DMTET_STREAM_BG,
                               .sample = (uint32_t)b };
            sl_rng_uniform(key, 0, 3, vb->bg);
        } else {
            memcpy(vb->bg, s->bg_color, sizeof vb->bg);
        }
        if ((st = dm_rasterize(&rm, cam, &vb->v, &s->rs, err)) != SL_OK)
            return st;
#pragma omp parallel for schedule(static)
        for (size_t p = 0; p < px; p++) {
            float *pre = vb->pre + DMTET_CH * p;
            int32_t f = vb->v.tri[p];
            if (f < 0) {
                memset(pre, 0, DMTET_CH * sizeof(float));
                memcpy(pre, vb->bg, 3 * sizeof(float));
                continue;
            }
            const float *hit = vb->v.hit + 3 * p;
            float x[3];
            float *rec = vb->rec + (size_t)s->rec_size * p;
            dm_pixel_attributes(&rm, f, hit, x, pre + 4);
            dmtet_texture(s, x, rec);
            memcpy(pre, rec + s->rec_size - 3, 3 * sizeof(float));
            pre[3] = hit[0];
            pre[7] = 1;
        }
        dm_antialias(&rm, &vb->v, H, W, DMTET_CH, vb->pre, post);
        const size_t o = (size_t)b * px;
#pragma omp parallel for schedule(static)
        for (size_t p = 0; p < px; p++) {
            const float *q = post + DMTET_CH * p;
            if (out->rgb)
                memcpy(out->rgb + 3 * (o + p), q, 3 * sizeof(float));
            if (out->depth)
                out->depth[o + p] = q[3];
            if (out->normal)
                memcpy(out->normal + 3 * (o + p), q + 4, 3 * sizeof(float));
            if (out->opacity)
                out->opacity[o + p] = q[7];
        }
    }
    if (train) {
        s->host->record(s->host, "dmtet_faces", (double)s->surf.n_faces);
        s->saved_batch = B;
        s->saved_h = H;
        s->saved_w = W;
    }
    return SL_OK;
}

/* ------------------------------------------------------------------ backward */

static sl_status dmtet_backward(void *state, const sl_render *grad, sl_error *err)
{
    dmtet_state *s = state;
    if (s->saved_batch == 0)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "dmtet: backward without a TRAIN render");
    const int B = s->saved_batch, H = s->saved_h, W = s->saved_w;
    if (grad->batch != B || grad->height != H || grad->width != W)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "dmtet: gradient is %d x %dx%d, the "
                            "render was %d x %dx%d", grad->batch, grad->height, grad->width, B,
                            H, W);
    const size_t px = (size_t)H * W, nsv = s->surf.n_verts;
    const dm_raster_mesh rm = dmtet_rmesh(s);
    const size_t n_tex = s->n_table + s->mlp.n_params;
    memset(s->dsv, 0, nsv * 3 * sizeof(float));
    memset(s->dvn, 0, nsv * 3 * sizeof(float));
    memset(s->shard, 0, (size_t)DMTET_GRAD_SHARDS * n_tex * sizeof(float));
    const int enc_n = s->tex.levels * s->tex.feat;
    for (int b = 0; b < B; b++) {
        dm_view_buf *vb = &s->views[b];
        const sl_camera *cam = &s->saved_cams[b];
        const size_t o = (size_t)b * px;
#pragma omp parallel for schedule(static)
        for (size_t p = 0; p < px; p++) {
            float *g = s->gout + DMTET_CH * p;
            for (int c = 0; c < 3; c++) {
                g[c] = grad->rgb ? grad->rgb[3 * (o + p) + c] : 0;
                g[4 + c] = grad->normal ? grad->normal[3 * (o + p) + c] : 0;
            }
            g[3] = grad->depth ? grad->depth[o + p] : 0;
            g[7] = grad->opacity ? grad->opacity[o + p] : 0;
        }
        dm_antialias_vjp(&rm, &vb->v, cam, H, W, DMTET_CH, vb->pre, s->gout, s->dpre,
                         s->pair_f, s->pair_v, s->dsv);
        /* Texture: pixel blocks belong to shard (block mod DMTET_GRAD_SHARDS). */
        const size_t nblocks = (px + DMTET_PIXEL_BLOCK - 1) / DMTET_PIXEL_BLOCK;
#pragma omp parallel for schedule(dynamic, 1)
        for (int sh = 0; sh < DMTET_GRAD_SHARDS; sh++) {
            float *gt = s->shard + (size_t)sh * n_tex, *gm = gt + s->n_table;
            float denc[NERF_MAX_LEVELS * 8];
            for (size_t blk = (size_t)sh; blk < nblocks; blk += DMTET_GRAD_SHARDS) {
                size_t p1 = (blk + 1) * DMTET_PIXEL_BLOCK < px ? (blk + 1) * DMTET_PIXEL_BLOCK : px;
                for (size_t p = blk * DMTET_PIXEL_BLOCK; p < p1; p++) {
                    float *dposp = s->pix_dpos + 3 * p;
                    dposp[0] = dposp[1] = dposp[2] = 0;
                    if (vb->v.tri[p] < 0)
                        continue;
                    const float *rec = vb->rec + (size_t)s->rec_size * p;
                    const float *rgb = rec + s->rec_size - 3;
                    const float *dp = s->dpre + DMTET_CH * p;
                    float dlogit[3];
                    for (int c = 0; c < 3; c++)
                        dlogit[c] = dp[c] * rgb[c] * (1 - rgb[c]);
                    if (dlogit[0] == 0 && dlogit[1] == 0 && dlogit[2] == 0)
                        continue;
                    nerf_mlp_backward(&s->mlp, s->mlp_p, gm, rec, rec + enc_n, dlogit, denc);
                    /* The lookup position, as in the forward pass. */
                    float x[3], nrm[3], u[3], du[3] = { 0, 0, 0 };
                    dm_pixel_attributes(&rm, vb->v.tri[p], vb->v.hit + 3 * p, x, nrm);
                    for (int k = 0; k < 3; k++) {
                        float t = (x[k] - s->grid.bmin[k]) / (s->grid.bmax[k] - s->grid.bmin[k]);
                        u[k] = t < 0 ? 0 : (t > 1 ? 1 : t);
                    }
                    nerf_hash_encode_vjp(&s->tex, u, denc, gt);
                    /* The lookup position (no gradient where u is clamped to the box). */
                    dmtet_hash_encode_vjp_u(&s->tex, s->table, u, denc, du);
                    for (int k = 0; k < 3; k++) {
                        float span = s->grid.bmax[k] - s->grid.bmin[k];
                        float t = (x[k] - s->grid.bmin[k]) / span;
                        dposp[k] = t > 0 && t < 1 ? du[k] / span : 0;
                    }
                }
            }
        }
        /* Depth, normals and the texture's lookup position: per-pixel vertex gradients,
         * scattered below in pixel order. */
#pragma omp parallel for schedule(static)
        for (size_t p = 0; p < px; p++) {
            int32_t f = vb->v.tri[p];
            float *r = s->pix_rec + 18 * p;
            if (f < 0)
                continue;
            const float *dp = s->dpre + DMTET_CH * p;
            dm_pixel_attributes_vjp(&rm, cam, (int)(p / (size_t)W), (int)(p % (size_t)W), f,
                                    vb->v.hit + 3 * p, dp[3], dp + 4, s->pix_dpos + 3 * p, r,
                                    r + 9);
        }
        for (size_t p = 0; p < px; p++) {
            int32_t f = vb->v.tri[p];
            if (f < 0)
                continue;
            const float *r = s->pix_rec + 18 * p;
            for (int q = 0; q < 3; q++) {
                size_t v = (size_t)s->surf.faces[3 * (size_t)f + q];
                for (int k = 0; k < 3; k++) {
                    s->dsv[3 * v + k] += r[3 * q + k];
                    s->dvn[3 * v + k] += r[9 + 3 * q + k];
                }
            }
        }
    }
    for (int sh = 0; sh < DMTET_GRAD_SHARDS; sh++) {
        const float *gt = s->shard + (size_t)sh * n_tex;
        for (size_t i = 0; i < s->n_table; i++)
            s->dtable[i] += gt[i];
        for (size_t i = 0; i < s->mlp.n_params; i++)
            s->dmlp_p[i] += gt[s->n_table + i];
    }
    dm_vertex_normals_vjp(s->surf.verts, nsv, s->surf.faces, s->surf.n_faces, s->vn_raw,
                          s->dvn, s->tmp3, s->dsv);
    double nc = dm_normal_consistency(s->surf.verts, s->surf.faces, s->surf.n_faces, &s->topo,
                                      s->lambda_nc, s->lambda_nc > 0 ? s->dsv : NULL);
    double lap = dm_laplacian(s->surf.verts, nsv, &s->topo, s->lambda_lap, s->tmp3,
                              s->lambda_lap > 0 ? s->dsv : NULL);
    s->host->record(s->host, "dmtet_normal_consistency", nc);
    s->host->record(s->host, "dmtet_laplacian", lap);
    dm_marching_tets_backward(&s->surf, s->base, s->def, s->deform_scale, s->sdf, s->dsv,
                              s->ddef, s->dsdf);
    return SL_OK;
}

/* ------------------------------------------------------------------ fields */

/* Density-like field for mesh export and Chamfer: minus the SDF, interpolated linearly in
 * the UNDEFORMED Kuhn tetrahedron containing the point (the deformation, at most
 * deform_fraction of a cell, is ignored), 0 outside the grid box. The tetrahedron of a
 * point with fractional cube coordinates f is the one of the axis order sorting f
 * decreasingly; its barycentrics are (1 - f_p0, f_p0 - f_p1, f_p1 - f_p2, f_p2).
 * rgb: the texture at the point. Level 0 (field_bounds). */
static sl_status dmtet_sample_field(void *state, const float *points, size_t n, float *density,
                                    float *rgb, sl_error *err)
{
    dmtet_state *s = state;
    const dm_tetgrid *g = &s->grid;
    const size_t n1 = (size_t)g->res + 1;
    float *scratch = sl_thread_scratch_alloc((size_t)s->rec_size);
    if (!scratch)
        return sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory sampling the field");
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float *rec = sl_thread_scratch(scratch, (size_t)s->rec_size);
        const float *x = points + 3 * i;
        int inside = 1;
        size_t idx[3];
        float f[3];
        for (int k = 0; k < 3; k++) {
            inside &= x[k] >= g->bmin[k] && x[k] <= g->bmax[k];
            float c = (x[k] - g->bmin[k]) / g->cell[k];
            int ci = (int)floorf(c);
            ci = ci < 0 ? 0 : (ci > g->res - 1 ? g->res - 1 : ci);
            idx[k] = (size_t)ci;
            f[k] = c - (float)ci;
        }
        if (!inside) {
            density[i] = 0;
            if (rgb)
                rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = 0;
            continue;
        }
        int p0 = 0, p1 = 1, p2 = 2, tmp;
        if (f[p1] > f[p0])
            tmp = p0, p0 = p1, p1 = tmp;
        if (f[p2] > f[p1])
            tmp = p1, p1 = p2, p2 = tmp;
        if (f[p1] > f[p0])
            tmp = p0, p0 = p1, p1 = tmp;
        size_t base = idx[0] + n1 * (idx[1] + n1 * idx[2]);
        size_t step[3] = { 1, n1, n1 * n1 };
        size_t v1 = base + step[p0], v2 = v1 + step[p1], v3 = v2 + step[p2];
        float sdf = (1 - f[p0]) * s->sdf[base] + (f[p0] - f[p1]) * s->sdf[v1] +
                    (f[p1] - f[p2]) * s->sdf[v2] + f[p2] * s->sdf[v3];
        density[i] = -sdf;
        if (rgb) {
            dmtet_texture(s, x, rec);
            memcpy(rgb + 3 * i, rec + s->rec_size - 3, 3 * sizeof(float));
        }
    }
    free(scratch);
    return SL_OK;
}

static void dmtet_field_bounds(const void *state, float bounds[6], float *threshold)
{
    const dmtet_state *s = state;
    for (int k = 0; k < 3; k++) {
        bounds[k] = s->grid.bmin[k];
        bounds[3 + k] = s->grid.bmax[k];
    }
    *threshold = 0.0f;
}

/* The surface that renders: marching tetrahedra on the deformed grid (into a surface of
 * its own, so what the last TRAIN render keeps for backward stays intact), vertex colours
 * from the texture field. */
static sl_status dmtet_surface_mesh(void *state, sl_mesh *out, sl_error *err)
{
    dmtet_state *s = state;
    memset(out, 0, sizeof *out);
    dm_surface surf = { 0 };
    sl_status st = dm_marching_tets(&s->grid, s->mt, s->base, s->def, s->deform_scale, s->sdf,
                                    &surf, err);
    const size_t nv = surf.n_verts, nf = surf.n_faces;
    float *scratch = NULL;
    if (st == SL_OK && nf > 0) {
        out->vertices = malloc(nv * 3 * sizeof(float));
        out->faces = malloc(nf * 3 * sizeof(int32_t));
        out->colors = malloc(nv * 3);
        scratch = sl_thread_scratch_alloc((size_t)s->rec_size);
        if (!out->vertices || !out->faces || !out->colors || !scratch)
            st = sl_error_set(err, SL_ERR_NOMEM, "dmtet: out of memory for a mesh of %zu "
                              "vertices", nv);
    }
    if (st == SL_OK && nf > 0) {
        memcpy(out->vertices, surf.verts, nv * 3 * sizeof(float));
        memcpy(out->faces, surf.faces, nf * 3 * sizeof(int32_t));
        out->n_vertices = nv, out->n_faces = nf;
        int nonfinite = 0;
#pragma omp parallel for schedule(static) reduction(| : nonfinite)
        for (size_t v = 0; v < nv; v++) {
            float *rec = sl_thread_scratch(scratch, (size_t)s->rec_size);
            const float *rgb = rec + s->rec_size - 3;   /* dmtet_texture's last three */
            dmtet_texture(s, surf.verts + 3 * v, rec);
            for (int c = 0; c < 3; c++) {
                nonfinite |= !isfinite(surf.verts[3 * v + c]) || isnan(rgb[c]);
                out->colors[3 * v + c] = (uint8_t)lrintf(255.0f * rgb[c]);
            }
        }
        if (nonfinite)
            st = sl_error_set(err, SL_ERR_NONFINITE, "dmtet: the surface has a non-finite "
                              "vertex or colour (the deformation or texture parameters)");
    }
    free(scratch);
    dm_surface_free(&surf);
    if (st != SL_OK)
        sl_mesh_free(out);
    return st;
}

/* An estimate before create(): the grid's groups (4 floats per vertex) and the texture,
 * each with gradient and Adam's two moments, the texture's gradient shards, the grid's
 * own arrays (base, positions, their gradient, the edge map) and, per pixel of the batch,
 * the forward state (hit, face, channels, texture record) and backward scratch. The mesh
 * (a few per cent of the grid's vertices) is not counted. */
static uint64_t dmtet_memory_bytes(const sl_params *params, int resolution, int batch)
{
    double n1 = (double)sl_params_int(params, "grid_resolution") + 1;
    double nv = n1 * n1 * n1;
    double levels = (double)sl_params_int(params, "levels");
    double feats = (double)sl_params_int(params, "features_per_level");
    double table = levels * ldexp(1.0, (int)sl_params_int(params, "log2_table_size")) * feats;
    double width = (double)sl_params_int(params, "color_width");
    double rec = levels * feats + width * (double)sl_params_int(params, "color_layers") + 3;
    double px = (double)resolution * resolution;
    double bytes = 4.0 * (4 * nv * 4 + table * (4 + DMTET_GRAD_SHARDS)) +
                   4.0 * nv * (3 + 7) + nv +
                   4.0 * px * (double)batch * (4 + DMTET_CH + rec) + 4.0 * px * 40;
    return (uint64_t)bytes;
}

static const sl_representation_vtable dmtet_vtable = {
    .struct_size = sizeof(sl_representation_vtable),
    .create = dmtet_create,
    .destroy = dmtet_destroy,
    .outputs = dmtet_outputs,
    .param_groups = dmtet_param_groups,
    .render = dmtet_render,
    .backward = dmtet_backward,
    .sample_field = dmtet_sample_field,
    .field_bounds = dmtet_field_bounds,
    .memory_bytes = dmtet_memory_bytes,
    .surface_mesh = dmtet_surface_mesh,
};

static const sl_plugin dmtet_plugin = {
    .abi_version = SL_ABI_VERSION,
    .struct_size = sizeof(sl_plugin),
    .kind = SL_KIND_REPRESENTATION,
    .name = "dmtet",
    .version = "1.0.0",
    .summary = "Deformable tetrahedral SDF grid (DMTet): differentiable marching tetrahedra, "
               "z-buffer rasteriser with silhouette antialiasing, hash-grid texture field",
    .params = SL_PARAM_SCHEMA(dmtet_params),
    .vtable = &dmtet_vtable,
};

SL_PLUGIN_ENTRY(&dmtet_plugin)
