/*
 * test_onednn_supports — what the oneDNN backend accepts and declines:
 *   - F32, BF16 and I8_ROW weights are its own (BF16 from AVX-512 up,
 *     I8_ROW with VNNI);
 *   - F16, Q8_0, Q4_0, I4_G32 and I4_G128 are declined without
 *     MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION, the reason naming the format and
 *     the flag;
 *   - with the flag they are expanded to f32 at creation: the log states the
 *     memory growth, and matmul and the MoE FFN are right to the F32 bound
 *     (the expansion is exact, so the integer formats' looser bound would
 *     hide a lossy one);
 *   - attention, rmsnorm and routing are declined (the KV cache and those
 *     ops fall through to ref when ref is in the list).
 * Shapes: Qwen3-30B-A3B's hidden size 2048 as k, its expert FFN (768)
 * scaled down to 64 rows so that the double oracle stays fast.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moak.h"
#include "test_onednn_common.h"
#include "testutil.h"

static const moak_format native_formats[] = {MOAK_FORMAT_F32, MOAK_FORMAT_BF16, MOAK_FORMAT_I8_ROW};

typedef struct expansion {
    moak_format format;
    const char *growth;          /* as the log prints it for k a multiple of 128 */
} expansion;

static const expansion expanded_formats[] = {
    {MOAK_FORMAT_F16, "2.00x"},  {MOAK_FORMAT_Q8_0, "3.76x"},    {MOAK_FORMAT_Q4_0, "7.11x"},
    {MOAK_FORMAT_I4_G32, "6.40x"}, {MOAK_FORMAT_I4_G128, "7.53x"},
};

#define K_COLS 2048
#define N_ROWS 64

static void check_declined_without_flag(void)
{
    moak_context *ctx = od_context("onednn!", 0, NULL, 0);
    for (size_t i = 0; i < sizeof(native_formats) / sizeof(native_formats[0]); i++) {
        od_weight w;
        od_weight_make(&w, native_formats[i], 1, N_ROWS, K_COLS, 1);
        moak_weight *mw;
        moak_status st = od_weight_create(ctx, &w, &mw);
        if (w.format == MOAK_FORMAT_BF16 && !od_bf16_native())
            t_check(st == MOAK_ERR_UNSUPPORTED && strstr(moak_last_error(ctx), "no bf16 matmul") != NULL,
                    "below AVX-512 onednn declines bf16 weights (%s: \"%s\")", t_status_name(st),
                    moak_last_error(ctx));
        else if (w.format == MOAK_FORMAT_I8_ROW && !od_s8_native())
            t_check(st == MOAK_ERR_UNSUPPORTED && strstr(moak_last_error(ctx), "without VNNI") != NULL,
                    "without VNNI onednn declines i8_row weights (%s: \"%s\")", t_status_name(st),
                    moak_last_error(ctx));
        else
            t_check(st == MOAK_OK && strcmp(moak_weight_backend(mw), "onednn") == 0,
                    "onednn takes %s weights without the expansion flag (%s %s)", t_format_name(w.format),
                    t_status_name(st), st == MOAK_OK ? moak_weight_backend(mw) : moak_last_error(ctx));
        moak_weight_destroy(mw);
        od_weight_free(&w);
    }
    for (size_t i = 0; i < sizeof(expanded_formats) / sizeof(expanded_formats[0]); i++) {
        od_weight w;
        od_weight_make(&w, expanded_formats[i].format, 1, N_ROWS, K_COLS, 0);
        moak_weight *mw;
        moak_status st = od_weight_create(ctx, &w, &mw);
        const char *msg = moak_last_error(ctx);
        t_check(st == MOAK_ERR_UNSUPPORTED && mw == NULL, "onednn! declines %s without the flag (%s)",
                t_format_name(w.format), t_status_name(st));
        t_check(strstr(msg, t_format_name(w.format)) != NULL &&
                    strstr(msg, "MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION") != NULL &&
                    strstr(msg, expanded_formats[i].growth) != NULL,
                "the refusal of %s names the format, the flag and the growth %s: \"%s\"",
                t_format_name(w.format), expanded_formats[i].growth, msg);
        moak_weight_destroy(mw);
        od_weight_free(&w);
    }
    moak_context_destroy(ctx);

    /* With ref behind it, the same weight lands on ref. */
    ctx = od_context("onednn", 0, NULL, 0);
    od_weight w;
    od_weight_make(&w, MOAK_FORMAT_Q4_0, 1, N_ROWS, K_COLS, 0);
    moak_weight *mw;
    moak_status st = od_weight_create(ctx, &w, &mw);
    t_check(st == MOAK_OK && strcmp(moak_weight_backend(mw), "ref") == 0,
            "without the flag Q4_0 falls through to ref (%s)", st == MOAK_OK ? moak_weight_backend(mw) : "");
    moak_weight_destroy(mw);
    od_weight_free(&w);
    moak_context_destroy(ctx);
}

