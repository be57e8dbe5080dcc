/*
 * The vector kernels of the neon attention (contracts in attention_neon.h):
 * KV row conversion, q.k scores, the online-softmax step and p.V.
 *
 * Register tiles: scores take 4 query rows x 2 keys (8 accumulators, each
 * K vector used by 4 rows, each Q vector by 2 keys); p.V takes 4 rows x 16
 * output floats (16 accumulators) over the keys, 4 keys per step with
 * `fmla v.4s, v.4s, p.s[lane]`.
 */
#if !defined(__ARM_NEON)
#error "attention_kernels_neon.c needs Advanced SIMD (NEON_CFLAGS)"
#endif

#include "config.h"

#include <math.h>
#include <string.h>

#include "attention_neon.h"
#include "neon_simd.h"

void neon_attn_load_row(moak_format format, const unsigned char *row, int32_t dim, int32_t dim_pad,
                        float *dst)
{
    int32_t i = 0;
    switch (format) {
    case MOAK_FORMAT_F32:
        memcpy(dst, row, (size_t)dim * sizeof(float));
        i = dim;
        break;
    case MOAK_FORMAT_F16:
    case MOAK_FORMAT_BF16: {
        const uint16_t *h = (const uint16_t *)(const void *)row;
        for (; i + 8 <= dim; i += 8) {
            const uint16x8_t v = vld1q_u16(h + i);
            if (format == MOAK_FORMAT_F16) {
                vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(v))));
                vst1q_f32(dst + i + 4, vcvt_high_f32_f16(vreinterpretq_f16_u16(v)));
            } else {
                vst1q_f32(dst + i, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(v), 16)));
                vst1q_f32(dst + i + 4, vreinterpretq_f32_u32(vshll_high_n_u16(v, 16)));
            }
        }
        for (; i < dim; i++) {
            uint16_t bits;
            memcpy(&bits, row + 2 * (size_t)i, 2);
            dst[i] = format == MOAK_FORMAT_F16 ? moak_f16_to_f32(bits) : moak_bf16_to_f32(bits);
        }
        break;
    }
    case MOAK_FORMAT_Q8_0:
        /* the cache only takes Q8_0 with head dims that are multiples of 32 */
        for (; i + 32 <= dim; i += 32) {
            const unsigned char *block = row + (size_t)(i / 32) * 34;
            uint16_t bits;
            memcpy(&bits, block, 2);
            const float d = moak_f16_to_f32(bits);
            for (int h = 0; h < 2; h++) {
                const int8x16_t q = vld1q_s8((const int8_t *)block + 2 + 16 * h);
                const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
                float *o = dst + i + 16 * h;
                vst1q_f32(o, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), d));
                vst1q_f32(o + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(lo)), d));
                vst1q_f32(o + 8, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), d));
                vst1q_f32(o + 12, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(hi)), d));
            }
        }
        break;
    default:
        break;
    }
    for (; i < dim_pad; i++)
        dst[i] = 0.0f;
}

