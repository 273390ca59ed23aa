/* tests/test_state_io.c — checkpoint files (core/checkpoint.h) and the plugin array
 * interface (steinlab/state_io.h): bit-exact round trips of every dtype, the error
 * messages (names, dtypes, shapes), atomic replacement (a writer that dies mid-checkpoint
 * leaves the previous one), refusal of missing, corrupt and foreign files; and the log's
 * side of a resume: reopening a log whose writer was killed, cutting it back, appending. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>

#include "checkpoint.h"
#include "log.h"
#include "support/tmpdir.h"

/* ---- fixtures -------------------------------------------------------------------------- */

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

#define ASSERT_MSG_HAS(err, text)                                                          \
    ck_assert_msg(strstr((err).msg, (text)) != NULL, "message '%s' lacks '%s'", (err).msg, \
                  (text))

/* Values whose bits a careless round trip would change: NaN payloads and signs, signed
 * zeros, infinities, subnormals, the extreme integers. */
static float f32_values[8];
static double f64_values[8];
static const int64_t i64_values[6] = { 0, -1, 1, INT64_MIN, INT64_MAX, 0x0123456789abcdefLL };
static uint8_t u8_values[256];

static void fill_values(void)
{
    uint32_t fbits[8] = { 0x7fc00001u, 0xffc12345u, 0x80000000u, 0x00000000u,
                          0x7f800000u, 0xff800000u, 0x00000001u, 0x3eaaaaabu };
    uint64_t dbits[8] = { 0x7ff8000000000123ull, 0xfff0000000000001ull, 0x8000000000000000ull,
                          0x0000000000000000ull, 0x7ff0000000000000ull, 0x0000000000000001ull,
                          0x3fd5555555555555ull, 0xc00921fb54442d18ull };
    memcpy(f32_values, fbits, sizeof fbits);
    memcpy(f64_values, dbits, sizeof dbits);
    for (int i = 0; i < 256; i++)
        u8_values[i] = (uint8_t)(255 - i);
}

/* Writes the standard checkpoint: a core section and two plugin sections. */
static void write_standard(const char *path, double marker)
{
    sl_ckpt *c = NULL;
    sl_state_io *core = NULL, *rep = NULL, *est = NULL;
    sl_error err;
    ck_assert_msg(sl_ckpt_begin(path, &c, &err) == SL_OK, "%s", err.msg);
    ck_assert_msg(sl_ckpt_set_string(c, "spec", "name: demo\nsteps: 10\n", &err) == SL_OK, "%s",
                  err.msg);
    ck_assert_int_eq(sl_ckpt_section(c, "core", &core, &err), SL_OK);
    ck_assert_int_eq(sl_ckpt_section(c, "plugins/image2d", &rep, &err), SL_OK);
    ck_assert_int_eq(sl_ckpt_section(c, "plugins/sds", &est, &err), SL_OK);
    ck_assert_msg(sl_state_put(core, "marker", SL_STATE_F64, &marker, 1, &err) == SL_OK, "%s",
                  err.msg);
    ck_assert_msg(sl_state_put(rep, "grid/level0", SL_STATE_F32, f32_values, 8, &err) == SL_OK,
                  "%s", err.msg);
    ck_assert_int_eq(sl_state_put(rep, "grid/level1", SL_STATE_F64, f64_values, 8, &err), SL_OK);
    ck_assert_int_eq(sl_state_put(rep, "counters", SL_STATE_I64, i64_values, 6, &err), SL_OK);
    ck_assert_int_eq(sl_state_put(est, "occupancy", SL_STATE_U8, u8_values, 256, &err), SL_OK);
    ck_assert_int_eq(sl_state_put(est, "empty", SL_STATE_F32, NULL, 0, &err), SL_OK);
    ck_assert_msg(sl_ckpt_commit(c, &err) == SL_OK, "%s", err.msg);
}

static double read_marker(const char *path)
{
    sl_ckpt *c = NULL;
    sl_state_io *core = NULL;
    sl_error err;
    double v = NAN;
    ck_assert_msg(sl_ckpt_open(path, &c, &err) == SL_OK, "%s", err.msg);
    ck_assert_int_eq(sl_ckpt_section(c, "core", &core, &err), SL_OK);
    ck_assert_msg(sl_state_get(core, "marker", SL_STATE_F64, &v, 1, &err) == SL_OK, "%s", err.msg);
    sl_ckpt_close(c);
    return v;
}

