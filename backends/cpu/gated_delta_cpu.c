/*
 * gated_delta_cpu.c — the gated delta rule's driver for the CPU backends
 * (ISA-neutral: the vector work goes through a moak_gdn_kernels table).
 *
 * Three parallel phases over the context's pool, all scratch allocated
 * before the first (so a failure leaves output and state untouched):
 *   1. conv: per (sequence, block of channels), the depthwise causal conv +
 *      SiLU of every token into a feature buffer [tokens][channels]; the
 *      taps before a sequence's first new token come from its conv state;
 *   2. norm: per block of tokens, q and k heads L2-normalised, q scaled
 *      (then, serially, each sequence's conv state becomes its last
 *      kernel-1 raw inputs: phase 1 has read the old one);
 *   3. delta: per (sequence, value head): q_len 1 runs the recurrence
 *      (decode: the state is read once for S^T(a k) and S^T(a q) together
 *      and then rewritten once, S <- a S + k u^T); longer runs go in chunks
 *      of GDN_CHUNK tokens in the WY form, as matrix products:
 *        G_t    cumulative log-decay inside the chunk (per key channel for
 *               KDA), every decay taken as exp of a difference <= 0;
 *        A_ts = beta_t (k_t . k_s) e^(G_t - G_s), s < t (KDA: the decay
 *               inside the dot product, per channel);
 *        T    = (I + A)^-1 (unit lower triangular, row by row);
 *        U    = T diag(beta) V - T diag(beta) (e^G o K) S0   (the u_t of
 *               every token of the chunk at once);
 *        O    = (P o e^(G_t - G_s), s <= t) U + (e^G o Q) S0, P = Q K^T;
 *        S    = e^(G_last) o S0 + (e^(G_last - G) o K)^T U.
 *      With exact arithmetic this is the recurrence; in f32 it agrees with
 *      the double recurrence within MOAK_BOUND_GATED_DELTA (test_gated_delta).
 */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200112L
#  undef _POSIX_C_SOURCE
#  define _POSIX_C_SOURCE 200112L
#endif
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gated_delta_cpu.h"

#define GDN_CHUNK 64
#define GDN_L2_EPS 1e-6f
#define GDN_CONV_BLOCK 512      /* channels per conv task */
#define GDN_NORM_TOKENS 8       /* tokens per normalisation task */

typedef struct gdn_job {
    const moak_gdn_kernels *kern;
    const moak_gated_delta_args *a;
    float *features;            /* [total][channels] */
    float *w_t;                 /* [conv_kernel][channels] */
    float *scratch;             /* [threads][scratch_floats] */
    size_t scratch_floats;
    int64_t conv_blocks;        /* channel blocks per sequence */
    int64_t norm_tasks;
} gdn_job;

/* ---- phase 1: conv + SiLU ------------------------------------------------------ */

static void conv_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const gdn_job *j = arg;
    const moak_gated_delta_args *a = j->a;
    const int64_t i = task / j->conv_blocks, blk = task % j->conv_blocks, C = a->channels;
    const int64_t c0 = blk * GDN_CONV_BLOCK, c1 = c0 + GDN_CONV_BLOCK < C ? c0 + GDN_CONV_BLOCK : C;
    const int32_t K = a->conv_kernel;
    const int64_t t0 = a->q_offsets[i], n = a->q_lens[i];
    const float *state = a->conv_states ? a->conv_states + (size_t)a->seq_ids[i] * (size_t)((K - 1) * C) : NULL;
    const float *rows[16];
    for (int64_t t = 0; t < n; t++) {
        for (int32_t tap = 0; tap < K; tap++) {
            int64_t time = t - (K - 1) + tap;
            rows[tap] = time >= 0 ? a->qkv + (size_t)(t0 + time) * (size_t)C : state + (size_t)(K - 1 + time) * (size_t)C;
        }
        j->kern->conv_silu(rows, j->w_t, C, K, c0, c1, j->features + (size_t)(t0 + t) * (size_t)C);
    }
}

/* ---- phase 2: L2 norms ------------------------------------------------------------- */

static void norm_task(void *arg, int64_t task, int32_t thread)
{
    (void)thread;
    const gdn_job *j = arg;
    const moak_gated_delta_args *a = j->a;
    const int64_t total = a->q_offsets[a->n_seqs], dk = a->head_dim_k;
    const int64_t t1 = (task + 1) * GDN_NORM_TOKENS < total ? (task + 1) * GDN_NORM_TOKENS : total;
    for (int64_t t = task * GDN_NORM_TOKENS; t < t1; t++) {
        float *f = j->features + (size_t)t * (size_t)a->channels;
        for (int64_t h = 0; h < 2 * (int64_t)a->n_qk_heads; h++)
            j->kern->l2_normalize(f + h * dk, dk, GDN_L2_EPS, h < a->n_qk_heads ? a->scale : 1.0f);
    }
}

