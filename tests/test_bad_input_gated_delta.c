/* test_bad_input_gated_delta — moak_linear_state_create and
 * moak_gated_delta_rule fed each class of bad input: the right status, the
 * argument named, nothing written (the output stays poisoned and the stored
 * state of every sequence stays bitwise the same). */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bad_input.h"

/* Qwen3-Next's head sharing scaled down: 2 q/k heads, 4 v heads of 32. */
#define HK 2
#define HV 4
#define DK 32
#define DV 32
#define KERNEL 4
#define CH (2 * HK * DK + HV * DV)
#define MAX_SEQS 3
#define TOKENS 5

/* ---- moak_linear_state_create ------------------------------------------------------------ */

typedef struct create_fx {
    moak_context *ctx;
    moak_context *ctx_arg;
    const moak_linear_state_desc *desc_arg;
    moak_linear_state_desc desc;
    moak_linear_state **out_arg;
    moak_linear_state *out;
} create_fx;

static void create_reset(void *p)
{
    create_fx *f = p;
    f->ctx_arg = f->ctx;
    moak_linear_state_desc d = MOAK_LINEAR_STATE_DESC_INIT;
    d.n_qk_heads = HK;
    d.n_v_heads = HV;
    d.head_dim_k = DK;
    d.head_dim_v = DV;
    d.max_seqs = MAX_SEQS;
    f->desc = d;
    f->desc_arg = &f->desc;
    f->out_arg = &f->out;
}

static moak_status create_call(void *p)
{
    create_fx *f = p;
    moak_status st = moak_linear_state_create(f->ctx_arg, f->desc_arg, f->out_arg);
    if (st == MOAK_OK)
        moak_linear_state_destroy(f->out);
    return st;
}

static int create_outputs(void *p, t_span *s)
{
    create_fx *f = p;
    s[0].p = f->out_arg;
    s[0].n = sizeof(moak_linear_state *);
    return 1;
}

static const moak_context *create_message_ctx(void *p) { return ((create_fx *)p)->ctx_arg; }

static void state_too_big(void *p)
{
    create_fx *f = p;
    f->desc.max_seqs = INT32_MAX;
    f->desc.head_dim_k = f->desc.head_dim_v = 1 << 30;
}