/* ---- arrays ---------------------------------------------------------------------------- */

START_TEST(test_round_trip_every_dtype)
{
    test_tmpdir_make("steinlab-test-state-io");
    fill_values();
    const char *path = test_tmp_path("run.ckpt.h5");
    write_standard(path, 1.5);
    ck_assert(!file_exists(test_tmp_path("run.ckpt.h5.tmp")));

    sl_ckpt *c = NULL;
    sl_state_io *rep = NULL, *est = NULL;
    sl_error err;
    ck_assert_msg(sl_ckpt_open(path, &c, &err) == SL_OK, "%s", err.msg);
    ck_assert_str_eq(sl_ckpt_file(c), path);
    char *spec = NULL;
    ck_assert_int_eq(sl_ckpt_get_string(c, "spec", &spec, &err), SL_OK);
    ck_assert_str_eq(spec, "name: demo\nsteps: 10\n");
    free(spec);
    ck_assert_int_eq(sl_ckpt_section(c, "plugins/image2d", &rep, &err), SL_OK);
    ck_assert_int_eq(sl_ckpt_section(c, "plugins/sds", &est, &err), SL_OK);

    size_t n = 0;
    ck_assert_int_eq(sl_state_count(rep, "grid/level0", &n, &err), SL_OK);
    ck_assert_uint_eq(n, 8);
    float f[8];
    double d[8];
    int64_t i[6];
    uint8_t u[256];
    ck_assert_msg(sl_state_get(rep, "grid/level0", SL_STATE_F32, f, 8, &err) == SL_OK, "%s",
                  err.msg);
    ck_assert_int_eq(sl_state_get(rep, "grid/level1", SL_STATE_F64, d, 8, &err), SL_OK);
    ck_assert_int_eq(sl_state_get(rep, "counters", SL_STATE_I64, i, 6, &err), SL_OK);
    ck_assert_int_eq(sl_state_get(est, "occupancy", SL_STATE_U8, u, 256, &err), SL_OK);
    /* Bits, not values: NaN payloads and the sign of zero must survive. */
    ck_assert(memcmp(f, f32_values, sizeof f) == 0);
    ck_assert(memcmp(d, f64_values, sizeof d) == 0);
    ck_assert(memcmp(i, i64_values, sizeof i) == 0);
    ck_assert(memcmp(u, u8_values, sizeof u) == 0);
    ck_assert_int_eq(sl_state_count(est, "empty", &n, &err), SL_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(sl_state_get(est, "empty", SL_STATE_F32, NULL, 0, &err), SL_OK);
    sl_ckpt_close(c);

    /* The file is plain HDF5, typed as saved: h5py and h5dump read it without steinlab. */
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert(file >= 0);
    hid_t ds = H5Dopen2(file, "/plugins/image2d/grid/level0", H5P_DEFAULT);
    ck_assert(ds >= 0);
    hid_t type = H5Dget_type(ds);
    ck_assert(H5Tequal(type, H5T_IEEE_F32LE) > 0);
    H5Tclose(type);
    H5Dclose(ds);
    H5Fclose(file);
    test_tmpdir_remove();
}
END_TEST

START_TEST(test_array_errors)
{
    test_tmpdir_make("steinlab-test-state-io");
    fill_values();
    const char *path = test_tmp_path("e.ckpt.h5");
    sl_ckpt *c = NULL;
    sl_state_io *io = NULL;
    sl_error err;
    ck_assert_int_eq(sl_ckpt_begin(path, &c, &err), SL_OK);
    ck_assert_int_eq(sl_ckpt_section(c, "plugins/nerf", &io, &err), SL_OK);

    const char *bad[] = { "", "Grid", "a//b", "/a", "a/", "a-b", "a b", "a.b", "..", NULL };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        ck_assert_int_eq(sl_state_put(io, bad[k], SL_STATE_F32, f32_values, 1, &err),
                         SL_ERR_INVALID_ARG);
        ASSERT_MSG_HAS(err, "invalid array name");
        ASSERT_MSG_HAS(err, "[a-z0-9_]+ components separated by '/'");
        ASSERT_MSG_HAS(err, "plugins/nerf");
    }
    ck_assert_int_eq(sl_state_put(io, "a-b", SL_STATE_F32, f32_values, 1, &err),
                     SL_ERR_INVALID_ARG);
    ASSERT_MSG_HAS(err, "'a-b'");
    ck_assert_int_eq(sl_state_put(io, "x", (sl_state_dtype)7, f32_values, 1, &err),
                     SL_ERR_INVALID_ARG);
    ASSERT_MSG_HAS(err, "unknown dtype 7");
    ck_assert_int_eq(sl_state_put(io, "x", SL_STATE_F32, NULL, 3, &err), SL_ERR_INVALID_ARG);
    ASSERT_MSG_HAS(err, "data is NULL for 3 elements");

    ck_assert_int_eq(sl_state_put(io, "occ/grid", SL_STATE_U8, u8_values, 4, &err), SL_OK);
    ck_assert_int_eq(sl_state_put(io, "occ/grid", SL_STATE_U8, u8_values, 4, &err),
                     SL_ERR_INVALID_ARG);
    ASSERT_MSG_HAS(err, "'plugins/nerf/occ/grid' written twice");
    ck_assert_int_eq(sl_state_put(io, "occ/grid/x", SL_STATE_U8, u8_values, 4, &err),
                     SL_ERR_INVALID_ARG);
    ASSERT_MSG_HAS(err, "'plugins/nerf/occ/grid' is already an array");
    /* Reading calls on a checkpoint being written are refused, not attempted. */
    size_t n;
    ck_assert_int_eq(sl_state_count(io, "occ/grid", &n, &err), SL_ERR_INVALID_ARG);
    ASSERT_MSG_HAS(err, "opened for writing");
    ck_assert_int_eq(sl_state_put(io, "mu", SL_STATE_F32, f32_values, 4, &err), SL_OK);
    ck_assert_int_eq(sl_ckpt_commit(c, &err), SL_OK);

    ck_assert_int_eq(sl_ckpt_open(path, &c, &err), SL_OK);
    ck_assert_int_eq(sl_ckpt_section(c, "plugins/nerf", &io, &err), SL_OK);
    double d[4];
    float f[5];
    ck_assert_int_eq(sl_state_get(io, "mu", SL_STATE_F64, d, 4, &err), SL_ERR_FORMAT);
    char want[1024];
    snprintf(want, sizeof want,
             "checkpoint '%s': array 'plugins/nerf/mu' is float32 (4,), expected float64 (4,)",
             path);
    ck_assert_str_eq(err.msg, want);
    ck_assert_int_eq(sl_state_get(io, "mu", SL_STATE_F32, f, 5, &err), SL_ERR_FORMAT);
    ASSERT_MSG_HAS(err, "'plugins/nerf/mu' is float32 (4,), expected float32 (5,)");
    ck_assert_int_eq(sl_state_get(io, "sigma", SL_STATE_F32, f, 4, &err), SL_ERR_FORMAT);
    ASSERT_MSG_HAS(err, "no array 'plugins/nerf/sigma'");
    ck_assert_int_eq(sl_state_count(io, "deep/missing/name", &n, &err), SL_ERR_FORMAT);
    ASSERT_MSG_HAS(err, "no array 'plugins/nerf/deep/missing/name'");
    ck_assert_int_eq(sl_state_get(io, "occ", SL_STATE_U8, f, 4, &err), SL_ERR_FORMAT);
    ASSERT_MSG_HAS(err, "'plugins/nerf/occ' is not an array");
    ck_assert_int_eq(sl_state_put(io, "new", SL_STATE_F32, f32_values, 1, &err),
                     SL_ERR_INVALID_ARG);
    ASSERT_MSG_HAS(err, "opened for reading");
    /* A section nobody wrote reads as empty: every name is reported missing. */
    sl_state_io *other = NULL;
    ck_assert_int_eq(sl_ckpt_section(c, "plugins/vsd", &other, &err), SL_OK);
    ck_assert_int_eq(sl_state_count(other, "mu", &n, &err), SL_ERR_FORMAT);
    ASSERT_MSG_HAS(err, "no array 'plugins/vsd/mu'");
    ck_assert_int_eq(sl_ckpt_section(c, "Plugins", &other, &err), SL_ERR_INVALID_ARG);
    char *missing = NULL;
    ck_assert_int_eq(sl_ckpt_get_string(c, "spec", &missing, &err), SL_ERR_FORMAT);
    ASSERT_MSG_HAS(err, "no attribute 'spec'");
    sl_ckpt_close(c);
    test_tmpdir_remove();
}
END_TEST

