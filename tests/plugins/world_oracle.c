/* A representation that renders the world prior's scene exactly (the reference renderer),
 * for testing the evaluation path: against the world prior's ground truth its PSNR is
 * infinite, its mask IoU 1 and its depth error 0, so every geometry metric and its wiring
 * through the driver is checked against a known answer. It has one parameter group that
 * nothing depends on (gradients are dropped), since a representation must expose one. */
#include <stdlib.h>
#include <string.h>

#include <steinlab/steinlab.h>

#include "render.h"
#include "scene.h"

typedef struct oracle {
    const sl_host *host;
    world_scene scene;
    world_shading shading;
    float unused[1];       /* (1,) the required parameter group */
    float unused_grad[1];  /* (1,) */
} oracle;

static const sl_param_def defs[] = {
    { "prompt", SL_PARAM_STRING, SL_PARAM_REQUIRED, NULL, -INFINITY, INFINITY, NULL, 0, 0,
      "Scene to render (the world prior's prompt grammar)" },
};

static sl_status create(const sl_host *host, const sl_params *params, void **out, sl_error *err)
{
    oracle *o = host->alloc(host, sizeof *o);
    if (!o)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    o->host = host;
    o->shading = world_shading_default();
    sl_status st = world_scene_from_prompt(sl_params_string(params, "prompt"), &o->scene, err);
    if (st != SL_OK) {
        host->free_mem(host, o);
        return st;
    }
    *out = o;
    return SL_OK;
}

static void destroy(void *p)
{
    oracle *o = p;
    world_scene_free(&o->scene);
    o->host->free_mem(o->host, o);
}

static uint32_t outputs(const void *p)
{
    return SL_RENDER_RGB | SL_RENDER_DEPTH | SL_RENDER_NORMAL | SL_RENDER_OPACITY;
}

static size_t groups(void *p, sl_param_group *g, size_t max)
{
    oracle *o = p;
    if (max >= 1)
        g[0] = (sl_param_group){ "unused", o->unused, o->unused_grad, 1 };
    return 1;
}

/* Volumetric conventions: depth is the unnormalised sum w z, normals are weighted by
 * opacity; for an opaque surface hit (opacity = mask) they equal z and n on the mask. */
static sl_status render(void *p, const sl_render_request *req, sl_render *out, sl_error *err)
{
    oracle *o = p;
    size_t px = (size_t)out->height * out->width;
    for (int b = 0; b < req->batch; b++) {
        world_view v = { out->rgb + b * px * 3, out->depth ? out->depth + b * px : NULL,
                         out->normal ? out->normal + b * px * 3 : NULL,
                         out->opacity ? out->opacity + b * px : NULL };
        world_render(&o->scene, &o->shading, &req->cams[b], &v);
    }
    return SL_OK;
}

static sl_status backward(void *p, const sl_render *grad, sl_error *err) { return SL_OK; }

static const sl_representation_vtable vt = {
    .struct_size = sizeof(sl_representation_vtable),
    .create = create,
    .destroy = destroy,
    .outputs = outputs,
    .param_groups = groups,
    .render = render,
    .backward = backward,
};
static const sl_plugin desc = { SL_ABI_VERSION, sizeof(sl_plugin), SL_KIND_REPRESENTATION,
                                "world_oracle", "1.0.0",
                                "Renders the world scene exactly (evaluation tests)",
                                SL_PARAM_SCHEMA(defs), &vt };
SL_PLUGIN_ENTRY(&desc)
