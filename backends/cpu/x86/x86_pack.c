/* Weight packing for the x86 backends: GGUF-style rows -> the panel layout
 * described in x86_kernels.h.  ISA-neutral (plain C): the same code packs
 * for avx2 (16-row panels) and avx512 (32-row panels).  Runs once per weight,
 * spread over the context's threads one (expert, panel) per task. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "x86_backend.h"
#include "x86_kernels.h"

int64_t moak_x86_k_padded(moak_format format, int64_t cols)
{
    if (moak_x86_format_is_float(format))
        return cols;
    int64_t block = format == MOAK_FORMAT_I4_G128 ? 128 : 32;
    return (cols + block - 1) / block * block;
}

static size_t float_elem_bytes(moak_format f)
{
    return f == MOAK_FORMAT_F32 ? 4 : 2;
}

static int group_elems(moak_format f)
{
    return (int)moak_format_block_elems(f);
}

static size_t scale_bytes(const moak_x86_weight *w)
{
    size_t r = (size_t)w->panel_rows;
    switch (w->format) {
    case MOAK_FORMAT_Q8_0:
    case MOAK_FORMAT_Q4_0:
        return (size_t)w->n_blocks * r * 2;
    case MOAK_FORMAT_I4_G32:
    case MOAK_FORMAT_I4_G128:
        return (size_t)(w->k_padded / group_elems(w->format)) * 2 * r * 2;
    case MOAK_FORMAT_I8_ROW:
        return r * 4;
    default:
        return 0;
    }
}

/* Unsigned quant (0..255 for 8-bit, 0..15 for 4-bit) of element k of a source
 * row: the 8-bit formats stored + 128 for vpdpbusd's unsigned operand (128,
 * i.e. 0, past an I8_ROW row's data). */
static unsigned source_quant(moak_format f, const uint8_t *row, int64_t cols, int64_t k)
{
    const int q = moak_row_quant(f, row, cols, k);
    return f == MOAK_FORMAT_Q8_0 || f == MOAK_FORMAT_I8_ROW ? (unsigned)(q + 128) : (unsigned)q;
}

static uint16_t load_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

typedef struct pack_job {
    moak_x86_weight *w;
    const uint8_t *src;
    size_t src_row_bytes;
} pack_job;

static void pack_int_panel(const moak_x86_weight *w, const uint8_t *src, size_t src_row_bytes,
                           int64_t expert, int64_t panel, uint8_t *dst)
{
    const int R = w->panel_rows;
    const bool four_bit = w->format == MOAK_FORMAT_Q4_0 || w->format == MOAK_FORMAT_I4_G32 ||
                          w->format == MOAK_FORMAT_I4_G128;
    const size_t block_bytes = four_bit ? (size_t)R * 16 : (size_t)R * 32;
    uint8_t *scales = dst + w->quant_bytes;
    for (int r = 0; r < R; r++) {
        int64_t row = panel * R + r;
        if (row >= w->rows) {
            /* Padding rows: zero scales (already zero) and zero-valued quants. */
            if (!four_bit)
                for (int64_t b = 0; b < w->n_blocks; b++)
                    for (int g = 0; g < 8; g++)
                        memset(dst + (size_t)b * block_bytes + (size_t)(g * R + r) * 4, 0x80, 4);
            continue;
        }
        const uint8_t *srow = src + ((size_t)expert * (size_t)w->rows + (size_t)row) * src_row_bytes;
        for (int64_t b = 0; b < w->n_blocks; b++) {
            uint8_t *blk = dst + (size_t)b * block_bytes;
            for (int k = 0; k < 32; k++) {
                int64_t kk = b * 32 + k;
                unsigned q = source_quant(w->format, srow, w->cols, kk);
                int quad = k / 4, j = k % 4;
                if (!four_bit) {
                    blk[(size_t)(quad * R + r) * 4 + (size_t)j] = (uint8_t)q;
                } else {
                    int c = quad & 3;
                    uint8_t *byte = &blk[(size_t)(c * R + r) * 4 + (size_t)j];
                    *byte = (uint8_t)(quad < 4 ? ((*byte & 0xF0u) | q) : ((*byte & 0x0Fu) | (q << 4)));
                }
            }
        }
        switch (w->format) {
        case MOAK_FORMAT_Q8_0:
        case MOAK_FORMAT_Q4_0: {
            size_t sbytes = w->format == MOAK_FORMAT_Q8_0 ? 34 : 18;
            for (int64_t b = 0; b < w->n_blocks; b++) {
                uint16_t d = load_u16(srow + (size_t)b * sbytes);
                memcpy(scales + ((size_t)b * R + (size_t)r) * 2, &d, 2);
            }
            break;
        }
        case MOAK_FORMAT_I4_G32:
        case MOAK_FORMAT_I4_G128: {
            int g = group_elems(w->format);
            int64_t ng = w->k_padded / g;
            for (int64_t gi = 0; gi < ng; gi++) {
                const uint8_t *gp = srow + (size_t)gi * (size_t)(4 + g / 2);
                uint16_t sc = load_u16(gp), mn = load_u16(gp + 2);
                memcpy(scales + ((size_t)gi * 2 * R + (size_t)r) * 2, &sc, 2);
                memcpy(scales + ((size_t)gi * 2 * R + (size_t)R + (size_t)r) * 2, &mn, 2);
            }
            break;
        }
        case MOAK_FORMAT_I8_ROW:
            memcpy(scales + (size_t)r * 4, srow, 4);
            break;
        default:
            break;
        }
    }
}

