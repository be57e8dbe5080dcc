/* Running one case on one backend (see conform_run.h). */
#include "config.h"

#include "conform_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool_support.h"

/* ---- backends and their logs ------------------------------------------------------ */

/* The dispatcher's verbose lines read "<what>: <backend> refused: <why>".
 * Keep this backend's refusals; keep every line in the case log. */
static void capture_log(void *user, moak_log_level level, const char *message)
{
    conform_backend *b = user;
    size_t len = strlen(message);
    if (b->log_used + len + 2 < sizeof(b->log)) {
        memcpy(b->log + b->log_used, message, len);
        b->log_used += len;
        b->log[b->log_used++] = '\n';
        b->log[b->log_used] = '\0';
    }
    if (level == MOAK_LOG_ERROR || level == MOAK_LOG_WARN)
        fprintf(stderr, "moak-conform: [%s] %s\n", b->name, message);
    const char *refused = strstr(message, " refused: ");
    if (!refused)
        return;
    /* The backend's name sits between the last ": " before " refused" and it. */
    const char *name_start = refused;
    while (name_start > message && !(name_start[-1] == ' ' && name_start - 2 >= message && name_start[-2] == ':'))
        name_start--;
    size_t name_len = (size_t)(refused - name_start);
    if (name_len != strlen(b->name) || strncmp(name_start, b->name, name_len) != 0)
        return;
    int slot = b->next_refusal;
    b->next_refusal = (b->next_refusal + 1) % CONFORM_REFUSALS;
    if (b->n_refusals < CONFORM_REFUSALS)
        b->n_refusals++;
    size_t what_len = name_start >= message + 2 ? (size_t)(name_start - 2 - message) : 0;
    snprintf(b->refusals[slot].what, sizeof(b->refusals[slot].what), "%.*s", (int)what_len, message);
    snprintf(b->refusals[slot].why, sizeof(b->refusals[slot].why), "%s", refused + strlen(" refused: "));
}

moak_status conform_backend_open(conform_backend *b, const char *name, int32_t threads, uint32_t flags)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->name, sizeof(b->name), "%s", name);
    moak_context_options o = MOAK_CONTEXT_OPTIONS_INIT;
    o.backends = name;
    o.num_threads = threads;
    o.verbose = 1;
    o.flags = flags;
    o.log_fn = capture_log;
    o.log_user = b;
    return moak_context_create(&o, &b->ctx);
}

void conform_backend_close(conform_backend *b)
{
    moak_context_destroy(b->ctx);
    b->ctx = NULL;
}

const char *conform_outcome_name(conform_outcome o)
{
    switch (o) {
    case CONFORM_PASS: return "pass";
    case CONFORM_FAIL: return "FAIL";
    case CONFORM_DECLINED: return "declined";
    case CONFORM_SKIPPED: return "skipped";
    }
    return "?";
}

/* ---- inputs -------------------------------------------------------------------------- */

/* A split-scale format (moak.h's release formats): each expert quantized
 * whole (FP8's 128-row blocks, NVFP4's tensor scale), data and scales
 * stacked per expert as moak_weight_desc wants them. */
static bool make_split_weight(tool_rng *rng, moak_format f, int64_t experts, int64_t rows, int64_t cols,
                              void **dst, size_t *size, void **scales, size_t *scales_size)
{
    const size_t data = moak_format_row_bytes(f, cols) * (size_t)rows;
    const size_t sb = moak_format_scales_bytes(f, rows, cols);
    *size = data * (size_t)experts;
    *scales_size = sb * (size_t)experts;
    *dst = malloc(*size ? *size : 1);
    *scales = malloc(*scales_size ? *scales_size : 1);
    float *src = malloc((size_t)rows * (size_t)cols * sizeof(float));
    unsigned char *one = malloc(data + sb);
    bool ok = *dst && *scales && src && one;
    float spread = 4.0f / sqrtf((float)cols);
    for (int64_t e = 0; ok && e < experts; e++) {
        tool_rng_fill(rng, src, rows * cols, -spread, spread);
        ok = moak_quantize(f, src, rows, cols, one, data + sb) == MOAK_OK;
        memcpy((unsigned char *)*dst + (size_t)e * data, one, data);
        memcpy((unsigned char *)*scales + (size_t)e * sb, one + data, sb);
    }
    free(src);
    free(one);
    return ok;
}

/* rows x cols random values with a spread that keeps activations in the
 * interesting range of SiLU/GELU/SwiGLU, quantized to format into dst
 * (experts stacked; the scales apart for a split-scale format). */
