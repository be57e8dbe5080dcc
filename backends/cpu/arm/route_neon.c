/*
 * MoE routing on the neon backend, per token (methods as moak.h and
 * backends/ref/route_ref.c describe them):
 *   SOFTMAX_TOPK  p = softmax(logits), choose top_k of p, [renormalize]
 *   TOPK_SOFTMAX  choose top_k of the logits, w = softmax of the chosen
 *   SIGMOID_TOPK  s = sigmoid(logits), choose on s + bias (group-limited
 *                 when n_groups > 1), w = s of the chosen, [renormalize]
 *   then w *= scaling_factor.
 * Scores over all experts are computed four at a time in f32 (neon_exp:
 * about 1e-7 relative, so a choice can differ from the reference's only
 * where two scores are within MOAK_BOUND_ROUTE_TIE); the top_k weights are
 * then finished in double.  "Choose" is repeated arg-max with `fmaxnm`
 * (a NaN score is never preferred to a number), ties to the lower id.
 */
#if !defined(__ARM_NEON)
#error "route_neon.c needs Advanced SIMD (NEON_CFLAGS)"
#endif

#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "neon_backend.h"
#include "neon_simd.h"

#define ROUTE_TOKENS_PER_TASK 16

enum { CANDIDATE = 0, EXCLUDED = 1, CHOSEN = 2 };

typedef struct route_job {
    const moak_route_args *args;
    const neon_state *st;
} route_job;

/* Largest of v[0..n) ignoring NaNs (NaN when all are NaN). */
static float max_number(const float *v, int32_t n)
{
    float32x4_t m = vdupq_n_f32(NAN);
    int32_t i = 0;
    for (; i + 4 <= n; i += 4)
        m = vmaxnmq_f32(m, vld1q_f32(v + i));
    float r = vmaxnmvq_f32(m);
    for (; i < n; i++)
        r = fmaxf(r, v[i]);
    return r;
}

/* The reference's arg-max over experts marked `wanted`, for the rare case the
 * vector path cannot answer (every remaining score NaN). */
static int32_t arg_max_marked(const float *score, const unsigned char *mark, int32_t n, unsigned char wanted)
{
    int32_t best = -1;
    for (int32_t i = 0; i < n; i++) {
        if (mark[i] != wanted)
            continue;
        if (best < 0 || score[i] > score[best] || (isnan(score[best]) && !isnan(score[i])))
            best = i;
    }
    return best;
}

/* Choose one expert: the highest `select` among candidates (masked holds
 * select for candidates and NaN for the others), lowest id on ties. */
static int32_t choose(const float *select, float *masked, unsigned char *mark, int32_t n)
{
    const float best = max_number(masked, n);
    int32_t e = -1;
    if (!isnan(best)) {
        for (int32_t i = 0; i < n; i++)
            if (masked[i] == best) {
                e = i;
                break;
            }
    } else {
        e = arg_max_marked(select, mark, n, CANDIDATE);
        if (e < 0) /* fewer candidates than top_k (the core rejects it): best excluded */
            e = arg_max_marked(select, mark, n, EXCLUDED);
    }
    mark[e] = CHOSEN;
    masked[e] = NAN;
    return e;
}

/* Keep the topk_groups groups with the best sum of their two best selection
 * scores; mark the other groups' experts EXCLUDED. */
static void limit_groups(const moak_route_args *a, const float *select, unsigned char *mark, float *masked)
{
    const int32_t n_groups = a->n_groups, size = a->n_experts / n_groups;
    float group_score[256];
    unsigned char group_mark[256];
    float *gs = n_groups <= 256 ? group_score : malloc((size_t)n_groups * sizeof(float));
    unsigned char *gm = n_groups <= 256 ? group_mark : malloc((size_t)n_groups);
    if (!gs || !gm) { /* cannot happen with real models (n_groups <= 8); keep all */
        if (gs != group_score)
            free(gs);
        if (gm != group_mark)
            free(gm);
        return;
    }
    for (int32_t g = 0; g < n_groups; g++) {
        const float *s = select + (size_t)g * (size_t)size;
        float best = s[0], second = -INFINITY;
        for (int32_t i = 1; i < size; i++) {
            if (s[i] > best) {
                second = best;
                best = s[i];
            } else if (s[i] > second) {
                second = s[i];
            }
        }
        gs[g] = size >= 2 ? best + second : best;
        gm[g] = CANDIDATE;
    }
    for (int32_t kept = 0; kept < a->topk_groups; kept++) {
        const int32_t g = arg_max_marked(gs, gm, n_groups, CANDIDATE);
        if (g < 0)
            break;
        gm[g] = CHOSEN;
    }
    for (int32_t e = 0; e < a->n_experts; e++)
        if (gm[e / size] != CHOSEN) {
            mark[e] = EXCLUDED;
            masked[e] = NAN;
        }
    if (gs != group_score)
        free(gs);
    if (gm != group_mark)
        free(gm);
}

