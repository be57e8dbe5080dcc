/*
 * Finding OpenCL devices: enumeration over every platform the ICD loader
 * reports, the selector of MOAK_OPENCL_DEVICE / opts->opencl_device, the
 * default choice (first GPU or accelerator, then CPU), and the listing for
 * moak-info.
 *
 * Indices are positions in clGetPlatformIDs and, within a platform, in
 * clGetDeviceIDs(CL_DEVICE_TYPE_ALL): stable for one machine and driver set.
 */
#include "opencl_internal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LISTED_DEVICES 64

/* Every device of every platform, with what the backend needs to know. */
typedef struct device_list {
    ocl_device *devices;         /* [MAX_LISTED_DEVICES] */
    int count;
    bool usable[MAX_LISTED_DEVICES]; /* available, compiler present, OpenCL C >= 1.2 */
    char unusable_why[MAX_LISTED_DEVICES][64];
} device_list;

const char *ocl_device_type_name(cl_device_type type)
{
    if (type & CL_DEVICE_TYPE_GPU)
        return "GPU";
    if (type & CL_DEVICE_TYPE_ACCELERATOR)
        return "accelerator";
    if (type & CL_DEVICE_TYPE_CPU)
        return "CPU";
#ifdef CL_DEVICE_TYPE_CUSTOM
    if (type & CL_DEVICE_TYPE_CUSTOM)
        return "custom";
#endif
    return "other";
}

static void get_string(cl_device_id d, cl_device_info what, char *buf, size_t len)
{
    if (clGetDeviceInfo(d, what, len, buf, NULL) != CL_SUCCESS)
        snprintf(buf, len, "?");
    buf[len - 1] = '\0';
}

/* Does the space-separated extension list hold `name` as a whole word? */
static bool has_word(const char *list, const char *name)
{
    const size_t n = strlen(name);
    for (const char *p = strstr(list, name); p; p = strstr(p + 1, name))
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

/* Fill dev from the driver; why says what makes it unusable ("" if nothing). */
static void describe_device(cl_platform_id p, cl_device_id d, int pi, int di, ocl_device *dev,
                            char *why, size_t why_len)
{
    memset(dev, 0, sizeof(*dev));
    dev->platform = p;
    dev->device = d;
    dev->platform_index = pi;
    dev->device_index = di;
    why[0] = '\0';
    if (clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof(dev->platform_name), dev->platform_name,
                          NULL) != CL_SUCCESS)
        snprintf(dev->platform_name, sizeof(dev->platform_name), "?");
    dev->platform_name[sizeof(dev->platform_name) - 1] = '\0';
    get_string(d, CL_DEVICE_NAME, dev->name, sizeof(dev->name));
    get_string(d, CL_DEVICE_VERSION, dev->version, sizeof(dev->version));
    get_string(d, CL_DRIVER_VERSION, dev->driver, sizeof(dev->driver));

    cl_bool available = CL_FALSE, compiler = CL_FALSE, unified = CL_FALSE;
    cl_uint align_bits = 0;
    cl_int err = clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof(dev->type), &dev->type, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(d, CL_DEVICE_AVAILABLE, sizeof(available), &available, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(d, CL_DEVICE_COMPILER_AVAILABLE, sizeof(compiler), &compiler, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(d, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof(unified), &unified, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof(dev->max_alloc),
                              &dev->max_alloc, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof(dev->local_mem), &dev->local_mem,
                              NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof(dev->max_work_group),
                              &dev->max_work_group, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(d, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof(align_bits), &align_bits,
                              NULL);
    if (err != CL_SUCCESS) {
        snprintf(why, why_len, "clGetDeviceInfo: %s", ocl_error_name(err));
        return;
    }
    dev->unified_memory = unified == CL_TRUE;
    dev->base_align = align_bits >= 8 ? align_bits / 8 : 1;

    size_t ext_len = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &ext_len) == CL_SUCCESS && ext_len) {
        char *ext = malloc(ext_len + 1);
        if (ext && clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, ext_len, ext, NULL) == CL_SUCCESS) {
            ext[ext_len] = '\0';
            dev->has_fp16 = has_word(ext, "cl_khr_fp16");
            dev->has_subgroups = has_word(ext, "cl_khr_subgroups");
            dev->has_int_dot = has_word(ext, "cl_khr_integer_dot_product");
        }
        free(ext);
    }

    char c_version[128];
    int major = 0, minor = 0;
    get_string(d, CL_DEVICE_OPENCL_C_VERSION, c_version, sizeof(c_version));
    if (sscanf(c_version, "OpenCL C %d.%d", &major, &minor) != 2)
        major = minor = 0;
    if (!available)
        snprintf(why, why_len, "the device reports itself unavailable");
    else if (!compiler)
        snprintf(why, why_len, "the driver has no OpenCL C compiler");
    else if (major * 10 + minor < 12)
        snprintf(why, why_len, "OpenCL C %d.%d, the kernels need 1.2", major, minor);
}

