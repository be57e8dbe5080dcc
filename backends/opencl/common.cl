/*
 * common.cl — what every moak OpenCL kernel shares: format numbers, loaders
 * that turn four packed weights (or KV elements) into a float4, and the
 * inline helper attribute.  OpenCL C 1.2 only: half values are read with
 * vload_half (core), never through the half type, so no kernel needs
 * cl_khr_fp16.
 *
 * The host concatenates the .cl files in this order into one program:
 * common.cl, matmul_q.cl, moe.cl, lib/route_select.h (routing's steps,
 * shared with the core's C), route.cl, attention.cl, norm_rope.cl.
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
#define FMT_FP8_E4M3_B128 8
#define FMT_MXFP4 9
#define FMT_MXFP4_ST 10
#define FMT_I4_G32_CT 11
#define FMT_NVFP4 12

/* E2M1 codes as doubled values (exact small integers): the FP4 formats'
 * 16-entry table.  Code 8 is +0 (GGUF's reading; gpt-oss's -0.0 adds the same). */
constant float e2m1_doubled[16] = {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 6.0f, 8.0f, 12.0f,
                                   0.0f, -1.0f, -2.0f, -3.0f, -4.0f, -6.0f, -8.0f, -12.0f};

/* Four FP4 codes (low nibbles, or high ones) through the table. */
MOAK_FN float4 e2m1_doubled4(const uchar4 nib)
{
    return (float4)(e2m1_doubled[nib.x], e2m1_doubled[nib.y], e2m1_doubled[nib.z], e2m1_doubled[nib.w]);
}

/* 2^(e - 128) for an E8M0 byte, built from its bits (no exp2, exact; e < 2 is
 * an f32 subnormal), as ggml's GGML_E8M0_TO_FP32_HALF. */
MOAK_FN float e8m0_half(const uint e)
{
    return as_float(e < 2u ? 0x00200000u << e : (e - 1u) << 23);
}

/* E4M3fn by integer bit arithmetic (no fp8 or fp16 support needed): a
 * normal code moves its exponent and mantissa into an f32's fields; a
 * subnormal is m * 2^-9; 0x7f/0xff is NaN. */
MOAK_FN float e4m3_to_float(const uint c)
{
    const uint exponent = (c >> 3) & 15u, mantissa = c & 7u;
    const uint sign = (c & 0x80u) << 24;
    float magnitude;
    if (exponent == 0u)
        magnitude = (float)mantissa * 0x1p-9f;
    else if (exponent == 15u && mantissa == 7u)
        magnitude = as_float(0x7fc00000u);
    else
        magnitude = as_float(((exponent + 120u) << 23) | (mantissa << 20));
    return as_float(as_uint(magnitude) | sign);
}

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
 *   FP8_E4M3_B128 wq: uchar [row][kp]    ws: float [row][kp/128]     (the row's block scales)
 *   MXFP4    wq: uchar  [row][kp/32][16] ws: uchar [row][kp/32]      (E8M0; GGUF nibble order)
 *   MXFP4_ST wq: uchar  [row][kp/2]      ws: uchar [row][kp/32]      (E8M0; even i low nibble)
 *   I4_G32_CT wq: uchar [row][kp/2]      ws: ushort [row][kp/32]     (bf16; nibble = q + 8, even i low)
 *   NVFP4    wq: uchar  [row][kp/64][32] ws: float [row][kp/16]      (UE4M3 x tensor scale, decoded
 *                                        by the host; GGUF nibble order per 16-element sub-block)
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
    case FMT_FP8_E4M3_B128: {
        const float s = ((global const float *)ws)[at / 128];
        const uchar4 c = vload4(0, wq + at);
        return (float4)(e4m3_to_float(c.x), e4m3_to_float(c.y), e4m3_to_float(c.z),
                        e4m3_to_float(c.w)) * s;
    }
    case FMT_MXFP4: {
        /* as Q4_0: byte j of a block holds element j (low) and j + 16 (high) */
        const float unit = e8m0_half(ws[at / 32]);
        const int j = e & 31;
        const uchar4 b = vload4(0, wq + (at - (ulong)j) / 2 + (ulong)(j & 15));
        return e2m1_doubled4(j < 16 ? (b & (uchar4)15) : (b >> (uchar4)4)) * unit;
    }
    case FMT_MXFP4_ST:
    case FMT_I4_G32_CT: {
        const uchar2 b = vload2(0, wq + at / 2);
        const uchar4 nib = (uchar4)(b.x & 15, b.x >> 4, b.y & 15, b.y >> 4);
        if (fmt == FMT_MXFP4_ST)
            return e2m1_doubled4(nib) * e8m0_half(ws[at / 32]);
        const float scale = as_float((uint)((global const ushort *)ws)[at / 32] << 16);
        return (convert_float4(nib) - 8.0f) * scale;
    }
    case FMT_NVFP4: {
        /* 16-element sub-block s of a 64-block: bytes 8s..8s+7 hold element
         * j (low nibble) and j + 8 (high) */
        const float d = ((global const float *)ws)[at / 16];
        const int j = e & 15;
        const uchar4 b = vload4(0, wq + (at - (ulong)j) / 2 + (ulong)(j & 7));
        return e2m1_doubled4(j < 8 ? (b & (uchar4)15) : (b >> (uchar4)4)) * (0.5f * d);
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
