/*
 * test_opencl_common.h — what the OpenCL-specific tests share (header-only,
 * static functions): the kernel caches kept inside the build tree, a log
 * sink that keeps every line for the test to search, contexts that run on
 * "opencl" alone, and one matmul checked against the double oracle.
 *
 * The op-by-op correctness of the backend is the general suite's job
 * (test_matmul, test_attention, ... run every available backend); these
 * tests check what only OpenCL has: device selection, the program cache,
 * and build errors.
 */
#ifndef MOAK_TEST_OPENCL_COMMON_H
#define MOAK_TEST_OPENCL_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moak.h"
#include "testutil.h"

/* Every line logged by one context, "level: message\n". */
typedef struct ocl_test_log {
    char text[1 << 16];
    size_t used;
} ocl_test_log;

static void ocl_test_log_sink(void *user, moak_log_level level, const char *message)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    ocl_test_log *log = user;
    const int n = snprintf(log->text + log->used, sizeof(log->text) - log->used, "%s: %s\n",
                           names[level <= MOAK_LOG_DEBUG ? level : MOAK_LOG_DEBUG], message);
    if (n > 0)
        log->used += (size_t)n < sizeof(log->text) - log->used ? (size_t)n
                                                               : sizeof(log->text) - log->used - 1;
}

static int ocl_test_log_has(const ocl_test_log *log, const char *needle)
{
    return strstr(log->text, needle) != NULL;
}

/* The tests run once per ISA level (run-levels.sh), but nothing of OpenCL
 * depends on the CPU's ISA cap: run at the scalar level only (or when no
 * level is forced), skip the others. */
static void ocl_test_first_level_only(void)
{
    const char *level = getenv("MOAK_ISA_MAX");
    if (level && *level && strcmp(level, "scalar") != 0) {
        printf("# OpenCL does not depend on MOAK_ISA_MAX; this test runs at the scalar level only\n");
        exit(T_EXIT_SKIP);
    }
}

/* PoCL's and moak's kernel caches inside the build tree when the harness
 * did not choose them (a test run by hand). */
static void ocl_test_default_caches(void)
{
    char cwd[900], path[1024];
    if (!getcwd(cwd, sizeof(cwd)))
        t_die("getcwd failed");
    snprintf(path, sizeof(path), "%s/test-cache", cwd);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/test-cache/pocl", cwd);
    mkdir(path, 0700);
    setenv("POCL_CACHE_DIR", path, 0);
    snprintf(path, sizeof(path), "%s/test-cache/moak", cwd);
    mkdir(path, 0700);
    setenv("MOAK_CACHE_DIR", path, 0);
}

/* Skip the test (exit 77) when the opencl backend is not usable here. */
static void ocl_test_require_backend(void)
{
    for (int32_t i = 0; i < moak_backend_count(); i++) {
        moak_backend_info info = MOAK_BACKEND_INFO_INIT;
        if (moak_backend_query(i, &info) == MOAK_OK && strcmp(info.name, "opencl") == 0) {
            if (info.available)
                return;
            printf("# opencl backend not available: %s\n", info.reason);
            exit(T_EXIT_SKIP);
        }
    }
    printf("# no opencl backend in this library\n");
    exit(T_EXIT_SKIP);
}

/* A context running on opencl only ("opencl!": no ref fallback), verbose,
 * logging into *log; selector as opts->opencl_device. */
static moak_status ocl_test_context(const char *backends, const char *selector,
                                    ocl_test_log *log, moak_context **ctx)
{
    moak_context_options opts = MOAK_CONTEXT_OPTIONS_INIT;
    opts.backends = backends;
    opts.num_threads = 1;
    opts.verbose = 1;
    opts.log_fn = ocl_test_log_sink;
    opts.log_user = log;
    opts.opencl_device = selector;
    log->used = 0;
    log->text[0] = '\0';
    return moak_context_create(&opts, ctx);
}

/*
 * One Q4_0 matmul on ctx, checked against the double oracle: Qwen3-30B-A3B's
 * expert down projection (hidden 2048 x inter 768) scaled to 64 x 768, three
 * tokens.  Returns the row error (+inf when the call fails or an element is
 * left unwritten); *status is the call's status.  When the call fails, y must
 * still hold its poison: *untouched says whether it does.  x is page-aligned,
 * so a host-unified device (PoCL) reads it in place (CL_MEM_USE_HOST_PTR);
 * the general suite's malloc'ed inputs take the copying path.
 */
static double ocl_test_matmul(moak_context *ctx, moak_status *status, int *untouched)
{
    const int64_t rows = 64, cols = 768, m = 3;
    size_t bytes;
    double *deq;
    uint8_t *w_bytes = t_random_weights(MOAK_FORMAT_Q4_0, rows, cols, 0.05, &bytes, &deq);
    void *x_mem = NULL;
    if (posix_memalign(&x_mem, 4096, (size_t)(m * cols) * sizeof(float)) != 0)
        t_die("posix_memalign failed");
    float *x = x_mem;
    float *y = t_alloc_f32((size_t)(m * rows));
    float *poison = t_alloc_f32((size_t)(m * rows));
    double *ref = t_alloc_f64((size_t)(m * rows));
    t_fill_normal(x, (size_t)(m * cols), 1.0);
    t_poison_f32(y, (size_t)(m * rows));
    memcpy(poison, y, (size_t)(m * rows) * sizeof(float));
    for (int64_t t = 0; t < m; t++)
        for (int64_t r = 0; r < rows; r++) {
            double acc = 0.0;
            for (int64_t c = 0; c < cols; c++)
                acc += (double)x[t * cols + c] * deq[r * cols + c];
            ref[t * rows + r] = acc;
        }

    moak_weight_desc desc = MOAK_WEIGHT_DESC_INIT;
    desc.format = MOAK_FORMAT_Q4_0;
    desc.n_experts = 1;
    desc.rows = rows;
    desc.cols = cols;
    desc.data = w_bytes;
    desc.data_size = bytes;
    moak_weight *w = NULL;
    double err = 1.0 / 0.0;
    *status = moak_weight_create(ctx, &desc, &w);
    if (*status == MOAK_OK)
        *status = moak_matmul(ctx, w, x, m, y);
    if (*status == MOAK_OK)
        err = t_max_row_error(y, ref, m, rows);
    *untouched = memcmp(y, poison, (size_t)(m * rows) * sizeof(float)) == 0;
    moak_weight_destroy(w);
    free(w_bytes);
    free(deq);
    free(x);
    free(y);
    free(poison);
    free(ref);
    return err;
}

#endif
