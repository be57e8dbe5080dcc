/* A small fork-join pool: n-1 workers plus the calling thread.
 *
 * A job is a range of task indices handed out with an atomic counter; which
 * thread runs a task may vary, so backends make each task's result
 * independent of the thread (see moak_task_fn), which keeps results bitwise
 * reproducible for a given thread count.  Workers (never the calling thread)
 * are bound to physical cores (hwloc) when asked.
 *
 * Waking a sleeping thread costs 20-70 us here (futex wake plus the
 * scheduler, more when the core has gone idle), as much as a whole decode op.
 * So both sides spin briefly before they sleep (SPIN_NS): workers waiting for
 * the next job, the caller waiting for the last task.  Decode calls its ops
 * back to back, so the next job usually comes within the spin; an idle
 * context still costs nothing once the spin has run out.
 *
 * The caller waits for tasks, not for workers: it returns once every task
 * has finished, even if a worker has not yet noticed the job.  A worker
 * reads the job's description only after joining the job, and the caller
 * rewrites it only after closing the job, which needs no worker inside: the
 * pair (job number, workers inside) lives in one atomic word, so joining and
 * closing cannot interleave.  The caller closes the job on its way out when
 * it can, so a late worker finds it closed; if one had already joined, the
 * next call waits for it to leave (a few instructions, not a wake-up).
 * Not re-entrant: one caller at a time (the context serialises ops), and a
 * task must not call the pool. */
#include "config.h"

#include <hwloc.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "hwprobe.h"
#include "internal.h"

/* How long a thread spins before it sleeps.  Spinning about as long as a
 * wake-up costs wastes at most twice what the better choice would have
 * (the ski-rental argument); wake-ups on the project's 2-core machine cost
 * 20-70 us (tests/test_threadpool --bench).  Time-based, not an iteration
 * count, so that it stays this short under an emulator (qemu) or a slow
 * pause instruction.  Overridable at build time (0: sleep at once). */
#ifndef MOAK_POOL_SPIN_NS
#define MOAK_POOL_SPIN_NS 50000
#endif
#define SPIN_NS ((uint64_t)MOAK_POOL_SPIN_NS)
/* Spin iterations between two reads of the clock, and between two
 * sched_yield calls: a spinner offers its core every few microseconds to
 * any other thread waiting for it (another process, or the very worker it
 * waits for when there are more threads than cores).  On an idle core the
 * call returns within a microsecond; when it took longer than
 * YIELD_TAKEN_NS, another thread ran, the machine has more runnable threads
 * than cores, and spinning would only eat this process's share of the CPU
 * (the scheduler charges spinning like work): the spin ends, the thread
 * sleeps. */
#define SPINS_PER_CLOCK_READ 16
#define SPINS_PER_YIELD 64
#define YIELD_TAKEN_NS 20000

/* state = job number << INSIDE_BITS | workers inside that job.  An odd job
 * number is open (workers may join), an even one is closed (the caller is
 * rewriting the description).  40 bits of job number wrap after 2^39 jobs. */
#define INSIDE_BITS 24
#define JOB_OF(state) ((state) >> INSIDE_BITS)
#define JOB_IS_OPEN(job) (((job) & 1) != 0)

/* Keeps the hot atomics on their own cache lines: spinning readers of
 * `state` should not be disturbed by every task claim. */
#define CACHE_LINE 64

struct moak_threadpool {
    int32_t n_threads;
    bool bind;
    pthread_t *threads;
    /* The job's description: written by the caller only while the job is
     * closed and no worker is inside, read by workers only while inside. */
    moak_task_fn fn;
    void *arg;
    int64_t n_tasks;

    char pad0[CACHE_LINE];
    atomic_uint_fast64_t state;
    atomic_bool stop;
    char pad1[CACHE_LINE];
    atomic_int_fast64_t next_task;  /* the next task index to claim */
    char pad2[CACHE_LINE];
    atomic_int_fast64_t tasks_done; /* finished tasks of the current job */
    char pad3[CACHE_LINE];

    /* Sleeping.  A sleeper announces itself (the counter or flag) under the
     * lock and then re-reads what it waits for; the other side changes that
     * first and then reads the announcement, both sequentially consistent,
     * so at least one of the two sees the other: no lost wake-up. */
    pthread_mutex_t lock;
    pthread_cond_t wake;            /* workers: a new job, or stop */
    pthread_cond_t done;            /* the caller: every task finished */
    atomic_int sleeping_workers;
    atomic_bool caller_sleeping;
};

typedef struct worker_start {
    moak_threadpool *pool;
    int32_t index;                /* 1..n-1; the caller is 0 */
} worker_start;

/* A hint to the core that this is a spin-wait loop (it saves power and
 * leaves the pipeline to the sibling hyperthread). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A spin budget that reads the clock only now and then. */
typedef struct spin {
    uint64_t deadline;
    uint32_t count;
    bool spent;
} spin;

static spin spin_start(void)
{
    spin s = {0, 0, SPIN_NS == 0};
    if (!s.spent)
        s.deadline = now_ns() + SPIN_NS;
    return s;
}

