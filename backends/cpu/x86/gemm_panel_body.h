/* The prefill ("panel") kernel of the integer formats: one or two panels of
 * weights times many activation rows, all of K.  Written in the
 * x86_simd_*.h vocabulary and instantiated per format and ISA by the
 * gemm_<format>_<isa>.c files next to the tile kernel (gemm_int_body.h, whose
 * GEMM_* macros it shares), under the name GEMM_PANEL_FN.
 *
 * Why a second kernel: in prefill each panel meets hundreds of tokens, so
 * whatever is done per weight byte can be done once per panel instead of once
 * per register tile.  K is walked in chunks of GEMM_CHUNK_BLOCKS 32-blocks
 * (half as many with two panels);
 * per chunk the panel's quants are made ready in per-thread scratch (4-bit
 * formats unpacked to one byte per weight, laid out as the 8-bit panels:
 * [block][8 quads][R rows][4 k]; 8-bit panels are used in place) with the
 * f16 scales widened to f32, a few KB that stay in L1 while every register
 * tile of tokens passes over them.  The f32 sums of each tile live in `out`
 * between chunks (one load and one store per register per chunk).
 *
 * Register tile: S panels (2 * S vectors of rows) x NT tokens, with
 * 2 * S * NT int32 block sums and as many f32 sums.  Per 32-block and 4 k:
 * one weight load per vector feeds NT vpdpbusd, one 4-byte broadcast per
 * token feeds 2 * S; per block and (vector, token): int32 -> f32, times the
 * weight scale times the activation scale (Q8_0, Q4_0, I4_*) or the
 * activation scale alone (I8_ROW, whose row scale is applied once at the
 * end), and for I4_* the group min times the activation block sum.
 *
 * Output row i (activation row rows[i]) of panel p: R floats at
 * out[p] + i * out_stride, bias[p] (R floats, when bias and bias[p] are not
 * NULL) added.  out doubles as the f32 sums between chunks, so it is written
 * once per chunk; a task that owns out[p] (a block of y, or scratch) is the
 * only one to touch it.  Reads exactly the panels' bytes. */
#define GEMM_PANEL_MAXT (GEMM_PANEL_TOKENS_1 > GEMM_PANEL_TOKENS_2 ? GEMM_PANEL_TOKENS_1 : GEMM_PANEL_TOKENS_2)
#define GEMM_PANEL_CHUNK_BYTES MOAK_X86_MAX_CHUNK_BYTES /* most prepared quants per chunk and panel */
#define GEMM_PREP_BLOCK_BYTES (GEMM_R * 32) /* one prepared 8-bit block of a panel */
#if GEMM_BITS == 8 && defined(SIMD_DOT8_PREPARED)
/* 8-bit weights without an unsigned x signed dot instruction (plain AVX2):
 * each block is prepared twice, |q| then q, so the dot is sign + multiply-add
 * (simd_dot8_prepared), not the six operations of simd_dot8. */
#  define GEMM_PREP_STRIDE (2 * GEMM_PREP_BLOCK_BYTES)
#  define GEMM_PREP_8BIT 1
#else
#  define GEMM_PREP_STRIDE GEMM_PREP_BLOCK_BYTES
#  define GEMM_PREP_8BIT 0
#endif
#define GEMM_CHUNK_BLOCKS (GEMM_PANEL_CHUNK_BYTES / GEMM_PREP_STRIDE)
#if GEMM_SCALES == GEMM_SCALES_GROUP
#  define GEMM_PREP_SCALE_SETS 2      /* scale and min per block */
#else
#  define GEMM_PREP_SCALE_SETS 1
#endif

/* Bytes of scratch one call needs (two panels' chunks and their scales). */
#define GEMM_PANEL_SCRATCH_BYTES \
    (2 * (GEMM_CHUNK_BLOCKS * GEMM_PREP_STRIDE + GEMM_CHUNK_BLOCKS * GEMM_PREP_SCALE_SETS * GEMM_R * 4))

_Static_assert(GEMM_PANEL_SCRATCH_BYTES <= MOAK_X86_PANEL_SCRATCH_BYTES,
               "the panel kernel's scratch outgrew MOAK_X86_PANEL_SCRATCH_BYTES");

