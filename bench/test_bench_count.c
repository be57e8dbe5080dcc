/*
 * moak-bench's counting and floors against figures computed by hand (in the
 * comments below, from the layouts in moak.h), and the workloads file.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_run.h"
#include "roofline.h"
#include "tool_support.h"
#include "workload.h"

static int failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

#define CHECK_EQ(got, want, what) CHECK((got) == (want), "%s: %.0f, expected %.0f", what, (double)(got), (double)(want))
#define CHECK_NEAR(got, want, rel, what) \
    CHECK(fabs((got) - (want)) <= (rel) * fabs(want), "%s: %.9g, expected %.9g", what, (double)(got), (double)(want))

static void test_matmul(void)
{
    bench_count c;
    /* matmul-decode, Q4_0: a row of 4096 is 128 blocks of 18 bytes = 2304;
     * W = 14336 x 2304 = 33,030,144; x = 4096 x 4 = 16,384; y = 14336 x 4 = 57,344. */
    bench_count_matmul(&c, MOAK_FORMAT_Q4_0, 1, 14336, 4096);
    CHECK_EQ(c.bytes, 33103872.0, "matmul-decode q4_0 bytes");
    CHECK_EQ(c.ops, 117440512.0, "matmul-decode ops (2 x 14336 x 4096)");
    CHECK(c.n_parts == 1 && c.parts[0].peak == BENCH_PEAK_INT8, "q4_0 is bounded by the int8 peak");

    /* matmul-prefill, Q8_0: 128 blocks of 34 = 4352 a row; W = 4096 x 4352 =
     * 17,825,792; x and y = 512 x 4096 x 4 = 8,388,608 each. */
    bench_count_matmul(&c, MOAK_FORMAT_Q8_0, 512, 4096, 4096);
    CHECK_EQ(c.bytes, 34603008.0, "matmul-prefill q8_0 bytes");
    CHECK_EQ(c.ops, 17179869184.0, "matmul-prefill ops (2 x 512 x 4096 x 4096)");

    /* I4_G128 over 2880 columns (gpt-oss): 22.5 groups -> 23 of 68 bytes = 1564
     * a row; F32 is 4 bytes an element; BF16 is fp16-peak bound. */
    bench_count_matmul(&c, MOAK_FORMAT_I4_G128, 1, 2880, 2880);
    CHECK_EQ(c.bytes, 2880.0 * 1564 + 4 * 2880 + 4 * 2880, "i4_g128 padded row bytes");
    bench_count_matmul(&c, MOAK_FORMAT_F32, 2, 3, 5);
    CHECK_EQ(c.bytes, 3 * 20 + 2 * 5 * 4 + 2 * 3 * 4, "f32 bytes");
    CHECK(c.parts[0].peak == BENCH_PEAK_FP32, "f32 is bounded by the fp32 peak");
    bench_count_matmul(&c, MOAK_FORMAT_BF16, 1, 8, 8);
    CHECK(c.parts[0].peak == BENCH_PEAK_FP16, "bf16 is bounded by the fp16 peak");
}

static void test_moe(void)
{
    bench_count c;
    /* moe-decode, Qwen3-30B-A3B, Q4_0: gate and up rows of 2048 = 64 x 18 =
     * 1152 bytes x 768 rows = 884,736 each; down rows of 768 = 24 x 18 = 432 x
     * 2048 = 884,736.  One expert 2,654,208, eight 21,233,664 -- only the
     * chosen ones; + x and y (2048 x 4 each) + ids and weights (8 x 8). */
    bench_count_moe(&c, MOAK_FORMAT_Q4_0, 1, 2048, 768, 8, 8);
    CHECK_EQ(c.bytes, 21233664.0 + 16384 + 64, "moe-decode bytes (8 chosen experts)");
    CHECK_EQ(c.ops, 75497472.0, "moe-decode ops (6 x 8 x 2048 x 768)");
    /* moe-prefill: 512 tokens, all 128 experts read once. */
    bench_count_moe(&c, MOAK_FORMAT_Q4_0, 512, 2048, 768, 8, 128);
    CHECK_EQ(c.bytes, 128 * 2654208.0 + 2 * 4 * 512 * 2048 + 8 * 512 * 8, "moe-prefill bytes");
    CHECK_EQ(c.ops, 6.0 * 512 * 8 * 2048 * 768, "moe-prefill ops");
}

