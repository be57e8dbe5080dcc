/*
 * RMSNorm and RoPE on the neon backend.  Both may run in place (y == x):
 * every element is loaded before the store that could overwrite it.
 *
 * RMSNorm: the sum of squares is accumulated in f64 (two float64x2 chains,
 * f32 products widened exactly), so the row's scale carries no f32 rounding
 * of long sums; y = x * (float)(1 / sqrt(mean + eps)) * gamma in f32, within
 * a few ulp of the reference.
 * RoPE: the angles pos * position_scale * f_i (f_i from the core, after
 * YaRN / Llama-3 scaling) and their cos/sin, times the attention factor,
 * are computed in double once per token (an f32 angle would be off
 * by pos * 2^-24 radians, far outside MOAK_BOUND_ROPE at long positions),
 * rounded to f32, and applied to every head four pairs at a time (GPT-J's
 * interleaved pairs with ld2/st2).
 */
#if !defined(__ARM_NEON)
#error "norm_rope_neon.c needs Advanced SIMD (NEON_CFLAGS)"
#endif

#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "neon_backend.h"
#include "neon_simd.h"

#define NORM_ELEMS_PER_TASK 65536 /* about 256 KB of x per task */
#define ROPE_ELEMS_PER_TASK 65536

/* ---- RMSNorm ----------------------------------------------------------------- */

typedef struct norm_job {
    const moak_rmsnorm_args *args;
    int64_t rows_per_task;
} norm_job;

static void rmsnorm_row(const float *x, const float *gamma, int64_t dim, float eps, float *y)
{
    float64x2_t s0 = vdupq_n_f64(0.0), s1 = s0;
    int64_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        const float32x4_t v = vld1q_f32(x + i);
        const float64x2_t lo = vcvt_f64_f32(vget_low_f32(v)), hi = vcvt_high_f64_f32(v);
        s0 = vfmaq_f64(s0, lo, lo);
        s1 = vfmaq_f64(s1, hi, hi);
    }
    double sum = vaddvq_f64(vaddq_f64(s0, s1));
    for (; i < dim; i++)
        sum += (double)x[i] * (double)x[i];
    const float inv = (float)(1.0 / sqrt(sum / (double)dim + (double)eps));
    i = 0;
    for (; i + 4 <= dim; i += 4) {
        float32x4_t v = vmulq_n_f32(vld1q_f32(x + i), inv);
        if (gamma)
            v = vmulq_f32(v, vld1q_f32(gamma + i));
        vst1q_f32(y + i, v);
    }
    for (; i < dim; i++)
        y[i] = x[i] * inv * (gamma ? gamma[i] : 1.0f);
}

static void rmsnorm_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const norm_job *job = arg;
    const moak_rmsnorm_args *a = job->args;
    const int64_t first = task * job->rows_per_task;
    const int64_t last = first + job->rows_per_task < a->n_rows ? first + job->rows_per_task : a->n_rows;
    for (int64_t r = first; r < last; r++)
        rmsnorm_row(a->x + r * a->dim, a->gamma, a->dim, a->eps, a->y + r * a->dim);
}

moak_status neon_rmsnorm(void *state, const moak_rmsnorm_args *args)
{
    const neon_state *st = state;
    norm_job job = {args, NORM_ELEMS_PER_TASK / (args->dim > 0 ? args->dim : 1)};
    if (job.rows_per_task < 1)
        job.rows_per_task = 1;
    neon_parallel_for(st, (args->n_rows + job.rows_per_task - 1) / job.rows_per_task, rmsnorm_task, &job);
    return MOAK_OK;
}

/* ---- RoPE ---------------------------------------------------------------------- */

typedef struct rope_job {
    const moak_rope_args *args;
    int64_t tokens_per_task;
    const neon_state *st;
} rope_job;

static void rope_head(const moak_rope_args *a, const float *cs, const float *sn, const float *x, float *y)
{
    const int32_t half = a->rotary_dim / 2;
    int32_t i = 0;
    if (a->layout == MOAK_ROPE_NEOX) {
        for (; i + 4 <= half; i += 4) {
            const float32x4_t x0 = vld1q_f32(x + i), x1 = vld1q_f32(x + i + half);
            const float32x4_t c = vld1q_f32(cs + i), s = vld1q_f32(sn + i);
            vst1q_f32(y + i, vfmsq_f32(vmulq_f32(x0, c), x1, s));
            vst1q_f32(y + i + half, vfmaq_f32(vmulq_f32(x0, s), x1, c));
        }
        for (; i < half; i++) {
            const float x0 = x[i], x1 = x[i + half];
            y[i] = x0 * cs[i] - x1 * sn[i];
            y[i + half] = x0 * sn[i] + x1 * cs[i];
        }
    } else {
        for (; i + 4 <= half; i += 4) {
            const float32x4x2_t v = vld2q_f32(x + 2 * i);
            const float32x4_t c = vld1q_f32(cs + i), s = vld1q_f32(sn + i);
            float32x4x2_t r;
            r.val[0] = vfmsq_f32(vmulq_f32(v.val[0], c), v.val[1], s);
            r.val[1] = vfmaq_f32(vmulq_f32(v.val[0], s), v.val[1], c);
            vst2q_f32(y + 2 * i, r);
        }
        for (; i < half; i++) {
            const float x0 = x[2 * i], x1 = x[2 * i + 1];
            y[2 * i] = x0 * cs[i] - x1 * sn[i];
            y[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
        }
    }
    if (y != x)
        memcpy(y + 2 * half, x + 2 * half, (size_t)(a->head_dim - 2 * half) * sizeof(float));
}

static void rope_task(void *arg, int64_t task, int32_t thread)
{
    const rope_job *job = arg;
    const moak_rope_args *a = job->args;
    const int32_t half = a->rotary_dim / 2;
    float *cs = neon_scratch(job->st, thread), *sn = cs + half;
    const int64_t first = task * job->tokens_per_task;
    const int64_t last = first + job->tokens_per_task < a->n_tokens ? first + job->tokens_per_task : a->n_tokens;
    for (int64_t t = first; t < last; t++) {
        const double pos = (double)a->positions[t] * (double)a->position_scale;
        for (int32_t i = 0; i < half; i++) {
            const double angle = pos * a->inv_freq[i];
            cs[i] = (float)(cos(angle) * a->attention_factor);
            sn[i] = (float)(sin(angle) * a->attention_factor);
        }
        for (int32_t h = 0; h < a->n_heads; h++) {
            const size_t row = ((size_t)t * (size_t)a->n_heads + (size_t)h) * (size_t)a->head_dim;
            rope_head(a, cs, sn, a->x + row, a->y + row);
        }
    }
}

moak_status neon_rope(void *state, const moak_rope_args *args)
{
    neon_state *st = state;
    const int32_t half = args->rotary_dim / 2;
    moak_status s = neon_reserve_scratch(st, (size_t)(2 * half + 1) * sizeof(float), "RoPE angles");
    if (s != MOAK_OK)
        return s;
    const int64_t per_token = (int64_t)args->n_heads * args->head_dim;
    rope_job job = {args, ROPE_ELEMS_PER_TASK / (per_token > 0 ? per_token : 1), st};
    if (job.tokens_per_task < 1)
        job.tokens_per_task = 1;
    neon_parallel_for(st, (args->n_tokens + job.tokens_per_task - 1) / job.tokens_per_task, rope_task, &job);
    return MOAK_OK;
}
