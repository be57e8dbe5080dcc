/* Measuring this machine's roofline, and the floors it sets (see roofline.h). */
#define _GNU_SOURCE /* pthread_setaffinity_np, CPU_SET: pinning each measuring thread */
#include "config.h"

#include "roofline.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "tool_support.h"

/* ---- floors (pure arithmetic, unit-tested) ----------------------------------------- */

double bench_roofline_peak(const bench_roofline *r, bench_peak peak)
{
    switch (peak) {
    case BENCH_PEAK_FP32: return r->fp32_gops * 1e9;
    case BENCH_PEAK_INT8: return r->int8_gops * 1e9;
    /* 16-bit floats can always be widened and run on the fp32 units, so
     * their ceiling is the better of the two. */
    case BENCH_PEAK_FP16: return (r->fp16_gops > r->fp32_gops ? r->fp16_gops : r->fp32_gops) * 1e9;
    }
    return 0.0;
}

void bench_roofline_floor(const bench_roofline *r, const bench_count *count, bool hot,
                          double working_set_bytes, bench_floor *floor)
{
    memset(floor, 0, sizeof(*floor));
    floor->bound = "-";
    bool in_l3 = hot && r->l3_gbps > 0.0 && working_set_bytes <= r->l3_bytes;
    floor->bandwidth_gbps = in_l3 ? r->l3_gbps : r->dram_gbps;
    if (!r->measured || floor->bandwidth_gbps <= 0.0)
        return;
    for (int i = 0; i < count->n_parts; i++) {
        const bench_part *p = &count->parts[i];
        double peak = bench_roofline_peak(r, p->peak);
        double mem = p->bytes / (floor->bandwidth_gbps * 1e9);
        double comp = peak > 0.0 ? p->ops / peak : 0.0;
        floor->memory_seconds += mem;
        floor->compute_seconds += comp;
        floor->seconds += mem > comp ? mem : comp;
    }
    floor->bound = floor->memory_seconds >= floor->compute_seconds ? "memory" : "compute";
}

double bench_roofline_pct(const bench_floor *floor, double seconds)
{
    return seconds > 0.0 && floor->seconds > 0.0 ? 100.0 * floor->seconds / seconds : 0.0;
}

/* ---- the loops this machine runs ------------------------------------------------------ */

typedef uint64_t (*read_fn)(const void *buf, size_t bytes);
typedef double (*peak_fn)(int64_t iters, double *ops);

/* Adapters: the loops return sinks of different types. */
static double fma_scalar(int64_t n, double *ops) { return bench_fma_scalar(n, ops); }
static double int8_scalar(int64_t n, double *ops) { return bench_int8_scalar(n, ops); }
#if defined(MOAK_BUILD_AVX2)
static double fma_avx2(int64_t n, double *ops) { return bench_fma_avx2(n, ops); }
static double int8_avx2(int64_t n, double *ops) { return bench_int8_avx2(n, ops); }
#endif
#if defined(MOAK_BUILD_AVX2) && defined(MOAK_HAVE_AVXVNNI_FLAGS)
static double int8_avxvnni(int64_t n, double *ops) { return bench_int8_avxvnni(n, ops); }
#endif
#if defined(MOAK_BUILD_AVX512)
static double fma_avx512(int64_t n, double *ops) { return bench_fma_avx512(n, ops); }
static double int8_avx512vnni(int64_t n, double *ops) { return bench_int8_avx512vnni(n, ops); }
#endif
#if defined(MOAK_BUILD_AVX512) && defined(MOAK_HAVE_AVX512BF16_FLAGS)
static double bf16_avx512(int64_t n, double *ops) { return bench_bf16_avx512(n, ops); }
#endif

typedef struct loops {
    read_fn read;
    peak_fn fp32, int8, fp16;    /* fp16 NULL: f16 runs as converted fp32 */
} loops;