static void test_attention(void)
{
    bench_count c;
    /* attn-decode: F16 K and V rows of 128 = 256 bytes; 4 KV heads x 4096
     * tokens x 512 = 8,388,608; q and out 32 x 128 x 4 each = 32,768.
     * Ops: 4096 keys x 32 heads x 2 x (128 + 128) = 67,108,864. */
    bench_count_attention(&c, MOAK_FORMAT_F16, 32, 4, 128, 128, false, 4096, 1, true, 0);
    CHECK_EQ(c.bytes, 8421376.0, "attn-decode bytes (K and V once per KV head)");
    CHECK_EQ(c.ops, 67108864.0, "attn-decode ops");
    CHECK(c.parts[0].peak == BENCH_PEAK_FP32, "attention is bounded by the fp32 peak");

    /* attn-prefill: query r (0..511) at position 3584 + r sees 3585 + r keys:
     * 512 x 3585 + 511 x 512 / 2 = 1,966,336 pairs x 32 x 512 ops. */
    bench_count_attention(&c, MOAK_FORMAT_F16, 32, 4, 128, 128, false, 4096, 512, true, 0);
    CHECK_EQ(c.ops, 1966336.0 * 32 * 512, "attn-prefill ops (causal pairs)");
    CHECK_EQ(c.bytes, 8388608.0 + 2 * 4.0 * 512 * 32 * 128, "attn-prefill bytes");

    /* mla-decode: shared V, so only K rows of 576 f16 = 1152 bytes x 4096;
     * q (128 x 576) and out (128 x 512) in f32. */
    bench_count_attention(&c, MOAK_FORMAT_F16, 128, 1, 576, 512, true, 4096, 1, true, 0);
    CHECK_EQ(c.bytes, 4718592.0 + 4.0 * 128 * (576 + 512), "mla-decode bytes (K only)");
    CHECK_EQ(c.ops, 4096.0 * 128 * 2 * (576 + 512), "mla-decode ops");

    /* A sliding window of 128 reads the last 128 tokens only. */
    bench_count_attention(&c, MOAK_FORMAT_F16, 32, 4, 128, 128, false, 4096, 1, true, 128);
    CHECK_EQ(c.bytes, 128.0 * 4 * 512 + 32768, "windowed decode bytes");
    /* Q8_0 KV: 4 blocks of 34 = 136 bytes a row of 128. */
    bench_count_attention(&c, MOAK_FORMAT_Q8_0, 32, 4, 128, 128, false, 4096, 1, true, 0);
    CHECK_EQ(c.bytes, 4096.0 * 4 * 272 + 32768, "q8_0 KV bytes");
}

