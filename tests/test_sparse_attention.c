/* test_sparse_attention — moak_attention with desc->sparse_positions (DeepSeek
 * Sparse Attention over indexer-chosen positions) against an oracle written
 * here in double.
 *
 * The oracle reads K and V as the cache stores them (testutil's
 * t_kv_round_trip, never the library) and attends, for each query, to the
 * listed positions that the mask admits, one softmax term per listing.  The
 * lists are random: positions of the sequence (some after the query, which
 * the causal mask hides), -1 slots, the same positions across queries, and
 * in the repeat cases a position listed twice in one query's list (two terms).
 * k covers 1, 7 and the models' 2048, with cached lengths below and above k,
 * decode and prefill, sequences of mixed lengths in one call, shared-V MLA
 * (Dk 576 / Dv 512 with DeepSeek-V3.2's scale) and GQA, every KV format. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ref dequantizes to f32 exactly as the oracle's round trip and accumulates
 * in double: only the final rounding to f32 differs (as test_attention). */
#define REF_BOUND 1e-5
#define MAX_SEQS 4

/* DeepSeek-V3.2 (config.json): qk_nope 128 + qk_rope 64 = 192, YaRN factor
 * 40 with mscale_all_dim 1.0: mscale = 0.1 * ln(40) + 1; the softmax scale
 * is 192^-0.5 * mscale^2 (DeepSeek-V3's modeling code). */
#define DSV32_SCALE (0.07216878364870323 * (0.1 * 3.6888794541139363 + 1.0) * (0.1 * 3.6888794541139363 + 1.0))

typedef struct seq_spec {
    int64_t len;
    int32_t q_len;
} seq_spec;

typedef enum list_kind {
    LIST_RANDOM,    /* distinct random positions of the sequence, then -1 (k > len leaves slots) */
    LIST_REPEATS,   /* positions drawn with replacement: repeats inside a list; some -1 */
    LIST_CAUSAL_TOPK /* the q's causal prefix's last k positions, as an indexer gives when len <= k */
} list_kind;

typedef struct sparse_case {
    const char *label;
    int32_t n_heads, n_kv_heads, dk, dv;
    int shared_v;
    double scale;             /* 0 = 1/sqrt(dk) */
    int32_t window;
    int sinks;
    int32_t k;
    list_kind lists;
    int n_seqs;
    seq_spec seqs[MAX_SEQS];
    unsigned formats;
} sparse_case;

#define KV(f) (1u << (f))
#define ALL_KV (KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_F16) | KV(MOAK_FORMAT_BF16) | KV(MOAK_FORMAT_Q8_0))

static const sparse_case cases[] = {
    /* DeepSeek-V3.2 DSA: absorbed MLA (one latent head, K 576, V its first
     * 512), k = 2048 over sequences longer (2300, decode; 2100, 3-token
     * prefill) and shorter (700) than k; 128 heads scaled to 8. */
    {"deepseek-v3.2 dsa k2048", 8, 1, 576, 512, 1, DSV32_SCALE, 0, 0, 2048, LIST_RANDOM, 3,
     {{2300, 1}, {700, 1}, {2100, 3}}, ALL_KV},
    /* GLM-5 shapes use the same DSA over MLA; here k = 7 with repeats
     * inside one query's list and -1 slots, decode and a 5-token prefill,
     * a sequence shorter than k; 64 heads scaled to 4. */
    {"glm-5 mla k7 repeats", 4, 1, 576, 512, 1, DSV32_SCALE, 0, 0, 7, LIST_REPEATS, 3,
     {{300, 1}, {5, 5}, {90, 1}}, ALL_KV},
    /* k = 1: one key per query (or none: -1 / a masked one gives zeros). */
    {"mla k1", 4, 1, 576, 512, 1, DSV32_SCALE, 0, 0, 1, LIST_RANDOM, 2, {{1, 1}, {64, 4}}, ALL_KV},
    /* GQA 8/2, head_dim 128, sinks, k 7 over random lists with repeats. */
    {"gqa 8/2 k7 sinks", 8, 2, 128, 128, 0, 0.0, 0, 1, 7, LIST_REPEATS, 3,
     {{40, 6}, {3, 1}, {129, 1}}, ALL_KV},
    /* GQA with a sliding window of 32: listed positions outside it are hidden. */
    {"gqa 8/2 k48 window32", 8, 2, 64, 64, 0, 0.0, 32, 0, 48, LIST_RANDOM, 2,
     {{200, 3}, {20, 1}}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_Q8_0)},
    /* The list an indexer gives for a sequence of <= k tokens: every causal
     * position, so sparse equals dense here; MLA, k 2048, prefill of 9. */
    {"mla k2048 all causal", 8, 1, 576, 512, 1, DSV32_SCALE, 0, 0, 2048, LIST_CAUSAL_TOPK, 2,
     {{300, 9}, {1, 1}}, KV(MOAK_FORMAT_F16) | KV(MOAK_FORMAT_BF16)},
};

