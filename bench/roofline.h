/*
 * roofline.h — this machine's own ceilings, measured by moak-bench, and the
 * floor they put under each workload.
 *
 * Method: floor time = max(bytes / bandwidth, ops / peak), per part of a
 * workload (a layer sums its parts' floors).  Bandwidth is the DRAM read
 * bandwidth for a cold run (weights rotated through more memory than the L3
 * holds) and the L3 read bandwidth for a hot one whose working set fits the
 * L3.  The percentage of roofline reached is floor / measured time.
 *
 * Measured, all with every worker thread, each pinned to its own CPU:
 *   DRAM   a read-only stream over a buffer several times the caches the
 *          probe reports (and at least 1 GiB), read in windows so that each
 *          was last read most of the buffer ago;
 *   L3     the same over a buffer well inside the L3 but many times the L2s,
 *          read again and again;
 *   fp32   independent FMA chains on the widest vectors the ISA has;
 *   int8   independent int8 dot-product chains (VNNI where present);
 *   fp16   16-bit float dot products (AVX-512 BF16) where present, else the
 *          fp32 figure (f16 data then runs as converted fp32).
 * Each figure is the best of many short trials; trials in which some thread
 * lost its core to another process (thread CPU time < 90% of wall time) only
 * count when no trial ran clean, and then the roofline says it was disturbed.
 * The ISA-specific loops live in peak_<isa>.c, compiled with their own flags
 * and chosen at run time from moak_hw_probe's ISA bits.
 */
#ifndef MOAK_BENCH_ROOFLINE_H
#define MOAK_BENCH_ROOFLINE_H

#include <stdbool.h>
#include <stdint.h>

#include "moak.h"
#include "workload.h"

typedef struct bench_roofline {
    bool measured;
    int threads;
    double dram_gbps;            /* 1e9 bytes per second */
    double l3_gbps;
    double fp32_gops;            /* 1e9 operations per second */
    double int8_gops;
    double fp16_gops;
    double dram_buffer_bytes;
    double l3_buffer_bytes;
    double l3_bytes;             /* the L3 the probe reports (all instances) */
    char isa_path[32];           /* which loops ran: "avx512", "avx2", "scalar" */
    char fp32_method[64];
    char int8_method[64];
    char fp16_method[64];
    double seconds;              /* how long measuring took */
    /* No trial of some figure ran undisturbed (another process took a core
     * during every one): the figure is a lower bound of the machine's. */
    bool disturbed;
    double load_average;         /* the 1-minute load average after measuring */
} bench_roofline;

/* Measure with `threads` threads (0 = one per physical core). */
bool bench_measure_roofline(const moak_hw_info *hw, int threads, bench_roofline *r, char *err, size_t err_len);

/* The peak of a part, in ops per second (fp16: the better of the fp16 and
 * fp32 figures, since 16-bit data can run widened on the fp32 units). */
double bench_roofline_peak(const bench_roofline *r, bench_peak peak);

typedef struct bench_floor {
    double seconds;              /* the floor: sum over parts of max(memory, compute) */
    double memory_seconds;       /* sums of each side, for the report */
    double compute_seconds;
    const char *bound;           /* "memory" or "compute": the larger side */
    double bandwidth_gbps;       /* the bandwidth used (DRAM or L3) */
} bench_floor;

/* The floor of count on r.  hot: the weights stay in cache, so bandwidth is
 * the L3's when working_set_bytes fits the L3 the probe reports, else DRAM. */
void bench_roofline_floor(const bench_roofline *r, const bench_count *count, bool hot,
                          double working_set_bytes, bench_floor *floor);

/* Percentage of the roofline reached by a run of `seconds` (100 = at the floor). */
double bench_roofline_pct(const bench_floor *floor, double seconds);

/* ---- the measuring loops (peak_*.c); each returns an opaque sink value so
 * the compiler cannot drop the work ---------------------------------------- */

/* Read every byte of buf[0..bytes) (bytes a multiple of 256). */
uint64_t bench_read_scalar(const void *buf, size_t bytes);
/* `iters` rounds of independent fp32 FMAs; *ops receives what they count. */
float bench_fma_scalar(int64_t iters, double *ops);
int32_t bench_int8_scalar(int64_t iters, double *ops);

uint64_t bench_read_avx2(const void *buf, size_t bytes);
float bench_fma_avx2(int64_t iters, double *ops);
int32_t bench_int8_avx2(int64_t iters, double *ops);       /* maddubs + madd */
int32_t bench_int8_avxvnni(int64_t iters, double *ops);    /* vpdpbusd ymm */

uint64_t bench_read_avx512(const void *buf, size_t bytes);
float bench_fma_avx512(int64_t iters, double *ops);
int32_t bench_int8_avx512vnni(int64_t iters, double *ops); /* vpdpbusd zmm */
float bench_bf16_avx512(int64_t iters, double *ops);       /* vdpbf16ps zmm */

#endif