/* The widest loops the probe (ISA capped by MOAK_ISA_MAX) allows. */
static void choose_loops(const moak_hw_info *hw, loops *l, bench_roofline *r)
{
    uint64_t isa = hw->isa;
    l->read = bench_read_scalar;
    l->fp32 = fma_scalar;
    l->int8 = int8_scalar;
    l->fp16 = NULL;
    snprintf(r->isa_path, sizeof(r->isa_path), "scalar");
    snprintf(r->fp32_method, sizeof(r->fp32_method), "scalar a*b+c, 8 chains");
    snprintf(r->int8_method, sizeof(r->int8_method), "scalar int32 multiply-add, 8 chains");
#if defined(MOAK_BUILD_AVX2)
    if ((isa & MOAK_ISA_AVX2) && (isa & MOAK_ISA_FMA)) {
        l->read = bench_read_avx2;
        l->fp32 = fma_avx2;
        l->int8 = int8_avx2;
        snprintf(r->isa_path, sizeof(r->isa_path), "avx2");
        snprintf(r->fp32_method, sizeof(r->fp32_method), "vfmadd ymm, 12 chains");
        snprintf(r->int8_method, sizeof(r->int8_method), "vpmaddubsw+vpmaddwd ymm, 12 chains");
#if defined(MOAK_HAVE_AVXVNNI_FLAGS)
        if (isa & MOAK_ISA_AVX_VNNI) {
            l->int8 = int8_avxvnni;
            snprintf(r->int8_method, sizeof(r->int8_method), "vpdpbusd ymm (AVX-VNNI), 12 chains");
        }
#endif
    }
#endif
#if defined(MOAK_BUILD_AVX512)
    const uint64_t avx512 = MOAK_ISA_AVX512F | MOAK_ISA_AVX512BW | MOAK_ISA_AVX512VL;
    if ((isa & avx512) == avx512 && (isa & MOAK_ISA_FMA)) {
        l->read = bench_read_avx512;
        l->fp32 = fma_avx512;
        snprintf(r->isa_path, sizeof(r->isa_path), "avx512");
        snprintf(r->fp32_method, sizeof(r->fp32_method), "vfmadd zmm, 16 chains");
        if (isa & MOAK_ISA_AVX512VNNI) {
            l->int8 = int8_avx512vnni;
            snprintf(r->int8_method, sizeof(r->int8_method), "vpdpbusd zmm (AVX-512 VNNI), 16 chains");
        }
#if defined(MOAK_HAVE_AVX512BF16_FLAGS)
        if (isa & MOAK_ISA_AVX512BF16) {
            l->fp16 = bf16_avx512;
            snprintf(r->fp16_method, sizeof(r->fp16_method), "vdpbf16ps zmm (AVX-512 BF16), 16 chains");
        }
#endif
    }
#endif
    if (!l->fp16)
        snprintf(r->fp16_method, sizeof(r->fp16_method), "none: 16-bit floats run as fp32 (fp32 figure)");
}

/* ---- threads -------------------------------------------------------------------------- */

typedef enum job_kind { JOB_READ, JOB_PEAK } job_kind;

/* All threads start their timed work together once every one is ready. */
typedef struct start_gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool open;
} start_gate;

typedef struct job {
    job_kind kind;
    start_gate *gate;
    int cpu;                     /* -1: no pinning */
    /* read: bytes [buf, buf + bytes), `passes` times after one untimed pass when warm */
    const unsigned char *buf;
    size_t bytes;
    int passes;
    bool warm;
    read_fn read;
    /* peak */
    peak_fn peak;
    int64_t iters;
    /* out */
    double seconds;              /* wall time of the timed work */
    double cpu_seconds;          /* this thread's CPU time over it */
    double ops;
    double sink;
} job;
static void pin(int cpu)
{
#if defined(__linux__)
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    }
#else
    (void)cpu;
#endif
}

static double thread_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *run_job(void *arg)
{
    job *j = arg;
    pin(j->cpu);
    if (j->kind == JOB_READ && j->warm)
        j->sink += (double)(j->read(j->buf, j->bytes) & 1);
    pthread_mutex_lock(&j->gate->lock);
    while (!j->gate->open)
        pthread_cond_wait(&j->gate->cond, &j->gate->lock);
    pthread_mutex_unlock(&j->gate->lock);
    double t0 = tool_now(), c0 = thread_cpu_now();
    if (j->kind == JOB_READ) {
        uint64_t s = 0;
        for (int p = 0; p < j->passes; p++)
            s ^= j->read(j->buf, j->bytes);
        j->ops = (double)j->bytes * j->passes;
        j->sink += (double)(s & 1);
    } else {
        j->sink += j->peak(j->iters, &j->ops);
    }
    j->seconds = tool_now() - t0;
    j->cpu_seconds = thread_cpu_now() - c0;
    return NULL;
}

