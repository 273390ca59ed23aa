/* plugins/representations/gaussians/gs_math.h — the device math of 3-D Gaussian splatting,
 * each function with its vector-Jacobian product (VJP) beside it.
 *
 * Everything here is `static inline SL_HD` on plain arrays so that the CPU rasterizer
 * (raster.c, OpenMP loops) and a future CUDA rasterizer (kernels) share one source.
 *
 * Precision: the body is written once over a scalar type GS_T with math macros. Including
 * this header normally gives the float instantiation with names gs_*. A translation unit
 * may instantiate it again for another type before (or after) that, by defining
 *     GS_T (double), GS_(name) (gsd_##name), GS_SQRT, GS_EXP, GS_LOG, GS_FABS
 * and including this file: the tests do so for double-precision finite-difference
 * references. The macros are undefined at the end of every instantiation.
 *
 * Conventions (docs/conventions.md): camera space x right, y down, z forward; pixel
 * (row i, column j) samples the image plane at (j + 0.5, i + 0.5). Quaternions are
 * (w, x, y, z), unnormalised (normalised here, the normalisation is differentiated).
 * Symmetric matrices are passed as their unique entries: 3x3 as (xx, xy, xz, yy, yz, zz),
 * 2x2 as (xx, xy, yy). A gradient with respect to a symmetric matrix is likewise the
 * gradient with respect to those unique entries (an off-diagonal entry moves both of its
 * matrix positions, so it receives G_ij + G_ji of the full-matrix gradient G).
 *
 * VJP rule: every *_vjp function OVERWRITES its gradient outputs (callers accumulate).
 *
 * Matrix-calculus identities used below (for a scalar loss L, G = dL/d(output)):
 *   Y = A X B           dL/dX = A^T G B^T
 *   Y = M M^T            dL/dM = (G + G^T) M          (= 2 G M for symmetric G)
 *   Y = T S T^T (S sym)  dL/dS = T^T G T,  dL/dT = (G + G^T) T S
 *   Y = X^{-1}           dL/dX = -Y^T G Y^T
 *   y = x / |x|          dL/dx = (g - y (y . g)) / |x| */
#include "steinlab/device.h"

#if defined(GS_T)
#define GS_MATH_BODY 1
#elif !defined(GS_MATH_FLOAT_DONE)
#define GS_MATH_FLOAT_DONE 1
#include <math.h>
#define GS_T float
#define GS_(name) gs_##name
#define GS_SQRT sqrtf
#define GS_EXP expf
#define GS_LOG logf
#define GS_FABS fabsf
#define GS_MATH_BODY 1
#endif

#ifdef GS_MATH_BODY
#undef GS_MATH_BODY

#ifndef GS_MATH_CONSTANTS
#define GS_MATH_CONSTANTS 1
enum {
    GS_NCH = 8,            /* blended channels: r, g, b, z, nx, ny, nz, 1 */
    GS_CH_DEPTH = 3,
    GS_CH_NORMAL = 4,
    GS_CH_ONE = 7,
    GS_SH_MAX_COEFFS = 16  /* degree 3 */
};
/* Tunables of the rasterizer (the reference rasterizer's config.h, in one place). */
#define GS_DILATION 0.3              /* px^2 added to the 2-D covariance's diagonal */
#define GS_ALPHA_MAX 0.99            /* alpha clamp */
#define GS_ALPHA_MIN (1.0 / 255.0)   /* contributions below are skipped */
#define GS_T_MIN 1e-4                /* stop when the transmittance would fall below */
#define GS_SH_C0 0.28209479177387814
#endif

/* ------------------------------------------------------------ quaternion -> rotation */

/* R = rotation of the normalised quaternion q/|q| = (w, x, y, z); R: (3, 3) row-major.
 *   R = [[1-2(y2+z2), 2(xy-wz),   2(xz+wy)],
 *        [2(xy+wz),   1-2(x2+z2), 2(yz-wx)],
 *        [2(xz-wy),   2(yz+wx),   1-2(x2+y2)]]                                         */
