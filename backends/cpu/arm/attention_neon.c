/*
 * moak_attention on the neon backend, over the core's standard host KV
 * layout (moak_backend.h), flash-attention style.
 *
 * Rows.  For sequence i and KV head h, the rows are (query token, query head
 * of h's group) pairs, token-major, so that every K/V row converted to f32
 * serves all the query heads of its group (GQA; MLA's one KV head serves
 * all 128).  A tile is up to ATTN_ROWS consecutive rows; it walks the keys
 * its rows may see (the union of their causal / window ranges) ATTN_KEYS at
 * a time: convert K, score, online-softmax step, convert V (not with shared
 * V: the converted K rows are the V rows), accumulate p.V.
 *
 * Split keys.  When a call has few tiles (decode: one token per sequence),
 * a tile's keys are cut into chunks of at least ATTN_MIN_CHUNK_KEYS; each
 * chunk task stores its rows' (m, l, O) and a merge task per tile combines
 * them in chunk order with log-sum-exp weights.  The plan depends only on
 * the shapes (not on the thread count), every task writes its own slots,
 * so results are bitwise reproducible for any thread count.
 *
 * Numerics: scores in base 2 (q pre-multiplied by scale * log2 e), f32 sums,
 * the final normalisation in double.  Sinks join the denominator at the end
 * (a key with value 0).  A row that sees no key and has no sink gets zeros,
 * as in the reference.
 */
#if !defined(__ARM_NEON)
#error "attention_neon.c needs Advanced SIMD (NEON_CFLAGS)"
#endif

#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention_neon.h"
#include "neon_backend.h"
#include "neon_simd.h"

#define ATTN_ROWS 32             /* query rows per tile */
#define ATTN_MIN_CHUNK_KEYS 256  /* a split tile's key chunk is never shorter */
#define ATTN_TARGET_TASKS 64     /* split decode tiles until about this many tasks */
#define LOG2E 1.44269504088896340736

typedef struct attn_tile {
    int32_t seq_index;           /* index into args->seq_ids / q_lens / q_offsets */
    int32_t kv_head;
    int32_t row0, n_rows;        /* rows [row0, row0 + n_rows) of (seq, kv_head) */
    int64_t key_begin, key_end;  /* union of the rows' visible keys */
    int64_t chunk_keys;
    int32_t n_chunks;
    int64_t partial0;            /* first partial slot (split tiles), in slots */
} attn_tile;

typedef struct attn_job {
    const moak_attention_args *args;
    const neon_state *st;
    int32_t group;
    int32_t dk_pad, dv_pad;
    bool shared_v;
    float softcap2;              /* softcap in base-2 units, 0 = none */
    attn_tile *tiles;
    int32_t *task_tile, *task_chunk;
    float *partials;             /* per slot: [ATTN_ROWS][2 + dv_pad] = m, l, O */
    int32_t *split_tiles;
    size_t slot_floats;
    /* per-thread scratch offsets, in floats */
    size_t off_k, off_v, off_s, off_o, off_m, off_l, off_corr, off_bounds;
} attn_job;

/* Position of row `row` of sequence i, and its visible keys [lo, hi). */
static void row_keys(const moak_attention_args *a, int32_t i, int32_t group, int32_t row,
                     int64_t *pos, int64_t *lo, int64_t *hi)
{
    const int64_t len = a->kv->seq_lens[a->seq_ids[i]];
    const int64_t p = len - a->q_lens[i] + row / group;
    int64_t first = 0, end = len;
    if (a->causal && end > p + 1)
        end = p + 1;
    if (a->sliding_window > 0 && p - a->sliding_window + 1 > first)
        first = p - a->sliding_window + 1;
    *pos = p;
    *lo = first;
    *hi = end;
}

static const unsigned char *k_row(const moak_kv_view *kv, int32_t seq, int64_t j, int32_t kv_head)
{
    const moak_kv_layout *lay = kv->layout;
    const int64_t page = kv->page_tables[seq][j / lay->page_tokens];
    const int64_t slot = j % lay->page_tokens;
    return (const unsigned char *)kv->storage + (size_t)page * lay->page_bytes +
           ((size_t)kv_head * (size_t)lay->page_tokens + (size_t)slot) * lay->row_bytes_k;
}

static const unsigned char *v_row(const moak_kv_view *kv, int32_t seq, int64_t j, int32_t kv_head)
{
    const moak_kv_layout *lay = kv->layout;
    const int64_t page = kv->page_tables[seq][j / lay->page_tokens];
    const int64_t slot = j % lay->page_tokens;
    return (const unsigned char *)kv->storage + (size_t)page * lay->page_bytes + lay->v_block_offset +
           ((size_t)kv_head * (size_t)lay->page_tokens + (size_t)slot) * lay->row_bytes_v;
}

