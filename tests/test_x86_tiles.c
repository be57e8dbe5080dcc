/* test_x86_tiles — the edges of the x86 matmul/MoE tiling that the general
 * suite does not reach on purpose: every token count around the register
 * tile heights (avx512: 1-3 tokens run two 32-row panels per task, 4-11
 * one panel in tiles of 6, 12+ the prefill panel kernel; avx2: 1 token two
 * 16-row panels, 2-3 tiles of 2, 4+ the panel kernel), row counts that leave a partial last panel (70 = 2*32 + 6 =
 * 4*16 + 6, 33, 5), K that ends inside a block and inside a 128-group (200,
 * 31, 4128), a prefill of 300 tokens (several token blocks of the panel
 * kernel), and the fused MoE: one decode token over 8 of 128 experts, one
 * expert chosen by every token, a decode split in inter chunks (split-K
 * down projection), batches with many pairs per expert (the batched
 * schedule, an expert's pairs over two panel-kernel calls, busy and quiet
 * experts in one call), and a bitwise repeat.
 *
 * Runs only the avx512 and avx2 backends (the general tests cover the
 * others) against a double-precision oracle computed here from the weight
 * bytes; skips (77) when neither is available at this ISA level.  Outputs
 * are poisoned before each call.  Sizes are scaled down from Qwen3-30B-A3B
 * (hidden 2048, expert inter 768, 128 experts, top-8) to keep it fast. */
#define _POSIX_C_SOURCE 200112L /* setenv */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define REF_BOUND 1e-5

static bool is_x86(const char *name)
{
    return strcmp(name, "avx512") == 0 || strcmp(name, "avx2") == 0;
}

static moak_weight *make_weight(moak_context *ctx, moak_format f, int64_t experts, int64_t rows,
                                int64_t cols, const uint8_t *bytes, const float *bias)
{
    moak_weight_desc d = MOAK_WEIGHT_DESC_INIT;
    d.format = f;
    d.n_experts = experts;
    d.rows = rows;
    d.cols = cols;
    d.data = bytes;
    d.data_size = t_row_bytes(f, cols) * (size_t)(experts * rows);
    d.bias = bias;
    moak_weight *w = NULL;
    moak_status st = moak_weight_create(ctx, &d, &w);
    if (st != MOAK_OK) {
        t_fail("moak_weight_create %s %lldx%lld: %s (%s)", t_format_name(f), (long long)rows,
               (long long)cols, moak_status_str(st), moak_last_error(ctx));
        return NULL;
    }
    return w;
}

/* ---- matmul ----------------------------------------------------------------- */

