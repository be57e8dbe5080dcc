/* test_gated_delta — moak_gated_delta_rule and its state against an oracle
 * written here: the recurrence of moak.h in double, with its own copy of
 * every sequence's state (delta matrices and conv inputs).
 *
 * Each case runs a script of calls on one state object: mixed prefill
 * lengths (chunk boundaries at 64 crossed and not), decodes, prefills that
 * continue a stored state, a cleared sequence reused, sequences left out of
 * a call.  After every call the outputs (poisoned before) and the stored
 * state of every sequence are compared with the oracle.  Separately, a
 * prefill of T tokens then a decode of one is compared with one prefill of
 * T + 1 on the same data (both sequences in one state, through the library
 * only).  Shapes: Qwen3-Next (16 q/k heads, 32 v heads, d 128, scalar gate)
 * and Kimi Linear (32/32, d 128, per-key gate), plus small odd ones. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ref is the same recurrence in double, rounded to f32 at the output and the
 * stored state: its error against this oracle is rounding only. */
#define REF_BOUND 1e-5
#define MAX_SEQS 4
#define MAX_CALLS 6
#define L2_EPS 1e-6

typedef struct gdn_case {
    const char *label;
    int32_t hk, hv, dk, dv, kernel;
    moak_gate_kind gate;
    int32_t n_calls;
    int32_t q_lens[MAX_CALLS][MAX_SEQS]; /* -1: sequence left out of the call */
    int32_t clear_before[MAX_CALLS];     /* sequence to clear before the call, -1 none */
    int emulated_ok;                     /* small enough for qemu */
} gdn_case;

static const gdn_case cases[] = {
    /* odd sizes: dk, dv not multiples of a vector; 2 v heads per q/k head */
    {"small odd", 2, 4, 24, 20, 4, MOAK_GATE_PER_HEAD, 5,
     {{70, 1, 5, 0}, {1, 1, 1, -1}, {2, 130, -1, 64}, {1, -1, 3, 1}, {65, 1, 1, 1}},
     {-1, -1, -1, 2, 0}, 1},
    {"small odd per-key", 2, 4, 24, 20, 4, MOAK_GATE_PER_KEY, 5,
     {{70, 1, 5, 0}, {1, 1, 1, -1}, {2, 130, -1, 64}, {1, -1, 3, 1}, {65, 1, 1, 1}},
     {-1, -1, -1, 2, 0}, 1},
    {"kernel 2, dk 16", 1, 3, 16, 32, 2, MOAK_GATE_PER_HEAD, 3,
     {{3, 1, 64, 128}, {1, 1, 1, 1}, {129, 2, 1, 1}}, {-1, -1, 1}, 1},
    /* Qwen3-Next: 16 q/k heads, 32 v heads, d 128, kernel 4, scalar gates */
    {"qwen3-next", 16, 32, 128, 128, 4, MOAK_GATE_PER_HEAD, 4,
     {{67, 1, 3, -1}, {1, 1, 1, -1}, {1, 64, -1, 2}, {1, 1, 1, 1}}, {-1, -1, 0, -1}, 0},
    /* Kimi Linear (KDA): 32 heads of 128 for q, k and v, per-key gates */
    {"kimi-linear", 32, 32, 128, 128, 4, MOAK_GATE_PER_KEY, 3,
     {{66, 1, 3, -1}, {1, 1, 1, -1}, {2, 1, -1, 1}}, {-1, -1, 1}, 0},
};

typedef struct oracle {
    int32_t hk, hv, dk, dv, K;
    int64_t C;
    double *S[MAX_SEQS];       /* [hv][dk][dv] */
    double *conv[MAX_SEQS];    /* [K-1][C] raw inputs */
} oracle;

static void oracle_clear(oracle *o, int s)
{
    memset(o->S[s], 0, sizeof(double) * (size_t)(o->hv * o->dk * o->dv));
    memset(o->conv[s], 0, sizeof(double) * (size_t)((o->K - 1) * o->C + 1));
}

