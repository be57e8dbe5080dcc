/* test_route — moak_moe_route with the real parameters of routing.json and
 * models.json, against an oracle written here in double.
 *
 * Random logits are checked with the bound of moak.h (ids may differ only
 * where the oracle's selection scores of the two experts are within
 * MOAK_BOUND_ROUTE_TIE of the row's largest |score|).  Exact ties are checked
 * exactly: moak.h says ties go to the lower expert id, for every backend.  In
 * group-limited routing a tie between group scores also goes to the lower
 * group id (the same rule applied to groups). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ref computes in f32 (softmax/sigmoid, sums); a weight is a ratio of sums of
 * at most n_experts terms: ~1e-7.  1e-6 is tight and still safe. */
#define REF_WEIGHT_BOUND 1e-6

typedef struct route_case {
    const char *label;
    moak_route_method method;
    int32_t n_experts, top_k, renormalize;
    float scaling_factor;
    int with_bias;
    int32_t n_groups, topk_groups;
    int64_t n_tokens;
    int ties;            /* logits (and bias) drawn from a few values: many exact ties */
} route_case;

static const route_case cases[] = {
    /* DeepSeek-V3 / V3.2: sigmoid, 256 experts in 8 groups, keep 4, top-8,
     * renormalise, x2.5, correction bias. */
    {"deepseek-v3", MOAK_ROUTE_SIGMOID_TOPK, 256, 8, 1, 2.5f, 1, 8, 4, 33, 0},
    {"deepseek-v3", MOAK_ROUTE_SIGMOID_TOPK, 256, 8, 1, 2.5f, 1, 8, 4, 1, 0},
    /* Kimi K2: 384 experts, top-8, x2.827 (n_group not confirmed: none). */
    {"kimi-k2", MOAK_ROUTE_SIGMOID_TOPK, 384, 8, 1, 2.827f, 1, 0, 0, 17, 0},
    /* GLM-4.5/4.6: 160 experts, n_group 1 (written as 1 = no groups), top-8, x2.5. */
    {"glm-4.5", MOAK_ROUTE_SIGMOID_TOPK, 160, 8, 1, 2.5f, 1, 1, 1, 17, 0},
    /* MiniMax-M2: 256 experts, sigmoid + bias, no groups, renormalise,
     * scaling 1.0 (given as 0 = the default). */
    {"minimax-m2", MOAK_ROUTE_SIGMOID_TOPK, 256, 8, 1, 0.0f, 1, 0, 0, 17, 0},
    /* Sigmoid without a bias and without renormalisation. */
    {"sigmoid no-bias no-renorm", MOAK_ROUTE_SIGMOID_TOPK, 64, 6, 0, 1.0f, 0, 0, 0, 9, 0},
    /* Qwen3-30B-A3B / 235B: softmax over 128, top-8, norm_topk_prob. */
    {"qwen3-30b-a3b", MOAK_ROUTE_SOFTMAX_TOPK, 128, 8, 1, 0.0f, 0, 0, 0, 33, 0},
    {"qwen3-30b-a3b", MOAK_ROUTE_SOFTMAX_TOPK, 128, 8, 1, 0.0f, 0, 0, 0, 1, 0},
    /* Qwen3 shape with norm_topk_prob = false. */
    {"qwen3 no-renorm", MOAK_ROUTE_SOFTMAX_TOPK, 128, 8, 0, 0.0f, 0, 0, 0, 9, 0},
    /* Qwen3-Next-80B-A3B: 512 experts, top-10. */
    {"qwen3-next", MOAK_ROUTE_SOFTMAX_TOPK, 512, 10, 1, 0.0f, 0, 0, 0, 9, 0},
    /* Mixtral-8x7B: 8 experts, top-2, renormalised. */
    {"mixtral-8x7b", MOAK_ROUTE_SOFTMAX_TOPK, 8, 2, 1, 0.0f, 0, 0, 0, 33, 0},
    /* top_k = n_experts. */
    {"mixtral top_k=E", MOAK_ROUTE_SOFTMAX_TOPK, 8, 8, 1, 0.0f, 0, 0, 0, 5, 0},
    {"mixtral top_k=E no-renorm", MOAK_ROUTE_SOFTMAX_TOPK, 8, 8, 0, 0.0f, 0, 0, 0, 5, 0},
    /* gpt-oss-20b / 120b: top-4 of the logits, softmax over the 4. */
    {"gpt-oss-20b", MOAK_ROUTE_TOPK_SOFTMAX, 32, 4, 0, 0.0f, 0, 0, 0, 33, 0},
    {"gpt-oss-120b", MOAK_ROUTE_TOPK_SOFTMAX, 128, 4, 0, 0.0f, 0, 0, 0, 9, 0},
    {"gpt-oss top_k=E", MOAK_ROUTE_TOPK_SOFTMAX, 32, 32, 0, 0.0f, 0, 0, 0, 3, 0},
    /* Exact ties in every method (logits and biases from a handful of values). */
    {"ties softmax", MOAK_ROUTE_SOFTMAX_TOPK, 8, 2, 1, 0.0f, 0, 0, 0, 33, 1},
    {"ties softmax", MOAK_ROUTE_SOFTMAX_TOPK, 128, 8, 1, 0.0f, 0, 0, 0, 17, 1},
    {"ties topk-softmax", MOAK_ROUTE_TOPK_SOFTMAX, 32, 4, 0, 0.0f, 0, 0, 0, 17, 1},
    {"ties sigmoid groups", MOAK_ROUTE_SIGMOID_TOPK, 256, 8, 1, 2.5f, 1, 8, 4, 17, 1},
    {"ties sigmoid", MOAK_ROUTE_SIGMOID_TOPK, 256, 8, 1, 0.0f, 1, 0, 0, 17, 1},
    /* DeepSeek-V4's sqrt(softplus) gate (models.json has no V4 shapes yet:
     * DeepSeek-V3's 256 experts, 8 groups keeping 4, top-8, bias, x2.5) */
    {"sqrt-softplus groups", MOAK_ROUTE_SQRT_SOFTPLUS_TOPK, 256, 8, 1, 2.5f, 1, 8, 4, 33, 0},
    {"sqrt-softplus groups", MOAK_ROUTE_SQRT_SOFTPLUS_TOPK, 256, 8, 1, 2.5f, 1, 8, 4, 1, 0},
    /* without groups, bias or renormalisation; and with exact ties */
    {"sqrt-softplus no-bias no-renorm", MOAK_ROUTE_SQRT_SOFTPLUS_TOPK, 384, 8, 0, 1.0f, 0, 0, 0, 9, 0},
    {"ties sqrt-softplus groups", MOAK_ROUTE_SQRT_SOFTPLUS_TOPK, 256, 8, 1, 2.5f, 1, 8, 4, 17, 1},
};

