# The reference backend: portable scalar C, compiled into libmoak with the
# library's ordinary flags (no ISA flags: it must run on any machine).
libmoak_la_SOURCES += \
	backends/ref/ref_internal.h \
	backends/ref/backend_ref.c \
	backends/ref/matmul_ref.c \
	backends/ref/moe_ref.c \
	backends/ref/route_ref.c \
	backends/ref/attention_ref.c \
	backends/ref/indexer_ref.c \
	backends/ref/norm_rope_ref.c \
	backends/ref/gated_delta_ref.c
