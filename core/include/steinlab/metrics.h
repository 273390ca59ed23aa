/* steinlab/metrics.h — image and geometry metrics against ground truth (/eval series).
 * Images are (H, W, C) row-major floats in [0, 1]. */
#ifndef STEINLAB_METRICS_H
#define STEINLAB_METRICS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Structural similarity (Wang et al. 2004) with an 11x11 Gaussian window (sigma 1.5;
 * smaller odd window, same sigma, when the image is smaller), C1 = 0.01^2, C2 = 0.03^2 for
 * data range 1, over every window position fully inside the image, averaged over positions
 * and channels. 1 for identical images. Computed in double, fixed order. */
double sl_ssim(const float *a, const float *b, int height, int width, int channels);

/* Mean |depth_a - depth_b| over the pixels where both masks are 1 (mask: (H, W) in {0,1});
 * NaN when there is no such pixel. */
double sl_masked_depth_l1(const float *depth_a, const float *mask_a, const float *depth_b,
                          const float *mask_b, size_t pixels);

/* Intersection over union of two binary masks (values > 0.5 count as 1); 1 when both are
 * empty. */
double sl_mask_iou(const float *mask_a, const float *mask_b, size_t pixels);

#ifdef __cplusplus
}
#endif
#endif
