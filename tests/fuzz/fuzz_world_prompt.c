/* tests/fuzz/fuzz_world_prompt.c — libFuzzer target: the world prior's scene inputs, the
 * prompt grammar (world_scene_from_prompt) and the YAML scene file (world_scene_from_file),
 * both fed the same arbitrary bytes.
 *
 * Prompt: the bytes up to the first NUL (a C string cannot hold more), as a NUL-terminated
 * copy. Scene file: every byte, written to a memfd that the loader opens by its
 * /proc/self/fd path (world_scene_from_file only takes a path); without memfd_create the
 * file half is skipped.
 *
 * Besides sanitizer reports, what aborts:
 *   - a failure that leaves primitives or a name in *out (the caller would leak or free
 *     them twice) or says nothing in err.msg;
 *   - a success with no primitive, no name, or a name other than the prompt;
 *   - world_scene_canonical returning NULL (no allocation here can fail);
 *   - parsing the same prompt twice giving two different canonical texts.
 * Every scene that parses is also printed (world_scene_print, to /dev/null) and freed:
 * LeakSanitizer sees what the parser or the printer forgets. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "scene.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

static int scene_is_empty(const world_scene *s)
{
    return !s->prims && s->n == 0 && !s->name;
}

/* Canonical text and printout of a parsed scene; returns the canonical text (malloc'd). */
static char *exercise(const world_scene *s)
{
    if (s->n == 0 || !s->prims || !s->name)
        abort();
    char *canon = world_scene_canonical(s);
    if (!canon)
        abort();
    if (devnull)
        world_scene_print(s, devnull);
    return canon;
}

static void fuzz_prompt(const uint8_t *data, size_t size)
{
    size_t len = strnlen((const char *)data, size);
    char *prompt = malloc(len + 1);
    if (!prompt)
        return;
    memcpy(prompt, data, len);
    prompt[len] = '\0';

    world_scene s;
    sl_error err = { { 0 } };
    if (world_scene_from_prompt(prompt, &s, &err) != SL_OK) {
        if (!scene_is_empty(&s) || !err.msg[0])
            abort();
        free(prompt);
        return;
    }
    if (!s.name || strcmp(s.name, prompt) != 0)
        abort();
    char *canon = exercise(&s);
    world_scene_free(&s);

    /* The grammar is deterministic: the same prompt gives the same scene. */
    world_scene again;
    if (world_scene_from_prompt(prompt, &again, &err) != SL_OK)
        abort();
    char *canon2 = exercise(&again);
    if (strcmp(canon, canon2) != 0)
        abort();
    world_scene_free(&again);
    free(canon);
    free(canon2);
    free(prompt);
}

#ifdef MFD_CLOEXEC
static int memfd = -1;
static char memfd_path[64];

static void fuzz_file(const uint8_t *data, size_t size)
{
    if (memfd < 0) {
        memfd = memfd_create("fuzz_world_scene", MFD_CLOEXEC);
        if (memfd < 0)
            return;   /* no memfd here: the file half is skipped */
        snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
    }
    /* Replace the file's content; the loader opens the path anew (offset 0). */
    if (ftruncate(memfd, 0) != 0)
        return;
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(memfd, data + done, size - done, (off_t)done);
        if (w <= 0)
            return;
        done += (size_t)w;
    }
    world_scene s;
    sl_error err = { { 0 } };
    if (world_scene_from_file(memfd_path, &s, &err) != SL_OK) {
        if (!scene_is_empty(&s) || !err.msg[0])
            abort();
        return;
    }
    free(exercise(&s));
    world_scene_free(&s);
}
#else
static void fuzz_file(const uint8_t *data, size_t size)
{
    (void)data;
    (void)size;
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!devnull)
        devnull = fopen("/dev/null", "w");
    fuzz_prompt(data, size);
    fuzz_file(data, size);
    return 0;
}
