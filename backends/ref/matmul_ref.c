/*
 * Reference matmul: y[i][n] = sum_k x[i][k] * W[n][k]  (+ bias[expert][n]),
 * for every weight format.
 *
 * One task owns a block of REF_MATMUL_ROWS_PER_TASK consecutive W rows: it
 * dequantizes them to float32 once (moak_dequantize_row, into its thread's
 * scratch) and uses them for all m rows of x, so each output y[i][n] is
 * written by exactly one task and each W row is decoded exactly once per
 * call.  Dot products are accumulated in double (ref_dot).
 */
#include "ref_internal.h"

#include <stdlib.h>

/* Enough rows that one x row is reused from cache across several W rows,
 * few enough that a 7168-wide block stays within L2. */
#define REF_MATMUL_ROWS_PER_TASK 8

typedef struct matmul_job {
    const ref_weight *w;
    int64_t expert;
    const float *bias;           /* this expert's [rows], or NULL */
    const float *x;              /* [m][cols] */
    int64_t m;
    float *y;                    /* [m][rows] */
    float *scratch;              /* [n_threads][ROWS_PER_TASK][cols] */
} matmul_job;

static void matmul_rows_task(void *arg, int64_t task, int32_t thread)
{
    const matmul_job *job = arg;
    const ref_weight *w = job->w;
    const int64_t cols = w->cols;
    const int64_t first = task * REF_MATMUL_ROWS_PER_TASK;
    int64_t count = w->rows - first;
    if (count > REF_MATMUL_ROWS_PER_TASK)
        count = REF_MATMUL_ROWS_PER_TASK;

    float *w_rows = job->scratch + (size_t)thread * REF_MATMUL_ROWS_PER_TASK * (size_t)cols;
    for (int64_t r = 0; r < count; r++)
        moak_dequantize_row(w->format, ref_weight_row(w, job->expert, first + r), cols,
                            w_rows + (size_t)r * (size_t)cols);

    for (int64_t i = 0; i < job->m; i++) {
        const float *x_row = job->x + (size_t)i * (size_t)cols;
        float *y_row = job->y + (size_t)i * (size_t)w->rows;
        for (int64_t r = 0; r < count; r++) {
            double acc = ref_dot(x_row, w_rows + (size_t)r * (size_t)cols, cols);
            if (job->bias)
                acc += (double)job->bias[first + r];
            y_row[first + r] = (float)acc;
        }
    }
}

moak_status ref_matmul(void *state, const moak_matmul_args *args)
{
    const ref_state *st = state;
    const moak_packed_weight *pw = args->w;
    const ref_weight *w = pw->packed;

    if (args->m == 0)
        return MOAK_OK;

    matmul_job job;
    job.w = w;
    job.expert = args->expert;
    job.bias = pw->bias ? pw->bias + (size_t)args->expert * (size_t)w->rows : NULL;
    job.x = args->x;
    job.m = args->m;
    job.y = args->y;
    job.scratch = ref_alloc_per_thread(st, (size_t)REF_MATMUL_ROWS_PER_TASK * (size_t)w->cols,
                                       sizeof(float));
    if (!job.scratch)
        return ref_out_of_memory(st, "matmul's dequantized weight rows");

    int64_t n_tasks = (w->rows + REF_MATMUL_ROWS_PER_TASK - 1) / REF_MATMUL_ROWS_PER_TASK;
    ref_parallel_for(st, n_tasks, matmul_rows_task, &job);
    free(job.scratch);
    return MOAK_OK;
}