#define FX create_fx
static const t_bad_case create_cases[] = {
    BAD_OK("valid (2 q/k heads, 4 v heads of 32)"),
    BAD_NULL("ctx NULL", ctx_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_NULL("desc NULL", desc_arg, MOAK_ERR_NULL_ARGUMENT, "desc"),
    BAD_NULL("state NULL", out_arg, MOAK_ERR_NULL_ARGUMENT, "state"),
    BAD_SIZE("struct_size 0", desc.struct_size, 0, MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_I32("n_qk_heads 0", desc.n_qk_heads, 0, MOAK_ERR_INVALID_ARGUMENT, "n_qk_heads"),
    BAD_I32("n_v_heads -4", desc.n_v_heads, -4, MOAK_ERR_INVALID_ARGUMENT, "n_v_heads"),
    BAD_I32("n_v_heads 3 (not a multiple of 2 q/k heads)", desc.n_v_heads, 3, MOAK_ERR_SHAPE_MISMATCH,
            "n_v_heads"),
    BAD_I32("head_dim_k 0", desc.head_dim_k, 0, MOAK_ERR_INVALID_ARGUMENT, "head_dim_k"),
    BAD_I32("head_dim_v -1", desc.head_dim_v, -1, MOAK_ERR_INVALID_ARGUMENT, "head_dim_v"),
    BAD_I32("conv_kernel -1", desc.conv_kernel, -1, MOAK_ERR_INVALID_ARGUMENT, "conv_kernel"),
    BAD_I32("conv_kernel 17", desc.conv_kernel, 17, MOAK_ERR_INVALID_ARGUMENT, "conv_kernel"),
    BAD_I32("max_seqs 0", desc.max_seqs, 0, MOAK_ERR_INVALID_ARGUMENT, "max_seqs"),
    BAD_FN("byte count overflows size_t", state_too_big, MOAK_ERR_SIZE_OVERFLOW, "max_seqs"),
};
#undef FX

/* ---- moak_gated_delta_rule ------------------------------------------------------------------ */

typedef struct op_fx {
    moak_context *ctx;
    moak_linear_state *state;       /* sequences 0 and 2 hold a state */
    moak_linear_state *other_shape; /* HV 2 instead of 4 */
    moak_linear_state *other_ctx;
    moak_context *ctx_arg;
    const moak_gated_delta_desc *desc_arg;
    moak_gated_delta_desc desc;
    moak_linear_state *state_arg;
    const int32_t *ids_arg, *lens_arg;
    int32_t ids[2], lens[2];
    int32_t n_seqs;
    const float *qkv_arg, *w_arg, *g_arg, *beta_arg;
    float *out_arg;
    float qkv[TOKENS * CH], w[CH * KERNEL], g[TOKENS * HV * DK], beta[TOKENS * HV];
    float out[TOKENS * HV * DV];
} op_fx;

static void op_reset(void *p)
{
    op_fx *f = p;
    f->ctx_arg = f->ctx;
    moak_gated_delta_desc d = MOAK_GATED_DELTA_DESC_INIT;
    d.n_qk_heads = HK;
    d.n_v_heads = HV;
    d.head_dim_k = DK;
    d.head_dim_v = DV;
    f->desc = d;
    f->desc_arg = &f->desc;
    f->state_arg = f->state;
    f->ids[0] = 2;
    f->ids[1] = 0;
    f->lens[0] = 1;
    f->lens[1] = TOKENS - 1;
    f->ids_arg = f->ids;
    f->lens_arg = f->lens;
    f->n_seqs = 2;
    t_fill_normal(f->qkv, TOKENS * CH, 1.0);
    t_fill_normal(f->w, CH * KERNEL, 0.5);
    t_fill_uniform(f->g, TOKENS * HV * DK, -1.0, -0.01);
    t_fill_uniform(f->beta, TOKENS * HV, 0.1, 1.0);
    f->qkv_arg = f->qkv;
    f->w_arg = f->w;
    f->g_arg = f->g;
    f->beta_arg = f->beta;
    f->out_arg = f->out;
}

static moak_status op_call(void *p)
{
    op_fx *f = p;
    return moak_gated_delta_rule(f->ctx_arg, f->desc_arg, f->state_arg, f->ids_arg, f->lens_arg, f->n_seqs,
                                 f->qkv_arg, f->w_arg, f->g_arg, f->beta_arg, f->out_arg);
}

static int op_outputs(void *p, t_span *s)
{
    op_fx *f = p;
    s[0].p = f->out_arg;
    s[0].n = sizeof(f->out);
    return 1;
}

static const moak_context *op_message_ctx(void *p) { return ((op_fx *)p)->ctx_arg; }

/* The stored state of every sequence (bitwise). */
static size_t op_snapshot(void *p, void *buf, size_t cap)
{
    op_fx *f = p;
    const size_t per = (size_t)HV * DK * DV, conv = (size_t)(KERNEL - 1) * CH;
    size_t used = 0;
    for (int32_t s = 0; s < MAX_SEQS && used + (per + conv) * sizeof(float) <= cap; s++) {
        float *dst = (float *)((unsigned char *)buf + used);
        t_ok(moak_linear_state_read(f->state, s, dst, dst + per), f->ctx, "state read");
        used += (per + conv) * sizeof(float);
    }
    return used;
}

static void wrong_shape_state(void *p) { ((op_fx *)p)->state_arg = ((op_fx *)p)->other_shape; }
static void other_ctx_state(void *p) { ((op_fx *)p)->state_arg = ((op_fx *)p)->other_ctx; }
static void ids_repeated(void *p) { ((op_fx *)p)->ids[1] = 2; }
static void id_out_of_range(void *p) { ((op_fx *)p)->ids[1] = MAX_SEQS; }
static void len_negative(void *p) { ((op_fx *)p)->lens[0] = -1; }
static void g_positive(void *p) { ((op_fx *)p)->g[3] = 0.25f; }
static void g_nan(void *p) { ((op_fx *)p)->g[TOKENS * HV - 1] = NAN; }
static void beta_inf(void *p) { ((op_fx *)p)->beta[2] = INFINITY; }
static void out_over_qkv(void *p) { ((op_fx *)p)->out_arg = ((op_fx *)p)->qkv + 8; }
static void out_over_g(void *p) { ((op_fx *)p)->out_arg = ((op_fx *)p)->g; }
/* per-key gates read TOKENS * HV * DK values: one of the later ones positive */
static void per_key_g_positive(void *p)
{
    op_fx *f = p;
    f->desc.gate = MOAK_GATE_PER_KEY;
    f->g[TOKENS * HV * DK - 1] = 1e-3f;
}

#define FX op_fx
static const t_bad_case op_cases[] = {
    BAD_OK("valid (2 sequences, 5 tokens)"),
    BAD_NULL("ctx NULL", ctx_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_NULL("desc NULL", desc_arg, MOAK_ERR_NULL_ARGUMENT, "desc"),
    BAD_NULL("state NULL", state_arg, MOAK_ERR_NULL_ARGUMENT, "state"),
    BAD_NULL("seq_ids NULL", ids_arg, MOAK_ERR_NULL_ARGUMENT, "seq_ids"),
    BAD_NULL("q_lens NULL", lens_arg, MOAK_ERR_NULL_ARGUMENT, "q_lens"),
    BAD_NULL("qkv NULL", qkv_arg, MOAK_ERR_NULL_ARGUMENT, "qkv"),
    BAD_NULL("conv_w NULL", w_arg, MOAK_ERR_NULL_ARGUMENT, "conv_w"),
    BAD_NULL("g NULL", g_arg, MOAK_ERR_NULL_ARGUMENT, "g"),
    BAD_NULL("beta NULL", beta_arg, MOAK_ERR_NULL_ARGUMENT, "beta"),
    BAD_NULL("out NULL", out_arg, MOAK_ERR_NULL_ARGUMENT, "out"),
    BAD_SIZE("struct_size 0", desc.struct_size, 0, MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_FN("state of another shape (2 v heads)", wrong_shape_state, MOAK_ERR_SHAPE_MISMATCH, "state"),
    BAD_FN("state of another context", other_ctx_state, MOAK_ERR_INVALID_ARGUMENT, "state"),
    BAD_I32("desc n_v_heads 3: not a multiple of 2 q/k heads", desc.n_v_heads, 3, MOAK_ERR_SHAPE_MISMATCH,
            "n_qk_heads"),
    BAD_I32("desc n_qk_heads 4 (state has 2)", desc.n_qk_heads, 4, MOAK_ERR_SHAPE_MISMATCH, "state"),
    BAD_I32("desc head_dim_k 64 (state has 32)", desc.head_dim_k, 64, MOAK_ERR_SHAPE_MISMATCH, "state"),
    BAD_I32("desc conv_kernel 3 (state has 4)", desc.conv_kernel, 3, MOAK_ERR_SHAPE_MISMATCH, "state"),
    BAD_I32("gate 2", desc.gate, 2, MOAK_ERR_INVALID_ARGUMENT, "gate"),
    BAD_F32("scale -1", desc.scale, -1.0, MOAK_ERR_INVALID_ARGUMENT, "scale"),
    BAD_F32("scale NaN", desc.scale, NAN, MOAK_ERR_INVALID_ARGUMENT, "scale"),
    BAD_I32("n_seqs 0", n_seqs, 0, MOAK_ERR_INVALID_ARGUMENT, "n_seqs"),
    BAD_FN("seq_ids repeated", ids_repeated, MOAK_ERR_INVALID_ARGUMENT, "seq_ids[1]"),
    BAD_FN("seq_ids[1] = max_seqs", id_out_of_range, MOAK_ERR_OUT_OF_RANGE, "seq_ids[1]"),
    BAD_FN("q_lens[0] -1", len_negative, MOAK_ERR_INVALID_ARGUMENT, "q_lens[0]"),
    BAD_FN("g > 0", g_positive, MOAK_ERR_INVALID_ARGUMENT, "g[3]"),
    BAD_FN("g NaN (last)", g_nan, MOAK_ERR_INVALID_ARGUMENT, "g["),
    BAD_FN("per-key g > 0 (last)", per_key_g_positive, MOAK_ERR_INVALID_ARGUMENT, "g["),
    BAD_FN("beta Inf", beta_inf, MOAK_ERR_INVALID_ARGUMENT, "beta[2]"),
    BAD_FN("out overlaps qkv", out_over_qkv, MOAK_ERR_INVALID_ARGUMENT, "out"),
    BAD_FN("out overlaps g", out_over_g, MOAK_ERR_INVALID_ARGUMENT, "out"),
};
#undef FX

/* ---- moak_linear_state_seq_clear / read ---------------------------------------------------- */

static void seq_checks(moak_context *ctx, moak_linear_state *state)
{
    moak_status st = moak_linear_state_seq_clear(ctx, state, MAX_SEQS);
    t_check(st == MOAK_ERR_OUT_OF_RANGE && strstr(moak_last_error(ctx), "seq_id"),
            "seq_clear(seq_id = max_seqs) -> %s: %s", t_status_name(st), moak_last_error(ctx));
    st = moak_linear_state_seq_clear(ctx, NULL, 0);
    t_check(st == MOAK_ERR_NULL_ARGUMENT, "seq_clear(NULL state) -> %s", t_status_name(st));
    float s[1];
    st = moak_linear_state_read(state, -1, s, NULL);
    t_check(st == MOAK_ERR_OUT_OF_RANGE, "read(seq_id -1) -> %s", t_status_name(st));
    st = moak_linear_state_read(state, 0, NULL, NULL);
    t_check(st == MOAK_ERR_NULL_ARGUMENT, "read(s NULL) -> %s", t_status_name(st));
}

static moak_linear_state *make_state(moak_context *ctx, int32_t hv)
{
    moak_linear_state_desc d = MOAK_LINEAR_STATE_DESC_INIT;
    d.n_qk_heads = HK;
    d.n_v_heads = hv;
    d.head_dim_k = DK;
    d.head_dim_v = DV;
    d.max_seqs = MAX_SEQS;
    moak_linear_state *s = NULL;
    t_ok(moak_linear_state_create(ctx, &d, &s), ctx, "fixture state");
    return s;
}

int main(void)
{
    t_init("test_bad_input_gated_delta");
    t_backend bk[T_MAX_BACKENDS];
    int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 1);
    moak_context *other = t_context("ref", 1);
    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        static create_fx cf;
        cf.ctx = ctx;
        const t_bad_ops cops = {"moak_linear_state_create", create_reset, create_call, create_outputs,
                                create_message_ctx, NULL};
        t_bad_run(bk[b].name, &cops, &cf, create_cases, BAD_COUNT(create_cases));

        static op_fx of;
        of.ctx = ctx;
        of.state = make_state(ctx, HV);
        of.other_shape = make_state(ctx, HK);
        of.other_ctx = make_state(other, HV);
        /* sequences 0 and 2 hold a non-zero state before the table runs */
        op_reset(&of);
        int32_t ids[2] = {0, 2}, lens[2] = {3, 2};
        t_ok(moak_gated_delta_rule(ctx, &of.desc, of.state, ids, lens, 2, of.qkv, of.w, of.g, of.beta, of.out), ctx,
             "fixture prefill");
        const t_bad_ops oops = {"moak_gated_delta_rule", op_reset, op_call, op_outputs, op_message_ctx, op_snapshot};
        t_bad_run(bk[b].name, &oops, &of, op_cases, BAD_COUNT(op_cases));
        seq_checks(ctx, of.state);
        moak_linear_state_destroy(of.state);
        moak_linear_state_destroy(of.other_shape);
        moak_linear_state_destroy(of.other_ctx);
    }
    moak_context_destroy(other);
    t_close_backends(bk, n_bk);
    return t_finish();
}
