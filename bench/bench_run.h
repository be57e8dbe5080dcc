/*
 * bench_run.h — timing one workload on one backend through the public API.
 *
 * Cold (the default): the bytes a call reads are not in cache when it runs.
 * Each workload keeps several instances of what it reads (weight copies,
 * cached sequences, whole layers) and every call takes the next one, so that
 * between two uses of the same bytes more than `rotate_bytes` (several times
 * the L3) have been read.  MoE decode also walks its experts in groups of
 * top_k, so one instance already cycles through all its experts.
 * Hot (--hot): one instance, the same bytes every call.
 *
 * Protocol: one call (where it ran, and a first estimate of its time), one
 * untimed repeat (warm-up, and a better estimate), then `repeat` timed
 * repeats of as many calls as make a repeat last min_repeat_seconds; a
 * workload slower than its time budget gets fewer repeats (at least one
 * call), and the report says how many it had.
 */
#ifndef MOAK_BENCH_RUN_H
#define MOAK_BENCH_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "moak.h"
#include "roofline.h"
#include "workload.h"

#define BENCH_MAX_REPEATS 64

typedef struct bench_options {
    bool hot;
    int repeat;                  /* timed repeats (1..BENCH_MAX_REPEATS) */
    int32_t threads;             /* context threads, 0 = the library's default */
    double rotate_bytes;         /* cold: bytes read between two uses of the same bytes */
    double max_mem_bytes;        /* most bytes of weights/caches one workload allocates */
    double min_repeat_seconds;
    double budget_seconds;       /* per workload, after setup */
    uint64_t seed;
} bench_options;

typedef struct bench_result {
    const bench_workload *w;
    moak_format format;
    char backend[32];            /* as asked: a name or "auto" */
    char ran_on[48];             /* the backend(s) that ran it */
    bool ok;
    bool declined;               /* the asked backend let another run it */
    char message[320];
    bool hot;
    int32_t threads;
    int repeats;
    int64_t iterations;          /* calls per repeat */
    double times[BENCH_MAX_REPEATS]; /* seconds per call, each repeat */
    double median, min, max;
    bench_count count;
    bench_floor floor;
    double pct;                  /* of the roofline: floor / median */
    int instances;
    double instance_bytes;       /* what one instance allocates */
    int64_t experts_allocated;   /* MoE: experts allocated per weight (<= the model's) */
    int64_t distinct_experts;    /* MoE: experts a call reads */
    double setup_seconds;
} bench_result;

/* Run w in format f on ctx.  `backend` is what the user asked for ("auto" or
 * a name); when it names a backend and another one ran the op, the result is
 * marked declined and not timed. */
void bench_run_workload(moak_context *ctx, const char *backend, const bench_workload *w, moak_format f,
                        const bench_options *o, const bench_roofline *roof, bench_result *res);

/* Median, min and max of n values (n >= 1). */
void bench_stats(const double *v, int n, double *median, double *min, double *max);

#endif
