/* test_threadpool — the context's fork-join pool (lib/threadpool.c) on its
 * own, under the contract of moak_backend_env.parallel_for: every task index
 * in [0, n_tasks) runs exactly once, with a thread index in [0, n_threads)
 * that no other task running at the same time has (backends pick scratch
 * memory by it), and every task has finished when the call returns.
 *
 * The pool is internal (hidden symbols), so unlike the other tests this one
 * compiles lib/threadpool.c into itself and does not link libmoak (nor the
 * test helpers, which do: in a static build the library's hwprobe.o would
 * clash with the stub below).  Thread binding is not exercised: the stub
 * topology says "no hwloc", which the pool treats as "run unbound".
 *
 * What each part provokes:
 *   - random job sizes (0, 1, fewer tasks than threads, many) with tasks of
 *     random length: late claims, idle workers, a caller that has to wait;
 *   - gaps between jobs longer than the pool's spin, so workers and the
 *     caller go to sleep and must be woken (a rendezvous that needs every
 *     thread inside a task at once fails, instead of only slowing down,
 *     when a wake-up is lost);
 *   - create/destroy with workers spinning, asleep, or never used;
 *   - two pools driven at once from two threads.
 * A watchdog alarm turns a hang (a lost wake-up of the caller) into a
 * failure.  The pool does not look at the ISA, so only the top level runs.
 *
 *   test_threadpool --bench [N_THREADS]
 * prints the fork-join cost of one parallel_for of empty tasks instead
 * (bench/NOTES.md, "thread pool wake-up"). */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hwprobe.h"
#include "internal.h"

/* The pool binds workers through hwprobe.c's topology; without it (NULL)
 * the pool runs unbound, which is all this test needs. */
hwloc_topology_t moak_hw_topology(void) { return NULL; }

/* ---- checks and random numbers (the helpers of testutil.h, in small) ---------- */

#define EXIT_PASS 0
#define EXIT_FAIL 1
#define EXIT_SKIP 77
#define EXIT_HARD 99

static uint64_t seed, rng;
static int n_checks, n_failures;

/* splitmix64: enough for job sizes and delays. */
static uint64_t rand_u64(void)
{
    uint64_t z = (rng += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi], inclusive; lo <= hi. */
static int64_t rand_int(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rand_u64() % (uint64_t)(hi - lo + 1));
}

static void init_seed(void)
{
    const char *s = getenv("MOAK_TEST_SEED");
    if (s && *s) {
        seed = strtoull(s, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_sec * UINT64_C(1000000007)) ^ (uint64_t)ts.tv_nsec ^
               ((uint64_t)getpid() << 32);
    }
    rng = seed;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("# test_threadpool: seed %llu (replay with MOAK_TEST_SEED=%llu)\n",
           (unsigned long long)seed, (unsigned long long)seed);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" %s\n", ok ? "ok" : "FAIL");
    n_checks++;
    n_failures += !ok;
}

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2), noreturn))
#endif
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("test_threadpool: set-up failed: ");
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    exit(EXIT_HARD);
}

static void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count, size);
    if (!p)
        die("out of memory");
    return p;
}

/* ---- the pool's contract ---------------------------------------------------------- */