static void test_sparse(void)
{
    bench_count c;
    /* sparse-mla-decode: 2048 listed K rows of 576 f16 = 1152 bytes (V is
     * their prefix) = 2,359,296, not the 32768 cached; q 128 x 576 x 4 =
     * 294,912, out 128 x 512 x 4 = 262,144, the list 2048 x 4 = 8192.
     * Ops: 2048 keys x 128 heads x 2 x 1088 = 570,425,344. */
    bench_count_sparse_attention(&c, MOAK_FORMAT_F16, 128, 1, 576, 512, true, 32768, 2048);
    CHECK_EQ(c.bytes, 2359296.0 + 294912 + 262144 + 8192, "sparse-mla-decode bytes (2048 rows of 32768)");
    CHECK_EQ(c.ops, 570425344.0, "sparse-mla-decode ops");
    /* Fewer cached tokens than k: only those are read. */
    bench_count_sparse_attention(&c, MOAK_FORMAT_F16, 128, 1, 576, 512, true, 100, 2048);
    CHECK_EQ(c.bytes, 100.0 * 1152 + 294912 + 262144 + 8192, "sparse over 100 cached tokens");

    /* indexer-decode: 32768 index keys of 128 f16 = 256 bytes = 8,388,608;
     * q 64 x 128 x 4 = 32,768; w 64 x 4 = 256; positions + scores 2048 x 8
     * = 16,384.  Ops: 32768 keys x 64 heads x (2 x 128 + 2) = 541,065,216. */
    bench_count_indexer(&c, MOAK_FORMAT_F16, 64, 128, 32768, 2048);
    CHECK_EQ(c.bytes, 8388608.0 + 32768 + 256 + 16384, "indexer-decode bytes");
    CHECK_EQ(c.ops, 541065216.0, "indexer-decode ops");
    /* Q8_0 index keys: 4 blocks of 34 = 136 bytes a key. */
    bench_count_indexer(&c, MOAK_FORMAT_Q8_0, 64, 128, 32768, 2048);
    CHECK_EQ(c.bytes, 32768.0 * 136 + 32768 + 256 + 16384, "indexer q8_0 bytes");

    /* dsa-decode: the two parts, each with its own floor. */
    bench_workload w;
    memset(&w, 0, sizeof(w));
    w.kind = BENCH_DSA;
    w.n_heads = 128;
    w.n_kv_heads = 1;
    w.head_dim_k = 576;
    w.head_dim_v = 512;
    w.shared_v = true;
    w.index_heads = 64;
    w.index_dim = 128;
    w.sparse_k = 2048;
    w.cached = 32768;
    w.q_len = 1;
    bench_count_workload(&c, &w, MOAK_FORMAT_F16, 0);
    CHECK(c.n_parts == 2 && strcmp(c.parts[0].what, "indexer") == 0 &&
              strcmp(c.parts[1].what, "sparse-attention") == 0,
          "dsa-decode is the indexer then sparse attention");
    CHECK_EQ(c.bytes, 8388608.0 + 32768 + 256 + 16384 + 2359296.0 + 294912 + 262144 + 8192, "dsa-decode bytes");
    CHECK_EQ(c.ops, 541065216.0 + 570425344.0, "dsa-decode ops");
}

