/* plugins/representations/nerf/nerf_math.h — the NeRF's per-element math, each piece
 * beside its VJP: multi-resolution hash encoding, dense layers and activations, volume
 * compositing, normals (finite-difference and analytic: the density gradient and its
 * second-order VJP), ray/box intersection.
 *
 * Every function is `static inline` and SL_HD (steinlab/device.h): the CPU path calls them
 * from OpenMP loops (nerf.c), CUDA kernels will call the same code.
 *
 * Precision: the functions are written once over a scalar type NM_REAL with names made by
 * NM_FN(name). Including this header plainly gives the float instantiation, nerf_<name>.
 * A test may instantiate it again in double for finite-difference checks:
 *
 *     #define NM_REAL double
 *     #define NM_FN(name) nerfd_##name
 *     #include "nerf_math_impl.h"
 *     #undef NM_REAL
 *     #undef NM_FN
 *
 * Gradient convention (style.md): arguments named d<x> hold dL/d<x>. Each VJP says whether
 * it overwrites (=) or accumulates (+=) its outputs. */
#ifndef NERF_MATH_H
#define NERF_MATH_H

#include <stdint.h>
#include <math.h>

/* Type-generic math, so the float instantiation calls expf/sqrtf (not the double
 * functions) and the double one stays double. (Not <tgmath.h>: its function-like macros
 * would also rewrite calls such as host->log(...) in the including file.) CUDA C++
 * overloads the plain names. */
#if defined(__CUDACC__)
#define NM_RESTRICT __restrict__
#define nm_exp(x) exp(x)
#define nm_log1p(x) log1p(x)
#define nm_sqrt(x) sqrt(x)
#define nm_floor(x) floor(x)
#else
#define NM_RESTRICT restrict
#define nm_exp(x) _Generic((x), float: expf, default: exp)(x)
#define nm_log1p(x) _Generic((x), float: log1pf, default: log1p)(x)
#define nm_sqrt(x) _Generic((x), float: sqrtf, default: sqrt)(x)
#define nm_floor(x) _Generic((x), float: floorf, default: floor)(x)
#endif

#include "steinlab/device.h"

enum {
    NERF_MAX_LEVELS = 16,   /* hash-grid levels */
    NERF_MAX_LAYERS = 8     /* dense layers per MLP (hidden + output) */
};

/* Density activations (nerf_density_act). */
enum { NERF_ACT_SOFTPLUS = 0, NERF_ACT_EXP = 1 };

/* The hash grid's geometry (no parameters: those are the table, a separate array).
 * Level l has res[l] cells per axis, so (res[l] + 1)^3 vertices; a level whose vertices fit
 * in the table is stored densely (one entry per vertex, no collisions), a finer one is
 * hashed into 2^log2_size entries (instant-NGP, Mueller et al. 2022). */
typedef struct nerf_grid {
    int levels;                        /* L */
    int feat;                          /* F features per entry */
    int res[NERF_MAX_LEVELS];          /* (L,) cells per axis, floor(N_min b^l) */
    uint32_t size[NERF_MAX_LEVELS];    /* (L,) entries of the level */
    uint32_t offset[NERF_MAX_LEVELS];  /* (L,) first entry of the level in the table */
    int dense[NERF_MAX_LEVELS];        /* (L,) 1: direct indexing, 0: hashed */
    uint32_t entries;                  /* sum of size: the table is (entries, F) */
} nerf_grid;

/* Vertex (x, y, z) of level l -> entry index (level-local). The hash is instant-NGP's
 * spatial hash: xor of the coordinates times large primes (1 for x keeps neighbouring x
 * in neighbouring entries, which is cache friendly), masked to the power-of-two size. */
SL_HD static inline uint32_t nerf_grid_index(const nerf_grid *g, int l, uint32_t x, uint32_t y,
                                             uint32_t z)
{
    if (g->dense[l]) {
        uint32_t n = (uint32_t)g->res[l] + 1u;
        return x + n * (y + n * z);
    }
    return (x ^ (y * 2654435761u) ^ (z * 805459861u)) & (g->size[l] - 1u);
}

#endif /* NERF_MATH_H */

/* The float instantiation (once per translation unit). */
#ifndef NERF_MATH_FLOAT_DONE
#define NERF_MATH_FLOAT_DONE
#define NM_REAL float
#define NM_FN(name) nerf_##name
#include "nerf_math_impl.h"
#undef NM_REAL
#undef NM_FN
#endif
