/* plugins/priors/world/prompt.c — scenes named by short prompts, and the built-in library.
 *
 * Grammar (docs/world.md, "Prompt grammar"):
 *   prompt   := group | room
 *   group    := object (relation object)*
 *   object   := ("a" | "an") [size] [colour] shape
 *   relation := "on" | "on top of" | "above" | "under" | "below" | "next to" | "beside"
 *             | "in front of" | "behind" | "and"
 *   room     := ("a" | "an") [colour] "room" ["with" group ("and" group)*]
 * In a room "and" separates groups placed in a row on the floor; in an object scene it is
 * "next to". Every relation links an object to the one before it. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scene_internal.h"
#include "steinlab/suggest.h"

/* ---------------------------------------------------------------------------------- */
/* Vocabulary                                                                          */

static const struct { const char *word; float mult; } sizes[] = {
    {"tiny", 0.4f}, {"small", 0.65f}, {"large", 1.4f}, {"big", 1.4f}, {"huge", 1.8f},
};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

static const struct { const char *word; world_shape shape; } shapes[] = {
    {"sphere", WORLD_SPHERE},     {"ball", WORLD_SPHERE},     {"box", WORLD_BOX},
    {"cube", WORLD_BOX},          {"torus", WORLD_TORUS},     {"ring", WORLD_TORUS},
    {"donut", WORLD_TORUS},       {"cylinder", WORLD_CYLINDER}, {"cone", WORLD_CONE},
    {"capsule", WORLD_CAPSULE},   {"pill", WORLD_CAPSULE},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

typedef enum relation { REL_ON, REL_UNDER, REL_NEXT, REL_FRONT, REL_BEHIND } relation;

/* First words of the relations; multi-word ones continue with fixed words. */
static const char *const rel_words[] = {"on", "above", "under", "below", "next", "beside",
                                        "in", "behind", "and"};
#define N_REL_WORDS (sizeof rel_words / sizeof rel_words[0])
static const char *const rel_display =
    "on, on top of, above, under, below, next to, beside, in front of, behind, and";

/* Fixed words of the grammar that are not in the tables above. */
static const char *const fixed_words[] = {"a", "an", "room", "with", "to", "front", "of",
                                          "top", "rounded"};

/* Expected-token sets, for messages. */
enum {
    EX_ARTICLE = 1u << 0,
    EX_SIZE = 1u << 1,
    EX_COLOR = 1u << 2,
    EX_SHAPE = 1u << 3,
    EX_ROOM = 1u << 4,
    EX_REL = 1u << 5,
    EX_END = 1u << 6,
    EX_WITH = 1u << 7,
    EX_TO = 1u << 8,
    EX_FRONT = 1u << 9,
    EX_OF = 1u << 10,
    EX_TOP = 1u << 11,
    EX_BOX = 1u << 12,   /* after "rounded" */
};

/* ---------------------------------------------------------------------------------- */
/* Tokens and errors                                                                   */

typedef struct token {
    char *w;     /* lower-case word (points into the parser's copy) */
    int col;     /* 1-based column of its first character */
} token;

typedef struct parser {
    const char *prompt;
    char shown[200];   /* the prompt as quoted in messages: one line, truncated */
    token *tok;        /* (n,) */
    size_t n, i;
    sl_error *err;
} parser;

static int in_list(const char *w, const char *const *list, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!strcmp(w, list[k]))
            return 1;
    return 0;
}

static int size_index(const char *w)
{
    for (size_t k = 0; k < N_SIZES; k++)
        if (!strcmp(w, sizes[k].word))
            return (int)k;
    return -1;
}

static int shape_index(const char *w)
{
    for (size_t k = 0; k < N_SHAPES; k++)
        if (!strcmp(w, shapes[k].word))
            return (int)k;
    return -1;
}

static int is_color(const char *w) { return in_list(w, world_color_names, world_color_count); }

static int known_word(const char *w)
{
    return size_index(w) >= 0 || shape_index(w) >= 0 || is_color(w) ||
           in_list(w, rel_words, N_REL_WORDS) ||
           in_list(w, fixed_words, sizeof fixed_words / sizeof fixed_words[0]);
}

/* Appends s to buf (bounded). */
static void cat(char *buf, size_t size, const char *s)
{
    size_t len = strlen(buf);
    if (len + 1 < size)
        snprintf(buf + len, size - len, "%s", s);
}

