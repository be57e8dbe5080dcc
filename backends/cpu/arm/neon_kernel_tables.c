/*
 * The kernel table of each neon level: which tile runs each weight format,
 * which weight layout it reads, how many tokens one register tile holds.
 * Plain data, compiled without ISA flags; a level's functions are only
 * called once init chose that level from the CPU's (capped) ISA bits.
 *
 * Tokens per tile follow from the 32 vector registers: the neon level keeps
 * two int32 accumulators per row group and token (smull pairs widen into
 * sadalp), so 2 tokens; dotprod and i8mm one per row group (or row pair)
 * and token, so 4.
 */
#include "config.h"

#include "neon_kernels.h"

const neon_kernels neon_kernels_base = {
    .name = "neon",
    .k_group = 4,
    .max_tokens = 2,
    .tile = {
        [MOAK_FORMAT_F32] = neon_tile_f32,
        [MOAK_FORMAT_F16] = neon_tile_f16,
        [MOAK_FORMAT_BF16] = neon_tile_bf16,
        [MOAK_FORMAT_Q8_0] = neon_base_tile_q8_0,
        [MOAK_FORMAT_Q4_0] = neon_base_tile_q4_0,
        [MOAK_FORMAT_I8_ROW] = neon_base_tile_i8_row,
        [MOAK_FORMAT_I4_G32] = neon_base_tile_i4_g32,
        [MOAK_FORMAT_I4_G128] = neon_base_tile_i4_g128,
    },
};

const neon_kernels neon_kernels_dotprod = {
    .name = "dotprod",
    .k_group = 4,
    .max_tokens = 4,
    .tile = {
        [MOAK_FORMAT_F32] = neon_tile_f32,
        [MOAK_FORMAT_F16] = neon_tile_f16,
        [MOAK_FORMAT_BF16] = neon_tile_bf16,
        [MOAK_FORMAT_Q8_0] = neon_dotprod_tile_q8_0,
        [MOAK_FORMAT_Q4_0] = neon_dotprod_tile_q4_0,
        [MOAK_FORMAT_I8_ROW] = neon_dotprod_tile_i8_row,
        [MOAK_FORMAT_I4_G32] = neon_dotprod_tile_i4_g32,
        [MOAK_FORMAT_I4_G128] = neon_dotprod_tile_i4_g128,
    },
};

const neon_kernels neon_kernels_i8mm = {
    .name = "i8mm",
    .k_group = 8,
    .max_tokens = 4,
    .tile = {
        [MOAK_FORMAT_F32] = neon_tile_f32,
        [MOAK_FORMAT_F16] = neon_tile_f16,
        [MOAK_FORMAT_BF16] = neon_tile_bf16,
        [MOAK_FORMAT_Q8_0] = neon_i8mm_tile_q8_0,
        [MOAK_FORMAT_Q4_0] = neon_i8mm_tile_q4_0,
        [MOAK_FORMAT_I8_ROW] = neon_i8mm_tile_i8_row,
        [MOAK_FORMAT_I4_G32] = neon_i8mm_tile_i4_g32,
        [MOAK_FORMAT_I4_G128] = neon_i8mm_tile_i4_g128,
    },
};
