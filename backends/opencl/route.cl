/*
 * route.cl — MoE routing, one work-item per token (routing reads a few
 * hundred logits per token: far too little work to split a token).  The
 * steps are lib/route_select.h, embedded just before this file and compiled
 * here in float on global scratch; moak.h and route_select.h state the
 * methods.  Scratch per token: [n_experts] weight scores, [n_experts]
 * selection scores, [n_groups] group scores, [n_experts + n_groups] marks.
 */

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

    route_scores(method, n_experts, l, has_bias ? bias : 0, score, select);
    route_mark_candidates(method, n_experts, n_groups, topk_groups, select, group_score, group_mark,
                          expert_mark);
    /* the chosen ids go to out_ids now (never read back by the host unless
     * the whole op succeeds) */
    route_choose(n_experts, top_k, select, expert_mark, out_ids, 0);
    for (int k = 0; k < top_k; k++)
        out_w[k] = score[out_ids[k]];
    route_weights(method, top_k, renormalize, out_w);
    for (int k = 0; k < top_k; k++)
        out_w[k] *= scaling;
}
