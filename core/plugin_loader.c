/* core/plugin_loader.c — see loader.h. */
#define _GNU_SOURCE   /* dladdr */
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loader.h"
#include "sl_build_config.h"
#include "spec.h"

/* The first published sizes (ABI 1): a plugin built against this ABI has at least these
 * many bytes in each struct; later hosts read appended fields only below struct_size. */
#define SL_PLUGIN_MIN_SIZE (offsetof(sl_plugin, vtable) + sizeof(void *))

typedef struct loaded_lib {
    char *path;
    void *handle;
    dev_t dev;
    ino_t ino;
} loaded_lib;

typedef struct registered {
    const sl_plugin *desc;
    size_t lib;   /* index into libs */
} registered;

struct sl_registry {
    loaded_lib *libs;
    size_t n_libs, cap_libs;
    registered *plugins;
    size_t n_plugins, cap_plugins;
};

sl_status sl_registry_create(sl_registry **out, sl_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory creating the plugin registry");
    return SL_OK;
}

void sl_registry_destroy(sl_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_libs; i++) {
        if (r->libs[i].handle)
            dlclose(r->libs[i].handle);
        free(r->libs[i].path);
    }
    free(r->libs);
    free(r->plugins);
    free(r);
}

/* A required vtable member: a function pointer field that must not be NULL. */
typedef struct member_check {
    const char *name;
    size_t offset;
} member_check;

#define MEMBER(type, field) { #field, offsetof(type, field) }

static const member_check prior_required[] = {
    MEMBER(sl_prior_vtable, create), MEMBER(sl_prior_vtable, destroy),
    MEMBER(sl_prior_vtable, info), MEMBER(sl_prior_vtable, noise_pred),
};
static const member_check repr_required[] = {
    MEMBER(sl_representation_vtable, create), MEMBER(sl_representation_vtable, destroy),
    MEMBER(sl_representation_vtable, outputs), MEMBER(sl_representation_vtable, param_groups),
    MEMBER(sl_representation_vtable, render), MEMBER(sl_representation_vtable, backward),
};
static const member_check estimator_required[] = {
    MEMBER(sl_estimator_vtable, create), MEMBER(sl_estimator_vtable, destroy),
    MEMBER(sl_estimator_vtable, delta),
};
static const member_check baseline_required[] = {
    MEMBER(sl_baseline_vtable, create), MEMBER(sl_baseline_vtable, destroy),
    MEMBER(sl_baseline_vtable, eval),
};

/* The size of each vtable as first published (ABI 1: the whole struct of that time, so
 * members appended since are excluded); required members all lie below it. */
static size_t vtable_min_size(sl_plugin_kind kind)
{
    switch (kind) {
    case SL_KIND_PRIOR: return sizeof(sl_prior_vtable);
    case SL_KIND_REPRESENTATION:   /* surface_mesh was appended later */
        return offsetof(sl_representation_vtable, surface_mesh);
    case SL_KIND_ESTIMATOR:   /* probe_stats was appended later */
        return offsetof(sl_estimator_vtable, probe_stats);
    case SL_KIND_BASELINE: return sizeof(sl_baseline_vtable);
    }
    return 0;
}

/* Copies the members shared by every vtable out of the kind's own struct. */
#define SL_COMMON_FNS(vt) \
    (sl_plugin_fns){ (vt)->create, (vt)->destroy, (vt)->save_state, (vt)->load_state }

sl_plugin_fns sl_plugin_common_fns(const sl_plugin *d)
{
    switch (d->kind) {
    case SL_KIND_PRIOR: return SL_COMMON_FNS((const sl_prior_vtable *)d->vtable);
    case SL_KIND_REPRESENTATION:
        return SL_COMMON_FNS((const sl_representation_vtable *)d->vtable);
    case SL_KIND_ESTIMATOR: return SL_COMMON_FNS((const sl_estimator_vtable *)d->vtable);
    case SL_KIND_BASELINE: return SL_COMMON_FNS((const sl_baseline_vtable *)d->vtable);
    }
    return (sl_plugin_fns){ 0 };
}

