/* core/cli/cmd_world.c — `steinlab world`: the world prior's scenes from the command line
 * (list the library, describe a scene, render a view of it). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "render.h"
#include "scene.h"
#include "steinlab/camera.h"
#include "steinlab/image.h"

int sl_cmd_world(int argc, char **argv);

static void usage(FILE *out)
{
    fprintf(out,
            "usage: steinlab world list\n"
            "       steinlab world show (PROMPT | --scene FILE.yaml)\n"
            "       steinlab world render (PROMPT | --scene FILE.yaml) --out FILE.png [options]\n"
            "\n"
            "  list                print the library: object prompts, then room prompts\n"
            "  show                print a scene's primitives (or why the prompt is wrong)\n"
            "  render              render one view with the reference renderer\n"
            "\n"
            "render options:\n"
            "  --azimuth DEG --elevation DEG --distance D --fovy DEG\n"
            "                      orbit camera around the origin (defaults 30, 20, 2, 50);\n"
            "                      rooms: inside-out camera at the origin looking along the\n"
            "                      azimuth/elevation (defaults 0, -10, fovy 70)\n"
            "  --eye X,Y,Z --target X,Y,Z [--up X,Y,Z]\n"
            "                      look-at camera instead (up defaults to 0,0,1)\n"
            "  --size WxH          image size (default 256x256)\n"
            "  --depth FILE.png    also write the depth (near bright, background black)\n"
            "  --normal FILE.png   also write the normals as (n + 1) / 2 (background black)\n"
            "Grammar, vocabulary and scene files: docs/world.md.\n");
}

static int parse_float(const char *s, float *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(x))
        return 0;
    *v = (float)x;
    return 1;
}

static int parse_vec3(const char *s, float v[3])
{
    char buf[256];
    if (strlen(s) >= sizeof buf)
        return 0;
    strcpy(buf, s);
    char *p = buf;
    for (int a = 0; a < 3; a++) {
        char *comma = strchr(p, ',');
        if ((a < 2) != (comma != NULL))
            return 0;
        if (comma)
            *comma = '\0';
        if (!parse_float(p, &v[a]))
            return 0;
        p = comma ? comma + 1 : p;
    }
    return 1;
}

static int parse_size(const char *s, int *w, int *h)
{
    char *end;
    long a = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X'))
        return 0;
    const char *t = end + 1;
    long b = strtol(t, &end, 10);
    if (end == t || *end || a < 1 || b < 1 || a > 16384 || b > 16384)
        return 0;
    *w = (int)a;
    *h = (int)b;
    return 1;
}

static int load_scene(const char *prompt, const char *file, world_scene *s)
{
    sl_error err = {""};
    sl_status st = file ? world_scene_from_file(file, s, &err)
                        : world_scene_from_prompt(prompt, s, &err);
    if (st != SL_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return sl_exit_code(st);
    }
    return 0;
}

static int write_png(const char *path, const float *img, int w, int h)
{
    size_t n = (size_t)w * (size_t)h * 3;
    uint8_t *u8 = malloc(n);
    if (!u8) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    sl_image_to_u8(img, n, u8);
    sl_error err = {""};
    sl_status st = sl_png_write_rgb8(path, u8, w, h, &err);
    free(u8);
    if (st != SL_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int cmd_render(int argc, char **argv)
{
    const char *prompt = NULL, *scene_file = NULL, *out = NULL, *depth_out = NULL,
               *normal_out = NULL;
    float az = NAN, el = NAN, dist = NAN, fovy = NAN, eye[3], target[3], up[3] = {0, 0, 1};
    int have_eye = 0, have_target = 0, have_up = 0, w = 256, h = 256;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] != '-') {
            if (prompt) {
                fprintf(stderr, "steinlab world render: one prompt only (quote it): extra '%s'\n", a);
                return 2;
            }
            prompt = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "steinlab world render: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int ok = 1;
        if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--scene"))
            scene_file = v;
        else if (!strcmp(a, "--depth"))
            depth_out = v;
        else if (!strcmp(a, "--normal"))
            normal_out = v;
        else if (!strcmp(a, "--azimuth"))
            ok = parse_float(v, &az);
        else if (!strcmp(a, "--elevation"))
            ok = parse_float(v, &el);
        else if (!strcmp(a, "--distance"))
            ok = parse_float(v, &dist) && dist > 0;
        else if (!strcmp(a, "--fovy"))
            ok = parse_float(v, &fovy) && fovy > 0 && fovy < 180;
        else if (!strcmp(a, "--size"))
            ok = parse_size(v, &w, &h);
        else if (!strcmp(a, "--eye"))
            ok = have_eye = parse_vec3(v, eye);
        else if (!strcmp(a, "--target"))
            ok = have_target = parse_vec3(v, target);
        else if (!strcmp(a, "--up"))
            ok = have_up = parse_vec3(v, up);
        else {
            fprintf(stderr, "steinlab world render: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "steinlab world render: bad value '%s' for %s\n", v, a);
            return 2;
        }
    }
    if (!out || (!prompt) == (!scene_file)) {
        fprintf(stderr, "steinlab world render: give a PROMPT or --scene FILE.yaml, and --out FILE.png\n");
        return 2;
    }
    int orbit_opts = !isnan(az) || !isnan(el) || !isnan(dist);
    if ((have_eye || have_target || have_up) && (orbit_opts || !have_eye || !have_target)) {
        fprintf(stderr, "steinlab world render: a look-at camera needs --eye and --target (and "
                        "optionally --up), without --azimuth/--elevation/--distance\n");
        return 2;
    }
    world_scene s;
    int rc = load_scene(prompt, scene_file, &s);
    if (rc)
        return rc;
    sl_camera cam;
    if (have_eye) {
        sl_error err = {""};
        if (sl_camera_look_at(eye, target, up, isnan(fovy) ? 50.0f : fovy, w, h, &cam, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            world_scene_free(&s);
            return 2;
        }
    } else if (s.is_room) {
        if (!isnan(dist)) {
            fprintf(stderr, "steinlab world render: a room is seen from inside: --distance does "
                            "not apply (use --eye/--target to move the camera)\n");
            world_scene_free(&s);
            return 2;
        }
        sl_camera_inside_out(isnan(az) ? 0.0f : az, isnan(el) ? -10.0f : el, NULL,
                             isnan(fovy) ? 70.0f : fovy, w, h, &cam);
    } else {
        sl_camera_orbit(isnan(az) ? 30.0f : az, isnan(el) ? 20.0f : el, isnan(dist) ? 2.0f : dist,
                        NULL, isnan(fovy) ? 50.0f : fovy, w, h, &cam);
    }
    size_t npx = (size_t)w * (size_t)h;
    float *rgb = malloc(npx * 3 * sizeof *rgb);       /* (H, W, 3) */
    float *depth = malloc(npx * sizeof *depth);       /* (H, W) */
    float *normal = malloc(npx * 3 * sizeof *normal); /* (H, W, 3) */
    float *mask = malloc(npx * sizeof *mask);         /* (H, W) */
    float *vis = malloc(npx * 3 * sizeof *vis);       /* (H, W, 3) */
    if (!rgb || !depth || !normal || !mask || !vis) {
        fprintf(stderr, "error: out of memory\n");
        rc = 1;
        goto done;
    }
    world_shading sh = world_shading_default();
    world_view view = {rgb, depth, normal, mask};
    world_render(&s, &sh, &cam, &view);
    if ((rc = write_png(out, rgb, w, h)))
        goto done;
    if (depth_out) {
        /* Near bright, far dim (in [0.2, 1]) over the hit pixels; the background black. */
        float lo = INFINITY, hi = -INFINITY;
        for (size_t p = 0; p < npx; p++)
            if (mask[p] > 0) {
                lo = fminf(lo, depth[p]);
                hi = fmaxf(hi, depth[p]);
            }
        float span = hi > lo ? hi - lo : 1.0f;
        for (size_t p = 0; p < npx; p++) {
            float g = mask[p] > 0 ? 1.0f - 0.8f * (depth[p] - lo) / span : 0.0f;
            vis[3 * p] = vis[3 * p + 1] = vis[3 * p + 2] = g;
        }
        if ((rc = write_png(depth_out, vis, w, h)))
            goto done;
    }
    if (normal_out) {
        for (size_t p = 0; p < 3 * npx; p++)
            vis[p] = mask[p / 3] > 0 ? 0.5f * (normal[p] + 1.0f) : 0.0f;
        if ((rc = write_png(normal_out, vis, w, h)))
            goto done;
    }
    size_t hits = 0;
    for (size_t p = 0; p < npx; p++)
        hits += mask[p] > 0;
    printf("%s: %dx%d, camera azimuth %.1f elevation %.1f distance %.3g fovy %.1f, %.1f%% "
           "covered -> %s\n", s.name, w, h, (double)cam.azimuth_deg, (double)cam.elevation_deg,
           (double)cam.distance, (double)cam.fovy_deg, 100.0 * (double)hits / (double)npx, out);
