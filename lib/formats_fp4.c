/* The E2M1 (FP4) family: MXFP4 as GGUF stores it (block_mxfp4), MXFP4 as
 * gpt-oss's safetensors store it (blocks + E8M0 scales), and NVFP4 as GGUF
 * stores it (block_nvfp4) with NVIDIA's per-tensor f32 scale kept apart.
 *
 * MXFP4's quantizer reproduces ggml's quantize_row_mxfp4_ref bit for bit: the
 * block exponent from floorf(log2f(amax)) (log2f, not an exact floor of the
 * exponent bits: for amax just below a power of two ggml's log2f rounds up,
 * and so must we), the element code by a search of the 16-entry table of
 * doubled E2M1 values times 2^(e - 128), strictly smaller error wins (ties
 * to the lower index: the smaller magnitude).  The table products are exact
 * (small integers times a power of two), so contraction into FMA cannot
 * change a code. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "formats_release.h"

#define MXFP4_BLOCK 32
#define NVFP4_BLOCK 64
#define NVFP4_SUB 16

/* E2M1 codes 0..15 as doubled values (ggml's kvalues_mxfp4): exact int8. */
static const int8_t e2m1_doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

float moak_e2m1_to_f32(uint8_t nibble)
{
    static const float magnitude[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    const float m = magnitude[nibble & 7];
    return (nibble & 8) ? -m : m;
}

/* 2^(e - 128) for an E8M0 byte, as ggml's GGML_E8M0_TO_FP32_HALF: the half
 * makes the doubled table give E2M1 x 2^(e - 127); e < 2 is an f32 subnormal. */
static float e8m0_half(uint8_t e)
{
    const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The code whose doubled value times unit is nearest x, ties to the lower
 * code.  The product goes through a volatile so that no compiler fuses it
 * with the subtraction into an FMA (aarch64 would): for NVFP4 the product
 * is rounded, and one rounding more or less could flip a tie. */
static int nearest_code(float x, float unit)
{
    int best = 0;
    float best_err = fabsf(x);
    for (int i = 1; i < 16; i++) {
        volatile float value = (float)e2m1_doubled[i] * unit;
        const float err = fabsf(value - x);
        if (err < best_err) {
            best = i;
            best_err = err;
        }
    }
    return best;
}

/* One GGUF block: e, and the 32 codes in element order. */
static uint8_t mxfp4_block_codes(const float *x, uint8_t codes[MXFP4_BLOCK])
{
    float amax = 0.0f;
    for (int j = 0; j < MXFP4_BLOCK; j++)
        if (amax < fabsf(x[j]))
            amax = fabsf(x[j]);
    uint8_t e = 0;
    if (amax > 0.0f) {
        /* ggml casts this float to uint8 directly; below 0 (amax < 2^-125)
         * that cast is undefined, and moak takes 0 */
        const float exponent = floorf(log2f(amax)) - 2 + 127;
        e = exponent > 0.0f ? (uint8_t)exponent : 0;
    }
    const float unit = e8m0_half(e);
    for (int j = 0; j < MXFP4_BLOCK; j++)
        codes[j] = (uint8_t)nearest_code(x[j], unit);
    return e;
}

void moak_mxfp4_quantize_row(const float *src, int64_t cols, uint8_t *dst)
{
    uint8_t codes[MXFP4_BLOCK];
    for (int64_t b = 0; b < cols; b += MXFP4_BLOCK, dst += 1 + MXFP4_BLOCK / 2) {
        dst[0] = mxfp4_block_codes(src + b, codes);
        for (int j = 0; j < MXFP4_BLOCK / 2; j++)
            dst[1 + j] = (uint8_t)(codes[j] | (codes[j + MXFP4_BLOCK / 2] << 4));
    }
}

void moak_mxfp4_dequantize_row(const uint8_t *row, int64_t cols, float *dst)
{
    for (int64_t b = 0; b < cols; b += MXFP4_BLOCK, row += 1 + MXFP4_BLOCK / 2) {
        const float unit = e8m0_half(row[0]);
        for (int j = 0; j < MXFP4_BLOCK / 2; j++) {
            /* GGUF's table has +0 for code 8, and multiplies in f32 (e = 255
             * overflows to Inf there too) */
            dst[b + j] = (float)e2m1_doubled[row[1 + j] & 15] * unit;
            dst[b + j + MXFP4_BLOCK / 2] = (float)e2m1_doubled[row[1 + j] >> 4] * unit;
        }
    }
}

void moak_mxfp4_st_quantize_row(const float *src, int64_t cols, uint8_t *blocks, uint8_t *scales)
{
    uint8_t codes[MXFP4_BLOCK];
    for (int64_t b = 0; b < cols; b += MXFP4_BLOCK, blocks += MXFP4_BLOCK / 2) {
        /* GGUF's e is the same byte: e2m1 x 2 x 2^(e - 128) = e2m1 x 2^(e - 127) */
        scales[b / MXFP4_BLOCK] = mxfp4_block_codes(src + b, codes);
        for (int k = 0; k < MXFP4_BLOCK / 2; k++)
            blocks[k] = (uint8_t)(codes[2 * k] | (codes[2 * k + 1] << 4));
    }
}

void moak_mxfp4_st_dequantize_row(const uint8_t *blocks, const uint8_t *scales, int64_t cols, float *dst)
{
    for (int64_t b = 0; b < cols; b += MXFP4_BLOCK, blocks += MXFP4_BLOCK / 2) {
        /* ldexpf(e2m1, e - 127): exact, -0.0 for code 8 as in transformers'
         * table, Inf past f32's range (scale 255, |e2m1| >= 1) */
        const int shift = (int)scales[b / MXFP4_BLOCK] - 127;
        for (int k = 0; k < MXFP4_BLOCK / 2; k++) {
            dst[b + 2 * k] = ldexpf(moak_e2m1_to_f32(blocks[k] & 15), shift);
            dst[b + 2 * k + 1] = ldexpf(moak_e2m1_to_f32(blocks[k] >> 4), shift);
        }
    }
}

/* ---- NVFP4 ---------------------------------------------------------------------- */

float moak_ue4m3_to_f32(uint8_t code)
{
    const int exponent = (code >> 3) & 15, mantissa = code & 7;
    /* as GGUF reads it: bit 7 ignored, but only 0x7f (E4M3's NaN) reads as 0 */
    if (code == 0x7f)
        return 0.0f;
    if (exponent == 0)
        return ldexpf((float)mantissa, -9);
    return ldexpf((float)(8 + mantissa), exponent - 10);
}

/* ggml_fp32_to_ue4m3's rule: clamp to [0, 448]; subnormals (int)(x*512 + 0.5)
 * capped at 7; normals add the first dropped mantissa bit (half up); an
 * exponent field of 15 (from 256 up) saturates to 0x7e = 448. */
uint8_t moak_f32_to_ue4m3(float x)
{
    if (!(x > 0.0f))
        return 0;
    if (x > 448.0f)
        x = 448.0f;
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const int exponent = (int)((bits >> 23) & 0xff) - 127 + 7;
    if (exponent <= 0) {
        int m = (int)(x * 512.0f + 0.5f);
        return (uint8_t)(m > 7 ? 7 : m);
    }
    if (exponent >= 15)
        return 0x7e;
    int mantissa = (int)((bits >> 20) & 7) + (int)((bits >> 19) & 1);
    int e = exponent;
    if (mantissa > 7) {
        mantissa = 0;
        e++;
    }
    if (e >= 15)
        return 0x7e;
    return (uint8_t)((e << 3) | mantissa);
}

void moak_nvfp4_quantize(const float *src, int64_t rows, int64_t cols, uint8_t *data, uint8_t *tensor_scale)
{
    float amax = 0.0f;
    for (int64_t i = 0; i < rows * cols; i++)
        amax = fabsf(src[i]) > amax ? fabsf(src[i]) : amax;
    /* NVIDIA's recipe: the largest sub-block scale lands on UE4M3's 448 */
    const float ts = amax > 0.0f ? amax / (6.0f * 448.0f) : 1.0f;
    memcpy(tensor_scale, &ts, sizeof ts);
    const int64_t blocks = cols / NVFP4_BLOCK;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t b = 0; b < blocks; b++) {
            const float *x = src + r * cols + b * NVFP4_BLOCK;
            uint8_t *out = data + (r * blocks + b) * (4 + NVFP4_BLOCK / 2);
            for (int s = 0; s < 4; s++) {
                const float *xs = x + s * NVFP4_SUB;
                float sub_amax = 0.0f;
                for (int j = 0; j < NVFP4_SUB; j++)
                    sub_amax = fabsf(xs[j]) > sub_amax ? fabsf(xs[j]) : sub_amax;
                const uint8_t d = moak_f32_to_ue4m3(sub_amax / 6.0f / ts);
                out[s] = d;
                const float unit = 0.5f * moak_ue4m3_to_f32(d) * ts;
                for (int j = 0; j < NVFP4_SUB / 2; j++)
                    out[4 + 8 * s + j] = (uint8_t)(nearest_code(xs[j], unit) |
                                                   (nearest_code(xs[j + 8], unit) << 4));
            }
        }
    }
}

void moak_nvfp4_dequantize_row(const uint8_t *row, float tensor_scale, int64_t cols, float *dst)
{
    for (int64_t b = 0; b < cols; b += NVFP4_BLOCK, row += 4 + NVFP4_BLOCK / 2) {
        for (int s = 0; s < 4; s++) {
            const float half_d = 0.5f * moak_ue4m3_to_f32(row[s]);
            const uint8_t *qs = row + 4 + 8 * s;
            float *y = dst + b + NVFP4_SUB * s;
            /* GGUF's reading (doubled table, +0 for code 8, half the scale):
             * the product is exact (at most 6 significant bits); one rounding
             * for the tensor scale */
            for (int j = 0; j < 8; j++) {
                y[j] = (float)e2m1_doubled[qs[j] & 15] * half_d * tensor_scale;
                y[j + 8] = (float)e2m1_doubled[qs[j] >> 4] * half_d * tensor_scale;
            }
        }
    }
}