#define MAX_TASKS 4096
#define MAX_THREADS 8
#define RENDEZVOUS_TIMEOUT_NS 5000000000ull /* generous: the machine may be loaded */
#define WATCHDOG_S 300

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void busy_wait_ns(uint64_t ns)
{
    uint64_t end = now_ns() + ns;
    while (now_ns() < end) {
    }
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* The value task t of a job must leave: a hash of (job seed, t), in double. */
static double task_value(uint64_t job_seed, int64_t t)
{
    uint64_t x = job_seed ^ ((uint64_t)t * UINT64_C(0x9e3779b97f4a7c15));
    x ^= x >> 31;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 29;
    return (double)(x >> 11) * 0x1p-53 - 0.5 + (double)t;
}

/* ---- one checked job -------------------------------------------------------- */

typedef struct job {
    int32_t n_threads;
    int64_t n_tasks;
    uint64_t seed;
    uint32_t delay_ns[MAX_TASKS];  /* how long each task works */
    uint32_t worker_delay_ns;      /* and how much longer on a worker */
    double out[MAX_TASKS];         /* NaN until the task writes its value */
    atomic_int hits[MAX_TASKS];
    atomic_int busy[MAX_THREADS];  /* 1 while a task runs with that thread index */
    atomic_int bad_thread;         /* thread index out of range or shared */
    atomic_long on_workers;        /* tasks run by threads other than the caller */
} job;

static void checked_task(void *arg, int64_t task, int32_t thread)
{
    job *j = arg;
    if (task < 0 || task >= j->n_tasks || thread < 0 || thread >= j->n_threads) {
        atomic_store(&j->bad_thread, 1);
        return;
    }
    if (atomic_exchange(&j->busy[thread], 1) != 0)
        atomic_store(&j->bad_thread, 1);
    atomic_fetch_add(&j->hits[task], 1);
    if (thread != 0)
        atomic_fetch_add(&j->on_workers, 1);
    uint64_t delay = j->delay_ns[task] + (thread != 0 ? j->worker_delay_ns : 0);
    if (delay)
        busy_wait_ns(delay);
    /* Written last, so a call that returned early leaves a NaN behind. */
    j->out[task] = task_value(j->seed, task);
    atomic_store(&j->busy[thread], 0);
}

/* Run one job of n_tasks on pool and check it; returns 1 when correct. */
static int run_checked(moak_threadpool *pool, job *j, int64_t n_tasks, int delay_kind)
{
    j->n_threads = moak_threadpool_size(pool);
    j->n_tasks = n_tasks;
    j->seed = rand_u64();
    for (int64_t t = 0; t < n_tasks; t++) {
        j->out[t] = NAN;
        atomic_store(&j->hits[t], 0);
        /* delay_kind 0: empty tasks; 1: about 8 tasks of up to 20 us (a
         * quarter of them in small jobs); 2: one task far longer than the
         * pool's spin, so the caller sleeps. */
        uint32_t d = 0;
        if (delay_kind == 1 && rand_int(0, n_tasks < 32 ? 3 : n_tasks / 8) == 0)
            d = (uint32_t)rand_int(0, 20000);
        j->delay_ns[t] = d;
    }
    if (delay_kind == 2 && n_tasks > 0)
        j->delay_ns[rand_int(0, n_tasks - 1)] = 400000;
    /* Half the jobs: every task a worker runs takes a few us more, so the
     * caller runs out of tasks first whenever a worker took part; a call
     * that returned then would leave that worker's task unfinished. */
    j->worker_delay_ns = rand_int(0, 1) ? (uint32_t)rand_int(1000, 8000) : 0;
    atomic_store(&j->bad_thread, 0);

    moak_threadpool_run(pool, n_tasks, checked_task, j);

    int ok = !atomic_load(&j->bad_thread);
    for (int64_t t = 0; t < n_tasks && ok; t++)
        ok = atomic_load(&j->hits[t]) == 1 && j->out[t] == task_value(j->seed, t);
    return ok;
}

static int64_t random_job_size(int32_t n_threads)
{
    switch (rand_int(0, 5)) {
    case 0: return rand_int(0, 1);
    case 1: return n_threads >= 2 ? rand_int(2, n_threads) : 1; /* at most one each */
    case 2: return rand_int(1, n_threads + 3);
    case 3: return rand_int(n_threads, 8 * n_threads);
    case 4: return rand_int(64, 512);
    default: return rand_int(1, MAX_TASKS);
    }
}

/* Many jobs back to back, with now and then a gap long enough for every
 * thread to fall asleep. */
static void check_many_jobs(int32_t n_threads, int n_jobs)
{
    moak_threadpool *pool = NULL;
    if (moak_threadpool_create(n_threads, false, &pool) != MOAK_OK)
        die("moak_threadpool_create(%d) failed", n_threads);
    job *j = xcalloc(1, sizeof(*j));
    int bad = 0, first_bad = -1;
    int64_t tasks = 0;
    for (int i = 0; i < n_jobs; i++) {
        int64_t n = random_job_size(n_threads);
        int kind = (int)rand_int(0, 1);
        if (i % 97 == 13)
            kind = 2;
        if (i % 61 == 7)
            sleep_us(rand_int(200, 2000)); /* workers asleep at the next call */
        else if (i % 5 == 0)
            busy_wait_ns((uint64_t)rand_int(0, 100000)); /* caller's own serial work */
        if (!run_checked(pool, j, n, kind) && bad++ == 0)
            first_bad = i;
        tasks += n;
    }
    check(bad == 0, "%d threads: %d jobs (%lld tasks, %ld on workers): every task "
            "exactly once, thread index valid and unshared, all done on return "
            "(%d bad, first #%d)", n_threads, n_jobs, (long long)tasks,
            atomic_load(&j->on_workers), bad, first_bad);
    free(j);
    moak_threadpool_destroy(pool);
}

/* ---- every thread inside a task at once --------------------------------------- */

typedef struct rendezvous {
    int32_t n_threads;
    atomic_int entered;
    atomic_int timed_out;
    atomic_int seen[MAX_THREADS];
} rendezvous;

/* Each task waits until n_threads tasks have started: possible only when
 * every worker woke and claimed one (a thread inside a task claims no other). */
static void rendezvous_task(void *arg, int64_t task, int32_t thread)
{
    rendezvous *r = arg;
    if (thread >= 0 && thread < MAX_THREADS)
        atomic_fetch_add(&r->seen[thread], 1);
    atomic_fetch_add(&r->entered, 1);
    uint64_t end = now_ns() + RENDEZVOUS_TIMEOUT_NS;
    while (atomic_load(&r->entered) < r->n_threads) {
        if (now_ns() > end) {
            atomic_store(&r->timed_out, 1);
            return;
        }
        sched_yield(); /* the machine may have fewer cores than the pool has threads */
    }
}

static void check_wake_from_sleep(int32_t n_threads, int rounds)
{
    moak_threadpool *pool = NULL;
    if (moak_threadpool_create(n_threads, false, &pool) != MOAK_OK)
        die("moak_threadpool_create(%d) failed", n_threads);
    int bad = 0;
    for (int i = 0; i < rounds; i++) {
        /* Odd rounds: straight after the previous job (workers spinning or
         * not yet back); even rounds: after every thread has gone to sleep. */
        if (i % 2 == 0)
            sleep_us(3000);
        rendezvous r;
        memset(&r, 0, sizeof(r));
        r.n_threads = n_threads;
        moak_threadpool_run(pool, n_threads, rendezvous_task, &r);
        int all = 1;
        for (int32_t t = 0; t < n_threads; t++)
            all &= atomic_load(&r.seen[t]) == 1;
        if (atomic_load(&r.timed_out) || !all)
            bad++;
    }
    check(bad == 0, "%d threads: %d jobs that need every thread at once, half of them "
            "after all slept: every thread woke (%d timed out)", n_threads, rounds, bad);
    moak_threadpool_destroy(pool);
}

/* ---- create and destroy ------------------------------------------------------- */

static void empty_task(void *arg, int64_t task, int32_t thread)
{
    (void)arg;
    (void)task;
    (void)thread;
}

static void check_lifecycle(int32_t n_threads)
{
    int ok = 1;
    for (int how = 0; how < 3; how++) {
        for (int rep = 0; rep < 4; rep++) {
            moak_threadpool *pool = NULL;
            if (moak_threadpool_create(n_threads, false, &pool) != MOAK_OK)
                die("moak_threadpool_create(%d) failed", n_threads);
            ok &= moak_threadpool_size(pool) == n_threads;
            if (how >= 1)
                moak_threadpool_run(pool, 4 * n_threads, empty_task, NULL);
            if (how == 2)
                sleep_us(3000); /* destroy with every worker asleep */
            moak_threadpool_destroy(pool);
        }
    }
    check(ok, "%d threads: destroy unused, right after a job, and with workers asleep",
            n_threads);
}

/* ---- two pools at once ---------------------------------------------------------- */

typedef struct driver {
    int32_t n_threads;
    int n_jobs;
    int bad;
    uint64_t seed;
} driver;

static void pool_task_sum(void *arg, int64_t task, int32_t thread)
{
    job *j = arg;
    atomic_fetch_add(&j->hits[task], 1);
    j->out[task] = task_value(j->seed, task);
    (void)thread;
}

/* The helpers' RNG is not thread-safe: a driver thread derives its own sizes. */
static void *drive_pool(void *p)
{
    driver *d = p;
    moak_threadpool *pool = NULL;
    if (moak_threadpool_create(d->n_threads, false, &pool) != MOAK_OK) {
        d->bad = -1;
        return NULL;
    }
    job *j = calloc(1, sizeof(*j));
    if (!j) {
        moak_threadpool_destroy(pool);
        d->bad = -1;
        return NULL;
    }
    uint64_t x = d->seed;
    for (int i = 0; i < d->n_jobs; i++) {
        x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        int64_t n = (int64_t)((x >> 33) % 300);
        j->seed = x;
        for (int64_t t = 0; t < n; t++) {
            j->out[t] = NAN;
            atomic_store(&j->hits[t], 0);
        }
        moak_threadpool_run(pool, n, pool_task_sum, j);
        double sum = 0, want = 0;
        int once = 1;
        for (int64_t t = 0; t < n; t++) {
            sum += j->out[t];
            want += task_value(x, t);
            once &= atomic_load(&j->hits[t]) == 1;
        }
        if (!once || sum != want)
            d->bad++;
    }
    free(j);
    moak_threadpool_destroy(pool);
    return NULL;
}

static void check_two_pools(int32_t n_threads, int n_jobs)
{
    driver d[2];
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        d[k] = (driver){n_threads, n_jobs, 0, rand_u64()};
        if (pthread_create(&th[k], NULL, drive_pool, &d[k]) != 0)
            die("pthread_create failed");
    }
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    check(d[0].bad == 0 && d[1].bad == 0,
            "two %d-thread pools driven at once, %d jobs each: sums match the serial "
            "oracle, every task once (%d, %d bad)", n_threads, n_jobs, d[0].bad, d[1].bad);
}

