/* The release formats' shapes (which keep split scales, how many bytes a
 * row's scales take) and the per-format switch of their codecs. */
#include "config.h"

#include <string.h>

#include "formats_release.h"

bool moak_format_has_split_scales(moak_format f)
{
    return f == MOAK_FORMAT_FP8_E4M3_B128 || f == MOAK_FORMAT_MXFP4_ST || f == MOAK_FORMAT_I4_G32_CT ||
           f == MOAK_FORMAT_NVFP4;
}

bool moak_format_is_release(moak_format f)
{
    return f >= MOAK_FORMAT_FP8_E4M3_B128 && f < MOAK_FORMAT_COUNT;
}

size_t moak_release_row_scale_bytes(moak_format f, int64_t cols)
{
    switch (f) {
    case MOAK_FORMAT_FP8_E4M3_B128: return (size_t)(cols / MOAK_FP8_BLOCK) * 4; /* f32 per 128 */
    case MOAK_FORMAT_MXFP4_ST: return (size_t)(cols / 32);                      /* E8M0 per 32 */
    case MOAK_FORMAT_I4_G32_CT: return (size_t)(cols / 32) * 2;                 /* bf16 per 32 */
    case MOAK_FORMAT_NVFP4: return 4;                                           /* the tensor's f32 */
    default: return 0;
    }
}

size_t moak_release_scales_bytes(moak_format f, int64_t rows, int64_t cols)
{
    switch (f) {
    case MOAK_FORMAT_FP8_E4M3_B128:
        return (size_t)((rows + MOAK_FP8_BLOCK - 1) / MOAK_FP8_BLOCK) * moak_release_row_scale_bytes(f, cols);
    case MOAK_FORMAT_MXFP4_ST:
    case MOAK_FORMAT_I4_G32_CT:
        return (size_t)rows * moak_release_row_scale_bytes(f, cols);
    case MOAK_FORMAT_NVFP4:
        return 4;
    default:
        return 0;
    }
}

const uint8_t *moak_release_row_scales(moak_format f, const uint8_t *scales, int64_t cols, int64_t r)
{
    switch (f) {
    case MOAK_FORMAT_FP8_E4M3_B128:
        return scales + (size_t)(r / MOAK_FP8_BLOCK) * moak_release_row_scale_bytes(f, cols);
    case MOAK_FORMAT_MXFP4_ST:
    case MOAK_FORMAT_I4_G32_CT:
        return scales + (size_t)r * moak_release_row_scale_bytes(f, cols);
    default:
        return scales; /* NVFP4: one scale for every row; MXFP4: none */
    }
}

void moak_release_quantize(moak_format f, const float *src, int64_t rows, int64_t cols, uint8_t *data,
                           uint8_t *scales)
{
    const size_t row_bytes = moak_format_row_bytes(f, cols);
    const size_t scale_bytes = moak_release_row_scale_bytes(f, cols);
    switch (f) {
    case MOAK_FORMAT_FP8_E4M3_B128:
        moak_fp8_quantize(src, rows, cols, data, scales);
        return;
    case MOAK_FORMAT_NVFP4:
        moak_nvfp4_quantize(src, rows, cols, data, scales);
        return;
    case MOAK_FORMAT_MXFP4:
        for (int64_t r = 0; r < rows; r++)
            moak_mxfp4_quantize_row(src + r * cols, cols, data + (size_t)r * row_bytes);
        return;
    case MOAK_FORMAT_MXFP4_ST:
        for (int64_t r = 0; r < rows; r++)
            moak_mxfp4_st_quantize_row(src + r * cols, cols, data + (size_t)r * row_bytes,
                                       scales + (size_t)r * scale_bytes);
        return;
    case MOAK_FORMAT_I4_G32_CT:
        for (int64_t r = 0; r < rows; r++)
            moak_i4_ct_quantize_row(src + r * cols, cols, data + (size_t)r * row_bytes,
                                    scales + (size_t)r * scale_bytes);
        return;
    default:
        return;
    }
}

void moak_release_dequantize_row(moak_format f, const uint8_t *row, const uint8_t *row_scales, int64_t cols,
                                 float *dst)
{
    switch (f) {
    case MOAK_FORMAT_FP8_E4M3_B128:
        moak_fp8_dequantize_row(row, row_scales, cols, dst);
        return;
    case MOAK_FORMAT_MXFP4:
        moak_mxfp4_dequantize_row(row, cols, dst);
        return;
    case MOAK_FORMAT_MXFP4_ST:
        moak_mxfp4_st_dequantize_row(row, row_scales, cols, dst);
        return;
    case MOAK_FORMAT_I4_G32_CT:
        moak_i4_ct_dequantize_row(row, row_scales, cols, dst);
        return;
    case MOAK_FORMAT_NVFP4: {
        float tensor_scale;
        memcpy(&tensor_scale, row_scales, sizeof tensor_scale);
        moak_nvfp4_dequantize_row(row, tensor_scale, cols, dst);
        return;
    }
    default:
        return;
    }
}
