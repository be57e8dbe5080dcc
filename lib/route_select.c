/* The steps of MoE routing in double, the reference's own: the bodies are
 * route_select.h, shared with the OpenCL backend's route.cl; here they get
 * the core's names (moak_backend.h) for the reference and every CPU
 * backend's scalar path, so that no backend carries a copy. */
#include "config.h"

#include <math.h>

#include "internal.h"
#include "route_select.h"

/* route_select.h spells moak.h's methods and moak_backend.h's marks as
 * numbers (OpenCL C sees neither header): they must agree. */
typedef char route_methods_agree[(ROUTE_SOFTMAX_TOPK == MOAK_ROUTE_SOFTMAX_TOPK &&
                                  ROUTE_TOPK_SOFTMAX == MOAK_ROUTE_TOPK_SOFTMAX &&
                                  ROUTE_SIGMOID_TOPK == MOAK_ROUTE_SIGMOID_TOPK &&
                                  ROUTE_SQRT_SOFTPLUS_TOPK == MOAK_ROUTE_SQRT_SOFTPLUS_TOPK)
                                     ? 1
                                     : -1];
typedef char route_marks_agree[(ROUTE_MARK_CANDIDATE == MOAK_ROUTE_CANDIDATE &&
                                ROUTE_MARK_EXCLUDED == MOAK_ROUTE_EXCLUDED && ROUTE_MARK_CHOSEN == MOAK_ROUTE_CHOSEN)
                                   ? 1
                                   : -1];

int32_t moak_route_arg_max(const double *score, const unsigned char *mark, int32_t n, unsigned char wanted)
{
    return route_arg_max(score, mark, n, wanted);
}

bool moak_route_method_biased(moak_route_method method)
{
    return route_method_biased((int)method) != 0;
}

void moak_route_scores(const moak_route_args *a, const float *logits, double *score, double *select)
{
    route_scores((int)a->method, a->n_experts, logits, a->bias, score, select);
}

void moak_route_mark_candidates(const moak_route_args *a, const double *select, double *group_score,
                                unsigned char *group_mark, unsigned char *expert_mark)
{
    route_mark_candidates((int)a->method, a->n_experts, a->n_groups, a->topk_groups, select, group_score,
                          group_mark, expert_mark);
}

void moak_route_choose(const moak_route_args *a, const double *select, unsigned char *expert_mark,
                       int32_t *chosen, int32_t first)
{
    route_choose(a->n_experts, a->top_k, select, expert_mark, chosen, first);
}

void moak_route_store_row(const moak_route_args *a, int64_t token, const int32_t *chosen, double *chosen_scores)
{
    const int32_t top_k = a->top_k;
    route_weights((int)a->method, top_k, a->renormalize, chosen_scores);
    int32_t *ids = a->ids + (size_t)token * (size_t)top_k;
    float *weights = a->weights + (size_t)token * (size_t)top_k;
    for (int32_t k = 0; k < top_k; k++) {
        ids[k] = chosen[k];
        weights[k] = (float)(chosen_scores[k] * (double)a->scaling_factor);
    }
}
