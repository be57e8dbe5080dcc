/*
 * The one OpenCL program of the backend: every .cl file concatenated
 * (embedded at build time), built once per context on the first op, from
 * the on-disk cache when an entry for this device, driver, options and
 * source exists, else from source (then stored).  One program keeps the
 * compile count at one: PoCL takes seconds per build.
 *
 * The build options are "-cl-std=CL1.2" plus MOAK_OPENCL_BUILD_OPTIONS (a
 * knob for vendors trying compiler flags; the tests use it to provoke a
 * compile error).
 */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "opencl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const format_suffix[MOAK_FORMAT_COUNT] = {
    "f32", "f16", "bf16", "q8_0", "q4_0", "i8_row", "i4_g32", "i4_g128",
    "fp8_e4m3_b128", "mxfp4", "mxfp4_st", "i4_g32_ct", "nvfp4"};

/* Work-group size the row kernels ask for: wide on GPUs (one quad per
 * work-item, 64 of them per row); narrower on CPU devices, where a
 * work-group is a loop and its barriers cost. */
#define LWS_GPU 64
#define LWS_CPU 16

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void build_options(char *buf, size_t len)
{
    const char *extra = getenv("MOAK_OPENCL_BUILD_OPTIONS");
    snprintf(buf, len, "-cl-std=CL1.2%s%s", extra && *extra ? " " : "", extra ? extra : "");
}

static uint64_t sources_hash(void)
{
    uint64_t h = OCL_HASH_SEED;
    for (int i = 0; i < moak_opencl_source_count; i++) {
        h = ocl_hash64(h, moak_opencl_source_names[i], strlen(moak_opencl_source_names[i]) + 1);
        h = ocl_hash64(h, moak_opencl_source_texts[i], moak_opencl_source_sizes[i]);
    }
    return h;
}

/* Everything that decides the compiled code. */
static void cache_key(const ocl_state *st, const char *options, char *key, size_t len)
{
    char platform_version[128] = "?";
    clGetPlatformInfo(st->dev.platform, CL_PLATFORM_VERSION, sizeof(platform_version),
                      platform_version, NULL);
    platform_version[sizeof(platform_version) - 1] = '\0';
    snprintf(key, len,
             "moak %s opencl backend abi %d\ndevice %s\ndevice version %s\ndriver %s\n"
             "platform %s\nplatform version %s\noptions %s\nsources %016llx\n",
             moak_version_string(), MOAK_BACKEND_ABI_VERSION, st->dev.name, st->dev.version,
             st->dev.driver, st->dev.platform_name, platform_version, options,
             (unsigned long long)sources_hash());
}

/* The first line of a build log that says "error" (else its first line). */
static void first_error_line(const char *log, char *out, size_t len)
{
    const char *line = log, *found = NULL;
    while (line && *line && !found) {
        const char *end = strchr(line, '\n');
        const size_t n = end ? (size_t)(end - line) : strlen(line);
        for (size_t i = 0; i + 5 <= n; i++)
            if (strncmp(line + i, "error", 5) == 0) {
                found = line;
                break;
            }
        line = end ? end + 1 : NULL;
    }
    if (!found)
        found = log;
    size_t n = strcspn(found, "\n");
    if (n >= len)
        n = len - 1;
    memcpy(out, found, n);
    out[n] = '\0';
}

static char *build_log(const ocl_state *st, cl_program program)
{
    size_t size = 0;
    if (clGetProgramBuildInfo(program, st->dev.device, CL_PROGRAM_BUILD_LOG, 0, NULL, &size) !=
            CL_SUCCESS ||
        size == 0)
        return NULL;
    char *log = malloc(size + 1);
    if (log && clGetProgramBuildInfo(program, st->dev.device, CL_PROGRAM_BUILD_LOG, size, log,
                                     NULL) != CL_SUCCESS) {
        free(log);
        return NULL;
    }
    if (log)
        log[size] = '\0';
    return log;
}

/* Program from a cached binary, or NULL (the reason is logged). */
static cl_program load_cached(ocl_state *st, const char *path, const char *key,
                              const char *options)
{
    unsigned char *binary;
    size_t size;
    char why[200];
    if (!ocl_cache_load(path, key, &binary, &size, why, sizeof(why))) {
        ocl_log(st, MOAK_LOG_DEBUG, "program cache miss: %s: %s", path, why);
        return NULL;
    }
    cl_int err, binary_status = CL_SUCCESS;
    const unsigned char *binaries[1] = {binary};
    cl_program program = clCreateProgramWithBinary(st->context, 1, &st->dev.device, &size,
                                                   binaries, &binary_status, &err);
    free(binary);
    if (err == CL_SUCCESS && binary_status != CL_SUCCESS)
        err = binary_status;
    if (err == CL_SUCCESS)
        err = clBuildProgram(program, 1, &st->dev.device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        ocl_log(st, MOAK_LOG_DEBUG, "program cache entry %s refused by the driver (%s); compiling",
                path, ocl_error_name(err));
        if (program)
            clReleaseProgram(program);
        return NULL;
    }
    return program;
}