static void check_expanded_with_flag(void)
{
    od_log *log = t_calloc(1, sizeof(od_log));
    moak_context *ctx = od_context("onednn!", MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION, log, 0);
    const int64_t ms[] = {1, 5};
    float *x = t_alloc_f32((size_t)(5 * K_COLS));
    float *y = t_alloc_f32((size_t)(5 * N_ROWS));
    double *ref = t_alloc_f64((size_t)(5 * N_ROWS));
    for (size_t i = 0; i < sizeof(expanded_formats) / sizeof(expanded_formats[0]); i++) {
        const expansion *ex = &expanded_formats[i];
        od_weight w;
        od_weight_make(&w, ex->format, 1, N_ROWS, K_COLS, 1);
        od_log_clear(log);
        moak_weight *mw;
        moak_status st = od_weight_create(ctx, &w, &mw);
        if (st != MOAK_OK) {
            t_fail("onednn expands %s with the flag: %s (%s)", t_format_name(ex->format), t_status_name(st),
                   moak_last_error(ctx));
            od_weight_free(&w);
            continue;
        }
        t_check(strcmp(moak_weight_backend(mw), "onednn") == 0, "%s weight belongs to onednn (%s)",
                t_format_name(ex->format), moak_weight_backend(mw));
        char needle[64];
        snprintf(needle, sizeof(needle), "grows %s", ex->growth);
        t_check(od_log_count(log, "expanded to f32") == 1 && od_log_count(log, needle) == 1,
                "creating the %s weight logs its growth (\"%s\")", t_format_name(ex->format), needle);
        for (size_t mi = 0; mi < sizeof(ms) / sizeof(ms[0]); mi++) {
            int64_t m = ms[mi];
            t_fill_normal(x, (size_t)(m * K_COLS), 1.0);
            od_matmul_oracle(&w, 0, x, m, ref);
            t_poison_f32(y, (size_t)(m * N_ROWS));
            st = moak_matmul(ctx, mw, x, m, y);
            char shape[64];
            snprintf(shape, sizeof(shape), "expanded m%lld n%d k%d bias", (long long)m, N_ROWS, K_COLS);
            if (st != MOAK_OK) {
                t_fail("onednn matmul %s %s: %s (%s)", t_format_name(ex->format), shape, t_status_name(st),
                       moak_last_error(ctx));
                continue;
            }
            t_report("onednn", moak_last_backend(ctx), "matmul", t_format_name(ex->format), shape,
                     t_max_row_error(y, ref, m, N_ROWS), MOAK_BOUND_MATMUL_F32);
        }
        moak_weight_destroy(mw);
        od_weight_free(&w);
    }
    free(x);
    free(y);
    free(ref);
    moak_context_destroy(ctx);
    free(log);
}

/* Qwen3-30B-A3B's MoE (hidden 2048, 128 experts, top 8) scaled to hidden
 * 256, inter 96, 8 experts, top 2, 6 tokens: Q4_0 expanded, SiLU-GLU. */
static void check_expanded_moe(void)
{
    const int64_t hidden = 256, inter = 96, experts = 8, tokens = 6;
    const int32_t top_k = 2;
    moak_context *ctx = od_context("onednn!", MOAK_CONTEXT_ALLOW_WEIGHT_EXPANSION, NULL, 0);
    od_weight g, u, d;
    od_weight_make(&g, MOAK_FORMAT_Q4_0, experts, inter, hidden, 0);
    od_weight_make(&u, MOAK_FORMAT_Q4_0, experts, inter, hidden, 0);
    od_weight_make(&d, MOAK_FORMAT_Q4_0, experts, hidden, inter, 1);
    moak_weight *wg, *wu, *wd;
    t_ok(od_weight_create(ctx, &g, &wg), ctx, "gate weight");
    t_ok(od_weight_create(ctx, &u, &wu), ctx, "up weight");
    t_ok(od_weight_create(ctx, &d, &wd), ctx, "down weight");
    float *x = t_alloc_f32((size_t)(tokens * hidden)), *y = t_alloc_f32((size_t)(tokens * hidden));
    double *ref = t_alloc_f64((size_t)(tokens * hidden));
    int32_t *ids = t_malloc(sizeof(int32_t) * (size_t)(tokens * top_k));
    float *wts = t_alloc_f32((size_t)(tokens * top_k));
    t_fill_normal(x, (size_t)(tokens * hidden), 1.0);
    od_random_routing(tokens, top_k, (int32_t)experts, ids, wts);
    od_moe_oracle(&g, &u, &d, x, tokens, top_k, ids, wts, ref);
    t_poison_f32(y, (size_t)(tokens * hidden));
    moak_moe_desc desc = MOAK_MOE_DESC_INIT;
    moak_status st = moak_moe_ffn(ctx, &desc, wg, wu, wd, x, tokens, top_k, ids, wts, y);
    if (st != MOAK_OK)
        t_fail("onednn moe_ffn q4_0 expanded: %s (%s)", t_status_name(st), moak_last_error(ctx));
    else
        t_report("onednn", moak_last_backend(ctx), "moe_ffn", "q4_0", "expanded h256 i96 E8 k2 t6",
                 t_max_row_error(y, ref, tokens, hidden), MOAK_BOUND_MOE_F32);
    moak_weight_destroy(wg);
    moak_weight_destroy(wu);
    moak_weight_destroy(wd);
    od_weight_free(&g);
    od_weight_free(&u);
    od_weight_free(&d);
    free(x);
    free(y);
    free(ref);
    free(ids);
    free(wts);
    moak_context_destroy(ctx);
}