typedef struct seq_data {
    int64_t len;
    int32_t q_len;
    int32_t id;
    float *k, *v;
    double *kr, *vr;
} seq_data;

/* The position lists of every query: [total][k]. */
static void make_lists(const sparse_case *c, const seq_data *s, int32_t *lists)
{
    int64_t token = 0;
    int32_t *perm = NULL;
    int64_t perm_n = 0;
    for (int i = 0; i < c->n_seqs; i++) {
        if (s[i].len > perm_n) {
            free(perm);
            perm_n = s[i].len;
            perm = t_malloc((size_t)perm_n * sizeof(int32_t));
        }
        for (int32_t r = 0; r < s[i].q_len; r++, token++) {
            int32_t *l = lists + token * c->k;
            const int64_t pos = s[i].len - s[i].q_len + r;
            for (int32_t e = 0; e < c->k; e++)
                l[e] = -1;
            if (c->lists == LIST_CAUSAL_TOPK) {
                for (int32_t e = 0; e < c->k && e <= pos; e++)
                    l[e] = (int32_t)(pos - e);
                continue;
            }
            if (c->lists == LIST_REPEATS) {
                for (int32_t e = 0; e < c->k; e++)
                    l[e] = t_rand_int(0, 5) == 0 ? -1 : (int32_t)t_rand_int(0, s[i].len - 1);
                if (c->k >= 2 && l[0] >= 0)
                    l[1] = l[0]; /* surely one repeat in the list */
                continue;
            }
            t_shuffle_i32(perm, (int32_t)s[i].len);
            for (int32_t e = 0; e < c->k && e < s[i].len; e++)
                l[e] = perm[e];
            for (int32_t e = c->k - 1; e > 0; e--) { /* the -1 slots anywhere in the list */
                const int32_t o = (int32_t)t_rand_int(0, e), t = l[e];
                l[e] = l[o];
                l[o] = t;
            }
        }
    }
    free(perm);
}

