/*
 * cpu_attention.c — the CPU attention's planner and split-key driver, once
 * for every ISA (cpu_attention.h says how the work is cut and why); the
 * floating-point loops over head dims are the kernel table's
 * (attention_body.h, instantiated per ISA).  Compiled with the library's
 * ordinary flags.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_attention.h"

/* A key chunk of a split tile is never shorter than this: below it the
 * partial's store and merge cost as much as the keys. */
#define CPU_ATTN_MIN_CHUNK_KEYS 256
/* Chunks per thread a split tile of more than 16 rows aims for (instead of
 * CPU_ATTN_TASKS_PER_THREAD): a chunk's partial (rows x dv floats) is
 * stored and merged by one thread at the end, and MLA's 128 rows x 512
 * dims in 16 chunks of 256 keys moved 4 MB per call through that serial
 * merge (2-thread CPU time per call 8.1 ms against 6.7 ms unsplit). */
#define CPU_ATTN_WIDE_CHUNKS_PER_THREAD 2
/* Tasks per thread a call aims for, so dynamic hand-out balances the load. */
#define CPU_ATTN_TASKS_PER_THREAD 8
#define CPU_ATTN_LOG2E 1.44269504088896340736
/* A factor of at most this much is folded into q or a soft-cap constant
 * whole; a bigger one leaves a power of two in cpu_attn_logits.exp_mul. */
#define CPU_ATTN_FOLD_LIMIT 0x1p64

/* A tile: query tokens [first_query, first_query + n_queries) of sequence
 * seq_index (an index into args->seq_ids) against KV head kv_head. */
typedef struct cpu_attn_tile {
    int32_t seq_index;
    int32_t kv_head;
    int32_t first_query;
    int32_t n_queries;
    int64_t key_begin, key_end;   /* union of the rows' visible keys */
    int64_t chunk_keys;           /* keys per chunk (the whole range when 1 chunk) */
    int32_t n_chunks;
    size_t partial_floats;        /* offset of chunk 0's slot in the partial buffer */
} cpu_attn_tile;

typedef struct cpu_attn_task {
    int32_t tile;
    int32_t chunk;
    int64_t work;                 /* rows x keys: bigger tasks are handed out first */
} cpu_attn_task;

typedef struct cpu_attn_job {
    const moak_attention_args *args;
    const cpu_attn_kernels *kernels;
    const cpu_attn_host *host;
    int32_t group;                /* query heads per KV head */
    int32_t dk_pad, dv_pad;
    int32_t max_rows, max_rows_pad, max_queries;
    cpu_attn_tile *tiles;
    int32_t n_tiles;
    cpu_attn_task *tasks;
    int64_t n_tasks;
    uint64_t call_id;             /* distinct per call (never 0): tags a thread's prepared q */
    float q_scale;                /* what q is multiplied by (cpu_attn_logits) */
    cpu_attn_logits logits;
    double m_unit;                /* m * m_unit: a row's maximum as a base-2 logit */
    float *partials;              /* per split tile and chunk: [rows][2 + dv_pad] = m, l, O */
    int32_t *chunks_done;         /* [n_tiles]: finished chunks of each split tile */
} cpu_attn_job;

/* ---- small helpers ----------------------------------------------------------- */

static int32_t cpu_attn_round_up(int32_t v, int32_t unit)
{
    return (v + unit - 1) / unit * unit;
}

static size_t cpu_attn_align_floats(size_t n)
{
    return (n + 15u) & ~(size_t)15u; /* 64 bytes */
}

/* Visible keys [*lo, *hi) of a query at position pos in a sequence of len
 * cached tokens (the reference's rule, moak.h). */
static void cpu_attn_visible(const moak_attention_args *args, int64_t len, int64_t pos,
                                    int64_t *lo, int64_t *hi)
{
    int64_t first = 0, end = len;
    if (args->causal && end > pos + 1)
        end = pos + 1;
    if (args->sliding_window > 0 && pos - args->sliding_window + 1 > first)
        first = pos - args->sliding_window + 1;
    *lo = first;
    *hi = end;
}

