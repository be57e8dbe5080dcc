/*
 * MoE routing on the neon backend, per token.  The scores over all experts
 * are computed four at a time in f32 (neon_exp: about 1e-7 relative, so a
 * choice can differ from the reference's only where two scores are within
 * MOAK_BOUND_ROUTE_TIE) for SOFTMAX_TOPK, TOPK_SOFTMAX and SIGMOID_TOPK;
 * SQRT_SOFTPLUS_TOPK and any token with a NaN or infinite logit take the
 * core's scores in double (the reference's, NaN propagation included).  The
 * selection (groups, repeated arg-max, ties to the lower id) and the weights
 * are the core's (lib/route_select.h), in double on the widened scores.
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

typedef struct route_job {
    const moak_route_args *args;
    const neon_state *st;
} route_job;

static bool all_finite(const float *x, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return false;
    return true;
}

/* score/select in f32 for the methods with a vector form (finite logits). */
static void scores_f32(const moak_route_args *a, const float *logits, float *score, float *select)
{
    const int32_t n = a->n_experts;
    int32_t i = 0;
    switch (a->method) {
    case MOAK_ROUTE_SOFTMAX_TOPK: {
        float32x4_t m4 = vdupq_n_f32(-INFINITY);
        for (; i + 4 <= n; i += 4)
            m4 = vmaxq_f32(m4, vld1q_f32(logits + i));
        float mx = vmaxvq_f32(m4);
        for (; i < n; i++)
            mx = logits[i] > mx ? logits[i] : mx;
        const float32x4_t m = vdupq_n_f32(mx);
        float32x4_t sum4 = vdupq_n_f32(0.0f);
        for (i = 0; i + 4 <= n; i += 4) {
            const float32x4_t p = neon_exp(vsubq_f32(vld1q_f32(logits + i), m));
            vst1q_f32(score + i, p);
            sum4 = vaddq_f32(sum4, p);
        }
        float sum = vaddvq_f32(sum4);
        for (; i < n; i++) {
            score[i] = expf(logits[i] - mx);
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
    default: /* SIGMOID_TOPK */
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
}

static void route_token(const route_job *job, int64_t t, int32_t thread)
{
    const moak_route_args *a = job->args;
    const int32_t n = a->n_experts, top_k = a->top_k, groups = a->n_groups > 1 ? a->n_groups : 1;
    const float *logits = a->logits + (size_t)t * (size_t)n;
    /* scratch: score, select [n] and group_score [groups], weights [top_k]
     * doubles; score_f32, select_f32 [n] floats; chosen [top_k]; marks
     * [n + groups] */
    double *score = neon_scratch(job->st, thread);
    double *select = score + n, *group_score = select + n, *weight = group_score + groups;
    float *score_f32 = (float *)(void *)(weight + top_k), *select_f32 = score_f32 + n;
    int32_t *chosen = (int32_t *)(void *)(select_f32 + n);
    unsigned char *expert_mark = (unsigned char *)(chosen + top_k), *group_mark = expert_mark + n;

    if (a->method == MOAK_ROUTE_SQRT_SOFTPLUS_TOPK || !all_finite(logits, n)) {
        moak_route_scores(a, logits, score, select);
    } else {
        scores_f32(a, logits, score_f32, select_f32);
        for (int32_t i = 0; i < n; i++) {
            score[i] = score_f32[i];
            select[i] = select_f32[i];
        }
    }
    moak_route_mark_candidates(a, select, group_score, group_mark, expert_mark);
    moak_route_choose(a, select, expert_mark, chosen, 0);
    for (int32_t k = 0; k < top_k; k++)
        weight[k] = score[chosen[k]];
    moak_route_store_row(a, t, chosen, weight);
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
    const size_t groups = args->n_groups > 1 ? (size_t)args->n_groups : 1;
    const size_t bytes = (2 * n + groups + k) * sizeof(double) + 2 * n * sizeof(float) + k * sizeof(int32_t) +
                         n + groups + 16;
    moak_status s = neon_reserve_scratch(st, bytes, "routing scores");
    if (s != MOAK_OK)
        return s;
    route_job job = {args, st};
    neon_parallel_for(st, (args->n_tokens + ROUTE_TOKENS_PER_TASK - 1) / ROUTE_TOKENS_PER_TASK, route_task, &job);
    return MOAK_OK;
}
