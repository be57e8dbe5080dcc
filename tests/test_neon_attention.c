/* test_neon_attention — the neon backend's split-key decode path.
 *
 * When a call has few (sequence, KV head, row block) tiles — decode — the
 * neon attention cuts each tile's keys into chunks of at least 256 and
 * merges the chunks' (max, sum, output) with log-sum-exp weights.  The
 * shared attention test keeps its caches short (<= 300 keys) to stay fast,
 * so it never reaches that path; this test does, with real decode shapes:
 * long caches over many pages, sinks (which join only the merge), a sliding
 * window whose edge falls inside a chunk, a soft-cap, and MLA's shared V.
 * Every output is checked against a double-precision oracle computed here
 * from the values the cache stores, with 1 thread (no split) and 2 threads
 * (split: the plan depends on the shapes and the thread count, as on x86,
 * the same driver), and the same call twice must give the same bytes.
 * Skips (77) where the neon backend is not available. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MAX_SEQS 3
#define REF_BOUND 1e-5

typedef struct split_case {
    const char *label;
    int32_t n_heads, n_kv_heads, dk, dv;
    int shared_v;
    int32_t page_tokens;
    int32_t window;
    float softcap;
    int sinks;
    int n_seqs;
    int64_t lens[MAX_SEQS];      /* every sequence decodes one token */
} split_case;

static const split_case cases[] = {
    /* gpt-oss (64/8 heads scaled to 16/2, head_dim 64): sinks, full layer,
     * 700 and 1030 cached tokens in pages of 16 (3 and 5 chunks). */
    {"gpt-oss decode sinks", 16, 2, 64, 64, 0, 16, 0, 0.0f, 1, 2, {700, 1030, 0}},
    /* the same with a 600-token window: the window's edge cuts a chunk */
    {"gpt-oss decode window600 sinks", 16, 2, 64, 64, 0, 16, 600, 0.0f, 1, 2, {1030, 601, 0}},
    /* Llama-3.1-8B heads 32/8 scaled to 8/2, head_dim 128, soft-cap 30 */
    {"llama decode softcap30", 8, 2, 128, 128, 0, 64, 0, 30.0f, 0, 1, {900, 0, 0}},
    /* DeepSeek-V3 absorbed MLA decode: 1 KV head, K 576, V = its first 512,
     * 128 heads scaled to 16 */
    {"deepseek-v3 mla decode", 16, 1, 576, 512, 1, 64, 0, 0.0f, 0, 1, {600, 0, 0}},
};

typedef struct seq_data {
    float *k, *v;                /* as appended */
    double *kr, *vr;             /* as stored */
} seq_data;

/* The logit scale passed and checked: a shared-V (absorbed MLA) cache needs
 * an explicit one, DeepSeek-V3's 1/sqrt(192) times YaRN's mscale squared
 * ((0.1 ln 40 + 1)^2); the others use 1/sqrt(dk). */
static double case_scale(const split_case *c)
{
    return c->shared_v ? 1.0 / sqrt(192.0) * (1.0 + 0.1 * log(40.0)) * (1.0 + 0.1 * log(40.0))
                       : 1.0 / sqrt((double)c->dk);
}

