/* indexer_cputime.c — CPU time of moak_indexer at indexer-decode's shape on
 * one thread (bench/NOTES.md, "Issue 14"): CPU time, unlike moak-bench's wall
 * clock, barely moves when other processes share the cores.  Not built;
 * from a build directory:
 *   gcc -O2 -I../include ../bench/experiments/indexer_cputime.c -o indexer_cputime \
 *       .libs/libmoak.so -Wl,-rpath,$PWD/.libs
 *   ./indexer_cputime BACKEND FORMAT(0 f32, 1 f16, 2 bf16, 3 q8_0) CALLS TOP_K */
#include <moak.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    const char *backend = argc > 1 ? argv[1] : "avx512";
    const int format = argc > 2 ? atoi(argv[2]) : 1, calls = argc > 3 ? atoi(argv[3]) : 10;
    const int L = 32768, H = 64, D = 128, K = argc > 4 ? atoi(argv[4]) : 2048;
    moak_context_options o = MOAK_CONTEXT_OPTIONS_INIT;
    o.backends = backend;
    o.num_threads = 1;
    moak_context *ctx;
    if (moak_context_create(&o, &ctx) != MOAK_OK)
        return 1;
    moak_kv_cache_desc d = MOAK_KV_CACHE_DESC_INIT;
    d.format = (moak_format)format;
    d.n_kv_heads = 1;
    d.head_dim_k = D;
    d.max_seqs = 1;
    d.max_tokens = L;
    d.flags = MOAK_KV_K_ONLY;
    moak_kv_cache *kv;
    float *k = malloc(sizeof(float) * (size_t)L * D), *q = malloc(sizeof(float) * H * D), *w = malloc(sizeof(float) * H);
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)K), seq = 0, q_len = 1;
    if (!k || !q || !w || !pos || moak_kv_cache_create(ctx, &d, &kv) != MOAK_OK)
        return 1;
    for (long i = 0; i < (long)L * D; i++)
        k[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < H * D; i++)
        q[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < H; i++)
        w[i] = (float)rand() / RAND_MAX - 0.5f;
    moak_kv_cache_append(ctx, kv, 0, L, k, NULL);
    moak_indexer_desc x = MOAK_INDEXER_DESC_INIT;
    x.n_heads = H;
    x.head_dim = D;
    x.top_k = K;
    moak_indexer(ctx, &x, kv, &seq, &q_len, 1, q, w, pos, NULL); /* warm-up */
    const double c0 = seconds(CLOCK_PROCESS_CPUTIME_ID), w0 = seconds(CLOCK_MONOTONIC);
    for (int i = 0; i < calls; i++)
        if (moak_indexer(ctx, &x, kv, &seq, &q_len, 1, q, w, pos, NULL) != MOAK_OK) {
            fprintf(stderr, "%s\n", moak_last_error(ctx));
            return 1;
        }
    const double cpu = (seconds(CLOCK_PROCESS_CPUTIME_ID) - c0) / calls, wall = (seconds(CLOCK_MONOTONIC) - w0) / calls;
    printf("%s format %d top_k %d: %.3f ms CPU, %.3f ms wall a call (ran on %s); %.1f GFLOP/s of CPU time\n",
           backend, format, K, 1e3 * cpu, 1e3 * wall, moak_last_backend(ctx), 2.0 * L * H * (D + 1) / cpu / 1e9);
    moak_kv_cache_destroy(kv);
    moak_context_destroy(ctx);
    return 0;
}
