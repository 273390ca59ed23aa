/* core/cli/export_video.h — a turntable video of a run's trained representation
 * (`steinlab export RUN.h5 --video OUT`).
 *
 * The representation is recreated from the checkpoint beside the log (RUN.ckpt.h5), as
 * `export --mesh --resolution` does, and rendered with its evaluation render (no
 * randomness) from `frames` cameras at the run's evaluation elevation, distance and field
 * of view, azimuth 360 k / frames: orbit runs circle the target, inside-out runs (rooms)
 * turn in place at it. The frames go to ffmpeg through a pipe (raw RGB24) when an
 * executable `ffmpeg` is on PATH; otherwise they are written as PNG files in a directory
 * beside OUT (the note on `note` says so and how to encode them later). */
#ifndef STEINLAB_CLI_EXPORT_VIDEO_H
#define STEINLAB_CLI_EXPORT_VIDEO_H

#include <stddef.h>
#include <stdio.h>

#include "steinlab/status.h"

typedef struct sl_video_options {
    int frames;        /* >= 1 */
    int resolution;    /* frame width = height in pixels, even (yuv420p needs it) */
    double fps;        /* > 0 */
} sl_video_options;

/* Renders and writes the turntable of the run logged at `log`. `summary` (size n) receives
 * one line saying what was written. SL_ERR_IO when the checkpoint is missing or a file
 * cannot be written, SL_ERR_PLUGIN when ffmpeg fails. */
sl_status sl_export_video(const char *log, const char *out_path, const sl_video_options *o,
                          FILE *note, char *summary, size_t n, sl_error *err);

/* The directory of the PNG fallback for OUT: OUT without its extension, then "_frames"
 * ("runs/turn.mp4" -> "runs/turn_frames"). */
void sl_video_frames_dir(const char *out_path, char *dir, size_t n);

#endif
