# Tests of the formats (quantize/dequantize, f16/bf16) and of the hardware
# probe.  They use tests/local.mk's LOG_COMPILER like every test; the
# probe test sets MOAK_ISA_MAX itself in child processes.
check_PROGRAMS += tests/test_formats tests/test_probe
TESTS += tests/test_formats$(EXEEXT) tests/test_probe$(EXEEXT)

# The INIT macros of moak.h set struct_size only, by design.
FORMATS_TEST_CFLAGS = -Wno-missing-field-initializers

# -no-install: libtool links the real binary (no wrapper script), so it can
# also run under an emulator such as qemu-aarch64.
tests_test_formats_SOURCES = tests/test_formats.c
tests_test_formats_CFLAGS = $(AM_CFLAGS) $(FORMATS_TEST_CFLAGS)
tests_test_formats_LDADD = libmoak.la -lm
tests_test_formats_LDFLAGS = -no-install

# test_probe reads the topology with hwloc itself, to compare.
tests_test_probe_SOURCES = tests/test_probe.c
tests_test_probe_CPPFLAGS = $(AM_CPPFLAGS) $(HWLOC_CFLAGS)
tests_test_probe_CFLAGS = $(AM_CFLAGS) $(FORMATS_TEST_CFLAGS)
tests_test_probe_LDADD = libmoak.la $(HWLOC_LIBS) $(PTHREAD_LIBS)
tests_test_probe_LDFLAGS = -no-install
