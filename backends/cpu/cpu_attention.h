/*
 * cpu_attention.h — the CPU attention: one planner and split-key driver
 * (cpu_attention.c, ISA-neutral C) over a table of vector kernels that one
 * body (attention_body.h) provides per ISA (x86/attention_avx2.c,
 * x86/attention_avx512.c, arm/attention_neon.c).
 *
 * The unit of work is a tile of query rows against one KV head:
 *   rows = (query token, query head of the KV head's group), token-major,
 *   so a K/V row is converted once and used by every head of its group.
 * A prefill task takes about CPU_ATTN_TARGET_ROWS rows and walks all the
 * keys its rows may see, CPU_ATTN_KEYS_PER_TILE at a time, keeping a
 * running max m, sum l and output accumulator O per row (online softmax,
 * flash-attention style), and writes the normalised rows to `out`.
 * A tile whose key range is long compared with the whole call's work (a
 * decode, q_len 1) is split into key chunks; each chunk task stores its
 * (m, l, O) rows, and the task that completes a tile's last chunk merges
 * the chunks of each row in chunk order with log-sum-exp weights (one pass
 * over the pool, no second barrier).  The plan depends only on the shapes
 * and the thread count, and every task writes its own slots, so results
 * are bitwise reproducible for a given thread count whatever thread runs
 * what.  The plan and the partial results live in the backend's op buffers
 * (no allocation per call once they have grown).
 *
 * Numerics: scores are kept in base 2.  q is multiplied by a q scale when
 * it is copied into the tile; a score s times logits.exp_mul is the logit
 * in base 2 (scale * q.k * log2 e).  For an ordinary scale the whole
 * factor is folded into q and exp_mul is 1; a scale so large that
 * scale * log2 e would overflow f32 leaves a power of two in exp_mul, which
 * multiplies only differences (s - m) <= 0, so nothing overflows (issue
 * 16).  The soft-cap, the softmax and the p.V sums are f32; the final
 * normalisation and the merge are computed in double.  Masked keys get
 * probability exactly 0.
 */
#ifndef MOAK_CPU_ATTENTION_H
#define MOAK_CPU_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moak_backend.h"

/* Keys per tile: the block of K/V rows converted to f32 together. */
#define CPU_ATTN_KEYS_PER_TILE 64
/* Query rows a prefill task aims for: enough to amortise converting a K/V
 * tile (about 1/rows of the arithmetic), few enough for Q, S and O of the
 * task to stay in L2 (192 rows of d 128: 96 KB each).  96 was ~7% slower. */
#define CPU_ATTN_TARGET_ROWS 192
/* The widest vector any kernel table uses, in f32 lanes (AVX-512). */
#define CPU_ATTN_MAX_LANES 16

/* How the kernels turn a tile's scores s (q scaled, dotted with k) into
 * base-2 logits x, in the units the softmax keeps m in:
 *   no soft-cap (cap_in == 0): x = s, and 2^((x - m) * exp_mul) is p;
 *   soft-cap: t = s * cap_in is (logit / cap); x = cap_out * tanh(t),
 *   computed as s * small_mul * tanh(t) / t for small |t| (exact there:
 *   the form 1 - 2 / (e^2t + 1) cancels to 0 for |t| below ~1e-8, which
 *   turned every score into 0 for caps beyond ~1e8, issue 16).
 * The driver keeps m * exp_mul, in double, as the row's base-2 maximum. */
typedef struct cpu_attn_logits {
    float cap_in, cap_out, small_mul;
    float exp_mul;
} cpu_attn_logits;

/* The fused small-tile path (decode: a query token's few heads of one KV
 * group).  Converting whole K/V tiles to f32 scratch and multiplying them
 * by 8 query rows spent more time on the tile stores and reloads than on
 * the arithmetic; here each K and V element is converted in registers once
 * and used at once by every row of the tile.  Rows are padded to rp, a
 * power of two dividing the vector width, and a score vector holds
 * (lanes / rp) keys x rp rows: lane i is row i % rp of key i / rp.  The
 * running max and sum are kept in the same lane layout (every lane of a
 * row holds the row's value), so the softmax needs no transposition.
 * Keys are processed in blocks that do not cross a page: a block's K (and
 * V) rows are equally spaced, and the kernel is handed base and stride. */