/* Final output of one row from its (m, l, O): O * 2^(m - M) / L, with the
 * sink joined to the denominator. */
static void write_row(const attn_job *job, int32_t head, double m, double l, const float *o, float *out)
{
    const moak_attention_args *a = job->args;
    double scale_o = 1.0, denom = l;
    if (a->sinks) {
        const double sink = (double)a->sinks[head] * LOG2E;
        const double big = m > sink ? m : sink;
        scale_o = m == -INFINITY ? 0.0 : exp2(m - big);
        denom = l * scale_o + exp2(sink - big);
    }
    if (!(denom > 0.0)) { /* nothing visible and no sink */
        memset(out, 0, (size_t)a->head_dim_v * sizeof(float));
        return;
    }
    const float f = (float)(scale_o / denom);
    int32_t d = 0;
    for (; d + 4 <= a->head_dim_v; d += 4)
        vst1q_f32(out + d, vmulq_n_f32(vld1q_f32(o + d), f));
    for (; d < a->head_dim_v; d++)
        out[d] = o[d] * f;
}

/* Output row of tile row r: token and head. */
static float *out_row(const attn_job *job, const attn_tile *t, int32_t r, int32_t *head)
{
    const moak_attention_args *a = job->args;
    const int32_t row = t->row0 + r;
    const int64_t token = a->q_offsets[t->seq_index] + row / job->group;
    *head = t->kv_head * job->group + row % job->group;
    return a->out + ((size_t)token * (size_t)a->n_heads + (size_t)*head) * (size_t)a->head_dim_v;
}

static void tile_task(void *arg, int64_t task, int32_t thread)
{
    const attn_job *job = arg;
    const moak_attention_args *a = job->args;
    const moak_kv_view *kv = a->kv;
    const attn_tile *t = &job->tiles[job->task_tile[task]];
    const int32_t chunk = job->task_chunk[task];
    const int32_t seq = a->seq_ids[t->seq_index];
    const int32_t dk = a->head_dim_k, dk_pad = job->dk_pad, dv_pad = job->dv_pad;
    const moak_format format = kv->layout->format;

    float *base = neon_scratch(job->st, thread);
    float *q = base, *kf = base + job->off_k, *vf = base + job->off_v, *s = base + job->off_s;
    float *o = base + job->off_o, *m = base + job->off_m, *l = base + job->off_l;
    float *corr = base + job->off_corr;
    int32_t *lo = (int32_t *)(void *)(base + job->off_bounds), *hi = lo + ATTN_ROWS;
    int64_t row_lo[ATTN_ROWS], row_hi[ATTN_ROWS];

    /* Q rows, scaled into base-2 logits. */
    const float qscale = (float)((double)a->scale * LOG2E);
    for (int32_t r = 0; r < t->n_rows; r++) {
        const int32_t row = t->row0 + r;
        const int64_t token = a->q_offsets[t->seq_index] + row / job->group;
        const int32_t head = t->kv_head * job->group + row % job->group;
        const float *src = a->q + ((size_t)token * (size_t)a->n_heads + (size_t)head) * (size_t)dk;
        float *dst = q + (size_t)r * dk_pad;
        int32_t d = 0;
        for (; d + 4 <= dk; d += 4)
            vst1q_f32(dst + d, vmulq_n_f32(vld1q_f32(src + d), qscale));
        for (; d < dk; d++)
            dst[d] = src[d] * qscale;
        for (; d < dk_pad; d++)
            dst[d] = 0.0f;
        int64_t pos;
        row_keys(a, t->seq_index, job->group, row, &pos, &row_lo[r], &row_hi[r]);
        m[r] = -INFINITY;
        l[r] = 0.0f;
        memset(o + (size_t)r * dv_pad, 0, (size_t)dv_pad * sizeof(float));
    }

    const int64_t kb = t->key_begin + (int64_t)chunk * t->chunk_keys;
    const int64_t ke = kb + t->chunk_keys < t->key_end ? kb + t->chunk_keys : t->key_end;
    const float *v_src = job->shared_v ? kf : vf;
    const int32_t v_stride = job->shared_v ? dk_pad : dv_pad;
    for (int64_t k0 = kb; k0 < ke; k0 += ATTN_KEYS) {
        const int32_t n = ke - k0 < ATTN_KEYS ? (int32_t)(ke - k0) : ATTN_KEYS;
        for (int32_t r = 0; r < t->n_rows; r++) {
            const int64_t rl = row_lo[r] - k0, rh = row_hi[r] - k0;
            lo[r] = rl < 0 ? 0 : rl > n ? n : (int32_t)rl;
            hi[r] = rh < 0 ? 0 : rh > n ? n : (int32_t)rh;
        }
        for (int32_t j = 0; j < n; j++)
            neon_attn_load_row(format, k_row(kv, seq, k0 + j, t->kv_head), dk, dk_pad,
                               kf + (size_t)j * dk_pad);
        neon_attn_scores(q, t->n_rows, dk_pad, kf, n, s);
        neon_attn_softmax(s, t->n_rows, n, lo, hi, job->softcap2, m, l, corr);
        if (!job->shared_v)
            for (int32_t j = 0; j < n; j++)
                neon_attn_load_row(format, v_row(kv, seq, k0 + j, t->kv_head), a->head_dim_v, dv_pad,
                                   vf + (size_t)j * dv_pad);
        neon_attn_pv(s, t->n_rows, n, v_src, v_stride, dv_pad, corr, o);
    }

    if (t->n_chunks == 1) {
        for (int32_t r = 0; r < t->n_rows; r++) {
            int32_t head;
            float *dst = out_row(job, t, r, &head);
            write_row(job, head, m[r], l[r], o + (size_t)r * dv_pad, dst);
        }
        return;
    }
    float *slot = job->partials + (size_t)(t->partial0 + chunk) * job->slot_floats;
    for (int32_t r = 0; r < t->n_rows; r++) {
        float *rs = slot + (size_t)r * (2 + (size_t)dv_pad);
        rs[0] = m[r];
        rs[1] = l[r];
        memcpy(rs + 2, o + (size_t)r * dv_pad, (size_t)dv_pad * sizeof(float));
    }
}

