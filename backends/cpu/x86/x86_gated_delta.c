/* x86_gated_delta.c — the avx2/avx512 backends' entry for the gated delta
 * rule: the shared CPU driver (../gated_delta_cpu.c) with the level's
 * kernel table.  ISA-neutral (compiled without ISA flags). */
#include "config.h"

#include "../gated_delta_cpu.h"
#include "x86_backend.h"

extern const moak_gdn_kernels moak_gdn_kernels_avx2;
extern const moak_gdn_kernels moak_gdn_kernels_avx512;

moak_status moak_x86_gated_delta(void *state, const moak_gated_delta_args *args)
{
    moak_x86_state *st = state;
    const moak_gdn_kernels *kern = NULL;
#ifdef MOAK_BUILD_AVX512
    if (st->level == MOAK_X86_AVX512)
        kern = &moak_gdn_kernels_avx512;
#endif
#ifdef MOAK_BUILD_AVX2
    if (st->level == MOAK_X86_AVX2)
        kern = &moak_gdn_kernels_avx2;
#endif
    if (!kern)
        return st->env.error(st->env.log_ctx, MOAK_ERR_UNSUPPORTED, "x86: no gated delta kernels for this level");
    return moak_cpu_gated_delta(kern, &st->env, args);
}
