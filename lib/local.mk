# The core library: context, errors, probe, dispatch, threads, formats,
# weights, KV cache, linear-attention state and the validation in front of every public op.
libmoak_la_SOURCES += \
	lib/internal.h \
	lib/status.c \
	lib/context.c \
	lib/registry.c \
	lib/dispatch.c \
	lib/threadpool.c lib/threadpool.h \
	lib/hwprobe.c lib/hwprobe.h lib/hwprobe_isa.c \
	lib/formats.c \
	lib/formats_release.c lib/formats_release.h \
	lib/formats_fp8.c \
	lib/formats_fp4.c \
	lib/formats_int4.c \
	lib/weight.c \
	lib/kv_cache.c \
	lib/op_matmul.c \
	lib/op_moe.c \
	lib/op_route.c \
	lib/route_select.h \
	lib/route_select.c \
	lib/topk_select.c \
	lib/op_indexer.c \
	lib/op_attention.c \
	lib/op_norm_rope.c \
	lib/linear_state.c \
	lib/op_gated_delta.c \
	lib/rope_freqs.c
