/* steinlab/params.h — parameter schemas and resolved parameters.
 *
 * Every plugin (and every core section of a spec) declares its parameters as a static
 * table of sl_param_def. The host validates a spec section against the table before
 * anything runs, fills in defaults, and hands the plugin a read-only sl_params. The same
 * table prints `steinlab plugins NAME` and generates docs/spec-reference.md. */
#ifndef STEINLAB_PARAMS_H
#define STEINLAB_PARAMS_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "steinlab/schedule.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sl_param_type {
    SL_PARAM_BOOL = 1,     /* true / false */
    SL_PARAM_INT,          /* integer within [min, max] */
    SL_PARAM_FLOAT,        /* number within [min, max]; a schedule when SL_PARAM_SCHEDULABLE */
    SL_PARAM_STRING,       /* any string */
    SL_PARAM_CHOICE,       /* one of `choices` */
    SL_PARAM_FLOAT_LIST,   /* list of numbers, each within [min, max] (each may be a
                              schedule when SL_PARAM_SCHEDULABLE); length in [min_len, max_len] */
    SL_PARAM_STRING_LIST,  /* list of strings; length in [min_len, max_len] */
    SL_PARAM_SECTION,      /* a nested map validated against `section` (defaults filled in;
                              default_value NULL means {}) */
    SL_PARAM_PLUGIN_LIST   /* a list of plugin sections of kind `plugin_kind`: each entry a
                              plugin name or a map with `plugin:` (and the plugin's keys and
                              an optional `label:`); the HOST resolves and creates them */
} sl_param_type;

enum {
    SL_PARAM_SCHEDULABLE = 1u << 0,  /* FLOAT / FLOAT_LIST elements accept [s0, v0, v1, s1] */
    SL_PARAM_REQUIRED = 1u << 1      /* the spec must give it (default_value is NULL) */
};

struct sl_param_schema;

typedef struct sl_param_def {
    const char *name;           /* key in the spec section; [a-z0-9_]+ */
    sl_param_type type;
    uint32_t flags;             /* SL_PARAM_* */
    const char *default_value;  /* the default as YAML text ("0.01", "[0.02, 0.98]", "sds",
                                   "[]"); NULL: required (with SL_PARAM_REQUIRED) or absent
                                   unless given (check with sl_params_has) */
    double min, max;            /* inclusive numeric range; use -INFINITY / INFINITY for none */
    const char *choices;        /* CHOICE only: alternatives separated by '|' ("sds|uniform") */
    int min_len, max_len;       /* lists only: allowed length; max_len 0 means unbounded */
    const char *doc;            /* one line for `steinlab plugins NAME` and the spec reference */
    const struct sl_param_schema *section;  /* SECTION only: the nested schema */
    int plugin_kind;            /* PLUGIN_LIST only: the sl_plugin_kind of the entries */
} sl_param_def;

typedef struct sl_param_schema {
    const sl_param_def *defs;   /* (count,) static storage */
    size_t count;
} sl_param_schema;

#define SL_PARAM_SCHEMA(table) \
    ((sl_param_schema){ (table), sizeof(table) / sizeof((table)[0]) })

/* Resolved, validated parameters of one spec section (defaults filled in). Owned by the
 * host; valid from a plugin's create() until its destroy() returns. Every accessor below
 * must be called with a name the schema declares and with the matching type: anything
 * else is a programming error and aborts with a message naming the parameter. */
typedef struct sl_params sl_params;

bool sl_params_has(const sl_params *p, const char *name);       /* given or defaulted */
bool sl_params_bool(const sl_params *p, const char *name);
int64_t sl_params_int(const sl_params *p, const char *name);
double sl_params_float(const sl_params *p, const char *name);   /* a schedule's value at step 0 */
sl_schedule sl_params_schedule(const sl_params *p, const char *name);  /* FLOAT (constant if
                                                                          given as a number) */
const char *sl_params_string(const sl_params *p, const char *name);   /* STRING and CHOICE */
size_t sl_params_list_len(const sl_params *p, const char *name);   /* also PLUGIN_LIST */
double sl_params_list_float(const sl_params *p, const char *name, size_t i);
sl_schedule sl_params_list_schedule(const sl_params *p, const char *name, size_t i);
const char *sl_params_list_string(const sl_params *p, const char *name, size_t i);
/* SECTION: the nested parameters (always present: defaults fill an absent section). */
const sl_params *sl_params_section(const sl_params *p, const char *name);

/* Iteration over resolved values, in schema order, for logging: the name of the i-th
 * parameter and its value as canonical YAML flow text ("0.01", "[0.02, 0.98]", "\"a b\"").
 * Absent optional parameters are skipped. The returned strings live as long as p. */
size_t sl_params_count(const sl_params *p);
const char *sl_params_name_at(const sl_params *p, size_t i);
const char *sl_params_yaml_at(const sl_params *p, size_t i);

/* The schema the parameters were resolved against. */
const sl_param_schema *sl_params_schema(const sl_params *p);

#ifdef __cplusplus
}
#endif
#endif
