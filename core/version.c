/* core/version.c — the library's version. */
#include "steinlab/version.h"

const char *sl_version(void) { return SL_VERSION_STRING; }