/* ---- --bench: the fork-join cost -------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void timed_task(void *arg, int64_t task, int32_t thread)
{
    (void)task;
    (void)thread;
    busy_wait_ns(*(const uint64_t *)arg);
}

/* Median over 9 batches of the time one parallel_for of n_tasks tasks of
 * task_ns each takes, with gap_us of the caller's own work between calls
 * (not timed).  The gap is what decides whether workers are still awake. */
static double bench_call_ns(moak_threadpool *pool, int64_t n_tasks, uint64_t task_ns,
                            int gap_us, int calls)
{
    double batch[9];
    for (int b = 0; b < 9; b++) {
        uint64_t spent = 0;
        for (int i = 0; i < calls; i++) {
            if (gap_us >= 1000)
                sleep_us(gap_us);
            else if (gap_us > 0)
                busy_wait_ns((uint64_t)gap_us * 1000);
            uint64_t t0 = now_ns();
            if (task_ns)
                moak_threadpool_run(pool, n_tasks, timed_task, &task_ns);
            else
                moak_threadpool_run(pool, n_tasks, empty_task, NULL);
            spent += now_ns() - t0;
        }
        batch[b] = (double)spent / calls;
    }
    qsort(batch, 9, sizeof(batch[0]), cmp_double);
    return batch[4];
}

