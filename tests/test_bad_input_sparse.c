/* test_bad_input_sparse — sparse attention (desc->sparse_positions) and
 * moak_indexer fed each class of bad input: the right status, the argument
 * named, nothing written.  Also: a K-only (index) cache given to dense or
 * sparse attention, and a full cache given to the indexer.  And the rule that
 * is NOT an error: a listed position after the query's own is masked. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bad_input.h"

/* MLA-like sparse fixture: one latent head of 64 (V its first 32), 4 query
 * heads; index cache: one key of 32 per token, 8 index heads. */
#define DK 64
#define DV 32
#define HEADS 4
#define IDX_DIM 32
#define IDX_HEADS 8
#define TOP_K 4
#define MAX_SEQS 3
#define TOKENS 64

typedef struct live {
    moak_context *ctx;
    moak_kv_cache *kv;          /* SHARED_V F16: lengths 10, 0, 20 */
    moak_kv_cache *index;       /* K_ONLY BF16: lengths 10, 0, 20 */
    float q[4 * HEADS * DK];
    float qi[4 * IDX_HEADS * IDX_DIM];
    float w[4 * IDX_HEADS];
} live;

/* ---- sparse attention --------------------------------------------------------------- */

typedef struct sparse_fx {
    live *l;
    moak_attention_desc desc;
    const moak_kv_cache *kv_arg;
    int32_t seq_ids[2], q_lens[2];
    int32_t lists[4 * TOP_K];
    float out[4 * HEADS * DV];
    float *out_arg;
} sparse_fx;

static void sparse_reset(void *p)
{
    sparse_fx *f = p;
    moak_attention_desc d = MOAK_ATTENTION_DESC_INIT;
    d.n_heads = HEADS;
    d.head_dim_k = DK;
    d.head_dim_v = DV;
    d.scale = 0.125f;
    d.causal = 1;
    /* seq 2 (20 tokens): queries at 17, 18, 19; seq 0 (10 tokens): query at 9 */
    static const int32_t lists[4 * TOP_K] = {0, 17, 19, -1, /* 19 after 17: masked, fine */
                                             5, 5, 18, 3,   /* 5 twice: counts twice */
                                             -1, -1, -1, -1,
                                             9, 0, 1, 2};
    memcpy(f->lists, lists, sizeof(lists));
    d.sparse_positions = f->lists;
    d.sparse_k = TOP_K;
    f->desc = d;
    f->kv_arg = f->l->kv;
    f->seq_ids[0] = 2;
    f->seq_ids[1] = 0;
    f->q_lens[0] = 3;
    f->q_lens[1] = 1;
    f->out_arg = f->out;
}

static moak_status sparse_call(void *p)
{
    sparse_fx *f = p;
    return moak_attention(f->l->ctx, &f->desc, f->kv_arg, f->seq_ids, f->q_lens, 2, f->l->q, f->out_arg);
}

static int sparse_outputs(void *p, t_span *s)
{
    sparse_fx *f = p;
    s[0].p = f->out;
    s[0].n = sizeof(f->out);
    return 1;
}

static const moak_context *sparse_message_ctx(void *p) { return ((sparse_fx *)p)->l->ctx; }

static void pos_past_seq(void *p) { ((sparse_fx *)p)->lists[13] = 10; }     /* seq 0 holds 10 */
static void pos_past_seq2(void *p) { ((sparse_fx *)p)->lists[2] = 20; }     /* seq 2 holds 20 */
static void pos_minus_two(void *p) { ((sparse_fx *)p)->lists[6] = -2; }
static void pos_int_min(void *p) { ((sparse_fx *)p)->lists[0] = INT32_MIN; }
static void k_only_to_sparse(void *p) { ((sparse_fx *)p)->kv_arg = ((sparse_fx *)p)->l->index; }
static void k_only_to_dense(void *p)
{
    sparse_fx *f = p;
    f->kv_arg = f->l->index;
    f->desc.sparse_positions = NULL;
    f->desc.head_dim_k = IDX_DIM;
    f->desc.head_dim_v = 0;
    f->desc.n_heads = IDX_HEADS;
}
static void out_over_lists(void *p) { ((sparse_fx *)p)->out_arg = (float *)(void *)((sparse_fx *)p)->lists; }
/* An old caller's struct (up to sinks) never reads sparse_positions: dense, OK. */
static void old_struct_size(void *p)
{
    ((sparse_fx *)p)->desc.struct_size = offsetof(moak_attention_desc, sinks) + sizeof(const float *);
}

