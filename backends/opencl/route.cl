/*
 * route.cl — MoE routing, one work-item per token (routing reads a few
 * hundred logits per token: far too little work to split a token).
 * Methods as in include/moak.h and backends/ref/route_ref.c:
 *   0 SOFTMAX_TOPK: p = softmax(logits), choose on p, w = p
 *   1 TOPK_SOFTMAX: choose on logits, w = softmax over the chosen
 *   2 SIGMOID_TOPK: s = sigmoid(logits), choose on s + bias (group-limited
 *     when n_groups > 1: group score = sum of its two best, keep
 *     topk_groups groups), w = s
 * then w /= sum(w) when renormalize (and the sum is > 0), w *= scaling.
 * "Choose" is repeated arg-max with ties to the lower id (groups likewise).
 * Scratch per token: [n_experts] weight scores, [n_experts] selection
 * scores, [n_groups] group scores, [n_experts + n_groups] marks.
 */

#define ROUTE_SOFTMAX_TOPK 0
#define ROUTE_TOPK_SOFTMAX 1
#define ROUTE_SIGMOID_TOPK 2

#define MARK_CANDIDATE 0
#define MARK_EXCLUDED 1
#define MARK_CHOSEN 2

/* Highest score among those marked `wanted` (lowest index on ties; a NaN
 * never beats a number); -1 if none. */
MOAK_FN int arg_max_marked(global const float *score, global const uchar *mark, int n, uchar wanted)
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

kernel void moe_route(global const float *logits, global const float *bias, int has_bias,
                      global float *scratch, global uchar *marks, global int *ids,
                      global float *weights, int n_tokens, int n_experts, int top_k, int method,
                      int renormalize, float scaling, int n_groups, int topk_groups)
{
    const int t = (int)get_global_id(0);
    if (t >= n_tokens)
        return;
    const int groups = n_groups > 1 ? n_groups : 1;
    global const float *l = logits + (ulong)t * (ulong)n_experts;
    global float *score = scratch + (ulong)t * (ulong)(2 * n_experts + groups);
    global float *select = score + n_experts;
    global float *group_score = select + n_experts;
    global uchar *expert_mark = marks + (ulong)t * (ulong)(n_experts + groups);
    global uchar *group_mark = expert_mark + n_experts;
    global int *out_ids = ids + (ulong)t * (ulong)top_k;
    global float *out_w = weights + (ulong)t * (ulong)top_k;

    /* 1. weight scores and selection scores */
    if (method == ROUTE_SOFTMAX_TOPK) {
        float mx = -INFINITY, sum = 0.0f;
        for (int e = 0; e < n_experts; e++)
            mx = fmax(mx, l[e]);
        for (int e = 0; e < n_experts; e++) {
            score[e] = exp(l[e] - mx);
            sum += score[e];
        }
        for (int e = 0; e < n_experts; e++) {
            score[e] /= sum;
            select[e] = score[e];
        }
    } else if (method == ROUTE_TOPK_SOFTMAX) {
        for (int e = 0; e < n_experts; e++)
            score[e] = select[e] = l[e];
    } else {
        for (int e = 0; e < n_experts; e++) {
            score[e] = 1.0f / (1.0f + exp(-l[e]));
            select[e] = score[e] + (has_bias ? bias[e] : 0.0f);
        }
    }

    /* 2. candidates: all, or the experts of the kept groups */
    for (int e = 0; e < n_experts; e++)
        expert_mark[e] = MARK_CANDIDATE;
    if (method == ROUTE_SIGMOID_TOPK && n_groups > 1) {
        const int group_size = n_experts / n_groups;
        for (int g = 0; g < n_groups; g++) {
            global const float *s = select + g * group_size;
            float best = s[0], second = -INFINITY;
            for (int i = 1; i < group_size; i++) {
                if (s[i] > best) {
                    second = best;
                    best = s[i];
                } else if (s[i] > second) {
                    second = s[i];
                }
            }
            group_score[g] = group_size >= 2 ? best + second : best;
            group_mark[g] = MARK_CANDIDATE;
        }
        for (int kept = 0; kept < topk_groups; kept++) {
            const int g = arg_max_marked(group_score, group_mark, n_groups, MARK_CANDIDATE);
            if (g < 0)
                break;
            group_mark[g] = MARK_CHOSEN;
        }
        for (int e = 0; e < n_experts; e++)
            if (group_mark[e / group_size] != MARK_CHOSEN)
                expert_mark[e] = MARK_EXCLUDED;
    }

    /* 3. top_k; the chosen ids go to out_ids now (never read back by the
     * host unless the whole op succeeds) */
    for (int k = 0; k < top_k; k++) {
        int e = arg_max_marked(select, expert_mark, n_experts, MARK_CANDIDATE);
        if (e < 0)
            e = arg_max_marked(select, expert_mark, n_experts, MARK_EXCLUDED);
        expert_mark[e] = MARK_CHOSEN;
        out_ids[k] = e;
    }

    /* 4. weights */
    float sum = 0.0f;
    if (method == ROUTE_TOPK_SOFTMAX) {
        const float mx = score[out_ids[0]];
        for (int k = 0; k < top_k; k++) {
            out_w[k] = exp(score[out_ids[k]] - mx);
            sum += out_w[k];
        }
        for (int k = 0; k < top_k; k++)
            out_w[k] /= sum;
    } else {
        for (int k = 0; k < top_k; k++)
            out_w[k] = score[out_ids[k]];
    }
    if (renormalize) {
        sum = 0.0f;
        for (int k = 0; k < top_k; k++)
            sum += out_w[k];
        if (sum > 0.0f)
            for (int k = 0; k < top_k; k++)
                out_w[k] /= sum;
    }
    for (int k = 0; k < top_k; k++)
        out_w[k] *= scaling;
}
