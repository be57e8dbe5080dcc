/* BF16 matmul tile kernel, AVX-512: bf16 weights widened by a 16-bit shift, f32 FMA.
 * Layout and tile: x86_kernels.h, gemm_float_body.h. */
#include "config.h"
#include "x86_kernels.h"
#include "x86_simd_avx512.h"

#define GEMM_FLOAT_LOAD simd_f_load_bf16
#define GEMM_FLOAT_BYTES 2
#define GEMM_TILE_FN moak_x86_avx512_tile_bf16
#include "gemm_float_body.h"
