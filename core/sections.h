/* core/sections.h — the schemas of the spec keys the core itself owns.
 *
 * Top level: name, seed, steps, plugin_paths, and the sections prior,
 * representation, estimator, cameras, optimizer, log. The plugin sections (prior,
 * representation, estimator) hold `plugin:` (the plugin's name), an optional `label:`
 * and the plugin's own parameters; the estimator section also holds the core's
 * distillation keys below (t_range, weighting, noise_samples). The thread count is not a
 * spec key (`steinlab run --threads N` or OMP_NUM_THREADS): results do not depend on it,
 * so it must not make two specs differ. */
#ifndef STEINLAB_CORE_SECTIONS_H
#define STEINLAB_CORE_SECTIONS_H

#include "steinlab/params.h"

extern const sl_param_schema sl_schema_root;
extern const sl_param_schema sl_schema_cameras;
extern const sl_param_schema sl_schema_optimizer;
extern const sl_param_schema sl_schema_optimizer_group;   /* optimizer.groups.<name> */
extern const sl_param_schema sl_schema_estimator_core;
extern const sl_param_schema sl_schema_log;

/* The section keys of the root, NULL-terminated: reserved when resolving the root. */
extern const char *const sl_root_sections[];

#endif
