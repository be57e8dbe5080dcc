/*
 * The cases of moak-conform (see conform_cases.h).
 *
 * From each model of cases.json come: its router; its MoE layer (real
 * hidden, inter and top_k; only top_k + 4 experts are allocated, or top_k + 1
 * with --quick, since experts nobody chooses are never read); its expert (or
 * dense FFN) matmuls at m = 1 and a small batch; attention decode over two
 * sequences of different lengths and a prefill chunk (GQA models) or
 * absorbed MLA decode (MLA models); rmsnorm over the hidden size, the head
 * (QK-norm) or the MLA latent; rope over its rotary part; and for models
 * with DeepSeek Sparse Attention ("sparse_attention"), MLA decode and a
 * prefill chunk over index_topk listed positions of sequences longer than it
 * (at index_topk 2048, anything shorter is dense attention).  What no model
 * fixes (tokens, cached lengths) is chosen here, smaller with --quick so that
 * the reference backend stays well under a minute.
 */
#include "config.h"

#include "conform_cases.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "tool_support.h"

/* ---- sizes chosen by the tool (full run / --quick) ---------------------------- */

#define ROUTE_TOKENS(q) ((q) ? 4 : 32)
#define MOE_TOKENS(q) ((q) ? 1 : 4)
#define MOE_SPARE_EXPERTS(q) ((q) ? 1 : 4)
#define MATMUL_BATCH(q) ((q) ? 7 : 9)
#define DECODE_LEN_A(q) ((q) ? 300 : 4096)
#define DECODE_LEN_B(q) ((q) ? 77 : 1000)
#define PREFILL_LEN(q) ((q) ? 80 : 512)
#define PREFILL_Q(q) ((q) ? 16 : 128)
#define MLA_LEN_A(q) ((q) ? 160 : 4096)
#define MLA_LEN_B(q) ((q) ? 33 : 513)
/* DSA: past the model's top-k (2048) by this much, and a prefill chunk */
#define DSA_PAST_K(q) ((q) ? 100 : 1000)
#define DSA_PREFILL_Q(q) ((q) ? 3 : 16)
#define NORM_TOKENS(q) ((q) ? 3 : 16)
#define ROPE_TOKENS(q) ((q) ? 3 : 8)

static const uint32_t all_weight_formats = (1u << MOAK_FORMAT_COUNT) - 1u;

uint32_t conform_default_formats(const conform_case *c)
{
    switch (c->op) {
    case CONFORM_MATMUL:
    case CONFORM_MOE: {
        /* the release formats are not padded: every K must be a multiple of
         * the block (edge and random shapes with odd sizes leave them out) */
        uint32_t f = all_weight_formats;
        for (int r = MOAK_FORMAT_FP8_E4M3_B128; r < MOAK_FORMAT_COUNT; r++) {
            const int64_t block = moak_format_block_elems((moak_format)r);
            const bool fits = c->op == CONFORM_MATMUL ? c->cols % block == 0
                                                      : c->hidden % block == 0 && c->inter % block == 0;
            if (!fits)
                f &= ~(1u << r);
        }
        return f;
    }
    case CONFORM_ATTENTION:
    case CONFORM_INDEXER: {
        uint32_t f = (1u << MOAK_FORMAT_F32) | (1u << MOAK_FORMAT_F16) | (1u << MOAK_FORMAT_BF16);
        if (c->head_dim_k % 32 == 0 && c->head_dim_v % 32 == 0)
            f |= 1u << MOAK_FORMAT_Q8_0;
        return f;
    }
    default:
        return 1u << MOAK_FORMAT_F32;
    }
}

double conform_moe_weight_bytes(const conform_case *c, moak_format f)
{
    double gate = (double)c->inter * (double)moak_format_row_bytes(f, c->hidden);
    double down = (double)c->hidden * (double)moak_format_row_bytes(f, c->inter);
    return (double)c->n_experts * (2.0 * gate + down);
}

/* " L=a,b q=c,d" after buf[0..used); returns the new length. */
static size_t describe_seqs(const conform_case *c, char *buf, size_t len, size_t used)
{
    if (used < len)
        used += (size_t)snprintf(buf + used, len - used, " L=");
    for (int i = 0; i < c->n_seqs && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? "," : "", (long long)c->seq_lens[i]);
    if (used < len)
        used += (size_t)snprintf(buf + used, len - used, " q=");
    for (int i = 0; i < c->n_seqs && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? "," : "", (long long)c->q_lens[i]);
    return used;
}

