/*
 * The KV cache in one device buffer, in the core's page layout
 * (moak_kv_layout): the attention kernel indexes it exactly as a host
 * backend indexes host pages.  Appends quantize rows on the host (the
 * core's row quantizer, so every backend stores the same bytes) and copy
 * each run of consecutive slots of a page with one rectangular write per
 * K and V block: rows of all KV heads at once.
 */
#include "opencl_internal.h"

#include <stdlib.h>
#include <string.h>

moak_status ocl_kv_create(void *state, const moak_kv_layout *layout, void **storage)
{
    ocl_state *st = state;
    if (layout->n_pages <= 0 || (uint64_t)layout->n_pages > SIZE_MAX / layout->page_bytes)
        return ocl_error(st, MOAK_ERR_SIZE_OVERFLOW, "the KV cache's size overflows");
    const size_t bytes = layout->page_bytes * (size_t)layout->n_pages;
    if (bytes > st->dev.max_alloc)
        return ocl_error(st, MOAK_ERR_BACKEND,
                         "a %zu-byte KV cache is more than the device's largest allocation "
                         "(CL_DEVICE_MAX_MEM_ALLOC_SIZE %llu); ask for fewer max_tokens",
                         bytes, (unsigned long long)st->dev.max_alloc);
    ocl_kv *kv = calloc(1, sizeof(*kv));
    if (!kv)
        return ocl_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of host memory");
    cl_int err;
    kv->pages = clCreateBuffer(st->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS) {
        free(kv);
        return ocl_fail(st, err, "clCreateBuffer(%zu bytes of KV cache)", bytes);
    }
    *storage = kv;
    return MOAK_OK;
}

void ocl_kv_free(void *state, void *storage)
{
    (void)state;
    ocl_kv *kv = storage;
    if (!kv)
        return;
    if (kv->pages)
        clReleaseMemObject(kv->pages);
    free(kv);
}

/* Quantize tokens [first, first + count) of one K or V operand into staging
 * as [head][token] rows, and write them to slots slot0.. of `page`. */
static cl_int write_block(ocl_state *st, ocl_kv *kv, const moak_kv_layout *l, size_t block_offset,
                          int32_t head_dim, size_t row_bytes, const float *src, int64_t first,
                          int64_t count, int32_t page, int32_t slot0, unsigned char *staging)
{
    for (int32_t h = 0; h < l->n_kv_heads; h++)
        for (int64_t t = 0; t < count; t++) {
            const float *row = src + ((size_t)(first + t) * (size_t)l->n_kv_heads + (size_t)h) *
                                         (size_t)head_dim;
            moak_quantize_row(l->format, row, head_dim,
                              staging + ((size_t)h * (size_t)count + (size_t)t) * row_bytes);
        }
    /* A rectangle of n_kv_heads rows of count * row_bytes bytes: consecutive
     * heads of the page are page_tokens rows apart. */
    const size_t buffer_origin[3] = {
        (size_t)page * l->page_bytes + block_offset + (size_t)slot0 * row_bytes, 0, 0};
    const size_t host_origin[3] = {0, 0, 0};
    const size_t region[3] = {(size_t)count * row_bytes, (size_t)l->n_kv_heads, 1};
    return clEnqueueWriteBufferRect(st->queue, kv->pages, CL_TRUE, buffer_origin, host_origin,
                                    region, (size_t)l->page_tokens * row_bytes, 0,
                                    (size_t)count * row_bytes, 0, staging, 0, NULL, NULL);
}

moak_status ocl_kv_write(void *state, void *storage, const moak_kv_layout *layout, int64_t n,
                         const int32_t *pages, const int32_t *slots, const float *k,
                         const float *v)
{
    ocl_state *st = state;
    ocl_kv *kv = storage;
    if (n <= 0)
        return MOAK_OK;
    /* staging for the longest possible run (one page) of one operand */
    const size_t row_max = layout->row_bytes_k > layout->row_bytes_v ? layout->row_bytes_k
                                                                     : layout->row_bytes_v;
    unsigned char *staging =
        malloc((size_t)layout->page_tokens * (size_t)layout->n_kv_heads * row_max);
    if (!staging)
        return ocl_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of host memory staging KV rows");
    cl_int err = CL_SUCCESS;
    for (int64_t i = 0; i < n && err == CL_SUCCESS;) {
        /* a run: the same page, consecutive slots */
        int64_t count = 1;
        while (i + count < n && pages[i + count] == pages[i] &&
               slots[i + count] == slots[i] + count)
            count++;
        err = write_block(st, kv, layout, 0, layout->head_dim_k, layout->row_bytes_k, k, i, count,
                          pages[i], slots[i], staging);
        if (err == CL_SUCCESS && !layout->shared_v)
            err = write_block(st, kv, layout, layout->v_block_offset, layout->head_dim_v,
                              layout->row_bytes_v, v, i, count, pages[i], slots[i], staging);
        i += count;
    }
    free(staging);
    if (err != CL_SUCCESS)
        return ocl_fail(st, err, "writing KV rows (clEnqueueWriteBufferRect)");
    return MOAK_OK;
}
