/*
 * conform_run.h — running one case of moak-conform on one backend through the
 * public API: the case's inputs (made once from the seed, shared by the
 * reference and every backend), a context per backend whose verbose log is
 * captured (that is where a backend says why it declines), and the outputs.
 */
#ifndef MOAK_CONFORM_RUN_H
#define MOAK_CONFORM_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conform_cases.h"
#include "conform_verdict.h"
#include "moak.h"

#define CONFORM_LOG_BYTES 8192
#define CONFORM_REFUSALS 64

/* One backend under test: its context and what its dispatcher said. */
typedef struct conform_backend {
    char name[32];
    moak_context *ctx;
    char log[CONFORM_LOG_BYTES];  /* verbose lines since the case began */
    size_t log_used;
    /* Every refusal this backend gave, kept for the whole run: the dispatcher
     * logs a choice once per shape class and caches it, so a later case of
     * the same class finds its reason here. */
    struct {
        char what[200];
        char why[200];
    } refusals[CONFORM_REFUSALS];
    int n_refusals;
    int next_refusal;
} conform_backend;

/* Create b->ctx restricted to `name` (ref is appended by the library, so a
 * declined op still runs and the tool sees where), verbose, log captured;
 * flags are MOAK_CONTEXT_* (e.g. ALLOW_WEIGHT_EXPANSION). */
moak_status conform_backend_open(conform_backend *b, const char *name, int32_t threads, uint32_t flags);
void conform_backend_close(conform_backend *b);

typedef enum conform_outcome {
    CONFORM_PASS = 0,
    CONFORM_FAIL,
    CONFORM_DECLINED,            /* the backend said why it does not run the case */
    CONFORM_SKIPPED              /* the tool did not run it (memory limit, no reference) */
} conform_outcome;

const char *conform_outcome_name(conform_outcome o);

typedef struct conform_result {
    conform_outcome outcome;
    char ran_on[32];             /* backend that ran the op ("" if none) */
    double max_err;
    double bound;
    double seconds;              /* the op call alone */
    char detail[512];            /* why it failed, declined or was skipped */
} conform_result;

/* The inputs of one case in one format. */
typedef struct conform_inputs {
    moak_format format;
    /* matmul: w0 [rows][row_bytes(cols)]; moe: w0 gate, w1 up, w2 down */
    void *w[3];
    size_t w_size[3];
    void *scales[3];             /* the split-scale formats' scales tensors (else NULL) */
    size_t scales_size[3];
    float *bias[3];              /* matmul: bias[0] [rows]; moe: [E][inter] x2, [E][hidden] */
    float *x;                    /* matmul/moe/rmsnorm/rope input; route: logits */
    int32_t *ids;                /* moe */
    float *weights;              /* moe; indexer: w [total q][n_heads] */
    float *gamma;                /* rmsnorm */
    float *route_bias;           /* route */
    double *scores;              /* route: selection scores [tokens][E]; indexer: every causal score; double */
    float *k[CONFORM_MAX_SEQS];  /* attention: per sequence [L][n_kv][dk] */
    float *v[CONFORM_MAX_SEQS];  /* [L][n_kv][dv], NULL with shared V */
    float *q;                    /* [total q][n_heads][dk] */
    float *sinks;                /* [n_heads] */
    int32_t *positions;          /* rope */
    int32_t *sparse;             /* sparse attention: [total q][sparse_k] positions */
    int64_t *query_last;         /* indexer: each query's position (its last candidate) */
    int64_t score_stride;        /* indexer: scores is [total q][score_stride] */
    int64_t out_rows, out_cols;  /* shape of the float output */
} conform_inputs;

bool conform_make_inputs(const conform_case *c, moak_format f, uint64_t seed,
                         conform_inputs *in, char *err, size_t err_len);
void conform_free_inputs(conform_inputs *in);

/* An op's outputs: y [out_rows][out_cols]; routing: ids and weights. */
typedef struct conform_outputs {
    float *y;
    int32_t *ids;
    float *w;
} conform_outputs;

bool conform_alloc_outputs(const conform_case *c, const conform_inputs *in, conform_outputs *out);
void conform_free_outputs(conform_outputs *out);

/* Run the case on b.  On return res->outcome is CONFORM_PASS when the op ran
 * on b itself and wrote out (the comparison comes later), DECLINED with the
 * backend's reason when another backend ran it, FAIL on an error (or on a
 * decline without a reason).  Outputs are poisoned with NaN / -1 first. */
void conform_run_case(conform_backend *b, const conform_case *c, const conform_inputs *in,
                      conform_outputs *out, conform_result *res);

/* Compare out with the reference and set res's verdict. */
void conform_judge(const conform_case *c, const conform_inputs *in, const conform_outputs *ref,
                   const conform_outputs *out, conform_result *res);

/* Make out wrong on purpose by ten times the bound (the tool's self-test). */
void conform_perturb(const conform_case *c, const conform_inputs *in, const conform_outputs *ref,
                     conform_outputs *out);

#endif
