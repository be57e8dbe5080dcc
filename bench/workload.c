/* moak-bench workloads: loading and counting (see workload.h). */
#include "config.h"

#include "workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ---- counting ----------------------------------------------------------------------- */

static void add_part(bench_count *c, const char *what, double bytes, double ops, bench_peak peak)
{
    if (c->n_parts < BENCH_MAX_PARTS) {
        bench_part *p = &c->parts[c->n_parts++];
        p->what = what;
        p->bytes = bytes;
        p->ops = ops;
        p->peak = peak;
    }
    c->bytes += bytes;
    c->ops += ops;
}

static double row_bytes(moak_format f, int64_t cols)
{
    return (double)moak_format_row_bytes(f, cols);
}

bench_peak bench_peak_of_format(moak_format f)
{
    switch (f) {
    case MOAK_FORMAT_F32: return BENCH_PEAK_FP32;
    case MOAK_FORMAT_F16:
    case MOAK_FORMAT_BF16: return BENCH_PEAK_FP16;
    default: return BENCH_PEAK_INT8;
    }
}

const char *bench_peak_name(bench_peak p)
{
    switch (p) {
    case BENCH_PEAK_FP32: return "fp32";
    case BENCH_PEAK_INT8: return "int8";
    case BENCH_PEAK_FP16: return "fp16";
    }
    return "?";
}

static void matmul_part(bench_count *c, const char *what, moak_format f, int64_t m, int64_t n, int64_t k)
{
    double bytes = (double)n * row_bytes(f, k) + 4.0 * (double)m * (double)k + 4.0 * (double)m * (double)n;
    add_part(c, what, bytes, 2.0 * (double)m * (double)n * (double)k, bench_peak_of_format(f));
}

void bench_count_matmul(bench_count *c, moak_format f, int64_t m, int64_t n, int64_t k)
{
    memset(c, 0, sizeof(*c));
    matmul_part(c, "matmul", f, m, n, k);
}

static void moe_part(bench_count *c, moak_format f, int64_t tokens, int64_t hidden, int64_t inter, int32_t top_k,
                     int64_t distinct)
{
    double expert = 2.0 * (double)inter * row_bytes(f, hidden) + (double)hidden * row_bytes(f, inter);
    double acts = 2.0 * 4.0 * (double)tokens * (double)hidden + 8.0 * (double)tokens * top_k;
    double ops = 6.0 * (double)tokens * top_k * (double)hidden * (double)inter;
    add_part(c, "moe", (double)distinct * expert + acts, ops, bench_peak_of_format(f));
}

void bench_count_moe(bench_count *c, moak_format f, int64_t tokens, int64_t hidden, int64_t inter,
                     int32_t top_k, int64_t distinct_experts)
{
    memset(c, 0, sizeof(*c));
    moe_part(c, f, tokens, hidden, inter, top_k, distinct_experts);
}

/* Keys a query at position p sees. */
static int64_t visible(int64_t p, int64_t cached, bool causal, int32_t window)
{
    int64_t n = causal ? p + 1 : cached;
    if (window > 0 && n > window)
        n = window;
    return n;
}

static void attention_part(bench_count *c, moak_format kv, int32_t n_heads, int32_t n_kv_heads, int32_t dk,
                           int32_t dv, bool shared_v, int64_t cached, int64_t q_len, bool causal, int32_t window)
{
    /* The keys read: the union of what the queries see (all of them but a
     * window's start when every query is windowed). */
    int64_t first_seen = cached;
    double pairs = 0.0;
    for (int64_t r = 0; r < q_len; r++) {
        int64_t p = cached - q_len + r;
        int64_t n = visible(p, cached, causal, window);
        int64_t start = causal ? p + 1 - n : 0;
        if (start < first_seen)
            first_seen = start;
        pairs += (double)n;
    }
    double keys = (double)(cached - first_seen);
    double row = row_bytes(kv, dk) + (shared_v ? 0.0 : row_bytes(kv, dv));
    double bytes = keys * n_kv_heads * row + 4.0 * (double)q_len * n_heads * (double)(dk + dv);
    double ops = pairs * n_heads * 2.0 * (double)(dk + dv);
    add_part(c, "attention", bytes, ops, BENCH_PEAK_FP32);
}