static bool make_weight(tool_rng *rng, moak_format f, int64_t experts, int64_t rows_one, int64_t cols, void **dst,
                        size_t *size, void **scales, size_t *scales_size)
{
    *scales = NULL;
    *scales_size = 0;
    if (moak_format_scales_bytes(f, rows_one, cols) > 0)
        return make_split_weight(rng, f, experts, rows_one, cols, dst, size, scales, scales_size);
    const int64_t rows = experts * rows_one;
    size_t row_bytes = moak_format_row_bytes(f, cols);
    *size = row_bytes * (size_t)rows;
    *dst = malloc(*size ? *size : 1);
    enum { CHUNK = 64 };
    float *src = malloc((size_t)CHUNK * (size_t)cols * sizeof(float));
    if (!*dst || !src) {
        free(src);
        return false;
    }
    float spread = 4.0f / sqrtf((float)cols);
    for (int64_t r = 0; r < rows; r += CHUNK) {
        int64_t n = rows - r < CHUNK ? rows - r : CHUNK;
        tool_rng_fill(rng, src, n * cols, -spread, spread);
        if (moak_quantize(f, src, n, cols, (unsigned char *)*dst + (size_t)r * row_bytes,
                          *size - (size_t)r * row_bytes) != MOAK_OK) {
            free(src);
            return false;
        }
    }
    free(src);
    return true;
}

static float *random_floats(tool_rng *rng, int64_t n, float lo, float hi)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (p)
        tool_rng_fill(rng, p, n, lo, hi);
    return p;
}

static int64_t total_queries(const conform_case *c)
{
    int64_t t = 0;
    for (int i = 0; i < c->n_seqs; i++)
        t += c->q_lens[i];
    return t;
}

/* The reference's selection scores, in double, for the routing tie rule. */
static void route_scores(const conform_case *c, const float *logits, const float *bias, double *scores)
{
    for (int64_t t = 0; t < c->tokens; t++) {
        const float *l = logits + t * c->n_experts;
        double *s = scores + t * c->n_experts;
        if (c->route == MOAK_ROUTE_SOFTMAX_TOPK) {
            double mx = -INFINITY, sum = 0.0;
            for (int64_t e = 0; e < c->n_experts; e++)
                mx = l[e] > mx ? l[e] : mx;
            for (int64_t e = 0; e < c->n_experts; e++)
                sum += (s[e] = exp((double)l[e] - mx));
            for (int64_t e = 0; e < c->n_experts; e++)
                s[e] /= sum;
        } else if (c->route == MOAK_ROUTE_TOPK_SOFTMAX) {
            for (int64_t e = 0; e < c->n_experts; e++)
                s[e] = l[e];
        } else if (c->route == MOAK_ROUTE_SQRT_SOFTPLUS_TOPK) {
            for (int64_t e = 0; e < c->n_experts; e++)
                s[e] = sqrt(log1p(exp((double)l[e]))) + (bias ? bias[e] : 0.0);
        } else {
            for (int64_t e = 0; e < c->n_experts; e++)
                s[e] = 1.0 / (1.0 + exp(-(double)l[e])) + (bias ? bias[e] : 0.0);
        }
    }
}

/* Distinct experts per token (or the same ones for every token). */
static void make_ids(tool_rng *rng, const conform_case *c, int32_t *ids, float *weights)
{
    for (int64_t t = 0; t < c->tokens; t++) {
        int32_t *row = ids + t * c->top_k;
        for (int32_t j = 0; j < c->top_k; j++) {
            int32_t id;
            if (c->ids == CONFORM_IDS_SAME) {
                id = (int32_t)((2 * j + 1) % c->n_experts);
            } else {
                bool repeat;
                do {
                    id = (int32_t)tool_rng_range(rng, 0, c->n_experts - 1);
                    repeat = false;
                    for (int32_t i = 0; i < j; i++)
                        repeat |= row[i] == id;
                } while (repeat);
            }
            row[j] = id;
            weights[t * c->top_k + j] = (float)tool_rng_uniform(rng, 0.05, 1.0);
        }
    }
}

/* Sparse attention's lists, as an indexer would give them: distinct
 * positions of the query's sequence in random order, the causal ones first
 * choice but some after the query too (prefill: masked, not an error), -1
 * filling a list longer than the sequence. */