static void update_conv_states(const moak_gated_delta_args *a)
{
    const int64_t K = a->conv_kernel, C = a->channels;
    if (!a->conv_states)
        return;
    for (int32_t i = 0; i < a->n_seqs; i++) {
        const int64_t n = a->q_lens[i], t0 = a->q_offsets[i];
        float *state = a->conv_states + (size_t)a->seq_ids[i] * (size_t)((K - 1) * C);
        for (int64_t r = 0; r < K - 1; r++) {
            int64_t time = n - (K - 1) + r; /* < 0: a row of the old state, further down */
            const float *src = time >= 0 ? a->qkv + (size_t)(t0 + time) * (size_t)C : state + (size_t)(K - 1 + time) * (size_t)C;
            memmove(state + (size_t)r * (size_t)C, src, (size_t)C * sizeof(float));
        }
    }
}

/* ---- phase 3: the delta rule per (sequence, value head) ------------------------------- */

typedef struct head_view {
    int64_t dk, dv, C, Hv, ldo;
    const float *q, *k, *v;      /* token 0's rows (stride C) */
    const float *g;              /* token 0's gate(s) */
    int64_t g_stride;            /* floats per token */
    const float *beta;           /* token 0's beta (stride Hv) */
    float *out;                  /* token 0's output row (stride ldo) */
    float *s;                    /* the state, dk x dv */
    bool per_key;
} head_view;

static void decode_token(const moak_gdn_kernels *kern, const head_view *h, float *scratch)
{
    const int64_t dk = h->dk, dv = h->dv;
    float *decay = scratch, *ak = decay + dk, *aq = ak + dk, *r = aq + dk, *u = r + 2 * dv;
    for (int64_t c = 0; c < dk; c++)
        decay[c] = expf(h->per_key ? h->g[c] : h->g[0]);
    float kq = 0.0f;
    for (int64_t c = 0; c < dk; c++) {
        ak[c] = decay[c] * h->k[c];
        aq[c] = decay[c] * h->q[c];
        kq = fmaf(h->k[c], h->q[c], kq);
    }
    /* r[0] = (aS)^T k, r[1] = (aS)^T q: one pass over S (ak and aq are adjacent rows) */
    kern->gemm(2, dv, dk, ak, dk, h->s, dv, r, dv, false);
    const float beta = h->beta[0];
    for (int64_t c = 0; c < dv; c++) {
        u[c] = beta * (h->v[c] - r[c]);
        h->out[c] = fmaf(kq, u[c], r[dv + c]); /* S'^T q = (aS)^T q + u (k . q) */
    }
    kern->decay_rank1(h->s, dk, dv, decay, h->k, u);
}

/* Scratch of one chunk (floats), all matrices with GDN_CHUNK-wide rows where L x L. */
static size_t chunk_scratch_floats(int64_t dk, int64_t dv)
{
    const size_t ch = GDN_CHUNK;
    return 5 * ch * ch + 2 * (size_t)dk * ch + 5 * ch * (size_t)dk + ch * (size_t)dv + ch + (size_t)dk + 64;
}