/* One sequence's n tokens through the oracle; out [n][hv][dv] in double. */
static void oracle_run(oracle *o, int s, int64_t n, const float *qkv, const float *w, const float *g,
                       const float *beta, moak_gate_kind gate, double scale, double *out)
{
    const int64_t C = o->C, K = o->K, dk = o->dk, dv = o->dv, hv = o->hv, hk = o->hk;
    double *x = t_alloc_f64((size_t)C), *u = t_alloc_f64((size_t)dv);
    double *hist = t_alloc_f64((size_t)(K * C)); /* window of raw inputs, oldest first */
    for (int64_t t = 0; t < n; t++) {
        /* slide the window: conv state rows then this token */
        memcpy(hist, o->conv[s], sizeof(double) * (size_t)((K - 1) * C));
        for (int64_t c = 0; c < C; c++)
            hist[(K - 1) * C + c] = qkv[t * C + c];
        for (int64_t c = 0; c < C; c++) {
            double acc = 0;
            for (int64_t j = 0; j < K; j++)
                acc += (double)w[c * K + j] * hist[j * C + c];
            x[c] = acc / (1.0 + exp(-acc));
        }
        if (K > 1)
            memcpy(o->conv[s], hist + C, sizeof(double) * (size_t)((K - 1) * C));
        for (int64_t h = 0; h < 2 * hk; h++) {
            double ss = 0;
            for (int64_t d = 0; d < dk; d++)
                ss += x[h * dk + d] * x[h * dk + d];
            double r = 1.0 / sqrt(ss + L2_EPS) * (h < hk ? scale : 1.0);
            for (int64_t d = 0; d < dk; d++)
                x[h * dk + d] *= r;
        }
        for (int64_t h = 0; h < hv; h++) {
            const int64_t qh = h / (hv / hk);
            const double *q = x + qh * dk, *k = x + (hk + qh) * dk, *v = x + 2 * hk * dk + h * dv;
            double *S = o->S[s] + h * dk * dv;
            for (int64_t r = 0; r < dk; r++) {
                double a = exp(gate == MOAK_GATE_PER_KEY ? g[(t * hv + h) * dk + r] : g[t * hv + h]);
                for (int64_t c = 0; c < dv; c++)
                    S[r * dv + c] *= a;
            }
            for (int64_t c = 0; c < dv; c++) {
                double sk = 0;
                for (int64_t r = 0; r < dk; r++)
                    sk += S[r * dv + c] * k[r];
                u[c] = beta[t * hv + h] * (v[c] - sk);
            }
            for (int64_t r = 0; r < dk; r++)
                for (int64_t c = 0; c < dv; c++)
                    S[r * dv + c] += k[r] * u[c];
            for (int64_t c = 0; c < dv; c++) {
                double acc = 0;
                for (int64_t r = 0; r < dk; r++)
                    acc += S[r * dv + c] * q[r];
                out[(t * hv + h) * dv + c] = acc;
            }
        }
    }
    free(x);
    free(u);
    free(hist);
}

typedef struct inputs {
    int64_t total;
    float *qkv, *g, *beta, *out;
    double *want;
} inputs;

static void make_inputs(inputs *in, int64_t total, int64_t C, int64_t n_g, int64_t hv, int64_t dv)
{
    in->total = total;
    in->qkv = t_alloc_f32((size_t)(total * C) + 1);
    in->g = t_alloc_f32((size_t)(total * n_g) + 1);
    in->beta = t_alloc_f32((size_t)(total * hv) + 1);
    in->out = t_alloc_f32((size_t)(total * hv * dv) + 1);
    in->want = t_alloc_f64((size_t)(total * hv * dv) + 1);
    t_fill_normal(in->qkv, (size_t)(total * C), 1.0);
    /* log-decays as the models make them (-exp(A) softplus(.)): mostly small,
     * some strong enough that a chunk of 64 decays past f32's range */
    for (int64_t i = 0; i < total * n_g; i++)
        in->g[i] = (float)(t_uniform(0, 1) < 0.1 ? t_uniform(-4.0, -1.0) : t_uniform(-0.5, -1e-3));
    t_fill_uniform(in->beta, (size_t)(total * hv), 0.05, 1.0);
    t_poison_f32(in->out, (size_t)(total * hv * dv));
}

static void free_inputs(inputs *in)
{
    free(in->qkv);
    free(in->g);
    free(in->beta);
    free(in->out);
    free(in->want);
}

/* max over heads of max|S - ref| / rms(ref) for one sequence's state */
static double state_error(const float *S, const double *ref, int64_t hv, int64_t n)
{
    double worst = 0;
    for (int64_t h = 0; h < hv; h++) {
        double e = t_row_error(S + h * n, ref + h * n, n);
        if (!(e <= worst))
            worst = e;
    }
    return worst;
}

/* A state of the case's shape for max_seqs sequences and the op's matching desc. */
static moak_linear_state *open_state(const gdn_case *c, moak_context *ctx, int32_t max_seqs, moak_gated_delta_desc *d)
{
    moak_linear_state_desc sd = MOAK_LINEAR_STATE_DESC_INIT;
    sd.n_qk_heads = c->hk;
    sd.n_v_heads = c->hv;
    sd.head_dim_k = c->dk;
    sd.head_dim_v = c->dv;
    sd.conv_kernel = c->kernel;
    sd.max_seqs = max_seqs;
    moak_linear_state *state = NULL;
    t_ok(moak_linear_state_create(ctx, &sd, &state), ctx, "moak_linear_state_create");
    moak_gated_delta_desc dd = MOAK_GATED_DELTA_DESC_INIT;
    dd.n_qk_heads = c->hk;
    dd.n_v_heads = c->hv;
    dd.head_dim_k = c->dk;
    dd.head_dim_v = c->dv;
    dd.conv_kernel = c->kernel;
    dd.gate = c->gate;
    *d = dd;
    return state;
}

