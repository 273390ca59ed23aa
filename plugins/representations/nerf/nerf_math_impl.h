/* plugins/representations/nerf/nerf_math_impl.h — the body of nerf_math.h, instantiated
 * for a scalar type NM_REAL with function names NM_FN(name). Include nerf_math.h, not this
 * file (except to instantiate another precision; see nerf_math.h). No include guard on
 * purpose. */
#if !defined(NM_REAL) || !defined(NM_FN)
#error "include nerf_math.h (or define NM_REAL and NM_FN first)"
#endif

/* ------------------------------------------------------------------ hash encoding */

/* The 8 corners of the cell of level l containing u in [0, 1]^3: table rows (global entry
 * index, i.e. offset + local index) and trilinear weights. Corner c has bit k set when it
 * is the upper vertex along axis k.
 *     p = u res,  i = clamp(floor(p), 0, res - 1),  f = p - i,
 *     w_c = prod_k (bit_k(c) ? f_k : 1 - f_k)                                           */
SL_HD static inline void NM_FN(hash_corners)(const nerf_grid *g, int l, const NM_REAL u[3],
                                            uint32_t row[8],     /* (8,) out */
                                            NM_REAL w[8])        /* (8,) out */
{
    uint32_t i0[3];
    NM_REAL f[3];
    int r = g->res[l];
    for (int k = 0; k < 3; k++) {
        NM_REAL p = u[k] * (NM_REAL)r;
        int ik = (int)nm_floor(p);
        ik = ik < 0 ? 0 : (ik > r - 1 ? r - 1 : ik);
        i0[k] = (uint32_t)ik;
        f[k] = p - (NM_REAL)ik;
    }
    for (int c = 0; c < 8; c++) {
        uint32_t x = i0[0] + (c & 1), y = i0[1] + ((c >> 1) & 1), z = i0[2] + ((c >> 2) & 1);
        row[c] = g->offset[l] + nerf_grid_index(g, l, x, y, z);
        w[c] = ((c & 1) ? f[0] : 1 - f[0]) * ((c & 2) ? f[1] : 1 - f[1]) *
               ((c & 4) ? f[2] : 1 - f[2]);
    }
}

/* Encoding: enc[l F + f] = sum_c w_c table[row_c F + f]   (overwrites enc).
 * u: (3,) in [0, 1]^3; table: (entries, F); enc: (L F,). */
SL_HD static inline void NM_FN(hash_encode)(const nerf_grid *g, const NM_REAL *table,
                                           const NM_REAL u[3], NM_REAL *enc)
{
    const int F = g->feat;
    for (int l = 0; l < g->levels; l++) {
        uint32_t row[8];
        NM_REAL w[8];
        NM_FN(hash_corners)(g, l, u, row, w);
        NM_REAL *e = enc + l * F;
        for (int f = 0; f < F; f++)
            e[f] = 0;
        for (int c = 0; c < 8; c++) {
            const NM_REAL *t = table + (size_t)row[c] * F;
            for (int f = 0; f < F; f++)
                e[f] += w[c] * t[f];
        }
    }
}

/* VJP of the encoding w.r.t. the table (it is linear in the table):
 *     dtable[row_c F + f] += w_c denc[l F + f]        (accumulates)
 * The weights do not depend on the table, so no other term. (The gradient w.r.t. u is
 * hash_encode_vjp_u's.) */
SL_HD static inline void NM_FN(hash_encode_vjp)(const nerf_grid *g, const NM_REAL u[3],
                                               const NM_REAL *denc,   /* (L F,) */
                                               NM_REAL *dtable)       /* (entries, F) += */
{
    const int F = g->feat;
    for (int l = 0; l < g->levels; l++) {
        uint32_t row[8];
        NM_REAL w[8];
        NM_FN(hash_corners)(g, l, u, row, w);
        const NM_REAL *de = denc + l * F;
        for (int c = 0; c < 8; c++) {
            NM_REAL *t = dtable + (size_t)row[c] * F;
            for (int f = 0; f < F; f++)
                t[f] += w[c] * de[f];
        }
    }
}

