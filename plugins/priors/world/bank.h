/* plugins/priors/world/bank.h — the view bank of the world prior: the dataset of its ideal
 * denoiser (method.md section 5), and its cache on disk.
 *
 * A bank holds K views of one scene on a fixed camera grid, at the prior's resolution R:
 *
 *   object level (orbit cameras around the origin): for each distance d (outer), elevation
 *     el, azimuth az_a = -180 + 360 a / A (inner, a = 0 .. A-1): sl_camera_orbit(az, el, d);
 *   scene level (rooms, seen from inside): for each elevation el (outer) and azimuth az_a
 *     (inner): sl_camera_inside_out(az, el) at the origin; the distance list is ignored.
 *
 * Every view is rendered with world_render (render.h) and stored as
 *   x      (K, R, R, 3)  2 rgb - 1, in [-1, 1]       float32 or float16
 *   depth  (K, R, R)     z-depth, 0 on the background float32 or float16
 *   normal (K, R, R, 3)  world unit normals, 0 bg     float32 or float16
 *   mask   (K, R, R)     1 where a surface is hit      uint8 (0 / 1)
 *   cams   (K,)          the cameras
 * float16 is IEEE binary16, converted from the render's float32 with round to nearest
 * even by world_float_to_half (our own bit code, checked against GCC's _Float16 in the
 * tests) and read back exactly by world_half_to_float.
 *
 * Cache: one HDF5 file per bank, <dir>/world-bank-<key>.h5, where key is FNV-1a 64 of a
 * text that lists everything that defines the bank (format version, the scene's canonical
 * text, resolution, grid, shading, storage; world_bank_key_text). Beside it,
 * <file>.sum holds the file's byte size and a 64-bit checksum of every byte (world_checksum).
 * Writing: the HDF5 file goes to a temporary name and is renamed, then the sidecar is
 * written to a temporary name and renamed, so a sidecar only ever describes a complete
 * file. Reading: the sidecar is read and the size and checksum verified BEFORE libhdf5
 * sees the file; a missing or malformed sidecar, a mismatch, or an HDF5 file whose
 * content does not match the key (dimensions, key attribute) makes the loader delete both
 * files and render again. The HDF5 file is byte-for-byte deterministic (object time
 * tracking is off), so two processes building the same bank write identical files. */
#ifndef STEINLAB_WORLD_BANK_H
#define STEINLAB_WORLD_BANK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "render.h"
#include "scene.h"
#include "steinlab/camera.h"
#include "steinlab/status.h"

#define WORLD_BANK_FORMAT_VERSION 1
enum { WORLD_GRID_MAX = 32 };   /* longest elevation / distance list */
enum { WORLD_PATH_MAX = 1024 };  /* cache paths */

typedef enum world_storage {
    WORLD_STORE_F32 = 0,
    WORLD_STORE_F16 = 1
} world_storage;

/* The camera grid of a bank. */
typedef struct world_grid {
    int azimuths;                         /* A >= 1, evenly spaced from -180 degrees */
    int n_elevations;                     /* >= 1 */
    float elevations[WORLD_GRID_MAX];     /* degrees */
    int n_distances;                      /* >= 1 (object level only) */
    float distances[WORLD_GRID_MAX];      /* orbit radius */
    float fovy;                           /* degrees */
} world_grid;

typedef struct world_bank {
    int res;                  /* R */
    size_t n_views;           /* K */
    size_t dim;               /* D = R R 3 */
    size_t npix;              /* P = R R */
    world_storage storage;
    void *x;                  /* (K, R, R, 3) float or uint16_t (binary16 bits) */
    void *depth;              /* (K, R, R)    float or uint16_t */
    void *normal;             /* (K, R, R, 3) float or uint16_t */
    uint8_t *mask;            /* (K, R, R) */
    sl_camera *cams;          /* (K,) */
    int *scene;               /* (K,) index of the scene a view shows (0 for a single bank) */
} world_bank;

/* How a bank is obtained. */
typedef struct world_bank_opts {
    int res;
    world_grid grid;
    world_shading shading;
    world_storage storage;
    const char *cache_dir;    /* NULL: no cache (always render) */
} world_bank_opts;

/* What world_bank_obtain did, for logs and tests. */
typedef enum world_bank_source {
    WORLD_BANK_RENDERED = 0,  /* rendered; no cache */
    WORLD_BANK_LOADED = 1,    /* read from a verified cache file */
    WORLD_BANK_REBUILT = 2,   /* a cache file was missing, corrupt or unverifiable: rendered
                                 (and written back when the cache directory is writable) */
} world_bank_source;