typedef struct cpu_attn_fused {
    /* scaled q, chunk-major: [dk / lanes][rp][lanes] (lanes: the ISA's
     * vector width), so that one pointer and constant offsets address
     * every row's chunk; rows >= rows are zeros */
    const float *q;
    float *o;                     /* [rp][dv_pad]: O of every (padded) row */
    int32_t rows, rp;
    int32_t dk, dv, dv_pad;
    moak_format format;
    cpu_attn_logits logits;
    /* the block's visible keys per row, relative to the block: [lo, hi) */
    int32_t lo[CPU_ATTN_MAX_LANES], hi[CPU_ATTN_MAX_LANES];
    /* lane layout (lane i: row i % rp); corr = 2^(m_old - m_new) of the
     * last block, the factor the row's O is scaled by */
    float m[CPU_ATTN_MAX_LANES] __attribute__((aligned(64)));
    float l[CPU_ATTN_MAX_LANES] __attribute__((aligned(64)));
    float corr[CPU_ATTN_MAX_LANES] __attribute__((aligned(64)));
    /* the next block's K rows (NULL: none), prefetched during this one */
    const unsigned char *next_k;
    size_t next_k_bytes;
    /* scores, then probabilities, of a block in lane layout */
    float s[CPU_ATTN_KEYS_PER_TILE * CPU_ATTN_MAX_LANES] __attribute__((aligned(64)));
} cpu_attn_fused;

/* The prefetches of a fused block of n keys in `groups` key groups: each
 * group takes its share of the block's V rows (none when V is a prefix of
 * K, already loaded) and of the next block's K rows, into L2, so the loads
 * of the next steps find them there.  Planned once per block. */
typedef struct cpu_attn_prefetch {
    const char *v, *next_k;
    size_t v_bytes, k_bytes, v_share, k_share;
} cpu_attn_prefetch;

static inline cpu_attn_prefetch cpu_attn_prefetch_plan(const cpu_attn_fused *f, const unsigned char *k,
                                                       const unsigned char *v, size_t v_stride,
                                                       int32_t n, int32_t groups)
{
    cpu_attn_prefetch p;
    p.v = (const char *)v;
    p.next_k = (const char *)f->next_k;
    p.v_bytes = v == k ? 0 : (size_t)n * v_stride;
    p.k_bytes = f->next_k_bytes;
    p.v_share = (p.v_bytes / (size_t)groups + 63) & ~(size_t)63;
    p.k_share = (p.k_bytes / (size_t)groups + 63) & ~(size_t)63;
    return p;
}

static inline void cpu_attn_prefetch_group(const cpu_attn_prefetch *p, int32_t g)
{
    for (size_t b = (size_t)g * p->v_share; b < (size_t)(g + 1) * p->v_share && b < p->v_bytes; b += 64)
        __builtin_prefetch(p->v + b, 0, 2); /* into L2 (prefetcht1 on x86) */
    for (size_t b = (size_t)g * p->k_share; b < (size_t)(g + 1) * p->k_share && b < p->k_bytes; b += 64)
        __builtin_prefetch(p->next_k + b, 0, 2);
}

/* The vector kernels of one ISA (attention_body.h).  Query rows are padded
 * with zeros to rows_pad (a multiple of 16), head dims to a multiple of
 * lanes (dk_pad, dv_pad).  Scores are stored transposed, s[key][rows_pad],
 * so that the softmax runs across rows without horizontal reductions. */