void conform_describe_shape(const conform_case *c, char *buf, size_t len)
{
    switch (c->op) {
    case CONFORM_MATMUL:
        snprintf(buf, len, "m=%lld n=%lld k=%lld%s", (long long)c->m, (long long)c->rows, (long long)c->cols,
                 c->bias ? " bias" : "");
        break;
    case CONFORM_MOE:
        snprintf(buf, len, "t=%lld h=%lld i=%lld E=%lld k=%d%s%s", (long long)c->tokens, (long long)c->hidden,
                 (long long)c->inter, (long long)c->n_experts, (int)c->top_k,
                 c->activation == MOAK_ACT_GELU_GLU ? " gelu" : c->activation == MOAK_ACT_SWIGLU_OAI ? " swiglu-oai" : "",
                 c->bias ? " bias" : "");
        break;
    case CONFORM_ROUTE:
        snprintf(buf, len, "t=%lld E=%lld k=%d %s%s", (long long)c->tokens, (long long)c->n_experts, (int)c->top_k,
                 c->route == MOAK_ROUTE_SOFTMAX_TOPK ? "softmax-topk" :
                 c->route == MOAK_ROUTE_TOPK_SOFTMAX ? "topk-softmax" :
                 c->route == MOAK_ROUTE_SIGMOID_TOPK ? "sigmoid" : "sqrt-softplus",
                 c->n_groups > 1 ? " groups" : "");
        break;
    case CONFORM_ATTENTION: {
        size_t used = (size_t)snprintf(buf, len, "h=%d/%d d=%d/%d", (int)c->n_heads, (int)c->n_kv_heads,
                                       (int)c->head_dim_k, (int)c->head_dim_v);
        used = describe_seqs(c, buf, len, used);
        if (used < len)
            used += (size_t)snprintf(buf + used, len - used, "%s%s%s%s%s", c->shared_v ? " sharedV" : "",
                     c->sliding_window ? " window" : "", c->sinks ? " sinks" : "", c->softcap > 0 ? " softcap" : "",
                     c->causal ? "" : " noncausal");
        if (c->sparse_k > 0 && used < len)
            snprintf(buf + used, len - used, " sparse_k=%d", (int)c->sparse_k);
        break;
    }
    case CONFORM_INDEXER: {
        size_t used = (size_t)snprintf(buf, len, "h=%d d=%d k=%d", (int)c->n_heads, (int)c->head_dim_k,
                                       (int)c->top_k);
        describe_seqs(c, buf, len, used);
        break;
    }
    case CONFORM_RMSNORM:
        snprintf(buf, len, "rows=%lld dim=%lld%s", (long long)c->rows, (long long)c->cols, c->gamma ? "" : " no-gamma");
        break;
    case CONFORM_ROPE:
        snprintf(buf, len, "t=%lld h=%d d=%d rot=%d %s%s", (long long)c->tokens, (int)c->n_heads, (int)c->head_dim,
                 (int)c->rotary_dim, c->rope_layout == MOAK_ROPE_GPTJ ? "gptj" : "neox",
                 c->rope_scaling == MOAK_ROPE_SCALING_YARN     ? " yarn"
                 : c->rope_scaling == MOAK_ROPE_SCALING_LLAMA3 ? " llama3"
                                                               : "");
        break;
    default:
        snprintf(buf, len, "?");
    }
}

/* ---- list --------------------------------------------------------------------------- */

static conform_case *add_case(conform_case_list *list, conform_op op, const char *model, const char *name)
{
    if (list->count == list->capacity) {
        int cap = list->capacity ? 2 * list->capacity : 64;
        conform_case *items = realloc(list->items, (size_t)cap * sizeof(*items));
        if (!items)
            return NULL;
        list->items = items;
        list->capacity = cap;
    }
    conform_case *c = &list->items[list->count++];
    memset(c, 0, sizeof(*c));
    c->op = op;
    snprintf(c->model, sizeof(c->model), "%s", model);
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->causal = true;
    c->gamma = true;
    c->scaling = 1.0f;
    return c;
}

void conform_free_cases(conform_case_list *list)
{
    free(list->items);
    memset(list, 0, sizeof(*list));
}

/* ---- JSON helpers ------------------------------------------------------------------ */

static int64_t get_int(const json_t *o, const char *key, int64_t dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? (int64_t)json_number_value(v) : dflt;
}

static double get_num(const json_t *o, const char *key, double dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

static bool get_bool(const json_t *o, const char *key, bool dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static const char *get_str(const json_t *o, const char *key, const char *dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : dflt;
}

static bool list_has(const json_t *array, const char *word)
{
    size_t i;
    const json_t *v;
    json_array_foreach(array, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), word) == 0)
            return true;
    }
    return false;
}

static bool parse_route(const char *s, moak_route_method *m)
{
    if (strcmp(s, "softmax_topk") == 0)
        *m = MOAK_ROUTE_SOFTMAX_TOPK;
    else if (strcmp(s, "topk_softmax") == 0)
        *m = MOAK_ROUTE_TOPK_SOFTMAX;
    else if (strcmp(s, "sigmoid_topk") == 0)
        *m = MOAK_ROUTE_SIGMOID_TOPK;
    else if (strcmp(s, "sqrt_softplus_topk") == 0)
        *m = MOAK_ROUTE_SQRT_SOFTPLUS_TOPK;
    else
        return false;
    return true;
}