/* Bytes of token j's K (or V) row of KV head kv_head. */
static const unsigned char *cpu_attn_kv_row(const moak_kv_view *kv, int32_t seq,
                                                   int64_t j, int32_t kv_head, bool v_block)
{
    const moak_kv_layout *lay = kv->layout;
    const int64_t page = kv->page_tables[seq][j / lay->page_tokens];
    const int64_t slot = j % lay->page_tokens;
    const unsigned char *page_base =
        (const unsigned char *)kv->storage + (size_t)page * lay->page_bytes;
    if (v_block && !lay->shared_v)
        return page_base + lay->v_block_offset +
               ((size_t)kv_head * (size_t)lay->page_tokens + (size_t)slot) * lay->row_bytes_v;
    /* shared V is a prefix of the K row: every KV format stores the first
     * head_dim_v elements first (Q8_0 head dims are multiples of 32) */
    return page_base +
           ((size_t)kv_head * (size_t)lay->page_tokens + (size_t)slot) * lay->row_bytes_k;
}

/* ---- one thread's scratch, carved in a fixed order ------------------------------ */

typedef struct cpu_attn_scratch {
    float *q;                     /* [rows_pad][dk_pad] or [dk_pad][rows_pad], scaled */
    float *k;                     /* [KEYS][dk_pad] */
    float *v;                     /* [KEYS][dv_pad] */
    float *s;                     /* [KEYS][rows_pad] scores, then probabilities */
    float *o;                     /* [rows][dv_pad] */
    float *m, *l, *corr;          /* [rows_pad] */
    int32_t *lo, *hi;             /* [rows_pad] visible keys of the tile, per row */
    int64_t *token_lo, *token_hi; /* [max_queries] visible keys, per query token */
    const unsigned char **k_rows; /* [KEYS] */
    const unsigned char **v_rows; /* [KEYS] */
    uint64_t *prepared;           /* [2]: call id and tile + 1 whose q sc.q holds */
} cpu_attn_scratch;

#define CPU_ATTN_SCRATCH_PARTS 13

/* The bytes one thread's scratch needs; with base, also carves it into out. */
static size_t cpu_attn_scratch_bytes(const cpu_attn_job *job, cpu_attn_scratch *out,
                                            unsigned char *base)
{
    const size_t keys = CPU_ATTN_KEYS_PER_TILE;
    const size_t rows_pad = (size_t)job->max_rows_pad;
    const size_t queries = (size_t)job->max_queries;
    const size_t parts[CPU_ATTN_SCRATCH_PARTS] = {
        rows_pad * (size_t)job->dk_pad,            /* q */
        keys * (size_t)job->dk_pad,                /* k */
        keys * (size_t)job->dv_pad,                /* v */
        keys * rows_pad,                           /* s */
        rows_pad * (size_t)job->dv_pad,            /* o (padding rows: the fused path) */
        rows_pad, rows_pad, rows_pad,              /* m, l, corr */
        rows_pad, rows_pad,                        /* lo, hi (int32) */
        4 * queries,                               /* token_lo, token_hi (int64) */
        4 * keys,                                  /* row pointers (2 x 64-bit) */
        4,                                         /* prepared (2 x 64-bit) */
    };
    size_t offset = 0;
    float *p[CPU_ATTN_SCRATCH_PARTS];
    for (int i = 0; i < CPU_ATTN_SCRATCH_PARTS; i++) {
        p[i] = base ? (float *)(void *)(base + offset * sizeof(float)) : NULL;
        offset += cpu_attn_align_floats(parts[i]);
    }
    if (out) {
        out->q = p[0];
        out->k = p[1];
        out->v = p[2];
        out->s = p[3];
        out->o = p[4];
        out->m = p[5];
        out->l = p[6];
        out->corr = p[7];
        out->lo = (int32_t *)(void *)p[8];
        out->hi = (int32_t *)(void *)p[9];
        out->token_lo = (int64_t *)(void *)p[10];
        out->token_hi = out->token_lo + queries;
        out->k_rows = (const unsigned char **)(void *)p[11];
        out->v_rows = out->k_rows + keys;
        out->prepared = (uint64_t *)(void *)p[12];
    }
    return offset * sizeof(float);
}

/* ---- merge of a split tile's chunks ------------------------------------------------- */

/* out = sum_c 2^(m_c - M) O_c / (sum_c 2^(m_c - M) l_c + 2^(sink - M)), the
 * chunks taken in order; M = max over the chunks that saw a key and the sink. */
