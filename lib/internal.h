/* Core-private declarations shared by the files of lib/.  Backends never
 * include this header: they see only moak_backend.h. */
#ifndef MOAK_LIB_INTERNAL_H
#define MOAK_LIB_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moak.h"
#include "moak_backend.h"
#include "hwprobe.h"

#define MOAK_ERROR_MESSAGE_MAX 512
#define MOAK_MAX_BACKENDS 8

#if defined(__GNUC__)
#  define MOAK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define MOAK_PRINTF(f, a)
#endif

/* ---- errors (status.c) ---------------------------------------------------- */

/* Record a detail message on ctx (or the thread-local one when ctx is NULL)
 * and return status, so that validation reads
 *     return moak_error(ctx, MOAK_ERR_NULL_ARGUMENT, "x: must not be NULL"); */
moak_status moak_error(moak_context *ctx, moak_status status, const char *fmt, ...)
    MOAK_PRINTF(3, 4);
void moak_clear_error(moak_context *ctx);

/* Checked size arithmetic: false on overflow (then *out is untouched). */
bool moak_mul_size(size_t a, size_t b, size_t *out);
bool moak_add_size(size_t a, size_t b, size_t *out);
/* a*b*c... for non-negative int64 dims; false on overflow or a negative value. */
bool moak_count_bytes(size_t elem_bytes, int n_dims, const int64_t *dims, size_t *out);

/* Zeroed, 64-byte aligned allocation (NULL on failure or size 0 overflow). */
void *moak_alloc(size_t bytes);
void moak_free(void *p);

/* ---- logging (context.c) --------------------------------------------------- */

void moak_log(moak_context *ctx, moak_log_level level, const char *fmt, ...) MOAK_PRINTF(3, 4);

/* ---- thread pool (threadpool.c) ---------------------------------------------- */

typedef struct moak_threadpool moak_threadpool;

/* n_threads includes the calling thread; bind pins worker i to core i. */
moak_status moak_threadpool_create(int32_t n_threads, bool bind, moak_threadpool **pool);
void moak_threadpool_destroy(moak_threadpool *pool);
void moak_threadpool_run(void *pool, int64_t n_tasks, moak_task_fn fn, void *arg);
int32_t moak_threadpool_size(const moak_threadpool *pool);

/* ---- backends (registry.c, dispatch.c) ----------------------------------------- */

/* Every backend moak knows, built or not, in the default preference order. */
typedef struct moak_backend_entry {
    const char *name;
    const moak_backend_ops *ops;  /* NULL when not built */
    const char *not_built_reason;
    bool device;                  /* ranks by device type (OpenCL) */
} moak_backend_entry;

int32_t moak_registry_count(void);
const moak_backend_entry *moak_registry_get(int32_t index);
/* -1 if no backend has that name. */
int32_t moak_registry_find(const char *name);
/* Built with this library's backend ABI and available() on this machine;
 * otherwise why says what is missing. */
bool moak_backend_usable(const moak_backend_ops *ops, char *why, size_t why_len);

/* One backend live in a context. */
typedef struct moak_backend_slot {
    const moak_backend_ops *ops;
    void *state;
    moak_backend_env env;
} moak_backend_slot;

#define MOAK_DISPATCH_CACHE_SIZE 64

typedef struct moak_dispatch_cache_entry {
    bool used;
    bool host_only;
    moak_op_shape key;
    int32_t slot;                 /* index into ctx->slots, -1 = none supports */
} moak_dispatch_cache_entry;

/* One thread's view of a context: the outcome of the last call it made on
 * it.  Written only by that thread (under the context's lock), so the
 * pointers moak_last_error/moak_last_backend return stay valid and
 * unchanged until the same thread calls again. */
typedef struct moak_thread_record {
    struct moak_thread_record *next;
    pthread_t thread;
    const char *last_backend;
    char last_error[MOAK_ERROR_MESSAGE_MAX];
} moak_thread_record;

struct moak_context {
    pthread_mutex_t lock;         /* one op at a time */
    moak_hw_info hw;
    moak_threadpool *pool;
    int32_t n_threads;
    uint32_t flags;
    bool verbose;
    moak_log_fn log_fn;
    void *log_user;
    char *opencl_device;
    moak_backend_slot slots[MOAK_MAX_BACKENDS]; /* in preference order */
    int32_t n_slots;
    char backends_list[256];
    moak_dispatch_cache_entry cache[MOAK_DISPATCH_CACHE_SIZE];
    /* The call in progress (written under lock): its message ("" while it
     * succeeds) and the backend that ran it (NULL unless it ran an op). */
    const char *last_backend;
    char last_error[MOAK_ERROR_MESSAGE_MAX];
    /* What moak_last_error / moak_last_backend return: per calling thread,
     * copied from the two fields above when a call releases the lock. */
    moak_thread_record *records;
};