/* Every device of every platform; list->count 0 with no platform. */
static cl_int enumerate_unlocked(device_list *list)
{
    memset(list, 0, sizeof(*list));
    cl_uint n_platforms = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &n_platforms);
    if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || (err == CL_SUCCESS && n_platforms == 0))
        return CL_SUCCESS;
    if (err != CL_SUCCESS)
        return err;
    cl_platform_id *platforms = malloc(n_platforms * sizeof(*platforms));
    list->devices = malloc(MAX_LISTED_DEVICES * sizeof(*list->devices));
    if (!platforms || !list->devices) {
        free(platforms);
        free(list->devices);
        list->devices = NULL;
        return CL_OUT_OF_HOST_MEMORY;
    }
    err = clGetPlatformIDs(n_platforms, platforms, NULL);
    for (cl_uint p = 0; err == CL_SUCCESS && p < n_platforms; p++) {
        cl_device_id ids[MAX_LISTED_DEVICES];
        cl_uint n_devices = 0;
        cl_int derr = clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, MAX_LISTED_DEVICES, ids,
                                     &n_devices);
        if (derr == CL_DEVICE_NOT_FOUND)
            continue;
        if (derr != CL_SUCCESS) {
            err = derr;
            break;
        }
        if (n_devices > MAX_LISTED_DEVICES)
            n_devices = MAX_LISTED_DEVICES;
        for (cl_uint d = 0; d < n_devices && list->count < MAX_LISTED_DEVICES; d++) {
            char why[64];
            describe_device(platforms[p], ids[d], (int)p, (int)d, &list->devices[list->count], why,
                            sizeof(why));
            list->usable[list->count] = why[0] == '\0';
            snprintf(list->unusable_why[list->count], sizeof(list->unusable_why[0]), "%s", why);
            list->count++;
        }
    }
    free(platforms);
    if (err != CL_SUCCESS) {
        free(list->devices);
        list->devices = NULL;
        list->count = 0;
    }
    return err;
}

/* PoCL 3.1 initialises its devices on the first clGetPlatformIDs /
 * clGetDeviceIDs, and a second thread's clGetDeviceInfo during that
 * initialisation reads a device name that is not set yet (a crash seen when
 * several threads create contexts at once: moak-soak).  Contexts are
 * independent by moak.h's contract, so the backend serialises its
 * enumerations itself. */
static pthread_mutex_t enumerate_lock = PTHREAD_MUTEX_INITIALIZER;

static cl_int enumerate(device_list *list)
{
    pthread_mutex_lock(&enumerate_lock);
    const cl_int err = enumerate_unlocked(list);
    pthread_mutex_unlock(&enumerate_lock);
    return err;
}

static void list_free(device_list *list)
{
    free(list->devices);
    list->devices = NULL;
}

int ocl_device_count(void)
{
    device_list list;
    if (enumerate(&list) != CL_SUCCESS)
        return 0;
    const int n = list.count;
    list_free(&list);
    return n;
}

static bool contains_nocase(const char *hay, const char *needle)
{
    const size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return n == 0;
}

/* "P:D" with decimal indices?  Anything else is a name substring. */
static bool parse_indices(const char *s, int *p, int *d)
{
    char *end;
    if (!isdigit((unsigned char)s[0]))
        return false;
    long a = strtol(s, &end, 10);
    if (*end != ':' || !isdigit((unsigned char)end[1]))
        return false;
    long b = strtol(end + 1, &end, 10);
    if (*end != '\0' || a > 1000000 || b > 1000000)
        return false;
    *p = (int)a;
    *d = (int)b;
    return true;
}

/* "0:0 pthread-... (CPU), 1:0 ..." for error messages. */
static void short_listing(const device_list *list, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < list->count && used < len; i++) {
        const ocl_device *d = &list->devices[i];
        used += (size_t)snprintf(buf + used, len - used, "%s%d:%d '%s' (%s)", i ? ", " : "",
                                 d->platform_index, d->device_index, d->name,
                                 ocl_device_type_name(d->type));
    }
    if (list->count == 0)
        snprintf(buf, len, "none");
}