static inline SL_HD void GS_(quat_to_rot)(const GS_T q[4], GS_T R[9])
{
    GS_T n2 = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3];
    GS_T inv = n2 > 0 ? 1 / GS_SQRT(n2) : 0;
    GS_T w = q[0] * inv, x = q[1] * inv, y = q[2] * inv, z = q[3] * inv;
    if (!(n2 > 0))
        w = 1;   /* the zero quaternion reads as the identity */
    R[0] = 1 - 2 * (y * y + z * z); R[1] = 2 * (x * y - w * z);     R[2] = 2 * (x * z + w * y);
    R[3] = 2 * (x * y + w * z);     R[4] = 1 - 2 * (x * x + z * z); R[5] = 2 * (y * z - w * x);
    R[6] = 2 * (x * z - w * y);     R[7] = 2 * (y * z + w * x);     R[8] = 1 - 2 * (x * x + y * y);
}

/* dR: (3, 3) dL/dR -> dq: (4,) dL/dq (through the normalisation). Each entry of R is a
 * quadratic in (w, x, y, z); the partial derivatives are collected per component, then
 * projected: dq = (dqhat - qhat (qhat . dqhat)) / |q|. */
static inline SL_HD void GS_(quat_to_rot_vjp)(const GS_T q[4], const GS_T G[9], GS_T dq[4])
{
    GS_T n2 = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3];
    if (!(n2 > 0)) {
        dq[0] = dq[1] = dq[2] = dq[3] = 0;
        return;
    }
    GS_T inv = 1 / GS_SQRT(n2);
    GS_T w = q[0] * inv, x = q[1] * inv, y = q[2] * inv, z = q[3] * inv;
    GS_T dw = 2 * (-z * G[1] + y * G[2] + z * G[3] - x * G[5] - y * G[6] + x * G[7]);
    GS_T dx = 2 * (y * G[1] + z * G[2] + y * G[3] - 2 * x * G[4] - w * G[5] + z * G[6] +
                   w * G[7] - 2 * x * G[8]);
    GS_T dy = 2 * (-2 * y * G[0] + x * G[1] + w * G[2] + x * G[3] + z * G[5] - w * G[6] +
                   z * G[7] - 2 * y * G[8]);
    GS_T dz = 2 * (-2 * z * G[0] - w * G[1] + x * G[2] + w * G[3] - 2 * z * G[4] + y * G[5] +
                   x * G[6] + y * G[7]);
    GS_T dot = w * dw + x * dx + y * dy + z * dz;
    dq[0] = (dw - w * dot) * inv;
    dq[1] = (dx - x * dot) * inv;
    dq[2] = (dy - y * dot) * inv;
    dq[3] = (dz - z * dot) * inv;
}

/* ------------------------------------------------------------ 3-D covariance */

/* Sigma = M M^T with M = R diag(s), s = exp(log_scale); cov: (6,) unique entries. */
static inline SL_HD void GS_(cov3d)(const GS_T log_scale[3], const GS_T q[4], GS_T cov[6])
{
    GS_T R[9], M[9];
    GS_(quat_to_rot)(q, R);
    for (int j = 0; j < 3; j++)
        for (int k = 0; k < 3; k++)
            M[j * 3 + k] = R[j * 3 + k] * GS_EXP(log_scale[k]);
    int o = 0;
    for (int i = 0; i < 3; i++)
        for (int j = i; j < 3; j++) {
            cov[o++] = M[i * 3] * M[j * 3] + M[i * 3 + 1] * M[j * 3 + 1] +
                       M[i * 3 + 2] * M[j * 3 + 2];
        }
}

/* dcov: (6,) dL/d(unique entries) -> dlog_scale (3,), dq (4,).
 * With G the symmetric full-matrix gradient (G_ii = dcov_ii, G_ij = dcov_ij / 2):
 *   dL/dM = 2 G M,  dL/ds_k = sum_j dM_jk R_jk,  dL/dR_jk = dM_jk s_k,
 *   dL/dlog s_k = s_k dL/ds_k. */
