/* Q4_0 matmul tile and prefill panel kernels, AVX-512 VNNI: unsigned nibbles against int8 activations, minus 8 * sum(x_q) per block.  Layout and kernels: x86_kernels.h, gemm_int_body.h, gemm_panel_body.h. */
#include "config.h"

#include "x86_kernels.h"
#include "x86_simd_avx512.h"

#define GEMM_BITS 4
#define GEMM_OFFSET 8
#define GEMM_SCALES GEMM_SCALES_BLOCK
#define GEMM_GROUP_BLOCKS 1
#define GEMM_TILE_FN moak_x86_avx512_tile_q4_0
#include "gemm_int_body.h"
#define GEMM_PANEL_FN moak_x86_avx512_panel_q4_0
#include "gemm_panel_body.h"