static bool parse_activation(const char *s, moak_activation *a)
{
    if (strcmp(s, "silu_glu") == 0)
        *a = MOAK_ACT_SILU_GLU;
    else if (strcmp(s, "gelu_glu") == 0)
        *a = MOAK_ACT_GELU_GLU;
    else if (strcmp(s, "swiglu_oai") == 0)
        *a = MOAK_ACT_SWIGLU_OAI;
    else
        return false;
    return true;
}

static moak_rope_layout parse_layout(const char *s)
{
    return strcmp(s, "gptj") == 0 ? MOAK_ROPE_GPTJ : MOAK_ROPE_NEOX;
}

/* "rope_scaling": {"type": "yarn" | "llama3", ...} with config.json's keys;
 * an absent object leaves the case unscaled. */
static void parse_rope_scaling(const json_t *parent, conform_case *c)
{
    const json_t *s = json_object_get(parent, "rope_scaling");
    if (!json_is_object(s))
        return;
    const char *type = get_str(s, "type", "");
    c->rope_scaling = strcmp(type, "yarn") == 0     ? MOAK_ROPE_SCALING_YARN
                      : strcmp(type, "llama3") == 0 ? MOAK_ROPE_SCALING_LLAMA3
                                                    : MOAK_ROPE_SCALING_NONE;
    c->rope_factor = (float)get_num(s, "factor", 0.0);
    c->rope_original = (int32_t)get_int(s, "original_max_position_embeddings", 0);
    c->rope_beta_fast = (float)get_num(s, "beta_fast", 0.0);
    c->rope_beta_slow = (float)get_num(s, "beta_slow", 0.0);
    c->rope_mscale = (float)get_num(s, "mscale", 0.0);
    c->rope_mscale_all_dim = (float)get_num(s, "mscale_all_dim", 0.0);
    c->rope_no_truncate = !get_bool(s, "truncate", true);
    c->rope_low_freq = (float)get_num(s, "low_freq_factor", 0.0);
    c->rope_high_freq = (float)get_num(s, "high_freq_factor", 0.0);
}

/* A list of format names as a mask; 0 = no list. */
static uint32_t format_list(const json_t *names)
{
    uint32_t mask = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(names, i, v) {
        moak_format f;
        if (json_is_string(v) && moak_format_from_name(json_string_value(v), &f) == MOAK_OK)
            mask |= 1u << f;
    }
    return mask;
}

/* A "quick_formats" entry for op, as a format mask; 0 = none given. */
static uint32_t quick_formats(const json_t *model, const char *op)
{
    return format_list(json_object_get(json_object_get(model, "quick_formats"), op));
}

/* ---- cases from one model -------------------------------------------------------- */

typedef struct expand_ctx {
    const conform_case_options *opt;
    conform_case_list *list;
    char *err;
    size_t err_len;
} expand_ctx;

static bool wanted(const expand_ctx *x, conform_op op, const json_t *quick_list, const char *quick_word)
{
    if (!(x->opt->op_mask & (1u << op)))
        return false;
    return !x->opt->quick || list_has(quick_list, quick_word);
}

#define ADD_OR_FAIL(c, op, model, name)                                                \
    do {                                                                               \
        (c) = add_case(x->list, (op), (model), (name));                                \
        if (!(c)) {                                                                    \
            snprintf(x->err, x->err_len, "out of memory for the case list");           \
            return false;                                                              \
        }                                                                              \
    } while (0)

static bool expand_moe_model(expand_ctx *x, const json_t *m, const char *model, const json_t *quick)
{
    const json_t *moe = json_object_get(m, "moe");
    bool q = x->opt->quick;
    int64_t hidden = get_int(m, "hidden", 0);
    conform_case *c;
    if (!json_is_object(moe))
        return true;
    moak_route_method method;
    moak_activation act;
    if (!parse_route(get_str(moe, "route", ""), &method) ||
        !parse_activation(get_str(moe, "activation", "silu_glu"), &act)) {
        snprintf(x->err, x->err_len, "%s: unknown route or activation in cases.json", model);
        return false;
    }
    int64_t experts = get_int(moe, "n_experts", 0), inter = get_int(moe, "inter", 0);
    int32_t top_k = (int32_t)get_int(moe, "top_k", 0);
    bool expert_bias = get_bool(moe, "expert_bias", false);

    if (wanted(x, CONFORM_ROUTE, quick, "route")) {
        ADD_OR_FAIL(c, CONFORM_ROUTE, model, "router");
        c->tokens = ROUTE_TOKENS(q);
        c->n_experts = experts;
        c->top_k = top_k;
        c->route = method;
        c->renormalize = get_bool(moe, "renormalize", true);
        c->scaling = (float)get_num(moe, "scaling", 1.0);
        c->n_groups = (int32_t)get_int(moe, "n_groups", 0);
        c->topk_groups = (int32_t)get_int(moe, "topk_groups", 0);
        c->selection_bias = get_bool(moe, "selection_bias", false);
    }
    if (wanted(x, CONFORM_MOE, quick, "moe")) {
        ADD_OR_FAIL(c, CONFORM_MOE, model, "moe-layer");
        c->tokens = MOE_TOKENS(q);
        c->hidden = hidden;
        c->inter = inter;
        c->n_experts_model = experts;
        c->n_experts = top_k + MOE_SPARE_EXPERTS(q) < experts ? top_k + MOE_SPARE_EXPERTS(q) : experts;
        c->top_k = top_k;
        c->activation = act;
        c->bias = expert_bias;
        /* Keep the f32 weights under the memory limit by dropping spare experts. */
        while (c->n_experts > top_k &&
               conform_moe_weight_bytes(c, MOAK_FORMAT_F32) > x->opt->max_weight_mib * 1048576.0)
            c->n_experts--;
        if (q)
            c->formats = quick_formats(m, "moe");
    }
    if (wanted(x, CONFORM_MATMUL, quick, "matmul")) {
        ADD_OR_FAIL(c, CONFORM_MATMUL, model, "expert-gate");
        c->m = 1;
        c->rows = inter;
        c->cols = hidden;
        c->bias = expert_bias;
        ADD_OR_FAIL(c, CONFORM_MATMUL, model, "expert-down");
        c->m = MATMUL_BATCH(q);
        c->rows = hidden;
        c->cols = inter;
        c->bias = expert_bias;
        if (q)
            c->formats = quick_formats(m, "matmul");
    }
    return true;
}

