/* test_bad_input_kv — the KV cache functions and moak_attention fed each
 * class of bad input: the right status, the argument named, nothing written.
 * For appends "nothing written" means every sequence keeps its length and
 * an attention over the whole cache gives bitwise the same result as before. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bad_input.h"

/* Qwen3-style GQA fixture scaled down: 4 KV heads of 64, 8 query heads. */
#define KV_HEADS 4
#define DIM 64
#define Q_HEADS 8
#define MAX_SEQS 3
#define PAGE 16
#define PAGES 6

/* ---- moak_kv_cache_create ------------------------------------------------------------- */

typedef struct create_fx {
    moak_context *ctx;
    moak_context *ctx_arg;
    const moak_kv_cache_desc *desc_arg;
    moak_kv_cache_desc desc;
    moak_kv_cache **out_arg;
    moak_kv_cache *out;
} create_fx;

static void create_reset(void *p)
{
    create_fx *f = p;
    f->ctx_arg = f->ctx;
    moak_kv_cache_desc d = MOAK_KV_CACHE_DESC_INIT;
    d.format = MOAK_FORMAT_Q8_0;
    d.n_kv_heads = KV_HEADS;
    d.head_dim_k = DIM;
    d.head_dim_v = DIM;
    d.max_seqs = MAX_SEQS;
    d.max_tokens = PAGE * PAGES;
    d.page_tokens = PAGE;
    f->desc = d;
    f->desc_arg = &f->desc;
    f->out_arg = &f->out;
}

static moak_status create_call(void *p)
{
    create_fx *f = p;
    moak_status st = moak_kv_cache_create(f->ctx_arg, f->desc_arg, f->out_arg);
    if (st == MOAK_OK)
        moak_kv_cache_destroy(f->out);
    return st;
}

static int create_outputs(void *p, t_span *s)
{
    create_fx *f = p;
    s[0].p = f->out_arg;
    s[0].n = sizeof(moak_kv_cache *);
    return 1;
}

static const moak_context *create_message_ctx(void *p) { return ((create_fx *)p)->ctx_arg; }

static void shared_v_wider_than_k(void *p)
{
    create_fx *f = p;
    f->desc.flags = MOAK_KV_SHARED_V;
    f->desc.head_dim_v = DIM + 32;
}

static void k_only_with_v_dims(void *p)
{
    create_fx *f = p;
    f->desc.flags = MOAK_KV_K_ONLY;
    f->desc.head_dim_v = DIM;
}

static void k_only_and_shared_v(void *p)
{
    create_fx *f = p;
    f->desc.flags = MOAK_KV_K_ONLY | MOAK_KV_SHARED_V;
    f->desc.head_dim_v = 0;
}

static void max_tokens_near_int64_max(void *p)
{
    create_fx *f = p;
    f->desc.max_tokens = INT64_MAX - 3;
    f->desc.page_tokens = 65536;
}

