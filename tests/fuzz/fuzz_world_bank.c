/* tests/fuzz/fuzz_world_bank.c — libFuzzer target: the world prior's view-bank cache as
 * world_bank_obtain reads it (plugins/priors/world/bank.h: a sidecar <file>.sum with the
 * file's size, checksum and key, verified before libhdf5 opens <file>).
 *
 * The cache check only works on paths, so each input becomes the two files of one cache
 * entry in a per-process temporary directory:
 *
 *   input = SIDECAR [ NUL H5 ]
 *
 * the bytes before the first NUL are the sidecar (none written when empty), the bytes
 * after it the HDF5 file (none written when the input has no NUL). The bank is that of a
 * fixed scene ("a red sphere", 8x8, one view, float16), so the files sit at the name of
 * its key, and world_bank_obtain is called on the directory.
 *
 * libhdf5 itself is not fuzzed: only a pair that passes the size + checksum test reaches
 * H5Fopen, and this target never recomputes a checksum to get mutations past it. Before
 * each call it checks, with the sidecar format's own scanf pattern, whether the pair would
 * pass; a pass for any file other than the one the bank code wrote aborts ("design
 * finding") before libhdf5 sees it. At start-up the bank is obtained once in the empty
 * directory, and the file, sidecar and views it writes are kept as the reference.
 *
 * Besides sanitizer reports, what aborts after each call:
 *   - world_bank_obtain failing (cache problems are not errors);
 *   - the reference pair not being loaded, or anything else being loaded;
 *   - a rejected pair without a reason in rep.problem or with a source other than REBUILT,
 *     or no files giving anything but RENDERED with no problem;
 *   - views that differ from the reference (loaded or rendered again);
 *   - after a rejection, cache files on disk that are not the reference pair again (the
 *     loader deletes what it rejects and writes a fresh, byte-identical entry). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bank.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct bytes {
    uint8_t *p;
    size_t n;
} bytes;

static struct {
    int ready;
    char dir[64];
    char h5[WORLD_PATH_MAX], sum[WORLD_PATH_MAX + 8];
    world_scene scene;
    world_bank_opts opts;
    uint64_t key;
    world_bank bank;        /* the reference views */
    bytes ref_h5, ref_sum;  /* the reference cache entry */
} g;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_world_bank: %s\n", what);
    abort();
}

static int read_file(const char *path, bytes *out)
{
    out->p = NULL;
    out->n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 0;
    for (;;) {
        if (out->n == cap) {
            cap = cap ? 2 * cap : 16384;
            uint8_t *grown = realloc(out->p, cap);
            if (!grown)
                break;
            out->p = grown;
        }
        size_t got = fread(out->p + out->n, 1, cap - out->n, f);
        out->n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f) || out->n == cap;
    fclose(f);
    if (bad) {
        free(out->p);
        out->p = NULL;
        return -1;
    }
    return 0;
}

static int write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int bad = n && fwrite(p, 1, n, f) != n;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

static int same(const uint8_t *p, size_t n, const bytes *b)
{
    return n == b->n && (n == 0 || memcmp(p, b->p, n) == 0);
}

static int file_is(const char *path, const bytes *b)
{
    bytes got;
    if (read_file(path, &got) != 0)
        return 0;
    int r = same(got.p, got.n, b);
    free(got.p);
    return r;
}

static int same_views(const world_bank *a, const world_bank *b)
{
    if (a->n_views != b->n_views || a->res != b->res || a->storage != b->storage)
        return 0;
    const size_t es = a->storage == WORLD_STORE_F16 ? 2 : 4, K = a->n_views;
    return memcmp(a->x, b->x, K * a->dim * es) == 0 &&
           memcmp(a->depth, b->depth, K * a->npix * es) == 0 &&
           memcmp(a->normal, b->normal, K * a->dim * es) == 0 &&
           memcmp(a->mask, b->mask, K * a->npix) == 0;
}

static void cleanup(void)
{
    unlink(g.h5);
    unlink(g.sum);
    rmdir(g.dir);
}