static bool expand_dense_ffn(expand_ctx *x, const json_t *m, const char *model, const json_t *quick)
{
    const json_t *ffn = json_object_get(m, "dense_ffn");
    conform_case *c;
    if (!json_is_object(ffn) || !wanted(x, CONFORM_MATMUL, quick, "matmul"))
        return true;
    int64_t hidden = get_int(m, "hidden", 0), inter = get_int(ffn, "inter", 0);
    ADD_OR_FAIL(c, CONFORM_MATMUL, model, "ffn-up");
    c->m = 1;
    c->rows = inter;
    c->cols = hidden;
    ADD_OR_FAIL(c, CONFORM_MATMUL, model, "ffn-down");
    c->m = MATMUL_BATCH(x->opt->quick);
    c->rows = hidden;
    c->cols = inter;
    return true;
}

/* DeepSeek Sparse Attention's attention half: absorbed MLA (as mla-decode)
 * over index_topk listed positions; the positions are made with the inputs
 * (conform_run.c).  The scale is the model's: 1/sqrt(nope + rope), times the
 * YaRN mscale squared when the entry gives yarn_factor (DeepSeek-V3.2). */
static bool expand_sparse(expand_ctx *x, const json_t *m, const char *model, const json_t *quick)
{
    const json_t *a = json_object_get(m, "sparse_attention");
    bool q = x->opt->quick;
    conform_case *c;
    /* "sparse" is in no model's quick list: at k 2048 the reference's cost
     * (every backend that declines runs it again) would dominate make check */
    if (!json_is_object(a))
        return true;
    if (wanted(x, CONFORM_INDEXER, quick, "sparse")) {
        /* the indexer: decode past k and short of k, and a prefill chunk
         * continuing a cached sequence, in one call */
        ADD_OR_FAIL(c, CONFORM_INDEXER, model, "indexer");
        c->n_heads = (int32_t)get_int(a, "index_n_heads", 0);
        c->head_dim_k = (int32_t)get_int(a, "index_head_dim", 0);
        c->top_k = (int32_t)get_int(a, "index_topk", 0);
        c->n_seqs = 3;
        c->seq_lens[0] = c->top_k + DSA_PAST_K(q);
        c->seq_lens[1] = c->top_k / 2 + 1;
        c->seq_lens[2] = c->top_k + DSA_PAST_K(q) / 2;
        c->q_lens[0] = c->q_lens[1] = 1;
        c->q_lens[2] = DSA_PREFILL_Q(q);
        if (c->n_heads < 1 || c->head_dim_k < 1 || c->top_k < 1) {
            snprintf(x->err, x->err_len, "model '%s': sparse_attention lacks index_n_heads/head_dim/topk", model);
            return false;
        }
    }
    if (!wanted(x, CONFORM_ATTENTION, quick, "sparse"))
        return true;
    int32_t latent = (int32_t)get_int(a, "kv_lora_rank", 0);
    int32_t rope = (int32_t)get_int(a, "qk_rope_head_dim", 0);
    int32_t nope = (int32_t)get_int(a, "qk_nope_head_dim", 0);
    int32_t top_k = (int32_t)get_int(a, "index_topk", 0);
    double yarn = get_num(a, "yarn_factor", 0.0);
    double mscale = yarn > 1.0 ? 0.1 * get_num(a, "yarn_mscale_all_dim", 1.0) * log(yarn) + 1.0 : 1.0;
    if (latent < 1 || rope < 0 || nope < 0 || top_k < 1) {
        snprintf(x->err, x->err_len, "model '%s': sparse_attention lacks kv_lora_rank, qk_* or index_topk", model);
        return false;
    }
    for (int prefill = 0; prefill < 2; prefill++) {
        ADD_OR_FAIL(c, CONFORM_ATTENTION, model, prefill ? "dsa-prefill" : "dsa-decode");
        c->n_heads = (int32_t)get_int(a, "n_heads", 0);
        c->n_kv_heads = 1;
        c->head_dim_k = latent + rope;
        c->head_dim_v = latent;
        c->shared_v = true;
        c->causal = true;
        c->scale = (float)(mscale * mscale / sqrt((double)(nope + rope)));
        c->sparse_k = top_k;
        if (prefill) {
            c->n_seqs = 1;
            c->seq_lens[0] = top_k + DSA_PAST_K(q);
            c->q_lens[0] = DSA_PREFILL_Q(q);
        } else {
            /* one sequence past k, one shorter (its list has -1 slots) */
            c->n_seqs = 2;
            c->seq_lens[0] = top_k + DSA_PAST_K(q);
            c->seq_lens[1] = top_k / 2 + 1;
            c->q_lens[0] = c->q_lens[1] = 1;
        }
    }
    return true;
}

