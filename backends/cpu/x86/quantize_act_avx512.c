/* Activation quantization for the integer matmul kernels, AVX-512: per block
 * of 32 floats, d = amax / 127, q = round-to-nearest-even(x * 127 / amax),
 * s = -offset * sum(q), ds = d * sum(q).  A block past the row's end (K padding) is all zeros; a partial
 * last block is read with a masked load, never past the row. */
#include "config.h"
#include "x86_kernels.h"
#include "x86_simd_avx512.h"

void moak_x86_avx512_quantize(const float *x, int64_t x_stride, int64_t cols, int64_t n_rows,
                              int64_t k_padded, int32_t offset, int8_t *q, float *d, int32_t *s,
                              float *ds);

void moak_x86_avx512_quantize(const float *x, int64_t x_stride, int64_t cols, int64_t n_rows,
                              int64_t k_padded, int32_t offset, int8_t *q, float *d, int32_t *s,
                              float *ds)
{
    const int64_t nb = k_padded / 32;
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * x_stride;
        int8_t *qr = q + r * k_padded;
        for (int64_t b = 0; b < nb; b++) {
            int64_t k0 = b * 32, n = cols - k0;
            __m512 v0, v1;
            if (n >= 32) {
                v0 = _mm512_loadu_ps(xr + k0);
                v1 = _mm512_loadu_ps(xr + k0 + 16);
            } else {
                int n0 = n <= 0 ? 0 : n >= 16 ? 16 : (int)n;
                int n1 = n <= 16 ? 0 : (int)(n - 16);
                v0 = _mm512_maskz_loadu_ps((__mmask16)((1u << n0) - 1u), n0 ? xr + k0 : xr);
                v1 = _mm512_maskz_loadu_ps((__mmask16)((1u << n1) - 1u), n1 ? xr + k0 + 16 : xr);
            }
            float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
            float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
            __m512 vi = _mm512_set1_ps(inv);
            __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vi));
            __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vi));
            _mm_storeu_si128((__m128i *)(qr + k0), _mm512_cvtsepi32_epi8(i0));
            _mm_storeu_si128((__m128i *)(qr + k0 + 16), _mm512_cvtsepi32_epi8(i1));
            d[r * nb + b] = amax / 127.0f;
            int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
            s[r * nb + b] = -offset * sum;
            ds[r * nb + b] = d[r * nb + b] * (float)sum;
        }
    }
}
