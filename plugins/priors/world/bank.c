/* plugins/priors/world/bank.c — view banks: rendering on the grid, float16 storage, and the
 * verified HDF5 cache (bank.h describes the layout and the cache protocol). */
#include "bank.h"

#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* ------------------------------------------------------------------ float16 */

uint16_t world_float_to_half(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t sign = (u >> 16) & 0x8000u;
    u &= 0x7fffffffu;
    if (u >= 0x7f800000u)   /* infinity, or NaN (kept quiet, top mantissa bits kept) */
        return (uint16_t)(sign | (u > 0x7f800000u ? 0x7e00u | ((u >> 13) & 0x3ffu) : 0x7c00u));
    /* 65520 = 0x477ff000 lies half-way between the largest half (65504, odd mantissa) and
     * 2^16: ties go to even, i.e. to infinity, and so does everything above. */
    if (u >= 0x477ff000u)
        return (uint16_t)(sign | 0x7c00u);
    const uint32_t e = u >> 23;   /* biased float exponent */
    if (e < 113) {
        /* |f| < 2^-14: a half subnormal (or zero) in units of 2^-24. With M the 24-bit
         * significand, |f| = M 2^(e - 150) = M 2^-(126 - e) units; shift by 126 - e and
         * round the remainder to nearest even. Beyond a shift of 24, |f| < 2^-25 (half a
         * unit) and the result is 0. */
        const uint32_t shift = 126u - e;
        if (shift > 24u)
            return (uint16_t)sign;
        const uint32_t m = (u & 0x7fffffu) | 0x800000u;
        uint32_t q = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u)))
            q++;   /* may carry to 0x400, the smallest normal: the right encoding */
        return (uint16_t)(sign | q);
    }
    /* Normal: rebias the exponent (127 -> 15), keep 10 mantissa bits, round the 13 dropped
     * bits to nearest even; a carry out of the mantissa increments the exponent, which is
     * the correct rounding (and cannot reach infinity: handled above). */
    uint32_t h = ((e - 112u) << 10) | ((u >> 13) & 0x3ffu);
    const uint32_t rem = u & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

/* ------------------------------------------------------------------ grid */

size_t world_grid_views(const world_grid *grid, int is_room)
{
    size_t n = (size_t)grid->azimuths * (size_t)grid->n_elevations;
    return is_room ? n : n * (size_t)grid->n_distances;
}

void world_grid_camera(const world_grid *grid, int is_room, size_t k, int res, sl_camera *cam)
{
    const size_t A = (size_t)grid->azimuths, E = (size_t)grid->n_elevations;
    const size_t a = k % A, e = (k / A) % E, d = k / (A * E);
    const float az = -180.0f + 360.0f * (float)a / (float)A;
    if (is_room)
        sl_camera_inside_out(az, grid->elevations[e], NULL, grid->fovy, res, res, cam);
    else
        sl_camera_orbit(az, grid->elevations[e], grid->distances[d], NULL, grid->fovy, res, res,
                        cam);
}

/* ------------------------------------------------------------------ hashes */

#define WORLD_FNV_OFFSET 0xcbf29ce484222325ull
#define WORLD_FNV_PRIME 0x100000001b3ull

uint64_t world_fnv1a64(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = WORLD_FNV_OFFSET;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= WORLD_FNV_PRIME;
    }
    return h;
}

/* Streaming form of world_checksum: feed chunks whose sizes are multiples of 8 except the
 * last. */
typedef struct world_sum {
    uint64_t h;
    uint64_t len;
} world_sum;

static void world_sum_update(world_sum *s, const unsigned char *p, size_t n)
{
    uint64_t h = s->h;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = 0;
        for (int b = 7; b >= 0; b--)   /* little-endian word, whatever the host order */
            w = (w << 8) | p[i + (size_t)b];
        h = (h ^ w) * WORLD_FNV_PRIME;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * WORLD_FNV_PRIME;
    s->h = h;
    s->len += n;
}

static uint64_t world_sum_final(const world_sum *s)
{
    return (s->h ^ s->len) * WORLD_FNV_PRIME;
}

