/* test_bad_input_moe — moak_moe_ffn and moak_moe_route fed each class of bad
 * input: the right status, the argument named, nothing written. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "bad_input.h"

/* ---- moak_moe_ffn ----------------------------------------------------------------------- */

/* gpt-oss-like fixture scaled down: 4 experts, top-2, hidden 64, inter 32. */
#define E 4
#define TOP_K 2
#define HIDDEN 64
#define INTER 32
#define TOKENS 3

typedef struct moe_fx {
    moak_context *ctx, *other_ctx;
    /* valid gate/up/down; and weights that disagree with them */
    moak_weight *gate, *up, *down;
    moak_weight *up_q8;          /* another format */
    moak_weight *down_3e;        /* 3 experts */
    moak_weight *up_wide;        /* inter 48 rows */
    moak_weight *down_transposed;/* inter x hidden instead of hidden x inter */
    moak_weight *gate_other_ctx;
    /* the arguments */
    moak_context *ctx_arg;
    const moak_moe_desc *desc_arg;
    moak_moe_desc desc;
    const moak_weight *g_arg, *u_arg, *d_arg;
    const float *x_arg;
    int64_t n_tokens;
    int32_t top_k;
    const int32_t *ids_arg;
    const float *weights_arg;
    float *y_arg;
    float x[TOKENS * HIDDEN];
    int32_t ids[TOKENS * TOP_K];
    float weights[TOKENS * TOP_K];
    float y[TOKENS * HIDDEN];
} moe_fx;

static void moe_reset(void *p)
{
    moe_fx *f = p;
    f->ctx_arg = f->ctx;
    moak_moe_desc d = MOAK_MOE_DESC_INIT;
    d.activation = MOAK_ACT_SWIGLU_OAI;
    f->desc = d;
    f->desc_arg = &f->desc;
    f->g_arg = f->gate;
    f->u_arg = f->up;
    f->d_arg = f->down;
    f->x_arg = f->x;
    f->n_tokens = TOKENS;
    f->top_k = TOP_K;
    static const int32_t ids[TOKENS * TOP_K] = {0, 3, 3, 1, 2, 0};
    for (int i = 0; i < TOKENS * TOP_K; i++) {
        f->ids[i] = ids[i];
        f->weights[i] = 0.5f;
    }
    f->ids_arg = f->ids;
    f->weights_arg = f->weights;
    f->y_arg = f->y;
}

static moak_status moe_call(void *p)
{
    moe_fx *f = p;
    return moak_moe_ffn(f->ctx_arg, f->desc_arg, f->g_arg, f->u_arg, f->d_arg, f->x_arg,
                        f->n_tokens, f->top_k, f->ids_arg, f->weights_arg, f->y_arg);
}

static int moe_outputs(void *p, t_span *s)
{
    moe_fx *f = p;
    s[0].p = f->y_arg;
    s[0].n = sizeof(float) * TOKENS * HIDDEN;
    return 1;
}

static const moak_context *moe_message_ctx(void *p) { return ((moe_fx *)p)->ctx_arg; }

static void up_other_format(void *p) { ((moe_fx *)p)->u_arg = ((moe_fx *)p)->up_q8; }
static void down_other_experts(void *p) { ((moe_fx *)p)->d_arg = ((moe_fx *)p)->down_3e; }
static void up_other_shape(void *p) { ((moe_fx *)p)->u_arg = ((moe_fx *)p)->up_wide; }
static void down_transposed(void *p) { ((moe_fx *)p)->d_arg = ((moe_fx *)p)->down_transposed; }
static void gate_other_ctx(void *p) { ((moe_fx *)p)->g_arg = ((moe_fx *)p)->gate_other_ctx; }
static void id_negative(void *p) { ((moe_fx *)p)->ids[3] = -1; }
static void id_too_large(void *p) { ((moe_fx *)p)->ids[5] = E; }
static void weight_nan(void *p) { ((moe_fx *)p)->weights[2] = NAN; }
static void weight_inf(void *p) { ((moe_fx *)p)->weights[4] = INFINITY; }
static void y_overlaps_x(void *p) { ((moe_fx *)p)->y_arg = ((moe_fx *)p)->x + 3; }
static void fused_with_up(void *p) { ((moe_fx *)p)->desc.gate_up = MOAK_GATE_UP_CONCAT; }
/* w_gate with inter rows only: w_down's inter cols are not half of them */
static void fused_wrong_rows(void *p)
{
    ((moe_fx *)p)->desc.gate_up = MOAK_GATE_UP_INTERLEAVED;
    ((moe_fx *)p)->u_arg = NULL;
}

