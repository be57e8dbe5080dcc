/* test_attention — moak_attention over a paged KV cache against an oracle
 * written here in double.
 *
 * The oracle reads K and V as the cache stores them: the appended f32 values
 * are rounded through the cache format by the test's own code (testutil
 * t_kv_round_trip), never read back from the library.  Sequences are appended
 * in interleaved chunks of random size, so their pages alternate in the pool,
 * and are given sequence ids in a shuffled order.  Head counts are scaled
 * down where the real ones would make the file slow (said per case). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ref dequantizes to f32 (exactly what the oracle's round trip gives) and
 * accumulates in double; its only error is the final rounding to f32.  Q8_0
 * quantization could differ from ggml's in the last bit of a tie, which would
 * move one element by one quantum (about 1/254 of a block's largest value):
 * not seen in practice, and the bound below would flag it, not hide it. */
#define REF_BOUND 1e-5

#define MAX_SEQS 8

typedef struct seq_spec {
    int64_t len;     /* cached tokens after the appends */
    int32_t q_len;   /* queries: the q_len newest of them */
} seq_spec;

typedef struct attn_case {
    const char *label;
    int32_t n_heads, n_kv_heads, dk, dv;
    int shared_v;
    int32_t page_tokens;      /* 0 = the default (64) */
    float scale;              /* 0 = 1/sqrt(dk) */
    int causal;
    int32_t window;
    float softcap;
    int sinks;
    double q_std;             /* larger makes logits peaky (soft-cap cases) */
    int n_seqs;
    seq_spec seqs[MAX_SEQS];
    unsigned formats;         /* bit mask of KV formats */
} attn_case;

#define KV(f) (1u << (f))
#define ALL_KV (KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_F16) | KV(MOAK_FORMAT_BF16) | KV(MOAK_FORMAT_Q8_0))