/* Experts sorted by (score descending, id ascending), among those allowed. */
static int32_t top_k_of(const double *score, const unsigned char *allowed, int32_t n, int32_t k,
                        int32_t *out)
{
    int32_t got = 0;
    unsigned char *taken = t_calloc((size_t)n, 1);
    for (; got < k; got++) {
        int32_t best = -1;
        for (int32_t e = 0; e < n; e++) {
            if (taken[e] || (allowed && !allowed[e]))
                continue;
            if (best < 0 || score[e] > score[best])
                best = e; /* strict '>' keeps the lower id on a tie */
        }
        if (best < 0)
            break;
        taken[best] = 1;
        out[got] = best;
    }
    free(taken);
    return got;
}

/* One token: ids, weights and the selection score of every expert. */
static void oracle_token(const route_case *c, const float *logits, const float *bias, int32_t *ids,
                         double *w, double *sel)
{
    int32_t E = c->n_experts, K = c->top_k;
    double *s = t_alloc_f64((size_t)E);
    unsigned char *allowed = NULL;
    switch (c->method) {
    case MOAK_ROUTE_SOFTMAX_TOPK: {
        double mx = -INFINITY, sum = 0.0;
        for (int32_t e = 0; e < E; e++)
            mx = logits[e] > mx ? logits[e] : mx;
        for (int32_t e = 0; e < E; e++)
            sum += s[e] = exp((double)logits[e] - mx);
        for (int32_t e = 0; e < E; e++)
            sel[e] = s[e] /= sum;
        top_k_of(sel, NULL, E, K, ids);
        for (int32_t k = 0; k < K; k++)
            w[k] = s[ids[k]];
        break;
    }
    case MOAK_ROUTE_TOPK_SOFTMAX: {
        for (int32_t e = 0; e < E; e++)
            sel[e] = logits[e];
        top_k_of(sel, NULL, E, K, ids);
        double mx = sel[ids[0]], sum = 0.0;
        for (int32_t k = 0; k < K; k++)
            sum += w[k] = exp(sel[ids[k]] - mx);
        for (int32_t k = 0; k < K; k++)
            w[k] /= sum;
        break;
    }
    case MOAK_ROUTE_SIGMOID_TOPK:
    case MOAK_ROUTE_SQRT_SOFTPLUS_TOPK: {
        for (int32_t e = 0; e < E; e++) {
            const double x = logits[e];
            /* sigmoid; or sqrt(ln(1 + e^x)) (|x| is far below exp's range here) */
            s[e] = c->method == MOAK_ROUTE_SIGMOID_TOPK ? 1.0 / (1.0 + exp(-x)) : sqrt(log(1.0 + exp(x)));
            sel[e] = s[e] + (bias ? (double)bias[e] : 0.0);
        }
        if (c->n_groups > 1) {
            int32_t G = c->n_groups, per = E / G;
            double *gscore = t_alloc_f64((size_t)G);
            for (int32_t g = 0; g < G; g++) {
                int32_t two[2];
                top_k_of(sel + g * per, NULL, per, 2, two);
                gscore[g] = sel[g * per + two[0]] + sel[g * per + two[1]];
            }
            int32_t *kept = t_malloc(sizeof(int32_t) * (size_t)G);
            top_k_of(gscore, NULL, G, c->topk_groups, kept);
            allowed = t_calloc((size_t)E, 1);
            for (int32_t i = 0; i < c->topk_groups; i++)
                memset(allowed + kept[i] * per, 1, (size_t)per);
            free(kept);
            free(gscore);
        }
        top_k_of(sel, allowed, E, K, ids);
        for (int32_t k = 0; k < K; k++)
            w[k] = s[ids[k]];
        break;
    }
    }
    if (c->renormalize) {
        double sum = 0.0;
        for (int32_t k = 0; k < K; k++)
            sum += w[k];
        for (int32_t k = 0; k < K; k++)
            w[k] /= sum;
    }
    double sf = c->scaling_factor != 0.0f ? c->scaling_factor : 1.0;
    for (int32_t k = 0; k < K; k++)
        w[k] *= sf;
    free(allowed);
    free(s);
}