static void pack_float_panel(const moak_x86_weight *w, const uint8_t *src, size_t src_row_bytes,
                             int64_t expert, int64_t panel, uint8_t *dst)
{
    const int R = w->panel_rows;
    const size_t es = float_elem_bytes(w->format);
    for (int r = 0; r < R; r++) {
        int64_t row = panel * R + r;
        if (row >= w->rows)
            continue; /* zeros */
        const uint8_t *srow = src + ((size_t)expert * (size_t)w->rows + (size_t)row) * src_row_bytes;
        for (int64_t k = 0; k < w->cols; k++)
            memcpy(dst + ((size_t)k * R + (size_t)r) * es, srow + (size_t)k * es, es);
    }
}

static void pack_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const pack_job *job = arg;
    const moak_x86_weight *w = job->w;
    int64_t expert = task / w->n_panels, panel = task % w->n_panels;
    uint8_t *dst = (uint8_t *)moak_x86_panel(w, expert, panel);
    if (moak_x86_format_is_float(w->format))
        pack_float_panel(w, job->src, job->src_row_bytes, expert, panel, dst);
    else
        pack_int_panel(w, job->src, job->src_row_bytes, expert, panel, dst);
}

/* The prefill panel kernel's K-chunk: as many 32-blocks of a panel's
 * prepared quants (R rows x 32 bytes, twice that for 8-bit formats on plain
 * AVX2, which keeps |q| beside q) as fill 2/3 of the L1d hwloc reports,
 * leaving the rest to the activation rows and sums that pass over them;
 * even (two-panel calls halve it), at most what the scratch is laid out for
 * (MOAK_X86_MAX_CHUNK_BYTES); that maximum when the L1 size is unknown. */
static int32_t prefill_chunk_blocks(const moak_x86_state *st, const moak_x86_weight *w)
{
    const bool eight_bit = w->format == MOAK_FORMAT_Q8_0 || w->format == MOAK_FORMAT_I8_ROW;
    const size_t block = (size_t)w->panel_rows * 32 * (eight_bit && st->kernels->dot8_offset == 0 ? 2 : 1);
    const uint64_t l1 = st->env.hw ? st->env.hw->cache_bytes[0] : 0;
    size_t bytes = l1 ? (size_t)(l1 * 2 / 3) : MOAK_X86_MAX_CHUNK_BYTES;
    if (bytes > MOAK_X86_MAX_CHUNK_BYTES)
        bytes = MOAK_X86_MAX_CHUNK_BYTES;
    int32_t blocks = (int32_t)(bytes / block) & ~1;
    return blocks < 2 ? 2 : blocks;
}

moak_status moak_x86_weight_pack(void *state, const moak_weight_desc *desc, void **packed)
{
    moak_x86_state *st = state;
    moak_x86_weight *w = calloc(1, sizeof(*w));
    if (!w)
        return st->env.error(st->env.log_ctx, MOAK_ERR_OUT_OF_MEMORY, "weight: out of memory");
    w->format = desc->format;
    w->n_experts = desc->n_experts;
    w->rows = desc->rows;
    w->cols = desc->cols;
    w->panel_rows = st->kernels->panel_rows;
    w->n_panels = (desc->rows + w->panel_rows - 1) / w->panel_rows;
    w->k_padded = moak_x86_k_padded(desc->format, desc->cols);
    w->n_blocks = moak_x86_format_is_float(desc->format) ? 0 : w->k_padded / 32;
    w->chunk_blocks = prefill_chunk_blocks(st, w);
    size_t R = (size_t)w->panel_rows;
    switch (desc->format) {
    case MOAK_FORMAT_Q8_0:
    case MOAK_FORMAT_I8_ROW:
        w->quant_bytes = (size_t)w->n_blocks * R * 32;
        break;
    case MOAK_FORMAT_Q4_0:
    case MOAK_FORMAT_I4_G32:
    case MOAK_FORMAT_I4_G128:
        w->quant_bytes = (size_t)w->n_blocks * R * 16;
        break;
    default:
        w->quant_bytes = (size_t)w->cols * R * float_elem_bytes(desc->format);
        break;
    }
    w->panel_bytes = (w->quant_bytes + scale_bytes(w) + 63) & ~(size_t)63;
    w->expert_bytes = w->panel_bytes * (size_t)w->n_panels;
    size_t total = w->expert_bytes * (size_t)w->n_experts;
    if (total / (size_t)w->n_experts != w->expert_bytes ||
        (w->data = moak_alloc_streamed(total)) == NULL) {
        free(w);
        return st->env.error(st->env.log_ctx, MOAK_ERR_OUT_OF_MEMORY,
                             "weight: out of memory packing %zu bytes", total);
    }
    memset(w->data, 0, total);
    pack_job job = {w, desc->data, moak_format_row_bytes(desc->format, desc->cols)};
    st->env.parallel_for(st->env.pool, w->n_experts * w->n_panels, pack_task, &job);
    *packed = w;
    return MOAK_OK;
}

void moak_x86_weight_free(void *state, void *packed)
{
    (void)state;
    moak_x86_weight *w = packed;
    if (!w)
        return;
    free(w->data);
    free(w);
}
