/* core/camera_sampler.h — the `cameras` section: random training cameras and fixed
 * evaluation cameras (conventions: steinlab/camera.h). */
#ifndef STEINLAB_CORE_CAMERA_SAMPLER_H
#define STEINLAB_CORE_CAMERA_SAMPLER_H

#include <stdint.h>

#include "steinlab/camera.h"
#include "steinlab/rng.h"
#include "steinlab/params.h"

typedef struct sl_camera_sampler {
    int inside_out;         /* 0: orbit cameras around target; 1: eye at target, looking out */
    int batch;              /* cameras per step */
    int resolution;         /* square render size */
    float elevation[2];     /* degrees, [min, max] */
    float azimuth[2];       /* degrees */
    float distance[2];
    float fovy[2];          /* degrees */
    float target[3];
    float near;
    int eval_views;
    float eval_elevation, eval_distance, eval_fovy;
} sl_camera_sampler;

/* From resolved `cameras` parameters; default_resolution applies when the spec gives none. */
void sl_camera_sampler_init(sl_camera_sampler *s, const sl_params *p, int default_resolution);

/* The training cameras of `step`: (s->batch,). Camera b draws elevation, azimuth, distance
 * and fovy from elements 4b..4b+3 of stream SL_STREAM_CAMERA at (seed, step). */
void sl_camera_sampler_draw(const sl_camera_sampler *s, uint64_t seed, int64_t step,
                            sl_camera *cams);

/* Cameras (s->batch,) from an explicit key (camera b from elements 4b..4b+3): the probes
 * draw theirs from their own stream. */
void sl_camera_sampler_draw_key(const sl_camera_sampler *s, sl_rng_key key, sl_camera *cams);

/* The fixed evaluation cameras: (s->eval_views,), azimuth 360 k / eval_views. */
void sl_camera_sampler_eval(const sl_camera_sampler *s, sl_camera *cams);

/* A turntable: (frames,) cameras of width = height = resolution at the evaluation
 * elevation, distance and field of view, azimuth 360 k / frames starting at 0. Orbit
 * cameras circle the target; inside-out cameras turn in place at it. */
void sl_camera_sampler_turntable(const sl_camera_sampler *s, int frames, int resolution,
                                 sl_camera *cams);

#endif
