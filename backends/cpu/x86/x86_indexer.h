/* x86_indexer.h — the sparse-attention indexer on the x86 backends: the
 * ISA-neutral driver (x86_indexer.c) and the per-ISA score kernels
 * (indexer_avx2.c, indexer_avx512.c over indexer_body.h). */
#ifndef MOAK_X86_INDEXER_H
#define MOAK_X86_INDEXER_H

#include <stdint.h>

#include "moak_backend.h"

/* Keys a kernel call scores (its register block). */
#define MOAK_X86_INDEXER_KEYS_AVX2 2
#define MOAK_X86_INDEXER_KEYS_AVX512 6
#define MOAK_X86_INDEXER_KEYS_MAX 6

/* score[b] = sum_h w[h] max(0, q[h] . keys[b]) for b < the ISA's key count;
 * qt: [dim][head_vectors * lanes] (heads transposed, zero-padded), w:
 * [head_vectors * lanes] (zero-padded), keys: f32 rows of dim. */
typedef void (*moak_x86_indexer_keys_fn)(const float *qt, const float *w, int32_t head_vectors, int32_t dim,
                                         const float *const *keys, float *score);
void moak_x86_avx2_indexer_keys(const float *qt, const float *w, int32_t head_vectors, int32_t dim,
                                const float *const *keys, float *score);
void moak_x86_avx512_indexer_keys(const float *qt, const float *w, int32_t head_vectors, int32_t dim,
                                  const float *const *keys, float *score);
/* One stored key row (any KV format) as dim floats in dst. */
typedef void (*moak_x86_indexer_row_fn)(moak_format format, const void *row, int32_t dim, float *dst);
void moak_x86_avx2_indexer_row(moak_format format, const void *row, int32_t dim, float *dst);
void moak_x86_avx512_indexer_row(moak_format format, const void *row, int32_t dim, float *dst);

#endif
