/* F16 matmul tile kernel, AVX-512: f16 weights widened with vcvtph2ps, f32 FMA.
 * Layout and tile: x86_kernels.h, gemm_float_body.h. */
#include "config.h"
#include "x86_kernels.h"
#include "x86_simd_avx512.h"

#define GEMM_FLOAT_LOAD simd_f_load_f16
#define GEMM_FLOAT_BYTES 2
#define GEMM_TILE_FN moak_x86_avx512_tile_f16
#include "gemm_float_body.h"
