/* A representation with an analytic density field: a solid ball of a given radius, centre
 * and colour, nothing learnable. It tests the driver's mesh path end to end (sample_field,
 * field_bounds, /mesh, /eval/chamfer, `steinlab export`) against known geometry.
 *
 * Density: sigma(p) = 10 (R + 0.1 - |p - c|) inside the ball of radius R + 0.1, 0 outside;
 * the default threshold 1 puts the surface at |p - c| = R exactly, and a density linear
 * along every ray from the centre makes marching cubes' interpolation nearly exact there.
 * The render is the ball's silhouette: flat colour, opacity 1, z-depth of the front hit,
 * the outward normal there. It records the series `normal_train_renders` (1 when a TRAIN
 * render was asked for normals, else 0): the driver's test that training renders ask only
 * for the outputs something in the run needs. */
#include <math.h>
#include <string.h>

#include <steinlab/steinlab.h>

enum { SLOPE = 10 };
#define SHELL 0.1f

typedef struct sphere_field {
    const sl_host *host;
    float radius, center[3], color[3];
    float unused[1], unused_grad[1];   /* (1,) the parameter group a representation must have */
} sphere_field;

static const sl_param_def defs[] = {
    { "radius", SL_PARAM_FLOAT, 0, "0.6", 1e-3, 100, NULL, 0, 0, "Radius of the ball" },
    { "center", SL_PARAM_FLOAT_LIST, 0, "[0, 0, 0]", -100, 100, NULL, 3, 3, "Centre (world)" },
    { "color", SL_PARAM_FLOAT_LIST, 0, "[1, 0, 0]", 0, 1, NULL, 3, 3, "RGB in [0, 1]" },
};

static sl_status create(const sl_host *host, const sl_params *params, void **out, sl_error *err)
{
    sphere_field *s = host->alloc(host, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    s->host = host;
    s->radius = (float)sl_params_float(params, "radius");
    for (int d = 0; d < 3; d++) {
        s->center[d] = (float)sl_params_list_float(params, "center", d);
        s->color[d] = (float)sl_params_list_float(params, "color", d);
    }
    sl_status st = host->declare_series(host, "normal_train_renders",
                                        "1 when the TRAIN render of the step was asked for "
                                        "normals", err);
    if (st != SL_OK) {
        host->free_mem(host, s);
        return st;
    }
    *out = s;
    return SL_OK;
}

static void destroy(void *p)
{
    sphere_field *s = p;
    s->host->free_mem(s->host, s);
}

static uint32_t outputs(const void *p)
{
    return SL_RENDER_RGB | SL_RENDER_DEPTH | SL_RENDER_NORMAL | SL_RENDER_OPACITY;
}

static size_t groups(void *p, sl_param_group *g, size_t max)
{
    sphere_field *s = p;
    if (max >= 1)
        g[0] = (sl_param_group){ "unused", s->unused, s->unused_grad, 1 };
    return 1;
}

static sl_status render(void *p, const sl_render_request *req, sl_render *out, sl_error *err)
{
    sphere_field *s = p;
    int H = out->height, W = out->width;
    if (req->mode == SL_RENDER_TRAIN)
        s->host->record(s->host, "normal_train_renders", out->normal ? 1.0 : 0.0);
    for (int b = 0; b < req->batch; b++) {
        const sl_camera *cam = &req->cams[b];
        float oc[3];
        for (int d = 0; d < 3; d++)
            oc[d] = cam->eye[d] - s->center[d];
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                size_t px = ((size_t)b * H + i) * W + j;
                float dir[3];
                sl_camera_ray_dir(cam, i, j, dir);
                /* |oc + t dir|^2 = R^2 with |dir| = 1. */
                float bq = oc[0] * dir[0] + oc[1] * dir[1] + oc[2] * dir[2];
                float cq = oc[0] * oc[0] + oc[1] * oc[1] + oc[2] * oc[2] - s->radius * s->radius;
                float disc = bq * bq - cq;
                float t = disc >= 0 ? -bq - sqrtf(disc) : -1;
                int hit = t > 0;
                for (int c = 0; c < 3; c++)
                    out->rgb[3 * px + c] = hit ? s->color[c] : 1.0f;
                /* z-depth: the hit's distance along the camera's forward axis (rot column 2). */
                float fz = dir[0] * cam->rot[2] + dir[1] * cam->rot[5] + dir[2] * cam->rot[8];
                if (out->depth)
                    out->depth[px] = hit ? t * fz : 0.0f;
                if (out->opacity)
                    out->opacity[px] = (float)hit;
                for (int c = 0; c < 3 && out->normal; c++)
                    out->normal[3 * px + c] =
                        hit ? (oc[c] + t * dir[c]) / s->radius : 0.0f;
            }
    }
    return SL_OK;
}

static sl_status backward(void *p, const sl_render *grad, sl_error *err) { return SL_OK; }

static sl_status sample_field(void *p, const float *points, size_t n, float *density, float *rgb,
                              sl_error *err)
{
    sphere_field *s = p;
    for (size_t i = 0; i < n; i++) {
        float dx = points[3 * i] - s->center[0], dy = points[3 * i + 1] - s->center[1],
              dz = points[3 * i + 2] - s->center[2];
        float sd = s->radius + SHELL - sqrtf(dx * dx + dy * dy + dz * dz);
        density[i] = sd > 0 ? SLOPE * sd : 0.0f;
        if (rgb)
            memcpy(rgb + 3 * i, s->color, sizeof s->color);
    }
    return SL_OK;
}

static void field_bounds(const void *p, float bounds[6], float *threshold)
{
    const sphere_field *s = p;
    float h = s->radius + SHELL + 0.05f;
    for (int d = 0; d < 3; d++) {
        bounds[d] = s->center[d] - h;
        bounds[d + 3] = s->center[d] + h;
    }
    *threshold = SLOPE * SHELL;   /* the surface |p - c| = radius */
}

static const sl_representation_vtable vt = {
    .struct_size = sizeof(sl_representation_vtable),
    .create = create,
    .destroy = destroy,
    .outputs = outputs,
    .param_groups = groups,
    .render = render,
    .backward = backward,
    .sample_field = sample_field,
    .field_bounds = field_bounds,
};
static const sl_plugin desc = { SL_ABI_VERSION, sizeof(sl_plugin), SL_KIND_REPRESENTATION,
                                "sphere_field", "1.0.0",
                                "An analytic ball density with sample_field (mesh tests)",
                                SL_PARAM_SCHEMA(defs), &vt };
SL_PLUGIN_ENTRY(&desc)