/* Combine the chunks of one split tile, in chunk order. */
static void merge_task(void *arg, int64_t task, int32_t thread)
{
    const attn_job *job = arg;
    const attn_tile *t = &job->tiles[job->split_tiles[task]];
    const int32_t dv = job->args->head_dim_v, dv_pad = job->dv_pad;
    float *acc = (float *)neon_scratch(job->st, thread);
    for (int32_t r = 0; r < t->n_rows; r++) {
        double big = -INFINITY;
        for (int32_t c = 0; c < t->n_chunks; c++) {
            const float *rs = job->partials + (size_t)(t->partial0 + c) * job->slot_floats +
                              (size_t)r * (2 + (size_t)dv_pad);
            if (rs[0] > big)
                big = rs[0];
        }
        double l = 0.0;
        memset(acc, 0, (size_t)dv * sizeof(float));
        if (big != -INFINITY) {
            for (int32_t c = 0; c < t->n_chunks; c++) {
                const float *rs = job->partials + (size_t)(t->partial0 + c) * job->slot_floats +
                                  (size_t)r * (2 + (size_t)dv_pad);
                if (rs[0] == -INFINITY)
                    continue;
                const double w = exp2((double)rs[0] - big);
                l += w * (double)rs[1];
                const float wf = (float)w;
                int32_t d = 0;
                for (; d + 4 <= dv; d += 4)
                    vst1q_f32(acc + d, vfmaq_n_f32(vld1q_f32(acc + d), vld1q_f32(rs + 2 + d), wf));
                for (; d < dv; d++)
                    acc[d] += wf * rs[2 + d];
            }
        }
        int32_t head;
        float *dst = out_row(job, t, r, &head);
        write_row(job, head, big, l, acc, dst);
    }
}

static int32_t round_up(int32_t x, int32_t to)
{
    return (x + to - 1) / to * to;
}

