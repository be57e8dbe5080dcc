/*
 * neon_backend.h — private state and entry points of the "neon" backend.
 *
 * One backend, three kernel levels chosen at init from the probe's ISA bits
 * (moak_backend_env.hw->isa, already capped by MOAK_ISA_MAX):
 *   neon     armv8-a Advanced SIMD only: int8 dots with smull/smlal + sadalp
 *   dotprod  + sdot (armv8.2-a+dotprod): int8 dots 4 at a time per lane
 *   i8mm     + smmla (armv8.6-a+i8mm): 2x8 by 8x2 int8 matrix tiles
 * Only the integer matmul tiles differ between levels (neon_kernels.h); the
 * float tiles, activation quantization, MoE activation, attention, routing,
 * rmsnorm and rope are Advanced SIMD code that every aarch64 core runs.
 *
 * Files of this backend: neon_backend.c (table, supports, scratch),
 * neon_pack.c (weight re-layout), neon_matmul.c and neon_moe.c (drivers),
 * all compiled without ISA flags; the kernels live in per-level convenience
 * libraries (backends/cpu/arm/local.mk).
 */
#ifndef MOAK_NEON_BACKEND_H
#define MOAK_NEON_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "moak_backend.h"

typedef enum neon_level {
    NEON_LEVEL_BASE = 0,
    NEON_LEVEL_DOTPROD = 1,
    NEON_LEVEL_I8MM = 2
} neon_level;

struct neon_kernels; /* neon_kernels.h */

/* Op-wide buffers (one op runs at a time per context). */
enum {
    NEON_BUFFER_ACT_X = 0,       /* quantized activations of matmul / MoE input */
    NEON_BUFFER_HIDDEN = 1,      /* MoE hidden rows h[pair][inter], f32 */
    NEON_BUFFER_ACT_H = 2,       /* quantized MoE hidden rows */
    NEON_BUFFER_PLAN = 3,        /* attention plan and partial results */
    NEON_BUFFER_COUNT = 4
};

typedef struct neon_state {
    moak_backend_env env;        /* copy of what init received */
    int32_t n_threads;           /* >= 1 */
    neon_level level;
    const struct neon_kernels *kernels;
    /* Per-thread scratch, sized before each parallel phase with
     * neon_reserve_scratch so that tasks never allocate. */
    void **scratch;              /* [n_threads] */
    size_t *scratch_bytes;       /* [n_threads] */
    void *buffer[NEON_BUFFER_COUNT];
    size_t buffer_bytes[NEON_BUFFER_COUNT];
} neon_state;

/* ---- services (neon_backend.c) --------------------------------------------- */

/* Make every thread's scratch at least `bytes` long (64-byte aligned).
 * MOAK_ERR_OUT_OF_MEMORY (message set) on failure. */
moak_status neon_reserve_scratch(neon_state *st, size_t bytes, const char *what);
/* The scratch of `thread`, as reserved. */
static inline void *neon_scratch(const neon_state *st, int32_t thread)
{
    return st->scratch[thread];
}
/* Op-wide buffer `index` of at least `bytes`, 64-byte aligned; NULL (message
 * set) when out of memory.  Contents are not kept when it grows. */
void *neon_buffer(neon_state *st, int index, size_t bytes, const char *what);
/* Set the context's detail message ("neon: " + text) and return status. */
moak_status neon_error(const neon_state *st, moak_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Run fn over n_tasks on the pool (inline when there is one task or no pool). */
void neon_parallel_for(const neon_state *st, int64_t n_tasks, moak_task_fn fn, void *arg);

/* ---- ops -------------------------------------------------------------------- */

moak_status neon_weight_pack(void *state, const moak_weight_desc *desc, void **packed);
void neon_weight_free(void *state, void *packed);
moak_status neon_matmul(void *state, const moak_matmul_args *args);
moak_status neon_moe_ffn(void *state, const moak_moe_args *args);
/* Advanced SIMD files (libneon_base.la). */
moak_status neon_attention(void *state, const moak_attention_args *args);
moak_status neon_moe_route(void *state, const moak_route_args *args);
moak_status neon_rmsnorm(void *state, const moak_rmsnorm_args *args);
moak_status neon_rope(void *state, const moak_rope_args *args);
/* The gated delta rule (gated_delta_neon.c over ../gated_delta_cpu.c). */
moak_status neon_gated_delta(void *state, const moak_gated_delta_args *args);

#endif