static void cpu_attn_merge_tile(const cpu_attn_job *job, const cpu_attn_tile *tile)
{
    const moak_attention_args *args = job->args;
    const int32_t group = job->group;
    const int32_t rows = tile->n_queries * group;
    const int32_t dv = args->head_dim_v;
    const size_t slot_floats = 2 + (size_t)job->dv_pad;
    const size_t chunk_stride = (size_t)rows * slot_floats;
    for (int32_t r = 0; r < rows; r++) {
        const int32_t t = r / group, h = tile->kv_head * group + r % group;
        const float *first = job->partials + tile->partial_floats + (size_t)r * slot_floats;
        const int64_t token = args->q_offsets[tile->seq_index] + tile->first_query + t;
        float *out = args->out + ((size_t)token * (size_t)args->n_heads + (size_t)h) * (size_t)dv;
        const double sink2 = args->sinks ? (double)args->sinks[h] * CPU_ATTN_LOG2E : -INFINITY;

        double big = sink2;
        for (int32_t c = 0; c < tile->n_chunks; c++) {
            const float *p = first + (size_t)c * chunk_stride;
            if (p[1] > 0.0f && (double)p[0] * job->m_unit > big)
                big = (double)p[0] * job->m_unit;
        }
        for (int32_t d = 0; d < dv; d++)
            out[d] = 0.0f;
        if (big == -INFINITY)
            continue; /* no key and no sink: zeros, as the reference defines */
        double denom = args->sinks ? exp2(sink2 - big) : 0.0;
        for (int32_t c = 0; c < tile->n_chunks; c++) {
            const float *p = first + (size_t)c * chunk_stride;
            if (!(p[1] > 0.0f))
                continue;
            const double a = exp2((double)p[0] * job->m_unit - big);
            denom += (double)p[1] * a;
            const float w = (float)a;
            for (int32_t d = 0; d < dv; d++)
                out[d] += w * p[2 + d];
        }
        const float inv = (float)(1.0 / denom);
        for (int32_t d = 0; d < dv; d++)
            out[d] *= inv;
    }
}

/* ---- one task ------------------------------------------------------------------- */

/* Store the normalised row (m2 = m * m_unit and the sink in base-2 units):
 * out = O 2^(m2 - M) / (l 2^(m2 - M) + 2^(sink - M)), M = max(m2, sink);
 * zeros when the row saw no key and there is no sink. */
static void cpu_attn_finish_row(const float *o, int32_t dv, double m2, float l,
                                       const double *sink2, float *out)
{
    double factor = 0.0;
    if (sink2) {
        const double big = l > 0.0f && m2 > *sink2 ? m2 : *sink2;
        const double a = l > 0.0f ? exp2(m2 - big) : 0.0;
        factor = a / ((double)l * a + exp2(*sink2 - big));
    } else if (l > 0.0f) {
        factor = 1.0 / (double)l;
    }
    const float f = (float)factor;
    for (int32_t d = 0; d < dv; d++)
        out[d] = o[d] * f;
}

static int32_t cpu_attn_clamp_key(int64_t v, int32_t n)
{
    return v < 0 ? 0 : v > n ? n : (int32_t)v;
}

/* Addresses of the K and V rows of keys [k0, min(k0 + KEYS, end)).
 * (Software prefetch of the next tile into L2 was tried: 10-15% slower
 * than leaving it to the hardware prefetcher, pages being contiguous.) */
static void cpu_attn_tile_rows(const moak_kv_view *kv, int32_t seq, int32_t kv_head,
                                      int64_t k0, int64_t end, const unsigned char **k_rows,
                                      const unsigned char **v_rows)
{
    const int32_t n = end - k0 < CPU_ATTN_KEYS_PER_TILE ? (int32_t)(end - k0)
                                                         : CPU_ATTN_KEYS_PER_TILE;
    for (int32_t j = 0; j < n; j++) {
        k_rows[j] = cpu_attn_kv_row(kv, seq, k0 + j, kv_head, false);
        v_rows[j] = cpu_attn_kv_row(kv, seq, k0 + j, kv_head, true);
    }
}

/* Keys of the fused block that starts at k0: up to the page's end, the
 * range's end or KEYS. */
static int64_t cpu_attn_fused_block_keys(int64_t k0, int64_t end, int64_t page_tokens)
{
    int64_t n = page_tokens - k0 % page_tokens;
    if (n > end - k0)
        n = end - k0;
    return n > CPU_ATTN_KEYS_PER_TILE ? CPU_ATTN_KEYS_PER_TILE : n;
}