uint64_t world_checksum(const void *data, size_t n)
{
    world_sum s = { WORLD_FNV_OFFSET, 0 };
    world_sum_update(&s, data, n);
    return world_sum_final(&s);
}

/* ------------------------------------------------------------------ key text */

/* Appends printf output to a growing malloc'd string; returns 0 on allocation failure. */
static int world_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int world_appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (w < 0)
            return 0;
        if (*buf && *len + (size_t)w < *cap) {
            *len += (size_t)w;
            return 1;
        }
        size_t ncap = (*cap ? *cap * 2 : 1024) + (size_t)w;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return 0;
        *buf = nb;
        *cap = ncap;
    }
}

char *world_bank_key_text(const world_scene *scene, const world_bank_opts *opts)
{
    char *canon = world_scene_canonical(scene);
    if (!canon)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    const world_grid *g = &opts->grid;
    const world_shading *sh = &opts->shading;
    /* %a prints floats exactly, so equal texts mean equal banks. */
    int ok = world_appendf(&buf, &len, &cap,
                           "steinlab world bank v%d\nresolution %d\nstorage %s\nlevel %s\n"
                           "azimuths %d\nfovy %a\nelevations",
                           WORLD_BANK_FORMAT_VERSION, opts->res,
                           opts->storage == WORLD_STORE_F16 ? "float16" : "float32",
                           scene->is_room ? "room" : "object", g->azimuths, (double)g->fovy);
    for (int i = 0; ok && i < g->n_elevations; i++)
        ok = world_appendf(&buf, &len, &cap, " %a", (double)g->elevations[i]);
    if (ok && !scene->is_room) {
        ok = world_appendf(&buf, &len, &cap, "\ndistances");
        for (int i = 0; ok && i < g->n_distances; i++)
            ok = world_appendf(&buf, &len, &cap, " %a", (double)g->distances[i]);
    }
    if (ok)
        ok = world_appendf(&buf, &len, &cap, "\nshading light %a %a %a ambient %a diffuse %a\n"
                           "scene\n%s\n", (double)sh->light_dir[0], (double)sh->light_dir[1],
                           (double)sh->light_dir[2], (double)sh->ambient,
                           (double)sh->diffuse, canon);
    free(canon);
    if (!ok) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ------------------------------------------------------------------ banks in memory */

static void *world_aligned(size_t bytes)
{
    size_t rounded = bytes ? (bytes + 63) / 64 * 64 : 64;
    void *p = aligned_alloc(64, rounded);
    if (p)
        memset(p, 0, rounded);
    return p;
}

void world_bank_free(world_bank *bank)
{
    if (!bank)
        return;
    free(bank->x);
    free(bank->depth);
    free(bank->normal);
    free(bank->mask);
    free(bank->cams);
    free(bank->scene);
    memset(bank, 0, sizeof *bank);
}

sl_status world_bank_alloc(world_bank *bank, size_t n_views, int res, world_storage storage,
                           sl_error *err)
{
    memset(bank, 0, sizeof *bank);
    if (res < 1 || n_views < 1)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "world bank: %zu views of %dx%d", n_views,
                            res, res);
    bank->res = res;
    bank->n_views = n_views;
    bank->npix = (size_t)res * (size_t)res;
    bank->dim = bank->npix * 3;
    bank->storage = storage;
    const size_t es = storage == WORLD_STORE_F16 ? 2 : 4;
    bank->x = world_aligned(n_views * bank->dim * es);
    bank->depth = world_aligned(n_views * bank->npix * es);
    bank->normal = world_aligned(n_views * bank->dim * es);
    bank->mask = world_aligned(n_views * bank->npix);
    bank->cams = calloc(n_views, sizeof *bank->cams);
    bank->scene = calloc(n_views, sizeof *bank->scene);
    if (!bank->x || !bank->depth || !bank->normal || !bank->mask || !bank->cams ||
        !bank->scene) {
        world_bank_free(bank);
        return sl_error_set(err, SL_ERR_NOMEM, "world bank: cannot allocate %zu views of %dx%d",
                            n_views, res, res);
    }
    return SL_OK;
}