static int32_t *make_sparse_lists(tool_rng *rng, const conform_case *c)
{
    int32_t *lists = malloc((size_t)total_queries(c) * (size_t)c->sparse_k * sizeof(int32_t));
    int64_t max_len = 1;
    for (int i = 0; i < c->n_seqs; i++)
        max_len = c->seq_lens[i] > max_len ? c->seq_lens[i] : max_len;
    int32_t *perm = malloc((size_t)max_len * sizeof(int32_t));
    if (!lists || !perm) {
        free(lists);
        free(perm);
        return NULL;
    }
    int64_t t = 0;
    for (int i = 0; i < c->n_seqs; i++)
        for (int64_t r = 0; r < c->q_lens[i]; r++, t++) {
            int32_t *l = lists + t * c->sparse_k;
            for (int64_t j = 0; j < c->seq_lens[i]; j++)
                perm[j] = (int32_t)j;
            for (int32_t e = 0; e < c->sparse_k; e++) {
                if (e >= c->seq_lens[i]) {
                    l[e] = -1;
                    continue;
                }
                int64_t o = tool_rng_range(rng, e, c->seq_lens[i] - 1);
                int32_t tmp = perm[e];
                perm[e] = perm[o];
                perm[o] = tmp;
                l[e] = perm[e];
            }
        }
    free(perm);
    return lists;
}

/* The indexer's inputs and the tool's own scores of every causal position,
 * in double from the keys as the cache stores them (a round trip through
 * the format by the public moak_quantize/moak_dequantize). */
static bool make_indexer_inputs(tool_rng *rng, const conform_case *c, moak_format f, conform_inputs *in)
{
    const int64_t total = total_queries(c), dim = c->head_dim_k;
    int64_t stride = 1;
    for (int i = 0; i < c->n_seqs; i++)
        stride = c->seq_lens[i] > stride ? c->seq_lens[i] : stride;
    in->score_stride = stride;
    in->q = random_floats(rng, total * c->n_heads * dim, -1.0f, 1.0f);
    in->weights = random_floats(rng, total * c->n_heads, -0.1f, 0.1f);
    in->scores = malloc((size_t)(total * stride) * sizeof(double));
    in->query_last = malloc((size_t)total * sizeof(int64_t));
    const size_t row_bytes = moak_format_row_bytes(f, dim);
    unsigned char *packed = malloc(row_bytes);
    float *stored = malloc((size_t)dim * sizeof(float));
    bool ok = in->q && in->weights && in->scores && in->query_last && packed && stored;
    int64_t t = 0;
    for (int i = 0; i < c->n_seqs && ok; i++) {
        ok = (in->k[i] = random_floats(rng, c->seq_lens[i] * dim, -1.0f, 1.0f)) != NULL;
        double *keys = ok ? malloc((size_t)(c->seq_lens[i] * dim) * sizeof(double)) : NULL;
        ok = ok && keys;
        for (int64_t j = 0; ok && j < c->seq_lens[i]; j++) {
            ok = moak_quantize(f, in->k[i] + j * dim, 1, dim, packed, row_bytes) == MOAK_OK &&
                 moak_dequantize(f, packed, row_bytes, 1, dim, stored) == MOAK_OK;
            for (int64_t e = 0; e < dim; e++)
                keys[j * dim + e] = stored[e];
        }
        for (int64_t r = 0; ok && r < c->q_lens[i]; r++, t++) {
            const int64_t p = c->seq_lens[i] - c->q_lens[i] + r;
            in->query_last[t] = p;
            for (int64_t j = 0; j <= p; j++) {
                double s = 0.0;
                for (int32_t h = 0; h < c->n_heads; h++) {
                    const float *q = in->q + (t * c->n_heads + h) * dim;
                    double d = 0.0;
                    for (int64_t e = 0; e < dim; e++)
                        d += (double)q[e] * keys[j * dim + e];
                    if (d > 0.0)
                        s += (double)in->weights[t * c->n_heads + h] * d;
                }
                in->scores[t * stride + j] = s;
            }
        }
        free(keys);
    }
    free(packed);
    free(stored);
    in->out_rows = total;
    in->out_cols = c->top_k;
    return ok;
}

