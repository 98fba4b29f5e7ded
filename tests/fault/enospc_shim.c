// A full disk on demand, for fault-injection tests (tests/reference/test_faults.py): loaded with LD_PRELOAD, it lets
// writes to files under $FAULT_DIR through until $FAULT_ENOSPC_AFTER bytes have been written there in all, then
// writes the rest of that call short and fails every later one with ENOSPC, as a file system that fills up does.
// With FAULT_READONLY=1 it instead refuses, with EROFS, to create or open for writing any file under $FAULT_DIR and to
// make or rename anything there: a read-only directory, even for root. Without FAULT_DIR it does nothing. It is test
// code: not linked into llmforge.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long long g_left = -1;  // bytes the "disk" still takes; -1: not set up yet
static const char* g_dir = NULL;
static size_t g_dir_len = 0;

static void setup(void) {
    if (g_left != -1) return;
    g_dir = getenv("FAULT_DIR");
    const char* n = getenv("FAULT_ENOSPC_AFTER");
    g_dir_len = g_dir ? strlen(g_dir) : 0;
    g_left = n ? atoll(n) : LLONG_MAX;
}

// Is fd a file under FAULT_DIR?
static int watched(int fd) {
    setup();
    if (!g_dir || g_dir_len == 0) return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, path, sizeof path - 1);
    if (k <= 0) return 0;
    path[k] = 0;
    return strncmp(path, g_dir, g_dir_len) == 0;
}

// How much of n bytes may go through: all, part (the disk fills), or none (errno ENOSPC, returns -1).
static ssize_t allow(int fd, size_t n) {
    if (!watched(fd)) return (ssize_t)n;
    if (g_left <= 0) {
        errno = ENOSPC;
        return -1;
    }
    size_t k = (long long)n > g_left ? (size_t)g_left : n;
    g_left -= (long long)k;
    return (ssize_t)k;
}

ssize_t write(int fd, const void* buf, size_t n) {
    static ssize_t (*real)(int, const void*, size_t);
    if (!real) real = (ssize_t(*)(int, const void*, size_t))dlsym(RTLD_NEXT, "write");
    ssize_t k = allow(fd, n);
    if (k < 0) return -1;
    return real(fd, buf, (size_t)k);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
    static ssize_t (*real)(int, const void*, size_t, off_t);
    if (!real) real = (ssize_t(*)(int, const void*, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    ssize_t k = allow(fd, n);
    if (k < 0) return -1;
    return real(fd, buf, (size_t)k, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) { return pwrite(fd, buf, n, off); }

ssize_t writev(int fd, const struct iovec* iov, int cnt) {
    static ssize_t (*real)(int, const struct iovec*, int);
    if (!real) real = (ssize_t(*)(int, const struct iovec*, int))dlsym(RTLD_NEXT, "writev");
    size_t n = 0;
    for (int i = 0; i < cnt; ++i) n += iov[i].iov_len;
    ssize_t k = allow(fd, n);
    if (k < 0) return -1;
    if ((size_t)k == n) return real(fd, iov, cnt);
    // a short write: only the first k bytes
    ssize_t done = 0;
    for (int i = 0; i < cnt && (size_t)done < (size_t)k; ++i) {
        size_t m = iov[i].iov_len;
        if ((size_t)(k - done) < m) m = (size_t)(k - done);
        static ssize_t (*rw)(int, const void*, size_t);
        if (!rw) rw = (ssize_t(*)(int, const void*, size_t))dlsym(RTLD_NEXT, "write");
        ssize_t w = rw(fd, iov[i].iov_base, m);
        if (w < 0) return done ? done : -1;
        done += w;
    }
    return done;
}

// ---- read-only mode
static int readonly_path(const char* path) {
    setup();
    if (!g_dir || !getenv("FAULT_READONLY")) return 0;
    char full[2 * PATH_MAX + 2];
    if (path[0] == '/') snprintf(full, sizeof full, "%s", path);
    else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return 0;
        snprintf(full, sizeof full, "%s/%s", cwd, path);
    }
    return strncmp(full, g_dir, g_dir_len) == 0;
}

// The mode argument an open() with O_CREAT carries (read in the variadic function itself).
#define MODE_ARG(flags)                              \
    mode_t mode = 0;                                 \
    if ((flags) & O_CREAT) {                         \
        va_list ap;                                  \
        va_start(ap, flags);                         \
        mode = (mode_t)va_arg(ap, int);              \
        va_end(ap);                                  \
    }

static int writes(int flags) { return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0; }

int open(const char* path, int flags, ...) {
    static int (*real)(const char*, int, ...);
    if (!real) real = (int (*)(const char*, int, ...))dlsym(RTLD_NEXT, "open");
    MODE_ARG(flags);
    if (writes(flags) && readonly_path(path)) {
        errno = EROFS;
        return -1;
    }
    return real(path, flags, mode);
}

int open64(const char* path, int flags, ...) {
    MODE_ARG(flags);
    return open(path, flags, mode);
}

int openat(int dirfd, const char* path, int flags, ...) {
    static int (*real)(int, const char*, int, ...);
    if (!real) real = (int (*)(int, const char*, int, ...))dlsym(RTLD_NEXT, "openat");
    MODE_ARG(flags);
    if (writes(flags) && (dirfd == AT_FDCWD || path[0] == '/') && readonly_path(path)) {
        errno = EROFS;
        return -1;
    }
    return real(dirfd, path, flags, mode);
}

int mkdir(const char* path, mode_t mode) {
    static int (*real)(const char*, mode_t);
    if (!real) real = (int (*)(const char*, mode_t))dlsym(RTLD_NEXT, "mkdir");
    if (readonly_path(path)) {
        errno = EROFS;
        return -1;
    }
    return real(path, mode);
}

int rename(const char* from, const char* to) {
    static int (*real)(const char*, const char*);
    if (!real) real = (int (*)(const char*, const char*))dlsym(RTLD_NEXT, "rename");
    if (readonly_path(from) || readonly_path(to)) {
        errno = EROFS;
        return -1;
    }
    return real(from, to);
}
