/*
 * test_onednn_reuse — the oneDNN backend's primitive cache across batch
 * sizes:
 *   - one weight runs m = 1, 3, 64, then 1, 3, 64 again, then 600 (longer
 *     than a chunk): every result is right against the double oracle, the
 *     second round creates no primitive (read from the backend's debug log)
 *     and repeats the first bit for bit;
 *   - f32 runs every m on one primitive (runtime rows);
 *   - I8_ROW's integer sums are exact, so a row's result does not depend on
 *     the batch it came in (m = 1, 3, 64, 600 give the same first row);
 *   - a second context with the same thread count repeats the results bit
 *     for bit; one thread stays within the bound;
 *   - the MoE FFN (I8_ROW) on 1, 3 and 64 tokens with the same weights, and
 *     3 again, bitwise equal.
 * Shapes: Qwen3-30B-A3B's hidden 2048 as k, its expert rows (768) scaled to
 * 96; the MoE scaled to hidden 256, inter 96, 16 experts, top 4.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moak.h"
#include "test_onednn_common.h"
#include "testutil.h"

#define K_COLS 2048
#define N_ROWS 96
#define M_MAX 600

static const char *kind_of(moak_format f)
{
    return f == MOAK_FORMAT_F32 ? "f32" : f == MOAK_FORMAT_BF16 ? "bf16" : "s8";
}

static double matmul_bound(moak_format f)
{
    return f == MOAK_FORMAT_F32 ? MOAK_BOUND_MATMUL_F32
           : f == MOAK_FORMAT_BF16 ? MOAK_BOUND_MATMUL_BF16 : MOAK_BOUND_MATMUL_INT;
}

/* Runs w on the first m rows of x; reports against ref; leaves y. */
static int run_matmul(moak_context *ctx, moak_weight *mw, const od_weight *w, const float *x, int64_t m,
                      float *y, double *ref, const char *label)
{
    od_matmul_oracle(w, 0, x, m, ref);
    t_poison_f32(y, (size_t)(m * N_ROWS));
    moak_status st = moak_matmul(ctx, mw, x, m, y);
    char shape[80];
    snprintf(shape, sizeof(shape), "%s m%lld n%d k%d bias", label, (long long)m, N_ROWS, K_COLS);
    if (st != MOAK_OK) {
        t_fail("onednn matmul %s %s: %s (%s)", t_format_name(w->format), shape, t_status_name(st),
               moak_last_error(ctx));
        return 0;
    }
    t_report("onednn", moak_last_backend(ctx), "matmul", t_format_name(w->format), shape,
             t_max_row_error(y, ref, m, N_ROWS), matmul_bound(w->format));
    return 1;
}

static void check_matmul_reuse(moak_format f, const float *x)
{
    od_log *log = t_calloc(1, sizeof(od_log));
    moak_context *ctx = od_context("onednn!", 0, log, 2);
    od_weight w;
    od_weight_make(&w, f, 1, N_ROWS, K_COLS, 1);
    moak_weight *mw;
    t_ok(od_weight_create(ctx, &w, &mw), ctx, "weight");
    char created[64];
    snprintf(created, sizeof(created), "new %s matmul primitive", kind_of(f));

    const int64_t ms[3] = {1, 3, 64};
    float *first[3], *y = t_alloc_f32((size_t)(M_MAX * N_ROWS));
    double *ref = t_alloc_f64((size_t)(M_MAX * N_ROWS));
    for (int i = 0; i < 3; i++) {
        first[i] = t_alloc_f32((size_t)(ms[i] * N_ROWS));
        run_matmul(ctx, mw, &w, x, ms[i], y, ref, "round1");
        memcpy(first[i], y, sizeof(float) * (size_t)(ms[i] * N_ROWS));
    }
    int after_first = od_log_count(log, created);
    for (int i = 0; i < 3; i++) {
        if (!run_matmul(ctx, mw, &w, x, ms[i], y, ref, "round2"))
            continue;
        t_check(memcmp(first[i], y, sizeof(float) * (size_t)(ms[i] * N_ROWS)) == 0,
                "%s m=%lld repeats bit for bit", t_format_name(f), (long long)ms[i]);
    }
    t_check(od_log_count(log, created) == after_first,
            "%s: the second round of m = 1, 3, 64 creates no primitive (%d before, %d after)",
            t_format_name(f), after_first, od_log_count(log, created));
    if (f == MOAK_FORMAT_F32)
        t_check(after_first == 1, "f32 serves m = 1, 3, 64 with one primitive (%d created)", after_first);
    else
        t_check(after_first == 3, "%s creates one primitive per rows class of m = 1, 3, 64 (%d)",
                t_format_name(f), after_first);

    run_matmul(ctx, mw, &w, x, M_MAX, y, ref, "chunked");
    if (f == MOAK_FORMAT_I8_ROW) {
        int same = 1;
        for (int i = 0; i < 3; i++)
            same &= memcmp(first[i], y, sizeof(float) * N_ROWS) == 0;
        t_check(same, "i8_row: row 0 is bitwise the same in batches of 1, 3, 64 and %d", M_MAX);
    }
    if (f == MOAK_FORMAT_F32)
        t_check(od_log_count(log, created) == 1, "f32 ran m = %d on the same primitive", M_MAX);

    /* Another context, same thread count: the same bits. */
    moak_context *again = od_context("onednn!", 0, NULL, 2);
    moak_weight *mw2;
    t_ok(od_weight_create(again, &w, &mw2), again, "weight (second context)");
    run_matmul(again, mw2, &w, x, 64, y, ref, "context2");
    t_check(memcmp(first[2], y, sizeof(float) * 64 * N_ROWS) == 0,
            "%s m=64: a second 2-thread context gives the same bits", t_format_name(f));
    moak_weight_destroy(mw2);
    moak_context_destroy(again);

    moak_context *one = od_context("onednn!", 0, NULL, 1);
    t_ok(od_weight_create(one, &w, &mw2), one, "weight (one thread)");
    run_matmul(one, mw2, &w, x, 64, y, ref, "1-thread");
    moak_weight_destroy(mw2);
    moak_context_destroy(one);

    for (int i = 0; i < 3; i++)
        free(first[i]);
    free(y);
    free(ref);
    moak_weight_destroy(mw);
    od_weight_free(&w);
    moak_context_destroy(ctx);
    free(log);
}

