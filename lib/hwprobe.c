/* The hardware probe: topology and caches from hwloc, ISA from
 * hwprobe_isa.c, MOAK_ISA_MAX applied.  It runs once per process, under
 * pthread_once, and its result is read-only afterwards, so every thread and
 * every context shares it without locking.
 *
 * hwloc is required at build time, but loading a topology can still fail at
 * run time (a broken HWLOC_XMLFILE, a sandbox without /sys): the probe then
 * falls back to sysconf() and thread binding is skipped, rather than leaving
 * the library unusable. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hwprobe.h"
#include "internal.h"

/* The fields of the first version of moak_hw_info: a caller's struct_size
 * must cover them all. */
#define MOAK_HW_INFO_V1_SIZE (offsetof(moak_hw_info, isa_cap) + sizeof(const char *))

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static moak_hw_info probe_info;
static hwloc_topology_t probe_topology; /* NULL when hwloc failed */
static char cap_error_message[160];
static const char *cap_error; /* NULL or cap_error_message */

static const char *arch_name(void)
{
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#elif defined(__i386__)
    return "i386";
#elif defined(__arm__)
    return "arm";
#elif defined(__riscv) && __riscv_xlen == 64
    return "riscv64";
#elif defined(__powerpc64__)
    return "ppc64";
#elif defined(__s390x__)
    return "s390x";
#else
    return "unknown";
#endif
}

static int32_t count_type(hwloc_topology_t topo, hwloc_obj_type_t type)
{
    int n = hwloc_get_nbobjs_by_type(topo, type);
    return n > 0 ? (int32_t)n : 0;
}

/* hwloc 2's L1CACHE..L4CACHE are data or unified caches (instruction caches
 * are separate types).  On hybrid parts instances of one level can differ
 * (an E-core cluster's L2 is bigger than a P-core's): the smallest instance
 * is reported, the safe size for blocking a kernel that may run anywhere. */
static void probe_caches(hwloc_topology_t topo, moak_hw_info *hw)
{
    static const hwloc_obj_type_t levels[MOAK_CACHE_LEVELS] = {
        HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L3CACHE, HWLOC_OBJ_L4CACHE};
    for (int level = 0; level < MOAK_CACHE_LEVELS; level++) {
        int n = hwloc_get_nbobjs_by_type(topo, levels[level]);
        uint64_t smallest = 0;
        for (int i = 0; i < n; i++) {
            hwloc_obj_t obj = hwloc_get_obj_by_type(topo, levels[level], (unsigned)i);
            uint64_t size = obj && obj->attr ? obj->attr->cache.size : 0;
            if (size > 0 && (smallest == 0 || size < smallest))
                smallest = size;
        }
        hw->cache_bytes[level] = smallest;
        hw->cache_count[level] = n > 0 ? (int32_t)n : 0;
    }
}

static void copy_name(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src);
}

static void probe_with_hwloc(hwloc_topology_t topo, moak_hw_info *hw)
{
    hw->n_packages = count_type(topo, HWLOC_OBJ_PACKAGE);
    hw->n_numa_nodes = count_type(topo, HWLOC_OBJ_NUMANODE);
    hw->n_pus = count_type(topo, HWLOC_OBJ_PU);
    hw->n_cores = count_type(topo, HWLOC_OBJ_CORE);
    /* Some platforms expose no core objects: each PU is then its own core. */
    if (hw->n_cores == 0)
        hw->n_cores = hw->n_pus;
    if (hw->n_packages == 0)
        hw->n_packages = 1;
    if (hw->n_numa_nodes == 0)
        hw->n_numa_nodes = 1;
    hw->n_cpu_kinds = 1;
#if HWLOC_API_VERSION >= 0x00020400
    {
        int kinds = hwloc_cpukinds_get_nr(topo, 0);
        if (kinds > 1)
            hw->n_cpu_kinds = kinds;
    }
#endif
    probe_caches(topo, hw);

    if (hw->cpu_name[0] == '\0') {
        hwloc_obj_t pkg = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PACKAGE, 0);
        const char *model = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUModel") : NULL;
        if (model == NULL)
            model = hwloc_obj_get_info_by_name(hwloc_get_root_obj(topo), "CPUModel");
        if (model != NULL)
            copy_name(hw->cpu_name, sizeof hw->cpu_name, model);
    }
}