/* One trial: total work / the slowest thread's wall time, and how much of
 * that time the threads really ran (1 = no other process took the CPU). */
typedef struct trial {
    double rate;
    double ran_fraction;
} trial;

static trial run_jobs(job *jobs, int n)
{
    trial t = {0.0, 0.0};
    start_gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    pthread_t *th = calloc((size_t)n, sizeof(*th));
    if (!th)
        return t;
    int started = 0;
    for (int i = 0; i < n; i++) {
        jobs[i].gate = &gate;
        if (pthread_create(&th[i], NULL, run_job, &jobs[i]) != 0)
            break;
        started++;
    }
    pthread_mutex_lock(&gate.lock);
    gate.open = true;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
    if (started < n) {
        fprintf(stderr, "moak-bench: could only start %d of %d threads\n", started, n);
        return t;
    }
    double slowest = 0.0, work = 0.0;
    t.ran_fraction = 1.0;
    for (int i = 0; i < n; i++) {
        slowest = jobs[i].seconds > slowest ? jobs[i].seconds : slowest;
        work += jobs[i].ops;
        double f = jobs[i].seconds > 0.0 ? jobs[i].cpu_seconds / jobs[i].seconds : 0.0;
        t.ran_fraction = f < t.ran_fraction ? f : t.ran_fraction;
    }
    t.rate = slowest > 0.0 ? work / slowest : 0.0;
    return t;
}

static volatile double sink_all;

/* The best of many short trials.  On a shared machine another process can
 * take a core in the middle of a trial; trials in which every thread ran at
 * least 90% of the time count first, and when there is none the figure is
 * flagged as disturbed. */
typedef struct best_of {
    double clean;                /* best rate among undisturbed trials */
    double any;                  /* best rate of all */
} best_of;

static void keep(best_of *b, trial t)
{
    if (t.ran_fraction >= 0.9 && t.rate > b->clean)
        b->clean = t.rate;
    if (t.rate > b->any)
        b->any = t.rate;
}

static double settle(const best_of *b, bool *disturbed)
{
    if (b->clean > 0.0)
        return b->clean;
    *disturbed = true;
    return b->any;
}

/* Read bandwidth over `windows` equal windows of buf (bytes), trial t
 * reading window t % windows split in n slices, `passes` times each.  With
 * one window read again and again (warm), it measures a cache; with many
 * windows in turn, each read last many windows ago, it measures DRAM. */
static double measure_read(read_fn read, unsigned char *buf, size_t bytes, int windows, int n, int passes,
                           bool warm, int trials, int n_pus, bool *disturbed)
{
    job *jobs = calloc((size_t)n, sizeof(*jobs));
    best_of b = {0.0, 0.0};
    if (!jobs)
        return 0.0;
    size_t window = bytes / (size_t)windows;
    size_t slice = window / (size_t)n / 256 * 256;
    for (int t = 0; t < trials; t++) {
        unsigned char *base = buf + (size_t)(t % windows) * window;
        for (int i = 0; i < n; i++) {
            memset(&jobs[i], 0, sizeof(jobs[i]));
            jobs[i].kind = JOB_READ;
            jobs[i].cpu = i < n_pus ? i : -1;
            jobs[i].buf = base + (size_t)i * slice;
            jobs[i].bytes = slice;
            jobs[i].passes = passes;
            jobs[i].warm = warm;
            jobs[i].read = read;
        }
        keep(&b, run_jobs(jobs, n));
        for (int i = 0; i < n; i++)
            sink_all += jobs[i].sink;
    }
    free(jobs);
    return settle(&b, disturbed);
}