/* Program compiled from the embedded sources, or NULL with st->program_error set. */
static cl_program compile_sources(ocl_state *st, const char *options, cl_int *err_out)
{
    enum { MAX_SOURCES = 16 };
    const int n = moak_opencl_source_count;
    const char *strings[2 * MAX_SOURCES];
    size_t lengths[2 * MAX_SOURCES];
    char line_directives[MAX_SOURCES][96];
    if (n > MAX_SOURCES) {
        *err_out = CL_INVALID_VALUE;
        snprintf(st->program_error, sizeof(st->program_error), "too many kernel sources (%d)", n);
        return NULL;
    }
    /* "#line 1 "attention.cl"" before each file: compiler messages name the file */
    for (int i = 0; i < n; i++) {
        snprintf(line_directives[i], sizeof(line_directives[i]), "#line 1 \"%s\"\n",
                 moak_opencl_source_names[i]);
        strings[2 * i] = line_directives[i];
        lengths[2 * i] = strlen(line_directives[i]);
        strings[2 * i + 1] = moak_opencl_source_texts[i];
        lengths[2 * i + 1] = moak_opencl_source_sizes[i];
    }
    cl_int err;
    cl_program program =
        clCreateProgramWithSource(st->context, (cl_uint)(2 * n), strings, lengths, &err);
    if (err != CL_SUCCESS) {
        *err_out = err;
        snprintf(st->program_error, sizeof(st->program_error),
                 "clCreateProgramWithSource: %s (%d)", ocl_error_name(err), (int)err);
        return NULL;
    }
    err = clBuildProgram(program, 1, &st->dev.device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        char *log = build_log(st, program);
        char line[240];
        first_error_line(log ? log : "(no build log)", line, sizeof(line));
        snprintf(st->program_error, sizeof(st->program_error),
                 "building the kernels for '%.60s' with \"%.100s\" failed: %s (%d): %.200s", st->dev.name,
                 options, ocl_error_name(err), (int)err, line);
        ocl_log(st, MOAK_LOG_ERROR, "build log of the kernels for '%s':\n%s", st->dev.name,
                log ? log : "(none)");
        free(log);
        clReleaseProgram(program);
        *err_out = err;
        return NULL;
    }
    return program;
}

/* Store the built program's binary; failures are only logged. */
static void store_binary(ocl_state *st, cl_program program, const char *dir, const char *path,
                         const char *key)
{
    size_t size = 0;
    char why[240];
    cl_int err = clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof(size), &size, NULL);
    if (err != CL_SUCCESS || size == 0) {
        ocl_log(st, MOAK_LOG_INFO, "program not cached: the driver gives no binary (%s)",
                ocl_error_name(err));
        return;
    }
    unsigned char *binary = malloc(size);
    unsigned char *binaries[1] = {binary};
    if (!binary)
        return;
    err = clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof(binaries), binaries, NULL);
    if (err != CL_SUCCESS)
        ocl_log(st, MOAK_LOG_INFO, "program not cached: CL_PROGRAM_BINARIES: %s",
                ocl_error_name(err));
    else if (!ocl_cache_store(dir, path, key, binary, size, why, sizeof(why)))
        ocl_log(st, MOAK_LOG_INFO, "program not cached: %s", why);
    else
        ocl_log(st, MOAK_LOG_DEBUG, "program stored in the cache: %s (%zu bytes)", path, size);
    free(binary);
}

static void release_kernels(ocl_kernels *k)
{
    cl_kernel *all = (cl_kernel *)k;
    for (size_t i = 0; i < sizeof(*k) / sizeof(cl_kernel); i++)
        if (all[i]) {
            clReleaseKernel(all[i]);
            all[i] = NULL;
        }
}

static cl_int create_kernel(ocl_state *st, cl_kernel *out, const char *name)
{
    cl_int err;
    *out = clCreateKernel(st->program, name, &err);
    if (err != CL_SUCCESS) {
        *out = NULL;
        snprintf(st->program_error, sizeof(st->program_error), "clCreateKernel(%s): %s (%d)",
                 name, ocl_error_name(err), (int)err);
    }
    return err;
}

/* The largest power of two <= want that every kernel of `kernels` accepts. */
static size_t fit_work_group(const ocl_state *st, const cl_kernel *kernels, int n, size_t want)
{
    size_t lws = want;
    for (int i = 0; i < n; i++) {
        size_t max = 0;
        if (clGetKernelWorkGroupInfo(kernels[i], st->dev.device, CL_KERNEL_WORK_GROUP_SIZE,
                                     sizeof(max), &max, NULL) == CL_SUCCESS &&
            max > 0)
            while (lws > max)
                lws /= 2;
    }
    return lws ? lws : 1;
}

