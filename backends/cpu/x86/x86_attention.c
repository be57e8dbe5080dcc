/*
 * x86_attention.c — the avx2 and avx512 backends' moak_attention: the CPU
 * attention driver (backends/cpu/cpu_attention.c) over the x86 state's
 * scratch and op buffers, with the ISA's kernel table.  ISA-neutral:
 * compiled with the library's ordinary flags.
 */
#include "config.h"

#include "../cpu_attention.h"
#include "x86_backend.h"
#include "x86_kernels.h"

static moak_status x86_attn_reserve_scratch(void *owner, size_t bytes)
{
    moak_x86_state *st = owner;
    const int32_t n_threads = st->env.n_threads > 0 ? st->env.n_threads : 1;
    for (int32_t t = 0; t < n_threads; t++)
        if (!moak_x86_scratch(st, t, bytes))
            return st->env.error(st->env.log_ctx, MOAK_ERR_OUT_OF_MEMORY,
                                 "%s: out of memory for %zu bytes of attention scratch",
                                 st->level == MOAK_X86_AVX512 ? "avx512" : "avx2", bytes);
    return MOAK_OK;
}

static void *x86_attn_scratch(void *owner, int32_t thread)
{
    return ((moak_x86_state *)owner)->scratch[thread];
}

static void *x86_attn_op_buffer(void *owner, int32_t index, size_t bytes)
{
    return moak_x86_op_buffer(owner, index, bytes);
}

static moak_status x86_attention(moak_x86_state *st, const moak_attention_args *args,
                                 const cpu_attn_kernels *kernels)
{
    const cpu_attn_host host = {
        .env = &st->env,
        .n_threads = st->env.n_threads > 0 ? st->env.n_threads : 1,
        .owner = st,
        .reserve_scratch = x86_attn_reserve_scratch,
        .scratch = x86_attn_scratch,
        .op_buffer = x86_attn_op_buffer,
    };
    return cpu_attention_run(&host, args, kernels);
}

#ifdef MOAK_BUILD_AVX2
moak_status moak_x86_avx2_attention(void *state, const moak_attention_args *args)
{
    return x86_attention(state, args, &cpu_attn_kernels_avx2);
}
#endif

#ifdef MOAK_BUILD_AVX512
moak_status moak_x86_avx512_attention(void *state, const moak_attention_args *args)
{
    return x86_attention(state, args, &cpu_attn_kernels_avx512);
}
#endif
