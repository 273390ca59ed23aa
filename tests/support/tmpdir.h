/* tests/support/tmpdir.h — a scratch directory for the files of one test case. */
#ifndef STEINLAB_TEST_TMPDIR_H
#define STEINLAB_TEST_TMPDIR_H

/* Creates /tmp/PREFIX-XXXXXX (a new, private directory; fails the test when it cannot be
 * made) and returns its path, valid until the next call. */
const char *test_tmpdir_make(const char *prefix);
/* The path of the directory made last. */
const char *test_tmpdir(void);
/* Removes the plain files in the directory, then the directory (not subdirectories: a
 * test that makes one removes it). */
void test_tmpdir_remove(void);
/* DIR/NAME in the directory; the last four results stay valid. */
const char *test_tmp_path(const char *name);

#endif
