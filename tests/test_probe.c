/* test_probe: moak_hw_probe on this machine, against independent sources:
 *   - topology and caches against hwloc, loaded here directly;
 *   - ISA bits against the kernel's /proc/cpuinfo flags (x86 "flags",
 *     aarch64 "Features"), which Linux clears when it does not enable a
 *     feature's state, so they must equal cpuid + XCR0 (+ AMX permission);
 *   - MOAK_ISA_MAX in child processes (the probe runs once per process, so
 *     each value needs its own process, forked before this one probes):
 *     avx2 drops AVX-512 but keeps AVX2, scalar keeps nothing, an unknown
 *     value is an error, and the first probe is safe from many threads;
 *   - the struct_size rules and bad arguments.
 * A part that cannot apply to this host (no /proc/cpuinfo, no AVX2, another
 * architecture) is skipped with the reason printed; when every part is
 * skipped the test exits 77 (automake's SKIP).  A MOAK_ISA_MAX inherited
 * from the environment is removed first: each part sets its own. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_barrier_t, setenv, syscall */
#endif
#include <hwloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#endif

#include "moak.h"

static int failures;
static int parts_run;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);               \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

static void skip(const char *part, const char *why)
{
    printf("test_probe: skip %s: %s\n", part, why);
}

/* ------------------------------------------------------------------------ */
/* What the kernel says                                                     */
/* ------------------------------------------------------------------------ */

/* The feature flags line of /proc/cpuinfo ("flags" on x86, "Features" on
 * arm64), with a blank at each end so " name " can be searched; NULL if
 * there is none. */
static char *cpuinfo_line(const char *key, char *buf, size_t len)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return NULL;
    char line[8192];
    char *found = NULL;
    const size_t key_len = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, key_len) != 0 || (line[key_len] != ' ' && line[key_len] != '\t' &&
                                                 line[key_len] != ':'))
            continue;
        const char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        snprintf(buf, len, " %s", colon + 1);
        size_t n = strlen(buf);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
            buf[--n] = '\0';
        if (n + 1 < len) {
            buf[n] = ' ';
            buf[n + 1] = '\0';
        }
        found = buf;
        break;
    }
    fclose(f);
    return found;
}

static bool has_flag(const char *flags, const char *name)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, " %s ", name);
    return strstr(flags, pattern) != NULL;
}

typedef struct flag_map {
    uint64_t bit;
    const char *flag;
} flag_map;

static const flag_map x86_flags[] = {
    {MOAK_ISA_SSE42, "sse4_2"},        {MOAK_ISA_AVX, "avx"},
    {MOAK_ISA_AVX2, "avx2"},           {MOAK_ISA_FMA, "fma"},
    {MOAK_ISA_F16C, "f16c"},           {MOAK_ISA_AVX_VNNI, "avx_vnni"},
    {MOAK_ISA_AVX512F, "avx512f"},     {MOAK_ISA_AVX512BW, "avx512bw"},
    {MOAK_ISA_AVX512VL, "avx512vl"},   {MOAK_ISA_AVX512VNNI, "avx512_vnni"},
    {MOAK_ISA_AVX512BF16, "avx512_bf16"}, {MOAK_ISA_AVX512FP16, "avx512_fp16"},
    {MOAK_ISA_AMX_TILE, "amx_tile"},   {MOAK_ISA_AMX_INT8, "amx_int8"},
    {MOAK_ISA_AMX_BF16, "amx_bf16"},
};

static const flag_map arm_flags[] = {
    {MOAK_ISA_NEON, "asimd"},  {MOAK_ISA_DOTPROD, "asimddp"}, {MOAK_ISA_I8MM, "i8mm"},
    {MOAK_ISA_SVE, "sve"},     {MOAK_ISA_NEON_FP16, "asimdhp"},
};

/* ------------------------------------------------------------------------ */
/* MOAK_ISA_MAX in child processes                                          */
/* ------------------------------------------------------------------------ */

#define X86_AVX2_LEVEL                                                           \
    (MOAK_ISA_SSE42 | MOAK_ISA_AVX | MOAK_ISA_AVX2 | MOAK_ISA_FMA | MOAK_ISA_F16C | \
     MOAK_ISA_AVX_VNNI)
#define X86_AVX512_BITS                                                          \
    (MOAK_ISA_AVX512F | MOAK_ISA_AVX512BW | MOAK_ISA_AVX512VL | MOAK_ISA_AVX512VNNI | \
     MOAK_ISA_AVX512BF16 | MOAK_ISA_AVX512FP16)

