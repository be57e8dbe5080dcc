/* Verdicts of moak-conform: see conform_verdict.h. */
#include "conform_verdict.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const op_names[CONFORM_OP_COUNT] = {
    "matmul", "moe", "route", "attention", "rmsnorm", "rope", "indexer",
};

const char *conform_op_name(conform_op op)
{
    return (unsigned)op < CONFORM_OP_COUNT ? op_names[op] : "?";
}

int conform_op_from_name(const char *name)
{
    for (int i = 0; i < CONFORM_OP_COUNT; i++)
        if (strcasecmp(name, op_names[i]) == 0)
            return i;
    return -1;
}

static bool is_integer_format(moak_format f)
{
    return f == MOAK_FORMAT_Q8_0 || f == MOAK_FORMAT_Q4_0 || f == MOAK_FORMAT_I8_ROW ||
           f == MOAK_FORMAT_I4_G32 || f == MOAK_FORMAT_I4_G128;
}

double conform_bound(conform_op op, moak_format format)
{
    switch (op) {
    case CONFORM_MATMUL:
        if (format == MOAK_FORMAT_F32)
            return MOAK_BOUND_MATMUL_F32;
        if (format == MOAK_FORMAT_F16)
            return MOAK_BOUND_MATMUL_F16;
        if (format == MOAK_FORMAT_BF16)
            return MOAK_BOUND_MATMUL_BF16;
        switch (format) {
        case MOAK_FORMAT_FP8_E4M3_B128: return MOAK_BOUND_MATMUL_FP8_E4M3_B128;
        case MOAK_FORMAT_MXFP4: return MOAK_BOUND_MATMUL_MXFP4;
        case MOAK_FORMAT_MXFP4_ST: return MOAK_BOUND_MATMUL_MXFP4_ST;
        case MOAK_FORMAT_I4_G32_CT: return MOAK_BOUND_MATMUL_I4_G32_CT;
        case MOAK_FORMAT_NVFP4: return MOAK_BOUND_MATMUL_NVFP4;
        default: break;
        }
        return is_integer_format(format) ? MOAK_BOUND_MATMUL_INT : 0.0;
    case CONFORM_MOE:
        if (format == MOAK_FORMAT_F32)
            return MOAK_BOUND_MOE_F32;
        if (format == MOAK_FORMAT_F16)
            return MOAK_BOUND_MOE_F16;
        if (format == MOAK_FORMAT_BF16)
            return MOAK_BOUND_MOE_BF16;
        switch (format) {
        case MOAK_FORMAT_FP8_E4M3_B128: return MOAK_BOUND_MOE_FP8_E4M3_B128;
        case MOAK_FORMAT_MXFP4: return MOAK_BOUND_MOE_MXFP4;
        case MOAK_FORMAT_MXFP4_ST: return MOAK_BOUND_MOE_MXFP4_ST;
        case MOAK_FORMAT_I4_G32_CT: return MOAK_BOUND_MOE_I4_G32_CT;
        case MOAK_FORMAT_NVFP4: return MOAK_BOUND_MOE_NVFP4;
        default: break;
        }
        return is_integer_format(format) ? MOAK_BOUND_MOE_INT : 0.0;
    case CONFORM_ATTENTION:
        return format == MOAK_FORMAT_Q8_0 ? MOAK_BOUND_ATTENTION_Q8_0 : MOAK_BOUND_ATTENTION_FLOAT;
    case CONFORM_ROUTE:
        return MOAK_BOUND_ROUTE_WEIGHT;
    case CONFORM_RMSNORM:
        return MOAK_BOUND_RMSNORM;
    case CONFORM_ROPE:
        return MOAK_BOUND_ROPE;
    case CONFORM_INDEXER:
        return MOAK_BOUND_INDEXER_SCORE;
    default:
        return 0.0;
    }
}

static void reset(conform_error *e)
{
    memset(e, 0, sizeof(*e));
    e->worst_row = e->worst_col = -1;
    e->bad_row = e->bad_col = -1;
}

static void note_bad(conform_error *e, int64_t row, int64_t col)
{
    if (e->bad_row < 0) {
        e->bad_row = row;
        e->bad_col = col;
    }
}

static void note_err(conform_error *e, double err, int64_t row, int64_t col)
{
    if (err > e->max_err || e->worst_row < 0) {
        e->max_err = err;
        e->worst_row = row;
        e->worst_col = col;
    }
}

void conform_row_error(const float *ref, const float *out, int64_t rows, int64_t cols,
                       conform_error *e)
{
    reset(e);
    /* Rows shorter than MOAK_BOUND_MIN_ROW are measured against the rms of
     * the whole output (a short row's own rms can vanish by cancellation). */
    double pooled_rms = 0.0;
    if (cols < MOAK_BOUND_MIN_ROW) {
        double sum_sq = 0.0;
        int64_t count = 0;
        for (int64_t i = 0; i < rows * cols; i++)
            if (isfinite(ref[i])) {
                sum_sq += (double)ref[i] * ref[i];
                count++;
            }
        pooled_rms = sqrt(sum_sq / (double)(count > 0 ? count : 1));
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *a = ref + r * cols;
        const float *b = out + r * cols;
        double sum_sq = 0.0, worst = -1.0;
        int64_t worst_j = -1;
        for (int64_t j = 0; j < cols; j++) {
            if (!isfinite(a[j])) {
                e->ref_nonfinite++;
                continue;
            }
            sum_sq += (double)a[j] * a[j];
            if (!isfinite(b[j])) {
                e->nonfinite++;
                note_bad(e, r, j);
                continue;
            }
            double d = fabs((double)b[j] - (double)a[j]);
            if (d > worst) {
                worst = d;
                worst_j = j;
            }
        }
        if (worst_j < 0)
            continue;
        double rms = cols < MOAK_BOUND_MIN_ROW ? pooled_rms : sqrt(sum_sq / (double)cols);
        note_err(e, rms > 0.0 ? worst / rms : (worst > 0.0 ? INFINITY : 0.0), r, worst_j);
    }
}