bool conform_make_inputs(const conform_case *c, moak_format f, uint64_t seed,
                         conform_inputs *in, char *err, size_t err_len)
{
    tool_rng rng;
    memset(in, 0, sizeof(*in));
    in->format = f;
    tool_rng_seed(&rng, seed);
    bool ok = true;
    switch (c->op) {
    case CONFORM_MATMUL:
        ok = make_weight(&rng, f, 1, c->rows, c->cols, &in->w[0], &in->w_size[0], &in->scales[0],
                         &in->scales_size[0]);
        in->x = random_floats(&rng, c->m * c->cols, -1.0f, 1.0f);
        if (c->bias)
            ok &= (in->bias[0] = random_floats(&rng, c->rows, -0.5f, 0.5f)) != NULL;
        in->out_rows = c->m;
        in->out_cols = c->rows;
        break;
    case CONFORM_MOE:
        ok = make_weight(&rng, f, c->n_experts, c->inter, c->hidden, &in->w[0], &in->w_size[0], &in->scales[0],
                         &in->scales_size[0]) &&
             make_weight(&rng, f, c->n_experts, c->inter, c->hidden, &in->w[1], &in->w_size[1], &in->scales[1],
                         &in->scales_size[1]) &&
             make_weight(&rng, f, c->n_experts, c->hidden, c->inter, &in->w[2], &in->w_size[2], &in->scales[2],
                         &in->scales_size[2]);
        if (ok && c->bias) {
            ok = (in->bias[0] = random_floats(&rng, c->n_experts * c->inter, -0.5f, 0.5f)) &&
                 (in->bias[1] = random_floats(&rng, c->n_experts * c->inter, -0.5f, 0.5f)) &&
                 (in->bias[2] = random_floats(&rng, c->n_experts * c->hidden, -0.5f, 0.5f));
        }
        in->x = random_floats(&rng, c->tokens * c->hidden, -1.0f, 1.0f);
        in->ids = malloc((size_t)(c->tokens * c->top_k) * sizeof(int32_t));
        in->weights = malloc((size_t)(c->tokens * c->top_k) * sizeof(float));
        if (in->ids && in->weights)
            make_ids(&rng, c, in->ids, in->weights);
        in->out_rows = c->tokens;
        in->out_cols = c->hidden;
        break;
    case CONFORM_ROUTE:
        in->x = random_floats(&rng, c->tokens * c->n_experts, -4.0f, 4.0f);
        if (in->x && c->tie_logits) {
            /* Three values only: many exact ties, at the top-k border too. */
            static const float levels[3] = {-1.0f, 0.5f, 2.0f};
            for (int64_t i = 0; i < c->tokens * c->n_experts; i++)
                in->x[i] = levels[tool_rng_range(&rng, 0, 2)];
        }
        if (c->selection_bias)
            in->route_bias = random_floats(&rng, c->n_experts, -0.5f, 0.5f);
        in->scores = malloc((size_t)(c->tokens * c->n_experts) * sizeof(double));
        if (in->x && in->scores)
            route_scores(c, in->x, in->route_bias, in->scores);
        ok = in->scores && (!c->selection_bias || in->route_bias);
        in->out_rows = c->tokens;
        in->out_cols = c->top_k;
        break;
    case CONFORM_ATTENTION:
        for (int i = 0; i < c->n_seqs && ok; i++) {
            in->k[i] = random_floats(&rng, c->seq_lens[i] * c->n_kv_heads * c->head_dim_k, -1.0f, 1.0f);
            if (!c->shared_v)
                ok &= (in->v[i] = random_floats(&rng, c->seq_lens[i] * c->n_kv_heads * c->head_dim_v, -1.0f, 1.0f)) != NULL;
            ok &= in->k[i] != NULL;
        }
        in->x = NULL;
        in->q = random_floats(&rng, total_queries(c) * c->n_heads * c->head_dim_k, -1.0f, 1.0f);
        if (c->sinks)
            ok &= (in->sinks = random_floats(&rng, c->n_heads, -1.0f, 1.0f)) != NULL;
        ok &= in->q != NULL;
        in->out_rows = total_queries(c);
        in->out_cols = (int64_t)c->n_heads * c->head_dim_v;
        if (ok && c->sparse_k > 0)
            ok = (in->sparse = make_sparse_lists(&rng, c)) != NULL;
        break;
    case CONFORM_INDEXER:
        ok = make_indexer_inputs(&rng, c, f, in);
        break;
    case CONFORM_RMSNORM:
        in->x = random_floats(&rng, c->rows * c->cols, -2.0f, 2.0f);
        if (c->gamma)
            ok &= (in->gamma = random_floats(&rng, c->cols, 0.5f, 1.5f)) != NULL;
        in->out_rows = c->rows;
        in->out_cols = c->cols;
        break;
    case CONFORM_ROPE:
        in->x = random_floats(&rng, c->tokens * c->n_heads * c->head_dim, -1.0f, 1.0f);
        in->positions = malloc((size_t)c->tokens * sizeof(int32_t));
        if (in->positions)
            for (int64_t t = 0; t < c->tokens; t++)
                in->positions[t] = (int32_t)tool_rng_range(&rng, 0, c->max_position - 1);
        ok &= in->positions != NULL;
        in->out_rows = c->tokens * c->n_heads;
        in->out_cols = c->head_dim;
        break;
    default:
        ok = false;
    }
    if (c->op != CONFORM_ATTENTION && c->op != CONFORM_INDEXER)
        ok &= in->x != NULL;
    if (c->op == CONFORM_MOE)
        ok &= in->ids && in->weights;
    if (!ok) {
        snprintf(err, err_len, "out of memory (or quantization failed) making the inputs");
        conform_free_inputs(in);
    }
    return ok;
}

