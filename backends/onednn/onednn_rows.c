/*
 * The row work the oneDNN backend does in C around its matmul primitives,
 * spread over the OpenMP team: preparing activations (copy, bf16 rounding,
 * two-level s8 quantization), the s8 epilogue, the GLUs of the MoE FFN and
 * the weighted sum back per token (in slot order).  The per-row kernels
 * are in onednn_row_kernels_body.h, one table per ISA.
 *
 * Two-level s8: x ~= s_hi * q_hi + s_lo * q_lo, q_lo quantizing the
 * residual x - s_hi * q_hi (|residual| <= s_hi / 2), each level symmetric
 * per row (scale = amax / 127).  The error of one element is at most
 * s_lo / 2 <= amax / 64516, against amax / 254 for one level.  The two
 * levels run as 2m rows of the same matmul, so the weights are read once
 * and decode (memory-bound) gets the extra rows for free; prefill pays
 * twice the int8 multiply-adds.  One level lost to moak's other int8
 * paths, which scale activations per block of 32 (oneDNN 2.6 cannot): on
 * the GLU output of MoE (heavy-tailed) it exceeded MOAK_BOUND_MOE_INT for
 * about one random seed in twelve (max error 0.073-0.103 over 12 seeds of
 * test_moe, against 3e-4 with two levels).
 *
 * Why the s8 epilogue is here and not in oneDNN: oneDNN 2.6 takes per-column
 * output scales (the weight rows) as an attribute, but a primitive created
 * with runtime scale values falls back from brgemm to gemm:jit, baking the
 * values in would make one primitive per weight (per expert), and a per-row
 * scale (the activation rows) as a binary post-op of shape [m][1] falls back
 * to the reference implementation (ref_int8, about 10^4 times slower).  So
 * the primitive writes the exact s32 sums and this file scales them.
 *
 * Every loop uses a static schedule and each element's value does not
 * depend on which thread computed it, so results are the same for every
 * thread count; inside the MoE's own parallel region callers pass
 * threads = 1.
 */
#include "config.h"

#include <string.h>

#include "onednn_internal.h"

/* Below this many elements a loop stays on the calling thread: waking the
 * team costs more than the work. */
#define ONEDNN_PARALLEL_MIN_ELEMS 32768

const onednn_row_kernels *onednn_row_kernels_for(const moak_hw_info *hw)
{
#ifdef MOAK_BUILD_AVX512
    const uint64_t need = MOAK_ISA_AVX512F | MOAK_ISA_AVX512BW | MOAK_ISA_AVX512VL | MOAK_ISA_AVX512VNNI |
                          MOAK_ISA_FMA | MOAK_ISA_F16C | MOAK_ISA_AVX2;
    if (hw && (hw->isa & need) == need)
        return &onednn_row_kernels_avx512;
#else
    (void)hw;
#endif
    return &onednn_row_kernels_generic;
}

void onednn_prepare_rows(const onednn_row_kernels *rk, int threads, onednn_kind kind, const onednn_rows_in *in,
                         int64_t padded_rows, void *dst, float *scales)
{
    const int64_t k = in->k;
    const size_t row_bytes = (size_t)k * onednn_kind_elem_bytes(kind);
    const int64_t rows = in->rows;
#pragma omp parallel for schedule(static) num_threads(threads) if (rows * k >= ONEDNN_PARALLEL_MIN_ELEMS)
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in->base + (in->index ? in->index[r] : r) * k;
        char *d = (char *)dst + (size_t)r * row_bytes;
        if (kind == ONEDNN_KIND_F32) {
            memcpy(d, x, row_bytes);
        } else if (kind == ONEDNN_KIND_BF16) {
            rk->to_bf16(x, k, (uint16_t *)d);
        } else {
            int8_t *lo = (int8_t *)dst + (size_t)(rows + r) * row_bytes;
            rk->quantize_two_level(x, k, (int8_t *)d, lo, &scales[r], &scales[rows + r]);
        }
    }
    const int64_t used = onednn_act_rows(kind, rows);
    if (padded_rows > used) {
        memset((char *)dst + (size_t)used * row_bytes, 0, (size_t)(padded_rows - used) * row_bytes);
        if (scales)
            for (int64_t r = used; r < padded_rows; r++)
                scales[r] = 0.0f;
    }
}

void onednn_s8_epilogue(const onednn_row_kernels *rk, int threads, const int32_t *acc, int64_t rows, int64_t n,
                        const float *act_scales, const float *w_scales, const float *bias, float *out)
{
#pragma omp parallel for schedule(static) num_threads(threads) if (rows * n >= ONEDNN_PARALLEL_MIN_ELEMS)
    for (int64_t r = 0; r < rows; r++)
        rk->s8_epilogue(acc + r * n, acc + (rows + r) * n, act_scales[r], act_scales[rows + r], w_scales, bias, n,
                        out + r * n);
}

void onednn_glu(const onednn_row_kernels *rk, int threads, const moak_moe_args *args, const float *gate,
                const float *up, int64_t rows, int64_t n, float *h)
{
    const int64_t total = rows * n;
    /* Blocks of 4096 elements: the unit of the static schedule. */
    const int64_t block = 4096;
    const int64_t n_blocks = (total + block - 1) / block;
#pragma omp parallel for schedule(static) num_threads(threads) if (total >= ONEDNN_PARALLEL_MIN_ELEMS)
    for (int64_t b = 0; b < n_blocks; b++) {
        const int64_t lo = b * block;
        const int64_t count = lo + block < total ? block : total - lo;
        rk->glu(args->activation, args->swiglu_alpha, args->swiglu_limit, gate + lo, up + lo, count, h + lo);
    }
}

void onednn_combine(const onednn_row_kernels *rk, int threads, const float *pair_out, const int32_t *pos,
                    const float *weights, int64_t n_tokens, int32_t top_k, int64_t n, float *y)
{
    /* Each token sums its slots in slot order: the same additions in the
     * same order whatever the thread count. */
#pragma omp parallel for schedule(static) num_threads(threads) if (n_tokens * top_k * n >= ONEDNN_PARALLEL_MIN_ELEMS)
    for (int64_t t = 0; t < n_tokens; t++)
        for (int32_t s = 0; s < top_k; s++)
            rk->weighted_add(weights[t * top_k + s], pair_out + (int64_t)pos[t * top_k + s] * n, n, s == 0,
                             y + t * n);
}