static void chunk(const moak_gdn_kernels *kern, const head_view *h, int64_t L, float *scratch)
{
    const int64_t dk = h->dk, dv = h->dv, C = h->C, CH = GDN_CHUNK;
    float *KK = scratch, *P = KK + CH * CH, *T = P + CH * CH, *Tb = T + CH * CH, *Tw = Tb + CH * CH;
    float *Kt = Tw + CH * CH, *Ktd = Kt + dk * CH;
    float *Kg = Ktd + dk * CH, *Qg = Kg + CH * dk, *W = Qg + CH * dk, *Kd = W + CH * dk, *Gk = Kd + CH * dk;
    float *U = Gk + CH * dk, *Gs = U + CH * dv, *decay = Gs + CH;
    const float *q = h->q, *k = h->k;

    /* cumulative log-decays */
    if (h->per_key) {
        for (int64_t t = 0; t < L; t++)
            for (int64_t c = 0; c < dk; c++)
                Gk[t * dk + c] = h->g[t * h->g_stride + c] + (t ? Gk[(t - 1) * dk + c] : 0.0f);
    } else {
        for (int64_t t = 0; t < L; t++)
            Gs[t] = h->g[t * h->g_stride] + (t ? Gs[t - 1] : 0.0f);
    }
    for (int64_t t = 0; t < L; t++)
        for (int64_t c = 0; c < dk; c++)
            Kt[c * CH + t] = k[t * C + c];

    /* -A (strictly lower) into KK, P o decays (lower with the diagonal) into P */
    if (h->per_key) {
        for (int64_t t = 0; t < L; t++) {
            const float beta = h->beta[t * h->Hv];
            for (int64_t s = 0; s < L; s++) {
                KK[t * CH + s] = s < t ? -beta * kern->dot_exp_diff(k + t * C, k + s * C, Gk + t * dk, Gk + s * dk, dk) : 0.0f;
                P[t * CH + s] = s <= t ? kern->dot_exp_diff(q + t * C, k + s * C, Gk + t * dk, Gk + s * dk, dk) : 0.0f;
            }
        }
    } else {
        kern->gemm(L, L, dk, k, C, Kt, CH, KK, CH, false);
        kern->gemm(L, L, dk, q, C, Kt, CH, P, CH, false);
        for (int64_t t = 0; t < L; t++) {
            const float beta = h->beta[t * h->Hv];
            for (int64_t s = 0; s < L; s++) {
                const float e = s <= t ? expf(Gs[t] - Gs[s]) : 0.0f;
                KK[t * CH + s] = s < t ? -beta * e * KK[t * CH + s] : 0.0f;
                P[t * CH + s] *= e;
            }
        }
    }
    /* T = (I + A)^-1 row by row: T_t = e_t + (-A_t) T (rows < t are final) */
    for (int64_t t = 0; t < L; t++) {
        if (t > 0)
            kern->gemm(1, t, t, KK + t * CH, CH, T, CH, T + t * CH, CH, false);
        T[t * CH + t] = 1.0f;
        for (int64_t s = t + 1; s < L; s++)
            T[t * CH + s] = 0.0f;
    }
    /* Tb = T diag(beta); Tw = -T diag(beta) */
    for (int64_t t = 0; t < L; t++)
        for (int64_t s = 0; s < L; s++) {
            const float tb = T[t * CH + s] * h->beta[s * h->Hv];
            Tb[t * CH + s] = tb;
            Tw[t * CH + s] = -tb;
        }
    /* Kg = e^G o K, Qg = e^G o Q, Kd = e^(G_last - G) o K, decay = e^(G_last) */
    for (int64_t t = 0; t < L; t++) {
        if (h->per_key) {
            kern->mul_exp_diff(Kg + t * dk, k + t * C, Gk + t * dk, NULL, dk);
            kern->mul_exp_diff(Qg + t * dk, q + t * C, Gk + t * dk, NULL, dk);
            kern->mul_exp_diff(Kd + t * dk, k + t * C, Gk + (L - 1) * dk, Gk + t * dk, dk);
        } else {
            const float eg = expf(Gs[t]), el = expf(Gs[L - 1] - Gs[t]);
            for (int64_t c = 0; c < dk; c++) {
                Kg[t * dk + c] = eg * k[t * C + c];
                Qg[t * dk + c] = eg * q[t * C + c];
                Kd[t * dk + c] = el * k[t * C + c];
            }
        }
    }
    for (int64_t c = 0; c < dk; c++) {
        decay[c] = expf(h->per_key ? Gk[(L - 1) * dk + c] : Gs[L - 1]);
        for (int64_t t = 0; t < L; t++)
            Ktd[c * CH + t] = Kd[t * dk + c];
    }
    /* U = T diag(beta) V - T diag(beta) Kg S0 */
    kern->gemm(L, dv, L, Tb, CH, h->v, C, U, dv, false);
    kern->gemm(L, dk, L, Tw, CH, Kg, dk, W, dk, false);
    kern->gemm(L, dv, dk, W, dk, h->s, dv, U, dv, true);
    /* O = P U + Qg S0 */
    kern->gemm(L, dv, L, P, CH, U, dv, h->out, h->ldo, false);
    kern->gemm(L, dv, dk, Qg, dk, h->s, dv, h->out, h->ldo, true);
    /* S = decay o S0 + Ktd U */
    for (int64_t c = 0; c < dk; c++)
        for (int64_t j = 0; j < dv; j++)
            h->s[c * dv + j] *= decay[c];
    kern->gemm(dk, dv, L, Ktd, CH, U, dv, h->s, dv, true);
}

