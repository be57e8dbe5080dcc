/* gated_delta_avx2.c — the gated delta rule's vector kernels
 * (../gated_delta_body.h) on the x86_simd_avx2.h vocabulary. */
#include "x86_simd_avx2.h"

#define GDN_KERNELS_NAME moak_gdn_kernels_avx2
#define GDN_ISA_NAME "avx2"
#include "../gated_delta_body.h"
