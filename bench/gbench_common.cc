// Shared pieces of moak's micro-benches (see gbench_common.h).
#include "gbench_common.h"

#include <cstdlib>
#include <string>

namespace gbench {

static moak_context *shared_context = nullptr;
static bool tried = false;

moak_context *context()
{
    if (!tried) {
        tried = true;
        moak_context_options o = MOAK_CONTEXT_OPTIONS_INIT;
        const char *threads = std::getenv("MOAK_GBENCH_THREADS");
        o.num_threads = threads ? std::atoi(threads) : 0;
        if (moak_context_create(&o, &shared_context) != MOAK_OK)
            shared_context = nullptr;
    }
    return shared_context;
}

void shutdown()
{
    moak_context_destroy(shared_context);
    shared_context = nullptr;
}

std::vector<float> random_floats(size_t n, float lo, float hi, uint64_t seed)
{
    std::vector<float> v(n);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        float u = static_cast<float>((x >> 40) * (1.0 / 16777216.0));
        float f = lo + (hi - lo) * u;
        v[i] = f == 0.0f ? 0.5f * hi : f;
    }
    return v;
}

bool ok(benchmark::State &state, moak_status st, const char *call)
{
    if (st == MOAK_OK)
        return true;
    std::string msg = std::string(call) + ": " + moak_status_str(st) + " " + moak_last_error(context());
    state.SkipWithError(msg.c_str());
    return false;
}

moak_weight *make_weight(benchmark::State &state, moak_format format, int64_t experts, int64_t rows,
                         int64_t cols, uint64_t seed)
{
    moak_context *ctx = context();
    if (!ctx) {
        state.SkipWithError("no moak context");
        return nullptr;
    }
    // One expert's values, repeated: the bytes read are what matters here.
    size_t row_bytes = moak_format_row_bytes(format, cols);
    size_t one = row_bytes * static_cast<size_t>(rows);
    std::vector<unsigned char> data(one * static_cast<size_t>(experts));
    std::vector<float> src = random_floats(static_cast<size_t>(rows * cols), -0.05f, 0.05f, seed);
    if (!ok(state, moak_quantize(format, src.data(), rows, cols, data.data(), one), "moak_quantize"))
        return nullptr;
    for (int64_t e = 1; e < experts; e++)
        std::copy(data.begin(), data.begin() + static_cast<long>(one), data.begin() + static_cast<long>(e * one));
    moak_weight_desc d = MOAK_WEIGHT_DESC_INIT;
    d.format = format;
    d.n_experts = experts;
    d.rows = rows;
    d.cols = cols;
    d.data = data.data();
    d.data_size = data.size();
    moak_weight *w = nullptr;
    if (!ok(state, moak_weight_create(ctx, &d, &w), "moak_weight_create"))
        return nullptr;
    return w;
}

void report(benchmark::State &state, double bytes, double ops)
{
    state.SetBytesProcessed(static_cast<int64_t>(bytes * static_cast<double>(state.iterations())));
    state.counters["bytes"] = benchmark::Counter(bytes);
    state.counters["ops"] = benchmark::Counter(ops);
    state.counters["OP/s"] = benchmark::Counter(ops, benchmark::Counter::kIsIterationInvariantRate);
    state.SetLabel(moak_last_backend(context()));
}

}  // namespace gbench