static sl_status check_vtable(const sl_plugin *d, const char *path, sl_error *err)
{
    const member_check *req = NULL;
    size_t n = 0;
    switch (d->kind) {
    case SL_KIND_PRIOR: req = prior_required; n = sizeof prior_required / sizeof *req; break;
    case SL_KIND_REPRESENTATION: req = repr_required; n = sizeof repr_required / sizeof *req; break;
    case SL_KIND_ESTIMATOR: req = estimator_required; n = sizeof estimator_required / sizeof *req; break;
    case SL_KIND_BASELINE: req = baseline_required; n = sizeof baseline_required / sizeof *req; break;
    }
    if (!d->vtable)
        return sl_error_set(err, SL_ERR_PLUGIN, "%s: plugin '%s' (%s): missing vtable", path,
                            d->name, sl_plugin_kind_name(d->kind));
    /* Every vtable starts with its struct_size. */
    uint32_t vt_size = *(const uint32_t *)d->vtable;
    if (vt_size < vtable_min_size(d->kind))
        return sl_error_set(err, SL_ERR_PLUGIN,
                            "%s: plugin '%s' (%s): vtable struct_size %u is smaller than the "
                            "ABI's %zu (was struct_size set?)",
                            path, d->name, sl_plugin_kind_name(d->kind), vt_size,
                            vtable_min_size(d->kind));
    const sl_plugin_fns fns = sl_plugin_common_fns(d);
    const sl_state_fn save_fn = fns.save_state, load_fn = fns.load_state;
    if (!save_fn != !load_fn)
        return sl_error_set(err, SL_ERR_PLUGIN,
                            "%s: plugin '%s' (%s): has %s but not %s (checkpoints need both)",
                            path, d->name, sl_plugin_kind_name(d->kind),
                            save_fn ? "save_state" : "load_state",
                            save_fn ? "load_state" : "save_state");
    for (size_t i = 0; i < n; i++) {
        void *fn;
        memcpy(&fn, (const char *)d->vtable + req[i].offset, sizeof fn);
        if (!fn)
            return sl_error_set(err, SL_ERR_PLUGIN,
                                "%s: plugin '%s' (%s): missing required member '%s'", path,
                                d->name, sl_plugin_kind_name(d->kind), req[i].name);
    }
    return SL_OK;
}

/* A schema must be well formed and its defaults must satisfy it: resolving a section that
 * gives every default explicitly checks both with the same code that checks specs. */