#define FX moe_fx
static const t_bad_case moe_cases[] = {
    BAD_OK("valid (swiglu-oai, 4 experts, top-2)"),
    BAD_NULL("ctx NULL", ctx_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_NULL("desc NULL", desc_arg, MOAK_ERR_NULL_ARGUMENT, "desc"),
    BAD_SIZE("desc struct_size 0", desc.struct_size, 0, MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_SIZE("desc struct_size one short of the first version", desc.struct_size,
             offsetof(moak_moe_desc, gate_up) - 1, MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_I32("gate_up 3", desc.gate_up, 3, MOAK_ERR_INVALID_ARGUMENT, "gate_up"),
    BAD_FN("gate_up fused with w_up given", fused_with_up, MOAK_ERR_INVALID_ARGUMENT, "w_up"),
    BAD_FN("gate_up fused, w_gate of inter rows (w_down's cols are not half of them)", fused_wrong_rows,
           MOAK_ERR_SHAPE_MISMATCH, "w_down"),
    BAD_I32("activation 3", desc.activation, 3, MOAK_ERR_INVALID_ARGUMENT, "activation"),
    BAD_I32("activation -1", desc.activation, -1, MOAK_ERR_INVALID_ARGUMENT, "activation"),
    BAD_F32("swiglu_alpha NaN", desc.swiglu_alpha, NAN, MOAK_ERR_INVALID_ARGUMENT, "swiglu_alpha"),
    BAD_F32("swiglu_alpha -1", desc.swiglu_alpha, -1.0, MOAK_ERR_INVALID_ARGUMENT, "swiglu_alpha"),
    BAD_F32("swiglu_limit NaN", desc.swiglu_limit, NAN, MOAK_ERR_INVALID_ARGUMENT, "swiglu_limit"),
    BAD_F32("swiglu_limit -7", desc.swiglu_limit, -7.0, MOAK_ERR_INVALID_ARGUMENT, "swiglu_limit"),
    BAD_F32("swiglu_limit +inf", desc.swiglu_limit, INFINITY, MOAK_ERR_INVALID_ARGUMENT,
            "swiglu_limit"),
    BAD_NULL("w_gate NULL", g_arg, MOAK_ERR_NULL_ARGUMENT, "w_gate"),
    BAD_NULL("w_up NULL", u_arg, MOAK_ERR_NULL_ARGUMENT, "w_up"),
    BAD_NULL("w_down NULL", d_arg, MOAK_ERR_NULL_ARGUMENT, "w_down"),
    BAD_FN("w_up in another format (Q8_0)", up_other_format, MOAK_ERR_SHAPE_MISMATCH, "w_up"),
    BAD_FN("w_down with 3 experts, not 4", down_other_experts, MOAK_ERR_SHAPE_MISMATCH, "w_down"),
    BAD_FN("w_up 48 rows, w_gate 32", up_other_shape, MOAK_ERR_SHAPE_MISMATCH, "w_up"),
    BAD_FN("w_down inter x hidden (transposed)", down_transposed, MOAK_ERR_SHAPE_MISMATCH, "w_down"),
    BAD_FN("w_gate from another context", gate_other_ctx, MOAK_ERR_INVALID_ARGUMENT, "w_gate"),
    BAD_NULL("x NULL", x_arg, MOAK_ERR_NULL_ARGUMENT, "x:"),
    BAD_NULL("ids NULL", ids_arg, MOAK_ERR_NULL_ARGUMENT, "ids"),
    BAD_NULL("weights NULL", weights_arg, MOAK_ERR_NULL_ARGUMENT, "weights"),
    BAD_NULL("y NULL", y_arg, MOAK_ERR_NULL_ARGUMENT, "y:"),
    BAD_I64("n_tokens 0", n_tokens, 0, MOAK_ERR_INVALID_ARGUMENT, "n_tokens"),
    BAD_I64("n_tokens -3", n_tokens, -3, MOAK_ERR_INVALID_ARGUMENT, "n_tokens"),
    BAD_I64("n_tokens: byte count overflows", n_tokens, T_HUGE_I64, MOAK_ERR_SIZE_OVERFLOW,
            "n_tokens"),
    BAD_I32("top_k 0", top_k, 0, MOAK_ERR_INVALID_ARGUMENT, "top_k"),
    BAD_I32("top_k -1", top_k, -1, MOAK_ERR_INVALID_ARGUMENT, "top_k"),
    BAD_I32("top_k 5 > 4 experts", top_k, E + 1, MOAK_ERR_INVALID_ARGUMENT, "top_k"),
    BAD_FN("ids[3] = -1", id_negative, MOAK_ERR_OUT_OF_RANGE, "ids"),
    BAD_FN("ids[5] = 4 (= n_experts)", id_too_large, MOAK_ERR_OUT_OF_RANGE, "ids"),
    BAD_FN("weights[2] NaN", weight_nan, MOAK_ERR_INVALID_ARGUMENT, "weights"),
    BAD_FN("weights[4] +inf", weight_inf, MOAK_ERR_INVALID_ARGUMENT, "weights"),
    BAD_FN("y overlaps x", y_overlaps_x, MOAK_ERR_INVALID_ARGUMENT, "y:"),
};
#undef FX

static moak_weight *weight(moak_context *ctx, moak_format f, int64_t experts, int64_t rows,
                           int64_t cols)
{
    size_t bytes;
    uint8_t *data = t_random_weights(f, experts * rows, cols, 0.1, &bytes, NULL);
    moak_weight_desc d = MOAK_WEIGHT_DESC_INIT;
    d.format = f;
    d.n_experts = experts;
    d.rows = rows;
    d.cols = cols;
    d.data = data;
    d.data_size = bytes;
    moak_weight *w = NULL;
    t_ok(moak_weight_create(ctx, &d, &w), ctx, "moe fixture weight");
    free(data);
    return w;
}

/* ---- moak_moe_route ------------------------------------------------------------------- */

/* DeepSeek-V3's router: 256 experts in 8 groups, keep 4, top-8, x2.5. */
#define R_E 256
#define R_K 8
#define R_TOKENS 2

typedef struct route_fx {
    moak_context *ctx;
    moak_context *ctx_arg;
    const moak_router_desc *router_arg;
    moak_router_desc router;
    const float *logits_arg;
    int64_t n_tokens;
    int32_t *ids_arg;
    float *weights_arg;
    float logits[R_TOKENS * R_E];
    float bias[R_E];
    int32_t ids[R_TOKENS * R_K];
    float weights[R_TOKENS * R_K];
} route_fx;

static void route_reset(void *p)
{
    route_fx *f = p;
    f->ctx_arg = f->ctx;
    moak_router_desc r = MOAK_ROUTER_DESC_INIT;
    r.method = MOAK_ROUTE_SIGMOID_TOPK;
    r.n_experts = R_E;
    r.top_k = R_K;
    r.renormalize = 1;
    r.scaling_factor = 2.5f;
    r.bias = f->bias;
    r.n_groups = 8;
    r.topk_groups = 4;
    f->router = r;
    f->router_arg = &f->router;
    f->logits_arg = f->logits;
    f->n_tokens = R_TOKENS;
    f->ids_arg = f->ids;
    f->weights_arg = f->weights;
    f->bias[17] = 0.125f;
}

static moak_status route_call(void *p)
{
    route_fx *f = p;
    return moak_moe_route(f->ctx_arg, f->router_arg, f->logits_arg, f->n_tokens, f->ids_arg,
                          f->weights_arg);
}

static int route_outputs(void *p, t_span *s)
{
    route_fx *f = p;
    s[0].p = f->ids_arg;
    s[0].n = sizeof(int32_t) * R_TOKENS * R_K;
    s[1].p = f->weights_arg;
    s[1].n = sizeof(float) * R_TOKENS * R_K;
    return 2;
}

static const moak_context *route_message_ctx(void *p) { return ((route_fx *)p)->ctx_arg; }

static void softmax_with_bias(void *p)
{
    route_fx *f = p;
    f->router.method = MOAK_ROUTE_SOFTMAX_TOPK;
    f->router.n_groups = 0;
    f->router.topk_groups = 0;
}
static void bias_nan(void *p) { ((route_fx *)p)->bias[17] = NAN; }
/* TOPK_SOFTMAX takes neither a bias nor groups (only the biased methods,
 * SIGMOID_TOPK and SQRT_SOFTPLUS_TOPK, do). */
static void topk_softmax_with_groups(void *p)
{
    route_fx *f = p;
    f->router.method = MOAK_ROUTE_TOPK_SOFTMAX;
    f->router.bias = NULL;
}
/* The sqrt(softplus) gate with groups: its bias must be finite too. */
static void sqrt_softplus_bias_nan(void *p)
{
    route_fx *f = p;
    f->router.method = MOAK_ROUTE_SQRT_SOFTPLUS_TOPK;
    f->bias[17] = NAN; /* reset restores it */
}
/* One kept group of 32 experts cannot supply 33. */
static void top_k_beyond_kept_groups(void *p)
{
    route_fx *f = p;
    f->router.topk_groups = 1;
    f->router.top_k = 33;
}
/* ids and weights share memory. */
static void ids_overlap_weights(void *p)
{
    route_fx *f = p;
    f->weights_arg = (float *)(void *)(f->ids + 1);
}

#define FX route_fx
static const t_bad_case route_cases[] = {
    BAD_OK("valid (deepseek-v3 router)"),
    BAD_NULL("ctx NULL", ctx_arg, MOAK_ERR_NULL_ARGUMENT, "ctx"),
    BAD_NULL("router NULL", router_arg, MOAK_ERR_NULL_ARGUMENT, "router"),
    BAD_SIZE("router struct_size 0", router.struct_size, 0, MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_SIZE("router struct_size one short", router.struct_size, sizeof(moak_router_desc) - 1,
             MOAK_ERR_STRUCT_SIZE, "struct_size"),
    BAD_I32("method 4", router.method, 4, MOAK_ERR_INVALID_ARGUMENT, "method"),
    BAD_I32("method -1", router.method, -1, MOAK_ERR_INVALID_ARGUMENT, "method"),
    BAD_I32("n_experts 0", router.n_experts, 0, MOAK_ERR_INVALID_ARGUMENT, "n_experts"),
    BAD_I32("n_experts -256", router.n_experts, -256, MOAK_ERR_INVALID_ARGUMENT, "n_experts"),
    BAD_I32("top_k 0", router.top_k, 0, MOAK_ERR_INVALID_ARGUMENT, "top_k"),
    BAD_I32("top_k 257 > n_experts", router.top_k, R_E + 1, MOAK_ERR_INVALID_ARGUMENT, "top_k"),
    BAD_I32("renormalize 2", router.renormalize, 2, MOAK_ERR_INVALID_ARGUMENT, "renormalize"),
    BAD_F32("scaling_factor NaN", router.scaling_factor, NAN, MOAK_ERR_INVALID_ARGUMENT,
            "scaling_factor"),
    BAD_F32("scaling_factor -2.5", router.scaling_factor, -2.5, MOAK_ERR_INVALID_ARGUMENT,
            "scaling_factor"),
    BAD_FN("bias with SOFTMAX_TOPK", softmax_with_bias, MOAK_ERR_INVALID_ARGUMENT, "bias"),
    BAD_FN("bias[17] NaN", bias_nan, MOAK_ERR_INVALID_ARGUMENT, "bias"),
    BAD_FN("groups with TOPK_SOFTMAX", topk_softmax_with_groups, MOAK_ERR_INVALID_ARGUMENT, "n_groups"),
    BAD_FN("SQRT_SOFTPLUS_TOPK with bias[17] NaN", sqrt_softplus_bias_nan, MOAK_ERR_INVALID_ARGUMENT, "bias"),
    BAD_I32("n_groups -1", router.n_groups, -1, MOAK_ERR_INVALID_ARGUMENT, "n_groups"),
    BAD_I32("n_groups 3 does not divide 256", router.n_groups, 3, MOAK_ERR_INVALID_ARGUMENT,
            "n_groups"),
    BAD_I32("topk_groups 0", router.topk_groups, 0, MOAK_ERR_INVALID_ARGUMENT, "topk_groups"),
    BAD_I32("topk_groups 9 > n_groups", router.topk_groups, 9, MOAK_ERR_INVALID_ARGUMENT,
            "topk_groups"),
    BAD_FN("top_k 33 > 32 experts of 1 kept group", top_k_beyond_kept_groups,
           MOAK_ERR_INVALID_ARGUMENT, "top_k"),
    BAD_NULL("logits NULL", logits_arg, MOAK_ERR_NULL_ARGUMENT, "logits"),
    BAD_NULL("ids NULL", ids_arg, MOAK_ERR_NULL_ARGUMENT, "ids"),
    BAD_NULL("weights NULL", weights_arg, MOAK_ERR_NULL_ARGUMENT, "weights"),
    BAD_I64("n_tokens 0", n_tokens, 0, MOAK_ERR_INVALID_ARGUMENT, "n_tokens"),
    BAD_I64("n_tokens -1", n_tokens, -1, MOAK_ERR_INVALID_ARGUMENT, "n_tokens"),
    BAD_I64("n_tokens: byte count overflows", n_tokens, T_HUGE_I64, MOAK_ERR_SIZE_OVERFLOW,
            "n_tokens"),
    BAD_FN("weights overlap ids", ids_overlap_weights, MOAK_ERR_INVALID_ARGUMENT, "ids"),
};
#undef FX

int main(void)
{
    t_init("test_bad_input_moe");
    t_backend bk[T_MAX_BACKENDS];
    int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 1);
    moak_context *other = t_context("ref", 1);
    for (int b = 0; b < n_bk; b++) {
        moak_context *ctx = bk[b].ctx;
        static moe_fx mf;
        mf.ctx = ctx;
        mf.other_ctx = other;
        mf.gate = weight(ctx, MOAK_FORMAT_Q4_0, E, INTER, HIDDEN);
        mf.up = weight(ctx, MOAK_FORMAT_Q4_0, E, INTER, HIDDEN);
        mf.down = weight(ctx, MOAK_FORMAT_Q4_0, E, HIDDEN, INTER);
        mf.up_q8 = weight(ctx, MOAK_FORMAT_Q8_0, E, INTER, HIDDEN);
        mf.down_3e = weight(ctx, MOAK_FORMAT_Q4_0, 3, HIDDEN, INTER);
        mf.up_wide = weight(ctx, MOAK_FORMAT_Q4_0, E, 48, HIDDEN);
        mf.down_transposed = weight(ctx, MOAK_FORMAT_Q4_0, E, INTER, HIDDEN);
        mf.gate_other_ctx = weight(other, MOAK_FORMAT_Q4_0, E, INTER, HIDDEN);
        t_fill_normal(mf.x, TOKENS * HIDDEN, 1.0);
        const t_bad_ops mops = {"moak_moe_ffn", moe_reset, moe_call, moe_outputs, moe_message_ctx,
                                NULL};
        t_bad_run(bk[b].name, &mops, &mf, moe_cases, BAD_COUNT(moe_cases));
        moak_weight *all[] = {mf.gate, mf.up, mf.down, mf.up_q8, mf.down_3e, mf.up_wide,
                              mf.down_transposed, mf.gate_other_ctx};
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
            moak_weight_destroy(all[i]);

        static route_fx rf;
        rf.ctx = ctx;
        t_fill_normal(rf.logits, R_TOKENS * R_E, 1.0);
        t_fill_uniform(rf.bias, R_E, -0.1, 0.1);
        const t_bad_ops rops = {"moak_moe_route", route_reset, route_call, route_outputs,
                                route_message_ctx, NULL};
        t_bad_run(bk[b].name, &rops, &rf, route_cases, BAD_COUNT(route_cases));
    }
    moak_context_destroy(other);
    t_close_backends(bk, n_bk);
    return t_finish();
}
