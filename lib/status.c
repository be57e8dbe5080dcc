/* Status names, detail messages, checked size arithmetic, aligned memory. */
#define _DEFAULT_SOURCE 1 /* madvise's MADV_HUGEPAGE (a Linux extension), posix_memalign */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#  include <sys/mman.h>
#endif

#include "internal.h"

/* The message of the last failed context-free call, per thread. */
static _Thread_local char thread_error[MOAK_ERROR_MESSAGE_MAX];

MOAK_API int moak_version(void) { return MOAK_VERSION; }

MOAK_API const char *moak_version_string(void) { return PACKAGE_VERSION; }

MOAK_API const char *moak_status_str(moak_status status)
{
    switch (status) {
    case MOAK_OK: return "MOAK_OK: success";
    case MOAK_ERR_NULL_ARGUMENT: return "MOAK_ERR_NULL_ARGUMENT: a required pointer is NULL";
    case MOAK_ERR_INVALID_ARGUMENT: return "MOAK_ERR_INVALID_ARGUMENT: an argument breaks a documented rule";
    case MOAK_ERR_SIZE_OVERFLOW: return "MOAK_ERR_SIZE_OVERFLOW: a byte count does not fit in size_t";
    case MOAK_ERR_SHAPE_MISMATCH: return "MOAK_ERR_SHAPE_MISMATCH: dimensions or formats of arguments disagree";
    case MOAK_ERR_UNSUPPORTED: return "MOAK_ERR_UNSUPPORTED: no enabled backend can run this case";
    case MOAK_ERR_OUT_OF_MEMORY: return "MOAK_ERR_OUT_OF_MEMORY: an allocation failed";
    case MOAK_ERR_CACHE_FULL: return "MOAK_ERR_CACHE_FULL: the KV cache has no free page left";
    case MOAK_ERR_OUT_OF_RANGE: return "MOAK_ERR_OUT_OF_RANGE: an index is outside its range";
    case MOAK_ERR_UNKNOWN_BACKEND: return "MOAK_ERR_UNKNOWN_BACKEND: a backend name is not known";
    case MOAK_ERR_BACKEND: return "MOAK_ERR_BACKEND: the backend's library or device failed";
    case MOAK_ERR_STRUCT_SIZE: return "MOAK_ERR_STRUCT_SIZE: struct_size is smaller than the struct's first version";
    }
    return "unknown moak_status";
}

static void vset(char *buf, const char *fmt, va_list ap)
{
    vsnprintf(buf, MOAK_ERROR_MESSAGE_MAX, fmt, ap);
}

moak_status moak_error(moak_context *ctx, moak_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(ctx ? ctx->last_error : thread_error, fmt, ap);
    va_end(ap);
    return status;
}

void moak_clear_error(moak_context *ctx)
{
    if (ctx)
        ctx->last_error[0] = '\0';
    else
        thread_error[0] = '\0';
}

const char *moak_thread_error(void) { return thread_error; }

bool moak_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

bool moak_add_size(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return false;
    *out = a + b;
    return true;
}

bool moak_count_bytes(size_t elem_bytes, int n_dims, const int64_t *dims, size_t *out)
{
    size_t total = elem_bytes;
    for (int i = 0; i < n_dims; i++) {
        if (dims[i] < 0 || (uint64_t)dims[i] > SIZE_MAX)
            return false;
        if (!moak_mul_size(total, (size_t)dims[i], &total))
            return false;
    }
    *out = total;
    return true;
}

void *moak_alloc(size_t bytes)
{
    size_t rounded;
    if (bytes == 0)
        bytes = 1;
    if (!moak_add_size(bytes, 63, &rounded))
        return NULL;
    rounded &= ~(size_t)63;
    void *p = aligned_alloc(64, rounded);
    if (p)
        memset(p, 0, rounded);
    return p;
}

void moak_free(void *p) { free(p); }

/* Big buffers that kernels stream (packed weights, KV pages): on 4 KB pages
 * a stream takes a TLB miss every 4 KB.  From 2 MB up they are placed on
 * 2 MB boundaries and offered to transparent huge pages (Linux's "madvise"
 * mode), which cuts those misses 512-fold; elsewhere, or if the kernel says
 * no, they stay on small pages and nothing else changes. */
#define HUGE_PAGE_BYTES ((size_t)2 << 20)

void *moak_alloc_streamed(size_t bytes)
{
    void *p = NULL;
    const size_t align = bytes >= HUGE_PAGE_BYTES ? HUGE_PAGE_BYTES : 64;
    if (posix_memalign(&p, align, bytes ? bytes : 1) != 0)
        return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == HUGE_PAGE_BYTES)
        (void)madvise(p, bytes / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES, MADV_HUGEPAGE);
#endif
    return p;
}

moak_status moak_check_struct_size(moak_context *ctx, size_t struct_size,
                                   size_t min_size, const char *name)
{
    if (struct_size < min_size)
        return moak_error(ctx, MOAK_ERR_STRUCT_SIZE,
                          "%s->struct_size: %zu is smaller than %zu, the size of its first version "
                          "(set it to sizeof(*%s))", name, struct_size, min_size, name);
    return MOAK_OK;
}