static sl_status check_schema(const sl_plugin *d, const char *path, sl_error *err)
{
    const sl_param_schema *s = &d->params;
    if (s->count && !s->defs)
        return sl_error_set(err, SL_ERR_PLUGIN, "%s: plugin '%s': schema has no definitions",
                            path, d->name);
    size_t cap = 64;
    for (size_t i = 0; i < s->count; i++)
        cap += 8 + (s->defs[i].name ? strlen(s->defs[i].name) : 0) +
               (s->defs[i].default_value ? strlen(s->defs[i].default_value) : 0);
    char *yaml = malloc(cap);
    if (!yaml)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    size_t len = 0;
    yaml[0] = 0;
    sl_status st = SL_OK;
    for (size_t i = 0; i < s->count && st == SL_OK; i++) {
        const sl_param_def *p = &s->defs[i];
        if (!sl_valid_name(p->name) || !strcmp(p->name, "plugin") || !strcmp(p->name, "label"))
            st = sl_error_set(err, SL_ERR_PLUGIN,
                              "%s: plugin '%s': parameter #%zu has an invalid or reserved name",
                              path, d->name, i);
        else if (p->type < SL_PARAM_BOOL || p->type > SL_PARAM_PLUGIN_LIST)
            st = sl_error_set(err, SL_ERR_PLUGIN, "%s: plugin '%s': parameter '%s' has an "
                              "unknown type %d", path, d->name, p->name, (int)p->type);
        else if (p->type == SL_PARAM_SECTION && (!p->section || (p->section->count &&
                                                                 !p->section->defs)))
            st = sl_error_set(err, SL_ERR_PLUGIN, "%s: plugin '%s': section parameter '%s' "
                              "has no schema", path, d->name, p->name);
        else if (p->type == SL_PARAM_PLUGIN_LIST &&
                 (p->plugin_kind < SL_KIND_PRIOR || p->plugin_kind > SL_KIND_BASELINE))
            st = sl_error_set(err, SL_ERR_PLUGIN, "%s: plugin '%s': plugin-list parameter "
                              "'%s' has no valid plugin_kind", path, d->name, p->name);
        else if (p->type == SL_PARAM_CHOICE && (!p->choices || !*p->choices))
            st = sl_error_set(err, SL_ERR_PLUGIN, "%s: plugin '%s': choice parameter '%s' "
                              "lists no choices", path, d->name, p->name);
        else if ((p->flags & SL_PARAM_REQUIRED) && p->default_value)
            st = sl_error_set(err, SL_ERR_PLUGIN, "%s: plugin '%s': parameter '%s' is "
                              "required but has a default", path, d->name, p->name);
        else if (p->default_value)
            len += (size_t)snprintf(yaml + len, cap - len, "%s: %s\n", p->name,
                                    p->default_value);
    }
    if (st == SL_OK && s->count) {
        for (size_t i = 0; i < s->count && st == SL_OK; i++)
            for (size_t j = 0; j < i; j++)
                if (!strcmp(s->defs[i].name, s->defs[j].name)) {
                    st = sl_error_set(err, SL_ERR_PLUGIN, "%s: plugin '%s': parameter '%s' "
                                      "declared twice", path, d->name, s->defs[i].name);
                    break;
                }
    }
    if (st == SL_OK && len) {
        char label[PATH_MAX + 64];
        snprintf(label, sizeof label, "%s(defaults of %s)", path, d->name);
        sl_node *root = NULL;
        st = sl_spec_parse_string(yaml, len, label, &root, err);
        if (st == SL_OK) {
            /* Required parameters are absent from the defaults: checked per spec later. */
            sl_params *tmp = NULL;
            const sl_param_def *defs = s->defs;
            sl_param_def *relaxed = malloc(s->count * sizeof *relaxed);
            if (!relaxed) {
                st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
            } else {
                for (size_t i = 0; i < s->count; i++) {
                    relaxed[i] = defs[i];
                    relaxed[i].flags &= ~(uint32_t)SL_PARAM_REQUIRED;
                }
                sl_param_schema rs = { relaxed, s->count };
                st = sl_params_resolve(root, d->name, &rs, NULL, &tmp, err);
                sl_params_free(tmp);
                free(relaxed);
            }
            sl_node_free(root);
        }
        if (st != SL_OK) {
            st = SL_ERR_PLUGIN;
            sl_error_prefix(err, "%s: plugin '%s': invalid default", path, d->name);
        }
    }
    free(yaml);
    return st;
}

static sl_status check_descriptor(const sl_plugin *d, uint32_t index, const char *path,
                                  sl_error *err)
{
    if (d->abi_version != SL_ABI_VERSION)
        return sl_error_set(err, SL_ERR_PLUGIN,
                            "%s: plugin #%u: incompatible ABI version (plugin: %u, host: %u); "
                            "rebuild it against this steinlab",
                            path, index, d->abi_version, SL_ABI_VERSION);
    if (d->struct_size < SL_PLUGIN_MIN_SIZE)
        return sl_error_set(err, SL_ERR_PLUGIN,
                            "%s: plugin #%u: descriptor struct_size %u is smaller than the "
                            "ABI's %zu",
                            path, index, d->struct_size, (size_t)SL_PLUGIN_MIN_SIZE);
    if (!sl_valid_name(d->name))
        return sl_error_set(err, SL_ERR_PLUGIN,
                            "%s: plugin #%u: invalid name '%s' (expected [a-z0-9_]+, at most "
                            "64 characters)",
                            path, index, d->name ? d->name : "(null)");
    if (d->kind < SL_KIND_PRIOR || d->kind > SL_KIND_BASELINE)
        return sl_error_set(err, SL_ERR_PLUGIN, "%s: plugin '%s': unknown kind %d", path,
                            d->name, (int)d->kind);
    if (!d->summary || !*d->summary)
        return sl_error_set(err, SL_ERR_PLUGIN, "%s: plugin '%s': missing summary", path,
                            d->name);
    if (!d->version || !*d->version)
        return sl_error_set(err, SL_ERR_PLUGIN, "%s: plugin '%s': missing version", path,
                            d->name);
    sl_status st = check_vtable(d, path, err);
    if (st != SL_OK)
        return st;
    return check_schema(d, path, err);
}