static void delta_task(void *arg, int64_t task, int32_t thread)
{
    const gdn_job *j = arg;
    const moak_gated_delta_args *a = j->a;
    const int64_t Hv = a->n_v_heads, dk = a->head_dim_k, dv = a->head_dim_v, C = a->channels;
    const int64_t i = task / Hv, hd = task % Hv, n = a->q_lens[i], t0 = a->q_offsets[i];
    const int64_t qh = hd / (Hv / a->n_qk_heads);
    float *scratch = j->scratch + (size_t)thread * j->scratch_floats;
    head_view h;
    h.dk = dk;
    h.dv = dv;
    h.C = C;
    h.Hv = Hv;
    h.ldo = Hv * dv;
    h.per_key = a->gate == MOAK_GATE_PER_KEY;
    h.g_stride = Hv * (h.per_key ? dk : 1);
    h.s = a->delta_states + ((size_t)a->seq_ids[i] * (size_t)Hv + (size_t)hd) * (size_t)(dk * dv);
    for (int64_t cs = 0; cs < n; cs += GDN_CHUNK) {
        const int64_t tok = t0 + cs;
        const float *f = j->features + (size_t)tok * (size_t)C;
        h.q = f + qh * dk;
        h.k = f + (a->n_qk_heads + qh) * dk;
        h.v = f + 2 * a->n_qk_heads * dk + hd * dv;
        h.g = a->g + (size_t)tok * (size_t)h.g_stride + (size_t)hd * (size_t)(h.per_key ? dk : 1);
        h.beta = a->beta + (size_t)tok * (size_t)Hv + (size_t)hd;
        h.out = a->out + ((size_t)tok * (size_t)Hv + (size_t)hd) * (size_t)dv;
        if (n == 1)
            decode_token(j->kern, &h, scratch);
        else
            chunk(j->kern, &h, n - cs < GDN_CHUNK ? n - cs : GDN_CHUNK, scratch);
    }
}

static void run(const moak_backend_env *env, int64_t n_tasks, moak_task_fn fn, void *arg)
{
    if (env->parallel_for) {
        env->parallel_for(env->pool, n_tasks, fn, arg);
        return;
    }
    for (int64_t t = 0; t < n_tasks; t++)
        fn(arg, t, 0);
}

moak_status moak_cpu_gated_delta(const moak_gdn_kernels *kern, const moak_backend_env *env,
                                 const moak_gated_delta_args *a)
{
    const int64_t total = a->q_offsets[a->n_seqs], C = a->channels, K = a->conv_kernel;
    const int32_t threads = env->n_threads > 0 ? env->n_threads : 1;
    gdn_job j;
    memset(&j, 0, sizeof(j));
    j.kern = kern;
    j.a = a;
    j.scratch_floats = (chunk_scratch_floats(a->head_dim_k, a->head_dim_v) + 15) & ~(size_t)15;
    void *features = NULL, *w_t = NULL, *scratch = NULL;
    if (posix_memalign(&features, 64, (size_t)total * (size_t)C * sizeof(float)) != 0 ||
        posix_memalign(&w_t, 64, (size_t)K * (size_t)C * sizeof(float)) != 0 ||
        posix_memalign(&scratch, 64, (size_t)threads * j.scratch_floats * sizeof(float)) != 0) {
        free(features);
        free(w_t);
        free(scratch);
        return env->error(env->log_ctx, MOAK_ERR_OUT_OF_MEMORY,
                          "%s: out of memory for the gated delta rule's %lld x %lld features", kern->name,
                          (long long)total, (long long)C);
    }
    j.features = features;
    j.w_t = w_t;
    j.scratch = scratch;
    for (int64_t c = 0; c < C; c++)
        for (int64_t tap = 0; tap < K; tap++)
            j.w_t[tap * C + c] = a->conv_w[c * K + tap];
    j.conv_blocks = (C + GDN_CONV_BLOCK - 1) / GDN_CONV_BLOCK;
    run(env, (int64_t)a->n_seqs * j.conv_blocks, conv_task, &j);
    run(env, (total + GDN_NORM_TOKENS - 1) / GDN_NORM_TOKENS, norm_task, &j);
    update_conv_states(a);
    run(env, (int64_t)a->n_seqs * a->n_v_heads, delta_task, &j);
    free(features);
    free(w_t);
    free(scratch);
    return MOAK_OK;
}
