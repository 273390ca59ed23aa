/* core/spec.h — experiment specs: command-line overrides and schema printing. The tree
 * itself, parsing and validation against schemas are public (steinlab/spec_tree.h), so
 * plugins can read structured files of their own with the same error messages.
 *
 * Error messages have one shape everywhere:
 *   FILE:LINE:COL: DOTTED.KEY: expected WHAT, found WHAT[; did you mean 'KEY'?]
 * where FILE is the spec's path, or "<command line>" for an override (COL then counts
 * characters of the override argument, 1-based). */
#ifndef STEINLAB_CORE_SPEC_H
#define STEINLAB_CORE_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "steinlab/params.h"
#include "steinlab/status.h"
#include "steinlab/spec_tree.h"
#include "steinlab/suggest.h"

/* Applies "dotted.key=VALUE" to a MAP root. VALUE is parsed as YAML (so "[1, 2]", "true",
 * "3" and "{a: 1}" work); missing intermediate maps are created; a path through a
 * non-map value is an error naming the override. */
sl_status sl_spec_override(sl_node *root, const char *assignment, sl_error *err);

/* Prints a schema: SL_SCHEMA_TEXT for `steinlab plugins NAME` (aligned columns: name,
 * type, default, range/choices, doc), SL_SCHEMA_MARKDOWN for the spec reference (a table). */
typedef enum sl_schema_format { SL_SCHEMA_TEXT = 0, SL_SCHEMA_MARKDOWN = 1 } sl_schema_format;
void sl_schema_print(FILE *out, const sl_param_schema *schema, sl_schema_format format);

/* Human description of what a parameter accepts: "a number in [0, 1] or a schedule
 * [start_step, start_value, end_value, end_step]", "one of sds|uniform|fantasia3d", ... */
void sl_param_describe(const sl_param_def *def, char *buf, size_t size);

#endif
