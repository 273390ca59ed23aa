/* tests/test_log.c — the HDF5 run log (core/log.h): write, read back bit-exactly with the
 * HDF5 C API, the SWMR rules, sl_log_inspect, and a live reader (h5py, swmr=True) following
 * the log while the writer is still open. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>

#include "log.h"
#include "support/tmpdir.h"

/* ---- fixtures -------------------------------------------------------------------------- */

static const char SPEC[] = "name: demo\nseed: 42\nestimator:\n  kind: sds\n  lr: 0.01\n"
                           "steps: 8\nrender_every: 4\nviews: 2\n";

/* The expected content of the standard log, also used by the checks. */
enum { PRE_ROWS = 3, POST_ROWS = 5, ROWS = PRE_ROWS + POST_ROWS };
enum { RGB_V = 2, RGB_H = 4, RGB_W = 5, RGB_C = 3, DEPTH_V = 1, DEPTH_C = 1 };
enum { RGB_ENTRY = RGB_V * RGB_H * RGB_W * RGB_C, DEPTH_ENTRY = DEPTH_V * RGB_H * RGB_W * DEPTH_C };

static double loss_of(int row) { return 1.0 / (1.0 + row) + 1e-17 * row; }
/* grad_norm is set on even rows only; lr is left unset on row 1. */
static int grad_set(int row) { return row % 2 == 0; }
static double grad_of(int row) { return sqrt(2.0 + row); }
static double lr_of(int row) { return 0.01 * pow(0.9, row); }
static uint8_t rgb_px(int entry, int i) { return (uint8_t)(entry * 37 + i * 7); }
static uint8_t depth_px(int entry, int i) { return (uint8_t)(255 - entry * 11 - i); }

static void set_step_row(sl_log_table *t, int row)
{
    sl_log_table_set(t, sl_log_table_find(t, "step"), row);
    sl_log_table_set(t, sl_log_table_find(t, "loss"), loss_of(row));
    if (grad_set(row))
        sl_log_table_set(t, sl_log_table_find(t, "grad_norm"), grad_of(row));
    if (row != 1)
        sl_log_table_set(t, sl_log_table_find(t, "lr"), lr_of(row));
}

static void append_renders(sl_log *log, int entry, int64_t step)
{
    uint8_t rgb[RGB_ENTRY], depth[DEPTH_ENTRY];
    for (int i = 0; i < RGB_ENTRY; i++)
        rgb[i] = rgb_px(entry, i);
    for (int i = 0; i < DEPTH_ENTRY; i++)
        depth[i] = depth_px(entry, i);
    sl_error err;
    ck_assert_int_eq(sl_log_renders_append(log, "rgb", step, rgb, &err), SL_OK);
    ck_assert_int_eq(sl_log_renders_append(log, "depth", step, depth, &err), SL_OK);
}

/* Writes the standard log: attributes, /steps (4 columns), /eval (2), two render kinds,
 * PRE_ROWS rows before SWMR and POST_ROWS after, two render steps. Checks the SWMR rule
 * on every defining call. Returns the log still open when keep_open. */