/* A section nested in another, written first (a probed SSD's baseline "probe/ssd_mlp/mlp" is
 * saved before its estimator "probe/ssd_mlp"): the outer section's group already exists as an
 * intermediate when the outer section is opened, and both read back. */
START_TEST(test_nested_section_written_first)
{
    test_tmpdir_make("steinlab-test-state-io");
    fill_values();
    const char *path = test_tmp_path("nested.ckpt.h5");
    sl_ckpt *c = NULL;
    sl_state_io *inner = NULL, *outer = NULL;
    sl_error err;
    ck_assert_int_eq(sl_ckpt_begin(path, &c, &err), SL_OK);
    ck_assert_msg(sl_ckpt_section(c, "plugins/probe/ssd_mlp/mlp", &inner, &err) == SL_OK,
                  "%s", err.msg);
    ck_assert_int_eq(sl_state_put(inner, "params", SL_STATE_F32, f32_values, 4, &err), SL_OK);
    ck_assert_msg(sl_ckpt_section(c, "plugins/probe/ssd_mlp", &outer, &err) == SL_OK,
                  "%s", err.msg);
    ck_assert_int_eq(sl_state_put(outer, "mu", SL_STATE_F32, f32_values + 4, 2, &err), SL_OK);
    /* The outer section cannot write over the inner one's group. */
    ck_assert_int_eq(sl_state_put(outer, "mlp", SL_STATE_F32, f32_values, 1, &err),
                     SL_ERR_INVALID_ARG);
    ck_assert_msg(sl_ckpt_commit(c, &err) == SL_OK, "%s", err.msg);

    ck_assert_int_eq(sl_ckpt_open(path, &c, &err), SL_OK);
    float f[4];
    ck_assert_int_eq(sl_ckpt_section(c, "plugins/probe/ssd_mlp", &outer, &err), SL_OK);
    ck_assert_msg(sl_state_get(outer, "mu", SL_STATE_F32, f, 2, &err) == SL_OK, "%s", err.msg);
    ck_assert(memcmp(f, f32_values + 4, 2 * sizeof *f) == 0);   /* bits: NaNs among them */
    ck_assert_int_eq(sl_ckpt_section(c, "plugins/probe/ssd_mlp/mlp", &inner, &err), SL_OK);
    ck_assert_msg(sl_state_get(inner, "params", SL_STATE_F32, f, 4, &err) == SL_OK, "%s",
                  err.msg);
    ck_assert(memcmp(f, f32_values, 4 * sizeof *f) == 0);
    sl_ckpt_close(c);
    test_tmpdir_remove();
}
END_TEST

