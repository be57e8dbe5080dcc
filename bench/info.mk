# moak-info: prints the hardware probe and the backends (text, or JSON
# through jansson when configure found it).
bin_PROGRAMS += bench/moak-info
bench_moak_info_SOURCES = bench/moak-info.c
bench_moak_info_LDADD = libmoak.la
bench_moak_info_CPPFLAGS = $(AM_CPPFLAGS)
if HAVE_JANSSON
bench_moak_info_CPPFLAGS += $(JANSSON_CFLAGS)
bench_moak_info_LDADD += $(JANSSON_LIBS)
endif