static bool expand_attention(expand_ctx *x, const json_t *m, const char *model, const json_t *quick)
{
    const json_t *a = json_object_get(m, "attention");
    bool q = x->opt->quick;
    conform_case *c;
    if (!json_is_object(a))
        return true;
    int64_t hidden = get_int(m, "hidden", 0);
    bool mla = get_bool(a, "mla", false);
    int32_t n_heads = (int32_t)get_int(a, "n_heads", 0);
    double theta = get_num(a, "rope_theta", 10000.0);
    moak_rope_layout layout = parse_layout(get_str(a, "rope_layout", "neox"));

    if (mla) {
        int32_t latent = (int32_t)get_int(a, "kv_lora_rank", 0);
        int32_t rope = (int32_t)get_int(a, "qk_rope_head_dim", 0);
        int32_t nope = (int32_t)get_int(a, "qk_nope_head_dim", 0);
        if (wanted(x, CONFORM_ATTENTION, quick, "attention")) {
            /* Absorbed MLA decode: one latent vector (+ its rope key) per token,
             * V the latent's first kv_lora_rank dims; the logit scale stays the
             * model's 1/sqrt(nope + rope). */
            ADD_OR_FAIL(c, CONFORM_ATTENTION, model, "mla-decode");
            c->n_heads = n_heads;
            c->n_kv_heads = 1;
            c->head_dim_k = latent + rope;
            c->head_dim_v = latent;
            c->shared_v = true;
            c->scale = (float)(1.0 / sqrt((double)(nope + rope)));
            /* with YaRN's mscale_all_dim the model multiplies its logit
             * scale by mscale^2 (DeepSeek-V3: (0.1 ln 40 + 1)^2) */
            const json_t *rs = json_object_get(a, "rope_scaling");
            double all_dim = json_is_object(rs) ? get_num(rs, "mscale_all_dim", 0.0) : 0.0;
            double factor = json_is_object(rs) ? get_num(rs, "factor", 1.0) : 1.0;
            if (all_dim != 0.0 && factor > 1.0) {
                double mscale = 0.1 * all_dim * log(factor) + 1.0;
                c->scale = (float)(c->scale * mscale * mscale);
            }
            c->n_seqs = 2;
            c->seq_lens[0] = MLA_LEN_A(q);
            c->seq_lens[1] = MLA_LEN_B(q);
            c->q_lens[0] = c->q_lens[1] = 1;
        }
        if (wanted(x, CONFORM_RMSNORM, quick, "rmsnorm")) {
            ADD_OR_FAIL(c, CONFORM_RMSNORM, model, "kv-latent-norm");
            c->rows = NORM_TOKENS(q);
            c->cols = latent;
        }
        if (wanted(x, CONFORM_ROPE, quick, "rope")) {
            ADD_OR_FAIL(c, CONFORM_ROPE, model, "rope-part");
            c->tokens = ROPE_TOKENS(q);
            c->n_heads = n_heads;
            c->head_dim = rope;
            c->rotary_dim = rope;
            c->rope_layout = layout;
            c->rope_theta = (float)theta;
            parse_rope_scaling(a, c);
            c->max_position = c->rope_scaling ? 163839 : 32768;
        }
    } else {
        int32_t n_kv = (int32_t)get_int(a, "n_kv_heads", 0);
        int32_t d = (int32_t)get_int(a, "head_dim", 0);
        int32_t window = (int32_t)get_int(a, "sliding_window", 0);
        bool sinks = get_bool(a, "sinks", false);
        if (wanted(x, CONFORM_ATTENTION, quick, "attention")) {
            ADD_OR_FAIL(c, CONFORM_ATTENTION, model, window ? "decode-sliding" : "decode");
            c->n_heads = n_heads;
            c->n_kv_heads = n_kv;
            c->head_dim_k = c->head_dim_v = d;
            c->sliding_window = window;
            c->sinks = sinks;
            c->n_seqs = 2;
            c->seq_lens[0] = DECODE_LEN_A(q);
            c->seq_lens[1] = DECODE_LEN_B(q);
            c->q_lens[0] = c->q_lens[1] = 1;
        }
        if (wanted(x, CONFORM_ATTENTION, quick, "prefill")) {
            /* A model with sliding layers alternates them with full ones:
             * prefill runs the full-attention layer. */
            ADD_OR_FAIL(c, CONFORM_ATTENTION, model, "prefill");
            c->n_heads = n_heads;
            c->n_kv_heads = n_kv;
            c->head_dim_k = c->head_dim_v = d;
            c->sinks = sinks;
            c->n_seqs = 1;
            c->seq_lens[0] = PREFILL_LEN(q);
            c->q_lens[0] = PREFILL_Q(q);
        }
        if (get_bool(a, "qk_norm", false) && wanted(x, CONFORM_RMSNORM, quick, "rmsnorm")) {
            ADD_OR_FAIL(c, CONFORM_RMSNORM, model, "qk-norm");
            c->rows = NORM_TOKENS(q) * n_heads;
            c->cols = d;
        }
        if (wanted(x, CONFORM_ROPE, quick, "rope")) {
            ADD_OR_FAIL(c, CONFORM_ROPE, model, "rope");
            c->tokens = ROPE_TOKENS(q);
            c->n_heads = n_heads;
            c->head_dim = d;
            c->rotary_dim = (int32_t)get_int(a, "rotary_dim", d);
            c->rope_layout = layout;
            c->rope_theta = (float)theta;
            parse_rope_scaling(a, c);
            /* a scaled rope is there for positions past the original context */
            c->max_position = c->rope_scaling ? 131071 : 32768;
        }
    }
    if (wanted(x, CONFORM_RMSNORM, quick, "rmsnorm")) {
        ADD_OR_FAIL(c, CONFORM_RMSNORM, model, "hidden-norm");
        c->rows = NORM_TOKENS(q);
        c->cols = hidden;
    }
    return true;
}

