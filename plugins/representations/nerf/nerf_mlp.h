/* plugins/representations/nerf/nerf_mlp.h — the small MLPs of the field representations
 * (NeRF's density, colour and background networks, DMTet's texture): their parameter layout
 * inside one group array, forward keeping the hidden activations, and the VJP. Per-sample
 * host code over the per-element math of nerf_math.h; shared, never copied. */
#ifndef NERF_MLP_H
#define NERF_MLP_H

#include <stddef.h>
#include <string.h>

#include "nerf_math.h"

enum { NERF_MAX_WIDTH = 256 };   /* widest MLP layer, inputs included */

/* An MLP: dense layers, ReLU after all but the last. Its parameters live in one group
 * array: layer k's W (dims[k+1], dims[k]) at w_off[k], b (dims[k+1],) at b_off[k]. */
typedef struct nerf_mlp {
    int n_layers;
    int dims[NERF_MAX_LAYERS + 1];       /* (n_layers + 1,) input, hidden..., output widths */
    size_t w_off[NERF_MAX_LAYERS];       /* (n_layers,) */
    size_t b_off[NERF_MAX_LAYERS];       /* (n_layers,) */
    int h_off[NERF_MAX_LAYERS];          /* (n_layers,) hidden layer k's activations offset */
    int hidden_total;                    /* floats of hidden activations per evaluation */
    size_t n_params;
} nerf_mlp;

/* Layout of an MLP in -> [width] x hidden -> out inside its group; returns 0 when a layer
 * is wider than NERF_MAX_WIDTH or there are more than NERF_MAX_LAYERS layers. */
static inline int nerf_mlp_init(nerf_mlp *m, int in, int width, int hidden, int out)
{
    memset(m, 0, sizeof *m);
    if (hidden + 1 > NERF_MAX_LAYERS)
        return 0;
    m->n_layers = hidden + 1;
    m->dims[0] = in;
    for (int k = 1; k <= hidden; k++)
        m->dims[k] = width;
    m->dims[hidden + 1] = out;
    size_t off = 0;
    int h = 0;
    for (int k = 0; k < m->n_layers; k++) {
        if (m->dims[k] > NERF_MAX_WIDTH || m->dims[k + 1] > NERF_MAX_WIDTH)
            return 0;
        m->w_off[k] = off;
        off += (size_t)m->dims[k] * m->dims[k + 1];
        m->b_off[k] = off;
        off += (size_t)m->dims[k + 1];
        m->h_off[k] = h;
        if (k < m->n_layers - 1)
            h += m->dims[k + 1];
    }
    m->hidden_total = h;
    m->n_params = off;
    return 1;
}

/* Transposed copy of every weight matrix (for nerf_dense_forward_t). */
static inline void nerf_mlp_transpose(const nerf_mlp *m, const float *p, float *t)
{
    for (int k = 0; k < m->n_layers; k++) {
        int in = m->dims[k], out = m->dims[k + 1];
        const float *W = p + m->w_off[k];   /* (out, in) */
        float *Wt = t + m->w_off[k];        /* (in, out) */
        for (int j = 0; j < out; j++)
            for (int i = 0; i < in; i++)
                Wt[(size_t)i * out + j] = W[(size_t)j * in + i];
    }
}

/* y = mlp(x); the hidden activations (after ReLU) go to acts. t: the transposed weights
 * (nerf_mlp_transpose of p, the faster layout), or NULL to read p itself. */
static inline void nerf_mlp_forward(const nerf_mlp *m, const float *p, const float *t,
                             const float *x,    /* (dims[0],) */
                             float *acts,       /* (hidden_total,) = */
                             float *y)          /* (dims[n_layers],) = */
{
    const float *in = x;
    const int last = m->n_layers - 1;
    for (int k = 0; k <= last; k++) {
        float *o = k == last ? y : acts + m->h_off[k];
        if (t)
            nerf_dense_forward_t(t + m->w_off[k], p + m->b_off[k], in, o, m->dims[k],
                                 m->dims[k + 1]);
        else
            nerf_dense_forward(p + m->w_off[k], p + m->b_off[k], in, o, m->dims[k],
                               m->dims[k + 1]);
        if (k < last) {
            for (int j = 0; j < m->dims[k + 1]; j++)
                o[j] = o[j] > 0 ? o[j] : 0;
            in = o;
        }
    }
}

/* VJP of the MLP for an upstream dy on its output: parameter gradients accumulate into dp
 * (same layout as p), dx (if not NULL) is overwritten with dL/dx. Layer k's input is x
 * (k = 0) or the ReLU output of layer k-1, whose derivative is 1 where that output > 0. */
static inline void nerf_mlp_backward(const nerf_mlp *m, const float *p, float *dp,
                              const float *x,      /* (dims[0],) */
                              const float *acts,   /* (hidden_total,) */
                              const float *dy,     /* (dims[n_layers],) */
                              float *dx)           /* (dims[0],) = or NULL */
{
    float buf[2][NERF_MAX_WIDTH];
    const float *g = dy;
    int which = 0;
    for (int k = m->n_layers - 1; k >= 0; k--) {
        const float *in = k == 0 ? x : acts + m->h_off[k - 1];
        float *gin = k == 0 ? dx : buf[which];
        nerf_dense_vjp(p + m->w_off[k], in, g, gin, dp + m->w_off[k], dp + m->b_off[k],
                       m->dims[k], m->dims[k + 1]);
        if (k > 0) {
            for (int i = 0; i < m->dims[k]; i++)
                gin[i] = in[i] > 0 ? gin[i] : 0;
            g = gin;
            which ^= 1;
        }
    }
}

#endif