static void oracle(const sparse_case *c, const seq_data *s, const float *q, const float *sinks,
                   const int32_t *lists, double *out)
{
    const int32_t group = c->n_heads / c->n_kv_heads;
    const double scale = c->scale != 0.0 ? c->scale : 1.0 / sqrt((double)c->dk);
    double *sc = t_alloc_f64((size_t)c->k);
    int64_t token = 0;
    for (int i = 0; i < c->n_seqs; i++)
        for (int32_t r = 0; r < s[i].q_len; r++, token++) {
            const int64_t p = s[i].len - s[i].q_len + r;
            const int32_t *l = lists + token * c->k;
            for (int32_t h = 0; h < c->n_heads; h++) {
                const int32_t g = h / group;
                const float *qh = q + (token * c->n_heads + h) * c->dk;
                double mx = sinks ? (double)sinks[h] : -INFINITY;
                int visible = 0;
                for (int32_t e = 0; e < c->k; e++) {
                    const int64_t j = l[e];
                    sc[e] = -INFINITY;
                    if (j < 0 || j > p || (c->window && p - j >= c->window))
                        continue;
                    const double *kj = s[i].kr + (j * c->n_kv_heads + g) * c->dk;
                    double dot = 0.0;
                    for (int32_t d = 0; d < c->dk; d++)
                        dot += (double)qh[d] * kj[d];
                    sc[e] = scale * dot;
                    mx = sc[e] > mx ? sc[e] : mx;
                    visible++;
                }
                double *o = out + (token * c->n_heads + h) * c->dv;
                for (int32_t d = 0; d < c->dv; d++)
                    o[d] = 0.0;
                if (!visible && !sinks)
                    continue;
                double denom = sinks ? exp((double)sinks[h] - mx) : 0.0;
                for (int32_t e = 0; e < c->k; e++) {
                    if (sc[e] == -INFINITY)
                        continue;
                    const int64_t j = l[e];
                    const double w = exp(sc[e] - mx);
                    denom += w;
                    const double *vj = c->shared_v ? s[i].kr + (j * c->n_kv_heads + g) * c->dk
                                                   : s[i].vr + (j * c->n_kv_heads + g) * c->dv;
                    for (int32_t d = 0; d < c->dv; d++)
                        o[d] += w * vj[d];
                }
                for (int32_t d = 0; d < c->dv; d++)
                    o[d] /= denom;
            }
        }
    free(sc);
}