/* "a size, colour, shape or 'room': tiny, small, ..." for an expected set; the candidate
 * words (for the suggestion) go to cands. */
static void describe(unsigned ex, char *buf, size_t size, const char **cands, size_t *nc)
{
    const char *items[16];
    size_t ni = 0;
    *nc = 0;
    int noun = 0;
    static const struct { unsigned bit; const char *noun; } nouns[] = {
        {EX_SIZE, "size"}, {EX_COLOR, "colour"}, {EX_SHAPE, "shape"}, {EX_REL, "relation"}};
    static const char *const noun_first[] = {"a size", "a colour", "a shape", "a relation"};
    for (size_t k = 0; k < 4; k++)
        if (ex & nouns[k].bit)
            items[ni++] = noun++ ? nouns[k].noun : noun_first[k];
    static const struct { unsigned bit; const char *text; const char *w[2]; } quoted[] = {
        {EX_ARTICLE, "'a', 'an'", {"a", "an"}}, {EX_ROOM, "'room'", {"room", NULL}},
        {EX_WITH, "'with'", {"with", NULL}},    {EX_TOP, "'top'", {"top", NULL}},
        {EX_TO, "'to'", {"to", NULL}},          {EX_FRONT, "'front'", {"front", NULL}},
        {EX_OF, "'of'", {"of", NULL}},          {EX_BOX, "'box', 'cube'", {"box", "cube"}},
    };
    for (size_t k = 0; k < sizeof quoted / sizeof quoted[0]; k++)
        if (ex & quoted[k].bit) {
            items[ni++] = quoted[k].text;
            for (int m = 0; m < 2 && quoted[k].w[m]; m++)
                cands[(*nc)++] = quoted[k].w[m];
        }
    if (ex & EX_END)
        items[ni++] = "the end";
    buf[0] = '\0';
    for (size_t k = 0; k < ni; k++) {
        if (k)
            cat(buf, size, k + 1 == ni ? " or " : ", ");
        cat(buf, size, items[k]);
    }
    /* "'a', 'an' or ..." reads better as "'a' or 'an'" when it stands alone. */
    if (ni == 1 && ex == EX_ARTICLE)
        snprintf(buf, size, "'a' or 'an'");
    if (ni == 1 && ex == EX_BOX)
        snprintf(buf, size, "'box' or 'cube'");
    int listed = 0;
    if (ex & EX_SIZE)
        for (size_t k = 0; k < N_SIZES; k++) {
            cat(buf, size, listed++ ? ", " : ": ");
            cat(buf, size, sizes[k].word);
            cands[(*nc)++] = sizes[k].word;
        }
    if (ex & EX_COLOR)
        for (size_t k = 0; k < world_color_count; k++) {
            cat(buf, size, listed++ ? ", " : ": ");
            cat(buf, size, world_color_names[k]);
            cands[(*nc)++] = world_color_names[k];
        }
    if (ex & EX_SHAPE) {
        for (size_t k = 0; k < N_SHAPES; k++) {
            cat(buf, size, listed++ ? ", " : ": ");
            cat(buf, size, shapes[k].word);
            cands[(*nc)++] = shapes[k].word;
        }
        cat(buf, size, ", rounded box");
        cands[(*nc)++] = "rounded";
    }
    if (ex & EX_REL) {
        cat(buf, size, listed++ ? ", " : ": ");
        cat(buf, size, rel_display);
        for (size_t k = 0; k < N_REL_WORDS; k++)
            cands[(*nc)++] = rel_words[k];
    }
}