/* The corners of hash_corners with the derivatives of their weights w.r.t. u:
 *     dw[c][k] = dw_c/du_k = res (bit_k(c) ? 1 : -1) prod_{j != k} (bit_j(c) ? f_j : 1 - f_j)
 * (f = u res - i, so df/du = res, also in the clamped last cell). */
SL_HD static inline void NM_FN(hash_corners_grad)(const nerf_grid *g, int l, const NM_REAL u[3],
                                                 uint32_t row[8],     /* (8,) out */
                                                 NM_REAL dw[8][3])    /* (8, 3) out */
{
    uint32_t i0[3];
    NM_REAL f[3];
    int r = g->res[l];
    for (int k = 0; k < 3; k++) {
        NM_REAL p = u[k] * (NM_REAL)r;
        int ik = (int)nm_floor(p);
        ik = ik < 0 ? 0 : (ik > r - 1 ? r - 1 : ik);
        i0[k] = (uint32_t)ik;
        f[k] = p - (NM_REAL)ik;
    }
    for (int c = 0; c < 8; c++) {
        uint32_t x = i0[0] + (c & 1), y = i0[1] + ((c >> 1) & 1), z = i0[2] + ((c >> 2) & 1);
        row[c] = g->offset[l] + nerf_grid_index(g, l, x, y, z);
        NM_REAL fac[3], sgn[3];
        for (int k = 0; k < 3; k++) {
            int up = (c >> k) & 1;
            fac[k] = up ? f[k] : 1 - f[k];
            sgn[k] = up ? (NM_REAL)r : -(NM_REAL)r;
        }
        dw[c][0] = sgn[0] * fac[1] * fac[2];
        dw[c][1] = fac[0] * sgn[1] * fac[2];
        dw[c][2] = fac[0] * fac[1] * sgn[2];
    }
}

/* VJP of the encoding w.r.t. its position (analytic normals): for an upstream denc,
 *     du_k = sum_l sum_c dw_c/du_k <table[row_c], denc_l>        (overwrites du)
 * i.e. the gradient of <denc, enc(u)> w.r.t. u. */
SL_HD static inline void NM_FN(hash_encode_vjp_u)(const nerf_grid *g, const NM_REAL *table,
                                                 const NM_REAL u[3],
                                                 const NM_REAL *denc,   /* (L F,) */
                                                 NM_REAL du[3])         /* (3,) = */
{
    const int F = g->feat;
    du[0] = du[1] = du[2] = 0;
    for (int l = 0; l < g->levels; l++) {
        uint32_t row[8];
        NM_REAL dw[8][3];
        NM_FN(hash_corners_grad)(g, l, u, row, dw);
        const NM_REAL *de = denc + l * F;
        for (int c = 0; c < 8; c++) {
            const NM_REAL *t = table + (size_t)row[c] * F;
            NM_REAL dot = 0;
            for (int f = 0; f < F; f++)
                dot += t[f] * de[f];
            for (int k = 0; k < 3; k++)
                du[k] += dw[c][k] * dot;
        }
    }
}

/* VJP of hash_encode_vjp_u itself (the second-order step of analytic normals): for an
 * upstream ddu on du, with rho_c = <dw_c/du, ddu> (the derivative of corner c's weight
 * along ddu),
 *     dL/ddenc_l = sum_c rho_c table[row_c]          (overwrites ddenc; the encoding's
 *                                                     directional derivative along ddu)
 *     dtable[row_c] += rho_c denc_l                  (accumulates)
 * u gets no gradient (the caller's u is a sample position, not a parameter). */
