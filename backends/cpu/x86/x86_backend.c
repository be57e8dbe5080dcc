/* The avx2 and avx512 backend tables: availability from the probe's ISA bits,
 * per-context state, the supports() question, scratch memory.
 *
 * Compiled with no ISA flags: this file must run on any x86-64, so that a
 * machine without AVX2 learns "not available" instead of faulting. */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200112L
#  undef _POSIX_C_SOURCE
#  define _POSIX_C_SOURCE 200112L
#endif
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "x86_backend.h"
#include "x86_kernels.h"

#define AVX2_NEEDS (MOAK_ISA_AVX2 | MOAK_ISA_FMA | MOAK_ISA_F16C)
#define AVX512_NEEDS (MOAK_ISA_AVX512F | MOAK_ISA_AVX512BW | MOAK_ISA_AVX512VL | MOAK_ISA_AVX512VNNI)

/* Names the first missing bit of `needs` in why. */
static bool isa_has(const moak_hw_info *hw, uint64_t needs, const char *backend, char *why,
                    size_t why_len)
{
    uint64_t missing = needs & ~hw->isa;
    if (!missing)
        return true;
    uint64_t bit = missing & (~missing + 1);
    const char *name = moak_isa_name(bit);
    if (why && why_len)
        snprintf(why, why_len, "%s needs %s, which this CPU%s does not offer", backend,
                 name ? name : "an ISA extension", hw->isa_cap ? " (under MOAK_ISA_MAX)" : "");
    return false;
}

#ifdef MOAK_BUILD_AVX2
static bool avx2_available(const moak_hw_info *hw, char *why, size_t why_len)
{
    return isa_has(hw, AVX2_NEEDS, "avx2", why, why_len);
}

#endif

#ifdef MOAK_BUILD_AVX512
static bool avx512_available(const moak_hw_info *hw, char *why, size_t why_len)
{
    return isa_has(hw, AVX512_NEEDS | AVX2_NEEDS, "avx512", why, why_len);
}
#endif

static moak_status x86_init(const moak_backend_env *env, moak_x86_level level, void **state)
{
    moak_x86_state *st = calloc(1, sizeof(*st));
    if (!st)
        return env->error(env->log_ctx, MOAK_ERR_OUT_OF_MEMORY, "x86 backend: out of memory");
    st->env = *env;
    st->level = level;
    st->isa = env->hw->isa;
    int32_t n = env->n_threads > 0 ? env->n_threads : 1;
    st->scratch = calloc((size_t)n, sizeof(*st->scratch));
    st->scratch_bytes = calloc((size_t)n, sizeof(*st->scratch_bytes));
    if (!st->scratch || !st->scratch_bytes) {
        free(st->scratch);
        free(st->scratch_bytes);
        free(st);
        return env->error(env->log_ctx, MOAK_ERR_OUT_OF_MEMORY, "x86 backend: out of memory");
    }
#ifdef MOAK_BUILD_AVX512
    if (level == MOAK_X86_AVX512)
        st->kernels = &moak_x86_kernels_avx512;
#endif
#ifdef MOAK_BUILD_AVX2
    if (level == MOAK_X86_AVX2) {
        st->kernels = &moak_x86_kernels_avx2;
#ifdef MOAK_HAVE_AVXVNNI_FLAGS
        if (st->isa & MOAK_ISA_AVX_VNNI)
            st->kernels = &moak_x86_kernels_avx2_vnni;
#endif
    }
#endif
    *state = st;
    return MOAK_OK;
}

#ifdef MOAK_BUILD_AVX2
static moak_status avx2_init(const moak_backend_env *env, void **state)
{
    return x86_init(env, MOAK_X86_AVX2, state);
}
#endif

#ifdef MOAK_BUILD_AVX512
static moak_status avx512_init(const moak_backend_env *env, void **state)
{
    return x86_init(env, MOAK_X86_AVX512, state);
}
#endif

static void x86_fini(void *state)
{
    moak_x86_state *st = state;
    if (!st)
        return;
    int32_t n = st->env.n_threads > 0 ? st->env.n_threads : 1;
    for (int32_t i = 0; i < n; i++)
        free(st->scratch[i]);
    for (int i = 0; i < 4; i++)
        free(st->op_buffer[i]);
    free(st->scratch);
    free(st->scratch_bytes);
    free(st);
}

