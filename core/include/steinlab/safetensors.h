/* steinlab/safetensors.h — reading and writing the safetensors format (Hugging Face).
 *
 * File layout: an 8-byte little-endian u64 N, then N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "string value", ...}}
 * then the data section: raw little-endian tensors, offsets relative to its start.
 *
 * The reader treats every file as untrusted (it is fuzzed: tests/fuzz/fuzz_safetensors.c)
 * and refuses, with a message naming the problem, anything that is not exactly valid:
 * a header length over 100 MB or past the end of the file; JSON that is malformed,
 * truncated, nested deeper than 8, not UTF-8, or not of the format's shape (the parser is
 * written for exactly this subset: core/safetensors.c); unknown dtypes; shapes whose byte
 * size overflows 64 bits or differs from the data_offsets range; tensors that overlap,
 * leave gaps, or do not cover the data section exactly; duplicate names; metadata values
 * that are not strings. Known dtypes are listed (F64, F32, F16, BF16, I64, I32, I16, I8, U8,
 * BOOL, F8_E4M3, F8_E5M2); reading as float supports F32, F16 and BF16.
 *
 * The writer writes F32 tensors and string metadata, the header padded with spaces to a
 * multiple of 8 bytes (as the reference writer does, so the data section is aligned), to a
 * temporary file that is fsync'ed and renamed over the destination (atomic).
 *
 * Models store their configuration in the metadata (e.g. "steinlab.config": a JSON or
 * YAML text of their hyper-parameters) so a file describes itself. */
#ifndef STEINLAB_SAFETENSORS_H
#define STEINLAB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    SL_ST_MAX_DIMS = 8,                     /* rank limit of this reader */
    SL_ST_MAX_DEPTH = 8                     /* JSON nesting limit (the format needs 3) */
};
#define SL_ST_MAX_HEADER ((uint64_t)100000000)   /* header length limit, bytes */

typedef struct sl_st_info {
    const char *name;       /* NUL-terminated UTF-8, owned by the handle */
    const char *dtype;      /* "F32", "F16", ... owned by the handle */
    int ndim;               /* 0 for a scalar */
    const int64_t *shape;   /* (ndim,) */
    uint64_t numel;         /* product of shape (1 for a scalar) */
    uint64_t begin, end;    /* byte range in the data section */
} sl_st_info;

typedef struct sl_safetensors sl_safetensors;

/* Reads and validates a whole file. *out is NULL on failure. */
sl_status sl_safetensors_open(const char *path, sl_safetensors **out, sl_error *err);
/* Validates a file image in memory; the bytes are copied, so data may be freed after. */
sl_status sl_safetensors_open_memory(const void *data, size_t size, sl_safetensors **out,
                                     sl_error *err);
void sl_safetensors_close(sl_safetensors *st);

/* Tensors in the order of their data offsets. info is NULL for i out of range. */
size_t sl_safetensors_count(const sl_safetensors *st);
const sl_st_info *sl_safetensors_info(const sl_safetensors *st, size_t i);
/* Index of a tensor by name, or -1. */
long sl_safetensors_find(const sl_safetensors *st, const char *name);

/* Converts tensor `name` to float into out (numel floats). shape (ndim,) is what the
 * caller expects; a different rank or size fails with SL_ERR_FORMAT naming both. Fails
 * with SL_ERR_INVALID_ARG for an unknown name, SL_ERR_UNSUPPORTED for a dtype other than
 * F32 / F16 / BF16. F16 and BF16 convert exactly (subnormals, infinities, NaN kept). */
sl_status sl_safetensors_read_f32(const sl_safetensors *st, const char *name, float *out,
                                  int ndim, const int64_t *shape, sl_error *err);

/* Metadata: count, i-th key and value (NULL out of range), and lookup (NULL if absent). */
size_t sl_safetensors_meta_count(const sl_safetensors *st);
const char *sl_safetensors_meta_key(const sl_safetensors *st, size_t i);
const char *sl_safetensors_meta_value(const sl_safetensors *st, size_t i);
const char *sl_safetensors_meta_get(const sl_safetensors *st, const char *key);

/* Scalar conversions (exact): IEEE half and bfloat16 bits to float. */
float sl_f16_to_f32(uint16_t h);
float sl_bf16_to_f32(uint16_t b);

/* ---- writer ---- */

typedef struct sl_st_writer sl_st_writer;

sl_status sl_st_writer_create(sl_st_writer **out, sl_error *err);
void sl_st_writer_destroy(sl_st_writer *w);
/* Adds an F32 tensor; data (numel floats) is copied. Names must be unique, valid UTF-8,
 * non-empty and not "__metadata__"; ndim 0..SL_ST_MAX_DIMS, dims >= 0. */
sl_status sl_st_writer_add(sl_st_writer *w, const char *name, int ndim, const int64_t *shape,
                           const float *data, sl_error *err);
/* Adds (or replaces) a metadata string; key and value valid UTF-8, copied. */
sl_status sl_st_writer_meta(sl_st_writer *w, const char *key, const char *value,
                            sl_error *err);
/* The file image: *buf (malloc'd, caller frees) of *len bytes. */
sl_status sl_st_writer_to_memory(const sl_st_writer *w, uint8_t **buf, size_t *len,
                                 sl_error *err);
/* Writes path atomically: a temporary file beside it, fsync, rename, fsync of the
 * directory. On failure the destination is untouched and the temporary removed. */
sl_status sl_st_writer_write(const sl_st_writer *w, const char *path, sl_error *err);

#ifdef __cplusplus
}
#endif
#endif
