/* core/loader.h — the plugin registry: finds plugin libraries, loads them with dlopen and
 * checks every descriptor against the contract of steinlab/plugin.h.
 *
 * Search order (steinlab run): the spec's plugin_paths, then STEINLAB_PLUGIN_PATH
 * (colon-separated), then the default directory: the build tree's plugins/ when the
 * libsteinlab in use lives in the build tree, else <prefix>/<libdir>/steinlab/plugins.
 * An entry of a search path is a directory (every *.so in it, in name order, not
 * recursive) or a file. Any file that fails the checks makes loading fail, with the
 * file's path and the reason in the message: a plugin path holds no broken plugins.
 * Loading is explicit: only files on this path are loaded, and a file that other users can
 * write (or that sits in a directory they can write without the sticky bit) is refused,
 * as ssh refuses loose key permissions. */
#ifndef STEINLAB_CORE_LOADER_H
#define STEINLAB_CORE_LOADER_H

#include <stddef.h>

#include "steinlab/plugin.h"

typedef struct sl_registry sl_registry;

sl_status sl_registry_create(sl_registry **out, sl_error *err);
/* Unloads every library; descriptors found in it become invalid. NULL is a no-op. */
void sl_registry_destroy(sl_registry *r);

/* Loads one library and registers its descriptors. Rejected: dlopen failure, no entry
 * symbol, ABI mismatch (both versions printed), struct smaller than ABI 1's, unknown kind,
 * invalid name, missing summary, missing vtable or required member, invalid schema or
 * default, a name already registered (both files named). Loading the same file twice
 * (same inode) is a no-op. */
sl_status sl_registry_load_file(sl_registry *r, const char *path, sl_error *err);

/* Loads every *.so directly inside `dir`, in name order. A missing directory is an error
 * only when `required`. */
sl_status sl_registry_load_dir(sl_registry *r, const char *dir, int required, sl_error *err);

/* The whole search path. spec_paths: (n,) files or directories, already resolved. */
sl_status sl_registry_load_search_path(sl_registry *r, const char *const *spec_paths,
                                       size_t n, sl_error *err);

/* The default directory (see the file comment). */
const char *sl_registry_default_dir(void);

size_t sl_registry_count(const sl_registry *r);
/* The i-th plugin, in load order; *path receives its library's path (may be NULL). */
const sl_plugin *sl_registry_at(const sl_registry *r, size_t i, const char **path);
/* The members every kind's vtable has, looked up once whatever the kind: create and
 * destroy (required), save_state / load_state (NULL when the plugin keeps no state of its
 * own). */
typedef sl_status (*sl_state_fn)(void *state, sl_state_io *io, sl_error *err);
typedef struct sl_plugin_fns {
    sl_status (*create)(const sl_host *host, const sl_params *params, void **state,
                        sl_error *err);
    void (*destroy)(void *state);
    sl_state_fn save_state, load_state;
} sl_plugin_fns;
sl_plugin_fns sl_plugin_common_fns(const sl_plugin *d);

/* By kind and name (kind 0: any kind); NULL when absent. */
const sl_plugin *sl_registry_find(const sl_registry *r, sl_plugin_kind kind,
                                  const char *name, const char **path);

#endif
