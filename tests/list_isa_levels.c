/* list_isa_levels — prints, one per line, the MOAK_ISA_MAX levels this
 * machine can run, lowest first.  run-levels.sh runs every test once per
 * line.  It asks the library's own probe (through MOAK_TEST_EMULATOR on a
 * cross build) rather than the build machine's /proc/cpuinfo. */
#define _POSIX_C_SOURCE 200809L /* unsetenv */

#include <stdio.h>
#include <stdlib.h>

#include "moak.h"

static int has(uint64_t isa, uint64_t bits) { return (isa & bits) == bits; }

int main(void)
{
    /* The levels describe what the CPU can do, so the cap must not apply. */
    unsetenv("MOAK_ISA_MAX");
    moak_hw_info hw = MOAK_HW_INFO_INIT;
    if (moak_hw_probe(&hw) != MOAK_OK) {
        fprintf(stderr, "list_isa_levels: moak_hw_probe: %s\n", moak_last_error(NULL));
        return 1;
    }
    uint64_t isa = hw.isa_detected;
    puts("scalar");
    if (has(isa, MOAK_ISA_AVX2 | MOAK_ISA_FMA))
        puts("avx2");
    if (has(isa, MOAK_ISA_AVX512F | MOAK_ISA_AVX512BW | MOAK_ISA_AVX512VL))
        puts("avx512");
    if (has(isa, MOAK_ISA_NEON))
        puts("neon");
    if (has(isa, MOAK_ISA_NEON | MOAK_ISA_DOTPROD))
        puts("dotprod");
    if (has(isa, MOAK_ISA_NEON | MOAK_ISA_DOTPROD | MOAK_ISA_I8MM))
        puts("i8mm");
    return 0;
}