static void check_moe_reuse(void)
{
    const int64_t hidden = 256, inter = 96, experts = 16;
    const int32_t top_k = 4;
    const int64_t counts[4] = {1, 3, 64, 3};
    moak_context *ctx = od_context("onednn!", 0, NULL, 2);
    od_weight g, u, d;
    od_weight_make(&g, MOAK_FORMAT_I8_ROW, experts, inter, hidden, 0);
    od_weight_make(&u, MOAK_FORMAT_I8_ROW, experts, inter, hidden, 0);
    od_weight_make(&d, MOAK_FORMAT_I8_ROW, experts, hidden, inter, 1);
    moak_weight *wg, *wu, *wd;
    t_ok(od_weight_create(ctx, &g, &wg), ctx, "gate weight");
    t_ok(od_weight_create(ctx, &u, &wu), ctx, "up weight");
    t_ok(od_weight_create(ctx, &d, &wd), ctx, "down weight");
    float *x = t_alloc_f32((size_t)(64 * hidden)), *y = t_alloc_f32((size_t)(64 * hidden));
    float *y3 = t_alloc_f32((size_t)(3 * hidden));
    double *ref = t_alloc_f64((size_t)(64 * hidden));
    int32_t *ids = t_malloc(sizeof(int32_t) * (size_t)(64 * top_k));
    float *wts = t_alloc_f32((size_t)(64 * top_k));
    t_fill_normal(x, (size_t)(64 * hidden), 1.0);
    od_random_routing(64, top_k, (int32_t)experts, ids, wts);
    moak_moe_desc desc = MOAK_MOE_DESC_INIT;
    for (int i = 0; i < 4; i++) {
        int64_t t = counts[i];
        od_moe_oracle(&g, &u, &d, x, t, top_k, ids, wts, ref);
        t_poison_f32(y, (size_t)(t * hidden));
        moak_status st = moak_moe_ffn(ctx, &desc, wg, wu, wd, x, t, top_k, ids, wts, y);
        char shape[64];
        snprintf(shape, sizeof(shape), "h256 i96 E16 k4 t%lld%s", (long long)t, i == 3 ? " again" : "");
        if (st != MOAK_OK) {
            t_fail("onednn moe_ffn i8_row %s: %s (%s)", shape, t_status_name(st), moak_last_error(ctx));
            continue;
        }
        t_report("onednn", moak_last_backend(ctx), "moe_ffn", "i8_row", shape,
                 t_max_row_error(y, ref, t, hidden), MOAK_BOUND_MOE_INT);
        if (i == 1)
            memcpy(y3, y, sizeof(float) * (size_t)(3 * hidden));
        if (i == 3)
            t_check(memcmp(y3, y, sizeof(float) * (size_t)(3 * hidden)) == 0,
                    "moe_ffn i8_row t3 repeats bit for bit after t64");
    }
    moak_weight_destroy(wg);
    moak_weight_destroy(wu);
    moak_weight_destroy(wd);
    od_weight_free(&g);
    od_weight_free(&u);
    od_weight_free(&d);
    free(x);
    free(y);
    free(y3);
    free(ref);
    free(ids);
    free(wts);
    moak_context_destroy(ctx);
}

int main(void)
{
    t_init("test_onednn_reuse");
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
    float *x = t_alloc_f32((size_t)(M_MAX * K_COLS));
    t_fill_normal(x, (size_t)(M_MAX * K_COLS), 1.0);
    check_matmul_reuse(MOAK_FORMAT_F32, x);
    if (od_bf16_native())
        check_matmul_reuse(MOAK_FORMAT_BF16, x);
    else
        t_note("bf16 not run: oneDNN 2.6 has no bf16 matmul below AVX-512 (test_onednn_supports checks the refusal)");
    if (od_s8_native()) {
        check_matmul_reuse(MOAK_FORMAT_I8_ROW, x);
        check_moe_reuse();
    } else {
        t_note("i8_row not run: oneDNN's int8 matmul needs VNNI (test_onednn_supports checks the refusal)");
    }
    free(x);
    return t_finish();
}