void bench_count_attention(bench_count *c, moak_format kv, int32_t n_heads, int32_t n_kv_heads,
                           int32_t dk, int32_t dv, bool shared_v, int64_t cached, int64_t q_len,
                           bool causal, int32_t window)
{
    memset(c, 0, sizeof(*c));
    attention_part(c, kv, n_heads, n_kv_heads, dk, dv, shared_v, cached, q_len, causal, window);
}

static void sparse_attention_part(bench_count *c, moak_format kv, int32_t n_heads, int32_t n_kv_heads, int32_t dk,
                                  int32_t dv, bool shared_v, int64_t cached, int32_t sparse_k)
{
    const double keys = (double)(sparse_k < cached ? sparse_k : cached);
    const double row = row_bytes(kv, dk) + (shared_v ? 0.0 : row_bytes(kv, dv));
    const double bytes = keys * n_kv_heads * row + 4.0 * n_heads * (double)(dk + dv) + 4.0 * sparse_k;
    add_part(c, "sparse-attention", bytes, keys * n_heads * 2.0 * (double)(dk + dv), BENCH_PEAK_FP32);
}

void bench_count_sparse_attention(bench_count *c, moak_format kv, int32_t n_heads, int32_t n_kv_heads,
                                  int32_t dk, int32_t dv, bool shared_v, int64_t cached, int32_t sparse_k)
{
    memset(c, 0, sizeof(*c));
    sparse_attention_part(c, kv, n_heads, n_kv_heads, dk, dv, shared_v, cached, sparse_k);
}

static void indexer_part(bench_count *c, moak_format kv, int32_t heads, int32_t dim, int64_t cached, int32_t top_k)
{
    const double bytes = (double)cached * row_bytes(kv, dim) + 4.0 * heads * (double)dim + 4.0 * heads +
                         8.0 * top_k;
    add_part(c, "indexer", bytes, (double)cached * heads * (2.0 * dim + 2.0), BENCH_PEAK_FP32);
}

void bench_count_indexer(bench_count *c, moak_format kv, int32_t index_heads, int32_t index_dim, int64_t cached,
                         int32_t top_k)
{
    memset(c, 0, sizeof(*c));
    indexer_part(c, kv, index_heads, index_dim, cached, top_k);
}

void bench_count_gated_delta(bench_count *c, int32_t hk, int32_t hv, int32_t dk, int32_t dv, int32_t kernel,
                             moak_gate_kind gate, int64_t tokens)
{
    memset(c, 0, sizeof(*c));
    const double C = 2.0 * hk * dk + (double)hv * dv, T = (double)tokens, K = kernel;
    add_part(c, "conv", 4.0 * (T * C + C * K + 2.0 * (K - 1.0) * C), T * (C * (2.0 * K + 4.0) + 6.0 * hk * dk),
             BENCH_PEAK_FP32);
    const double g_per = gate == MOAK_GATE_PER_KEY ? (double)hv * dk : (double)hv;
    const double bytes = 2.0 * 4.0 * hv * (double)dk * dv + 4.0 * T * (g_per + hv + (double)hv * dv);
    double ops = 0.0;
    if (tokens == 1) {
        ops = 7.0 * hv * (double)dk * dv;
    } else {
        for (int64_t t = 0; t < tokens; t += 64) {
            const double L = (double)(tokens - t < 64 ? tokens - t : 64);
            ops += hv * (2.0 * L * L * (3.0 * dk + 2.0 * dv) + 6.0 * L * dk * dv + L * (L - 1.0) * (2.0 * L - 1.0) / 3.0);
        }
    }
    add_part(c, "delta", bytes, ops, BENCH_PEAK_FP32);
}

/* An elementwise pass over n floats read and n written, a few ops each. */
static void elementwise_part(bench_count *c, const char *what, double n, double ops_per)
{
    add_part(c, what, 8.0 * n, ops_per * n, BENCH_PEAK_FP32);
}

