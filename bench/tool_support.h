/*
 * tool_support.h — small pieces shared by moak's two command-line tools,
 * moak-bench (bench/) and moak-conform (tests/conform/): finding their data
 * files, a seeded random generator, a wall clock, and the machine and
 * backend descriptions both write into their reports.
 *
 * The tools use the public API of moak.h only, like any application.
 */
#ifndef MOAK_TOOL_SUPPORT_H
#define MOAK_TOOL_SUPPORT_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "moak.h"

/* Locate a data file of the tools.  Tried in order, the first that opens wins:
 *   explicit_path (a --data option; when given, it is the only candidate),
 *   the environment variable env_var,
 *   the directory of the running executable + the file's base name,
 *   the source tree the tools were built from + src_relpath,
 *   the installed data directory ($(pkgdatadir)) + the base name.
 * Returns a malloc'ed path, or NULL (then *tried lists the candidates). */
char *tool_find_data(const char *explicit_path, const char *env_var,
                     const char *src_relpath, char *tried, size_t tried_len);

/* Seconds from a monotonic clock. */
double tool_now(void);

/* xoshiro-style generator seeded by splitmix64: the same seed gives the same
 * data on every machine, so a failing case can be replayed with --seed. */
typedef struct tool_rng {
    uint64_t s[4];
} tool_rng;

void tool_rng_seed(tool_rng *rng, uint64_t seed);
uint64_t tool_rng_next(tool_rng *rng);
/* Uniform in [lo, hi). */
double tool_rng_uniform(tool_rng *rng, double lo, double hi);
/* Uniform integer in [lo, hi] (inclusive). */
int64_t tool_rng_range(tool_rng *rng, int64_t lo, int64_t hi);
/* Fill with uniform values in [lo, hi), never exactly zero (a zero input
 * hides kernels that ignore it). */
void tool_rng_fill(tool_rng *rng, float *dst, int64_t n, float lo, float hi);
/* A seed from the clock and the process id, for runs without --seed. */
uint64_t tool_fresh_seed(void);

/* The probe as a JSON object (arch, cpu, cores, caches, ISA names...). */
json_t *tool_hw_json(const moak_hw_info *hw);
/* Every backend moak knows: name, built, available, reason. */
json_t *tool_backends_json(void);
/* Comma-separated names of the ISA bits set in mask, into buf. */
void tool_isa_names(uint64_t mask, char *buf, size_t len);
/* A few human lines about the machine (probe) for the top of a report. */
void tool_print_hw(FILE *out, const moak_hw_info *hw);

/* Total bytes of one cache level (size of one instance x instances); level is
 * 1-based (3 = L3).  0 when the probe reports no such level. */
uint64_t tool_cache_total(const moak_hw_info *hw, int level);

/* Split "a,b,c" in place into at most max tokens; returns the count. */
int tool_split_list(char *list, char **tokens, int max);

#endif
