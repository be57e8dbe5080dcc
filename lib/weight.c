/* Weights: validated, handed to the backend that will run them for packing. */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "formats_release.h"
#include "internal.h"

/* The first version of moak_weight_desc ended before `scales`. */
#define WEIGHT_DESC_V1_SIZE offsetof(moak_weight_desc, scales)

/* The caller's desc with the fields its struct_size lacks at their defaults. */
static void read_weight_desc(const moak_weight_desc *in, moak_weight_desc *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out, in, in->struct_size < sizeof(*out) ? in->struct_size : sizeof(*out));
    out->struct_size = sizeof(*out);
}

/* scales: required (and big enough) for the split-scale formats, NULL for the others. */
static moak_status check_weight_scales(moak_context *ctx, const moak_weight_desc *d)
{
    const char *name = moak_format_name(d->format);
    if (!moak_format_has_split_scales(d->format)) {
        if (d->scales)
            return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                              "desc->scales: must be NULL for %s, whose blocks carry their scales", name);
        return MOAK_OK;
    }
    if (!d->scales)
        return moak_error(ctx, MOAK_ERR_NULL_ARGUMENT,
                          "desc->scales: %s keeps its scales in a separate tensor, which is required "
                          "(set desc->scales and desc->scales_size)", name);
    size_t per_expert = moak_format_scales_bytes(d->format, d->rows, d->cols), total;
    if (!moak_mul_size(per_expert, (size_t)d->n_experts, &total))
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW, "desc->scales: n_experts x %zu bytes overflows size_t",
                          per_expert);
    if (d->scales_size < total)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "desc->scales_size: %zu bytes, but %lld experts x %zu bytes of %s scales for "
                          "%lld x %lld need %zu", d->scales_size, (long long)d->n_experts, per_expert, name,
                          (long long)d->rows, (long long)d->cols, total);
    return MOAK_OK;
}

static moak_status check_weight_desc(moak_context *ctx, const moak_weight_desc *d, size_t *total)
{
    if ((unsigned)d->format >= MOAK_FORMAT_COUNT)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->format: %d is not a moak_format", (int)d->format);
    if (d->n_experts < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->n_experts: %lld must be >= 1",
                          (long long)d->n_experts);
    if (d->rows < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->rows: %lld must be >= 1", (long long)d->rows);
    if (d->cols < 1)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT, "desc->cols: %lld must be >= 1", (long long)d->cols);
    MOAK_CHECK_NULL(ctx, d->data, "desc->data");
    int64_t block = moak_format_block_elems(d->format);
    if (moak_format_is_release(d->format) && d->cols % block != 0)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "desc->cols: %lld is not a multiple of %s's block of %lld (release formats are "
                          "not padded)", (long long)d->cols, moak_format_name(d->format), (long long)block);
    size_t row_bytes = moak_format_row_bytes(d->format, d->cols);
    int64_t dims[2] = {d->n_experts, d->rows};
    if (row_bytes == 0 || !moak_count_bytes(row_bytes, 2, dims, total))
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW,
                          "desc: n_experts*rows*row_bytes (%lld x %lld x %lld cols of %s) overflows size_t",
                          (long long)d->n_experts, (long long)d->rows, (long long)d->cols,
                          moak_format_name(d->format));
    size_t bias_bytes;
    if (d->bias && !moak_count_bytes(sizeof(float), 2, dims, &bias_bytes))
        return moak_error(ctx, MOAK_ERR_SIZE_OVERFLOW, "desc->bias: n_experts*rows floats overflow size_t");
    if (d->data_size < *total)
        return moak_error(ctx, MOAK_ERR_INVALID_ARGUMENT,
                          "desc->data_size: %zu bytes, but %lld experts x %lld rows x %zu bytes per %s row "
                          "need %zu", d->data_size, (long long)d->n_experts, (long long)d->rows, row_bytes,
                          moak_format_name(d->format), *total);
    return check_weight_scales(ctx, d);
}

/* The row-local form of a split-scale weight (moak_backend.h): every row
 * followed by the scales it uses.  NULL when out of memory. */