static void oracle(const split_case *c, const seq_data *s, const float *q, const float *sinks,
                   double *out)
{
    const int32_t group = c->n_heads / c->n_kv_heads;
    const double scale = (double)(float)case_scale(c);
    int64_t max_len = 1;
    for (int i = 0; i < c->n_seqs; i++)
        max_len = c->lens[i] > max_len ? c->lens[i] : max_len;
    double *logit = t_alloc_f64((size_t)max_len);
    for (int i = 0; i < c->n_seqs; i++) {
        const int64_t len = c->lens[i], p = len - 1;
        for (int32_t h = 0; h < c->n_heads; h++) {
            const int32_t g = h / group;
            const float *qh = q + ((size_t)i * c->n_heads + h) * c->dk;
            double mx = sinks ? (double)sinks[h] : -INFINITY;
            int64_t first = c->window > 0 && p - c->window + 1 > 0 ? p - c->window + 1 : 0;
            for (int64_t j = first; j < len; j++) {
                const double *kj = s[i].kr + ((size_t)j * c->n_kv_heads + g) * c->dk;
                double dot = 0.0;
                for (int32_t d = 0; d < c->dk; d++)
                    dot += (double)qh[d] * kj[d];
                double x = scale * dot;
                if (c->softcap != 0.0f)
                    x = c->softcap * tanh(x / c->softcap);
                logit[j] = x;
                mx = x > mx ? x : mx;
            }
            double denom = sinks ? exp((double)sinks[h] - mx) : 0.0;
            double *o = out + ((size_t)i * c->n_heads + h) * c->dv;
            for (int32_t d = 0; d < c->dv; d++)
                o[d] = 0.0;
            for (int64_t j = first; j < len; j++) {
                const double w = exp(logit[j] - mx);
                denom += w;
                const double *vj = c->shared_v ? s[i].kr + ((size_t)j * c->n_kv_heads + g) * c->dk
                                               : s[i].vr + ((size_t)j * c->n_kv_heads + g) * c->dv;
                for (int32_t d = 0; d < c->dv; d++)
                    o[d] += w * vj[d];
            }
            for (int32_t d = 0; d < c->dv; d++)
                o[d] /= denom;
        }
    }
    free(logit);
}

/* Builds the cache in ctx, runs the decode, returns the status; out holds
 * the result. */
static moak_status run_on(moak_context *ctx, const split_case *c, moak_format f, const seq_data *s,
                          const float *q, const float *sinks, float *out, size_t n_out)
{
    moak_kv_cache_desc kd = MOAK_KV_CACHE_DESC_INIT;
    kd.format = f;
    kd.n_kv_heads = c->n_kv_heads;
    kd.head_dim_k = c->dk;
    kd.head_dim_v = c->dv;
    kd.max_seqs = c->n_seqs;
    kd.page_tokens = c->page_tokens;
    kd.flags = c->shared_v ? MOAK_KV_SHARED_V : 0;
    for (int i = 0; i < c->n_seqs; i++)
        kd.max_tokens += (c->lens[i] + c->page_tokens - 1) / c->page_tokens * c->page_tokens;
    moak_kv_cache *kv = NULL;
    moak_status st = moak_kv_cache_create(ctx, &kd, &kv);
    if (st != MOAK_OK)
        return st;
    /* append in pieces of 1..97 tokens, sequences interleaved */
    int64_t done[MAX_SEQS] = {0};
    for (int active = 1; active && st == MOAK_OK;) {
        active = 0;
        for (int i = 0; i < c->n_seqs && st == MOAK_OK; i++) {
            if (done[i] == c->lens[i])
                continue;
            active = 1;
            int64_t n = 1 + (done[i] * 7 + i * 13) % 97;
            if (n > c->lens[i] - done[i])
                n = c->lens[i] - done[i];
            st = moak_kv_cache_append(ctx, kv, i, n, s[i].k + (size_t)done[i] * c->n_kv_heads * c->dk,
                                      c->shared_v ? NULL : s[i].v + (size_t)done[i] * c->n_kv_heads * c->dv);
            done[i] += n;
        }
    }
    if (st == MOAK_OK) {
        moak_attention_desc ad = MOAK_ATTENTION_DESC_INIT;
        ad.n_heads = c->n_heads;
        ad.head_dim_k = c->dk;
        ad.head_dim_v = c->dv;
        ad.scale = (float)case_scale(c);
        ad.causal = 1;
        ad.sliding_window = c->window;
        ad.softcap = c->softcap;
        ad.sinks = sinks;
        int32_t ids[MAX_SEQS], q_lens[MAX_SEQS];
        for (int i = 0; i < c->n_seqs; i++) {
            ids[i] = i;
            q_lens[i] = 1;
        }
        t_poison_f32(out, n_out);
        st = moak_attention(ctx, &ad, kv, ids, q_lens, c->n_seqs, q, out);
    }
    moak_kv_cache_destroy(kv);
    return st;
}

