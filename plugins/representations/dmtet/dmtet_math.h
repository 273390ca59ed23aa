/* plugins/representations/dmtet/dmtet_math.h — DMTet's per-element math, each piece beside
 * its VJP: the bounded vertex deformation, the surface crossing on a tetrahedron edge, the
 * ray-triangle intersection that gives perspective-correct barycentrics and z-depth,
 * normalisation and cross products (normals), the pinhole projection, the silhouette
 * crossing of the antialiasing step, and the hash encoding's VJP w.r.t. its input point
 * (the texture's lookup position; the encoding itself is nerf_math.h's).
 *
 * Every function is `static inline` and SL_HD (steinlab/device.h) so a CUDA kernel can call
 * the same code. Like nerf_math.h the bodies are written once over a scalar type DM_REAL
 * with names DM_FN(name); including this header gives the float instantiation dmtet_<name>,
 * and a test instantiates dmtet_math_impl.h again in double for finite differences:
 *
 *     #define DM_REAL double
 *     #define DM_FN(name) dmtetd_##name
 *     #include "dmtet_math_impl.h"
 *     #undef DM_REAL
 *     #undef DM_FN
 *
 * Gradient convention (style.md): d<x> holds dL/d<x>; each VJP says whether it overwrites
 * (=) or accumulates (+=). */
#ifndef DMTET_MATH_H
#define DMTET_MATH_H

#include <math.h>

#if defined(__CUDACC__)
#define dm_sqrt(x) sqrt(x)
#define dm_tanh(x) tanh(x)
#else
#define dm_sqrt(x) _Generic((x), float: sqrtf, default: sqrt)(x)
#define dm_tanh(x) _Generic((x), float: tanhf, default: tanh)(x)
#endif

#include "steinlab/device.h"
#include "nerf_math.h"   /* nerf_grid, nerf_grid_index: the texture's hash grid */

#endif /* DMTET_MATH_H */

#ifndef DMTET_MATH_FLOAT_DONE
#define DMTET_MATH_FLOAT_DONE
#define DM_REAL float
#define DM_FN(name) dmtet_##name
#include "dmtet_math_impl.h"
#undef DM_REAL
#undef DM_FN
#endif