/* Index in list of the device `selector` picks, or -1 with why. */
static int pick(const device_list *list, const char *selector, moak_status *status, char *why,
                size_t why_len)
{
    char known[300];
    *status = MOAK_OK;
    if (list->count == 0) {
        *status = MOAK_ERR_BACKEND;
        snprintf(why, why_len, "no OpenCL device: the ICD loader found no platform with a device");
        return -1;
    }
    if (selector && *selector) {
        int found = -1, p = 0, d = 0;
        const bool by_index = parse_indices(selector, &p, &d);
        for (int i = 0; i < list->count && found < 0; i++) {
            const ocl_device *dev = &list->devices[i];
            if (by_index ? (dev->platform_index == p && dev->device_index == d)
                         : (contains_nocase(dev->name, selector) ||
                            contains_nocase(dev->platform_name, selector)))
                found = i;
        }
        if (found < 0) {
            short_listing(list, known, sizeof(known));
            *status = MOAK_ERR_INVALID_ARGUMENT;
            snprintf(why, why_len, "OpenCL device selector '%s' %s (devices: %s)", selector,
                     by_index ? "names no platform:device pair" : "matches no device or platform name",
                     known);
            return -1;
        }
        if (!list->usable[found]) {
            *status = MOAK_ERR_BACKEND;
            snprintf(why, why_len, "OpenCL device selector '%s' picks %d:%d '%s', which is unusable: %s",
                     selector, list->devices[found].platform_index,
                     list->devices[found].device_index, list->devices[found].name,
                     list->unusable_why[found]);
            return -1;
        }
        return found;
    }
    /* default: the first GPU or accelerator, then the first CPU, then anything */
    static const cl_device_type preference[] = {CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR,
                                                 CL_DEVICE_TYPE_CPU, ~(cl_device_type)0};
    for (size_t k = 0; k < sizeof(preference) / sizeof(preference[0]); k++)
        for (int i = 0; i < list->count; i++)
            if (list->usable[i] && (list->devices[i].type & preference[k]))
                return i;
    short_listing(list, known, sizeof(known));
    *status = MOAK_ERR_BACKEND;
    snprintf(why, why_len, "no usable OpenCL device (%s; first refusal: %s)", known,
             list->unusable_why[0]);
    return -1;
}

moak_status ocl_device_select(const char *selector, ocl_device *dev, char *why, size_t why_len)
{
    device_list list;
    cl_int err = enumerate(&list);
    if (err != CL_SUCCESS) {
        snprintf(why, why_len, "listing OpenCL devices failed: %s (%d)", ocl_error_name(err),
                 (int)err);
        return MOAK_ERR_BACKEND;
    }
    moak_status status;
    const int i = pick(&list, selector, &status, why, why_len);
    if (i >= 0)
        *dev = list.devices[i];
    list_free(&list);
    return status;
}

bool moak_opencl_selected_is_accelerator(const char *selector)
{
    ocl_device dev;
    char why[320];
    return ocl_device_select(selector, &dev, why, sizeof(why)) == MOAK_OK &&
           (dev.type & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR)) != 0;
}

/* "platform P: name (version)" lines, each followed by its devices
 * ("  P:D name | type | version, driver | limits | features [default]"). */
moak_status moak_opencl_list_devices(char *buf, size_t len)
{
    if (!buf || len == 0)
        return MOAK_ERR_NULL_ARGUMENT;
    device_list list;
    buf[0] = '\0';
    cl_int err = enumerate(&list);
    if (err != CL_SUCCESS) {
        snprintf(buf, len, "listing OpenCL devices failed: %s (%d)\n", ocl_error_name(err), (int)err);
        return MOAK_ERR_BACKEND;
    }
    cl_uint n_platforms = 0;
    cl_platform_id platforms[16];
    if (clGetPlatformIDs(16, platforms, &n_platforms) != CL_SUCCESS || n_platforms == 0) {
        snprintf(buf, len, "no OpenCL platform (the ICD loader found none)\n");
        list_free(&list);
        return MOAK_OK;
    }
    moak_status status;
    char why[320];
    const int chosen = pick(&list, NULL, &status, why, sizeof(why));
    size_t used = 0;
    for (cl_uint p = 0; p < n_platforms && p < 16 && used < len; p++) {
        char name[128] = "?", version[128] = "?";
        clGetPlatformInfo(platforms[p], CL_PLATFORM_NAME, sizeof(name), name, NULL);
        clGetPlatformInfo(platforms[p], CL_PLATFORM_VERSION, sizeof(version), version, NULL);
        name[sizeof(name) - 1] = version[sizeof(version) - 1] = '\0';
        int n_devices = 0;
        for (int i = 0; i < list.count; i++)
            n_devices += list.devices[i].platform_index == (int)p;
        used += (size_t)snprintf(buf + used, len - used, "platform %u: %s (%s)%s\n", (unsigned)p,
                                 name, version, n_devices ? "" : ": no devices");
        for (int i = 0; i < list.count && used < len; i++) {
            const ocl_device *d = &list.devices[i];
            if (d->platform_index != (int)p)
                continue;
            used += (size_t)snprintf(
                buf + used, len - used,
                "  %d:%d %s | %s | %s, driver %s | max alloc %llu MiB, local %llu KiB%s%s%s%s%s%s%s%s\n",
                d->platform_index, d->device_index, d->name, ocl_device_type_name(d->type),
                d->version, d->driver, (unsigned long long)(d->max_alloc >> 20),
                (unsigned long long)(d->local_mem >> 10),
                d->unified_memory ? " | host-unified memory" : "", d->has_fp16 ? ", fp16" : "",
                d->has_subgroups ? ", subgroups" : "", d->has_int_dot ? ", int dot" : "",
                i == chosen ? " [default]" : "", list.usable[i] ? "" : " [unusable: ",
                list.usable[i] ? "" : list.unusable_why[i], list.usable[i] ? "" : "]");
        }
    }
    list_free(&list);
    return MOAK_OK;
}
