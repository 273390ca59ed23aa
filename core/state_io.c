/* core/state_io.c — checkpoint files over HDF5 (core/checkpoint.h) and the array
 * interface plugins see (steinlab/state_io.h).
 *
 * One dataset per array, 1-D, stored in the file type that matches its dtype exactly
 * (little-endian IEEE float32/float64, signed int64, unsigned int8): HDF5 converts nothing
 * on the way in or out on this platform, so a resumed run sees the very bits it saved.
 * A load checks the stored class, size and sign against the requested dtype instead of
 * letting HDF5 convert silently: a plugin asking for float64 where it saved float32 has a
 * bug that a conversion would hide.
 *
 * HDF5 prints its error stack to stderr by default; each entry point silences it for the
 * call and reports the innermost HDF5 message in the sl_error instead (as log_hdf5.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "checkpoint.h"
#include "h5util.h"

enum { MAX_SECTIONS = 64 };

struct sl_state_io {
    sl_ckpt *ckpt;
    char *section;   /* "plugins/sds" */
    hid_t group;     /* /<section>, or H5I_INVALID_HID when reading a section never written */
};

struct sl_ckpt {
    char *path;      /* the final name */
    char *tmp;       /* PATH.tmp while writing; NULL when reading */
    hid_t file;
    int writing;
    sl_state_io *sections[MAX_SECTIONS];
    int nsections;
};

/* ---- HDF5 error handling ------------------------------------------------------------ */

static sl_status h5_fail(sl_error *err, sl_status code, const sl_ckpt *c, const char *fn,
                         const char *obj)
{
    char text[300];
    sl_h5_error_detail(text, sizeof text);
    return sl_error_set(err, code, "checkpoint '%s': %s failed on '%s'%s%s",
                        c && c->path ? c->path : "?", fn, obj, text[0] ? ": " : "", text);
}

/* ---- names and types -------------------------------------------------------------------- */

/* [a-z0-9_]+ components separated by single '/': no leading, trailing or doubled slash
 * (each would make HDF5 resolve the name somewhere else than the plugin's namespace). */
static int valid_state_name(const char *name)
{
    if (!name || !name[0] || name[0] == '/')
        return 0;
    for (const char *c = name; *c; c++) {
        if (*c == '/') {
            if (c[1] == '/' || c[1] == '\0')
                return 0;
        } else if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) {
            return 0;
        }
    }
    return 1;
}

static const char *dtype_name(sl_state_dtype t)
{
    switch (t) {
    case SL_STATE_F32: return "float32";
    case SL_STATE_F64: return "float64";
    case SL_STATE_I64: return "int64";
    case SL_STATE_U8: return "uint8";
    }
    return "unknown dtype";
}

static int dtype_known(sl_state_dtype t)
{
    return t == SL_STATE_F32 || t == SL_STATE_F64 || t == SL_STATE_I64 || t == SL_STATE_U8;
}

static hid_t file_type(sl_state_dtype t)
{
    switch (t) {
    case SL_STATE_F32: return H5T_IEEE_F32LE;
    case SL_STATE_F64: return H5T_IEEE_F64LE;
    case SL_STATE_I64: return H5T_STD_I64LE;
    case SL_STATE_U8: return H5T_STD_U8LE;
    }
    return H5I_INVALID_HID;
}

static hid_t mem_type(sl_state_dtype t)
{
    switch (t) {
    case SL_STATE_F32: return H5T_NATIVE_FLOAT;
    case SL_STATE_F64: return H5T_NATIVE_DOUBLE;
    case SL_STATE_I64: return H5T_NATIVE_INT64;
    case SL_STATE_U8: return H5T_NATIVE_UINT8;
    }
    return H5I_INVALID_HID;
}

/* The dtype a stored type corresponds to, or -1 (a file written by something else). */
static int stored_dtype(hid_t type)
{
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    if (cls == H5T_FLOAT)
        return size == 4 ? SL_STATE_F32 : size == 8 ? SL_STATE_F64 : -1;
    if (cls == H5T_INTEGER) {
        H5T_sign_t sign = H5Tget_sign(type);
        if (size == 8 && sign == H5T_SGN_2)
            return SL_STATE_I64;
        if (size == 1 && sign == H5T_SGN_NONE)
            return SL_STATE_U8;
    }
    return -1;
}

/* ---- the plugin-facing interface ---------------------------------------------------- */

