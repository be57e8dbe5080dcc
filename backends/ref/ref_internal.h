/*
 * Private declarations of the reference backend ("ref").
 *
 * ref is the ground truth of moak: every other backend is compared with it.
 * It is plain scalar C that a reader can check line by line against the
 * formulas in moak.h: activations and intermediate vectors are stored as
 * float32, every reduction (dot product, sum of squares, softmax
 * denominator) is accumulated in double, and weights and KV rows are
 * dequantized to float32 with moak_dequantize_row before use.
 *
 * Work is split over the context's thread pool so that every output element
 * is computed by exactly one task, always in the same order, whatever thread
 * runs it: results are bitwise reproducible for any thread count.
 */
#ifndef MOAK_BACKENDS_REF_INTERNAL_H
#define MOAK_BACKENDS_REF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "moak_backend.h"

/* One context's instance of the backend. */
typedef struct ref_state {
    moak_backend_env env;        /* copied at init: pool, logging, errors */
    int32_t n_threads;           /* >= 1: how many per-thread scratch slots an op needs */
} ref_state;

/* A weight packed by ref: the canonical bytes of moak.h, unchanged, in one
 * 64-byte aligned block (expert-major, then row-major). */
typedef struct ref_weight {
    moak_format format;
    int64_t n_experts;
    int64_t rows;
    int64_t cols;
    size_t row_bytes;            /* moak_format_local_row_bytes(format, cols) */
    const unsigned char *data;   /* aligned start of the rows */
    void *allocation;            /* what to free */
} ref_weight;

/* The canonical bytes of row `row` of expert `expert`. */
static inline const unsigned char *ref_weight_row(const ref_weight *w, int64_t expert,
                                                  int64_t row)
{
    return w->data + ((size_t)expert * (size_t)w->rows + (size_t)row) * w->row_bytes;
}

/* ---- helpers (backend_ref.c) --------------------------------------------- */

/* malloc of count * elem_size bytes, NULL on overflow or failure; a count
 * of 0 still returns a valid (1-byte) block so callers need no special case. */
void *ref_alloc_array(size_t count, size_t elem_size);
/* count * elem_size * n_threads: per-thread scratch, one slot per thread. */
void *ref_alloc_per_thread(const ref_state *st, size_t count, size_t elem_size);
/* Set the context's detail message ("ref: " + the text) and return status. */
moak_status ref_error(const ref_state *st, moak_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Report an allocation failure ("out of memory for <what>") and return its status. */
moak_status ref_out_of_memory(const ref_state *st, const char *what);
/* Run fn over n_tasks tasks on the context's pool (nothing when n_tasks is 0). */
void ref_parallel_for(const ref_state *st, int64_t n_tasks, moak_task_fn fn, void *arg);

/* sum_i a[i] * b[i] in double.  Four partial sums (i mod 4, each in index
 * order, then (s0 + s1) + (s2 + s3)) keep four additions in flight, so ref
 * stays fast enough for real shapes; the order is fixed, so the result is
 * too.  Each product of two floats is exact in double, so the result does
 * not depend on whether the compiler fuses the multiply and the add. */
double ref_dot(const float *a, const float *b, int64_t n);

/* ---- the ops (one file each) ---------------------------------------------- */

/* Attention and the indexer: the sequence index i with q_offsets[i] <=
 * token < q_offsets[i + 1].  Sequences with q_len 0 share their offset with
 * the next one; the search lands on the last of those, which holds token. */
static inline int32_t ref_sequence_of_token(const int64_t *q_offsets, int32_t n_seqs, int64_t token)
{
    int32_t lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        const int32_t mid = lo + (hi - lo + 1) / 2;
        if (q_offsets[mid] <= token)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

moak_status ref_matmul(void *state, const moak_matmul_args *args);
moak_status ref_moe_ffn(void *state, const moak_moe_args *args);
moak_status ref_moe_route(void *state, const moak_route_args *args);
moak_status ref_attention(void *state, const moak_attention_args *args);
moak_status ref_rmsnorm(void *state, const moak_rmsnorm_args *args);
moak_status ref_rope(void *state, const moak_rope_args *args);
moak_status ref_indexer(void *state, const moak_indexer_args *args);
moak_status ref_gated_delta(void *state, const moak_gated_delta_args *args);

#endif /* MOAK_BACKENDS_REF_INTERNAL_H */