static void run_case(const gdn_case *c, const char *backend, moak_context *ctx)
{
    const int64_t C = 2 * (int64_t)c->hk * c->dk + (int64_t)c->hv * c->dv;
    const int64_t n_g = (int64_t)c->hv * (c->gate == MOAK_GATE_PER_KEY ? c->dk : 1);
    const double bound = t_bound_for(backend, REF_BOUND, MOAK_BOUND_GATED_DELTA);
    moak_gated_delta_desc d;
    /* id 0 unused: ids are 1..MAX_SEQS, listed shuffled */
    moak_linear_state *state = open_state(c, ctx, MAX_SEQS + 1, &d);

    oracle o = {c->hk, c->hv, c->dk, c->dv, c->kernel, C, {0}, {0}};
    for (int s = 0; s < MAX_SEQS; s++) {
        o.S[s] = t_alloc_f64((size_t)(c->hv * c->dk * c->dv));
        o.conv[s] = t_alloc_f64((size_t)((c->kernel - 1) * C + 1));
        oracle_clear(&o, s);
    }
    float *w = t_alloc_f32((size_t)(C * c->kernel));
    t_fill_normal(w, (size_t)(C * c->kernel), 0.6);
    float *got_S = t_alloc_f32((size_t)(c->hv * c->dk * c->dv));
    const double scale = 1.0 / sqrt((double)c->dk);

    for (int call = 0; call < c->n_calls; call++) {
        if (c->clear_before[call] >= 0) {
            int s = c->clear_before[call];
            t_ok(moak_linear_state_seq_clear(ctx, state, s + 1), ctx, "seq_clear");
            oracle_clear(&o, s);
        }
        int32_t ids[MAX_SEQS], lens[MAX_SEQS], order[MAX_SEQS], n = 0;
        for (int s = 0; s < MAX_SEQS; s++)
            order[s] = s;
        t_shuffle_i32(order, MAX_SEQS);
        int64_t total = 0;
        for (int k = 0; k < MAX_SEQS; k++) {
            int s = order[k];
            if (c->q_lens[call][s] < 0)
                continue;
            ids[n] = s + 1;
            lens[n] = c->q_lens[call][s];
            total += lens[n++];
        }
        inputs in;
        make_inputs(&in, total, C, n_g, c->hv, c->dv);
        moak_status st = moak_gated_delta_rule(ctx, &d, state, ids, lens, n, in.qkv, w, in.g, in.beta, in.out);
        if (st != MOAK_OK) {
            t_fail("%s gated_delta %s call %d: %s (%s)", backend, c->label, call, t_status_name(st),
                   moak_last_error(ctx));
            free_inputs(&in);
            break;
        }
        const char *ran = moak_last_backend(ctx);
        int64_t t0 = 0;
        for (int k = 0; k < n; k++) {
            int s = ids[k] - 1;
            oracle_run(&o, s, lens[k], in.qkv + t0 * C, w, in.g + t0 * n_g, in.beta + t0 * c->hv, c->gate, scale,
                       in.want + t0 * c->hv * c->dv);
            t0 += lens[k];
        }
        char shape[160];
        snprintf(shape, sizeof(shape), "%s call %d lens %d,%d,%d,%d", c->label, call, c->q_lens[call][0],
                 c->q_lens[call][1], c->q_lens[call][2], c->q_lens[call][3]);
        double err = total ? t_max_row_error(in.out, in.want, total, (int64_t)c->hv * c->dv) : 0.0;
        t_report(backend, ran, "gated_delta", "f32", shape, err, bound);
        double serr = 0;
        for (int s = 0; s < MAX_SEQS; s++) {
            t_ok(moak_linear_state_read(state, s + 1, got_S, NULL), ctx, "moak_linear_state_read");
            double e = state_error(got_S, o.S[s], c->hv, (int64_t)c->dk * c->dv);
            int zero = 1;
            for (int64_t i = 0; i < (int64_t)c->hv * c->dk * c->dv && zero; i++)
                zero = o.S[s][i] == 0.0 && got_S[i] == 0.0f;
            if (zero)
                e = 0; /* a sequence never run or just cleared: both exactly zero */
            if (!(e <= serr))
                serr = e;
        }
        t_report(backend, ran, "gated_delta state", "f32", shape, serr, bound);
        free_inputs(&in);
    }

    for (int s = 0; s < MAX_SEQS; s++) {
        free(o.S[s]);
        free(o.conv[s]);
    }
    free(w);
    free(got_S);
    moak_linear_state_destroy(state);
}