/* Stores n floats at element offset `at` of a field in the bank's storage. */
static void world_store(void *field, world_storage storage, size_t at, const float *src,
                        size_t n)
{
    if (storage == WORLD_STORE_F16) {
        uint16_t *dst = (uint16_t *)field + at;
        for (size_t i = 0; i < n; i++)
            dst[i] = world_float_to_half(src[i]);
    } else {
        memcpy((float *)field + at, src, n * sizeof(float));
    }
}

static sl_status world_opts_check(const world_bank_opts *opts, sl_error *err)
{
    const world_grid *g = &opts->grid;
    if (opts->res < 1 || g->azimuths < 1 || g->n_elevations < 1 ||
        g->n_elevations > WORLD_GRID_MAX || g->n_distances < 1 ||
        g->n_distances > WORLD_GRID_MAX || !(g->fovy > 0.0f && g->fovy < 180.0f))
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "world bank: invalid grid (resolution %d, %d azimuths, %d "
                            "elevations, %d distances, fovy %g)", opts->res, g->azimuths,
                            g->n_elevations, g->n_distances, (double)g->fovy);
    return SL_OK;
}

sl_status world_bank_render(const world_scene *scene, const world_bank_opts *opts,
                            world_bank *out, sl_error *err)
{
    sl_status st = world_opts_check(opts, err);
    if (st != SL_OK)
        return st;
    const size_t K = world_grid_views(&opts->grid, scene->is_room);
    st = world_bank_alloc(out, K, opts->res, opts->storage, err);
    if (st != SL_OK)
        return st;
    const size_t P = out->npix, D = out->dim;
    float *rgb = malloc(D * sizeof *rgb);       /* (R, R, 3) */
    float *depth = malloc(P * sizeof *depth);   /* (R, R) */
    float *normal = malloc(D * sizeof *normal); /* (R, R, 3) */
    float *mask = malloc(P * sizeof *mask);     /* (R, R) */
    if (!rgb || !depth || !normal || !mask) {
        free(rgb), free(depth), free(normal), free(mask);
        world_bank_free(out);
        return sl_error_set(err, SL_ERR_NOMEM, "world bank: out of memory");
    }
    for (size_t k = 0; k < K; k++) {
        world_grid_camera(&opts->grid, scene->is_room, k, opts->res, &out->cams[k]);
        world_view view = { .rgb = rgb, .depth = depth, .normal = normal, .mask = mask };
        world_render(scene, &opts->shading, &out->cams[k], &view);
        for (size_t i = 0; i < D; i++)
            rgb[i] = 2.0f * rgb[i] - 1.0f;
        world_store(out->x, out->storage, k * D, rgb, D);
        world_store(out->depth, out->storage, k * P, depth, P);
        world_store(out->normal, out->storage, k * D, normal, D);
        for (size_t i = 0; i < P; i++)
            out->mask[k * P + i] = mask[i] > 0.5f;
    }
    free(rgb), free(depth), free(normal), free(mask);
    return SL_OK;
}

sl_status world_bank_concat(world_bank *parts, size_t n_parts, world_bank *out, sl_error *err)
{
    size_t K = 0;
    for (size_t i = 0; i < n_parts; i++) {
        if (parts[i].res != parts[0].res || parts[i].storage != parts[0].storage)
            return sl_error_set(err, SL_ERR_INVALID_ARG,
                                "world bank: cannot concatenate banks of different resolution "
                                "or storage");
        K += parts[i].n_views;
    }
    sl_status st = world_bank_alloc(out, K, parts[0].res, parts[0].storage, err);
    if (st != SL_OK)
        return st;
    const size_t es = out->storage == WORLD_STORE_F16 ? 2 : 4, D = out->dim, P = out->npix;
    size_t at = 0;
    for (size_t i = 0; i < n_parts; i++) {
        const size_t n = parts[i].n_views;
        memcpy((char *)out->x + at * D * es, parts[i].x, n * D * es);
        memcpy((char *)out->depth + at * P * es, parts[i].depth, n * P * es);
        memcpy((char *)out->normal + at * D * es, parts[i].normal, n * D * es);
        memcpy(out->mask + at * P, parts[i].mask, n * P);
        memcpy(out->cams + at, parts[i].cams, n * sizeof *out->cams);
        for (size_t k = 0; k < n; k++)
            out->scene[at + k] = (int)i;
        at += n;
        world_bank_free(&parts[i]);
    }
    return SL_OK;
}