static sl_status add_plugin(sl_registry *r, const sl_plugin *d, size_t lib, sl_error *err)
{
    for (size_t i = 0; i < r->n_plugins; i++)
        if (!strcmp(r->plugins[i].desc->name, d->name))
            return sl_error_set(err, SL_ERR_PLUGIN,
                                "%s: plugin name '%s' is already provided by %s",
                                r->libs[lib].path, d->name, r->libs[r->plugins[i].lib].path);
    if (r->n_plugins == r->cap_plugins) {
        size_t cap = r->cap_plugins ? 2 * r->cap_plugins : 16;
        registered *p = realloc(r->plugins, cap * sizeof *p);
        if (!p)
            return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        r->plugins = p;
        r->cap_plugins = cap;
    }
    r->plugins[r->n_plugins++] = (registered){ d, lib };
    return SL_OK;
}

/* A spec can load code, so, as ssh does with loose key permissions, a plugin that another
 * user could have replaced is refused: the file must not be writable by group or others,
 * nor its directory unless that directory has the sticky bit (like /tmp). */
static sl_status check_trust(const char *path, const struct stat *file, sl_error *err)
{
    if (file->st_mode & (S_IWGRP | S_IWOTH))
        return sl_error_set(err, SL_ERR_PLUGIN,
                            "%s: refusing to load a plugin that other users can write (mode "
                            "%04o); fix with: chmod go-w '%s'",
                            path, (unsigned)(file->st_mode & 07777), path);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    struct stat ds;
    if (stat(dir, &ds) != 0)
        return sl_error_set(err, SL_ERR_PLUGIN, "%s: cannot inspect its directory '%s'", path,
                            dir);
    if ((ds.st_mode & (S_IWGRP | S_IWOTH)) && !(ds.st_mode & S_ISVTX))
        return sl_error_set(err, SL_ERR_PLUGIN,
                            "%s: refusing to load a plugin from a directory that other users "
                            "can write without the sticky bit ('%s', mode %04o)",
                            path, dir, (unsigned)(ds.st_mode & 07777));
    return SL_OK;
}

sl_status sl_registry_load_file(sl_registry *r, const char *path, sl_error *err)
{
    struct stat stt;
    if (stat(path, &stt) != 0)
        return sl_error_set(err, SL_ERR_PLUGIN, "%s: no such plugin file", path);
    sl_status trust = check_trust(path, &stt, err);
    if (trust != SL_OK)
        return trust;
    for (size_t i = 0; i < r->n_libs; i++)
        if (r->libs[i].dev == stt.st_dev && r->libs[i].ino == stt.st_ino)
            return SL_OK;
    if (r->n_libs == r->cap_libs) {
        size_t cap = r->cap_libs ? 2 * r->cap_libs : 16;
        loaded_lib *l = realloc(r->libs, cap * sizeof *l);
        if (!l)
            return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        r->libs = l;
        r->cap_libs = cap;
    }
    /* RTLD_LOCAL: plugins never see each other's symbols, only libsteinlab's. */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return sl_error_set(err, SL_ERR_PLUGIN, "%s: cannot load: %s", path, dlerror());
    size_t lib = r->n_libs;
    r->libs[lib] = (loaded_lib){ strdup(path), h, stt.st_dev, stt.st_ino };
    r->n_libs++;
    if (!r->libs[lib].path)
        return sl_error_set(err, SL_ERR_NOMEM, "out of memory");

    sl_plugin_entry_fn entry;
    void *sym = dlsym(h, SL_PLUGIN_ENTRY_SYMBOL);
    if (!sym)
        return sl_error_set(err, SL_ERR_PLUGIN,
                            "%s: not a steinlab plugin (no exported '%s' symbol)", path,
                            SL_PLUGIN_ENTRY_SYMBOL);
    memcpy(&entry, &sym, sizeof entry);
    size_t before = r->n_plugins;
    for (uint32_t i = 0;; i++) {
        const sl_plugin *d = entry(i);
        if (!d)
            break;
        if (i >= 1024)
            return sl_error_set(err, SL_ERR_PLUGIN, "%s: more than 1024 descriptors", path);
        sl_status st = check_descriptor(d, i, path, err);
        if (st == SL_OK)
            st = add_plugin(r, d, lib, err);
        if (st != SL_OK) {
            r->n_plugins = before;
            return st;
        }
    }
    if (r->n_plugins == before)
        return sl_error_set(err, SL_ERR_PLUGIN, "%s: the library declares no plugins", path);
    return SL_OK;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_so_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && !strcmp(name + n - 3, ".so");
}