static void *grow(void **buf, size_t *have, size_t bytes)
{
    if (bytes <= *have && *buf)
        return *buf;
    /* Grow by half again so a slowly growing m does not reallocate each call. */
    size_t want = bytes + bytes / 2;
    if (want < bytes)
        want = bytes;
    want = (want + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, want ? want : 64) != 0)
        return NULL;
    free(*buf);
    *buf = p;
    *have = want;
    return p;
}

void *moak_x86_scratch(moak_x86_state *st, int32_t thread, size_t bytes)
{
    if (thread < 0 || thread >= (st->env.n_threads > 0 ? st->env.n_threads : 1))
        return NULL;
    return grow(&st->scratch[thread], &st->scratch_bytes[thread], bytes);
}

void *moak_x86_op_buffer(moak_x86_state *st, int index, size_t bytes)
{
    return grow(&st->op_buffer[index], &st->op_buffer_bytes[index], bytes);
}

static bool say(char *why, size_t why_len, const char *fmt, const char *a, const char *b)
{
    if (why && why_len)
        snprintf(why, why_len, fmt, a, b);
    return false;
}

static bool x86_supports(void *state, const moak_op_shape *shape, char *why, size_t why_len)
{
    const moak_x86_state *st = state;
    const char *level = st->level == MOAK_X86_AVX512 ? "avx512" : "avx2";
    switch (shape->op) {
    case MOAK_OP_MATMUL:
    case MOAK_OP_MOE_FFN: {
        if ((int)shape->format < 0 || shape->format >= MOAK_FORMAT_COUNT)
            return say(why, why_len, "%s: unknown weight format%s", level, "");
        if (!st->kernels || !st->kernels->tile[shape->format])
            return say(why, why_len, "%s: no %s matmul kernel yet", level,
                       moak_format_name(shape->format));
        if (shape->op == MOAK_OP_MOE_FFN &&
            (shape->variant < MOAK_ACT_SILU_GLU || shape->variant > MOAK_ACT_SWIGLU_OAI))
            return say(why, why_len, "%s: unknown MoE activation%s", level, "");
        if (shape->features & MOAK_FEATURE_GATE_UP_FUSED)
            return say(why, why_len, "%s: no fused gate/up weights yet%s", level, "");
        return true;
    }
    case MOAK_OP_GATED_DELTA:
        if (shape->variant != MOAK_GATE_PER_HEAD && shape->variant != MOAK_GATE_PER_KEY)
            return say(why, why_len, "%s: unknown gate kind%s", level, "");
        return true;
    default:
        return moak_x86_supports_attention_misc(st, shape, why, why_len);
    }
}

#ifdef MOAK_BUILD_AVX2
const moak_backend_ops moak_backend_avx2 = {
    .abi_version = MOAK_BACKEND_ABI_VERSION,
    .name = "avx2",
    .description = "hand-written AVX2 + FMA + F16C kernels (AVX-VNNI int8 dot products where present)",
    .host_memory = true,
    .available = avx2_available,
    .init = avx2_init,
    .fini = x86_fini,
    .supports = x86_supports,
    .weight_pack = moak_x86_weight_pack,
    .weight_free = moak_x86_weight_free,
    .matmul = moak_x86_matmul,
    .moe_ffn = moak_x86_moe_ffn,
    .moe_route = moak_x86_avx2_moe_route,
    .attention = moak_x86_avx2_attention,
    .rmsnorm = moak_x86_avx2_rmsnorm,
    .rope = moak_x86_avx2_rope,
    .indexer = moak_x86_avx2_indexer,
    .gated_delta = moak_x86_gated_delta,
};
#endif

#ifdef MOAK_BUILD_AVX512
const moak_backend_ops moak_backend_avx512 = {
    .abi_version = MOAK_BACKEND_ABI_VERSION,
    .name = "avx512",
    .description = "hand-written AVX-512 F/BW/VL kernels with VNNI int8 dot products",
    .host_memory = true,
    .available = avx512_available,
    .init = avx512_init,
    .fini = x86_fini,
    .supports = x86_supports,
    .weight_pack = moak_x86_weight_pack,
    .weight_free = moak_x86_weight_free,
    .matmul = moak_x86_matmul,
    .moe_ffn = moak_x86_moe_ffn,
    .moe_route = moak_x86_avx512_moe_route,
    .attention = moak_x86_avx512_attention,
    .rmsnorm = moak_x86_avx512_rmsnorm,
    .rope = moak_x86_avx512_rope,
    .indexer = moak_x86_avx512_indexer,
    .gated_delta = moak_x86_gated_delta,
};
#endif