SL_HD static inline void NM_FN(hash_encode_vjp_u_vjp)(const nerf_grid *g, const NM_REAL *table,
                                                     const NM_REAL u[3],
                                                     const NM_REAL *denc,   /* (L F,) */
                                                     const NM_REAL ddu[3],
                                                     NM_REAL *ddenc,        /* (L F,) = */
                                                     NM_REAL *dtable)       /* (entries, F) += */
{
    const int F = g->feat;
    for (int l = 0; l < g->levels; l++) {
        uint32_t row[8];
        NM_REAL dw[8][3];
        NM_FN(hash_corners_grad)(g, l, u, row, dw);
        const NM_REAL *de = denc + l * F;
        NM_REAL *dde = ddenc + l * F;
        for (int f = 0; f < F; f++)
            dde[f] = 0;
        for (int c = 0; c < 8; c++) {
            NM_REAL rho = dw[c][0] * ddu[0] + dw[c][1] * ddu[1] + dw[c][2] * ddu[2];
            const NM_REAL *t = table + (size_t)row[c] * F;
            NM_REAL *dt = dtable + (size_t)row[c] * F;
            for (int f = 0; f < F; f++) {
                dde[f] += rho * t[f];
                dt[f] += rho * de[f];
            }
        }
    }
}

/* ------------------------------------------------------------------ dense layers */

/* y = W x + b with W (out, in) row-major (the parameter layout). Reference form: one dot
 * product per output. */
SL_HD static inline void NM_FN(dense_forward)(const NM_REAL *W,   /* (out, in) */
                                             const NM_REAL *b,   /* (out,) */
                                             const NM_REAL *x,   /* (in,) */
                                             NM_REAL *y,         /* (out,) overwritten */
                                             int in, int out)
{
    for (int j = 0; j < out; j++) {
        NM_REAL s = b[j];
        for (int i = 0; i < in; i++)
            s += W[(size_t)j * in + i] * x[i];
        y[j] = s;
    }
}

/* The same y = W x + b from the transposed weights Wt (in, out): y accumulates x_i times
 * row i of Wt, a contiguous axpy over the outputs that the compiler vectorises without
 * reassociating a reduction (so it stays bit-reproducible without -ffast-math). Inputs
 * that are exactly 0 (ReLU's) are skipped. The sum order differs from dense_forward's, so
 * the two agree to rounding, not bit for bit: a run uses one of them throughout. */
SL_HD static inline void NM_FN(dense_forward_t)(const NM_REAL *NM_RESTRICT Wt,  /* (in, out) */
                                               const NM_REAL *NM_RESTRICT b,   /* (out,) */
                                               const NM_REAL *NM_RESTRICT x,   /* (in,) */
                                               NM_REAL *NM_RESTRICT y,         /* (out,) = */
                                               int in, int out)
{
    for (int j = 0; j < out; j++)
        y[j] = b[j];
    for (int i = 0; i < in; i++) {
        NM_REAL xi = x[i];
        if (xi == 0)
            continue;
        const NM_REAL *w = Wt + (size_t)i * out;
        for (int j = 0; j < out; j++)
            y[j] += xi * w[j];
    }
}

/* VJP of y = W x + b, for an upstream dy:
 *     dx = W^T dy         (overwrites dx; skipped when dx is NULL)
 *     dW += dy x^T,  db += dy         (accumulate)
 * Written as axpys over contiguous rows of W (dx += dy_j W[j, :]) for the same reason as
 * dense_forward_t. */
SL_HD static inline void NM_FN(dense_vjp)(const NM_REAL *NM_RESTRICT W,   /* (out, in) */
                                         const NM_REAL *NM_RESTRICT x,   /* (in,) */
                                         const NM_REAL *NM_RESTRICT dy,  /* (out,) */
                                         NM_REAL *NM_RESTRICT dx,        /* (in,) = or NULL */
                                         NM_REAL *NM_RESTRICT dW,        /* (out, in) += */
                                         NM_REAL *NM_RESTRICT db,        /* (out,) += */
                                         int in, int out)
{
    if (dx)
        for (int i = 0; i < in; i++)
            dx[i] = 0;
    for (int j = 0; j < out; j++) {
        NM_REAL g = dy[j];
        db[j] += g;
        if (g == 0)
            continue;
        const NM_REAL *w = W + (size_t)j * in;
        NM_REAL *dw = dW + (size_t)j * in;
        for (int i = 0; i < in; i++)
            dw[i] += g * x[i];
        if (dx)
            for (int i = 0; i < in; i++)
                dx[i] += g * w[i];
    }
}