/* The fused path over keys [begin, end) of a tile: blocks that end at a
 * page boundary (or after KEYS keys), so a block's rows are equally
 * spaced; leaves m, l (per row) in sc and O in sc->o. */
static void cpu_attn_fused_range(const cpu_attn_job *job, const cpu_attn_tile *tile, int32_t rows,
                                 const cpu_attn_scratch *sc, int64_t begin, int64_t end)
{
    const moak_attention_args *args = job->args;
    const moak_kv_view *kv = args->kv;
    const moak_kv_layout *lay = kv->layout;
    const int32_t group = job->group;
    const int32_t seq = args->seq_ids[tile->seq_index];
    const int64_t page_tokens = lay->page_tokens;
    const size_t k_stride = lay->row_bytes_k;
    const size_t v_stride = lay->shared_v ? lay->row_bytes_k : lay->row_bytes_v;
    cpu_attn_fused f;
    f.o = sc->o;
    f.rows = rows;
    f.rp = 1;
    while (f.rp < rows)
        f.rp *= 2;
    /* the chunk-major q goes where the K tile would (unused on this path) */
    const int32_t lanes = job->kernels->lanes;
    for (int32_t r = 0; r < f.rp; r++)
        for (int32_t c = 0; c < args->head_dim_k / lanes; c++)
            memcpy(sc->k + ((size_t)c * (size_t)f.rp + (size_t)r) * (size_t)lanes,
                   sc->q + (size_t)r * (size_t)job->dk_pad + (size_t)c * (size_t)lanes,
                   (size_t)lanes * sizeof(float));
    f.q = sc->k;
    f.dk = args->head_dim_k;
    f.dv = args->head_dim_v;
    f.dv_pad = job->dv_pad;
    f.format = lay->format;
    f.logits = job->logits;
    for (int32_t i = 0; i < CPU_ATTN_MAX_LANES; i++) {
        f.m[i] = -INFINITY;
        f.l[i] = 0.0f;
        f.corr[i] = 0.0f;
    }
    for (int64_t k0 = begin, n = 0; k0 < end; k0 += n) {
        n = cpu_attn_fused_block_keys(k0, end, page_tokens);
        const int64_t k1 = k0 + n;
        f.next_k = k1 < end ? cpu_attn_kv_row(kv, seq, k1, tile->kv_head, false) : NULL;
        f.next_k_bytes = k1 < end ? (size_t)cpu_attn_fused_block_keys(k1, end, page_tokens) * k_stride : 0;
        bool all_visible = true;
        for (int32_t t = 0; t < tile->n_queries; t++) {
            const int32_t lo = cpu_attn_clamp_key(sc->token_lo[t] - k0, (int32_t)n);
            const int32_t hi = cpu_attn_clamp_key(sc->token_hi[t] - k0, (int32_t)n);
            if (lo > 0 || hi < n)
                all_visible = false;
            for (int32_t h = 0; h < group; h++) {
                f.lo[t * group + h] = lo;
                f.hi[t * group + h] = hi;
            }
        }
        for (int32_t r = rows; r < f.rp; r++) { /* padding rows: anything finite */
            f.lo[r] = 0;
            f.hi[r] = (int32_t)n;
        }
        job->kernels->fused_block(&f, cpu_attn_kv_row(kv, seq, k0, tile->kv_head, false), k_stride,
                                  cpu_attn_kv_row(kv, seq, k0, tile->kv_head, true), v_stride,
                                  (int32_t)n, all_visible);
    }
    for (int32_t r = 0; r < rows; r++) {
        sc->m[r] = f.m[r];
        sc->l[r] = f.l[r];
    }
}

