/*
 * attention_neon.h — the vector kernels of the neon attention
 * (attention_kernels_neon.c), used by its driver (attention_neon.c).
 *
 * Layouts, all f32 in a thread's scratch:
 *   Q [rows][dk_pad]   query rows, multiplied by scale * log2(e) (scores in
 *                      base 2, so the softmax is 2^(s - m)); pads are 0
 *   K [keys][dk_pad]   converted K rows; pads are 0
 *   V [keys][v_stride] converted V rows (with shared V: the K rows)
 *   S [rows][ATTN_KEYS] scores, then probabilities
 *   O [rows][dv_pad]   unnormalised output accumulators
 * dk_pad and dv_pad are multiples of 16.
 */
#ifndef MOAK_NEON_ATTENTION_H
#define MOAK_NEON_ATTENTION_H

#include <stdint.h>

#include "moak_backend.h"

#define ATTN_KEYS 64             /* keys converted and scored together */
#define ATTN_PAD 16              /* head dims are padded to this many floats */

/* dst[0..dim) = the row's `dim` elements as f32, dst[dim..dim_pad) = 0. */
void neon_attn_load_row(moak_format format, const unsigned char *row, int32_t dim, int32_t dim_pad,
                        float *dst);

/* s[r][j] = q[r] . k[j] for r < rows, j < n. */
void neon_attn_scores(const float *q, int32_t rows, int32_t dk_pad, const float *k, int32_t n, float *s);

/* Online-softmax step over keys j < n for rows r < rows: key j is visible to
 * row r iff lo[r] <= j < hi[r] (both relative to the tile).  Soft-caps the
 * visible scores (softcap2 != 0: s = softcap2 * tanh(s / softcap2)), turns
 * s[r][j] into p = 2^(s - m_new) (0 when not visible), updates m and l, and
 * sets corr[r] = 2^(m_old - m_new), the factor O[r] must be scaled by. */
void neon_attn_softmax(float *s, int32_t rows, int32_t n, const int32_t *lo, const int32_t *hi,
                       float softcap2, float *m, float *l, float *corr);

/* o[r] = o[r] * corr[r] + sum_{j < n} p[r][j] * v[j] over dv_pad floats. */
void neon_attn_pv(const float *p, int32_t rows, int32_t n, const float *v, int32_t v_stride,
                  int32_t dv_pad, const float *corr, float *o);

#endif
