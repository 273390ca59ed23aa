/* steinlab/image.h — PNG input/output and image resampling with its adjoint.
 *
 * Images are float, row-major (H, W, C), RGB in [0, 1] unless stated otherwise. */
#ifndef STEINLAB_IMAGE_H
#define STEINLAB_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads a PNG (any bit depth, palette, grey or RGB, with or without alpha; alpha is
 * ignored) into newly malloc'd float RGB (H, W, 3) in [0, 1]; 16-bit channels are
 * scaled to [0, 1] at full precision.
 * Malformed or truncated files fail with SL_ERR_FORMAT and a reason; size limits:
 * width, height <= 16384. The caller frees *rgb with free(). */
sl_status sl_png_read_rgb(const char *path, float **rgb, int *width, int *height,
                          sl_error *err);

/* Same, from a memory buffer (used by tests and the fuzz target). */
sl_status sl_png_decode_rgb(const uint8_t *data, size_t size, float **rgb, int *width,
                            int *height, sl_error *err);

/* Writes 8-bit RGB (H, W, 3). */
sl_status sl_png_write_rgb8(const char *path, const uint8_t *rgb, int width, int height,
                            sl_error *err);

/* Float [0,1] -> uint8 with rounding and clamping; n elements. */
void sl_image_to_u8(const float *in, size_t n, uint8_t *out);

/* Bilinear resampling with pixel centres aligned (the (j + 0.5) convention, edges
 * clamped), and when downsampling by more than 2x, averaged over the source footprint
 * (area) so no source pixel is skipped. A linear map A: (hi, wi, c) -> (ho, wo, c).
 * sl_resample computes out = A in (overwrite); sl_resample_adjoint computes
 * d_in += A^T d_out (accumulate). Equal sizes give the identity. */
void sl_resample(const float *in, int hi, int wi, int c, float *out, int ho, int wo);
void sl_resample_adjoint(const float *d_out, int ho, int wo, int c, float *d_in, int hi,
                         int wi);

/* PSNR in dB between two images of n values in [0, 1] (peak 1). Infinity when equal. */
double sl_image_psnr(const float *a, const float *b, size_t n);

#ifdef __cplusplus
}
#endif
#endif