static sl_log *write_standard_log(const char *path, int keep_open)
{
    sl_log *log = NULL;
    sl_error err;
    ck_assert_msg(sl_log_create(path, &log, &err) == SL_OK, "%s", err.msg);
    ck_assert_int_eq(sl_log_attr_string(log, "/", "name", "demo", &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_int(log, "/", "seed", 42, &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_string(log, "/", "steinlab_version", "0.1.0", &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_string(log, "/", "git_describe", "abc1234-dirty", &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_string(log, "/", "created", "2024-05-01T12:00:00Z", &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_string(log, "/", "host", "lab-01", &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_string(log, "/", "spec", SPEC, &err), SL_OK);
    /* Overwriting an attribute replaces it. */
    ck_assert_int_eq(sl_log_attr_string(log, "/", "host", "lab-02", &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_string(log, "/plugins/sds", "plugin", "sds", &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_string(log, "/plugins/sds", "kind", "estimator", &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_string(log, "/plugins/sds", "version", "1.2.0", &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_double(log, "/plugins/sds", "lr", 0.01, &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_int(log, "/plugins/sds", "particles", 4, &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_string(log, "/plugins/sds", "schedule", "cosine", &err), SL_OK);

    sl_log_table *steps = NULL, *eval = NULL;
    int c;
    ck_assert_int_eq(sl_log_table_create(log, "/steps", &steps, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_column(steps, "step", "training step", SL_LOG_I64, &c, &err), SL_OK);
    ck_assert_int_eq(c, 0);
    ck_assert_int_eq(sl_log_table_column(steps, "loss", "mean loss", SL_LOG_F64, &c, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_column(steps, "grad_norm", "|g|", SL_LOG_F64, &c, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_column(steps, "lr", NULL, SL_LOG_F64, &c, &err), SL_OK);
    ck_assert_int_eq(c, 3);
    ck_assert_int_eq(sl_log_table_create(log, "/eval", &eval, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_column(eval, "step", "step of the evaluation", SL_LOG_I64, NULL, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_column(eval, "psnr", "PSNR in dB", SL_LOG_F64, NULL, &err), SL_OK);
    ck_assert_int_eq(sl_log_renders_create(log, "rgb", RGB_V, RGB_H, RGB_W, RGB_C, &err), SL_OK);
    ck_assert_int_eq(sl_log_renders_create(log, "depth", DEPTH_V, RGB_H, RGB_W, DEPTH_C, &err), SL_OK);

    for (int r = 0; r < PRE_ROWS; r++) {
        set_step_row(steps, r);
        ck_assert_int_eq(sl_log_table_commit_row(steps, &err), SL_OK);
    }
    ck_assert_int_eq(sl_log_table_rows(steps), PRE_ROWS);
    ck_assert_msg(sl_log_start_swmr(log, &err) == SL_OK, "%s", err.msg);

    /* Phase 2: every defining call is refused, with the reason. */
    sl_log_table *t2 = NULL;
    ck_assert_int_eq(sl_log_attr_string(log, "/", "late", "x", &err), SL_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "SWMR") && strstr(err.msg, "late"), "%s", err.msg);
    ck_assert_int_eq(sl_log_attr_int(log, "/plugins/sds", "late", 1, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_attr_double(log, "/", "late", 1.0, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_table_create(log, "/probes/sds", &t2, &err), SL_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "sl_log_start_swmr"), "%s", err.msg);
    ck_assert_ptr_null(t2);
    ck_assert_int_eq(sl_log_table_column(steps, "late", "", SL_LOG_F64, NULL, &err), SL_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "SWMR"), "%s", err.msg);
    ck_assert_int_eq(sl_log_renders_create(log, "normals", 1, 2, 2, 3, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_start_swmr(log, &err), SL_ERR_INVALID_ARG);

    append_renders(log, 0, 4);
    for (int r = PRE_ROWS; r < ROWS; r++) {
        set_step_row(steps, r);
        ck_assert_int_eq(sl_log_table_commit_row(steps, &err), SL_OK);
        if (r == 5)
            ck_assert_int_eq(sl_log_flush(log, &err), SL_OK);
    }
    append_renders(log, 1, 8);
    sl_log_table_set(eval, 0, 7.6);   /* I64 takes the value rounded */
    sl_log_table_set(eval, 1, 31.25);
    ck_assert_int_eq(sl_log_table_commit_row(eval, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_rows(steps), ROWS);
    ck_assert_int_eq(sl_log_table_rows(eval), 1);
    if (keep_open)
        return log;
    ck_assert_msg(sl_log_close(log, &err) == SL_OK, "%s", err.msg);
    return NULL;
}

/* ---- reading back with the C API ------------------------------------------------------- */

static int64_t read_dims(hid_t file, const char *path, hsize_t *dims, int max_rank)
{
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "open %s", path);
    hid_t s = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(s);
    ck_assert_int_le(rank, max_rank);
    H5Sget_simple_extent_dims(s, dims, NULL);
    H5Sclose(s);
    H5Dclose(d);
    return rank;
}

static void read_all(hid_t file, const char *path, hid_t mem_type, void *buf)
{
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "open %s", path);
    ck_assert_int_ge(H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
    H5Dclose(d);
}

/* A scalar string attribute, checked to be variable-length UTF-8 (what h5py reads as str). */
static char *read_str_attr(hid_t file, const char *obj, const char *name)
{
    hid_t a = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "attribute %s on %s", name, obj);
    hid_t ft = H5Aget_type(a);
    ck_assert_int_eq(H5Tget_class(ft), H5T_STRING);
    ck_assert_int_gt(H5Tis_variable_str(ft), 0);
    ck_assert_int_eq(H5Tget_cset(ft), H5T_CSET_UTF8);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5T_CSET_UTF8);
    char *v = NULL;
    ck_assert_int_ge(H5Aread(a, mt, &v), 0);
    char *copy = strdup(v);
    H5free_memory(v);
    H5Tclose(mt);
    H5Tclose(ft);
    H5Aclose(a);
    return copy;
}

static void check_str_attr(hid_t file, const char *obj, const char *name, const char *want)
{
    char *v = read_str_attr(file, obj, name);
    ck_assert_str_eq(v, want);
    free(v);
}

static void check_standard_log(const char *path)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(file >= 0, "H5Fopen %s", path);

    check_str_attr(file, "/", "name", "demo");
    check_str_attr(file, "/", "host", "lab-02");
    check_str_attr(file, "/", "spec", SPEC);
    check_str_attr(file, "/plugins/sds", "kind", "estimator");
    check_str_attr(file, "/steps/loss", "doc", "mean loss");
    check_str_attr(file, "/steps/lr", "doc", "");
    char *doc = read_str_attr(file, "/renders/rgb", "doc");
    ck_assert_msg(strstr(doc, "(n, views, H, W, C)"), "%s", doc);
    free(doc);
    free(read_str_attr(file, "/renders/step", "doc"));
    int64_t seed = 0;
    double lr = 0;
    hid_t a = H5Aopen_by_name(file, "/", "seed", H5P_DEFAULT, H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_INT64, &seed);
    H5Aclose(a);
    ck_assert_int_eq(seed, 42);
    a = H5Aopen_by_name(file, "/plugins/sds", "lr", H5P_DEFAULT, H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_DOUBLE, &lr);
    H5Aclose(a);
    ck_assert(memcmp(&lr, &(double){0.01}, sizeof lr) == 0);
    ck_assert_int_eq(H5Aexists_by_name(file, "/", "late", H5P_DEFAULT), 0);
    ck_assert_int_eq(H5Lexists(file, "/probes", H5P_DEFAULT), 0);

    /* Column layout: 1-D, unlimited, chunked by 1024 rows, little-endian 64-bit. */
    hid_t d = H5Dopen2(file, "/steps/loss", H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    hsize_t dims[5], maxdims[5], chunk[5];
    ck_assert_int_eq(H5Sget_simple_extent_dims(s, dims, maxdims), 1);
    ck_assert_int_eq(dims[0], ROWS);
    ck_assert(maxdims[0] == H5S_UNLIMITED);
    hid_t dcpl = H5Dget_create_plist(d);
    ck_assert_int_eq(H5Pget_layout(dcpl), H5D_CHUNKED);
    ck_assert_int_eq(H5Pget_chunk(dcpl, 1, chunk), 1);
    ck_assert_int_eq(chunk[0], 1024);
    hid_t t = H5Dget_type(d);
    ck_assert(H5Tequal(t, H5T_IEEE_F64LE) > 0);
    H5Tclose(t);
    H5Pclose(dcpl);
    H5Sclose(s);
    H5Dclose(d);

    int64_t step[ROWS];
    double loss[ROWS], grad[ROWS], lrs[ROWS];
    read_all(file, "/steps/step", H5T_NATIVE_INT64, step);
    read_all(file, "/steps/loss", H5T_NATIVE_DOUBLE, loss);
    read_all(file, "/steps/grad_norm", H5T_NATIVE_DOUBLE, grad);
    read_all(file, "/steps/lr", H5T_NATIVE_DOUBLE, lrs);
    for (int r = 0; r < ROWS; r++) {
        ck_assert_int_eq(step[r], r);
        double want = loss_of(r);
        ck_assert_msg(memcmp(&loss[r], &want, sizeof want) == 0, "loss[%d]", r);
        if (grad_set(r)) {
            want = grad_of(r);
            ck_assert_msg(memcmp(&grad[r], &want, sizeof want) == 0, "grad_norm[%d]", r);
        } else {
            ck_assert_msg(isnan(grad[r]), "grad_norm[%d] = %g, want NaN", r, grad[r]);
        }
        if (r != 1) {
            want = lr_of(r);
            ck_assert_msg(memcmp(&lrs[r], &want, sizeof want) == 0, "lr[%d]", r);
        } else {
            ck_assert(isnan(lrs[r]));
        }
    }
    int64_t estep[1];
    double psnr[1];
    ck_assert_int_eq(read_dims(file, "/eval/psnr", dims, 1), 1);
    ck_assert_int_eq(dims[0], 1);
    read_all(file, "/eval/step", H5T_NATIVE_INT64, estep);
    read_all(file, "/eval/psnr", H5T_NATIVE_DOUBLE, psnr);
    ck_assert_int_eq(estep[0], 8);
    ck_assert(psnr[0] == 31.25);

    /* Renders: (n, views, H, W, C), one entry per chunk, steps owned by the first kind. */
    ck_assert_int_eq(read_dims(file, "/renders/rgb", dims, 5), 5);
    ck_assert_int_eq(dims[0], 2);
    ck_assert_int_eq(dims[1], RGB_V);
    ck_assert_int_eq(dims[2], RGB_H);
    ck_assert_int_eq(dims[3], RGB_W);
    ck_assert_int_eq(dims[4], RGB_C);
    d = H5Dopen2(file, "/renders/rgb", H5P_DEFAULT);
    dcpl = H5Dget_create_plist(d);
    ck_assert_int_eq(H5Pget_chunk(dcpl, 5, chunk), 5);
    ck_assert_int_eq(chunk[0], 1);
    ck_assert_int_eq(chunk[4], RGB_C);
    H5Pclose(dcpl);
    H5Dclose(d);
    uint8_t rgb[2 * RGB_ENTRY], depth[2 * DEPTH_ENTRY];
    read_all(file, "/renders/rgb", H5T_NATIVE_UINT8, rgb);
    read_all(file, "/renders/depth", H5T_NATIVE_UINT8, depth);
    for (int e = 0; e < 2; e++) {
        for (int i = 0; i < RGB_ENTRY; i++)
            ck_assert_int_eq(rgb[e * RGB_ENTRY + i], rgb_px(e, i));
        for (int i = 0; i < DEPTH_ENTRY; i++)
            ck_assert_int_eq(depth[e * DEPTH_ENTRY + i], depth_px(e, i));
    }
    int64_t rsteps[2];
    ck_assert_int_eq(read_dims(file, "/renders/step", dims, 1), 1);
    ck_assert_int_eq(dims[0], 2);
    read_all(file, "/renders/step", H5T_NATIVE_INT64, rsteps);
    ck_assert_int_eq(rsteps[0], 4);
    ck_assert_int_eq(rsteps[1], 8);
    ck_assert_int_ge(H5Fclose(file), 0);
}

START_TEST(test_write_and_read_back)
{
    test_tmpdir_make("steinlab-test-log");
    write_standard_log(test_tmp_path("run.h5"), 0);
    check_standard_log(test_tmp_path("run.h5"));
    test_tmpdir_remove();
}
END_TEST

/* ---- inspect --------------------------------------------------------------------------- */

/* Runs sl_log_inspect into a string (caller frees), through a tmpfile as the CLI would
 * print to a stream. */
static char *inspect_to_string(const char *path, sl_status *st, sl_error *err)
{
    FILE *out = tmpfile();
    ck_assert_ptr_nonnull(out);
    *st = sl_log_inspect(path, out, err);
    long len = ftell(out);
    ck_assert_int_ge(len, 0);
    rewind(out);
    char *text = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(fread(text, 1, (size_t)len, out), (size_t)len);
    text[len] = '\0';
    fclose(out);
    return text;
}

static void assert_has_line(const char *text, const char *line)
{
    /* A whole line, spaces included, so that the alignment is checked too. */
    const char *p = text;
    size_t n = strlen(line);
    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return;
        p += 1;
    }
    ck_abort_msg("line not found: [%s]\nin:\n%s", line, text);
}

/* Where `needle` starts in `text`, or -1. */
static long offset_in(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    return p ? (long)(p - text) : -1;
}

START_TEST(test_inspect_output)
{
    test_tmpdir_make("steinlab-test-log");
    write_standard_log(test_tmp_path("run.h5"), 0);
    sl_error err;
    sl_status st;
    char *text = inspect_to_string(test_tmp_path("run.h5"), &st, &err);
    ck_assert_msg(st == SL_OK, "%s", err.msg);
    assert_has_line(text, "name              demo");
    assert_has_line(text, "seed              42");
    assert_has_line(text, "steinlab_version  0.1.0");
    assert_has_line(text, "git_describe      abc1234-dirty");
    assert_has_line(text, "host              lab-02");
    assert_has_line(text, "spec              8 lines, 88 bytes");
    assert_has_line(text, "                  | name: demo");
    assert_has_line(text, "                  | ... (2 more lines)");
    assert_has_line(text, "plugins");
    assert_has_line(text, "  sds             plugin sds  kind estimator  version 1.2.0");
    assert_has_line(text, "                    lr        = 0.01");
    assert_has_line(text, "                    particles = 4");
    assert_has_line(text, "                    schedule  = cosine");
    assert_has_line(text, "table /steps: 8 rows");
    assert_has_line(text, "  column             set         last          min          max");
    assert_has_line(text, "  step                 8            7            0            7");
    assert_has_line(text, "  loss                 8        0.125        0.125            1");
    assert_has_line(text, "  grad_norm            4      2.82843      1.41421      2.82843");
    assert_has_line(text, "  lr                   7   0.00478297   0.00478297         0.01");
    assert_has_line(text, "table /eval: 1 row");
    assert_has_line(text, "  psnr              1        31.25        31.25        31.25");
    assert_has_line(text, "renders");
    assert_has_line(text, "  rgb   2 entries of 2 views, 4x5, 3 channels");
    assert_has_line(text, "  depth 2 entries of 1 view, 4x5, 1 channel");
    assert_has_line(text, "  step  2 entries, steps 4..8");
    /* /steps comes before /eval, the renders last. */
    long at_steps = offset_in(text, "table /steps"), at_eval = offset_in(text, "table /eval");
    long at_renders = offset_in(text, "\nrenders\n");
    ck_assert(at_steps >= 0 && at_steps < at_eval && at_eval < at_renders);
    free(text);
    test_tmpdir_remove();
}
END_TEST

START_TEST(test_inspect_bad_files)
{
    test_tmpdir_make("steinlab-test-log");
    sl_error err;
    sl_status st;
    FILE *out = tmpfile();
    ck_assert_ptr_nonnull(out);

    st = sl_log_inspect(test_tmp_path("missing.h5"), out, &err);
    ck_assert_int_eq(st, SL_ERR_IO);
    ck_assert_msg(strstr(err.msg, "missing.h5") && !strchr(err.msg, '\n'), "%s", err.msg);

    FILE *g = fopen(test_tmp_path("garbage.h5"), "wb");
    ck_assert_ptr_nonnull(g);
    for (int i = 0; i < 5000; i++)
        fputc((i * 131) & 0xff, g);
    fclose(g);
    st = sl_log_inspect(test_tmp_path("garbage.h5"), out, &err);
    ck_assert_int_eq(st, SL_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "not an HDF5 file") && !strchr(err.msg, '\n'), "%s", err.msg);

    g = fopen(test_tmp_path("empty.h5"), "wb");
    fclose(g);
    st = sl_log_inspect(test_tmp_path("empty.h5"), out, &err);
    ck_assert_msg(st == SL_ERR_FORMAT || st == SL_ERR_IO, "%s", sl_status_name(st));

    /* A real log cut in half: HDF5's signature is there, the rest is not. */
    write_standard_log(test_tmp_path("run.h5"), 0);
    struct stat sb;
    ck_assert_int_eq(stat(test_tmp_path("run.h5"), &sb), 0);
    ck_assert_int_eq(truncate(test_tmp_path("run.h5"), sb.st_size / 2), 0);
    st = sl_log_inspect(test_tmp_path("run.h5"), out, &err);
    ck_assert_int_eq(st, SL_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "truncated") && !strchr(err.msg, '\n'), "%s", err.msg);
    /* A directory is not a log either. */
    ck_assert_int_eq(sl_log_inspect(test_tmpdir(), out, &err), SL_ERR_IO);

    ck_assert_int_eq(sl_log_inspect(NULL, out, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_inspect(test_tmp_path("run.h5"), NULL, &err), SL_ERR_INVALID_ARG);
    fclose(out);
    test_tmpdir_remove();
}
END_TEST

/* A writer killed during the append phase leaves a log that inspect still reads (SWMR read
 * ignores the "open for writing" mark); one killed before SWMR started is refused with a
 * message that names h5clear. */
static void write_and_die(const char *path, int start_swmr)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        sl_log *log = NULL;
        sl_log_table *t = NULL;
        sl_error err;
        if (sl_log_create(path, &log, &err) != SL_OK ||
            sl_log_attr_string(log, "/", "name", "killed", &err) != SL_OK ||
            sl_log_table_create(log, "/steps", &t, &err) != SL_OK ||
            sl_log_table_column(t, "step", "", SL_LOG_I64, NULL, &err) != SL_OK)
            _exit(2);
        if (start_swmr && sl_log_start_swmr(log, &err) != SL_OK)
            _exit(3);
        for (int r = 0; r < 10; r++) {
            sl_log_table_set(t, 0, r);
            sl_log_table_commit_row(t, &err);
        }
        if (sl_log_flush(log, &err) != SL_OK)
            _exit(4);
        raise(SIGKILL);
        _exit(5);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "writer status %d", status);
}

START_TEST(test_inspect_killed_writer)
{
    test_tmpdir_make("steinlab-test-log");
    sl_error err;
    sl_status st;
    write_and_die(test_tmp_path("swmr.h5"), 1);
    char *text = inspect_to_string(test_tmp_path("swmr.h5"), &st, &err);
    ck_assert_msg(st == SL_OK, "%s", err.msg);
    assert_has_line(text, "name              killed");
    assert_has_line(text, "table /steps: 10 rows");
    free(text);

    write_and_die(test_tmp_path("defining.h5"), 0);
    text = inspect_to_string(test_tmp_path("defining.h5"), &st, &err);
    ck_assert_int_eq(st, SL_ERR_IO);
    ck_assert_msg(strstr(err.msg, "h5clear") && !strchr(err.msg, '\n'), "%s", err.msg);
    free(text);
    test_tmpdir_remove();
}
END_TEST

/* ---- live reading ---------------------------------------------------------------------- */

/* Runs tests/read_log_live.py on the log; returns its exit status (-1: did not run). */
static int run_live_reader(const char *path, int64_t min_rows)
{
    /* meson test sets STEINLAB_SOURCE_ROOT; by hand the test runs from the source root or
     * from a build directory inside it. */
    char script[1024] = "tests/read_log_live.py";
    const char *root = getenv("STEINLAB_SOURCE_ROOT");
    if (root && root[0])
        snprintf(script, sizeof script, "%s/tests/read_log_live.py", root);
    else if (access(script, R_OK) != 0 && access("../tests/read_log_live.py", R_OK) == 0)
        snprintf(script, sizeof script, "../tests/read_log_live.py");
    char rows[32];
    snprintf(rows, sizeof rows, "%lld", (long long)min_rows);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char *argv[] = {"/usr/bin/python3", script, (char *)path, rows, NULL};
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

START_TEST(test_live_reader)
{
    test_tmpdir_make("steinlab-test-log");
    const char *path = test_tmp_path("live.h5");
    sl_log *log = NULL;
    sl_log_table *steps = NULL;
    sl_error err;
    int col_step, col_loss;
    ck_assert_int_eq(sl_log_create(path, &log, &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_string(log, "/", "name", "live-run", &err), SL_OK);
    ck_assert_int_eq(sl_log_table_create(log, "/steps", &steps, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_column(steps, "step", "step", SL_LOG_I64, &col_step, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_column(steps, "loss", "loss", SL_LOG_F64, &col_loss, &err), SL_OK);
    ck_assert_int_eq(sl_log_start_swmr(log, &err), SL_OK);

    int64_t row = 0;
    for (; row < 5; row++) {
        sl_log_table_set(steps, col_step, (double)row);
        sl_log_table_set(steps, col_loss, 1.0 / (double)(row + 1));
        ck_assert_int_eq(sl_log_table_commit_row(steps, &err), SL_OK);
    }
    ck_assert_int_eq(sl_log_flush(log, &err), SL_OK);
    int rc = run_live_reader(path, 5);
    ck_assert_msg(rc == 0, "live reader failed (exit %d) with 5 rows flushed", rc);

    /* More than a chunk, in several flushes, so the reader sees the dataset grow. */
    for (; row < 2600; row++) {
        sl_log_table_set(steps, col_step, (double)row);
        sl_log_table_set(steps, col_loss, 1.0 / (double)(row + 1));
        ck_assert_int_eq(sl_log_table_commit_row(steps, &err), SL_OK);
        if (row % 700 == 0)
            ck_assert_int_eq(sl_log_flush(log, &err), SL_OK);
    }
    ck_assert_int_eq(sl_log_flush(log, &err), SL_OK);
    rc = run_live_reader(path, 2600);
    ck_assert_msg(rc == 0, "live reader failed (exit %d) with 2600 rows flushed", rc);

    /* inspect follows a live log too. */
    sl_status st;
    char *text = inspect_to_string(path, &st, &err);
    ck_assert_msg(st == SL_OK, "%s", err.msg);
    assert_has_line(text, "table /steps: 2600 rows");
    free(text);

    ck_assert_int_eq(sl_log_close(log, &err), SL_OK);
    rc = run_live_reader(path, 2600);
    ck_assert_msg(rc == 0, "reader failed (exit %d) on the closed log", rc);
    test_tmpdir_remove();
}
END_TEST

/* ---- misuse and errors ----------------------------------------------------------------- */

START_TEST(test_errors)
{
    test_tmpdir_make("steinlab-test-log");
    sl_log *log = NULL;
    sl_log_table *t = NULL, *t2 = NULL;
    sl_error err;

    ck_assert_int_eq(sl_log_create(test_tmp_path("no/such/dir/run.h5"), &log, &err), SL_ERR_IO);
    ck_assert_ptr_null(log);
    ck_assert_msg(strstr(err.msg, "H5Fcreate") && strstr(err.msg, "no/such/dir"), "%s", err.msg);
    ck_assert_int_eq(sl_log_close(NULL, &err), SL_OK);

    ck_assert_int_eq(sl_log_create(test_tmp_path("err.h5"), &log, &err), SL_OK);
    ck_assert_int_eq(sl_log_attr_string(log, "relative", "a", "b", &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_attr_string(log, "/a//b", "a", "b", &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_attr_string(log, "/", "", "b", &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_attr_string(log, "/", "a", NULL, &err), SL_ERR_INVALID_ARG);
    /* Deep groups are created on demand. */
    ck_assert_int_eq(sl_log_attr_int(log, "/a/b/c", "x", -7, &err), SL_OK);

    ck_assert_int_eq(sl_log_table_create(log, "/probes/sds", &t, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_create(log, "/probes/sds", &t2, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_table_create(log, "/", &t2, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_table_column(t, "var_img", "", SL_LOG_F64, NULL, &err), SL_OK);
    ck_assert_int_eq(sl_log_table_column(t, "var_img", "", SL_LOG_F64, NULL, &err), SL_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "var_img"), "%s", err.msg);
    ck_assert_int_eq(sl_log_table_column(t, "a/b", "", SL_LOG_F64, NULL, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_table_column(t, "x", "", (sl_log_dtype)9, NULL, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_table_find(t, "var_img"), 0);
    ck_assert_int_eq(sl_log_table_find(t, "nope"), -1);

    /* A bad column index is reported by the next commit, which drops that row. */
    sl_log_table_set(t, 5, 1.0);
    ck_assert_int_eq(sl_log_table_commit_row(t, &err), SL_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "index 5"), "%s", err.msg);
    ck_assert_int_eq(sl_log_table_rows(t), 0);

    /* A column added after rows exist reads NaN / INT64_MIN for those rows, whether they
     * were already written or still buffered. */
    sl_log_table_set(t, 0, 1.5);
    ck_assert_int_eq(sl_log_table_commit_row(t, &err), SL_OK);
    ck_assert_int_eq(sl_log_flush(log, &err), SL_OK);
    sl_log_table_set(t, 0, 2.5);
    ck_assert_int_eq(sl_log_table_commit_row(t, &err), SL_OK);
    int cs;
    ck_assert_int_eq(sl_log_table_column(t, "step", "", SL_LOG_I64, &cs, &err), SL_OK);
    sl_log_table_set(t, cs, -3.5);   /* rounds half away from zero */
    sl_log_table_set(t, 0, NAN);
    ck_assert_int_eq(sl_log_table_commit_row(t, &err), SL_OK);
    sl_log_table_set(t, cs, 1e30);   /* saturates */
    ck_assert_int_eq(sl_log_table_commit_row(t, &err), SL_OK);

    /* Renders: the first kind opens a render step, the others follow in creation order. */
    uint8_t px[2 * 3 * 1] = {1, 2, 3, 4, 5, 6};
    ck_assert_int_eq(sl_log_renders_create(log, "rgb", 1, 2, 3, 1, &err), SL_OK);
    ck_assert_int_eq(sl_log_renders_create(log, "rgb", 1, 2, 3, 1, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_renders_create(log, "step", 1, 2, 3, 1, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_renders_create(log, "bad", 0, 2, 3, 1, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_renders_create(log, "alpha", 1, 2, 3, 1, &err), SL_OK);
    ck_assert_int_eq(sl_log_renders_append(log, "nope", 0, px, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_renders_append(log, "alpha", 0, px, &err), SL_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "rgb"), "%s", err.msg);
    ck_assert_int_eq(sl_log_renders_append(log, "rgb", 10, px, &err), SL_OK);
    ck_assert_int_eq(sl_log_renders_create(log, "late", 1, 2, 3, 1, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_renders_append(log, "alpha", 11, px, &err), SL_ERR_INVALID_ARG);
    ck_assert_int_eq(sl_log_renders_append(log, "rgb", 20, px, &err), SL_ERR_INVALID_ARG);
    ck_assert_msg(strstr(err.msg, "alpha"), "%s", err.msg);
    ck_assert_int_eq(sl_log_renders_append(log, "alpha", 10, px, &err), SL_OK);
    ck_assert_int_eq(sl_log_renders_append(log, "rgb", 20, px, &err), SL_OK);
    ck_assert_int_eq(sl_log_close(log, &err), SL_OK);

    hid_t file = H5Fopen(test_tmp_path("err.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(file, 0);
    double v[4];
    int64_t s[4];
    read_all(file, "/probes/sds/var_img", H5T_NATIVE_DOUBLE, v);
    read_all(file, "/probes/sds/step", H5T_NATIVE_INT64, s);
    ck_assert(v[0] == 1.5 && v[1] == 2.5 && isnan(v[2]) && isnan(v[3]));
    ck_assert(s[0] == INT64_MIN && s[1] == INT64_MIN && s[2] == -4 && s[3] == INT64_MAX);
    hsize_t dims[5];
    ck_assert_int_eq(read_dims(file, "/renders/rgb", dims, 5), 5);
    ck_assert_int_eq(dims[0], 2);
    ck_assert_int_eq(read_dims(file, "/renders/alpha", dims, 5), 5);
    ck_assert_int_eq(dims[0], 1);
    ck_assert_int_eq(H5Lexists(file, "/a/b/c", H5P_DEFAULT), 1);
    H5Fclose(file);
    test_tmpdir_remove();
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_write_and_read_back);
    tcase_add_test(tc, test_inspect_output);
    tcase_add_test(tc, test_inspect_bad_files);
    tcase_add_test(tc, test_inspect_killed_writer);
    tcase_add_test(tc, test_live_reader);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
