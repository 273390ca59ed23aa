/* core/camera_sampler.c — see camera_sampler.h. */
#include "camera_sampler.h"

#include <string.h>

#include "steinlab/rng.h"

static void read_range(const sl_params *p, const char *name, float out[2])
{
    out[0] = (float)sl_params_list_float(p, name, 0);
    out[1] = (float)sl_params_list_float(p, name, 1);
}

void sl_camera_sampler_init(sl_camera_sampler *s, const sl_params *p, int default_resolution)
{
    s->inside_out = !strcmp(sl_params_string(p, "mode"), "inside_out");
    s->batch = (int)sl_params_int(p, "batch_size");
    s->resolution = sl_params_has(p, "resolution") ? (int)sl_params_int(p, "resolution")
                                                   : default_resolution;
    read_range(p, "elevation_range", s->elevation);
    read_range(p, "azimuth_range", s->azimuth);
    read_range(p, "distance_range", s->distance);
    read_range(p, "fovy_range", s->fovy);
    for (int i = 0; i < 3; i++)
        s->target[i] = (float)sl_params_list_float(p, "target", (size_t)i);
    s->near = (float)sl_params_float(p, "near");
    s->eval_views = (int)sl_params_int(p, "eval_views");
    s->eval_elevation = (float)sl_params_float(p, "eval_elevation");
    s->eval_distance = sl_params_has(p, "eval_distance")
                           ? (float)sl_params_float(p, "eval_distance")
                           : 0.5f * (s->distance[0] + s->distance[1]);
    s->eval_fovy = sl_params_has(p, "eval_fovy") ? (float)sl_params_float(p, "eval_fovy")
                                                 : 0.5f * (s->fovy[0] + s->fovy[1]);
}

static float lerp(const float r[2], double u) { return (float)(r[0] + (r[1] - r[0]) * u); }

static void place(const sl_camera_sampler *s, float az, float el, float dist, float fovy,
                  sl_camera *cam)
{
    if (s->inside_out)
        sl_camera_inside_out(az, el, s->target, fovy, s->resolution, s->resolution, cam);
    else
        sl_camera_orbit(az, el, dist, s->target, fovy, s->resolution, s->resolution, cam);
    cam->near = s->near;
}

void sl_camera_sampler_draw(const sl_camera_sampler *s, uint64_t seed, int64_t step,
                            sl_camera *cams)
{
    sl_rng_key key = { seed, (uint32_t)step, SL_STREAM_CAMERA, 0 };
    sl_camera_sampler_draw_key(s, key, cams);
}

void sl_camera_sampler_draw_key(const sl_camera_sampler *s, sl_rng_key key, sl_camera *cams)
{
    for (int b = 0; b < s->batch; b++) {
        uint64_t base = 4 * (uint64_t)b;
        float el = lerp(s->elevation, sl_rng_uniform1(key, base + 0));
        float az = lerp(s->azimuth, sl_rng_uniform1(key, base + 1));
        float dist = lerp(s->distance, sl_rng_uniform1(key, base + 2));
        float fovy = lerp(s->fovy, sl_rng_uniform1(key, base + 3));
        place(s, az, el, dist, fovy, &cams[b]);
    }
}

void sl_camera_sampler_eval(const sl_camera_sampler *s, sl_camera *cams)
{
    for (int k = 0; k < s->eval_views; k++) {
        float az = 360.0f * (float)k / (float)s->eval_views;
        place(s, az, s->eval_elevation, s->eval_distance, s->eval_fovy, &cams[k]);
    }
}

void sl_camera_sampler_turntable(const sl_camera_sampler *s, int frames, int resolution,
                                 sl_camera *cams)
{
    sl_camera_sampler sized = *s;
    sized.resolution = resolution;
    for (int k = 0; k < frames; k++) {
        float az = 360.0f * (float)k / (float)frames;
        place(&sized, az, s->eval_elevation, s->eval_distance, s->eval_fovy, &cams[k]);
    }
}
