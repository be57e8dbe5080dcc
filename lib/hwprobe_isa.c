/* Instruction-set detection and the MOAK_ISA_MAX cap.
 *
 * A feature counts only when both the CPU has it and the OS saves its
 * register state: on x86 that is cpuid *and* XCR0 (read with xgetbv once
 * OSXSAVE says xgetbv may be executed), plus Linux's per-process permission
 * for AMX tile data; on aarch64 the kernel's HWCAP words already mean "CPU
 * and kernel both support it".  Running an AVX-512 kernel where the OS did
 * not enable the ZMM state faults, so cpuid bits alone are never enough.
 *
 * This file is compiled without any ISA flag: cpuid/xgetbv are plain
 * instructions, and nothing here uses a vector register. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* syscall() */
#endif
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "hwprobe.h"

#if defined(__x86_64__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */

static const struct {
    uint64_t bit;
    const char *name;
} isa_names[] = {
    {MOAK_ISA_SSE42, "sse4.2"},
    {MOAK_ISA_AVX, "avx"},
    {MOAK_ISA_AVX2, "avx2"},
    {MOAK_ISA_FMA, "fma"},
    {MOAK_ISA_F16C, "f16c"},
    {MOAK_ISA_AVX_VNNI, "avxvnni"},
    {MOAK_ISA_AVX512F, "avx512f"},
    {MOAK_ISA_AVX512BW, "avx512bw"},
    {MOAK_ISA_AVX512VL, "avx512vl"},
    {MOAK_ISA_AVX512VNNI, "avx512vnni"},
    {MOAK_ISA_AVX512BF16, "avx512bf16"},
    {MOAK_ISA_AVX512FP16, "avx512fp16"},
    {MOAK_ISA_AMX_TILE, "amx-tile"},
    {MOAK_ISA_AMX_INT8, "amx-int8"},
    {MOAK_ISA_AMX_BF16, "amx-bf16"},
    {MOAK_ISA_NEON, "neon"},
    {MOAK_ISA_DOTPROD, "dotprod"},
    {MOAK_ISA_I8MM, "i8mm"},
    {MOAK_ISA_SVE, "sve"},
    {MOAK_ISA_NEON_FP16, "neon-fp16"},
};

