/* test_x86_attention — the paths of the x86 attention kernels that the
 * general suite (test_attention, short sequences) does not reach, against an
 * oracle written here in double:
 *   - decode split over key chunks and the log-sum-exp merge: sequences of
 *     513..2100 cached tokens with 2 and 3 threads (the split needs more than
 *     one thread and at least 512 visible keys), with a sliding window that
 *     spans a chunk boundary, sinks and a soft-cap;
 *   - chunk and key-tile (64 keys) boundaries falling inside pages: pages of
 *     5, 7, 13 and 48 tokens;
 *   - prefill tiles split into chunks (one KV head, long context), so some
 *     rows see no key in a chunk;
 *   - the two score kernels (dot products below 16 rows, GEMM from 16 rows:
 *     GQA groups 1, 3, 5, 8, 20 and MLA's 128) and their row, key and head
 *     dim tails (dk 40/80/96, dv 24/72);
 *   - bitwise reproducibility: the same call twice on one context gives the
 *     same bytes (the plan depends only on the shapes and the thread count).
 * Each case runs on the avx2 and avx512 backends that this machine (and
 * MOAK_ISA_MAX) allows, alone ("name!"), so a decline would fail the test
 * rather than fall back to ref.  Head counts and lengths are real model
 * shapes scaled down so the file takes seconds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MAX_SEQS 4

typedef struct x86_case {
    const char *label;
    int32_t n_heads, n_kv_heads, dk, dv;
    int shared_v;
    int32_t page_tokens;
    int causal;
    int32_t window;
    float softcap;
    int sinks;
    int n_seqs;
    int64_t len[MAX_SEQS];
    int32_t q_len[MAX_SEQS];
    unsigned formats;
} x86_case;

#define KV(f) (1u << (f))
#define ALL_KV (KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_F16) | KV(MOAK_FORMAT_BF16) | KV(MOAK_FORMAT_Q8_0))

static const x86_case cases[] = {
    /* Qwen3-30B-A3B decode (32/4, d 128), a batch: one long sequence split
     * into several chunks, one just over the split threshold, one short,
     * one of a single token.  Pages of 48: tiles and chunks straddle pages. */
    {"qwen3 decode split, pages 48", 32, 4, 128, 128, 0, 48, 1, 0, 0.0f, 0, 4,
     {2100, 700, 1, 513}, {1, 1, 1, 1}, ALL_KV},
    /* gpt-oss-like window (scaled: 64/8 heads -> 16/2, window 700 so that it
     * covers two chunks), sinks and a soft-cap 30; pages of 13. */
    {"window 700 sinks softcap, pages 13", 16, 2, 64, 64, 0, 13, 1, 700, 30.0f, 1, 2,
     {1900, 1000}, {1, 1}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_BF16) | KV(MOAK_FORMAT_Q8_0)},
    /* DeepSeek-V3 absorbed MLA with all 128 heads (GEMM scores, 128 rows),
     * Dk 576, V = first 512 dims; one split decode and one 2-token step. */
    {"mla 128 heads split", 128, 1, 576, 512, 1, 64, 1, 0, 0.0f, 0, 2,
     {900, 200}, {1, 2}, KV(MOAK_FORMAT_F16) | KV(MOAK_FORMAT_Q8_0)},
    /* Prefill against a long context on one KV head (MQA-like 4/1): the
     * query tiles are split into chunks too, and early rows of a tile see
     * nothing in the last chunk. */
    {"prefill tiles split, 4/1", 4, 1, 64, 64, 0, 64, 1, 0, 0.0f, 0, 1,
     {1500}, {50}, KV(MOAK_FORMAT_F16) | KV(MOAK_FORMAT_F32)},
    /* Group of 3, head dims 40/24 (not multiples of 8 or 16), non-causal,
     * pages of 7: row tails of both score kernels and of p.V. */
    {"group 3 dk40 dv24 non-causal, pages 7", 6, 2, 40, 24, 0, 7, 0, 0, 0.0f, 1, 2,
     {600, 97}, {7, 1}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_F16) | KV(MOAK_FORMAT_BF16)},
    /* Group of 5, dk 80 / dv 72, window 40, pages of 5. */
    {"group 5 dk80 dv72 window 40, pages 5", 10, 2, 80, 72, 0, 5, 1, 40, 0.0f, 0, 2,
     {530, 60}, {1, 33}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_F16)},
    /* Group of 20 in decode: the GEMM score kernel with a 32-row padded tile. */
    {"group 20 decode", 20, 1, 128, 128, 0, 64, 1, 0, 0.0f, 0, 1,
     {800}, {1}, KV(MOAK_FORMAT_F16) | KV(MOAK_FORMAT_BF16) | KV(MOAK_FORMAT_Q8_0)},
    /* MHA (group 1), head dim 96. */
    {"mha d96", 4, 4, 96, 96, 0, 64, 1, 0, 0.0f, 0, 1,
     {1300}, {1}, KV(MOAK_FORMAT_F16) | KV(MOAK_FORMAT_Q8_0)},
};

