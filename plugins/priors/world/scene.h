/* plugins/priors/world/scene.h — procedural scenes of the world prior: primitives with a
 * colour, position, rotation and scale, combined by union, named by a short prompt or
 * loaded from a YAML scene file. World conventions: docs/conventions.md (+z up).
 *
 * Object-level scenes are centred on the origin and sized to fit a ball of radius
 * WORLD_OBJECT_RADIUS, so the default orbit cameras (distance 1.5-2, fovy 40-70) frame them;
 * room scenes are seen from inside (cameras.mode: inside_out) around the origin. */
#ifndef STEINLAB_WORLD_SCENE_H
#define STEINLAB_WORLD_SCENE_H

#include <stddef.h>
#include <stdio.h>

#include "steinlab/status.h"

#define WORLD_OBJECT_RADIUS 0.6f

typedef enum world_shape {
    WORLD_SPHERE = 0,      /* radius = size[0] */
    WORLD_BOX,             /* half extents size[0..2] */
    WORLD_ROUNDED_BOX,     /* half extents size[0..2], edge radius `rounding` */
    WORLD_TORUS,           /* ring radius size[0], tube radius size[1]; ring in the local xy plane */
    WORLD_CYLINDER,        /* radius size[0], half height size[2]; axis local z */
    WORLD_CONE,            /* base radius size[0], half height size[2]; apex at local +z */
    WORLD_CAPSULE,         /* radius size[0], half length of the segment size[2]; axis local z */
    WORLD_PLANE,           /* the ground plane z = position[2]; infinite, normal +z */
    WORLD_ROOM,            /* inside-out box: half extents size[0..2], one colour per wall */
    WORLD_SHAPE_COUNT
} world_shape;

enum { WORLD_WALLS = 6 };  /* room walls: -x, +x, -y, +y, floor (-z), ceiling (+z) */

typedef struct world_primitive {
    world_shape shape;
    float color[3];        /* linear RGB in [0, 1] (ROOM: unused, see wall_color) */
    float position[3];     /* world position of the local origin */
    float rotation[4];     /* unit quaternion (w, x, y, z), local to world */
    float size[3];         /* see world_shape */
    float rounding;        /* ROUNDED_BOX only */
    float wall_color[WORLD_WALLS][3];   /* ROOM only */
} world_primitive;

typedef struct world_scene {
    world_primitive *prims;   /* (n,) owned */
    size_t n;
    float background[3];      /* colour of rays that hit nothing, in [0, 1] */
    int is_room;              /* scene level: seen from inside, cameras.mode inside_out */
    char *name;               /* the prompt, or the scene file's path; owned */
} world_scene;

/* Parses a prompt of the documented grammar (docs/world.md), e.g. "a red sphere on a blue
 * box", "a small green torus next to a yellow cone", "a room with a red sphere and a blue
 * box". Unknown words fail with SL_ERR_SPEC and a message that names the word, lists the
 * vocabulary of its position and suggests the nearest word. */
sl_status world_scene_from_prompt(const char *prompt, world_scene *out, sl_error *err);

/* Loads an explicit scene from a YAML file (format in docs/world.md); errors name the
 * file, line, column and key. */
sl_status world_scene_from_file(const char *path, world_scene *out, sl_error *err);

void world_scene_free(world_scene *scene);

/* Deterministic text that identifies the scene exactly (every number in full precision):
 * used in the view bank's cache key. malloc'd; NULL on allocation failure. */
char *world_scene_canonical(const world_scene *scene);

/* Human-readable description (for `steinlab world show`). */
void world_scene_print(const world_scene *scene, FILE *out);

/* The built-in library: object-level prompts (at least 12) and room prompts (at least 4). */
size_t world_library_objects(const char *const **prompts);
size_t world_library_rooms(const char *const **prompts);

/* Ray-scene intersection: the nearest hit with t in [t_min, t_max] along origin + t dir
 * (dir unit). Returns 1 on a hit and fills the distance t, the unit world normal (facing
 * the ray's side for rooms: pointing into the room) and the surface colour. */
int world_scene_intersect(const world_scene *scene, const float origin[3], const float dir[3],
                          float t_min, float t_max, float *t, float normal[3], float color[3]);

/* Signed distance to the union of the primitives (negative inside; rooms: inside the room is
 * outside the solid), for tests and surface sampling. */
float world_scene_sdf(const world_scene *scene, const float p[3]);

#endif
