/*
 * neon_kernels.h — packed weights, quantized activations and the matmul
 * tile kernels of the neon backend.
 *
 * Packed weights (neon_pack.c, plain C).  Output rows are grouped into
 * panels of NEON_PANEL_ROWS = 8 rows; the last panel is padded with rows
 * whose quants and scales are 0.  K is padded to the format's block (32, or
 * 128 for I4_G128); float formats are not padded.
 *
 * Integer formats.  Each 16-byte vector of quants holds `k_group` consecutive
 * k of 16 / k_group rows, row-major inside the vector:
 *   k_group 4 (neon, dotprod): rows r..r+3, 4 k each: the lane layout of
 *     sdot by element — lane i of the int32 accumulator is row r+i, and
 *     the activation's 4 k are broadcast from one 32-bit lane;
 *   k_group 8 (i8mm): rows r, r+1, 8 k each: the 2x8 left operand of smmla.
 * Per panel, per block of 32 k, per chunk c (32 / k_group chunks), per row
 * group g (8 / rows-per-vector groups): one vector.  8-bit formats store the
 * signed quant itself (Q8_0's q, I8_ROW's q).  4-bit formats store half as
 * many vectors: chunk c in the low nibble and chunk c + chunks/2 in the
 * high nibble, each as (q - 8) in 4-bit two's complement (q ^ 8), so that
 *   (v << 4) and (v & 0xF0), read as int8, are 16 * (q - 8)
 * with no bias to subtract: the kernels fold the 1/16 into the block scale.
 * After the quants of all blocks come the scales:
 *   Q8_0, Q4_0   [block][8] f16 (GGUF's d)
 *   I4_G*        [group][2][8] f16 (scale row, then min row)
 *   I8_ROW       [8] f32 row scales
 * I4's x = scale * q + min = scale * (q - 8) + (min + 8 * scale), so a block
 * contributes scale * dx * S + (min + 8 * scale) * dx * sum(x_q), with S the
 * int8 dot of the signed nibbles and dx * sum(x_q) precomputed per
 * activation block (neon_act.ds).
 *
 * Float formats: per panel [K][8] elements (f32, f16 or bf16), so one k's
 * eight rows are one 32- or 16-byte load, multiplied by a broadcast x[k].
 *
 * Activations of integer formats are quantized per block of 32 to int8
 * (symmetric, d = amax / 127, round to nearest even, |q| <= 127), the only
 * approximation of the integer path: about 2^-8 of each element, far
 * inside MOAK_BOUND_MATMUL_INT.  Products of |q| <= 127 with the weights'
 * int8 (|v| <= 128) fit int16 twice over, which the neon level relies on.
 */
#ifndef MOAK_NEON_KERNELS_H
#define MOAK_NEON_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moak_backend.h"
#include "neon_backend.h"

#define NEON_PANEL_ROWS 8        /* output rows per panel */
#define NEON_QBLOCK 32           /* activation quantization block */
#define NEON_MAX_TILE_TOKENS 4   /* upper bound of any level's tokens per tile */

typedef struct neon_weight {
    moak_format format;
    int64_t n_experts;
    int64_t rows;                /* N */
    int64_t cols;                /* K */
    int32_t k_group;             /* 4 or 8 (integer formats; 0 for floats) */
    int64_t n_panels;            /* ceil(N / 8) */
    int64_t k_padded;            /* K rounded up to the format's block */
    int64_t n_blocks;            /* k_padded / 32 (integer formats) */
    size_t quant_bytes;          /* bytes of quants of one panel */
    size_t panel_bytes;          /* quants + scales, rounded up to 64 */
    size_t expert_bytes;         /* n_panels * panel_bytes */
    uint8_t *data;               /* 64-byte aligned */
} neon_weight;

static inline const uint8_t *neon_panel(const neon_weight *w, int64_t expert, int64_t panel)
{
    return w->data + (size_t)expert * w->expert_bytes + (size_t)panel * w->panel_bytes;
}

static inline bool neon_format_is_float(moak_format f)
{
    return f == MOAK_FORMAT_F32 || f == MOAK_FORMAT_F16 || f == MOAK_FORMAT_BF16;
}

/* K padded for a format: to 128 for I4_G128, 32 for other integer formats,
 * unchanged for floats. */
