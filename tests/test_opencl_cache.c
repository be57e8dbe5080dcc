/*
 * test_opencl_cache — the OpenCL program cache on disk:
 *   - a first context compiles and stores the program; a second context
 *     loads it and does not compile (read from the backend's debug log);
 *   - a corrupt or truncated entry is detected, the program compiled again,
 *     the entry rewritten, and the op still right;
 *   - an unusable cache directory never fails an op;
 *   - without MOAK_CACHE_DIR the cache lives in $XDG_CACHE_HOME/moak, and
 *     without that in $HOME/.cache/moak.
 * Every op's result is checked against the double oracle.
 * PoCL's own cache stays in the build tree, so only the first run ever
 * pays PoCL's compile; moak's cache here is a fresh directory.
 */
#define _POSIX_C_SOURCE 200809L /* setenv, mkdtemp-free paths, getpid */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moak.h"
#include "test_opencl_common.h"
#include "testutil.h"

static char root[1024];

/* The one opencl-*.bin in dir, or "" (fails when there are several). */
static void find_entry(const char *dir, char *path, size_t len)
{
    path[0] = '\0';
    DIR *d = opendir(dir);
    if (!d)
        return;
    int found = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strncmp(e->d_name, "opencl-", 7) == 0 && strstr(e->d_name, ".bin") &&
            !strstr(e->d_name, ".tmp")) {
            snprintf(path, len, "%s/%s", dir, e->d_name);
            found++;
        }
    closedir(d);
    if (found > 1)
        t_fail("%s holds %d program cache entries, expected one", dir, found);
}

/* Remove every file of dir (one level) and dir itself. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char path[2048];
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        remove(path);
    }
    closedir(d);
    rmdir(dir);
}

/* One context: a matmul checked against the oracle; its log kept in *log. */
static void run_once(const char *label, ocl_test_log *log)
{
    moak_context *ctx = NULL;
    moak_status st = ocl_test_context("opencl!", NULL, log, &ctx);
    if (st != MOAK_OK)
        t_die("%s: moak_context_create: %s", label, moak_last_error(NULL));
    int untouched;
    const double err = ocl_test_matmul(ctx, &st, &untouched);
    if (st != MOAK_OK)
        t_fail("%s: matmul failed: %s", label, moak_last_error(ctx));
    t_report("opencl", moak_last_backend(ctx), "matmul", "q4_0", label, err,
             MOAK_BOUND_MATMUL_INT);
    moak_context_destroy(ctx);
}

static void expect(const ocl_test_log *log, const char *label, const char *needle, int present)
{
    const int has = ocl_test_log_has(log, needle);
    t_check(has == present, "%s: the log %s \"%s\"", label, present ? "says" : "does not say",
            needle);
    if (has != present)
        printf("%s", log->text);
}

static void overwrite(const char *path, long offset, const char *bytes, size_t n)
{
    FILE *f = fopen(path, "r+b");
    if (!f || fseek(f, offset, SEEK_SET) != 0 || fwrite(bytes, 1, n, f) != n)
        t_die("cannot modify %s", path);
    fclose(f);
}

static void truncate_file(const char *path, long keep)
{
    if (truncate(path, keep) != 0)
        t_die("cannot truncate %s: %s", path, strerror(errno));
}

