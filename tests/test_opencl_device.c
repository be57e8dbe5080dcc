/*
 * test_opencl_device — choosing the OpenCL device, and errors that only a
 * device backend has:
 *   - opts->opencl_device as "platform:device" and as a name substring (in
 *     another letter case), and MOAK_OPENCL_DEVICE when the option is NULL,
 *     each picking the device the OpenCL API itself lists there (the test
 *     asks the ICD loader directly, independently of moak);
 *   - a selector that names nothing fails context creation with
 *     MOAK_ERR_INVALID_ARGUMENT and a message that quotes it;
 *   - a compile error (MOAK_OPENCL_BUILD_OPTIONS=-DMOAK_TEST_BUILD_ERROR makes
 *     common.cl hit #error) fails context creation with MOAK_ERR_BACKEND,
 *     names CL_BUILD_PROGRAM_FAILURE, carries the compiler's line and sends
 *     the whole build log to the log sink.
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#define CL_TARGET_OPENCL_VERSION 120

#include <CL/cl.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moak.h"
#include "test_opencl_common.h"
#include "testutil.h"

/* Name of device d of platform p from the ICD loader, or 0 if absent. */
static int device_name(cl_uint p, cl_uint d, char *name, size_t len)
{
    cl_platform_id platforms[16];
    cl_device_id devices[64];
    cl_uint np = 0, nd = 0;
    if (clGetPlatformIDs(16, platforms, &np) != CL_SUCCESS || p >= np)
        return 0;
    if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 64, devices, &nd) != CL_SUCCESS || d >= nd)
        return 0;
    return clGetDeviceInfo(devices[d], CL_DEVICE_NAME, len, name, NULL) == CL_SUCCESS;
}

/* Context on selector: it must pick "p:d 'name'" and run a correct matmul. */
static void check_selects(const char *label, const char *selector, cl_uint p, cl_uint d,
                          const char *name)
{
    static ocl_test_log log;
    moak_context *ctx = NULL;
    moak_status st = ocl_test_context("opencl!", selector, &log, &ctx);
    if (st != MOAK_OK) {
        t_fail("%s: moak_context_create: %s: %s", label, t_status_name(st), moak_last_error(NULL));
        return;
    }
    char expected[400];
    snprintf(expected, sizeof(expected), "device %u:%u '%s'", (unsigned)p, (unsigned)d, name);
    t_check(ocl_test_log_has(&log, expected), "%s: the log says %s", label, expected);
    int untouched;
    const double err = ocl_test_matmul(ctx, &st, &untouched);
    if (st != MOAK_OK)
        t_fail("%s: matmul failed: %s", label, moak_last_error(ctx));
    t_report("opencl", moak_last_backend(ctx), "matmul", "q4_0", label, err, MOAK_BOUND_MATMUL_INT);
    moak_context_destroy(ctx);
}

static void check_refused(const char *label, const char *selector)
{
    static ocl_test_log log;
    moak_context *ctx = NULL;
    moak_status st = ocl_test_context("opencl!", selector, &log, &ctx);
    t_check(st == MOAK_ERR_INVALID_ARGUMENT && ctx == NULL,
            "%s: selector '%s' refused with MOAK_ERR_INVALID_ARGUMENT (got %s)", label, selector,
            t_status_name(st));
    t_check(strstr(moak_last_error(NULL), selector) != NULL, "%s: the message quotes '%s': %s",
            label, selector, moak_last_error(NULL));
    if (ctx)
        moak_context_destroy(ctx);
}

static void check_build_error(void)
{
    static ocl_test_log log;
    moak_context *ctx = NULL;
    setenv("MOAK_OPENCL_BUILD_OPTIONS", "-DMOAK_TEST_BUILD_ERROR", 1);
    /* The kernels are built when the context starts the backend. */
    moak_status st = ocl_test_context("opencl", NULL, &log, &ctx);
    const char *msg = moak_last_error(NULL);
    t_check(st == MOAK_ERR_BACKEND && ctx == NULL,
            "build error: context creation fails with MOAK_ERR_BACKEND (got %s)", t_status_name(st));
    t_check(strstr(msg, "CL_BUILD_PROGRAM_FAILURE") != NULL,
            "build error: the message names CL_BUILD_PROGRAM_FAILURE: %s", msg);
    t_check(strstr(msg, "MOAK_TEST_BUILD_ERROR") != NULL,
            "build error: the message carries the compiler's error line");
    t_check(ocl_test_log_has(&log, "error: opencl: build log"),
            "build error: the full build log went to the log sink at error level");
    if (ctx)
        moak_context_destroy(ctx);

    /* a context that does not name opencl never builds its kernels */
    ctx = NULL;
    st = ocl_test_context("ref", NULL, &log, &ctx);
    t_check(st == MOAK_OK, "build error: a context without opencl is unaffected (%s)",
            t_status_name(st));
    if (ctx)
        moak_context_destroy(ctx);
    unsetenv("MOAK_OPENCL_BUILD_OPTIONS");
}

int main(void)
{
    t_init("test_opencl_device");
    ocl_test_first_level_only();
    ocl_test_default_caches();
    ocl_test_require_backend();

    char name0[256] = "";
    if (!device_name(0, 0, name0, sizeof(name0)))
        t_die("the opencl backend is available but the ICD loader lists no device 0:0");
    t_note("device 0:0 is '%s'", name0);

    unsetenv("MOAK_OPENCL_DEVICE");
    check_selects("index 0:0", "0:0", 0, 0, name0);

    /* a substring from the middle of the name, letter case swapped */
    const size_t len = strlen(name0);
    char sub[64];
    size_t from = len / 3, n = len - from < 8 ? len - from : 8;
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)name0[from + i];
        sub[i] = (char)(islower(c) ? toupper(c) : tolower(c));
    }
    sub[n] = '\0';
    check_selects("name substring", sub, 0, 0, name0);

    /* the environment variable, read by the core when the option is NULL */
    setenv("MOAK_OPENCL_DEVICE", "0:0", 1);
    check_selects("MOAK_OPENCL_DEVICE", NULL, 0, 0, name0);
    unsetenv("MOAK_OPENCL_DEVICE");

    check_refused("unknown name", "no-such-opencl-device-xyzzy");
    check_refused("index out of range", "7:3");

    check_build_error();
    return t_finish();
}