/* The input gradient of a layer alone, for the density gradient of analytic normals:
 *     gamma = W^T t                     (overwrites gamma; t: (out,), gamma: (in,))
 * (dense_vjp's dx without the parameter gradients.) */
SL_HD static inline void NM_FN(dense_input_grad)(const NM_REAL *NM_RESTRICT W,   /* (out, in) */
                                                const NM_REAL *NM_RESTRICT t,   /* (out,) */
                                                NM_REAL *NM_RESTRICT gamma,     /* (in,) = */
                                                int in, int out)
{
    for (int i = 0; i < in; i++)
        gamma[i] = 0;
    for (int j = 0; j < out; j++) {
        NM_REAL tj = t[j];
        if (tj == 0)
            continue;
        const NM_REAL *w = W + (size_t)j * in;
        for (int i = 0; i < in; i++)
            gamma[i] += tj * w[i];
    }
}

/* VJP of gamma = W^T t for an upstream dgamma (in,):
 *     dt = W dgamma                     (overwrites dt, (out,))
 *     dW += t dgamma^T                  (accumulates; dW[j, i] += t_j dgamma_i) */
SL_HD static inline void NM_FN(dense_input_grad_vjp)(const NM_REAL *NM_RESTRICT W,      /* (out, in) */
                                                    const NM_REAL *NM_RESTRICT t,      /* (out,) */
                                                    const NM_REAL *NM_RESTRICT dgamma, /* (in,) */
                                                    NM_REAL *NM_RESTRICT dt,           /* (out,) = */
                                                    NM_REAL *NM_RESTRICT dW,           /* (out, in) += */
                                                    int in, int out)
{
    for (int j = 0; j < out; j++) {
        const NM_REAL *w = W + (size_t)j * in;
        NM_REAL *dw = dW + (size_t)j * in;
        NM_REAL s = 0, tj = t[j];
        for (int i = 0; i < in; i++)
            s += w[i] * dgamma[i];
        dt[j] = s;
        if (tj != 0)
            for (int i = 0; i < in; i++)
                dw[i] += tj * dgamma[i];
    }
}

/* ------------------------------------------------------------------ activations */

SL_HD static inline NM_REAL NM_FN(sigmoid)(NM_REAL z)
{
    return 1 / (1 + nm_exp(-z));
}

/* softplus(z) = log(1 + e^z), computed without overflow; its derivative is sigmoid(z). */
SL_HD static inline NM_REAL NM_FN(softplus)(NM_REAL z)
{
    return z > 20 ? z : nm_log1p(nm_exp(z));
}

/* Density activations. exp is truncated at z = 15 (density 3.3e6: opaque over any step)
 * so a large pre-activation cannot overflow; its derivative is 0 beyond (threestudio's
 * trunc_exp clamps the gradient instead; a flat top is the consistent choice for FD checks).
 * act: NERF_ACT_* (nerf_math.h). */

SL_HD static inline NM_REAL NM_FN(density_act)(int act, NM_REAL z)
{
    if (act == NERF_ACT_EXP)
        return nm_exp(z < 15 ? z : (NM_REAL)15);
    return NM_FN(softplus)(z);
}

/* d activation / dz at z. */
SL_HD static inline NM_REAL NM_FN(density_act_grad)(int act, NM_REAL z)
{
    if (act == NERF_ACT_EXP)
        return z < 15 ? nm_exp(z) : 0;
    return NM_FN(sigmoid)(z);
}

/* d^2 activation / dz^2 at z (the second-order term of analytic normals' backward). */
SL_HD static inline NM_REAL NM_FN(density_act_grad2)(int act, NM_REAL z)
{
    if (act == NERF_ACT_EXP)
        return z < 15 ? nm_exp(z) : 0;
    NM_REAL sg = NM_FN(sigmoid)(z);
    return sg * (1 - sg);
}