static inline SL_HD void GS_(cov3d_vjp)(const GS_T log_scale[3], const GS_T q[4],
                                        const GS_T dcov[6], GS_T dlog_scale[3], GS_T dq[4])
{
    GS_T R[9], M[9], s[3], G[9], dM[9], dR[9];
    GS_(quat_to_rot)(q, R);
    for (int k = 0; k < 3; k++)
        s[k] = GS_EXP(log_scale[k]);
    for (int j = 0; j < 3; j++)
        for (int k = 0; k < 3; k++)
            M[j * 3 + k] = R[j * 3 + k] * s[k];
    G[0] = dcov[0];     G[1] = dcov[1] / 2; G[2] = dcov[2] / 2;
    G[3] = G[1];        G[4] = dcov[3];     G[5] = dcov[4] / 2;
    G[6] = G[2];        G[7] = G[5];        G[8] = dcov[5];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++)
            dM[i * 3 + k] = 2 * (G[i * 3] * M[k] + G[i * 3 + 1] * M[3 + k] +
                                 G[i * 3 + 2] * M[6 + k]);
    for (int k = 0; k < 3; k++) {
        GS_T ds = 0;
        for (int j = 0; j < 3; j++) {
            ds += dM[j * 3 + k] * R[j * 3 + k];
            dR[j * 3 + k] = dM[j * 3 + k] * s[k];
        }
        dlog_scale[k] = ds * s[k];
    }
    GS_(quat_to_rot_vjp)(q, dR, dq);
}

/* ------------------------------------------------------------ projection of the mean */

/* Camera with world-to-camera rotation Wr (3, 3) row-major (its rows are the camera's
 * right, down and forward axes) and centre eye: pc = Wr (p - eye). Linear, so its VJP is
 * dp = Wr^T dpc (written inline by callers). */
static inline SL_HD void GS_(world_to_cam)(const GS_T Wr[9], const GS_T eye[3], const GS_T p[3],
                                           GS_T pc[3])
{
    GS_T d0 = p[0] - eye[0], d1 = p[1] - eye[1], d2 = p[2] - eye[2];
    for (int r = 0; r < 3; r++)
        pc[r] = Wr[r * 3] * d0 + Wr[r * 3 + 1] * d1 + Wr[r * 3 + 2] * d2;
}

/* Pinhole: u = fx x/z + cx, v = fy y/z + cy (pixel coordinates, x right, y down). */
static inline SL_HD void GS_(project)(const GS_T pc[3], GS_T fx, GS_T fy, GS_T cx, GS_T cy,
                                      GS_T uv[2])
{
    GS_T iz = 1 / pc[2];
    uv[0] = fx * pc[0] * iz + cx;
    uv[1] = fy * pc[1] * iz + cy;
}

/* duv (2,) -> dpc (3,):  du/dx = fx/z, du/dz = -fx x/z^2, dv/dy = fy/z, dv/dz = -fy y/z^2. */
static inline SL_HD void GS_(project_vjp)(const GS_T pc[3], GS_T fx, GS_T fy, const GS_T duv[2],
                                          GS_T dpc[3])
{
    GS_T iz = 1 / pc[2];
    dpc[0] = duv[0] * fx * iz;
    dpc[1] = duv[1] * fy * iz;
    dpc[2] = -(duv[0] * fx * pc[0] + duv[1] * fy * pc[1]) * iz * iz;
}

/* ------------------------------------------------------------ EWA: 2-D covariance */

/* The local affine approximation of the projection at pc (EWA splatting):
 *   J = [[fx/z, 0, -fx x'/z^2], [0, fy/z, -fy y'/z^2]]
 * with x' = z clamp(x/z, -lim_x, lim_x) (likewise y'): as in the reference rasterizer,
 * Gaussians far outside the frustum get the Jacobian of its border, which keeps J bounded.
 * cov2 = T Sigma T^T + 0.3 I with T = J Wr (2, 3); cov2: (3,) (xx, xy, yy). */
static inline SL_HD void GS_(cov2d)(const GS_T pc[3], const GS_T Wr[9], const GS_T cov3[6],
                                    GS_T fx, GS_T fy, GS_T lim_x, GS_T lim_y, GS_T cov2[3])
{
    GS_T z = pc[2], iz = 1 / z;
    GS_T tx = pc[0] * iz, ty = pc[1] * iz;
    tx = tx < -lim_x ? -lim_x : (tx > lim_x ? lim_x : tx);
    ty = ty < -lim_y ? -lim_y : (ty > lim_y ? lim_y : ty);
    GS_T J00 = fx * iz, J02 = -fx * tx * iz, J11 = fy * iz, J12 = -fy * ty * iz;
    GS_T T[6], S[9];
    for (int c = 0; c < 3; c++) {
        T[c] = J00 * Wr[c] + J02 * Wr[6 + c];
        T[3 + c] = J11 * Wr[3 + c] + J12 * Wr[6 + c];
    }
    S[0] = cov3[0]; S[1] = cov3[1]; S[2] = cov3[2];
    S[3] = cov3[1]; S[4] = cov3[3]; S[5] = cov3[4];
    S[6] = cov3[2]; S[7] = cov3[4]; S[8] = cov3[5];
    GS_T TS[6];   /* T S, (2, 3) */
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++)
            TS[r * 3 + c] = T[r * 3] * S[c] + T[r * 3 + 1] * S[3 + c] + T[r * 3 + 2] * S[6 + c];
    cov2[0] = TS[0] * T[0] + TS[1] * T[1] + TS[2] * T[2] + (GS_T)GS_DILATION;
    cov2[1] = TS[0] * T[3] + TS[1] * T[4] + TS[2] * T[5];
    cov2[2] = TS[3] * T[3] + TS[4] * T[4] + TS[5] * T[5] + (GS_T)GS_DILATION;
}

