/* core/image_io.c — PNG reading and writing through libpng, and small image helpers
 * (steinlab/image.h).
 *
 * Untrusted input. libpng reports errors by calling an error function that must not
 * return; ours records the message and longjmps back to the setjmp in decode(), which
 * frees what was allocated and returns SL_ERR_FORMAT. Every object that decode() changes
 * after setjmp and reads after the jump is volatile (C11 7.13.2.1). Before any large
 * allocation we check that the declared size is plausible: width and height <= 16384
 * (png_set_user_limits, so libpng itself rejects larger IHDRs), and the raw image cannot
 * exceed what deflate can expand the input to (at most 1032:1), so a 60-byte file cannot
 * make us allocate gigabytes.
 *
 * Conversions (alpha is ignored, no gamma correction: values are taken as stored):
 *   palette        -> expanded to RGB by libpng (tRNS may add an alpha channel; dropped)
 *   grey 1/2/4-bit -> scaled to 8 bits by libpng (e.g. 1-bit 1 -> 255)
 *   grey, grey+A   -> R = G = B = grey
 *   RGB, RGBA      -> RGB
 *   16-bit         -> kept at 16 bits and divided by 65535 (full precision); 8-bit by 255.
 * Interlaced images are de-interlaced by libpng. */
#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steinlab/image.h"

enum {
    PNG_MAX_SIDE = 16384,
    /* Deflate's largest expansion: a 258-byte match coded in 2 bits. */
    DEFLATE_MAX_RATIO = 1032
};

/* ---- reading ---- */