static void route_token(const route_job *job, int64_t t, int32_t thread)
{
    const moak_route_args *a = job->args;
    const int32_t n = a->n_experts, top_k = a->top_k;
    const float *logits = a->logits + (size_t)t * (size_t)n;
    /* scratch: score, select, masked [n] floats; chosen [top_k]; marks [n] */
    float *score = neon_scratch(job->st, thread);
    float *select = score + n, *masked = select + n;
    int32_t *chosen = (int32_t *)(void *)(masked + n);
    unsigned char *mark = (unsigned char *)(chosen + top_k);

    int32_t i = 0;
    switch (a->method) {
    case MOAK_ROUTE_SOFTMAX_TOPK: {
        const float32x4_t m = vdupq_n_f32(max_number(logits, n));
        float32x4_t sum4 = vdupq_n_f32(0.0f);
        for (; i + 4 <= n; i += 4) {
            const float32x4_t p = neon_exp(vsubq_f32(vld1q_f32(logits + i), m));
            vst1q_f32(score + i, p);
            sum4 = vaddq_f32(sum4, p);
        }
        float sum = vaddvq_f32(sum4);
        for (; i < n; i++) {
            score[i] = expf(logits[i] - vgetq_lane_f32(m, 0));
            sum += score[i];
        }
        const float inv = 1.0f / sum;
        for (i = 0; i + 4 <= n; i += 4)
            vst1q_f32(score + i, vmulq_n_f32(vld1q_f32(score + i), inv));
        for (; i < n; i++)
            score[i] *= inv;
        for (i = 0; i < n; i++)
            select[i] = score[i];
        break;
    }
    case MOAK_ROUTE_TOPK_SOFTMAX:
        for (i = 0; i < n; i++)
            score[i] = select[i] = logits[i];
        break;
    case MOAK_ROUTE_SIGMOID_TOPK:
        for (; i + 4 <= n; i += 4) {
            const float32x4_t s = neon_sigmoid(vld1q_f32(logits + i));
            vst1q_f32(score + i, s);
            vst1q_f32(select + i, a->bias ? vaddq_f32(s, vld1q_f32(a->bias + i)) : s);
        }
        for (; i < n; i++) {
            score[i] = 1.0f / (1.0f + expf(-logits[i]));
            select[i] = score[i] + (a->bias ? a->bias[i] : 0.0f);
        }
        break;
    }

    for (i = 0; i < n; i++) {
        mark[i] = CANDIDATE;
        masked[i] = select[i];
    }
    if (a->method == MOAK_ROUTE_SIGMOID_TOPK && a->n_groups > 1)
        limit_groups(a, select, mark, masked);
    for (int32_t k = 0; k < top_k; k++)
        chosen[k] = choose(select, masked, mark, n);

    double weight[256];
    double *wt = top_k <= 256 ? weight : (double *)(void *)(((uintptr_t)(mark + n) + 7) & ~(uintptr_t)7);
    for (int32_t k = 0; k < top_k; k++)
        wt[k] = score[chosen[k]];
    moak_route_store_row(a, t, chosen, wt);
}

static void route_task(void *arg, int64_t task, int32_t thread)
{
    const route_job *job = arg;
    const int64_t first = task * ROUTE_TOKENS_PER_TASK;
    const int64_t last =
        first + ROUTE_TOKENS_PER_TASK < job->args->n_tokens ? first + ROUTE_TOKENS_PER_TASK : job->args->n_tokens;
    for (int64_t t = first; t < last; t++)
        route_token(job, t, thread);
}

moak_status neon_moe_route(void *state, const moak_route_args *args)
{
    neon_state *st = state;
    if (args->n_tokens == 0)
        return MOAK_OK;
    const size_t n = (size_t)args->n_experts, k = (size_t)args->top_k;
    /* floats, chosen ids, marks (padded to 8), and room for top_k doubles */
    const size_t bytes = 3 * n * sizeof(float) + k * sizeof(int32_t) + n + 8 + k * sizeof(double);
    moak_status s = neon_reserve_scratch(st, bytes, "routing scores");
    if (s != MOAK_OK)
        return s;
    route_job job = {args, st};
    neon_parallel_for(st, (args->n_tokens + ROUTE_TOKENS_PER_TASK - 1) / ROUTE_TOKENS_PER_TASK, route_task, &job);
    return MOAK_OK;
}