/* dcov2 (3,) -> dpc (3,), dcov3 (6,). With G2 the symmetric gradient of cov2:
 *   dL/dSigma = T^T G2 T,   dL/dT = 2 G2 T Sigma,   dL/dJ = dL/dT Wr^T,
 * then through J's entries (x' = x when unclamped; x' = +-lim_x z when clamped):
 *   dJ00/dz = -fx/z^2, dJ02/dx' = -fx/z^2, dJ02/dz = 2 fx x'/z^3 (same for y with fy). */
static inline SL_HD void GS_(cov2d_vjp)(const GS_T pc[3], const GS_T Wr[9], const GS_T cov3[6],
                                        GS_T fx, GS_T fy, GS_T lim_x, GS_T lim_y,
                                        const GS_T dcov2[3], GS_T dpc[3], GS_T dcov3[6])
{
    GS_T z = pc[2], iz = 1 / z;
    GS_T rx = pc[0] * iz, ry = pc[1] * iz;
    int cx = rx < -lim_x || rx > lim_x, cy = ry < -lim_y || ry > lim_y;
    GS_T tx = rx < -lim_x ? -lim_x : (rx > lim_x ? lim_x : rx);
    GS_T ty = ry < -lim_y ? -lim_y : (ry > lim_y ? lim_y : ry);
    GS_T xp = tx * z, yp = ty * z;   /* x', y' */
    GS_T J00 = fx * iz, J02 = -fx * xp * iz * iz, J11 = fy * iz, J12 = -fy * yp * iz * iz;
    GS_T T[6], S[9];
    for (int c = 0; c < 3; c++) {
        T[c] = J00 * Wr[c] + J02 * Wr[6 + c];
        T[3 + c] = J11 * Wr[3 + c] + J12 * Wr[6 + c];
    }
    S[0] = cov3[0]; S[1] = cov3[1]; S[2] = cov3[2];
    S[3] = cov3[1]; S[4] = cov3[3]; S[5] = cov3[4];
    S[6] = cov3[2]; S[7] = cov3[4]; S[8] = cov3[5];
    GS_T G[4] = { dcov2[0], dcov2[1] / 2, dcov2[1] / 2, dcov2[2] };
    /* GT = G2 T (2, 3); dSigma = T^T GT (3, 3). */
    GS_T GT[6];
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++)
            GT[r * 3 + c] = G[r * 2] * T[c] + G[r * 2 + 1] * T[3 + c];
    GS_T dS[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            dS[i * 3 + j] = T[i] * GT[j] + T[3 + i] * GT[3 + j];
    dcov3[0] = dS[0];
    dcov3[1] = dS[1] + dS[3];
    dcov3[2] = dS[2] + dS[6];
    dcov3[3] = dS[4];
    dcov3[4] = dS[5] + dS[7];
    dcov3[5] = dS[8];
    /* dT = 2 GT S (2, 3); dJ = dT Wr^T (2, 3). */
    GS_T dT[6], dJ[6];
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++)
            dT[r * 3 + c] = 2 * (GT[r * 3] * S[c] + GT[r * 3 + 1] * S[3 + c] +
                                 GT[r * 3 + 2] * S[6 + c]);
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < 3; k++)
            dJ[r * 3 + k] = dT[r * 3] * Wr[k * 3] + dT[r * 3 + 1] * Wr[k * 3 + 1] +
                            dT[r * 3 + 2] * Wr[k * 3 + 2];
    GS_T iz2 = iz * iz, iz3 = iz2 * iz;
    GS_T dxp = dJ[2] * (-fx * iz2), dyp = dJ[5] * (-fy * iz2);
    GS_T dz = dJ[0] * (-fx * iz2) + dJ[2] * (2 * fx * xp * iz3) + dJ[4] * (-fy * iz2) +
              dJ[5] * (2 * fy * yp * iz3);
    dpc[0] = cx ? 0 : dxp;
    dpc[1] = cy ? 0 : dyp;
    dz += cx ? dxp * tx : 0;   /* x' = tx z with tx fixed at the clamp */
    dz += cy ? dyp * ty : 0;
    dpc[2] = dz;
}