static void cpu_attn_run_task(void *arg, int64_t task_index, int32_t thread)
{
    const cpu_attn_job *job = arg;
    const moak_attention_args *args = job->args;
    const cpu_attn_kernels *kern = job->kernels;
    const moak_kv_view *kv = args->kv;
    const moak_kv_layout *lay = kv->layout;
    const cpu_attn_task *task = &job->tasks[task_index];
    const cpu_attn_tile *tile = &job->tiles[task->tile];
    const int32_t keys = CPU_ATTN_KEYS_PER_TILE;
    const int32_t group = job->group;
    const int32_t rows = tile->n_queries * group;
    const int32_t rows_pad = cpu_attn_round_up(rows, 16);
    const int32_t dk = args->head_dim_k, dv = args->head_dim_v;
    const int32_t dk_pad = job->dk_pad, dv_pad = job->dv_pad;
    const int32_t seq = args->seq_ids[tile->seq_index];
    const int64_t len = kv->seq_lens[seq];
    const int32_t q_len = args->q_lens[tile->seq_index];
    const int64_t first_token = args->q_offsets[tile->seq_index] + tile->first_query;
    const bool fused = kern->fused_block && rows <= kern->fused_max_rows && dk % kern->lanes == 0 &&
                       dv % kern->lanes == 0;
    const bool gemm = !fused && rows >= kern->gemm_min_rows;
    const float q_scale = job->q_scale;

    cpu_attn_scratch sc;
    cpu_attn_scratch_bytes(job, &sc, job->host->scratch(job->host->owner, thread));

    /* the tile's queries, scaled, as rows (dot) or transposed (gemm); the
     * padding rows are zeros */
    const float **q_rows = (const float **)(void *)sc.o; /* O is cleared below */
    for (int32_t t = 0; t < tile->n_queries; t++) {
        const int64_t pos = len - q_len + tile->first_query + t;
        cpu_attn_visible(args, len, pos, &sc.token_lo[t], &sc.token_hi[t]);
        for (int32_t h = 0; h < group; h++)
            q_rows[t * group + h] =
                args->q + ((size_t)(first_token + t) * (size_t)args->n_heads +
                           (size_t)tile->kv_head * (size_t)group + (size_t)h) * (size_t)dk;
    }
    /* The scaled q of a tile is the same for all its chunk tasks: a thread
     * that ran a chunk of this tile last (in this call) still has it.  MLA
     * decode is one 128 x 576 tile in 16 chunks; rebuilding q^T in every
     * chunk took ~17 % of the call. */
    const bool prepared = sc.prepared[0] == job->call_id && sc.prepared[1] == (uint64_t)task->tile + 1u;
    if (prepared) {
        /* sc.q already holds this tile's q */
    } else if (gemm) {
        /* head dim outer, rows inner: the stores run along a q^T row and the
         * loads touch one line per q row, each reused for 16 dims */
        for (int32_t d = 0; d < dk_pad; d++) {
            float *dst = sc.q + (size_t)d * (size_t)rows_pad;
            if (d < dk)
                for (int32_t r = 0; r < rows; r++)
                    dst[r] = q_rows[r][d] * q_scale;
            else
                for (int32_t r = 0; r < rows; r++)
                    dst[r] = 0.0f;
            for (int32_t r = rows; r < rows_pad; r++)
                dst[r] = 0.0f;
        }
    } else {
        for (int32_t r = 0; r < rows_pad; r++) {
            float *dst = sc.q + (size_t)r * (size_t)dk_pad;
            int32_t d = 0;
            if (r < rows)
                for (; d < dk; d++)
                    dst[d] = q_rows[r][d] * q_scale;
            for (; d < dk_pad; d++)
                dst[d] = 0.0f;
        }
    }
    sc.prepared[0] = job->call_id;
    sc.prepared[1] = (uint64_t)task->tile + 1u;
    for (int32_t r = 0; r < rows_pad; r++) {
        sc.m[r] = -INFINITY;
        sc.l[r] = 0.0f;
        sc.lo[r] = 0;
        sc.hi[r] = 0; /* padding rows see nothing */
    }
    memset(sc.o, 0, (size_t)rows_pad * (size_t)dv_pad * sizeof(float));

    const int64_t chunk_begin = tile->key_begin + (int64_t)task->chunk * tile->chunk_keys;
    int64_t chunk_end = chunk_begin + tile->chunk_keys;
    if (chunk_end > tile->key_end)
        chunk_end = tile->key_end;

    if (fused)
        cpu_attn_fused_range(job, tile, rows, &sc, chunk_begin, chunk_end);
    for (int64_t k0 = chunk_begin; k0 < chunk_end && !fused; k0 += keys) {
        const int32_t n = chunk_end - k0 < keys ? (int32_t)(chunk_end - k0) : keys;
        cpu_attn_tile_rows(kv, seq, tile->kv_head, k0, chunk_end, sc.k_rows, sc.v_rows);
        for (int32_t t = 0; t < tile->n_queries; t++) {
            const int32_t lo = cpu_attn_clamp_key(sc.token_lo[t] - k0, n);
            const int32_t hi = cpu_attn_clamp_key(sc.token_hi[t] - k0, n);
            for (int32_t h = 0; h < group; h++) {
                sc.lo[t * group + h] = lo;
                sc.hi[t * group + h] = hi;
            }
        }
        kern->load_rows(lay->format, sc.k_rows, n, dk, dk_pad, sc.k);
        if (gemm)
            kern->qk_gemm(sc.q, rows_pad, dk_pad, sc.k, n, sc.s);
        else
            kern->qk_dot(sc.q, rows, rows_pad, dk_pad, sc.k, n, sc.s);
        kern->load_rows(lay->format, sc.v_rows, n, dv, dv_pad, sc.v);
        kern->softmax(sc.s, rows_pad, n, sc.lo, sc.hi, &job->logits, sc.m, sc.l, sc.corr);
        kern->pv(sc.s, rows, rows_pad, n, sc.v, dv_pad, sc.corr, sc.o);
    }

    if (tile->n_chunks == 1) {
        for (int32_t r = 0; r < rows; r++) {
            const int32_t t = r / group, h = tile->kv_head * group + r % group;
            float *out = args->out +
                         ((size_t)(first_token + t) * (size_t)args->n_heads + (size_t)h) * (size_t)dv;
            const double sink2 = args->sinks ? (double)args->sinks[h] * CPU_ATTN_LOG2E : 0.0;
            cpu_attn_finish_row(sc.o + (size_t)r * (size_t)dv_pad, dv, (double)sc.m[r] * job->m_unit, sc.l[r],
                                args->sinks ? &sink2 : NULL, out);
        }
        return;
    }
    const size_t slot_floats = 2 + (size_t)dv_pad;
    float *slot = job->partials + tile->partial_floats +
                  (size_t)task->chunk * (size_t)rows * slot_floats;
    for (int32_t r = 0; r < rows; r++) {
        float *dst = slot + (size_t)r * slot_floats;
        dst[0] = sc.m[r];
        dst[1] = sc.l[r];
        memcpy(dst + 2, sc.o + (size_t)r * (size_t)dv_pad, (size_t)dv * sizeof(float));
    }
    /* the task that completes the tile merges it (acquire-release: it sees
     * every other chunk's slot); which thread that is does not change the
     * arithmetic, the chunks are always merged in order */
    if (__atomic_add_fetch(&job->chunks_done[task->tile], 1, __ATOMIC_ACQ_REL) == tile->n_chunks)
        cpu_attn_merge_tile(job, tile);
}