/* ---- edge cases ------------------------------------------------------------------ */

static bool expand_edge(expand_ctx *x, const json_t *e)
{
    const char *op_name = get_str(e, "op", "");
    int op = conform_op_from_name(op_name);
    conform_case *c;
    if (op < 0) {
        snprintf(x->err, x->err_len, "edge case '%s': unknown op '%s'", get_str(e, "name", "?"), op_name);
        return false;
    }
    if (!(x->opt->op_mask & (1u << op)) || (x->opt->quick && !get_bool(e, "quick", false)))
        return true;
    ADD_OR_FAIL(c, (conform_op)op, "edge", get_str(e, "name", "?"));
    snprintf(c->why, sizeof(c->why), "%s", get_str(e, "why", ""));
    c->formats = format_list(json_object_get(e, "formats"));
    switch (c->op) {
    case CONFORM_MATMUL:
        c->m = get_int(e, "m", 1);
        c->rows = get_int(e, "rows", 1);
        c->cols = get_int(e, "cols", 1);
        c->bias = get_bool(e, "bias", false);
        break;
    case CONFORM_MOE:
        c->tokens = get_int(e, "tokens", 1);
        c->hidden = get_int(e, "hidden", 1);
        c->inter = get_int(e, "inter", 1);
        c->n_experts = c->n_experts_model = get_int(e, "n_experts", 1);
        c->top_k = (int32_t)get_int(e, "top_k", 1);
        c->bias = get_bool(e, "expert_bias", false);
        c->ids = strcmp(get_str(e, "ids", "random"), "same") == 0 ? CONFORM_IDS_SAME : CONFORM_IDS_RANDOM;
        if (!parse_activation(get_str(e, "activation", "silu_glu"), &c->activation))
            goto bad;
        break;
    case CONFORM_ROUTE:
        c->tokens = get_int(e, "tokens", 1);
        c->n_experts = get_int(e, "n_experts", 1);
        c->top_k = (int32_t)get_int(e, "top_k", 1);
        c->renormalize = get_bool(e, "renormalize", true);
        c->scaling = (float)get_num(e, "scaling", 1.0);
        c->n_groups = (int32_t)get_int(e, "n_groups", 0);
        c->topk_groups = (int32_t)get_int(e, "topk_groups", 0);
        c->selection_bias = get_bool(e, "selection_bias", false);
        c->tie_logits = strcmp(get_str(e, "logits", "random"), "ties") == 0;
        if (!parse_route(get_str(e, "route", ""), &c->route))
            goto bad;
        break;
    case CONFORM_ATTENTION: {
        c->n_heads = (int32_t)get_int(e, "n_heads", 1);
        c->n_kv_heads = (int32_t)get_int(e, "n_kv_heads", 1);
        c->head_dim_k = (int32_t)get_int(e, "head_dim_k", 32);
        c->head_dim_v = (int32_t)get_int(e, "head_dim_v", c->head_dim_k);
        c->shared_v = get_bool(e, "shared_v", false);
        c->causal = get_bool(e, "causal", true);
        c->sinks = get_bool(e, "sinks", false);
        c->sliding_window = (int32_t)get_int(e, "sliding_window", 0);
        c->softcap = (float)get_num(e, "softcap", 0.0);
        c->scale = (float)get_num(e, "scale", 0.0);
        c->sparse_k = (int32_t)get_int(e, "sparse_k", 0);
        const json_t *lens = json_object_get(e, "seq_lens"), *qs = json_object_get(e, "q_lens");
        c->n_seqs = (int32_t)json_array_size(lens);
        if (c->n_seqs < 1 || c->n_seqs > CONFORM_MAX_SEQS || json_array_size(qs) != (size_t)c->n_seqs)
            goto bad;
        for (int i = 0; i < c->n_seqs; i++) {
            c->seq_lens[i] = (int64_t)json_number_value(json_array_get(lens, (size_t)i));
            c->q_lens[i] = (int64_t)json_number_value(json_array_get(qs, (size_t)i));
        }
        break;
    }
    case CONFORM_RMSNORM:
        c->rows = get_int(e, "rows", 1);
        c->cols = get_int(e, "dim", 1);
        c->gamma = get_bool(e, "gamma", true);
        break;
    case CONFORM_ROPE:
        c->tokens = get_int(e, "tokens", 1);
        c->n_heads = (int32_t)get_int(e, "n_heads", 1);
        c->head_dim = (int32_t)get_int(e, "head_dim", 2);
        c->rotary_dim = (int32_t)get_int(e, "rotary_dim", c->head_dim);
        c->rope_layout = parse_layout(get_str(e, "rope_layout", "neox"));
        c->rope_theta = (float)get_num(e, "rope_theta", 10000.0);
        c->position_scale = (float)get_num(e, "position_scale", 0.0);
        c->max_position = (int32_t)get_int(e, "max_position", 4096);
        parse_rope_scaling(e, c);
        break;
    default:
        break;
    }
    return true;
bad:
    snprintf(x->err, x->err_len, "edge case '%s': a field is missing or invalid", c->name);
    return false;
}

