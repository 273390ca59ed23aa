/* core/cli/cmd_export.c — `steinlab export RUN.h5 --mesh OUT.obj|OUT.ply [--resolution N]
 * [--threshold X]`: the run's final mesh as a file; `steinlab export RUN.h5 --video OUT.mp4
 * [--frames N] [--resolution R] [--fps F]`: a turntable of the trained representation
 * (export_video.h); `steinlab export RUN.h5 --splats OUT.ply`: the Gaussians of a run of
 * the `gaussians` representation, from its checkpoint, in the PLY layout of 3DGS viewers
 * (plugins/representations/gaussians/ply.h).
 *
 * Without --resolution / --threshold the mesh stored in the log (/mesh, written at the end of
 * the run) is written as it is. With either, the representation is recreated from the
 * checkpoint beside the log (RUN.ckpt.h5) and the mesh extracted again; the other setting
 * defaults to the run's (log.mesh_resolution, log.mesh_threshold or the representation's
 * own iso-level). The format follows the file name: .obj (with vertex colours) or .ply
 * (binary). Nothing but OUT is written. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "driver.h"
#include "export_video.h"
#include "log.h"
#include "ply.h"

#include "steinlab/mesh.h"
#include "steinlab/plugin.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: steinlab export RUN.h5 --mesh OUT.obj|OUT.ply [--resolution N] "
                 "[--threshold X]\n"
                 "       steinlab export RUN.h5 --video OUT.mp4 [--frames N] [--resolution R] "
                 "[--fps F]\n"
                 "  --mesh FILE        the run's final mesh (.obj with vertex colours, or binary "
                 ".ply)\n"
                 "  --resolution N     extract it again from the checkpoint at N grid points "
                 "per axis\n"
                 "  --threshold X      ... at density iso-level X\n"
                 "  --video FILE       a turntable of the representation rebuilt from the "
                 "checkpoint,\n"
                 "                     encoded by ffmpeg (on PATH), else PNG frames in "
                 "FILE-without-extension_frames/\n"
                 "  --frames N         frames of the turntable (default 60)\n"
                 "  --resolution R     (video) frame size in pixels, even (default 128)\n"
                 "  --fps F            (video) frames per second (default 24)\n"
                 "       steinlab export RUN.h5 --splats OUT.ply\n"
                 "  --splats FILE      the Gaussians of a gaussians run (3DGS PLY layout)\n");
}

/* The mesh stored in the log. */
static sl_status mesh_from_log(const char *log, sl_mesh *m, int64_t *step, sl_error *err)
{
    memset(m, 0, sizeof *m);
    int has = sl_log_has_object(log, "/mesh", err);
    if (has < 0)
        return SL_ERR_IO;
    if (!has) {
        return sl_error_set(err, SL_ERR_UNSUPPORTED,
                            "log '%s' has no /mesh: its representation has no density field "
                            "(sample_field), or the run had log.mesh_resolution: 0 (meshes "
                            "come from field representations such as nerf; see "
                            "docs/user-guide.md, \"Exporting meshes\")", log);
    }
    void *v = NULL, *f = NULL, *c = NULL, *s = NULL;
    int64_t nv = 0, nf = 0, nc = 0, ns = 0;
    sl_status st = sl_log_read_array(log, "/mesh/step", SL_LOG_ARRAY_I64, 0, &s, &ns, err);
    if (st == SL_OK && ns < 1)
        st = sl_error_set(err, SL_ERR_FORMAT,
                          "log '%s': /mesh is still empty (the run has not reached its end; "
                          "resume it, or extract a mesh from its checkpoint with --resolution N)",
                          log);
    if (st == SL_OK)
        st = sl_log_read_array(log, "/mesh/vertices", SL_LOG_ARRAY_F32, 3, &v, &nv, err);
    if (st == SL_OK)
        st = sl_log_read_array(log, "/mesh/faces", SL_LOG_ARRAY_I32, 3, &f, &nf, err);
    if (st == SL_OK)
        st = sl_log_read_array(log, "/mesh/colors", SL_LOG_ARRAY_U8, 3, &c, &nc, err);
    if (st == SL_OK && nc != nv)
        st = sl_error_set(err, SL_ERR_FORMAT, "log '%s': /mesh/colors has %lld rows, "
                          "/mesh/vertices %lld", log, (long long)nc, (long long)nv);
    if (st == SL_OK) {
        *step = ((int64_t *)s)[0];
        m->vertices = v;
        m->faces = f;
        m->colors = c;
        m->n_vertices = (size_t)nv;
        m->n_faces = (size_t)nf;
    } else {
        free(v);
        free(f);
        free(c);
    }
    free(s);
    return st;
}

