/* plugins/representations/gaussians/ply.h — Gaussian splats in the PLY layout the common
 * 3DGS viewers read and write.
 *
 * File: binary_little_endian 1.0, one element `vertex` with float properties
 *     x y z nx ny nz f_dc_0 f_dc_1 f_dc_2 f_rest_0 .. f_rest_{R-1} opacity
 *     scale_0 scale_1 scale_2 rot_0 rot_1 rot_2 rot_3
 * with R = 3 ((d+1)^2 - 1) for SH degree d (0, 9, 24 or 45 f_rest), stored channel-major:
 * f_rest_{c (K-1) + k} is coefficient k+1 of channel c (K = (d+1)^2). opacity is the logit
 * (opacity = sigmoid), scale_i the log of the scale (scale = exp), rot the quaternion
 * (w, x, y, z), unnormalised. Colour = 0.5 + C0 f_dc (+ the higher bands), clamped at 0.
 * The normals are written as 0 and ignored on reading.
 *
 * Reading treats the file as untrusted: the header grammar is checked line by line, element
 * counts are parsed with overflow checks, only fixed-size scalar properties are accepted
 * (any of the PLY scalar types; the splat properties must be float or double), other
 * elements and unknown vertex properties are skipped, the data must have exactly the size
 * the header declares, and every value read must be finite. Errors are SL_ERR_FORMAT (or
 * SL_ERR_IO, SL_ERR_NOMEM) with a one-line reason starting with "ply: ". */
#ifndef GS_PLY_H
#define GS_PLY_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/status.h"

enum { GS_PLY_MAX_HEADER = 65536 };

typedef struct gs_ply_data {
    size_t n;            /* Gaussians */
    int sh_degree;       /* 0..3 */
    float *means;        /* (n, 3) */
    float *sh_dc;        /* (n, 3) */
    float *sh_rest;      /* (n, K-1, 3) coefficient-major (steinlab's layout); NULL if K = 1 */
    float *opacity;      /* (n,) logits */
    float *log_scales;   /* (n, 3) */
    float *quats;        /* (n, 4) w, x, y, z */
} gs_ply_data;

/* Parses a whole file held in memory. On success *out owns its arrays (gs_ply_free); on
 * failure *out is zeroed and nothing is allocated. */
sl_status gs_ply_parse(const uint8_t *buf, size_t size, gs_ply_data *out, sl_error *err);
sl_status gs_ply_read(const char *path, gs_ply_data *out, sl_error *err);

/* Encodes into a malloc'd buffer (*buf, *size; free with free()). */
sl_status gs_ply_encode(const gs_ply_data *in, uint8_t **buf, size_t *size, sl_error *err);
sl_status gs_ply_write(const char *path, const gs_ply_data *in, sl_error *err);

void gs_ply_free(gs_ply_data *d);

#endif