static sl_status check_io(sl_state_io *io, const char *name, const char *fn, int want_write,
                          sl_error *err)
{
    if (!io)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "%s: io is NULL", fn);
    if (!valid_state_name(name))
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "checkpoint '%s': %s: invalid array name '%s' in '%s' (expected "
                            "[a-z0-9_]+ components separated by '/')",
                            io->ckpt->path, fn, name ? name : "(null)", io->section);
    if (want_write != io->ckpt->writing)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "checkpoint '%s': %s('%s/%s') on a checkpoint opened for %s",
                            io->ckpt->path, fn, io->section, name,
                            io->ckpt->writing ? "writing" : "reading");
    return SL_OK;
}

static sl_status state_put(sl_state_io *io, const char *name, sl_state_dtype dtype,
                           const void *data, size_t count, sl_error *err)
{
    sl_status st = check_io(io, name, "sl_state_put", 1, err);
    if (st != SL_OK)
        return st;
    sl_ckpt *c = io->ckpt;
    if (!dtype_known(dtype))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "checkpoint '%s': %s/%s: unknown dtype %d",
                            c->path, io->section, name, (int)dtype);
    if (count > 0 && !data)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "checkpoint '%s': %s/%s: data is NULL for %zu elements", c->path,
                            io->section, name, count);
    /* The first component that exists decides: a whole name already written, or a prefix
     * that is an array (so the name cannot become a group under it). */
    char *prefix = strdup(name);
    if (!prefix)
        return sl_error_set(err, SL_ERR_NOMEM, "checkpoint '%s': out of memory", c->path);
    for (char *p = prefix;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        htri_t ex = H5Lexists(io->group, prefix, H5P_DEFAULT);
        if (ex > 0) {
            hid_t obj = saved == '\0' ? H5I_INVALID_HID : H5Oopen(io->group, prefix, H5P_DEFAULT);
            int is_array = obj >= 0 && H5Iget_type(obj) == H5I_DATASET;
            if (obj >= 0)
                H5Oclose(obj);
            if (saved == '\0')
                st = sl_error_set(err, SL_ERR_INVALID_ARG,
                                  "checkpoint '%s': array '%s/%s' written twice (a name is "
                                  "written once per checkpoint)", c->path, io->section, name);
            else if (is_array)
                st = sl_error_set(err, SL_ERR_INVALID_ARG,
                                  "checkpoint '%s': array '%s/%s' cannot be written: '%s/%s' is "
                                  "already an array, not a namespace", c->path, io->section,
                                  name, io->section, prefix);
        } else if (ex < 0) {
            st = h5_fail(err, SL_ERR_IO, c, "H5Lexists", name);
        }
        *p = saved;
        if (st != SL_OK || saved == '\0' || ex == 0)
            break;
    }
    free(prefix);
    if (st != SL_OK)
        return st;

    hid_t lcpl = H5I_INVALID_HID, space = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    hsize_t dims = (hsize_t)count;
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        st = h5_fail(err, SL_ERR_IO, c, "H5Pset_create_intermediate_group", name);
        goto cleanup;
    }
    space = H5Screate_simple(1, &dims, NULL);
    if (space < 0) {
        st = h5_fail(err, SL_ERR_IO, c, "H5Screate_simple", name);
        goto cleanup;
    }
    dset = H5Dcreate2(io->group, name, file_type(dtype), space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (dset < 0) {
        st = h5_fail(err, SL_ERR_IO, c, "H5Dcreate2", name);
        goto cleanup;
    }
    if (count > 0 && H5Dwrite(dset, mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = h5_fail(err, SL_ERR_IO, c, "H5Dwrite", name);
cleanup:
    if (dset >= 0)
        H5Dclose(dset);
    if (space >= 0)
        H5Sclose(space);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    return st;
}

sl_status sl_state_put(sl_state_io *io, const char *name, sl_state_dtype dtype,
                       const void *data, size_t count, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = state_put(io, name, dtype, data, count, err);
    sl_h5_quiet_end(q);
    return st;
}

/* Opens the dataset of `name` and reads its dtype and count; SL_ERR_FORMAT when absent or
 * not a 1-D array of a known dtype. */
static sl_status open_array(sl_state_io *io, const char *name, hid_t *dset, int *dtype,
                            size_t *count, sl_error *err)
{
    sl_ckpt *c = io->ckpt;
    *dset = H5I_INVALID_HID;
    /* H5Lexists on "a/b" fails (rather than returning 0) when "a" is missing: test each
     * prefix so that an absent name is reported as absent. */
    htri_t ex = io->group >= 0 ? 1 : 0;
    char *prefix = strdup(name);
    if (!prefix)
        return sl_error_set(err, SL_ERR_NOMEM, "checkpoint '%s': out of memory", c->path);
    for (char *p = prefix; ex > 0; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        ex = H5Lexists(io->group, prefix, H5P_DEFAULT);
        *p = saved;
        if (saved == '\0')
            break;
    }
    free(prefix);
    if (ex <= 0)
        return sl_error_set(err, SL_ERR_FORMAT,
                            "checkpoint '%s': no array '%s/%s' (saved by another version of "
                            "the plugin, or by another spec?)", c->path, io->section, name);
    hid_t d = H5Dopen2(io->group, name, H5P_DEFAULT);
    if (d < 0)
        return sl_error_set(err, SL_ERR_FORMAT, "checkpoint '%s': '%s/%s' is not an array",
                            c->path, io->section, name);
    hid_t type = H5Dget_type(d), space = H5Dget_space(d);
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t dims = 0;
    if (rank == 1)
        H5Sget_simple_extent_dims(space, &dims, NULL);
    int dt = type >= 0 ? stored_dtype(type) : -1;
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
    if (rank != 1 || dt < 0) {
        H5Dclose(d);
        return sl_error_set(err, SL_ERR_FORMAT,
                            "checkpoint '%s': '%s/%s' is not a 1-D array of float32, float64, "
                            "int64 or uint8 (rank %d)", c->path, io->section, name, rank);
    }
    *dset = d;
    *dtype = dt;
    *count = (size_t)dims;
    return SL_OK;
}

static sl_status state_count(sl_state_io *io, const char *name, size_t *count, sl_error *err)
{
    sl_status st = check_io(io, name, "sl_state_count", 0, err);
    if (st != SL_OK)
        return st;
    if (!count)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_state_count: count is NULL");
    hid_t d;
    int dt;
    if ((st = open_array(io, name, &d, &dt, count, err)) != SL_OK)
        return st;
    H5Dclose(d);
    return SL_OK;
}

sl_status sl_state_count(sl_state_io *io, const char *name, size_t *count, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = state_count(io, name, count, err);
    sl_h5_quiet_end(q);
    return st;
}

static sl_status state_get(sl_state_io *io, const char *name, sl_state_dtype dtype,
                           void *data, size_t count, sl_error *err)
{
    sl_status st = check_io(io, name, "sl_state_get", 0, err);
    if (st != SL_OK)
        return st;
    sl_ckpt *c = io->ckpt;
    if (!dtype_known(dtype))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "checkpoint '%s': %s/%s: unknown dtype %d",
                            c->path, io->section, name, (int)dtype);
    if (count > 0 && !data)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "checkpoint '%s': %s/%s: data is NULL for %zu elements", c->path,
                            io->section, name, count);
    hid_t d;
    int dt;
    size_t have;
    if ((st = open_array(io, name, &d, &dt, &have, err)) != SL_OK)
        return st;
    if (dt != (int)dtype || have != count) {
        H5Dclose(d);
        return sl_error_set(err, SL_ERR_FORMAT,
                            "checkpoint '%s': array '%s/%s' is %s (%zu,), expected %s (%zu,)",
                            c->path, io->section, name, dtype_name((sl_state_dtype)dt), have,
                            dtype_name(dtype), count);
    }
    if (count > 0 && H5Dread(d, mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = h5_fail(err, SL_ERR_FORMAT, c, "H5Dread", name);
    H5Dclose(d);
    return st;
}

sl_status sl_state_get(sl_state_io *io, const char *name, sl_state_dtype dtype, void *data,
                       size_t count, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = state_get(io, name, dtype, data, count, err);
    sl_h5_quiet_end(q);
    return st;
}

/* ---- checkpoint files ------------------------------------------------------------------ */

sl_status sl_ckpt_path_for_log(const char *log_path, char *out, size_t size, sl_error *err)
{
    if (!log_path || !log_path[0])
        return sl_error_set(err, SL_ERR_INVALID_ARG, "checkpoint path: empty log path");
    size_t n = strlen(log_path);
    if (n > 3 && !strcmp(log_path + n - 3, ".h5"))
        n -= 3;
    int w = snprintf(out, size, "%.*s.ckpt.h5", (int)n, log_path);
    if (w < 0 || (size_t)w >= size)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "checkpoint path for log '%s' is longer than %zu bytes", log_path,
                            size - 1);
    return SL_OK;
}

static void ckpt_free(sl_ckpt *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nsections; i++) {
        if (c->sections[i]->group >= 0)
            H5Gclose(c->sections[i]->group);
        free(c->sections[i]->section);
        free(c->sections[i]);
    }
    if (c->file >= 0)
        H5Fclose(c->file);
    free(c->path);
    free(c->tmp);
    free(c);
}