/* One more round of spinning; false from the moment the budget is spent. */
static bool spin_again(spin *s)
{
    if (s->spent)
        return false;
    cpu_relax();
    s->count++;
    if (s->count % SPINS_PER_YIELD == 0) {
        uint64_t before = now_ns();
        sched_yield();
        uint64_t after = now_ns();
        if (after - before > YIELD_TAKEN_NS || after >= s->deadline)
            s->spent = true;
    } else if (s->count % SPINS_PER_CLOCK_READ == 0 && now_ns() >= s->deadline) {
        s->spent = true;
    }
    return !s->spent;
}

/* Claim and run tasks until none is left; returns how many this thread ran. */
static int64_t run_tasks(moak_threadpool *pool, int32_t thread)
{
    int64_t ran = 0;
    for (;;) {
        int64_t task = atomic_fetch_add_explicit(&pool->next_task, 1, memory_order_relaxed);
        if (task >= pool->n_tasks)
            return ran;
        pool->fn(pool->arg, task, thread);
        ran++;
    }
}

/* Count this thread's finished tasks; the thread that finishes the job
 * wakes the caller if it went to sleep. */
static void finish_tasks(moak_threadpool *pool, int64_t ran)
{
    if (ran == 0)
        return;
    int64_t before = atomic_fetch_add(&pool->tasks_done, ran);
    if (before + ran == pool->n_tasks && atomic_load(&pool->caller_sleeping)) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_signal(&pool->done);
        pthread_mutex_unlock(&pool->lock);
    }
}

/* Pin the calling thread to physical core `index` (mod the core count). */
static void bind_to_core(int32_t index)
{
    hwloc_topology_t topo = moak_hw_topology();
    if (!topo)
        return;
    int n_cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    if (n_cores <= 0)
        return;
    hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, (unsigned)(index % n_cores));
    if (!core || !core->cpuset)
        return;
    /* Failure to bind (e.g. a restricted cpuset) is harmless: run unbound. */
    (void)hwloc_set_cpubind(topo, core->cpuset, HWLOC_CPUBIND_THREAD);
}

static bool new_job(uint64_t state, uint64_t seen)
{
    return JOB_IS_OPEN(JOB_OF(state)) && JOB_OF(state) != seen;
}

/* Wait until a job other than `seen` is open (returns the state word that
 * shows it), or the pool stops (returns with pool->stop set).  A worker
 * woken for a job that the others finished before it arrived spins again:
 * in decode the next job is usually a few microseconds away. */
static uint64_t wait_for_job(moak_threadpool *pool, uint64_t seen)
{
    for (;;) {
        spin s = spin_start();
        do {
            uint64_t state = atomic_load_explicit(&pool->state, memory_order_relaxed);
            if (new_job(state, seen) || atomic_load_explicit(&pool->stop, memory_order_relaxed))
                return state;
        } while (spin_again(&s));

        uint64_t state;
        bool found;
        pthread_mutex_lock(&pool->lock);
        atomic_fetch_add(&pool->sleeping_workers, 1);
        state = atomic_load(&pool->state);
        found = new_job(state, seen) || atomic_load(&pool->stop);
        if (!found)
            pthread_cond_wait(&pool->wake, &pool->lock); /* a wake-up, maybe spurious */
        atomic_fetch_sub(&pool->sleeping_workers, 1);
        pthread_mutex_unlock(&pool->lock);
        if (found)
            return state;
    }
}

static void *worker_main(void *p)
{
    worker_start start = *(worker_start *)p;
    free(p);
    moak_threadpool *pool = start.pool;
    if (pool->bind)
        bind_to_core(start.index);
    uint64_t seen = 0; /* the last job this worker joined or found gone */
    for (;;) {
        uint64_t state = wait_for_job(pool, seen);
        if (atomic_load(&pool->stop))
            break;
        uint64_t job = JOB_OF(state);
        seen = job;
        /* Join: counted inside only while the job is still the open one.
         * The acquire pairs with the caller's publication of the job. */
        bool joined = false;
        while (JOB_OF(state) == job && !joined)
            joined = atomic_compare_exchange_weak_explicit(&pool->state, &state, state + 1,
                                                           memory_order_acquire,
                                                           memory_order_relaxed);
        if (!joined)
            continue; /* closed already: every task was taken */
        finish_tasks(pool, run_tasks(pool, start.index));
        /* Leave: releases this worker's reads of the description to the
         * caller that will rewrite it. */
        atomic_fetch_sub_explicit(&pool->state, 1, memory_order_release);
    }
    return NULL;
}

