/* steinlab/suggest.h — "did you mean ...?" for names a user typed. */
#ifndef STEINLAB_SUGGEST_H
#define STEINLAB_SUGGEST_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The candidate closest to `word` by edit distance (Levenshtein), if close enough to be a
 * plausible typo (distance <= max(2, strlen(word) / 3)), else NULL. Ties: the first. */
const char *sl_nearest_word(const char *word, const char *const *candidates, size_t n);

#ifdef __cplusplus
}
#endif
#endif
