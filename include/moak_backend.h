/*
 * moak_backend.h — what a backend implements.
 *
 * A backend is one table of function pointers (moak_backend_ops) plus its own
 * private files.  The core validates every public call completely before a
 * backend sees it, so a backend may assume: non-NULL pointers, sizes in range,
 * formats and shapes consistent, ids in range, and outputs not yet touched.
 * A backend must not write any output unless it succeeds (a device backend
 * reads results back only at the end), must not print, and must never abort.
 *
 * Backends are compiled into libmoak today; the table carries an ABI number
 * so that it can become a loadable plug-in without changing its shape.  A
 * backend includes only this header (and moak.h) and its own headers.
 */
#ifndef MOAK_BACKEND_H
#define MOAK_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moak.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever moak_backend_ops, moak_backend_env or an args struct changes shape. */
#define MOAK_BACKEND_ABI_VERSION 4

typedef enum moak_op {
    MOAK_OP_MATMUL = 0,          /* also asked at weight creation with m = 0 ("any m") */
    MOAK_OP_MOE_FFN = 1,
    MOAK_OP_MOE_ROUTE = 2,
    MOAK_OP_ATTENTION = 3,       /* also asked at KV cache creation with n_heads = 0 */
    MOAK_OP_RMSNORM = 4,
    MOAK_OP_ROPE = 5,
    MOAK_OP_INDEXER = 6,         /* also asked at K-only (index) cache creation with n_heads = 0 */
    MOAK_OP_GATED_DELTA = 7,     /* also asked at state creation with m = 0 */
    MOAK_OP_COUNT
} moak_op;

/* Feature bits of an op instance (what supports() may decline). */
#define MOAK_FEATURE_BIAS        (1u << 0)  /* weight has a bias */
#define MOAK_FEATURE_SINKS       (1u << 1)
#define MOAK_FEATURE_SOFTCAP     (1u << 2)
#define MOAK_FEATURE_WINDOW      (1u << 3)
#define MOAK_FEATURE_SHARED_V    (1u << 4)
#define MOAK_FEATURE_NONCAUSAL   (1u << 5)
#define MOAK_FEATURE_ROUTE_GROUPS (1u << 6)
#define MOAK_FEATURE_ROUTE_BIAS  (1u << 7)
#define MOAK_FEATURE_SPARSE      (1u << 8)  /* attention over per-query position lists */
#define MOAK_FEATURE_GATE_UP_FUSED (1u << 9) /* moe: one weight holds gate and up (moak_moe_args.gate_up) */

/* The question put to supports(): one op instance, described by value.
 * Fields that do not apply to the op are 0. */
typedef struct moak_op_shape {
    moak_op op;
    moak_format format;          /* weight format (matmul, moe) or KV format (attention); F32 otherwise */
    int64_t m;                   /* tokens (rows of activations); 0 = any (weight/cache creation) */
    int64_t n;                   /* matmul: rows of W; moe: inter; rmsnorm/rope: dim/head_dim */
    int64_t k;                   /* matmul: cols of W; moe: hidden */
    int64_t n_experts;           /* moe, route */
    int32_t top_k;               /* moe, route, indexer; attention: sparse_k (with MOAK_FEATURE_SPARSE) */
    int32_t n_heads;             /* attention, rope, indexer; gated delta: value heads */
    int32_t n_kv_heads;          /* attention; gated delta: q/k heads (n: conv kernel) */
    int32_t head_dim_k;
    int32_t head_dim_v;
    int32_t variant;             /* moak_route_method, moak_activation, moak_rope_layout or moak_gate_kind */
    uint32_t features;           /* MOAK_FEATURE_* */
} moak_op_shape;

/* ---- services the core gives a backend ---------------------------------- */

/* One unit of parallel work: task in [0, n_tasks), thread in [0, n_threads).
 * Tasks are handed out dynamically; for bitwise reproducibility a task's
 * result must not depend on which thread ran it (use `thread` only to pick
 * scratch memory). */
typedef void (*moak_task_fn)(void *arg, int64_t task, int32_t thread);

