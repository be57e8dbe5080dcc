/*
 * The on-disk cache of compiled OpenCL programs, so that a second process
 * (or context) does not compile the kernels again.
 *
 * Directory: MOAK_CACHE_DIR, else $XDG_CACHE_HOME/moak, else
 * $HOME/.cache/moak (created 0700 on first store).  One file per key:
 * opencl-<16 hex digits of the key's hash>.bin, holding
 *
 *   "MOAKCLB1"                    magic and file version
 *   uint32 key length, key bytes  the whole key, compared on load (no
 *                                 trust in the hash alone)
 *   uint64 binary size, binary    what clGetProgramInfo(CL_PROGRAM_BINARIES) gave
 *   uint64 hash of the binary     catches truncation and bit rot
 *
 * in host byte order (a cache is never shared between machines).  The key
 * names the device, platform and driver versions, the build options and a
 * hash of the kernel sources.  Files are written to a temporary name and
 * renamed, so a concurrent reader sees a whole file or none.  Nothing here
 * is fatal: the caller compiles from source whenever a load fails and
 * carries on when a store fails.
 */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup, getpid, mkdir */
#endif
#include "opencl_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static const char cache_magic[8] = {'M', 'O', 'A', 'K', 'C', 'L', 'B', '1'};

/* A cached binary larger than this is taken as corrupt. */
#define MAX_CACHED_BINARY ((uint64_t)1 << 30)

uint64_t ocl_hash64(uint64_t h, const void *data, size_t len)
{
    /* FNV-1a, 64 bits: a cache key, not a defence against an adversary */
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * UINT64_C(1099511628211);
    return h;
}

static char *join(const char *a, const char *b)
{
    const size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (s) {
        memcpy(s, a, la);
        s[la] = '/';
        memcpy(s + la + 1, b, lb + 1);
    }
    return s;
}

char *ocl_cache_dir(void)
{
    const char *dir = getenv("MOAK_CACHE_DIR");
    if (dir && *dir)
        return strdup(dir);
    dir = getenv("XDG_CACHE_HOME");
    if (dir && *dir == '/')
        return join(dir, "moak");
    dir = getenv("HOME");
    if (dir && *dir)
        return join(dir, ".cache/moak");
    return NULL;
}

/* mkdir -p, 0700 for what it creates. */
static bool make_dirs(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return false;
    bool ok = true;
    for (char *s = p + 1; ok; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        const char saved = *s;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            ok = false;
        *s = saved;
        if (saved == '\0')
            break;
    }
    free(p);
    struct stat sb;
    return ok && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool read_exact(FILE *f, void *buf, size_t n) { return fread(buf, 1, n, f) == n; }

bool ocl_cache_load(const char *path, const char *key, unsigned char **binary, size_t *size,
                    char *why, size_t why_len)
{
    *binary = NULL;
    *size = 0;
    /* Never block and never follow a link: a FIFO or device planted in the
     * cache directory would otherwise hang context creation in open() or
     * read().  Only a regular file is read; anything else is skipped (and
     * replaced by the next store's rename). */
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_len, "no entry (%s)", strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, why_len, "not a regular file");
        close(fd);
        return false;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        snprintf(why, why_len, "unreadable (%s)", strerror(errno));
        close(fd);
        return false;
    }
    const size_t key_len = strlen(key);
    char magic[8];
    uint32_t stored_key_len = 0;
    uint64_t bin_size = 0, stored_hash = 0;
    char *stored_key = NULL;
    unsigned char *bin = NULL;
    bool ok = false;
    if (!read_exact(f, magic, sizeof(magic)) || memcmp(magic, cache_magic, sizeof(magic)) != 0) {
        snprintf(why, why_len, "not a moak program cache file");
    } else if (!read_exact(f, &stored_key_len, sizeof(stored_key_len)) ||
               stored_key_len != key_len) {
        snprintf(why, why_len, "holds another key");
    } else if (!(stored_key = malloc(key_len + 1)) || !read_exact(f, stored_key, key_len) ||
               memcmp(stored_key, key, key_len) != 0) {
        snprintf(why, why_len, "holds another key");
    } else if (!read_exact(f, &bin_size, sizeof(bin_size)) || bin_size == 0 ||
               bin_size > MAX_CACHED_BINARY) {
        snprintf(why, why_len, "truncated or corrupt (binary size)");
    } else if (!(bin = malloc((size_t)bin_size)) || !read_exact(f, bin, (size_t)bin_size) ||
               !read_exact(f, &stored_hash, sizeof(stored_hash))) {
        snprintf(why, why_len, "truncated or unreadable");
    } else if (ocl_hash64(OCL_HASH_SEED, bin, (size_t)bin_size) != stored_hash) {
        snprintf(why, why_len, "corrupt (checksum mismatch)");
    } else {
        ok = true;
    }
    fclose(f);
    free(stored_key);
    if (!ok) {
        free(bin);
        return false;
    }
    *binary = bin;
    *size = (size_t)bin_size;
    return true;
}

bool ocl_cache_store(const char *dir, const char *path, const char *key,
                     const unsigned char *binary, size_t size, char *why, size_t why_len)
{
    if (!make_dirs(dir)) {
        snprintf(why, why_len, "cannot create the directory %s (%s)", dir, strerror(errno));
        return false;
    }
    const size_t path_len = strlen(path);
    char *tmp = malloc(path_len + 48);
    if (!tmp) {
        snprintf(why, why_len, "out of memory");
        return false;
    }
    /* unique per process and per call (two contexts of one process may store at once) */
    snprintf(tmp, path_len + 48, "%s.tmp.%ld.%lx", path, (long)getpid(),
             (unsigned long)(uintptr_t)binary);
    /* O_EXCL | O_NOFOLLOW: write only a file this call creates, never
     * through something already at the temporary name. */
    const int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f && fd >= 0)
        close(fd);
    if (!f) {
        snprintf(why, why_len, "cannot write %s (%s)", tmp, strerror(errno));
        free(tmp);
        return false;
    }
    const uint32_t key_len = (uint32_t)strlen(key);
    const uint64_t bin_size = size;
    const uint64_t hash = ocl_hash64(OCL_HASH_SEED, binary, size);
    bool ok = fwrite(cache_magic, 1, sizeof(cache_magic), f) == sizeof(cache_magic) &&
              fwrite(&key_len, 1, sizeof(key_len), f) == sizeof(key_len) &&
              fwrite(key, 1, key_len, f) == key_len &&
              fwrite(&bin_size, 1, sizeof(bin_size), f) == sizeof(bin_size) &&
              fwrite(binary, 1, size, f) == size &&
              fwrite(&hash, 1, sizeof(hash), f) == sizeof(hash);
    ok = (fclose(f) == 0) && ok;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok) {
        snprintf(why, why_len, "writing %s failed (%s)", path, strerror(errno));
        remove(tmp);
    }
    free(tmp);
    return ok;
}