/* ------------------------------------------------------------ conic (inverse) */

/* conic = cov2^{-1} (unique entries); returns the determinant of cov2 (<= 0: invalid,
 * conic untouched). The blend evaluates A dx^2 + 2 B dx dy + C dy^2. */
static inline SL_HD GS_T GS_(conic)(const GS_T cov2[3], GS_T conic[3])
{
    GS_T det = cov2[0] * cov2[2] - cov2[1] * cov2[1];
    if (!(det > 0))
        return det;
    GS_T id = 1 / det;
    conic[0] = cov2[2] * id;
    conic[1] = -cov2[1] * id;
    conic[2] = cov2[0] * id;
    return det;
}

/* dconic (3,) -> dcov2 (3,): dL/dS = -A G A (A = conic matrix, G its symmetric gradient),
 * returned as unique entries (M00, 2 M01, M11). */
static inline SL_HD void GS_(conic_vjp)(const GS_T conic[3], const GS_T dconic[3], GS_T dcov2[3])
{
    GS_T a = conic[0], b = conic[1], c = conic[2];
    GS_T g0 = dconic[0], g1 = dconic[1] / 2, g2 = dconic[2];
    /* AG = A G */
    GS_T p00 = a * g0 + b * g1, p01 = a * g1 + b * g2;
    GS_T p10 = b * g0 + c * g1, p11 = b * g1 + c * g2;
    /* M = AG A */
    GS_T m00 = p00 * a + p01 * b, m01 = p00 * b + p01 * c, m11 = p10 * b + p11 * c;
    dcov2[0] = -m00;
    dcov2[1] = -2 * m01;
    dcov2[2] = -m11;
}

/* Opacity-aware screen extent: a pixel centre at d from the mean gets
 * alpha = op exp(-q/2) with q = d^T cov2^{-1} d >= |d|^2 / lambda_max, so alpha >= 1/255
 * needs q <= 2 ln(255 op), hence |d| <= sqrt(2 ln(255 op) lambda_max). Returns that radius
 * in pixels, or 0 when op <= 1/255 (no pixel can pass the skip test). */
static inline SL_HD GS_T GS_(extent)(const GS_T cov2[3], GS_T op)
{
    GS_T q = 2 * GS_LOG((GS_T)255 * op);
    if (!(q > 0))
        return 0;
    GS_T mid = (cov2[0] + cov2[2]) / 2;
    GS_T half = (cov2[0] - cov2[2]) / 2;
    GS_T lmax = mid + GS_SQRT(half * half + cov2[1] * cov2[1]);
    return GS_SQRT(q * lmax);
}

/* ------------------------------------------------------------ spherical harmonics */

/* Real SH basis up to `degree` (0..3) at the unit direction d, in the reference
 * implementation's sign convention; b: (16,), db: (16, 3) d b_k / d d (or NULL).
 * Entries above (degree+1)^2 are left untouched. */