static sl_status fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static sl_status fail(parser *p, const char *fmt, ...)
{
    char msg[SL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sl_error_set(p->err, SL_ERR_SPEC, "prompt \"%s\": %s", p->shown, msg);
}

static int is_rel_word(const char *w) { return in_list(w, rel_words, N_REL_WORDS); }

/* The token at the cursor did not fit: unknown word, known word in the wrong place, or a
 * shape missing before a relation. */
static sl_status fail_word(parser *p, unsigned ex)
{
    const token *t = &p->tok[p->i];
    char what[700];
    const char *cands[64];
    size_t nc;
    describe(ex, what, sizeof what, cands, &nc);
    const char *near = sl_nearest_word(t->w, cands, nc);
    char hint[80] = "";
    if (near && strcmp(near, t->w))
        snprintf(hint, sizeof hint, "; did you mean '%s'?", near);
    if (!known_word(t->w))
        return fail(p, "unknown word '%s' at column %d (expected %s)%s", t->w, t->col, what, hint);
    /* A known word in the wrong place is not a typo: no suggestion. */
    if ((ex & EX_SHAPE) && (is_rel_word(t->w) || !strcmp(t->w, "a") || !strcmp(t->w, "an")))
        return fail(p, "missing shape before '%s' at column %d (expected %s)", t->w, t->col, what);
    return fail(p, "unexpected word '%s' at column %d (expected %s)", t->w, t->col, what);
}

/* The prompt ended where `ex` was expected; `anchor` is the token that wants a follower
 * (a relation's first word for a dangling relation). */
static sl_status fail_end(parser *p, unsigned ex, size_t anchor, int dangling)
{
    char what[700];
    const char *cands[64];
    size_t nc;
    describe(ex, what, sizeof what, cands, &nc);
    const token *a = &p->tok[anchor];
    if (dangling)
        return fail(p, "dangling '%s' at column %d: expected an object after it (%s)", a->w,
                    a->col, what);
    if (ex & EX_SHAPE)
        return fail(p, "missing shape after '%s' at the end (expected %s)", a->w, what);
    return fail(p, "ends after '%s' at column %d (expected %s)", a->w, a->col, what);
}

static const char *peek(const parser *p) { return p->i < p->n ? p->tok[p->i].w : NULL; }

/* Consumes the fixed word `w` (continuation of a multi-word relation) or fails. */
static sl_status expect_word(parser *p, const char *w, unsigned ex)
{
    if (p->i >= p->n)
        return fail_end(p, ex, p->i - 1, 0);
    if (strcmp(p->tok[p->i].w, w))
        return fail_word(p, ex);
    p->i++;
    return SL_OK;
}

static sl_status tokenize(parser *p, char *copy)
{
    size_t len = strlen(copy), cap = len / 2 + 1;
    p->tok = malloc(cap * sizeof *p->tok);
    if (!p->tok)
        return sl_error_set(p->err, SL_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < len;) {
        unsigned char c = (unsigned char)copy[k];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            copy[k++] = '\0';
            continue;
        }
        if (!isalpha(c) || c >= 0x80) {
            char shown[8];
            if (c >= 0x20 && c < 0x7F)
                snprintf(shown, sizeof shown, "'%c'", c);
            else
                snprintf(shown, sizeof shown, "0x%02X", c);
            return fail(p, "unexpected character %s at column %zu (prompts are words of letters "
                        "separated by spaces)", shown, k + 1);
        }
        p->tok[p->n].w = copy + k;
        p->tok[p->n].col = (int)k + 1;
        p->n++;
        while (k < len && isalpha((unsigned char)copy[k]) && (unsigned char)copy[k] < 0x80) {
            copy[k] = (char)tolower((unsigned char)copy[k]);
            k++;
        }
    }
    return SL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Parsing                                                                             */

typedef struct object {
    world_shape shape;
    float mult;        /* size multiplier */
    float color[3];
} object;

typedef struct group {
    object *obj;       /* (n,) */
    relation *rel;     /* (n,) rel[k] links obj[k] and obj[k + 1] */
    size_t n, cap;
} group;

static void group_free(group *g)
{
    free(g->obj);
    free(g->rel);
    memset(g, 0, sizeof *g);
}

static int group_push(group *g, const object *o)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 4;
        object *ob = realloc(g->obj, cap * sizeof *ob);
        if (!ob)
            return 0;
        g->obj = ob;
        relation *r = realloc(g->rel, cap * sizeof *r);
        if (!r)
            return 0;
        g->rel = r;
        g->cap = cap;
    }
    g->obj[g->n++] = *o;
    return 1;
}

/* object := article [size] [colour] shape. With room_ok (the prompt's first object), the
 * word "room" may take the shape's place (no size): *is_room is set and nothing else is
 * read. `anchor` is the token before the object, for messages when the prompt ends. */