MOAK_API const char *moak_isa_name(uint64_t isa_bit)
{
    for (size_t i = 0; i < sizeof isa_names / sizeof isa_names[0]; i++)
        if (isa_names[i].bit == isa_bit)
            return isa_names[i].name;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* x86-64: cpuid + xgetbv                                                   */
/* ------------------------------------------------------------------------ */

#if defined(__x86_64__)

/* XCR0 state components (Intel SDM vol. 1, 13.1). */
#define XCR0_SSE        (UINT64_C(1) << 1)
#define XCR0_AVX        (UINT64_C(1) << 2)
#define XCR0_OPMASK     (UINT64_C(1) << 5)
#define XCR0_ZMM_HI256  (UINT64_C(1) << 6)
#define XCR0_HI16_ZMM   (UINT64_C(1) << 7)
#define XCR0_XTILECFG   (UINT64_C(1) << 17)
#define XCR0_XTILEDATA  (UINT64_C(1) << 18)

#define XCR0_AVX_STATE    (XCR0_SSE | XCR0_AVX)
#define XCR0_AVX512_STATE (XCR0_AVX_STATE | XCR0_OPMASK | XCR0_ZMM_HI256 | XCR0_HI16_ZMM)
#define XCR0_AMX_STATE    (XCR0_XTILECFG | XCR0_XTILEDATA)

/* The compiler's xgetbv intrinsic needs -mxsave; the instruction itself is
 * always there once OSXSAVE is set, so encode it directly. */
static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Linux >= 5.16 keeps AMX tile data off until a process asks for it
 * (arch_prctl ARCH_REQ_XCOMP_PERM); asking is idempotent and is what makes
 * AMX instructions usable by every thread of the process afterwards.
 * Other kernels or OSes: assume not usable. */
static int amx_permitted(void)
{
#if defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM_ = 0x1023, XFEATURE_XTILEDATA_ = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM_, XFEATURE_XTILEDATA_) == 0;
#else
    return 0;
#endif
}

static uint64_t detect_x86(void)
{
    unsigned int eax, ebx, ecx, edx;
    uint64_t isa = 0;

    if (!__get_cpuid_count(1, 0, &eax, &ebx, &ecx, &edx))
        return 0;
    const unsigned int ecx1 = ecx;

    /* SSE state is always saved by a 64-bit OS (FXSAVE is baseline). */
    if (ecx1 & (1u << 20))
        isa |= MOAK_ISA_SSE42;

    /* Without OSXSAVE, xgetbv faults and no VEX/EVEX state is enabled. */
    const int osxsave = (ecx1 >> 27) & 1;
    const uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    const int avx_state = (xcr0 & XCR0_AVX_STATE) == XCR0_AVX_STATE;
    const int avx512_state = (xcr0 & XCR0_AVX512_STATE) == XCR0_AVX512_STATE;
    const int amx_state = (xcr0 & XCR0_AMX_STATE) == XCR0_AMX_STATE;

    if (!avx_state)
        return isa;
    if (ecx1 & (1u << 28))
        isa |= MOAK_ISA_AVX;
    if (ecx1 & (1u << 12))
        isa |= MOAK_ISA_FMA;
    if (ecx1 & (1u << 29))
        isa |= MOAK_ISA_F16C;

    unsigned int ebx7 = 0, ecx7 = 0, edx7 = 0, eax71 = 0;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
        ebx7 = ebx;
        ecx7 = ecx;
        edx7 = edx;
        /* Sub-leaf 1 exists when leaf 7's eax (the last sub-leaf) is >= 1. */
        if (eax >= 1) {
            __cpuid_count(7, 1, eax, ebx, ecx, edx);
            eax71 = eax;
        }
    }

    if (ebx7 & (1u << 5))
        isa |= MOAK_ISA_AVX2;
    if (eax71 & (1u << 4))
        isa |= MOAK_ISA_AVX_VNNI;

    if (avx512_state && (ebx7 & (1u << 16))) {
        isa |= MOAK_ISA_AVX512F;
        if (ebx7 & (1u << 30))
            isa |= MOAK_ISA_AVX512BW;
        if (ebx7 & (1u << 31))
            isa |= MOAK_ISA_AVX512VL;
        if (ecx7 & (1u << 11))
            isa |= MOAK_ISA_AVX512VNNI;
        if (eax71 & (1u << 5))
            isa |= MOAK_ISA_AVX512BF16;
        if (edx7 & (1u << 23))
            isa |= MOAK_ISA_AVX512FP16;
    }

    if (amx_state && (edx7 & (1u << 24)) && amx_permitted()) {
        isa |= MOAK_ISA_AMX_TILE;
        if (edx7 & (1u << 25))
            isa |= MOAK_ISA_AMX_INT8;
        if (edx7 & (1u << 22))
            isa |= MOAK_ISA_AMX_BF16;
    }
    return isa;
}

#endif /* __x86_64__ */

/* ------------------------------------------------------------------------ */
/* aarch64: the kernel's HWCAP words                                        */
/* ------------------------------------------------------------------------ */

#if defined(__aarch64__)

/* Values from the Linux arm64 uapi (asm/hwcap.h); spelled out so that an
 * older libc header still builds. */
#define LINUX_HWCAP_ASIMD    (1ul << 1)
#define LINUX_HWCAP_ASIMDHP  (1ul << 10)
#define LINUX_HWCAP_ASIMDDP  (1ul << 20)
#define LINUX_HWCAP_SVE      (1ul << 22)
#define LINUX_HWCAP2_I8MM    (1ul << 13)

static uint64_t detect_aarch64(void)
{
#if defined(__linux__)
    const unsigned long hwcap = getauxval(AT_HWCAP);
    const unsigned long hwcap2 = getauxval(AT_HWCAP2);
    uint64_t isa = 0;
    if (hwcap & LINUX_HWCAP_ASIMD)
        isa |= MOAK_ISA_NEON;
    if (hwcap & LINUX_HWCAP_ASIMDHP)
        isa |= MOAK_ISA_NEON_FP16;
    if (hwcap & LINUX_HWCAP_ASIMDDP)
        isa |= MOAK_ISA_DOTPROD;
    if (hwcap & LINUX_HWCAP_SVE)
        isa |= MOAK_ISA_SVE;
    if (hwcap2 & LINUX_HWCAP2_I8MM)
        isa |= MOAK_ISA_I8MM;
    return isa;
#else
    /* ASIMD is part of the AArch64 base; extensions are not probed on
     * other OSes yet, so they are not claimed. */
    return MOAK_ISA_NEON;
#endif
}

