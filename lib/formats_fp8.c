/* FP8 E4M3 ("fn": max 448, no Inf) with one f32 scale per 128 x 128 block,
 * as DeepSeek-V3, MiniMax-M2, GLM and Qwen FP8 checkpoints store it
 * (weight: e4m3fn [rows][cols], weight_scale_inv: f32 [rows/128][cols/128],
 * x = fp8 * scale).  Conversions work on the bits, so they are the same on
 * every machine and need no FP8 instructions. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "formats_release.h"

float moak_e4m3_to_f32(uint8_t code)
{
    const int exponent = (code >> 3) & 15, mantissa = code & 7;
    float magnitude;
    if (exponent == 15 && mantissa == 7)
        magnitude = NAN;                                  /* 0x7f / 0xff */
    else if (exponent == 0)
        magnitude = ldexpf((float)mantissa, -9);          /* subnormal: m * 2^-9 */
    else
        magnitude = ldexpf((float)(8 + mantissa), exponent - 10);
    return (code & 0x80) ? -magnitude : magnitude;
}

uint8_t moak_f32_to_e4m3(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const uint8_t sign = (uint8_t)((bits >> 24) & 0x80u);
    const uint32_t magnitude = bits & 0x7fffffffu;
    const float a = fabsf(x);
    /* NaN, Inf and everything that rounds past 448: E4M3fn has no Inf, and
     * 464 (half-way to the NaN code's 480) rounds to 448, the even one. */
    if (magnitude > 0x7f800000u || a > 464.0f)
        return (uint8_t)(sign | 0x7f);
    if (a < 0x1p-6f) {
        /* subnormal: the value in units of 2^-9 (exact scaling), ties to even;
         * 8 units is the smallest normal's code, as it should be */
        const float units = a * 512.0f;
        uint32_t q = (uint32_t)units;
        const float rest = units - (float)q;
        if (rest > 0.5f || (rest == 0.5f && (q & 1u)))
            q++;
        return (uint8_t)(sign | q);
    }
    /* normal: keep 3 of the 23 mantissa bits, ties to even; a carry bumps
     * the exponent through the 4-bit significand */
    int exponent = (int)(magnitude >> 23) - 127;            /* -6 .. 8 */
    uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
    uint32_t q = significand >> 20;                          /* 8 .. 15 */
    const uint32_t rest = significand & 0xfffffu;
    if (rest > 0x80000u || (rest == 0x80000u && (q & 1u)))
        q++;
    if (q == 16) {
        q = 8;
        exponent++;
    }
    return (uint8_t)(sign | ((exponent + 7) << 3) | (q & 7u));
}

void moak_fp8_quantize(const float *src, int64_t rows, int64_t cols, uint8_t *data, uint8_t *scales)
{
    const int64_t col_blocks = cols / MOAK_FP8_BLOCK;
    for (int64_t rb = 0; rb < rows; rb += MOAK_FP8_BLOCK) {
        const int64_t rend = rb + MOAK_FP8_BLOCK < rows ? rb + MOAK_FP8_BLOCK : rows;
        for (int64_t cb = 0; cb < col_blocks; cb++) {
            const int64_t c0 = cb * MOAK_FP8_BLOCK;
            float amax = 0.0f;
            for (int64_t r = rb; r < rend; r++)
                for (int64_t c = c0; c < c0 + MOAK_FP8_BLOCK; c++) {
                    const float v = fabsf(src[r * cols + c]);
                    amax = v > amax ? v : amax;
                }
            /* amax / 448 keeps every |x / scale| <= 448 (E4M3fn would turn
             * anything past 464 into NaN); an all-zero block gets 1 */
            const float scale = amax > 0.0f ? amax / 448.0f : 1.0f;
            /* scales may be unaligned (the caller's buffer) */
            memcpy(scales + 4 * ((rb / MOAK_FP8_BLOCK) * col_blocks + cb), &scale, sizeof scale);
            for (int64_t r = rb; r < rend; r++)
                for (int64_t c = c0; c < c0 + MOAK_FP8_BLOCK; c++)
                    data[r * cols + c] = moak_f32_to_e4m3(src[r * cols + c] / scale);
        }
    }
}

void moak_fp8_dequantize_row(const uint8_t *row, const uint8_t *row_scales, int64_t cols, float *dst)
{
    for (int64_t cb = 0; cb < cols; cb += MOAK_FP8_BLOCK) {
        float scale;
        memcpy(&scale, row_scales + 4 * (cb / MOAK_FP8_BLOCK), sizeof scale);
        for (int64_t c = cb; c < cb + MOAK_FP8_BLOCK; c++)
            dst[c] = moak_e4m3_to_f32(row[c]) * scale;
    }
}
