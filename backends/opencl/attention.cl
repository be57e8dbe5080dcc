/*
 * attention.cl — attention of query tokens over the paged KV cache, one
 * work-group per (query head, query token): global size (n_heads * lws,
 * total query tokens), lws a power of two.
 *
 * The cache buffer keeps the core's page layout (moak_kv_layout): page p at
 * p * page_bytes; K rows [kv head][slot] of row_bytes_k; V rows likewise
 * from v_offset, or the first dv elements of the K row with shared_v.
 *
 * Keys are taken lws at a time: work-item c scores key j0 + c into
 * s_local; every work-item then reads the chunk's maximum and the sum of
 * p = exp(s - max) from local memory (one barrier each, same order in every
 * work-item, so all agree), and rescales its own output dims d = lid,
 * lid + lws, ... in acc_local (online softmax).  A sink starts the softmax
 * at max = sink with denominator exp(0) = 1.  Mask: causal keys <= pos,
 * sliding window keys > pos - window; only admitted keys are visited.
 * Sparse attention (sparse_k > 0): the keys are the entries of the query's
 * row of `positions` instead of lo..hi-1, lws entries at a time; an entry
 * that is -1 or that the mask hides scores -INFINITY (p = 0, its V never
 * read), a position listed twice is two terms.  A chunk with no admitted
 * key weighs 0 and leaves the running state alone (exp(-inf - -inf) would
 * be NaN; it still passes both barriers, like every chunk), and a
 * query that admits none writes zeros.
 * Accuracy: f32 throughout.
 *
 * Local-memory hand-over between chunks: s_local is read only before the
 * chunk's second barrier; p_local and vrow_local are read after it (in the
 * V loop), so they are written only after the next chunk's first barrier,
 * which no work-item passes before all have left the V loop.  (A vrow_local
 * store before that first barrier raced with slower work-items' V loop: a
 * work-group's work-items do not run in lockstep on a GPU, whatever a CPU
 * driver's serial loop over them suggests.)
 */

/* Byte `at` starts a KV row; four elements e..e+3 of it (e a multiple of 4,
 * e + 4 <= the row's length). */
MOAK_FN float4 load_kv4(const int fmt, global const uchar *kv, ulong at, int e)
{
    switch (fmt) {
    case FMT_F32:
        return vload4(0, (global const float *)(kv + at) + e);
    case FMT_F16:
        return vload_half4((size_t)(e / 4), (global const half *)(kv + at));
    case FMT_BF16:
        return as_float4(convert_uint4(vload4(0, (global const ushort *)(kv + at) + e))
                         << (uint4)16);
    default: { /* FMT_Q8_0: blocks of { half d; char q[32]; } */
        global const uchar *block = kv + at + (ulong)(e / 32) * 34;
        const float d = vload_half(0, (global const half *)block);
        return convert_float4(vload4(0, (global const char *)(block + 2) + (e & 31))) * d;
    }
    }
}

MOAK_FN float load_kv1(const int fmt, global const uchar *kv, ulong at, int e)
{
    switch (fmt) {
    case FMT_F32:
        return ((global const float *)(kv + at))[e];
    case FMT_F16:
        return vload_half((size_t)e, (global const half *)(kv + at));
    case FMT_BF16:
        return as_float((uint)((global const ushort *)(kv + at))[e] << 16);
    default: {
        global const uchar *block = kv + at + (ulong)(e / 32) * 34;
        return (float)((global const char *)(block + 2))[e & 31] *
               vload_half(0, (global const half *)block);
    }
    }
}