/* ------------------------------------------------------------------ cache paths */

sl_status world_cache_dir_default(char *out, size_t size, sl_error *err)
{
    const char *env = getenv("STEINLAB_CACHE_DIR");
    int w;
    if (env && *env)
        w = snprintf(out, size, "%s", env);
    else if ((env = getenv("XDG_CACHE_HOME")) && *env)
        w = snprintf(out, size, "%s/steinlab", env);
    else if ((env = getenv("HOME")) && *env)
        w = snprintf(out, size, "%s/.cache/steinlab", env);
    else
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "world: no cache directory (set STEINLAB_CACHE_DIR, "
                            "XDG_CACHE_HOME or HOME, give cache_dir, or set cache: false)");
    if (w < 0 || (size_t)w >= size)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "world: cache directory path too long");
    return SL_OK;
}

void world_cache_paths(const char *dir, uint64_t key, char *h5, size_t h5_size, char *sum,
                       size_t sum_size)
{
    snprintf(h5, h5_size, "%s/world-bank-%016" PRIx64 ".h5", dir, key);
    snprintf(sum, sum_size, "%s/world-bank-%016" PRIx64 ".h5.sum", dir, key);
}

/* mkdir -p; 0 on success. */
static int world_mkdirs(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return -1;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return -1;
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) ? 0 : -1;
}

/* Size and checksum of a whole file; 0 on success. */
static int world_file_checksum(const char *path, uint64_t *size, uint64_t *sum)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    enum { CHUNK = 1 << 20 };   /* a multiple of 8, as world_sum_update needs */
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        return -1;
    }
    world_sum s = { WORLD_FNV_OFFSET, 0 };
    size_t n;
    while ((n = fread(buf, 1, CHUNK, f)) > 0) {
        world_sum_update(&s, buf, n);
        if (n < CHUNK)
            break;
    }
    int bad = ferror(f);
    free(buf);
    fclose(f);
    if (bad)
        return -1;
    *size = s.len;
    *sum = world_sum_final(&s);
    return 0;
}

/* Verifies the HDF5 file against its sidecar without opening it with libhdf5. Returns 0
 * when they match, else writes the reason. */
static int world_cache_verify(const char *h5, const char *sumpath, uint64_t key, char *why,
                              size_t why_size)
{
    FILE *f = fopen(sumpath, "r");
    if (!f) {
        snprintf(why, why_size, "checksum file '%s' missing", sumpath);
        return -1;
    }
    char magic[64] = "";
    uint64_t want_size = 0, want_sum = 0, want_key = 0;
    int got = fscanf(f, "%63[^\n]\nsize %" SCNu64 "\nchecksum %" SCNx64 "\nkey %" SCNx64,
                     magic, &want_size, &want_sum, &want_key);
    fclose(f);
    if (got != 4 || strcmp(magic, "steinlab world bank checksum v1") != 0) {
        snprintf(why, why_size, "checksum file '%s' malformed", sumpath);
        return -1;
    }
    if (want_key != key) {
        snprintf(why, why_size, "checksum file '%s' is for key %016" PRIx64, sumpath, want_key);
        return -1;
    }
    struct stat sb;
    if (stat(h5, &sb) != 0) {
        snprintf(why, why_size, "cache file '%s' missing", h5);
        return -1;
    }
    if ((uint64_t)sb.st_size != want_size) {
        snprintf(why, why_size, "cache file '%s' has %" PRIu64 " bytes, expected %" PRIu64, h5,
                 (uint64_t)sb.st_size, want_size);
        return -1;
    }
    uint64_t size = 0, sum = 0;
    if (world_file_checksum(h5, &size, &sum) != 0) {
        snprintf(why, why_size, "cache file '%s' cannot be read", h5);
        return -1;
    }
    if (size != want_size || sum != want_sum) {
        snprintf(why, why_size, "cache file '%s' fails its checksum (%016" PRIx64 ", expected "
                 "%016" PRIx64 ")", h5, sum, want_sum);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ HDF5 */

/* IEEE binary16 as an HDF5 float type (h5py reads it as numpy float16). HDF5 1.10 has no
 * predefined half type; this is the usual construction from the float32 type. */
static hid_t world_h5_half(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0)
        return t;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 ||
        H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static int world_h5_write(hid_t file, hid_t dcpl, const char *name, hid_t type, int rank,
                          const hsize_t *dims, const void *data)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    if (space < 0)
        return -1;
    hid_t ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int ok = ds >= 0 && H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (ds >= 0)
        H5Dclose(ds);
    H5Sclose(space);
    return ok ? 0 : -1;
}

static int world_h5_attr(hid_t obj, const char *name, hid_t type, const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, type, value) >= 0;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(space);
    return ok ? 0 : -1;
}

