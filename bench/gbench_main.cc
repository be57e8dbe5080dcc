// moak-gbench: Google Benchmark micro-benches of moak's kernel families
// (gbench_quantize.cc, gbench_matmul.cc, gbench_moe.cc, gbench_attention.cc).
// Google Benchmark's own flags apply (--benchmark_filter, --benchmark_format=json,
// --benchmark_repetitions, ...); MOAK_BACKENDS picks the backends.
#include <benchmark/benchmark.h>

#include "gbench_common.h"
#include "moak.h"

int main(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::AddCustomContext("moak_version", moak_version_string());
    if (moak_context *ctx = gbench::context())
        benchmark::AddCustomContext("moak_backends", moak_context_backends(ctx));
    benchmark::RunSpecifiedBenchmarks();
    gbench::shutdown();
    benchmark::Shutdown();
    return 0;
}