static void test_gated_delta(void)
{
    bench_count c;
    /* gdn-decode (Qwen3-Next: 16 q/k heads, 32 v heads, d 128, kernel 4):
     * C = 2 x 16 x 128 + 32 x 128 = 8192 channels.
     * conv: qkv 8192 x 4 = 32,768 + weights 8192 x 4 x 4 = 131,072 + conv
     * state 3 x 8192 x 4 read and written = 196,608 -> 360,448 bytes;
     * ops 8192 x (8 + 4) + 6 x 16 x 128 = 98,304 + 12,288 = 110,592.
     * delta: state 32 x 128 x 128 x 4 = 2,097,152 read and written =
     * 4,194,304 + g 32 x 4 + beta 32 x 4 + out 32 x 128 x 4 = 16,640 ->
     * 4,210,944 bytes; ops 7 x 32 x 16384 = 3,670,016. */
    bench_count_gated_delta(&c, 16, 32, 128, 128, 4, MOAK_GATE_PER_HEAD, 1);
    CHECK(c.n_parts == 2 && strcmp(c.parts[0].what, "conv") == 0 && strcmp(c.parts[1].what, "delta") == 0,
          "gated delta: conv then delta");
    CHECK_EQ(c.parts[0].bytes, 360448.0, "gdn-decode conv bytes");
    CHECK_EQ(c.parts[0].ops, 110592.0, "gdn-decode conv ops");
    CHECK_EQ(c.parts[1].bytes, 4210944.0, "gdn-decode delta bytes");
    CHECK_EQ(c.parts[1].ops, 3670016.0, "gdn-decode delta ops");
    /* gdn-prefill, 512 tokens = 8 chunks of 64; per chunk and v-head:
     * 2 x 64^2 x (384 + 256) = 5,242,880 + 6 x 64 x 16384 = 6,291,456 +
     * 64 x 63 x 127 / 3 = 170,688 -> 11,705,024; x 8 x 32 = 2,996,486,144.
     * delta bytes: 4,194,304 + 512 x (32 + 32 + 4096) x 4 = 8,519,680 ->
     * 12,713,984.  conv: 512 x 32,768 + 131,072 + 196,608 = 17,104,896
     * bytes, 512 x 110,592 = 56,623,104 ops. */
    bench_count_gated_delta(&c, 16, 32, 128, 128, 4, MOAK_GATE_PER_HEAD, 512);
    CHECK_EQ(c.parts[1].ops, 2996486144.0, "gdn-prefill delta ops");
    CHECK_EQ(c.parts[1].bytes, 12713984.0, "gdn-prefill delta bytes");
    CHECK_EQ(c.parts[0].bytes, 17104896.0, "gdn-prefill conv bytes");
    CHECK_EQ(c.parts[0].ops, 56623104.0, "gdn-prefill conv ops");
    /* a last chunk of 1 token: 2 x 1 x 640 + 6 x 16384 + 0 = 99,584 per v-head
     * on top of one whole chunk's 11,705,024 (65 tokens, one v-head) */
    bench_count_gated_delta(&c, 1, 1, 128, 128, 4, MOAK_GATE_PER_HEAD, 65);
    CHECK_EQ(c.parts[1].ops, 11705024.0 + 99584.0, "65 tokens: a chunk of 64 and one of 1");
    /* kda-decode: per-key gates read 32 x 128 values a token, not 32 */
    bench_count_gated_delta(&c, 32, 32, 128, 128, 4, MOAK_GATE_PER_KEY, 1);
    CHECK_EQ(c.parts[1].bytes, 4194304.0 + 4.0 * (4096 + 32 + 4096), "kda-decode delta bytes");
}

static void test_layer(void)
{
    bench_workload w;
    bench_count c;
    memset(&w, 0, sizeof(w));
    w.kind = BENCH_LAYER;
    w.hidden = 2048;
    w.n_heads = 32;
    w.n_kv_heads = 4;
    w.head_dim_k = w.head_dim_v = 128;
    w.n_experts = 128;
    w.top_k = 8;
    w.inter = 768;
    w.cached = 4096;
    w.kv_format = MOAK_FORMAT_F16;
    bench_count_layer(&c, &w, MOAK_FORMAT_Q4_0);
    double qkv = -1, moe = -1, router = -1, att = -1;
    for (int i = 0; i < c.n_parts; i++) {
        if (strcmp(c.parts[i].what, "qkv") == 0)
            qkv = c.parts[i].bytes;
        if (strcmp(c.parts[i].what, "moe") == 0)
            moe = c.parts[i].bytes;
        if (strcmp(c.parts[i].what, "router") == 0)
            router = c.parts[i].bytes;
        if (strcmp(c.parts[i].what, "attention") == 0)
            att = c.parts[i].bytes;
    }
    /* QKV: 32 x 128 + 2 x 4 x 128 = 5120 rows of 1152 bytes + x + y. */
    CHECK_EQ(qkv, 5120.0 * 1152 + 8192 + 5120 * 4, "layer qkv bytes");
    CHECK_EQ(moe, 21233664.0 + 16384 + 64, "layer moe bytes (top-8 only)");
    CHECK_EQ(router, 128.0 * 2048 * 4 + 8192 + 512, "layer router bytes (f32)");
    CHECK_EQ(att, 4097.0 * 4 * 512 + 32768, "layer attention bytes (the cache plus the new token)");
    double sum = 0.0;
    for (int i = 0; i < c.n_parts; i++)
        sum += c.parts[i].bytes;
    CHECK_EQ(c.bytes, sum, "layer bytes are the sum of its parts");
}