static void check_declined_ops(void)
{
    /* The KV cache asks for attention at creation: onednn alone cannot hold one. */
    moak_kv_cache_desc kd = MOAK_KV_CACHE_DESC_INIT;
    kd.format = MOAK_FORMAT_F32;
    kd.n_kv_heads = 4;
    kd.head_dim_k = 128;
    kd.head_dim_v = 128;
    kd.max_seqs = 1;
    kd.max_tokens = 64;
    moak_context *ctx = od_context("onednn!", 0, NULL, 0);
    moak_kv_cache *kv = NULL;
    moak_status st = moak_kv_cache_create(ctx, &kd, &kv);
    t_check(st == MOAK_ERR_UNSUPPORTED && strstr(moak_last_error(ctx), "no fused attention") != NULL,
            "onednn! declines attention (%s: \"%s\")", t_status_name(st), moak_last_error(ctx));
    moak_kv_cache_destroy(kv);

    float x[2 * 64], y[2 * 64];
    t_fill_normal(x, 2 * 64, 1.0);
    t_poison_f32(y, 2 * 64);
    st = moak_rmsnorm(ctx, x, NULL, 2, 64, 1e-6f, y);
    t_check(st == MOAK_ERR_UNSUPPORTED, "onednn! declines rmsnorm (%s)", t_status_name(st));
    float logits[8];
    int32_t ids[2];
    float wts[2];
    t_fill_normal(logits, 8, 1.0);
    moak_router_desc rd = MOAK_ROUTER_DESC_INIT;
    rd.method = MOAK_ROUTE_SOFTMAX_TOPK;
    rd.n_experts = 8;
    rd.top_k = 2;
    st = moak_moe_route(ctx, &rd, logits, 1, ids, wts);
    t_check(st == MOAK_ERR_UNSUPPORTED, "onednn! declines routing (%s)", t_status_name(st));
    moak_context_destroy(ctx);

    /* With ref behind it, the cache and rmsnorm fall through to ref. */
    ctx = od_context("onednn", 0, NULL, 0);
    st = moak_kv_cache_create(ctx, &kd, &kv);
    t_check(st == MOAK_OK && strcmp(moak_kv_cache_backend(kv), "ref") == 0,
            "with ref listed the KV cache goes to ref (%s %s)", t_status_name(st),
            st == MOAK_OK ? moak_kv_cache_backend(kv) : moak_last_error(ctx));
    moak_kv_cache_destroy(kv);
    st = moak_rmsnorm(ctx, x, NULL, 2, 64, 1e-6f, y);
    double ref[2 * 64];
    for (int r = 0; r < 2; r++) {
        double ss = 0.0;
        for (int i = 0; i < 64; i++)
            ss += (double)x[r * 64 + i] * x[r * 64 + i];
        double inv = 1.0 / sqrt(ss / 64.0 + 1e-6);
        for (int i = 0; i < 64; i++)
            ref[r * 64 + i] = x[r * 64 + i] * inv;
    }
    if (st != MOAK_OK)
        t_fail("rmsnorm with onednn,ref: %s", t_status_name(st));
    else
        t_report("onednn", moak_last_backend(ctx), "rmsnorm", "f32", "fallthrough n2 d64",
                 t_max_row_error(y, ref, 2, 64), MOAK_BOUND_RMSNORM);
    t_check(strcmp(moak_last_backend(ctx), "ref") == 0, "rmsnorm ran on ref (%s)", moak_last_backend(ctx));
    moak_context_destroy(ctx);
}

int main(void)
{
    t_init("test_onednn_supports");
    moak_backend_info info = MOAK_BACKEND_INFO_INIT;
    int found = 0;
    for (int32_t i = 0; i < moak_backend_count(); i++)
        if (moak_backend_query(i, &info) == MOAK_OK && strcmp(info.name, "onednn") == 0) {
            found = 1;
            break;
        }
    if (!found || !info.available) {
        t_note("onednn is not available here: %s", found ? info.reason : "not in the registry");
        return T_EXIT_SKIP;
    }
    check_declined_without_flag();
    check_expanded_with_flag();
    check_expanded_moe();
    check_declined_ops();
    return t_finish();
}
