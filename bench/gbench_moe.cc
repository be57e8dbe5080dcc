// The fused MoE FFN over real layers, decode (1 token) and prefill (16, 512):
//   Qwen3-30B-A3B  2048 -> 768,  top-8
//   DeepSeek-V3    7168 -> 2048, top-8
//   gpt-oss-120b   2880 -> 2880, top-4, clamped SwiGLU
// Hot: 4 x top_k experts are allocated (only chosen experts are ever read,
// so the model's full count would only cost memory); tokens route at random.
// Bytes: the experts the routing chose + x + y; ops: 6 tokens top_k hidden inter.
#include "gbench_common.h"

#include <set>

namespace {

void BM_MoE(benchmark::State &state, moak_format format)
{
    int64_t tokens = state.range(0), hidden = state.range(1), inter = state.range(2);
    int32_t top_k = static_cast<int32_t>(state.range(3));
    moak_activation act = static_cast<moak_activation>(state.range(4));
    int64_t experts = 4 * top_k;
    moak_weight *gate = gbench::make_weight(state, format, experts, inter, hidden, 5);
    moak_weight *up = gate ? gbench::make_weight(state, format, experts, inter, hidden, 6) : nullptr;
    moak_weight *down = up ? gbench::make_weight(state, format, experts, hidden, inter, 7) : nullptr;
    if (down) {
        std::vector<float> x = gbench::random_floats(static_cast<size_t>(tokens * hidden), -1.0f, 1.0f, 8);
        std::vector<float> y(static_cast<size_t>(tokens * hidden));
        std::vector<int32_t> ids(static_cast<size_t>(tokens * top_k));
        std::vector<float> weights(ids.size(), 1.0f / static_cast<float>(top_k));
        std::set<int32_t> chosen;
        uint64_t r = 12345;
        for (int64_t t = 0; t < tokens; t++) {
            // top_k distinct experts: a random start, then every 4th (4 x top_k allocated).
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            int32_t start = static_cast<int32_t>((r >> 33) % static_cast<uint64_t>(experts));
            for (int32_t j = 0; j < top_k; j++) {
                int32_t id = static_cast<int32_t>((start + 4 * j) % experts);
                ids[static_cast<size_t>(t * top_k + j)] = id;
                chosen.insert(id);
            }
        }
        moak_moe_desc d = MOAK_MOE_DESC_INIT;
        d.activation = act;
        for (auto _ : state) {
            moak_status st = moak_moe_ffn(gbench::context(), &d, gate, up, down, x.data(), tokens, top_k, ids.data(),
                                          weights.data(), y.data());
            if (!gbench::ok(state, st, "moak_moe_ffn"))
                break;
            benchmark::DoNotOptimize(y.data());
        }
        double expert = 2.0 * static_cast<double>(inter) * static_cast<double>(moak_format_row_bytes(format, hidden)) +
                        static_cast<double>(hidden) * static_cast<double>(moak_format_row_bytes(format, inter));
        double bytes = static_cast<double>(chosen.size()) * expert + 8.0 * static_cast<double>(tokens * hidden);
        gbench::report(state, bytes, 6.0 * static_cast<double>(tokens * top_k) * static_cast<double>(hidden * inter));
    }
    moak_weight_destroy(gate);
    moak_weight_destroy(up);
    moak_weight_destroy(down);
}

#define LAYERS                                                                                   \
    ->ArgNames({"tokens", "hidden", "inter", "top_k", "act"})                                    \
        ->Args({1, 2048, 768, 8, MOAK_ACT_SILU_GLU})                                             \
        ->Args({16, 2048, 768, 8, MOAK_ACT_SILU_GLU})                                            \
        ->Args({512, 2048, 768, 8, MOAK_ACT_SILU_GLU})                                           \
        ->Args({1, 7168, 2048, 8, MOAK_ACT_SILU_GLU})                                            \
        ->Args({16, 7168, 2048, 8, MOAK_ACT_SILU_GLU})                                           \
        ->Args({1, 2880, 2880, 4, MOAK_ACT_SWIGLU_OAI})                                          \
        ->Unit(benchmark::kMicrosecond)                                                          \
        ->UseRealTime()

BENCHMARK_CAPTURE(BM_MoE, q4_0, MOAK_FORMAT_Q4_0) LAYERS;
BENCHMARK_CAPTURE(BM_MoE, q8_0, MOAK_FORMAT_Q8_0) LAYERS;
BENCHMARK_CAPTURE(BM_MoE, i4_g128, MOAK_FORMAT_I4_G128) LAYERS;
BENCHMARK_CAPTURE(BM_MoE, bf16, MOAK_FORMAT_BF16) LAYERS;

}  // namespace
