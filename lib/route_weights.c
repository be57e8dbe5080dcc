/* The last step of MoE routing, the same for every CPU backend (and kept in
 * one place so they cannot drift apart): from the chosen experts' scores, in
 * selection order, the routing weights, stored with the ids. */
#include "config.h"

#include <math.h>

#include "internal.h"

void moak_route_store_row(const moak_route_args *a, int64_t token, const int32_t *chosen, double *chosen_scores)
{
    const int32_t top_k = a->top_k;
    double *w = chosen_scores;
    if (a->method == MOAK_ROUTE_TOPK_SOFTMAX) {
        /* softmax over the chosen logits; the first chosen is the largest */
        const double max = w[0];
        double sum = 0.0;
        for (int32_t k = 0; k < top_k; k++) {
            w[k] = exp(w[k] - max);
            sum += w[k];
        }
        for (int32_t k = 0; k < top_k; k++)
            w[k] /= sum;
    }
    if (a->renormalize) {
        double sum = 0.0;
        for (int32_t k = 0; k < top_k; k++)
            sum += w[k];
        /* sigmoid scores can all underflow to 0: the weights stay 0 then */
        if (sum > 0.0)
            for (int32_t k = 0; k < top_k; k++)
                w[k] /= sum;
    }
    int32_t *ids = a->ids + (size_t)token * (size_t)top_k;
    float *weights = a->weights + (size_t)token * (size_t)top_k;
    for (int32_t k = 0; k < top_k; k++) {
        ids[k] = chosen[k];
        weights[k] = (float)(w[k] * (double)a->scaling_factor);
    }
}
