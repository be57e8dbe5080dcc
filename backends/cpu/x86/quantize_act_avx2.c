/* Activation quantization for the integer matmul kernels, AVX2: per block of
 * 32 floats, d = amax / 127, q = round-to-nearest-even(x * 127 / amax),
 * s = -offset * sum(q), ds = d * sum(q).  A partial last block is copied into a zero-padded buffer
 * first, so nothing past the row's end is read. */
#include "config.h"
#include "x86_kernels.h"
#include "x86_simd_avx2.h"

void moak_x86_avx2_quantize(const float *x, int64_t x_stride, int64_t cols, int64_t n_rows,
                            int64_t k_padded, int32_t offset, int8_t *q, float *d, int32_t *s,
                              float *ds);

static inline float hmax8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

static inline int32_t hsum8(__m256i v)
{
    __m128i m = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 0x4E));
    m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 0xB1));
    return _mm_cvtsi128_si32(m);
}

void moak_x86_avx2_quantize(const float *x, int64_t x_stride, int64_t cols, int64_t n_rows,
                            int64_t k_padded, int32_t offset, int8_t *q, float *d, int32_t *s,
                              float *ds)
{
    const int64_t nb = k_padded / 32;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * x_stride;
        int8_t *qr = q + r * k_padded;
        for (int64_t b = 0; b < nb; b++) {
            int64_t k0 = b * 32, n = cols - k0;
            float tmp[32];
            const float *src = xr + k0;
            if (n < 32) {
                for (int i = 0; i < 32; i++)
                    tmp[i] = i < n ? xr[k0 + i] : 0.0f;
                src = tmp;
            }
            __m256 v[4];
            __m256 m = _mm256_setzero_ps();
            for (int i = 0; i < 4; i++) {
                v[i] = _mm256_loadu_ps(src + 8 * i);
                m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[i]));
            }
            float amax = hmax8(m);
            float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
            __m256 vi = _mm256_set1_ps(inv);
            __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v[0], vi));
            __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v[1], vi));
            __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v[2], vi));
            __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v[3], vi));
            /* packs work per 128-bit lane; the permute restores element order. */
            __m256i w01 = _mm256_packs_epi32(i0, i1), w23 = _mm256_packs_epi32(i2, i3);
            __m256i bytes = _mm256_packs_epi16(w01, w23);
            bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(qr + k0), bytes);
            d[r * nb + b] = amax / 127.0f;
            int32_t sum = hsum8(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
            s[r * nb + b] = -offset * sum;
            ds[r * nb + b] = d[r * nb + b] * (float)sum;
        }
    }
}
