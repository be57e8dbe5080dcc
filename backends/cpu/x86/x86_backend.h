/* Shared private header of the x86 backends (avx2 and avx512).
 * Two tables, one per ISA level, share this state type. */
#ifndef MOAK_X86_BACKEND_H
#define MOAK_X86_BACKEND_H

#include "moak_backend.h"

typedef enum moak_x86_level {
    MOAK_X86_AVX2 = 0,   /* AVX2 + FMA + F16C (+ AVX-VNNI when the CPU has it) */
    MOAK_X86_AVX512 = 1  /* AVX-512 F/BW/VL/DQ + VNNI (+ BF16 when the CPU has it) */
} moak_x86_level;

struct moak_x86_kernels; /* x86_kernels.h: the matmul/MoE kernels of one ISA level */

typedef struct moak_x86_state {
    moak_backend_env env;        /* copy of what init received */
    moak_x86_level level;
    uint64_t isa;                /* env.hw->isa */
    /* Per-thread scratch, grown on demand by the op that needs it
     * (moak_x86_scratch below). */
    void **scratch;              /* [env.n_threads] */
    size_t *scratch_bytes;       /* [env.n_threads] */
    /* ---- matmul / MoE (x86_matmul.c, x86_moe.c) ---- */
    const struct moak_x86_kernels *kernels; /* chosen at init from level and isa bits */
    /* Op-wide buffers (one op runs at a time per context): quantized
     * activations, the MoE hidden rows.  Grown on demand, 64-byte aligned. */
    void *op_buffer[4];
    size_t op_buffer_bytes[4];
} moak_x86_state;

/* Per-thread scratch of at least `bytes` bytes, 64-byte aligned, kept between
 * calls (contents are not preserved when it grows).  NULL when out of memory. */
void *moak_x86_scratch(moak_x86_state *st, int32_t thread, size_t bytes);

/* ---- attention, routing, rmsnorm, rope (attention_*.c, elementwise_*.c) ---- */
bool moak_x86_supports_attention_misc(const moak_x86_state *st, const moak_op_shape *shape,
                                      char *why, size_t why_len);
moak_status moak_x86_avx2_attention(void *state, const moak_attention_args *args);
moak_status moak_x86_avx512_attention(void *state, const moak_attention_args *args);
moak_status moak_x86_avx2_moe_route(void *state, const moak_route_args *args);
moak_status moak_x86_avx512_moe_route(void *state, const moak_route_args *args);
moak_status moak_x86_avx2_rmsnorm(void *state, const moak_rmsnorm_args *args);
moak_status moak_x86_avx512_rmsnorm(void *state, const moak_rmsnorm_args *args);
moak_status moak_x86_avx2_rope(void *state, const moak_rope_args *args);
/* ---- the sparse-attention indexer (x86_indexer.c, indexer_*.c) ---- */
moak_status moak_x86_avx2_indexer(void *state, const moak_indexer_args *args);
moak_status moak_x86_avx512_indexer(void *state, const moak_indexer_args *args);
moak_status moak_x86_avx512_rope(void *state, const moak_rope_args *args);
/* The gated delta rule (x86_gated_delta.c over ../gated_delta_cpu.c). */
moak_status moak_x86_gated_delta(void *state, const moak_gated_delta_args *args);

#endif