MOAK_FN void attention_body(const int fmt, global const uchar *kv, global const float *q,
                            global float *out, global const int *page_table,
                            global const int4 *seq_info, global const int *query_seq,
                            global const float *sinks, int has_sinks,
                            global const int *positions, int sparse_k, int n_heads,
                            int n_kv_heads, int dk, int dv, float scale, int causal, int window,
                            float softcap, float exp_mul, int page_tokens, ulong page_bytes, ulong v_offset,
                            ulong row_bytes_k, ulong row_bytes_v, int shared_v,
                            local float *q_local, local float *s_local, local float *p_local,
                            local ulong *vrow_local, local float *acc_local)
{
    const int h = (int)get_group_id(0);
    const int qt = (int)get_group_id(1);
    const int lid = (int)get_local_id(0), lws = (int)get_local_size(0);
    /* seq_info: (first page-table entry, cached length, q_len, first query token) */
    const int4 si = seq_info[query_seq[qt]];
    const int pos = si.y - si.z + (qt - si.w);
    const int hi = causal ? pos + 1 : si.y;
    const int lo = window > 0 ? max(0, pos - window + 1) : 0;
    /* entries e in [e_lo, e_hi): keys lo.. (dense) or the query's list (sparse) */
    const int e_lo = sparse_k > 0 ? 0 : lo, e_hi = sparse_k > 0 ? sparse_k : hi;
    global const int *list = positions + (ulong)qt * (ulong)max(sparse_k, 0);
    const ulong kvh = (ulong)(h / (n_heads / n_kv_heads));
    const ulong row_slot_k = row_bytes_k, row_slot_v = shared_v ? row_bytes_k : row_bytes_v;
    const ulong v_base = shared_v ? 0 : v_offset;

    global const float *qrow = q + ((ulong)qt * (ulong)n_heads + (ulong)h) * (ulong)dk;
    for (int d = lid; d < dk; d += lws)
        q_local[d] = qrow[d];
    for (int d = lid; d < dv; d += lws)
        acc_local[d] = 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);

    /* scores s are logits / exp_mul (a power of two, 1 unless the scale is
     * beyond 2^64: scale * q.k would overflow f32); soft-capped ones are
     * logits themselves */
    const float mul = softcap > 0.0f ? 1.0f : exp_mul;
    float m = has_sinks ? sinks[h] / mul : -INFINITY;
    float l = has_sinks ? 1.0f : 0.0f;
    for (int j0 = e_lo; j0 < e_hi; j0 += lws) {
        const int cnt = min(lws, e_hi - j0);
        ulong vrow = 0; /* this work-item's V row, published after the first barrier */
        const int j = sparse_k > 0 && lid < cnt ? list[j0 + lid] : j0 + lid;
        if (lid < cnt && (j < lo || j >= hi)) {
            s_local[lid] = -INFINITY; /* an unused or masked list entry */
        } else if (lid < cnt) {
            const ulong page = (ulong)page_table[si.x + j / page_tokens];
            const ulong slot = (ulong)(j % page_tokens);
            const ulong k_at = page * page_bytes + (kvh * (ulong)page_tokens + slot) * row_slot_k;
            float s = 0.0f;
            int e = 0;
            for (; e + 4 <= dk; e += 4)
                s += dot(load_kv4(fmt, kv, k_at, e), vload4(0, q_local + e));
            for (; e < dk; e++)
                s += load_kv1(fmt, kv, k_at, e) * q_local[e];
            s *= scale;
            if (softcap > 0.0f)
                s = softcap * tanh(s / softcap * exp_mul);
            s_local[lid] = s;
            vrow = page * page_bytes + v_base + (kvh * (ulong)page_tokens + slot) * row_slot_v;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float chunk_max = -INFINITY;
        for (int c = 0; c < cnt; c++)
            chunk_max = fmax(chunk_max, s_local[c]);
        const float m_new = fmax(m, chunk_max);
        /* nothing admitted so far (sparse): keep the state, weigh the chunk 0 */
        const bool none = m_new == -INFINITY;
        const float alpha = none ? 1.0f : exp((m - m_new) * mul);
        if (lid < cnt) {
            p_local[lid] = none ? 0.0f : exp((s_local[lid] - m_new) * mul);
            vrow_local[lid] = vrow;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float chunk_sum = 0.0f;
        for (int c = 0; c < cnt; c++)
            chunk_sum += p_local[c];
        l = l * alpha + chunk_sum;
        for (int d = lid; d < dv; d += lws) {
            float a = acc_local[d] * alpha;
            for (int c = 0; c < cnt; c++)
                if (p_local[c] != 0.0f) /* a hidden entry's vrow is not a row */
                    a += p_local[c] * load_kv1(fmt, kv, vrow_local[c], d);
            acc_local[d] = a;
        }
        m = m_new;
    }
    global float *orow = out + ((ulong)qt * (ulong)n_heads + (ulong)h) * (ulong)dv;
    for (int d = lid; d < dv; d += lws)
        orow[d] = l > 0.0f ? acc_local[d] / l : 0.0f;
}

#define MOAK_ATTENTION_KERNEL(name, fmt)                                                       \
    kernel void name(global const uchar *kv, global const float *q, global float *out,         \
                     global const int *page_table, global const int4 *seq_info,                \
                     global const int *query_seq, global const float *sinks, int has_sinks,    \
                     global const int *positions, int sparse_k, int n_heads,                   \
                     int n_kv_heads, int dk, int dv, float scale, int causal,                  \
                     int window, float softcap, float exp_mul, int page_tokens, ulong page_bytes, \
                     ulong v_offset, ulong row_bytes_k, ulong row_bytes_v, int shared_v,       \
                     local float *q_local, local float *s_local, local float *p_local,         \
                     local ulong *vrow_local, local float *acc_local)                          \
    {                                                                                          \
        attention_body(fmt, kv, q, out, page_table, seq_info, query_seq, sinks, has_sinks,     \
                       positions, sparse_k, n_heads, n_kv_heads, dk, dv, scale, causal,        \
                       window, softcap, exp_mul,                                               \
                       page_tokens, page_bytes, v_offset, row_bytes_k, row_bytes_v, shared_v,  \
                       q_local, s_local, p_local, vrow_local, acc_local);                      \
    }

MOAK_ATTENTION_KERNEL(attention_f32, FMT_F32)
MOAK_ATTENTION_KERNEL(attention_f16, FMT_F16)
MOAK_ATTENTION_KERNEL(attention_bf16, FMT_BF16)
MOAK_ATTENTION_KERNEL(attention_q8_0, FMT_Q8_0)