/* Parse "a,b,c" into registry indices (unknown names are an error). */
moak_status moak_parse_backend_list(moak_context *ctx, const char *list,
                                    int32_t *indices, int32_t *count);
/* The first slot (in preference order) whose supports() accepts shape;
 * only slots that are `host_memory` when host_only; or the given slot only
 * when only_slot >= 0.  Logs the choice when verbose.  -1 and an
 * MOAK_ERR_UNSUPPORTED message naming every refusal when none does. */
moak_status moak_dispatch(moak_context *ctx, const moak_op_shape *shape,
                          bool host_only, int32_t only_slot, int32_t *slot);
const char *moak_op_name(moak_op op);
/* The slot that owns weights/caches created by ops->name. */
int32_t moak_slot_of(const moak_context *ctx, const moak_backend_ops *ops);

/* ---- persistent objects --------------------------------------------------------- */

struct moak_weight {
    moak_context *ctx;
    int32_t slot;
    moak_packed_weight view;      /* .packed from the backend, .bias owned here */
};

struct moak_kv_cache {
    moak_context *ctx;
    int32_t slot;
    moak_kv_layout layout;
    int32_t max_seqs;
    void *storage;                /* host pages (core) or backend object */
    bool host_layout;
    int64_t *seq_lens;            /* [max_seqs] */
    /* [max_seqs] -> the sequence's pages in order; each table grows with its
     * sequence (table_caps entries allocated), so bookkeeping is proportional
     * to what is used, not to max_seqs x pages. */
    int32_t **page_tables;
    int32_t *table_caps;          /* [max_seqs] */
    /* Free pages: the stack holds pages returned by seq_clear (its storage,
     * one int32 per page, is touched only as far as pages are returned);
     * pages next_fresh .. n_pages-1 were never handed out. */
    int32_t *free_pages;
    int64_t n_stacked;
    int64_t next_fresh;
    int64_t n_free;               /* n_stacked + (n_pages - next_fresh) */
    moak_kv_view view;
};

/* Gated delta-rule state (linear_state.c): host memory for every backend. */
struct moak_linear_state {
    moak_context *ctx;
    int32_t n_qk_heads;
    int32_t n_v_heads;
    int32_t head_dim_k;
    int32_t head_dim_v;
    int32_t conv_kernel;
    int32_t max_seqs;
    int64_t channels;             /* 2 * n_qk_heads * d_k + n_v_heads * d_v */
    size_t delta_floats;          /* per sequence: n_v_heads * d_k * d_v */
    size_t conv_floats;           /* per sequence: (conv_kernel - 1) * channels */
    float *delta;                 /* [max_seqs][delta_floats] */
    float *conv;                  /* [max_seqs][conv_floats], NULL when conv_kernel is 1 */
};

/* Lock ctx for one op; every public op calls these around its body. */
/* The message of the last failed context-free call on this thread. */
const char *moak_thread_error(void);
void moak_context_lock(moak_context *ctx);
void moak_context_unlock(moak_context *ctx);

/* Helper for ops: "name: must not be NULL" */
#define MOAK_CHECK_NULL(ctx, ptr, name)                                           \
    do {                                                                          \
        if ((ptr) == NULL)                                                        \
            return moak_error((ctx), MOAK_ERR_NULL_ARGUMENT, "%s: must not be NULL", (name)); \
    } while (0)

/* Shared by the op_*.c files (op_matmul.c). */
moak_status moak_op_finish(moak_context *ctx, int32_t slot, moak_status st);
bool moak_ranges_overlap(const void *a, size_t a_bytes, const void *b, size_t b_bytes);
moak_status moak_check_weight(moak_context *ctx, const moak_weight *w, const char *name);
/* moak_attention and moak_indexer: seq_ids in range and distinct, each
 * q_lens[i] in 0 .. the sequence's cached length; *total = sum of q_lens. */
moak_status moak_check_query_seqs(moak_context *ctx, const moak_kv_cache *kv, const int32_t *seq_ids,
                                  const int32_t *q_lens, int32_t n_seqs, int64_t *total);
/* A finite float (not NaN, not +-Inf). */
static inline bool moak_finite(float v) { return v == v && v - v == 0.0f; }

/* struct_size rule: at least the size of the struct's first version. */
moak_status moak_check_struct_size(moak_context *ctx, size_t struct_size,
                                   size_t min_size, const char *name);

/* RoPE (lib/rope_freqs.c): read a moak_rope_desc of either version into a
 * whole one (later fields 0) and check its frequency-scaling fields; then
 * the rotary_dim/2 frequencies after scaling (malloc'd; NULL when out of
 * memory) and the factor on cos/sin. */
moak_status moak_rope_read_desc(moak_context *ctx, const moak_rope_desc *desc, moak_rope_desc *out);
double *moak_rope_freqs(const moak_rope_desc *d, int32_t rot, double base, double *attention_factor);

#endif
