/* lc-statcache.so: answer a job's repeated stat() of read-only files from memory
 * [JOB-STATCACHE.1].
 *
 * Why: an interpreter's start is mostly stat(): `import torch` with its optimizer asks the
 * kernel about 27,000 times about 3,100 paths (os.path.realpath walks every directory of
 * every module it resolves). Under gVisor (systrap) each costs 20-40 us against 2-5 us
 * under runc, which made that start a second slower in the sandbox than on the host.
 *
 * What: stat(), lstat() and fstatat() of a clean absolute path (no ".", "..", "//" or
 * trailing "/") whose every directory lies on a read-only mount, reached without a
 * symbolic link, is answered from the first answer the kernel gave for it: its metadata,
 * or ENOENT/ENOTDIR. The runner writes none of its read-only mounts while a job runs (the
 * image's layers, the data blobs, the launcher's folder), and the job cannot remount them,
 * so no answer can go stale. stat() of a path that is itself a symbolic link, any path on
 * a writable mount (/tmp, /output, /checkpoint, /proc, /dev, ...), a relative path, and
 * every other call go straight to the kernel, as does everything if /proc/self/mountinfo
 * cannot be read. The lookup is lock-free; filling the table takes a lock that a fork()
 * or a signal handler cannot deadlock (preload_sys.h).
 */
#include <asm/stat.h>   /* the kernel's struct stat; not <sys/stat.h>, whose prototypes */
#include <linux/fcntl.h> /* mark the path nonnull, which would let the compiler drop checks */
#include <linux/stat.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include "preload_sys.h"

#ifndef AT_NO_AUTOMOUNT
#define AT_NO_AUTOMOUNT 0x800
#endif

#if defined(__x86_64__) || defined(__aarch64__)
/* Here the C library's struct stat is the kernel's (glibc and musl alike): the raw
 * newfstatat() answer can be handed to the program as it is. */

#define MAX_PATH 1024u
#define SLOTS 16384u /* a power of two; the table holds at most SLOTS / 2 paths */
#define ARENA_BYTES (4u << 20)
#define MAX_MOUNTS 128u
#define MOUNTINFO_BYTES (64u << 10)

struct entry {
    struct stat st; /* the lstat() answer when err == 0 */
    uint64_t hash;
    uint32_t len;
    int32_t err;    /* 0, ENOENT or ENOTDIR */
    char path[];    /* len bytes and a NUL */
};

struct mount {
    uint32_t at;    /* offset of the mount point in mount_names */
    uint32_t len;
    int cacheable;  /* mounted read-only, and not a kernel file system (proc, sysfs, ...) */
};

enum { UNREAD = 0, READY = 1, OFF = 2 };

static int state; /* UNREAD until the first call reads the mount table */
static int lock_tid;
static uint32_t slots[SLOTS]; /* arena offset + 1 of each entry; 0 is empty */
static uint32_t filled;
static char *arena;
static uint32_t arena_used;
static struct mount mounts[MAX_MOUNTS];
static uint32_t mount_count;
static char mount_names[8192];
static uint32_t names_used;

/* What tests read through ctypes: answers from memory, answers from the kernel. */
unsigned long lc_statcache_hits;
unsigned long lc_statcache_misses;

static uint64_t hash_of(const char *p, size_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static int same(const char *a, const char *b, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static size_t length(const char *p) {
    size_t n = 0;
    while (p[n] != '\0' && n <= MAX_PATH)
        n++;
    return n;
}

static void copy(char *to, const char *from, size_t len) {
    for (size_t i = 0; i < len; i++)
        to[i] = from[i];
}

/* A path the kernel resolves exactly as its text reads, one component after another. */
static int clean(const char *p, size_t len) {
    if (len == 0 || len >= MAX_PATH || p[0] != '/')
        return 0;
    if (len == 1)
        return 1;
    if (p[len - 1] == '/')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '/')
            continue;
        size_t next = i + 1;
        if (next < len && p[next] == '/')
            return 0;
        if (next < len && p[next] == '.' &&
            (next + 1 == len || p[next + 1] == '/' ||
             (p[next + 1] == '.' && (next + 2 == len || p[next + 2] == '/'))))
            return 0;
    }
    return 1;
}

/* -- the mount table ------------------------------------------------------------------ */

static int kernel_fs(const char *type, size_t len) {
    static const char *const kinds[] = {"proc",   "sysfs",  "cgroup",    "cgroup2",
                                        "devpts", "mqueue", "debugfs",   "tracefs",
                                        "bpf",    "fusectl", "securityfs", "configfs"};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
        if (length(kinds[k]) == len && same(kinds[k], type, len))
            return 1;
    return 0;
}

static int has_option(const char *opts, size_t len, const char *want, size_t want_len) {
    for (size_t i = 0; i + want_len <= len; i++)
        if ((i == 0 || opts[i - 1] == ',') && same(opts + i, want, want_len) &&
            (i + want_len == len || opts[i + want_len] == ','))
            return 1;
    return 0;
}