void neon_attn_scores(const float *q, int32_t rows, int32_t dk_pad, const float *k, int32_t n, float *s)
{
    int32_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *q0 = q + (size_t)r * dk_pad, *q1 = q0 + dk_pad, *q2 = q1 + dk_pad, *q3 = q2 + dk_pad;
        int32_t j = 0;
        for (; j + 2 <= n; j += 2) {
            const float *k0 = k + (size_t)j * dk_pad, *k1 = k0 + dk_pad;
            float32x4_t a00 = vdupq_n_f32(0), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
                        a30 = a00, a31 = a00;
            for (int32_t d = 0; d < dk_pad; d += 4) {
                const float32x4_t kv0 = vld1q_f32(k0 + d), kv1 = vld1q_f32(k1 + d);
                const float32x4_t x0 = vld1q_f32(q0 + d), x1 = vld1q_f32(q1 + d);
                const float32x4_t x2 = vld1q_f32(q2 + d), x3 = vld1q_f32(q3 + d);
                a00 = vfmaq_f32(a00, x0, kv0);
                a01 = vfmaq_f32(a01, x0, kv1);
                a10 = vfmaq_f32(a10, x1, kv0);
                a11 = vfmaq_f32(a11, x1, kv1);
                a20 = vfmaq_f32(a20, x2, kv0);
                a21 = vfmaq_f32(a21, x2, kv1);
                a30 = vfmaq_f32(a30, x3, kv0);
                a31 = vfmaq_f32(a31, x3, kv1);
            }
            float *sr = s + (size_t)r * ATTN_KEYS + j;
            sr[0] = vaddvq_f32(a00);
            sr[1] = vaddvq_f32(a01);
            sr[ATTN_KEYS] = vaddvq_f32(a10);
            sr[ATTN_KEYS + 1] = vaddvq_f32(a11);
            sr[2 * ATTN_KEYS] = vaddvq_f32(a20);
            sr[2 * ATTN_KEYS + 1] = vaddvq_f32(a21);
            sr[3 * ATTN_KEYS] = vaddvq_f32(a30);
            sr[3 * ATTN_KEYS + 1] = vaddvq_f32(a31);
        }
        for (; j < n; j++) {
            const float *k0 = k + (size_t)j * dk_pad;
            float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
            for (int32_t d = 0; d < dk_pad; d += 4) {
                const float32x4_t kv = vld1q_f32(k0 + d);
                a0 = vfmaq_f32(a0, vld1q_f32(q0 + d), kv);
                a1 = vfmaq_f32(a1, vld1q_f32(q1 + d), kv);
                a2 = vfmaq_f32(a2, vld1q_f32(q2 + d), kv);
                a3 = vfmaq_f32(a3, vld1q_f32(q3 + d), kv);
            }
            float *sr = s + (size_t)r * ATTN_KEYS + j;
            sr[0] = vaddvq_f32(a0);
            sr[ATTN_KEYS] = vaddvq_f32(a1);
            sr[2 * ATTN_KEYS] = vaddvq_f32(a2);
            sr[3 * ATTN_KEYS] = vaddvq_f32(a3);
        }
    }
    for (; r < rows; r++) {
        const float *q0 = q + (size_t)r * dk_pad;
        float *sr = s + (size_t)r * ATTN_KEYS;
        int32_t j = 0;
        for (; j + 4 <= n; j += 4) {
            const float *k0 = k + (size_t)j * dk_pad;
            float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
            for (int32_t d = 0; d < dk_pad; d += 4) {
                const float32x4_t x = vld1q_f32(q0 + d);
                a0 = vfmaq_f32(a0, x, vld1q_f32(k0 + d));
                a1 = vfmaq_f32(a1, x, vld1q_f32(k0 + dk_pad + d));
                a2 = vfmaq_f32(a2, x, vld1q_f32(k0 + 2 * (size_t)dk_pad + d));
                a3 = vfmaq_f32(a3, x, vld1q_f32(k0 + 3 * (size_t)dk_pad + d));
            }
            sr[j] = vaddvq_f32(a0);
            sr[j + 1] = vaddvq_f32(a1);
            sr[j + 2] = vaddvq_f32(a2);
            sr[j + 3] = vaddvq_f32(a3);
        }
        for (; j < n; j++) {
            const float *k0 = k + (size_t)j * dk_pad;
            float32x4_t a0 = vdupq_n_f32(0);
            for (int32_t d = 0; d < dk_pad; d += 4)
                a0 = vfmaq_f32(a0, vld1q_f32(q0 + d), vld1q_f32(k0 + d));
            sr[j] = vaddvq_f32(a0);
        }
    }
}

void neon_attn_softmax(float *s, int32_t rows, int32_t n, const int32_t *lo, const int32_t *hi,
                       float softcap2, float *m, float *l, float *corr)
{
    static const int32_t lane_index[4] = {0, 1, 2, 3};
    const int32x4_t lanes = vld1q_s32(lane_index);
    for (int32_t r = 0; r < rows; r++) {
        float *sr = s + (size_t)r * ATTN_KEYS;
        const int32_t a = lo[r] > 0 ? lo[r] : 0;
        const int32_t b = hi[r] < n ? hi[r] : n;
        if (a >= b) { /* nothing visible in this tile: p = 0, O unchanged */
            memset(sr, 0, (size_t)n * sizeof(float));
            corr[r] = 1.0f;
            continue;
        }
        if (softcap2 != 0.0f)
            for (int32_t j = a; j < b; j++)
                sr[j] = softcap2 * tanhf(sr[j] / softcap2);
        const int32x4_t va = vdupq_n_s32(a), vb = vdupq_n_s32(b);

        float32x4_t vmax = vdupq_n_f32(-INFINITY);
        for (int32_t j = 0; j < n; j += 4) {
            const int32x4_t idx = vaddq_s32(lanes, vdupq_n_s32(j));
            const uint32x4_t visible = vandq_u32(vcgeq_s32(idx, va), vcltq_s32(idx, vb));
            vmax = vmaxq_f32(vmax, vbslq_f32(visible, vld1q_f32(sr + j), vdupq_n_f32(-INFINITY)));
        }
        const float m_old = m[r];
        const float tile_max = vmaxvq_f32(vmax);
        const float m_new = tile_max > m_old ? tile_max : m_old;
        corr[r] = m_old == -INFINITY ? 0.0f : exp2f(m_old - m_new);

        float32x4_t vsum = vdupq_n_f32(0.0f);
        const float32x4_t vm = vdupq_n_f32(m_new);
        for (int32_t j = 0; j < n; j += 4) {
            const int32x4_t idx = vaddq_s32(lanes, vdupq_n_s32(j));
            const uint32x4_t visible = vandq_u32(vcgeq_s32(idx, va), vcltq_s32(idx, vb));
            const float32x4_t p = neon_exp2(vsubq_f32(vld1q_f32(sr + j), vm));
            const float32x4_t kept = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(p), visible));
            vst1q_f32(sr + j, kept);
            vsum = vaddq_f32(vsum, kept);
        }
        l[r] = l[r] * corr[r] + vaddvq_f32(vsum);
        m[r] = m_new;
    }
}

