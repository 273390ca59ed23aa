// core/cuda_info.cu — see cuda_info.h.
#include <cuda_runtime.h>
#include <stdio.h>

#include "cuda_info.h"

int sl_cuda_probe(int *runtime_version, char *name, size_t name_size)
{
    *runtime_version = 0;
    if (name_size)
        name[0] = 0;
    cudaRuntimeGetVersion(runtime_version);
    int count = 0;
    // No driver or no device is an ordinary answer here, not an error.
    if (cudaGetDeviceCount(&count) != cudaSuccess)
        return 0;
    cudaDeviceProp prop;
    if (count > 0 && name_size && cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        snprintf(name, name_size, "%s", prop.name);
    return count;
}
