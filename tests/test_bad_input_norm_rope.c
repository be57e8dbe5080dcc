/* test_bad_input_norm_rope — moak_rmsnorm and moak_rope fed each class of bad
 * input: the right status, the argument named, nothing written. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "bad_input.h"

#define ROWS 3
#define DIM 128
#define HEADS 2

/* ---- moak_rmsnorm --------------------------------------------------------------------- */

typedef struct norm_fx {
    moak_context *ctx;
    moak_context *ctx_arg;
    const float *x_arg, *gamma_arg;
    int64_t n_rows, dim;
    float eps;
    float *y_arg;
    float buf[2 * ROWS * DIM];   /* x, then y */
    float gamma[DIM];
} norm_fx;

static void norm_reset(void *p)
{
    norm_fx *f = p;
    f->ctx_arg = f->ctx;
    f->x_arg = f->buf;
    f->gamma_arg = f->gamma;
    f->n_rows = ROWS;
    f->dim = DIM;
    f->eps = 1e-6f;
    f->y_arg = f->buf + ROWS * DIM;
}

static moak_status norm_call(void *p)
{
    norm_fx *f = p;
    return moak_rmsnorm(f->ctx_arg, f->x_arg, f->gamma_arg, f->n_rows, f->dim, f->eps, f->y_arg);
}

static int norm_outputs(void *p, t_span *s)
{
    norm_fx *f = p;
    s[0].p = f->y_arg;
    s[0].n = sizeof(float) * ROWS * DIM;
    return 1;
}

static const moak_context *norm_message_ctx(void *p) { return ((norm_fx *)p)->ctx_arg; }

/* y starts 5 floats into x: overlapping without being equal. */
static void norm_y_overlaps_x(void *p) { ((norm_fx *)p)->y_arg = ((norm_fx *)p)->buf + 5; }
/* gamma inside y. */
static void norm_gamma_in_y(void *p)
{
    norm_fx *f = p;
    f->gamma_arg = f->y_arg + 3;
}