static void matmul_case(t_backend *bk, int n_bk, moak_format f, int64_t n, int64_t k,
                        const int64_t *ms, int n_ms)
{
    size_t rb = t_row_bytes(f, k), wsize;
    uint8_t *bytes = t_random_weights(f, n, k, 1.0 / sqrt((double)k), &wsize, NULL);
    double *wd = t_alloc_f64((size_t)(n * k));
    for (int64_t j = 0; j < n; j++)
        t_dequant_row(f, bytes + rb * (size_t)j, k, wd + j * k);
    float *bias = t_alloc_f32((size_t)n);
    t_fill_normal(bias, (size_t)n, 0.5);
    int64_t m_max = 0;
    for (int i = 0; i < n_ms; i++)
        m_max = ms[i] > m_max ? ms[i] : m_max;
    float *x = t_alloc_f32((size_t)(m_max * k));
    t_fill_normal(x, (size_t)(m_max * k), 1.0);
    double *ref = t_alloc_f64((size_t)(m_max * n));
    for (int64_t t = 0; t < m_max; t++)
        for (int64_t j = 0; j < n; j++) {
            double acc = bias[j];
            for (int64_t i = 0; i < k; i++)
                acc += (double)x[t * k + i] * wd[j * k + i];
            ref[t * n + j] = acc;
        }
    float *y = t_alloc_f32((size_t)(m_max * n));
    for (int b = 0; b < n_bk; b++) {
        moak_weight *w = make_weight(bk[b].ctx, f, 1, n, k, bytes, bias);
        if (!w)
            continue;
        for (int i = 0; i < n_ms; i++) {
            char shape[64];
            snprintf(shape, sizeof shape, "m%lld n%lld k%lld", (long long)ms[i], (long long)n,
                     (long long)k);
            t_poison_f32(y, (size_t)(m_max * n));
            moak_status st = moak_matmul(bk[b].ctx, w, x, ms[i], y);
            if (st != MOAK_OK) {
                t_fail("%s matmul %s %s: %s (%s)", bk[b].name, t_format_name(f), shape,
                       moak_status_str(st), moak_last_error(bk[b].ctx));
                continue;
            }
            const char *ran = moak_last_backend(bk[b].ctx);
            t_report(bk[b].name, ran, "matmul", t_format_name(f), shape,
                     t_max_row_error(y, ref, ms[i], n), t_bound_for(ran, REF_BOUND, t_matmul_bound(f)));
            /* Rows past m must stay untouched (still NaN). */
            if (ms[i] < m_max && !isnan(y[ms[i] * n]))
                t_fail("%s matmul %s %s: wrote past the last row", bk[b].name, t_format_name(f), shape);
        }
        moak_weight_destroy(w);
    }
    free(bytes);
    free(wd);
    free(bias);
    free(x);
    free(ref);
    free(y);
}

/* ---- MoE -------------------------------------------------------------------- */

static double act_ref(moak_activation a, double g, double u)
{
    switch (a) {
    case MOAK_ACT_GELU_GLU:
        return 0.5 * g * (1.0 + erf(g / sqrt(2.0))) * u;
    case MOAK_ACT_SWIGLU_OAI: {
        const double alpha = 1.702, limit = 7.0;
        g = g < limit ? g : limit;
        u = u < -limit ? -limit : u > limit ? limit : u;
        return (u + 1.0) * g / (1.0 + exp(-alpha * g));
    }
    default:
        return g / (1.0 + exp(-g)) * u;
    }
}

typedef struct moe_case {
    const char *label;
    int64_t experts, hidden, inter, tokens;
    int32_t top_k;
    int all_same_expert;   /* every token's first choice is expert 3 */
    moak_activation act;
    int bias;
} moe_case;

