/* tests/fuzz/fuzz_spec.c — libFuzzer target: a spec document, as `steinlab run` reads it.
 *
 * The input is the file's bytes (any bytes: libyaml rejects bad encodings, we must not
 * crash on them). What parses goes through spec_checks.c: validation against the core's
 * and the bundled plugins' schemas, re-resolution of what resolved, clone equality and
 * the emit -> parse round trip. Rejected documents are the common case and are fine. */
#include <stddef.h>
#include <stdint.h>

#include "spec_checks.h"
#include "steinlab/spec_tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_node *root = NULL;
    sl_error err = { { 0 } };
    if (sl_spec_parse_string((const char *)data, size, "fuzz.yaml", &root, &err) == SL_OK) {
        fz_check_spec_tree(root);
        sl_node_free(root);
    }
    return 0;
}
