/*
 * common.cl — what every moak OpenCL kernel shares: format numbers, loaders
 * that turn four packed weights (or KV elements) into a float4, and the
 * inline helper attribute.  OpenCL C 1.2 only: half values are read with
 * vload_half (core), never through the half type, so no kernel needs
 * cl_khr_fp16.
 *
 * The host concatenates the .cl files in this order into one program:
 * common.cl, matmul_q.cl, moe.cl, route.cl, attention.cl, norm_rope.cl.
 */

#ifdef MOAK_TEST_BUILD_ERROR
/* Lets the tests prove that a compile error reaches the caller with the
 * compiler's log (MOAK_OPENCL_BUILD_OPTIONS=-DMOAK_TEST_BUILD_ERROR). */
#error "compile error requested with -DMOAK_TEST_BUILD_ERROR"
#endif

/* Kernels are specialised per format by calling one body with a constant
 * format: the body must be inlined for the constant to fold away. */
#if defined(__clang__)
#define MOAK_FN static inline __attribute__((always_inline))
#else
#define MOAK_FN static inline
#endif

/* moak_format values (include/moak.h). */
#define FMT_F32 0
#define FMT_F16 1
#define FMT_BF16 2
#define FMT_Q8_0 3
#define FMT_Q4_0 4
#define FMT_I8_ROW 5
#define FMT_I4_G32 6
#define FMT_I4_G128 7

/* Tokens that one work-group of a matmul-like kernel multiplies by each
 * weight row it reads (the weight is dequantised once for all of them). */
#define MOAK_TILE_TOKENS 4

/*
 * Packed weights (written by opencl_weights.c).  Every row is padded with
 * zeros to `kp` elements (a multiple of the format's block and of 4), so a
 * quad never crosses a row.  For the row `row` (expert * rows + r):
 *   F32      wq: float  [row][kp]
 *   F16      wq: half   [row][kp]                  (read with vload_half)
 *   BF16     wq: ushort [row][kp]                  (upper half of a float)
 *   Q8_0     wq: char   [row][kp]        ws: half [row][kp/32]       (d)
 *   Q4_0     wq: uchar  [row][kp/32][16] ws: half [row][kp/32]       (d; GGUF nibble order)
 *   I8_ROW   wq: char   [row][kp]        ws: float [row]             (scale)
 *   I4_G*    wq: uchar  [row][kp/2]      ws: half [row][kp/G][2]     (scale, min; even i low nibble)
 * `e` is the index of the first of the four elements (a multiple of 4).
 */
MOAK_FN float4 load_weight4(const int fmt, global const uchar *wq, global const uchar *ws,
                            ulong row, int kp, int e)
{
    const ulong at = row * (ulong)kp + (ulong)e; /* element index in the whole tensor */
    switch (fmt) {
    case FMT_F32:
        return vload4(0, (global const float *)wq + at);
    case FMT_F16:
        return vload_half4((size_t)(at / 4), (global const half *)wq);
    case FMT_BF16: {
        const ushort4 u = vload4(0, (global const ushort *)wq + at);
        return as_float4(convert_uint4(u) << (uint4)16);
    }
    case FMT_Q8_0: {
        const float d = vload_half((size_t)(at / 32), (global const half *)ws);
        return convert_float4(vload4(0, (global const char *)wq + at)) * d;
    }
    case FMT_Q4_0: {
        /* block b holds elements 32b..32b+31; byte j of it holds element j
         * (low nibble) and element j + 16 (high nibble) */
        const float d = vload_half((size_t)(at / 32), (global const half *)ws);
        const int j = e & 31;
        const uchar4 b = vload4(0, wq + (at - (ulong)j) / 2 + (ulong)(j & 15));
        const uchar4 nib = j < 16 ? (b & (uchar4)15) : (b >> (uchar4)4);
        return (convert_float4(nib) - 8.0f) * d;
    }
    case FMT_I8_ROW: {
        const float s = ((global const float *)ws)[row];
        return convert_float4(vload4(0, (global const char *)wq + at)) * s;
    }
    case FMT_I4_G32:
    case FMT_I4_G128: {
        const ulong group = at / (fmt == FMT_I4_G32 ? 32 : 128);
        const float2 sm = vload_half2((size_t)group, (global const half *)ws);
        const uchar2 b = vload2(0, wq + at / 2);
        const float4 nib = (float4)((float)(b.x & 15), (float)(b.x >> 4), (float)(b.y & 15),
                                    (float)(b.y >> 4));
        return nib * sm.x + sm.y;
    }
    default:
        return (float4)(0.0f);
    }
}

/* Four activations x[e..e+3] of a row of k; zeros past the end. */
MOAK_FN float4 load_act4(global const float *x, int e, int k)
{
    if (e + 4 <= k)
        return vload4(0, x + e);
    float4 v = (float4)(0.0f);
    if (e < k)
        v.s0 = x[e];
    if (e + 1 < k)
        v.s1 = x[e + 1];
    if (e + 2 < k)
        v.s2 = x[e + 2];
    return v;
}

/*
 * The dot products of one packed weight row with up to MOAK_TILE_TOKENS
 * activation rows (x + xrow[t], t < nt, each of k floats), by the whole
 * work-group: work-item i takes quads i, i + lws, ... (neighbours read
 * neighbouring bytes), then a tree reduction in `scratch`
 * ([MOAK_TILE_TOKENS * lws] floats; lws a power of two).  The result is
 * valid in every work-item.  Every work-item must call it (barriers).
 */
MOAK_FN void dot_row_tile(const int fmt, global const uchar *wq, global const uchar *ws, ulong row,
                          int kp, int k, global const float *x, const ulong xrow[MOAK_TILE_TOKENS],
                          int nt, local float *scratch, float sums[MOAK_TILE_TOKENS])
{
    const int lid = (int)get_local_id(0), lws = (int)get_local_size(0);
    float acc[MOAK_TILE_TOKENS];
    for (int t = 0; t < MOAK_TILE_TOKENS; t++)
        acc[t] = 0.0f;
    for (int e = 4 * lid; e < k; e += 4 * lws) {
        const float4 w = load_weight4(fmt, wq, ws, row, kp, e);
        for (int t = 0; t < MOAK_TILE_TOKENS; t++)
            if (t < nt)
                acc[t] += dot(w, load_act4(x + xrow[t], e, k));
    }
    for (int t = 0; t < MOAK_TILE_TOKENS; t++)
        scratch[t * lws + lid] = acc[t];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int half_size = lws / 2; half_size > 0; half_size /= 2) {
        if (lid < half_size)
            for (int t = 0; t < MOAK_TILE_TOKENS; t++)
                scratch[t * lws + lid] += scratch[t * lws + lid + half_size];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int t = 0; t < MOAK_TILE_TOKENS; t++)
        sums[t] = scratch[t * lws];
    /* the caller may reuse scratch right away */
    barrier(CLK_LOCAL_MEM_FENCE);
}