static void run_case(moak_context *const *ctxs, const int32_t *threads, int n_ctx, const split_case *c,
                     moak_format f)
{
    seq_data s[MAX_SEQS];
    for (int i = 0; i < c->n_seqs; i++) {
        const size_t nk = (size_t)c->lens[i] * c->n_kv_heads * c->dk;
        const size_t nv = (size_t)c->lens[i] * c->n_kv_heads * c->dv;
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
    }
    const size_t nq = (size_t)c->n_seqs * c->n_heads * c->dk, nout = (size_t)c->n_seqs * c->n_heads * c->dv;
    float *q = t_alloc_f32(nq);
    t_fill_normal(q, nq, c->softcap != 0.0f ? 6.0 : 1.0);
    float *sinks = NULL;
    if (c->sinks) {
        sinks = t_alloc_f32((size_t)c->n_heads);
        t_fill_normal(sinks, (size_t)c->n_heads, 2.0);
    }
    double *ref = t_alloc_f64(nout);
    oracle(c, s, q, sinks, ref);

    char shape[160];
    snprintf(shape, sizeof(shape), "%s h%d/%d dk%d dv%d lens %lld..%lld", c->label, (int)c->n_heads,
             (int)c->n_kv_heads, (int)c->dk, (int)c->dv, (long long)c->lens[0],
             (long long)c->lens[c->n_seqs - 1]);
    float *out[2] = {t_alloc_f32(nout), t_alloc_f32(nout)};
    for (int x = 0; x < n_ctx; x++) {
        moak_status st = run_on(ctxs[x], c, f, s, q, sinks, out[x], nout);
        if (st != MOAK_OK) {
            t_fail("neon attention %s %s (%d threads): %s (%s)", t_format_name(f), shape, (int)threads[x],
                   moak_status_str(st), moak_last_error(ctxs[x]));
            continue;
        }
        const char *ran = moak_last_backend(ctxs[x]);
        const double err = t_max_row_error(out[x], ref, c->n_seqs, (int64_t)c->n_heads * c->dv);
        const double bound = t_bound_for(ran, REF_BOUND,
                                         f == MOAK_FORMAT_Q8_0 ? MOAK_BOUND_ATTENTION_Q8_0 : MOAK_BOUND_ATTENTION_FLOAT);
        char label[200];
        snprintf(label, sizeof(label), "%s t%d", shape, (int)threads[x]);
        t_report("neon", ran, "attention", t_format_name(f), label, err, bound);
        t_check(strcmp(ran, "neon") == 0, "neon attention %s %s: ran on neon (ran on %s)", t_format_name(f),
                shape, ran);
        st = run_on(ctxs[x], c, f, s, q, sinks, out[1 - x], nout);
        t_check(st == MOAK_OK && memcmp(out[0], out[1], nout * sizeof(float)) == 0,
                "neon attention %s %s: bitwise identical twice with %d threads", t_format_name(f), shape,
                (int)threads[x]);
    }
    free(out[0]);
    free(out[1]);
    free(q);
    free(sinks);
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
    t_init("test_neon_attention");
    int available = 0;
    for (int32_t i = 0; i < moak_backend_count(); i++) {
        moak_backend_info info = MOAK_BACKEND_INFO_INIT;
        if (moak_backend_query(i, &info) == MOAK_OK && strcmp(info.name, "neon") == 0) {
            available = info.available;
            if (!available)
                t_note("neon: not run (%s)", info.reason);
        }
    }
    if (!available)
        return T_EXIT_SKIP;

    /* 2 threads even under an emulator: one thread never splits keys */
    int32_t threads[2] = {1, 2};
    const int n_ctx = 2;
    moak_context *ctxs[2] = {NULL, NULL};
    for (int x = 0; x < n_ctx; x++)
        ctxs[x] = t_context("neon", threads[x]);

    const moak_format formats[] = {MOAK_FORMAT_F16, MOAK_FORMAT_Q8_0, MOAK_FORMAT_BF16, MOAK_FORMAT_F32};
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++)
        for (size_t fi = 0; fi < sizeof(formats) / sizeof(formats[0]); fi++) {
            /* keep it short: every case in F16 and Q8_0, BF16/F32 once each */
            if (fi >= 2 && ci != fi - 2)
                continue;
            run_case(ctxs, threads, n_ctx, &cases[ci], formats[fi]);
        }

    for (int x = 0; x < n_ctx; x++)
        moak_context_destroy(ctxs[x]);
    return t_finish();
}
