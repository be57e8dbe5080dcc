/*
 * matmul_q.cl — y[m][n] = x[m][k] * W^T (+ bias) for every packed weight
 * format (layouts in common.cl).  One work-group computes one output row r
 * for MOAK_TILE_TOKENS tokens, so each weight row is dequantised once per
 * tile: global size (n * lws, ceil(m / MOAK_TILE_TOKENS)), local size
 * (lws, 1), lws a power of two.  row0 = expert * n selects the expert.
 * Accuracy: f32 products summed in f32 (per work-item, then a tree).
 */

MOAK_FN void matmul_body(const int fmt, global const uchar *wq, global const uchar *ws,
                         global const float *bias, int has_bias, global const float *x,
                         global float *y, int m, int n, int k, int kp, ulong row0,
                         local float *scratch)
{
    const int r = (int)get_group_id(0);
    const int t0 = (int)get_group_id(1) * MOAK_TILE_TOKENS;
    const int nt = min(MOAK_TILE_TOKENS, m - t0);
    ulong xrow[MOAK_TILE_TOKENS];
    float sums[MOAK_TILE_TOKENS];
    for (int t = 0; t < MOAK_TILE_TOKENS; t++)
        xrow[t] = (ulong)(t0 + min(t, nt - 1)) * (ulong)k;
    dot_row_tile(fmt, wq, ws, row0 + (ulong)r, kp, k, x, xrow, nt, scratch, sums);
    if (get_local_id(0) == 0) {
        const float b = has_bias ? bias[row0 + (ulong)r] : 0.0f;
        for (int t = 0; t < MOAK_TILE_TOKENS; t++)
            if (t < nt)
                y[(ulong)(t0 + t) * (ulong)n + (ulong)r] = sums[t] + b;
    }
}

#define MOAK_MATMUL_KERNEL(name, fmt)                                                         \
    kernel void name(global const uchar *wq, global const uchar *ws, global const float *bias, \
                     int has_bias, global const float *x, global float *y, int m, int n, int k, \
                     int kp, ulong row0, local float *scratch)                                  \
    {                                                                                          \
        matmul_body(fmt, wq, ws, bias, has_bias, x, y, m, n, k, kp, row0, scratch);             \
    }

MOAK_MATMUL_KERNEL(matmul_f32, FMT_F32)
MOAK_MATMUL_KERNEL(matmul_f16, FMT_F16)
MOAK_MATMUL_KERNEL(matmul_bf16, FMT_BF16)
MOAK_MATMUL_KERNEL(matmul_q8_0, FMT_Q8_0)
MOAK_MATMUL_KERNEL(matmul_q4_0, FMT_Q4_0)
MOAK_MATMUL_KERNEL(matmul_i8_row, FMT_I8_ROW)
MOAK_MATMUL_KERNEL(matmul_i4_g32, FMT_I4_G32)
MOAK_MATMUL_KERNEL(matmul_i4_g128, FMT_I4_G128)
MOAK_MATMUL_KERNEL(matmul_fp8_e4m3_b128, FMT_FP8_E4M3_B128)
MOAK_MATMUL_KERNEL(matmul_mxfp4, FMT_MXFP4)
MOAK_MATMUL_KERNEL(matmul_mxfp4_st, FMT_MXFP4_ST)
MOAK_MATMUL_KERNEL(matmul_i4_g32_ct, FMT_I4_G32_CT)
MOAK_MATMUL_KERNEL(matmul_nvfp4, FMT_NVFP4)
