/* core/cli/cmd_render.c — `steinlab render`: one view of a saved representation.
 *
 *   steinlab render --representation gaussians --ply IN.ply --eye X,Y,Z --target X,Y,Z
 *                   --up X,Y,Z --fovy DEG --size WxH [--background R,G,B] OUT.png
 *
 * Gaussians are read with the plugin's PLY reader and drawn by its rasterizer (both
 * compiled into the executable: plugins/representations/gaussians/ply.c, raster.c), with
 * every SH band the file holds. Exit codes as cli.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ply.h"
#include "raster.h"
#include "steinlab/camera.h"
#include "steinlab/image.h"

int sl_cmd_render(int argc, char **argv);

static void render_usage(FILE *out)
{
    fprintf(out,
            "usage: steinlab render --representation gaussians --ply IN.ply --eye X,Y,Z\n"
            "                       --target X,Y,Z --up X,Y,Z --fovy DEG --size WxH\n"
            "                       [--background R,G,B] OUT.png\n"
            "\n"
            "  Renders a 3-D Gaussian splat file (the 3DGS PLY layout) from a look-at camera\n"
            "  (docs/conventions.md). The background defaults to white.\n");
}

/* "a,b,c" -> v (3,); 0 on success. */
static int parse_vec3(const char *s, float v[3])
{
    char *end;
    for (int i = 0; i < 3; i++) {
        errno = 0;
        double x = strtod(s, &end);
        if (end == s || errno || !isfinite(x))
            return -1;
        v[i] = (float)x;
        if (i < 2) {
            if (*end != ',')
                return -1;
            s = end + 1;
        }
    }
    return *end ? -1 : 0;
}

static int parse_size(const char *s, int *w, int *h)
{
    char *end;
    long a = strtol(s, &end, 10);
    if (end == s || *end != 'x')
        return -1;
    const char *t = end + 1;
    long b = strtol(t, &end, 10);
    if (end == t || *end || a < 1 || b < 1 || a > 16384 || b > 16384)
        return -1;
    *w = (int)a;
    *h = (int)b;
    return 0;
}

int sl_cmd_render(int argc, char **argv)
{
    const char *repr = NULL, *ply = NULL, *out = NULL;
    float eye[3], target[3], up[3], bg[3] = { 1, 1, 1 }, fovy = 0;
    int have_eye = 0, have_target = 0, have_up = 0, have_fovy = 0, w = 0, h = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            render_usage(stdout);
            return 0;
        }
        if (a[0] != '-' || a[1] != '-') {
            if (out) {
                fprintf(stderr, "steinlab render: more than one output file ('%s', '%s')\n",
                        out, a);
                return 2;
            }
            out = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "steinlab render: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--representation")) repr = v;
        else if (!strcmp(a, "--ply")) ply = v;
        else if (!strcmp(a, "--eye")) bad = parse_vec3(v, eye), have_eye = 1;
        else if (!strcmp(a, "--target")) bad = parse_vec3(v, target), have_target = 1;
        else if (!strcmp(a, "--up")) bad = parse_vec3(v, up), have_up = 1;
        else if (!strcmp(a, "--background")) bad = parse_vec3(v, bg);
        else if (!strcmp(a, "--size")) bad = parse_size(v, &w, &h);
        else if (!strcmp(a, "--fovy")) {
            char *end;
            fovy = strtof(v, &end);
            bad = end == v || *end || !(fovy > 0 && fovy < 180);
            have_fovy = 1;
        } else {
            fprintf(stderr, "steinlab render: unknown option '%s'\n\n", a);
            render_usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "steinlab render: bad value '%s' for %s\n", v, a);
            return 2;
        }
    }
    if (!repr || strcmp(repr, "gaussians")) {
        fprintf(stderr, "steinlab render: --representation must be 'gaussians'%s%s%s\n",
                repr ? " (got '" : "", repr ? repr : "", repr ? "')" : "");
        return 2;
    }
    if (!ply || !out || !have_eye || !have_target || !have_up || !have_fovy || !w) {
        fprintf(stderr, "steinlab render: --ply, --eye, --target, --up, --fovy, --size and "
                "the output file are all required\n\n");
        render_usage(stderr);
        return 2;
    }
    for (int c = 0; c < 3; c++)
        if (!(bg[c] >= 0 && bg[c] <= 1)) {
            fprintf(stderr, "steinlab render: --background components must be in [0, 1]\n");
            return 2;
        }
    sl_error err = { "" };
    sl_camera cam;
    sl_status st = sl_camera_look_at(eye, target, up, fovy, w, h, &cam, &err);
    if (st != SL_OK) {
        fprintf(stderr, "steinlab render: %s\n", err.msg);
        return 2;
    }
    gs_ply_data d;
    if ((st = gs_ply_read(ply, &d, &err)) != SL_OK) {
        fprintf(stderr, "steinlab render: %s\n", err.msg);
        return sl_exit_code(st);
    }
    gs_scene scene = { .n = d.n, .means = d.means, .log_scales = d.log_scales,
                       .quats = d.quats, .opacity_logits = d.opacity, .sh_dc = d.sh_dc,
                       .sh_rest = d.sh_rest,
                       .sh_rest_coeffs = (d.sh_degree + 1) * (d.sh_degree + 1) - 1,
                       .sh_degree = d.sh_degree };
    size_t px = (size_t)w * h;
    float *rgb = malloc(px * 3 * sizeof(float));
    uint8_t *u8 = malloc(px * 3);
    gs_view *view = gs_view_create();
    if (!rgb || !u8 || !view)
        st = sl_error_set(&err, SL_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
    if (st == SL_OK)
        st = gs_render(view, &scene, &cam, bg, rgb, NULL, NULL, NULL, &err);
    if (st == SL_OK) {
        sl_image_to_u8(rgb, px * 3, u8);
        st = sl_png_write_rgb8(out, u8, w, h, &err);
    }
    if (st == SL_OK)
        printf("rendered %zu Gaussians (%zu visible) to %s\n", d.n, gs_view_visible(view), out);
    else
        fprintf(stderr, "steinlab render: %s\n", err.msg);
    gs_view_destroy(view);
    free(rgb);
    free(u8);
    gs_ply_free(&d);
    return sl_exit_code(st);
}
