/*
 * Weights in device memory, uploaded once at moak_weight_create.
 *
 * The moak.h row layout interleaves scales and quants in blocks of 18, 20,
 * 34 or 68 bytes, whose fields a GPU cannot load aligned.  Packing splits
 * every row into a quant array and a scale array (layouts in common.cl),
 * padding each row with zeros to `kp` elements: a multiple of the block
 * and of 4, so the kernels read whole quads.  The packed form is no larger
 * than the source except for that padding (F32/F16/BF16/I8_ROW rows grow
 * to a multiple of 4 elements).  Rows are repacked through a bounded host
 * staging area, so a large weight never needs a second full host copy.
 */
#include "opencl_internal.h"

#include <stdlib.h>
#include <string.h>

#define STAGING_BYTES ((size_t)8 << 20)

/* Elements per block of the packed layout (the padding unit of a row). */
static int32_t pad_unit(moak_format format)
{
    switch (format) {
    case MOAK_FORMAT_Q8_0:
    case MOAK_FORMAT_Q4_0:
    case MOAK_FORMAT_I4_G32:
        return 32;
    case MOAK_FORMAT_I4_G128:
    case MOAK_FORMAT_FP8_E4M3_B128:
        return 128;
    case MOAK_FORMAT_MXFP4:
    case MOAK_FORMAT_MXFP4_ST:
    case MOAK_FORMAT_I4_G32_CT:
        return 32;
    case MOAK_FORMAT_NVFP4:
        return 64;
    default:
        return 4;
    }
}

int32_t ocl_weight_padded_cols(moak_format format, int64_t cols)
{
    const int64_t unit = pad_unit(format);
    const int64_t kp = (cols + unit - 1) / unit * unit;
    return kp > INT32_MAX ? -1 : (int32_t)kp;
}

/* Bytes of one packed row's quants and scales. */
static void packed_row_bytes(moak_format format, int64_t kp, size_t *quant, size_t *scale)
{
    switch (format) {
    case MOAK_FORMAT_F32: *quant = (size_t)kp * 4; *scale = 0; break;
    case MOAK_FORMAT_F16:
    case MOAK_FORMAT_BF16: *quant = (size_t)kp * 2; *scale = 0; break;
    case MOAK_FORMAT_Q8_0: *quant = (size_t)kp; *scale = (size_t)kp / 32 * 2; break;
    case MOAK_FORMAT_Q4_0: *quant = (size_t)kp / 2; *scale = (size_t)kp / 32 * 2; break;
    case MOAK_FORMAT_I8_ROW: *quant = (size_t)kp; *scale = 4; break;
    case MOAK_FORMAT_I4_G32: *quant = (size_t)kp / 2; *scale = (size_t)kp / 32 * 4; break;
    case MOAK_FORMAT_I4_G128: *quant = (size_t)kp / 2; *scale = (size_t)kp / 128 * 4; break;
    case MOAK_FORMAT_FP8_E4M3_B128: *quant = (size_t)kp; *scale = (size_t)kp / 128 * 4; break;
    case MOAK_FORMAT_MXFP4:
    case MOAK_FORMAT_MXFP4_ST: *quant = (size_t)kp / 2; *scale = (size_t)kp / 32; break;
    case MOAK_FORMAT_I4_G32_CT: *quant = (size_t)kp / 2; *scale = (size_t)kp / 32 * 2; break;
    case MOAK_FORMAT_NVFP4: *quant = (size_t)kp / 2; *scale = (size_t)kp / 16 * 4; break;
    default: *quant = *scale = 0; break;
    }
}

bool ocl_weight_bytes(moak_format format, int64_t n_experts, int64_t rows, int64_t cols,
                      size_t *quant_bytes, size_t *scale_bytes)
{
    const int32_t kp = ocl_weight_padded_cols(format, cols);
    if (kp <= 0 || n_experts <= 0 || rows <= 0)
        return false;
    size_t q, s;
    packed_row_bytes(format, kp, &q, &s);
    const uint64_t n_rows = (uint64_t)n_experts * (uint64_t)rows;
    if (n_rows > SIZE_MAX / (q ? q : 1) || (s && n_rows > SIZE_MAX / s))
        return false;
    *quant_bytes = (size_t)n_rows * q;
    *scale_bytes = (size_t)n_rows * s;
    return true;
}