void bench_count_layer(bench_count *c, const bench_workload *w, moak_format f)
{
    int64_t q_dim = (int64_t)w->n_heads * w->head_dim_k;
    int64_t kv_dim = (int64_t)w->n_kv_heads * (w->head_dim_k + w->head_dim_v);
    memset(c, 0, sizeof(*c));
    elementwise_part(c, "rmsnorm", (double)w->hidden, 3.0);
    matmul_part(c, "qkv", f, 1, q_dim + kv_dim, w->hidden);
    elementwise_part(c, "qk-norm", (double)(q_dim + (int64_t)w->n_kv_heads * w->head_dim_k), 3.0);
    elementwise_part(c, "rope", (double)(q_dim + (int64_t)w->n_kv_heads * w->head_dim_k), 3.0);
    /* The new token's K and V rows, written once in the cache format. */
    add_part(c, "kv-append", (double)w->n_kv_heads * (row_bytes(w->kv_format, w->head_dim_k) +
                                                      row_bytes(w->kv_format, w->head_dim_v)),
             0.0, BENCH_PEAK_FP32);
    attention_part(c, w->kv_format, w->n_heads, w->n_kv_heads, w->head_dim_k, w->head_dim_v, false,
                   w->cached + 1, 1, true, 0);
    matmul_part(c, "o", f, 1, w->hidden, (int64_t)w->n_heads * w->head_dim_v);
    elementwise_part(c, "rmsnorm", (double)w->hidden, 3.0);
    /* The router stays f32, as real deployments keep it. */
    matmul_part(c, "router", MOAK_FORMAT_F32, 1, w->n_experts, w->hidden);
    elementwise_part(c, "route", (double)w->n_experts, 4.0);
    moe_part(c, f, 1, w->hidden, w->inter, w->top_k, w->top_k);
}

void bench_count_workload(bench_count *c, const bench_workload *w, moak_format f, int64_t distinct_experts)
{
    switch (w->kind) {
    case BENCH_MATMUL:
        bench_count_matmul(c, f, w->m, w->n, w->k);
        break;
    case BENCH_MOE:
        bench_count_moe(c, f, w->tokens, w->hidden, w->inter, w->top_k,
                        distinct_experts > 0 ? distinct_experts : w->top_k);
        break;
    case BENCH_ATTENTION:
        if (w->sparse_k > 0)
            bench_count_sparse_attention(c, f, w->n_heads, w->n_kv_heads, w->head_dim_k, w->head_dim_v,
                                         w->shared_v, w->cached, w->sparse_k);
        else
            bench_count_attention(c, f, w->n_heads, w->n_kv_heads, w->head_dim_k, w->head_dim_v, w->shared_v,
                                  w->cached, w->q_len, true, 0);
        break;
    case BENCH_LAYER:
        bench_count_layer(c, w, f);
        break;
    case BENCH_INDEXER:
        bench_count_indexer(c, f, w->index_heads, w->index_dim, w->cached, w->sparse_k);
        break;
    case BENCH_DSA:
        bench_count_indexer(c, f, w->index_heads, w->index_dim, w->cached, w->sparse_k);
        sparse_attention_part(c, f, w->n_heads, w->n_kv_heads, w->head_dim_k, w->head_dim_v, w->shared_v,
                              w->cached, w->sparse_k);
        break;
    case BENCH_GATED_DELTA:
        bench_count_gated_delta(c, w->n_kv_heads, w->n_heads, w->head_dim_k, w->head_dim_v, w->conv_kernel, w->gate,
                                w->q_len);
        break;
    }
}

/* ---- loading -------------------------------------------------------------------------- */

const char *bench_kind_name(bench_kind kind)
{
    switch (kind) {
    case BENCH_MATMUL: return "matmul";
    case BENCH_MOE: return "moe";
    case BENCH_ATTENTION: return "attention";
    case BENCH_LAYER: return "layer";
    case BENCH_INDEXER: return "indexer";
    case BENCH_DSA: return "dsa";
    case BENCH_GATED_DELTA: return "gated_delta";
    }
    return "?";
}