/* ---- files ----------------------------------------------------------------------------- */

START_TEST(test_atomic_replacement)
{
    test_tmpdir_make("steinlab-test-state-io");
    fill_values();
    const char *path = test_tmp_path("run.ckpt.h5");
    write_standard(path, 1.0);
    write_standard(path, 2.0);
    ck_assert(read_marker(path) == 2.0);

    /* Abandoned: the temporary goes, the previous checkpoint stays. */
    sl_ckpt *c = NULL;
    sl_state_io *io = NULL;
    sl_error err;
    ck_assert_int_eq(sl_ckpt_begin(path, &c, &err), SL_OK);
    ck_assert_int_eq(sl_ckpt_section(c, "core", &io, &err), SL_OK);
    double three = 3.0;
    ck_assert_int_eq(sl_state_put(io, "marker", SL_STATE_F64, &three, 1, &err), SL_OK);
    sl_ckpt_close(c);
    ck_assert(!file_exists(test_tmp_path("run.ckpt.h5.tmp")));
    ck_assert(read_marker(path) == 2.0);

    /* A writer that dies halfway (no close, no commit) leaves a stray temporary and the
     * previous checkpoint intact; the next checkpoint overwrites the stray file. */
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        sl_ckpt *cc = NULL;
        sl_state_io *cio = NULL;
        sl_error e;
        double four = 4.0;
        if (sl_ckpt_begin(path, &cc, &e) != SL_OK || sl_ckpt_section(cc, "core", &cio, &e) != SL_OK ||
            sl_state_put(cio, "marker", SL_STATE_F64, &four, 1, &e) != SL_OK)
            _exit(3);
        _exit(0);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(file_exists(test_tmp_path("run.ckpt.h5.tmp")));
    ck_assert(read_marker(path) == 2.0);
    write_standard(path, 5.0);
    ck_assert(read_marker(path) == 5.0);
    ck_assert(!file_exists(test_tmp_path("run.ckpt.h5.tmp")));
    test_tmpdir_remove();
}
END_TEST

