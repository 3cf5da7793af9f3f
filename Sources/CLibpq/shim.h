#ifndef LOYALTY_CLIBPQ_SHIM_H
#define LOYALTY_CLIBPQ_SHIM_H
// Debian's libpq-dev installs libpq-fe.h under /usr/include/postgresql (found by the include path below);
// pipeline mode needs libpq 14 or later.
#if __has_include(<postgresql/libpq-fe.h>)
#include <postgresql/libpq-fe.h>
#else
#include <libpq-fe.h>
#endif
#endif
