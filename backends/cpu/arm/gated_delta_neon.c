/* gated_delta_neon.c — the gated delta rule on Advanced SIMD: the simd_f
 * vocabulary of the x86 bodies mapped to float32x4_t, the shared kernels
 * (../gated_delta_body.h), and the neon backend's entry (the shared CPU
 * driver, ../gated_delta_cpu.c, with this table). */
#include "config.h"

#include <arm_neon.h>

#if !defined(__ARM_NEON)
#error "gated_delta_neon.c needs Advanced SIMD (NEON_CFLAGS)"
#endif

#include "neon_backend.h"

#define SIMD_LANES 4
typedef float32x4_t simd_f;
static inline simd_f simd_f_zero(void) { return vdupq_n_f32(0.0f); }
static inline simd_f simd_f_set1(float v) { return vdupq_n_f32(v); }
static inline simd_f simd_f_load(const float *p) { return vld1q_f32(p); }
static inline void simd_f_store(float *p, simd_f v) { vst1q_f32(p, v); }
static inline simd_f simd_f_fma(simd_f a, simd_f b, simd_f c) { return vfmaq_f32(c, a, b); }
static inline simd_f simd_f_mul(simd_f a, simd_f b) { return vmulq_f32(a, b); }
static inline simd_f simd_f_add(simd_f a, simd_f b) { return vaddq_f32(a, b); }
static inline simd_f simd_f_sub(simd_f a, simd_f b) { return vsubq_f32(a, b); }
static inline simd_f simd_f_div(simd_f a, simd_f b) { return vdivq_f32(a, b); }
static inline simd_f simd_f_min(simd_f a, simd_f b) { return vminq_f32(a, b); }
static inline simd_f simd_f_max(simd_f a, simd_f b) { return vmaxq_f32(a, b); }
static inline simd_f simd_f_round(simd_f a) { return vrndnq_f32(a); }
/* 2^n for integral n in [-127, 127] (-127 gives the bit pattern of +0). */
static inline simd_f simd_f_exp2_int(simd_f n)
{
    return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23));
}

#define GDN_KERNELS_NAME moak_gdn_kernels_neon
#define GDN_ISA_NAME "neon"
#include "../gated_delta_body.h"

moak_status neon_gated_delta(void *state, const moak_gated_delta_args *args)
{
    const neon_state *st = state;
    return moak_cpu_gated_delta(&moak_gdn_kernels_neon, &st->env, args);
}
