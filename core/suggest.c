/* core/suggest.c — "did you mean" for misspelt keys and choices.
 *
 * Plain Levenshtein distance (insert, delete, substitute each cost 1) over bytes. A
 * candidate counts as a plausible typo when its distance is at most max(2, len(word)/3):
 * two edits always (short keys like "lr" vs "l"), and about one edit in three for long
 * ones, so "guidance_scal" finds "guidance_scale" but "seed" does not find "steps". */
#include <stdlib.h>
#include <string.h>

#include "steinlab/suggest.h"

/* Edit distance between a and b, or SIZE_MAX when the work row cannot be allocated.
 * One row of the DP table suffices: row[j] holds d(a[:i], b[:j]). */
static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
    size_t *row = malloc((nb + 1) * sizeof *row);
    if (!row)
        return (size_t)-1;
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];  /* d(a[:i-1], b[:j-1]) */
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];  /* d(a[:i-1], b[:j]) */
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    size_t d = row[nb];
    free(row);
    return d;
}

const char *sl_nearest_word(const char *word, const char *const *candidates, size_t n)
{
    if (!word || !candidates)
        return NULL;
    size_t len = strlen(word);
    size_t limit = len / 3 > 2 ? len / 3 : 2;
    const char *best = NULL;
    size_t best_d = limit + 1;
    for (size_t k = 0; k < n; k++) {
        const char *c = candidates[k];
        if (!c)
            continue;
        size_t clen = strlen(c);
        /* The length difference is a lower bound on the distance: skip hopeless ones
         * without running the DP. */
        size_t gap = clen > len ? clen - len : len - clen;
        if (gap >= best_d)
            continue;
        size_t d = edit_distance(word, len, c, clen);
        if (d < best_d) {  /* strict: on ties the earlier candidate stays */
            best_d = d;
            best = c;
        }
    }
    return best;
}

int sl_valid_name(const char *name)
{
    if (!name || !*name || strlen(name) > 64)
        return 0;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
            return 0;
    return 1;
}