static void setup(void)
{
    snprintf(g.dir, sizeof g.dir, "/tmp/fuzz_world_bank.XXXXXX");
    if (!mkdtemp(g.dir))
        fail("cannot create a temporary directory");
    atexit(cleanup);
    sl_error err = { { 0 } };
    if (world_scene_from_prompt("a red sphere", &g.scene, &err) != SL_OK)
        fail(err.msg);
    g.opts.res = 8;
    g.opts.grid.azimuths = 1;
    g.opts.grid.n_elevations = 1;
    g.opts.grid.elevations[0] = 20.0f;
    g.opts.grid.n_distances = 1;
    g.opts.grid.distances[0] = 1.8f;
    g.opts.grid.fovy = 50.0f;
    g.opts.shading = world_shading_default();
    g.opts.storage = WORLD_STORE_F16;
    g.opts.cache_dir = g.dir;
    world_bank_report rep;
    if (world_bank_obtain(&g.scene, &g.opts, &g.bank, &rep, &err) != SL_OK)
        fail(err.msg);
    if (!rep.cache_written)
        fail("the reference cache entry was not written");
    g.key = rep.key;
    world_cache_paths(g.dir, rep.key, g.h5, sizeof g.h5, g.sum, sizeof g.sum);
    if (read_file(g.h5, &g.ref_h5) != 0 || read_file(g.sum, &g.ref_sum) != 0)
        fail("cannot read the reference cache entry back");
    g.ready = 1;
}

/* Whether world_bank_obtain's check (bank.c, world_cache_verify) would accept this pair:
 * the same scanf pattern on the sidecar, then size, checksum and key. */
static int would_pass(const uint8_t *sum, size_t sum_n, const uint8_t *h5, size_t h5_n,
                      int have_h5)
{
    if (!have_h5 || sum_n == 0)
        return 0;
    char *text = malloc(sum_n + 1);
    if (!text)
        fail("out of memory");
    memcpy(text, sum, sum_n);
    text[sum_n] = '\0';
    char magic[64] = "";
    uint64_t want_size = 0, want_sum = 0, want_key = 0;
    int got = sscanf(text, "%63[^\n]\nsize %" SCNu64 "\nchecksum %" SCNx64 "\nkey %" SCNx64,
                     magic, &want_size, &want_sum, &want_key);
    free(text);
    return got == 4 && strcmp(magic, "steinlab world bank checksum v1") == 0 &&
           want_key == g.key && want_size == h5_n &&
           want_sum == world_checksum(h5, h5_n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g.ready)
        setup();
    const uint8_t *nul = memchr(data, 0, size);
    const size_t sum_n = nul ? (size_t)(nul - data) : size;
    const uint8_t *h5 = nul ? nul + 1 : NULL;
    const size_t h5_n = nul ? size - sum_n - 1 : 0;
    const int have_sum = sum_n > 0, have_h5 = nul != NULL;
    const int reference = same(data, sum_n, &g.ref_sum) && have_h5 &&
                          same(h5, h5_n, &g.ref_h5);

    if (would_pass(data, sum_n, h5, h5_n, have_h5) && !reference)
        fail("a cache file other than the one the bank code wrote passes the size and "
             "checksum test: libhdf5 would open it (design finding)");

    unlink(g.h5);
    unlink(g.sum);
    if ((have_sum && write_file(g.sum, data, sum_n) != 0) ||
        (have_h5 && write_file(g.h5, h5, h5_n) != 0))
        fail("cannot write the input's cache files");

    world_bank bank;
    world_bank_report rep;
    sl_error err = { { 0 } };
    if (world_bank_obtain(&g.scene, &g.opts, &bank, &rep, &err) != SL_OK)
        fail(err.msg);
    if (reference) {
        if (rep.source != WORLD_BANK_LOADED)
            fail("the cache entry the bank code wrote was not loaded");
    } else if (rep.source == WORLD_BANK_LOADED) {
        fail("a cache entry other than the one the bank code wrote was loaded");
    } else if (!have_sum && !have_h5) {
        if (rep.source != WORLD_BANK_RENDERED || rep.problem[0])
            fail("no cache files, yet a problem was reported");
    } else if (rep.source != WORLD_BANK_REBUILT || !rep.problem[0]) {
        fail("a rejected cache entry without a reason");
    }
    if (!same_views(&bank, &g.bank))
        fail("the views differ from the reference");
    world_bank_free(&bank);
    /* Whatever was there, the directory now holds the entry the bank code writes. */
    if (!file_is(g.h5, &g.ref_h5) || !file_is(g.sum, &g.ref_sum))
        fail("the cache entry on disk is not the reference after the call");
    return 0;
}
