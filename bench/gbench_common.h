// gbench_common.h — what moak's Google Benchmark micro-benches share: one
// context for the whole run (backends from MOAK_BACKENDS, threads from
// MOAK_GBENCH_THREADS, both optional), random weights in any format, and the
// counters every benchmark reports.
//
// The micro-benches time single kernels hot (same operands every
// iteration); moak-bench is the tool for cold, roofline-relative figures.
#ifndef MOAK_GBENCH_COMMON_H
#define MOAK_GBENCH_COMMON_H

#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "moak.h"

namespace gbench {

// The shared context (created on first use).  nullptr when it cannot be made.
moak_context *context();
void shutdown();

// Uniform random floats in [lo, hi), never zero; a fixed seed per call site.
std::vector<float> random_floats(size_t n, float lo, float hi, uint64_t seed);

// A weight of `experts` x rows x cols in `format` with random values, or
// nullptr (and the state skipped with the library's message).
moak_weight *make_weight(benchmark::State &state, moak_format format, int64_t experts, int64_t rows,
                         int64_t cols, uint64_t seed);

// Report bytes moved and operations done per iteration as rates, and the
// backend that ran as the label.
void report(benchmark::State &state, double bytes, double ops);

// Skip the benchmark with the library's last error when st is not MOAK_OK.
bool ok(benchmark::State &state, moak_status st, const char *call);

}  // namespace gbench

#endif
