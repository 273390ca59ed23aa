/* core/nn/declare.h — internal: declaring a block's tensors under a name prefix. */
#ifndef STEINLAB_NN_DECLARE_H
#define STEINLAB_NN_DECLARE_H

#include "steinlab/nn.h"

/* Declares tensor "<prefix>.<suffix>" with shape (d0[, d1, d2, d3]) (ndim leading entries of
 * dims used) into p; *index receives its index (params.c). */
sl_status sl_nn_declare_named(sl_nn_params *p, const char *prefix, const char *suffix,
                              int ndim, const int64_t dims[4], sl_nn_init init, int fan_in,
                              size_t *index, sl_error *err);

#endif
