/* core/cli/export_video.c — see export_video.h. */
#include "export_video.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "camera_sampler.h"
#include "driver.h"
#include "steinlab/camera.h"
#include "steinlab/image.h"
#include "steinlab/plugin.h"

void sl_video_frames_dir(const char *out_path, char *dir, size_t n)
{
    const char *slash = strrchr(out_path, '/');
    const char *base = slash ? slash + 1 : out_path;
    const char *dot = strrchr(base, '.');
    /* "x.mp4" loses ".mp4"; ".hidden" and "name" keep their whole name. */
    size_t keep = dot && dot != base ? (size_t)(dot - out_path) : strlen(out_path);
    snprintf(dir, n, "%.*s_frames", (int)keep, out_path);
}

/* The first executable `ffmpeg` in a directory of PATH; 0 when there is none. */
static int find_ffmpeg(char *path, size_t n)
{
    const char *env = getenv("PATH");
    if (!env)
        return 0;
    const char *p = env;
    for (;;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {   /* an empty entry would mean the working directory: not searched */
            snprintf(path, n, "%.*s/ffmpeg", (int)len, p);
            struct stat sb;
            if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && access(path, X_OK) == 0)
                return 1;
        }
        if (!end)
            return 0;
        p = end + 1;
    }
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcasecmp(s + a - b, suffix);
}

/* ffmpeg reading raw RGB24 frames on its standard input; *fd is the write end. */
static sl_status start_ffmpeg(const char *ffmpeg, const char *out_path, const sl_video_options *o,
                              pid_t *pid, int *fd, sl_error *err)
{
    char size[32], rate[32];
    snprintf(size, sizeof size, "%dx%d", o->resolution, o->resolution);
    snprintf(rate, sizeof rate, "%g", o->fps);
    /* yuv420p: the pixel format every H.264 / VP9 player decodes (ffmpeg would otherwise keep
     * 4:4:4 from RGB input, which many players refuse). Other containers (.gif, .avi, ...)
     * get ffmpeg's own choice. */
    int yuv = ends_with_ci(out_path, ".mp4") || ends_with_ci(out_path, ".mov") ||
              ends_with_ci(out_path, ".mkv") || ends_with_ci(out_path, ".webm");
    const char *argv[] = { ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
                           "-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", size,
                           "-framerate", rate, "-i", "pipe:0", "-an",
                           yuv ? "-pix_fmt" : out_path, yuv ? "yuv420p" : NULL,
                           yuv ? out_path : NULL, NULL };
    int p[2];
    if (pipe(p) != 0)
        return sl_error_set(err, SL_ERR_IO, "cannot create a pipe to ffmpeg: %s", strerror(errno));
    pid_t child = fork();
    if (child < 0) {
        close(p[0]);
        close(p[1]);
        return sl_error_set(err, SL_ERR_IO, "cannot start ffmpeg: %s", strerror(errno));
    }
    if (child == 0) {
        dup2(p[0], STDIN_FILENO);
        close(p[0]);
        close(p[1]);
        execv(ffmpeg, (char *const *)argv);
        _exit(127);
    }
    close(p[0]);
    *pid = child;
    *fd = p[1];
    return SL_OK;
}

static sl_status write_all(int fd, const uint8_t *buf, size_t n, sl_error *err)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return sl_error_set(err, SL_ERR_PLUGIN, "ffmpeg stopped reading frames (%s); its "
                                "messages are above", w < 0 ? strerror(errno) : "short write");
        buf += w;
        n -= (size_t)w;
    }
    return SL_OK;
}

