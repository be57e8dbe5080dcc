/* The matmul / MoE side of the x86 backends: the packed weight layout, the
 * quantized activation rows, and the table of kernels each ISA level fills.
 *
 * Packed weights (x86_pack.c, ISA-neutral).  Rows are grouped into panels of
 * R = 2 vectors of int32/f32 lanes (avx512: 32 rows, avx2: 16 rows) so one
 * vector load of weights feeds R/2 output rows; the last panel is padded with
 * rows whose scales are 0.  K is padded to the format's block (32, or 128 for
 * I4_G128; floats are not padded).  Per panel, in this order:
 *
 *   quants   integer formats, per block of 32 k:
 *              8-bit (Q8_0, I8_ROW): [8 quads][R rows][4 k] bytes, stored
 *                as q + 128 (unsigned) so vpdpbusd takes them as its u8
 *                operand; the kernel subtracts 128 * sum(x_q) per block.
 *              4-bit (Q4_0, I4_*):   [4 quads][R rows][4 k] bytes; the low
 *                nibble holds quad c, the high nibble quad c + 4, both
 *                unsigned (Q4_0 keeps its +8 bias; the kernel subtracts
 *                8 * sum(x_q)).
 *            float formats: [K][R] elements (f32, f16 or bf16).
 *   scales   Q8_0, Q4_0: [block][R] f16 (GGUF's d);
 *            I4_G*:      [group][2][R] f16 (scale row, then min row);
 *            I8_ROW:     [R] f32 row scales; floats: none.
 *
 * Activations of integer formats are quantized per block of 32 to int8
 * (symmetric, d = amax/127, round to nearest) with the block's sum of
 * quants kept for the offset and min terms; that is the whole accuracy cost
 * (about 2^-8 relative per element, far inside MOAK_BOUND_MATMUL_INT).
 * The block's -offset * sum(x_q) is computed here once, so the kernel starts
 * each int32 accumulator from it (a broadcast load, no vector ALU op). */
#ifndef MOAK_X86_KERNELS_H
#define MOAK_X86_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "moak_backend.h"
#include "x86_backend.h"

#define MOAK_X86_QBLOCK 32           /* activation quantization block */
#define MOAK_X86_MAX_TILE_TOKENS 8   /* upper bound of any level's tokens per tile */

typedef struct moak_x86_weight {
    moak_format format;
    int64_t n_experts;
    int64_t rows;                /* N */
    int64_t cols;                /* K */
    int32_t panel_rows;          /* R */
    int64_t n_panels;            /* ceil(N / R) */
    int64_t k_padded;            /* K rounded up to the format's block */
    int64_t n_blocks;            /* k_padded / 32 (integer formats) */
    size_t quant_bytes;          /* bytes of quants in one panel */
    size_t panel_bytes;          /* quants + scales, rounded up to 64 */
    size_t expert_bytes;         /* n_panels * panel_bytes */
    int32_t chunk_blocks;        /* prefill K-chunk, in 32-blocks: what 2/3 of the L1d
                                  * hwloc reports holds once prepared (x86_pack.c) */
    uint8_t *data;               /* 64-byte aligned */
} moak_x86_weight;

static inline const uint8_t *moak_x86_panel(const moak_x86_weight *w, int64_t expert, int64_t panel)
{
    return w->data + (size_t)expert * w->expert_bytes + (size_t)panel * w->panel_bytes;
}

static inline bool moak_x86_format_is_float(moak_format f)
{
    return f == MOAK_FORMAT_F32 || f == MOAK_FORMAT_F16 || f == MOAK_FORMAT_BF16;
}

/* Activation rows as a tile kernel reads them.  Integer formats: q/d/s, one
 * row per token (or per MoE pair); float formats: f with f_stride. */
typedef struct moak_x86_act {
    const int8_t *q;             /* [rows][k_padded] */
    const float *d;              /* [rows][n_blocks] block scales */
    const int32_t *s;            /* [rows][n_blocks] -offset * (sum of the block's quants) */
    const float *ds;             /* [rows][n_blocks] d * (sum of the block's quants) */
    int64_t k_padded;
    int64_t n_blocks;
    const float *f;              /* [rows][f_stride] */
    int64_t f_stride;
} moak_x86_act;

/* One tile: out[p][t][r] = sum_k W_p[r][k] * x_{rows[t]}[k] for each of the
 * n_panels panels (1 or 2; all of the same weight layout), nt tokens
 * (1 <= nt <= the level's max_tokens[n_panels - 1]) and the R rows of each
 * panel, over the K range [k0, k1) of the weights: 32-blocks for integer
 * formats (0 <= k0 < k1 <= n_blocks; for I4_G* both ends on group
 * boundaries, k1 may be n_blocks), elements for float formats.  The
 * activation rows hold only that range: their column 0 is weight column k0
 * (k0 * 32 for integer formats).  No bias; I8_ROW's row scale is applied
 * (the sum is linear, so K-range partial sums add up). */
typedef void (*moak_x86_tile_fn)(const moak_x86_weight *w, const uint8_t *const *panels,
                                 int n_panels, int64_t k0, int64_t k1, const moak_x86_act *act,
                                 const int64_t *rows, int nt, float *out);

