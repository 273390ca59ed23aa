/* plugins/priors/world/scene_file.c — explicit scenes from YAML files (format in
 * docs/world.md, "Scene files"). Keys are validated by the core's schema machinery
 * (steinlab/spec_tree.h), so messages read FILE:LINE:COL: primitives[1].shape: ...; the
 * colour keys, which take a name or a list, are checked here with the same form. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scene_internal.h"
#include "steinlab/spec_tree.h"
#include "steinlab/suggest.h"

static const sl_param_def top_defs[] = {
    {"room", SL_PARAM_BOOL, 0, "false", 0, 0, NULL, 0, 0,
     "a scene seen from inside (inside-out cameras)"},
};
static const char *const top_reserved[] = {"background", "primitives", NULL};

#define SHAPE_CHOICES "sphere|box|rounded_box|torus|cylinder|cone|capsule|plane|room"

static const sl_param_def prim_defs[] = {
    {"shape", SL_PARAM_CHOICE, SL_PARAM_REQUIRED, NULL, 0, 0, SHAPE_CHOICES, 0, 0,
     "the primitive"},
    {"position", SL_PARAM_FLOAT_LIST, 0, "[0, 0, 0]", -INFINITY, INFINITY, NULL, 3, 3,
     "world position of the local origin"},
    {"rotation", SL_PARAM_FLOAT_LIST, 0, "[1, 0, 0, 0]", -INFINITY, INFINITY, NULL, 4, 4,
     "quaternion [w, x, y, z], local to world (normalised on load)"},
    {"size", SL_PARAM_FLOAT_LIST, 0, NULL, 0, INFINITY, NULL, 3, 3,
     "shape parameters (see docs/world.md)"},
    {"rounding", SL_PARAM_FLOAT, 0, "0", 0, INFINITY, NULL, 0, 0,
     "edge radius of a rounded_box"},
};
static const char *const prim_reserved[] = {"color", "walls", NULL};

/* What `size` holds for each shape, and which of its entries must be positive (bit a). */
static const struct { const char *layout; unsigned positive; } size_rule[WORLD_SHAPE_COUNT] = {
    [WORLD_SPHERE] = {"[radius, 0, 0]", 1},
    [WORLD_BOX] = {"[hx, hy, hz] (half extents)", 7},
    [WORLD_ROUNDED_BOX] = {"[hx, hy, hz] (half extents)", 7},
    [WORLD_TORUS] = {"[ring_radius, tube_radius, 0]", 3},
    [WORLD_CYLINDER] = {"[radius, 0, half_height]", 5},
    [WORLD_CONE] = {"[base_radius, 0, half_height]", 5},
    [WORLD_CAPSULE] = {"[radius, 0, half_length]", 1},
    [WORLD_PLANE] = {"(none: the plane z = position[2])", 0},
    [WORLD_ROOM] = {"[hx, hy, hz] (half extents)", 7},
};

/* A plain (unquoted) scalar that reads entirely as a finite number. */
static int node_number(const sl_node *n, double *v)
{
    if (!n || n->kind != SL_NODE_SCALAR || n->quoted || !n->text[0])
        return 0;
    char *end;
    double x = strtod(n->text, &end);
    if (*end || !isfinite(x))
        return 0;
    *v = x;
    return 1;
}

/* A colour: a name (world_color_names) or [r, g, b] with each entry in [0, 1]. */
static sl_status parse_color(const sl_node *n, const char *key, float rgb[3], sl_error *err)
{
    static const char what[] = "a colour name (red, green, blue, yellow, orange, purple, white, "
                               "black, gray, grey, cyan, pink, brown) or [r, g, b] in [0, 1]";
    if (n->kind == SL_NODE_SCALAR) {
        if (world_color_by_name(n->text, rgb))
            return SL_OK;
        const char *near = sl_nearest_word(n->text, world_color_names, world_color_count);
        return sl_spec_error_at(err, n, key, "expected %s, found '%s'%s%s%s", what, n->text,
                                near ? "; did you mean '" : "", near ? near : "",
                                near ? "'?" : "");
    }
    if (n->kind != SL_NODE_SEQ || n->n != 3)
        return sl_spec_error_at(err, n, key, "expected %s, found %s", what,
                                n->kind == SL_NODE_MAP ? "a map" : "a list of the wrong length");
    for (int a = 0; a < 3; a++) {
        double v;
        if (!node_number(n->items[a], &v) || v < 0.0 || v > 1.0)
            return sl_spec_error_at(err, n->items[a], key,
                                    "expected %s, found '%s' at index %d", what,
                                    n->items[a]->kind == SL_NODE_SCALAR ? n->items[a]->text
                                                                        : "(not a number)",
                                    a);
        rgb[a] = (float)v;
    }
    return SL_OK;
}