static inline SL_HD void GS_(sh_basis)(int degree, const GS_T d[3], GS_T b[16], GS_T db[48])
{
    const GS_T C1 = (GS_T)0.4886025119029199;
    const GS_T C2[5] = { (GS_T)1.0925484305920792, (GS_T)-1.0925484305920792,
                         (GS_T)0.31539156525252005, (GS_T)-1.0925484305920792,
                         (GS_T)0.5462742152960396 };
    const GS_T C3[7] = { (GS_T)-0.5900435899266435, (GS_T)2.890611442640554,
                         (GS_T)-0.4570457994644658, (GS_T)0.3731763325901154,
                         (GS_T)-0.4570457994644658, (GS_T)1.445305721320277,
                         (GS_T)-0.5900435899266435 };
    GS_T x = d[0], y = d[1], z = d[2];
    b[0] = (GS_T)GS_SH_C0;
    if (db)
        db[0] = db[1] = db[2] = 0;
    if (degree < 1)
        return;
    b[1] = -C1 * y; b[2] = C1 * z; b[3] = -C1 * x;
    if (db) {
        db[3] = 0;   db[4] = -C1; db[5] = 0;
        db[6] = 0;   db[7] = 0;   db[8] = C1;
        db[9] = -C1; db[10] = 0;  db[11] = 0;
    }
    if (degree < 2)
        return;
    GS_T xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
    b[4] = C2[0] * xy;
    b[5] = C2[1] * yz;
    b[6] = C2[2] * (2 * zz - xx - yy);
    b[7] = C2[3] * xz;
    b[8] = C2[4] * (xx - yy);
    if (db) {
        db[12] = C2[0] * y;      db[13] = C2[0] * x;      db[14] = 0;
        db[15] = 0;              db[16] = C2[1] * z;      db[17] = C2[1] * y;
        db[18] = -2 * C2[2] * x; db[19] = -2 * C2[2] * y; db[20] = 4 * C2[2] * z;
        db[21] = C2[3] * z;      db[22] = 0;              db[23] = C2[3] * x;
        db[24] = 2 * C2[4] * x;  db[25] = -2 * C2[4] * y; db[26] = 0;
    }
    if (degree < 3)
        return;
    b[9] = C3[0] * y * (3 * xx - yy);
    b[10] = C3[1] * xy * z;
    b[11] = C3[2] * y * (4 * zz - xx - yy);
    b[12] = C3[3] * z * (2 * zz - 3 * xx - 3 * yy);
    b[13] = C3[4] * x * (4 * zz - xx - yy);
    b[14] = C3[5] * z * (xx - yy);
    b[15] = C3[6] * x * (xx - 3 * yy);
    if (db) {
        db[27] = 6 * C3[0] * xy;  db[28] = C3[0] * (3 * xx - 3 * yy);     db[29] = 0;
        db[30] = C3[1] * yz;      db[31] = C3[1] * xz;                    db[32] = C3[1] * xy;
        db[33] = -2 * C3[2] * xy; db[34] = C3[2] * (4 * zz - xx - 3 * yy); db[35] = 8 * C3[2] * yz;
        db[36] = -6 * C3[3] * xz; db[37] = -6 * C3[3] * yz;
        db[38] = C3[3] * (6 * zz - 3 * xx - 3 * yy);
        db[39] = C3[4] * (4 * zz - 3 * xx - yy); db[40] = -2 * C3[4] * xy; db[41] = 8 * C3[4] * xz;
        db[42] = 2 * C3[5] * xz;  db[43] = -2 * C3[5] * yz;               db[44] = C3[5] * (xx - yy);
        db[45] = C3[6] * (3 * xx - 3 * yy); db[46] = -6 * C3[6] * xy;     db[47] = 0;
    }
}

/* Colour of a Gaussian seen from cam_pos: rgb = max(0, 0.5 + sum_k b_k(dir) sh_k) with
 * dir = (mean - cam_pos)/|mean - cam_pos|. sh_dc: (3,); sh_rest: (K-1, 3) coefficients
 * 1..K-1 (K = (degree+1)^2 of them are used; only degree 0 needs no sh_rest). */