static int world_h5_attr_string(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    int r = world_h5_attr(obj, name, t, value);
    H5Tclose(t);
    return r;
}

/* Writes the bank to `path` (created or truncated). */
static int world_bank_write_h5(const world_bank *b, const char *path, const char *key_text,
                               uint64_t key)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_obj_track_times(fcpl, 0);   /* no timestamps: a deterministic file */
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    if (file < 0)
        return -1;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0);
    hid_t ft = b->storage == WORLD_STORE_F16 ? world_h5_half() : H5Tcopy(H5T_IEEE_F32LE);
    const hsize_t K = b->n_views, R = (hsize_t)b->res;
    const hsize_t d4[4] = { K, R, R, 3 }, d3[3] = { K, R, R }, dc[2] = { K, 4 };
    float *cam = malloc(b->n_views * 4 * sizeof *cam);   /* (K, 4) az, el, dist, fovy */
    int ok = ft >= 0 && dcpl >= 0 && cam;
    if (ok) {
        for (size_t k = 0; k < b->n_views; k++) {
            cam[4 * k + 0] = b->cams[k].azimuth_deg;
            cam[4 * k + 1] = b->cams[k].elevation_deg;
            cam[4 * k + 2] = b->cams[k].distance;
            cam[4 * k + 3] = b->cams[k].fovy_deg;
        }
        const int version = WORLD_BANK_FORMAT_VERSION, res = b->res;
        const unsigned long long key_ull = key;
        ok = world_h5_write(file, dcpl, "x", ft, 4, d4, b->x) == 0 &&
             world_h5_write(file, dcpl, "depth", ft, 3, d3, b->depth) == 0 &&
             world_h5_write(file, dcpl, "normal", ft, 4, d4, b->normal) == 0 &&
             world_h5_write(file, dcpl, "mask", H5T_NATIVE_UINT8, 3, d3, b->mask) == 0 &&
             world_h5_write(file, dcpl, "cameras", H5T_NATIVE_FLOAT, 2, dc, cam) == 0 &&
             world_h5_attr(file, "format_version", H5T_NATIVE_INT, &version) == 0 &&
             world_h5_attr(file, "resolution", H5T_NATIVE_INT, &res) == 0 &&
             world_h5_attr(file, "key", H5T_NATIVE_ULLONG, &key_ull) == 0 &&
             world_h5_attr_string(file, "key_text", key_text) == 0 &&
             world_h5_attr_string(file, "cameras_columns",
                                  "azimuth_deg elevation_deg distance fovy_deg") == 0;
    }
    free(cam);
    if (ft >= 0)
        H5Tclose(ft);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (H5Fclose(file) < 0)
        ok = 0;
    return ok ? 0 : -1;
}