static void moe_case_run(t_backend *bk, int n_bk, moak_format f, const moe_case *c)
{
    const int64_t E = c->experts, H = c->hidden, I = c->inter, T = c->tokens;
    const int32_t K = c->top_k;
    size_t wsize;
    uint8_t *gb = t_random_weights(f, E * I, H, 1.0 / sqrt((double)H), &wsize, NULL);
    uint8_t *ub = t_random_weights(f, E * I, H, 1.0 / sqrt((double)H), &wsize, NULL);
    uint8_t *db = t_random_weights(f, E * H, I, 1.0 / sqrt((double)I), &wsize, NULL);
    double *gd = t_alloc_f64((size_t)(E * I * H)), *ud = t_alloc_f64((size_t)(E * I * H));
    double *dd = t_alloc_f64((size_t)(E * H * I));
    for (int64_t r = 0; r < E * I; r++) {
        t_dequant_row(f, gb + t_row_bytes(f, H) * (size_t)r, H, gd + r * H);
        t_dequant_row(f, ub + t_row_bytes(f, H) * (size_t)r, H, ud + r * H);
    }
    for (int64_t r = 0; r < E * H; r++)
        t_dequant_row(f, db + t_row_bytes(f, I) * (size_t)r, I, dd + r * I);
    float *bg = NULL, *bu = NULL, *bd = NULL;
    if (c->bias) {
        bg = t_alloc_f32((size_t)(E * I));
        bu = t_alloc_f32((size_t)(E * I));
        bd = t_alloc_f32((size_t)(E * H));
        t_fill_normal(bg, (size_t)(E * I), 0.3);
        t_fill_normal(bu, (size_t)(E * I), 0.3);
        t_fill_normal(bd, (size_t)(E * H), 0.3);
    }
    float *x = t_alloc_f32((size_t)(T * H)), *wts = t_alloc_f32((size_t)(T * K));
    int32_t *ids = t_malloc(sizeof(int32_t) * (size_t)(T * K));
    int32_t *perm = t_malloc(sizeof(int32_t) * (size_t)E);
    t_fill_normal(x, (size_t)(T * H), 1.0);
    for (int64_t t = 0; t < T; t++) {
        for (int32_t e = 0; e < (int32_t)E; e++)
            perm[e] = e;
        t_shuffle_i32(perm, (int32_t)E);
        if (c->all_same_expert)
            for (int32_t j = 0; j < (int32_t)E; j++)
                if (perm[j] == 3) {
                    perm[j] = perm[0];
                    perm[0] = 3;
                }
        for (int32_t j = 0; j < K; j++) {
            ids[t * K + j] = perm[j];
            wts[t * K + j] = (float)t_uniform(0.05, 1.0);
        }
    }
    double *ref = t_alloc_f64((size_t)(T * H)), *h = t_alloc_f64((size_t)I);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t o = 0; o < H; o++)
            ref[t * H + o] = 0.0;
        for (int32_t j = 0; j < K; j++) {
            int64_t e = ids[t * K + j];
            for (int64_t r = 0; r < I; r++) {
                double g = bg ? bg[e * I + r] : 0.0, u = bu ? bu[e * I + r] : 0.0;
                for (int64_t i = 0; i < H; i++) {
                    g += gd[(e * I + r) * H + i] * x[t * H + i];
                    u += ud[(e * I + r) * H + i] * x[t * H + i];
                }
                h[r] = act_ref(c->act, g, u);
            }
            for (int64_t o = 0; o < H; o++) {
                double acc = bd ? bd[e * H + o] : 0.0;
                for (int64_t r = 0; r < I; r++)
                    acc += dd[(e * H + o) * I + r] * h[r];
                ref[t * H + o] += wts[t * K + j] * acc;
            }
        }
    }
    float *y = t_alloc_f32((size_t)(T * H)), *y2 = t_alloc_f32((size_t)(T * H));
    moak_moe_desc md = MOAK_MOE_DESC_INIT;
    md.activation = c->act;
    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        moak_weight *wg = make_weight(ctx, f, E, I, H, gb, bg);
        moak_weight *wu = make_weight(ctx, f, E, I, H, ub, bu);
        moak_weight *wdn = make_weight(ctx, f, E, H, I, db, bd);
        if (wg && wu && wdn) {
            char shape[96];
            snprintf(shape, sizeof shape, "%s h%lld i%lld E%lld k%d t%lld", c->label, (long long)H,
                     (long long)I, (long long)E, (int)K, (long long)T);
            t_poison_f32(y, (size_t)(T * H));
            moak_status st = moak_moe_ffn(ctx, &md, wg, wu, wdn, x, T, K, ids, wts, y);
            if (st != MOAK_OK) {
                t_fail("%s moe %s %s: %s (%s)", bk[b].name, t_format_name(f), shape,
                       moak_status_str(st), moak_last_error(ctx));
            } else {
                const char *ran = moak_last_backend(ctx);
                t_report(bk[b].name, ran, "moe_ffn", t_format_name(f), shape,
                         t_max_row_error(y, ref, T, H), t_bound_for(ran, REF_BOUND, t_moe_bound(f)));
                /* Same context, same threads: the same bits. */
                t_poison_f32(y2, (size_t)(T * H));
                st = moak_moe_ffn(ctx, &md, wg, wu, wdn, x, T, K, ids, wts, y2);
                if (st != MOAK_OK || memcmp(y, y2, sizeof(float) * (size_t)(T * H)) != 0)
                    t_fail("%s moe %s %s: a second identical call gave different bits", bk[b].name,
                           t_format_name(f), shape);
            }
        }
        moak_weight_destroy(wg);
        moak_weight_destroy(wu);
        moak_weight_destroy(wdn);
    }
    free(gb); free(ub); free(db); free(gd); free(ud); free(dd);
    free(bg); free(bu); free(bd); free(x); free(wts); free(ids); free(perm);
    free(ref); free(h); free(y); free(y2);
}

