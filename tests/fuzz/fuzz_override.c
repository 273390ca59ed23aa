/* tests/fuzz/fuzz_override.c — libFuzzer target: command-line overrides
 * (`steinlab run SPEC key=value ...`) applied with sl_spec_override.
 *
 * The input is a list of arguments separated by NUL bytes, as argv strings are (so an
 * argument may hold newlines, as a shell can pass them). Each is applied in turn to a copy
 * of a fixed base spec (experiments/quickstart-2d.yaml without its comments); a rejected
 * argument leaves the tree as it was, and the next one is applied. The result goes
 * through the same checks as a parsed spec (spec_checks.c): overrides build trees the
 * parser never would (keys made from arbitrary argument bytes), and those must still
 * emit to YAML that reads back. */
#include <stdlib.h>
#include <string.h>

#include "spec.h"
#include "spec_checks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Arguments per input: a command line longer than this adds nothing new. */
enum { MAX_ARGS = 64 };

static const char base_spec[] =
    "name: quickstart-2d\n"
    "seed: 0\n"
    "steps: 300\n"
    "prior:\n"
    "  plugin: image\n"
    "  images:\n"
    "    - data/targets/smiley.png\n"
    "    - data/targets/checker.png\n"
    "    - data/targets/sunset.png\n"
    "  prompt: smiley\n"
    "  resolution: 32\n"
    "  bandwidth: 0.05\n"
    "  guidance_scale: 7.5\n"
    "representation:\n"
    "  plugin: image2d\n"
    "  resolution: 32\n"
    "  levels: 2\n"
    "estimator:\n"
    "  plugin: sds\n"
    "  t_range: [0.02, 0.98]\n"
    "  weighting: sds\n"
    "  noise_samples: 1\n"
    "cameras:\n"
    "  batch_size: 1\n"
    "  resolution: 32\n"
    "optimizer:\n"
    "  lr: 0.05\n"
    "log:\n"
    "  path: runs/quickstart-2d.h5\n"
    "  render_every: 50\n"
    "  eval_every: 25\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_node *root = NULL;
    sl_error err = { { 0 } };
    if (sl_spec_parse_string(base_spec, sizeof base_spec - 1, "base.yaml", &root, &err))
        abort();  /* the base spec is fixed and valid */
    /* One NUL-terminated copy: the arguments are its NUL-separated pieces. */
    char *args = malloc(size + 1);
    if (!args) {
        sl_node_free(root);
        return 0;
    }
    memcpy(args, data, size);
    args[size] = '\0';
    const char *arg = args;
    for (int k = 0; k < MAX_ARGS && arg <= args + size; k++) {
        (void)sl_spec_override(root, arg, &err);
        arg += strlen(arg) + 1;
    }
    fz_check_spec_tree(root);
    sl_node_free(root);
    free(args);
    return 0;
}
