/* steinlab/device.h — one spelling for functions that compile both as C and as CUDA.
 *
 * Per-element math lives in `static inline SL_HD` functions in headers: the CPU path calls
 * them from OpenMP loops, a CUDA kernel calls the same functions (architecture.md, "CPU
 * and CUDA from one source"). Under nvcc SL_HD marks them __host__ __device__. */
#ifndef STEINLAB_DEVICE_H
#define STEINLAB_DEVICE_H

#ifdef __CUDACC__
#define SL_HD __host__ __device__
#else
#define SL_HD
#endif

#endif
