/* MoE GLU activations (SiLU, exact GELU, gpt-oss clamped SwiGLU), avx512.
 * The math is in moe_glu_body.h. */
#include "config.h"
#include "x86_kernels.h"
#include "x86_simd_avx512.h"

#define GLU_FN moak_x86_avx512_glu
#include "moe_glu_body.h"
