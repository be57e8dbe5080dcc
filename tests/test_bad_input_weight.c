/* test_bad_input_weight — moak_weight_create and moak_matmul fed each class of
 * bad input: the right status, the argument named, nothing written. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "bad_input.h"

/* ---- moak_weight_create ------------------------------------------------------------- */

typedef struct weight_fx {
    moak_context *ctx;            /* the context of this run */
    moak_context *ctx_arg;
    const moak_weight_desc *desc_arg;
    moak_weight_desc desc;
    moak_weight **out_arg;
    moak_weight *out;
    uint8_t *data;
    size_t data_size;
    float bias[2 * 16];
    /* a valid FP8_E4M3_B128 weight of 2 experts x 16 x 128 (zero codes, scales 1) */
    uint8_t fp8_data[2 * 16 * 128];
    float fp8_scales[2];
} weight_fx;

/* The split-scale rules, on FP8_E4M3_B128 (scales apart) and MXFP4/Q4_0 (in the blocks). */
static void use_fp8(void *p)
{
    weight_fx *f = p;
    f->fp8_scales[0] = f->fp8_scales[1] = 1.0f;
    f->desc.format = MOAK_FORMAT_FP8_E4M3_B128;
    f->desc.cols = 128;
    f->desc.data = f->fp8_data;
    f->desc.data_size = sizeof f->fp8_data;
    f->desc.scales = f->fp8_scales;
    f->desc.scales_size = sizeof f->fp8_scales;
}

static void fp8_without_scales(void *p)
{
    use_fp8(p);
    ((weight_fx *)p)->desc.scales = NULL;
}

static void fp8_scales_short(void *p)
{
    use_fp8(p);
    ((weight_fx *)p)->desc.scales_size = sizeof(float) * 2 - 1;
}

static void fp8_cols_not_multiple(void *p)
{
    use_fp8(p);
    ((weight_fx *)p)->desc.cols = 100;
}

static void q4_0_with_scales(void *p)
{
    weight_fx *f = p;
    f->desc.scales = f->fp8_scales;
    f->desc.scales_size = sizeof f->fp8_scales;
}

static void mxfp4_with_scales(void *p)
{
    use_fp8(p); /* zero bytes are valid MXFP4 blocks too (2 x 16 rows of 4 x 17 bytes) */
    ((weight_fx *)p)->desc.format = MOAK_FORMAT_MXFP4;
}

static void weight_reset(void *p)
{
    weight_fx *f = p;
    f->ctx_arg = f->ctx;
    f->desc_arg = &f->desc;
    moak_weight_desc d = MOAK_WEIGHT_DESC_INIT;
    d.format = MOAK_FORMAT_Q4_0;
    d.n_experts = 2;
    d.rows = 16;
    d.cols = 100;
    d.data = f->data;
    d.data_size = f->data_size;
    d.bias = f->bias;
    f->desc = d;
    f->out_arg = &f->out;
}

static moak_status weight_call(void *p)
{
    weight_fx *f = p;
    moak_status st = moak_weight_create(f->ctx_arg, f->desc_arg, f->out_arg);
    if (st == MOAK_OK)
        moak_weight_destroy(f->out);
    return st;
}

static int weight_outputs(void *p, t_span *s)
{
    weight_fx *f = p;
    s[0].p = f->out_arg;
    s[0].n = sizeof(moak_weight *);
    return 1;
}

static const moak_context *weight_message_ctx(void *p) { return ((weight_fx *)p)->ctx_arg; }