/* Makes blocks [b0, b0 + nb) of one panel ready: quants (unpacked, or a
 * pointer into the panel) and f32 scales [block][set][R]. */
static inline __attribute__((always_inline)) const uint8_t *
gemm_panel_prepare(const moak_x86_weight *w, const uint8_t *panel, int64_t b0, int nb, uint8_t *qbuf,
                   float *sbuf)
{
    const uint8_t *scales = panel + w->quant_bytes;
    (void)scales;
    (void)sbuf;
    for (int b = 0; b < nb; b++) {
#if GEMM_SCALES == GEMM_SCALES_BLOCK
        for (int v = 0; v < 2; v++)
            simd_f_store(sbuf + (size_t)b * GEMM_R + v * SIMD_LANES,
                         simd_f_load_f16(scales + ((size_t)(b0 + b) * GEMM_R + v * SIMD_LANES) * 2));
#elif GEMM_SCALES == GEMM_SCALES_GROUP
        size_t g = (size_t)((b0 + b) / GEMM_GROUP_BLOCKS);
        for (int v = 0; v < 2; v++) {
            simd_f_store(sbuf + (size_t)b * 2 * GEMM_R + v * SIMD_LANES,
                         simd_f_load_f16(scales + ((g * 2) * GEMM_R + v * SIMD_LANES) * 2));
            simd_f_store(sbuf + ((size_t)b * 2 + 1) * GEMM_R + v * SIMD_LANES,
                         simd_f_load_f16(scales + ((g * 2 + 1) * GEMM_R + v * SIMD_LANES) * 2));
        }
#endif
    }
#if GEMM_PREP_8BIT
    for (int b = 0; b < nb; b++) {
        const uint8_t *src = panel + (size_t)(b0 + b) * GEMM_BLOCK_BYTES;
        uint8_t *dst = qbuf + (size_t)b * GEMM_PREP_STRIDE;
        for (int c = 0; c < 8; c++)
            for (int v = 0; v < 2; v++) {
                size_t off = (size_t)(c * GEMM_R + v * SIMD_LANES) * 4;
                simd_i q = simd_i_signed8(simd_i_load(src + off));
                simd_i_store(dst + off, simd_i_abs8(q));
                simd_i_store(dst + GEMM_PREP_BLOCK_BYTES + off, q);
            }
    }
    return qbuf;
#elif GEMM_BITS == 8
    (void)qbuf;
    return panel + (size_t)b0 * GEMM_BLOCK_BYTES;
#else
    for (int b = 0; b < nb; b++) {
        const uint8_t *src = panel + (size_t)(b0 + b) * GEMM_BLOCK_BYTES;
        uint8_t *dst = qbuf + (size_t)b * GEMM_PREP_STRIDE;
        for (int c = 0; c < 4; c++)
            for (int v = 0; v < 2; v++) {
                simd_i raw = simd_i_load(src + (c * GEMM_R + v * SIMD_LANES) * 4);
                simd_i_store(dst + (c * GEMM_R + v * SIMD_LANES) * 4, simd_i_low_nibbles(raw));
                simd_i_store(dst + ((c + 4) * GEMM_R + v * SIMD_LANES) * 4, simd_i_high_nibbles(raw));
            }
    }
    return qbuf;
#endif
}

/* One register tile: blocks [b0, b0 + nb) of the prepared chunk(s), tokens
 * rows[0..NT), f32 sums in out (first chunk: started from zero). */