/* Without hwloc: the online CPUs count as cores (SMT is unknown), one
 * package, one node; cache sizes from glibc where it knows them, with an
 * instance count of 0 meaning "unknown". */
static void probe_fallback(moak_hw_info *hw)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1)
        online = 1;
    if (online > INT32_MAX)
        online = INT32_MAX;
    hw->n_packages = 1;
    hw->n_numa_nodes = 1;
    hw->n_cores = (int32_t)online;
    hw->n_pus = (int32_t)online;
    hw->n_cpu_kinds = 1;
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL4_CACHE_SIZE)
    static const int names[MOAK_CACHE_LEVELS] = {
        _SC_LEVEL1_DCACHE_SIZE, _SC_LEVEL2_CACHE_SIZE, _SC_LEVEL3_CACHE_SIZE,
        _SC_LEVEL4_CACHE_SIZE};
    for (int level = 0; level < MOAK_CACHE_LEVELS; level++) {
        long size = sysconf(names[level]);
        hw->cache_bytes[level] = size > 0 ? (uint64_t)size : 0;
        hw->cache_count[level] = 0;
    }
#endif
}

static hwloc_topology_t load_topology(void)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0)
        return NULL;
    if (hwloc_topology_load(topo) != 0) {
        hwloc_topology_destroy(topo);
        return NULL;
    }
    return topo;
}

static void apply_isa_cap(moak_hw_info *hw)
{
    const char *cap = getenv("MOAK_ISA_MAX");
    hw->isa = hw->isa_detected;
    hw->isa_cap = NULL;
    if (cap == NULL || cap[0] == '\0')
        return;
    uint64_t capped;
    if (moak_isa_apply_cap(cap, hw->isa_detected, &capped) != 0) {
        snprintf(cap_error_message, sizeof cap_error_message,
                 "MOAK_ISA_MAX: unknown value '%.40s' (expected %s)", cap,
                 MOAK_ISA_CAP_VALUES);
        cap_error = cap_error_message;
        /* Nothing can be trusted to honour the cap: run no SIMD at all. */
        hw->isa = 0;
        return;
    }
    hw->isa = capped;
    hw->isa_cap = moak_isa_cap_canonical(cap);
}

static void run_probe(void)
{
    moak_hw_info *hw = &probe_info;
    memset(hw, 0, sizeof *hw);
    hw->struct_size = sizeof *hw;
    hw->arch = arch_name();
    moak_isa_brand_string(hw->cpu_name, sizeof hw->cpu_name);

    probe_topology = load_topology();
    if (probe_topology != NULL)
        probe_with_hwloc(probe_topology, hw);
    else
        probe_fallback(hw);
    if (hw->cpu_name[0] == '\0')
        copy_name(hw->cpu_name, sizeof hw->cpu_name, "unknown");

    hw->isa_detected = moak_isa_detect();
    apply_isa_cap(hw);
}

const moak_hw_info *moak_hw_get(void)
{
    pthread_once(&probe_once, run_probe);
    return &probe_info;
}

const char *moak_hw_cap_error(void)
{
    pthread_once(&probe_once, run_probe);
    return cap_error;
}

hwloc_topology_t moak_hw_topology(void)
{
    pthread_once(&probe_once, run_probe);
    return probe_topology;
}

MOAK_API moak_status moak_hw_probe(moak_hw_info *info)
{
    MOAK_CHECK_NULL(NULL, info, "info");
    moak_status status = moak_check_struct_size(NULL, info->struct_size,
                                                MOAK_HW_INFO_V1_SIZE, "info");
    if (status != MOAK_OK)
        return status;
    const moak_hw_info *hw = moak_hw_get();
    if (moak_hw_cap_error() != NULL)
        return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT, "%s", moak_hw_cap_error());

    /* Only the fields both sides know are written: bytes past this
     * version's struct belong to a newer caller and are left alone. */
    const size_t caller_size = info->struct_size;
    const size_t n = caller_size < sizeof *hw ? caller_size : sizeof *hw;
    memcpy(info, hw, n);
    info->struct_size = caller_size;
    return MOAK_OK;
}