static char *indexed(const char *base, size_t i, const char *field)
{
    size_t len = strlen(base) + strlen(field) + 32;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%s[%zu]%s%s", base, i, field[0] ? "." : "", field);
    return s;
}

static sl_status oom(sl_error *err) { return sl_error_set(err, SL_ERR_NOMEM, "out of memory"); }

/* One entry of `primitives` (key "primitives[i]"). */
static sl_status parse_primitive(const sl_node *item, size_t i, world_primitive *pr, sl_error *err)
{
    char *key = indexed("primitives", i, ""), *sub = NULL;
    sl_params *par = NULL;
    sl_status st = SL_OK;
    if (!key)
        return oom(err);
    if (item->kind != SL_NODE_MAP) {
        st = sl_spec_error_at(err, item, key, "expected a map with keys shape, color, position, "
                              "rotation, size%s", "");
        goto done;
    }
    const sl_param_schema schema = SL_PARAM_SCHEMA(prim_defs);
    if ((st = sl_params_resolve(item, key, &schema, prim_reserved, &par, err)))
        goto done;
    const char *shape_name = sl_params_string(par, "shape");
    world_shape shape = WORLD_SPHERE;
    while (shape < WORLD_SHAPE_COUNT && strcmp(world_shape_name(shape), shape_name))
        shape++;
    world_primitive_init(pr, shape);
    for (int a = 0; a < 3; a++)
        pr->position[a] = (float)sl_params_list_float(par, "position", (size_t)a);

    /* Rotation: a quaternion, normalised here (double) so that every consumer sees a unit
     * one; the zero quaternion names no rotation. */
    double q[4], qn = 0.0;
    for (int a = 0; a < 4; a++) {
        q[a] = sl_params_list_float(par, "rotation", (size_t)a);
        qn += q[a] * q[a];
    }
    if (!(qn > 1e-24)) {
        free(sub);
        sub = indexed("primitives", i, "rotation");
        st = sub ? sl_spec_error_at(err, sl_node_get(item, "rotation"), sub,
                                    "expected a non-zero quaternion [w, x, y, z]")
                 : oom(err);
        goto done;
    }
    qn = sqrt(qn);
    for (int a = 0; a < 4; a++)
        pr->rotation[a] = (float)(q[a] / qn);

    /* Size, by shape. */
    unsigned need = size_rule[shape].positive;
    free(sub);
    if (!(sub = indexed("primitives", i, "size"))) {
        st = oom(err);
        goto done;
    }
    if (sl_params_has(par, "size")) {
        for (int a = 0; a < 3; a++)
            pr->size[a] = (float)sl_params_list_float(par, "size", (size_t)a);
        for (int a = 0; a < 3; a++)
            if ((need & (1u << a)) && !(pr->size[a] > 0)) {
                st = sl_spec_error_at(err, sl_node_get(item, "size"), sub,
                                      "a %s needs size %s with entry %d > 0", shape_name,
                                      size_rule[shape].layout, a);
                goto done;
            }
    } else if (need) {
        st = sl_spec_error_at(err, item, sub, "missing (a %s needs size %s)", shape_name,
                              size_rule[shape].layout);
        goto done;
    }
    const sl_node *rn = sl_node_get(item, "rounding");
    pr->rounding = (float)sl_params_float(par, "rounding");
    if (rn && shape != WORLD_ROUNDED_BOX) {
        free(sub);
        sub = indexed("primitives", i, "rounding");
        st = sub ? sl_spec_error_at(err, rn, sub, "only a rounded_box has a rounding")
                 : oom(err);
        goto done;
    }
    if (shape == WORLD_ROUNDED_BOX) {
        float m = fminf(pr->size[0], fminf(pr->size[1], pr->size[2]));
        if (pr->rounding > m) {
            free(sub);
            sub = indexed("primitives", i, "rounding");
            st = sub ? sl_spec_error_at(err, rn, sub,
                                        "expected at most the smallest half extent %g, "
                                        "found %g", (double)m, (double)pr->rounding)
                     : oom(err);
            goto done;
        }
    }

    /* Colours. */
    const sl_node *cn = sl_node_get(item, "color"), *wn = sl_node_get(item, "walls");
    if (cn) {
        free(sub);
        if (!(sub = indexed("primitives", i, "color"))) {
            st = oom(err);
            goto done;
        }
        if (shape == WORLD_ROOM) {
            st = sl_spec_error_at(err, cn, sub, "a room has no color; give its walls "
                                  "(walls: [six colours: -x, +x, -y, +y, floor, ceiling])");
            goto done;
        }
        if ((st = parse_color(cn, sub, pr->color, err)))
            goto done;
    }
    if (shape == WORLD_ROOM) {
        memset(pr->color, 0, sizeof pr->color);
        world_room_default_walls(pr->wall_color);
    }
    if (wn) {
        free(sub);
        if (!(sub = indexed("primitives", i, "walls"))) {
            st = oom(err);
            goto done;
        }
        if (shape != WORLD_ROOM) {
            st = sl_spec_error_at(err, wn, sub, "only a room has walls");
            goto done;
        }
        if (wn->kind != SL_NODE_SEQ || wn->n != WORLD_WALLS) {
            st = sl_spec_error_at(err, wn, sub, "expected a list of 6 colours (-x, +x, -y, +y, "
                                  "floor, ceiling)");
            goto done;
        }
        for (size_t w = 0; w < WORLD_WALLS; w++) {
            char *wk = indexed(sub, w, "");
            if (!wk) {
                st = oom(err);
                goto done;
            }
            st = parse_color(wn->items[w], wk, pr->wall_color[w], err);
            free(wk);
            if (st)
                goto done;
        }
    }
done:
    sl_params_free(par);
    free(key);
    free(sub);
    return st;
}

