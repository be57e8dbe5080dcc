/* I4_G128 matmul tile and prefill panel kernels, AVX-512 VNNI: asymmetric nibbles, one scale and min per 4 blocks of 32.  Layout and kernels: x86_kernels.h, gemm_int_body.h, gemm_panel_body.h. */
#include "config.h"

#include "x86_kernels.h"
#include "x86_simd_avx512.h"

#define GEMM_BITS 4
#define GEMM_OFFSET 0
#define GEMM_SCALES GEMM_SCALES_GROUP
#define GEMM_GROUP_BLOCKS 4
#define GEMM_TILE_FN moak_x86_avx512_tile_i4_g128
#include "gemm_int_body.h"
#define GEMM_PANEL_FN moak_x86_avx512_panel_i4_g128
#include "gemm_panel_body.h"