/* The router a case describes, with its bias (or NULL). */
static moak_router_desc router_of(const route_case *c, const float *bias)
{
    moak_router_desc r = MOAK_ROUTER_DESC_INIT;
    r.method = c->method;
    r.n_experts = c->n_experts;
    r.top_k = c->top_k;
    r.renormalize = c->renormalize;
    r.scaling_factor = c->scaling_factor;
    r.bias = bias;
    r.n_groups = c->n_groups;
    r.topk_groups = c->topk_groups;
    return r;
}

static void fill_logits(const route_case *c, float *x, size_t n)
{
    if (!c->ties) {
        t_fill_normal(x, n, 1.5);
        return;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = (float)t_rand_int(-2, 1) * 0.75f;
}

static void run_case(t_backend *bk, int n_bk, const route_case *c)
{
    int32_t E = c->n_experts, K = c->top_k;
    int64_t T = c->n_tokens;
    float *logits = t_alloc_f32((size_t)(T * E));
    fill_logits(c, logits, (size_t)(T * E));
    float *bias = NULL;
    if (c->with_bias) {
        bias = t_alloc_f32((size_t)E);
        if (c->ties)
            for (int32_t e = 0; e < E; e++)
                bias[e] = (float)t_rand_int(0, 1) * 0.25f;
        else
            t_fill_uniform(bias, (size_t)E, -0.3, 0.3);
    }
    int32_t *ref_ids = t_malloc(sizeof(int32_t) * (size_t)(T * K));
    double *ref_w = t_alloc_f64((size_t)(T * K));
    double *sel = t_alloc_f64((size_t)(T * E));
    for (int64_t t = 0; t < T; t++)
        oracle_token(c, logits + t * E, bias, ref_ids + t * K, ref_w + t * K, sel + t * E);

    const moak_router_desc r = router_of(c, bias);
    double sf = c->scaling_factor != 0.0f ? c->scaling_factor : 1.0;
    double scale = sf > 1.0 ? sf : 1.0;

    char shape[96];
    snprintf(shape, sizeof(shape), "%s E%d k%d t%lld%s%s", c->label, (int)E, (int)K,
             (long long)T, c->n_groups > 1 ? " groups" : "", c->with_bias ? " bias" : "");
    int32_t *ids = t_malloc(sizeof(int32_t) * (size_t)(T * K));
    float *w = t_alloc_f32((size_t)(T * K));
    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        t_poison_bytes(ids, sizeof(int32_t) * (size_t)(T * K));
        t_poison_f32(w, (size_t)(T * K));
        moak_status st = moak_moe_route(ctx, &r, logits, T, ids, w);
        if (st != MOAK_OK) {
            t_fail("%s route %s: %s (%s)", bk[b].name, shape, moak_status_str(st),
                   moak_last_error(ctx));
            continue;
        }
        const char *ran = moak_last_backend(ctx);
        double werr = 0.0;
        int bad_ids = 0, near_ties = 0;
        for (int64_t t = 0; t < T && bad_ids < 3; t++) {
            const double *st_sel = sel + t * E;
            double amax = 0.0;
            for (int32_t e = 0; e < E; e++)
                amax = fabs(st_sel[e]) > amax ? fabs(st_sel[e]) : amax;
            /* Exact ties have one right answer (the lower id): nothing is excused. */
            double tie_tol = c->ties ? -1.0 : MOAK_BOUND_ROUTE_TIE * amax;
            int same_set = 1;
            for (int32_t k = 0; k < K; k++) {
                int32_t got = ids[t * K + k], want = ref_ids[t * K + k];
                if (got == want)
                    continue;
                if (got < 0 || got >= E ||
                    !(fabs(st_sel[got] - st_sel[want]) <= tie_tol)) {
                    if (bad_ids++ < 3)
                        t_fail("%s route %s: token %lld slot %d id %d, expected %d", bk[b].name,
                               shape, (long long)t, (int)k, (int)got, (int)want);
                    same_set = 0;
                    break;
                }
                near_ties++;
            }
            if (!same_set)
                continue;
            /* With near-ties the ids may be permuted or one swapped at the
             * k-th place: compare each weight with the oracle's weight of the
             * same expert; skip a token whose set differs. */
            for (int32_t k = 0; k < K; k++) {
                int32_t got = ids[t * K + k];
                int found = -1;
                for (int32_t j = 0; j < K; j++)
                    if (ref_ids[t * K + j] == got)
                        found = j;
                if (found < 0) {
                    same_set = 0;
                    break;
                }
            }
            for (int32_t k = 0; same_set && k < K; k++) {
                int32_t got = ids[t * K + k];
                for (int32_t j = 0; j < K; j++)
                    if (ref_ids[t * K + j] == got) {
                        double e = fabs((double)w[t * K + k] - ref_w[t * K + j]) / scale;
                        if (!(e <= werr))
                            werr = e;
                    }
            }
        }
        if (near_ties)
            t_note("%s route %s: %d ids differ within the tie bound", bk[b].name, shape, near_ties);
        if (bad_ids)
            werr = INFINITY;
        t_report(bk[b].name, ran, "route", "f32", shape, werr,
                 t_bound_for(ran, REF_WEIGHT_BOUND, MOAK_BOUND_ROUTE_WEIGHT));
    }
    free(ids);
    free(w);
    free(logits);
    free(bias);
    free(ref_ids);
    free(ref_w);
    free(sel);
}