static inline __attribute__((always_inline)) void
gemm_panel_tile(const uint8_t *const *q, const float *const *sc, int64_t b0, int nb,
                const moak_x86_act *act, const int64_t *rows, const int64_t *next_rows, int n_next,
                float *const *out, int64_t out_stride, bool first, const float *const *final_scale,
                const float *const *final_bias, const int S, const int NT)
{
    const int8_t *xq[GEMM_PANEL_MAXT];
    const float *xd[GEMM_PANEL_MAXT];
    const int32_t *xs[GEMM_PANEL_MAXT] __attribute__((unused));
    const float *xds[GEMM_PANEL_MAXT] __attribute__((unused));
    for (int t = 0; t < NT; t++) {
        xq[t] = act->q + rows[t] * act->k_padded + b0 * 32;
        xd[t] = act->d + rows[t] * act->n_blocks + b0;
        xs[t] = act->s + rows[t] * act->n_blocks + b0;
        xds[t] = act->ds + rows[t] * act->n_blocks + b0;
    }
    simd_f facc[2][2][GEMM_PANEL_MAXT];
#pragma GCC unroll 2
    for (int s = 0; s < S; s++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++)
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++)
                facc[s][v][t] = first ? simd_f_zero()
                                      : simd_f_load(out[s] + (size_t)t * (size_t)out_stride + v * SIMD_LANES);
    /* The next tile's activation rows are fetched while this one computes
     * (one line of quants per row every other block, their scales first). */
    const int8_t *pq[GEMM_PANEL_MAXT] = {0};
    int n_pf = n_next < NT ? n_next : NT;
    for (int t = 0; t < n_pf; t++) {
        pq[t] = act->q + next_rows[t] * act->k_padded + b0 * 32;
        _mm_prefetch((const char *)(act->d + next_rows[t] * act->n_blocks + b0), _MM_HINT_T0);
        _mm_prefetch((const char *)(act->s + next_rows[t] * act->n_blocks + b0), _MM_HINT_T0);
    }
#if GEMM_SCALES == GEMM_SCALES_GROUP
    /* The min term of a group: sum of the activation block sums over the
     * group's blocks, times the group's min, once per group. */
    float group_sum[GEMM_PANEL_MAXT] = {0};
#endif
    for (int b = 0; b < nb; b++) {
        if (!(b & 1))
            for (int t = 0; t < n_pf; t++)
                _mm_prefetch((const char *)(pq[t] + b * 32), _MM_HINT_T0);
        simd_i iacc[2][2][GEMM_PANEL_MAXT];
#pragma GCC unroll 2
        for (int s = 0; s < S; s++)
#pragma GCC unroll 2
            for (int v = 0; v < 2; v++)
#pragma GCC unroll 8
                for (int t = 0; t < NT; t++)
                    iacc[s][v][t] = GEMM_OFFSET != 0 ? simd_i_bcast4((const int8_t *)&xs[t][b]) : simd_i_zero();
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            simd_i x[GEMM_PANEL_MAXT];
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++)
                x[t] = simd_i_bcast4(xq[t] + b * 32 + 4 * c);
#pragma GCC unroll 2
            for (int s = 0; s < S; s++)
#pragma GCC unroll 2
                for (int v = 0; v < 2; v++) {
                    const uint8_t *wp = q[s] + (size_t)b * GEMM_PREP_STRIDE + (c * GEMM_R + v * SIMD_LANES) * 4;
                    simd_i wv = simd_i_load(wp);
#if GEMM_PREP_8BIT
                    simd_i ws = simd_i_load(wp + GEMM_PREP_BLOCK_BYTES);
#endif
#pragma GCC unroll 8
                    for (int t = 0; t < NT; t++)
#if GEMM_PREP_8BIT
                        iacc[s][v][t] = simd_dot8_prepared(iacc[s][v][t], wv, ws, x[t]);
#elif GEMM_BITS == 8
                        iacc[s][v][t] = simd_dot8(iacc[s][v][t], wv, x[t]);
#else
                        iacc[s][v][t] = simd_dot4(iacc[s][v][t], wv, x[t]); /* unpacked nibbles */
#endif
                }
        }
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) {
            const simd_f vdx = simd_f_set1(xd[t][b]);
#pragma GCC unroll 2
            for (int s = 0; s < S; s++)
#pragma GCC unroll 2
                for (int v = 0; v < 2; v++) {
#if GEMM_SCALES == GEMM_SCALES_ROW
                    facc[s][v][t] = simd_f_fma(simd_f_from_i(iacc[s][v][t]), vdx, facc[s][v][t]);
#else
                    const simd_f ws = simd_f_load(sc[s] + (size_t)b * GEMM_PREP_SCALE_SETS * GEMM_R + v * SIMD_LANES);
                    facc[s][v][t] = simd_f_fma(simd_f_from_i(iacc[s][v][t]), simd_f_mul(ws, vdx), facc[s][v][t]);
#endif
                }
        }