void neon_attn_pv(const float *p, int32_t rows, int32_t n, const float *v, int32_t v_stride,
                  int32_t dv_pad, const float *corr, float *o)
{
    int32_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *p0 = p + (size_t)r * ATTN_KEYS, *p1 = p0 + ATTN_KEYS, *p2 = p1 + ATTN_KEYS,
                    *p3 = p2 + ATTN_KEYS;
        for (int32_t d0 = 0; d0 < dv_pad; d0 += 16) {
            float32x4_t acc[4][4];
            for (int i = 0; i < 4; i++)
                for (int c = 0; c < 4; c++)
                    acc[i][c] = vmulq_n_f32(vld1q_f32(o + (size_t)(r + i) * dv_pad + d0 + 4 * c), corr[r + i]);
            int32_t j = 0;
            for (; j + 4 <= n; j += 4) {
                const float32x4_t w0 = vld1q_f32(p0 + j), w1 = vld1q_f32(p1 + j);
                const float32x4_t w2 = vld1q_f32(p2 + j), w3 = vld1q_f32(p3 + j);
#define PV_LANE(lane)                                                                   \
    do {                                                                                \
        const float *vr = v + (size_t)(j + (lane)) * v_stride + d0;                     \
        for (int c = 0; c < 4; c++) {                                                   \
            const float32x4_t vv = vld1q_f32(vr + 4 * c);                               \
            acc[0][c] = vfmaq_laneq_f32(acc[0][c], vv, w0, lane);                       \
            acc[1][c] = vfmaq_laneq_f32(acc[1][c], vv, w1, lane);                       \
            acc[2][c] = vfmaq_laneq_f32(acc[2][c], vv, w2, lane);                       \
            acc[3][c] = vfmaq_laneq_f32(acc[3][c], vv, w3, lane);                       \
        }                                                                               \
    } while (0)
                PV_LANE(0);
                PV_LANE(1);
                PV_LANE(2);
                PV_LANE(3);
#undef PV_LANE
            }
            for (; j < n; j++) {
                const float *vr = v + (size_t)j * v_stride + d0;
                for (int c = 0; c < 4; c++) {
                    const float32x4_t vv = vld1q_f32(vr + 4 * c);
                    acc[0][c] = vfmaq_n_f32(acc[0][c], vv, p0[j]);
                    acc[1][c] = vfmaq_n_f32(acc[1][c], vv, p1[j]);
                    acc[2][c] = vfmaq_n_f32(acc[2][c], vv, p2[j]);
                    acc[3][c] = vfmaq_n_f32(acc[3][c], vv, p3[j]);
                }
            }
            for (int i = 0; i < 4; i++)
                for (int c = 0; c < 4; c++)
                    vst1q_f32(o + (size_t)(r + i) * dv_pad + d0 + 4 * c, acc[i][c]);
        }
    }
    for (; r < rows; r++) {
        const float *pr = p + (size_t)r * ATTN_KEYS;
        float *orow = o + (size_t)r * dv_pad;
        for (int32_t d0 = 0; d0 < dv_pad; d0 += 16) {
            float32x4_t acc[4];
            for (int c = 0; c < 4; c++)
                acc[c] = vmulq_n_f32(vld1q_f32(orow + d0 + 4 * c), corr[r]);
            for (int32_t j = 0; j < n; j++) {
                const float *vr = v + (size_t)j * v_stride + d0;
                for (int c = 0; c < 4; c++)
                    acc[c] = vfmaq_n_f32(acc[c], vld1q_f32(vr + 4 * c), pr[j]);
            }
            for (int c = 0; c < 4; c++)
                vst1q_f32(orow + d0 + 4 * c, acc[c]);
        }
    }
}