/* Density bias at initialisation, Magic3D / DreamFusion style (threestudio's "blob_magic3d"):
 * added to the density MLP's output before the activation, so the untrained field is a
 * soft ball of radius ~std around the centre:  bias(x) = scale (1 - |x - c| / std). */
SL_HD static inline NM_REAL NM_FN(blob_bias)(const NM_REAL x[3], const NM_REAL c[3],
                                            NM_REAL scale, NM_REAL std_)
{
    NM_REAL d0 = x[0] - c[0], d1 = x[1] - c[1], d2 = x[2] - c[2];
    return scale * (1 - nm_sqrt(d0 * d0 + d1 * d1 + d2 * d2) / std_);
}

/* Gradient of blob_bias w.r.t. x: -scale / std (x - c) / |x - c| (0 at the centre, where
 * the cone has no gradient). */
SL_HD static inline void NM_FN(blob_bias_grad)(const NM_REAL x[3], const NM_REAL c[3],
                                              NM_REAL scale, NM_REAL std_,
                                              NM_REAL grad[3])   /* (3,) = */
{
    NM_REAL d[3] = { x[0] - c[0], x[1] - c[1], x[2] - c[2] };
    NM_REAL len = nm_sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    for (int k = 0; k < 3; k++)
        grad[k] = len > (NM_REAL)1e-20 ? -scale / std_ * d[k] / len : 0;
}

/* ------------------------------------------------------------------ volume compositing */

/* One step of front-to-back compositing, shared by the forward pass and the VJP so that
 * both see the same bits:  a = exp(-sigma delta),  w = T (1 - a),  T <- T a.
 * (alpha = 1 - a; T_i = prod_{j<i} (1 - alpha_j) = exp(-sum_{j<i} sigma_j delta_j).) */
SL_HD static inline NM_REAL NM_FN(composite_step)(NM_REAL sigma, NM_REAL delta, NM_REAL *trans)
{
    NM_REAL a = nm_exp(-sigma * delta);
    NM_REAL w = *trans * (1 - a);
    *trans *= a;
    return w;
}

/* Composites n samples of C channels: out = sum_i w_i q_i + T_n bg; returns T_n.
 * (Opacity is 1 - T_n = sum_i w_i.) */
SL_HD static inline NM_REAL NM_FN(composite_forward)(int n, const NM_REAL *sigma,  /* (n,) */
                                                    const NM_REAL *delta,         /* (n,) */
                                                    const NM_REAL *q,             /* (n, C) */
                                                    int C, const NM_REAL *bg,     /* (C,) or NULL */
                                                    NM_REAL *out)                 /* (C,) = */
{
    NM_REAL T = 1;
    for (int c = 0; c < C; c++)
        out[c] = 0;
    for (int i = 0; i < n; i++) {
        NM_REAL w = NM_FN(composite_step)(sigma[i], delta[i], &T);
        for (int c = 0; c < C; c++)
            out[c] += w * q[(size_t)i * C + c];
    }
    if (bg)
        for (int c = 0; c < C; c++)
            out[c] += T * bg[c];
    return T;
}

/* VJP of compositing w.r.t. the densities. Every output of a ray is a weighted sum
 * Q = sum_i w_i q_i + T_n q_bg, so an upstream g on all of them folds into one scalar per
 * sample, e_i = <g, q_i> (summed over rgb, depth, normal, opacity), and e_bg = <g, q_bg>:
 *     L = sum_i w_i e_i + T_n e_bg.
 * With w_i = T_i (1 - exp(-sigma_i delta_i)) and T_i = exp(-sum_{j<i} sigma_j delta_j):
 *     dw_k/dsigma_k = delta_k T_k exp(-sigma_k delta_k) = delta_k T_{k+1},
 *     dw_i/dsigma_k = -delta_k w_i (i > k),     dT_n/dsigma_k = -delta_k T_n,
 * so  dL/dsigma_k = delta_k (T_{k+1} e_k - S_k),  S_k = sum_{i>k} w_i e_i + T_n e_bg,
 * one backward sweep. The weights are recomputed with composite_step (bit-identical to the
 * forward's) into w, for the caller's dq_i = w_i g. dsigma and w are overwritten. Returns T_n. */
