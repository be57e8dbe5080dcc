/*
 * The verdicts of moak-conform must fail wrong results: outputs off by more
 * than the bound, NaN/Inf, a broken reference, routing ids that differ
 * without a tie.  And they must pass right ones (errors under the bound, ties
 * resolved either way).  Fresh random data each run; the seed is printed.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conform_verdict.h"

static int failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

static uint64_t rng_state;

static double uniform(double lo, double hi)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
}

static double row_rms(const float *row, int64_t n)
{
    double s = 0.0;
    for (int64_t j = 0; j < n; j++)
        s += (double)row[j] * row[j];
    return sqrt(s / (double)n);
}

enum { ROWS = 7, COLS = 301 };

static void fill(float *ref, float *out, double noise_of_bound, double bound)
{
    for (int64_t i = 0; i < ROWS * COLS; i++)
        ref[i] = (float)uniform(-3.0, 3.0);
    for (int64_t r = 0; r < ROWS; r++) {
        double rms = row_rms(ref + r * COLS, COLS);
        for (int64_t j = 0; j < COLS; j++)
            out[r * COLS + j] = (float)(ref[r * COLS + j] + uniform(-1.0, 1.0) * noise_of_bound * bound * rms);
    }
}

static void test_bounds(void)
{
    CHECK(conform_bound(CONFORM_MATMUL, MOAK_FORMAT_Q4_0) == MOAK_BOUND_MATMUL_INT, "matmul q4_0 bound");
    CHECK(conform_bound(CONFORM_MATMUL, MOAK_FORMAT_I4_G128) == MOAK_BOUND_MATMUL_INT, "matmul i4_g128 bound");
    CHECK(conform_bound(CONFORM_MATMUL, MOAK_FORMAT_F32) == MOAK_BOUND_MATMUL_F32, "matmul f32 bound");
    CHECK(conform_bound(CONFORM_MATMUL, MOAK_FORMAT_BF16) == MOAK_BOUND_MATMUL_BF16, "matmul bf16 bound");
    CHECK(conform_bound(CONFORM_MOE, MOAK_FORMAT_F16) == MOAK_BOUND_MOE_F16, "moe f16 bound");
    CHECK(conform_bound(CONFORM_MOE, MOAK_FORMAT_Q8_0) == MOAK_BOUND_MOE_INT, "moe q8_0 bound");
    CHECK(conform_bound(CONFORM_ATTENTION, MOAK_FORMAT_Q8_0) == MOAK_BOUND_ATTENTION_Q8_0, "attention q8_0 bound");
    CHECK(conform_bound(CONFORM_ATTENTION, MOAK_FORMAT_BF16) == MOAK_BOUND_ATTENTION_FLOAT, "attention bf16 bound");
    CHECK(conform_bound(CONFORM_RMSNORM, MOAK_FORMAT_F32) == MOAK_BOUND_RMSNORM, "rmsnorm bound");
    CHECK(conform_bound(CONFORM_ROPE, MOAK_FORMAT_F32) == MOAK_BOUND_ROPE, "rope bound");
    CHECK(conform_op_from_name("attention") == CONFORM_ATTENTION && conform_op_from_name("nope") == -1,
          "op names");
}

static void test_rows(void)
{
    static float ref[ROWS * COLS], out[ROWS * COLS];
    const double bound = MOAK_BOUND_MATMUL_INT;
    conform_error e;
    char why[200];

    /* Within a tenth of the bound: passes, and the measure is right. */
    fill(ref, out, 0.1, bound);
    conform_row_error(ref, out, ROWS, COLS, &e);
    CHECK(conform_passes(&e, bound), "noise at 0.1 x bound must pass (err %g)", e.max_err);
    CHECK(e.max_err > 0.0 && e.max_err <= 0.1 * bound * 1.0001, "max_err %g not in (0, 0.1 bound]", e.max_err);
    conform_explain(&e, bound, why, sizeof(why));
    CHECK(why[0] == '\0', "a pass explains nothing, got '%s'", why);

    /* One element pushed to twice the bound: fails, at that element. */
    int64_t r = (int64_t)uniform(0, ROWS), j = (int64_t)uniform(0, COLS);
    double rms = row_rms(ref + r * COLS, COLS);
    out[r * COLS + j] = (float)(ref[r * COLS + j] + 2.0 * bound * rms);
    conform_row_error(ref, out, ROWS, COLS, &e);
    CHECK(!conform_passes(&e, bound), "an element at 2 x bound must fail");
    CHECK(e.worst_row == r && e.worst_col == j, "worst at %lld,%lld, expected %lld,%lld", (long long)e.worst_row,
          (long long)e.worst_col, (long long)r, (long long)j);
    CHECK(fabs(e.max_err - 2.0 * bound) < 0.2 * bound, "max_err %g, expected about %g", e.max_err, 2.0 * bound);
    conform_explain(&e, bound, why, sizeof(why));
    CHECK(strstr(why, "bound") != NULL, "explanation '%s' names the bound", why);

    /* Just under the bound passes: the comparison is <=, not <. */
    fill(ref, out, 0.0, bound);
    out[r * COLS + j] = (float)(ref[r * COLS + j] + 0.9 * bound * row_rms(ref + r * COLS, COLS));
    conform_row_error(ref, out, ROWS, COLS, &e);
    CHECK(conform_passes(&e, bound), "0.9 x bound must pass (err %g)", e.max_err);

    /* NaN and Inf where the reference is finite fail, however small the rest. */
    fill(ref, out, 0.0, bound);
    out[3] = NAN;
    conform_row_error(ref, out, ROWS, COLS, &e);
    CHECK(!conform_passes(&e, bound) && e.nonfinite == 1 && e.bad_row == 0 && e.bad_col == 3, "NaN must fail");
    fill(ref, out, 0.0, bound);
    out[(ROWS - 1) * COLS] = INFINITY;
    conform_row_error(ref, out, ROWS, COLS, &e);
    CHECK(!conform_passes(&e, bound) && e.nonfinite == 1, "Inf must fail");

    /* A broken reference fails too (nothing to compare with). */
    fill(ref, out, 0.0, bound);
    ref[5] = NAN;
    conform_row_error(ref, out, ROWS, COLS, &e);
    CHECK(!conform_passes(&e, bound) && e.ref_nonfinite == 1, "a NaN reference must fail");

    /* An all-zero reference row: exact zeros pass, anything else fails. */
    fill(ref, out, 0.0, bound);
    for (int64_t k = 0; k < COLS; k++)
        ref[2 * COLS + k] = out[2 * COLS + k] = 0.0f;
    conform_row_error(ref, out, ROWS, COLS, &e);
    CHECK(conform_passes(&e, bound), "zero row, zero output must pass");
    out[2 * COLS + 7] = 1e-30f;
    conform_row_error(ref, out, ROWS, COLS, &e);
    CHECK(!conform_passes(&e, bound), "zero row, non-zero output must fail");

    /* A row that was never written (still poisoned) fails. */
    fill(ref, out, 0.0, bound);
    for (int64_t k = 0; k < COLS; k++)
        out[4 * COLS + k] = NAN;
    conform_row_error(ref, out, ROWS, COLS, &e);
    CHECK(!conform_passes(&e, bound) && e.nonfinite == COLS, "an unwritten row must fail");
}

