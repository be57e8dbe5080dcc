/*
 * conform_verdict.h — the comparison at the heart of moak-conform: a
 * backend's output against the reference backend's, under the bounds that
 * moak.h writes beside each op (MOAK_BOUND_*).
 *
 * Kept apart from the tool (no context, no I/O) so that `make check` can feed
 * it deliberately wrong outputs and see it fail them.
 */
#ifndef MOAK_CONFORM_VERDICT_H
#define MOAK_CONFORM_VERDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moak.h"

/* The ops moak-conform checks (the tool's own list; the backend ABI's enum is
 * not part of the public API). */
typedef enum conform_op {
    CONFORM_MATMUL = 0,
    CONFORM_MOE,
    CONFORM_ROUTE,
    CONFORM_ATTENTION,
    CONFORM_RMSNORM,
    CONFORM_ROPE,
    CONFORM_INDEXER,             /* DeepSeek Sparse Attention's indexer (moak_indexer) */
    CONFORM_OP_COUNT
} conform_op;

/* "matmul", "moe", "route", "attention", "rmsnorm", "rope", "indexer". */
const char *conform_op_name(conform_op op);
/* -1 when the name is not an op. */
int conform_op_from_name(const char *name);

/* The bound moak.h states for op on format (the weight format for matmul and
 * MoE, the KV format for attention; ignored otherwise).  For routing it is
 * the weight tolerance MOAK_BOUND_ROUTE_WEIGHT (times max(1, scaling)). */
double conform_bound(conform_op op, moak_format format);

/* What a comparison found. */
typedef struct conform_error {
    double max_err;        /* the largest error in the op's own measure */
    int64_t worst_row;     /* where max_err is (-1 if nowhere) */
    int64_t worst_col;
    int64_t bad_row;       /* the first non-finite output or id mismatch (-1 if none) */
    int64_t bad_col;
    int64_t nonfinite;     /* NaN/Inf outputs where the reference is finite */
    int64_t ref_nonfinite; /* reference outputs not finite (or ids out of range): a broken reference */
    int64_t mismatches;    /* routing: ids that differ without a tie to excuse them */
} conform_error;

/* Row-relative error, as moak.h defines it for matmul, MoE, attention,
 * rmsnorm and rope: for each row r, err_r = max_j |out[r][j] - ref[r][j]| /
 * rms(ref[r]); max_err = max_r err_r.  A row whose reference is all zeros
 * counts any difference as an infinite error.  Non-finite outputs are
 * counted, not measured. */
void conform_row_error(const float *ref, const float *out, int64_t rows, int64_t cols,
                       conform_error *e);

/* Routing.  scores: the reference's selection scores [n_tokens][n_experts]
 * (computed by the caller from the logits, in double), used to excuse ids
 * that differ only where two experts' scores tie within
 * MOAK_BOUND_ROUTE_TIE of the row's largest |score|.  max_err is the largest
 * |w - ref_w| / max(1, scaling) over slots whose ids agree (or that a tie
 * swapped within the chosen set).  Invalid ids (out of range or repeated)
 * are mismatches. */
void conform_route_error(const int32_t *ref_ids, const float *ref_w,
                         const int32_t *ids, const float *w, const double *scores,
                         int64_t n_tokens, int32_t n_experts, int32_t top_k,
                         double scaling, conform_error *e);

/* The indexer.  scores: the tool's own scores of every causal position in
 * double, [n_queries][stride] (query t's positions 0..last[t]).  A slot's
 * position may differ from the reference's only where the two scores tie
 * within MOAK_BOUND_INDEXER_TIE of the query's largest |score| (else a
 * mismatch, as an invalid or repeated position is); where the reference has
 * -1 (fewer candidates than k) the output must be -1 with -INFINITY.
 * max_err: the largest |score - the tool's score of that position| over the
 * query's largest |score| (bound MOAK_BOUND_INDEXER_SCORE). */
void conform_indexer_error(const int32_t *ref_pos, const int32_t *pos, const float *out_scores,
                           const double *scores, const int64_t *last, int64_t stride, int64_t n_queries,
                           int32_t top_k, conform_error *e);

/* The verdict: no non-finite output, a finite reference, no id mismatch,
 * and max_err <= bound. */
bool conform_passes(const conform_error *e, double bound);

/* One line saying why a comparison failed ("row 3 col 17: error 0.12 > 0.05"),
 * or "" when it passed. */
void conform_explain(const conform_error *e, double bound, char *buf, size_t len);

#endif
