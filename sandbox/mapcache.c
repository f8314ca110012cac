/* lc-mapcache.so: keep a job's small anonymous mappings for reuse [JOB-MAPCACHE.1].
 *
 * Why: CPython 3.11 allocates its frame stack in 16 KiB chunks and its object arenas in
 * 1 MiB blocks straight from mmap(2), and returns each with munmap(2) as soon as it is
 * empty, so a call depth that moves back and forth across a chunk's edge maps and unmaps
 * the same 16 KiB again and again. Under gVisor (systrap) a munmap costs 200-330 us
 * against 5-12 us under runc: it is most of what a job pays for the sandbox.
 *
 * What: a private, read-write, anonymous mapping of at most MAX_LEN bytes that the
 * process made through mmap() and later gives back whole through munmap() is kept
 * (at most MAX_KEPT regions, MAX_KEPT_BYTES in all) and handed out again, zeroed, for
 * the next such mmap() of the same length. Everything else goes straight to the kernel.
 * A mapping whose protection, advice or size changed in between, or that was unmapped in
 * part, is forgotten and never kept. The runner preloads it (LD_PRELOAD) into every entry
 * point; it is built on each machine beside lc-launch (sandbox/launcher.py) and links
 * against nothing but the C library's errno, so it loads into any dynamically linked
 * program, whatever its libc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include "preload_sys.h"

#define PAGE 4096u
#define MAX_LEN (1u << 20)
#define MAX_KEPT 16
#define MAX_KEPT_BYTES (4u << 20)
#define TRACKED 512

struct region {
    uintptr_t addr;
    size_t len;
};

static struct region live[TRACKED]; /* our mappings in use: addr 0 is a free slot */
static unsigned live_next;
static struct region kept[MAX_KEPT]; /* given back, still mapped, newest last */
static unsigned kept_count;
static size_t kept_bytes;
static int lock_tid; /* the thread in the tables, 0 when none */

static size_t pages(size_t len) { return (len + PAGE - 1) & ~(size_t)(PAGE - 1); }

static int overlaps(const struct region *r, uintptr_t addr, size_t len) {
    return r->addr != 0 && r->addr < addr + len && addr < r->addr + r->len;
}

/* Tables are changed under lock_tid. A thread that finds the lock held by a thread that
 * is not in its process (a fork copied the lock while another thread held it) takes the
 * lock over and forgets everything (kept regions stay mapped; nothing is reused). The
 * same thread again (a signal handler) gets 0: it must not touch the tables. */
static void forget_all(void) {
    for (unsigned i = 0; i < TRACKED; i++)
        live[i].addr = 0;
    kept_count = 0;
    kept_bytes = 0;
}

static int lock(void) {
    enum lock_result got = tid_lock(&lock_tid);
    if (got == LOCK_TAKEN_OVER)
        forget_all();
    return got != LOCK_BUSY_SELF;
}

static void unlock(void) { tid_unlock(&lock_tid); }

/* Forget every tracked mapping that [addr, addr + len) touches; a kept one there was
 * unmapped or replaced by the program (it gave it back earlier), so it is dropped too. */
static void forget_range(uintptr_t addr, size_t len) {
    for (unsigned i = 0; i < TRACKED; i++)
        if (overlaps(&live[i], addr, len))
            live[i].addr = 0;
    for (unsigned i = 0; i < kept_count;)
        if (overlaps(&kept[i], addr, len)) {
            kept_bytes -= kept[i].len;
            kept[i] = kept[--kept_count];
        } else {
            i++;
        }
}

static void track(uintptr_t addr, size_t len) {
    live[live_next] = (struct region){addr, len}; /* overwriting one only forgets it */
    live_next = (live_next + 1) % TRACKED;
}

static void zero(void *p, size_t len) {
    volatile uint64_t *w = p;
    for (size_t i = 0; i < len / sizeof(uint64_t); i++)
        w[i] = 0;
}

static int cacheable(const void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return addr == NULL && len > 0 && len <= MAX_LEN && prot == (PROT_READ | PROT_WRITE) &&
           flags == (MAP_PRIVATE | MAP_ANONYMOUS) && fd == -1 && off == 0;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    int small = cacheable(addr, len, prot, flags, fd, off);
    size_t size = pages(len);
    if (small && lock()) {
        for (unsigned i = kept_count; i-- > 0;)
            if (kept[i].len == size) {
                uintptr_t reused = kept[i].addr;
                kept_bytes -= size;
                kept[i] = kept[--kept_count];
                track(reused, size);
                unlock();
                zero((void *)reused, size);
                return (void *)reused;
            }
        unlock();
    }
    if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) && lock()) {
        /* the program places a mapping where it believes nothing is: drop ours there */
        for (unsigned i = 0; i < kept_count; i++)
            if (overlaps(&kept[i], (uintptr_t)addr, size))
                sys6(SYS_munmap, (long)kept[i].addr, (long)kept[i].len, 0, 0, 0, 0);
        forget_range((uintptr_t)addr, size);
        unlock();
    }
    long r = sys6(SYS_mmap, (long)addr, (long)len, prot, flags, fd, (long)off);
    if (r < 0 && r > -4096)
        return (void *)finish(r);
    if (lock()) {
        forget_range((uintptr_t)r, size); /* stale entries of a region unmapped elsewhere */
        if (small)
            track((uintptr_t)r, size);
        unlock();
    }
    return (void *)r;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __attribute__((alias("mmap")));

int munmap(void *addr, size_t len) {
    uintptr_t at = (uintptr_t)addr;
    size_t size = pages(len);
    if (lock()) {
        for (unsigned i = 0; i < TRACKED; i++)
            if (live[i].addr == at && live[i].len == size) {
                live[i].addr = 0;
                if (kept_count < MAX_KEPT && kept_bytes + size <= MAX_KEPT_BYTES) {
                    kept[kept_count++] = (struct region){at, size};
                    kept_bytes += size;
                    unlock();
                    return 0;
                }
                break;
            }
        forget_range(at, size);
        unlock();
    }
    return (int)finish(sys6(SYS_munmap, (long)addr, (long)len, 0, 0, 0, 0));
}

static void forget(const void *addr, size_t len) {
    if (lock()) {
        forget_range((uintptr_t)addr, pages(len));
        unlock();
    }
}

int mprotect(void *addr, size_t len, int prot) {
    forget(addr, len);
    return (int)finish(sys6(SYS_mprotect, (long)addr, (long)len, prot, 0, 0, 0));
}

int madvise(void *addr, size_t len, int advice) {
    if (advice != MADV_NORMAL && advice != MADV_RANDOM && advice != MADV_SEQUENTIAL &&
        advice != MADV_WILLNEED && advice != MADV_DONTNEED)
        forget(addr, len);
    return (int)finish(sys6(SYS_madvise, (long)addr, (long)len, advice, 0, 0, 0));
}

void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...) {
    void *target = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        target = va_arg(ap, void *);
        va_end(ap);
    }
    forget(old, old_len);
    if (target != NULL)
        forget(target, new_len);
    long r = sys6(SYS_mremap, (long)old, (long)old_len, (long)new_len, flags, (long)target, 0);
    if (!(r < 0 && r > -4096))
        forget((void *)r, new_len);
    return (void *)finish(r);
}