enum { TOKENS = 3, EXPERTS = 12, TOP_K = 4 };

static void test_route(void)
{
    int32_t ref_ids[TOKENS * TOP_K], ids[TOKENS * TOP_K];
    float ref_w[TOKENS * TOP_K], w[TOKENS * TOP_K];
    double scores[TOKENS * EXPERTS];
    conform_error e;
    const double bound = MOAK_BOUND_ROUTE_WEIGHT;

    /* Distinct scores; the reference picks the top 4 of each token. */
    for (int t = 0; t < TOKENS; t++) {
        for (int x = 0; x < EXPERTS; x++)
            scores[t * EXPERTS + x] = 0.05 * x + uniform(0.0, 0.01);
        for (int j = 0; j < TOP_K; j++) {
            ref_ids[t * TOP_K + j] = EXPERTS - 1 - j;
            ref_w[t * TOP_K + j] = (float)uniform(0.1, 0.4);
        }
    }
    memcpy(ids, ref_ids, sizeof(ids));
    for (int i = 0; i < TOKENS * TOP_K; i++)
        w[i] = ref_w[i] + (float)uniform(-0.3, 0.3) * (float)bound;
    conform_route_error(ref_ids, ref_w, ids, w, scores, TOKENS, EXPERTS, TOP_K, 1.0, &e);
    CHECK(conform_passes(&e, bound), "equal ids, weights within bound must pass (err %g)", e.max_err);

    /* A weight off by 3 x bound fails; with scaling 4 the tolerance grows. */
    w[5] = ref_w[5] + 3.0f * (float)bound;
    conform_route_error(ref_ids, ref_w, ids, w, scores, TOKENS, EXPERTS, TOP_K, 1.0, &e);
    CHECK(!conform_passes(&e, bound), "a weight off by 3 x bound must fail");
    conform_route_error(ref_ids, ref_w, ids, w, scores, TOKENS, EXPERTS, TOP_K, 4.0, &e);
    CHECK(conform_passes(&e, bound), "with scaling 4, 3 x bound is inside (err %g)", e.max_err);
    w[5] = ref_w[5];

    /* An expert the reference did not choose, without a tie: fails. */
    ids[1 * TOP_K + 3] = 0;
    conform_route_error(ref_ids, ref_w, ids, w, scores, TOKENS, EXPERTS, TOP_K, 1.0, &e);
    CHECK(!conform_passes(&e, bound) && e.mismatches == 1 && e.bad_row == 1 && e.bad_col == 3,
          "a wrong expert must fail");

    /* The same swap where the two scores tie: passes. */
    scores[1 * EXPERTS + 0] = scores[1 * EXPERTS + ref_ids[1 * TOP_K + 3]];
    conform_route_error(ref_ids, ref_w, ids, w, scores, TOKENS, EXPERTS, TOP_K, 1.0, &e);
    CHECK(conform_passes(&e, bound), "a tie may swap the last expert");

    /* Two tied experts inside the top-k, reordered: passes (weights compared by id). */
    memcpy(ids, ref_ids, sizeof(ids));
    scores[2 * EXPERTS + ref_ids[2 * TOP_K + 1]] = scores[2 * EXPERTS + ref_ids[2 * TOP_K + 0]];
    ids[2 * TOP_K + 0] = ref_ids[2 * TOP_K + 1];
    ids[2 * TOP_K + 1] = ref_ids[2 * TOP_K + 0];
    w[2 * TOP_K + 0] = ref_w[2 * TOP_K + 1];
    w[2 * TOP_K + 1] = ref_w[2 * TOP_K + 0];
    conform_route_error(ref_ids, ref_w, ids, w, scores, TOKENS, EXPERTS, TOP_K, 1.0, &e);
    CHECK(conform_passes(&e, bound), "tied experts may come in either order (err %g)", e.max_err);

    /* A repeated id and an id out of range fail. */
    memcpy(ids, ref_ids, sizeof(ids));
    memcpy(w, ref_w, sizeof(w));
    ids[1] = ids[0];
    conform_route_error(ref_ids, ref_w, ids, w, scores, TOKENS, EXPERTS, TOP_K, 1.0, &e);
    CHECK(!conform_passes(&e, bound), "a repeated expert must fail");
    memcpy(ids, ref_ids, sizeof(ids));
    ids[0] = EXPERTS;
    conform_route_error(ref_ids, ref_w, ids, w, scores, TOKENS, EXPERTS, TOP_K, 1.0, &e);
    CHECK(!conform_passes(&e, bound), "an expert id out of range must fail");

    /* An unwritten weight (NaN) fails. */
    memcpy(ids, ref_ids, sizeof(ids));
    w[TOKENS * TOP_K - 1] = NAN;
    conform_route_error(ref_ids, ref_w, ids, w, scores, TOKENS, EXPERTS, TOP_K, 1.0, &e);
    CHECK(!conform_passes(&e, bound) && e.nonfinite == 1, "a NaN weight must fail");
}