#define FX sparse_fx
static const t_bad_case sparse_cases[] = {
    BAD_OK("valid (MLA shared-V, k 4, a masked, a repeated and a -1 position)"),
    BAD_I32("sparse_k 0", desc.sparse_k, 0, MOAK_ERR_INVALID_ARGUMENT, "sparse_k"),
    BAD_I32("sparse_k -3", desc.sparse_k, -3, MOAK_ERR_INVALID_ARGUMENT, "sparse_k"),
    BAD_FN("position 10 of a 10-token sequence", pos_past_seq, MOAK_ERR_OUT_OF_RANGE, "sparse_positions[3][1]"),
    BAD_FN("position 20 of a 20-token sequence", pos_past_seq2, MOAK_ERR_OUT_OF_RANGE, "sparse_positions[0][2]"),
    BAD_FN("position -2", pos_minus_two, MOAK_ERR_OUT_OF_RANGE, "sparse_positions[1][2]"),
    BAD_FN("position INT32_MIN", pos_int_min, MOAK_ERR_OUT_OF_RANGE, "sparse_positions[0][0]"),
    BAD_FN("K-only cache to sparse attention", k_only_to_sparse, MOAK_ERR_INVALID_ARGUMENT, "K_ONLY"),
    BAD_FN("K-only cache to dense attention", k_only_to_dense, MOAK_ERR_INVALID_ARGUMENT, "K_ONLY"),
    BAD_FN("out overlaps sparse_positions", out_over_lists, MOAK_ERR_INVALID_ARGUMENT, "out"),
    BAD_FN("struct_size of the first version: dense, OK", old_struct_size, MOAK_OK, NULL),
};
#undef FX

/* ---- the indexer --------------------------------------------------------------------- */

typedef struct idx_fx {
    live *l;
    moak_context *ctx_arg;
    moak_indexer_desc desc;
    const moak_indexer_desc *desc_arg;
    const moak_kv_cache *kv_arg;
    int32_t seq_ids[2], q_lens[2];
    const int32_t *seq_ids_arg, *q_lens_arg;
    int32_t n_seqs;
    const float *q_arg, *w_arg;
    int32_t positions[4 * TOP_K];
    float scores[4 * TOP_K];
    int32_t *positions_arg;
    float *scores_arg;
} idx_fx;

static void idx_reset(void *p)
{
    idx_fx *f = p;
    f->ctx_arg = f->l->ctx;
    moak_indexer_desc d = MOAK_INDEXER_DESC_INIT;
    d.n_heads = IDX_HEADS;
    d.head_dim = IDX_DIM;
    d.top_k = TOP_K;
    f->desc = d;
    f->desc_arg = &f->desc;
    f->kv_arg = f->l->index;
    f->seq_ids[0] = 2;
    f->seq_ids[1] = 0;
    f->q_lens[0] = 3;
    f->q_lens[1] = 1;
    f->seq_ids_arg = f->seq_ids;
    f->q_lens_arg = f->q_lens;
    f->n_seqs = 2;
    f->q_arg = f->l->qi;
    f->w_arg = f->l->w;
    f->positions_arg = f->positions;
    f->scores_arg = f->scores;
}

static moak_status idx_call(void *p)
{
    idx_fx *f = p;
    return moak_indexer(f->ctx_arg, f->desc_arg, f->kv_arg, f->seq_ids_arg, f->q_lens_arg, f->n_seqs, f->q_arg,
                        f->w_arg, f->positions_arg, f->scores_arg);
}

static int idx_outputs(void *p, t_span *s)
{
    idx_fx *f = p;
    s[0].p = f->positions;
    s[0].n = sizeof(f->positions);
    s[1].p = f->scores;
    s[1].n = sizeof(f->scores);
    return 2;
}

static const moak_context *idx_message_ctx(void *p) { return ((idx_fx *)p)->ctx_arg; }

static void idx_full_cache(void *p) { ((idx_fx *)p)->kv_arg = ((idx_fx *)p)->l->kv; }
static void idx_seq_twice(void *p) { ((idx_fx *)p)->seq_ids[1] = 2; }
static void idx_seq_range(void *p) { ((idx_fx *)p)->seq_ids[1] = MAX_SEQS; }
static void idx_q_len_beyond(void *p) { ((idx_fx *)p)->q_lens[1] = 11; }
static void idx_scores_over_q(void *p) { ((idx_fx *)p)->scores_arg = ((idx_fx *)p)->l->qi + 3; }
static void idx_positions_over_w(void *p) { ((idx_fx *)p)->positions_arg = (int32_t *)(void *)((idx_fx *)p)->l->w; }
static void idx_no_scores(void *p) { ((idx_fx *)p)->scores_arg = NULL; }

