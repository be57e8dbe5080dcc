/* The hardware probe, run once per process (core-private). */
#ifndef MOAK_LIB_HWPROBE_H
#define MOAK_LIB_HWPROBE_H

#include <hwloc.h>
#include "moak.h"

/* The probe's result, computed on the first call under a once-guard;
 * MOAK_ISA_MAX is applied.  Never NULL. */
const moak_hw_info *moak_hw_get(void);

/* hwloc's topology for thread binding (loaded once, shared, read-only). */
hwloc_topology_t moak_hw_topology(void);

/* The ISA bits the CPU and OS support (cpuid + xgetbv, or getauxval). */
uint64_t moak_isa_detect(void);

/* Apply a MOAK_ISA_MAX value ("scalar", "avx2", "avx512", "neon", "dotprod",
 * "i8mm") to a detected mask.  Returns -1 for an unknown value. */
int moak_isa_apply_cap(const char *cap, uint64_t detected, uint64_t *capped);

#endif
