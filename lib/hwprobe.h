/* The hardware probe, run once per process (core-private).
 *
 * hwprobe.c owns the topology (hwloc) and the once-guard; hwprobe_isa.c
 * owns the instruction-set side (cpuid/xgetbv, getauxval) and MOAK_ISA_MAX. */
#ifndef MOAK_LIB_HWPROBE_H
#define MOAK_LIB_HWPROBE_H

#include <hwloc.h>
#include "moak.h"

/* The probe's result, computed on the first call under a once-guard;
 * MOAK_ISA_MAX is applied.  Never NULL.  When MOAK_ISA_MAX holds an unknown
 * value, isa is 0 (no SIMD: the safe choice) and moak_hw_cap_error() says
 * why; callers that can fail (moak_hw_probe, moak_context_create) check it. */
const moak_hw_info *moak_hw_get(void);

/* NULL, or the message for an unknown MOAK_ISA_MAX value, e.g.
 * "MOAK_ISA_MAX: unknown value 'avx3' (expected scalar, avx2, avx512, neon,
 * dotprod, i8mm)".  Runs the probe if it has not run yet. */
const char *moak_hw_cap_error(void);

/* hwloc's topology for thread binding (loaded once, shared, read-only).
 * NULL when hwloc could not load one: callers then skip binding. */
hwloc_topology_t moak_hw_topology(void);

/* The ISA bits the CPU and OS support (cpuid + xgetbv, or getauxval).
 * On x86-64 this asks Linux for permission to use AMX tile data, since AMX
 * is only usable once that permission is granted. */
uint64_t moak_isa_detect(void);

/* The CPU's brand string from cpuid leaves 0x80000002..4, trimmed, into
 * buf; 1 when there is one (x86 only), else 0 and buf is untouched. */
int moak_isa_brand_string(char *buf, size_t len);

/* Apply a MOAK_ISA_MAX value ("scalar", "avx2", "avx512", "neon", "dotprod",
 * "i8mm"; case-insensitive) to a detected mask.  A cap keeps only the bits
 * of its level, so a level of the other architecture leaves no SIMD bit.
 * SVE is kept by no level (moak has no SVE kernels; uncapped it is still
 * reported).  cap NULL or "" = no cap.  Returns -1 for an unknown value
 * (then *capped is untouched), else 0. */
int moak_isa_apply_cap(const char *cap, uint64_t detected, uint64_t *capped);

/* The canonical spelling of a known cap value ("avx2"), or NULL. */
const char *moak_isa_cap_canonical(const char *cap);

/* The comma-separated list of the values moak_isa_apply_cap accepts. */
#define MOAK_ISA_CAP_VALUES "scalar, avx2, avx512, neon, dotprod, i8mm"

#endif