sl_status sl_registry_load_dir(sl_registry *r, const char *dir, int required, sl_error *err)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return required ? sl_error_set(err, SL_ERR_PLUGIN,
                                       "%s: cannot open plugin directory", dir)
                        : SL_OK;
    char **names = NULL;
    size_t n = 0, cap = 0;
    sl_status st = SL_OK;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (e->d_name[0] == '.' || !has_so_suffix(e->d_name))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(dh);
    if (st == SL_OK)
        qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n && st == SL_OK; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path)
            st = sl_error_set(err, SL_ERR_PLUGIN, "%s/%s: path too long", dir, names[i]);
        else
            st = sl_registry_load_file(r, path, err);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st;
}

static sl_status load_entry(sl_registry *r, const char *entry, sl_error *err)
{
    struct stat stt;
    if (stat(entry, &stt) != 0)
        return sl_error_set(err, SL_ERR_PLUGIN, "%s: plugin path does not exist", entry);
    if (S_ISDIR(stt.st_mode))
        return sl_registry_load_dir(r, entry, 1, err);
    return sl_registry_load_file(r, entry, err);
}

const char *sl_registry_default_dir(void)
{
    /* Which libsteinlab is running decides between the build tree and the installation,
     * so an installed steinlab never picks up a stale build tree and vice versa. */
    static char dir[PATH_MAX];
    Dl_info info;
    if (dladdr((void *)sl_registry_default_dir, &info) && info.dli_fname) {
        char lib[PATH_MAX], build[PATH_MAX];
        if (realpath(info.dli_fname, lib) && realpath(SL_BUILD_PLUGIN_DIR "/..", build)) {
            size_t n = strlen(build);
            if (!strncmp(lib, build, n) && lib[n] == '/') {
                snprintf(dir, sizeof dir, "%s", SL_BUILD_PLUGIN_DIR);
                return dir;
            }
        }
    }
    snprintf(dir, sizeof dir, "%s", SL_PLUGIN_INSTALL_DIR);
    return dir;
}

sl_status sl_registry_load_search_path(sl_registry *r, const char *const *spec_paths,
                                       size_t n, sl_error *err)
{
    for (size_t i = 0; i < n; i++) {
        sl_status st = load_entry(r, spec_paths[i], err);
        if (st != SL_OK)
            return st;
    }
    const char *env = getenv("STEINLAB_PLUGIN_PATH");
    if (env && *env) {
        char *copy = strdup(env);
        if (!copy)
            return sl_error_set(err, SL_ERR_NOMEM, "out of memory");
        sl_status st = SL_OK;
        char *save = NULL;
        for (char *tok = strtok_r(copy, ":", &save); tok && st == SL_OK;
             tok = strtok_r(NULL, ":", &save))
            if (*tok)
                st = load_entry(r, tok, err);
        free(copy);
        if (st != SL_OK) {
            sl_error_prefix(err, "STEINLAB_PLUGIN_PATH");
            return st;
        }
    }
    return sl_registry_load_dir(r, sl_registry_default_dir(), 0, err);
}

size_t sl_registry_count(const sl_registry *r) { return r->n_plugins; }

const sl_plugin *sl_registry_at(const sl_registry *r, size_t i, const char **path)
{
    if (i >= r->n_plugins)
        return NULL;
    if (path)
        *path = r->libs[r->plugins[i].lib].path;
    return r->plugins[i].desc;
}

const sl_plugin *sl_registry_find(const sl_registry *r, sl_plugin_kind kind,
                                  const char *name, const char **path)
{
    for (size_t i = 0; i < r->n_plugins; i++) {
        const sl_plugin *d = r->plugins[i].desc;
        if ((kind == 0 || d->kind == kind) && !strcmp(d->name, name)) {
            if (path)
                *path = r->libs[r->plugins[i].lib].path;
            return d;
        }
    }
    return NULL;
}

const char *sl_plugin_kind_name(sl_plugin_kind kind)
{
    switch (kind) {
    case SL_KIND_PRIOR: return "prior";
    case SL_KIND_REPRESENTATION: return "representation";
    case SL_KIND_ESTIMATOR: return "estimator";
    case SL_KIND_BASELINE: return "baseline";
    }
    return "unknown";
}
