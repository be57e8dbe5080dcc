/* gated_delta_avx512.c — the gated delta rule's vector kernels
 * (../gated_delta_body.h) on the x86_simd_avx512.h vocabulary. */
#include "x86_simd_avx512.h"

#define GDN_KERNELS_NAME moak_gdn_kernels_avx512
#define GDN_ISA_NAME "avx512"
#include "../gated_delta_body.h"
