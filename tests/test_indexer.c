/* test_indexer — moak_indexer (DeepSeek Sparse Attention's lightning
 * indexer) against an oracle written here in double.
 *
 * The oracle scores every causal position from the index keys as the cache
 * stores them (testutil's t_kv_round_trip), score(t, j) = sum_h w[t][h] *
 * relu(q[t][h] . k[j]), and checks each backend's output on its own terms:
 * every chosen position is a causal position of the query, none twice, its
 * score within MOAK_BOUND_INDEXER_SCORE of the oracle's, the list in
 * decreasing oracle score, and no position left out that beats a chosen one
 * by more than MOAK_BOUND_INDEXER_TIE (of the query's largest |score|);
 * slots past the candidates are -1 with -INFINITY.  A tie case of repeated
 * keys checks "ties to the lower position" exactly.  Real shapes: 64 index
 * heads of 128 dims (DeepSeek-V3.2), 32 (GLM-5), and 5 of 40 for the
 * kernels' padding and tails; k in {1, 7, 2048}, cached
 * lengths below and above k, prefill continuing a cached sequence (absolute
 * positions), sequences of mixed lengths in one call, every KV format. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MAX_SEQS 4
/* ref ranks in double from the same stored keys (only summation order differs) and
 * rounds the scores it returns to f32 (half an ulp: 6e-8 of the largest). */
#define REF_SCORE_BOUND 2e-7
#define REF_TIE_BOUND 1e-9

typedef struct seq_spec {
    int64_t len;
    int32_t q_len;
} seq_spec;

typedef struct idx_case {
    const char *label;
    int32_t heads, dim;
    int32_t top_k;
    int n_distinct_keys;      /* 0 = every key random; else keys repeat these few (ties) */
    int n_seqs;
    seq_spec seqs[MAX_SEQS];
    unsigned formats;
} idx_case;

#define KV(f) (1u << (f))
#define ALL_KV (KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_F16) | KV(MOAK_FORMAT_BF16) | KV(MOAK_FORMAT_Q8_0))

static const idx_case cases[] = {
    /* DeepSeek-V3.2 decode: k 2048 over 2600 and 3000 cached tokens, and a
     * sequence of 900 (fewer candidates than k: the rest -1). */
    {"dsv3.2 k2048 decode", 64, 128, 2048, 0, 3, {{2600, 1}, {900, 1}, {3000, 1}}, ALL_KV},
    /* prefill of 4 tokens continuing 2200 cached ones (2204 in all), beside
     * a decode: query positions are absolute. */
    {"dsv3.2 k2048 prefill", 64, 128, 2048, 0, 2, {{2204, 4}, {2050, 1}}, KV(MOAK_FORMAT_BF16) | KV(MOAK_FORMAT_Q8_0)},
    /* k 7: lengths 3 (< k), 7, 300, and a 6-token prefill from position 0. */
    {"k7 mixed", 64, 128, 7, 0, 4, {{3, 1}, {7, 1}, {300, 2}, {6, 6}}, ALL_KV},
    /* k 1. */
    {"k1", 64, 128, 1, 0, 2, {{1, 1}, {150, 3}}, ALL_KV},
    /* ties: every key is one of 3 vectors, so scores repeat exactly; the
     * lower position must come first. */
    {"k7 ties", 64, 128, 7, 3, 2, {{40, 2}, {5, 1}}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_Q8_0)},
    /* GLM-5: 32 index heads (not a multiple of 4 vectors on AVX-512). */
    {"glm-5 k2048 decode", 32, 128, 2048, 0, 2, {{2300, 1}, {40, 2}}, ALL_KV},
    /* odd heads and dims: 5 heads of 40 (padding of the head vectors, a
     * row tail past the last full vector) */
    {"h5 d40 k7", 5, 40, 7, 0, 2, {{100, 3}, {9, 1}}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_F16) | KV(MOAK_FORMAT_BF16)},
};

typedef struct seq_data {
    int64_t len;
    int32_t q_len;
    int32_t id;
    float *k;                 /* [len][dim] as appended */
    double *kr;               /* as stored */
} seq_data;

/* The oracle's scores of query `token` at position p: score[0..p]. */
static void oracle_scores(const double *kr, int64_t p, const float *q, const float *w, int32_t heads, int32_t dim,
                          double *score)
{
    for (int64_t j = 0; j <= p; j++) {
        double s = 0.0;
        for (int h = 0; h < heads; h++) {
            double d = 0.0;
            for (int e = 0; e < dim; e++)
                d += (double)q[h * dim + e] * kr[j * dim + e];
            if (d > 0.0)
                s += (double)w[h] * d;
        }
        score[j] = s;
    }
}