#define FX idx_fx
static const t_bad_case idx_cases[] = {
    BAD_OK("valid (8 heads of 32, k 4)"),
    BAD_NULL("ctx NULL", ctx_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_NULL("desc NULL", desc_arg, MOAK_ERR_NULL_ARGUMENT, "desc"),
    BAD_NULL("index_kv NULL", kv_arg, MOAK_ERR_NULL_ARGUMENT, "index_kv"),
    BAD_SIZE("struct_size one short", desc.struct_size, sizeof(moak_indexer_desc) - 1, MOAK_ERR_STRUCT_SIZE,
             "struct_size"),
    BAD_FN("a cache with V (not K_ONLY)", idx_full_cache, MOAK_ERR_INVALID_ARGUMENT, "index_kv"),
    BAD_I32("n_heads 0", desc.n_heads, 0, MOAK_ERR_INVALID_ARGUMENT, "n_heads"),
    BAD_I32("head_dim 64, cache has 32", desc.head_dim, 64, MOAK_ERR_SHAPE_MISMATCH, "head_dim"),
    BAD_I32("top_k 0", desc.top_k, 0, MOAK_ERR_INVALID_ARGUMENT, "top_k"),
    BAD_I32("top_k -1", desc.top_k, -1, MOAK_ERR_INVALID_ARGUMENT, "top_k"),
    BAD_NULL("seq_ids NULL", seq_ids_arg, MOAK_ERR_NULL_ARGUMENT, "seq_ids"),
    BAD_NULL("q_lens NULL", q_lens_arg, MOAK_ERR_NULL_ARGUMENT, "q_lens"),
    BAD_NULL("q NULL", q_arg, MOAK_ERR_NULL_ARGUMENT, "q:"),
    BAD_NULL("w NULL", w_arg, MOAK_ERR_NULL_ARGUMENT, "w:"),
    BAD_NULL("positions NULL", positions_arg, MOAK_ERR_NULL_ARGUMENT, "positions"),
    BAD_I32("n_seqs 0", n_seqs, 0, MOAK_ERR_INVALID_ARGUMENT, "n_seqs"),
    BAD_FN("seq_ids: 2 twice", idx_seq_twice, MOAK_ERR_INVALID_ARGUMENT, "seq_ids"),
    BAD_FN("seq_ids[1] = max_seqs", idx_seq_range, MOAK_ERR_OUT_OF_RANGE, "seq_ids"),
    BAD_FN("q_lens[1] 11 > 10 cached", idx_q_len_beyond, MOAK_ERR_SHAPE_MISMATCH, "q_lens"),
    BAD_FN("scores overlaps q", idx_scores_over_q, MOAK_ERR_INVALID_ARGUMENT, "scores"),
    BAD_FN("positions overlaps w", idx_positions_over_w, MOAK_ERR_INVALID_ARGUMENT, "positions"),
    BAD_FN("scores NULL (not wanted): OK", idx_no_scores, MOAK_OK, NULL),
};
#undef FX

static moak_kv_cache *cache(moak_context *ctx, moak_format format, uint32_t flags, int32_t dk, int32_t dv)
{
    moak_kv_cache_desc d = MOAK_KV_CACHE_DESC_INIT;
    d.format = format;
    d.n_kv_heads = 1;
    d.head_dim_k = dk;
    d.head_dim_v = dv;
    d.max_seqs = MAX_SEQS;
    d.max_tokens = TOKENS;
    d.page_tokens = 16;
    d.flags = flags;
    moak_kv_cache *kv = NULL;
    t_ok(moak_kv_cache_create(ctx, &d, &kv), ctx, "kv fixture");
    return kv;
}

int main(void)
{
    t_init("test_bad_input_sparse");
    t_backend bk[T_MAX_BACKENDS];
    const int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 1);
    static float k[TOKENS * DK];
    t_fill_normal(k, TOKENS * DK, 1.0);
    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        static live l;
        l.ctx = ctx;
        l.kv = cache(ctx, MOAK_FORMAT_F16, MOAK_KV_SHARED_V, DK, DV);
        l.index = cache(ctx, MOAK_FORMAT_BF16, MOAK_KV_K_ONLY, IDX_DIM, 0);
        t_fill_normal(l.q, sizeof(l.q) / sizeof(l.q[0]), 1.0);
        t_fill_normal(l.qi, sizeof(l.qi) / sizeof(l.qi[0]), 1.0);
        t_fill_normal(l.w, sizeof(l.w) / sizeof(l.w[0]), 1.0);
        t_ok(moak_kv_cache_append(ctx, l.kv, 0, 10, k, NULL), ctx, "fixture append");
        t_ok(moak_kv_cache_append(ctx, l.kv, 2, 20, k, NULL), ctx, "fixture append");
        t_ok(moak_kv_cache_append(ctx, l.index, 0, 10, k, NULL), ctx, "fixture append");
        t_ok(moak_kv_cache_append(ctx, l.index, 2, 20, k, NULL), ctx, "fixture append");
        /* an index cache takes no V */
        moak_status st = moak_kv_cache_append(ctx, l.index, 1, 1, k, k);
        t_check(st == MOAK_ERR_INVALID_ARGUMENT && strstr(moak_last_error(ctx), "v:") != NULL,
                "%-14s moak_kv_cache_append v given to a K_ONLY cache: %s", bk[b].name, t_status_name(st));

        static sparse_fx sf;
        sf.l = &l;
        const t_bad_ops sops = {"moak_attention (sparse)", sparse_reset, sparse_call, sparse_outputs,
                                sparse_message_ctx, NULL};
        t_bad_run(bk[b].name, &sops, &sf, sparse_cases, BAD_COUNT(sparse_cases));

        static idx_fx xf;
        xf.l = &l;
        const t_bad_ops xops = {"moak_indexer", idx_reset, idx_call, idx_outputs, idx_message_ctx, NULL};
        t_bad_run(bk[b].name, &xops, &xf, idx_cases, BAD_COUNT(idx_cases));

        moak_kv_cache_destroy(l.kv);
        moak_kv_cache_destroy(l.index);
    }
    t_close_backends(bk, n_bk);
    return t_finish();
}