static sl_status finish_ffmpeg(pid_t pid, int fd, sl_status st, sl_error *err)
{
    close(fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (st != SL_OK)
        return st;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return sl_error_set(err, SL_ERR_PLUGIN, "ffmpeg could not be executed");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return sl_error_set(err, SL_ERR_PLUGIN, "ffmpeg failed (%s %d); its messages are above",
                            WIFEXITED(status) ? "exit code" : "signal",
                            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return SL_OK;
}

sl_status sl_export_video(const char *log, const char *out_path, const sl_video_options *o,
                          FILE *note, char *summary, size_t n, sl_error *err)
{
    if (o->frames < 1 || o->resolution < 2 || o->resolution % 2 || !(o->fps > 0))
        return sl_error_set(err, SL_ERR_INVALID_ARG, "video: frames >= 1, an even resolution "
                            ">= 2 and fps > 0 are required");
    sl_run_repr *h = NULL;
    sl_status st = sl_run_open_representation(log, &h, err);
    if (st != SL_OK)
        return st;
    int R = o->resolution, F = o->frames;
    size_t px = (size_t)R * R;
    sl_camera *cams = calloc((size_t)F, sizeof *cams);
    float *rgb = malloc(px * 3 * sizeof *rgb);      /* (1, R, R, 3) */
    uint8_t *u8 = malloc(px * 3);                   /* (R, R, 3) */
    if (!cams || !rgb || !u8)
        st = sl_error_set(err, SL_ERR_NOMEM, "out of memory for %d frames of %dx%d", F, R, R);
    if (st == SL_OK)
        sl_camera_sampler_turntable(&h->cameras, F, R, cams);

    char ffmpeg[PATH_MAX], dir[PATH_MAX];
    int use_ffmpeg = st == SL_OK && find_ffmpeg(ffmpeg, sizeof ffmpeg);
    pid_t pid = -1;
    int fd = -1;
    void (*old_pipe)(int) = SIG_DFL;
    if (st == SL_OK && use_ffmpeg) {
        /* A dying ffmpeg must surface as a write error, not kill this process. */
        old_pipe = signal(SIGPIPE, SIG_IGN);
        st = start_ffmpeg(ffmpeg, out_path, o, &pid, &fd, err);
    } else if (st == SL_OK) {
        sl_video_frames_dir(out_path, dir, sizeof dir);
        if (mkdir(dir, 0777) != 0 && errno != EEXIST)
            st = sl_error_set(err, SL_ERR_IO, "cannot create '%s': %s", dir, strerror(errno));
    }
    int started = use_ffmpeg && st == SL_OK;
    for (int k = 0; k < F && st == SL_OK; k++) {
        sl_render out = { .batch = 1, .height = R, .width = R, .rgb = rgb };
        sl_render_request req = { &cams[k], 1, h->steps_done, SL_RENDER_EVAL };
        st = h->vt->render(h->state, &req, &out, err);
        if (st != SL_OK) {
            sl_error_prefix(err, "frame %d: representation '%s'", k, h->label);
            break;
        }
        sl_image_to_u8(rgb, px * 3, u8);
        if (use_ffmpeg) {
            st = write_all(fd, u8, px * 3, err);
        } else {
            char file[PATH_MAX + 32];
            snprintf(file, sizeof file, "%s/frame_%04d.png", dir, k);
            st = sl_png_write_rgb8(file, u8, R, R, err);
        }
    }
    if (started)
        st = finish_ffmpeg(pid, fd, st, err);
    if (use_ffmpeg)
        signal(SIGPIPE, old_pipe);
    if (st == SL_OK && use_ffmpeg) {
        snprintf(summary, n, "%s: %d frames of %dx%d at %g fps (ffmpeg), %s after %lld steps",
                 out_path, F, R, R, o->fps, h->label, (long long)h->steps_done);
    } else if (st == SL_OK) {
        fprintf(note, "note: ffmpeg was not found on PATH, so no video was encoded: the %d "
                "frames are PNG files in %s/ instead of %s (install ffmpeg, e.g. `apt-get "
                "install ffmpeg`, or encode them later with: ffmpeg -framerate %g -i "
                "%s/frame_%%04d.png -pix_fmt yuv420p %s)\n", F, dir, out_path, o->fps, dir,
                out_path);
        snprintf(summary, n, "%s/: %d PNG frames of %dx%d (frame_0000.png ...), %s after "
                 "%lld steps", dir, F, R, R, h->label, (long long)h->steps_done);
    }
    free(cams);
    free(rgb);
    free(u8);
    sl_run_repr_close(h);
    return st;
}