/* Prefill T then decode 1 (sequence 0) against one prefill of T + 1
 * (sequence 1) on the same tokens, through the library only: the chunked
 * and the recurrent forms must agree. */
static void split_vs_whole(const gdn_case *c, int32_t T, const char *backend, moak_context *ctx)
{
    const int64_t C = 2 * (int64_t)c->hk * c->dk + (int64_t)c->hv * c->dv;
    const int64_t n_g = (int64_t)c->hv * (c->gate == MOAK_GATE_PER_KEY ? c->dk : 1), row = (int64_t)c->hv * c->dv;
    moak_gated_delta_desc d;
    moak_linear_state *state = open_state(c, ctx, 2, &d);
    inputs in;
    make_inputs(&in, T + 1, C, n_g, c->hv, c->dv);
    float *w = t_alloc_f32((size_t)(C * c->kernel));
    t_fill_normal(w, (size_t)(C * c->kernel), 0.6);
    float *whole = t_alloc_f32((size_t)((T + 1) * row));
    t_poison_f32(whole, (size_t)((T + 1) * row));
    int32_t id0 = 0, id1 = 1, lenT = T, len1 = 1, lenT1 = T + 1;
    t_ok(moak_gated_delta_rule(ctx, &d, state, &id0, &lenT, 1, in.qkv, w, in.g, in.beta, in.out), ctx, "prefill T");
    t_ok(moak_gated_delta_rule(ctx, &d, state, &id0, &len1, 1, in.qkv + (int64_t)T * C, w, in.g + (int64_t)T * n_g,
                               in.beta + (int64_t)T * c->hv, in.out + (int64_t)T * row),
         ctx, "decode");
    t_ok(moak_gated_delta_rule(ctx, &d, state, &id1, &lenT1, 1, in.qkv, w, in.g, in.beta, whole), ctx, "prefill T+1");
    const char *ran = moak_last_backend(ctx);
    /* the whole prefill as the reference for the split one */
    double *ref = t_alloc_f64((size_t)((T + 1) * row));
    for (int64_t i = 0; i < (T + 1) * row; i++)
        ref[i] = whole[i];
    double err = t_max_row_error(in.out, ref, T + 1, row);
    char shape[120];
    snprintf(shape, sizeof(shape), "%s prefill %d + decode vs prefill %d", c->label, (int)T, (int)T + 1);
    t_report(backend, ran, "gated_delta split", "f32", shape, err, MOAK_BOUND_GATED_DELTA);
    const int64_t n = (int64_t)c->hv * c->dk * c->dv;
    float *s0 = t_alloc_f32((size_t)n), *s1 = t_alloc_f32((size_t)n);
    double *s1d = t_alloc_f64((size_t)n);
    t_ok(moak_linear_state_read(state, 0, s0, NULL), ctx, "read");
    t_ok(moak_linear_state_read(state, 1, s1, NULL), ctx, "read");
    for (int64_t i = 0; i < n; i++)
        s1d[i] = s1[i];
    t_report(backend, ran, "gated_delta split state", "f32", shape, state_error(s0, s1d, c->hv, n / c->hv),
             MOAK_BOUND_GATED_DELTA);
    free(s0);
    free(s1);
    free(s1d);
    free(ref);
    free(whole);
    free(w);
    free_inputs(&in);
    moak_linear_state_destroy(state);
}

int main(void)
{
    t_init("test_gated_delta");
    const int emulated = getenv("MOAK_TEST_EMULATOR") && *getenv("MOAK_TEST_EMULATOR");
    t_backend bk[T_MAX_BACKENDS];
    int n_bk = t_open_backends(bk, T_MAX_BACKENDS, 0);
    for (int b = 0; b < n_bk; b++) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            if (emulated && !cases[i].emulated_ok) {
                t_note("%s: %s skipped under the emulator (size)", bk[b].name, cases[i].label);
                continue;
            }
            run_case(&cases[i], bk[b].name, bk[b].ctx);
        }
        split_vs_whole(&cases[0], 63, bk[b].name, bk[b].ctx);
        split_vs_whole(&cases[1], 64, bk[b].name, bk[b].ctx);
        split_vs_whole(&cases[0], 129, bk[b].name, bk[b].ctx);
        if (!emulated) {
            split_vs_whole(&cases[3], 100, bk[b].name, bk[b].ctx);
            split_vs_whole(&cases[4], 70, bk[b].name, bk[b].ctx);
        }
    }
    t_close_backends(bk, n_bk);
    return t_finish();
}
