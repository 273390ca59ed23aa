/* steinlab/version.h — library version. */
#ifndef STEINLAB_VERSION_H
#define STEINLAB_VERSION_H

#define SL_VERSION_STRING "0.1.0"

/* The version of the library the program runs against (may differ from the header's). */
const char *sl_version(void);

#endif
