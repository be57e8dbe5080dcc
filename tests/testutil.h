/*
 * testutil.h — what every moak test shares: a replayable RNG, random data
 * that is never zero, NaN poisoning, the error metric of moak.h, an
 * independent double-precision reading of every format's bytes, and a loop
 * over the backends this machine can run.
 *
 * Tests use the public API (moak.h) only.  Nothing here calls the library to
 * compute an expected value: the format code below is written from the byte
 * layouts in moak.h, not from lib/formats.c.
 *
 * Output convention: one line per case,
 *   <backend>[-><ran>] <op> <format> <shape> err=<e> bound=<b> ok|FAIL
 * and the exit status automake expects: 0 pass, 1 fail, 77 skip, 99 hard error.
 */
#ifndef MOAK_TESTUTIL_H
#define MOAK_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "moak.h"

#define T_EXIT_PASS 0
#define T_EXIT_FAIL 1
#define T_EXIT_SKIP 77
#define T_EXIT_HARD 99

#if defined(__GNUC__)
#  define T_PRINTF(f, a) __attribute__((format(printf, f, a)))
#  define T_NORETURN __attribute__((noreturn))
#else
#  define T_PRINTF(f, a)
#  define T_NORETURN
#endif

/* ---- start, report, finish ------------------------------------------------- */

/* Seeds the RNG from MOAK_TEST_SEED (or the clock), prints the seed and the
 * ISA level in force, and checks that MOAK_ISA_MAX, when set, really capped
 * the probe (a level that silently does nothing would test nothing). */
void t_init(const char *test_name);
uint64_t t_seed(void);

/* One result line; counts a failure when !(err <= bound) (NaN fails). */
void t_report(const char *backend, const char *ran, const char *op, const char *format,
              const char *shape, double err, double bound);
/* One pass/fail line for a condition that is not an error figure. */
void t_check(int ok, const char *fmt, ...) T_PRINTF(2, 3);
/* Counts a failure and prints the line. */
void t_fail(const char *fmt, ...) T_PRINTF(1, 2);
/* A comment line in the log (starts with '#'). */
void t_note(const char *fmt, ...) T_PRINTF(1, 2);
/* A broken test set-up (not a library result): print and exit 99. */
void t_die(const char *fmt, ...) T_PRINTF(1, 2) T_NORETURN;
int t_failures(void);
/* Prints the summary (with the seed to replay on failure); returns the exit status. */
int t_finish(void);

/* "MOAK_ERR_CACHE_FULL" etc. (the test's own table, for short log lines). */
const char *t_status_name(moak_status st);

/* Exit 99 with the context's message when st != MOAK_OK (set-up calls only). */
void t_ok(moak_status st, const moak_context *ctx, const char *what);

/* ---- random numbers (xoshiro256**, seeded by splitmix64) ------------------- */

uint64_t t_rand_u64(void);
double t_uniform(double lo, double hi);       /* [lo, hi) */
int64_t t_rand_int(int64_t lo, int64_t hi);   /* [lo, hi], inclusive */
double t_normal(void);                        /* N(0, 1) */
/* Fill with N(0, stddev) values; never exactly zero. */
void t_fill_normal(float *x, size_t n, double stddev);
/* Fill with values uniform in [lo, hi); never exactly zero. */
void t_fill_uniform(float *x, size_t n, double lo, double hi);
/* A random permutation of 0..n-1 (Fisher-Yates). */
void t_shuffle_i32(int32_t *v, int32_t n);

/* ---- poisoning and allocation ---------------------------------------------- */

/* Quiet NaN in every element: an element the library does not write fails. */
void t_poison_f32(float *x, size_t n);
/* A fixed non-zero byte pattern (for memcmp after a failed call). */
void t_poison_bytes(void *p, size_t n);
/* malloc that exits 99 on failure; t_free is free. */
void *t_malloc(size_t bytes);
void *t_calloc(size_t count, size_t size);
float *t_alloc_f32(size_t n);
double *t_alloc_f64(size_t n);