/* Field `n` (0-based, space-separated) of a mountinfo line; 0 when it has fewer. */
static int field(const char *line, size_t len, unsigned n, size_t *at, size_t *flen) {
    size_t i = 0;
    for (unsigned k = 0;; k++) {
        size_t start = i;
        while (i < len && line[i] != ' ')
            i++;
        if (k == n) {
            *at = start;
            *flen = i - start;
            return 1;
        }
        if (i >= len)
            return 0;
        i++;
    }
}

/* One line of /proc/self/mountinfo: "id parent dev root point options [tags] - type src
 * superoptions". The mount point's octal escapes (\040 for a space) are decoded. */
static int add_mount(const char *line, size_t len) {
    size_t p, plen, o, olen, dash = 0, t, tlen, s, slen;
    if (!field(line, len, 4, &p, &plen) || !field(line, len, 5, &o, &olen))
        return 0;
    for (size_t i = o + olen; i + 2 < len; i++)
        if (line[i] == ' ' && line[i + 1] == '-' && line[i + 2] == ' ') {
            dash = i + 3;
            break;
        }
    if (dash == 0 || !field(line + dash, len - dash, 0, &t, &tlen) ||
        !field(line + dash, len - dash, 2, &s, &slen))
        return 0;
    if (mount_count == MAX_MOUNTS || names_used + plen + 1 > sizeof mount_names)
        return 0;
    struct mount *m = &mounts[mount_count++];
    m->at = names_used;
    for (size_t i = p; i < p + plen; i++) {
        char c = line[i];
        if (c == '\\') {
            if (i + 3 >= p + plen)
                return 0;
            c = (char)((line[i + 1] - '0') * 64 + (line[i + 2] - '0') * 8 + (line[i + 3] - '0'));
            i += 3;
        }
        mount_names[names_used++] = c;
    }
    m->len = names_used - m->at;
    m->cacheable = (has_option(line + o, olen, "ro", 2) ||
                    has_option(line + dash + s, slen, "ro", 2)) &&
                   !kernel_fs(line + dash + t, tlen);
    return 1;
}

