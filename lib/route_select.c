/* The scalar steps of MoE routing before the weights, in double, exactly as
 * the reference defines them (backends/ref/route_ref.c states the methods):
 * kept in one place so that the reference and every backend's scalar path
 * (the x86 backends take it for tokens with a NaN or infinite logit) cannot
 * drift apart. */
#include "config.h"

#include <math.h>

#include "internal.h"

int32_t moak_route_arg_max(const double *score, const unsigned char *mark, int32_t n, unsigned char wanted)
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

void moak_route_scores(const moak_route_args *a, const float *logits, double *score, double *select)
{
    const int32_t n = a->n_experts;
    switch (a->method) {
    case MOAK_ROUTE_SOFTMAX_TOPK: {
        double max = -INFINITY, sum = 0.0;
        for (int32_t e = 0; e < n; e++)
            if ((double)logits[e] > max)
                max = logits[e];
        for (int32_t e = 0; e < n; e++) {
            score[e] = exp((double)logits[e] - max);
            sum += score[e];
        }
        for (int32_t e = 0; e < n; e++)
            select[e] = score[e] /= sum;
        break;
    }
    case MOAK_ROUTE_TOPK_SOFTMAX:
        for (int32_t e = 0; e < n; e++)
            score[e] = select[e] = logits[e];
        break;
    case MOAK_ROUTE_SIGMOID_TOPK:
        for (int32_t e = 0; e < n; e++) {
            score[e] = 1.0 / (1.0 + exp(-(double)logits[e]));
            select[e] = score[e] + (a->bias ? (double)a->bias[e] : 0.0);
        }
        break;
    }
}

void moak_route_mark_candidates(const moak_route_args *a, const double *select, double *group_score,
                                unsigned char *group_mark, unsigned char *expert_mark)
{
    if (a->method != MOAK_ROUTE_SIGMOID_TOPK || a->n_groups <= 1) {
        for (int32_t e = 0; e < a->n_experts; e++)
            expert_mark[e] = MOAK_ROUTE_CANDIDATE;
        return;
    }
    /* Group-limited routing (DeepSeek-V3's gate): a group's score is the sum
     * of its two best selection scores (equal values count twice; its only
     * one for a group of one expert); the topk_groups best groups are kept. */
    const int32_t n_groups = a->n_groups;
    const int32_t group_size = a->n_experts / n_groups;
    for (int32_t g = 0; g < n_groups; g++) {
        const double *s = select + (size_t)g * (size_t)group_size;
        double best = s[0], second = -INFINITY;
        for (int32_t i = 1; i < group_size; i++) {
            if (s[i] > best) {
                second = best;
                best = s[i];
            } else if (s[i] > second) {
                second = s[i];
            }
        }
        group_score[g] = group_size >= 2 ? best + second : best;
        group_mark[g] = MOAK_ROUTE_CANDIDATE;
    }
    for (int32_t kept = 0; kept < a->topk_groups; kept++) {
        const int32_t g = moak_route_arg_max(group_score, group_mark, n_groups, MOAK_ROUTE_CANDIDATE);
        if (g < 0)
            break;
        group_mark[g] = MOAK_ROUTE_CHOSEN;
    }
    for (int32_t e = 0; e < a->n_experts; e++)
        expert_mark[e] = group_mark[e / group_size] == MOAK_ROUTE_CHOSEN ? MOAK_ROUTE_CANDIDATE
                                                                          : MOAK_ROUTE_EXCLUDED;
}

void moak_route_choose(const moak_route_args *a, const double *select, unsigned char *expert_mark,
                       int32_t *chosen, int32_t first)
{
    /* Should the kept groups hold fewer than top_k experts (the core rejects
     * that), the best excluded ones follow. */
    for (int32_t k = first; k < a->top_k; k++) {
        int32_t e = moak_route_arg_max(select, expert_mark, a->n_experts, MOAK_ROUTE_CANDIDATE);
        if (e < 0)
            e = moak_route_arg_max(select, expert_mark, a->n_experts, MOAK_ROUTE_EXCLUDED);
        expert_mark[e] = MOAK_ROUTE_CHOSEN;
        chosen[k] = e;
    }
}
