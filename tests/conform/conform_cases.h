/*
 * conform_cases.h — the cases of moak-conform: real model shapes read from
 * cases.json (with jansson), edge shapes from the same file, and random
 * shapes drawn from the run's seed.
 */
#ifndef MOAK_CONFORM_CASES_H
#define MOAK_CONFORM_CASES_H

#include <stdbool.h>
#include <stdint.h>

#include "conform_verdict.h"
#include "moak.h"

#define CONFORM_MAX_SEQS 8

/* How a MoE case picks each token's experts. */
typedef enum conform_ids_pattern {
    CONFORM_IDS_RANDOM = 0,     /* distinct random experts per token */
    CONFORM_IDS_SAME            /* every token chooses experts 1, 3, 5, ... */
} conform_ids_pattern;

/* One case: an op on one shape, run for each format of `formats`.  Fields
 * that do not belong to the op are 0. */
typedef struct conform_case {
    conform_op op;
    char model[48];              /* "Qwen3-30B-A3B", "edge", "random" */
    char name[64];               /* what within the model: "moe", "attention-decode", ... */
    char why[160];               /* for edge cases: what they probe */
    uint32_t formats;            /* bit f set = run with moak_format f */

    /* matmul (m x cols -> rows); rmsnorm uses rows x cols */
    int64_t m, rows, cols;
    bool bias;                   /* matmul: bias; moe: per-expert biases */
    bool gamma;                  /* rmsnorm: with gamma */

    /* moe and route */
    int64_t tokens;
    int64_t hidden, inter;
    int64_t n_experts;           /* experts allocated (moe) or routed over (route) */
    int64_t n_experts_model;     /* the model's own expert count (moe: for the report) */
    int32_t top_k;
    moak_activation activation;
    conform_ids_pattern ids;
    moak_route_method route;
    bool renormalize;
    float scaling;
    int32_t n_groups, topk_groups;
    bool selection_bias;
    bool tie_logits;             /* route: logits with repeated values */

    /* attention */
    int32_t n_heads, n_kv_heads, head_dim_k, head_dim_v;
    bool shared_v, causal, sinks;
    int32_t sliding_window;
    float softcap, scale;
    int32_t n_seqs;
    int64_t seq_lens[CONFORM_MAX_SEQS];
    int64_t q_lens[CONFORM_MAX_SEQS];
    int32_t sparse_k;            /* > 0: sparse attention over sparse_k listed positions a query */

    /* rope */
    int32_t head_dim, rotary_dim;
    moak_rope_layout rope_layout;
    float rope_theta, position_scale;
    int32_t max_position;
    /* the model's context extension ("rope_scaling" in cases.json, with the
     * keys of its config.json), passed to moak_rope as moak.h defines it */
    moak_rope_scaling rope_scaling;
    float rope_factor, rope_beta_fast, rope_beta_slow, rope_mscale, rope_mscale_all_dim;
    float rope_low_freq, rope_high_freq;
    int32_t rope_original;
    bool rope_no_truncate;
} conform_case;

typedef struct conform_case_list {
    conform_case *items;
    int count;
    int capacity;
} conform_case_list;

typedef struct conform_case_options {
    bool quick;                  /* the subset for make check */
    uint64_t seed;               /* random shapes */
    int random_per_op;           /* random shapes per op (0 = none) */
    uint32_t op_mask;            /* bit op set = keep */
    uint32_t format_mask;        /* bit format set = keep */
    double max_weight_mib;       /* MoE weights larger than this lose experts (down to top_k) */
} conform_case_options;

/* Read path (cases.json) and build the list.  On error returns false with a
 * message in err. */
bool conform_load_cases(const char *path, const conform_case_options *opt,
                        conform_case_list *list, char *err, size_t err_len);
void conform_free_cases(conform_case_list *list);

/* Formats a case runs with, before the --format filter: every weight format
 * for matmul and MoE, the KV formats the head dims allow for attention, F32
 * for the rest. */
uint32_t conform_default_formats(const conform_case *c);

/* A short description of the shape ("m=1 n=768 k=2048"). */
void conform_describe_shape(const conform_case *c, char *buf, size_t len);

/* Bytes of one MoE case's three weight tensors in format f. */
double conform_moe_weight_bytes(const conform_case *c, moak_format f);

#endif
