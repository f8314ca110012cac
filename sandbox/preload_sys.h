/* What the preloaded libraries of every entry point share [JOB-MAPCACHE.1] [JOB-STATCACHE.1]:
 * system calls made without the C library (they are built with -nostdlib and must load into
 * any dynamically linked program, whatever its libc), errno through the one symbol every libc
 * has, and a lock that survives fork() and signal handlers. */
#ifndef LC_PRELOAD_SYS_H
#define LC_PRELOAD_SYS_H

#include <errno.h>
#include <sys/syscall.h>

extern int *__errno_location(void);

#if defined(__x86_64__)
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}
#else
extern long syscall(long, ...);
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    long r = syscall(n, a, b, c, d, e, f);
    return r == -1 ? -(long)*__errno_location() : r;
}
#endif

/* A raw call's result as the C library returns it: -1 with errno set on failure. */
static long finish(long r) {
    if (r < 0 && r > -4096) {
        *__errno_location() = (int)-r;
        return -1;
    }
    return r;
}

#define LOCK_SPINS_BEFORE_CHECK 4096

enum lock_result { LOCK_BUSY_SELF = 0, LOCK_TAKEN = 1, LOCK_TAKEN_OVER = 2 };

/* Take the lock word (the holder's thread id, 0 when free). LOCK_BUSY_SELF: this very thread
 * holds it (a signal handler interrupted it), so the caller must not touch its tables.
 * LOCK_TAKEN_OVER: the holder is not a thread of this process (fork() copied the word while
 * another thread held it), so the tables may be half-changed: the caller repairs them. */
static enum lock_result tid_lock(int *word) {
    int me = (int)sys6(SYS_gettid, 0, 0, 0, 0, 0, 0);
    for (unsigned spins = 1;; spins++) {
        int holder = 0;
        if (__atomic_compare_exchange_n(word, &holder, me, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return LOCK_TAKEN;
        if (holder == me)
            return LOCK_BUSY_SELF;
        if (spins % 64 == 0)
            sys6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
        if (spins % LOCK_SPINS_BEFORE_CHECK == 0) {
            long pid = sys6(SYS_getpid, 0, 0, 0, 0, 0, 0);
            if (sys6(SYS_tgkill, pid, holder, 0, 0, 0, 0) == -ESRCH &&
                __atomic_compare_exchange_n(word, &holder, me, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED))
                return LOCK_TAKEN_OVER;
        }
    }
}

static void tid_unlock(int *word) { __atomic_store_n(word, 0, __ATOMIC_RELEASE); }

#endif
