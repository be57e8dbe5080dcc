/*
 * workload.h — moak-bench's workloads (read from workloads.json) and what
 * each one costs: the bytes it must move and the operations it must do,
 * counted from its shape alone, so that a result can be set against the
 * machine's roofline.
 *
 * Counting rules (the floor of a workload is only as honest as these):
 *   matmul     bytes = W (rows x row_bytes(format, cols)) + x + y (f32);
 *              ops = 2 m n k.
 *   MoE        bytes = the chosen experts' gate, up and down weights only
 *              (a decode token reads top_k experts, never the others) + x + y
 *              + ids and weights; ops = 6 tokens top_k hidden inter.
 *   attention  bytes = every K and V row a query can see, once per KV head
 *              (GQA shares it across the group; a shared-V cache reads K
 *              only) + q + out; ops = 2 (dk + dv) n_heads per visible
 *              (query, key) pair (causal: query at position p sees p + 1).
 *   sparse     attention over sparse_k listed positions (DeepSeek Sparse
 *   attention  Attention): bytes = the K (and V) rows of the min(sparse_k,
 *              visible) positions a decode query lists + q + out + the list
 *              (4 bytes a slot); ops = 2 (dk + dv) n_heads per listed key.
 *              What it does NOT read is the point: the rest of the cache.
 *   indexer    bytes = every visible index key (one row of index_head_dim in
 *              the KV format) + q (index heads x dim) + w + the top-k output
 *              (positions 4 bytes, scores 4 bytes a slot); ops = per visible
 *              key and index head, 2 dim (the dot) + 2 (relu, weight and add).
 *              The selection (n log k compares) is not counted: it is not
 *              arithmetic of either peak.
 *   dsa        indexer + sparse attention, each its own part.
 *   gated      two parts.  "conv": bytes = the tokens' q,k,v inputs (f32, C =
 *   delta      2 hk dk + hv dv channels) + the conv weights (C x kernel) + the
 *              conv state read and written ((kernel-1) x C each); ops = per
 *              token C (2 kernel + 4) (taps, SiLU) + 6 hk dk (two L2 norms).
 *              "delta": bytes = the f32 state read and written once
 *              (2 x hv dk dv x 4: it does not fit a core's L2) + gates, beta
 *              and the output; ops: decode (1 token) the recurrence, 7 dk dv
 *              per v-head (decay 1, S^T k 2, rank-1 update 2, S^T q 2);
 *              prefill the chunked (WY) form as executed, per chunk of L
 *              (<= 64) tokens and v-head: 2L^2 (3 dk + 2 dv) (K K^T, Q K^T,
 *              T beta V, T beta K, P U) + 6 L dk dv (W S0, Q S0, K^T U) +
 *              L (L-1)(2L-1)/3 (the triangular inverse, row by row) — about
 *              1.6x the recurrence's 7 dk dv a token at L = 64: the price of
 *              running as matrix products.
 *   layer      the sum of its ops, each with its own peak (see layer parts).
 * An integer operation is a multiply or an add, as a floating one: an int8
 * multiply-accumulate counts 2, like an FMA.
 */
#ifndef MOAK_BENCH_WORKLOAD_H
#define MOAK_BENCH_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moak.h"

typedef enum bench_kind {
    BENCH_MATMUL = 0,
    BENCH_MOE,
    BENCH_ATTENTION,
    BENCH_LAYER,
    BENCH_INDEXER,               /* moak_indexer over an index cache */
    BENCH_DSA,                   /* moak_indexer, then sparse attention over its choice */
    BENCH_GATED_DELTA            /* moak_gated_delta_rule: n_heads v heads, n_kv_heads q/k heads */
} bench_kind;