int main(void)
{
    t_init("test_x86_tiles");
    /* Only the x86 backends are of interest (and opening the others costs time). */
    setenv("MOAK_TEST_BACKENDS", "avx512,avx2", 0);
    t_backend all[T_MAX_BACKENDS], bk[T_MAX_BACKENDS];
    int n_all = t_open_backends(all, T_MAX_BACKENDS, 2), n_bk = 0;
    for (int i = 0; i < n_all; i++) {
        if (is_x86(all[i].name))
            bk[n_bk++] = all[i];
        else
            moak_context_destroy(all[i].ctx);
    }
    if (n_bk == 0) {
        t_note("no x86 backend is available at this ISA level: skipped");
        return 77;
    }
    static const int64_t ms_all[] = {1, 2, 3, 4, 5, 6, 7, 8, 13};
    static const int64_t ms_long[] = {1, 3, 4, 7};
    static const int64_t ms_tiny[] = {1, 7};
    /* Prefill in several token blocks of the panel kernel (about 128 each). */
    static const int64_t ms_blocks[] = {300};
    for (int f = 0; f < T_CLASSIC_FORMATS; f++) {
        matmul_case(bk, n_bk, (moak_format)f, 70, 200, ms_all, 9);
        matmul_case(bk, n_bk, (moak_format)f, 33, 4128, ms_long, 4);
        matmul_case(bk, n_bk, (moak_format)f, 5, 31, ms_tiny, 2);
        matmul_case(bk, n_bk, (moak_format)f, 70, 200, ms_blocks, 1);
    }
    static const moe_case moes[] = {
        /* Decode: one token, 8 of 128 experts (Qwen3-30B-A3B routing, scaled). */
        {"decode", 128, 160, 96, 1, 8, 0, MOAK_ACT_SILU_GLU, 0},
        /* Every token picks expert 3 first: one expert with 13 pairs (tile tails). */
        {"one-expert", 16, 200, 70, 13, 2, 1, MOAK_ACT_SWIGLU_OAI, 1},
        {"gelu", 8, 96, 40, 5, 2, 0, MOAK_ACT_GELU_GLU, 1},
        /* Decode over two experts with inter 320 (not a multiple of 128):
         * the streamed schedule splits each expert's inter in chunks (split-K
         * down projection, partial outputs added back), I4_G128's last group
         * padded. */
        {"split-k", 8, 96, 320, 1, 2, 0, MOAK_ACT_SILU_GLU, 1},
        /* Prefill-like: 20 pairs per expert, the batched schedule (gate/up
         * tasks, then down tasks over every expert). */
        {"batched", 4, 96, 72, 40, 2, 0, MOAK_ACT_SILU_GLU, 1},
        /* Both experts take all 140 tokens: more pairs than one panel-kernel
         * call takes (128), so an expert's pairs go in two calls. */
        {"many-pairs", 2, 64, 40, 140, 2, 0, MOAK_ACT_GELU_GLU, 1},
        /* Batched with one busy expert (40 pairs, panel kernel) and 15 with a
         * few pairs each (tile kernel). */
        {"mixed", 16, 96, 72, 40, 2, 1, MOAK_ACT_SILU_GLU, 1},
    };
    for (size_t c = 0; c < sizeof moes / sizeof moes[0]; c++)
        for (int f = 0; f < T_CLASSIC_FORMATS; f++)
            moe_case_run(bk, n_bk, (moak_format)f, &moes[c]);
    t_close_backends(bk, n_bk);
    return t_finish();
}