START_TEST(test_bad_files)
{
    test_tmpdir_make("steinlab-test-state-io");
    sl_ckpt *c = NULL;
    sl_error err;
    char want[1024];

    const char *missing = test_tmp_path("missing.ckpt.h5");
    ck_assert_int_eq(sl_ckpt_open(missing, &c, &err), SL_ERR_IO);
    snprintf(want, sizeof want, "checkpoint '%s': No such file or directory", missing);
    ck_assert_str_eq(err.msg, want);
    ck_assert_ptr_null(c);

    const char *garbage = test_tmp_path("garbage.ckpt.h5");
    FILE *f = fopen(garbage, "w");
    ck_assert_ptr_nonnull(f);
    fputs("not hdf5 at all\n", f);
    fclose(f);
    ck_assert_int_eq(sl_ckpt_open(garbage, &c, &err), SL_ERR_FORMAT);
    ASSERT_MSG_HAS(err, "is not a readable HDF5 file");

    /* A checkpoint cut short (a copy interrupted, a full disk): refused with HDF5's reason. */
    fill_values();
    const char *good = test_tmp_path("good.ckpt.h5");
    write_standard(good, 1.0);
    struct stat sb;
    ck_assert_int_eq(stat(good, &sb), 0);
    const char *cut = test_tmp_path("cut.ckpt.h5");
    FILE *in = fopen(good, "rb"), *out = fopen(cut, "wb");
    ck_assert(in && out);
    char buf[4096];
    size_t left = (size_t)sb.st_size / 2;
    while (left > 0) {
        size_t n = fread(buf, 1, left < sizeof buf ? left : sizeof buf, in);
        ck_assert(n > 0);
        fwrite(buf, 1, n, out);
        left -= n;
    }
    fclose(in);
    fclose(out);
    ck_assert_int_ne(sl_ckpt_open(cut, &c, &err), SL_OK);
    snprintf(want, sizeof want, "checkpoint '%s'", cut);
    ASSERT_MSG_HAS(err, want);

    /* An HDF5 file that is not a checkpoint, and one from a future format version. */
    const char *foreign = test_tmp_path("foreign.h5");
    hid_t file = H5Fcreate(foreign, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(file >= 0);
    H5Fclose(file);
    ck_assert_int_eq(sl_ckpt_open(foreign, &c, &err), SL_ERR_FORMAT);
    ASSERT_MSG_HAS(err, "no attribute 'format'");

    const char *future = test_tmp_path("future.ckpt.h5");
    ck_assert_int_eq(sl_ckpt_begin(future, &c, &err), SL_OK);
    ck_assert_int_eq(sl_ckpt_commit(c, &err), SL_OK);
    file = H5Fopen(future, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(file >= 0);
    hid_t attr = H5Aopen(file, "format_version", H5P_DEFAULT);
    int64_t v = 99;
    ck_assert(H5Awrite(attr, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(attr);
    H5Fclose(file);
    ck_assert_int_eq(sl_ckpt_open(future, &c, &err), SL_ERR_FORMAT);
    ASSERT_MSG_HAS(err, "has format version 99; this steinlab reads version 1");

    /* A directory that does not exist: begin fails and says where. */
    ck_assert_int_eq(sl_ckpt_begin("/nonexistent-dir/run.ckpt.h5", &c, &err), SL_ERR_IO);
    ASSERT_MSG_HAS(err, "/nonexistent-dir/run.ckpt.h5.tmp");
    test_tmpdir_remove();
}
END_TEST

START_TEST(test_path_for_log)
{
    char out[64];
    sl_error err;
    ck_assert_int_eq(sl_ckpt_path_for_log("runs/a.h5", out, sizeof out, &err), SL_OK);
    ck_assert_str_eq(out, "runs/a.ckpt.h5");
    ck_assert_int_eq(sl_ckpt_path_for_log("log", out, sizeof out, &err), SL_OK);
    ck_assert_str_eq(out, "log.ckpt.h5");
    ck_assert_int_eq(sl_ckpt_path_for_log("x.hdf5", out, sizeof out, &err), SL_OK);
    ck_assert_str_eq(out, "x.hdf5.ckpt.h5");
    char small[8];
    ck_assert_int_eq(sl_ckpt_path_for_log("runs/a.h5", small, sizeof small, &err),
                     SL_ERR_INVALID_ARG);
    ASSERT_MSG_HAS(err, "longer than 7 bytes");
    ck_assert_int_eq(sl_ckpt_path_for_log("", out, sizeof out, &err), SL_ERR_INVALID_ARG);
}
END_TEST

/* ---- the log's side of a resume ------------------------------------------------------- */

/* A child writes a SWMR log with `rows` flushed rows and 2 render entries, then dies
 * without closing it (as kill -9 would leave it). */
static void killed_writer(const char *path, int rows)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        sl_log *log = NULL;
        sl_log_table *t = NULL;
        sl_error e;
        int cs, cl;
        uint8_t img[2 * 2 * 3] = {0};
        if (sl_log_create(path, &log, &e) != SL_OK ||
            sl_log_attr_string(log, "/", "spec", "steps: 9\n", &e) != SL_OK ||
            sl_log_table_create(log, "/steps", &t, &e) != SL_OK ||
            sl_log_table_column(t, "step", "", SL_LOG_I64, &cs, &e) != SL_OK ||
            sl_log_table_column(t, "loss", "", SL_LOG_F64, &cl, &e) != SL_OK ||
            sl_log_renders_create(log, "rgb", 1, 2, 2, 3, &e) != SL_OK ||
            sl_log_start_swmr(log, &e) != SL_OK)
            _exit(3);
        for (int r = 0; r < rows; r++) {
            sl_log_table_set(t, cs, r);
            sl_log_table_set(t, cl, 1.0 / (r + 1));
            if (sl_log_table_commit_row(t, &e) != SL_OK)
                _exit(4);
        }
        for (int k = 0; k < 2; k++) {
            img[0] = (uint8_t)k;
            if (sl_log_renders_append(log, "rgb", 10 * k, img, &e) != SL_OK)
                _exit(5);
        }
        if (sl_log_flush(log, &e) != SL_OK)
            _exit(6);
        _exit(0);   /* no close: the superblock keeps its "open for write" flags */
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer failed: %d", status);
}

START_TEST(test_log_reopen_after_kill)
{
    test_tmpdir_make("steinlab-test-state-io");
    const char *path = test_tmp_path("killed.h5");
    killed_writer(path, 7);
    sl_error err;

    /* A plain writable open is refused by HDF5 while the flags are set. */
    hid_t plain = H5I_INVALID_HID;
    H5E_BEGIN_TRY { plain = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT); } H5E_END_TRY;
    ck_assert_msg(plain < 0, "HDF5 opened a killed SWMR log read-write without clearing it");
    /* Reading the spec needs no clearing (SWMR read). */
    char *spec = NULL;
    ck_assert_msg(sl_log_read_attr_string(path, "/", "spec", &spec, &err) == SL_OK, "%s", err.msg);
    ck_assert_str_eq(spec, "steps: 9\n");
    free(spec);

    sl_log *log = NULL;
    sl_log_table *t = NULL;
    int cs = -1, cl = -1;
    ck_assert_msg(sl_log_open_append(path, &log, &err) == SL_OK, "%s", err.msg);
    ck_assert_int_eq(sl_log_table_open(log, "/steps", &t, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_column_open(t, "step", SL_LOG_I64, &cs, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_column_open(t, "loss", SL_LOG_I64, &cl, &err), SL_ERR_FORMAT);
    ASSERT_MSG_HAS(err, "'/steps/loss' is not int64");
    ck_assert_int_eq(sl_log_table_column_open(t, "loss", SL_LOG_F64, &cl, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_column_open(t, "lr", SL_LOG_F64, NULL, &err), SL_ERR_FORMAT);
    ASSERT_MSG_HAS(err, "has no column '/steps/lr'");
    ck_assert_int_eq(sl_log_table_rows(t), 7);
    ck_assert_int_eq(sl_log_renders_open(log, "rgb", 1, 2, 3, 3, &err), SL_ERR_FORMAT);
    ck_assert_int_eq(sl_log_renders_open(log, "rgb", 1, 2, 2, 3, &err), SL_OK);
    ck_assert_int_eq(sl_log_renders_count(log), 2);
    /* Creating is refused in a reopened log; cutting beyond what it holds too. */
    sl_log_table *nt = NULL;
    ck_assert_int_eq(sl_log_table_create(log, "/probes", &nt, &err), SL_ERR_INVALID_ARG);
    ASSERT_MSG_HAS(err, "reopened for appending");
    ck_assert_int_eq(sl_log_table_truncate(t, 8, &err), SL_ERR_FORMAT);
    ASSERT_MSG_HAS(err, "holds 7 rows, the checkpoint needs 8");
    ck_assert_int_eq(sl_log_table_truncate(t, 4, &err), SL_OK);
    ck_assert_int_eq(sl_log_renders_truncate(log, 1, &err), SL_OK);
    ck_assert_int_eq(sl_log_start_swmr(log, &err), SL_OK);
    /* Rows 4.. are written again, with other values. */
    for (int r = 4; r < 6; r++) {
        sl_log_table_set(t, cs, r);
        sl_log_table_set(t, cl, -r);
        ck_assert_int_eq(sl_log_table_commit_row(t, &err), SL_OK);
    }
    uint8_t img[12] = {9};
    ck_assert_int_eq(sl_log_renders_append(log, "rgb", 20, img, &err), SL_OK);
    ck_assert_msg(sl_log_sync(log, &err) == SL_OK, "%s", err.msg);
    ck_assert_int_eq(sl_log_close(log, &err), SL_OK);

    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(file >= 0, "the closed log does not open without SWMR");
    double loss[6];
    int64_t rsteps[2];
    hid_t ds = H5Dopen2(file, "/steps/loss", H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    hsize_t dims = 0;
    H5Sget_simple_extent_dims(sp, &dims, NULL);
    ck_assert_uint_eq(dims, 6);
    H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, loss);
    H5Sclose(sp);
    H5Dclose(ds);
    ck_assert(loss[3] == 0.25 && loss[4] == -4.0 && loss[5] == -5.0);
    ds = H5Dopen2(file, "/renders/step", H5P_DEFAULT);
    H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, rsteps);
    H5Dclose(ds);
    ck_assert(rsteps[0] == 0 && rsteps[1] == 20);
    H5Fclose(file);

    /* A log created by this process (not reopened) has no *_open calls. */
    sl_log *fresh = NULL;
    ck_assert_int_eq(sl_log_create(test_tmp_path("fresh.h5"), &fresh, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_open(fresh, "/steps", &nt, &err), SL_ERR_INVALID_ARG);
    ASSERT_MSG_HAS(err, "needs a log opened with sl_log_open_append");
    sl_log_close(fresh, &err);
    ck_assert_int_eq(sl_log_open_append(test_tmp_path("none.h5"), &fresh, &err), SL_ERR_IO);
    ASSERT_MSG_HAS(err, "No such file or directory");
    test_tmpdir_remove();
}
END_TEST

static Suite *state_io_suite(void)
{
    Suite *s = suite_create("state_io");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_round_trip_every_dtype);
    tcase_add_test(tc, test_array_errors);
    tcase_add_test(tc, test_nested_section_written_first);
    tcase_add_test(tc, test_atomic_replacement);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_path_for_log);
    tcase_add_test(tc, test_log_reopen_after_kill);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(state_io_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