void conform_free_inputs(conform_inputs *in)
{
    for (int i = 0; i < 3; i++) {
        free(in->w[i]);
        free(in->scales[i]);
        free(in->bias[i]);
    }
    for (int i = 0; i < CONFORM_MAX_SEQS; i++) {
        free(in->k[i]);
        free(in->v[i]);
    }
    free(in->x);
    free(in->ids);
    free(in->weights);
    free(in->gamma);
    free(in->route_bias);
    free(in->scores);
    free(in->q);
    free(in->sinks);
    free(in->positions);
    free(in->sparse);
    free(in->query_last);
    memset(in, 0, sizeof(*in));
}

bool conform_alloc_outputs(const conform_case *c, const conform_inputs *in, conform_outputs *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = (size_t)(in->out_rows * in->out_cols);
    if (c->op == CONFORM_ROUTE || c->op == CONFORM_INDEXER) {
        out->ids = malloc((n ? n : 1) * sizeof(int32_t));
        out->w = malloc((n ? n : 1) * sizeof(float));
        return out->ids && out->w;
    }
    out->y = malloc((n ? n : 1) * sizeof(float));
    return out->y != NULL;
}

void conform_free_outputs(conform_outputs *out)
{
    free(out->y);
    free(out->ids);
    free(out->w);
    memset(out, 0, sizeof(*out));
}

/* ---- running ---------------------------------------------------------------------------- */

/* The dispatcher's op word for a case ("matmul" also covers weight creation). */
static const char *dispatch_word(conform_op op)
{
    switch (op) {
    case CONFORM_MATMUL: return "matmul";
    case CONFORM_MOE: return "moe_ffn";
    case CONFORM_ROUTE: return "moe_route";
    case CONFORM_ATTENTION: return "attention";
    case CONFORM_RMSNORM: return "rmsnorm";
    case CONFORM_ROPE: return "rope";
    case CONFORM_INDEXER: return "indexer";
    default: return "?";
    }
}

/* The backend's own reason for not running the case: its newest refusal of
 * this op and format (weights are asked about as "matmul"). */
static void decline(conform_backend *b, const conform_case *c, moak_format f, const char *ran_on,
                    const char *stage, conform_result *res)
{
    char prefix[64];
    const char *word = c->op == CONFORM_MOE && strcmp(stage, "moe") != 0 ? "matmul" : dispatch_word(c->op);
    /* As the dispatcher describes an op: "matmul q4_0 ...", "attention kv=f16 ...", "rope ...". */
    if (c->op == CONFORM_ATTENTION)
        snprintf(prefix, sizeof(prefix), "attention kv=%s", moak_format_name(f));
    else if (c->op == CONFORM_MATMUL || c->op == CONFORM_MOE)
        snprintf(prefix, sizeof(prefix), "%s %s", word, moak_format_name(f));
    else
        snprintf(prefix, sizeof(prefix), "%s", word);
    const char *why = NULL, *what = NULL;
    for (int i = 1; i <= b->n_refusals && !why; i++) {
        int slot = (b->next_refusal - i + CONFORM_REFUSALS) % CONFORM_REFUSALS;
        if (strncmp(b->refusals[slot].what, prefix, strlen(prefix)) == 0) {
            why = b->refusals[slot].why;
            what = b->refusals[slot].what;
        }
    }
    snprintf(res->ran_on, sizeof(res->ran_on), "%s", ran_on);
    if (!why || !*why || strstr(why, "declined without a reason")) {
        res->outcome = CONFORM_FAIL;
        snprintf(res->detail, sizeof(res->detail), "%s: %s declined (%s ran it) without saying why", stage,
                 b->name, ran_on);
        return;
    }
    res->outcome = CONFORM_DECLINED;
    snprintf(res->detail, sizeof(res->detail), "%s: %s (%s)", stage, why, what);
}

static bool failed(conform_backend *b, moak_status st, const char *call, conform_result *res)
{
    if (st == MOAK_OK)
        return false;
    res->outcome = st == MOAK_ERR_UNSUPPORTED ? CONFORM_DECLINED : CONFORM_FAIL;
    snprintf(res->detail, sizeof(res->detail), "%s: %s; %s", call, moak_status_str(st), moak_last_error(b->ctx));
    if (res->outcome == CONFORM_DECLINED && strstr(res->detail, "declined without a reason"))
        res->outcome = CONFORM_FAIL;
    return true;
}

static moak_status create_weight(conform_backend *b, moak_format f, int64_t experts, int64_t rows, int64_t cols,
                                 const void *data, size_t size, const void *scales, size_t scales_size,
                                 const float *bias, moak_weight **w)
{
    moak_weight_desc d = MOAK_WEIGHT_DESC_INIT;
    d.format = f;
    d.n_experts = experts;
    d.rows = rows;
    d.cols = cols;
    d.data = data;
    d.data_size = size;
    d.scales = scales;
    d.scales_size = scales_size;
    d.bias = bias;
    return moak_weight_create(b->ctx, &d, w);
}

