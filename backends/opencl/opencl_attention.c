/*
 * Attention over the device KV cache: attention_<kv format> (attention.cl),
 * one work-group per (query head, query token).  The host sends, per call,
 * the page tables of the sequences involved (concatenated), one int4 per
 * sequence (first page-table entry, cached length, q_len, first query
 * token) and the sequence of every query token; sparse attention adds the
 * position lists as they are ([total][sparse_k], validated by the core).
 */
#include "opencl_internal.h"

#include <math.h>
#include <stdlib.h>

int ocl_kv_kernel_index(moak_format format)
{
    switch (format) {
    case MOAK_FORMAT_F32: return 0;
    case MOAK_FORMAT_F16: return 1;
    case MOAK_FORMAT_BF16: return 2;
    case MOAK_FORMAT_Q8_0: return 3;
    default: return -1;
    }
}

size_t ocl_attention_local_bytes(int32_t head_dim_k, int32_t head_dim_v, size_t lws)
{
    return ((size_t)head_dim_k + (size_t)head_dim_v + 2 * lws) * sizeof(float) +
           lws * sizeof(cl_ulong);
}

bool ocl_seq_plan_make(const moak_kv_view *kv, int32_t n_seqs, const int32_t *seq_ids,
                       const int32_t *q_lens, const int64_t *q_offsets, ocl_seq_plan *plan)
{
    const int64_t page_tokens = kv->layout->page_tokens;
    const int64_t total = q_offsets[n_seqs];
    size_t n_pages = 0;
    for (int32_t i = 0; i < n_seqs; i++)
        n_pages += (size_t)((kv->seq_lens[seq_ids[i]] + page_tokens - 1) / page_tokens);
    plan->seq_info = malloc((size_t)n_seqs * 4 * sizeof(cl_int));
    plan->query_seq = malloc((size_t)(total ? total : 1) * sizeof(cl_int));
    plan->page_table = malloc((n_pages ? n_pages : 1) * sizeof(cl_int));
    plan->n_pages = n_pages ? n_pages : 1;
    if (!plan->seq_info || !plan->query_seq || !plan->page_table)
        return false;
    plan->page_table[0] = 0;
    size_t at = 0;
    for (int32_t i = 0; i < n_seqs; i++) {
        const int32_t seq = seq_ids[i];
        const int64_t len = kv->seq_lens[seq];
        const size_t pages = (size_t)((len + page_tokens - 1) / page_tokens);
        plan->seq_info[4 * i + 0] = (cl_int)at;
        plan->seq_info[4 * i + 1] = (cl_int)len;
        plan->seq_info[4 * i + 2] = q_lens[i];
        plan->seq_info[4 * i + 3] = (cl_int)q_offsets[i];
        for (size_t p = 0; p < pages; p++)
            plan->page_table[at + p] = kv->page_tables[seq][p];
        at += pages;
        for (int64_t q = q_offsets[i]; q < q_offsets[i + 1]; q++)
            plan->query_seq[q] = i;
    }
    return true;
}

void ocl_seq_plan_free(ocl_seq_plan *plan)
{
    free(plan->seq_info);
    free(plan->query_seq);
    free(plan->page_table);
}

moak_status ocl_seq_plan_send(ocl_call *call, const ocl_seq_plan *plan, int32_t n_seqs, int64_t total,
                              cl_mem *seq_info, cl_mem *query_seq, cl_mem *page_table)
{
    moak_status s = ocl_input(call, OCL_SCRATCH_IN1, plan->seq_info, (size_t)n_seqs * 4 * sizeof(cl_int),
                              seq_info);
    if (s == MOAK_OK)
        s = ocl_input(call, OCL_SCRATCH_IN2, plan->query_seq, (size_t)total * sizeof(cl_int), query_seq);
    if (s == MOAK_OK)
        s = ocl_input(call, OCL_SCRATCH_IN3, plan->page_table, plan->n_pages * sizeof(cl_int), page_table);
    return s;
}

