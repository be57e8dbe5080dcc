/* The context's worker threads (see internal.h for the API). */
#ifndef MOAK_LIB_THREADPOOL_H
#define MOAK_LIB_THREADPOOL_H
#include "internal.h"
#endif