static sl_status parse_object(parser *p, int room_ok, size_t anchor, int dangling, object *o,
                              int *is_room)
{
    *is_room = 0;
    memcpy(o->color, world_default_color, sizeof o->color);
    o->mult = 1.0f;
    if (p->i >= p->n)
        return fail_end(p, EX_ARTICLE, anchor, dangling);
    const char *w = peek(p);
    if (strcmp(w, "a") && strcmp(w, "an"))
        return fail_word(p, EX_ARTICLE);
    p->i++;
    unsigned ex = EX_SIZE | EX_COLOR | EX_SHAPE | (room_ok ? EX_ROOM : 0);
    for (;;) {
        if (p->i >= p->n)
            return fail_end(p, ex, p->i - 1, 0);
        w = peek(p);
        int k;
        if ((ex & EX_SIZE) && (k = size_index(w)) >= 0) {
            o->mult = sizes[k].mult;
            ex &= ~(unsigned)(EX_SIZE | EX_ROOM);
            p->i++;
            continue;
        }
        if ((ex & EX_COLOR) && world_color_by_name(w, o->color)) {
            ex &= ~(unsigned)(EX_SIZE | EX_COLOR);
            p->i++;
            continue;
        }
        if ((ex & EX_ROOM) && !strcmp(w, "room")) {
            p->i++;
            *is_room = 1;
            return SL_OK;
        }
        if ((k = shape_index(w)) >= 0) {
            o->shape = shapes[k].shape;
            p->i++;
            return SL_OK;
        }
        if (!strcmp(w, "rounded")) {
            p->i++;
            if (p->i >= p->n)
                return fail_end(p, EX_BOX, p->i - 1, 0);
            w = peek(p);
            if (strcmp(w, "box") && strcmp(w, "cube"))
                return fail_word(p, EX_BOX);
            o->shape = WORLD_ROUNDED_BOX;
            p->i++;
            return SL_OK;
        }
        return fail_word(p, ex);
    }
}

/* relation, at a token that starts one; consumes its words. */
static sl_status parse_relation(parser *p, relation *r)
{
    const char *w = peek(p);
    p->i++;
    if (!strcmp(w, "on")) {
        *r = REL_ON;
        if (peek(p) && !strcmp(peek(p), "top")) {   /* "on top of" */
            p->i++;
            return expect_word(p, "of", EX_OF);
        }
        return SL_OK;
    }
    if (!strcmp(w, "above")) {
        *r = REL_ON;
        return SL_OK;
    }
    if (!strcmp(w, "under") || !strcmp(w, "below")) {
        *r = REL_UNDER;
        return SL_OK;
    }
    if (!strcmp(w, "next")) {
        *r = REL_NEXT;
        return expect_word(p, "to", EX_TO);
    }
    if (!strcmp(w, "beside") || !strcmp(w, "and")) {
        *r = REL_NEXT;
        return SL_OK;
    }
    if (!strcmp(w, "in")) {
        *r = REL_FRONT;
        sl_status st = expect_word(p, "front", EX_FRONT);
        return st ? st : expect_word(p, "of", EX_OF);
    }
    *r = REL_BEHIND;   /* "behind" */
    return SL_OK;
}

/* group := object (relation object)*, the first object already read into g. In a room,
 * "and" ends the group (the caller reads it). */