/* Ops per second of `peak` on n threads: trials of about 10 ms, best of 15. */
static double measure_peak(peak_fn peak, int n, int n_pus, bool *disturbed)
{
    double ops;
    int64_t iters = 20000;
    double t0 = tool_now();
    sink_all += peak(iters, &ops);
    double dt = tool_now() - t0;
    if (dt > 0.0)
        iters = (int64_t)((double)iters * 0.01 / dt) + 1;
    job *jobs = calloc((size_t)n, sizeof(*jobs));
    best_of b = {0.0, 0.0};
    if (!jobs)
        return 0.0;
    for (int t = 0; t < 15; t++) {
        for (int i = 0; i < n; i++) {
            memset(&jobs[i], 0, sizeof(jobs[i]));
            jobs[i].kind = JOB_PEAK;
            jobs[i].cpu = i < n_pus ? i : -1;
            jobs[i].peak = peak;
            jobs[i].iters = iters;
        }
        keep(&b, run_jobs(jobs, n));
        for (int i = 0; i < n; i++)
            sink_all += jobs[i].sink;
    }
    free(jobs);
    return settle(&b, disturbed);
}

/* A buffer for streaming: 2 MiB aligned (huge pages where the kernel gives
 * them), first touched by the threads that will read it. */
static unsigned char *stream_buffer(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, (size_t)2 << 20, bytes) != 0)
        return NULL;
#if defined(MADV_HUGEPAGE)
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

static void fill_buffer(unsigned char *buf, size_t bytes)
{
    /* Non-zero, varied bytes: a zero page could be shared and never read from DRAM. */
    for (size_t i = 0; i < bytes; i += 4096)
        memset(buf + i, (int)(1 + (i >> 12) % 251), bytes - i < 4096 ? bytes - i : 4096);
}

bool bench_measure_roofline(const moak_hw_info *hw, int threads, bench_roofline *r, char *err, size_t err_len)
{
    loops l;
    double t0 = tool_now();
    memset(r, 0, sizeof(*r));
    int n = threads > 0 ? threads : (hw->n_cores > 0 ? hw->n_cores : 1);
    int n_pus = hw->n_pus > 0 ? hw->n_pus : n;
    r->threads = n;
    choose_loops(hw, &l, r);

    /* DRAM: several times all the cache the probe reports, at least 1 GiB. */
    double l2 = (double)tool_cache_total(hw, 2), l3 = (double)tool_cache_total(hw, 3);
    r->l3_bytes = l3;
    double want = 3.0 * (l3 + l2);
    if (want < (double)(1u << 30))
        want = (double)(1u << 30);
    size_t dram_bytes = ((size_t)want + ((size_t)2 << 20) - 1) / ((size_t)2 << 20) * ((size_t)2 << 20);
    unsigned char *buf = stream_buffer(dram_bytes);
    if (!buf) {
        snprintf(err, err_len, "cannot allocate %.0f MiB for the DRAM bandwidth test", (double)dram_bytes / 1048576.0);
        return false;
    }
    fill_buffer(buf, dram_bytes);
    r->dram_buffer_bytes = (double)dram_bytes;
    /* Eight windows read in turn, three rounds: each window was last read
     * seven windows (7/8 of the buffer, several times the caches) ago. */
    r->dram_gbps = measure_read(l.read, buf, dram_bytes, 8, n, 1, false, 24, n_pus, &r->disturbed) / 1e9;

    /* L3: inside the L3, many times the L2s; the buffer's start, warmed. */
    if (l3 > 0.0) {
        double size = 4.0 * l2 > 32.0 * 1048576.0 ? 4.0 * l2 : 32.0 * 1048576.0;
        if (size > l3 / 2.0)
            size = l3 / 2.0;
        size_t l3_bytes = (size_t)size / ((size_t)n * 256) * ((size_t)n * 256);
        if (l3_bytes > 0 && size > 2.0 * l2) {
            r->l3_buffer_bytes = (double)l3_bytes;
            r->l3_gbps = measure_read(l.read, buf, l3_bytes, 1, n, 4, true, 15, n_pus, &r->disturbed) / 1e9;
        }
    }
    free(buf);

    r->fp32_gops = measure_peak(l.fp32, n, n_pus, &r->disturbed) / 1e9;
    r->int8_gops = measure_peak(l.int8, n, n_pus, &r->disturbed) / 1e9;
    r->fp16_gops = l.fp16 ? measure_peak(l.fp16, n, n_pus, &r->disturbed) / 1e9 : r->fp32_gops;
    double load[1];
    if (getloadavg(load, 1) == 1)
        r->load_average = load[0];
    r->measured = true;
    r->seconds = tool_now() - t0;
    return true;
}