/* ---- the plan ------------------------------------------------------------------------ */

/* Calls so far: the call ids. */
static uint64_t cpu_attn_calls;

static int cpu_attn_task_order(const void *a, const void *b)
{
    const cpu_attn_task *x = a, *y = b;
    if (x->work != y->work)
        return x->work > y->work ? -1 : 1;
    if (x->tile != y->tile)
        return x->tile < y->tile ? -1 : 1;
    return x->chunk < y->chunk ? -1 : (x->chunk > y->chunk);
}

/* The factor f as q (or cap) x unit, unit a power of two (1 unless |f| is
 * beyond CPU_ATTN_FOLD_LIMIT) at most 2^127, so both are finite f32. */
static double cpu_attn_unit(double f)
{
    if (!(fabs(f) > CPU_ATTN_FOLD_LIMIT))
        return 1.0;
    int e = ilogb(f);
    return ldexp(1.0, e > 127 ? 127 : e);
}

/* The scale and the soft-cap as the kernels apply them (cpu_attn_logits). */
static void cpu_attn_plan_logits(const moak_attention_args *args, cpu_attn_job *job)
{
    const double scale2 = (double)args->scale * CPU_ATTN_LOG2E;
    const double q_unit = cpu_attn_unit(scale2);
    job->q_scale = (float)(scale2 / q_unit);
    cpu_attn_logits *lg = &job->logits;
    if (args->softcap == 0.0f) {
        lg->cap_in = lg->cap_out = lg->small_mul = 0.0f;
        lg->exp_mul = (float)q_unit;
        job->m_unit = q_unit;
        return;
    }
    const double cap2 = (double)args->softcap * CPU_ATTN_LOG2E;
    const double cap_unit = cpu_attn_unit(cap2);
    const double cap_in = q_unit / cap2;
    /* a tiny cap makes cap_in huge: any t past ~9 is tanh 1 in f32 */
    lg->cap_in = (float)(cap_in < 0x1p100 ? cap_in : 0x1p100);
    lg->cap_out = (float)(cap2 / cap_unit);
    lg->small_mul = (float)(q_unit / cap_unit);
    lg->exp_mul = (float)cap_unit;
    job->m_unit = cap_unit;
}