static sl_status write_string_attr(sl_ckpt *c, hid_t obj, const char *name, const char *value,
                                   sl_error *err)
{
    sl_status st = SL_OK;
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    /* Variable-length UTF-8, as in the log: h5py reads it back as str. */
    if (type < 0 || space < 0 || H5Tset_size(type, H5T_VARIABLE) < 0 ||
        H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
        st = h5_fail(err, SL_ERR_IO, c, "H5Tset_size", name);
        goto cleanup;
    }
    if (H5Aexists(obj, name) > 0)
        H5Adelete(obj, name);
    attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0 || H5Awrite(attr, type, &value) < 0)
        st = h5_fail(err, SL_ERR_IO, c, "H5Awrite", name);
cleanup:
    if (attr >= 0)
        H5Aclose(attr);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    return st;
}

static sl_status ckpt_begin(const char *path, sl_ckpt **out, sl_error *err)
{
    if (!out)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_ckpt_begin: out is NULL");
    *out = NULL;
    if (!path || !path[0])
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_ckpt_begin: empty path");
    sl_ckpt *c = calloc(1, sizeof *c);
    size_t n = strlen(path);
    if (!c || !(c->path = strdup(path)) || !(c->tmp = malloc(n + 5))) {
        ckpt_free(c);
        return sl_error_set(err, SL_ERR_NOMEM, "checkpoint '%s': out of memory", path);
    }
    c->file = H5I_INVALID_HID;
    c->writing = 1;
    memcpy(c->tmp, path, n);
    memcpy(c->tmp + n, ".tmp", 5);
    c->file = H5Fcreate(c->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (c->file < 0) {
        sl_status st = h5_fail(err, SL_ERR_IO, c, "H5Fcreate", c->tmp);
        ckpt_free(c);
        return st;
    }
    sl_status st = write_string_attr(c, c->file, "format", SL_CKPT_FORMAT, err);
    if (st == SL_OK) {
        int64_t v = SL_CKPT_FORMAT_VERSION;
        hid_t space = H5Screate(H5S_SCALAR);
        hid_t attr = H5Acreate2(c->file, "format_version", H5T_STD_I64LE, space, H5P_DEFAULT,
                                H5P_DEFAULT);
        if (attr < 0 || H5Awrite(attr, H5T_NATIVE_INT64, &v) < 0)
            st = h5_fail(err, SL_ERR_IO, c, "H5Awrite", "format_version");
        if (attr >= 0)
            H5Aclose(attr);
        if (space >= 0)
            H5Sclose(space);
    }
    if (st != SL_OK) {
        sl_ckpt_close(c);
        return st;
    }
    *out = c;
    return SL_OK;
}

sl_status sl_ckpt_begin(const char *path, sl_ckpt **out, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = ckpt_begin(path, out, err);
    sl_h5_quiet_end(q);
    return st;
}

static sl_status fsync_path(const char *path, int directory, sl_error *err)
{
    int fd = open(path, O_RDONLY | (directory ? O_DIRECTORY : 0));
    if (fd < 0)
        return sl_error_set(err, SL_ERR_IO, "cannot open '%s' to sync it: %s", path,
                            strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return sl_error_set(err, SL_ERR_IO, "fsync('%s') failed: %s", path, strerror(e));
    return SL_OK;
}

static sl_status ckpt_commit(sl_ckpt *c, sl_error *err)
{
    /* Everything must be closed for H5Fclose to write the file out completely. */
    for (int i = 0; i < c->nsections; i++) {
        if (c->sections[i]->group >= 0)
            H5Gclose(c->sections[i]->group);
        c->sections[i]->group = H5I_INVALID_HID;
    }
    herr_t rc = H5Fclose(c->file);
    c->file = H5I_INVALID_HID;
    if (rc < 0)
        return h5_fail(err, SL_ERR_IO, c, "H5Fclose", c->tmp);
    /* Data first, then the name: after the rename the new name must never point at blocks
     * that are still only in the page cache. */
    sl_status st = fsync_path(c->tmp, 0, err);
    if (st != SL_OK)
        return st;
    if (rename(c->tmp, c->path) != 0)
        return sl_error_set(err, SL_ERR_IO, "checkpoint: cannot rename '%s' to '%s': %s",
                            c->tmp, c->path, strerror(errno));
    /* The rename itself lives in the directory; sync it so it survives a power loss. */
    char *dir = strdup(c->path);
    if (!dir)
        return sl_error_set(err, SL_ERR_NOMEM, "checkpoint '%s': out of memory", c->path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    st = fsync_path(dir, 1, err);
    free(dir);
    return st;
}

sl_status sl_ckpt_commit(sl_ckpt *c, sl_error *err)
{
    if (!c || !c->writing) {
        sl_ckpt_close(c);
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_ckpt_commit: no checkpoint being written");
    }
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = ckpt_commit(c, err);
    sl_h5_quiet_end(q);
    if (st != SL_OK)
        unlink(c->tmp);
    ckpt_free(c);
    return st;
}

static sl_status ckpt_open(const char *path, sl_ckpt **out, sl_error *err)
{
    if (!out)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_ckpt_open: out is NULL");
    *out = NULL;
    if (!path || !path[0])
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_ckpt_open: empty path");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return sl_error_set(err, SL_ERR_IO, "checkpoint '%s': %s", path, strerror(errno));
    sl_ckpt *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        ckpt_free(c);
        return sl_error_set(err, SL_ERR_NOMEM, "checkpoint '%s': out of memory", path);
    }
    c->file = H5I_INVALID_HID;
    sl_status st = SL_OK;
    /* Refuse what is not an HDF5 file before libhdf5 parses it (a cheap signature test;
     * H5Fis_accessible replaces it from HDF5 1.12 on). */
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        st = sl_error_set(err, SL_ERR_FORMAT,
                          "checkpoint '%s' is not a readable HDF5 file (truncated or "
                          "corrupt); no run can resume from it", path);
        goto fail;
    }
    c->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (c->file < 0) {
        st = h5_fail(err, SL_ERR_FORMAT, c, "H5Fopen", path);
        goto fail;
    }
    char *format = NULL;
    st = sl_ckpt_get_string(c, "format", &format, err);
    if (st == SL_OK && strcmp(format, SL_CKPT_FORMAT) != 0)
        st = sl_error_set(err, SL_ERR_FORMAT, "checkpoint '%s': format is '%s', expected '%s'",
                          path, format, SL_CKPT_FORMAT);
    free(format);
    if (st != SL_OK)
        goto fail;
    int64_t version = -1;
    hid_t attr = H5Aopen(c->file, "format_version", H5P_DEFAULT);
    if (attr < 0 || H5Aread(attr, H5T_NATIVE_INT64, &version) < 0)
        st = sl_error_set(err, SL_ERR_FORMAT, "checkpoint '%s': no format_version attribute",
                          path);
    if (attr >= 0)
        H5Aclose(attr);
    if (st == SL_OK && version != SL_CKPT_FORMAT_VERSION)
        st = sl_error_set(err, SL_ERR_FORMAT,
                          "checkpoint '%s' has format version %lld; this steinlab reads "
                          "version %d", path, (long long)version, SL_CKPT_FORMAT_VERSION);
    if (st != SL_OK)
        goto fail;
    *out = c;
    return SL_OK;
fail:
    ckpt_free(c);
    return st;
}

sl_status sl_ckpt_open(const char *path, sl_ckpt **out, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = ckpt_open(path, out, err);
    sl_h5_quiet_end(q);
    return st;
}

void sl_ckpt_close(sl_ckpt *c)
{
    if (!c)
        return;
    sl_h5_quiet q = sl_h5_quiet_begin();
    int writing = c->writing;
    char *tmp = c->tmp;
    c->tmp = NULL;
    ckpt_free(c);
    if (writing && tmp)
        unlink(tmp);
    free(tmp);
    sl_h5_quiet_end(q);
}

/* Whether the link PATH ("a/b/c") exists in FILE. Tests each prefix: H5Lexists fails on a
 * path through a missing group. PATH is modified while testing and restored. */
static int link_exists(hid_t file, char *path)
{
    htri_t ex = 1;
    for (char *q = path; ex > 0; q++) {
        if (*q != '/' && *q != '\0')
            continue;
        char saved = *q;
        *q = '\0';
        ex = H5Lexists(file, path, H5P_DEFAULT);
        *q = saved;
        if (saved == '\0')
            break;
    }
    return ex > 0;
}

static sl_status ckpt_section(sl_ckpt *c, const char *section, sl_state_io **io, sl_error *err)
{
    if (!c || !io)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_ckpt_section: NULL argument");
    *io = NULL;
    if (!valid_state_name(section))
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "checkpoint '%s': invalid section name '%s'", c->path,
                            section ? section : "(null)");
    for (int i = 0; i < c->nsections; i++)
        if (!strcmp(c->sections[i]->section, section)) {
            *io = c->sections[i];
            return SL_OK;
        }
    if (c->nsections == MAX_SECTIONS)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "checkpoint '%s': more than %d sections",
                            c->path, MAX_SECTIONS);
    sl_state_io *s = calloc(1, sizeof *s);
    if (!s || !(s->section = strdup(section))) {
        free(s);
        return sl_error_set(err, SL_ERR_NOMEM, "checkpoint '%s': out of memory", c->path);
    }
    s->ckpt = c;
    s->group = H5I_INVALID_HID;
    sl_status st = SL_OK;
    if (c->writing && !link_exists(c->file, s->section)) {
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        if (lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0)
            s->group = H5Gcreate2(c->file, section, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (lcpl >= 0)
            H5Pclose(lcpl);
        if (s->group < 0)
            st = h5_fail(err, SL_ERR_IO, c, "H5Gcreate2", section);
    } else if (c->writing) {
        /* A nested section written earlier ("plugins/probe/ssd_mlp/mlp", a baseline saved
         * before its estimator) created this group as an intermediate: write into it. */
        if ((s->group = H5Gopen2(c->file, section, H5P_DEFAULT)) < 0)
            st = h5_fail(err, SL_ERR_IO, c, "H5Gopen2", section);
    } else {
        if (link_exists(c->file, s->section) &&
            (s->group = H5Gopen2(c->file, section, H5P_DEFAULT)) < 0)
            st = sl_error_set(err, SL_ERR_FORMAT, "checkpoint '%s': '%s' is not a group",
                              c->path, section);
    }
    if (st != SL_OK) {
        free(s->section);
        free(s);
        return st;
    }
    c->sections[c->nsections++] = s;
    *io = s;
    return SL_OK;
}