/* Split one source row (moak.h layout; the release formats in the row-local
 * form of moak_backend.h, their scales after the row) into its packed quants
 * and scales.  The release formats have no padding: kp == cols. */
static void pack_row(moak_format format, const unsigned char *src, int64_t cols, int32_t kp,
                     unsigned char *quant, unsigned char *scale)
{
    size_t q_bytes, s_bytes;
    packed_row_bytes(format, kp, &q_bytes, &s_bytes);
    memset(quant, 0, q_bytes);
    const int64_t n_blocks = kp / pad_unit(format);
    switch (format) {
    case MOAK_FORMAT_F32:
    case MOAK_FORMAT_F16:
    case MOAK_FORMAT_BF16:
        memcpy(quant, src, moak_format_row_bytes(format, cols));
        break;
    case MOAK_FORMAT_Q8_0:
        for (int64_t b = 0; b < n_blocks; b++) {
            memcpy(scale + 2 * b, src + 34 * b, 2);
            memcpy(quant + 32 * b, src + 34 * b + 2, 32);
        }
        break;
    case MOAK_FORMAT_Q4_0:
        for (int64_t b = 0; b < n_blocks; b++) {
            memcpy(scale + 2 * b, src + 18 * b, 2);
            memcpy(quant + 16 * b, src + 18 * b + 2, 16);
        }
        break;
    case MOAK_FORMAT_I8_ROW:
        memcpy(scale, src, 4);
        memcpy(quant, src + 4, (size_t)cols);
        break;
    case MOAK_FORMAT_I4_G32:
    case MOAK_FORMAT_I4_G128: {
        const size_t group = (size_t)pad_unit(format), block = 4 + group / 2;
        for (int64_t b = 0; b < n_blocks; b++) {
            memcpy(scale + 4 * b, src + block * (size_t)b, 4);
            memcpy(quant + group / 2 * (size_t)b, src + block * (size_t)b + 4, group / 2);
        }
        break;
    }
    case MOAK_FORMAT_FP8_E4M3_B128:
    case MOAK_FORMAT_MXFP4_ST:
    case MOAK_FORMAT_I4_G32_CT: {
        const size_t data = moak_format_row_bytes(format, cols);
        memcpy(quant, src, data);
        memcpy(scale, src + data, s_bytes);
        break;
    }
    case MOAK_FORMAT_MXFP4:
        for (int64_t b = 0; b < n_blocks; b++) {
            scale[b] = src[17 * b];
            memcpy(quant + 16 * b, src + 17 * b + 1, 16);
        }
        break;
    case MOAK_FORMAT_NVFP4: {
        /* the sub-block scales decoded and multiplied by the tensor scale here,
         * so the kernel needs neither UE4M3 nor a second scale */
        float tensor_scale;
        memcpy(&tensor_scale, src + moak_format_row_bytes(format, cols), sizeof tensor_scale);
        for (int64_t b = 0; b < n_blocks; b++) {
            for (int s = 0; s < 4; s++) {
                const float d = moak_ue4m3_to_f32(src[36 * b + s]) * tensor_scale;
                memcpy(scale + 4 * (4 * b + s), &d, sizeof d);
            }
            memcpy(quant + 32 * b, src + 36 * b + 4, 32);
        }
        break;
    }
    default:
        break;
    }
}

static cl_mem create_buffer(ocl_state *st, size_t bytes, const char *what, moak_status *status)
{
    cl_int err;
    cl_mem mem = clCreateBuffer(st->context, CL_MEM_READ_ONLY, bytes, NULL, &err);
    if (err != CL_SUCCESS) {
        *status = ocl_fail(st, err, "clCreateBuffer(%zu bytes of %s)", bytes, what);
        return NULL;
    }
    return mem;
}