/* The prefill panel kernel (integer formats, gemm_panel_body.h): for
 * p < n_panels (1 or 2) and i < m (any m >= 1), the R floats at
 * out[p] + i * out_stride = sum_k W_p[r][k] * x_{rows[i]}[k] over all of K,
 * plus bias[p][r] when bias and bias[p] are not NULL; I8_ROW's row scale
 * applied.  out is also where the sums wait between K-chunks.  next_panels
 * (NULL, or n_panels pointers, each may be NULL): the panels the caller
 * runs next, whose first bytes are prefetched during the last chunk.
 * scratch: MOAK_X86_PANEL_SCRATCH_BYTES, 64-byte aligned, private to the
 * call (the panels' K-chunks are unpacked there). */
typedef void (*moak_x86_panel_fn)(const moak_x86_weight *w, const uint8_t *const *panels,
                                  const uint8_t *const *next_panels, int n_panels,
                                  const moak_x86_act *act, const int64_t *rows, int64_t m,
                                  const float *const *bias, float *const *out,
                                  int64_t out_stride, void *scratch);

/* The largest prefill K-chunk of prepared quants per panel, whatever the
 * L1 (an L1 of 48 KB or more gets this much), and the scratch of one
 * panel-kernel call: two panels' chunks plus their f32 scales (and mins). */
#define MOAK_X86_MAX_CHUNK_BYTES 32768
#define MOAK_X86_PANEL_SCRATCH_BYTES ((size_t)2 * (MOAK_X86_MAX_CHUNK_BYTES + MOAK_X86_MAX_CHUNK_BYTES / 4))

/* Quantize n_rows rows of cols floats (row i at x + i * x_stride) into
 * k_padded int8 each (zeros past cols); per block of 32: d, s = -offset * sum
 * (the term that removes the weights' stored offset, ready to be the int32
 * accumulator's starting value) and ds = d * sum (for I4's min term). */
typedef void (*moak_x86_quantize_fn)(const float *x, int64_t x_stride, int64_t cols,
                                     int64_t n_rows, int64_t k_padded, int32_t offset,
                                     int8_t *q, float *d, int32_t *s, float *ds);

/* h[i] = act(g[i], u[i]) for i < n (moak.h's moak_activation). */
typedef void (*moak_x86_glu_fn)(moak_activation act, float alpha, float limit,
                                const float *g, const float *u, int64_t n, float *h);

typedef struct moak_x86_kernels {
    const char *name;            /* "avx512-vnni", "avx2-vnni", "avx2" */
    int32_t panel_rows;          /* R */
    int32_t max_tokens[2];       /* tokens per tile with 1 and with 2 panels */
    int32_t dot8_offset;         /* offset of 8-bit quants the int8 dot leaves in (128 or 0) */
    moak_x86_tile_fn tile[MOAK_FORMAT_COUNT]; /* NULL = format not done */
    moak_x86_panel_fn panel[MOAK_FORMAT_COUNT]; /* prefill; NULL = tiles only */
    int32_t panel_min_tokens;    /* fewer tokens per call: the tile kernel is faster
                                  * (the chunk preparation is not paid back) */
    moak_x86_quantize_fn quantize;
    moak_x86_glu_fn glu;
} moak_x86_kernels;

/* The tables of each level (kernels_*.c); absent ones are not built. */
extern const moak_x86_kernels moak_x86_kernels_avx512;
extern const moak_x86_kernels moak_x86_kernels_avx2;
extern const moak_x86_kernels moak_x86_kernels_avx2_vnni;

/* Weight packing (x86_pack.c). */
moak_status moak_x86_weight_pack(void *state, const moak_weight_desc *desc, void **packed);
void moak_x86_weight_free(void *state, void *packed);

/* The two ops (x86_matmul.c, x86_moe.c), level-independent drivers. */
moak_status moak_x86_matmul(void *state, const moak_matmul_args *args);
moak_status moak_x86_moe_ffn(void *state, const moak_moe_args *args);

/* Op-wide buffer `index` (0..3) of at least `bytes`, 64-byte aligned. */
void *moak_x86_op_buffer(moak_x86_state *st, int index, size_t bytes);

/* Quantizes n_rows rows of x (stride x_stride, cols used) into op buffer
 * `index` of st and points act at it; split over threads when there are
 * enough rows to pay for it (x86_matmul.c). */
moak_status moak_x86_quantize_activations(moak_x86_state *st, int index, const float *x,
                                          int64_t x_stride, int64_t cols, int64_t n_rows,
                                          const moak_x86_weight *w, moak_x86_act *act);

/* The stored offset of a format's quants that the activations' -offset *
 * sum term removes (8-bit: the level's dot8_offset; Q4_0: 8; I4_*: 0, its
 * min term does that). */
int32_t moak_x86_act_offset(const moak_x86_kernels *kernels, moak_format format);

/* K padded for a format: to 128 for I4_G128, to 32 for the other integer
 * formats, unchanged for floats. */
int64_t moak_x86_k_padded(moak_format format, int64_t cols);

#endif