/* Was the weight packed for b?  If not, the case is declined there. */
static bool weight_elsewhere(conform_backend *b, const conform_case *c, moak_format f, const moak_weight *w,
                             conform_result *res)
{
    const char *owner = moak_weight_backend(w);
    if (strcmp(owner, b->name) == 0)
        return false;
    decline(b, c, f, owner, "weight", res);
    return true;
}

static void poison(const conform_case *c, const conform_inputs *in, conform_outputs *out)
{
    int64_t n = in->out_rows * in->out_cols;
    for (int64_t i = 0; i < n; i++) {
        if (c->op == CONFORM_ROUTE || c->op == CONFORM_INDEXER) {
            out->ids[i] = -2; /* -1 is an output of the indexer */
            out->w[i] = NAN;
        } else {
            out->y[i] = NAN;
        }
    }
}

static void run_matmul(conform_backend *b, const conform_case *c, const conform_inputs *in, conform_outputs *out,
                       conform_result *res)
{
    moak_weight *w = NULL;
    if (failed(b, create_weight(b, in->format, 1, c->rows, c->cols, in->w[0], in->w_size[0], in->scales[0],
                                in->scales_size[0], in->bias[0], &w),
               "moak_weight_create", res))
        return;
    if (!weight_elsewhere(b, c, in->format, w, res)) {
        double t0 = tool_now();
        moak_status st = moak_matmul(b->ctx, w, in->x, c->m, out->y);
        res->seconds = tool_now() - t0;
        failed(b, st, "moak_matmul", res);
    }
    moak_weight_destroy(w);
}

static void run_moe(conform_backend *b, const conform_case *c, const conform_inputs *in, conform_outputs *out,
                    conform_result *res)
{
    moak_weight *w[3] = {NULL, NULL, NULL};
    int64_t rows[3] = {c->inter, c->inter, c->hidden}, cols[3] = {c->hidden, c->hidden, c->inter};
    bool ok = true;
    for (int i = 0; i < 3 && ok; i++) {
        ok = !failed(b, create_weight(b, in->format, c->n_experts, rows[i], cols[i], in->w[i], in->w_size[i],
                                      in->scales[i], in->scales_size[i], in->bias[i], &w[i]),
                     "moak_weight_create", res) &&
             !weight_elsewhere(b, c, in->format, w[i], res);
    }
    if (ok) {
        moak_moe_desc d = MOAK_MOE_DESC_INIT;
        d.activation = c->activation;
        double t0 = tool_now();
        moak_status st = moak_moe_ffn(b->ctx, &d, w[0], w[1], w[2], in->x, c->tokens, c->top_k, in->ids,
                                      in->weights, out->y);
        res->seconds = tool_now() - t0;
        failed(b, st, "moak_moe_ffn", res);
    }
    for (int i = 0; i < 3; i++)
        moak_weight_destroy(w[i]);
}

static void run_route(conform_backend *b, const conform_case *c, const conform_inputs *in, conform_outputs *out,
                      conform_result *res)
{
    moak_router_desc d = MOAK_ROUTER_DESC_INIT;
    d.method = c->route;
    d.n_experts = (int32_t)c->n_experts;
    d.top_k = c->top_k;
    d.renormalize = c->renormalize;
    d.scaling_factor = c->scaling;
    d.bias = in->route_bias;
    d.n_groups = c->n_groups;
    d.topk_groups = c->topk_groups;
    double t0 = tool_now();
    moak_status st = moak_moe_route(b->ctx, &d, in->x, c->tokens, out->ids, out->w);
    res->seconds = tool_now() - t0;
    failed(b, st, "moak_moe_route", res);
}

/* The case's sequences in a fresh cache on b (attention: K and V as the
 * case says; the indexer: K-only index keys), with the ids and q_lens of
 * the call.  false (and *kv possibly NULL, to destroy anyway) on failure. */
