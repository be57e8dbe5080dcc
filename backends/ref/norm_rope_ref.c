/*
 * Reference RMSNorm and RoPE, the two element-wise ops around attention and
 * the MoE FFN.  Both may run in place (y == x): every output element depends
 * only on input elements that are read before it is written.
 *
 * RMSNorm:  y[r][i] = x[r][i] / sqrt(sum_i x[r][i]^2 / dim + eps) * gamma[i]
 *           (sum of squares in double, gamma NULL = ones).
 * RoPE:     for i < rotary_dim/2, with the angle
 *               a = pos * position_scale * f_i
 *           (f_i = theta_base^(-2i / rotary_dim) after the desc's YaRN or
 *           Llama-3 scaling, in double from lib/rope_freqs.c) and the
 *           attention factor A (YaRN's; else 1), all in double, the pair
 *           (x0, x1) becomes
 *               A (x0 cos a - x1 sin a,  x0 sin a + x1 cos a)
 *           where the pair is (i, i + rotary_dim/2) for NEOX and (2i, 2i+1)
 *           for GPTJ.  Dims from rotary_dim on pass through unchanged.
 */
#include "ref_internal.h"

#include <math.h>
#include <stdlib.h>

#define REF_NORM_ROWS_PER_TASK 16
#define REF_ROPE_TOKENS_PER_TASK 8

/* ---- RMSNorm ----------------------------------------------------------------- */

static void rmsnorm_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const moak_rmsnorm_args *args = arg;
    const int64_t dim = args->dim;
    const int64_t first = task * REF_NORM_ROWS_PER_TASK;
    int64_t last = first + REF_NORM_ROWS_PER_TASK;
    if (last > args->n_rows)
        last = args->n_rows;

    for (int64_t r = first; r < last; r++) {
        const float *x = args->x + (size_t)r * (size_t)dim;
        float *y = args->y + (size_t)r * (size_t)dim;
        double sum_squares = 0.0;
        for (int64_t i = 0; i < dim; i++)
            sum_squares += (double)x[i] * (double)x[i];
        /* the whole row is read before the first store, so y == x is fine */
        const double inv_rms = 1.0 / sqrt(sum_squares / (double)dim + (double)args->eps);
        for (int64_t i = 0; i < dim; i++) {
            const double gamma = args->gamma ? (double)args->gamma[i] : 1.0;
            y[i] = (float)((double)x[i] * inv_rms * gamma);
        }
    }
}

moak_status ref_rmsnorm(void *state, const moak_rmsnorm_args *args)
{
    const ref_state *st = state;
    ref_parallel_for(st, (args->n_rows + REF_NORM_ROWS_PER_TASK - 1) / REF_NORM_ROWS_PER_TASK,
                     rmsnorm_task, (void *)args);
    return MOAK_OK;
}

/* ---- RoPE ---------------------------------------------------------------------- */

static void rope_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const moak_rope_args *args = arg;
    const int32_t head_dim = args->head_dim;
    const int32_t half = args->rotary_dim / 2;
    const int64_t first = task * REF_ROPE_TOKENS_PER_TASK;
    int64_t last = first + REF_ROPE_TOKENS_PER_TASK;
    if (last > args->n_tokens)
        last = args->n_tokens;

    for (int64_t t = first; t < last; t++) {
        const double pos = (double)args->positions[t] * (double)args->position_scale;
        for (int32_t h = 0; h < args->n_heads; h++) {
            const size_t row = ((size_t)t * (size_t)args->n_heads + (size_t)h) * (size_t)head_dim;
            const float *x = args->x + row;
            float *y = args->y + row;
            for (int32_t i = 0; i < half; i++) {
                const int32_t i0 = args->layout == MOAK_ROPE_NEOX ? i : 2 * i;
                const int32_t i1 = args->layout == MOAK_ROPE_NEOX ? i + half : 2 * i + 1;
                const double angle = pos * args->inv_freq[i];
                const double c = cos(angle) * args->attention_factor;
                const double s = sin(angle) * args->attention_factor;
                const double x0 = x[i0], x1 = x[i1]; /* both read before either store */
                y[i0] = (float)(x0 * c - x1 * s);
                y[i1] = (float)(x0 * s + x1 * c);
            }
            if (y != x)
                for (int32_t i = 2 * half; i < head_dim; i++)
                    y[i] = x[i];
        }
    }
}

moak_status ref_rope(void *state, const moak_rope_args *args)
{
    const ref_state *st = state;
    ref_parallel_for(st, (args->n_tokens + REF_ROPE_TOKENS_PER_TASK - 1) / REF_ROPE_TOKENS_PER_TASK,
                     rope_task, (void *)args);
    return MOAK_OK;
}
