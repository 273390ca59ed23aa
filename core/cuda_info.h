/* core/cuda_info.h — what the CUDA runtime sees (only in builds with the cuda option). */
#ifndef STEINLAB_CORE_CUDA_INFO_H
#define STEINLAB_CORE_CUDA_INFO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices (0 when the driver or a device is missing); the runtime version
 * (e.g. 13000) and the first device's name into `name` (empty when there is none). */
int sl_cuda_probe(int *runtime_version, char *name, size_t name_size);

#ifdef __cplusplus
}
#endif
#endif
