/* test_kv_cache — the paged KV cache: appends across page boundaries, many
 * sequences interleaved, seq_len, seq_clear returning pages for reuse, and a
 * full cache refusing an append without storing any of it.
 *
 * What a cache holds is observable only through attention, so contents are
 * checked by a causal attention whose queries are all of a sequence's tokens
 * (q_len = its length): the query at position p sees exactly keys 0..p, so
 * position 0 returns v_0 alone and every prefix of the sequence is checked,
 * not only an average over it.  The oracle reads K/V as the format stores
 * them (rounded by the test's own code). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define REF_BOUND 1e-5
/* Small heads: this file checks bookkeeping, not arithmetic at scale. */
#define N_KV_HEADS 2
#define N_HEADS 4
#define HEAD_DIM 32

typedef struct mirror {
    int32_t max_seqs;
    int64_t *len;
    float **k, **v;       /* per sequence, [capacity][N_KV_HEADS][HEAD_DIM] as appended */
    int64_t capacity;
} mirror;

static mirror *mirror_new(int32_t max_seqs, int64_t capacity)
{
    mirror *m = t_calloc(1, sizeof(*m));
    m->max_seqs = max_seqs;
    m->capacity = capacity;
    m->len = t_calloc((size_t)max_seqs, sizeof(int64_t));
    m->k = t_calloc((size_t)max_seqs, sizeof(float *));
    m->v = t_calloc((size_t)max_seqs, sizeof(float *));
    for (int32_t s = 0; s < max_seqs; s++) {
        m->k[s] = t_alloc_f32((size_t)(capacity * N_KV_HEADS * HEAD_DIM));
        m->v[s] = t_alloc_f32((size_t)(capacity * N_KV_HEADS * HEAD_DIM));
    }
    return m;
}

static void mirror_free(mirror *m)
{
    for (int32_t s = 0; s < m->max_seqs; s++) {
        free(m->k[s]);
        free(m->v[s]);
    }
    free(m->k);
    free(m->v);
    free(m->len);
    free(m);
}

typedef struct env {
    const char *backend;
    moak_context *ctx;
    moak_format format;
    const char *scenario;
} env;

/* Append n fresh random tokens to seq; expect `want`.  Returns the status. */
static moak_status append(const env *e, moak_kv_cache *kv, mirror *m, int32_t seq, int64_t n,
                          moak_status want)
{
    size_t row = (size_t)N_KV_HEADS * HEAD_DIM;
    float *k = t_alloc_f32((size_t)n * row + 1), *v = t_alloc_f32((size_t)n * row + 1);
    t_fill_normal(k, (size_t)n * row, 1.0);
    t_fill_normal(v, (size_t)n * row, 1.0);
    int64_t before = -1, after = -1;
    moak_kv_cache_seq_len(kv, seq, &before);
    moak_status st = moak_kv_cache_append(e->ctx, kv, seq, n, k, v);
    moak_kv_cache_seq_len(kv, seq, &after);
    if (st == MOAK_OK && m->len[seq] + n <= m->capacity) {
        memcpy(m->k[seq] + m->len[seq] * row, k, (size_t)n * row * sizeof(float));
        memcpy(m->v[seq] + m->len[seq] * row, v, (size_t)n * row * sizeof(float));
        m->len[seq] += n;
    }
    int64_t expect_len = m->len[seq];
    int ok = st == want && after == expect_len && (st == MOAK_OK || after == before);
    if (!ok || want != MOAK_OK)
        t_check(ok, "%-14s kv_append  %-8s %s: seq %d +%lld tokens -> %s, len %lld (expected %s, len %lld)%s%s",
                e->backend, t_format_name(e->format), e->scenario, (int)seq, (long long)n,
                t_status_name(st), (long long)after, t_status_name(want), (long long)expect_len,
                st != MOAK_OK ? ": " : "", st != MOAK_OK ? moak_last_error(e->ctx) : "");
    if (st == MOAK_ERR_CACHE_FULL && want == MOAK_ERR_CACHE_FULL)
        t_check(strstr(moak_last_error(e->ctx), "n_tokens") != NULL,
                "%-14s kv_append  %-8s %s: the CACHE_FULL message names n_tokens", e->backend,
                t_format_name(e->format), e->scenario);
    free(k);
    free(v);
    return st;
}