static int read_mounts(void) {
    long fd = sys6(SYS_openat, AT_FDCWD, (long)"/proc/self/mountinfo", O_RDONLY | O_CLOEXEC,
                   0, 0, 0);
    if (fd < 0)
        return 0;
    char *buf = (char *)sys6(SYS_mmap, 0, MOUNTINFO_BYTES, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int ok = (long)buf > 0 || (long)buf < -4095;
    size_t used = 0;
    while (ok) {
        long n = sys6(SYS_read, fd, (long)(buf + used), MOUNTINFO_BYTES - used, 0, 0, 0);
        if (n == -EINTR)
            continue;
        if (n < 0 || (used += (size_t)n) == MOUNTINFO_BYTES)
            ok = 0; /* unreadable, or too large to be sure of the whole table */
        else if (n == 0)
            break;
    }
    sys6(SYS_close, fd, 0, 0, 0, 0, 0);
    for (size_t start = 0, i = 0; ok && i < used; i++)
        if (buf[i] == '\n') {
            ok = add_mount(buf + start, i - start);
            start = i + 1;
        }
    if ((long)buf > 0 || (long)buf < -4095)
        sys6(SYS_munmap, (long)buf, MOUNTINFO_BYTES, 0, 0, 0, 0);
    return ok && mount_count > 0;
}

/* Whether the mount that holds `p` (the last listed of those with the longest mount point
 * that is `p` or one of its directories: the one on top) is read-only. */
static int on_cacheable_mount(const char *p, size_t len) {
    int best = -1;
    uint32_t best_len = 0;
    for (uint32_t k = 0; k < mount_count; k++) {
        const char *name = mount_names + mounts[k].at;
        uint32_t n = mounts[k].len;
        int covers = (n == 1 && name[0] == '/') ||
                     (n <= len && same(name, p, n) && (n == len || p[n] == '/'));
        if (covers && n >= best_len) {
            best = (int)k;
            best_len = n;
        }
    }
    return best >= 0 && mounts[best].cacheable;
}

static int ready(void) {
    int now = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (now != UNREAD)
        return now == READY;
    if (tid_lock(&lock_tid) == LOCK_BUSY_SELF)
        return 0;
    if (__atomic_load_n(&state, __ATOMIC_RELAXED) == UNREAD) {
        long at = sys6(SYS_mmap, 0, ARENA_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        int ok = !(at < 0 && at > -4096) && read_mounts();
        if (!(at < 0 && at > -4096))
            arena = (char *)at;
        __atomic_store_n(&state, ok ? READY : OFF, __ATOMIC_RELEASE);
    }
    tid_unlock(&lock_tid);
    return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == READY;
}

/* -- the table: entries are added, never changed or removed ----------------------------- */

static const struct entry *find(const char *p, size_t len, uint64_t h) {
    for (uint32_t i = (uint32_t)h & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        uint32_t slot = __atomic_load_n(&slots[i], __ATOMIC_ACQUIRE);
        if (slot == 0)
            return NULL;
        const struct entry *e = (const struct entry *)(arena + slot - 1);
        if (e->hash == h && e->len == len && same(e->path, p, len))
            return e;
    }
}

static void add(const char *p, size_t len, uint64_t h, const struct stat *st, int err) {
    enum lock_result got = tid_lock(&lock_tid);
    if (got == LOCK_BUSY_SELF)
        return;
    size_t size = (offsetof(struct entry, path) + len + 1 + 7) & ~(size_t)7;
    if (find(p, len, h) == NULL && filled < SLOTS / 2 && arena_used + size <= ARENA_BYTES) {
        struct entry *e = (struct entry *)(arena + arena_used);
        if (err == 0)
            e->st = *st;
        e->hash = h;
        e->len = (uint32_t)len;
        e->err = err;
        copy(e->path, p, len);
        e->path[len] = '\0';
        uint32_t at = arena_used, i = (uint32_t)h & (SLOTS - 1);
        /* before publishing: a fork() in between only wastes the space */
        __atomic_store_n(&arena_used, at + (uint32_t)size, __ATOMIC_RELAXED);
        __atomic_store_n(&filled, filled + 1, __ATOMIC_RELAXED);
        while (slots[i] != 0)
            i = (i + 1) & (SLOTS - 1);
        __atomic_store_n(&slots[i], at + 1, __ATOMIC_RELEASE);
    }
    tid_unlock(&lock_tid);
}

/* No room for another entry of the longest path (read without the lock: a stale answer
 * only sends one more call to the kernel, and add() checks again under it). */
static int full(void) {
    return __atomic_load_n(&filled, __ATOMIC_RELAXED) >= SLOTS / 2 ||
           __atomic_load_n(&arena_used, __ATOMIC_RELAXED) + sizeof(struct entry) + MAX_PATH + 8 >
               ARENA_BYTES;
}

static long kernel_stat(int dirfd, const char *p, struct stat *st, int flags) {
    return sys6(SYS_newfstatat, dirfd, (long)p, (long)st, flags, 0, 0);
}

static const struct entry *lookup(const char *p, size_t len);

static int is_dir(const struct entry *e) {
    return e != NULL && e->err == 0 && S_ISDIR(e->st.st_mode);
}

/* The cached lstat() answer for the first `len` bytes of the clean path `p`, asking the
 * kernel and keeping its answer if it may be kept: `p`'s mount is read-only and each of its
 * directories is a cached directory (checked from "/" down). NULL: not cacheable. */
static const struct entry *lookup(const char *p, size_t len) {
    uint64_t h = hash_of(p, len);
    const struct entry *e = find(p, len, h);
    if (e != NULL)
        return e;
    if (full() || !on_cacheable_mount(p, len) || (len > 1 && !is_dir(lookup(p, 1))))
        return NULL; /* full: a new path costs one call to the kernel, not two */
    for (size_t i = 1; i < len; i++)
        if (p[i] == '/') {
            if (!is_dir(lookup(p, i)))
                return NULL;
        }
    char text[MAX_PATH];
    copy(text, p, len);
    text[len] = '\0';
    struct stat st;
    long r = kernel_stat(AT_FDCWD, text, &st, AT_SYMLINK_NOFOLLOW);
    __atomic_add_fetch(&lc_statcache_misses, 1, __ATOMIC_RELAXED);
    if (r == 0 || r == -ENOENT || r == -ENOTDIR)
        add(p, len, h, &st, r == 0 ? 0 : (int)-r);
    return find(p, len, h);
}

static int answer(int dirfd, const char *p, struct stat *st, int flags) {
    size_t len = p == NULL ? 0 : length(p);
    int follow = !(flags & AT_SYMLINK_NOFOLLOW);
    if ((flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT)) == 0 && clean(p, len) && ready()) {
        const struct entry *e = find(p, len, hash_of(p, len));
        int known = e != NULL;
        if (!known)
            e = lookup(p, len);
        if (e != NULL && !(follow && e->err == 0 && S_ISLNK(e->st.st_mode))) {
            if (known)
                __atomic_add_fetch(&lc_statcache_hits, 1, __ATOMIC_RELAXED);
            if (e->err != 0)
                return (int)finish(-e->err);
            *st = e->st;
            return 0;
        }
    }
    return (int)finish(kernel_stat(dirfd, p, st, flags));
}

int fstatat(int dirfd, const char *p, struct stat *st, int flags) {
    return answer(dirfd, p, st, flags);
}
int stat(const char *p, struct stat *st) { return answer(AT_FDCWD, p, st, 0); }
int lstat(const char *p, struct stat *st) {
    return answer(AT_FDCWD, p, st, AT_SYMLINK_NOFOLLOW);
}

int fstatat64(int dirfd, const char *p, struct stat *st, int flags) {
    return answer(dirfd, p, st, flags);
}
int stat64(const char *p, struct stat *st) { return answer(AT_FDCWD, p, st, 0); }
int lstat64(const char *p, struct stat *st) {
    return answer(AT_FDCWD, p, st, AT_SYMLINK_NOFOLLOW);
}

#endif
