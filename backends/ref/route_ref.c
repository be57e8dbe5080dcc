/*
 * Reference MoE routing, per token, in double, exactly as moak.h and
 * shared/workloads/routing.json describe the models' own code:
 *
 *   SOFTMAX_TOPK  (Qwen3, Mixtral): p = softmax(logits) over all experts;
 *                 choose the top_k of p; w = p; renormalize: w /= sum(w).
 *   TOPK_SOFTMAX  (gpt-oss): choose the top_k logits; w = softmax over the
 *                 chosen logits.
 *   SIGMOID_TOPK  (DeepSeek-V3, Kimi K2, GLM-4.5, MiniMax-M2):
 *                 s = sigmoid(logit); selection score s + bias (bias may be
 *                 NULL).  With n_groups > 1 the experts form n_groups equal
 *                 consecutive groups; a group's score is the sum of its two
 *                 best selection scores (its only one if a group has one
 *                 expert); the topk_groups best groups are kept and top_k
 *                 experts are chosen among theirs.  w = s (unbiased);
 *                 renormalize: w /= sum(w).
 *   SQRT_SOFTPLUS_TOPK (DeepSeek-V4): s = sqrt(ln(1 + e^logit)), then as
 *                 SIGMOID_TOPK (bias, groups, w = s, renormalize).
 *   Every method then multiplies w by scaling_factor.
 *
 * "Choose" is repeated arg-max: the output lists experts in decreasing
 * selection score, a tie going to the lower expert id (groups likewise to the
 * lower group id).  A token's ids and weights are written only after they
 * are all computed.
 */
#include "ref_internal.h"

#include <math.h>
#include <stdlib.h>

#define REF_ROUTE_TOKENS_PER_TASK 16

typedef struct route_job {
    const moak_route_args *args;
    double *scratch;             /* [n_threads][doubles_per_thread] */
    size_t doubles_per_thread;
    unsigned char *marks;        /* [n_threads][n_experts + n_groups] */
    int32_t *chosen;             /* [n_threads][top_k] */
} route_job;

static void route_token(const route_job *job, int64_t t, int32_t thread)
{
    const moak_route_args *args = job->args;
    const int32_t n_experts = args->n_experts, top_k = args->top_k;
    const float *logits = args->logits + (size_t)t * (size_t)n_experts;

    double *score = job->scratch + (size_t)thread * job->doubles_per_thread; /* [n_experts] */
    double *select = score + n_experts;                                     /* [n_experts] */
    double *weight = select + n_experts;                                    /* [top_k] */
    double *group_score = weight + top_k;                                   /* [n_groups] */
    unsigned char *expert_mark =
        job->marks + (size_t)thread * ((size_t)n_experts + (size_t)args->n_groups);
    unsigned char *group_mark = expert_mark + n_experts;
    int32_t *chosen = job->chosen + (size_t)thread * (size_t)top_k;

    /* 1. scores, 2. which experts may be chosen, 3. top_k by selection
     * score: the core's scalar steps (lib/route_select.c), which every
     * backend's scalar path shares */
    moak_route_scores(args, logits, score, select);
    moak_route_mark_candidates(args, select, group_score, group_mark, expert_mark);
    moak_route_choose(args, select, expert_mark, chosen, 0);

    /* 4. weights and 5. store: the step every CPU backend shares */
    for (int32_t k = 0; k < top_k; k++)
        weight[k] = score[chosen[k]];
    moak_route_store_row(args, t, chosen, weight);
}

static void route_task(void *arg, int64_t task, int32_t thread)
{
    const route_job *job = arg;
    const int64_t first = task * REF_ROUTE_TOKENS_PER_TASK;
    int64_t last = first + REF_ROUTE_TOKENS_PER_TASK;
    if (last > job->args->n_tokens)
        last = job->args->n_tokens;
    for (int64_t t = first; t < last; t++)
        route_token(job, t, thread);
}

moak_status ref_moe_route(void *state, const moak_route_args *args)
{
    const ref_state *st = state;
    if (args->n_tokens == 0)
        return MOAK_OK;

    const size_t n_groups = args->n_groups > 1 ? (size_t)args->n_groups : 1;
    route_job job;
    job.args = args;
    job.doubles_per_thread = 2 * (size_t)args->n_experts + (size_t)args->top_k + n_groups;
    job.scratch = ref_alloc_per_thread(st, job.doubles_per_thread, sizeof(double));
    job.marks = ref_alloc_per_thread(st, (size_t)args->n_experts + (size_t)args->n_groups,
                                     sizeof(unsigned char));
    job.chosen = ref_alloc_per_thread(st, (size_t)args->top_k, sizeof(int32_t));
    moak_status status = MOAK_OK;
    if (!job.scratch || !job.marks || !job.chosen)
        status = ref_out_of_memory(st, "routing scratch");
    else
        ref_parallel_for(st,
                         (args->n_tokens + REF_ROUTE_TOKENS_PER_TASK - 1) /
                             REF_ROUTE_TOKENS_PER_TASK,
                         route_task, &job);
    free(job.scratch);
    free(job.marks);
    free(job.chosen);
    return status;
}