typedef struct world_bank_report {
    world_bank_source source;
    uint64_t key;
    char path[WORLD_PATH_MAX];  /* cache file ("" without cache) */
    char problem[4096];       /* why a cache file was not used ("" if it was, or none existed) */
    int cache_written;        /* 1 when a cache file was written by this call */
} world_bank_report;

/* ------------------------------------------------------------------ float16 */

/* IEEE binary16 -> float32, exact for every input (subnormals, infinities, NaNs kept).
 * Branch-free: the half's exponent and mantissa are placed in a float's fields and the
 * result multiplied by 2^112, which rebases the exponent bias from 15 to 127 and turns a
 * half subnormal (a float subnormal here) into the right normal float exactly; values that
 * come out >= 2^16 were infinities or NaNs and get the all-ones exponent. Needs IEEE
 * subnormals (no flush-to-zero / denormals-are-zero mode). */
static inline float world_half_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)(h & 0x7fffu) << 13;
    float f;
    memcpy(&f, &u, sizeof f);
    f *= 0x1p112f;
    memcpy(&u, &f, sizeof u);
    if (f >= 65536.0f)
        u |= 0xffu << 23;
    u |= (uint32_t)(h & 0x8000u) << 16;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* float32 -> IEEE binary16 with round to nearest, ties to even; overflow to infinity;
 * NaNs stay NaNs (quiet). */
uint16_t world_float_to_half(float f);

/* ------------------------------------------------------------------ banks */

/* Number of views of the grid at the scene's level. */
size_t world_grid_views(const world_grid *grid, int is_room);

/* The camera of view k of the grid (k < world_grid_views), at size res x res. */
void world_grid_camera(const world_grid *grid, int is_room, size_t k, int res, sl_camera *cam);

/* The text the cache key is the hash of (malloc'd, NULL on allocation failure). */
char *world_bank_key_text(const world_scene *scene, const world_bank_opts *opts);

/* FNV-1a 64 of a byte string (the cache key). */
uint64_t world_fnv1a64(const void *data, size_t n);

/* Checksum of a byte string: FNV-1a 64 over its little-endian 64-bit words, then the tail
 * bytes one by one, then the length. Each step (h ^ w) * prime is a bijection of h, so any
 * change of one word changes the result. About 2 bytes/cycle (one multiply per 8 bytes). */
uint64_t world_checksum(const void *data, size_t n);

/* Allocates an empty bank of n views at res (fields zero). */
sl_status world_bank_alloc(world_bank *bank, size_t n_views, int res, world_storage storage,
                           sl_error *err);

/* Renders the grid of `scene` into a new bank (no cache). */
sl_status world_bank_render(const world_scene *scene, const world_bank_opts *opts,
                            world_bank *out, sl_error *err);

/* The bank of `scene`: loaded from the cache when a verified file exists, else rendered
 * (and written to the cache when opts->cache_dir is set). Problems with the cache are not
 * errors: they are reported in rep->problem (the caller logs a warning) and the bank is
 * rendered. Errors: allocation, invalid options. */
sl_status world_bank_obtain(const world_scene *scene, const world_bank_opts *opts,
                            world_bank *out, world_bank_report *rep, sl_error *err);

/* Concatenates banks (same res and storage) into `out`, view order kept; out->scene[k] is
 * the index in `parts` of the bank view k comes from. Frees each part after copying it. */
sl_status world_bank_concat(world_bank *parts, size_t n_parts, world_bank *out, sl_error *err);

void world_bank_free(world_bank *bank);

/* Reads element i of a stored field as float (storage-aware). */
static inline float world_bank_get(const void *field, world_storage storage, size_t i)
{
    return storage == WORLD_STORE_F16 ? world_half_to_float(((const uint16_t *)field)[i])
                                      : ((const float *)field)[i];
}

/* The default cache directory: $STEINLAB_CACHE_DIR, else $XDG_CACHE_HOME/steinlab, else
 * $HOME/.cache/steinlab. Fails when none of them is set. */
sl_status world_cache_dir_default(char *out, size_t size, sl_error *err);

/* Cache file paths of a key in dir: the HDF5 file and its sidecar. */
void world_cache_paths(const char *dir, uint64_t key, char *h5, size_t h5_size, char *sum,
                       size_t sum_size);

#endif