/* ---- random shapes from the seed ----------------------------------------------------- */

static bool add_random(expand_ctx *x, tool_rng *rng, conform_op op, int index)
{
    char name[32];
    conform_case *c;
    snprintf(name, sizeof(name), "random-%d", index);
    ADD_OR_FAIL(c, op, "random", name);
    switch (op) {
    case CONFORM_MATMUL:
        c->m = tool_rng_range(rng, 1, 40);
        /* At least 16 outputs a row: the bound is relative to the row's rms,
         * and a row of one or two dot products can cancel to almost nothing. */
        c->rows = tool_rng_range(rng, 16, 200);
        c->cols = tool_rng_range(rng, 1, 600);
        c->bias = tool_rng_range(rng, 0, 1);
        break;
    case CONFORM_MOE:
        c->tokens = tool_rng_range(rng, 1, 10);
        c->hidden = tool_rng_range(rng, 16, 300);
        c->inter = tool_rng_range(rng, 8, 200);
        c->n_experts = c->n_experts_model = tool_rng_range(rng, 1, 12);
        c->top_k = (int32_t)tool_rng_range(rng, 1, c->n_experts < 4 ? c->n_experts : 4);
        c->activation = (moak_activation)tool_rng_range(rng, 0, 2);
        c->bias = tool_rng_range(rng, 0, 1);
        break;
    case CONFORM_ROUTE:
        c->tokens = tool_rng_range(rng, 1, 10);
        c->n_experts = tool_rng_range(rng, 2, 70);
        c->top_k = (int32_t)tool_rng_range(rng, 1, c->n_experts < 8 ? c->n_experts : 8);
        c->route = (moak_route_method)tool_rng_range(rng, 0, 3);
        c->renormalize = tool_rng_range(rng, 0, 1);
        if (c->route == MOAK_ROUTE_SIGMOID_TOPK || c->route == MOAK_ROUTE_SQRT_SOFTPLUS_TOPK) {
            c->scaling = (float)tool_rng_uniform(rng, 0.5, 3.0);
            c->selection_bias = tool_rng_range(rng, 0, 1);
            int32_t groups = (int32_t)tool_rng_range(rng, 1, 8);
            /* Groups must divide the experts and hold top_k between the kept ones. */
            if (groups > 1 && c->n_experts % groups == 0) {
                int32_t per_group = (int32_t)(c->n_experts / groups);
                int32_t keep = (int32_t)tool_rng_range(rng, 1, groups);
                if ((int64_t)keep * per_group >= c->top_k) {
                    c->n_groups = groups;
                    c->topk_groups = keep;
                }
            }
        }
        break;
    case CONFORM_ATTENTION: {
        static const int32_t dims[] = {32, 64, 96, 128, 40, 72, 100};
        c->n_kv_heads = (int32_t)tool_rng_range(rng, 1, 4);
        c->n_heads = c->n_kv_heads * (int32_t)tool_rng_range(rng, 1, 4);
        c->head_dim_k = dims[tool_rng_range(rng, 0, 6)];
        c->head_dim_v = tool_rng_range(rng, 0, 3) ? c->head_dim_k : dims[tool_rng_range(rng, 0, 6)];
        c->n_seqs = (int32_t)tool_rng_range(rng, 1, 3);
        for (int i = 0; i < c->n_seqs; i++) {
            c->seq_lens[i] = tool_rng_range(rng, 1, 200);
            c->q_lens[i] = tool_rng_range(rng, 1, c->seq_lens[i] < 8 ? c->seq_lens[i] : 8);
        }
        c->sliding_window = tool_rng_range(rng, 0, 2) ? 0 : (int32_t)tool_rng_range(rng, 1, 64);
        c->softcap = tool_rng_range(rng, 0, 2) ? 0.0f : (float)tool_rng_uniform(rng, 20.0, 50.0);
        c->sinks = tool_rng_range(rng, 0, 1);
        c->causal = tool_rng_range(rng, 0, 4) != 0;
        if (!c->causal)
            c->sliding_window = 0; /* a window needs the causal mask (moak.h) */
        break;
    }
    case CONFORM_INDEXER: {
        static const int32_t dims[] = {32, 64, 128, 40};
        c->n_heads = (int32_t)tool_rng_range(rng, 1, 40);
        c->head_dim_k = dims[tool_rng_range(rng, 0, 3)];
        c->top_k = (int32_t)tool_rng_range(rng, 1, 64);
        c->n_seqs = (int32_t)tool_rng_range(rng, 1, 3);
        for (int i = 0; i < c->n_seqs; i++) {
            c->seq_lens[i] = tool_rng_range(rng, 1, 300);
            c->q_lens[i] = tool_rng_range(rng, 1, c->seq_lens[i] < 4 ? c->seq_lens[i] : 4);
        }
        break;
    }
    case CONFORM_RMSNORM:
        c->rows = tool_rng_range(rng, 1, 8);
        c->cols = tool_rng_range(rng, 1, 2000);
        c->gamma = tool_rng_range(rng, 0, 3) != 0;
        break;
    case CONFORM_ROPE:
        c->tokens = tool_rng_range(rng, 1, 5);
        c->n_heads = (int32_t)tool_rng_range(rng, 1, 6);
        c->head_dim = 2 * (int32_t)tool_rng_range(rng, 1, 80);
        c->rotary_dim = 2 * (int32_t)tool_rng_range(rng, 1, c->head_dim / 2);
        c->rope_layout = (moak_rope_layout)tool_rng_range(rng, 0, 1);
        c->rope_theta = (float)tool_rng_uniform(rng, 1e4, 1e6);
        c->max_position = 8192;
        break;
    default:
        break;
    }
    return true;
}