typedef struct png_errctx {
    char msg[256];       /* the error that stopped libpng */
    char warning[256];   /* the last warning: often the real reason behind the error */
} png_errctx;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_errctx *ctx = png_get_error_ptr(png);
    if (ctx)
        snprintf(ctx->msg, sizeof ctx->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

/* Warnings (e.g. unknown ancillary chunks, bad ancillary CRCs) are not failures; keep
 * them off stderr, but remember the last one: libpng explains a rejected IHDR ("Image
 * width exceeds user limit") in warnings before failing with "Invalid IHDR data". */
static void on_png_warning(png_structp png, png_const_charp msg)
{
    png_errctx *ctx = png_get_error_ptr(png);
    if (ctx)
        snprintf(ctx->warning, sizeof ctx->warning, "%s", msg ? msg : "");
}

typedef struct mem_source {
    const uint8_t *data;   /* (size,) */
    size_t size, pos;
} mem_source;

/* libpng read callback over a memory buffer; asking for bytes past the end is an error
 * (a truncated file), never an out-of-bounds read. */
static void mem_read(png_structp png, png_bytep out, size_t len)
{
    mem_source *src = png_get_io_ptr(png);
    if (len > src->size - src->pos)
        png_error(png, "unexpected end of data (truncated PNG)");
    memcpy(out, src->data + src->pos, len);
    src->pos += len;
}

/* Decodes a PNG from either a memory source (mem != NULL) or a stream (fp), whose total
 * size is `size` bytes. */
static sl_status decode(mem_source *mem, FILE *fp, size_t size, float **rgb, int *width,
                        int *height, sl_error *err)
{
    /* Written by the callbacks, read after the longjmp; its address is passed to libpng,
     * so it lives in memory and is not cached in registers across the jump. */
    png_errctx ectx = {{0}, {0}};
    png_structp png = NULL;
    png_infop info = NULL;
    uint8_t *volatile pixels = NULL;      /* (H, rowbytes) decoded rows */
    png_bytep *volatile rows = NULL;      /* (H,) pointers into pixels */
    float *volatile out = NULL;           /* (H, W, 3) */

    uint8_t sig[8];
    if (size < sizeof sig)
        return sl_error_set(err, SL_ERR_FORMAT, "not a PNG file (only %zu bytes)", size);
    if (mem) {
        memcpy(sig, mem->data, sizeof sig);
        mem->pos = sizeof sig;
    } else if (fread(sig, 1, sizeof sig, fp) != sizeof sig) {
        return sl_error_set(err, SL_ERR_FORMAT, "not a PNG file (cannot read signature)");
    }
    if (png_sig_cmp(sig, 0, sizeof sig) != 0)
        return sl_error_set(err, SL_ERR_FORMAT, "not a PNG file (bad signature)");

    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ectx, on_png_error, on_png_warning);
    if (png)
        info = png_create_info_struct(png);
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return sl_error_set(err, SL_ERR_NOMEM, "PNG: cannot create the libpng decoder");
    }

    if (setjmp(png_jmpbuf(png))) {
        /* Any libpng error in the calls below lands here. */
        free(out);
        free(rows);
        free(pixels);
        png_destroy_read_struct(&png, &info, NULL);
        if (ectx.warning[0])
            return sl_error_set(err, SL_ERR_FORMAT, "malformed PNG: %s (%s)", ectx.msg,
                                ectx.warning);
        return sl_error_set(err, SL_ERR_FORMAT, "malformed PNG: %s", ectx.msg);
    }

    if (mem)
        png_set_read_fn(png, mem, mem_read);
    else
        png_init_io(png, fp);
    png_set_sig_bytes(png, sizeof sig);
    png_set_user_limits(png, PNG_MAX_SIDE, PNG_MAX_SIDE);
    /* Bound the memory libpng may spend on ancillary chunks (text, ICC profiles). */
    png_set_chunk_malloc_max(png, 8u << 20);
    png_set_chunk_cache_max(png, 1000);
    /* Skip every ancillary chunk but tRNS unread (num_chunks < 0 means "all known
     * chunks except IHDR, PLTE, tRNS, IDAT, IEND, and all unknown ones"): we use none of
     * them (no gamma or colour management). Not only tidiness: libpng 1.6 reports an
     * oversized text or ICC chunk as a warning and then allocates and zeroes a buffer of
     * the declared length (up to 2 GiB) before finding the data missing, so a 100-byte
     * file cost 1.9 GB and 10 s. Skipped chunks are read in small blocks, and a truncated
     * one fails at the end of the data. (Found by tests/fuzz/fuzz_png.c.) */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);

    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &bit_depth, &color_type, &interlace, NULL, NULL);

    if (color_type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);

    const int channels = png_get_channels(png, info);      /* after the transformations */
    const int depth = png_get_bit_depth(png, info);        /* 8 or 16 */
    const size_t rowbytes = png_get_rowbytes(png, info);
    if ((depth != 8 && depth != 16) || channels < 1 || channels > 4 ||
        rowbytes != (size_t)w * (size_t)channels * (size_t)(depth / 8))
        png_error(png, "unsupported pixel layout after conversion");
    /* Plausibility: each row is stored with a filter byte; deflate cannot expand the whole
     * input by more than DEFLATE_MAX_RATIO. (Interlaced images store slightly more.) */
    const double raw = (double)h * ((double)rowbytes + 1.0);
    if (raw > (double)DEFLATE_MAX_RATIO * (double)size + 65536.0)
        png_error(png, "declared image size is larger than the data can hold (truncated)");

    pixels = malloc((size_t)h * rowbytes);
    rows = malloc((size_t)h * sizeof(png_bytep));
    out = malloc((size_t)h * (size_t)w * 3 * sizeof(float));
    if (!pixels || !rows || !out) {
        /* Not a format error; unwind by hand. */
        free(out);
        free(rows);
        free(pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return sl_error_set(err, SL_ERR_NOMEM, "PNG: out of memory for a %ux%u image",
                            (unsigned)w, (unsigned)h);
    }
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = pixels + (size_t)y * rowbytes;
    png_read_image(png, rows);
    /* Reads the chunks after the image up to IEND, so truncation there or a bad CRC is
     * still caught. */
    png_read_end(png, NULL);

    const int grey = channels <= 2;
    const double scale = depth == 16 ? 1.0 / 65535.0 : 1.0 / 255.0;
    for (png_uint_32 y = 0; y < h; y++) {
        const uint8_t *src = rows[y];
        float *dst = out + (size_t)y * w * 3;
        for (png_uint_32 x = 0; x < w; x++) {
            for (int c = 0; c < 3; c++) {
                int sc = grey ? 0 : c;   /* source channel */
                size_t at = ((size_t)x * channels + sc) * (size_t)(depth / 8);
                /* 16-bit samples are big-endian in PNG rows. */
                unsigned v = depth == 16 ? ((unsigned)src[at] << 8) | src[at + 1] : src[at];
                dst[3 * x + c] = (float)(v * scale);
            }
        }
    }

    free(rows);
    free(pixels);
    png_destroy_read_struct(&png, &info, NULL);
    *rgb = out;
    *width = (int)w;
    *height = (int)h;
    return SL_OK;
}