/* Checks one query's list; returns a failure description or NULL. */
static const char *check_query(const int32_t *pos, const float *got_score, int32_t k, const double *score,
                               int64_t p, double score_bound, double tie_bound, int exact_ties, char *why,
                               size_t why_len, double *worst_score_err)
{
    double amax = 0.0;
    for (int64_t j = 0; j <= p; j++)
        amax = fabs(score[j]) > amax ? fabs(score[j]) : amax;
    if (amax == 0.0)
        amax = 1.0;
    const int64_t n_cand = p + 1 < k ? p + 1 : k;
    unsigned char *chosen = t_calloc((size_t)p + 1, 1);
    const char *fail = NULL;
    for (int32_t e = 0; e < k && !fail; e++) {
        if (e >= n_cand) {
            if (pos[e] != -1 || (got_score && got_score[e] != -INFINITY)) {
                snprintf(why, why_len, "slot %d past the %lld candidates: %d (score %g), want -1/-inf", (int)e,
                         (long long)n_cand, (int)pos[e], got_score ? got_score[e] : 0.0);
                fail = why;
            }
            continue;
        }
        if (pos[e] < 0 || pos[e] > p || chosen[pos[e]]) {
            snprintf(why, why_len, "slot %d: position %d is not a new causal position 0..%lld", (int)e, (int)pos[e],
                     (long long)p);
            fail = why;
            continue;
        }
        chosen[pos[e]] = 1;
        if (got_score) {
            const double err = fabs((double)got_score[e] - score[pos[e]]) / amax;
            if (!(err <= score_bound)) {
                snprintf(why, why_len, "slot %d (position %d): score %.9g, oracle %.9g (err %.3g)", (int)e,
                         (int)pos[e], got_score[e], score[pos[e]], err);
                fail = why;
            }
            *worst_score_err = err > *worst_score_err ? err : *worst_score_err;
        }
        if (e > 0) {
            const double prev = score[pos[e - 1]], cur = score[pos[e]];
            const int bad = exact_ties ? (cur > prev || (cur == prev && pos[e] < pos[e - 1]))
                                       : cur > prev + tie_bound * amax;
            if (bad) {
                snprintf(why, why_len, "slot %d (position %d, %.9g) ranks after slot %d (position %d, %.9g)", (int)e,
                         (int)pos[e], cur, (int)e - 1, (int)pos[e - 1], prev);
                fail = why;
            }
        }
    }
    if (!fail && n_cand > 0) {
        /* nothing left out beats the weakest chosen (beyond a near-tie) */
        const int32_t last = pos[n_cand - 1];
        for (int64_t j = 0; j <= p && !fail; j++) {
            if (chosen[j])
                continue;
            const int beats = exact_ties ? (score[j] > score[last] || (score[j] == score[last] && j < last))
                                         : score[j] > score[last] + tie_bound * amax;
            if (beats) {
                snprintf(why, why_len, "position %lld (%.9g) left out, beats chosen %d (%.9g)", (long long)j,
                         score[j], (int)last, score[last]);
                fail = why;
            }
        }
    }
    free(chosen);
    return fail;
}