bool bench_format_fits(const bench_workload *w, moak_format f, char *why, size_t why_len)
{
    if (w->kind == BENCH_GATED_DELTA) {
        if (f == MOAK_FORMAT_F32)
            return true;
        snprintf(why, why_len, "the gated delta rule's state and inputs are f32 only");
        return false;
    }
    if (w->kind != BENCH_ATTENTION && w->kind != BENCH_INDEXER && w->kind != BENCH_DSA)
        return true;
    if (f != MOAK_FORMAT_F32 && f != MOAK_FORMAT_F16 && f != MOAK_FORMAT_BF16 && f != MOAK_FORMAT_Q8_0) {
        snprintf(why, why_len, "%s is not a KV cache format (f32, f16, bf16, q8_0)", moak_format_name(f));
        return false;
    }
    if (f == MOAK_FORMAT_Q8_0 && (w->head_dim_k % 32 || w->head_dim_v % 32 || w->index_dim % 32)) {
        snprintf(why, why_len, "q8_0 KV needs head dims that are multiples of 32");
        return false;
    }
    return true;
}

static int64_t get_int(const json_t *o, const char *key, int64_t dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? (int64_t)json_number_value(v) : dflt;
}

static const char *get_str(const json_t *o, const char *key, const char *dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : dflt;
}

static bool get_bool(const json_t *o, const char *key)
{
    return json_is_true(json_object_get(o, key));
}

