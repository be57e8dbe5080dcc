/*
 * bench_json.h — moak-bench results in Google Benchmark's JSON schema, so
 * that Google Benchmark's own tools (compare.py) read them:
 *
 *   { "context": { date, host_name, executable, num_cpus, mhz_per_cpu,
 *                  cpu_scaling_enabled, caches[], load_avg[], library_build_type,
 *                  + "moak": { version, machine (the probe), roofline, options } },
 *     "benchmarks": [ one "iteration" entry per timed repeat, then the
 *                     "aggregate" entries _median, _min, _max ] }
 *
 * Each entry has name, run_name, run_type, repetitions, repetition_index,
 * threads, iterations, real_time, cpu_time, time_unit ("us"), a label naming
 * the backend that ran, and the figures as counters: bytes, ops,
 * bytes_per_second, items_per_second (ops/s), GB_per_s, GOP_per_s, floor_us,
 * roofline_pct.  cpu_time is the wall time too (the work runs on a thread
 * pool; per-process CPU time would add the threads up).
 * The run name is <workload>/<format>/<backend as asked>[/hot], so that two
 * runs of "auto" compare even when the dispatcher's choice changed.
 */
#ifndef MOAK_BENCH_JSON_H
#define MOAK_BENCH_JSON_H

#include <stdbool.h>

#include <jansson.h>

#include "bench_run.h"
#include "roofline.h"

/* The run name of a result ("matmul-decode/q4_0/auto"). */
void bench_run_name(const bench_result *res, char *buf, size_t len);

/* The whole document. */
json_t *bench_results_json(const bench_result *results, int n, const bench_roofline *roof,
                           const moak_hw_info *hw, const bench_options *o);
bool bench_write_json(const char *path, const bench_result *results, int n, const bench_roofline *roof,
                      const moak_hw_info *hw, const bench_options *o);

#endif