typedef struct case_data {
    float *k[MAX_SEQS], *v[MAX_SEQS]; /* as appended */
    double *kr[MAX_SEQS], *vr[MAX_SEQS]; /* as stored */
    float *q, *sinks;
    double *ref;
    int64_t total_q;
} case_data;

/* The logit scale passed and checked: a shared-V (absorbed MLA) cache needs
 * an explicit one, DeepSeek-V3's 1/sqrt(192) times YaRN's mscale squared
 * ((0.1 ln 40 + 1)^2); the others use 1/sqrt(dk). */
static double case_scale(const x86_case *c)
{
    return c->shared_v ? 1.0 / sqrt(192.0) * (1.0 + 0.1 * log(40.0)) * (1.0 + 0.1 * log(40.0))
                       : 1.0 / sqrt((double)c->dk);
}

static void oracle(const x86_case *c, case_data *d)
{
    const int32_t group = c->n_heads / c->n_kv_heads;
    const double scale = (double)(float)case_scale(c);
    int64_t max_len = 1;
    for (int i = 0; i < c->n_seqs; i++)
        max_len = c->len[i] > max_len ? c->len[i] : max_len;
    double *logit = t_alloc_f64((size_t)max_len);
    int64_t token = 0;
    for (int i = 0; i < c->n_seqs; i++) {
        for (int32_t r = 0; r < c->q_len[i]; r++, token++) {
            const int64_t p = c->len[i] - c->q_len[i] + r;
            for (int32_t h = 0; h < c->n_heads; h++) {
                const int32_t g = h / group;
                const float *qh = d->q + (token * c->n_heads + h) * c->dk;
                double mx = d->sinks ? (double)d->sinks[h] : -INFINITY;
                for (int64_t j = 0; j < c->len[i]; j++) {
                    const int visible = (!c->causal || j <= p) && (c->window == 0 || p - j < c->window);
                    if (!visible) {
                        logit[j] = -INFINITY;
                        continue;
                    }
                    const double *kj = d->kr[i] + (j * c->n_kv_heads + g) * c->dk;
                    double dot = 0.0;
                    for (int32_t e = 0; e < c->dk; e++)
                        dot += (double)qh[e] * kj[e];
                    double s = scale * dot;
                    if (c->softcap != 0.0f)
                        s = c->softcap * tanh(s / c->softcap);
                    logit[j] = s;
                    mx = s > mx ? s : mx;
                }
                double denom = d->sinks ? exp((double)d->sinks[h] - mx) : 0.0;
                double *o = d->ref + (token * c->n_heads + h) * c->dv;
                for (int32_t e = 0; e < c->dv; e++)
                    o[e] = 0.0;
                for (int64_t j = 0; j < c->len[i]; j++) {
                    if (logit[j] == -INFINITY)
                        continue;
                    const double w = exp(logit[j] - mx);
                    denom += w;
                    const double *vj = c->shared_v ? d->kr[i] + (j * c->n_kv_heads + g) * c->dk
                                                   : d->vr[i] + (j * c->n_kv_heads + g) * c->dv;
                    for (int32_t e = 0; e < c->dv; e++)
                        o[e] += w * vj[e];
                }
                for (int32_t e = 0; e < c->dv; e++)
                    o[e] /= denom;
            }
        }
    }
    free(logit);
}