/* Runs fn in a child process that sets MOAK_ISA_MAX (NULL: unsets it)
 * before its first probe; the child's exit status is its failure count. */
static void in_child(const char *cap, void (*fn)(const char *cap))
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        CHECK(0, "fork failed");
        return;
    }
    if (pid == 0) {
        if (cap)
            setenv("MOAK_ISA_MAX", cap, 1);
        else
            unsetenv("MOAK_ISA_MAX");
        failures = 0;
        fn(cap);
        fflush(stdout);
        fflush(stderr);
        _exit(failures > 100 ? 100 : failures);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "child with MOAK_ISA_MAX=%s: %s %d", cap ? cap : "(unset)",
          WIFEXITED(status) ? "failures" : "signal",
          WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

static moak_hw_info probe_or_fail(void)
{
    moak_hw_info info = MOAK_HW_INFO_INIT;
    moak_status st = moak_hw_probe(&info);
    CHECK(st == MOAK_OK, "moak_hw_probe: %d (%s)", (int)st, moak_last_error(NULL));
    return info;
}

static void child_avx2(const char *cap)
{
    moak_hw_info info = probe_or_fail();
    CHECK(info.isa_cap && strcmp(info.isa_cap, "avx2") == 0, "isa_cap %s",
          info.isa_cap ? info.isa_cap : "NULL");
    CHECK(info.isa == (info.isa_detected & X86_AVX2_LEVEL), "isa %#llx, detected %#llx",
          (unsigned long long)info.isa, (unsigned long long)info.isa_detected);
    CHECK(!(info.isa & MOAK_ISA_AVX512F), "AVX-512F must be absent under %s", cap);
    CHECK(info.isa & MOAK_ISA_AVX2, "AVX2 must stay present under %s", cap);
    CHECK(info.isa_detected & MOAK_ISA_AVX512F, "isa_detected keeps what the CPU has");
}

static void child_avx512(const char *cap)
{
    moak_hw_info info = probe_or_fail();
    CHECK(info.isa_cap && strcmp(info.isa_cap, "avx512") == 0, "isa_cap");
    CHECK(info.isa == info.isa_detected, "avx512 keeps every x86 bit: %#llx vs %#llx",
          (unsigned long long)info.isa, (unsigned long long)info.isa_detected);
}

static void child_scalar(const char *cap)
{
    moak_hw_info info = probe_or_fail();
    CHECK(info.isa == 0, "scalar: isa %#llx", (unsigned long long)info.isa);
    CHECK(info.isa_detected != 0, "scalar: isa_detected still reports the CPU");
    CHECK(info.isa_cap && strcmp(info.isa_cap, "scalar") == 0, "isa_cap");
}

static void child_neon(const char *cap)
{
    moak_hw_info info = probe_or_fail();
    CHECK(info.isa == (info.isa_detected & (MOAK_ISA_NEON | MOAK_ISA_NEON_FP16)),
          "neon cap: isa %#llx", (unsigned long long)info.isa);
    CHECK(info.isa & MOAK_ISA_NEON, "NEON stays");
}

static void child_unknown(const char *cap)
{
    unsigned char poison[sizeof(moak_hw_info)];
    moak_hw_info info = MOAK_HW_INFO_INIT;
    memset((char *)&info + sizeof(size_t), 0x5a, sizeof info - sizeof(size_t));
    memcpy(poison, &info, sizeof info);
    moak_status st = moak_hw_probe(&info);
    const char *msg = moak_last_error(NULL);
    CHECK(st == MOAK_ERR_INVALID_ARGUMENT, "MOAK_ISA_MAX=%s: status %d", cap, (int)st);
    CHECK(strstr(msg, "MOAK_ISA_MAX") && strstr(msg, cap), "message \"%s\"", msg);
    CHECK(memcmp(&info, poison, sizeof info) == 0, "info written on error");
    /* A context refuses to start too: an unknown cap is never ignored. */
    moak_context *ctx = NULL;
    st = moak_context_create(NULL, &ctx);
    CHECK(st != MOAK_OK && ctx == NULL, "moak_context_create with MOAK_ISA_MAX=%s: %d", cap, (int)st);
    if (ctx)
        moak_context_destroy(ctx);
}

/* The first probe from many threads at once: all see the same result. */
#define RACE_THREADS 8
static moak_hw_info race_results[RACE_THREADS];
static pthread_barrier_t race_barrier;

static void *race_thread(void *arg)
{
    moak_hw_info *out = arg;
    pthread_barrier_wait(&race_barrier);
    out->struct_size = sizeof *out;
    if (moak_hw_probe(out) != MOAK_OK)
        out->n_pus = -1;
    return NULL;
}

static void child_race(const char *cap)
{
    pthread_t threads[RACE_THREADS];
    pthread_barrier_init(&race_barrier, NULL, RACE_THREADS);
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_create(&threads[i], NULL, race_thread, &race_results[i]);
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&race_barrier);
    for (int i = 1; i < RACE_THREADS; i++)
        CHECK(memcmp(&race_results[i], &race_results[0], sizeof race_results[0]) == 0,
              "thread %d saw a different probe", i);
    CHECK(race_results[0].n_pus > 0, "racing probes failed");
}