/* Reads one dataset whose dimensions must equal dims. */
static int world_h5_read(hid_t file, const char *name, hid_t type, int rank,
                         const hsize_t *dims, void *data)
{
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    hid_t space = H5Dget_space(ds);
    hsize_t got[8];
    int ok = space >= 0 && H5Sget_simple_extent_ndims(space) == rank &&
             H5Sget_simple_extent_dims(space, got, NULL) == rank;
    for (int i = 0; ok && i < rank; i++)
        ok = got[i] == dims[i];
    if (ok)
        ok = H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (space >= 0)
        H5Sclose(space);
    H5Dclose(ds);
    return ok ? 0 : -1;
}

/* Reads the bank written by world_bank_write_h5 into `b` (allocated by the caller for the
 * expected shape) and checks that the file is the bank of key_text. */
static int world_bank_read_h5(world_bank *b, const char *path, const char *key_text,
                              char *why, size_t why_size)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        snprintf(why, why_size, "libhdf5 cannot open cache file '%s'", path);
        return -1;
    }
    int ok = 1;
    /* The key text in the file must be ours (guards against a hash collision). */
    hid_t a = H5Aopen(file, "key_text", H5P_DEFAULT);
    if (a < 0) {
        ok = 0;
    } else {
        hid_t t = H5Aget_type(a);
        size_t n = t >= 0 ? H5Tget_size(t) : 0;
        char *text = n ? calloc(n + 1, 1) : NULL;
        ok = text && H5Aread(a, t, text) >= 0 && strcmp(text, key_text) == 0;
        free(text);
        if (t >= 0)
            H5Tclose(t);
        H5Aclose(a);
    }
    if (!ok) {
        H5Fclose(file);
        snprintf(why, why_size, "cache file '%s' belongs to another bank", path);
        return -1;
    }
    hid_t ft = b->storage == WORLD_STORE_F16 ? world_h5_half() : H5Tcopy(H5T_NATIVE_FLOAT);
    const hsize_t K = b->n_views, R = (hsize_t)b->res;
    const hsize_t d4[4] = { K, R, R, 3 }, d3[3] = { K, R, R };
    ok = ft >= 0 && world_h5_read(file, "x", ft, 4, d4, b->x) == 0 &&
         world_h5_read(file, "depth", ft, 3, d3, b->depth) == 0 &&
         world_h5_read(file, "normal", ft, 4, d4, b->normal) == 0 &&
         world_h5_read(file, "mask", H5T_NATIVE_UINT8, 3, d3, b->mask) == 0;
    if (ft >= 0)
        H5Tclose(ft);
    if (H5Fclose(file) < 0)
        ok = 0;
    if (!ok)
        snprintf(why, why_size, "cache file '%s' has unexpected content", path);
    return ok ? 0 : -1;
}

/* Writes the bank and its sidecar atomically (temporary names, then rename). */
static int world_cache_write(const world_bank *b, const char *h5, const char *sumpath,
                             const char *key_text, uint64_t key, char *why, size_t why_size)
{
    char tmp_h5[WORLD_PATH_MAX + 32], tmp_sum[WORLD_PATH_MAX + 40];
    snprintf(tmp_h5, sizeof tmp_h5, "%s.tmp.%ld", h5, (long)getpid());
    snprintf(tmp_sum, sizeof tmp_sum, "%s.tmp.%ld", sumpath, (long)getpid());
    uint64_t size = 0, sum = 0;
    if (world_bank_write_h5(b, tmp_h5, key_text, key) != 0) {
        snprintf(why, why_size, "cannot write cache file '%s'", tmp_h5);
        goto fail;
    }
    if (world_file_checksum(tmp_h5, &size, &sum) != 0) {
        snprintf(why, why_size, "cannot read back cache file '%s'", tmp_h5);
        goto fail;
    }
    if (rename(tmp_h5, h5) != 0) {
        snprintf(why, why_size, "cannot rename '%s' to '%s': %s", tmp_h5, h5, strerror(errno));
        goto fail;
    }
    FILE *f = fopen(tmp_sum, "w");
    if (!f) {
        snprintf(why, why_size, "cannot write '%s': %s", tmp_sum, strerror(errno));
        goto fail;
    }
    int bad = fprintf(f, "steinlab world bank checksum v1\nsize %" PRIu64 "\nchecksum %016"
                      PRIx64 "\nkey %016" PRIx64 "\n", size, sum, key) < 0;
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp_sum, sumpath) != 0) {
        snprintf(why, why_size, "cannot write '%s'", sumpath);
        goto fail;
    }
    return 0;