SL_HD static inline NM_REAL NM_FN(composite_vjp)(int n, const NM_REAL *sigma,  /* (n,) */
                                                const NM_REAL *delta,         /* (n,) */
                                                const NM_REAL *e,             /* (n,) */
                                                NM_REAL e_bg,
                                                NM_REAL *dsigma,              /* (n,) = */
                                                NM_REAL *w,                   /* (n,) = */
                                                NM_REAL *trans_after)         /* (n,) scratch */
{
    NM_REAL T = 1;
    for (int i = 0; i < n; i++) {
        w[i] = NM_FN(composite_step)(sigma[i], delta[i], &T);
        trans_after[i] = T;   /* T_{i+1} */
    }
    NM_REAL S = T * e_bg;
    for (int k = n - 1; k >= 0; k--) {
        dsigma[k] = delta[k] * (trans_after[k] * e[k] - S);
        S += w[k] * e[k];
    }
    return T;
}

/* ------------------------------------------------------------------ normals */

/* Normal from the density gradient: n = -g / |g| (pointing out of the dense region);
 * 0 when |g| < 1e-20 (flat density: no direction). */
SL_HD static inline void NM_FN(normal_from_grad)(const NM_REAL g[3], NM_REAL n[3])
{
    NM_REAL len = nm_sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]);
    if (len < (NM_REAL)1e-20) {
        n[0] = n[1] = n[2] = 0;
        return;
    }
    for (int k = 0; k < 3; k++)
        n[k] = -g[k] / len;
}

/* VJP of n = -g/|g|: with h = g/|g|, dh/dg = (I - h h^T)/|g|, so
 *     dg = -(dn - h <h, dn>) / |g|          (overwrites dg; 0 where the normal is 0) */
SL_HD static inline void NM_FN(normal_vjp)(const NM_REAL g[3], const NM_REAL dn[3],
                                          NM_REAL dg[3])
{
    NM_REAL len = nm_sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]);
    if (len < (NM_REAL)1e-20) {
        dg[0] = dg[1] = dg[2] = 0;
        return;
    }
    NM_REAL h[3] = { g[0] / len, g[1] / len, g[2] / len };
    NM_REAL hd = h[0] * dn[0] + h[1] * dn[1] + h[2] * dn[2];
    for (int k = 0; k < 3; k++)
        dg[k] = -(dn[k] - h[k] * hd) / len;
}

/* ------------------------------------------------------------------ rays */

/* Slab test of the ray o + t d against the box [bmin, bmax]: the parameter interval
 * [*t0, *t1] inside it; returns 0 when the ray misses (or the box is behind it). */
SL_HD static inline int NM_FN(ray_box)(const NM_REAL o[3], const NM_REAL d[3],
                                      const NM_REAL bmin[3], const NM_REAL bmax[3],
                                      NM_REAL *t0, NM_REAL *t1)
{
    NM_REAL lo = -(NM_REAL)1e30, hi = (NM_REAL)1e30;
    for (int k = 0; k < 3; k++) {
        if (d[k] == 0) {
            if (o[k] < bmin[k] || o[k] > bmax[k])
                return 0;
            continue;
        }
        NM_REAL inv = 1 / d[k];
        NM_REAL ta = (bmin[k] - o[k]) * inv, tb = (bmax[k] - o[k]) * inv;
        if (ta > tb) {
            NM_REAL tmp = ta;
            ta = tb;
            tb = tmp;
        }
        lo = ta > lo ? ta : lo;
        hi = tb < hi ? tb : hi;
    }
    *t0 = lo;
    *t1 = hi;
    return hi > lo && hi > 0;
}