sl_status sl_png_decode_rgb(const uint8_t *data, size_t size, float **rgb, int *width,
                            int *height, sl_error *err)
{
    if (!rgb || !width || !height)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "PNG decode: NULL output argument");
    *rgb = NULL;
    if (!data || size == 0)
        return sl_error_set(err, SL_ERR_FORMAT, "not a PNG file (empty input)");
    mem_source src = {data, size, 0};
    return decode(&src, NULL, size, rgb, width, height, err);
}

sl_status sl_png_read_rgb(const char *path, float **rgb, int *width, int *height,
                          sl_error *err)
{
    if (!path || !rgb || !width || !height)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "PNG read: NULL argument");
    *rgb = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return sl_error_set(err, SL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    long size = -1;
    if (fseek(fp, 0, SEEK_END) == 0)
        size = ftell(fp);
    if (size < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return sl_error_set(err, SL_ERR_IO, "cannot read '%s': not a seekable file", path);
    }
    sl_status st = decode(NULL, fp, (size_t)size, rgb, width, height, err);
    fclose(fp);
    if (st != SL_OK)
        sl_error_prefix(err, "%s", path);
    return st;
}

/* ---- writing ---- */

sl_status sl_png_write_rgb8(const char *path, const uint8_t *rgb, int width, int height,
                            sl_error *err)
{
    if (!path || !rgb)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "PNG write: NULL argument");
    if (width <= 0 || height <= 0 || width > PNG_MAX_SIDE || height > PNG_MAX_SIDE)
        return sl_error_set(err, SL_ERR_INVALID_ARG,
                            "PNG write '%s': size %dx%d outside 1..%d", path, width, height,
                            PNG_MAX_SIDE);
    png_errctx ectx = {{0}, {0}};
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return sl_error_set(err, SL_ERR_IO, "cannot create '%s': %s", path, strerror(errno));
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, &ectx, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        fclose(fp);
        remove(path);
        return sl_error_set(err, SL_ERR_NOMEM, "PNG write '%s': cannot create the encoder",
                            path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        remove(path);   /* never leave a half-written file behind */
        return sl_error_set(err, SL_ERR_IO, "cannot write '%s': %s", path, ectx.msg);
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++)
        png_write_row(png, rgb + (size_t)y * (size_t)width * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    /* Buffered data reaches the disk at fclose; a full disk shows up here. */
    if (fclose(fp) != 0) {
        remove(path);
        return sl_error_set(err, SL_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    }
    return SL_OK;
}

/* ---- helpers ---- */

void sl_image_to_u8(const float *in, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        /* NaN fails both comparisons and maps to 0. */
        if (!(x > 0.0f))
            out[i] = 0;
        else if (x >= 1.0f)
            out[i] = 255;
        else
            out[i] = (uint8_t)(x * 255.0f + 0.5f);
    }
}

double sl_image_psnr(const float *a, const float *b, size_t n)
{
    if (n == 0)
        return INFINITY;
    double se = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        se += d * d;
    }
    if (se == 0.0)
        return INFINITY;
    /* peak 1: PSNR = 10 log10(1 / MSE) */
    return -10.0 * log10(se / (double)n);
}