/* ---- loading --------------------------------------------------------------------- */

bool conform_load_cases(const char *path, const conform_case_options *opt,
                        conform_case_list *list, char *err, size_t err_len)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    memset(list, 0, sizeof(*list));
    if (!root) {
        snprintf(err, err_len, "%s:%d: %s", path, jerr.line, jerr.text);
        return false;
    }
    expand_ctx x = {opt, list, err, err_len};
    bool ok = true;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(root, "models"), i, m) {
        const char *model = get_str(m, "model", "?");
        const json_t *quick = json_object_get(m, "quick");
        ok = expand_moe_model(&x, m, model, quick) && expand_dense_ffn(&x, m, model, quick) &&
             expand_attention(&x, m, model, quick) && expand_sparse(&x, m, model, quick);
        if (!ok)
            break;
    }
    json_t *e;
    if (ok) {
        json_array_foreach(json_object_get(root, "edge"), i, e) {
            if (!(ok = expand_edge(&x, e)))
                break;
        }
    }
    json_decref(root);
    if (ok && opt->random_per_op > 0) {
        tool_rng rng;
        tool_rng_seed(&rng, opt->seed ^ UINT64_C(0x5eed5ca5e));
        for (int op = 0; op < CONFORM_OP_COUNT && ok; op++) {
            if (!(opt->op_mask & (1u << op)))
                continue;
            for (int r = 0; r < opt->random_per_op && ok; r++)
                ok = add_random(&x, &rng, (conform_op)op, r);
        }
    }
    /* Formats: the op's own set, narrowed by --quick's per-model list and --format. */
    for (int k = 0; ok && k < list->count; k++) {
        conform_case *c = &list->items[k];
        uint32_t all = conform_default_formats(c);
        c->formats = c->formats ? c->formats & all : all;
        /* --format names weight and KV formats; ops that only take f32 keep it. */
        if (c->op == CONFORM_MATMUL || c->op == CONFORM_MOE || c->op == CONFORM_ATTENTION || c->op == CONFORM_INDEXER)
            c->formats &= opt->format_mask;
    }
    if (!ok)
        conform_free_cases(list);
    return ok;
}
