/*
 * route_select.h — the steps of MoE routing (moak.h's moak_route_method),
 * written once in the common subset of C99 and OpenCL C 1.2:
 *   - the core compiles it as C in double (lib/route_select.c, which every
 *     CPU backend calls: ref for every token, x86 and neon for the scalar
 *     parts and for tokens with a non-finite logit);
 *   - the OpenCL backend embeds it before route.cl (embed_cl.sh), where it
 *     runs in float on global memory (OpenCL 1.2 devices need not have
 *     doubles).
 * ROUTE_MEM is the address space of every array (none in C, global in
 * OpenCL), route_real the precision.
 *
 * Per token: scores (what becomes the weight) and selection scores; the
 * candidate experts (all, or with group-limited routing those of the
 * topk_groups groups with the best sum of their two best selection scores);
 * top_k repeated arg-maxes, ties to the lower id, a NaN never preferred to a
 * number; then the chosen scores become weights (softmax over them for
 * TOPK_SOFTMAX; divided by their sum when renormalizing and the sum is > 0).
 */
#ifndef MOAK_ROUTE_SELECT_H
#define MOAK_ROUTE_SELECT_H

#ifdef __OPENCL_C_VERSION__
#define ROUTE_MEM global
#define ROUTE_FN MOAK_FN
typedef float route_real;
#else
#include <math.h>
#define ROUTE_MEM
#define ROUTE_FN static inline
typedef double route_real;
#endif

/* moak_route_method values (include/moak.h; lib/route_select.c checks them). */
#define ROUTE_SOFTMAX_TOPK 0
#define ROUTE_TOPK_SOFTMAX 1
#define ROUTE_SIGMOID_TOPK 2
#define ROUTE_SQRT_SOFTPLUS_TOPK 3

/* Marks of an expert or a group during selection. */
#define ROUTE_MARK_CANDIDATE 0
#define ROUTE_MARK_EXCLUDED 1
#define ROUTE_MARK_CHOSEN 2

/* The methods that select on score + bias and may limit groups (DeepSeek's gate). */
ROUTE_FN int route_method_biased(int method)
{
    return method == ROUTE_SIGMOID_TOPK || method == ROUTE_SQRT_SOFTPLUS_TOPK;
}

/* sqrt(softplus(x)) (DeepSeek-V4's gate), softplus(x) = ln(1 + e^x) written
 * so that e^x never overflows: x + ln(1 + e^-x) for x > 0.  NaN stays NaN. */
ROUTE_FN route_real route_sqrt_softplus(route_real x)
{
    return sqrt(x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)));
}

/* The index with the highest score among those marked `wanted`, the lowest
 * index on ties; -1 if none is.  A NaN is never preferred to a number but is
 * returned when it is the only one left, so a selection always completes. */
ROUTE_FN int route_arg_max(const ROUTE_MEM route_real *score, const ROUTE_MEM unsigned char *mark, int n,
                           unsigned char wanted)
{
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (mark[i] != wanted)
            continue;
        if (best < 0 || score[i] > score[best] || (isnan(score[best]) && !isnan(score[i])))
            best = i;
    }
    return best;
}

/* score[n] and select[n] from the token's logits; bias (or a null pointer)
 * only for the biased methods. */
ROUTE_FN void route_scores(int method, int n, const ROUTE_MEM float *logits, const ROUTE_MEM float *bias,
                           ROUTE_MEM route_real *score, ROUTE_MEM route_real *select)
{
    if (method == ROUTE_SOFTMAX_TOPK) {
        route_real max = -INFINITY, sum = 0;
        for (int e = 0; e < n; e++)
            if ((route_real)logits[e] > max)
                max = logits[e];
        for (int e = 0; e < n; e++) {
            score[e] = exp((route_real)logits[e] - max);
            sum += score[e];
        }
        for (int e = 0; e < n; e++)
            select[e] = score[e] /= sum;
        return;
    }
    for (int e = 0; e < n; e++) {
        const route_real x = logits[e];
        if (method == ROUTE_TOPK_SOFTMAX)
            score[e] = x;
        else if (method == ROUTE_SIGMOID_TOPK)
            score[e] = 1 / (1 + exp(-x));
        else
            score[e] = route_sqrt_softplus(x);
        select[e] = score[e] + (route_method_biased(method) && bias ? (route_real)bias[e] : 0);
    }
}