#define FX norm_fx
static const t_bad_case norm_cases[] = {
    BAD_OK("valid (3 rows of 128, gamma)"),
    BAD_NULL("ctx NULL", ctx_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_NULL("x NULL", x_arg, MOAK_ERR_NULL_ARGUMENT, "x:"),
    BAD_NULL("y NULL", y_arg, MOAK_ERR_NULL_ARGUMENT, "y:"),
    BAD_I64("n_rows 0", n_rows, 0, MOAK_ERR_INVALID_ARGUMENT, "n_rows"),
    BAD_I64("n_rows -1", n_rows, -1, MOAK_ERR_INVALID_ARGUMENT, "n_rows"),
    BAD_I64("dim 0", dim, 0, MOAK_ERR_INVALID_ARGUMENT, "dim"),
    BAD_I64("dim -128", dim, -128, MOAK_ERR_INVALID_ARGUMENT, "dim"),
    BAD_F32("eps NaN", eps, NAN, MOAK_ERR_INVALID_ARGUMENT, "eps"),
    BAD_F32("eps -1e-6", eps, -1e-6, MOAK_ERR_INVALID_ARGUMENT, "eps"),
    BAD_F32("eps +inf", eps, INFINITY, MOAK_ERR_INVALID_ARGUMENT, "eps"),
    BAD_I64("n_rows: byte count overflows", n_rows, T_HUGE_I64, MOAK_ERR_SIZE_OVERFLOW, "n_rows"),
    BAD_FN("y overlaps x (not equal)", norm_y_overlaps_x, MOAK_ERR_INVALID_ARGUMENT, "y:"),
    BAD_FN("gamma inside y", norm_gamma_in_y, MOAK_ERR_INVALID_ARGUMENT, "gamma"),
};
#undef FX

/* ---- moak_rope ---------------------------------------------------------------------------- */

typedef struct rope_fx {
    moak_context *ctx;
    moak_context *ctx_arg;
    const moak_rope_desc *desc_arg;
    moak_rope_desc desc;
    const float *x_arg;
    int64_t n_tokens;
    int32_t n_heads;
    const int32_t *positions_arg;
    float *y_arg;
    int32_t positions[ROWS];
    float buf[2 * ROWS * HEADS * DIM];
} rope_fx;

static void rope_reset(void *p)
{
    rope_fx *f = p;
    f->ctx_arg = f->ctx;
    moak_rope_desc d = MOAK_ROPE_DESC_INIT;
    d.layout = MOAK_ROPE_NEOX;
    d.head_dim = DIM;
    d.rotary_dim = 64;
    d.theta_base = 5e6f;
    f->desc = d;
    f->desc_arg = &f->desc;
    f->x_arg = f->buf;
    f->n_tokens = ROWS;
    f->n_heads = HEADS;
    f->positions[0] = 0;
    f->positions[1] = 17;
    f->positions[2] = 4000;
    f->positions_arg = f->positions;
    f->y_arg = f->buf + ROWS * HEADS * DIM;
}

static moak_status rope_call(void *p)
{
    rope_fx *f = p;
    return moak_rope(f->ctx_arg, f->desc_arg, f->x_arg, f->n_tokens, f->n_heads, f->positions_arg,
                     f->y_arg);
}

static int rope_outputs(void *p, t_span *s)
{
    rope_fx *f = p;
    s[0].p = f->y_arg;
    s[0].n = sizeof(float) * ROWS * HEADS * DIM;
    return 1;
}

static const moak_context *rope_message_ctx(void *p) { return ((rope_fx *)p)->ctx_arg; }

static void rope_y_overlaps_x(void *p) { ((rope_fx *)p)->y_arg = ((rope_fx *)p)->buf + 64; }
static void position_negative(void *p) { ((rope_fx *)p)->positions[2] = -5; }
/* A valid DeepSeek-V3 YaRN (factor 40 over 4096) and Llama-3.1 rule, each
 * then broken in one field. */
static void yarn(rope_fx *f)
{
    f->desc.scaling = MOAK_ROPE_SCALING_YARN;
    f->desc.scaling_factor = 40.0f;
    f->desc.original_max_position = 4096;
    f->desc.beta_fast = 32.0f;
    f->desc.beta_slow = 1.0f;
}
static void llama3(rope_fx *f)
{
    f->desc.scaling = MOAK_ROPE_SCALING_LLAMA3;
    f->desc.scaling_factor = 8.0f;
    f->desc.original_max_position = 8192;
    f->desc.low_freq_factor = 1.0f;
    f->desc.high_freq_factor = 4.0f;
}
static void yarn_factor_below_1(void *p) { yarn(p); ((rope_fx *)p)->desc.scaling_factor = 0.5f; }
static void yarn_factor_nan(void *p) { yarn(p); ((rope_fx *)p)->desc.scaling_factor = NAN; }
static void yarn_no_original(void *p) { yarn(p); ((rope_fx *)p)->desc.original_max_position = 0; }
static void yarn_betas_swapped(void *p) { yarn(p); ((rope_fx *)p)->desc.beta_slow = 40.0f; }
static void yarn_beta_fast_inf(void *p) { yarn(p); ((rope_fx *)p)->desc.beta_fast = INFINITY; }
static void yarn_attention_negative(void *p) { yarn(p); ((rope_fx *)p)->desc.attention_factor = -1.0f; }
static void yarn_mscale_nan(void *p) { yarn(p); ((rope_fx *)p)->desc.mscale_all_dim = NAN; }
static void yarn_exact_range_2(void *p) { yarn(p); ((rope_fx *)p)->desc.yarn_exact_range = 2; }
static void yarn_with_llama3_field(void *p) { yarn(p); ((rope_fx *)p)->desc.high_freq_factor = 4.0f; }
static void llama3_high_not_above_low(void *p) { llama3(p); ((rope_fx *)p)->desc.high_freq_factor = 1.0f; }
static void llama3_with_yarn_field(void *p) { llama3(p); ((rope_fx *)p)->desc.beta_fast = 32.0f; }
static void llama3_exact_range(void *p) { llama3(p); ((rope_fx *)p)->desc.yarn_exact_range = 1; }
static void none_with_factor(void *p) { ((rope_fx *)p)->desc.scaling_factor = 4.0f; }
static void none_with_original(void *p) { ((rope_fx *)p)->desc.original_max_position = 4096; }

#define FX rope_fx
static const t_bad_case rope_cases[] = {
    BAD_OK("valid (neox, rotary 64 of 128)"),
    BAD_NULL("ctx NULL", ctx_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_NULL("desc NULL", desc_arg, MOAK_ERR_NULL_ARGUMENT, "desc"),
    BAD_SIZE("struct_size 0", desc.struct_size, 0, MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_SIZE("struct_size one short", desc.struct_size, sizeof(moak_rope_desc) - 1,
             MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_SIZE("struct_size between the first version and the whole",
             desc.struct_size, offsetof(moak_rope_desc, scaling) + sizeof(int32_t), MOAK_ERR_STRUCT_SIZE,
             "struct_size"),
    BAD_I32("scaling 3", desc.scaling, 3, MOAK_ERR_INVALID_ARGUMENT, "scaling"),
    BAD_FN("yarn factor 0.5", yarn_factor_below_1, MOAK_ERR_INVALID_ARGUMENT, "scaling_factor"),
    BAD_FN("yarn factor NaN", yarn_factor_nan, MOAK_ERR_INVALID_ARGUMENT, "scaling_factor"),
    BAD_FN("yarn original_max_position 0", yarn_no_original, MOAK_ERR_INVALID_ARGUMENT,
           "original_max_position"),
    BAD_FN("yarn beta_slow 40 > beta_fast 32", yarn_betas_swapped, MOAK_ERR_INVALID_ARGUMENT, "beta_slow"),
    BAD_FN("yarn beta_fast inf", yarn_beta_fast_inf, MOAK_ERR_INVALID_ARGUMENT, "beta_fast"),
    BAD_FN("yarn attention_factor -1", yarn_attention_negative, MOAK_ERR_INVALID_ARGUMENT,
           "attention_factor"),
    BAD_FN("yarn mscale_all_dim NaN", yarn_mscale_nan, MOAK_ERR_INVALID_ARGUMENT, "mscale_all_dim"),
    BAD_FN("yarn_exact_range 2", yarn_exact_range_2, MOAK_ERR_INVALID_ARGUMENT, "yarn_exact_range"),
    BAD_FN("yarn with high_freq_factor set", yarn_with_llama3_field, MOAK_ERR_INVALID_ARGUMENT,
           "high_freq_factor"),
    BAD_FN("llama3 high_freq_factor 1 <= low 1", llama3_high_not_above_low, MOAK_ERR_INVALID_ARGUMENT,
           "high_freq_factor"),
    BAD_FN("llama3 with beta_fast set", llama3_with_yarn_field, MOAK_ERR_INVALID_ARGUMENT, "beta_fast"),
    BAD_FN("llama3 with yarn_exact_range set", llama3_exact_range, MOAK_ERR_INVALID_ARGUMENT,
           "yarn_exact_range"),
    BAD_FN("no scaling but scaling_factor 4", none_with_factor, MOAK_ERR_INVALID_ARGUMENT, "scaling_factor"),
    BAD_FN("no scaling but original_max_position 4096", none_with_original, MOAK_ERR_INVALID_ARGUMENT,
           "original_max_position"),
    BAD_I32("layout 2", desc.layout, 2, MOAK_ERR_INVALID_ARGUMENT, "layout"),
    BAD_I32("layout -1", desc.layout, -1, MOAK_ERR_INVALID_ARGUMENT, "layout"),
    BAD_I32("head_dim 0", desc.head_dim, 0, MOAK_ERR_INVALID_ARGUMENT, "head_dim"),
    BAD_I32("head_dim -128", desc.head_dim, -128, MOAK_ERR_INVALID_ARGUMENT, "head_dim"),
    BAD_I32("rotary_dim odd (63)", desc.rotary_dim, 63, MOAK_ERR_INVALID_ARGUMENT, "rotary_dim"),
    BAD_I32("rotary_dim 130 > head_dim", desc.rotary_dim, 130, MOAK_ERR_INVALID_ARGUMENT,
            "rotary_dim"),
    BAD_I32("rotary_dim -64", desc.rotary_dim, -64, MOAK_ERR_INVALID_ARGUMENT, "rotary_dim"),
    BAD_F32("theta_base NaN", desc.theta_base, NAN, MOAK_ERR_INVALID_ARGUMENT, "theta_base"),
    BAD_F32("theta_base -10000", desc.theta_base, -10000.0, MOAK_ERR_INVALID_ARGUMENT,
            "theta_base"),
    BAD_F32("position_scale NaN", desc.position_scale, NAN, MOAK_ERR_INVALID_ARGUMENT,
            "position_scale"),
    BAD_F32("position_scale -1", desc.position_scale, -1.0, MOAK_ERR_INVALID_ARGUMENT,
            "position_scale"),
    BAD_NULL("x NULL", x_arg, MOAK_ERR_NULL_ARGUMENT, "x:"),
    BAD_NULL("positions NULL", positions_arg, MOAK_ERR_NULL_ARGUMENT, "positions"),
    BAD_NULL("y NULL", y_arg, MOAK_ERR_NULL_ARGUMENT, "y:"),
    BAD_I64("n_tokens 0", n_tokens, 0, MOAK_ERR_INVALID_ARGUMENT, "n_tokens"),
    BAD_I64("n_tokens -3", n_tokens, -3, MOAK_ERR_INVALID_ARGUMENT, "n_tokens"),
    BAD_I32("n_heads 0", n_heads, 0, MOAK_ERR_INVALID_ARGUMENT, "n_heads"),
    BAD_I32("n_heads -2", n_heads, -2, MOAK_ERR_INVALID_ARGUMENT, "n_heads"),
    BAD_I64("n_tokens: byte count overflows", n_tokens, T_HUGE_I64, MOAK_ERR_SIZE_OVERFLOW,
            "n_tokens"),
    BAD_FN("positions[2] -5", position_negative, MOAK_ERR_INVALID_ARGUMENT, "positions"),
    BAD_FN("y overlaps x (not equal)", rope_y_overlaps_x, MOAK_ERR_INVALID_ARGUMENT, "y:"),
};
#undef FX

int main(void)
{
    t_init("test_bad_input_norm_rope");
    t_backend bk[T_MAX_BACKENDS];
    int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 1);
    for (int b = 0; b < n_bk; b++) {
        static norm_fx nf;
        nf.ctx = bk[b].ctx;
        t_fill_normal(nf.buf, 2 * ROWS * DIM, 1.0);
        t_fill_normal(nf.gamma, DIM, 1.0);
        const t_bad_ops nops = {"moak_rmsnorm", norm_reset, norm_call, norm_outputs,
                                norm_message_ctx, NULL};
        t_bad_run(bk[b].name, &nops, &nf, norm_cases, BAD_COUNT(norm_cases));

        static rope_fx rf;
        rf.ctx = bk[b].ctx;
        t_fill_normal(rf.buf, 2 * ROWS * HEADS * DIM, 1.0);
        const t_bad_ops rops = {"moak_rope", rope_reset, rope_call, rope_outputs, rope_message_ctx,
                                NULL};
        t_bad_run(bk[b].name, &rops, &rf, rope_cases, BAD_COUNT(rope_cases));
    }
    t_close_backends(bk, n_bk);
    return t_finish();
}