static bool fill_cache(conform_backend *b, const conform_case *c, const conform_inputs *in, int32_t n_kv_heads,
                       int32_t head_dim_v, uint32_t flags, moak_kv_cache **kv, int32_t *seq_ids, int32_t *q_lens,
                       conform_result *res)
{
    enum { PAGE = 64 };
    moak_kv_cache_desc d = MOAK_KV_CACHE_DESC_INIT;
    d.format = in->format;
    d.n_kv_heads = n_kv_heads;
    d.head_dim_k = c->head_dim_k;
    d.head_dim_v = head_dim_v;
    d.max_seqs = c->n_seqs;
    d.page_tokens = PAGE;
    d.flags = flags;
    for (int i = 0; i < c->n_seqs; i++)
        d.max_tokens += (c->seq_lens[i] + PAGE - 1) / PAGE * PAGE;
    if (failed(b, moak_kv_cache_create(b->ctx, &d, kv), "moak_kv_cache_create", res))
        return false;
    bool ok = true;
    for (int i = 0; i < c->n_seqs && ok; i++) {
        seq_ids[i] = i;
        q_lens[i] = (int32_t)c->q_lens[i];
        ok = !failed(b, moak_kv_cache_append(b->ctx, *kv, i, c->seq_lens[i], in->k[i], in->v[i]),
                     "moak_kv_cache_append", res);
    }
    return ok;
}

static void run_attention(conform_backend *b, const conform_case *c, const conform_inputs *in,
                          conform_outputs *out, conform_result *res)
{
    moak_kv_cache *kv = NULL;
    int32_t seq_ids[CONFORM_MAX_SEQS], q_lens[CONFORM_MAX_SEQS];
    const bool ok = fill_cache(b, c, in, c->n_kv_heads, c->head_dim_v, c->shared_v ? MOAK_KV_SHARED_V : 0u, &kv,
                               seq_ids, q_lens, res);
    if (ok) {
        moak_attention_desc a = MOAK_ATTENTION_DESC_INIT;
        a.n_heads = c->n_heads;
        a.head_dim_k = c->head_dim_k;
        a.head_dim_v = c->head_dim_v;
        a.scale = c->scale;
        a.causal = c->causal;
        a.sliding_window = c->sliding_window;
        a.softcap = c->softcap;
        a.sinks = in->sinks;
        a.sparse_positions = in->sparse;
        a.sparse_k = c->sparse_k;
        double t0 = tool_now();
        moak_status st = moak_attention(b->ctx, &a, kv, seq_ids, q_lens, c->n_seqs, in->q, out->y);
        res->seconds = tool_now() - t0;
        failed(b, st, "moak_attention", res);
    }
    moak_kv_cache_destroy(kv);
}

static void run_indexer(conform_backend *b, const conform_case *c, const conform_inputs *in, conform_outputs *out,
                        conform_result *res)
{
    moak_kv_cache *kv = NULL;
    int32_t seq_ids[CONFORM_MAX_SEQS], q_lens[CONFORM_MAX_SEQS];
    const bool ok = fill_cache(b, c, in, 1, 0, MOAK_KV_K_ONLY, &kv, seq_ids, q_lens, res);
    if (ok) {
        moak_indexer_desc x = MOAK_INDEXER_DESC_INIT;
        x.n_heads = c->n_heads;
        x.head_dim = c->head_dim_k;
        x.top_k = c->top_k;
        double t0 = tool_now();
        moak_status st = moak_indexer(b->ctx, &x, kv, seq_ids, q_lens, c->n_seqs, in->q, in->weights, out->ids,
                                      out->w);
        res->seconds = tool_now() - t0;
        failed(b, st, "moak_indexer", res);
    }
    moak_kv_cache_destroy(kv);
}

static void run_rmsnorm(conform_backend *b, const conform_case *c, const conform_inputs *in, conform_outputs *out,
                        conform_result *res)
{
    double t0 = tool_now();
    moak_status st = moak_rmsnorm(b->ctx, in->x, in->gamma, c->rows, c->cols, 1e-6f, out->y);
    res->seconds = tool_now() - t0;
    failed(b, st, "moak_rmsnorm", res);
}

static void run_rope(conform_backend *b, const conform_case *c, const conform_inputs *in, conform_outputs *out,
                     conform_result *res)
{
    moak_rope_desc d = MOAK_ROPE_DESC_INIT;
    d.layout = c->rope_layout;
    d.head_dim = c->head_dim;
    d.rotary_dim = c->rotary_dim;
    d.theta_base = c->rope_theta;
    d.position_scale = c->position_scale;
    d.scaling = c->rope_scaling;
    if (c->rope_scaling != MOAK_ROPE_SCALING_NONE) {
        d.scaling_factor = c->rope_factor;
        d.original_max_position = c->rope_original;
    }
    if (c->rope_scaling == MOAK_ROPE_SCALING_YARN) {
        d.beta_fast = c->rope_beta_fast;
        d.beta_slow = c->rope_beta_slow;
        d.mscale = c->rope_mscale;
        d.mscale_all_dim = c->rope_mscale_all_dim;
        d.yarn_exact_range = c->rope_no_truncate;
    } else if (c->rope_scaling == MOAK_ROPE_SCALING_LLAMA3) {
        d.low_freq_factor = c->rope_low_freq;
        d.high_freq_factor = c->rope_high_freq;
    }
    double t0 = tool_now();
    moak_status st = moak_rope(b->ctx, &d, in->x, c->tokens, c->n_heads, in->positions, out->y);
    res->seconds = tool_now() - t0;
    failed(b, st, "moak_rope", res);
}

