/* core/blas_cpu.c — see blas_cpu.h. */
#include "blas_cpu.h"

#include <cblas.h>

const char *sl_blas_core(void)
{
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}
