/*
 * norm_rope.cl — the elementwise ops around MoE and attention.
 */

/* y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * gamma: one work-group per row
 * (global size (lws, n_rows)), sum of squares reduced as a tree in scratch
 * ([lws] floats, lws a power of two). */
kernel void rmsnorm(global const float *x, global const float *gamma, int has_gamma,
                    global float *y, int dim, float eps, local float *scratch)
{
    const int lid = (int)get_local_id(0), lws = (int)get_local_size(0);
    const ulong base = (ulong)get_group_id(1) * (ulong)dim;
    float acc = 0.0f;
    for (int d = lid; d < dim; d += lws)
        acc += x[base + d] * x[base + d];
    scratch[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int half_size = lws / 2; half_size > 0; half_size /= 2) {
        if (lid < half_size)
            scratch[lid] += scratch[lid + half_size];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float inv_rms = 1.0f / sqrt(scratch[0] / (float)dim + eps);
    for (int d = lid; d < dim; d += lws)
        y[base + d] = x[base + d] * inv_rms * (has_gamma ? gamma[d] : 1.0f);
}

/* RoPE with angles from the host: cos_sin[token][i] = (cos, sin) of pair i
 * (computed in double there: a float angle of a large position is off by
 * far more than the op's bound).  One work-item per element: global size
 * (head_dim rounded up, n_tokens * n_heads).  layout 0 = NeoX pairs
 * (i, i + rot/2), 1 = GPT-J pairs (2i, 2i + 1); dims >= rot pass through. */
kernel void rope(global const float *x, global const float2 *cos_sin, global float *y,
                 int n_heads, int head_dim, int rot, int layout)
{
    const int d = (int)get_global_id(0);
    const int th = (int)get_global_id(1);
    if (d >= head_dim)
        return;
    const ulong base = (ulong)th * (ulong)head_dim;
    const int half_rot = rot / 2;
    float v = x[base + d];
    if (d < rot) {
        global const float2 *cs_row = cos_sin + (ulong)(th / n_heads) * (ulong)half_rot;
        if (layout == 0) {
            const int i = d < half_rot ? d : d - half_rot;
            const float2 cs = cs_row[i];
            v = d < half_rot ? x[base + d] * cs.x - x[base + d + half_rot] * cs.y
                             : x[base + d - half_rot] * cs.y + x[base + d] * cs.x;
        } else {
            const float2 cs = cs_row[d / 2];
            v = (d & 1) == 0 ? x[base + d] * cs.x - x[base + d + 1] * cs.y
                             : x[base + d - 1] * cs.y + x[base + d] * cs.x;
        }
    }
    y[base + d] = v;
}