static const attn_case cases[] = {
    /* Qwen3-30B-A3B decode: GQA 32/4, head_dim 128; many sequences of
     * different lengths in one call (1 token, within a page, exactly one
     * page, just past it, several pages); one sequence with no cached token
     * and q_len 0, one with cached tokens but no query. */
    {"qwen3-30b-a3b decode", 32, 4, 128, 128, 0, 0, 0.0f, 1, 0, 0.0f, 0, 1.0, 7,
     {{1, 1}, {7, 1}, {64, 1}, {65, 1}, {0, 0}, {200, 1}, {30, 0}}, ALL_KV},
    /* Qwen3-30B-A3B prefill mixed with decode: 17 new tokens after 40 cached,
     * a fresh 20-token prompt, and a decoding sequence, in one call. */
    {"qwen3-30b-a3b prefill", 32, 4, 128, 128, 0, 0, 0.0f, 1, 0, 0.0f, 0, 1.0, 3,
     {{57, 17}, {20, 20}, {33, 1}}, KV(MOAK_FORMAT_F16) | KV(MOAK_FORMAT_Q8_0)},
    /* gpt-oss sliding-window layer: window 128, a sink logit per head,
     * head_dim 64; heads 64/8 scaled to 16/2.  Pages of 16 tokens. */
    {"gpt-oss window128 sinks", 16, 2, 64, 64, 0, 16, 0.0f, 1, 128, 0.0f, 1, 1.0, 3,
     {{300, 1}, {100, 1}, {200, 40}}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_BF16) | KV(MOAK_FORMAT_Q8_0)},
    /* gpt-oss full-attention layer: sinks without a window. */
    {"gpt-oss full sinks", 16, 2, 64, 64, 0, 16, 0.0f, 1, 0, 0.0f, 1, 1.0, 2,
     {{150, 1}, {40, 9}}, KV(MOAK_FORMAT_F16)},
    /* Logit soft-cap 20 (Gemma 2 uses 50; 20 bites harder) with logits of
     * std ~8, Llama-3.1-8B heads 32/8 scaled to 8/2, head_dim 128. */
    {"softcap20 llama-3.1-8b", 8, 2, 128, 128, 0, 0, 0.0f, 1, 0, 20.0f, 0, 8.0, 2,
     {{90, 1}, {30, 6}}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_F16)},
    /* DeepSeek-V3 MLA absorbed decode: one latent KV head, K 512+64 = 576,
     * V = its first 512 dims (MOAK_KV_SHARED_V), 128 heads scaled to 16,
     * scale 1/sqrt(192) (qk_nope 128 + qk_rope 64) times YaRN's mscale squared
     * ((0.1 ln 40 + 1)^2: the scale is required with a shared V). */
    {"deepseek-v3 mla decode", 16, 1, 576, 512, 1, 0, 0.13523378f, 1, 0, 0.0f, 0, 1.0, 4,
     {{1, 1}, {50, 1}, {129, 1}, {20, 5}}, ALL_KV},
    /* DeepSeek-V3 MLA prefill form: K head 192 (nope + rope), V head 128;
     * 128 heads scaled to 8. */
    {"deepseek-v3 mla prefill dk192 dv128", 8, 8, 192, 128, 0, 0, 0.0f, 1, 0, 0.0f, 0, 1.0, 2,
     {{24, 24}, {40, 3}}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_BF16) | KV(MOAK_FORMAT_Q8_0)},
    /* MQA: 8 query heads on one KV head, head_dim 64. */
    {"mqa 8/1", 8, 1, 64, 64, 0, 32, 0.0f, 1, 0, 0.0f, 0, 1.0, 3,
     {{70, 1}, {33, 4}, {1, 1}}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_BF16)},
    /* Issue 16, large finite soft-caps: the cap must change nothing it
     * should not.  cap * tanh(x / cap) computed as cap (1 - 2 / (e^2t + 1))
     * cancels to 0 for tiny t, which made every score 0 (a plain mean of V)
     * from caps of ~1e8; 1e30 and 3e38 also take the cap out of f32's
     * comfortable range (cap * log2 e overflows f32 at the last).  Decode
     * over 600 keys splits into key chunks with 2+ threads (the merge). */
    {"softcap 1e6", 8, 2, 128, 128, 0, 0, 0.0f, 1, 0, 1e6f, 0, 1.0, 2,
     {{600, 1}, {30, 6}}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_F16)},
    {"softcap 1e30", 8, 2, 128, 128, 0, 0, 0.0f, 1, 0, 1e30f, 0, 1.0, 2,
     {{600, 1}, {30, 6}}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_Q8_0)},
    {"softcap 3e38", 8, 2, 128, 128, 0, 0, 0.0f, 1, 0, 3e38f, 1, 1.0, 2,
     {{600, 1}, {30, 6}}, KV(MOAK_FORMAT_BF16)},
    /* Issue 16, a logit scale near FLT_MAX: scale * log2(e) overflows f32,
     * which gave -Inf / 0 where the reference is finite (the softmax is an
     * arg-max then: the oracle in double says which key).  With sinks, and
     * with a soft-cap that every logit saturates (ties at +-cap). */
    {"scale 3.4e38 sinks", 8, 2, 128, 128, 0, 0, 3.4e38f, 1, 0, 0.0f, 1, 1.0, 2,
     {{600, 1}, {30, 6}}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_F16)},
    {"scale 1e30 mla", 16, 1, 576, 512, 1, 0, 1e30f, 1, 0, 0.0f, 0, 1.0, 2,
     {{600, 1}, {20, 5}}, KV(MOAK_FORMAT_Q8_0)},
    {"scale 3.4e38 softcap 50", 8, 2, 128, 128, 0, 0, 3.4e38f, 1, 0, 50.0f, 0, 1.0, 2,
     {{600, 1}, {30, 6}}, KV(MOAK_FORMAT_F32)},
    /* Non-causal (an encoder / a prompt seen whole): every query sees every key. */
    {"non-causal 8/2", 8, 2, 64, 64, 0, 0, 0.0f, 0, 0, 0.0f, 0, 1.0, 2,
     {{33, 33}, {10, 4}}, KV(MOAK_FORMAT_F32) | KV(MOAK_FORMAT_F16)},
};

typedef struct seq_data {
    int64_t len;
    int32_t q_len;
    int32_t id;
    float *k, *v;          /* [len][n_kv][dk], [len][n_kv][dv] as appended */
    double *kr, *vr;       /* as stored (rounded through the format) */
} seq_data;

