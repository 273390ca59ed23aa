/* steinlab/device.h — one source for CPU and CUDA device math (architecture.md, "CPU and
 * CUDA from one source").
 *
 * SL_HD marks a function that must compile both as plain C (the CPU path, in OpenMP loops)
 * and as CUDA __host__ __device__ code (the GPU path, in kernels). Per-element math lives in
 * `static inline SL_HD` functions in headers that both paths include. */
#ifndef STEINLAB_DEVICE_H
#define STEINLAB_DEVICE_H

#ifdef __CUDACC__
#define SL_HD __host__ __device__
#else
#define SL_HD
#endif

#endif