moak_status moak_threadpool_create(int32_t n_threads, bool bind, moak_threadpool **out)
{
    moak_threadpool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return MOAK_ERR_OUT_OF_MEMORY;
    pool->n_threads = n_threads < 1 ? 1 : n_threads;
    pool->bind = bind;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    atomic_init(&pool->state, 0); /* job 0: closed, nothing to join */
    atomic_init(&pool->stop, false);
    atomic_init(&pool->next_task, 0);
    atomic_init(&pool->tasks_done, 0);
    atomic_init(&pool->sleeping_workers, 0);
    atomic_init(&pool->caller_sleeping, false);
    if (pool->n_threads > 1) {
        pool->threads = calloc((size_t)pool->n_threads, sizeof(pthread_t));
        if (!pool->threads) {
            moak_threadpool_destroy(pool);
            return MOAK_ERR_OUT_OF_MEMORY;
        }
    }
    for (int32_t i = 1; i < pool->n_threads; i++) {
        worker_start *start = malloc(sizeof(*start));
        if (start) {
            start->pool = pool;
            start->index = i;
        }
        if (!start || pthread_create(&pool->threads[i], NULL, worker_main, start) != 0) {
            free(start);
            pool->n_threads = i; /* only join the ones that started */
            moak_threadpool_destroy(pool);
            return MOAK_ERR_OUT_OF_MEMORY;
        }
    }
    /* The calling thread is the application's: it is never pinned (that
     * would also pin every thread it creates later).  Workers take cores
     * 1..n-1 so that the caller, which usually sits on core 0, keeps its own. */
    *out = pool;
    return MOAK_OK;
}

void moak_threadpool_destroy(moak_threadpool *pool)
{
    if (!pool)
        return;
    atomic_store(&pool->stop, true);
    pthread_mutex_lock(&pool->lock);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int32_t i = 1; i < pool->n_threads && pool->threads; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->lock);
    free(pool->threads);
    free(pool);
}

/* Close the open job if no worker is inside it; true when the job is closed
 * (now or before).  The acquire pairs with the release of each worker's
 * leaving, so their reads of the description are over. */
static bool try_close_job(moak_threadpool *pool, uint64_t *closed_job)
{
    uint64_t state = atomic_load_explicit(&pool->state, memory_order_relaxed);
    uint64_t job = JOB_OF(state);
    if (!JOB_IS_OPEN(job)) {
        *closed_job = job;
        return true;
    }
    uint64_t expected = job << INSIDE_BITS;
    if (!atomic_compare_exchange_strong_explicit(&pool->state, &expected,
                                                 (job + 1) << INSIDE_BITS,
                                                 memory_order_acquire, memory_order_relaxed))
        return false;
    *closed_job = job + 1;
    return true;
}

/* Close the job before the description is rewritten.  A worker still inside
 * has found every task taken and is on its way out, so this waits for a few
 * instructions, unless that worker was preempted or waits for this very
 * core: hence a short spin, then yield to it. */
static uint64_t close_job(moak_threadpool *pool)
{
    uint64_t closed_job;
    for (int tries = 0; !try_close_job(pool, &closed_job); tries++) {
        if (tries < SPINS_PER_YIELD)
            cpu_relax();
        else
            sched_yield();
    }
    return closed_job;
}

/* Wait until every task of the current job has finished. */
static void wait_for_tasks(moak_threadpool *pool, int64_t n_tasks)
{
    spin s = spin_start();
    do {
        if (atomic_load_explicit(&pool->tasks_done, memory_order_acquire) == n_tasks)
            return;
    } while (spin_again(&s));

    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->caller_sleeping, true);
    while (atomic_load(&pool->tasks_done) != n_tasks)
        pthread_cond_wait(&pool->done, &pool->lock);
    atomic_store(&pool->caller_sleeping, false);
    pthread_mutex_unlock(&pool->lock);
}

void moak_threadpool_run(void *p, int64_t n_tasks, moak_task_fn fn, void *arg)
{
    moak_threadpool *pool = p;
    if (n_tasks <= 0)
        return;
    if (pool->n_threads == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    uint64_t closed = close_job(pool);
    pool->fn = fn;
    pool->arg = arg;
    pool->n_tasks = n_tasks;
    atomic_store_explicit(&pool->next_task, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->tasks_done, 0, memory_order_relaxed);
    /* Publish: the description and counters above become visible to every
     * worker that joins (seq_cst also orders it before reading the sleepers). */
    atomic_store(&pool->state, (closed + 1) << INSIDE_BITS);
    int sleepers = atomic_load(&pool->sleeping_workers);
    if (sleepers > 0) {
        /* The caller takes a task itself: wake only as many as can get one. */
        pthread_mutex_lock(&pool->lock);
        if (n_tasks - 1 >= sleepers) {
            pthread_cond_broadcast(&pool->wake);
        } else {
            for (int64_t i = 0; i < n_tasks - 1; i++)
                pthread_cond_signal(&pool->wake);
        }
        pthread_mutex_unlock(&pool->lock);
    }

    int64_t ran = run_tasks(pool, 0);
    if (ran > 0)
        atomic_fetch_add(&pool->tasks_done, ran);
    wait_for_tasks(pool, n_tasks);
    /* Close now if no worker is inside, so that a worker arriving late does
     * not join a finished job (the next call would have to wait for it to
     * leave); if one is inside, the next call closes the job. */
    uint64_t unused;
    (void)try_close_job(pool, &unused);
}

int32_t moak_threadpool_size(const moak_threadpool *pool) { return pool->n_threads; }
