/* OpenCL error codes by name, and the backend's error and log entry points. */
#include "opencl_internal.h"

#include <stdarg.h>
#include <stdio.h>

const char *ocl_error_name(cl_int err)
{
    switch (err) {
#define OCL_NAME(code) case code: return #code;
    OCL_NAME(CL_SUCCESS)
    OCL_NAME(CL_DEVICE_NOT_FOUND)
    OCL_NAME(CL_DEVICE_NOT_AVAILABLE)
    OCL_NAME(CL_COMPILER_NOT_AVAILABLE)
    OCL_NAME(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    OCL_NAME(CL_OUT_OF_RESOURCES)
    OCL_NAME(CL_OUT_OF_HOST_MEMORY)
    OCL_NAME(CL_PROFILING_INFO_NOT_AVAILABLE)
    OCL_NAME(CL_MEM_COPY_OVERLAP)
    OCL_NAME(CL_IMAGE_FORMAT_MISMATCH)
    OCL_NAME(CL_IMAGE_FORMAT_NOT_SUPPORTED)
    OCL_NAME(CL_BUILD_PROGRAM_FAILURE)
    OCL_NAME(CL_MAP_FAILURE)
    OCL_NAME(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    OCL_NAME(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    OCL_NAME(CL_COMPILE_PROGRAM_FAILURE)
    OCL_NAME(CL_LINKER_NOT_AVAILABLE)
    OCL_NAME(CL_LINK_PROGRAM_FAILURE)
    OCL_NAME(CL_DEVICE_PARTITION_FAILED)
    OCL_NAME(CL_KERNEL_ARG_INFO_NOT_AVAILABLE)
    OCL_NAME(CL_INVALID_VALUE)
    OCL_NAME(CL_INVALID_DEVICE_TYPE)
    OCL_NAME(CL_INVALID_PLATFORM)
    OCL_NAME(CL_INVALID_DEVICE)
    OCL_NAME(CL_INVALID_CONTEXT)
    OCL_NAME(CL_INVALID_QUEUE_PROPERTIES)
    OCL_NAME(CL_INVALID_COMMAND_QUEUE)
    OCL_NAME(CL_INVALID_HOST_PTR)
    OCL_NAME(CL_INVALID_MEM_OBJECT)
    OCL_NAME(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR)
    OCL_NAME(CL_INVALID_IMAGE_SIZE)
    OCL_NAME(CL_INVALID_SAMPLER)
    OCL_NAME(CL_INVALID_BINARY)
    OCL_NAME(CL_INVALID_BUILD_OPTIONS)
    OCL_NAME(CL_INVALID_PROGRAM)
    OCL_NAME(CL_INVALID_PROGRAM_EXECUTABLE)
    OCL_NAME(CL_INVALID_KERNEL_NAME)
    OCL_NAME(CL_INVALID_KERNEL_DEFINITION)
    OCL_NAME(CL_INVALID_KERNEL)
    OCL_NAME(CL_INVALID_ARG_INDEX)
    OCL_NAME(CL_INVALID_ARG_VALUE)
    OCL_NAME(CL_INVALID_ARG_SIZE)
    OCL_NAME(CL_INVALID_KERNEL_ARGS)
    OCL_NAME(CL_INVALID_WORK_DIMENSION)
    OCL_NAME(CL_INVALID_WORK_GROUP_SIZE)
    OCL_NAME(CL_INVALID_WORK_ITEM_SIZE)
    OCL_NAME(CL_INVALID_GLOBAL_OFFSET)
    OCL_NAME(CL_INVALID_EVENT_WAIT_LIST)
    OCL_NAME(CL_INVALID_EVENT)
    OCL_NAME(CL_INVALID_OPERATION)
    OCL_NAME(CL_INVALID_GL_OBJECT)
    OCL_NAME(CL_INVALID_BUFFER_SIZE)
    OCL_NAME(CL_INVALID_MIP_LEVEL)
    OCL_NAME(CL_INVALID_GLOBAL_WORK_SIZE)
    OCL_NAME(CL_INVALID_PROPERTY)
    OCL_NAME(CL_INVALID_IMAGE_DESCRIPTOR)
    OCL_NAME(CL_INVALID_COMPILER_OPTIONS)
    OCL_NAME(CL_INVALID_LINKER_OPTIONS)
    OCL_NAME(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef OCL_NAME
    case -1001:
        return "CL_PLATFORM_NOT_FOUND_KHR"; /* the ICD loader found no platform */
    default:
        return "unknown CL error";
    }
}

moak_status ocl_fail(const ocl_state *st, cl_int err, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return st->env.error(st->env.log_ctx, MOAK_ERR_BACKEND, "opencl: %s: %s (%d)", what,
                         ocl_error_name(err), (int)err);
}

moak_status ocl_error(const ocl_state *st, moak_status status, const char *fmt, ...)
{
    char message[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    return st->env.error(st->env.log_ctx, status, "opencl: %s", message);
}

void ocl_log(const ocl_state *st, moak_log_level level, const char *fmt, ...)
{
    char message[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    st->env.log(st->env.log_ctx, level, "opencl: %s", message);
}
