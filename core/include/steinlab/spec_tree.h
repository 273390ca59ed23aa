/* steinlab/spec_tree.h — YAML documents as typed trees that remember positions, and
 * validation of a map against a parameter schema. The host uses it for specs; plugins may
 * use it for structured files of their own (a scene file, say), with the same errors:
 *   FILE:LINE:COL: DOTTED.KEY: expected WHAT, found WHAT[; did you mean 'KEY'?] */
#ifndef STEINLAB_SPEC_TREE_H
#define STEINLAB_SPEC_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "steinlab/params.h"
#include "steinlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sl_node_kind { SL_NODE_SCALAR = 1, SL_NODE_SEQ, SL_NODE_MAP } sl_node_kind;

typedef struct sl_node {
    sl_node_kind kind;
    const char *file;        /* where the node came from; owned by the tree */
    int line, col;           /* 1-based */
    char *text;              /* SCALAR: its text (NUL-terminated) */
    bool quoted;             /* SCALAR: written in quotes, so always a string */
    size_t n;                /* SEQ / MAP: number of entries */
    struct sl_node **items;  /* SEQ / MAP: values (n,) */
    struct sl_node **keys;   /* MAP: keys (n,), scalar nodes, unique (duplicates are errors) */
} sl_node;

/* Parses a YAML document. Anchors, aliases and tags are rejected (specs are plain data);
 * duplicate keys are errors. An empty document gives an empty map. */
sl_status sl_spec_parse_file(const char *path, sl_node **root, sl_error *err);
sl_status sl_spec_parse_string(const char *text, size_t len, const char *file_label,
                               sl_node **root, sl_error *err);
void sl_node_free(sl_node *node);

/* Deep copy. */
sl_node *sl_node_clone(const sl_node *node);

/* Value of `key` in a MAP node, or NULL (also when map is NULL or not a map). */
sl_node *sl_node_get(const sl_node *map, const char *key);

/* Block-style YAML text of a node (malloc'd, caller frees). Strings that would read back
 * as another type are quoted, so parse(emit(x)) == x. */
char *sl_node_emit_yaml(const sl_node *node);

/* Validates a MAP section (NULL: empty) against a schema and resolves it, defaults filled
 * in. `key_path` is the section's dotted path for messages ("estimator"; "" for the root).
 * `reserved` (NULL-terminated, may be NULL) lists keys that belong to someone else (e.g.
 * "plugin", "label", or the core keys of a plugin section): they are skipped here and
 * offered as suggestions. Errors: unknown key (with the nearest valid key), wrong type,
 * out of range, bad choice (with the choices and the nearest one), wrong list length,
 * malformed schedule, missing required key. */
sl_status sl_params_resolve(const sl_node *section, const char *key_path,
                            const sl_param_schema *schema, const char *const *reserved,
                            sl_params **out, sl_error *err);
void sl_params_free(sl_params *p);

/* PLUGIN_LIST: entry i as written, normalised to a map with a `plugin:` key (a bare name
 * `sds` becomes {plugin: sds} positioned at the name). Owned by p. For the host, which
 * resolves each entry against its plugin's schema and creates the instances. */
const sl_node *sl_params_plugin_entry(const sl_params *p, const char *name, size_t i);

/* Resolves a schema's defaults alone (an empty section). */
sl_status sl_params_defaults(const sl_param_schema *schema, sl_params **out, sl_error *err);

/* Formats "FILE:LINE:COL: KEY_PATH: MESSAGE" into err for a node (node may be NULL: then
 * "FILE" is replaced by the spec-level label given). Returns SL_ERR_SPEC. */
sl_status sl_spec_error_at(sl_error *err, const sl_node *node, const char *key_path,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));


#ifdef __cplusplus
}
#endif
#endif