/* ------------------------------------------------------------------------ */
/* This process                                                             */
/* ------------------------------------------------------------------------ */

static int32_t hwloc_count(hwloc_topology_t topo, hwloc_obj_type_t type)
{
    int n = hwloc_get_nbobjs_by_type(topo, type);
    return n > 0 ? n : 0;
}

static void test_topology(const moak_hw_info *info)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0) {
        skip("topology", "hwloc cannot load a topology here");
        return;
    }
    parts_run++;
    int32_t cores = hwloc_count(topo, HWLOC_OBJ_CORE);
    const int32_t pus = hwloc_count(topo, HWLOC_OBJ_PU);
    if (cores == 0)
        cores = pus;
    CHECK(info->n_cores == cores, "n_cores %d, hwloc %d", info->n_cores, cores);
    CHECK(info->n_pus == pus, "n_pus %d, hwloc %d", info->n_pus, pus);
    const int32_t packages = hwloc_count(topo, HWLOC_OBJ_PACKAGE);
    CHECK(info->n_packages == (packages ? packages : 1), "n_packages %d, hwloc %d",
          info->n_packages, packages);
    const int32_t nodes = hwloc_count(topo, HWLOC_OBJ_NUMANODE);
    CHECK(info->n_numa_nodes == (nodes ? nodes : 1), "n_numa_nodes %d, hwloc %d",
          info->n_numa_nodes, nodes);
    int kinds = 1;
#if HWLOC_API_VERSION >= 0x00020400
    if (hwloc_cpukinds_get_nr(topo, 0) > 1)
        kinds = hwloc_cpukinds_get_nr(topo, 0);
#endif
    CHECK(info->n_cpu_kinds == kinds, "n_cpu_kinds %d, hwloc %d", info->n_cpu_kinds, kinds);

    static const hwloc_obj_type_t levels[4] = {HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE,
                                               HWLOC_OBJ_L3CACHE, HWLOC_OBJ_L4CACHE};
    for (int l = 0; l < 4; l++) {
        const int n = hwloc_count(topo, levels[l]);
        uint64_t smallest = 0;
        for (int i = 0; i < n; i++) {
            const uint64_t size = hwloc_get_obj_by_type(topo, levels[l], (unsigned)i)->attr->cache.size;
            if (size && (!smallest || size < smallest))
                smallest = size;
        }
        CHECK(info->cache_count[l] == n, "L%d count %d, hwloc %d", l + 1, info->cache_count[l], n);
        CHECK(info->cache_bytes[l] == smallest, "L%d bytes %llu, hwloc %llu", l + 1,
              (unsigned long long)info->cache_bytes[l], (unsigned long long)smallest);
    }
    printf("test_probe: %d packages, %d NUMA nodes, %d cores, %d PUs, %d kinds; "
           "L1d %llu x %d, L2 %llu x %d, L3 %llu x %d\n",
           info->n_packages, info->n_numa_nodes, info->n_cores, info->n_pus, info->n_cpu_kinds,
           (unsigned long long)info->cache_bytes[0], info->cache_count[0],
           (unsigned long long)info->cache_bytes[1], info->cache_count[1],
           (unsigned long long)info->cache_bytes[2], info->cache_count[2]);
    hwloc_topology_destroy(topo);
}