/* ---- the error metric of moak.h -------------------------------------------- */

/* max_j |y[j] - ref[j]| / rms(ref).  +inf when y has a NaN/Inf where ref is
 * finite (so a poisoned, unwritten element always fails). */
double t_row_error(const float *y, const double *ref, int64_t n);
/* The largest t_row_error over rows of `n` elements. */
double t_max_row_error(const float *y, const double *ref, int64_t rows, int64_t n);

/* ---- formats, read from the byte layouts in moak.h -------------------------- */

double t_f16_to_double(uint16_t h);
double t_bf16_to_double(uint16_t h);
/* Round to the nearest f16/bf16, ties to even (what the library stores). */
uint16_t t_double_to_f16(double v);
uint16_t t_float_to_bf16(float v);
/* The formats before the release formats of moak.h: what the tests that
 * draw random block bytes (t_random_weight_row) loop over.  The release
 * formats, whose scales may live apart, are tested in test_release_formats. */
#define T_CLASSIC_FORMATS (MOAK_FORMAT_I4_G128 + 1)

/* Elements per block (cols for I8_ROW), bytes per row; 0 for unknown formats
 * (and for a release format when cols is not a multiple of its block). */
int64_t t_block_elems(moak_format f, int64_t cols);
size_t t_row_bytes(moak_format f, int64_t cols);
const char *t_format_name(moak_format f);   /* never NULL */
/* Dequantize one row of `cols` elements into double. */
void t_dequant_row(moak_format f, const uint8_t *row, int64_t cols, double *dst);
/* Random, valid bytes for one row whose elements have roughly `rms` size.
 * int8 fields use [-127, 127] unless full_int8 (then -128 too); the padding
 * of the last block is random too: moak.h says it is never read back. */
void t_random_weight_row(moak_format f, int64_t cols, double rms, int full_int8, uint8_t *row);
/* rows x cols random weights: returns bytes (caller frees) and, when deq is
 * non-NULL, the same weights dequantized in double [rows][cols]. */
uint8_t *t_random_weights(moak_format f, int64_t rows, int64_t cols, double rms,
                          size_t *bytes, double **deq);
/* What a KV cache of format f stores for n f32 values (n a multiple of 32
 * for Q8_0), read back in double: F16/BF16 round to nearest even, Q8_0 as
 * ggml's reference quantizer (d = amax/127, q = round(x * (1/d)), d stored as f16). */
void t_kv_round_trip(moak_format f, const float *src, int64_t n, double *dst);

/* ---- backends and contexts --------------------------------------------------- */

#define T_MAX_BACKENDS 16

typedef struct t_backend {
    char name[32];
    moak_context *ctx;
} t_backend;

/* The backends available on this machine (moak_backend_query), limited to
 * MOAK_TEST_BACKENDS (comma list) when set, each with a context whose
 * preference list is just its name (the core appends ref).  num_threads 0 =
 * default.  Returns the count; prints the list and why others are absent. */
int t_open_backends(t_backend *out, int max, int32_t num_threads);
void t_close_backends(t_backend *b, int n);
/* A context for a preference list (NULL = default), exits 99 on failure. */
moak_context *t_context(const char *backends, int32_t num_threads);

/* The most worker threads a test may ask for: 1 when the tests run under
 * MOAK_TEST_EMULATOR (qemu-user may hang creating threads), else 3. */
int32_t t_max_threads(void);

/* The bound a backend is held to: `ref_bound` when `ran` is "ref" (tight,
 * against the double oracle), else the moak.h bound plus ref_bound (the
 * moak.h bound is relative to ref, and ref itself is ref_bound from the oracle). */
double t_bound_for(const char *ran, double ref_bound, double moak_bound);

/* Matmul/MoE bounds of moak.h for a format. */
double t_matmul_bound(moak_format f);
double t_moe_bound(moak_format f);

#endif
