/*
 * The indexer over a device K-only cache: indexer_<kv format> (indexer.cl)
 * scores every causal position of every query on the device; the scores
 * come back ([total][max cached length] floats) and the host keeps each
 * query's top k with the core's moak_select_top_k (ties to the lower
 * position), so positions and scores are written only once all succeeded.
 */
#include "opencl_internal.h"

#include <stdlib.h>

/* The selection, on the host: one query at a time, in double as ref ranks. */
static moak_status select_all(ocl_state *st, const moak_indexer_args *a, const float *dev_scores,
                              size_t row_stride)
{
    double *score = malloc(row_stride * sizeof(double));
    void *select = malloc(moak_select_top_k_scratch((int64_t)row_stride, a->top_k));
    if (!score || !select) {
        free(score);
        free(select);
        return ocl_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of host memory selecting the top k");
    }
    for (int32_t i = 0; i < a->n_seqs; i++) {
        const int64_t len = a->kv->seq_lens[a->seq_ids[i]];
        for (int64_t t = a->q_offsets[i]; t < a->q_offsets[i + 1]; t++) {
            const int64_t pos = len - a->q_lens[i] + (t - a->q_offsets[i]);
            const float *row = dev_scores + (size_t)t * row_stride;
            for (int64_t j = 0; j <= pos; j++)
                score[j] = (double)row[j];
            moak_select_top_k(score, pos + 1, a->top_k, select, a->positions + (size_t)t * (size_t)a->top_k,
                              a->scores ? a->scores + (size_t)t * (size_t)a->top_k : NULL);
        }
    }
    free(score);
    free(select);
    return MOAK_OK;
}

static moak_status run(ocl_state *st, ocl_call *call, const moak_indexer_args *a, int64_t total,
                       const ocl_seq_plan *plan, size_t row_stride, cl_mem *out)
{
    const moak_kv_layout *l = a->kv->layout;
    const ocl_kv *kv = a->kv->storage;
    cl_mem q, w, seq_info, query_seq, page_table;
    moak_status s = ocl_input(call, OCL_SCRATCH_IN0, a->q,
                              (size_t)total * (size_t)a->n_heads * (size_t)a->head_dim * sizeof(float), &q);
    if (s == MOAK_OK)
        s = ocl_seq_plan_send(call, plan, a->n_seqs, total, &seq_info, &query_seq, &page_table);
    if (s == MOAK_OK)
        s = ocl_input(call, OCL_SCRATCH_IN4, a->w, (size_t)total * (size_t)a->n_heads * sizeof(float), &w);
    if (s == MOAK_OK)
        s = ocl_scratch(st, OCL_SCRATCH_OUT0, (size_t)total * row_stride * sizeof(float), out);
    if (s != MOAK_OK)
        return s;
    ocl_args k;
    ocl_args_begin(&k, st->k.indexer[ocl_kv_kernel_index(l->format)], "indexer");
    ocl_arg_mem(&k, kv->pages);
    ocl_arg_mem(&k, q);
    ocl_arg_mem(&k, w);
    ocl_arg_mem(&k, page_table);
    ocl_arg_mem(&k, seq_info);
    ocl_arg_mem(&k, query_seq);
    ocl_arg_mem(&k, *out);
    ocl_arg_int(&k, a->n_heads);
    ocl_arg_int(&k, a->head_dim);
    ocl_arg_int(&k, l->page_tokens);
    ocl_arg_ulong(&k, l->page_bytes);
    ocl_arg_ulong(&k, l->row_bytes_k);
    ocl_arg_int(&k, (int32_t)row_stride);
    return ocl_run2d(st, &k, ocl_round_up(row_stride, st->lws_flat), (size_t)total, st->lws_flat);
}

moak_status ocl_indexer(void *state, const moak_indexer_args *args)
{
    ocl_state *st = state;
    const int64_t total = args->q_offsets[args->n_seqs];
    if (total == 0)
        return MOAK_OK;
    if (ocl_kv_kernel_index(args->kv->layout->format) < 0 || args->kv->host_layout)
        return ocl_error(st, MOAK_ERR_UNSUPPORTED, "the indexer needs an OpenCL K-only cache of F32, F16, "
                                                   "BF16 or Q8_0");
    moak_status status = ocl_program_ensure(st);
    if (status != MOAK_OK)
        return status;
    int64_t max_len = 1;
    for (int32_t i = 0; i < args->n_seqs; i++)
        if (args->q_lens[i] > 0 && args->kv->seq_lens[args->seq_ids[i]] > max_len)
            max_len = args->kv->seq_lens[args->seq_ids[i]];
    const size_t row_stride = (size_t)max_len;
    const size_t score_bytes = (size_t)total * row_stride * sizeof(float);
    ocl_seq_plan plan = {NULL, NULL, NULL, 0};
    float *host_scores = malloc(score_bytes);
    if (!host_scores ||
        !ocl_seq_plan_make(args->kv, args->n_seqs, args->seq_ids, args->q_lens, args->q_offsets, &plan)) {
        free(host_scores);
        ocl_seq_plan_free(&plan);
        return ocl_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of host memory planning the indexer");
    }
    ocl_call call;
    ocl_call_begin(&call, st);
    cl_mem out = NULL;
    status = run(st, &call, args, total, &plan, row_stride, &out);
    if (status == MOAK_OK) {
        void *dst = host_scores;
        status = ocl_read_outputs(&call, 1, &out, &dst, &score_bytes);
    }
    status = ocl_call_end(&call, status);
    if (status == MOAK_OK)
        status = select_all(st, args, host_scores, row_stride);
    free(host_scores);
    ocl_seq_plan_free(&plan);
    return status;
}
