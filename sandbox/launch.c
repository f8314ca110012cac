/* lc-launch: start a job's entry point under the job seccomp profile [JOB-SECCOMP.5].
 *
 * Usage (inside a job container, as the job's user): lc-launch FILTER ARGV...
 * FILTER is a classic BPF program (struct sock_filter records, sandbox/seccomp_bpf.py).
 * Sets no_new_privs, installs the program with seccomp(2) and execs ARGV: the entry point
 * and everything it starts run under the profile, under runc (stacked on the runtime's
 * identical filter) and under gVisor, whose runsc gives a `docker exec` no filter.
 * Statically linked: it runs in any job image, whatever libc the image has or lacks.
 * Exit 125 when it cannot install the filter; the job never runs without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_INSNS 4096

static struct sock_filter program[MAX_INSNS + 1];

static int fail(const char *what, const char *arg) {
    fprintf(stderr, "lc-launch: %s %s: %s\n", what, arg, strerror(errno));
    return 125;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fputs("lc-launch: usage: lc-launch FILTER ARGV...\n", stderr);
        return 125;
    }
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail("cannot open filter", argv[1]);
    size_t total = 0;
    ssize_t n;
    while ((n = read(fd, (char *)program + total, sizeof(program) - total)) > 0)
        total += (size_t)n;
    close(fd);
    if (n < 0)
        return fail("cannot read filter", argv[1]);
    if (total == 0 || total % sizeof(struct sock_filter) != 0 ||
        total > MAX_INSNS * sizeof(struct sock_filter)) {
        errno = EINVAL;
        return fail("not a BPF program:", argv[1]);
    }
    struct sock_fprog prog = {(unsigned short)(total / sizeof(struct sock_filter)), program};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fail("prctl", "PR_SET_NO_NEW_PRIVS");
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        return fail("seccomp", "SECCOMP_SET_MODE_FILTER");
    execvp(argv[2], argv + 2);
    fprintf(stderr, "lc-launch: cannot run %s: %s\n", argv[2], strerror(errno));
    return 127;
}