typedef struct moak_backend_env {
    size_t struct_size;
    const moak_hw_info *hw;      /* the probe, ISA already capped */
    int32_t n_threads;           /* the context's worker count (caller thread included) */
    uint32_t context_flags;      /* MOAK_CONTEXT_* */
    const char *opencl_device;   /* the requested device selector, or NULL */
    /* Run fn over n_tasks on the context's pool; returns when all are done.
     * The calling thread takes part.  Not re-entrant. */
    void (*parallel_for)(void *pool, int64_t n_tasks, moak_task_fn fn, void *arg);
    void *pool;
    /* Log through the context's sink (never stdout). */
    void (*log)(void *log_ctx, moak_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
    void *log_ctx;
    /* Set the context's detail message (printf-style); returns `status`.
     * A backend calls this before returning an error status. */
    moak_status (*error)(void *log_ctx, moak_status status, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
} moak_backend_env;

/* ---- objects handed to the ops ------------------------------------------ */

/* A weight as created: shape, format, the backend's packed bytes, and the
 * core's f32 copy of the bias ([n_experts][rows], or NULL). */
typedef struct moak_packed_weight {
    moak_format format;
    int64_t n_experts;
    int64_t rows;
    int64_t cols;
    const float *bias;
    void *packed;                /* from the backend's weight_pack */
} moak_packed_weight;

/* The standard host KV page layout.  A backend whose kv_create is NULL uses
 * core-owned host pages laid out so:
 *   page p starts at base + p * page_bytes;
 *   K block: [n_kv_heads][page_tokens][row_bytes_k]
 *   V block (absent with shared_v): [n_kv_heads][page_tokens][row_bytes_v]
 * where row_bytes_* = moak_format_row_bytes(format, head_dim_*).  Rows are
 * 64-byte aligned when row_bytes is a multiple of 64 (the page base is). */
typedef struct moak_kv_layout {
    moak_format format;
    int32_t n_kv_heads;
    int32_t head_dim_k;
    int32_t head_dim_v;
    bool shared_v;
    int32_t page_tokens;
    int64_t n_pages;
    size_t row_bytes_k;
    size_t row_bytes_v;          /* row_bytes_k's bytes are reused when shared_v */
    size_t page_bytes;
    size_t v_block_offset;       /* offset of the V block in a page (0 when shared_v) */
    /* MOAK_KV_K_ONLY (the indexer's keys): laid out as shared_v with
     * head_dim_v 0 (no V block, row_bytes_v 0); attention never sees one. */
    bool k_only;
} moak_kv_layout;

/* The cache as an op sees it. */
typedef struct moak_kv_view {
    const moak_kv_layout *layout;
    void *storage;               /* host: base of the pages; else the backend's own object */
    bool host_layout;            /* storage is the standard host layout */
    const int64_t *seq_lens;     /* [max_seqs] cached tokens per sequence */
    const int32_t *const *page_tables; /* [max_seqs] -> page index per page_tokens tokens */
} moak_kv_view;

typedef struct moak_matmul_args {
    const moak_packed_weight *w;
    int32_t expert;              /* which expert of w (0 for moak_matmul) */
    const float *x;              /* [m][cols] */
    int64_t m;
    float *y;                    /* [m][rows] */
} moak_matmul_args;

/* Tokens grouped by expert by the core (a counting sort, in token order so
 * the grouping is deterministic): the pairs routed to expert e are
 * pairs[offsets[e] .. offsets[e+1]), each pair = token * top_k + slot. */
typedef struct moak_moe_args {
    moak_activation activation;
    float swiglu_alpha;          /* resolved (never 0) */
    float swiglu_limit;
    const moak_packed_weight *gate, *up, *down;
    const float *x;              /* [n_tokens][hidden] */
    int64_t n_tokens;
    int64_t hidden;
    int64_t inter;
    int32_t top_k;
    const int32_t *ids;          /* [n_tokens][top_k] */
    const float *weights;        /* [n_tokens][top_k] */
    const int64_t *offsets;      /* [n_experts + 1] */
    const int32_t *pairs;        /* [n_tokens * top_k] */
    int32_t n_active_experts;    /* experts with at least one pair */
    const int32_t *active_experts; /* [n_active_experts], ascending */
    float *y;                    /* [n_tokens][hidden] */
    /* MOAK_GATE_UP_SEPARATE, or a fused layout (moak.h): then gate == up is
     * one weight of 2*inter rows per expert (bias too), gate row i at row
     * i (CONCAT) or 2i (INTERLEAVED), up row i at inter + i or 2i + 1.
     * Only backends that accept MOAK_FEATURE_GATE_UP_FUSED see a fused one. */
    moak_gate_up_layout gate_up;
} moak_moe_args;

typedef struct moak_route_args {
    moak_route_method method;
    int32_t n_experts;
    int32_t top_k;
    bool renormalize;
    float scaling_factor;        /* resolved (never 0) */
    const float *bias;
    int32_t n_groups;            /* resolved: 1 when no groups */
    int32_t topk_groups;
    const float *logits;         /* [n_tokens][n_experts] */
    int64_t n_tokens;
    int32_t *ids;
    float *weights;
} moak_route_args;

typedef struct moak_attention_args {
    int32_t n_heads;
    int32_t n_kv_heads;
    int32_t head_dim_k;
    int32_t head_dim_v;
    float scale;                 /* resolved (never 0) */
    bool causal;
    int32_t sliding_window;      /* 0 = none */
    float softcap;               /* 0 = none */
    const float *sinks;          /* [n_heads] or NULL */
    const moak_kv_view *kv;
    int32_t n_seqs;
    const int32_t *seq_ids;
    const int32_t *q_lens;
    const int64_t *q_offsets;    /* [n_seqs + 1]: first query token of each sequence */
    const float *q;              /* [total][n_heads][head_dim_k] */
    float *out;                  /* [total][n_heads][head_dim_v] */
    /* Sparse attention: NULL = dense.  Else [total][sparse_k] positions,
     * validated by the core: each -1 (unused) or in 0 .. the sequence's
     * cached length - 1.  The query attends to the listed keys that its mask
     * (causal, window) admits, each listing one softmax term (a position
     * listed twice counts twice); none admitted -> zeros. */
    const int32_t *sparse_positions;
    int32_t sparse_k;
} moak_attention_args;

/* The indexer (moak.h's moak_indexer): kv is a K-only cache with one KV head
 * of head_dim dims; queries are placed as in attention. */
typedef struct moak_indexer_args {
    int32_t n_heads;
    int32_t head_dim;
    int32_t top_k;
    const moak_kv_view *kv;
    int32_t n_seqs;
    const int32_t *seq_ids;
    const int32_t *q_lens;
    const int64_t *q_offsets;    /* [n_seqs + 1] */
    const float *q;              /* [total][n_heads][head_dim] */
    const float *w;              /* [total][n_heads] */
    int32_t *positions;          /* [total][top_k] */
    float *scores;               /* [total][top_k] or NULL */
} moak_indexer_args;

/* Gated delta rule (moak.h).  The state is core-owned host memory:
 * sequence s's delta state at delta_states + s * n_v_heads * d_k * d_v
 * ([n_v_heads][d_k][d_v] f32), its conv state at conv_states + s *
 * (conv_kernel - 1) * channels ([conv_kernel - 1][channels], oldest first).
 * A backend updates both in place for the listed sequences only, and only
 * once it can no longer fail. */
typedef struct moak_gated_delta_args {
    moak_gate_kind gate;
    int32_t n_qk_heads;
    int32_t n_v_heads;
    int32_t head_dim_k;
    int32_t head_dim_v;
    int32_t conv_kernel;         /* resolved (>= 1) */
    int64_t channels;            /* 2 * n_qk_heads * d_k + n_v_heads * d_v */
    float scale;                 /* resolved (never 0) */
    float *delta_states;
    float *conv_states;          /* NULL when conv_kernel is 1 */
    int32_t n_seqs;
    const int32_t *seq_ids;
    const int32_t *q_lens;
    const int64_t *q_offsets;    /* [n_seqs + 1]: first token of each sequence */
    const float *qkv;            /* [total][channels] */
    const float *conv_w;         /* [channels][conv_kernel] */
    const float *g;              /* [total][n_v_heads] or [total][n_v_heads][d_k] */
    const float *beta;           /* [total][n_v_heads] */
    float *out;                  /* [total][n_v_heads][d_v] */
} moak_gated_delta_args;

typedef struct moak_rmsnorm_args {
    const float *x;
    const float *gamma;          /* or NULL */
    int64_t n_rows;
    int64_t dim;
    float eps;
    float *y;                    /* may equal x */
} moak_rmsnorm_args;

typedef struct moak_rope_args {
    moak_rope_layout layout;
    int32_t head_dim;
    int32_t rotary_dim;          /* resolved */
    float theta_base;            /* resolved */
    float position_scale;        /* resolved */
    const float *x;
    int64_t n_tokens;
    int32_t n_heads;
    const int32_t *positions;
    float *y;                    /* may equal x */
    /* f_i of moak.h after the desc's frequency scaling, in double: the
     * backends take these instead of computing base^(-2i/rotary_dim), so
     * YaRN's and Llama-3's rules live once (lib/rope_freqs.c).
     * angle_i = positions[t] * position_scale * inv_freq[i]. */
    const double *inv_freq;      /* [rotary_dim / 2] */
    double attention_factor;     /* multiplies cos and sin (YaRN's mscale; else 1) */
} moak_rope_args;

/* ---- the table ----------------------------------------------------------- */

typedef struct moak_backend_ops {
    uint32_t abi_version;        /* MOAK_BACKEND_ABI_VERSION */
    const char *name;
    const char *description;
    /* Host-memory backends can run on the standard host KV layout and on
     * weights only they packed; device backends own their storage. */
    bool host_memory;

    /* Is the backend usable on this machine at all?  Called before init
     * (cheap: ISA bits, library present).  On false, why says so.  NULL = yes. */
    bool (*available)(const moak_hw_info *hw, char *why, size_t why_len);

    /* Per-context instance.  init may defer expensive work. */
    moak_status (*init)(const moak_backend_env *env, void **state);
    void (*fini)(void *state);

    /* Can this backend run the op instance?  On false, write a short reason
     * into why ("Q4_0 weights need MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION"). */
    bool (*supports)(void *state, const moak_op_shape *shape, char *why, size_t why_len);

    /* Weights: re-lay out desc->data (n_experts*rows*local_row_bytes: see
     * moak_format_local_row_bytes) into the backend's own form.  The source
     * bytes stay valid only during the call. */
    moak_status (*weight_pack)(void *state, const moak_weight_desc *desc, void **packed);
    void (*weight_free)(void *state, void *packed);

    /* KV storage.  All three NULL = the standard host layout, managed by the core. */
    moak_status (*kv_create)(void *state, const moak_kv_layout *layout, void **storage);
    void (*kv_free)(void *state, void *storage);
    /* Store n tokens' K (and V) rows, given as f32 [n][n_kv_heads][head_dim],
     * at consecutive slots: token i goes to (pages[i], slots[i]). */
    moak_status (*kv_write)(void *state, void *storage, const moak_kv_layout *layout,
                            int64_t n, const int32_t *pages, const int32_t *slots,
                            const float *k, const float *v);

    /* The ops; NULL = never supported. */
    moak_status (*matmul)(void *state, const moak_matmul_args *args);
    moak_status (*moe_ffn)(void *state, const moak_moe_args *args);
    moak_status (*moe_route)(void *state, const moak_route_args *args);
    moak_status (*attention)(void *state, const moak_attention_args *args);
    moak_status (*rmsnorm)(void *state, const moak_rmsnorm_args *args);
    moak_status (*rope)(void *state, const moak_rope_args *args);

    /* ---- optional, for device backends (NULL otherwise) ---- */
    /* Text listing every platform/device the backend sees, one per line
     * (moak_backend_devices, moak-info).  Called without init. */
    moak_status (*list_devices)(char *buf, size_t len);
    /* Whether the device that `selector` (or the default choice when NULL)
     * picks is an accelerator (GPU/NPU) that belongs before the CPU backends'
     * fallback `ref` in the default preference order.  Called without init. */
    bool (*rank_before_ref)(const char *selector);

    /* ---- added with ABI 2 ---- */
    moak_status (*indexer)(void *state, const moak_indexer_args *args);

    /* ---- added with ABI 3 ---- */
    moak_status (*gated_delta)(void *state, const moak_gated_delta_args *args);
} moak_backend_ops;

/* The backends built into this library; each backend defines its table. */
extern const moak_backend_ops moak_backend_ref;
extern const moak_backend_ops moak_backend_avx2;
extern const moak_backend_ops moak_backend_avx512;
extern const moak_backend_ops moak_backend_neon;
extern const moak_backend_ops moak_backend_onednn;
extern const moak_backend_ops moak_backend_opencl;

/* ---- format helpers every backend may use (implemented in lib/formats.c) -- */
/* Hidden symbols of the library (not exported): backends are linked in. */
float moak_f16_to_f32(uint16_t h);
uint16_t moak_f32_to_f16(float f);    /* round to nearest even */
float moak_bf16_to_f32(uint16_t h);
uint16_t moak_f32_to_bf16(float f);   /* round to nearest even; NaN stays NaN */
float moak_ue4m3_to_f32(uint8_t code); /* NVFP4's unsigned E4M3 scale, as GGUF reads it (0x7f -> 0) */
/* A buffer that kernels stream (packed weights, KV pages), on 2 MB huge
 * pages where the OS gives them: 64-byte aligned (2 MB from 2 MB up), not
 * zeroed; release with free(). */
void *moak_alloc_streamed(size_t bytes);
/* The release formats with split scales (FP8_E4M3_B128, MXFP4_ST, I4_G32_CT,
 * NVFP4) reach weight_pack in the row-local form: desc->scales is NULL and
 * every row of desc->data is its moak_format_row_bytes(format, cols) bytes
 * followed by the scales that row uses: FP8 cols/128 f32 (its 128-row
 * block's), MXFP4_ST cols/32 E8M0 bytes, I4_G32_CT cols/32 bf16, NVFP4 the
 * expert's f32 tensor scale.  This is each row's length in that form (equal
 * to moak_format_row_bytes for every other format; 0 where that is 0). */
size_t moak_format_local_row_bytes(moak_format format, int64_t cols);
/* Dequantize one row of `cols` elements of `format` (row-local form) into dst[cols]. */
void moak_dequantize_row(moak_format format, const void *row, int64_t cols, float *dst);
/* Quantize one row of `cols` floats into row_bytes(format, cols) bytes (not
 * for the split-scale formats, whose scales span whole tensors). */
void moak_quantize_row(moak_format format, const float *src, int64_t cols, void *dst);
/* The stored quant of element k of one row of an integer format (moak.h's
 * layouts), for packers that re-lay weights out: Q8_0 and I8_ROW the signed
 * int8 (0 past an I8_ROW row's cols), Q4_0, I4_G32 and I4_G128 the 4-bit
 * code 0..15 (Q4_0's value is code - 8, I4's scale * code + min); 0 for
 * float formats.  k < the row's padded length. */
int moak_row_quant(moak_format format, const void *row, int64_t cols, int64_t k);
/* The indexer's selection (lib/topk_select.c): of candidates 0..n-1 with
 * score[j], the best min(k, n) in decreasing score, ties to the lower index
 * (a NaN ranks below every number, -0 ties with +0), into positions[0..k);
 * the rest of positions is -1.  scores (or NULL) receives the chosen scores
 * as float, -INFINITY beside a -1.  scratch: moak_select_top_k_scratch(n, k)
 * bytes, 8-byte aligned.  O(n + k log k). */
size_t moak_select_top_k_scratch(int64_t n, int32_t k);
void moak_select_top_k(const double *score, int64_t n, int32_t k, void *scratch, int32_t *positions,
                       float *scores);
/* Routing's scalar steps, in double, the reference's way (lib/route_select.c).
 * Marks of an expert or a group during selection: */
enum { MOAK_ROUTE_CANDIDATE = 0, MOAK_ROUTE_EXCLUDED = 1, MOAK_ROUTE_CHOSEN = 2 };
/* The index with the highest score among those marked `wanted`, the lowest
 * index on ties; -1 if none is.  A NaN is never preferred to a number but is
 * returned when it is the only one left, so a selection always completes. */
int32_t moak_route_arg_max(const double *score, const unsigned char *mark, int32_t n, unsigned char wanted);
/* SIGMOID_TOPK and SQRT_SOFTPLUS_TOPK: selection on score + bias, groups. */
bool moak_route_method_biased(moak_route_method method);
/* A token's scores (what becomes the weight) and selection scores from its
 * logits, for a->method (bias only for the biased methods). */
void moak_route_scores(const moak_route_args *a, const float *logits, double *score, double *select);
/* expert_mark[n_experts]: CANDIDATE for the experts that may be chosen (all,
 * or with group-limited routing those of the kept groups), EXCLUDED for the
 * others; group_score and group_mark: n_groups of scratch. */
void moak_route_mark_candidates(const moak_route_args *a, const double *select, double *group_score,
                                unsigned char *group_mark, unsigned char *expert_mark);
/* chosen[first..top_k) by repeated arg-max among the candidates (then, if
 * they run out, the excluded), each marked CHOSEN. */
void moak_route_choose(const moak_route_args *a, const double *select, unsigned char *expert_mark,
                       int32_t *chosen, int32_t first);
/* Routing's last step for token `token`: chosen_scores[k] holds the score of
 * chosen[k] (the logit for TOPK_SOFTMAX, the probability or the unbiased
 * sigmoid score otherwise), in selection order; it is overwritten with the
 * weights (softmax over the chosen for TOPK_SOFTMAX, renormalised when asked,
 * times scaling_factor), which are stored with the ids in a->ids/a->weights. */
void moak_route_store_row(const moak_route_args *a, int64_t token, const int32_t *chosen, double *chosen_scores);

#ifdef __cplusplus
}
#endif

#endif /* MOAK_BACKEND_H */
