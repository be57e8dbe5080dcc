/*
 * The oneDNN backend's plumbing: errors with oneDNN's status names, the
 * OpenMP thread count, the ISA cap, and reusable host buffers.
 *
 * Threads.  Debian's oneDNN 2.6 is built for the OpenMP runtime (libgomp;
 * dnnl_config.h: DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP), so the threadpool
 * interop of dnnl_threadpool.h is not available and moak's own pool cannot
 * run oneDNN's work.  Instead every op sets the calling thread's OpenMP
 * team size to the context's thread count (and puts the caller's setting
 * back afterwards); moak's workers sleep on their condition variable while
 * oneDNN runs, so the machine is never oversubscribed by moak itself.
 * libgomp keeps its workers spinning briefly after each parallel region
 * (OMP_WAIT_POLICY / GOMP_SPINCOUNT govern that; they are read once by
 * libgomp at load and are left to the application).
 */
#define _GNU_SOURCE 1 /* sched_setaffinity, CPU_* */

#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <sched.h>
#endif

#include <dnnl_debug.h>

#include "onednn_internal.h"

moak_status onednn_error(const onednn_state *st, moak_status status, const char *fmt, ...)
{
    char message[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (!st->env.error)
        return status;
    /* Workers of a parallel region may fail together: the context keeps one
     * message, written by one thread at a time. */
    moak_status result;
#pragma omp critical(onednn_report)
    result = st->env.error(st->env.log_ctx, status, "onednn: %s", message);
    return result;
}

moak_status onednn_dnnl_failed(const onednn_state *st, dnnl_status_t status, const char *what)
{
    const char *name = dnnl_status2str(status);
    moak_status mapped = status == dnnl_out_of_memory ? MOAK_ERR_OUT_OF_MEMORY : MOAK_ERR_BACKEND;
    return onednn_error(st, mapped, "%s failed: dnnl_%s (%d)", what, name ? name : "unknown_status",
                        (int)status);
}

void onednn_log(const onednn_state *st, moak_log_level level, const char *fmt, ...)
{
    if (!st->env.log)
        return;
    char message[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
#pragma omp critical(onednn_report)
    st->env.log(st->env.log_ctx, level, "onednn: %s", message);
}

/* ---- threads ------------------------------------------------------------------ */

void onednn_threads_enter(onednn_state *st)
{
    st->saved_omp_threads = omp_get_max_threads();
    omp_set_num_threads(st->n_threads);
}

void onednn_threads_leave(onednn_state *st)
{
    if (st->saved_omp_threads > 0)
        omp_set_num_threads(st->saved_omp_threads);
}

void onednn_threads_warm_team(const onednn_state *st)
{
    int n_threads = st->n_threads;
#ifdef __linux__
    /* The core binds the thread that creates a context to core 0, and a
     * new thread inherits its creator's affinity: without this, libgomp's
     * workers, created on oneDNN's first parallel region, would all share
     * that one core.  Widening the mask while the team starts leaves them
     * free (the kernel keeps them inside the process's cpuset). */
    cpu_set_t saved;
    bool widened = false;
    if (n_threads > 1 && sched_getaffinity(0, sizeof(saved), &saved) == 0 &&
        CPU_COUNT(&saved) < n_threads) {
        cpu_set_t every;
        CPU_ZERO(&every);
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
            CPU_SET(cpu, &every);
        widened = sched_setaffinity(0, sizeof(every), &every) == 0;
    }
#endif
    volatile int started = 0;
#pragma omp parallel num_threads(n_threads)
    {
#pragma omp atomic
        started++;
    }
    (void)started;
#ifdef __linux__
    if (widened)
        (void)sched_setaffinity(0, sizeof(saved), &saved);
#endif
}

/* ---- ISA cap ------------------------------------------------------------------------ */

static bool has_all(uint64_t isa, uint64_t bits) { return (isa & bits) == bits; }

/* The highest oneDNN ISA level that uses nothing outside `isa`. */
static dnnl_cpu_isa_t dnnl_isa_within(uint64_t isa)
{
    const uint64_t avx512_core = MOAK_ISA_AVX512F | MOAK_ISA_AVX512BW | MOAK_ISA_AVX512VL;
    if (has_all(isa, avx512_core | MOAK_ISA_AVX512VNNI | MOAK_ISA_AVX512BF16 | MOAK_ISA_AMX_TILE |
                         MOAK_ISA_AMX_INT8 | MOAK_ISA_AMX_BF16))
        return dnnl_cpu_isa_avx512_core_amx;
    if (has_all(isa, avx512_core | MOAK_ISA_AVX512VNNI | MOAK_ISA_AVX512BF16))
        return dnnl_cpu_isa_avx512_core_bf16;
    if (has_all(isa, avx512_core | MOAK_ISA_AVX512VNNI))
        return dnnl_cpu_isa_avx512_core_vnni;
    if (has_all(isa, avx512_core))
        return dnnl_cpu_isa_avx512_core;
    if (has_all(isa, MOAK_ISA_AVX2 | MOAK_ISA_AVX_VNNI))
        return dnnl_cpu_isa_avx2_vnni;
    if (has_all(isa, MOAK_ISA_AVX2))
        return dnnl_cpu_isa_avx2;
    if (has_all(isa, MOAK_ISA_AVX))
        return dnnl_cpu_isa_avx;
    /* oneDNN has nothing below SSE4.1: its reference code runs there. */
    return dnnl_cpu_isa_sse41;
}

void onednn_apply_isa_cap(const onednn_state *st)
{
    const moak_hw_info *hw = st->env.hw;
    if (!hw || !hw->isa_cap)
        return;
    dnnl_cpu_isa_t cap = dnnl_isa_within(hw->isa);
    /* The cap is process-wide and only takes before oneDNN's first JIT
     * kernel; later it fails, and oneDNN keeps its own choice. */
    dnnl_status_t s = dnnl_set_max_cpu_isa(cap);
    dnnl_cpu_isa_t effective = dnnl_get_effective_cpu_isa();
    /* ISA values are bit sets: a level includes the bits of those below. */
    if (((unsigned)effective & ~(unsigned)cap) == 0)
        onednn_log(st, MOAK_LOG_DEBUG, "MOAK_ISA_MAX=%s: oneDNN runs at %s", hw->isa_cap,
                   dnnl_cpu_isa2str(effective));
    else
        onednn_log(st, MOAK_LOG_WARN,
                   "MOAK_ISA_MAX=%s could not cap oneDNN at %s (dnnl_%s: it already runs at %s "
                   "in this process)", hw->isa_cap, dnnl_cpu_isa2str(cap), dnnl_status2str(s),
                   dnnl_cpu_isa2str(effective));
}

/* ---- buffers ----------------------------------------------------------------------- */

bool onednn_mul_size3(size_t a, size_t b, size_t c, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    size_t ab = a * b;
    if (ab != 0 && c > SIZE_MAX / ab)
        return false;
    *out = ab * c;
    return true;
}

void *onednn_buffer(const onednn_state *st, onednn_worker *wk, onednn_buffer_id id, size_t bytes)
{
    if (bytes == 0)
        bytes = 64;
    if (wk->buffer_bytes[id] >= bytes)
        return wk->buffers[id];
    /* Grow by half again so that slowly rising batch sizes do not
     * reallocate on every call. */
    size_t want = bytes + bytes / 2;
    if (want < bytes)
        want = bytes;
    want = (want + 63) & ~(size_t)63;
    if (want < bytes)
        want = bytes;
    void *p = NULL;
    if (posix_memalign(&p, 64, want) != 0 || !p) {
        onednn_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of memory for a %zu-byte work buffer", bytes);
        return NULL;
    }
    free(wk->buffers[id]);
    wk->buffers[id] = p;
    wk->buffer_bytes[id] = want;
    return p;
}

void onednn_buffers_free(onednn_worker *wk)
{
    for (int i = 0; i < ONEDNN_BUF_COUNT; i++) {
        free(wk->buffers[i]);
        wk->buffers[i] = NULL;
        wk->buffer_bytes[i] = 0;
    }
}
