/* steinlab/suggest.h — names: the identifier rule, and "did you mean ...?" for names a
 * user typed. */
#ifndef STEINLAB_SUGGEST_H
#define STEINLAB_SUGGEST_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The candidate closest to `word` by edit distance (Levenshtein), if close enough to be a
 * plausible typo (distance <= max(2, strlen(word) / 3)), else NULL. Ties: the first. */
const char *sl_nearest_word(const char *word, const char *const *candidates, size_t n);

/* 1 if `name` is a valid steinlab name (plugins, labels, parameters, series): non-empty,
 * at most 64 characters of [a-z0-9_]; else 0. */
int sl_valid_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