/* expert_mark[n_experts]: CANDIDATE for the experts that may be chosen,
 * EXCLUDED for those of dropped groups.  group_score/group_mark: n_groups
 * of scratch (used only with n_groups > 1 and a biased method).  A group's
 * score is the sum of its two best selection scores (equal values count
 * twice; a group of one expert has its one). */
ROUTE_FN void route_mark_candidates(int method, int n_experts, int n_groups, int topk_groups,
                                    const ROUTE_MEM route_real *select, ROUTE_MEM route_real *group_score,
                                    ROUTE_MEM unsigned char *group_mark, ROUTE_MEM unsigned char *expert_mark)
{
    if (!route_method_biased(method) || n_groups <= 1) {
        for (int e = 0; e < n_experts; e++)
            expert_mark[e] = ROUTE_MARK_CANDIDATE;
        return;
    }
    const int group_size = n_experts / n_groups;
    for (int g = 0; g < n_groups; g++) {
        const ROUTE_MEM route_real *s = select + g * group_size;
        route_real best = s[0], second = -INFINITY;
        for (int i = 1; i < group_size; i++) {
            if (s[i] > best) {
                second = best;
                best = s[i];
            } else if (s[i] > second) {
                second = s[i];
            }
        }
        group_score[g] = group_size >= 2 ? best + second : best;
        group_mark[g] = ROUTE_MARK_CANDIDATE;
    }
    for (int kept = 0; kept < topk_groups; kept++) {
        const int g = route_arg_max(group_score, group_mark, n_groups, ROUTE_MARK_CANDIDATE);
        if (g < 0)
            break;
        group_mark[g] = ROUTE_MARK_CHOSEN;
    }
    for (int e = 0; e < n_experts; e++)
        expert_mark[e] = group_mark[e / group_size] == ROUTE_MARK_CHOSEN ? ROUTE_MARK_CANDIDATE : ROUTE_MARK_EXCLUDED;
}

/* chosen[first..top_k): repeated arg-max of select over the candidates,
 * marking each CHOSEN.  Should the candidates run out (the core rejects a
 * router whose kept groups hold fewer than top_k), the best excluded follow. */
ROUTE_FN void route_choose(int n_experts, int top_k, const ROUTE_MEM route_real *select,
                           ROUTE_MEM unsigned char *expert_mark, ROUTE_MEM int *chosen, int first)
{
    for (int k = first; k < top_k; k++) {
        int e = route_arg_max(select, expert_mark, n_experts, ROUTE_MARK_CANDIDATE);
        if (e < 0)
            e = route_arg_max(select, expert_mark, n_experts, ROUTE_MARK_EXCLUDED);
        expert_mark[e] = ROUTE_MARK_CHOSEN;
        chosen[k] = e;
    }
}

/* w[top_k] holds the chosen experts' scores in selection order; they become
 * the weights before the scaling factor. */
ROUTE_FN void route_weights(int method, int top_k, int renormalize, ROUTE_MEM route_real *w)
{
    if (method == ROUTE_TOPK_SOFTMAX) {
        /* softmax over the chosen logits; the first chosen is the largest */
        const route_real max = w[0];
        route_real sum = 0;
        for (int k = 0; k < top_k; k++) {
            w[k] = exp(w[k] - max);
            sum += w[k];
        }
        for (int k = 0; k < top_k; k++)
            w[k] /= sum;
    }
    if (renormalize) {
        route_real sum = 0;
        for (int k = 0; k < top_k; k++)
            sum += w[k];
        /* sigmoid scores can all underflow to 0: the weights stay 0 then */
        if (sum > 0)
            for (int k = 0; k < top_k; k++)
                w[k] /= sum;
    }
}

#endif /* MOAK_ROUTE_SELECT_H */
