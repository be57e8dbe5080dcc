/* Temporary stand-ins for the x86 attention/routing/rmsnorm/rope entry
 * points while their files (attention_*.c, elementwise_*.c, written by
 * another engineer) are not all in the tree yet.  Weak: the real definitions
 * replace these at link time as soon as they exist.  supports() says
 * "pending", so the dispatcher falls through to the next backend. */
#include "config.h"

#include <stdio.h>

#include "x86_backend.h"

#define PENDING __attribute__((weak))

PENDING bool moak_x86_supports_attention_misc(const moak_x86_state *st, const moak_op_shape *shape,
                                              char *why, size_t why_len)
{
    (void)st;
    (void)shape;
    if (why && why_len)
        snprintf(why, why_len, "x86 attention/routing/rmsnorm/rope kernels are pending");
    return false;
}

static moak_status pending(void *state)
{
    moak_x86_state *st = state;
    return st->env.error(st->env.log_ctx, MOAK_ERR_UNSUPPORTED, "x86: this op is pending");
}

PENDING moak_status moak_x86_avx2_attention(void *s, const moak_attention_args *a) { (void)a; return pending(s); }
PENDING moak_status moak_x86_avx512_attention(void *s, const moak_attention_args *a) { (void)a; return pending(s); }
PENDING moak_status moak_x86_avx2_moe_route(void *s, const moak_route_args *a) { (void)a; return pending(s); }
PENDING moak_status moak_x86_avx512_moe_route(void *s, const moak_route_args *a) { (void)a; return pending(s); }
PENDING moak_status moak_x86_avx2_rmsnorm(void *s, const moak_rmsnorm_args *a) { (void)a; return pending(s); }
PENDING moak_status moak_x86_avx512_rmsnorm(void *s, const moak_rmsnorm_args *a) { (void)a; return pending(s); }
PENDING moak_status moak_x86_avx2_rope(void *s, const moak_rope_args *a) { (void)a; return pending(s); }
PENDING moak_status moak_x86_avx512_rope(void *s, const moak_rope_args *a) { (void)a; return pending(s); }
