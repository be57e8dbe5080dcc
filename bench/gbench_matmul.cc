// Matmul per weight format over real projection shapes:
//   m x 4096 -> 14336   Llama-3.1-8B FFN up (decode m=1, small batch m=16)
//   m x 4096 -> 4096    Llama-3.1-8B q projection (m=1, 16, 512: prefill)
//   m x 7168 -> 2048    one DeepSeek-V3 expert's gate
//   m x 2048 -> 768     one Qwen3-30B-A3B expert's gate
// Bytes: the weight + x + y; ops: 2 m n k.
#include "gbench_common.h"

namespace {

void BM_Matmul(benchmark::State &state, moak_format format)
{
    int64_t m = state.range(0), n = state.range(1), k = state.range(2);
    moak_weight *w = gbench::make_weight(state, format, 1, n, k, 3);
    if (!w)
        return;
    std::vector<float> x = gbench::random_floats(static_cast<size_t>(m * k), -1.0f, 1.0f, 4);
    std::vector<float> y(static_cast<size_t>(m * n));
    for (auto _ : state) {
        if (!gbench::ok(state, moak_matmul(gbench::context(), w, x.data(), m, y.data()), "moak_matmul"))
            break;
        benchmark::DoNotOptimize(y.data());
    }
    double bytes = static_cast<double>(n) * static_cast<double>(moak_format_row_bytes(format, k)) +
                   4.0 * static_cast<double>(m * k + m * n);
    gbench::report(state, bytes, 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k));
    moak_weight_destroy(w);
}

#define SHAPES                                                                                   \
    ->ArgNames({"m", "n", "k"})                                                                  \
        ->Args({1, 14336, 4096})                                                                 \
        ->Args({16, 14336, 4096})                                                                \
        ->Args({1, 4096, 4096})                                                                  \
        ->Args({16, 4096, 4096})                                                                 \
        ->Args({512, 4096, 4096})                                                                \
        ->Args({1, 2048, 7168})                                                                  \
        ->Args({1, 768, 2048})                                                                   \
        ->Unit(benchmark::kMicrosecond)                                                          \
        ->UseRealTime()

BENCHMARK_CAPTURE(BM_Matmul, q4_0, MOAK_FORMAT_Q4_0) SHAPES;
BENCHMARK_CAPTURE(BM_Matmul, q8_0, MOAK_FORMAT_Q8_0) SHAPES;
BENCHMARK_CAPTURE(BM_Matmul, i8_row, MOAK_FORMAT_I8_ROW) SHAPES;
BENCHMARK_CAPTURE(BM_Matmul, i4_g32, MOAK_FORMAT_I4_G32) SHAPES;
BENCHMARK_CAPTURE(BM_Matmul, i4_g128, MOAK_FORMAT_I4_G128) SHAPES;
BENCHMARK_CAPTURE(BM_Matmul, f16, MOAK_FORMAT_F16) SHAPES;
BENCHMARK_CAPTURE(BM_Matmul, bf16, MOAK_FORMAT_BF16) SHAPES;
BENCHMARK_CAPTURE(BM_Matmul, f32, MOAK_FORMAT_F32) SHAPES;

}  // namespace