static void run_case(t_backend *bk, int n_bk, const sparse_case *c, moak_format f)
{
    seq_data s[MAX_SEQS];
    int32_t perm[MAX_SEQS + 3];
    const int32_t max_seqs = c->n_seqs + 3;
    t_shuffle_i32(perm, max_seqs);
    int64_t total = 0, max_tokens = 0;
    for (int i = 0; i < c->n_seqs; i++) {
        s[i].len = c->seqs[i].len;
        s[i].q_len = c->seqs[i].q_len;
        s[i].id = perm[i];
        const size_t nk = (size_t)(s[i].len * c->n_kv_heads * c->dk);
        const size_t nv = (size_t)(s[i].len * c->n_kv_heads * c->dv);
        s[i].k = t_alloc_f32(nk);
        s[i].kr = t_alloc_f64(nk);
        t_fill_normal(s[i].k, nk, 1.0);
        t_kv_round_trip(f, s[i].k, (int64_t)nk, s[i].kr);
        s[i].v = NULL;
        s[i].vr = NULL;
        if (!c->shared_v) {
            s[i].v = t_alloc_f32(nv);
            s[i].vr = t_alloc_f64(nv);
            t_fill_normal(s[i].v, nv, 1.0);
            t_kv_round_trip(f, s[i].v, (int64_t)nv, s[i].vr);
        }
        total += s[i].q_len;
        max_tokens += (s[i].len + 63) / 64 * 64;
    }
    const size_t nq = (size_t)(total * c->n_heads * c->dk), nout = (size_t)(total * c->n_heads * c->dv);
    float *q = t_alloc_f32(nq);
    t_fill_normal(q, nq, 1.0);
    float *sinks = NULL;
    if (c->sinks) {
        sinks = t_alloc_f32((size_t)c->n_heads);
        t_fill_normal(sinks, (size_t)c->n_heads, 2.0);
    }
    int32_t *lists = t_malloc((size_t)total * (size_t)c->k * sizeof(int32_t));
    make_lists(c, s, lists);
    double *ref = t_alloc_f64(nout);
    oracle(c, s, q, sinks, lists, ref);
    int32_t ids[MAX_SEQS], q_lens[MAX_SEQS];
    for (int i = 0; i < c->n_seqs; i++) {
        ids[i] = s[i].id;
        q_lens[i] = s[i].q_len;
    }
    char shape[128];
    snprintf(shape, sizeof(shape), "%s h%d/%d dk%d dv%d seqs%d q%lld", c->label, (int)c->n_heads,
             (int)c->n_kv_heads, (int)c->dk, (int)c->dv, c->n_seqs, (long long)total);
    float *out = t_alloc_f32(nout);
    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        moak_kv_cache_desc kd = MOAK_KV_CACHE_DESC_INIT;
        kd.format = f;
        kd.n_kv_heads = c->n_kv_heads;
        kd.head_dim_k = c->dk;
        kd.head_dim_v = c->dv;
        kd.max_seqs = max_seqs;
        kd.max_tokens = max_tokens;
        kd.flags = c->shared_v ? MOAK_KV_SHARED_V : 0;
        moak_kv_cache *kv = NULL;
        moak_status st = moak_kv_cache_create(ctx, &kd, &kv);
        if (st != MOAK_OK) {
            t_fail("%s sparse %s: moak_kv_cache_create: %s (%s)", bk[b].name, shape, moak_status_str(st),
                   moak_last_error(ctx));
            continue;
        }
        /* appended in two halves, interleaved, so the sequences' pages alternate */
        for (int half = 0; half < 2 && st == MOAK_OK; half++)
            for (int i = 0; i < c->n_seqs && st == MOAK_OK; i++) {
                const int64_t from = half ? s[i].len / 2 : 0, n = half ? s[i].len - s[i].len / 2 : s[i].len / 2;
                st = moak_kv_cache_append(ctx, kv, s[i].id, n, s[i].k + from * c->n_kv_heads * c->dk,
                                          c->shared_v ? NULL : s[i].v + from * c->n_kv_heads * c->dv);
            }
        if (st != MOAK_OK) {
            t_fail("%s sparse %s: append: %s (%s)", bk[b].name, shape, moak_status_str(st), moak_last_error(ctx));
        } else {
            moak_attention_desc ad = MOAK_ATTENTION_DESC_INIT;
            ad.n_heads = c->n_heads;
            ad.head_dim_k = c->dk;
            ad.head_dim_v = c->dv;
            ad.scale = (float)c->scale;
            ad.causal = 1;
            ad.sliding_window = c->window;
            ad.sinks = sinks;
            ad.sparse_positions = lists;
            ad.sparse_k = c->k;
            t_poison_f32(out, nout);
            st = moak_attention(ctx, &ad, kv, ids, q_lens, c->n_seqs, q, out);
            if (st != MOAK_OK) {
                t_fail("%s sparse attention %s %s: %s (%s)", bk[b].name, t_format_name(f), shape,
                       moak_status_str(st), moak_last_error(ctx));
            } else {
                const char *ran = moak_last_backend(ctx);
                const double err = t_max_row_error(out, ref, total, (int64_t)c->n_heads * c->dv);
                const double bound = t_bound_for(ran, REF_BOUND,
                                                 f == MOAK_FORMAT_Q8_0 ? MOAK_BOUND_ATTENTION_Q8_0
                                                                       : MOAK_BOUND_ATTENTION_FLOAT);
                char what[32];
                snprintf(what, sizeof(what), "sparse k%d", (int)c->k);
                t_report(bk[b].name, ran, what, t_format_name(f), shape, err, bound);
            }
        }
        moak_kv_cache_destroy(kv);
    }
    free(out);
    free(q);
    free(sinks);
    free(lists);
    free(ref);
    for (int i = 0; i < c->n_seqs; i++) {
        free(s[i].k);
        free(s[i].kr);
        free(s[i].v);
        free(s[i].vr);
    }
}

int main(void)
{
    t_init("test_sparse_attention");
    t_backend bk[T_MAX_BACKENDS];
    const int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 0);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
        for (int f = 0; f < MOAK_FORMAT_COUNT; f++)
            if (cases[c].formats & KV(f))
                run_case(bk, n_bk, &cases[c], (moak_format)f);
    t_close_backends(bk, n_bk);
    return t_finish();
}