static void make_data(const x86_case *c, moak_format f, case_data *d)
{
    d->total_q = 0;
    for (int i = 0; i < c->n_seqs; i++) {
        const size_t nk = (size_t)(c->len[i] * c->n_kv_heads * c->dk);
        const size_t nv = (size_t)(c->len[i] * c->n_kv_heads * c->dv);
        d->k[i] = t_alloc_f32(nk);
        d->kr[i] = t_alloc_f64(nk);
        t_fill_normal(d->k[i], nk, 1.0);
        t_kv_round_trip(f, d->k[i], (int64_t)nk, d->kr[i]);
        d->v[i] = NULL;
        d->vr[i] = NULL;
        if (!c->shared_v) {
            d->v[i] = t_alloc_f32(nv);
            d->vr[i] = t_alloc_f64(nv);
            t_fill_normal(d->v[i], nv, 1.0);
            t_kv_round_trip(f, d->v[i], (int64_t)nv, d->vr[i]);
        }
        d->total_q += c->q_len[i];
    }
    const size_t nq = (size_t)(d->total_q * c->n_heads * c->dk);
    d->q = t_alloc_f32(nq);
    /* logits of std ~2.5 (soft-cap cases) keep the softmax away from uniform */
    t_fill_normal(d->q, nq, c->softcap != 0.0f ? 2.5 : 1.0);
    d->sinks = NULL;
    if (c->sinks) {
        d->sinks = t_alloc_f32((size_t)c->n_heads);
        t_fill_normal(d->sinks, (size_t)c->n_heads, 2.0);
    }
    d->ref = t_alloc_f64((size_t)(d->total_q * c->n_heads * c->dv));
    oracle(c, d);
}

static void free_data(const x86_case *c, case_data *d)
{
    for (int i = 0; i < c->n_seqs; i++) {
        free(d->k[i]);
        free(d->kr[i]);
        free(d->v[i]);
        free(d->vr[i]);
    }
    free(d->q);
    free(d->sinks);
    free(d->ref);
}

/* One case on one context: a cache filled in chunks of 1..61 tokens per
 * sequence in turn (so pages of the sequences interleave), the attention run
 * twice, checked against the oracle and against itself. */