moak_status neon_attention(void *state, const moak_attention_args *args)
{
    neon_state *st = state;
    const moak_kv_view *kv = args->kv;
    if (!kv->host_layout)
        return neon_error(st, MOAK_ERR_UNSUPPORTED, "attention needs the standard host KV layout");
    if (args->q_offsets[args->n_seqs] == 0)
        return MOAK_OK;

    attn_job job;
    memset(&job, 0, sizeof(job));
    job.args = args;
    job.st = st;
    job.group = args->n_heads / args->n_kv_heads;
    job.dk_pad = round_up(args->head_dim_k, ATTN_PAD);
    job.dv_pad = round_up(args->head_dim_v, ATTN_PAD);
    job.shared_v = kv->layout->shared_v;
    job.softcap2 = args->softcap != 0.0f ? (float)((double)args->softcap * LOG2E) : 0.0f;

    /* 1. tiles */
    int64_t n_tiles = 0;
    for (int32_t i = 0; i < args->n_seqs; i++)
        n_tiles += (int64_t)args->n_kv_heads *
                   (((int64_t)args->q_lens[i] * job.group + ATTN_ROWS - 1) / ATTN_ROWS);
    /* 2. chunks: shape-only rule */
    const bool split = n_tiles < ATTN_TARGET_TASKS;
    const int64_t want_chunks = split ? (ATTN_TARGET_TASKS + n_tiles - 1) / n_tiles : 1;

    /* plan memory: tiles, tasks (bounded by tiles * want_chunks plus the
     * chunk count of each tile), split tile list */
    const int64_t max_tasks = n_tiles * want_chunks;
    const size_t plan_bytes = (size_t)n_tiles * sizeof(attn_tile) + (size_t)max_tasks * 2 * sizeof(int32_t) +
                              (size_t)n_tiles * sizeof(int32_t);
    job.slot_floats = (size_t)ATTN_ROWS * (2 + (size_t)job.dv_pad);
    const size_t partial_floats = split ? (size_t)max_tasks * job.slot_floats : 0;
    const size_t plan_aligned = (plan_bytes + 63) & ~(size_t)63;
    unsigned char *plan = neon_buffer(st, NEON_BUFFER_PLAN, plan_aligned + partial_floats * sizeof(float),
                                      "the attention plan");
    if (!plan)
        return MOAK_ERR_OUT_OF_MEMORY;
    job.tiles = (attn_tile *)(void *)plan;
    job.task_tile = (int32_t *)(void *)(job.tiles + n_tiles);
    job.task_chunk = job.task_tile + max_tasks;
    job.split_tiles = job.task_chunk + max_tasks;
    job.partials = (float *)(void *)(plan + plan_aligned);

    int64_t tile = 0, n_tasks = 0, n_split = 0, slots = 0;
    for (int32_t i = 0; i < args->n_seqs; i++) {
        const int32_t rows = args->q_lens[i] * job.group;
        for (int32_t h = 0; h < args->n_kv_heads; h++) {
            for (int32_t row0 = 0; row0 < rows; row0 += ATTN_ROWS) {
                attn_tile *t = &job.tiles[tile];
                t->seq_index = i;
                t->kv_head = h;
                t->row0 = row0;
                t->n_rows = rows - row0 < ATTN_ROWS ? rows - row0 : ATTN_ROWS;
                int64_t pos, lo_first, hi_first, lo_last, hi_last;
                row_keys(args, i, job.group, row0, &pos, &lo_first, &hi_first);
                row_keys(args, i, job.group, row0 + t->n_rows - 1, &pos, &lo_last, &hi_last);
                /* lo and hi grow with the position */
                t->key_begin = lo_first;
                t->key_end = hi_last > lo_first ? hi_last : lo_first;
                const int64_t keys = t->key_end - t->key_begin;
                int64_t chunks = 1;
                if (split && keys > ATTN_MIN_CHUNK_KEYS) {
                    chunks = (keys + ATTN_MIN_CHUNK_KEYS - 1) / ATTN_MIN_CHUNK_KEYS;
                    if (chunks > want_chunks)
                        chunks = want_chunks;
                }
                /* whole key tiles per chunk */
                int64_t per = (keys + chunks - 1) / chunks;
                per = (per + ATTN_KEYS - 1) / ATTN_KEYS * ATTN_KEYS;
                if (per < ATTN_KEYS)
                    per = ATTN_KEYS;
                t->chunk_keys = per;
                t->n_chunks = (int32_t)((keys + per - 1) / per);
                if (t->n_chunks < 1)
                    t->n_chunks = 1;
                t->partial0 = 0;
                if (t->n_chunks > 1) {
                    t->partial0 = slots;
                    slots += t->n_chunks;
                    job.split_tiles[n_split++] = (int32_t)tile;
                }
                for (int32_t c = 0; c < t->n_chunks; c++) {
                    job.task_tile[n_tasks] = (int32_t)tile;
                    job.task_chunk[n_tasks] = c;
                    n_tasks++;
                }
                tile++;
            }
        }
    }

    /* per-thread scratch: Q, K, V, S, O, m, l, corr, lo/hi */
    const size_t rows = ATTN_ROWS, keys = ATTN_KEYS;
    job.off_k = rows * (size_t)job.dk_pad;
    job.off_v = job.off_k + keys * (size_t)job.dk_pad;
    job.off_s = job.off_v + (job.shared_v ? 0 : keys * (size_t)job.dv_pad);
    job.off_o = job.off_s + rows * keys;
    job.off_m = job.off_o + rows * (size_t)job.dv_pad;
    job.off_l = job.off_m + rows;
    job.off_corr = job.off_l + rows;
    job.off_bounds = job.off_corr + rows;
    const size_t floats = job.off_bounds + 2 * rows;
    moak_status s = neon_reserve_scratch(st, floats * sizeof(float), "attention tiles");
    if (s != MOAK_OK)
        return s;

    neon_parallel_for(st, n_tasks, tile_task, &job);
    if (n_split > 0)
        neon_parallel_for(st, n_split, merge_task, &job);
    return MOAK_OK;
}