static void clear(const env *e, moak_kv_cache *kv, mirror *m, int32_t seq)
{
    moak_status st = moak_kv_cache_seq_clear(e->ctx, kv, seq);
    int64_t len = -1;
    moak_kv_cache_seq_len(kv, seq, &len);
    t_check(st == MOAK_OK && len == 0, "%-14s kv_clear   %-8s %s: seq %d -> %s, len %lld",
            e->backend, t_format_name(e->format), e->scenario, (int)seq, t_status_name(st),
            (long long)len);
    m->len[seq] = 0;
}

/* Causal attention with q_len = len over the listed sequences, against the oracle. */
static void verify(const env *e, moak_kv_cache *kv, const mirror *m, const int32_t *seqs, int n_seqs)
{
    size_t row = (size_t)N_KV_HEADS * HEAD_DIM;
    int64_t total = 0;
    int32_t q_lens[256];
    for (int i = 0; i < n_seqs; i++) {
        q_lens[i] = (int32_t)m->len[seqs[i]];
        total += q_lens[i];
    }
    size_t nq = (size_t)total * N_HEADS * HEAD_DIM;
    float *q = t_alloc_f32(nq + 1), *out = t_alloc_f32(nq + 1);
    double *ref = t_alloc_f64(nq + 1);
    t_fill_normal(q, nq, 1.0);
    double scale = 1.0 / sqrt((double)HEAD_DIM);
    int64_t token = 0;
    for (int i = 0; i < n_seqs; i++) {
        int32_t s = seqs[i];
        int64_t L = m->len[s];
        double *kr = t_alloc_f64((size_t)L * row + 1), *vr = t_alloc_f64((size_t)L * row + 1);
        t_kv_round_trip(e->format, m->k[s], L * (int64_t)row, kr);
        t_kv_round_trip(e->format, m->v[s], L * (int64_t)row, vr);
        double *w = t_alloc_f64((size_t)L + 1);
        for (int64_t p = 0; p < L; p++, token++) {
            for (int h = 0; h < N_HEADS; h++) {
                int g = h / (N_HEADS / N_KV_HEADS);
                const float *qh = q + ((size_t)token * N_HEADS + h) * HEAD_DIM;
                double mx = -INFINITY, denom = 0.0;
                for (int64_t j = 0; j <= p; j++) {
                    double dot = 0.0;
                    for (int d = 0; d < HEAD_DIM; d++)
                        dot += qh[d] * kr[((size_t)j * N_KV_HEADS + g) * HEAD_DIM + d];
                    w[j] = scale * dot;
                    mx = w[j] > mx ? w[j] : mx;
                }
                double *o = ref + ((size_t)token * N_HEADS + h) * HEAD_DIM;
                for (int d = 0; d < HEAD_DIM; d++)
                    o[d] = 0.0;
                for (int64_t j = 0; j <= p; j++) {
                    double wj = exp(w[j] - mx);
                    denom += wj;
                    for (int d = 0; d < HEAD_DIM; d++)
                        o[d] += wj * vr[((size_t)j * N_KV_HEADS + g) * HEAD_DIM + d];
                }
                for (int d = 0; d < HEAD_DIM; d++)
                    o[d] /= denom;
            }
        }
        free(kr);
        free(vr);
        free(w);
    }
    moak_attention_desc ad = MOAK_ATTENTION_DESC_INIT;
    ad.n_heads = N_HEADS;
    ad.head_dim_k = ad.head_dim_v = HEAD_DIM;
    ad.causal = 1;
    t_poison_f32(out, nq + 1);
    char shape[96];
    snprintf(shape, sizeof(shape), "%s: %d seqs, %lld tokens", e->scenario, n_seqs, (long long)total);
    moak_status st = moak_attention(e->ctx, &ad, kv, seqs, q_lens, n_seqs, q, out);
    if (st != MOAK_OK) {
        t_fail("%-14s contents   %-8s %s: attention failed: %s (%s)", e->backend,
               t_format_name(e->format), shape, moak_status_str(st), moak_last_error(e->ctx));
    } else {
        const char *ran = moak_last_backend(e->ctx);
        double err = t_max_row_error(out, ref, total, (int64_t)N_HEADS * HEAD_DIM);
        double bound = t_bound_for(ran, REF_BOUND,
                                   e->format == MOAK_FORMAT_Q8_0 ? MOAK_BOUND_ATTENTION_Q8_0
                                                                 : MOAK_BOUND_ATTENTION_FLOAT);
        t_report(e->backend, ran, "contents", t_format_name(e->format), shape, err, bound);
    }
    free(q);
    free(out);
    free(ref);
}