/* The indexer: one query at position 5 (6 candidates), k 4; another at 1
 * (2 candidates: slots 2 and 3 are -1).  Scores chosen by hand. */
static void test_indexer(void)
{
    const double scores[2 * 6] = {0.5, 2.0, 1.0, 1.0 + 1e-9, -3.0, 0.25, /* query 0: 1, 3, 2, 0 */
                                  0.7, 0.9, 0, 0, 0, 0};                   /* query 1: 1, 0 */
    const int64_t last[2] = {5, 1};
    const int32_t ref[8] = {1, 3, 2, 0, 1, 0, -1, -1};
    const float ref_s[8] = {2.0f, 1.0f, 1.0f, 0.5f, 0.9f, 0.7f, -INFINITY, -INFINITY};
    int32_t pos[8];
    float s[8];
    conform_error e;
    const double bound = conform_bound(CONFORM_INDEXER, MOAK_FORMAT_F32);
    memcpy(pos, ref, sizeof(pos));
    memcpy(s, ref_s, sizeof(s));
    conform_indexer_error(ref, pos, s, scores, last, 6, 2, 4, &e);
    CHECK(conform_passes(&e, bound), "the reference itself must pass");
    /* 3 and 2 tie within 1e-9: swapped, excused */
    pos[1] = 2;
    pos[2] = 3;
    conform_indexer_error(ref, pos, s, scores, last, 6, 2, 4, &e);
    CHECK(conform_passes(&e, bound) && e.mismatches == 0, "a swap of near-tied positions is excused");
    /* 5 (0.25) instead of 0 (0.5): a mismatch */
    memcpy(pos, ref, sizeof(pos));
    pos[3] = 5;
    conform_indexer_error(ref, pos, s, scores, last, 6, 2, 4, &e);
    CHECK(!conform_passes(&e, bound) && e.mismatches == 1, "a wrong position must fail");
    /* a position past the query's own, a repeat, a missing -1 */
    memcpy(pos, ref, sizeof(pos));
    pos[5] = 2;
    conform_indexer_error(ref, pos, s, scores, last, 6, 2, 4, &e);
    CHECK(!conform_passes(&e, bound), "a position after the query must fail");
    memcpy(pos, ref, sizeof(pos));
    pos[1] = 1;
    conform_indexer_error(ref, pos, s, scores, last, 6, 2, 4, &e);
    CHECK(!conform_passes(&e, bound), "a repeated position must fail");
    memcpy(pos, ref, sizeof(pos));
    pos[7] = 0;
    conform_indexer_error(ref, pos, s, scores, last, 6, 2, 4, &e);
    CHECK(!conform_passes(&e, bound), "a slot past the candidates must stay -1");
    /* a score off by 10x the bound (of the query's largest |score|, 3.0) */
    memcpy(pos, ref, sizeof(pos));
    s[0] = (float)(2.0 + 10.0 * bound * 3.0);
    conform_indexer_error(ref, pos, s, scores, last, 6, 2, 4, &e);
    CHECK(!conform_passes(&e, bound), "a score off by 10x the bound must fail");
    s[0] = NAN;
    conform_indexer_error(ref, pos, s, scores, last, 6, 2, 4, &e);
    CHECK(!conform_passes(&e, bound) && e.nonfinite == 1, "an unwritten score must fail");
}

int main(void)
{
    rng_state = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
    printf("test_conform_verdict: seed %llu\n", (unsigned long long)rng_state);
    test_bounds();
    test_rows();
    test_route();
    test_indexer();
    if (failures) {
        printf("test_conform_verdict: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_conform_verdict: all checks passed\n");
    return 0;
}