static void run_case(t_backend *bk, int n_bk, const idx_case *c, moak_format f)
{
    const int32_t heads = c->heads, dim = c->dim;
    seq_data s[MAX_SEQS];
    int32_t perm[MAX_SEQS + 2];
    const int32_t max_seqs = c->n_seqs + 2;
    t_shuffle_i32(perm, max_seqs);
    int64_t total = 0, max_tokens = 0, max_len = 1;
    float *distinct = t_alloc_f32(3 * (size_t)dim);
    t_fill_normal(distinct, 3 * (size_t)dim, 1.0);
    for (int i = 0; i < c->n_seqs; i++) {
        s[i].len = c->seqs[i].len;
        s[i].q_len = c->seqs[i].q_len;
        s[i].id = perm[i];
        const size_t nk = (size_t)s[i].len * dim;
        s[i].k = t_alloc_f32(nk);
        s[i].kr = t_alloc_f64(nk);
        if (c->n_distinct_keys)
            for (int64_t j = 0; j < s[i].len; j++)
                memcpy(s[i].k + j * dim, distinct + t_rand_int(0, c->n_distinct_keys - 1) * dim, (size_t)dim * sizeof(float));
        else
            t_fill_normal(s[i].k, nk, 1.0);
        t_kv_round_trip(f, s[i].k, (int64_t)nk, s[i].kr);
        total += s[i].q_len;
        max_tokens += (s[i].len + 63) / 64 * 64;
        max_len = s[i].len > max_len ? s[i].len : max_len;
    }
    float *q = t_alloc_f32((size_t)total * heads * dim);
    float *w = t_alloc_f32((size_t)total * heads);
    t_fill_normal(q, (size_t)total * heads * dim, 1.0);
    /* the model's w folds in dim^-0.5 and heads^-0.5; signs of both kinds */
    t_fill_normal(w, (size_t)total * heads, 1.0 / sqrt((double)dim * heads));
    int32_t ids[MAX_SEQS], q_lens[MAX_SEQS];
    for (int i = 0; i < c->n_seqs; i++) {
        ids[i] = s[i].id;
        q_lens[i] = s[i].q_len;
    }
    /* the oracle once per case and format: [total][max_len] */
    double *score = t_alloc_f64((size_t)total * (size_t)max_len);
    for (int i = 0, token = 0; i < c->n_seqs; i++)
        for (int32_t r = 0; r < s[i].q_len; r++, token++)
            oracle_scores(s[i].kr, s[i].len - s[i].q_len + r, q + (int64_t)token * heads * dim,
                          w + (int64_t)token * heads, heads, dim, score + (size_t)token * (size_t)max_len);
    int32_t *pos = t_malloc((size_t)total * (size_t)c->top_k * sizeof(int32_t));
    float *got = t_alloc_f32((size_t)total * (size_t)c->top_k);
    char shape[128];
    snprintf(shape, sizeof(shape), "%s h%d d%d seqs%d q%lld", c->label, heads, dim, c->n_seqs, (long long)total);
    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        moak_kv_cache_desc kd = MOAK_KV_CACHE_DESC_INIT;
        kd.format = f;
        kd.n_kv_heads = 1;
        kd.head_dim_k = dim;
        kd.head_dim_v = 0;
        kd.max_seqs = max_seqs;
        kd.max_tokens = max_tokens;
        kd.flags = MOAK_KV_K_ONLY;
        moak_kv_cache *kv = NULL;
        moak_status st = moak_kv_cache_create(ctx, &kd, &kv);
        if (st != MOAK_OK) {
            t_fail("%s indexer %s: moak_kv_cache_create: %s (%s)", bk[b].name, shape, moak_status_str(st),
                   moak_last_error(ctx));
            continue;
        }
        for (int half = 0; half < 2 && st == MOAK_OK; half++)
            for (int i = 0; i < c->n_seqs && st == MOAK_OK; i++) {
                const int64_t from = half ? s[i].len / 2 : 0, n = half ? s[i].len - s[i].len / 2 : s[i].len / 2;
                st = moak_kv_cache_append(ctx, kv, s[i].id, n, s[i].k + from * dim, NULL);
            }
        for (int with_scores = 1; st == MOAK_OK && with_scores >= 0; with_scores--) {
            t_poison_bytes(pos, (size_t)total * (size_t)c->top_k * sizeof(int32_t));
            t_poison_f32(got, (size_t)total * (size_t)c->top_k);
            moak_indexer_desc d = MOAK_INDEXER_DESC_INIT;
            d.n_heads = heads;
            d.head_dim = dim;
            d.top_k = c->top_k;
            st = moak_indexer(ctx, &d, kv, ids, q_lens, c->n_seqs, q, w, pos, with_scores ? got : NULL);
            if (st != MOAK_OK)
                break;
            const char *ran = moak_last_backend(ctx);
            const int is_ref = strcmp(ran, "ref") == 0;
            double worst = 0.0;
            const char *fail = NULL;
            char why[256];
            int64_t token = 0;
            for (int i = 0; i < c->n_seqs && !fail; i++)
                for (int32_t r = 0; r < s[i].q_len && !fail; r++, token++) {
                    const int64_t p = s[i].len - s[i].q_len + r;
                    fail = check_query(pos + token * c->top_k, with_scores ? got + token * c->top_k : NULL,
                                       c->top_k, score + token * max_len, p, is_ref ? REF_SCORE_BOUND : MOAK_BOUND_INDEXER_SCORE,
                                       is_ref ? REF_TIE_BOUND : MOAK_BOUND_INDEXER_TIE, c->n_distinct_keys != 0,
                                       why, sizeof(why), &worst);
                    if (fail)
                        t_fail("%s->%s indexer %s %s%s: query %lld: %s", bk[b].name, ran, t_format_name(f), shape,
                               with_scores ? "" : " (no scores)", (long long)token, fail);
                }
            if (!fail)
                t_report(bk[b].name, ran, with_scores ? "indexer" : "indexer-noscores", t_format_name(f), shape,
                         worst, is_ref ? REF_SCORE_BOUND : MOAK_BOUND_INDEXER_SCORE);
        }
        if (st != MOAK_OK)
            t_fail("%s indexer %s %s: %s (%s)", bk[b].name, t_format_name(f), shape, moak_status_str(st),
                   moak_last_error(ctx));
        moak_kv_cache_destroy(kv);
    }
    free(score);
    free(distinct);
    free(pos);
    free(got);
    free(q);
    free(w);
    for (int i = 0; i < c->n_seqs; i++) {
        free(s[i].k);
        free(s[i].kr);
    }
}

int main(void)
{
    t_init("test_indexer");
    t_backend bk[T_MAX_BACKENDS];
    const int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 0);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
        for (int f = 0; f < MOAK_FORMAT_COUNT; f++)
            if (cases[c].formats & KV(f))
                run_case(bk, n_bk, &cases[c], (moak_format)f);
    t_close_backends(bk, n_bk);
    return t_finish();
}