int main(void)
{
    t_init("test_opencl_cache");
    ocl_test_first_level_only();
    ocl_test_default_caches();
    ocl_test_require_backend();

    static ocl_test_log log;
    char cwd[900], dir[1100], entry[2048], blocker[1200], xdg[1200], home[1200];
    if (!getcwd(cwd, sizeof(cwd)))
        t_die("getcwd failed");
    snprintf(root, sizeof(root), "%s/opencl-cache-test.%ld", cwd, (long)getpid());
    snprintf(dir, sizeof(dir), "%s/moak", root);
    if (mkdir(root, 0700) != 0)
        t_die("mkdir %s: %s", root, strerror(errno));
    setenv("MOAK_CACHE_DIR", dir, 1);

    /* 1. cold: compile, store; 2. warm: load, no compile */
    run_once("first context", &log);
    expect(&log, "first context", "program compiled from source", 1);
    expect(&log, "first context", "program stored in the cache", 1);
    find_entry(dir, entry, sizeof(entry));
    t_check(entry[0] != '\0', "the first context left an entry in %s", dir);

    run_once("second context", &log);
    expect(&log, "second context", "program loaded from the cache", 1);
    expect(&log, "second context", "compiled from source", 0);

    /* 3. a flipped byte in the binary: checksum mismatch, compiled again, rewritten */
    if (entry[0]) {
        struct stat sb;
        stat(entry, &sb);
        overwrite(entry, (long)(sb.st_size / 2), "\x5a\xa5\x5a\xa5", 4);
        run_once("corrupt entry", &log);
        expect(&log, "corrupt entry", "corrupt", 1);
        expect(&log, "corrupt entry", "program compiled from source", 1);
        run_once("after corrupt entry", &log);
        expect(&log, "after corrupt entry", "program loaded from the cache", 1);

        /* 4. truncated entry */
        truncate_file(entry, 100);
        run_once("truncated entry", &log);
        expect(&log, "truncated entry", "program compiled from source", 1);
        run_once("after truncated entry", &log);
        expect(&log, "after truncated entry", "program loaded from the cache", 1);

        /* 5. an entry that is not a cache file at all */
        overwrite(entry, 0, "GARBAGE!", 8);
        run_once("foreign file", &log);
        expect(&log, "foreign file", "not a moak program cache file", 1);

        /* 6. a FIFO in the entry's place (issue 16, defect 4): a blocking
         * open would wait for a writer forever; the alarm turns that hang
         * into a failure.  The entry is skipped, the program compiled and
         * stored over it. */
        if (unlink(entry) != 0 || mkfifo(entry, 0600) != 0)
            t_die("cannot replace %s by a FIFO: %s", entry, strerror(errno));
        alarm(300);
        run_once("FIFO entry", &log);
        alarm(0);
        expect(&log, "FIFO entry", "not a regular file", 1);
        expect(&log, "FIFO entry", "program compiled from source", 1);
        struct stat fifo_sb;
        t_check(lstat(entry, &fifo_sb) == 0 && S_ISREG(fifo_sb.st_mode),
                "the store after the FIFO left a regular file at %s", entry);
    }

    /* 7. a cache directory that cannot be created: the op still succeeds */
    snprintf(blocker, sizeof(blocker), "%s/a-file", root);
    FILE *f = fopen(blocker, "w");
    if (!f)
        t_die("cannot create %s", blocker);
    fclose(f);
    char unusable[1300];
    snprintf(unusable, sizeof(unusable), "%s/cache", blocker);
    setenv("MOAK_CACHE_DIR", unusable, 1);
    run_once("unusable cache directory", &log);
    expect(&log, "unusable cache directory", "program not cached", 1);

    /* 8. XDG_CACHE_HOME/moak, then HOME/.cache/moak */
    unsetenv("MOAK_CACHE_DIR");
    snprintf(xdg, sizeof(xdg), "%s/xdg", root);
    setenv("XDG_CACHE_HOME", xdg, 1);
    run_once("XDG_CACHE_HOME", &log);
    char xdg_moak[1300];
    snprintf(xdg_moak, sizeof(xdg_moak), "%s/moak", xdg);
    find_entry(xdg_moak, entry, sizeof(entry));
    t_check(entry[0] != '\0', "without MOAK_CACHE_DIR the entry is in %s", xdg_moak);

    unsetenv("XDG_CACHE_HOME");
    snprintf(home, sizeof(home), "%s/home", root);
    mkdir(home, 0700);
    setenv("HOME", home, 1);
    run_once("HOME", &log);
    char home_moak[1300];
    snprintf(home_moak, sizeof(home_moak), "%s/.cache/moak", home);
    find_entry(home_moak, entry, sizeof(entry));
    t_check(entry[0] != '\0', "without MOAK_CACHE_DIR and XDG_CACHE_HOME the entry is in %s",
            home_moak);

    /* clean up what this test made */
    remove_dir(home_moak);
    snprintf(entry, sizeof(entry), "%s/.cache", home);
    rmdir(entry);
    rmdir(home);
    remove_dir(xdg_moak);
    rmdir(xdg);
    remove(blocker);
    remove_dir(dir);
    rmdir(root);
    return t_finish();
}