static void test_isa_against_kernel(const moak_hw_info *info)
{
    char buf[8192];
    const flag_map *map;
    size_t n_map;
    const char *flags;
#if defined(__x86_64__)
    flags = cpuinfo_line("flags", buf, sizeof buf);
    map = x86_flags;
    n_map = sizeof x86_flags / sizeof x86_flags[0];
    (void)arm_flags;
#elif defined(__aarch64__)
    flags = cpuinfo_line("Features", buf, sizeof buf);
    map = arm_flags;
    n_map = sizeof arm_flags / sizeof arm_flags[0];
    (void)x86_flags;
#else
    (void)buf;
    (void)x86_flags;
    (void)arm_flags;
    skip("ISA vs /proc/cpuinfo", "no ISA bits are defined for this architecture");
    CHECK(info->isa_detected == 0, "no bits expected here");
    return;
#endif
    if (flags == NULL) {
        skip("ISA vs /proc/cpuinfo", "/proc/cpuinfo has no feature line here");
        return;
    }
    parts_run++;
    /* The kernel lists AMX when it supports the state; a process may use it
     * only once it has asked for permission, which a sandbox can refuse. */
    bool amx_permitted = false;
#if defined(__x86_64__) && defined(__linux__) && defined(SYS_arch_prctl)
    amx_permitted = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */,
                            18 /* XFEATURE_XTILEDATA */) == 0;
#endif
    for (size_t i = 0; i < n_map; i++) {
        bool kernel = has_flag(flags, map[i].flag);
        if (map[i].bit & (MOAK_ISA_AMX_TILE | MOAK_ISA_AMX_INT8 | MOAK_ISA_AMX_BF16))
            kernel = kernel && amx_permitted;
        const bool moak = (info->isa_detected & map[i].bit) != 0;
        CHECK(kernel == moak, "%s: /proc/cpuinfo %s, moak %s", map[i].flag,
              kernel ? "yes" : "no", moak ? "yes" : "no");
    }
    CHECK(info->isa == info->isa_detected && info->isa_cap == NULL,
          "without MOAK_ISA_MAX nothing is capped");
#if defined(__x86_64__)
    char name[8192];
    const char *model = cpuinfo_line("model name", name, sizeof name);
    if (model) {
        while (*model == ' ')
            model++;
        char trimmed[256];
        snprintf(trimmed, sizeof trimmed, "%s", model);
        size_t n = strlen(trimmed);
        while (n > 0 && trimmed[n - 1] == ' ')
            trimmed[--n] = '\0';
        CHECK(strcmp(info->cpu_name, trimmed) == 0, "cpu_name \"%s\", kernel \"%s\"",
              info->cpu_name, trimmed);
    }
#endif
}

static void test_struct_rules(const moak_hw_info *reference)
{
    parts_run++;
    CHECK(moak_hw_probe(NULL) == MOAK_ERR_NULL_ARGUMENT && strstr(moak_last_error(NULL), "info"),
          "NULL info: %s", moak_last_error(NULL));

    /* too small: an error, nothing written */
    moak_hw_info small;
    memset(&small, 0x5a, sizeof small);
    small.struct_size = sizeof small - sizeof(const char *);
    moak_hw_info before = small;
    CHECK(moak_hw_probe(&small) == MOAK_ERR_STRUCT_SIZE, "short struct_size must fail");
    CHECK(strstr(moak_last_error(NULL), "struct_size"), "message: %s", moak_last_error(NULL));
    CHECK(memcmp(&small, &before, sizeof small) == 0, "short struct written");
    small.struct_size = 0;
    CHECK(moak_hw_probe(&small) == MOAK_ERR_STRUCT_SIZE, "struct_size 0 must fail");

    /* larger (a newer caller): our fields filled, its own left alone */
    union {
        moak_hw_info info;
        unsigned char bytes[sizeof(moak_hw_info) + 64];
    } big;
    memset(&big, 0x5a, sizeof big);
    big.info.struct_size = sizeof big;
    CHECK(moak_hw_probe(&big.info) == MOAK_OK, "larger struct_size");
    CHECK(big.info.struct_size == sizeof big, "struct_size must stay as the caller set it");
    CHECK(memcmp(&big.info.n_packages, &reference->n_packages,
                 sizeof(moak_hw_info) - offsetof(moak_hw_info, n_packages)) == 0 &&
              strcmp(big.info.cpu_name, reference->cpu_name) == 0,
          "larger struct: different content");
    for (size_t i = sizeof(moak_hw_info); i < sizeof big; i++)
        CHECK(big.bytes[i] == 0x5a, "byte %zu past moak_hw_info was written", i);

    /* the probe runs once: a second call gives the same answer */
    moak_hw_info again = MOAK_HW_INFO_INIT;
    CHECK(moak_hw_probe(&again) == MOAK_OK && memcmp(&again, reference, sizeof again) == 0,
          "second probe differs");
}

