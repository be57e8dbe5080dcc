/*
 * x86_supports_attention.c — which attention, routing, rmsnorm and rope
 * instances the avx2 and avx512 backends take (ISA-neutral: compiled with
 * the library's ordinary flags, so it answers on any x86-64).
 *
 * The kernels (attention_*.c, elementwise_*.c) cover every instance the
 * core's validation lets through, so the answer is yes except for values
 * outside the enums a newer header could add; those are declined with a
 * reason and the dispatcher falls back to the next backend (ref at last).
 * A KV cache that is not in the standard host layout never reaches a host
 * backend (the core dispatches it to its owner); attention still refuses
 * one with MOAK_ERR_UNSUPPORTED should it come.
 */
#include <stdio.h>

#include "x86_backend.h"

static bool decline(const moak_x86_state *st, char *why, size_t why_len, const char *what,
                    long value)
{
    if (why && why_len)
        snprintf(why, why_len, "%s: %s %ld is not handled",
                 st->level == MOAK_X86_AVX512 ? "avx512" : "avx2", what, value);
    return false;
}

static bool say_no(char *why, size_t why_len, const char *reason)
{
    if (why && why_len)
        snprintf(why, why_len, "%s", reason);
    return false;
}

/* The KV formats the attention kernels and the indexer read. */
static bool kv_format_read(moak_format format)
{
    return format == MOAK_FORMAT_F32 || format == MOAK_FORMAT_F16 || format == MOAK_FORMAT_BF16 ||
           format == MOAK_FORMAT_Q8_0;
}

bool moak_x86_supports_attention_misc(const moak_x86_state *st, const moak_op_shape *shape,
                                      char *why, size_t why_len)
{
    switch (shape->op) {
    case MOAK_OP_ATTENTION:
        /* Sparse attention and the indexer wait for the one CPU attention
         * body (issue 11): until it has the position gather, ref runs them. */
        if (shape->features & MOAK_FEATURE_SPARSE)
            return say_no(why, why_len, "sparse attention (a position list) is not in the x86 attention kernels yet");
        /* F32, F16 (F16C / vcvtph2ps), BF16 (shift) and Q8_0 (dequantized
         * on the fly) are read directly from the pages */
        return kv_format_read(shape->format) || decline(st, why, why_len, "KV format", (long)shape->format);
    case MOAK_OP_INDEXER:
        /* indexer_<isa>.c: F32 pages read in place, F16/BF16 converted a
         * vector at a time, Q8_0 through the core's row dequantizer */
        return kv_format_read(shape->format) || decline(st, why, why_len, "index-key format", (long)shape->format);
    case MOAK_OP_MOE_ROUTE:
        if (shape->variant < MOAK_ROUTE_SOFTMAX_TOPK || shape->variant > MOAK_ROUTE_SQRT_SOFTPLUS_TOPK)
            return decline(st, why, why_len, "routing method", (long)shape->variant);
        return true;
    case MOAK_OP_RMSNORM:
        return true;
    case MOAK_OP_ROPE:
        if (shape->variant != MOAK_ROPE_NEOX && shape->variant != MOAK_ROPE_GPTJ)
            return decline(st, why, why_len, "RoPE layout", (long)shape->variant);
        return true;
    default:
        return decline(st, why, why_len, "op", (long)shape->op);
    }
}