static void oracle(const attn_case *c, const seq_data *s, int n_seqs, const float *q,
                   const float *sinks, double *out)
{
    int32_t group = c->n_heads / c->n_kv_heads;
    double scale = c->scale != 0.0f ? c->scale : 1.0 / sqrt((double)c->dk);
    int64_t token = 0;
    int64_t max_len = 1;
    for (int i = 0; i < n_seqs; i++)
        max_len = s[i].len > max_len ? s[i].len : max_len;
    double *sc = t_alloc_f64((size_t)max_len);
    for (int i = 0; i < n_seqs; i++) {
        for (int32_t r = 0; r < s[i].q_len; r++, token++) {
            int64_t p = s[i].len - s[i].q_len + r;
            for (int32_t h = 0; h < c->n_heads; h++) {
                int32_t g = h / group;
                const float *qh = q + (token * c->n_heads + h) * c->dk;
                double mx = sinks ? (double)sinks[h] : -INFINITY;
                for (int64_t j = 0; j < s[i].len; j++) {
                    int visible = (!c->causal || j <= p) && (c->window == 0 || p - j < c->window);
                    if (!visible) {
                        sc[j] = -INFINITY;
                        continue;
                    }
                    const double *kj = s[i].kr + (j * c->n_kv_heads + g) * c->dk;
                    double dot = 0.0;
                    for (int32_t d = 0; d < c->dk; d++)
                        dot += (double)qh[d] * kj[d];
                    double logit = scale * dot;
                    if (c->softcap != 0.0f)
                        logit = c->softcap * tanh(logit / c->softcap);
                    sc[j] = logit;
                    mx = logit > mx ? logit : mx;
                }
                double denom = sinks ? exp((double)sinks[h] - mx) : 0.0;
                double *o = out + (token * c->n_heads + h) * c->dv;
                for (int32_t d = 0; d < c->dv; d++)
                    o[d] = 0.0;
                for (int64_t j = 0; j < s[i].len; j++) {
                    if (sc[j] == -INFINITY)
                        continue;
                    double w = exp(sc[j] - mx);
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
    }
    free(sc);
}

/* Appends every sequence's tokens in interleaved chunks of 1..37 tokens. */
static int append_all(moak_context *ctx, moak_kv_cache *kv, const attn_case *c, const seq_data *s,
                      int n_seqs, const int32_t *chunks, int n_chunks, const char *who)
{
    int64_t done[MAX_SEQS] = {0};
    int ci = 0;
    for (int active = 1; active;) {
        active = 0;
        for (int i = 0; i < n_seqs; i++) {
            if (done[i] == s[i].len)
                continue;
            active = 1;
            int64_t n = chunks[ci++ % n_chunks];
            if (n > s[i].len - done[i])
                n = s[i].len - done[i];
            const float *k = s[i].k + done[i] * c->n_kv_heads * c->dk;
            const float *v = c->shared_v ? NULL : s[i].v + done[i] * c->n_kv_heads * c->dv;
            moak_status st = moak_kv_cache_append(ctx, kv, s[i].id, n, k, v);
            if (st != MOAK_OK) {
                t_fail("%s: moak_kv_cache_append(seq %d, %lld tokens): %s (%s)", who, (int)s[i].id,
                       (long long)n, moak_status_str(st), moak_last_error(ctx));
                return 0;
            }
            done[i] += n;
        }
    }
    for (int i = 0; i < n_seqs; i++) {
        int64_t len = -1;
        moak_status st = moak_kv_cache_seq_len(kv, s[i].id, &len);
        if (st != MOAK_OK || len != s[i].len) {
            t_fail("%s: seq %d holds %lld tokens, expected %lld (%s)", who, (int)s[i].id,
                   (long long)len, (long long)s[i].len, moak_status_str(st));
            return 0;
        }
    }
    return 1;
}

static void run_case(t_backend *bk, int n_bk, const attn_case *c, moak_format f)
{
    int n = c->n_seqs;
    seq_data s[MAX_SEQS];
    int32_t perm[MAX_SEQS + 4];
    int32_t max_seqs = n + 4;
    t_shuffle_i32(perm, max_seqs);
    int64_t total_q = 0, max_tokens = 0;
    int32_t pt = c->page_tokens ? c->page_tokens : 64;
    for (int i = 0; i < n; i++) {
        s[i].len = c->seqs[i].len;
        s[i].q_len = c->seqs[i].q_len;
        s[i].id = perm[i];
        size_t nk = (size_t)(s[i].len * c->n_kv_heads * c->dk);
        size_t nv = (size_t)(s[i].len * c->n_kv_heads * c->dv);
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
        total_q += s[i].q_len;
        max_tokens += (s[i].len + pt - 1) / pt * pt;
    }
    int32_t chunks[64];
    for (int i = 0; i < 64; i++)
        chunks[i] = (int32_t)t_rand_int(1, 37);
    size_t nq = (size_t)(total_q * c->n_heads * c->dk), nout = (size_t)(total_q * c->n_heads * c->dv);
    float *q = t_alloc_f32(nq ? nq : 1);
    t_fill_normal(q, nq, c->q_std);
    float *sinks = NULL;
    if (c->sinks) {
        sinks = t_alloc_f32((size_t)c->n_heads);
        t_fill_normal(sinks, (size_t)c->n_heads, 2.0);
    }
    double *ref = t_alloc_f64(nout ? nout : 1);
    oracle(c, s, n, q, sinks, ref);
    int32_t ids[MAX_SEQS], q_lens[MAX_SEQS];
    for (int i = 0; i < n; i++) {
        ids[i] = s[i].id;
        q_lens[i] = s[i].q_len;
    }

    char shape[128];
    snprintf(shape, sizeof(shape), "%s h%d/%d dk%d dv%d seqs%d q%lld", c->label, (int)c->n_heads,
             (int)c->n_kv_heads, (int)c->dk, (int)c->dv, n, (long long)total_q);
    float *out = t_alloc_f32(nout ? nout : 1);
    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        char who[320];
        snprintf(who, sizeof(who), "%.31s attention %.8s %.127s", bk[b].name, t_format_name(f), shape);
        moak_kv_cache_desc kd = MOAK_KV_CACHE_DESC_INIT;
        kd.format = f;
        kd.n_kv_heads = c->n_kv_heads;
        kd.head_dim_k = c->dk;
        kd.head_dim_v = c->dv;
        kd.max_seqs = max_seqs;
        kd.max_tokens = max_tokens;
        kd.page_tokens = c->page_tokens;
        kd.flags = c->shared_v ? MOAK_KV_SHARED_V : 0;
        moak_kv_cache *kv = NULL;
        moak_status st = moak_kv_cache_create(ctx, &kd, &kv);
        if (st != MOAK_OK) {
            t_fail("%s: moak_kv_cache_create: %s (%s)", who, moak_status_str(st), moak_last_error(ctx));
            continue;
        }
        if (append_all(ctx, kv, c, s, n, chunks, 64, who)) {
            moak_attention_desc ad = MOAK_ATTENTION_DESC_INIT;
            ad.n_heads = c->n_heads;
            ad.head_dim_k = c->dk;
            ad.head_dim_v = c->dv;
            ad.scale = c->scale;
            ad.causal = c->causal;
            ad.sliding_window = c->window;
            ad.softcap = c->softcap;
            ad.sinks = sinks;
            t_poison_f32(out, nout ? nout : 1);
            st = moak_attention(ctx, &ad, kv, ids, q_lens, n, q, out);
            if (st != MOAK_OK) {
                t_fail("%s: %s (%s)", who, moak_status_str(st), moak_last_error(ctx));
            } else {
                const char *ran = moak_last_backend(ctx);
                double err = t_max_row_error(out, ref, total_q, (int64_t)c->n_heads * c->dv);
                double bound = t_bound_for(ran, REF_BOUND,
                                           f == MOAK_FORMAT_Q8_0 ? MOAK_BOUND_ATTENTION_Q8_0
                                                                 : MOAK_BOUND_ATTENTION_FLOAT);
                t_report(bk[b].name, ran, "attention", t_format_name(f), shape, err, bound);
                if (strcmp(ran, moak_kv_cache_backend(kv)) != 0)
                    t_note("%s: the cache is %s's, attention ran on %s", who,
                           moak_kv_cache_backend(kv), ran);
            }
        }
        moak_kv_cache_destroy(kv);
    }
    free(out);
    free(q);
    free(sinks);
    free(ref);
    for (int i = 0; i < n; i++) {
        free(s[i].k);
        free(s[i].kr);
        free(s[i].v);
        free(s[i].vr);
    }
}

/* Every sequence asks for no query: nothing to compute, OK, nothing written. */
static void run_no_queries(t_backend *bk, int n_bk)
{
    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        moak_kv_cache_desc kd = MOAK_KV_CACHE_DESC_INIT;
        kd.format = MOAK_FORMAT_F16;
        kd.n_kv_heads = 2;
        kd.head_dim_k = kd.head_dim_v = 64;
        kd.max_seqs = 2;
        kd.max_tokens = 64;
        moak_kv_cache *kv = NULL;
        t_ok(moak_kv_cache_create(ctx, &kd, &kv), ctx, "kv cache for the no-query case");
        float k[3 * 2 * 64], v[3 * 2 * 64];
        t_fill_normal(k, 3 * 2 * 64, 1.0);
        t_fill_normal(v, 3 * 2 * 64, 1.0);
        t_ok(moak_kv_cache_append(ctx, kv, 1, 3, k, v), ctx, "append for the no-query case");
        moak_attention_desc ad = MOAK_ATTENTION_DESC_INIT;
        ad.n_heads = 4;
        ad.head_dim_k = ad.head_dim_v = 64;
        ad.causal = 1;
        int32_t ids[2] = {0, 1}, q_lens[2] = {0, 0};
        float q[4], out[4], poison[4];
        t_fill_normal(q, 4, 1.0);
        t_poison_f32(out, 4);
        memcpy(poison, out, sizeof(out));
        moak_status st = moak_attention(ctx, &ad, kv, ids, q_lens, 2, q, out);
        t_check(st == MOAK_OK && memcmp(out, poison, sizeof(out)) == 0,
                "%-14s attention  f16      all q_len 0 (one empty sequence): status %s, out untouched",
                bk[b].name, moak_status_str(st));
        moak_kv_cache_destroy(kv);
    }
}

int main(void)
{
    t_init("test_attention");
    t_backend bk[T_MAX_BACKENDS];
    int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 0);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
        for (int f = 0; f < MOAK_FORMAT_COUNT; f++)
            if (cases[c].formats & KV(f))
                run_case(bk, n_bk, &cases[c], (moak_format)f);
    run_no_queries(bk, n_bk);
    t_close_backends(bk, n_bk);
    return t_finish();
}