moak_status cpu_attention_run(const cpu_attn_host *host, const moak_attention_args *args,
                              const cpu_attn_kernels *kernels)
{
    const char *name = kernels->isa;
    const moak_backend_env *env = host->env;
    const moak_kv_view *kv = args->kv;
    if (!kv->host_layout)
        return env->error(env->log_ctx, MOAK_ERR_UNSUPPORTED,
                             "%s: attention needs a KV cache in the standard host layout", name);
    if (args->q_offsets[args->n_seqs] == 0)
        return MOAK_OK;

    cpu_attn_job job;
    memset(&job, 0, sizeof(job));
    job.args = args;
    job.kernels = kernels;
    job.host = host;
    job.group = args->n_heads / args->n_kv_heads;
    job.dk_pad = cpu_attn_round_up(args->head_dim_k, kernels->lanes);
    job.dv_pad = cpu_attn_round_up(args->head_dim_v, kernels->lanes);
    cpu_attn_plan_logits(args, &job);
    const int32_t n_threads = host->n_threads > 0 ? host->n_threads : 1;
    const int32_t queries_per_tile =
        job.group >= CPU_ATTN_TARGET_ROWS ? 1 : CPU_ATTN_TARGET_ROWS / job.group;

    /* The plan lives in op buffer 0 (kept between calls): tiles, the chunk
     * counters and the tasks.  A tile splits into at most
     * ceil(work / share) chunks, so there are at most
     * n_tiles + n_threads * TASKS_PER_THREAD tasks. */
    int64_t n_tiles = 0;
    for (int32_t i = 0; i < args->n_seqs; i++)
        n_tiles += (int64_t)((args->q_lens[i] + queries_per_tile - 1) / queries_per_tile) *
                   args->n_kv_heads;
    const int64_t max_tasks = n_tiles + (int64_t)n_threads * CPU_ATTN_TASKS_PER_THREAD + 1;
    const size_t tiles_bytes = cpu_attn_align_floats((size_t)n_tiles * sizeof(cpu_attn_tile));
    const size_t counters_bytes = cpu_attn_align_floats((size_t)n_tiles * sizeof(int32_t));
    unsigned char *plan = host->op_buffer(
        host->owner, 0, tiles_bytes + counters_bytes + (size_t)max_tasks * sizeof(cpu_attn_task));
    if (!plan)
        return env->error(env->log_ctx, MOAK_ERR_OUT_OF_MEMORY,
                             "%s: out of memory for the attention plan", name);
    job.tiles = (cpu_attn_tile *)(void *)plan;
    job.chunks_done = (int32_t *)(void *)(plan + tiles_bytes);
    job.tasks = (cpu_attn_task *)(void *)(plan + tiles_bytes + counters_bytes);
    memset(job.chunks_done, 0, (size_t)n_tiles * sizeof(int32_t));

    /* 1. tiles: (sequence, KV head, run of queries_per_tile query tokens) */
    double total_work = 0.0;
    for (int32_t i = 0; i < args->n_seqs; i++) {
        const int64_t len = kv->seq_lens[args->seq_ids[i]];
        for (int32_t r0 = 0; r0 < args->q_lens[i]; r0 += queries_per_tile) {
            const int32_t nq = args->q_lens[i] - r0 < queries_per_tile ? args->q_lens[i] - r0
                                                                       : queries_per_tile;
            int64_t kb = INT64_MAX, ke = 0;
            for (int32_t t = 0; t < nq; t++) {
                int64_t lo, hi;
                cpu_attn_visible(args, len, len - args->q_lens[i] + r0 + t, &lo, &hi);
                if (lo < hi) {
                    kb = lo < kb ? lo : kb;
                    ke = hi > ke ? hi : ke;
                }
            }
            if (kb > ke)
                kb = ke = 0;
            for (int32_t g = 0; g < args->n_kv_heads; g++) {
                cpu_attn_tile *tile = &job.tiles[job.n_tiles++];
                tile->seq_index = i;
                tile->kv_head = g;
                tile->first_query = r0;
                tile->n_queries = nq;
                tile->key_begin = kb;
                tile->key_end = ke;
                tile->chunk_keys = ke - kb;
                tile->n_chunks = 1;
                tile->partial_floats = 0;
                total_work += (double)(nq * job.group) * (double)(ke - kb);
            }
            if (nq * job.group > job.max_rows)
                job.max_rows = nq * job.group;
            if (nq > job.max_queries)
                job.max_queries = nq;
        }
    }
    job.max_rows_pad = cpu_attn_round_up(job.max_rows, 16);

    /* 2. split tiles much longer than a fair share of the work into key
     * chunks of at least CPU_ATTN_MIN_CHUNK_KEYS (none with one thread) */
    const double share = total_work / (double)(n_threads * CPU_ATTN_TASKS_PER_THREAD);
    size_t partial_floats = 0;
    for (int32_t ti = 0; ti < job.n_tiles; ti++) {
        cpu_attn_tile *tile = &job.tiles[ti];
        const int32_t rows = tile->n_queries * job.group;
        const int64_t range = tile->key_end - tile->key_begin;
        if (n_threads == 1 || range < 2 * CPU_ATTN_MIN_CHUNK_KEYS)
            continue;
        const double tile_share = rows > 16 ? share * (double)CPU_ATTN_TASKS_PER_THREAD /
                                                  (double)CPU_ATTN_WIDE_CHUNKS_PER_THREAD
                                            : share;
        int64_t chunks = (int64_t)ceil((double)rows * (double)range / tile_share);
        if (chunks > range / CPU_ATTN_MIN_CHUNK_KEYS)
            chunks = range / CPU_ATTN_MIN_CHUNK_KEYS;
        if (chunks < 2)
            continue;
        int64_t chunk_keys = (range + chunks - 1) / chunks;
        chunk_keys = (chunk_keys + CPU_ATTN_KEYS_PER_TILE - 1) / CPU_ATTN_KEYS_PER_TILE *
                     CPU_ATTN_KEYS_PER_TILE;
        const int32_t n_chunks = (int32_t)((range + chunk_keys - 1) / chunk_keys);
        if (n_chunks < 2)
            continue;
        tile->chunk_keys = chunk_keys;
        tile->n_chunks = n_chunks;
        tile->partial_floats = partial_floats;
        partial_floats += (size_t)n_chunks * (size_t)rows * (2 + (size_t)job.dv_pad);
    }

    /* 3. tasks, biggest first (dynamic hand-out then balances the tail) */
    for (int32_t ti = 0; ti < job.n_tiles; ti++) {
        const cpu_attn_tile *tile = &job.tiles[ti];
        for (int32_t c = 0; c < tile->n_chunks; c++) {
            int64_t keys = tile->key_end - tile->key_begin - (int64_t)c * tile->chunk_keys;
            if (keys > tile->chunk_keys)
                keys = tile->chunk_keys;
            cpu_attn_task *task = &job.tasks[job.n_tasks++];
            task->tile = ti;
            task->chunk = c;
            task->work = (int64_t)tile->n_queries * job.group * (keys + 1);
        }
    }
    qsort(job.tasks, (size_t)job.n_tasks, sizeof(*job.tasks), cpu_attn_task_order);

    /* 4. the split tiles' partial results (op buffer 1) and every thread's
     * scratch: all memory is in hand before the first output is written */
    if (partial_floats > 0) {
        job.partials = host->op_buffer(host->owner, 1, partial_floats * sizeof(float));
        if (!job.partials)
            return env->error(env->log_ctx, MOAK_ERR_OUT_OF_MEMORY,
                                 "%s: out of memory for attention partial results", name);
    }
    moak_status status = host->reserve_scratch(host->owner, cpu_attn_scratch_bytes(&job, NULL, NULL));
    if (status != MOAK_OK)
        return status;
    /* no thread holds a prepared q of this call yet (a grown scratch may
     * hold anything) */
    job.call_id = __atomic_add_fetch(&cpu_attn_calls, 1u, __ATOMIC_RELAXED);
    for (int32_t t = 0; t < n_threads; t++) {
        cpu_attn_scratch sc;
        cpu_attn_scratch_bytes(&job, &sc, host->scratch(host->owner, t));
        sc.prepared[0] = 0;
    }

    env->parallel_for(env->pool, job.n_tasks, cpu_attn_run_task, &job);
    return MOAK_OK;
}