static void run_on(moak_context *ctx, const char *name, int32_t threads, const x86_case *c,
                   moak_format f, const case_data *d)
{
    char who[256];
    snprintf(who, sizeof(who), "%-6s t%d attention %-5s %s", name, (int)threads, t_format_name(f),
             c->label);
    moak_kv_cache_desc kd = MOAK_KV_CACHE_DESC_INIT;
    kd.format = f;
    kd.n_kv_heads = c->n_kv_heads;
    kd.head_dim_k = c->dk;
    kd.head_dim_v = c->dv;
    kd.max_seqs = c->n_seqs + 1;
    kd.max_tokens = 0;
    for (int i = 0; i < c->n_seqs; i++)
        kd.max_tokens += (c->len[i] + c->page_tokens - 1) / c->page_tokens * c->page_tokens;
    kd.page_tokens = c->page_tokens;
    kd.flags = c->shared_v ? MOAK_KV_SHARED_V : 0;
    moak_kv_cache *kv = NULL;
    moak_status st = moak_kv_cache_create(ctx, &kd, &kv);
    if (st != MOAK_OK) {
        t_fail("%s: moak_kv_cache_create: %s (%s)", who, moak_status_str(st), moak_last_error(ctx));
        return;
    }
    /* sequence i gets id n_seqs - i: ids are not the call order */
    int32_t ids[MAX_SEQS], q_lens[MAX_SEQS];
    int64_t done[MAX_SEQS] = {0};
    for (int i = 0; i < c->n_seqs; i++) {
        ids[i] = c->n_seqs - i;
        q_lens[i] = c->q_len[i];
    }
    for (int active = 1; active;) {
        active = 0;
        for (int i = 0; i < c->n_seqs; i++) {
            if (done[i] == c->len[i])
                continue;
            active = 1;
            int64_t n = t_rand_int(1, 61);
            if (n > c->len[i] - done[i])
                n = c->len[i] - done[i];
            const float *k = d->k[i] + done[i] * c->n_kv_heads * c->dk;
            const float *v = c->shared_v ? NULL : d->v[i] + done[i] * c->n_kv_heads * c->dv;
            st = moak_kv_cache_append(ctx, kv, ids[i], n, k, v);
            if (st != MOAK_OK) {
                t_fail("%s: append: %s (%s)", who, moak_status_str(st), moak_last_error(ctx));
                moak_kv_cache_destroy(kv);
                return;
            }
            done[i] += n;
        }
    }

    moak_attention_desc ad = MOAK_ATTENTION_DESC_INIT;
    ad.n_heads = c->n_heads;
    ad.head_dim_k = c->dk;
    ad.head_dim_v = c->dv;
    ad.scale = (float)case_scale(c);
    ad.causal = c->causal;
    ad.sliding_window = c->window;
    ad.softcap = c->softcap;
    ad.sinks = d->sinks;
    const size_t nout = (size_t)(d->total_q * c->n_heads * c->dv);
    float *out = t_alloc_f32(nout), *again = t_alloc_f32(nout);
    t_poison_f32(out, nout);
    t_poison_f32(again, nout);
    st = moak_attention(ctx, &ad, kv, ids, q_lens, c->n_seqs, d->q, out);
    if (st != MOAK_OK) {
        t_fail("%s: %s (%s)", who, moak_status_str(st), moak_last_error(ctx));
    } else {
        const char *ran = moak_last_backend(ctx);
        t_check(strcmp(ran, name) == 0, "%s: ran on %s", who, ran);
        const double err = t_max_row_error(out, d->ref, d->total_q, (int64_t)c->n_heads * c->dv);
        const double bound = t_bound_for(ran, 1e-5,
                                         f == MOAK_FORMAT_Q8_0 ? MOAK_BOUND_ATTENTION_Q8_0
                                                               : MOAK_BOUND_ATTENTION_FLOAT);
        t_report(name, ran, "attention", t_format_name(f), c->label, err, bound);
        st = moak_attention(ctx, &ad, kv, ids, q_lens, c->n_seqs, d->q, again);
        t_check(st == MOAK_OK && memcmp(out, again, nout * sizeof(float)) == 0,
                "%s: a second identical call gives the same bytes", who);
    }
    free(out);
    free(again);
    moak_kv_cache_destroy(kv);
}

int main(void)
{
    t_init("test_x86_attention");
    const char *names[2] = {"avx2", "avx512"};
    int available[2] = {0, 0};
    for (int32_t i = 0; i < moak_backend_count(); i++) {
        moak_backend_info info = MOAK_BACKEND_INFO_INIT;
        if (moak_backend_query(i, &info) != MOAK_OK)
            continue;
        for (int b = 0; b < 2; b++)
            if (strcmp(info.name, names[b]) == 0) {
                available[b] = info.available;
                if (!info.available)
                    t_note("backend %s: not run (%s)", info.name, info.reason);
            }
    }
    if (!available[0] && !available[1]) {
        t_note("no x86 backend can run here: nothing to test");
        t_finish();
        return T_EXIT_SKIP;
    }
    const int32_t thread_counts[3] = {1, 2, 3};
    moak_context *ctx[2][3] = {{NULL}};
    for (int b = 0; b < 2; b++) {
        if (!available[b])
            continue;
        for (int t = 0; t < 3; t++) {
            char list[16];
            snprintf(list, sizeof(list), "%s!", names[b]);
            ctx[b][t] = t_context(list, thread_counts[t]);
        }
    }
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        const x86_case *c = &cases[ci];
        for (int f = 0; f < MOAK_FORMAT_COUNT; f++) {
            if (!(c->formats & KV(f)))
                continue;
            case_data d;
            make_data(c, (moak_format)f, &d);
            for (int b = 0; b < 2; b++)
                for (int t = 0; t < 3; t++)
                    if (ctx[b][t])
                        run_on(ctx[b][t], names[b], thread_counts[t], c, (moak_format)f, &d);
            free_data(c, &d);
        }
    }
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 3; t++)
            moak_context_destroy(ctx[b][t]);
    return t_finish();
}
