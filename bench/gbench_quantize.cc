// Quantize and dequantize, every weight format, rows of real hidden sizes:
// Qwen3-30B-A3B / Qwen3-Next (2048), gpt-oss (2880), Llama-3.1-8B / Mixtral
// (4096), DeepSeek-V3 / Kimi K2 (7168).  Bytes: the f32 side + the packed side.
#include "gbench_common.h"

namespace {

const int64_t kRows = 64;

void BM_Quantize(benchmark::State &state, moak_format format)
{
    int64_t cols = state.range(0);
    std::vector<float> src = gbench::random_floats(static_cast<size_t>(kRows * cols), -1.0f, 1.0f, 1);
    size_t bytes = moak_format_row_bytes(format, cols) * kRows;
    std::vector<unsigned char> dst(bytes);
    for (auto _ : state) {
        moak_status st = moak_quantize(format, src.data(), kRows, cols, dst.data(), dst.size());
        if (!gbench::ok(state, st, "moak_quantize"))
            break;
        benchmark::DoNotOptimize(dst.data());
    }
    gbench::report(state, 4.0 * kRows * cols + bytes, static_cast<double>(kRows * cols));
}

void BM_Dequantize(benchmark::State &state, moak_format format)
{
    int64_t cols = state.range(0);
    std::vector<float> src = gbench::random_floats(static_cast<size_t>(kRows * cols), -1.0f, 1.0f, 2);
    size_t bytes = moak_format_row_bytes(format, cols) * kRows;
    std::vector<unsigned char> packed(bytes);
    std::vector<float> out(static_cast<size_t>(kRows * cols));
    if (!gbench::ok(state, moak_quantize(format, src.data(), kRows, cols, packed.data(), bytes), "moak_quantize"))
        return;
    for (auto _ : state) {
        moak_status st = moak_dequantize(format, packed.data(), bytes, kRows, cols, out.data());
        if (!gbench::ok(state, st, "moak_dequantize"))
            break;
        benchmark::DoNotOptimize(out.data());
    }
    gbench::report(state, 4.0 * kRows * cols + bytes, static_cast<double>(kRows * cols));
}

#define HIDDEN_SIZES ->ArgName("cols")->Arg(2048)->Arg(2880)->Arg(4096)->Arg(7168)
#define FORMATS(BM)                                                                        \
    BENCHMARK_CAPTURE(BM, q4_0, MOAK_FORMAT_Q4_0) HIDDEN_SIZES;                            \
    BENCHMARK_CAPTURE(BM, q8_0, MOAK_FORMAT_Q8_0) HIDDEN_SIZES;                            \
    BENCHMARK_CAPTURE(BM, i8_row, MOAK_FORMAT_I8_ROW) HIDDEN_SIZES;                        \
    BENCHMARK_CAPTURE(BM, i4_g32, MOAK_FORMAT_I4_G32) HIDDEN_SIZES;                        \
    BENCHMARK_CAPTURE(BM, i4_g128, MOAK_FORMAT_I4_G128) HIDDEN_SIZES;                      \
    BENCHMARK_CAPTURE(BM, f16, MOAK_FORMAT_F16) HIDDEN_SIZES;                              \
    BENCHMARK_CAPTURE(BM, bf16, MOAK_FORMAT_BF16) HIDDEN_SIZES

FORMATS(BM_Quantize);
FORMATS(BM_Dequantize);

}  // namespace
