/*
 * What the files of the oneDNN backend share.
 *
 * The backend runs moak's matmul and MoE FFN on oneDNN 2.6 matmul
 * primitives (the C API of dnnl.h).  Three compute kinds exist, each one a
 * data-type pairing that oneDNN 2.6 computes natively on x86:
 *   F32   f32 activations x f32 weights            (F32, and expanded formats)
 *   BF16  bf16 activations (rounded, RNE) x bf16 weights
 *   S8    s8 activations x s8 weights, s32 accumulation.  Each activation
 *         row goes in as two s8 rows, its symmetric quantization and the
 *         quantization of what that left over (onednn_rows.c), stacked
 *         into one matmul of 2m rows; moak combines the two sums with
 *         their scales, the weight row scale and the bias in C afterwards.
 * Everything parallel runs on oneDNN's OpenMP team (the backend's own loops
 * are OpenMP loops on the same team), so moak's pool sleeps meanwhile.
 * The MoE FFN runs whole work items (an expert's chunk of rows) per thread
 * in one parallel region, with primitives made for one thread; see
 * onednn_moe.c.
 */
#ifndef MOAK_ONEDNN_INTERNAL_H
#define MOAK_ONEDNN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dnnl.h>

#include "moak_backend.h"
#include "onednn_row_kernels.h"

/* ---- compute kinds ----------------------------------------------------------- */

typedef enum onednn_kind {
    ONEDNN_KIND_F32 = 0,
    ONEDNN_KIND_BF16 = 1,
    ONEDNN_KIND_S8 = 2
} onednn_kind;

/* Bytes of one activation element of the kind (4, 2, 1). */
size_t onednn_kind_elem_bytes(onednn_kind kind);
dnnl_data_type_t onednn_kind_dnnl_type(onednn_kind kind);
const char *onednn_kind_name(onednn_kind kind);

/* How a weight format reaches oneDNN: computed natively, expanded to f32 at
 * creation (only with MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION), or not at all. */
typedef enum onednn_route {
    ONEDNN_ROUTE_NATIVE,
    ONEDNN_ROUTE_EXPAND_F32
} onednn_route;

struct onednn_state;
/* The kind and route of a weight format on this machine; false when the
 * format can only be expanded, and why explains it (with the growth factor
 * for k columns). */
bool onednn_format_route(const struct onednn_state *st, moak_format format, int64_t k,
                         onednn_kind *kind, onednn_route *route, char *why, size_t why_len);
/* How many times larger the f32 expansion of one row of `format` is. */
double onednn_expansion_growth(moak_format format, int64_t k);

/* ---- packed weights (onednn_weights.c) -------------------------------------------- */

typedef struct onednn_weight {
    onednn_kind kind;
    moak_format source_format;
    int64_t n_experts;
    int64_t n;                    /* rows of W: output features */
    int64_t k;                    /* cols of W: input features */
    /* The layout oneDNN chose for one expert's {k, n} weights (format `any`
     * resolved once, at creation); every primitive that runs on the weight
     * is created with exactly this descriptor. */
    dnnl_memory_desc_t layout;
    dnnl_memory_t *experts;       /* [n_experts], each in `layout` */
    float *row_scales;            /* S8 only: [n_experts][n] */
} onednn_weight;

/* ---- backend state ------------------------------------------------------------------ */

/* One primitive of the cache: a matmul for one (kind, rows class, k, n,
 * bias, weight layout, thread count).  Calls wrap their buffers in memory
 * objects of their own (0.4 us each), so an entry is never written while
 * it runs and several threads may run it at once. */
typedef struct onednn_matmul_entry {
    bool used;
    onednn_kind kind;
    int64_t m;                    /* rows; DNNL_RUNTIME_DIM_VAL for "any" */
    int64_t k, n;
    bool bias;
    int threads;                  /* OpenMP threads it was created for */
    dnnl_memory_desc_t weights_md;
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t scratchpad;  /* the caller provides it (scratchpad mode user) */
    size_t scratchpad_bytes;
    uint64_t last_use;
} onednn_matmul_entry;

#define ONEDNN_CACHE_ENTRIES 96