static moak_kv_cache *make_cache(const env *e, int32_t max_seqs, int64_t max_tokens, int32_t page_tokens)
{
    moak_kv_cache_desc d = MOAK_KV_CACHE_DESC_INIT;
    d.format = e->format;
    d.n_kv_heads = N_KV_HEADS;
    d.head_dim_k = d.head_dim_v = HEAD_DIM;
    d.max_seqs = max_seqs;
    d.max_tokens = max_tokens;
    d.page_tokens = page_tokens;
    moak_kv_cache *kv = NULL;
    t_ok(moak_kv_cache_create(e->ctx, &d, &kv), e->ctx, "moak_kv_cache_create");
    return kv;
}

/* Chunks of 1, 15, 16, 17, 33 tokens into 16-token pages, three sequences
 * taking turns so their pages interleave in the pool. */
static void scenario_page_boundaries(env e)
{
    e.scenario = "page boundaries";
    moak_kv_cache *kv = make_cache(&e, 5, 400, 16);
    mirror *m = mirror_new(5, 400);
    static const int64_t chunks[] = {1, 15, 16, 17, 33, 2, 31};
    int32_t seqs[3] = {4, 0, 2};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++)
        for (int i = 0; i < 3; i++)
            append(&e, kv, m, seqs[i], chunks[(c + (size_t)i) % 7], MOAK_OK);
    /* n_tokens 0 is a no-op. */
    append(&e, kv, m, 2, 0, MOAK_OK);
    verify(&e, kv, m, seqs, 3);
    moak_kv_cache_destroy(kv);
    mirror_free(m);
}

/* 40 sequences of 64, appended round-robin a few tokens at a time; then one
 * batched decode over all of them and a full check of some. */
static void scenario_many_sequences(env e)
{
    e.scenario = "40 sequences interleaved";
    moak_kv_cache *kv = make_cache(&e, 64, 40 * 32, 8);
    mirror *m = mirror_new(64, 32);
    int32_t ids[40];
    int32_t perm[64];
    t_shuffle_i32(perm, 64);
    for (int i = 0; i < 40; i++)
        ids[i] = perm[i];
    for (int round = 0; round < 4; round++)
        for (int i = 0; i < 40; i++)
            append(&e, kv, m, ids[i], t_rand_int(1, 7), MOAK_OK);
    int mismatches = 0;
    for (int i = 0; i < 40; i++) {
        int64_t len = -1;
        moak_kv_cache_seq_len(kv, ids[i], &len);
        mismatches += len != m->len[ids[i]];
    }
    t_check(mismatches == 0, "%-14s kv_seq_len %-8s %s: %d of 40 lengths wrong", e.backend,
            t_format_name(e.format), e.scenario, mismatches);
    verify(&e, kv, m, ids, 40);
    moak_kv_cache_destroy(kv);
    mirror_free(m);
}

