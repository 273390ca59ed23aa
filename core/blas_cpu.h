/* core/blas_cpu.h — which OpenBLAS kernels this process runs.
 *
 * OpenBLAS picks its kernels from the CPU when the library loads, unless the environment
 * variable OPENBLAS_CORETYPE names a set (e.g. Haswell: AVX2 only, on a CPU that has
 * AVX-512). Different kernels round differently, so results are bit-identical only for the
 * same kernels: runs record the name (log attribute blas_core, `steinlab version`). */
#ifndef STEINLAB_BLAS_CPU_H
#define STEINLAB_BLAS_CPU_H

/* OpenBLAS's name of the kernels in use ("Haswell", "SkylakeX", "Cooperlake", ...). */
const char *sl_blas_core(void);

#endif