/* Growable host buffers reused across calls. */
typedef enum onednn_buffer_id {
    ONEDNN_BUF_SRC,               /* prepared activations (f32, bf16 or s8) */
    ONEDNN_BUF_SRC_SCALES,        /* S8 activation row scales */
    ONEDNN_BUF_DST,               /* raw primitive output (s32 or padded f32) */
    ONEDNN_BUF_GATE,              /* MoE: gate projection, f32 */
    ONEDNN_BUF_UP,                /* MoE: up projection, f32 */
    ONEDNN_BUF_HIDDEN,            /* MoE: GLU output, f32 */
    ONEDNN_BUF_INDEX,             /* MoE: token of each gathered row */
    ONEDNN_BUF_SCRATCHPAD,        /* oneDNN's scratchpad for the running primitive */
    /* used by the calling thread's worker only: */
    ONEDNN_BUF_PAIR_OUT,          /* MoE: down projection of every pair, f32 */
    ONEDNN_BUF_PAIR_POS,          /* MoE: position of each pair in the grouping */
    ONEDNN_BUF_ITEMS,             /* MoE: the work items */
    ONEDNN_BUF_COUNT
} onednn_buffer_id;

/* What one thread needs to run primitives on its own: a stream and its
 * buffers.  workers[0] belongs to the thread that calls the backend. */
typedef struct onednn_worker {
    dnnl_stream_t stream;
    void *buffers[ONEDNN_BUF_COUNT];
    size_t buffer_bytes[ONEDNN_BUF_COUNT];
} onednn_worker;

typedef struct onednn_state {
    moak_backend_env env;
    int n_threads;                /* env.n_threads, at least 1 */
    dnnl_engine_t engine;
    onednn_worker *workers;       /* [n_threads] */
    onednn_matmul_entry cache[ONEDNN_CACHE_ENTRIES];
    uint64_t cache_clock;
    uint64_t cache_hits, cache_misses;
    int saved_omp_threads;        /* the caller's OpenMP setting, restored on leave */
    /* Which kinds oneDNN computes here with a real (non-reference)
     * implementation, probed at init; else what it lacks. */
    bool kind_native[3];
    char kind_lack[3][128];
    const onednn_row_kernels *rows;  /* the C row kernels for this ISA */
} onednn_state;

/* ---- runtime services (onednn_runtime.c) --------------------------------------------- */