static sl_status parse_group_rest(parser *p, int in_room, group *g)
{
    while (p->i < p->n) {
        const char *w = peek(p);
        if (in_room && !strcmp(w, "and"))
            return SL_OK;
        if (!is_rel_word(w))
            return fail_word(p, EX_REL | EX_END);
        size_t rel_at = p->i;
        relation r;
        sl_status st = parse_relation(p, &r);
        if (st)
            return st;
        object o;
        int is_room;
        st = parse_object(p, 0, rel_at, 1, &o, &is_room);
        if (st)
            return st;
        g->rel[g->n - 1] = r;
        if (!group_push(g, &o))
            return sl_error_set(p->err, SL_ERR_NOMEM, "out of memory");
    }
    return SL_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Placement                                                                           */

/* Sizes at multiplier 1, in the units of a group before it is scaled: objects about one
 * unit tall, so that relations and gaps are decided in one frame for every scene. */
static void object_primitive(const object *o, world_primitive *pr)
{
    world_primitive_init(pr, o->shape);
    memcpy(pr->color, o->color, sizeof pr->color);
    float m = o->mult, *s = pr->size;
    switch (o->shape) {
    case WORLD_SPHERE: s[0] = 0.5f * m; break;
    case WORLD_BOX: s[0] = s[1] = s[2] = 0.45f * m; break;
    case WORLD_ROUNDED_BOX:
        s[0] = s[1] = s[2] = 0.45f * m;
        pr->rounding = 0.12f * m;
        break;
    case WORLD_TORUS: s[0] = 0.40f * m; s[1] = 0.14f * m; break;   /* lying flat */
    case WORLD_CYLINDER: s[0] = 0.40f * m; s[2] = 0.50f * m; break;
    case WORLD_CONE: s[0] = 0.45f * m; s[2] = 0.50f * m; break;
    case WORLD_CAPSULE: s[0] = 0.28f * m; s[2] = 0.30f * m; break;
    default: break;
    }
}

static const double gap = 0.1;   /* between side-by-side objects, group units */

/* Lays a group out (group units): object 0 centred on the z axis with its bottom at z = 0,
 * each later object placed against the one before it by the relation between them, using
 * the objects' exact bounding boxes:
 *   A on B      B below A: B's top at A's bottom, centred under A
 *   A under B   B above A: B's bottom at A's top, centred over A
 *   A next to B B at +y of A, a gap between them, same bottom (the same support), same x
 *   A in front of B   B at -x of A (A is nearer the front camera at +x), same bottom and y
 *   A behind B  B at +x of A, same bottom and y
 * Fills prims (g->n,) and the group's bounding box. */
static void layout_group(const group *g, world_primitive *prims, double lo[3], double hi[3])
{
    double plo[3], phi[3], prev_lo[3] = {0}, prev_hi[3] = {0};
    for (size_t k = 0; k < g->n; k++) {
        world_primitive *pr = &prims[k];
        object_primitive(&g->obj[k], pr);
        world_primitive_bounds(pr, plo, phi);   /* at the origin */
        double pos[3];
        if (k == 0) {
            pos[0] = -(plo[0] + phi[0]) / 2;
            pos[1] = -(plo[1] + phi[1]) / 2;
            pos[2] = -plo[2];
        } else {
            double cx = (prev_lo[0] + prev_hi[0]) / 2, cy = (prev_lo[1] + prev_hi[1]) / 2;
            double mx = (plo[0] + phi[0]) / 2, my = (plo[1] + phi[1]) / 2;
            pos[0] = cx - mx;
            pos[1] = cy - my;
            pos[2] = prev_lo[2] - plo[2];
            switch (g->rel[k - 1]) {
            case REL_ON: pos[2] = prev_lo[2] - phi[2]; break;
            case REL_UNDER: pos[2] = prev_hi[2] - plo[2]; break;
            case REL_NEXT: pos[1] = prev_hi[1] + gap - plo[1]; break;
            case REL_FRONT: pos[0] = prev_lo[0] - gap - phi[0]; break;
            case REL_BEHIND: pos[0] = prev_hi[0] + gap - plo[0]; break;
            }
        }
        for (int a = 0; a < 3; a++) {
            pr->position[a] = (float)pos[a];
            prev_lo[a] = pos[a] + plo[a];
            prev_hi[a] = pos[a] + phi[a];
            if (k == 0 || prev_lo[a] < lo[a])
                lo[a] = prev_lo[a];
            if (k == 0 || prev_hi[a] > hi[a])
                hi[a] = prev_hi[a];
        }
    }
}

/* Maps primitives by p -> s (p - c) + t: positions, sizes and rounding scale together. */
static void transform_prims(world_primitive *prims, size_t n, const double c[3], double s,
                            const double t[3])
{
    for (size_t k = 0; k < n; k++) {
        world_primitive *pr = &prims[k];
        for (int a = 0; a < 3; a++) {
            pr->position[a] = (float)(s * ((double)pr->position[a] - c[a]) + t[a]);
            pr->size[a] = (float)(s * pr->size[a]);
        }
        pr->rounding = (float)(s * pr->rounding);
    }
}

/* Room geometry: the floor at z = -0.8 (below the inside-out cameras at the origin, in view
 * at fovy >= 40 from about 2 units away), the ceiling at 1.2, walls at +-2. Object groups
 * stand on the floor in a row along y at x = 1, in front of the camera looking along +x,
 * scaled by 0.5 (objects about half a unit tall), 0.25 apart; a row wider than 3.2 or a
 * group taller than 1.6 is scaled down to fit. */
static const float room_half[3] = {2.0f, 2.0f, 1.0f};
static const float room_centre[3] = {0.0f, 0.0f, 0.2f};
static const double room_row_x = 1.0, room_object_scale = 0.5, room_gap = 0.25;
static const double room_max_width = 3.2, room_max_height = 1.6;
enum { ROOM_MAX_GROUPS = 8 };   /* so that the gaps alone (7 x 0.25) leave room for objects */

static void room_walls(const float *tint, float walls[WORLD_WALLS][3])
{
    world_room_default_walls(walls);
    if (!tint)
        return;
    /* A coloured room: its four walls in that colour, each a little darker than the last so
     * that directions stay distinguishable; floor and ceiling as in the default scheme. */
    static const float shade[4] = {1.0f, 0.9f, 0.95f, 0.85f};
    for (int w = 0; w < 4; w++)
        for (int a = 0; a < 3; a++)
            walls[w][a] = tint[a] * shade[w];
}

/* ---------------------------------------------------------------------------------- */
/* Entry point                                                                         */

static void set_shown(parser *p, const char *prompt)
{
    size_t k = 0, max = sizeof p->shown - 4;
    for (; prompt[k] && k < max; k++) {
        unsigned char c = (unsigned char)prompt[k];
        p->shown[k] = (c < 0x20 || c == 0x7F || c == '"') ? (c == '"' ? '\'' : ' ') : (char)c;
    }
    p->shown[k] = '\0';
    if (prompt[k])
        strcat(p->shown, "...");
}

sl_status world_scene_from_prompt(const char *prompt, world_scene *out, sl_error *err)
{
    if (!prompt || !out)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "world_scene_from_prompt: NULL argument");
    memset(out, 0, sizeof *out);
    parser p = {.prompt = prompt, .err = err};
    set_shown(&p, prompt);
    group *groups = NULL;
    size_t ng = 0, cap = 0;
    sl_status st = SL_OK;
    char *copy = strdup(prompt);
    world_primitive *prims = NULL;
    if (!copy) {
        st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = tokenize(&p, copy)))
        goto done;
    if (p.n == 0) {
        st = fail(&p, "empty prompt (expected an object such as 'a red sphere on a blue box' "
                      "or a room such as 'a room with a red sphere')");
        goto done;
    }

    object first;
    int is_room = 0;
    float tint[3];
    int tinted = 0;
    if ((st = parse_object(&p, 1, 0, 0, &first, &is_room)))
        goto done;
    if (is_room) {
        /* "a [colour] room": the colour word, if any, is the walls' tint. */
        tinted = p.i == 3;
        memcpy(tint, first.color, sizeof tint);
        if (p.i < p.n) {
            if (strcmp(peek(&p), "with")) {
                st = fail_word(&p, EX_WITH | EX_END);
                goto done;
            }
            size_t anchor = p.i++;
            for (;;) {
                if (ng == ROOM_MAX_GROUPS) {
                    st = fail(&p, "too many objects in the room at column %d (at most %d "
                              "groups joined by 'and')", p.tok[p.i].col, ROOM_MAX_GROUPS);
                    goto done;
                }
                if (ng == cap) {
                    size_t nc = cap ? 2 * cap : 4;
                    group *gg = realloc(groups, nc * sizeof *gg);
                    if (!gg) {
                        st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
                        goto done;
                    }
                    groups = gg;
                    cap = nc;
                }
                group *g = &groups[ng++];
                memset(g, 0, sizeof *g);
                object o;
                int r;
                if ((st = parse_object(&p, 0, anchor, 1, &o, &r)))
                    goto done;
                if (!group_push(g, &o)) {
                    st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
                    goto done;
                }
                if ((st = parse_group_rest(&p, 1, g)))
                    goto done;
                if (p.i >= p.n)
                    break;
                anchor = p.i++;   /* "and" */
            }
        }
    } else {
        groups = calloc(1, sizeof *groups);
        if (!groups || !group_push(&groups[0], &first)) {
            st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
            goto done;
        }
        ng = 1;
        if ((st = parse_group_rest(&p, 0, &groups[0])))
            goto done;
    }

    /* Build the primitives: one per object, plus the room. */
    size_t total = is_room ? 1 : 0;
    for (size_t k = 0; k < ng; k++)
        total += groups[k].n;
    prims = calloc(total, sizeof *prims);
    out->name = strdup(prompt);
    if (!prims || !out->name) {
        st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (!is_room) {
        double lo[3], hi[3], c[3], radius = 0.0;
        layout_group(&groups[0], prims, lo, hi);
        /* Centre the union's bounding box on the origin, then scale so that the farthest
         * point of the union from that centre (exact per shape) lies at WORLD_OBJECT_RADIUS:
         * the tightest ball about the box centre. (The box's half diagonal would shrink a
         * lone sphere to radius R / sqrt(3).) */
        for (int a = 0; a < 3; a++)
            c[a] = 0.5 * (lo[a] + hi[a]);
        for (size_t k = 0; k < total; k++) {
            double r = world_primitive_farthest(&prims[k], c);
            if (r > radius)
                radius = r;
        }
        const double zero[3] = {0, 0, 0};
        transform_prims(prims, total, c, WORLD_OBJECT_RADIUS / radius, zero);
        memcpy(out->background, world_default_background, sizeof out->background);
    } else {
        world_primitive *room = &prims[0];
        world_primitive_init(room, WORLD_ROOM);
        memcpy(room->position, room_centre, sizeof room_centre);
        memcpy(room->size, room_half, sizeof room_half);
        room_walls(tinted ? tint : NULL, room->wall_color);
        memset(room->color, 0, sizeof room->color);
        /* Lay out every group, then fit the row: total width along y with gaps, and the
         * tallest group, both at room_object_scale unless that overflows the room. */
        double (*glo)[3] = calloc(ng ? ng : 1, sizeof *glo), (*ghi)[3] = calloc(ng ? ng : 1, sizeof *ghi);
        if (!glo || !ghi) {
            free(glo);
            free(ghi);
            st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
            goto done;
        }
        size_t at = 1;
        double width = 0.0, height = 0.0;
        for (size_t k = 0; k < ng; k++) {
            layout_group(&groups[k], prims + at, glo[k], ghi[k]);
            at += groups[k].n;
            width += ghi[k][1] - glo[k][1];
            if (ghi[k][2] - glo[k][2] > height)
                height = ghi[k][2] - glo[k][2];
        }
        double s = room_object_scale, gaps = room_gap * (double)(ng - 1);
        if (s * width + gaps > room_max_width)
            s = (room_max_width - gaps) / width;
        if (s * height > room_max_height)
            s = room_max_height / height;
        double row = s * width + gaps;
        /* From +y to -y: left to right for the default camera (at the origin looking along
         * +x, its right is -y), so the row reads in the prompt's order. */
        double y = 0.5 * row, floor_z = room_centre[2] - room_half[2];
        at = 1;
        for (size_t k = 0; k < ng; k++) {
            double c[3] = {0.5 * (glo[k][0] + ghi[k][0]), ghi[k][1], glo[k][2]};
            double t[3] = {room_row_x, y, floor_z};
            transform_prims(prims + at, groups[k].n, c, s, t);
            y -= s * (ghi[k][1] - glo[k][1]) + room_gap;
            at += groups[k].n;
        }
        free(glo);
        free(ghi);
        memset(out->background, 0, sizeof out->background);
    }
    out->prims = prims;
    out->n = total;
    out->is_room = is_room;
    prims = NULL;

done:
    for (size_t k = 0; k < ng; k++)
        group_free(&groups[k]);
    free(groups);
    free(prims);
    free(p.tok);
    free(copy);
    if (st) {
        free(out->name);
        memset(out, 0, sizeof *out);
    }
    return st;
}

/* ---------------------------------------------------------------------------------- */
/* Library                                                                             */

static const char *const library_objects[] = {
    "a red sphere",
    "a blue box",
    "a green torus",
    "a yellow cone",
    "an orange cylinder",
    "a purple capsule",
    "a pink rounded box",
    "a red sphere on a blue box",
    "a small green torus next to a yellow cone",
    "a small white ball on a large cyan cylinder",
    "a brown box in front of a gray cone",
    "a large blue capsule behind an orange sphere",
    "a yellow sphere on a red rounded box next to a blue cone",
    "a black torus on a white cylinder",
};

static const char *const library_rooms[] = {
    "a room with a red sphere",
    "a room with a blue box and a green cone",
    "a blue room with a yellow torus on a red box",
    "a white room with a purple capsule and an orange cylinder and a pink sphere",
};

size_t world_library_objects(const char *const **prompts)
{
    if (prompts)
        *prompts = library_objects;
    return sizeof library_objects / sizeof library_objects[0];
}

size_t world_library_rooms(const char *const **prompts)
{
    if (prompts)
        *prompts = library_rooms;
    return sizeof library_rooms / sizeof library_rooms[0];
}
