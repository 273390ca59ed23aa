/* tests/support/fd_check.c — see fd_check.h. */
#include "fd_check.h"

#include <check.h>
#include <math.h>
#include <stdint.h>

void fd_check(const char *name, double (*loss)(void *ctx), void *ctx, float *t, const float *g,
              size_t n, const fd_options *o)
{
    double gmax = 0.0;
    for (size_t i = 0; i < n; i++)
        gmax = fmax(gmax, fabs(g[i]));
    ck_assert_msg(gmax >= o->gmin, "%s: gradient too small to check (max |g| = %g)", name, gmax);
    uint64_t s = 0x9E3779B97F4A7C15ull ^ n;
    const size_t picks = n < o->picks ? n : o->picks;
    for (size_t q = 0; q < picks; q++) {
        size_t i = q;
        if (n > o->picks) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            i = (size_t)(s >> 33) % n;
        }
        const float keep = t[i];
        t[i] = keep + (float)o->h;
        const double lp = loss(ctx);
        t[i] = keep - (float)o->h;
        const double lm = loss(ctx);
        t[i] = keep;
        /* the step actually taken, after rounding to float */
        const double step = (double)(keep + (float)o->h) - (double)(keep - (float)o->h);
        const double fd = (lp - lm) / step;
        const double tol = o->atol_rel * gmax + o->rtol * fabs(g[i]);
        ck_assert_msg(fabs(fd - g[i]) <= tol, "%s[%zu]: analytic %.6g, finite difference %.6g "
                      "(tol %.3g, max|g| %.3g)", name, i, (double)g[i], fd, tol, gmax);
    }
}