static moak_status run(ocl_state *st, ocl_call *call, const moak_attention_args *a, int64_t total,
                       const ocl_seq_plan *plan, cl_mem *out)
{
    const moak_kv_layout *l = a->kv->layout;
    const ocl_kv *kv = a->kv->storage;
    const size_t lws = st->lws_attention;
    cl_mem q, seq_info, query_seq, page_table, sinks = st->dummy, positions = st->dummy;
    moak_status s = ocl_input(call, OCL_SCRATCH_IN0, a->q,
                              (size_t)total * (size_t)a->n_heads * (size_t)a->head_dim_k *
                                  sizeof(float),
                              &q);
    if (s == MOAK_OK)
        s = ocl_seq_plan_send(call, plan, a->n_seqs, total, &seq_info, &query_seq, &page_table);
    if (s == MOAK_OK && a->sinks)
        s = ocl_input(call, OCL_SCRATCH_IN4, a->sinks, (size_t)a->n_heads * sizeof(float), &sinks);
    if (s == MOAK_OK && a->sparse_positions)
        s = ocl_input(call, OCL_SCRATCH_IN5, a->sparse_positions,
                      (size_t)total * (size_t)a->sparse_k * sizeof(cl_int), &positions);
    if (s == MOAK_OK)
        s = ocl_scratch(st, OCL_SCRATCH_OUT0,
                        (size_t)total * (size_t)a->n_heads * (size_t)a->head_dim_v * sizeof(float),
                        out);
    if (s != MOAK_OK)
        return s;

    ocl_args k;
    ocl_args_begin(&k, st->k.attention[ocl_kv_kernel_index(l->format)], "attention");
    ocl_arg_mem(&k, kv->pages);
    ocl_arg_mem(&k, q);
    ocl_arg_mem(&k, *out);
    ocl_arg_mem(&k, page_table);
    ocl_arg_mem(&k, seq_info);
    ocl_arg_mem(&k, query_seq);
    ocl_arg_mem(&k, sinks);
    ocl_arg_int(&k, a->sinks != NULL);
    ocl_arg_mem(&k, positions);
    ocl_arg_int(&k, a->sparse_positions ? a->sparse_k : 0);
    ocl_arg_int(&k, a->n_heads);
    ocl_arg_int(&k, a->n_kv_heads);
    ocl_arg_int(&k, a->head_dim_k);
    ocl_arg_int(&k, a->head_dim_v);
    /* a scale beyond 2^64 leaves a power of two out of q . k * scale, or
     * it could overflow f32 (issue 16); the kernel multiplies only score
     * differences <= 0 by it */
    double exp_mul = 1.0;
    if ((double)a->scale > 0x1p64) {
        const int e = ilogb((double)a->scale);
        exp_mul = ldexp(1.0, e > 127 ? 127 : e);
    }
    ocl_arg_float(&k, (float)((double)a->scale / exp_mul));
    ocl_arg_int(&k, a->causal ? 1 : 0);
    ocl_arg_int(&k, a->sliding_window);
    ocl_arg_float(&k, a->softcap);
    ocl_arg_float(&k, (float)exp_mul);
    ocl_arg_int(&k, l->page_tokens);
    ocl_arg_ulong(&k, l->page_bytes);
    ocl_arg_ulong(&k, l->v_block_offset);
    ocl_arg_ulong(&k, l->row_bytes_k);
    ocl_arg_ulong(&k, l->row_bytes_v);
    ocl_arg_int(&k, l->shared_v ? 1 : 0);
    ocl_arg_local(&k, (size_t)a->head_dim_k * sizeof(float));
    ocl_arg_local(&k, lws * sizeof(float));
    ocl_arg_local(&k, lws * sizeof(float));
    ocl_arg_local(&k, lws * sizeof(cl_ulong));
    ocl_arg_local(&k, (size_t)a->head_dim_v * sizeof(float));
    return ocl_run2d(st, &k, (size_t)a->n_heads * lws, (size_t)total, lws);
}

moak_status ocl_attention(void *state, const moak_attention_args *args)
{
    ocl_state *st = state;
    const int64_t total = args->q_offsets[args->n_seqs];
    if (total == 0)
        return MOAK_OK;
    if (ocl_kv_kernel_index(args->kv->layout->format) < 0 || args->kv->host_layout)
        return ocl_error(st, MOAK_ERR_UNSUPPORTED, "attention needs an OpenCL KV cache of F32, F16, "
                                                   "BF16 or Q8_0");
    moak_status status = ocl_program_ensure(st);
    if (status != MOAK_OK)
        return status;
    ocl_seq_plan plan = {NULL, NULL, NULL, 0};
    if (!ocl_seq_plan_make(args->kv, args->n_seqs, args->seq_ids, args->q_lens, args->q_offsets, &plan)) {
        ocl_seq_plan_free(&plan);
        return ocl_error(st, MOAK_ERR_OUT_OF_MEMORY, "out of host memory planning attention");
    }
    ocl_call call;
    ocl_call_begin(&call, st);
    cl_mem out = NULL;
    status = run(st, &call, args, total, &plan, &out);
    if (status == MOAK_OK) {
        const size_t bytes =
            (size_t)total * (size_t)args->n_heads * (size_t)args->head_dim_v * sizeof(float);
        void *dst = args->out;
        status = ocl_read_outputs(&call, 1, &out, &dst, &bytes);
    }
    status = ocl_call_end(&call, status);
    ocl_seq_plan_free(&plan);
    return status;
}
