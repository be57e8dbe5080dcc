/* Weights: validated, handed to the backend that will run them for packing. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

static moak_status check_weight_desc(moak_context *ctx, const moak_weight_desc *d, size_t *total)
{
    moak_status st = moak_check_struct_size(ctx, d->struct_size, sizeof(moak_weight_desc), "desc");
    if (st != MOAK_OK)
        return st;
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
    return MOAK_OK;
}

static moak_status create_locked(moak_context *ctx, const moak_weight_desc *in, moak_weight **out)
{
    MOAK_CHECK_NULL(ctx, in, "desc");
    MOAK_CHECK_NULL(ctx, out, "weight");
    size_t total;
    moak_status st = check_weight_desc(ctx, in, &total);
    if (st != MOAK_OK)
        return st;
    moak_weight_desc desc = *in;
    desc.struct_size = sizeof(desc);

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
    const moak_backend_slot *s = &ctx->slots[slot];
    st = s->ops->weight_pack(s->state, &desc, &w->view.packed);
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