static uint8_t *row_local_copy(const moak_weight_desc *d, size_t *bytes)
{
    const size_t row_bytes = moak_format_row_bytes(d->format, d->cols);
    const size_t scale_bytes = moak_release_row_scale_bytes(d->format, d->cols);
    const size_t expert_scales = moak_format_scales_bytes(d->format, d->rows, d->cols);
    const size_t n_rows = (size_t)d->n_experts * (size_t)d->rows;
    size_t local_row;
    if (!moak_add_size(row_bytes, scale_bytes, &local_row) || !moak_mul_size(local_row, n_rows, bytes))
        return NULL;
    uint8_t *out = malloc(*bytes ? *bytes : 1);
    if (!out)
        return NULL;
    const uint8_t *data = d->data, *scales = d->scales;
    for (int64_t e = 0; e < d->n_experts; e++) {
        const uint8_t *expert_scale = scales + (size_t)e * expert_scales;
        for (int64_t r = 0; r < d->rows; r++) {
            const size_t i = (size_t)e * (size_t)d->rows + (size_t)r;
            memcpy(out + i * local_row, data + i * row_bytes, row_bytes);
            memcpy(out + i * local_row + row_bytes,
                   moak_release_row_scales(d->format, expert_scale, d->cols, r), scale_bytes);
        }
    }
    return out;
}

static moak_status create_locked(moak_context *ctx, const moak_weight_desc *in, moak_weight **out)
{
    MOAK_CHECK_NULL(ctx, in, "desc");
    MOAK_CHECK_NULL(ctx, out, "weight");
    moak_status st = moak_check_struct_size(ctx, in->struct_size, WEIGHT_DESC_V1_SIZE, "desc");
    if (st != MOAK_OK)
        return st;
    moak_weight_desc desc;
    read_weight_desc(in, &desc);
    size_t total;
    if ((st = check_weight_desc(ctx, &desc, &total)) != MOAK_OK)
        return st;

    moak_op_shape shape;
    memset(&shape, 0, sizeof(shape));
    shape.op = MOAK_OP_MATMUL;
    shape.format = desc.format;
    shape.n = desc.rows;
    shape.k = desc.cols;
    shape.n_experts = desc.n_experts;
    shape.features = desc.bias ? MOAK_FEATURE_BIAS : 0;
    int32_t slot;
    st = moak_dispatch(ctx, &shape, false, -1, &slot);
    if (st != MOAK_OK)
        return st;

    moak_weight *w = calloc(1, sizeof(*w));
    if (!w)
        return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "weight: out of memory");
    w->ctx = ctx;
    w->slot = slot;
    w->view.format = desc.format;
    w->view.n_experts = desc.n_experts;
    w->view.rows = desc.rows;
    w->view.cols = desc.cols;
    if (desc.bias) {
        size_t n = (size_t)desc.n_experts * (size_t)desc.rows;
        float *bias = moak_alloc(n * sizeof(float));
        if (!bias) {
            free(w);
            return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "desc->bias: out of memory copying %zu floats", n);
        }
        memcpy(bias, desc.bias, n * sizeof(float));
        w->view.bias = bias;
    }
    uint8_t *local = NULL;
    if (moak_format_has_split_scales(desc.format)) {
        size_t local_bytes;
        if (!(local = row_local_copy(&desc, &local_bytes))) {
            moak_free((void *)w->view.bias);
            free(w);
            return moak_error(ctx, MOAK_ERR_OUT_OF_MEMORY, "desc->scales: out of memory joining %s rows and "
                              "their scales", moak_format_name(desc.format));
        }
        desc.data = local;
        desc.data_size = local_bytes;
        desc.scales = NULL;
        desc.scales_size = 0;
    }
    const moak_backend_slot *s = &ctx->slots[slot];
    st = s->ops->weight_pack(s->state, &desc, &w->view.packed);
    free(local);
    if (st != MOAK_OK) {
        if (!ctx->last_error[0])
            moak_error(ctx, st, "desc: backend %s could not pack the weights", s->ops->name);
        moak_free((void *)w->view.bias);
        free(w);
        return st;
    }
    *out = w;
    return MOAK_OK;
}

MOAK_API moak_status moak_weight_create(moak_context *ctx, const moak_weight_desc *desc, moak_weight **weight)
{
    if (!ctx)
        return moak_error(NULL, MOAK_ERR_NULL_ARGUMENT, "ctx: must not be NULL");
    moak_context_lock(ctx);
    moak_status st = create_locked(ctx, desc, weight);
    moak_context_unlock(ctx);
    return st;
}

MOAK_API void moak_weight_destroy(moak_weight *w)
{
    if (!w)
        return;
    moak_context *ctx = w->ctx;
    /* Lock without clearing the context's last message: destroy is not an op. */
    pthread_mutex_lock(&ctx->lock);
    const moak_backend_slot *s = &ctx->slots[w->slot];
    if (s->ops->weight_free)
        s->ops->weight_free(s->state, w->view.packed);
    pthread_mutex_unlock(&ctx->lock);
    moak_free((void *)w->view.bias);
    free(w);
}

MOAK_API const char *moak_weight_backend(const moak_weight *w)
{
    return w ? w->ctx->slots[w->slot].ops->name : "";
}