static inline SL_HD void GS_(sh_color)(int degree, const GS_T mean[3], const GS_T cam_pos[3],
                                       const GS_T *sh_dc, const GS_T *sh_rest, GS_T rgb[3])
{
    GS_T d[3] = { mean[0] - cam_pos[0], mean[1] - cam_pos[1], mean[2] - cam_pos[2] };
    GS_T n = GS_SQRT(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    GS_T in = n > 0 ? 1 / n : 0;
    d[0] *= in; d[1] *= in; d[2] *= in;
    GS_T b[16];
    GS_(sh_basis)(degree, d, b, 0);
    int K = (degree + 1) * (degree + 1);
    for (int c = 0; c < 3; c++) {
        GS_T s = b[0] * sh_dc[c];
        for (int k = 1; k < K; k++)
            s += b[k] * sh_rest[(k - 1) * 3 + c];
        s += (GS_T)0.5;
        rgb[c] = s > 0 ? s : 0;
    }
}

/* drgb (3,) -> dsh_dc (3,), dsh_rest ((K-1), 3) (overwritten up to K-1), dmean (3,).
 * Clamped channels pass no gradient. dL/dsh_k = b_k dL/drgb;
 * dL/ddir = sum_k (sum_c sh_kc dL/drgb_c) db_k/ddir; then through the normalisation. */
static inline SL_HD void GS_(sh_color_vjp)(int degree, const GS_T mean[3], const GS_T cam_pos[3],
                                           const GS_T *sh_dc, const GS_T *sh_rest,
                                           const GS_T drgb_in[3], GS_T *dsh_dc, GS_T *dsh_rest,
                                           GS_T dmean[3])
{
    GS_T d[3] = { mean[0] - cam_pos[0], mean[1] - cam_pos[1], mean[2] - cam_pos[2] };
    GS_T n = GS_SQRT(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    GS_T in = n > 0 ? 1 / n : 0;
    d[0] *= in; d[1] *= in; d[2] *= in;
    GS_T b[16], db[48];
    GS_(sh_basis)(degree, d, b, db);
    int K = (degree + 1) * (degree + 1);
    GS_T drgb[3];
    for (int c = 0; c < 3; c++) {
        GS_T s = b[0] * sh_dc[c];
        for (int k = 1; k < K; k++)
            s += b[k] * sh_rest[(k - 1) * 3 + c];
        drgb[c] = s + (GS_T)0.5 > 0 ? drgb_in[c] : 0;
    }
    GS_T ddir[3] = { 0, 0, 0 };
    for (int c = 0; c < 3; c++)
        dsh_dc[c] = b[0] * drgb[c];
    for (int k = 1; k < K; k++) {
        GS_T gk = 0;
        for (int c = 0; c < 3; c++) {
            dsh_rest[(k - 1) * 3 + c] = b[k] * drgb[c];
            gk += sh_rest[(k - 1) * 3 + c] * drgb[c];
        }
        ddir[0] += gk * db[k * 3];
        ddir[1] += gk * db[k * 3 + 1];
        ddir[2] += gk * db[k * 3 + 2];
    }
    GS_T dot = d[0] * ddir[0] + d[1] * ddir[1] + d[2] * ddir[2];
    for (int i = 0; i < 3; i++)
        dmean[i] = (ddir[i] - d[i] * dot) * in;
}

/* ------------------------------------------------------------ normal */

/* The Gaussian's shortest axis (column argmin_k s_k of R; the lowest k on ties), oriented
 * toward the camera (n . (eye - mean) >= 0). Returns the axis index and writes *sign. The
 * choice of axis and the sign are piecewise constant: the VJP is dR[:, k] = sign dn. */
static inline SL_HD int GS_(normal)(const GS_T R[9], const GS_T log_scale[3], const GS_T mean[3],
                                    const GS_T eye[3], GS_T n[3], GS_T *sign)
{
    int k = 0;
    if (log_scale[1] < log_scale[k]) k = 1;
    if (log_scale[2] < log_scale[k]) k = 2;
    GS_T a0 = R[k], a1 = R[3 + k], a2 = R[6 + k];
    GS_T dot = a0 * (eye[0] - mean[0]) + a1 * (eye[1] - mean[1]) + a2 * (eye[2] - mean[2]);
    GS_T s = dot < 0 ? -1 : 1;
    n[0] = s * a0; n[1] = s * a1; n[2] = s * a2;
    *sign = s;
    return k;
}

/* ------------------------------------------------------------ alpha and blending */

/* alpha of a Gaussian at the pixel centre (px, py):
 *   power = -0.5 (A dx^2 + C dy^2) - B dx dy,  d = (px, py) - uv,
 *   alpha = min(0.99, op exp(power)).  *g receives exp(power). power > 0 (impossible for
 *   a valid conic, kept as a guard) gives 0. */
static inline SL_HD GS_T GS_(alpha)(const GS_T conic[3], const GS_T uv[2], GS_T op, GS_T px,
                                    GS_T py, GS_T *g)
{
    GS_T dx = px - uv[0], dy = py - uv[1];
    GS_T power = -(GS_T)0.5 * (conic[0] * dx * dx + conic[2] * dy * dy) - conic[1] * dx * dy;
    if (power > 0) {
        *g = 0;
        return 0;
    }
    *g = GS_EXP(power);
    GS_T a = op * *g;
    return a < (GS_T)GS_ALPHA_MAX ? a : (GS_T)GS_ALPHA_MAX;
}

/* dalpha -> dconic (3,), duv (2,), dop: ADDED to the outputs (the rasterizer sums them over
 * pixels; the one accumulating VJP here, named so). Zero where alpha was clamped at 0.99.
 *   dop = g dalpha,  dpower = op g dalpha,
 *   dA = -dx^2/2 dpower, dB = -dx dy dpower, dC = -dy^2/2 dpower,
 *   d(dx) = -(A dx + B dy) dpower,  du = -d(dx)  (same for v). */
static inline SL_HD void GS_(alpha_vjp_acc)(const GS_T conic[3], const GS_T uv[2], GS_T op,
                                            GS_T px, GS_T py, GS_T g, GS_T dalpha,
                                            GS_T dconic[3], GS_T duv[2], GS_T *dop)
{
    if (op * g >= (GS_T)GS_ALPHA_MAX)
        return;
    GS_T dx = px - uv[0], dy = py - uv[1];
    GS_T dpower = op * g * dalpha;
    *dop += g * dalpha;
    dconic[0] += -(GS_T)0.5 * dx * dx * dpower;
    dconic[1] += -dx * dy * dpower;
    dconic[2] += -(GS_T)0.5 * dy * dy * dpower;
    duv[0] += (conic[0] * dx + conic[1] * dy) * dpower;
    duv[1] += (conic[2] * dy + conic[1] * dx) * dpower;
}

/* Front-to-back compositing of one Gaussian with channels feat (GS_NCH,) and alpha:
 *   acc += feat alpha T,  T *= (1 - alpha).
 * Returns 0 when skipped (alpha < 1/255: nothing changes), 1 when added, 2 when the pixel
 * is done: T (1 - alpha) would fall below 1e-4, and this Gaussian is NOT added (the
 * reference rasterizer's rule). */
static inline SL_HD int GS_(blend)(GS_T alpha, const GS_T *feat, GS_T *T, GS_T *acc)
{
    if (alpha < (GS_T)GS_ALPHA_MIN)
        return 0;
    GS_T t_next = *T * (1 - alpha);
    if (t_next < (GS_T)GS_T_MIN)
        return 2;
    GS_T w = alpha * *T;
    for (int c = 0; c < GS_NCH; c++)
        acc[c] += feat[c] * w;
    *T = t_next;
    return 1;
}

/* Back-to-front VJP of the compositing, for the contributors of one pixel in reverse order.
 * Output o_c = sum_i f_ic a_i T_i (+ T_final bg_c on the rgb channels), T_i = prod_{j<i} (1 - a_j).
 * With rec_i = sum_{j>i} f_j a_j prod_{i<k<j} (1 - a_k) (what lies behind i, seen from
 * just behind it) the sum behind i is T_i (1 - a_i) rec_i, so
 *   do/da_i = T_i (f_i - rec_i) - T_final bg / (1 - a_i),    do/df_i = a_i T_i.
 * State: *T holds T_{i+1} on entry (T_final for the last contributor) and T_i on return;
 * rec (GS_NCH,) holds rec_i on entry (0 for the last) and rec_{i-1} on return.
 * dout: (GS_NCH,) dL/do; bg_term = T_final sum_c bg_c dL/do_c. dfeat (GS_NCH,) overwritten;
 * returns dL/da_i. */
static inline SL_HD GS_T GS_(blend_vjp)(GS_T alpha, const GS_T *feat, const GS_T *dout,
                                        GS_T bg_term, GS_T *T, GS_T *rec, GS_T *dfeat)
{
    GS_T one_m = 1 - alpha;
    GS_T Ti = *T / one_m;
    GS_T w = alpha * Ti;
    GS_T da = 0;
    for (int c = 0; c < GS_NCH; c++) {
        dfeat[c] = w * dout[c];
        da += (feat[c] - rec[c]) * dout[c];
        rec[c] = alpha * feat[c] + one_m * rec[c];
    }
    *T = Ti;
    return da * Ti - bg_term / one_m;
}

#undef GS_T
#undef GS_
#undef GS_SQRT
#undef GS_EXP
#undef GS_LOG
#undef GS_FABS
#endif