sl_status world_scene_from_file(const char *path, world_scene *out, sl_error *err)
{
    if (!path || !out)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "world_scene_from_file: NULL argument");
    memset(out, 0, sizeof *out);
    sl_node *root = NULL;
    sl_params *top = NULL;
    sl_status st = sl_spec_parse_file(path, &root, err);
    if (st)
        return st;
    const sl_param_schema schema = SL_PARAM_SCHEMA(top_defs);
    if ((st = sl_params_resolve(root, "", &schema, top_reserved, &top, err)))
        goto fail;
    out->is_room = sl_params_bool(top, "room");
    memcpy(out->background, out->is_room ? (const float[3]){0, 0, 0} : world_default_background,
           sizeof out->background);
    const sl_node *bg = sl_node_get(root, "background");
    if (bg && (st = parse_color(bg, "background", out->background, err)))
        goto fail;
    const sl_node *list = sl_node_get(root, "primitives");
    if (!list) {
        st = sl_spec_error_at(err, root, "primitives", "missing required key (expected a list "
                              "of primitives)");
        goto fail;
    }
    if (list->kind != SL_NODE_SEQ || list->n == 0) {
        st = sl_spec_error_at(err, list, "primitives", "expected a non-empty list of primitives");
        goto fail;
    }
    out->prims = calloc(list->n, sizeof *out->prims);
    out->name = strdup(path);
    if (!out->prims || !out->name) {
        st = oom(err);
        goto fail;
    }
    for (size_t i = 0; i < list->n; i++)
        if ((st = parse_primitive(list->items[i], i, &out->prims[i], err)))
            goto fail;
    out->n = list->n;
    sl_params_free(top);
    sl_node_free(root);
    return SL_OK;
fail:
    sl_params_free(top);
    sl_node_free(root);
    world_scene_free(out);
    return st;
}