/* Pack and upload every row, STAGING_BYTES at a time. */
static moak_status upload_rows(ocl_state *st, const moak_weight_desc *desc, ocl_weight *w)
{
    const size_t src_row = moak_format_local_row_bytes(desc->format, desc->cols);
    size_t q_row, s_row;
    packed_row_bytes(desc->format, w->kp, &q_row, &s_row);
    const int64_t n_rows = desc->n_experts * desc->rows;
    int64_t rows_per_chunk = (int64_t)(STAGING_BYTES / (q_row + s_row));
    if (rows_per_chunk < 1)
        rows_per_chunk = 1;
    if (rows_per_chunk > n_rows)
        rows_per_chunk = n_rows;
    unsigned char *quant = malloc((size_t)rows_per_chunk * q_row);
    unsigned char *scale = s_row ? malloc((size_t)rows_per_chunk * s_row) : NULL;
    if (!quant || (s_row && !scale)) {
        free(quant);
        free(scale);
        return ocl_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of host memory packing a weight");
    }
    moak_status status = MOAK_OK;
    for (int64_t r0 = 0; r0 < n_rows && status == MOAK_OK; r0 += rows_per_chunk) {
        const int64_t n = n_rows - r0 < rows_per_chunk ? n_rows - r0 : rows_per_chunk;
        const unsigned char *src = (const unsigned char *)desc->data + (size_t)r0 * src_row;
        for (int64_t r = 0; r < n; r++)
            pack_row(desc->format, src + (size_t)r * src_row, desc->cols, w->kp,
                     quant + (size_t)r * q_row, scale ? scale + (size_t)r * s_row : NULL);
        /* blocking: the staging is refilled right after */
        cl_int err = clEnqueueWriteBuffer(st->queue, w->quants, CL_TRUE, (size_t)r0 * q_row,
                                          (size_t)n * q_row, quant, 0, NULL, NULL);
        if (err == CL_SUCCESS && s_row)
            err = clEnqueueWriteBuffer(st->queue, w->scales, CL_TRUE, (size_t)r0 * s_row,
                                       (size_t)n * s_row, scale, 0, NULL, NULL);
        if (err != CL_SUCCESS)
            status = ocl_fail(st, err, "uploading a weight (clEnqueueWriteBuffer)");
    }
    free(quant);
    free(scale);
    return status;
}

void ocl_weight_free(void *state, void *packed)
{
    (void)state;
    ocl_weight *w = packed;
    if (!w)
        return;
    if (w->quants)
        clReleaseMemObject(w->quants);
    if (w->scales)
        clReleaseMemObject(w->scales);
    if (w->bias)
        clReleaseMemObject(w->bias);
    free(w);
}

moak_status ocl_weight_pack(void *state, const moak_weight_desc *desc, void **packed)
{
    ocl_state *st = state;
    size_t q_bytes, s_bytes;
    if (!ocl_weight_bytes(desc->format, desc->n_experts, desc->rows, desc->cols, &q_bytes, &s_bytes))
        return ocl_error(st, MOAK_ERR_SIZE_OVERFLOW, "the packed weight's size overflows");
    ocl_weight *w = calloc(1, sizeof(*w));
    if (!w)
        return ocl_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of host memory");
    w->format = desc->format;
    w->n_experts = desc->n_experts;
    w->rows = desc->rows;
    w->cols = desc->cols;
    w->kp = ocl_weight_padded_cols(desc->format, desc->cols);

    moak_status status = MOAK_OK;
    w->quants = create_buffer(st, q_bytes, "weight quants", &status);
    if (status == MOAK_OK && s_bytes)
        w->scales = create_buffer(st, s_bytes, "weight scales", &status);
    if (status == MOAK_OK && desc->bias) {
        const size_t bias_bytes = (size_t)(desc->n_experts * desc->rows) * sizeof(float);
        w->bias = create_buffer(st, bias_bytes, "weight bias", &status);
        if (status == MOAK_OK) {
            cl_int err = clEnqueueWriteBuffer(st->queue, w->bias, CL_TRUE, 0, bias_bytes,
                                              desc->bias, 0, NULL, NULL);
            if (err != CL_SUCCESS)
                status = ocl_fail(st, err, "uploading a bias (clEnqueueWriteBuffer)");
        }
    }
    if (status == MOAK_OK)
        status = upload_rows(st, desc, w);
    if (status != MOAK_OK) {
        ocl_weight_free(st, w);
        return status;
    }
    *packed = w;
    return MOAK_OK;
}
