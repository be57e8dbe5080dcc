/* MoE GLU activations (SiLU, exact GELU, gpt-oss clamped SwiGLU), avx2.
 * The math is in moe_glu_body.h. */
#include "config.h"
#include "x86_kernels.h"
#include "x86_simd_avx2.h"

#define GLU_FN moak_x86_avx2_glu
#include "moe_glu_body.h"