#if GEMM_SCALES == GEMM_SCALES_GROUP
        for (int t = 0; t < NT; t++)
            group_sum[t] += xds[t][b];
        if ((b0 + b + 1) % GEMM_GROUP_BLOCKS == 0 || b + 1 == nb) {
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                const simd_f vsum = simd_f_set1(group_sum[t]);
                group_sum[t] = 0.0f;
#pragma GCC unroll 2
                for (int s = 0; s < S; s++)
#pragma GCC unroll 2
                    for (int v = 0; v < 2; v++) {
                        const simd_f wm = simd_f_load(sc[s] + ((size_t)b * 2 + 1) * GEMM_R + v * SIMD_LANES);
                        facc[s][v][t] = simd_f_fma(wm, vsum, facc[s][v][t]);
                    }
            }
        }
#endif
    }
    /* After the last chunk: I8_ROW's row scale, then the bias. */
#pragma GCC unroll 2
    for (int s = 0; s < S; s++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++) {
            const simd_f fs = final_scale && final_scale[s] ? simd_f_load(final_scale[s] + v * SIMD_LANES) : simd_f_set1(1.0f);
            const simd_f fb = final_bias && final_bias[s] ? simd_f_load(final_bias[s] + v * SIMD_LANES) : simd_f_zero();
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                simd_f r = facc[s][v][t];
                if (final_scale)
                    r = simd_f_fma(r, fs, fb);
                simd_f_store(out[s] + (size_t)t * (size_t)out_stride + v * SIMD_LANES, r);
            }
        }
}

