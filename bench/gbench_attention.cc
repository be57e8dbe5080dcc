// Attention over the paged KV cache, per KV format, decode and prefill:
//   decode   Qwen3-30B-A3B (32/4 heads, d 128) over 1024, 4096, 16384 cached;
//            gpt-oss (64/8, d 64, sinks) over 4096; DeepSeek-V3 absorbed MLA
//            (128 heads, 1 latent head, Dk 576, V shared 512) over 4096
//   prefill  Qwen3-30B-A3B, 128 after 896 and 512 after 3584 (causal)
// Bytes: the K and V rows read (once per KV head) + q + out; ops: 2 (dk + dv)
// per head per visible (query, key) pair.
#include "gbench_common.h"

namespace {

struct Shape {
    int32_t heads, kv_heads, dk, dv;
    bool shared_v, sinks;
};

void run(benchmark::State &state, moak_format format, const Shape &s, int64_t cached, int64_t q_len)
{
    moak_context *ctx = gbench::context();
    if (!ctx) {
        state.SkipWithError("no moak context");
        return;
    }
    moak_kv_cache_desc d = MOAK_KV_CACHE_DESC_INIT;
    d.format = format;
    d.n_kv_heads = s.kv_heads;
    d.head_dim_k = s.dk;
    d.head_dim_v = s.dv;
    d.max_seqs = 1;
    d.max_tokens = cached;
    d.flags = s.shared_v ? MOAK_KV_SHARED_V : 0u;
    moak_kv_cache *kv = nullptr;
    if (!gbench::ok(state, moak_kv_cache_create(ctx, &d, &kv), "moak_kv_cache_create"))
        return;
    std::vector<float> k = gbench::random_floats(static_cast<size_t>(cached * s.kv_heads * s.dk), -1.0f, 1.0f, 9);
    std::vector<float> v;
    if (!s.shared_v)
        v = gbench::random_floats(static_cast<size_t>(cached * s.kv_heads * s.dv), -1.0f, 1.0f, 10);
    if (gbench::ok(state, moak_kv_cache_append(ctx, kv, 0, cached, k.data(), s.shared_v ? nullptr : v.data()),
                   "moak_kv_cache_append")) {
        std::vector<float> q = gbench::random_floats(static_cast<size_t>(q_len * s.heads * s.dk), -1.0f, 1.0f, 11);
        std::vector<float> out(static_cast<size_t>(q_len * s.heads * s.dv));
        std::vector<float> sinks = gbench::random_floats(static_cast<size_t>(s.heads), -1.0f, 1.0f, 12);
        moak_attention_desc a = MOAK_ATTENTION_DESC_INIT;
        a.n_heads = s.heads;
        a.head_dim_k = s.dk;
        a.head_dim_v = s.dv;
        // absorbed MLA needs its scale: DeepSeek-V3's 1/sqrt(192) x YaRN mscale^2
        a.scale = s.shared_v ? 0.13523378f : 0.0f;
        a.causal = 1;
        a.sinks = s.sinks ? sinks.data() : nullptr;
        int32_t seq = 0, len = static_cast<int32_t>(q_len);
        for (auto _ : state) {
            if (!gbench::ok(state, moak_attention(ctx, &a, kv, &seq, &len, 1, q.data(), out.data()), "moak_attention"))
                break;
            benchmark::DoNotOptimize(out.data());
        }
        double row = static_cast<double>(moak_format_row_bytes(format, s.dk)) +
                     (s.shared_v ? 0.0 : static_cast<double>(moak_format_row_bytes(format, s.dv)));
        double bytes = static_cast<double>(cached) * s.kv_heads * row +
                       4.0 * static_cast<double>(q_len) * s.heads * (s.dk + s.dv);
        double pairs = static_cast<double>(q_len) * static_cast<double>(cached - q_len) +
                       static_cast<double>(q_len) * static_cast<double>(q_len + 1) / 2.0;
        gbench::report(state, bytes, pairs * s.heads * 2.0 * (s.dk + s.dv));
    }
    moak_kv_cache_destroy(kv);
}

const Shape kQwen3 = {32, 4, 128, 128, false, false};
const Shape kGptOss = {64, 8, 64, 64, false, true};
const Shape kMla = {128, 1, 576, 512, true, false};

void BM_AttentionDecode(benchmark::State &state, moak_format format)
{
    const Shape *shapes[3] = {&kQwen3, &kGptOss, &kMla};
    run(state, format, *shapes[state.range(0)], state.range(1), 1);
}

void BM_AttentionPrefill(benchmark::State &state, moak_format format)
{
    run(state, format, kQwen3, state.range(0), state.range(1));
}

#define DECODE                                                                                   \
    ->ArgNames({"model", "cached"})                                                              \
        ->Args({0, 1024})                                                                        \
        ->Args({0, 4096})                                                                        \
        ->Args({0, 16384})                                                                       \
        ->Args({1, 4096})                                                                        \
        ->Args({2, 4096})                                                                        \
        ->Unit(benchmark::kMicrosecond)                                                          \
        ->UseRealTime()
#define PREFILL                                                                                  \
    ->ArgNames({"cached", "q"})->Args({1024, 128})->Args({4096, 512})->Unit(benchmark::kMillisecond)->UseRealTime()

// model 0 = Qwen3-30B-A3B, 1 = gpt-oss, 2 = DeepSeek-V3 MLA (all head dims are multiples of 32).
BENCHMARK_CAPTURE(BM_AttentionDecode, f16, MOAK_FORMAT_F16) DECODE;
BENCHMARK_CAPTURE(BM_AttentionDecode, bf16, MOAK_FORMAT_BF16) DECODE;
BENCHMARK_CAPTURE(BM_AttentionDecode, q8_0, MOAK_FORMAT_Q8_0) DECODE;
BENCHMARK_CAPTURE(BM_AttentionDecode, f32, MOAK_FORMAT_F32) DECODE;
BENCHMARK_CAPTURE(BM_AttentionPrefill, f16, MOAK_FORMAT_F16) PREFILL;
BENCHMARK_CAPTURE(BM_AttentionPrefill, q8_0, MOAK_FORMAT_Q8_0) PREFILL;

}  // namespace