static void test_floor(void)
{
    bench_roofline r;
    bench_count c;
    bench_floor f;
    memset(&r, 0, sizeof(r));
    r.measured = true;
    r.dram_gbps = 10.0;
    r.l3_gbps = 50.0;
    r.l3_bytes = 64.0 * 1048576.0;
    r.fp32_gops = 100.0;
    r.int8_gops = 400.0;
    r.fp16_gops = 200.0;

    /* matmul-decode q4_0 cold: 33,103,872 B / 10 GB/s = 3.3103872 ms >
     * 117,440,512 / 400 GOP/s = 0.2936 ms: memory-bound. */
    bench_count_matmul(&c, MOAK_FORMAT_Q4_0, 1, 14336, 4096);
    bench_roofline_floor(&r, &c, false, c.bytes, &f);
    CHECK_NEAR(f.seconds, 3.3103872e-3, 1e-12, "matmul-decode cold floor");
    CHECK(strcmp(f.bound, "memory") == 0, "matmul-decode is memory-bound, got %s", f.bound);
    CHECK_NEAR(bench_roofline_pct(&f, 4.0e-3), 100.0 * 3.3103872 / 4.0, 1e-12, "% of roofline at 4 ms");
    /* Hot and inside the L3: 50 GB/s.  Hot but larger than the L3: DRAM. */
    bench_roofline_floor(&r, &c, true, c.bytes, &f);
    CHECK_NEAR(f.seconds, 33103872.0 / 50e9, 1e-12, "matmul-decode hot floor (L3)");
    bench_roofline_floor(&r, &c, true, 100.0 * 1048576.0, &f);
    CHECK_NEAR(f.seconds, 33103872.0 / 10e9, 1e-12, "hot but over the L3 uses DRAM");

    /* matmul-prefill q8_0: 17,179,869,184 / 400e9 = 42.9497 ms: compute-bound. */
    bench_count_matmul(&c, MOAK_FORMAT_Q8_0, 512, 4096, 4096);
    bench_roofline_floor(&r, &c, false, c.bytes, &f);
    CHECK_NEAR(f.seconds, 17179869184.0 / 400e9, 1e-12, "matmul-prefill floor");
    CHECK(strcmp(f.bound, "compute") == 0, "matmul-prefill is compute-bound");

    /* BF16 weights: the fp16 peak, unless the fp32 units are faster. */
    bench_count_matmul(&c, MOAK_FORMAT_BF16, 512, 4096, 4096);
    bench_roofline_floor(&r, &c, false, c.bytes, &f);
    CHECK_NEAR(f.seconds, 17179869184.0 / 200e9, 1e-12, "bf16 prefill floor at the fp16 peak");
    r.fp16_gops = 50.0;
    bench_roofline_floor(&r, &c, false, c.bytes, &f);
    CHECK_NEAR(f.seconds, 17179869184.0 / 100e9, 1e-12, "bf16 prefill floor at the fp32 peak when faster");
    r.fp16_gops = 200.0;

    /* A workload of parts sums each part's floor: 1 GB of pure traffic (0.1 s)
     * plus 1e11 fp32 ops (1 s) is 1.1 s, not max(0.1, 1). */
    memset(&c, 0, sizeof(c));
    c.n_parts = 2;
    c.parts[0] = (bench_part){"stream", 1e9, 0.0, BENCH_PEAK_FP32};
    c.parts[1] = (bench_part){"math", 0.0, 1e11, BENCH_PEAK_FP32};
    bench_roofline_floor(&r, &c, false, 1e9, &f);
    CHECK_NEAR(f.seconds, 1.1, 1e-12, "parts' floors add up");

    /* Not measured: no floor, no percentage. */
    r.measured = false;
    bench_roofline_floor(&r, &c, false, 1e9, &f);
    CHECK(f.seconds == 0.0 && bench_roofline_pct(&f, 1.0) == 0.0, "no roofline, no floor");
}