static inline int64_t neon_k_padded(moak_format f, int64_t cols)
{
    if (neon_format_is_float(f))
        return cols;
    const int64_t block = f == MOAK_FORMAT_I4_G128 ? 128 : 32;
    return (cols + block - 1) / block * block;
}

/* Activation rows as a tile reads them: row i of q, d, ds for integer
 * formats, row i of f (stride f_stride) for float formats.  A tile is told
 * which rows (token or MoE pair indices) it multiplies. */
typedef struct neon_act {
    const int8_t *q;             /* [rows][k_padded] */
    const float *d;              /* [rows][n_blocks]: block scales */
    const float *ds;             /* [rows][n_blocks]: d * sum of the block's quants */
    int64_t k_padded;
    int64_t n_blocks;
    const float *f;              /* [rows][f_stride] */
    int64_t f_stride;
} neon_act;

/* out[t][r] = sum_k W[r][k] * x_{rows[t]}[k] for the 8 rows r of one panel
 * and 1 <= nt <= the level's max_tokens tokens, over the whole of K.  No
 * bias; I8_ROW's row scale is applied.  Every token's result is the same
 * whatever nt and whichever other tokens share the tile. */
typedef void (*neon_tile_fn)(const neon_weight *w, const uint8_t *panel, const neon_act *act,
                             const int64_t *rows, int nt, float *out);

typedef struct neon_kernels {
    const char *name;            /* "neon", "dotprod", "i8mm" */
    int32_t k_group;             /* integer weight layout, see above */
    int32_t max_tokens;          /* tokens per integer tile */
    neon_tile_fn tile[MOAK_FORMAT_COUNT];
} neon_kernels;

extern const neon_kernels neon_kernels_base;
extern const neon_kernels neon_kernels_dotprod;
extern const neon_kernels neon_kernels_i8mm;

/* Tokens per float tile (every level). */
#define NEON_FLOAT_TILE_TOKENS 4

/* ---- the tiles of each level (one file each) ------------------------------- */

#define NEON_DECLARE_INT_TILES(level)                                                      \
    void neon_##level##_tile_q8_0(const neon_weight *, const uint8_t *, const neon_act *,  \
                                  const int64_t *, int, float *);                          \
    void neon_##level##_tile_q4_0(const neon_weight *, const uint8_t *, const neon_act *,  \
                                  const int64_t *, int, float *);                          \
    void neon_##level##_tile_i8_row(const neon_weight *, const uint8_t *, const neon_act *, \
                                    const int64_t *, int, float *);                        \
    void neon_##level##_tile_i4_g32(const neon_weight *, const uint8_t *, const neon_act *, \
                                    const int64_t *, int, float *);                        \
    void neon_##level##_tile_i4_g128(const neon_weight *, const uint8_t *, const neon_act *, \
                                     const int64_t *, int, float *)

NEON_DECLARE_INT_TILES(base);
NEON_DECLARE_INT_TILES(dotprod);
NEON_DECLARE_INT_TILES(i8mm);

/* gemm_float_neon.c */
void neon_tile_f32(const neon_weight *, const uint8_t *, const neon_act *, const int64_t *, int,
                   float *);
void neon_tile_f16(const neon_weight *, const uint8_t *, const neon_act *, const int64_t *, int,
                   float *);
void neon_tile_bf16(const neon_weight *, const uint8_t *, const neon_act *, const int64_t *, int,
                    float *);

/* quantize_neon.c: n_rows rows of cols floats (row i at x + i * x_stride)
 * into k_padded int8 each (zeros past cols) with per-block d and ds. */
void neon_quantize_rows(const float *x, int64_t x_stride, int64_t cols, int64_t n_rows,
                        int64_t k_padded, int8_t *q, float *d, float *ds);

/* moe_glu_neon.c: h[i] = act(g[i], u[i]) for i < n (moak.h's moak_activation). */
void neon_glu(moak_activation act, float alpha, float limit, const float *g, const float *u,
              int64_t n, float *h);

/* ---- drivers (neon_matmul.c) ------------------------------------------------ */

/* Quantize n_rows rows of x (stride x_stride, cols used) for weight w into
 * op buffer `index` and describe them in act; split over threads when there
 * are enough rows. */
moak_status neon_quantize_activations(neon_state *st, int index, const float *x,
                                      int64_t x_stride, int64_t cols, int64_t n_rows,
                                      const neon_weight *w, neon_act *act);

#endif
