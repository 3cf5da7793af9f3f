#ifndef LOYALTY_CHIREDIS_SHIM_H
#define LOYALTY_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#endif
