/* The release formats of moak.h (FP8_E4M3_B128, MXFP4, MXFP4_ST, I4_G32_CT,
 * NVFP4): the scalar codecs each of formats_fp8.c, formats_fp4.c and
 * formats_int4.c implements, and what lib/formats.c and lib/weight.c call.
 *
 * Split-scale formats keep their scales in a tensor of their own, as the
 * checkpoints do.  Backends never see that tensor: lib/weight.c hands them
 * the "row-local" form (moak_backend.h), each row's bytes followed by the
 * scales that row uses, so that one row decodes on its own. */
#ifndef MOAK_LIB_FORMATS_RELEASE_H
#define MOAK_LIB_FORMATS_RELEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moak.h"

#define MOAK_FP8_BLOCK 128          /* FP8_E4M3_B128: 128 x 128 elements per scale */

/* True for the formats whose scales live in a separate tensor. */
bool moak_format_has_split_scales(moak_format f);
/* True for every release format (cols must be a multiple of the block). */
bool moak_format_is_release(moak_format f);
/* Bytes of the scales one row uses in the row-local form (0 for formats
 * whose blocks carry their scales); cols a multiple of the block. */
size_t moak_release_row_scale_bytes(moak_format f, int64_t cols);
/* Bytes of one expert's scales tensor for rows x cols (no overflow check:
 * callers have bounded rows * row_bytes already). */
size_t moak_release_scales_bytes(moak_format f, int64_t rows, int64_t cols);
/* Where row r's scales start in one expert's scales tensor. */
const uint8_t *moak_release_row_scales(moak_format f, const uint8_t *scales, int64_t cols, int64_t r);

/* One expert, rows x cols, cols a multiple of the block: data and scales
 * (scales unused and may be NULL for MXFP4). */
void moak_release_quantize(moak_format f, const float *src, int64_t rows, int64_t cols,
                           uint8_t *data, uint8_t *scales);
/* Decode one row given its data and its scales (moak_release_row_scales). */
void moak_release_dequantize_row(moak_format f, const uint8_t *row, const uint8_t *row_scales,
                                 int64_t cols, float *dst);

/* ---- codecs shared between the files ---- */
float moak_e4m3_to_f32(uint8_t code);
uint8_t moak_f32_to_e4m3(float x);            /* nearest, ties to even; > 464 and NaN -> NaN */
float moak_e2m1_to_f32(uint8_t nibble);       /* nibble 8 -> -0.0 */
float moak_ue4m3_to_f32(uint8_t code);        /* 0x7f and 0 -> 0 */
uint8_t moak_f32_to_ue4m3(float x);           /* as ggml_fp32_to_ue4m3 */

void moak_fp8_quantize(const float *src, int64_t rows, int64_t cols, uint8_t *data, uint8_t *scales);
void moak_fp8_dequantize_row(const uint8_t *row, const uint8_t *row_scales, int64_t cols, float *dst);
void moak_mxfp4_quantize_row(const float *src, int64_t cols, uint8_t *dst);
void moak_mxfp4_dequantize_row(const uint8_t *row, int64_t cols, float *dst);
void moak_mxfp4_st_quantize_row(const float *src, int64_t cols, uint8_t *blocks, uint8_t *scales);
void moak_mxfp4_st_dequantize_row(const uint8_t *blocks, const uint8_t *scales, int64_t cols, float *dst);
void moak_nvfp4_quantize(const float *src, int64_t rows, int64_t cols, uint8_t *data, uint8_t *tensor_scale);
void moak_nvfp4_dequantize_row(const uint8_t *row, float tensor_scale, int64_t cols, float *dst);
void moak_i4_ct_quantize_row(const float *src, int64_t cols, uint8_t *packed, uint8_t *scales);
void moak_i4_ct_dequantize_row(const uint8_t *packed, const uint8_t *scales, int64_t cols, float *dst);

#endif