/* Record an error through env->error, prefixed "onednn: ". */
moak_status onednn_error(const onednn_state *st, moak_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* A failed dnnl call: MOAK_ERR_BACKEND (MOAK_ERR_OUT_OF_MEMORY for
 * dnnl_out_of_memory) with oneDNN's status name and what was being done. */
moak_status onednn_dnnl_failed(const onednn_state *st, dnnl_status_t status, const char *what);
void onednn_log(const onednn_state *st, moak_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Call the dnnl function; on failure leave the enclosing function through
 * `label` with `status` set.  Used where several objects must be freed. */
#define ONEDNN_TRY(st, status, label, call, what)                        \
    do {                                                                 \
        dnnl_status_t dnnl_status_ = (call);                             \
        if (dnnl_status_ != dnnl_success) {                              \
            (status) = onednn_dnnl_failed((st), dnnl_status_, (what));   \
            goto label;                                                  \
        }                                                                \
    } while (0)

/* Set oneDNN's OpenMP thread count to the context's for the duration of
 * one op (the caller's own setting is put back by leave). */
void onednn_threads_enter(onednn_state *st);
void onednn_threads_leave(onednn_state *st);
/* Start the OpenMP team from a thread whose affinity allows every CPU, so
 * workers do not inherit the one-core binding of the context's creator. */
void onednn_threads_warm_team(const onednn_state *st);
/* Cap oneDNN's ISA to what moak uses when MOAK_ISA_MAX is in force. */
void onednn_apply_isa_cap(const onednn_state *st);

/* A buffer of the worker of at least `bytes`, 64-byte aligned, kept for
 * later calls; NULL (with the error recorded) when memory runs out. */
void *onednn_buffer(const onednn_state *st, onednn_worker *wk, onednn_buffer_id id, size_t bytes);
void onednn_buffers_free(onednn_worker *wk);
/* a * b * c in size_t, false on overflow. */
bool onednn_mul_size3(size_t a, size_t b, size_t c, size_t *out);

/* ---- primitive cache (onednn_primitive_cache.c) ----------------------------------- */

/* The largest class of primitive rows. */
#define ONEDNN_MAX_CLASS_ROWS 512
/* Rows of the primitive that runs `rows` primitive rows of `kind`
 * (rows <= ONEDNN_MAX_CLASS_ROWS); DNNL_RUNTIME_DIM_VAL when one primitive
 * serves every count. */
int64_t onednn_class_rows(onednn_kind kind, int64_t rows);
/* Primitive rows that carry m activation rows: 2m for S8 (two levels), else m. */
int64_t onednn_act_rows(onednn_kind kind, int64_t m);
/* Activation rows per call to onednn_gemm: longer batches run in chunks. */
int64_t onednn_max_chunk(onednn_kind kind);
/* Rows of prepared activations for m activation rows: the class of their
 * primitive rows, or exactly those rows when the primitive takes any count. */
int64_t onednn_padded_rows(onednn_kind kind, int64_t m);
/* Whether oneDNN has a non-reference matmul of `kind` on this CPU (under
 * the ISA cap); on false, lack says what is missing. */
bool onednn_probe_kind(onednn_state *st, onednn_kind kind, char *lack, size_t lack_len);
/* The weight layout oneDNN picks for (kind, k, n). */
moak_status onednn_pick_weight_layout(onednn_state *st, onednn_kind kind, int64_t k, int64_t n,
                                      dnnl_memory_desc_t *layout);
/* The cached primitive for (kind, class rows, weights, bias, threads),
 * created on a miss.  Not thread-safe: look up before a parallel region. */
moak_status onednn_matmul_lookup(onednn_state *st, onednn_kind kind, int64_t class_rows,
                                 const dnnl_memory_desc_t *weights_md, int64_t k, int64_t n,
                                 bool bias, int threads, onednn_matmul_entry **entry);
/* The entry that runs m activation rows on weight w (onednn_gemm's `e`). */
moak_status onednn_entry_for(onednn_state *st, const onednn_weight *w, int64_t m, bool bias, int threads,
                             onednn_matmul_entry **entry);
void onednn_cache_clear(onednn_state *st);

/* ---- rows in C (onednn_rows.c): activation preparation and epilogues ---------------- */
/* Each takes the row kernels and the number of OpenMP threads it may use
 * (1 inside a parallel region: the loops then stay on the calling thread). */

/* The source of `rows` activation rows of length k: row r is
 * base + index[r] * k, or base + r * k when index is NULL. */
typedef struct onednn_rows_in {
    const float *base;
    const int32_t *index;
    int64_t rows;
    int64_t k;
} onednn_rows_in;

/* Write `padded_rows` primitive rows of prepared activations of `kind` into
 * dst (rows past the data are zero): F32 copies, BF16 rounds to nearest
 * even, S8 writes the two levels of each row r at rows r and in->rows + r
 * and their scales at scales[r] and scales[in->rows + r]. */
void onednn_prepare_rows(const onednn_row_kernels *rk, int threads, onednn_kind kind, const onednn_rows_in *in,
                         int64_t padded_rows, void *dst, float *scales);
/* S8 epilogue for m activation rows (2m primitive rows):
 * out[r][j] = (acc[r][j] * s[r] + acc[m + r][j] * s[m + r]) * w_scales[j] + bias[j]. */
void onednn_s8_epilogue(const onednn_row_kernels *rk, int threads, const int32_t *acc, int64_t rows, int64_t n,
                        const float *act_scales, const float *w_scales, const float *bias, float *out);
/* h = act(gate, up) elementwise over rows x n (moak.h's three GLUs). */
void onednn_glu(const onednn_row_kernels *rk, int threads, const moak_moe_args *args, const float *gate,
                const float *up, int64_t rows, int64_t n, float *h);
/* y[t][j] = sum over slots s in order of weights[t][s] * pair_out[pos[t*top_k + s]][j]. */
void onednn_combine(const onednn_row_kernels *rk, int threads, const float *pair_out, const int32_t *pos,
                    const float *weights, int64_t n_tokens, int32_t top_k, int64_t n, float *y);

/* ---- ops ---------------------------------------------------------------------------------- */

/* out[m][n] = prepared activations x W[expert]^T (+ scales, + bias), run by
 * entry e (from onednn_entry_for with the same m, bias and threads) on the
 * worker's stream.  src holds onednn_padded_rows(kind, m) rows as written
 * by onednn_prepare_rows; m <= onednn_max_chunk(kind). */
moak_status onednn_gemm(const onednn_state *st, onednn_worker *wk, const onednn_matmul_entry *e,
                        const onednn_weight *w, int64_t expert, const float *bias, const void *src,
                        const float *src_scales, int64_t m, float *out, int threads);
moak_status onednn_matmul(void *state, const moak_matmul_args *args);
moak_status onednn_moe_ffn(void *state, const moak_moe_args *args);
moak_status onednn_weight_pack(void *state, const moak_weight_desc *desc, void **packed);
void onednn_weight_free(void *state, void *packed);

#endif