/* A cache of 4 pages of 16 tokens (max_tokens 50 rounds up to 64). */
static void scenario_full_and_clear(env e)
{
    e.scenario = "full cache, clear, reuse";
    moak_kv_cache *kv = make_cache(&e, 3, 50, 16);
    mirror *m = mirror_new(3, 64);
    int32_t both[2] = {0, 1};
    append(&e, kv, m, 0, 20, MOAK_OK);                   /* pages 2 */
    append(&e, kv, m, 1, 30, MOAK_OK);                   /* pages 4: none free */
    append(&e, kv, m, 0, 12, MOAK_OK);                   /* fills seq 0's second page */
    append(&e, kv, m, 0, 1, MOAK_ERR_CACHE_FULL);        /* needs a fifth page */
    append(&e, kv, m, 2, 1, MOAK_ERR_CACHE_FULL);
    append(&e, kv, m, 1, 5, MOAK_ERR_CACHE_FULL);        /* 2 fit, 3 do not: none stored */
    append(&e, kv, m, 1, 2, MOAK_OK);                    /* exactly the room left */
    append(&e, kv, m, 1, 1, MOAK_ERR_CACHE_FULL);
    verify(&e, kv, m, both, 2);                          /* failed appends stored nothing */
    /* Clearing seq 0 frees its two pages: seq 2 can take 32 tokens, not 33. */
    clear(&e, kv, m, 0);
    append(&e, kv, m, 2, 33, MOAK_ERR_CACHE_FULL);
    append(&e, kv, m, 2, 32, MOAK_OK);
    int32_t live[2] = {1, 2};
    verify(&e, kv, m, live, 2);
    /* A cleared sequence starts over: new contents, no stale tokens. */
    clear(&e, kv, m, 1);
    append(&e, kv, m, 0, 9, MOAK_OK);
    append(&e, kv, m, 1, 3, MOAK_OK);
    int32_t all[3] = {0, 1, 2};
    verify(&e, kv, m, all, 3);
    moak_kv_cache_destroy(kv);
    mirror_free(m);
}

/* page_tokens 0 means 64: max_tokens 100 is two pages (128 tokens). */
static void scenario_default_pages(env e)
{
    e.scenario = "default 64-token pages";
    moak_kv_cache *kv = make_cache(&e, 2, 100, 0);
    mirror *m = mirror_new(2, 128);
    append(&e, kv, m, 0, 65, MOAK_OK);
    append(&e, kv, m, 1, 1, MOAK_ERR_CACHE_FULL);
    append(&e, kv, m, 0, 63, MOAK_OK);
    append(&e, kv, m, 0, 1, MOAK_ERR_CACHE_FULL);
    int32_t s0 = 0;
    verify(&e, kv, m, &s0, 1);
    clear(&e, kv, m, 0);
    append(&e, kv, m, 1, 128, MOAK_OK);
    int32_t s1 = 1;
    verify(&e, kv, m, &s1, 1);
    moak_kv_cache_destroy(kv);
    mirror_free(m);
}

int main(void)
{
    t_init("test_kv_cache");
    t_backend bk[T_MAX_BACKENDS];
    int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 0);
    static const moak_format formats[] = {MOAK_FORMAT_F32, MOAK_FORMAT_F16, MOAK_FORMAT_Q8_0};
    for (int b = 0; b < n_bk; b++) {
        for (size_t f = 0; f < sizeof(formats) / sizeof(formats[0]); f++) {
            env e = {bk[b].name, bk[b].ctx, formats[f], ""};
            scenario_page_boundaries(e);
            scenario_full_and_clear(e);
            if (formats[f] == MOAK_FORMAT_F16) {
                scenario_many_sequences(e);
                scenario_default_pages(e);
            }
        }
    }
    t_close_backends(bk, n_bk);
    return t_finish();
}
