/* tests/fuzz/replay.c — runs fuzz inputs through a target without libFuzzer, so the
 * corpus and the regression inputs are checked by every test run, with any compiler.
 *
 * Usage: fuzz_replay_TARGET PATH...   (each PATH a file, or a directory whose regular
 * files are all replayed, not recursively). A broken invariant aborts, as under libFuzzer;
 * otherwise prints "replayed N inputs" and exits 0. An unreadable path exits 1. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole file; returns 0 on success (*data malloc'd, at least 1 byte). */
static int read_all(const char *path, uint8_t **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = grown;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    *data = buf;
    *size = len;
    return 0;
}

static int replay_file(const char *path)
{
    uint8_t *data = NULL;
    size_t size = 0;
    if (read_all(path, &data, &size) != 0) {
        fprintf(stderr, "replay: cannot read '%s'\n", path);
        return -1;
    }
    /* Named on stderr first, so an abort's report says which input it was. */
    fprintf(stderr, "replay: %s\n", path);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    size_t done = 0;
    for (int a = 1; a < argc; a++) {
        struct stat sb;
        if (stat(argv[a], &sb) != 0) {
            fprintf(stderr, "replay: cannot open '%s'\n", argv[a]);
            return 1;
        }
        if (!S_ISDIR(sb.st_mode)) {
            if (replay_file(argv[a]) != 0)
                return 1;
            done++;
            continue;
        }
        /* A directory: its regular files in name order (a stable report). */
        struct dirent **names = NULL;
        int n = scandir(argv[a], &names, NULL, alphasort);
        if (n < 0) {
            fprintf(stderr, "replay: cannot list '%s'\n", argv[a]);
            return 1;
        }
        int rc = 0;
        for (int i = 0; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[a], names[i]->d_name);
            if (rc == 0 && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
                if (replay_file(path) != 0)
                    rc = 1;
                else
                    done++;
            }
            free(names[i]);
        }
        free(names);
        if (rc)
            return 1;
    }
    printf("replayed %zu inputs\n", done);
    return 0;
}
