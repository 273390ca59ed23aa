/* plugins/priors/world/scene_internal.h — helpers shared by the scene sources (scene.c,
 * prompt.c, scene_file.c, render.c); not part of the world prior's contract (scene.h). */
#ifndef STEINLAB_WORLD_SCENE_INTERNAL_H
#define STEINLAB_WORLD_SCENE_INTERNAL_H

#include <stddef.h>

#include "scene.h"

/* A primitive of the given shape at the origin, identity rotation, every other field 0
 * (so that world_scene_canonical only sees the fields a constructor sets). */
void world_primitive_init(world_primitive *p, world_shape shape);

/* Name of a shape as written in scene files ("sphere", "rounded_box", ...). */
const char *world_shape_name(world_shape shape);

/* Axis-aligned world bounding box of a primitive, exact for every finite shape under any
 * rotation. Returns 0 (and leaves lo, hi unset) for the unbounded ones: plane and room. */
int world_primitive_bounds(const world_primitive *p, double lo[3], double hi[3]);

/* Distance from point c to the farthest point of a finite primitive (exact for every
 * shape under any rotation); INFINITY for plane and room. */
double world_primitive_farthest(const world_primitive *p, const double c[3]);

/* Named colours shared by prompts and scene files. */
extern const char *const world_color_names[];   /* (world_color_count,) */
extern const size_t world_color_count;
/* Fills rgb and returns 1 when name is a colour name, else 0. */
int world_color_by_name(const char *name, float rgb[3]);

/* The default wall scheme of a room (-x, +x, -y, +y, floor, ceiling). */
void world_room_default_walls(float walls[WORLD_WALLS][3]);

/* Default object colour (no colour word, no `color:` key) and object-scene background. */
extern const float world_default_color[3];
extern const float world_default_background[3];

#endif