#define FX create_fx
static const t_bad_case create_cases[] = {
    BAD_OK("valid (Q8_0, 4 heads of 64)"),
    BAD_NULL("ctx NULL", ctx_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_NULL("desc NULL", desc_arg, MOAK_ERR_NULL_ARGUMENT, "desc"),
    BAD_NULL("kv NULL", out_arg, MOAK_ERR_NULL_ARGUMENT, "kv"),
    BAD_SIZE("struct_size 0", desc.struct_size, 0, MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_SIZE("struct_size one short", desc.struct_size, sizeof(moak_kv_cache_desc) - 1,
             MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_I32("format Q4_0 (not a KV format)", desc.format, MOAK_FORMAT_Q4_0,
            MOAK_ERR_INVALID_ARGUMENT, "format"),
    BAD_I32("format I8_ROW (not a KV format)", desc.format, MOAK_FORMAT_I8_ROW,
            MOAK_ERR_INVALID_ARGUMENT, "format"),
    BAD_I32("format 99", desc.format, 99, MOAK_ERR_INVALID_ARGUMENT, "format"),
    BAD_I32("n_kv_heads 0", desc.n_kv_heads, 0, MOAK_ERR_INVALID_ARGUMENT, "n_kv_heads"),
    BAD_I32("n_kv_heads -4", desc.n_kv_heads, -4, MOAK_ERR_INVALID_ARGUMENT, "n_kv_heads"),
    BAD_I32("head_dim_k 0", desc.head_dim_k, 0, MOAK_ERR_INVALID_ARGUMENT, "head_dim_k"),
    BAD_I32("head_dim_v -64", desc.head_dim_v, -64, MOAK_ERR_INVALID_ARGUMENT, "head_dim_v"),
    BAD_I32("Q8_0 with head_dim_k 48", desc.head_dim_k, 48, MOAK_ERR_INVALID_ARGUMENT, "head_dim_k"),
    BAD_FN("SHARED_V with head_dim_v > head_dim_k", shared_v_wider_than_k, MOAK_ERR_SHAPE_MISMATCH,
           "head_dim_v"),
    BAD_U32("flags: unknown bit", desc.flags, 1u << 7, MOAK_ERR_INVALID_ARGUMENT, "flags"),
    BAD_FN("K_ONLY with head_dim_v 64", k_only_with_v_dims, MOAK_ERR_INVALID_ARGUMENT, "head_dim_v"),
    BAD_FN("K_ONLY with SHARED_V", k_only_and_shared_v, MOAK_ERR_INVALID_ARGUMENT, "flags"),
    BAD_I32("max_seqs 0", desc.max_seqs, 0, MOAK_ERR_INVALID_ARGUMENT, "max_seqs"),
    BAD_I32("max_seqs -1", desc.max_seqs, -1, MOAK_ERR_INVALID_ARGUMENT, "max_seqs"),
    BAD_I32("max_seqs MOAK_KV_MAX_SEQS + 1", desc.max_seqs, MOAK_KV_MAX_SEQS + 1, MOAK_ERR_INVALID_ARGUMENT,
            "max_seqs"),
    BAD_I32("max_seqs INT32_MAX", desc.max_seqs, INT32_MAX, MOAK_ERR_INVALID_ARGUMENT, "max_seqs"),
    BAD_I64("max_tokens 0", desc.max_tokens, 0, MOAK_ERR_INVALID_ARGUMENT, "max_tokens"),
    BAD_I64("max_tokens -64", desc.max_tokens, -64, MOAK_ERR_INVALID_ARGUMENT, "max_tokens"),
    BAD_I32("page_tokens -16", desc.page_tokens, -16, MOAK_ERR_INVALID_ARGUMENT, "page_tokens"),
    BAD_I64("max_tokens: byte count overflows", desc.max_tokens, INT64_MAX - 100,
            MOAK_ERR_SIZE_OVERFLOW, "max_tokens"),
    BAD_FN("max_tokens within page_tokens of INT64_MAX (page count sum overflowed)", max_tokens_near_int64_max,
           MOAK_ERR_SIZE_OVERFLOW, "max_tokens"),
};
#undef FX

/* ---- a live cache shared by the append / seq_len / clear / attention tables ------------------ */

typedef struct live {
    moak_context *ctx;
    moak_kv_cache *kv;          /* F16, PAGES pages of PAGE tokens: lengths 20, 0, 30 */
    moak_kv_cache *kv_shared;   /* MLA-style SHARED_V cache */
    moak_kv_cache *kv_other;    /* created on another context */
    float q[(MAX_SEQS * PAGE * PAGES) * Q_HEADS * DIM];
} live;

/* The cache's observable state: every length, and one attention over every
 * token of every non-empty sequence (bitwise). */
static size_t cache_snapshot(live *l, void *buf, size_t cap)
{
    unsigned char *out = buf;
    size_t used = 0;
    int32_t ids[MAX_SEQS], q_lens[MAX_SEQS];
    int n = 0;
    int64_t total = 0;
    for (int32_t s = 0; s < MAX_SEQS; s++) {
        int64_t len = -1;
        moak_kv_cache_seq_len(l->kv, s, &len);
        memcpy(out + used, &len, sizeof(len));
        used += sizeof(len);
        if (len > 0) {
            ids[n] = s;
            q_lens[n++] = (int32_t)len;
            total += len;
        }
    }
    size_t out_bytes = (size_t)total * Q_HEADS * DIM * sizeof(float);
    if (n > 0 && used + out_bytes <= cap) {
        moak_attention_desc ad = MOAK_ATTENTION_DESC_INIT;
        ad.n_heads = Q_HEADS;
        ad.head_dim_k = ad.head_dim_v = DIM;
        ad.causal = 1;
        moak_status st = moak_attention(l->ctx, &ad, l->kv, ids, q_lens, n, l->q,
                                        (float *)(void *)(out + used));
        if (st != MOAK_OK)
            t_die("snapshot attention: %s (%s)", moak_status_str(st), moak_last_error(l->ctx));
        used += out_bytes;
    }
    return used;
}

/* ---- moak_kv_cache_append ------------------------------------------------------------------ */

typedef struct append_fx {
    live *l;
    moak_context *ctx_arg;
    moak_kv_cache *kv_arg;
    int32_t seq_id;
    int64_t n_tokens;
    const float *k_arg, *v_arg;
    float k[PAGE * PAGES * KV_HEADS * DIM];
    float v[PAGE * PAGES * KV_HEADS * DIM];
    int64_t appended;           /* tokens the valid calls added (kept under the capacity) */
} append_fx;

static void append_reset(void *p)
{
    append_fx *f = p;
    f->ctx_arg = f->l->ctx;
    f->kv_arg = f->l->kv;
    f->seq_id = 1;
    f->n_tokens = 2;
    f->k_arg = f->k;
    f->v_arg = f->v;
}

static moak_status append_call(void *p)
{
    append_fx *f = p;
    return moak_kv_cache_append(f->ctx_arg, f->kv_arg, f->seq_id, f->n_tokens, f->k_arg, f->v_arg);
}

static int append_outputs(void *p, t_span *s)
{
    (void)p;
    (void)s;
    return 0; /* the output is the cache: see the snapshot */
}

static size_t append_snapshot(void *p, void *buf, size_t cap)
{
    return cache_snapshot(((append_fx *)p)->l, buf, cap);
}

static const moak_context *append_message_ctx(void *p) { return ((append_fx *)p)->ctx_arg; }

static void kv_other_context(void *p) { ((append_fx *)p)->kv_arg = ((append_fx *)p)->l->kv_other; }
static void v_given_to_shared_cache(void *p) { ((append_fx *)p)->kv_arg = ((append_fx *)p)->l->kv_shared; }

/* Lengths 20, 0, 30 in six 16-token pages: the valid calls give seq 1 two
 * tokens each (in one page), leaving one page free: 40 more tokens for seq 1
 * need two. */
#define FX append_fx
static const t_bad_case append_cases[] = {
    BAD_OK("valid (2 tokens to seq 1)"),
    BAD_NULL("ctx NULL", ctx_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_NULL("kv NULL", kv_arg, MOAK_ERR_NULL_ARGUMENT, "kv"),
    BAD_FN("kv from another context", kv_other_context, MOAK_ERR_INVALID_ARGUMENT, "kv"),
    BAD_I32("seq_id -1", seq_id, -1, MOAK_ERR_OUT_OF_RANGE, "seq_id"),
    BAD_I32("seq_id = max_seqs", seq_id, MAX_SEQS, MOAK_ERR_OUT_OF_RANGE, "seq_id"),
    BAD_I64("n_tokens -1", n_tokens, -1, MOAK_ERR_INVALID_ARGUMENT, "n_tokens"),
    BAD_I64("n_tokens: byte count overflows", n_tokens, T_HUGE_I64, MOAK_ERR_SIZE_OVERFLOW,
            "n_tokens"),
    BAD_NULL("k NULL", k_arg, MOAK_ERR_NULL_ARGUMENT, "k:"),
    BAD_NULL("v NULL (V stored apart)", v_arg, MOAK_ERR_NULL_ARGUMENT, "v:"),
    BAD_FN("v given to a SHARED_V cache", v_given_to_shared_cache, MOAK_ERR_INVALID_ARGUMENT, "v:"),
    BAD_I64("cache full: 40 tokens", n_tokens, 40, MOAK_ERR_CACHE_FULL, "n_tokens"),
    BAD_I64("cache full: more than the whole cache", n_tokens, PAGE * PAGES + 1,
            MOAK_ERR_CACHE_FULL, "n_tokens"),
};
#undef FX

/* ---- moak_kv_cache_seq_len --------------------------------------------------------------------- */

typedef struct len_fx {
    live *l;
    const moak_kv_cache *kv_arg;
    int32_t seq_id;
    int64_t *len_arg;
    int64_t len;
} len_fx;

static void len_reset(void *p)
{
    len_fx *f = p;
    f->kv_arg = f->l->kv;
    f->seq_id = 2;
    f->len_arg = &f->len;
}

static moak_status len_call(void *p)
{
    len_fx *f = p;
    return moak_kv_cache_seq_len(f->kv_arg, f->seq_id, f->len_arg);
}

static int len_outputs(void *p, t_span *s)
{
    len_fx *f = p;
    s[0].p = f->len_arg;
    s[0].n = sizeof(int64_t);
    return 1;
}

/* No context argument: the message is the thread's. */
static const moak_context *len_message_ctx(void *p)
{
    (void)p;
    return NULL;
}

#define FX len_fx
static const t_bad_case len_cases[] = {
    BAD_OK("valid (seq 2)"),
    BAD_NULL("kv NULL", kv_arg, MOAK_ERR_NULL_ARGUMENT, "kv"),
    BAD_NULL("len NULL", len_arg, MOAK_ERR_NULL_ARGUMENT, "len"),
    BAD_I32("seq_id -1", seq_id, -1, MOAK_ERR_OUT_OF_RANGE, "seq_id"),
    BAD_I32("seq_id = max_seqs", seq_id, MAX_SEQS, MOAK_ERR_OUT_OF_RANGE, "seq_id"),
};
#undef FX

/* ---- moak_kv_cache_seq_clear ------------------------------------------------------------------- */

typedef struct clear_fx {
    live *l;
    moak_context *ctx_arg;
    moak_kv_cache *kv_arg;
    int32_t seq_id;
} clear_fx;

static void clear_reset(void *p)
{
    clear_fx *f = p;
    f->ctx_arg = f->l->ctx;
    f->kv_arg = f->l->kv;
    f->seq_id = 1;   /* clearing seq 1 is undone by the next append test's valid calls */
}

static moak_status clear_call(void *p)
{
    clear_fx *f = p;
    return moak_kv_cache_seq_clear(f->ctx_arg, f->kv_arg, f->seq_id);
}

static int clear_outputs(void *p, t_span *s)
{
    (void)p;
    (void)s;
    return 0;
}

static size_t clear_snapshot(void *p, void *buf, size_t cap)
{
    return cache_snapshot(((clear_fx *)p)->l, buf, cap);
}

static const moak_context *clear_message_ctx(void *p) { return ((clear_fx *)p)->ctx_arg; }

static void clear_kv_other(void *p) { ((clear_fx *)p)->kv_arg = ((clear_fx *)p)->l->kv_other; }

#define FX clear_fx
static const t_bad_case clear_cases[] = {
    BAD_OK("valid (seq 1)"),
    BAD_NULL("ctx NULL", ctx_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_NULL("kv NULL", kv_arg, MOAK_ERR_NULL_ARGUMENT, "kv"),
    BAD_FN("kv from another context", clear_kv_other, MOAK_ERR_INVALID_ARGUMENT, "kv"),
    BAD_I32("seq_id -1", seq_id, -1, MOAK_ERR_OUT_OF_RANGE, "seq_id"),
    BAD_I32("seq_id = max_seqs", seq_id, MAX_SEQS, MOAK_ERR_OUT_OF_RANGE, "seq_id"),
};
#undef FX

/* ---- moak_attention ---------------------------------------------------------------------------- */

typedef struct attn_fx {
    live *l;
    moak_context *ctx_arg;
    const moak_attention_desc *desc_arg;
    moak_attention_desc desc;
    const moak_kv_cache *kv_arg;
    const int32_t *seq_ids_arg, *q_lens_arg;
    int32_t n_seqs;
    const float *q_arg;
    float *out_arg;
    int32_t seq_ids[2], q_lens[2];
    float sinks[Q_HEADS];
    float out[4 * Q_HEADS * DIM];
} attn_fx;

static void attn_reset(void *p)
{
    attn_fx *f = p;
    f->ctx_arg = f->l->ctx;
    moak_attention_desc d = MOAK_ATTENTION_DESC_INIT;
    d.n_heads = Q_HEADS;
    d.head_dim_k = d.head_dim_v = DIM;
    d.causal = 1;
    d.sliding_window = 8;
    d.softcap = 30.0f;
    for (int h = 0; h < Q_HEADS; h++)
        f->sinks[h] = 0.5f * (float)h;
    d.sinks = f->sinks;
    f->desc = d;
    f->desc_arg = &f->desc;
    f->kv_arg = f->l->kv;
    /* seq 2 (30 tokens) asks for 3 queries, seq 0 (20 tokens) for 1 */
    f->seq_ids[0] = 2;
    f->seq_ids[1] = 0;
    f->q_lens[0] = 3;
    f->q_lens[1] = 1;
    f->seq_ids_arg = f->seq_ids;
    f->q_lens_arg = f->q_lens;
    f->n_seqs = 2;
    f->q_arg = f->l->q;
    f->out_arg = f->out;
}

static moak_status attn_call(void *p)
{
    attn_fx *f = p;
    return moak_attention(f->ctx_arg, f->desc_arg, f->kv_arg, f->seq_ids_arg, f->q_lens_arg,
                          f->n_seqs, f->q_arg, f->out_arg);
}

static int attn_outputs(void *p, t_span *s)
{
    attn_fx *f = p;
    s[0].p = f->out_arg;
    s[0].n = sizeof(float) * 4 * Q_HEADS * DIM;
    return 1;
}

static const moak_context *attn_message_ctx(void *p) { return ((attn_fx *)p)->ctx_arg; }

static void attn_kv_other(void *p) { ((attn_fx *)p)->kv_arg = ((attn_fx *)p)->l->kv_other; }
static void seq_negative(void *p) { ((attn_fx *)p)->seq_ids[1] = -1; }
static void seq_too_large(void *p) { ((attn_fx *)p)->seq_ids[0] = MAX_SEQS; }
static void seq_twice(void *p) { ((attn_fx *)p)->seq_ids[1] = 2; }
static void q_len_negative(void *p) { ((attn_fx *)p)->q_lens[1] = -1; }
/* Seq 0 holds 20 tokens. */
static void q_len_beyond_cache(void *p) { ((attn_fx *)p)->q_lens[1] = 21; }
static void sink_nan(void *p) { ((attn_fx *)p)->sinks[5] = NAN; }
/* Absorbed MLA (a shared-V cache) with scale 0: 1/sqrt(head_dim_k) is never
 * the model's scale there, so it must be given. */
static void shared_v_default_scale(void *p)
{
    attn_fx *f = p;
    f->kv_arg = f->l->kv_shared;
    f->desc.scale = 0.0f;
}
static void out_overlaps_q(void *p)
{
    attn_fx *f = p;
    f->out_arg = f->l->q + 7;
}

#define FX attn_fx
static const t_bad_case attn_cases[] = {
    BAD_OK("valid (GQA 8/4, window, softcap, sinks)"),
    BAD_NULL("ctx NULL", ctx_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_NULL("desc NULL", desc_arg, MOAK_ERR_NULL_ARGUMENT, "desc"),
    BAD_NULL("kv NULL", kv_arg, MOAK_ERR_NULL_ARGUMENT, "kv"),
    BAD_FN("kv from another context", attn_kv_other, MOAK_ERR_INVALID_ARGUMENT, "kv"),
    BAD_SIZE("struct_size 0", desc.struct_size, 0, MOAK_ERR_STRUCT_SIZE, "struct_size"),
    /* later fields (sparse_positions) are optional: one short of the first version */
    BAD_SIZE("struct_size one short of the first version", desc.struct_size,
             offsetof(moak_attention_desc, sinks) + sizeof(const float *) - 1, MOAK_ERR_STRUCT_SIZE,
             "struct_size"),
    BAD_I32("n_heads 0", desc.n_heads, 0, MOAK_ERR_INVALID_ARGUMENT, "n_heads"),
    BAD_I32("n_heads -8", desc.n_heads, -8, MOAK_ERR_INVALID_ARGUMENT, "n_heads"),
    BAD_I32("n_heads 6: 4 kv heads do not divide it", desc.n_heads, 6, MOAK_ERR_SHAPE_MISMATCH,
            "n_heads"),
    BAD_I32("head_dim_k 128, cache has 64", desc.head_dim_k, 128, MOAK_ERR_SHAPE_MISMATCH,
            "head_dim_k"),
    BAD_I32("head_dim_v 32, cache has 64", desc.head_dim_v, 32, MOAK_ERR_SHAPE_MISMATCH,
            "head_dim_v"),
    BAD_F32("scale NaN", desc.scale, NAN, MOAK_ERR_INVALID_ARGUMENT, "scale"),
    BAD_F32("scale -0.125", desc.scale, -0.125, MOAK_ERR_INVALID_ARGUMENT, "scale"),
    BAD_I32("causal 2", desc.causal, 2, MOAK_ERR_INVALID_ARGUMENT, "causal"),
    BAD_I32("sliding_window -1", desc.sliding_window, -1, MOAK_ERR_INVALID_ARGUMENT,
            "sliding_window"),
    BAD_I32("sliding_window 8 without causal", desc.causal, 0, MOAK_ERR_INVALID_ARGUMENT,
            "sliding_window"),
    BAD_FN("shared-V cache with the default scale", shared_v_default_scale, MOAK_ERR_INVALID_ARGUMENT,
           "scale"),
    BAD_F32("softcap -30", desc.softcap, -30.0, MOAK_ERR_INVALID_ARGUMENT, "softcap"),
    BAD_F32("softcap NaN", desc.softcap, NAN, MOAK_ERR_INVALID_ARGUMENT, "softcap"),
    BAD_FN("sinks[5] NaN", sink_nan, MOAK_ERR_INVALID_ARGUMENT, "sinks"),
    BAD_NULL("seq_ids NULL", seq_ids_arg, MOAK_ERR_NULL_ARGUMENT, "seq_ids"),
    BAD_NULL("q_lens NULL", q_lens_arg, MOAK_ERR_NULL_ARGUMENT, "q_lens"),
    BAD_NULL("q NULL", q_arg, MOAK_ERR_NULL_ARGUMENT, "q:"),
    BAD_NULL("out NULL", out_arg, MOAK_ERR_NULL_ARGUMENT, "out"),
    BAD_I32("n_seqs 0", n_seqs, 0, MOAK_ERR_INVALID_ARGUMENT, "n_seqs"),
    BAD_I32("n_seqs -2", n_seqs, -2, MOAK_ERR_INVALID_ARGUMENT, "n_seqs"),
    BAD_FN("seq_ids[1] -1", seq_negative, MOAK_ERR_OUT_OF_RANGE, "seq_ids"),
    BAD_FN("seq_ids[0] = max_seqs", seq_too_large, MOAK_ERR_OUT_OF_RANGE, "seq_ids"),
    BAD_FN("seq_ids: sequence 2 listed twice", seq_twice, MOAK_ERR_INVALID_ARGUMENT, "seq_ids"),
    BAD_FN("q_lens[1] -1", q_len_negative, MOAK_ERR_INVALID_ARGUMENT, "q_lens"),
    BAD_FN("q_lens[1] 21 > 20 cached tokens", q_len_beyond_cache, MOAK_ERR_SHAPE_MISMATCH, "q_lens"),
    BAD_FN("out overlaps q", out_overlaps_q, MOAK_ERR_INVALID_ARGUMENT, "out"),
};
#undef FX

static moak_kv_cache *cache(moak_context *ctx, uint32_t flags, int32_t dim_v)
{
    moak_kv_cache_desc d = MOAK_KV_CACHE_DESC_INIT;
    d.format = MOAK_FORMAT_F16;
    d.n_kv_heads = KV_HEADS;
    d.head_dim_k = DIM;
    d.head_dim_v = dim_v;
    d.max_seqs = MAX_SEQS;
    d.max_tokens = PAGE * PAGES;
    d.page_tokens = PAGE;
    d.flags = flags;
    moak_kv_cache *kv = NULL;
    t_ok(moak_kv_cache_create(ctx, &d, &kv), ctx, "kv fixture");
    return kv;
}

int main(void)
{
    t_init("test_bad_input_kv");
    t_backend bk[T_MAX_BACKENDS];
    int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 1);
    moak_context *other = t_context("ref", 1);
    static float k[PAGE * PAGES * KV_HEADS * DIM], v[PAGE * PAGES * KV_HEADS * DIM];
    t_fill_normal(k, PAGE * PAGES * KV_HEADS * DIM, 1.0);
    t_fill_normal(v, PAGE * PAGES * KV_HEADS * DIM, 1.0);
    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        static create_fx cf;
        cf.ctx = ctx;
        const t_bad_ops cops = {"moak_kv_cache_create", create_reset, create_call, create_outputs,
                                create_message_ctx, NULL};
        t_bad_run(bk[b].name, &cops, &cf, create_cases, BAD_COUNT(create_cases));

        static live l;
        l.ctx = ctx;
        l.kv = cache(ctx, 0, DIM);
        l.kv_shared = cache(ctx, MOAK_KV_SHARED_V, DIM);
        l.kv_other = cache(other, 0, DIM);
        t_fill_normal(l.q, sizeof(l.q) / sizeof(l.q[0]), 1.0);
        /* Lengths 20, 0, 30: 4 of the 6 pages. */
        t_ok(moak_kv_cache_append(ctx, l.kv, 0, 20, k, v), ctx, "fixture append");
        t_ok(moak_kv_cache_append(ctx, l.kv, 2, 30, k, v), ctx, "fixture append");

        static append_fx af;
        af.l = &l;
        memcpy(af.k, k, sizeof(af.k));
        memcpy(af.v, v, sizeof(af.v));
        const t_bad_ops aops = {"moak_kv_cache_append", append_reset, append_call, append_outputs,
                                append_message_ctx, append_snapshot};
        t_bad_run(bk[b].name, &aops, &af, append_cases, BAD_COUNT(append_cases));

        static len_fx lf;
        lf.l = &l;
        const t_bad_ops lops = {"moak_kv_cache_seq_len", len_reset, len_call, len_outputs,
                                len_message_ctx, NULL};
        t_bad_run(bk[b].name, &lops, &lf, len_cases, BAD_COUNT(len_cases));

        static attn_fx at;
        at.l = &l;
        const t_bad_ops tops = {"moak_attention", attn_reset, attn_call, attn_outputs,
                                attn_message_ctx, NULL};
        t_bad_run(bk[b].name, &tops, &at, attn_cases, BAD_COUNT(attn_cases));

        static clear_fx cl;
        cl.l = &l;
        const t_bad_ops clops = {"moak_kv_cache_seq_clear", clear_reset, clear_call, clear_outputs,
                                 clear_message_ctx, clear_snapshot};
        t_bad_run(bk[b].name, &clops, &cl, clear_cases, BAD_COUNT(clear_cases));

        moak_kv_cache_destroy(l.kv);
        moak_kv_cache_destroy(l.kv_shared);
        moak_kv_cache_destroy(l.kv_other);
    }
    moak_context_destroy(other);
    t_close_backends(bk, n_bk);
    return t_finish();
}
