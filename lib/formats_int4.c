/* INT4, symmetric, group 32, bf16 scales, packed as compressed-tensors'
 * "pack-quantized" format stores it (Kimi K2.x routed experts):
 * weight_packed int32 [rows][cols/8] with element 8w+i at bits 4i of word w
 * (so, little-endian, element 2k in the low nibble of byte k), the nibble
 * holding q + 8; weight_scale bf16 [rows][cols/32]; x = (nib - 8) * scale.
 *
 * Dequantization multiplies exactly in f32 (q has 4 bits, the scale 8: the
 * product is exact), where compressed-tensors rounds the product to bf16. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "formats_release.h"
#include "moak_backend.h"

#define CT_GROUP 32

void moak_i4_ct_quantize_row(const float *src, int64_t cols, uint8_t *packed, uint8_t *scales)
{
    for (int64_t g = 0; g < cols; g += CT_GROUP) {
        const float *x = src + g;
        float amax = 0.0f;
        for (int j = 0; j < CT_GROUP; j++)
            amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        /* compressed-tensors: scale = amax / ((7 - (-8)) / 2), in bf16; a
         * zero scale becomes 2^-7 (bf16's machine epsilon) */
        uint16_t scale_bits = moak_f32_to_bf16(amax / 7.5f);
        if ((scale_bits & 0x7fffu) == 0)
            scale_bits = moak_f32_to_bf16(0x1p-7f);
        memcpy(scales + 2 * (g / CT_GROUP), &scale_bits, 2);
        const float scale = moak_bf16_to_f32(scale_bits);
        for (int j = 0; j < CT_GROUP; j += 2) {
            int q[2];
            for (int h = 0; h < 2; h++) {
                const float v = rintf(x[j + h] / scale); /* ties to even */
                q[h] = !(v == v) ? 0 : v < -8.0f ? -8 : v > 7.0f ? 7 : (int)v;
            }
            packed[(g + j) / 2] = (uint8_t)((q[0] + 8) | ((q[1] + 8) << 4));
        }
    }
}

void moak_i4_ct_dequantize_row(const uint8_t *packed, const uint8_t *scales, int64_t cols, float *dst)
{
    for (int64_t g = 0; g < cols; g += CT_GROUP) {
        uint16_t scale_bits;
        memcpy(&scale_bits, scales + 2 * (g / CT_GROUP), 2);
        const float scale = moak_bf16_to_f32(scale_bits);
        for (int64_t j = g; j < g + CT_GROUP; j += 2) {
            const uint8_t byte = packed[j / 2];
            dst[j] = (float)((int)(byte & 15) - 8) * scale;
            dst[j + 1] = (float)((int)(byte >> 4) - 8) * scale;
        }
    }
}
