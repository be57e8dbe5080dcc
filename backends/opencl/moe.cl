/*
 * moe.cl — the fused MoE expert FFN in three kernels over the core's
 * grouping (pairs sorted by expert, moak_moe_args):
 *
 *   moe_gate_up_<fmt>  h[p][i]  = act(gate_e(x[tok p])[i], up_e(x[tok p])[i])
 *   moe_down_<fmt>     yp[p][j] = down_e(h[p])[j] (+ down bias)
 *   moe_combine        y[t][j]  = sum over slots s of w[t][s] * yp[pos(t, s)][j]
 *
 * p is a pair's position in the grouped order.  A "tile" is up to
 * MOAK_TILE_TOKENS consecutive pairs of one expert: int4 (expert, first
 * pair, pair count, 0); the host lists the tiles of the active experts only,
 * so experts no token chose are never read.  The combine adds the slots in
 * slot order, so the result does not depend on the grouping.
 */

#define ACT_SILU_GLU 0
#define ACT_GELU_GLU 1
#define ACT_SWIGLU_OAI 2

MOAK_FN float moe_activation(int act, float g, float u, float alpha, float limit)
{
    switch (act) {
    case ACT_GELU_GLU:
        return 0.5f * g * (1.0f + erf(g * M_SQRT1_2_F)) * u;
    case ACT_SWIGLU_OAI:
        g = fmin(g, limit);
        u = clamp(u, -limit, limit);
        return (u + 1.0f) * g / (1.0f + exp(-alpha * g));
    default: /* ACT_SILU_GLU */
        return g / (1.0f + exp(-g)) * u;
    }
}

MOAK_FN void moe_gate_up_body(const int fmt, global const uchar *gq, global const uchar *gs,
                              global const float *gbias, int has_gbias, global const uchar *uq,
                              global const uchar *us, global const float *ubias, int has_ubias,
                              global const float *x, global const int4 *tiles,
                              global const int *pair_token, global float *h, int inter,
                              int hidden, int kp, int act, float alpha, float limit,
                              local float *scratch)
{
    const int i = (int)get_group_id(0);
    const int4 tile = tiles[get_group_id(1)];
    const ulong row = (ulong)tile.x * (ulong)inter + (ulong)i;
    const int nt = tile.z;
    ulong xrow[MOAK_TILE_TOKENS];
    float g[MOAK_TILE_TOKENS], u[MOAK_TILE_TOKENS];
    for (int t = 0; t < MOAK_TILE_TOKENS; t++)
        xrow[t] = (ulong)pair_token[tile.y + min(t, nt - 1)] * (ulong)hidden;
    dot_row_tile(fmt, gq, gs, row, kp, hidden, x, xrow, nt, scratch, g);
    dot_row_tile(fmt, uq, us, row, kp, hidden, x, xrow, nt, scratch, u);
    if (get_local_id(0) == 0) {
        const float bg = has_gbias ? gbias[row] : 0.0f;
        const float bu = has_ubias ? ubias[row] : 0.0f;
        for (int t = 0; t < MOAK_TILE_TOKENS; t++)
            if (t < nt)
                h[(ulong)(tile.y + t) * (ulong)inter + (ulong)i] =
                    moe_activation(act, g[t] + bg, u[t] + bu, alpha, limit);
    }
}

MOAK_FN void moe_down_body(const int fmt, global const uchar *dq, global const uchar *ds,
                           global const float *dbias, int has_dbias, global const float *h,
                           global const int4 *tiles, global float *yp, int hidden, int inter,
                           int kp, local float *scratch)
{
    const int j = (int)get_group_id(0);
    const int4 tile = tiles[get_group_id(1)];
    const ulong row = (ulong)tile.x * (ulong)hidden + (ulong)j;
    const int nt = tile.z;
    ulong xrow[MOAK_TILE_TOKENS];
    float sums[MOAK_TILE_TOKENS];
    for (int t = 0; t < MOAK_TILE_TOKENS; t++)
        xrow[t] = (ulong)(tile.y + min(t, nt - 1)) * (ulong)inter;
    dot_row_tile(fmt, dq, ds, row, kp, inter, h, xrow, nt, scratch, sums);
    if (get_local_id(0) == 0) {
        const float b = has_dbias ? dbias[row] : 0.0f;
        for (int t = 0; t < MOAK_TILE_TOKENS; t++)
            if (t < nt)
                yp[(ulong)(tile.y + t) * (ulong)hidden + (ulong)j] = sums[t] + b;
    }
}

#define MOAK_MOE_KERNELS(suffix, fmt)                                                          \
    kernel void moe_gate_up_##suffix(                                                         \
        global const uchar *gq, global const uchar *gs, global const float *gbias,            \
        int has_gbias, global const uchar *uq, global const uchar *us,                        \
        global const float *ubias, int has_ubias, global const float *x,                      \
        global const int4 *tiles, global const int *pair_token, global float *h, int inter,   \
        int hidden, int kp, int act, float alpha, float limit, local float *scratch)          \
    {                                                                                          \
        moe_gate_up_body(fmt, gq, gs, gbias, has_gbias, uq, us, ubias, has_ubias, x, tiles,    \
                         pair_token, h, inter, hidden, kp, act, alpha, limit, scratch);        \
    }                                                                                          \
    kernel void moe_down_##suffix(global const uchar *dq, global const uchar *ds,             \
                                  global const float *dbias, int has_dbias,                   \
                                  global const float *h, global const int4 *tiles,            \
                                  global float *yp, int hidden, int inter, int kp,            \
                                  local float *scratch)                                        \
    {                                                                                          \
        moe_down_body(fmt, dq, ds, dbias, has_dbias, h, tiles, yp, hidden, inter, kp, scratch); \
    }

MOAK_MOE_KERNELS(f32, FMT_F32)
MOAK_MOE_KERNELS(f16, FMT_F16)
MOAK_MOE_KERNELS(bf16, FMT_BF16)
MOAK_MOE_KERNELS(q8_0, FMT_Q8_0)
MOAK_MOE_KERNELS(q4_0, FMT_Q4_0)
MOAK_MOE_KERNELS(i8_row, FMT_I8_ROW)
MOAK_MOE_KERNELS(i4_g32, FMT_I4_G32)
MOAK_MOE_KERNELS(i4_g128, FMT_I4_G128)
MOAK_MOE_KERNELS(fp8_e4m3_b128, FMT_FP8_E4M3_B128)
MOAK_MOE_KERNELS(mxfp4, FMT_MXFP4)
MOAK_MOE_KERNELS(mxfp4_st, FMT_MXFP4_ST)
MOAK_MOE_KERNELS(i4_g32_ct, FMT_I4_G32_CT)
MOAK_MOE_KERNELS(nvfp4, FMT_NVFP4)

/* One work-item per output element: global size (hidden rounded up, n_tokens). */
kernel void moe_combine(global const float *yp, global const int *pair_pos,
                        global const float *weights, global float *y, int hidden, int top_k)
{
    const int j = (int)get_global_id(0);
    const int t = (int)get_global_id(1);
    if (j >= hidden)
        return;
    float acc = 0.0f;
    for (int s = 0; s < top_k; s++) {
        const int slot = t * top_k + s;
        acc += weights[slot] * yp[(ulong)pair_pos[slot] * (ulong)hidden + (ulong)j];
    }
    y[(ulong)t * (ulong)hidden + (ulong)j] = acc;
}