static bool parse_workload(const json_t *o, bench_workload *w, char *err, size_t err_len)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->name, sizeof(w->name), "%s", get_str(o, "name", ""));
    snprintf(w->model, sizeof(w->model), "%s", get_str(o, "model", ""));
    snprintf(w->source, sizeof(w->source), "%s", get_str(o, "source", ""));
    snprintf(w->description, sizeof(w->description), "%s", get_str(o, "description", ""));
    w->is_default = get_bool(o, "default");
    const char *op = get_str(o, "op", "");
    if (strcmp(op, "matmul") == 0)
        w->kind = BENCH_MATMUL;
    else if (strcmp(op, "moe") == 0)
        w->kind = BENCH_MOE;
    else if (strcmp(op, "attention") == 0)
        w->kind = BENCH_ATTENTION;
    else if (strcmp(op, "layer") == 0)
        w->kind = BENCH_LAYER;
    else if (strcmp(op, "indexer") == 0)
        w->kind = BENCH_INDEXER;
    else if (strcmp(op, "dsa") == 0)
        w->kind = BENCH_DSA;
    else if (strcmp(op, "gated_delta") == 0)
        w->kind = BENCH_GATED_DELTA;
    else {
        snprintf(err, err_len, "workload '%s': unknown op '%s'", w->name, op);
        return false;
    }
    if (!w->name[0] || moak_format_from_name(get_str(o, "format", ""), &w->format) != MOAK_OK) {
        snprintf(err, err_len, "workload '%s': a name and a format are required", w->name);
        return false;
    }
    if (moak_format_from_name(get_str(o, "kv_format", "f16"), &w->kv_format) != MOAK_OK) {
        snprintf(err, err_len, "workload '%s': unknown kv_format", w->name);
        return false;
    }
    w->m = get_int(o, "m", 0);
    w->n = get_int(o, "n", 0);
    w->k = get_int(o, "k", 0);
    w->tokens = get_int(o, "tokens", 1);
    w->hidden = get_int(o, "hidden", 0);
    w->inter = get_int(o, "inter", 0);
    w->n_experts = get_int(o, "n_experts", 0);
    w->top_k = (int32_t)get_int(o, "top_k", 0);
    const char *act = get_str(o, "activation", "silu_glu");
    w->activation = strcmp(act, "gelu_glu") == 0 ? MOAK_ACT_GELU_GLU :
                    strcmp(act, "swiglu_oai") == 0 ? MOAK_ACT_SWIGLU_OAI : MOAK_ACT_SILU_GLU;
    const char *route = get_str(o, "route", "softmax_topk");
    w->route = strcmp(route, "sigmoid_topk") == 0 ? MOAK_ROUTE_SIGMOID_TOPK :
               strcmp(route, "topk_softmax") == 0 ? MOAK_ROUTE_TOPK_SOFTMAX : MOAK_ROUTE_SOFTMAX_TOPK;
    w->n_heads = (int32_t)get_int(o, "n_heads", 0);
    w->n_kv_heads = (int32_t)get_int(o, "n_kv_heads", 0);
    w->head_dim_k = (int32_t)get_int(o, "head_dim_k", 0);
    w->head_dim_v = (int32_t)get_int(o, "head_dim_v", w->head_dim_k);
    w->shared_v = get_bool(o, "shared_v");
    w->sinks = get_bool(o, "sinks");
    const json_t *scale = json_object_get(o, "scale");
    w->scale = json_is_number(scale) ? (float)json_number_value(scale) : 0.0f;
    const json_t *theta = json_object_get(o, "rope_theta");
    w->rope_theta = json_is_number(theta) ? (float)json_number_value(theta) : 10000.0f;
    w->cached = get_int(o, "cached", 0);
    w->q_len = get_int(o, "q_len", 1);
    w->sparse_k = (int32_t)get_int(o, "sparse_k", 0);
    w->index_heads = (int32_t)get_int(o, "index_n_heads", 0);
    w->index_dim = (int32_t)get_int(o, "index_head_dim", 0);
    w->gate = strcmp(get_str(o, "gate", "per_head"), "per_key") == 0 ? MOAK_GATE_PER_KEY : MOAK_GATE_PER_HEAD;
    w->conv_kernel = (int32_t)get_int(o, "conv_kernel", 4);

    bool ok = true;
    switch (w->kind) {
    case BENCH_MATMUL: ok = w->m > 0 && w->n > 0 && w->k > 0; break;
    case BENCH_MOE: ok = w->hidden > 0 && w->inter > 0 && w->top_k > 0 && w->n_experts >= w->top_k && w->tokens > 0; break;
    case BENCH_ATTENTION:
        ok = w->n_heads > 0 && w->n_kv_heads > 0 && w->head_dim_k > 0 && w->head_dim_v > 0 && w->cached > 0 &&
             w->q_len > 0 && w->q_len <= w->cached && w->sparse_k >= 0 && (w->sparse_k == 0 || w->q_len == 1);
        break;
    case BENCH_INDEXER:
        /* decode: one query (the count is a decode query's) */
        ok = w->index_heads > 0 && w->index_dim > 0 && w->sparse_k > 0 && w->cached > 0 && w->q_len == 1;
        break;
    case BENCH_DSA:
        ok = w->index_heads > 0 && w->index_dim > 0 && w->sparse_k > 0 && w->cached > 0 && w->q_len == 1 &&
             w->n_heads > 0 && w->n_kv_heads > 0 && w->head_dim_k > 0 && w->head_dim_v > 0;
        break;
    case BENCH_GATED_DELTA:
        ok = w->n_heads > 0 && w->n_kv_heads > 0 && w->n_heads % w->n_kv_heads == 0 && w->head_dim_k > 0 &&
             w->head_dim_v > 0 && w->q_len > 0 && w->conv_kernel >= 1;
        break;
    case BENCH_LAYER:
        ok = w->hidden > 0 && w->n_heads > 0 && w->n_kv_heads > 0 && w->head_dim_k > 0 && w->inter > 0 &&
             w->top_k > 0 && w->n_experts >= w->top_k && w->cached > 0;
        break;
    }
    if (!ok)
        snprintf(err, err_len, "workload '%s': its %s shape is incomplete", w->name, op);
    return ok;
}

bool bench_load_workloads(const char *path, bench_workload_list *list, char *err, size_t err_len)
{
    json_error_t jerr;
    memset(list, 0, sizeof(*list));
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        snprintf(err, err_len, "%s:%d: %s", path, jerr.line, jerr.text);
        return false;
    }
    const json_t *array = json_object_get(root, "workloads");
    size_t n = json_array_size(array);
    list->items = calloc(n ? n : 1, sizeof(*list->items));
    bool ok = list->items != NULL && n > 0;
    if (!ok)
        snprintf(err, err_len, "%s: no workloads", path);
    for (size_t i = 0; ok && i < n; i++) {
        ok = parse_workload(json_array_get(array, i), &list->items[i], err, err_len);
        list->count += ok;
    }
    json_decref(root);
    if (!ok)
        bench_free_workloads(list);
    return ok;
}

void bench_free_workloads(bench_workload_list *list)
{
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

const bench_workload *bench_find_workload(const bench_workload_list *list, const char *name)
{
    for (int i = 0; i < list->count; i++)
        if (strcmp(list->items[i].name, name) == 0)
            return &list->items[i];
    return NULL;
}