static inline __attribute__((always_inline)) void
gemm_panel_body(const moak_x86_weight *w, const uint8_t *const *panels,
                const uint8_t *const *next_panels, const moak_x86_act *act, const int64_t *rows,
                int64_t m, const float *const *bias, float *const *out, int64_t out_stride,
                void *scratch, const int S, const int TMAX)
{
    uint8_t *qbuf[2];
    float *sbuf[2];
    const uint8_t *q[2];
    const float *sc[2];
    const float *row_scale[2] = {NULL, NULL};
    for (int s = 0; s < S; s++) {
        qbuf[s] = (uint8_t *)scratch + (size_t)s * GEMM_CHUNK_BLOCKS * GEMM_PREP_STRIDE;
        sbuf[s] = (float *)((uint8_t *)scratch + 2 * (size_t)GEMM_CHUNK_BLOCKS * GEMM_PREP_STRIDE) +
                  (size_t)s * GEMM_CHUNK_BLOCKS * GEMM_PREP_SCALE_SETS * GEMM_R;
#if GEMM_SCALES == GEMM_SCALES_ROW
        row_scale[s] = (const float *)(panels[s] + w->quant_bytes);
#endif
    }
    const float *no_bias[2] = {NULL, NULL};
    if (!bias)
        bias = no_bias;
    /* The chunk the L1 holds (w->chunk_blocks, from hwloc's L1d size; the
     * scratch is laid out for the largest); two panels take half-length
     * chunks: together they still fit. */
    const int chunk = w->chunk_blocks >= 2 && w->chunk_blocks < GEMM_CHUNK_BLOCKS ? w->chunk_blocks
                                                                                 : GEMM_CHUNK_BLOCKS;
    const int CB = chunk / S;
    for (int64_t b0 = 0; b0 < w->n_blocks; b0 += CB) {
        const int nb = (int)(w->n_blocks - b0 < CB ? w->n_blocks - b0 : CB);
        for (int s = 0; s < S; s++) {
            q[s] = gemm_panel_prepare(w, panels[s], b0, nb, qbuf[s], sbuf[s]);
            sc[s] = sbuf[s];
        }
        const bool first = b0 == 0, last = b0 + nb == w->n_blocks;
        /* Only the last chunk applies the row scale and bias (a NULL list
         * tells the tile there is nothing to apply yet). */
        const float *const *fs = last ? row_scale : NULL, *const *fb = last ? bias : NULL;
        const float *one[2] = {NULL, NULL};
        if (last && !fs)
            fs = one;
        /* The next chunk's quants (or, after the last, the first chunk of
         * the panels the caller runs next) come from memory into L2 while
         * this chunk's tiles run, a slice before each tile: a cold chunk
         * would otherwise stall its first tile for microseconds. */
        const char *pf[2] = {NULL, NULL}, *pf_end[2] = {NULL, NULL};
        int64_t pf_lines = 0;
        const uint8_t *const *pf_panels = last ? next_panels : panels;
        const int64_t pf_b0 = last ? 0 : b0 + CB;
        if (pf_panels) {
            int64_t nb_next = w->n_blocks - pf_b0;
            nb_next = nb_next < CB ? nb_next : CB;
            for (int s = 0; s < S; s++) {
                if (!pf_panels[s])
                    continue;
                pf[s] = (const char *)pf_panels[s] + (size_t)pf_b0 * GEMM_BLOCK_BYTES;
                pf_end[s] = pf[s] + (size_t)nb_next * GEMM_BLOCK_BYTES;
#if GEMM_SCALES != GEMM_SCALES_ROW
                const char *next_scales = (const char *)pf_panels[s] + w->quant_bytes +
                                          (size_t)pf_b0 / GEMM_GROUP_BLOCKS * GEMM_PREP_SCALE_SETS * GEMM_R * 2;
                for (int64_t l = 0; l < nb_next * GEMM_R * 2 * GEMM_PREP_SCALE_SETS / GEMM_GROUP_BLOCKS; l += 64)
                    _mm_prefetch(next_scales + l, _MM_HINT_T1);
#endif
            }
            int64_t tiles = (m + TMAX - 1) / TMAX;
            pf_lines = ((int64_t)nb_next * GEMM_BLOCK_BYTES / 64 + tiles - 1) / tiles;
        }
        int64_t i = 0;
        for (; i + TMAX <= m; i += TMAX) {
            float *o[2] = {out[0] + i * out_stride, S > 1 ? out[1] + i * out_stride : NULL};
            for (int s = 0; s < S; s++)
                for (int64_t l = 0; l < pf_lines && pf[s] < pf_end[s]; l++, pf[s] += 64)
                    _mm_prefetch(pf[s], _MM_HINT_T1);
            int64_t after = m - (i + TMAX);
            gemm_panel_tile(q, sc, b0, nb, act, rows + i, rows + i + TMAX, after < TMAX ? (int)after : TMAX,
                            o, out_stride, first, fs, fb, S, TMAX);
        }
        if (i < m) {
            /* The last tokens: one narrower tile (cases of TMAX and above never
             * occur and are compiled out). */
            float *o[2] = {out[0] + i * out_stride, S > 1 ? out[1] + i * out_stride : NULL};
            switch (m - i) {
#define GEMM_PANEL_TAIL(n)                                                                   \
            case n:                                                                           \
                if (n < TMAX)                                                                 \
                    gemm_panel_tile(q, sc, b0, nb, act, rows + i, rows, 0, o, out_stride, first, fs, fb, \
                                    S, n < TMAX ? n : 1);                                     \
                break;
            GEMM_PANEL_TAIL(1)
#if GEMM_PANEL_MAXT >= 3
            GEMM_PANEL_TAIL(2)
#endif
#if GEMM_PANEL_MAXT >= 4
            GEMM_PANEL_TAIL(3)
#endif
#if GEMM_PANEL_MAXT >= 5
            GEMM_PANEL_TAIL(4)
#endif
#if GEMM_PANEL_MAXT >= 6
            GEMM_PANEL_TAIL(5)
#endif
#if GEMM_PANEL_MAXT >= 7
            GEMM_PANEL_TAIL(6)
#endif
#undef GEMM_PANEL_TAIL
            default: break;
            }
        }
    }
}

void GEMM_PANEL_FN(const moak_x86_weight *w, const uint8_t *const *panels,
                   const uint8_t *const *next_panels, int n_panels, const moak_x86_act *act,
                   const int64_t *rows, int64_t m, const float *const *bias, float *const *out,
                   int64_t out_stride, void *scratch);

void GEMM_PANEL_FN(const moak_x86_weight *w, const uint8_t *const *panels,
                   const uint8_t *const *next_panels, int n_panels, const moak_x86_act *act,
                   const int64_t *rows, int64_t m, const float *const *bias, float *const *out,
                   int64_t out_stride, void *scratch)
{
    if (n_panels == 2)
        gemm_panel_body(w, panels, next_panels, act, rows, m, bias, out, out_stride, scratch, 2,
                        GEMM_PANEL_TOKENS_2);
    else
        gemm_panel_body(w, panels, next_panels, act, rows, m, bias, out, out_stride, scratch, 1,
                        GEMM_PANEL_TOKENS_1);
}