typedef struct bench_workload {
    char name[64];
    char model[48];
    char source[256];
    char description[200];
    bench_kind kind;
    bool is_default;
    moak_format format;          /* weights (matmul, moe, layer) or KV (attention) */
    moak_format kv_format;       /* layer: the cache */
    /* matmul: y[m x n] = x[m x k] W^T */
    int64_t m, n, k;
    /* moe and layer */
    int64_t tokens, hidden, inter, n_experts;
    int32_t top_k;
    moak_activation activation;
    moak_route_method route;
    /* attention and layer */
    int32_t n_heads, n_kv_heads, head_dim_k, head_dim_v;
    bool shared_v, sinks;
    float scale, rope_theta;
    int64_t cached;              /* tokens in the cache, queries included */
    int64_t q_len;               /* the newest q_len cached tokens are the queries */
    /* sparse attention, indexer, dsa: positions kept per query (0 = dense attention) */
    int32_t sparse_k;
    int32_t index_heads, index_dim; /* indexer, dsa: index heads and their dims */
    moak_gate_kind gate;         /* gated delta */
    int32_t conv_kernel;         /* gated delta */
} bench_workload;

typedef struct bench_workload_list {
    bench_workload *items;
    int count;
} bench_workload_list;

/* Read workloads.json.  false with a message in err on error. */
bool bench_load_workloads(const char *path, bench_workload_list *list, char *err, size_t err_len);
void bench_free_workloads(bench_workload_list *list);
const bench_workload *bench_find_workload(const bench_workload_list *list, const char *name);

const char *bench_kind_name(bench_kind kind);
/* Is f a format this workload can take (weights for matmul/moe/layer, a KV
 * format with dims it allows for attention)? */
bool bench_format_fits(const bench_workload *w, moak_format f, char *why, size_t why_len);

/* Which peak bounds a part's arithmetic. */
typedef enum bench_peak {
    BENCH_PEAK_FP32 = 0,         /* fp32 FMA */
    BENCH_PEAK_INT8,             /* int8 dot products (VNNI) */
    BENCH_PEAK_FP16              /* 16-bit float dot products or FMA */
} bench_peak;

/* The peak a weight format's matmul is bounded by: integer formats run
 * int8 dot products, f16/bf16 16-bit ones, f32 fp32 FMA. */
bench_peak bench_peak_of_format(moak_format f);
const char *bench_peak_name(bench_peak p);

#define BENCH_MAX_PARTS 12

typedef struct bench_part {
    const char *what;
    double bytes;
    double ops;
    bench_peak peak;
} bench_part;

typedef struct bench_count {
    int n_parts;
    bench_part parts[BENCH_MAX_PARTS];
    double bytes;                /* sums over the parts */
    double ops;
} bench_count;

void bench_count_matmul(bench_count *c, moak_format f, int64_t m, int64_t n, int64_t k);
/* distinct_experts: how many experts the routing chose (bytes are theirs only). */
void bench_count_moe(bench_count *c, moak_format f, int64_t tokens, int64_t hidden, int64_t inter,
                     int32_t top_k, int64_t distinct_experts);
/* One sequence: `cached` tokens in the cache, the newest q_len the queries. */
void bench_count_attention(bench_count *c, moak_format kv, int32_t n_heads, int32_t n_kv_heads,
                           int32_t dk, int32_t dv, bool shared_v, int64_t cached, int64_t q_len,
                           bool causal, int32_t window);
/* Sparse attention of one decode query over sparse_k listed positions of `cached`. */
void bench_count_sparse_attention(bench_count *c, moak_format kv, int32_t n_heads, int32_t n_kv_heads,
                                  int32_t dk, int32_t dv, bool shared_v, int64_t cached, int32_t sparse_k);
/* The indexer for one decode query over `cached` index keys, keeping top_k. */
void bench_count_indexer(bench_count *c, moak_format kv, int32_t index_heads, int32_t index_dim, int64_t cached,
                         int32_t top_k);
/* The gated delta rule over `tokens` tokens of one sequence (1 = decode). */
void bench_count_gated_delta(bench_count *c, int32_t hk, int32_t hv, int32_t dk, int32_t dv, int32_t kernel,
                             moak_gate_kind gate, int64_t tokens);
/* A whole decode layer (see workloads.json's layer-decode). */
void bench_count_layer(bench_count *c, const bench_workload *w, moak_format f);

/* The workload's count in format f; distinct_experts applies to MoE (0 =
 * top_k, the decode case). */
void bench_count_workload(bench_count *c, const bench_workload *w, moak_format f, int64_t distinct_experts);

#endif