#endif /* __aarch64__ */

uint64_t moak_isa_detect(void)
{
#if defined(__x86_64__)
    return detect_x86();
#elif defined(__aarch64__)
    return detect_aarch64();
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------------ */
/* MOAK_ISA_MAX                                                             */
/* ------------------------------------------------------------------------ */

#define X86_AVX2_LEVEL                                                            \
    (MOAK_ISA_SSE42 | MOAK_ISA_AVX | MOAK_ISA_AVX2 | MOAK_ISA_FMA | MOAK_ISA_F16C | \
     MOAK_ISA_AVX_VNNI)
#define X86_ALL                                                                   \
    (X86_AVX2_LEVEL | MOAK_ISA_AVX512F | MOAK_ISA_AVX512BW | MOAK_ISA_AVX512VL |  \
     MOAK_ISA_AVX512VNNI | MOAK_ISA_AVX512BF16 | MOAK_ISA_AVX512FP16 |            \
     MOAK_ISA_AMX_TILE | MOAK_ISA_AMX_INT8 | MOAK_ISA_AMX_BF16)
#define ARM_NEON_LEVEL (MOAK_ISA_NEON | MOAK_ISA_NEON_FP16)

/* Each level is the set of bits it allows, not a rank: a cap is a mask. */
static const struct {
    const char *name;
    uint64_t allowed;
} cap_levels[] = {
    {"scalar", 0},
    {"avx2", X86_AVX2_LEVEL},
    {"avx512", X86_ALL},
    {"neon", ARM_NEON_LEVEL},
    {"dotprod", ARM_NEON_LEVEL | MOAK_ISA_DOTPROD},
    {"i8mm", ARM_NEON_LEVEL | MOAK_ISA_DOTPROD | MOAK_ISA_I8MM},
};

const char *moak_isa_cap_canonical(const char *cap)
{
    if (cap == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof cap_levels / sizeof cap_levels[0]; i++)
        if (strcasecmp(cap, cap_levels[i].name) == 0)
            return cap_levels[i].name;
    return NULL;
}

int moak_isa_apply_cap(const char *cap, uint64_t detected, uint64_t *capped)
{
    if (cap == NULL || cap[0] == '\0') {
        *capped = detected;
        return 0;
    }
    for (size_t i = 0; i < sizeof cap_levels / sizeof cap_levels[0]; i++) {
        if (strcasecmp(cap, cap_levels[i].name) == 0) {
            *capped = detected & cap_levels[i].allowed;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* The brand string                                                         */
/* ------------------------------------------------------------------------ */

int moak_isa_brand_string(char *buf, size_t len)
{
#if defined(__x86_64__)
    unsigned int regs[12];
    unsigned int max_ext = __get_cpuid_max(0x80000000u, NULL);
    if (len == 0 || max_ext < 0x80000004u)
        return 0;
    for (unsigned int leaf = 0; leaf < 3; leaf++)
        __cpuid(0x80000002u + leaf, regs[4 * leaf], regs[4 * leaf + 1],
                regs[4 * leaf + 2], regs[4 * leaf + 3]);
    /* 48 bytes, NUL-padded, often with leading blanks. */
    char brand[49];
    memcpy(brand, regs, 48);
    brand[48] = '\0';
    const char *start = brand;
    while (*start == ' ')
        start++;
    size_t n = strlen(start);
    while (n > 0 && start[n - 1] == ' ')
        n--;
    if (n == 0)
        return 0;
    if (n >= len)
        n = len - 1;
    memcpy(buf, start, n);
    buf[n] = '\0';
    return 1;
#else
    (void)buf;
    (void)len;
    return 0;
#endif
}
