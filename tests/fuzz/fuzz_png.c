/* tests/fuzz/fuzz_png.c — libFuzzer target: sl_png_decode_rgb on arbitrary bytes (the
 * path every target image and reference render takes in).
 *
 * A PNG's chunks carry CRCs, and a mutated chunk almost never keeps a valid one, so the
 * fuzzer would mostly test libpng's CRC check. Each input is therefore decoded twice: as
 * given (bad CRCs and all), and, when that differs, with every complete chunk's CRC
 * recomputed, so mutations of IHDR, PLTE, tRNS and IDAT contents reach the decoder.
 *
 * On success the image must have a size within the documented limits and every value in
 * [0, 1]; every value is read (AddressSanitizer sees a short buffer). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "steinlab/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Rewrites the CRC of every complete chunk after the 8-byte signature; returns whether
 * anything changed. A chunk is 4 bytes length, 4 bytes type, data, 4 bytes CRC over
 * type and data. */
static int fix_crcs(uint8_t *png, size_t size)
{
    int changed = 0;
    size_t at = 8;
    while (at + 12 <= size) {
        uint32_t len = be32(png + at);
        if (len > size - at - 12)
            break;
        uint8_t *crc_at = png + at + 8 + len;
        uLong crc = crc32(0L, png + at + 4, (uInt)len + 4);
        uint8_t want[4] = { (uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8),
                            (uint8_t)crc };
        if (memcmp(crc_at, want, 4) != 0) {
            memcpy(crc_at, want, 4);
            changed = 1;
        }
        at += 12 + (size_t)len;
    }
    return changed;
}

static void decode_and_check(const uint8_t *data, size_t size)
{
    float *rgb = NULL;
    int w = 0, h = 0;
    sl_error err = { { 0 } };
    if (sl_png_decode_rgb(data, size, &rgb, &w, &h, &err) != SL_OK) {
        if (rgb)
            abort();  /* a failed decode must leave *rgb NULL */
        return;
    }
    if (!rgb || w < 1 || h < 1 || w > 16384 || h > 16384)
        abort();
    size_t n = (size_t)w * (size_t)h * 3;
    for (size_t i = 0; i < n; i++)
        if (!(rgb[i] >= 0.0f && rgb[i] <= 1.0f))
            abort();
    free(rgb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode_and_check(data, size);
    if (size < 8 + 12)
        return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed)
        return 0;
    memcpy(fixed, data, size);
    if (fix_crcs(fixed, size))
        decode_and_check(fixed, size);
    free(fixed);
    return 0;
}