static cl_int create_kernels(ocl_state *st)
{
    ocl_kernels *k = &st->k;
    char name[64];
    cl_int err = CL_SUCCESS;
    for (int f = 0; f < MOAK_FORMAT_COUNT && err == CL_SUCCESS; f++) {
        snprintf(name, sizeof(name), "matmul_%s", format_suffix[f]);
        err = create_kernel(st, &k->matmul[f], name);
        if (err == CL_SUCCESS) {
            snprintf(name, sizeof(name), "moe_gate_up_%s", format_suffix[f]);
            err = create_kernel(st, &k->moe_gate_up[f], name);
        }
        if (err == CL_SUCCESS) {
            snprintf(name, sizeof(name), "moe_down_%s", format_suffix[f]);
            err = create_kernel(st, &k->moe_down[f], name);
        }
    }
    for (int f = 0; f < OCL_KV_FORMATS && err == CL_SUCCESS; f++) {
        snprintf(name, sizeof(name), "attention_%s", format_suffix[f]);
        err = create_kernel(st, &k->attention[f], name);
        if (err == CL_SUCCESS) {
            snprintf(name, sizeof(name), "indexer_%s", format_suffix[f]);
            err = create_kernel(st, &k->indexer[f], name);
        }
    }
    if (err == CL_SUCCESS)
        err = create_kernel(st, &k->moe_combine, "moe_combine");
    if (err == CL_SUCCESS)
        err = create_kernel(st, &k->moe_route, "moe_route");
    if (err == CL_SUCCESS)
        err = create_kernel(st, &k->rmsnorm, "rmsnorm");
    if (err == CL_SUCCESS)
        err = create_kernel(st, &k->rope, "rope");
    if (err != CL_SUCCESS) {
        release_kernels(k);
        return err;
    }
    const bool cpu = (st->dev.type & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)) == 0;
    const size_t want = cpu ? LWS_CPU : LWS_GPU;
    st->lws_rows = fit_work_group(st, k->matmul, MOAK_FORMAT_COUNT, want);
    st->lws_rows = fit_work_group(st, k->moe_gate_up, MOAK_FORMAT_COUNT, st->lws_rows);
    st->lws_rows = fit_work_group(st, k->moe_down, MOAK_FORMAT_COUNT, st->lws_rows);
    st->lws_rows = fit_work_group(st, &k->rmsnorm, 1, st->lws_rows);
    st->lws_attention = fit_work_group(st, k->attention, OCL_KV_FORMATS, want);
    const cl_kernel flat[] = {k->moe_combine, k->moe_route, k->rope};
    st->lws_flat = fit_work_group(st, flat, 3, 64);
    st->lws_flat = fit_work_group(st, k->indexer, OCL_KV_FORMATS, st->lws_flat);
    return CL_SUCCESS;
}

static moak_status build(ocl_state *st)
{
    char options[512], key[2048];
    build_options(options, sizeof(options));
    cache_key(st, options, key, sizeof(key));
    char *dir = ocl_cache_dir();
    char *path = NULL;
    if (dir) {
        const size_t len = strlen(dir) + 40;
        path = malloc(len);
        if (path)
            snprintf(path, len, "%s/opencl-%016llx.bin", dir,
                     (unsigned long long)ocl_hash64(OCL_HASH_SEED, key, strlen(key)));
    } else {
        ocl_log(st, MOAK_LOG_INFO,
                "no program cache: neither MOAK_CACHE_DIR, XDG_CACHE_HOME nor HOME is set");
    }

    const double t0 = now_ms();
    cl_int err = CL_SUCCESS;
    st->program = path ? load_cached(st, path, key, options) : NULL;
    if (st->program) {
        ocl_log(st, MOAK_LOG_DEBUG, "program loaded from the cache in %.0f ms: %s",
                now_ms() - t0, path);
    } else {
        st->program = compile_sources(st, options, &err);
        if (st->program) {
            ocl_log(st, MOAK_LOG_DEBUG, "program compiled from source in %.0f ms for '%s'",
                    now_ms() - t0, st->dev.name);
            if (path)
                store_binary(st, st->program, dir, path, key);
        }
    }
    free(dir);
    free(path);
    if (!st->program)
        return MOAK_ERR_BACKEND;
    err = create_kernels(st);
    if (err != CL_SUCCESS) {
        clReleaseProgram(st->program);
        st->program = NULL;
        return MOAK_ERR_BACKEND;
    }
    return MOAK_OK;
}

moak_status ocl_program_ensure(ocl_state *st)
{
    if (!st->program_tried) {
        st->program_tried = true;
        st->program_error[0] = '\0';
        st->program_status = build(st);
    }
    if (st->program_status != MOAK_OK)
        return ocl_error(st, st->program_status, "%s", st->program_error);
    return MOAK_OK;
}

void ocl_program_release(ocl_state *st)
{
    release_kernels(&st->k);
    if (st->program)
        clReleaseProgram(st->program);
    st->program = NULL;
}
