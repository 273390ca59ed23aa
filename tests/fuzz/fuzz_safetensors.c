/* tests/fuzz/fuzz_safetensors.c — libFuzzer target: sl_safetensors_open_memory on arbitrary
 * bytes (the path every downloaded or checkpointed network's weights take in).
 *
 * The 8-byte length prefix is the field a mutation most often breaks, and a wrong one
 * stops parsing at the first check; so each input is also parsed a second time with the
 * prefix rewritten to the actual header size (everything after the prefix up to the last
 * '}' taken as header), so mutations reach the JSON parser and the format checks.
 *
 * On success every invariant the reader promises is checked: tensors tile the data
 * section, each tensor's byte size matches its shape and dtype, names are unique and
 * NUL-terminated, metadata lookups find every key, and every F32/F16/BF16 tensor is read
 * in full (AddressSanitizer sees any read past the data). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int dtype_size(const char *d)
{
    if (!strcmp(d, "F64") || !strcmp(d, "I64"))
        return 8;
    if (!strcmp(d, "F32") || !strcmp(d, "I32"))
        return 4;
    if (!strcmp(d, "F16") || !strcmp(d, "BF16") || !strcmp(d, "I16"))
        return 2;
    return 1;
}

static void parse_and_check(const uint8_t *data, size_t size)
{
    sl_safetensors *st = NULL;
    sl_error err = { { 0 } };
    if (sl_safetensors_open_memory(data, size, &st, &err) != SL_OK) {
        if (st || !err.msg[0])
            abort();   /* a failure must leave *out NULL and say why */
        return;
    }
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--)
        hlen = hlen << 8 | data[k];
    uint64_t data_len = size - 8 - hlen, at = 0;
    size_t n = sl_safetensors_count(st);
    for (size_t i = 0; i < n; i++) {
        const sl_st_info *t = sl_safetensors_info(st, i);
        if (!t || t->begin != at || t->end < t->begin || t->ndim < 0 || t->ndim > SL_ST_MAX_DIMS)
            abort();
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0)
                abort();
            numel *= (uint64_t)t->shape[d];
        }
        if (numel != t->numel || t->end - t->begin != numel * (uint64_t)dtype_size(t->dtype))
            abort();
        if (sl_safetensors_find(st, t->name) != (long)i)
            abort();   /* unique names */
        at = t->end;
        if (!strcmp(t->dtype, "F32") || !strcmp(t->dtype, "F16") || !strcmp(t->dtype, "BF16")) {
            /* Bounded by the data section (the reader checked it), so the allocation is
             * at most the input's size. */
            float *out = malloc(numel ? numel * sizeof(float) : 1);
            if (!out)
                abort();
            if (sl_safetensors_read_f32(st, t->name, out, t->ndim, t->shape, &err) != SL_OK)
                abort();
            free(out);
        }
    }
    if (at != data_len)
        abort();
    for (size_t i = 0; i < sl_safetensors_meta_count(st); i++) {
        const char *k = sl_safetensors_meta_key(st, i), *v = sl_safetensors_meta_value(st, i);
        if (!k || !v || sl_safetensors_meta_get(st, k) != v)
            abort();
    }
    sl_safetensors_close(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_and_check(data, size);
    if (size < 9)
        return 0;
    /* The header as everything up to the last '}' after the prefix. */
    size_t end = size;
    while (end > 8 && data[end - 1] != '}')
        end--;
    if (end <= 8)
        return 0;
    uint64_t hlen = end - 8, old = 0;
    for (int k = 7; k >= 0; k--)
        old = old << 8 | data[k];
    if (old == hlen)
        return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed)
        return 0;
    memcpy(fixed, data, size);
    for (int k = 0; k < 8; k++)
        fixed[k] = (uint8_t)(hlen >> (8 * k));
    parse_and_check(fixed, size);
    free(fixed);
    return 0;
}
