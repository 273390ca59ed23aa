/* tests/fuzz/spec_checks.h — the checks the spec fuzz targets run on every tree that
 * parsed (fuzz_spec.c: from a document; fuzz_override.c: a base spec after overrides).
 *
 * Failing inputs are expected and ignored; what aborts (so libFuzzer reports the input)
 * is a broken promise of the spec API:
 *   - sl_node_clone(x) is not structurally equal to x;
 *   - sl_node_emit_yaml(x) does not re-parse, or re-parses to a tree that means something
 *     else (spec_tree.h: "parse(emit(x)) == x"), or a second round changes anything (the
 *     first may only quote plain strings, and so change list style);
 *   - a section that resolved cannot be written back from its resolved values
 *     (sl_params_name_at / sl_params_yaml_at, what a run logs) and resolved again to the
 *     same values.
 * Each abort prints what differed on stderr first; nothing is printed otherwise. */
#ifndef STEINLAB_TESTS_FUZZ_SPEC_CHECKS_H
#define STEINLAB_TESTS_FUZZ_SPEC_CHECKS_H

#include "steinlab/spec_tree.h"

/* Runs every check above on root (a parsed or overridden spec; never NULL). Frees
 * everything it allocates; aborts on a broken invariant. */
void fz_check_spec_tree(const sl_node *root);

#endif
