/*
 * indexer.cl — the scores of DeepSeek Sparse Attention's indexer over a
 * K-only cache (moak_indexer): one work-item per (cached position j, query
 * token), global size (max cached length rounded up, total query tokens).
 *
 *     scores[qt][j] = sum_h w[qt][h] * max(0, q[qt][h] . k[j])   for j <= pos(qt)
 *
 * Positions past the query's own are not written (the host reads 0..pos).
 * The host picks the top k from these (moak_select_top_k): a selection is a
 * sort, which a GPU does poorly per query and PoCL no better than the host.
 * The key's row is re-read per head from global memory (it stays in the
 * nearest cache: 128 values).  Accuracy: f32, as attention.cl.
 * Uses load_kv4/load_kv1 of attention.cl (the files form one program).
 */

MOAK_FN void indexer_body(const int fmt, global const uchar *kv, global const float *q,
                          global const float *w, global const int *page_table,
                          global const int4 *seq_info, global const int *query_seq,
                          global float *scores, int n_heads, int dim, int page_tokens,
                          ulong page_bytes, ulong row_bytes, int row_stride)
{
    const int j = (int)get_global_id(0);
    const int qt = (int)get_global_id(1);
    /* seq_info: (first page-table entry, cached length, q_len, first query token) */
    const int4 si = seq_info[query_seq[qt]];
    const int pos = si.y - si.z + (qt - si.w);
    if (j > pos)
        return;
    const ulong at = (ulong)page_table[si.x + j / page_tokens] * page_bytes +
                     (ulong)(j % page_tokens) * row_bytes;
    global const float *qrow = q + (ulong)qt * (ulong)n_heads * (ulong)dim;
    global const float *wrow = w + (ulong)qt * (ulong)n_heads;
    float s = 0.0f;
    for (int h = 0; h < n_heads; h++) {
        global const float *qh = qrow + (ulong)h * (ulong)dim;
        float d = 0.0f;
        int e = 0;
        for (; e + 4 <= dim; e += 4)
            d += dot(load_kv4(fmt, kv, at, e), vload4(0, qh + e));
        for (; e < dim; e++)
            d += load_kv1(fmt, kv, at, e) * qh[e];
        if (d > 0.0f)
            s += wrow[h] * d;
    }
    scores[(ulong)qt * (ulong)row_stride + (ulong)j] = s;
}

#define MOAK_INDEXER_KERNEL(name, fmt)                                                         \
    kernel void name(global const uchar *kv, global const float *q, global const float *w,     \
                     global const int *page_table, global const int4 *seq_info,                \
                     global const int *query_seq, global float *scores, int n_heads, int dim,  \
                     int page_tokens, ulong page_bytes, ulong row_bytes, int row_stride)       \
    {                                                                                          \
        indexer_body(fmt, kv, q, w, page_table, seq_info, query_seq, scores, n_heads, dim,     \
                     page_tokens, page_bytes, row_bytes, row_stride);                          \
    }

MOAK_INDEXER_KERNEL(indexer_f32, FMT_F32)
MOAK_INDEXER_KERNEL(indexer_f16, FMT_F16)
MOAK_INDEXER_KERNEL(indexer_bf16, FMT_BF16)
MOAK_INDEXER_KERNEL(indexer_q8_0, FMT_Q8_0)
