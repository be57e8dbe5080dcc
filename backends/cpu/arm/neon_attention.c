/*
 * neon_attention.c — the neon backend's moak_attention: the CPU attention
 * driver (backends/cpu/cpu_attention.c) over the neon state's scratch and
 * op buffers, with the neon kernel table (attention_neon.c).
 */
#include "config.h"

#include "../cpu_attention.h"
#include "neon_backend.h"

static moak_status neon_attn_reserve_scratch(void *owner, size_t bytes)
{
    return neon_reserve_scratch(owner, bytes, "attention tiles");
}

static void *neon_attn_scratch(void *owner, int32_t thread)
{
    return neon_scratch(owner, thread);
}

/* The driver's two op buffers: its plan, and the split tiles' partial
 * results (the MoE hidden rows' buffer: one op runs at a time). */
static void *neon_attn_op_buffer(void *owner, int32_t index, size_t bytes)
{
    return neon_buffer(owner, index == 0 ? NEON_BUFFER_PLAN : NEON_BUFFER_HIDDEN, bytes,
                       index == 0 ? "the attention plan" : "attention partial results");
}

moak_status neon_attention(void *state, const moak_attention_args *args)
{
    neon_state *st = state;
    const cpu_attn_host host = {
        .env = &st->env,
        .n_threads = st->n_threads,
        .owner = st,
        .reserve_scratch = neon_attn_reserve_scratch,
        .scratch = neon_attn_scratch,
        .op_buffer = neon_attn_op_buffer,
    };
    return cpu_attention_run(&host, args, &cpu_attn_kernels_neon);
}