done:
    free(rgb);
    free(depth);
    free(normal);
    free(mask);
    free(vis);
    world_scene_free(&s);
    return rc;
}

int sl_cmd_world(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(sub, "list")) {
        if (argc != 2) {
            fprintf(stderr, "usage: steinlab world list\n");
            return 2;
        }
        const char *const *p;
        size_t n = world_library_objects(&p);
        for (size_t i = 0; i < n; i++)
            printf("%s\n", p[i]);
        n = world_library_rooms(&p);
        for (size_t i = 0; i < n; i++)
            printf("%s\n", p[i]);
        return 0;
    }
    if (!strcmp(sub, "show")) {
        const char *file = NULL, *prompt = NULL;
        if (argc == 4 && !strcmp(argv[2], "--scene"))
            file = argv[3];
        else if (argc == 3)
            prompt = argv[2];
        else {
            fprintf(stderr, "usage: steinlab world show (PROMPT | --scene FILE.yaml)  (quote the prompt)\n");
            return 2;
        }
        world_scene s;
        int rc = load_scene(prompt, file, &s);
        if (rc)
            return rc;
        world_scene_print(&s, stdout);
        world_scene_free(&s);
        return 0;
    }
    if (!strcmp(sub, "render"))
        return cmd_render(argc, argv);
    fprintf(stderr, "steinlab world: unknown subcommand '%s'\n\n", sub);
    usage(stderr);
    return 2;
}