/* The Gaussians of a run of the `gaussians` representation, recognised by its six parameter
 * groups (names and row widths), written as a 3DGS PLY file. */
static sl_status export_splats(const char *log, const char *path, sl_error *err)
{
    sl_run_repr *h = NULL;
    sl_status st = sl_run_open_representation(log, &h, err);
    if (st != SL_OK)
        return st;
    static const char *const names[] = { "means", "scales", "rotations", "opacities", "sh_dc",
                                         "sh_rest" };
    enum { NG = sizeof names / sizeof names[0] };
    sl_param_group g[NG + 1];
    const size_t ng = h->vt->param_groups(h->state, g, NG + 1);
    int matches = ng == NG;
    for (size_t i = 0; matches && i < NG; i++)
        matches = strcmp(g[i].name, names[i]) == 0;
    const size_t n = matches ? g[0].n / 3 : 0;
    const size_t rest = n ? g[5].n / n : 0;   /* 3 (K - 1) */
    const int K = (int)(rest / 3) + 1;
    const int degree = K == 1 ? 0 : K == 4 ? 1 : K == 9 ? 2 : K == 16 ? 3 : -1;
    if (!matches || !n || g[0].n != 3 * n || g[1].n != 3 * n || g[2].n != 4 * n ||
        g[3].n != n || g[4].n != 3 * n || g[5].n != rest * n || degree < 0) {
        st = sl_error_set(err, SL_ERR_INVALID_ARG, "representation '%s' is not a run of "
                          "Gaussians (expected the groups means, scales, rotations, opacities, "
                          "sh_dc, sh_rest of the `gaussians` plugin): --splats needs one; use "
                          "--mesh for field representations", h->label);
    } else {
        const gs_ply_data d = { .n = n, .sh_degree = degree, .means = g[0].data,
                                .sh_dc = g[4].data, .sh_rest = K > 1 ? g[5].data : NULL,
                                .opacity = g[3].data, .log_scales = g[1].data,
                                .quats = g[2].data };
        st = gs_ply_write(path, &d, err);
        if (st == SL_OK)
            printf("%s: %zu Gaussians, SH degree %d (the checkpoint after %lld steps)\n", path,
                   n, degree, (long long)h->steps_done);
    }
    sl_run_repr_close(h);
    return st;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int sl_cmd_export(int argc, char **argv)
{
    const char *log = NULL, *mesh_path = NULL, *video_path = NULL, *splats_path = NULL;
    int resolution = 0, have_threshold = 0, frames = 60;
    double threshold = NAN, fps = 24;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--mesh") && i + 1 < argc) {
            mesh_path = argv[++i];
        } else if (!strcmp(a, "--video") && i + 1 < argc) {
            video_path = argv[++i];
        } else if (!strcmp(a, "--splats") && i + 1 < argc) {
            splats_path = argv[++i];
        } else if (!strcmp(a, "--frames") && i + 1 < argc) {
            if (parse_int(argv[++i], 1, 100000, &frames)) {
                fprintf(stderr, "steinlab export: --frames expects an integer in [1, 100000], "
                                "found '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--fps") && i + 1 < argc) {
            char *end;
            fps = strtod(argv[++i], &end);
            if (*end || end == argv[i] || !(fps > 0 && fps <= 1000)) {
                fprintf(stderr, "steinlab export: --fps expects a number in (0, 1000], "
                                "found '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--resolution") && i + 1 < argc) {
            if (parse_int(argv[++i], 2, 1024, &resolution)) {
                fprintf(stderr, "steinlab export: --resolution expects an integer in [2, 1024], "
                                "found '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--threshold") && i + 1 < argc) {
            char *end;
            threshold = strtod(argv[++i], &end);
            if (*end || end == argv[i] || !isfinite(threshold)) {
                fprintf(stderr, "steinlab export: --threshold expects a number, found '%s'\n",
                        argv[i]);
                return 2;
            }
            have_threshold = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (a[0] == '-') {
            fprintf(stderr, "steinlab export: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!log) {
            log = a;
        } else {
            fprintf(stderr, "steinlab export: one log at a time (found '%s' and '%s')\n", log, a);
            return 2;
        }
    }
    const int exports = !!mesh_path + !!video_path + !!splats_path;
    if (!log || exports != 1) {
        if (exports > 1)
            fprintf(stderr, "steinlab export: --mesh, --video and --splats are separate "
                            "exports: one at a time\n");
        usage(stderr);
        return 2;
    }
    sl_error err = { "" };
    if (splats_path) {
        if (have_threshold || resolution) {
            fprintf(stderr, "steinlab export: --splats takes no --resolution or --threshold\n");
            return 2;
        }
        sl_status sst = export_splats(log, splats_path, &err);
        if (sst != SL_OK)
            fprintf(stderr, "error: %s\n", err.msg);
        return sl_exit_code(sst);
    }
    if (video_path) {
        if (have_threshold) {
            fprintf(stderr, "steinlab export: --threshold applies to --mesh, not --video\n");
            return 2;
        }
        if (resolution % 2 || resolution > 4096) {
            fprintf(stderr, "steinlab export: --resolution of a video expects an even number "
                            "of pixels in [2, 4096] (yuv420p video needs even sizes), found "
                            "%d\n", resolution);
            return 2;
        }
        sl_video_options o = { frames, resolution ? resolution : 128, fps };
        char summary[PATH_MAX + 256];
        sl_status vst = sl_export_video(log, video_path, &o, stderr, summary, sizeof summary,
                                        &err);
        if (vst == SL_OK)
            printf("%s\n", summary);
        else
            fprintf(stderr, "error: %s\n", err.msg);
        return sl_exit_code(vst);
    }
    sl_mesh m;
    memset(&m, 0, sizeof m);
    sl_status st;
    char source[160];
    if (!resolution && !have_threshold) {
        int64_t step = 0;
        st = mesh_from_log(log, &m, &step, &err);
        snprintf(source, sizeof source, "the log's /mesh, after %lld steps", (long long)step);
    } else {
        sl_run_repr *h = NULL;
        st = sl_run_open_representation(log, &h, &err);
        if (st == SL_OK) {
            if (!resolution)
                resolution = h->mesh_resolution > 0 ? h->mesh_resolution : 96;
            if (!have_threshold)
                threshold = h->mesh_threshold;
            float bounds[6], level = 0;
            st = sl_repr_extract_mesh(h->vt, h->state, resolution, threshold, &m, bounds, &level,
                                      &err);
            if (st != SL_OK)
                sl_error_prefix(&err, "representation '%s'", h->label);
            if (SL_REPRESENTATION_HAS(h->vt, surface_mesh))
                snprintf(source, sizeof source, "the representation's own surface from the "
                         "checkpoint after %lld steps; --resolution and --threshold do not "
                         "apply to it", (long long)h->steps_done);
            else
                snprintf(source, sizeof source, "re-extracted from the checkpoint after %lld "
                         "steps at %d^3, threshold %g", (long long)h->steps_done, resolution,
                         (double)level);
        }
        sl_run_repr_close(h);
    }
    if (st == SL_OK)
        st = sl_mesh_write(&m, mesh_path, &err);
    if (st == SL_OK)
        printf("%s: %zu vertices, %zu triangles (%s)\n", mesh_path, m.n_vertices, m.n_faces,
               source);
    else
        fprintf(stderr, "error: %s\n", err.msg);
    sl_mesh_free(&m);
    return sl_exit_code(st);
}