static void test_names_and_sanity(const moak_hw_info *info)
{
    parts_run++;
    int named = 0;
    for (int b = 0; b < 64; b++) {
        const char *name = moak_isa_name(UINT64_C(1) << b);
        if (name == NULL)
            continue;
        named++;
        CHECK(name[0] != '\0', "bit %d has an empty name", b);
        for (int c = 0; c < b; c++) {
            const char *other = moak_isa_name(UINT64_C(1) << c);
            CHECK(other == NULL || strcmp(name, other) != 0, "bits %d and %d share %s", b, c, name);
        }
    }
    CHECK(named == 20, "%d named ISA bits, moak.h defines 20", named);
    CHECK(moak_isa_name(0) == NULL && moak_isa_name(MOAK_ISA_AVX | MOAK_ISA_AVX2) == NULL,
          "0 or several bits have no name");
    CHECK(strcmp(moak_isa_name(MOAK_ISA_AVX512VNNI), "avx512vnni") == 0, "avx512vnni");
    for (int b = 0; b < 64; b++)
        if (info->isa_detected & (UINT64_C(1) << b))
            CHECK(moak_isa_name(UINT64_C(1) << b) != NULL, "detected bit %d has no name", b);

    CHECK(info->struct_size == sizeof *info, "struct_size");
    CHECK(info->arch != NULL, "arch");
#if defined(__x86_64__)
    CHECK(info->arch && strcmp(info->arch, "x86_64") == 0, "arch %s", info->arch);
#elif defined(__aarch64__)
    CHECK(info->arch && strcmp(info->arch, "aarch64") == 0, "arch %s", info->arch);
#endif
    CHECK(memchr(info->cpu_name, '\0', sizeof info->cpu_name) && info->cpu_name[0],
          "cpu_name empty or unterminated");
    CHECK(info->n_cores >= 1 && info->n_pus >= info->n_cores, "cores %d, PUs %d",
          info->n_cores, info->n_pus);
    CHECK((info->isa & ~info->isa_detected) == 0, "isa must be a subset of isa_detected");
}

int main(void)
{
    /* Children first: this process must not have probed when it forks. */
    const char *env = getenv("MOAK_ISA_MAX");
    if (env) {
        /* A suite run at one ISA level: this test sets the variable itself. */
        printf("test_probe: ignoring MOAK_ISA_MAX=%s from the environment\n", env);
        unsetenv("MOAK_ISA_MAX");
    }

    /* Learn what the host has in a throwaway child so that this process
     * stays unprobed: the child reports through its exit code bits. */
    int host_bits = 0; /* 1: AVX2, 2: AVX-512F, 4: NEON */
    {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            moak_hw_info info = MOAK_HW_INFO_INIT;
            if (moak_hw_probe(&info) != MOAK_OK)
                _exit(64);
            _exit(((info.isa_detected & MOAK_ISA_AVX2) ? 1 : 0) |
                  ((info.isa_detected & MOAK_ISA_AVX512F) ? 2 : 0) |
                  ((info.isa_detected & MOAK_ISA_NEON) ? 4 : 0));
        }
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) != 64, "probe in a child failed");
        host_bits = WIFEXITED(status) ? WEXITSTATUS(status) & 7 : 0;
    }

    if ((host_bits & 1) && (host_bits & 2)) {
        parts_run++;
        in_child("avx2", child_avx2);
        in_child("AVX2", child_avx2);
        in_child("avx512", child_avx512);
    } else {
        skip("MOAK_ISA_MAX=avx2", "this host lacks AVX2 or AVX-512F, so capping shows nothing");
    }
    if (host_bits & 4) {
        parts_run++;
        in_child("neon", child_neon);
    } else {
        skip("MOAK_ISA_MAX=neon", "not an aarch64 host with NEON");
    }
    if (host_bits & 7) {
        parts_run++;
        in_child("scalar", child_scalar);
    } else {
        skip("MOAK_ISA_MAX=scalar", "this host reports no SIMD bit to cap");
    }
    parts_run++;
    in_child("avx3", child_unknown);
    in_child("avx512 ", child_unknown);
    in_child(NULL, child_race);

    moak_hw_info info = MOAK_HW_INFO_INIT;
    CHECK(moak_hw_probe(&info) == MOAK_OK, "probe: %s", moak_last_error(NULL));
    test_names_and_sanity(&info);
    test_topology(&info);
    test_isa_against_kernel(&info);
    test_struct_rules(&info);

    printf("test_probe: %s on %s; detected:", info.arch, info.cpu_name);
    for (int b = 0; b < 64; b++)
        if (info.isa_detected & (UINT64_C(1) << b))
            printf(" %s", moak_isa_name(UINT64_C(1) << b));
    printf("\ntest_probe: %d failure(s)\n", failures);
    if (failures)
        return 1;
    return parts_run ? 0 : 77;
}