/* Logits with NaN and infinities (a diverged activation upstream): moak.h
 * leaves the result to the reference, so every backend must give ref's ids
 * exactly (valid and distinct) and ref's weights, NaN where ref's is NaN.  The
 * x86 backends take their scalar path for such tokens, the core's. */
static void run_nonfinite(t_backend *bk, int n_bk, const route_case *c)
{
    const int32_t E = c->n_experts, K = c->top_k;
    const int64_t T = 24;
    float *logits = t_alloc_f32((size_t)(T * E));
    t_fill_normal(logits, (size_t)(T * E), 1.5);
    const float specials[3] = {NAN, INFINITY, -INFINITY};
    for (int64_t t = 0; t < T; t++) /* 1 to 3 specials per token, some tokens all NaN */
        for (int32_t n = 0; n < (t % 8 == 7 ? E : 1 + (int32_t)(t % 3)); n++)
            logits[t * E + (t % 8 == 7 ? n : t_rand_int(0, E - 1))] = specials[t_rand_int(0, 2)];
    float *bias = NULL;
    if (c->with_bias) {
        bias = t_alloc_f32((size_t)E);
        t_fill_uniform(bias, (size_t)E, -0.3, 0.3);
    }
    const moak_router_desc r = router_of(c, bias);
    char shape[96];
    snprintf(shape, sizeof(shape), "%s E%d k%d t%lld non-finite logits", c->label, (int)E, (int)K,
             (long long)T);
    int32_t *ids[T_MAX_BACKENDS];
    float *w[T_MAX_BACKENDS];
    int ref = -1;
    for (int b = 0; b < n_bk; b++) {
        ids[b] = t_malloc(sizeof(int32_t) * (size_t)(T * K));
        w[b] = t_alloc_f32((size_t)(T * K));
        t_poison_bytes(ids[b], sizeof(int32_t) * (size_t)(T * K));
        t_poison_f32(w[b], (size_t)(T * K));
        if (moak_moe_route(bk[b].ctx, &r, logits, T, ids[b], w[b]) != MOAK_OK) {
            t_fail("%s route %s: %s", bk[b].name, shape, moak_last_error(bk[b].ctx));
            continue;
        }
        if (strcmp(moak_last_backend(bk[b].ctx), "ref") == 0)
            ref = b;
        for (int64_t t = 0; t < T; t++)
            for (int32_t k = 0; k < K; k++) {
                const int32_t id = ids[b][t * K + k];
                int dup = 0;
                for (int32_t j = 0; j < k; j++)
                    dup |= ids[b][t * K + j] == id;
                if (id < 0 || id >= E || dup)
                    t_fail("%s route %s: token %lld slot %d: id %d invalid or repeated", bk[b].name,
                           shape, (long long)t, (int)k, (int)id);
            }
    }
    for (int b = 0; ref >= 0 && b < n_bk; b++) {
        if (b == ref)
            continue;
        const char *ran = moak_last_backend(bk[b].ctx);
        double werr = 0.0;
        for (int64_t i = 0; i < T * K; i++) {
            if (ids[b][i] != ids[ref][i]) {
                t_fail("%s route %s: token %lld slot %d id %d, ref %d", bk[b].name, shape,
                       (long long)(i / K), (int)(i % K), (int)ids[b][i], (int)ids[ref][i]);
                werr = INFINITY;
                break;
            }
            const float a = w[b][i], e = w[ref][i];
            const double d = isnan(e) ? (isnan(a) ? 0.0 : INFINITY) : fabs((double)a - (double)e);
            if (!(d <= werr))
                werr = d;
        }
        t_report(bk[b].name, ran, "route", "f32", shape, werr, MOAK_BOUND_ROUTE_WEIGHT);
    }
    if (ref < 0)
        t_note("route %s: ref did not run, nothing to compare", shape);
    for (int b = 0; b < n_bk; b++) {
        free(ids[b]);
        free(w[b]);
    }
    free(logits);
    free(bias);
}

int main(void)
{
    t_init("test_route");
    t_backend bk[T_MAX_BACKENDS];
    int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 0);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
        run_case(bk, n_bk, &cases[c]);
    run_nonfinite(bk, n_bk, &cases[0]); /* deepseek-v3: sigmoid, groups, bias */
    run_nonfinite(bk, n_bk, &cases[6]); /* qwen3: softmax */
    run_nonfinite(bk, n_bk, &cases[14]); /* gpt-oss: top-k of the logits */
    run_nonfinite(bk, n_bk, &cases[21]); /* sqrt-softplus, groups, bias */
    t_close_backends(bk, n_bk);
    return t_finish();
}
