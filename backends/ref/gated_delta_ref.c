/*
 * gated_delta_ref.c — the gated delta rule (moak.h), the ground truth: the
 * token-by-token recurrence exactly as moak.h writes it, in double.
 *
 * Two passes, each over the context's pool:
 *   1. per sequence: the depthwise causal conv1d + SiLU over all channels
 *      (the conv state supplies the inputs before the first token), then
 *      q, k L2-normalised (eps 1e-6 inside the root) and q scaled, kept in
 *      double; the conv state becomes the last kernel-1 raw inputs;
 *   2. per (sequence, value head): S loaded to double, the recurrence run
 *      over the tokens, S stored back as f32 (the state's format).
 * Every buffer is allocated before pass 1, so nothing fails once the state
 * starts to change.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref_internal.h"

#define L2_EPS 1e-6

typedef struct gdn_job {
    const moak_gated_delta_args *a;
    double *features;            /* [total][channels]: q, k normalised, v, after the conv */
    double *head_scratch;        /* per thread: S [dk][dv] + u [dv] */
} gdn_job;

static void conv_sequence(void *arg, int64_t i, int32_t thread)
{
    (void)thread;
    const gdn_job *j = arg;
    const moak_gated_delta_args *a = j->a;
    const int64_t C = a->channels, K = a->conv_kernel, n = a->q_lens[i], t0 = a->q_offsets[i];
    float *conv_state = a->conv_states ? a->conv_states + (size_t)a->seq_ids[i] * (size_t)((K - 1) * C) : NULL;
    const int64_t dk = a->head_dim_k;
    for (int64_t t = 0; t < n; t++) {
        double *f = j->features + (size_t)(t0 + t) * (size_t)C;
        for (int64_t c = 0; c < C; c++) {
            double acc = 0.0;
            for (int64_t tap = 0; tap < K; tap++) {
                /* input at time t - (K-1) + tap; negative times are the conv state */
                int64_t time = t - (K - 1) + tap;
                float x = time >= 0 ? a->qkv[(size_t)(t0 + time) * (size_t)C + (size_t)c]
                                    : conv_state[(size_t)(K - 1 + time) * (size_t)C + (size_t)c];
                acc += (double)a->conv_w[(size_t)c * (size_t)K + (size_t)tap] * (double)x;
            }
            f[c] = acc / (1.0 + exp(-acc));
        }
        /* q heads then k heads: unit L2 norm (q then scaled) */
        for (int64_t h = 0; h < 2 * (int64_t)a->n_qk_heads; h++) {
            double *x = f + h * dk, ss = 0.0;
            for (int64_t d = 0; d < dk; d++)
                ss += x[d] * x[d];
            double r = 1.0 / sqrt(ss + L2_EPS);
            if (h < a->n_qk_heads)
                r *= (double)a->scale;
            for (int64_t d = 0; d < dk; d++)
                x[d] *= r;
        }
    }
    if (!conv_state)
        return;
    /* The new conv state: the last K-1 raw inputs, older ones from the old state. */
    for (int64_t r = 0; r < K - 1; r++) {
        int64_t time = n - (K - 1) + r; /* this call's token index; < 0: the old state's row */
        float *dst = conv_state + (size_t)r * (size_t)C;
        if (time >= 0)
            memcpy(dst, a->qkv + (size_t)(t0 + time) * (size_t)C, (size_t)C * sizeof(float));
        else
            memmove(dst, conv_state + (size_t)(K - 1 + time) * (size_t)C, (size_t)C * sizeof(float));
    }
}

static void recur_head(void *arg, int64_t task, int32_t thread)
{
    const gdn_job *j = arg;
    const moak_gated_delta_args *a = j->a;
    const int64_t Hv = a->n_v_heads, dk = a->head_dim_k, dv = a->head_dim_v, C = a->channels;
    const int64_t i = task / Hv, h = task % Hv, n = a->q_lens[i], t0 = a->q_offsets[i];
    const int64_t qk_head = h / (Hv / a->n_qk_heads);
    double *S = j->head_scratch + (size_t)thread * (size_t)(dk * dv + dv), *u = S + dk * dv;
    float *state = a->delta_states + ((size_t)a->seq_ids[i] * (size_t)Hv + (size_t)h) * (size_t)(dk * dv);
    for (int64_t e = 0; e < dk * dv; e++)
        S[e] = state[e];
    for (int64_t t = 0; t < n; t++) {
        const double *f = j->features + (size_t)(t0 + t) * (size_t)C;
        const double *q = f + qk_head * dk, *k = f + (a->n_qk_heads + qk_head) * dk;
        const double *v = f + 2 * a->n_qk_heads * dk + h * dv;
        const size_t tok = (size_t)(t0 + t);
        const double beta = a->beta[tok * (size_t)Hv + (size_t)h];
        /* decay */
        for (int64_t r = 0; r < dk; r++) {
            double g = a->gate == MOAK_GATE_PER_KEY ? a->g[(tok * (size_t)Hv + (size_t)h) * (size_t)dk + (size_t)r]
                                                    : a->g[tok * (size_t)Hv + (size_t)h];
            double decay = exp(g);
            for (int64_t c = 0; c < dv; c++)
                S[r * dv + c] *= decay;
        }
        /* u = beta (v - S^T k) */
        for (int64_t c = 0; c < dv; c++) {
            double sk = 0.0;
            for (int64_t r = 0; r < dk; r++)
                sk += S[r * dv + c] * k[r];
            u[c] = beta * (v[c] - sk);
        }
        /* S += k u^T; o = S^T q */
        for (int64_t r = 0; r < dk; r++)
            for (int64_t c = 0; c < dv; c++)
                S[r * dv + c] += k[r] * u[c];
        float *o = a->out + (tok * (size_t)Hv + (size_t)h) * (size_t)dv;
        for (int64_t c = 0; c < dv; c++) {
            double acc = 0.0;
            for (int64_t r = 0; r < dk; r++)
                acc += S[r * dv + c] * q[r];
            o[c] = (float)acc;
        }
    }
    for (int64_t e = 0; e < dk * dv; e++)
        state[e] = (float)S[e];
}

moak_status ref_gated_delta(void *state, const moak_gated_delta_args *a)
{
    ref_state *st = state;
    const int64_t total = a->q_offsets[a->n_seqs];
    gdn_job job = {.a = a};
    job.features = ref_alloc_array((size_t)total * (size_t)a->channels, sizeof(double));
    job.head_scratch = ref_alloc_per_thread(st, (size_t)a->head_dim_k * (size_t)a->head_dim_v + (size_t)a->head_dim_v,
                                            sizeof(double));
    if (!job.features || !job.head_scratch) {
        free(job.features);
        free(job.head_scratch);
        return ref_out_of_memory(st, "the gated delta rule's features");
    }
    ref_parallel_for(st, a->n_seqs, conv_sequence, &job);
    ref_parallel_for(st, (int64_t)a->n_seqs * a->n_v_heads, recur_head, &job);
    free(job.features);
    free(job.head_scratch);
    return MOAK_OK;
}
