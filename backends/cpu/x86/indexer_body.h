/*
 * indexer_body.h — the scores of the sparse-attention indexer, written once
 * in the SIMD vocabulary (x86_simd_avx2.h / x86_simd_avx512.h); an ISA file
 * includes its vocabulary, defines INDEXER_KEYS and INDEXER_FN, then this.
 *
 *     score[j] = sum_h w[h] * max(0, q[h] . k[j])
 *
 * Heads are the vector lanes: the query is transposed once per call into
 * qt[dim][heads, padded to whole vectors with zeros] (its w padded with
 * zeros too, so a padded head adds 0).  A register block of INDEXER_KEYS
 * keys x 4 head vectors is accumulated over the dims: each step loads 4
 * vectors of qt (from L1: qt is dim x heads x 4 bytes, 32 KB for 64 x 128)
 * and broadcasts one element of each key, INDEXER_KEYS x 4 FMAs for
 * 4 + INDEXER_KEYS loads, so the FMA units, not the loads, set the pace.
 * Keys need no transpose: a key's row is read in order, one element a step.
 * The head sum of a key ends in one vector, reduced through memory in lane
 * order (deterministic).  Keys arrive as f32 rows (the driver converts
 * F16/BF16/Q8_0 pages a block at a time).  Accuracy: f32 throughout, the
 * dot products summed in dim order.
 */

/* The register blocks' loops over keys and head vectors are fully unrolled
 * (the pragma), or the accumulator arrays would live in memory and every
 * FMA would load and store one: 5x slower, measured. */
#define INDEXER_UNROLL _Pragma("GCC unroll 16")

/* The horizontal sum of v in lane order. */
static inline float indexer_lane_sum(simd_f v)
{
    float lane[SIMD_LANES];
    simd_f_store(lane, v);
    float s = 0.0f;
    for (int i = 0; i < SIMD_LANES; i++)
        s += lane[i];
    return s;
}

/* keys[b] (b < INDEXER_KEYS) are f32 rows of dim values; score[b] +=
 * the heads of head vectors [v0, v0 + 4). */
static inline void indexer_block4(const float *qt, const float *w, int32_t stride, int32_t v0, int32_t dim,
                                  const float *const *keys, float *score)
{
    simd_f acc[INDEXER_KEYS][4];
    INDEXER_UNROLL
    for (int b = 0; b < INDEXER_KEYS; b++) {
        acc[b][0] = simd_f_zero();
        acc[b][1] = simd_f_zero();
        acc[b][2] = simd_f_zero();
        acc[b][3] = simd_f_zero();
    }
    const float *q = qt + (size_t)v0 * SIMD_LANES;
    for (int32_t d = 0; d < dim; d++, q += stride) {
        const simd_f q0 = simd_f_load(q), q1 = simd_f_load(q + SIMD_LANES), q2 = simd_f_load(q + 2 * SIMD_LANES),
                     q3 = simd_f_load(q + 3 * SIMD_LANES);
        INDEXER_UNROLL
        for (int b = 0; b < INDEXER_KEYS; b++) {
            const simd_f k = simd_f_set1(keys[b][d]);
            acc[b][0] = simd_f_fma(q0, k, acc[b][0]);
            acc[b][1] = simd_f_fma(q1, k, acc[b][1]);
            acc[b][2] = simd_f_fma(q2, k, acc[b][2]);
            acc[b][3] = simd_f_fma(q3, k, acc[b][3]);
        }
    }
    const simd_f zero = simd_f_zero();
    const simd_f w0 = simd_f_load(w + (size_t)v0 * SIMD_LANES), w1 = simd_f_load(w + (size_t)(v0 + 1) * SIMD_LANES),
                 w2 = simd_f_load(w + (size_t)(v0 + 2) * SIMD_LANES), w3 = simd_f_load(w + (size_t)(v0 + 3) * SIMD_LANES);
    INDEXER_UNROLL
    for (int b = 0; b < INDEXER_KEYS; b++) {
        simd_f s = simd_f_mul(simd_f_max(acc[b][0], zero), w0);
        s = simd_f_fma(simd_f_max(acc[b][1], zero), w1, s);
        s = simd_f_fma(simd_f_max(acc[b][2], zero), w2, s);
        s = simd_f_fma(simd_f_max(acc[b][3], zero), w3, s);
        score[b] += indexer_lane_sum(s);
    }
}

/* The same for one head vector v0 (head counts that are not a multiple of
 * 4 vectors: GLM-5's 32 heads on AVX-512 are 2). */
static inline void indexer_block1(const float *qt, const float *w, int32_t stride, int32_t v0, int32_t dim,
                                  const float *const *keys, float *score)
{
    simd_f acc[INDEXER_KEYS];
    INDEXER_UNROLL
    for (int b = 0; b < INDEXER_KEYS; b++)
        acc[b] = simd_f_zero();
    const float *q = qt + (size_t)v0 * SIMD_LANES;
    for (int32_t d = 0; d < dim; d++, q += stride) {
        const simd_f q0 = simd_f_load(q);
        INDEXER_UNROLL
        for (int b = 0; b < INDEXER_KEYS; b++)
            acc[b] = simd_f_fma(q0, simd_f_set1(keys[b][d]), acc[b]);
    }
    const simd_f zero = simd_f_zero(), wv = simd_f_load(w + (size_t)v0 * SIMD_LANES);
    INDEXER_UNROLL
    for (int b = 0; b < INDEXER_KEYS; b++)
        score[b] += indexer_lane_sum(simd_f_mul(simd_f_max(acc[b], zero), wv));
}

/* score[b] = the indexer score of keys[b], b < INDEXER_KEYS (the driver
 * repeats its last key to fill a short block). */
void INDEXER_FN(const float *qt, const float *w, int32_t head_vectors, int32_t dim, const float *const *keys,
                float *score)
{
    const int32_t stride = head_vectors * SIMD_LANES;
    for (int b = 0; b < INDEXER_KEYS; b++)
        score[b] = 0.0f;
    int32_t v = 0;
    for (; v + 4 <= head_vectors; v += 4)
        indexer_block4(qt, w, stride, v, dim, keys, score);
    for (; v < head_vectors; v++)
        indexer_block1(qt, w, stride, v, dim, keys, score);
}

/* One stored key row as dim floats: F16 and BF16 a vector at a time (the
 * tail and Q8_0 through the core's row dequantizer). */
void INDEXER_ROW_FN(moak_format format, const void *row, int32_t dim, float *dst)
{
    int32_t d = 0;
    if (format == MOAK_FORMAT_F16)
        for (; d + SIMD_LANES <= dim; d += SIMD_LANES)
            simd_f_store(dst + d, simd_f_load_f16((const uint16_t *)row + d));
    else if (format == MOAK_FORMAT_BF16)
        for (; d + SIMD_LANES <= dim; d += SIMD_LANES)
            simd_f_store(dst + d, simd_f_load_bf16((const uint16_t *)row + d));
    if (d == 0)
        moak_dequantize_row(format, row, dim, dst);
    else if (d < dim) {
        float tail[SIMD_LANES];
        /* the tail's elements: dequantize the row's last block of lanes */
        moak_dequantize_row(format, (const uint16_t *)row + (dim - SIMD_LANES), SIMD_LANES, tail);
        for (int32_t i = d; i < dim; i++)
            dst[i] = tail[i - (dim - SIMD_LANES)];
    }
}