/* Is expert id in ids[0..k)?  Returns its slot or -1. */
static int slot_of(const int32_t *ids, int32_t k, int32_t id)
{
    for (int32_t j = 0; j < k; j++)
        if (ids[j] == id)
            return j;
    return -1;
}

void conform_route_error(const int32_t *ref_ids, const float *ref_w,
                         const int32_t *ids, const float *w, const double *scores,
                         int64_t n_tokens, int32_t n_experts, int32_t top_k,
                         double scaling, conform_error *e)
{
    reset(e);
    double weight_scale = scaling > 1.0 ? scaling : 1.0;
    for (int64_t t = 0; t < n_tokens; t++) {
        const int32_t *ri = ref_ids + t * top_k;
        const int32_t *oi = ids + t * top_k;
        const float *rw = ref_w + t * top_k;
        const float *ow = w + t * top_k;
        const double *s = scores + t * n_experts;
        double largest = 0.0;
        for (int32_t x = 0; x < n_experts; x++)
            if (fabs(s[x]) > largest)
                largest = fabs(s[x]);
        double tie = MOAK_BOUND_ROUTE_TIE * largest;
        for (int32_t j = 0; j < top_k; j++) {
            if (ri[j] < 0 || ri[j] >= n_experts) {
                e->ref_nonfinite++; /* a broken reference: nothing to compare with */
                continue;
            }
            int32_t id = oi[j];
            bool valid = id >= 0 && id < n_experts && slot_of(oi, j, id) < 0;
            if (!isfinite(ow[j])) {
                e->nonfinite++;
                note_bad(e, t, j);
                continue;
            }
            if (!isfinite(rw[j]))
                e->ref_nonfinite++;
            int ref_slot = -1;
            if (valid && id == ri[j]) {
                ref_slot = j;
            } else if (valid && fabs(s[id] - s[ri[j]]) <= tie) {
                /* A tie may reorder the chosen experts or swap the last one
                 * in or out; compare the weight where the reference has it. */
                ref_slot = slot_of(ri, top_k, id);
                if (ref_slot < 0)
                    continue;
            } else {
                e->mismatches++;
                note_bad(e, t, j);
                continue;
            }
            note_err(e, fabs((double)ow[j] - (double)rw[ref_slot]) / weight_scale, t, j);
        }
    }
}

/* Is expert id in ids[0..k)?  Returns its slot or -1. */
static int slot_of(const int32_t *ids, int32_t k, int32_t id);

void conform_indexer_error(const int32_t *ref_pos, const int32_t *pos, const float *out_scores,
                           const double *scores, const int64_t *last, int64_t stride, int64_t n_queries,
                           int32_t top_k, conform_error *e)
{
    reset(e);
    for (int64_t t = 0; t < n_queries; t++) {
        const int32_t *ri = ref_pos + t * top_k, *oi = pos + t * top_k;
        const float *ow = out_scores + t * top_k;
        const double *s = scores + t * stride;
        double largest = 0.0;
        for (int64_t j = 0; j <= last[t]; j++)
            largest = fabs(s[j]) > largest ? fabs(s[j]) : largest;
        if (largest == 0.0)
            largest = 1.0;
        for (int32_t j = 0; j < top_k; j++) {
            if (ri[j] < -1 || ri[j] > last[t]) {
                e->ref_nonfinite++;
                continue;
            }
            if (ri[j] == -1) {
                if (oi[j] != -1 || ow[j] != -INFINITY) {
                    e->mismatches++;
                    note_bad(e, t, j);
                }
                continue;
            }
            const int32_t id = oi[j];
            const bool valid = id >= 0 && id <= last[t] && slot_of(oi, j, id) < 0;
            if (!valid || (id != ri[j] && !(fabs(s[id] - s[ri[j]]) <= MOAK_BOUND_INDEXER_TIE * largest))) {
                e->mismatches++;
                note_bad(e, t, j);
                continue;
            }
            if (!isfinite(ow[j])) {
                e->nonfinite++;
                note_bad(e, t, j);
                continue;
            }
            note_err(e, fabs((double)ow[j] - s[id]) / largest, t, j);
        }
    }
}

bool conform_passes(const conform_error *e, double bound)
{
    return e->nonfinite == 0 && e->ref_nonfinite == 0 && e->mismatches == 0 &&
           isfinite(e->max_err) && e->max_err <= bound;
}

void conform_explain(const conform_error *e, double bound, char *buf, size_t len)
{
    if (conform_passes(e, bound))
        snprintf(buf, len, "%s", "");
    else if (e->ref_nonfinite)
        snprintf(buf, len, "the reference produced %lld non-finite or invalid value(s)", (long long)e->ref_nonfinite);
    else if (e->nonfinite)
        snprintf(buf, len, "%lld NaN/Inf output(s) where the reference is finite (first at row %lld col %lld)",
                 (long long)e->nonfinite, (long long)e->bad_row, (long long)e->bad_col);
    else if (e->mismatches)
        snprintf(buf, len, "%lld expert id(s) differ from the reference without a tie (first at token %lld slot %lld)",
                 (long long)e->mismatches, (long long)e->bad_row, (long long)e->bad_col);
    else
        snprintf(buf, len, "row %lld col %lld: error %.3g > bound %.3g", (long long)e->worst_row,
                 (long long)e->worst_col, e->max_err, bound);
}