sl_status sl_ckpt_section(sl_ckpt *c, const char *section, sl_state_io **io, sl_error *err)
{
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = ckpt_section(c, section, io, err);
    sl_h5_quiet_end(q);
    return st;
}

sl_status sl_ckpt_set_string(sl_ckpt *c, const char *name, const char *value, sl_error *err)
{
    if (!c || !c->writing || !name || !value)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_ckpt_set_string: bad argument");
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = write_string_attr(c, c->file, name, value, err);
    sl_h5_quiet_end(q);
    return st;
}

sl_status sl_ckpt_get_string(sl_ckpt *c, const char *name, char **value, sl_error *err)
{
    if (!c || !name || !value)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "sl_ckpt_get_string: bad argument");
    *value = NULL;
    sl_h5_quiet q = sl_h5_quiet_begin();
    sl_status st = SL_OK;
    hid_t attr = H5I_INVALID_HID, type = H5I_INVALID_HID, mtype = H5I_INVALID_HID;
    if (H5Aexists(c->file, name) <= 0) {
        st = sl_error_set(err, SL_ERR_FORMAT, "checkpoint '%s': no attribute '%s'", c->path,
                          name);
        goto cleanup;
    }
    attr = H5Aopen(c->file, name, H5P_DEFAULT);
    type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
    if (type < 0 || H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) <= 0) {
        st = sl_error_set(err, SL_ERR_FORMAT, "checkpoint '%s': attribute '%s' is not a string",
                          c->path, name);
        goto cleanup;
    }
    mtype = H5Tcopy(H5T_C_S1);
    H5Tset_size(mtype, H5T_VARIABLE);
    H5Tset_cset(mtype, H5T_CSET_UTF8);
    char *raw = NULL;
    if (H5Aread(attr, mtype, &raw) < 0 || !raw) {
        st = h5_fail(err, SL_ERR_FORMAT, c, "H5Aread", name);
        goto cleanup;
    }
    *value = strdup(raw);
    H5free_memory(raw);
    if (!*value)
        st = sl_error_set(err, SL_ERR_NOMEM, "checkpoint '%s': out of memory", c->path);
cleanup:
    if (mtype >= 0)
        H5Tclose(mtype);
    if (type >= 0)
        H5Tclose(type);
    if (attr >= 0)
        H5Aclose(attr);
    sl_h5_quiet_end(q);
    return st;
}

const char *sl_ckpt_file(const sl_ckpt *c) { return c ? c->path : NULL; }