/* Two jobs: n_threads empty tasks (the bare fork-join: what a caller pays
 * when it could have done the work alone), and 8 tasks of 2 us per thread
 * (16 us of work per thread when split evenly: the size of one small decode
 * op), reported as the time above that even split. */
static int run_bench(int32_t n_threads)
{
    moak_threadpool *pool = NULL;
    if (moak_threadpool_create(n_threads, false, &pool) != MOAK_OK)
        return EXIT_HARD;
    static const int gaps_us[] = {0, 5, 20, 100, 2000};
    const uint64_t task_ns = 2000;
    const int64_t work_tasks = 8 * (int64_t)n_threads;
    printf("threadpool fork-join, %d threads, median of 9 batches; gap = the caller's own "
           "work between calls\n", n_threads);
    printf("  gap us | %d empty tasks: us per call | %lld x 2 us tasks: us per call, "
           "above the even split (16 us)\n", n_threads, (long long)work_tasks);
    for (size_t g = 0; g < sizeof(gaps_us) / sizeof(gaps_us[0]); g++) {
        int calls = gaps_us[g] >= 1000 ? 100 : 1000;
        double empty = bench_call_ns(pool, n_threads, 0, gaps_us[g], calls);
        double work = bench_call_ns(pool, work_tasks, task_ns, gaps_us[g], calls);
        double split = (double)work_tasks * task_ns / n_threads;
        printf("  %6d | %8.2f                  | %8.2f  (+%.2f)\n", gaps_us[g], empty / 1000,
               work / 1000, (work - split) / 1000);
    }
    moak_threadpool_destroy(pool);
    return EXIT_PASS;
}

/* ---- main --------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--bench") == 0)
        return run_bench(argc >= 3 ? (int32_t)atoi(argv[2]) : 2);

    /* The pool never looks at the ISA: one level is enough. */
    const char *top = getenv("MOAK_TEST_TOP_LEVEL"), *level = getenv("MOAK_ISA_MAX");
    if (top && level && strcmp(top, level) != 0) {
        printf("test_threadpool: runs at the top level (%s) only\n", top);
        return EXIT_SKIP;
    }
    init_seed();
    alarm(WATCHDOG_S);

    /* Under an emulator run-levels.sh sets MOAK_NUM_THREADS=1, because
     * pthread_create can hang there: then only the one-thread pool runs. */
    int32_t max_threads = 4;
    const char *nt = getenv("MOAK_NUM_THREADS");
    if (nt && *nt) {
        max_threads = (int32_t)atoi(nt);
        if (max_threads < 1)
            max_threads = 1;
        if (max_threads > MAX_THREADS)
            max_threads = MAX_THREADS;
    }
    /* Fewer jobs with a sanitizer or valgrind: MOAK_TEST_THREADPOOL_JOBS. */
    const char *nj = getenv("MOAK_TEST_THREADPOOL_JOBS");
    int n_jobs = nj && *nj ? atoi(nj) : 1000;

    for (int32_t n = 1; n <= max_threads; n++) {
        check_lifecycle(n);
        check_many_jobs(n, n_jobs);
        check_wake_from_sleep(n, 8);
    }
    if (max_threads >= 2)
        check_two_pools(2, n_jobs);
    if (n_failures)
        printf("# test_threadpool: %d of %d checks FAILED; replay with MOAK_TEST_SEED=%llu\n",
               n_failures, n_checks, (unsigned long long)seed);
    else
        printf("# test_threadpool: all %d checks passed\n", n_checks);
    return n_failures ? EXIT_FAIL : EXIT_PASS;
}