typedef struct cpu_attn_kernels {
    const char *isa;              /* "avx2", "avx512", "neon": for messages */
    int32_t lanes;                /* f32 lanes per vector: the head-dim padding */
    /* Tiles with at least this many rows compute scores as a small GEMM
     * (broadcast K elements times q^T vectors); smaller ones (decode with a
     * small group) take dot products of q rows and K rows. */
    int32_t gemm_min_rows;
    /* rows[0..n) (each `dim` elements in `format`) -> dst[KEYS_PER_TILE][dim_pad]
     * f32; dims dim.. are zeros; rows n.. are left as they are. */
    void (*load_rows)(moak_format format, const unsigned char *const *rows, int32_t n,
                      int32_t dim, int32_t dim_pad, float *dst);
    /* s[j][r] = q[r] . k[j] for j < n, r < rows_pad; q: [rows_pad][dk_pad]
     * (rows >= rows are zeros), k: [KEYS][dk_pad]. */
    void (*qk_dot)(const float *q, int32_t rows, int32_t rows_pad, int32_t dk_pad,
                   const float *k, int32_t n, float *s);
    /* The same from q^T: [dk_pad][rows_pad]. */
    void (*qk_gemm)(const float *qt, int32_t rows_pad, int32_t dk_pad, const float *k,
                    int32_t n, float *s);
    /* Online-softmax update of keys j < n for every row: key j is visible to
     * row r iff lo[r] <= j < hi[r]; invisible keys get p = 0.  Turns s into
     * logits (cpu_attn_logits), replaces them by p = 2^((x - m_new) exp_mul),
     * updates m and l, and sets corr[r] = 2^((m_old - m_new) exp_mul), the
     * factor the row's O must be scaled by. */
    void (*softmax)(float *s, int32_t rows_pad, int32_t n, const int32_t *lo,
                    const int32_t *hi, const cpu_attn_logits *logits, float *m, float *l,
                    float *corr);
    /* o[r] = o[r] * corr[r] + sum_{j < n} p[j][r] * v[j] for r < rows;
     * p: [KEYS][rows_pad], v: [KEYS][dv_pad], o: [rows][dv_pad]. */
    void (*pv)(const float *p, int32_t rows, int32_t rows_pad, int32_t n, const float *v,
               int32_t dv_pad, const float *corr, float *o);
    /* The fused path for tiles of at most fused_max_rows rows whose head
     * dims are multiples of lanes (NULL: none): one block of n <= KEYS
     * keys, K row j at k + j * k_stride (V likewise); all_visible: every
     * row sees all n keys (no masking).  Updates f->m, f->l, f->corr, f->o. */
    int32_t fused_max_rows;
    void (*fused_block)(cpu_attn_fused *f, const unsigned char *k, size_t k_stride,
                        const unsigned char *v, size_t v_stride, int32_t n, bool all_visible);
} cpu_attn_kernels;

/* What the driver needs from the backend that runs it. */
typedef struct cpu_attn_host {
    const moak_backend_env *env;  /* error messages and the pool */
    int32_t n_threads;            /* >= 1 */
    void *owner;                  /* the backend state, handed back below */
    /* Every thread's scratch at least `bytes` long (64-byte aligned, kept
     * between calls); MOAK_ERR_OUT_OF_MEMORY with the message set. */
    moak_status (*reserve_scratch)(void *owner, size_t bytes);
    void *(*scratch)(void *owner, int32_t thread);
    /* Op-wide buffer `index` (0 or 1) of at least `bytes`, 64-byte aligned;
     * NULL when out of memory. */
    void *(*op_buffer)(void *owner, int32_t index, size_t bytes);
} cpu_attn_host;

/* moak_attention over the standard host KV layout with these kernels. */
moak_status cpu_attention_run(const cpu_attn_host *host, const moak_attention_args *args,
                              const cpu_attn_kernels *kernels);

/* Each ISA's table (attention_body.h instantiated by its file). */
extern const cpu_attn_kernels cpu_attn_kernels_avx2;
extern const cpu_attn_kernels cpu_attn_kernels_avx512;
extern const cpu_attn_kernels cpu_attn_kernels_neon;

#endif /* MOAK_CPU_ATTENTION_H */
