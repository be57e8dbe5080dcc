/* I4_G32 matmul tile and prefill panel kernels, AVX-512 VNNI: asymmetric nibbles, scale * dot + min * sum(x) per 32-group.  Layout and kernels: x86_kernels.h, gemm_int_body.h, gemm_panel_body.h. */
#include "config.h"

#include "x86_kernels.h"
#include "x86_simd_avx512.h"

#define GEMM_BITS 4
#define GEMM_OFFSET 0
#define GEMM_SCALES GEMM_SCALES_GROUP
#define GEMM_GROUP_BLOCKS 1
#define GEMM_TILE_FN moak_x86_avx512_tile_i4_g32
#include "gemm_int_body.h"
#define GEMM_PANEL_FN moak_x86_avx512_panel_i4_g32
#include "gemm_panel_body.h"