fail:
    unlink(tmp_h5);
    unlink(tmp_sum);
    return -1;
}

sl_status world_bank_obtain(const world_scene *scene, const world_bank_opts *opts,
                            world_bank *out, world_bank_report *rep, sl_error *err)
{
    memset(rep, 0, sizeof *rep);
    memset(out, 0, sizeof *out);
    sl_status st = world_opts_check(opts, err);
    if (st != SL_OK)
        return st;
    char *key_text = world_bank_key_text(scene, opts);
    if (!key_text)
        return sl_error_set(err, SL_ERR_NOMEM, "world bank: out of memory");
    rep->key = world_fnv1a64(key_text, strlen(key_text));
    if (!opts->cache_dir) {
        free(key_text);
        rep->source = WORLD_BANK_RENDERED;
        return world_bank_render(scene, opts, out, err);
    }
    if (strlen(opts->cache_dir) + 48 > WORLD_PATH_MAX) {
        free(key_text);
        return sl_error_set(err, SL_ERR_INVALID_ARG, "world: cache directory path too long "
                            "(%zu bytes, at most %d)", strlen(opts->cache_dir),
                            WORLD_PATH_MAX - 48);
    }
    char sumpath[WORLD_PATH_MAX + 8];
    world_cache_paths(opts->cache_dir, rep->key, rep->path, sizeof rep->path, sumpath,
                      sizeof sumpath);
    struct stat sb;
    const int had_h5 = stat(rep->path, &sb) == 0, had_sum = stat(sumpath, &sb) == 0;
    if (had_h5 || had_sum) {
        /* libhdf5 only ever sees a file that passed the size and checksum test. */
        H5E_auto2_t old_fn;
        void *old_data;
        H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        int loaded = 0;
        if (world_cache_verify(rep->path, sumpath, rep->key, rep->problem,
                               sizeof rep->problem) == 0) {
            st = world_bank_alloc(out, world_grid_views(&opts->grid, scene->is_room), opts->res,
                                  opts->storage, err);
            if (st != SL_OK) {
                H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
                free(key_text);
                return st;
            }
            if (world_bank_read_h5(out, rep->path, key_text, rep->problem,
                                   sizeof rep->problem) == 0)
                loaded = 1;
            else
                world_bank_free(out);
        }
        H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
        if (loaded) {
            for (size_t k = 0; k < out->n_views; k++)
                world_grid_camera(&opts->grid, scene->is_room, k, opts->res, &out->cams[k]);
            rep->source = WORLD_BANK_LOADED;
            free(key_text);
            return SL_OK;
        }
        unlink(rep->path);
        unlink(sumpath);
    }
    st = world_bank_render(scene, opts, out, err);
    rep->source = rep->problem[0] ? WORLD_BANK_REBUILT : WORLD_BANK_RENDERED;
    if (st == SL_OK) {
        char why[4096] = "";
        if (world_mkdirs(opts->cache_dir) != 0)
            snprintf(why, sizeof why, "cannot create cache directory '%s'", opts->cache_dir);
        else if (world_cache_write(out, rep->path, sumpath, key_text, rep->key, why,
                                   sizeof why) == 0)
            rep->cache_written = 1;
        if (why[0]) {   /* append "; why" to the problem, truncating */
            size_t used = strlen(rep->problem);
            const char *parts[2] = { used ? "; " : "", why };
            for (int i = 0; i < 2; i++)
                for (const char *c = parts[i]; *c && used + 1 < sizeof rep->problem; c++)
                    rep->problem[used++] = *c;
            rep->problem[used] = '\0';
        }
    }
    free(key_text);
    return st;
}