void conform_run_case(conform_backend *b, const conform_case *c, const conform_inputs *in,
                      conform_outputs *out, conform_result *res)
{
    memset(res, 0, sizeof(*res));
    res->outcome = CONFORM_PASS;
    res->bound = conform_bound(c->op, in->format);
    b->log_used = 0;
    b->log[0] = '\0';
    poison(c, in, out);
    switch (c->op) {
    case CONFORM_MATMUL: run_matmul(b, c, in, out, res); break;
    case CONFORM_MOE: run_moe(b, c, in, out, res); break;
    case CONFORM_ROUTE: run_route(b, c, in, out, res); break;
    case CONFORM_ATTENTION: run_attention(b, c, in, out, res); break;
    case CONFORM_RMSNORM: run_rmsnorm(b, c, in, out, res); break;
    case CONFORM_ROPE: run_rope(b, c, in, out, res); break;
    case CONFORM_INDEXER: run_indexer(b, c, in, out, res); break;
    default:
        res->outcome = CONFORM_FAIL;
        snprintf(res->detail, sizeof(res->detail), "unknown op");
        return;
    }
    if (res->outcome != CONFORM_PASS)
        return;
    /* It ran: but where?  A preference list of one backend still lets ref
     * take what the backend refuses. */
    const char *ran = moak_last_backend(b->ctx);
    if (strcmp(ran, b->name) != 0)
        decline(b, c, in->format, ran, c->op == CONFORM_MOE ? "moe" : "op", res);
    else
        snprintf(res->ran_on, sizeof(res->ran_on), "%s", ran);
}

/* ---- judging ------------------------------------------------------------------------------ */

void conform_judge(const conform_case *c, const conform_inputs *in, const conform_outputs *ref,
                   const conform_outputs *out, conform_result *res)
{
    conform_error e;
    if (c->op == CONFORM_ROUTE)
        conform_route_error(ref->ids, ref->w, out->ids, out->w, in->scores, c->tokens, (int32_t)c->n_experts,
                            c->top_k, c->scaling, &e);
    else if (c->op == CONFORM_INDEXER)
        conform_indexer_error(ref->ids, out->ids, out->w, in->scores, in->query_last, in->score_stride,
                              in->out_rows, c->top_k, &e);
    else
        conform_row_error(ref->y, out->y, in->out_rows, in->out_cols, &e);
    res->max_err = e.max_err;
    res->outcome = conform_passes(&e, res->bound) ? CONFORM_PASS : CONFORM_FAIL;
    conform_explain(&e, res->bound, res->detail, sizeof(res->detail));
}

void conform_perturb(const conform_case *c, const conform_inputs *in, const conform_outputs *ref,
                     conform_outputs *out)
{
    double bound = conform_bound(c->op, in->format);
    if (in->out_rows * in->out_cols == 0)
        return;
    if (c->op == CONFORM_ROUTE) {
        memcpy(out->ids, ref->ids, (size_t)(in->out_rows * in->out_cols) * sizeof(int32_t));
        double scale = c->scaling > 1.0f ? c->scaling : 1.0;
        out->w[0] = (float)(ref->w[0] + 10.0 * bound * scale);
        return;
    }
    if (c->op == CONFORM_INDEXER) {
        /* query 0's first score off by 10x the bound on its own scale */
        memcpy(out->ids, ref->ids, (size_t)(in->out_rows * in->out_cols) * sizeof(int32_t));
        memcpy(out->w, ref->w, (size_t)(in->out_rows * in->out_cols) * sizeof(float));
        double largest = 0.0;
        for (int64_t j = 0; j <= in->query_last[0]; j++)
            largest = fabs(in->scores[j]) > largest ? fabs(in->scores[j]) : largest;
        out->w[0] = (float)(ref->w[0] + 10.0 * bound * (largest > 0.0 ? largest : 1.0));
        return;
    }
    /* 10x the bound on the scale the verdict uses: row 0's rms, or for rows
     * shorter than MOAK_BOUND_MIN_ROW the whole output's (conform_row_error) */
    const int64_t n = in->out_cols < MOAK_BOUND_MIN_ROW ? in->out_rows * in->out_cols : in->out_cols;
    double sum_sq = 0.0;
    for (int64_t j = 0; j < n; j++)
        sum_sq += (double)ref->y[j] * ref->y[j];
    double rms = sqrt(sum_sq / (double)n);
    out->y[0] = (float)(ref->y[0] + 10.0 * bound * (rms > 0.0 ? rms : 1.0));
}