static void test_stats(void)
{
    double a[3] = {3.0, 1.0, 2.0}, b[4] = {4.0, 1.0, 3.0, 2.0}, med, lo, hi;
    bench_stats(a, 3, &med, &lo, &hi);
    CHECK(med == 2.0 && lo == 1.0 && hi == 3.0, "median/min/max of 3");
    bench_stats(b, 4, &med, &lo, &hi);
    CHECK(med == 2.5 && lo == 1.0 && hi == 4.0, "median of 4 is the mean of the middle two");
    CHECK(a[0] == 3.0, "stats leave the input alone");
}

static void test_workloads_file(void)
{
    char tried[1024], err[256];
    char *path = tool_find_data(NULL, "MOAK_BENCH_DATA", "bench/workloads.json", tried, sizeof(tried));
    bench_workload_list list;
    CHECK(path != NULL, "workloads.json not found (tried %s)", tried);
    if (!path)
        return;
    CHECK(bench_load_workloads(path, &list, err, sizeof(err)), "loading %s: %s", path, err);
    free(path);
    static const char *const required[] = {"matmul-decode", "matmul-prefill", "moe-decode", "moe-prefill",
                                           "attn-decode",   "attn-prefill",   "mla-decode", "layer-decode"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        const bench_workload *w = bench_find_workload(&list, required[i]);
        CHECK(w && w->is_default, "workload %s missing or not default", required[i]);
    }
    const bench_workload *w = bench_find_workload(&list, "matmul-decode");
    CHECK(w && w->m == 1 && w->k == 4096 && w->n == 14336, "matmul-decode is 1 x 4096 -> 14336");
    w = bench_find_workload(&list, "attn-prefill");
    CHECK(w && w->cached - w->q_len == 3584 && w->q_len == 512, "attn-prefill is 512 after 3584");
    w = bench_find_workload(&list, "dsa-decode");
    CHECK(w && w->kind == BENCH_DSA && w->n_heads == 128 && w->index_heads == 64 && w->index_dim == 128 &&
              w->sparse_k == 2048 && w->cached == 32768 && w->shared_v,
          "dsa-decode is DeepSeek-V3.2's DSA over 2048 of 32768");
    w = bench_find_workload(&list, "gdn-decode");
    CHECK(w && w->kind == BENCH_GATED_DELTA && w->n_heads == 32 && w->n_kv_heads == 16 && w->head_dim_k == 128 &&
              w->conv_kernel == 4 && w->gate == MOAK_GATE_PER_HEAD && w->q_len == 1,
          "gdn-decode is Qwen3-Next's 16/32 heads x 128, one token");
    w = bench_find_workload(&list, "kda-prefill");
    CHECK(w && w->kind == BENCH_GATED_DELTA && w->gate == MOAK_GATE_PER_KEY && w->q_len == 512,
          "kda-prefill has per-key gates, 512 tokens");
    w = bench_find_workload(&list, "indexer-decode");
    CHECK(w && w->kind == BENCH_INDEXER && w->index_heads == 64 && w->sparse_k == 2048 && w->cached == 32768,
          "indexer-decode is 64 x 128 over 32768");
    w = bench_find_workload(&list, "mla-decode");
    CHECK(w && w->n_heads == 128 && w->head_dim_k == 576 && w->head_dim_v == 512 && w->shared_v,
          "mla-decode is DeepSeek-V3 absorbed");
    for (int i = 0; i < list.count; i++)
        CHECK(list.items[i].model[0] && list.items[i].source[0], "%s names no model or source", list.items[i].name);
    bench_free_workloads(&list);
}

int main(void)
{
    test_matmul();
    test_moe();
    test_attention();
    test_sparse();
    test_layer();
    test_gated_delta();
    test_floor();
    test_stats();
    test_workloads_file();
    if (failures) {
        printf("test_bench_count: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_bench_count: all checks passed\n");
    return 0;
}
