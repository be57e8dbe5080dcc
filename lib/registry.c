/* Every backend moak knows, in the default preference order: the best
 * hand-written ISA first, then oneDNN, then OpenCL, then the reference.
 * (An OpenCL device that is only a CPU is moved after ref by the context,
 * see context.c.)  Backends not compiled in are listed with the reason so
 * moak-info and the dispatcher can explain their absence. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "hwprobe.h"

#include "internal.h"

static const moak_backend_entry registry[] = {
#ifdef MOAK_BUILD_AVX512
    {"avx512", &moak_backend_avx512, NULL, false},
#else
    {"avx512", NULL, "not built (configure found no AVX-512 compiler support or --disable-x86)", false},
#endif
#ifdef MOAK_BUILD_AVX2
    {"avx2", &moak_backend_avx2, NULL, false},
#else
    {"avx2", NULL, "not built (not an x86 build, or --disable-x86)", false},
#endif
#ifdef MOAK_BUILD_NEON
    {"neon", &moak_backend_neon, NULL, false},
#else
    {"neon", NULL, "not built (not an aarch64 build, or --disable-neon)", false},
#endif
#ifdef MOAK_BUILD_ONEDNN
    {"onednn", &moak_backend_onednn, NULL, false},
#else
    {"onednn", NULL, "not built (configure found no oneDNN, or --disable-onednn)", false},
#endif
#ifdef MOAK_BUILD_OPENCL
    {"opencl", &moak_backend_opencl, NULL, true},
#else
    {"opencl", NULL, "not built (configure found no OpenCL, or --disable-opencl)", true},
#endif
    {"ref", &moak_backend_ref, NULL, false},
};

int32_t moak_registry_count(void)
{
    return (int32_t)(sizeof(registry) / sizeof(registry[0]));
}

const moak_backend_entry *moak_registry_get(int32_t index)
{
    if (index < 0 || index >= moak_registry_count())
        return NULL;
    return &registry[index];
}

int32_t moak_registry_find(const char *name)
{
    for (int32_t i = 0; i < moak_registry_count(); i++)
        if (strcmp(registry[i].name, name) == 0)
            return i;
    return -1;
}

MOAK_API int32_t moak_backend_count(void) { return moak_registry_count(); }

MOAK_API moak_status moak_backend_query(int32_t index, moak_backend_info *info)
{
    if (!info)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "info: must not be NULL");
    moak_status st = moak_check_struct_size(NULL, info->struct_size, sizeof(moak_backend_info), "info");
    if (st != MOAK_OK)
        return st;
    const moak_backend_entry *entry = moak_registry_get(index);
    if (!entry)
        return moak_error(NULL, MOAK_ERR_OUT_OF_RANGE,
                          "index: %d is outside 0..%d (moak_backend_count() - 1)",
                          (int)index, (int)moak_registry_count() - 1);
    moak_backend_info out;
    memset(&out, 0, sizeof(out));
    out.struct_size = info->struct_size;
    out.name = entry->name;
    if (!entry->ops) {
        out.description = "not built";
        snprintf(out.reason, sizeof(out.reason), "%s", entry->not_built_reason);
    } else {
        out.description = entry->ops->description;
        out.built = 1;
        out.available = moak_backend_usable(entry->ops, out.reason, sizeof(out.reason)) ? 1 : 0;
    }
    *info = out;
    return MOAK_OK;
}

bool moak_backend_usable(const moak_backend_ops *ops, char *why, size_t why_len)
{
    if (why_len)
        why[0] = '\0';
    if (ops->abi_version != MOAK_BACKEND_ABI_VERSION) {
        snprintf(why, why_len, "backend ABI %u, library ABI %u", (unsigned)ops->abi_version,
                 (unsigned)MOAK_BACKEND_ABI_VERSION);
        return false;
    }
    if (ops->available && !ops->available(moak_hw_get(), why, why_len)) {
        if (why_len && !why[0])
            snprintf(why, why_len, "not available on this machine");
        return false;
    }
    return true;
}

MOAK_API moak_status moak_backend_devices(int32_t index, char *buf, size_t len)
{
    if (!buf)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "buf: must not be NULL");
    if (len == 0)
        return moak_error(NULL, MOAK_ERR_INVALID_ARGUMENT, "len: must be >= 1");
    const moak_backend_entry *entry = moak_registry_get(index);
    if (!entry)
        return moak_error(NULL, MOAK_ERR_OUT_OF_RANGE, "index: %d is outside 0..%d (moak_backend_count() - 1)",
                          (int)index, (int)moak_registry_count() - 1);
    if (!entry->ops || !entry->ops->list_devices) {
        buf[0] = '\0';
        return MOAK_OK;
    }
    return entry->ops->list_devices(buf, len);
}