#define FX weight_fx
static const t_bad_case weight_cases[] = {
    BAD_OK("valid (2 experts, Q4_0, bias)"),
    BAD_NULL("ctx NULL", ctx_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_NULL("desc NULL", desc_arg, MOAK_ERR_NULL_ARGUMENT, "desc"),
    BAD_NULL("weight NULL", out_arg, MOAK_ERR_NULL_ARGUMENT, "weight"),
    BAD_SIZE("struct_size 0", desc.struct_size, 0, MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_SIZE("struct_size one short of the first version", desc.struct_size,
             offsetof(moak_weight_desc, scales) - 1, MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_FN("valid FP8_E4M3_B128 with its scales", use_fp8, MOAK_OK, NULL),
    BAD_FN("FP8_E4M3_B128 without scales", fp8_without_scales, MOAK_ERR_NULL_ARGUMENT, "scales"),
    BAD_FN("FP8_E4M3_B128 scales_size one byte short", fp8_scales_short, MOAK_ERR_INVALID_ARGUMENT,
           "scales_size"),
    BAD_FN("FP8_E4M3_B128 cols 100 (not a multiple of 128)", fp8_cols_not_multiple, MOAK_ERR_INVALID_ARGUMENT,
           "cols"),
    BAD_FN("Q4_0 given scales", q4_0_with_scales, MOAK_ERR_INVALID_ARGUMENT, "scales"),
    BAD_FN("MXFP4 (GGUF blocks) given scales", mxfp4_with_scales, MOAK_ERR_INVALID_ARGUMENT, "scales"),
    BAD_I32("format 99", desc.format, 99, MOAK_ERR_INVALID_ARGUMENT, "format"),
    BAD_I32("format -1", desc.format, -1, MOAK_ERR_INVALID_ARGUMENT, "format"),
    BAD_I32("format MOAK_FORMAT_COUNT", desc.format, MOAK_FORMAT_COUNT, MOAK_ERR_INVALID_ARGUMENT,
            "format"),
    BAD_I64("n_experts 0", desc.n_experts, 0, MOAK_ERR_INVALID_ARGUMENT, "n_experts"),
    BAD_I64("n_experts -1", desc.n_experts, -1, MOAK_ERR_INVALID_ARGUMENT, "n_experts"),
    BAD_I64("rows 0", desc.rows, 0, MOAK_ERR_INVALID_ARGUMENT, "rows"),
    BAD_I64("rows -5", desc.rows, -5, MOAK_ERR_INVALID_ARGUMENT, "rows"),
    BAD_I64("cols 0", desc.cols, 0, MOAK_ERR_INVALID_ARGUMENT, "cols"),
    BAD_I64("cols -100", desc.cols, -100, MOAK_ERR_INVALID_ARGUMENT, "cols"),
    BAD_NULL("data NULL", desc.data, MOAK_ERR_NULL_ARGUMENT, "data"),
    BAD_SIZE("data_size 0", desc.data_size, 0, MOAK_ERR_INVALID_ARGUMENT, "data_size"),
    BAD_SIZE("data_size one byte short", desc.data_size, 2 * 16 * 72 - 1, MOAK_ERR_INVALID_ARGUMENT,
             "data_size"),
    BAD_I64("rows: byte count overflows", desc.rows, T_HUGE_I64, MOAK_ERR_SIZE_OVERFLOW, "rows"),
    BAD_I64("n_experts: byte count overflows", desc.n_experts, T_HUGE_I64, MOAK_ERR_SIZE_OVERFLOW,
            "n_experts"),
    BAD_I64("cols: row bytes overflow", desc.cols, INT64_MAX, MOAK_ERR_SIZE_OVERFLOW, "cols"),
};
#undef FX

/* ---- moak_matmul ------------------------------------------------------------------- */

#define MM_M 4
#define MM_ROWS 16
#define MM_COLS 64

typedef struct matmul_fx {
    moak_context *ctx, *other_ctx;
    moak_weight *w1, *w2, *w_other;   /* one expert; two experts; one from other_ctx */
    moak_context *ctx_arg;
    const moak_weight *w_arg;
    const float *x_arg;
    float *y_arg;
    int64_t m;
    float x[MM_M * MM_COLS];
    float y[MM_M * MM_ROWS];
} matmul_fx;

static void matmul_reset(void *p)
{
    matmul_fx *f = p;
    f->ctx_arg = f->ctx;
    f->w_arg = f->w1;
    f->x_arg = f->x;
    f->y_arg = f->y;
    f->m = MM_M;
}

static moak_status matmul_call(void *p)
{
    matmul_fx *f = p;
    return moak_matmul(f->ctx_arg, f->w_arg, f->x_arg, f->m, f->y_arg);
}

static int matmul_outputs(void *p, t_span *s)
{
    matmul_fx *f = p;
    s[0].p = f->y_arg;
    s[0].n = sizeof(float) * MM_M * MM_ROWS;
    return 1;
}

static const moak_context *matmul_message_ctx(void *p) { return ((matmul_fx *)p)->ctx_arg; }

static void use_two_expert_weight(void *p) { ((matmul_fx *)p)->w_arg = ((matmul_fx *)p)->w2; }
static void use_other_context_weight(void *p) { ((matmul_fx *)p)->w_arg = ((matmul_fx *)p)->w_other; }
/* y starts one float into x: overlapping, not equal. */
static void overlap_y_with_x(void *p) { ((matmul_fx *)p)->y_arg = ((matmul_fx *)p)->x + 1; }

#define FX matmul_fx
static const t_bad_case matmul_cases[] = {
    BAD_OK("valid (m 4)"),
    BAD_NULL("ctx NULL", ctx_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_NULL("w NULL", w_arg, MOAK_ERR_NULL_ARGUMENT, "w:"),
    BAD_NULL("x NULL", x_arg, MOAK_ERR_NULL_ARGUMENT, "x:"),
    BAD_NULL("y NULL", y_arg, MOAK_ERR_NULL_ARGUMENT, "y:"),
    BAD_I64("m 0", m, 0, MOAK_ERR_INVALID_ARGUMENT, "m:"),
    BAD_I64("m -1", m, -1, MOAK_ERR_INVALID_ARGUMENT, "m:"),
    BAD_I64("m: byte count overflows", m, T_HUGE_I64, MOAK_ERR_SIZE_OVERFLOW, "m:"),
    BAD_FN("w holds 2 experts", use_two_expert_weight, MOAK_ERR_SHAPE_MISMATCH, "w:"),
    BAD_FN("w from another context", use_other_context_weight, MOAK_ERR_INVALID_ARGUMENT, "w:"),
    BAD_FN("y overlaps x", overlap_y_with_x, MOAK_ERR_INVALID_ARGUMENT, "y:"),
};
#undef FX

static moak_weight *make_weight(moak_context *ctx, int64_t n_experts, const uint8_t *data, size_t size)
{
    moak_weight_desc d = MOAK_WEIGHT_DESC_INIT;
    d.format = MOAK_FORMAT_Q8_0;
    d.n_experts = n_experts;
    d.rows = MM_ROWS;
    d.cols = MM_COLS;
    d.data = data;
    d.data_size = size;
    moak_weight *w = NULL;
    t_ok(moak_weight_create(ctx, &d, &w), ctx, "matmul fixture weight");
    return w;
}

int main(void)
{
    t_init("test_bad_input_weight");
    t_backend bk[T_MAX_BACKENDS];
    int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 1);
    moak_context *other = t_context("ref", 1);

    size_t bytes;
    uint8_t *wdata = t_random_weights(MOAK_FORMAT_Q4_0, 2 * 16, 100, 0.1, &bytes, NULL);
    uint8_t *mdata = t_random_weights(MOAK_FORMAT_Q8_0, 2 * MM_ROWS, MM_COLS, 0.1, &bytes, NULL);
    size_t one_expert = bytes / 2;
    for (int b = 0; b < n_bk; b++) {
        static weight_fx wf;
        wf.ctx = bk[b].ctx;
        wf.data = wdata;
        wf.data_size = 2 * 16 * t_row_bytes(MOAK_FORMAT_Q4_0, 100);
        t_fill_normal(wf.bias, 2 * 16, 1.0);
        const t_bad_ops wops = {"moak_weight_create", weight_reset, weight_call, weight_outputs,
                                weight_message_ctx, NULL};
        t_bad_run(bk[b].name, &wops, &wf, weight_cases, BAD_COUNT(weight_cases));

        static matmul_fx mf;
        mf.ctx = bk[b].ctx;
        mf.other_ctx = other;
        mf.w1 = make_weight(bk[b].ctx, 1, mdata, one_expert);
        mf.w2 = make_weight(bk[b].ctx, 2, mdata, bytes);
        mf.w_other = make_weight(other, 1, mdata, one_expert);
        t_fill_normal(mf.x, MM_M * MM_COLS, 1.0);
        const t_bad_ops mops = {"moak_matmul", matmul_reset, matmul_call, matmul_outputs,
                                matmul_message_ctx, NULL};
        t_bad_run(bk[b].name, &mops, &mf, matmul_cases, BAD_COUNT(matmul_cases));
        moak_weight_destroy(mf.w1);
        moak_weight_destroy(mf.w2);
        moak_weight_destroy(mf.w_other);
    }
    free(wdata);
    free(mdata);
    moak_context_destroy(other);
    t_close_backends(bk, n_bk);
    return t_finish();
}
