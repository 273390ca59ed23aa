/* tests/support/fd_check.h — a hand-written gradient against central finite differences of a
 * scalar loss computed in double from float forward passes (tests/test_nn.c explains the
 * tolerances). */
#ifndef STEINLAB_TEST_FD_CHECK_H
#define STEINLAB_TEST_FD_CHECK_H

#include <stddef.h>

typedef struct fd_options {
    size_t picks;      /* elements checked: all when n <= picks, else picks fixed pseudo-random ones */
    double h;          /* the step, applied in float (the step actually taken divides) */
    double atol_rel;   /* |fd - g| <= atol_rel max|g| + rtol |g| */
    double rtol;
    double gmin;       /* max|g| must reach it: no check passes on a vanishing gradient */
} fd_options;

/* Checks g (n,) = dL/dt, L = loss(ctx), by perturbing elements of t (restored after); fails
 * the Check test with `name`, the element and both values. */
void fd_check(const char *name, double (*loss)(void *ctx), void *ctx, float *t, const float *g,
              size_t n, const fd_options *o);

#endif
