/* steinlab/thread_scratch.h — scratch memory for the threads of an OpenMP loop, allocated
 * before the parallel region (an allocation failure is an error before any work, not a
 * flag raised inside the region):
 *
 *     float *scratch = sl_thread_scratch_alloc(n);      // n floats for each thread
 *     if (!scratch)
 *         return sl_error_set(err, SL_ERR_NOMEM, ...);
 *     #pragma omp parallel for
 *     for (...) {
 *         float *mine = sl_thread_scratch(scratch, n);
 *         ...
 *     }
 *     free(scratch);
 *
 * One block per thread of the next parallel region (omp_get_max_threads()), each rounded up
 * to whole 64-byte lines so that no two threads write the same line. Without OpenMP: one
 * block. */
#ifndef STEINLAB_THREAD_SCRATCH_H
#define STEINLAB_THREAD_SCRATCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Floats between the starts of two threads' blocks. */
static inline size_t sl_thread_scratch_stride(size_t n)
{
    return n ? (n + 15) / 16 * 16 : 16;
}

/* Blocks of n floats for every thread of the next parallel region; free() it. NULL when out
 * of memory. */
static inline float *sl_thread_scratch_alloc(size_t n)
{
#ifdef _OPENMP
    size_t threads = (size_t)omp_get_max_threads();
#else
    size_t threads = 1;
#endif
    size_t stride = sl_thread_scratch_stride(n);
    if (stride > SIZE_MAX / sizeof(float) / threads)
        return NULL;
    return aligned_alloc(64, stride * threads * sizeof(float));
}

/* The calling thread's block (inside the parallel region). */
static inline float *sl_thread_scratch(float *scratch, size_t n)
{
#ifdef _OPENMP
    size_t me = (size_t)omp_get_thread_num();
#else
    size_t me = 0;
#endif
    return scratch + me * sl_thread_scratch_stride(n);
}

#endif
