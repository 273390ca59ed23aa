/* core/nn/params_io.c — saving and loading a parameter store as safetensors (nn.h). */
#include "steinlab/nn.h"
#include "steinlab/safetensors.h"

sl_status sl_nn_params_save(const sl_nn_params *p, const char *path, const char *const *keys,
                            const char *const *values, size_t n_meta, sl_error *err)
{
    sl_st_writer *w = NULL;
    sl_status st = sl_st_writer_create(&w, err);
    for (size_t i = 0; st == SL_OK && i < n_meta; i++)
        st = sl_st_writer_meta(w, keys[i], values[i], err);
    for (size_t i = 0; st == SL_OK && i < p->n; i++) {
        const sl_nn_tensor *t = &p->tensors[i];
        st = sl_st_writer_add(w, t->name, t->ndim, t->shape, p->data + t->offset, err);
    }
    if (st == SL_OK)
        st = sl_st_writer_write(w, path, err);
    sl_st_writer_destroy(w);
    return st;
}

sl_status sl_nn_params_load(sl_nn_params *p, const sl_safetensors *st, sl_error *err)
{
    /* Every declared tensor must be present with its shape, and nothing else: a file from
     * a different configuration is refused rather than half-loaded. */
    for (size_t i = 0; i < p->n; i++) {
        const sl_nn_tensor *t = &p->tensors[i];
        sl_status s = sl_safetensors_read_f32(st, t->name, p->data + t->offset, t->ndim,
                                              t->shape, err);
        if (s != SL_OK)
            return s == SL_ERR_INVALID_ARG ? sl_error_set(err, SL_ERR_FORMAT,
                                                          "params: file lacks tensor '%s'",
                                                          t->name)
                                           : s;
    }
    size_t n = sl_safetensors_count(st);
    for (size_t i = 0; i < n; i++) {
        const sl_st_info *in = sl_safetensors_info(st, i);
        if (sl_nn_params_find(p, in->name) < 0)
            return sl_error_set(err, SL_ERR_FORMAT, "params: file has unexpected tensor '%s'",
                                in->name);
    }
    return SL_OK;
}
