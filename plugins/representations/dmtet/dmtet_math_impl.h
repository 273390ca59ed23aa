/* plugins/representations/dmtet/dmtet_math_impl.h — the body of dmtet_math.h, instantiated
 * for a scalar type DM_REAL with names DM_FN(name). Include dmtet_math.h, not this file
 * (except to instantiate another precision). No include guard on purpose. */
#if !defined(DM_REAL) || !defined(DM_FN)
#error "include dmtet_math.h (or define DM_REAL and DM_FN first)"
#endif

/* ------------------------------------------------------------------ small vector helpers */

SL_HD static inline DM_REAL DM_FN(dot3)(const DM_REAL a[3], const DM_REAL b[3])
{
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

SL_HD static inline void DM_FN(cross3)(const DM_REAL a[3], const DM_REAL b[3], DM_REAL c[3])
{
    c[0] = a[1] * b[2] - a[2] * b[1];
    c[1] = a[2] * b[0] - a[0] * b[2];
    c[2] = a[0] * b[1] - a[1] * b[0];
}

/* VJP of c = a x b: <dc, da x b> = <da, b x dc> and <dc, a x db> = <db, dc x a>, so
 *     da += b x dc,   db += dc x a            (accumulate) */
SL_HD static inline void DM_FN(cross3_vjp)(const DM_REAL a[3], const DM_REAL b[3],
                                          const DM_REAL dc[3], DM_REAL da[3], DM_REAL db[3])
{
    DM_REAL t[3];
    DM_FN(cross3)(b, dc, t);
    for (int k = 0; k < 3; k++)
        da[k] += t[k];
    DM_FN(cross3)(dc, a, t);
    for (int k = 0; k < 3; k++)
        db[k] += t[k];
}

/* n = v / |v|; returns |v|. n = 0 when |v| < 1e-20 (no direction). */
SL_HD static inline DM_REAL DM_FN(normalize)(const DM_REAL v[3], DM_REAL n[3])
{
    DM_REAL len = dm_sqrt(DM_FN(dot3)(v, v));
    for (int k = 0; k < 3; k++)
        n[k] = len < (DM_REAL)1e-20 ? 0 : v[k] / len;
    return len;
}

/* VJP of n = v / |v|: dn/dv = (I - n n^T) / |v|, so
 *     dv += (dn - n <n, dn>) / |v|          (accumulates; nothing where |v| < 1e-20) */
SL_HD static inline void DM_FN(normalize_vjp)(const DM_REAL v[3], const DM_REAL dn[3],
                                             DM_REAL dv[3])
{
    DM_REAL len = dm_sqrt(DM_FN(dot3)(v, v));
    if (len < (DM_REAL)1e-20)
        return;
    DM_REAL n[3] = { v[0] / len, v[1] / len, v[2] / len };
    DM_REAL nd = DM_FN(dot3)(n, dn);
    for (int k = 0; k < 3; k++)
        dv[k] += (dn[k] - n[k] * nd) / len;
}

/* ------------------------------------------------------------------ the tetrahedral grid */

/* Deformed grid vertex: x = base + scale tanh(d), per axis (|x - base| < scale, so the
 * deformation stays a bounded fraction of the cell). */
SL_HD static inline DM_REAL DM_FN(deform)(DM_REAL base, DM_REAL scale, DM_REAL d)
{
    return base + scale * dm_tanh(d);
}

/* dx/dd = scale (1 - tanh(d)^2). */
SL_HD static inline DM_REAL DM_FN(deform_grad)(DM_REAL scale, DM_REAL d)
{
    DM_REAL t = dm_tanh(d);
    return scale * (1 - t * t);
}

/* Surface crossing on the edge (pa, pb) whose SDF values have opposite signs (sa < 0 <= sb
 * or the reverse, so sa != sb): the zero of the linear interpolation,
 *     t = sa / (sa - sb),   p = pa + t (pb - pa).
 * Returns t. */
SL_HD static inline DM_REAL DM_FN(crossing)(const DM_REAL pa[3], const DM_REAL pb[3],
                                           DM_REAL sa, DM_REAL sb, DM_REAL p[3])
{
    DM_REAL t = sa / (sa - sb);
    for (int k = 0; k < 3; k++)
        p[k] = pa[k] + t * (pb[k] - pa[k]);
    return t;
}

/* VJP of the crossing for an upstream dp:
 *     dpa += (1 - t) dp,  dpb += t dp,
 *     dt/dsa = -sb / (sa - sb)^2,  dt/dsb = sa / (sa - sb)^2,  dL/dt = <dp, pb - pa>
 *     dsa += dL/dt dt/dsa,  dsb += dL/dt dt/dsb                  (all accumulate) */
SL_HD static inline void DM_FN(crossing_vjp)(const DM_REAL pa[3], const DM_REAL pb[3],
                                            DM_REAL sa, DM_REAL sb, const DM_REAL dp[3],
                                            DM_REAL dpa[3], DM_REAL dpb[3], DM_REAL *dsa,
                                            DM_REAL *dsb)
{
    DM_REAL den = sa - sb;
    DM_REAL t = sa / den;
    DM_REAL dt = 0;
    for (int k = 0; k < 3; k++) {
        dpa[k] += (1 - t) * dp[k];
        dpb[k] += t * dp[k];
        dt += dp[k] * (pb[k] - pa[k]);
    }
    *dsa += dt * (-sb / (den * den));
    *dsb += dt * (sa / (den * den));
}

/* ------------------------------------------------------------------ ray-triangle */

/* The ray o + s d against the triangle (x0, x1, x2): solves
 *     o + s d = x0 + l1 (x1 - x0) + l2 (x2 - x0)
 * i.e. M [s, l1, l2]^T = r with M = [-d | e1 | e2] (columns), e1 = x1 - x0, e2 = x2 - x0,
 * r = o - x0. With a = -d, b = e1, c = e2 and det = <a, b x c>, the rows of M^{-1} are
 * (b x c, c x a, a x b) / det (Cramer). out = (s, l1, l2); the barycentrics of the hit are
 * (1 - l1 - l2, l1, l2). With d the camera ray of a pixel scaled so that its component
 * along the camera's forward axis is 1, s is the z-depth of the hit and (l0, l1, l2) are the
 * perspective-correct barycentrics of the pixel. Returns 0 (out untouched) when the ray is
 * parallel to the triangle's plane (|det| < 1e-30). */
SL_HD static inline int DM_FN(ray_triangle)(const DM_REAL o[3], const DM_REAL d[3],
                                           const DM_REAL x0[3], const DM_REAL x1[3],
                                           const DM_REAL x2[3], DM_REAL out[3])
{
    DM_REAL a[3] = { -d[0], -d[1], -d[2] }, b[3], c[3], r[3], bc[3], ca[3], ab[3];
    for (int k = 0; k < 3; k++) {
        b[k] = x1[k] - x0[k];
        c[k] = x2[k] - x0[k];
        r[k] = o[k] - x0[k];
    }
    DM_FN(cross3)(b, c, bc);
    DM_REAL det = DM_FN(dot3)(a, bc);
    if (det < (DM_REAL)1e-30 && det > -(DM_REAL)1e-30)
        return 0;
    DM_FN(cross3)(c, a, ca);
    DM_FN(cross3)(a, b, ab);
    out[0] = DM_FN(dot3)(bc, r) / det;
    out[1] = DM_FN(dot3)(ca, r) / det;
    out[2] = DM_FN(dot3)(ab, r) / det;
    return 1;
}

/* VJP of ray_triangle w.r.t. the vertices (the ray is a constant of the camera), for an
 * upstream dout = dL/d(s, l1, l2) at the solution x = out:
 *     dx = M^{-1} (dr - dM x)  =>  with w = M^{-T} dout,  dL/dr = w,  dL/dM = -w x^T,
 * where w = (dout_0 (b x c) + dout_1 (c x a) + dout_2 (a x b)) / det. Columns 1, 2 of M are
 * e1, e2 (column 0 is -d: no gradient), r = o - x0, so
 *     dx1 += -l1 w,  dx2 += -l2 w,  dx0 += -w + l1 w + l2 w        (accumulate).
 * A degenerate triangle (|det| < 1e-30) contributes nothing. */
SL_HD static inline void DM_FN(ray_triangle_vjp)(const DM_REAL d[3], const DM_REAL x0[3],
                                                const DM_REAL x1[3], const DM_REAL x2[3],
                                                const DM_REAL out[3], const DM_REAL dout[3],
                                                DM_REAL dx0[3], DM_REAL dx1[3],
                                                DM_REAL dx2[3])
{
    DM_REAL a[3] = { -d[0], -d[1], -d[2] }, b[3], c[3], bc[3], ca[3], ab[3];
    for (int k = 0; k < 3; k++) {
        b[k] = x1[k] - x0[k];
        c[k] = x2[k] - x0[k];
    }
    DM_FN(cross3)(b, c, bc);
    DM_REAL det = DM_FN(dot3)(a, bc);
    if (det < (DM_REAL)1e-30 && det > -(DM_REAL)1e-30)
        return;
    DM_FN(cross3)(c, a, ca);
    DM_FN(cross3)(a, b, ab);
    for (int k = 0; k < 3; k++) {
        DM_REAL w = (dout[0] * bc[k] + dout[1] * ca[k] + dout[2] * ab[k]) / det;
        dx1[k] -= out[1] * w;
        dx2[k] -= out[2] * w;
        dx0[k] += (out[1] + out[2] - 1) * w;
    }
}

/* ------------------------------------------------------------------ projection */

/* Pinhole projection of a world point (steinlab/camera.h): xc = R^T (x - eye) with R the
 * camera-to-world rotation (row-major), screen (u, v) = (fx xc/zc + cx, fy yc/zc + cy) in
 * pixels (pixel (i, j) has its centre at (j + 0.5, i + 0.5)). Returns zc. */
SL_HD static inline DM_REAL DM_FN(project)(const DM_REAL rot[9], const DM_REAL eye[3],
                                          DM_REAL fx, DM_REAL fy, DM_REAL cx, DM_REAL cy,
                                          const DM_REAL x[3], DM_REAL uv[2])
{
    DM_REAL q[3] = { x[0] - eye[0], x[1] - eye[1], x[2] - eye[2] };
    DM_REAL xc = rot[0] * q[0] + rot[3] * q[1] + rot[6] * q[2];
    DM_REAL yc = rot[1] * q[0] + rot[4] * q[1] + rot[7] * q[2];
    DM_REAL zc = rot[2] * q[0] + rot[5] * q[1] + rot[8] * q[2];
    uv[0] = fx * xc / zc + cx;
    uv[1] = fy * yc / zc + cy;
    return zc;
}

/* VJP of the projection for an upstream duv:
 *     dxc = fx du / zc,  dyc = fy dv / zc,  dzc = -(fx xc du + fy yc dv) / zc^2,
 *     dx += R (dxc, dyc, dzc)                                        (accumulates) */
SL_HD static inline void DM_FN(project_vjp)(const DM_REAL rot[9], const DM_REAL eye[3],
                                           DM_REAL fx, DM_REAL fy, const DM_REAL x[3],
                                           const DM_REAL duv[2], DM_REAL dx[3])
{
    DM_REAL q[3] = { x[0] - eye[0], x[1] - eye[1], x[2] - eye[2] };
    DM_REAL xc = rot[0] * q[0] + rot[3] * q[1] + rot[6] * q[2];
    DM_REAL yc = rot[1] * q[0] + rot[4] * q[1] + rot[7] * q[2];
    DM_REAL zc = rot[2] * q[0] + rot[5] * q[1] + rot[8] * q[2];
    DM_REAL g[3] = { fx * duv[0] / zc, fy * duv[1] / zc,
                     -(fx * xc * duv[0] + fy * yc * duv[1]) / (zc * zc) };
    for (int k = 0; k < 3; k++)
        dx[k] += rot[3 * k] * g[0] + rot[3 * k + 1] * g[1] + rot[3 * k + 2] * g[2];
}

/* ------------------------------------------------------------------ silhouette crossing */

/* Edge function of the screen segment (pa, pb) at point p: the 2-D cross product
 * (pb - pa) x (p - pa); its sign says on which side of the edge's line p lies. */
SL_HD static inline DM_REAL DM_FN(edge_fn)(const DM_REAL pa[2], const DM_REAL pb[2],
                                          const DM_REAL p[2])
{
    return (pb[0] - pa[0]) * (p[1] - pa[1]) - (pb[1] - pa[1]) * (p[0] - pa[0]);
}

/* Where the segment from pixel centre cf (inside the triangle) to cb (outside) crosses the
 * edge's line, as a fraction of the segment: with ef = edge_fn(cf), eb = edge_fn(cb) of
 * opposite signs, t = ef / (ef - eb) in (0, 1). (The ratio does not depend on the edge's
 * direction, so the triangle's winding does not enter.) */
SL_HD static inline DM_REAL DM_FN(edge_crossing)(const DM_REAL pa[2], const DM_REAL pb[2],
                                                const DM_REAL cf[2], const DM_REAL cb[2])
{
    DM_REAL ef = DM_FN(edge_fn)(pa, pb, cf), eb = DM_FN(edge_fn)(pa, pb, cb);
    return ef / (ef - eb);
}

/* VJP of edge_crossing w.r.t. the edge's end points, for an upstream dt:
 *     dt/def = -eb / (ef - eb)^2,   dt/deb = ef / (ef - eb)^2,
 *     de(p)/dpa = (pb_y - p_y, p_x - pb_x),   de(p)/dpb = (p_y - pa_y, pa_x - p_x)
 * (accumulate into dpa, dpb). */
SL_HD static inline void DM_FN(edge_crossing_vjp)(const DM_REAL pa[2], const DM_REAL pb[2],
                                                 const DM_REAL cf[2], const DM_REAL cb[2],
                                                 DM_REAL dt, DM_REAL dpa[2], DM_REAL dpb[2])
{
    DM_REAL ef = DM_FN(edge_fn)(pa, pb, cf), eb = DM_FN(edge_fn)(pa, pb, cb);
    DM_REAL den = ef - eb;
    DM_REAL gf = dt * (-eb / (den * den)), gb = dt * (ef / (den * den));
    dpa[0] += gf * (pb[1] - cf[1]) + gb * (pb[1] - cb[1]);
    dpa[1] += gf * (cf[0] - pb[0]) + gb * (cb[0] - pb[0]);
    dpb[0] += gf * (cf[1] - pa[1]) + gb * (cb[1] - pa[1]);
    dpb[1] += gf * (pa[0] - cf[0]) + gb * (pa[0] - cb[0]);
}

/* Antialiasing blend of one pixel pair across a silhouette (the analytic-coverage step
 * nvdiffrast's antialias performs): the silhouette crosses the segment from the occluding
 * pixel's centre to its neighbour's at fraction t. In one dimension a pixel of width 1
 * around each centre is covered by the occluder up to t: when t < 1/2 the occluder's own
 * pixel is only partly covered, a share 1/2 - t of it shows the neighbour's value; when
 * t > 1/2 the neighbour's pixel is covered over t - 1/2 by the occluder. So
 *     occluder pixel  += (v_nb - v_occ) max(0, 1/2 - t)
 *     neighbour pixel += (v_occ - v_nb) max(0, t - 1/2)
 * This returns the weight for the pixel `side` (0: occluder, 1: neighbour). */
SL_HD static inline DM_REAL DM_FN(aa_weight)(int side, DM_REAL t)
{
    DM_REAL w = side == 0 ? (DM_REAL)0.5 - t : t - (DM_REAL)0.5;
    return w > 0 ? w : 0;
}

/* d aa_weight / dt (0 where the weight is clamped). */
SL_HD static inline DM_REAL DM_FN(aa_weight_grad)(int side, DM_REAL t)
{
    if (side == 0)
        return t < (DM_REAL)0.5 ? -1 : 0;
    return t > (DM_REAL)0.5 ? 1 : 0;
}

/* ------------------------------------------------------------------ texture lookup */

/* VJP of nerf_hash_encode w.r.t. the point u in [0, 1]^3 (the table's VJP is nerf_math.h's):
 * enc[l F + f] = sum_c w_c(u) table[row_c F + f] with trilinear weights
 * w_c = prod_k (bit_k(c) ? f_k : 1 - f_k), f_k = u_k res_l - i_k, so
 *     dw_c/du_k = (bit_k(c) ? res_l : -res_l) prod_{m != k} (bit_m(c) ? f_m : 1 - f_m),
 *     du_k += sum_l sum_c dw_c/du_k <table_row_c, denc_l>            (accumulates)
 * (piecewise: the cell, hence the rows, is fixed between cell boundaries). */
SL_HD static inline void DM_FN(hash_encode_vjp_u)(const nerf_grid *g, const DM_REAL *table,
                                                 const DM_REAL u[3], const DM_REAL *denc,
                                                 DM_REAL du[3])
{
    const int F = g->feat;
    for (int l = 0; l < g->levels; l++) {
        int r = g->res[l];
        uint32_t i0[3];
        DM_REAL f[3];
        for (int k = 0; k < 3; k++) {
            DM_REAL p = u[k] * (DM_REAL)r;
            int ik = (int)floor((double)p);
            ik = ik < 0 ? 0 : (ik > r - 1 ? r - 1 : ik);
            i0[k] = (uint32_t)ik;
            f[k] = p - (DM_REAL)ik;
        }
        const DM_REAL *de = denc + l * F;
        for (int c = 0; c < 8; c++) {
            uint32_t row = g->offset[l] + nerf_grid_index(g, l, i0[0] + (c & 1),
                                                          i0[1] + ((c >> 1) & 1),
                                                          i0[2] + ((c >> 2) & 1));
            const DM_REAL *t = table + (size_t)row * F;
            DM_REAL dot = 0;
            for (int q = 0; q < F; q++)
                dot += t[q] * de[q];
            DM_REAL w[3], dw[3];
            for (int k = 0; k < 3; k++) {
                int up = (c >> k) & 1;
                w[k] = up ? f[k] : 1 - f[k];
                dw[k] = up ? (DM_REAL)r : -(DM_REAL)r;
            }
            du[0] += dw[0] * w[1] * w[2] * dot;
            du[1] += w[0] * dw[1] * w[2] * dot;
            du[2] += w[0] * w[1] * dw[2] * dot;
        }
    }
}
