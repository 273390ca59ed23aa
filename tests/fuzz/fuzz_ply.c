/* tests/fuzz/fuzz_ply.c — libFuzzer target: gs_ply_parse on arbitrary bytes (the path every
 * `init: ply` spec and `steinlab render --ply` file takes in).
 *
 * On success every value must be finite, the count consistent with the input size (each
 * Gaussian needs at least 14 floats of data), and encoding the result and parsing it again
 * must give the same bits (the parser and the writer agree). A failure must leave the
 * output empty. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int finite_all(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(x[i] - x[i] == 0.0f))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gs_ply_data d, e;
    sl_error err = { { 0 } };
    if (gs_ply_parse(data, size, &d, &err) != SL_OK) {
        if (d.n || d.means || d.sh_dc || d.sh_rest || d.opacity || d.log_scales || d.quats)
            abort();
        return 0;
    }
    size_t n = d.n, K1 = (size_t)((d.sh_degree + 1) * (d.sh_degree + 1) - 1);
    if (d.sh_degree < 0 || d.sh_degree > 3 || n * 14 * 4 > size)
        abort();
    if (!finite_all(d.means, n * 3) || !finite_all(d.sh_dc, n * 3) ||
        !finite_all(d.opacity, n) || !finite_all(d.log_scales, n * 3) ||
        !finite_all(d.quats, n * 4) || (K1 && !finite_all(d.sh_rest, n * K1 * 3)))
        abort();
    uint8_t *buf;
    size_t bsize;
    if (gs_ply_encode(&d, &buf, &bsize, &err) != SL_OK)
        abort();
    if (gs_ply_parse(buf, bsize, &e, &err) != SL_OK)
        abort();
    if (e.n != n || e.sh_degree != d.sh_degree ||
        memcmp(e.means, d.means, n * 12) || memcmp(e.sh_dc, d.sh_dc, n * 12) ||
        memcmp(e.opacity, d.opacity, n * 4) || memcmp(e.log_scales, d.log_scales, n * 12) ||
        memcmp(e.quats, d.quats, n * 16) || (K1 && memcmp(e.sh_rest, d.sh_rest, n * K1 * 12)))
        abort();
    free(buf);
    gs_ply_free(&e);
    gs_ply_free(&d);
    return 0;
}
