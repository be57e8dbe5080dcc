/*
 * Per-op plumbing: scratch buffers reused from op to op, host inputs as
 * device buffers (in place on host-unified devices), all-or-nothing
 * read-back of outputs, kernel arguments and launches.
 */
#include "opencl_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t ocl_round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

void ocl_call_begin(ocl_call *call, ocl_state *st)
{
    call->st = st;
    call->n_temps = 0;
    call->finished = false;
}

moak_status ocl_call_end(ocl_call *call, moak_status status)
{
    ocl_state *st = call->st;
    /* Host inputs may still be read by queued copies: wait before the op
     * returns, whatever happened (ocl_read_outputs waited already). */
    if (!call->finished) {
        cl_int err = clFinish(st->queue);
        if (err != CL_SUCCESS && status == MOAK_OK)
            status = ocl_fail(st, err, "clFinish");
    }
    for (int i = 0; i < call->n_temps; i++)
        clReleaseMemObject(call->temps[i]);
    call->n_temps = 0;
    return status;
}

moak_status ocl_scratch(ocl_state *st, int slot, size_t bytes, cl_mem *out)
{
    if (bytes == 0)
        bytes = 16;
    if (st->scratch[slot] && st->scratch_bytes[slot] >= bytes) {
        *out = st->scratch[slot];
        return MOAK_OK;
    }
    if (bytes > st->dev.max_alloc)
        return ocl_error(st, MOAK_ERR_BACKEND,
                         "a %zu-byte buffer is more than the device's largest allocation "
                         "(CL_DEVICE_MAX_MEM_ALLOC_SIZE %llu)",
                         bytes, (unsigned long long)st->dev.max_alloc);
    if (st->scratch[slot]) {
        clReleaseMemObject(st->scratch[slot]);
        st->scratch[slot] = NULL;
        st->scratch_bytes[slot] = 0;
    }
    /* grow by half again so that slowly growing calls do not reallocate each time */
    size_t want = bytes + bytes / 2;
    if (want > st->dev.max_alloc)
        want = bytes;
    want = ocl_round_up(want, 4096);
    if (want > st->dev.max_alloc)
        want = bytes;
    cl_int err;
    cl_mem mem = clCreateBuffer(st->context, CL_MEM_READ_WRITE, want, NULL, &err);
    if (err != CL_SUCCESS)
        return ocl_fail(st, err, "clCreateBuffer(%zu bytes of scratch)", want);
    st->scratch[slot] = mem;
    st->scratch_bytes[slot] = want;
    *out = mem;
    return MOAK_OK;
}

moak_status ocl_input(ocl_call *call, int slot, const void *host, size_t bytes, cl_mem *out)
{
    ocl_state *st = call->st;
    cl_int err;
    if (bytes == 0) /* an empty operand: any valid buffer will do, it is not read */
        return ocl_scratch(st, slot, 16, out);
    if (st->dev.unified_memory && (uintptr_t)host % st->dev.base_align == 0 &&
        call->n_temps < OCL_CALL_MAX_TEMPS) {
        /* The device reads host memory directly: no copy.  The kernels only
         * read input buffers, so casting away const is safe. */
        cl_mem mem = clCreateBuffer(st->context, CL_MEM_READ_ONLY | CL_MEM_USE_HOST_PTR, bytes,
                                    (void *)(uintptr_t)host, &err);
        if (err != CL_SUCCESS)
            return ocl_fail(st, err, "clCreateBuffer(CL_MEM_USE_HOST_PTR, %zu bytes)", bytes);
        call->temps[call->n_temps++] = mem;
        *out = mem;
        return MOAK_OK;
    }
    cl_mem mem;
    moak_status status = ocl_scratch(st, slot, bytes, &mem);
    if (status != MOAK_OK)
        return status;
    err = clEnqueueWriteBuffer(st->queue, mem, CL_FALSE, 0, bytes, host, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return ocl_fail(st, err, "clEnqueueWriteBuffer(%zu bytes)", bytes);
    *out = mem;
    return MOAK_OK;
}

moak_status ocl_read_outputs(ocl_call *call, int count, const cl_mem *bufs, void *const *dsts,
                             const size_t *bytes)
{
    ocl_state *st = call->st;
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += bytes[i];
    if (total > st->host_staging_bytes) {
        void *p = malloc(total);
        if (!p)
            return ocl_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of host memory (%zu bytes to read back)",
                             total);
        free(st->host_staging);
        st->host_staging = p;
        st->host_staging_bytes = total;
    }
    /* Reading into staging waits for every kernel before; a kernel that
     * failed makes the read fail, and the caller's outputs stay untouched. */
    size_t at = 0;
    for (int i = 0; i < count; i++) {
        if (bytes[i] == 0)
            continue;
        cl_int err = clEnqueueReadBuffer(st->queue, bufs[i], CL_TRUE, 0, bytes[i],
                                         (char *)st->host_staging + at, 0, NULL, NULL);
        if (err != CL_SUCCESS)
            return ocl_fail(st, err, "reading %zu bytes of results back", bytes[i]);
        at += bytes[i];
    }
    cl_int err = clFinish(st->queue);
    if (err != CL_SUCCESS)
        return ocl_fail(st, err, "clFinish");
    call->finished = true;
    at = 0;
    for (int i = 0; i < count; i++) {
        if (bytes[i])
            memcpy(dsts[i], (char *)st->host_staging + at, bytes[i]);
        at += bytes[i];
    }
    return MOAK_OK;
}

void ocl_args_begin(ocl_args *a, cl_kernel kernel, const char *name)
{
    a->kernel = kernel;
    a->name = name;
    a->next = 0;
    a->err = CL_SUCCESS;
    a->failed = 0;
}

static void set_arg(ocl_args *a, size_t size, const void *value)
{
    if (a->err == CL_SUCCESS) {
        cl_int err = clSetKernelArg(a->kernel, a->next, size, value);
        if (err != CL_SUCCESS) {
            a->err = err;
            a->failed = a->next;
        }
    }
    a->next++;
}

void ocl_arg_mem(ocl_args *a, cl_mem mem) { set_arg(a, sizeof(mem), &mem); }

void ocl_arg_int(ocl_args *a, int32_t v)
{
    const cl_int x = v;
    set_arg(a, sizeof(x), &x);
}

void ocl_arg_float(ocl_args *a, float v)
{
    const cl_float x = v;
    set_arg(a, sizeof(x), &x);
}

void ocl_arg_ulong(ocl_args *a, uint64_t v)
{
    const cl_ulong x = v;
    set_arg(a, sizeof(x), &x);
}

void ocl_arg_local(ocl_args *a, size_t bytes) { set_arg(a, bytes ? bytes : 4, NULL); }

moak_status ocl_run2d(ocl_state *st, const ocl_args *a, size_t global0, size_t global1,
                      size_t local0)
{
    if (a->err != CL_SUCCESS)
        return ocl_fail(st, a->err, "clSetKernelArg(%s, argument %u)", a->name, (unsigned)a->failed);
    if (global0 == 0 || global1 == 0)
        return MOAK_OK;
    const size_t global[2] = {global0, global1};
    const size_t local[2] = {local0, 1};
    cl_int err = clEnqueueNDRangeKernel(st->queue, a->kernel, 2, NULL, global, local, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return ocl_fail(st, err, "clEnqueueNDRangeKernel(%s, %zu x %zu, local %zu)", a->name,
                        global0, global1, local0);
    return MOAK_OK;
}
