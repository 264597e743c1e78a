/*
 * clockshift: one process's wall clock stepped, for the soak's "edge clock stepped" fault
 * (support/lab_soak.py, docs/soak.md).
 *
 * Lab hosts share the machine's kernel clock, and CLOCK_REALTIME has no namespace, so a step
 * of one host's clock cannot be made in the kernel. Preloaded into the edge agent
 * (LD_PRELOAD), this adds an offset to CLOCK_REALTIME and its coarse variant, gettimeofday()
 * and time(), and to nothing else: the monotonic and boot clocks run on, as they do when
 * chrony or a person steps a real clock. The offset (signed nanoseconds, one decimal number)
 * is read from the file named by CLOCKSHIFT_FILE, at most every 200 ms of monotonic time;
 * a missing or unreadable file is offset 0.
 *
 * Debian 12's libfaketime was tried first: with its monotonic clock left alone, Python 3.11's
 * time.sleep() fails with EINVAL (libfaketime issue #426), and otherwise the monotonic clock
 * jumps with the wall clock, which a real step never does.
 *
 * Build: cc -O2 -shared -fPIC -o clockshift.so clockshift.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static const char *offset_file;
static _Atomic long long offset_ns;
static _Atomic long long checked_at_ns = -1;

#define NS 1000000000LL
#define RECHECK_NS 200000000LL

__attribute__((constructor)) static void clockshift_init(void)
{
    real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    offset_file = getenv("CLOCKSHIFT_FILE");
}

static long long read_offset(void)
{
    char buf[32];
    ssize_t n;
    int fd;

    if (offset_file == NULL)
        return 0;
    fd = open(offset_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtoll(buf, NULL, 10);
}

static long long current_offset(void)
{
    struct timespec now;
    long long at, last;

    if (real_clock_gettime(CLOCK_MONOTONIC_COARSE, &now) != 0)
        return atomic_load(&offset_ns);
    at = now.tv_sec * NS + now.tv_nsec;
    last = atomic_load(&checked_at_ns);
    if (last < 0 || at - last >= RECHECK_NS) {
        atomic_store(&checked_at_ns, at);
        atomic_store(&offset_ns, read_offset());
    }
    return atomic_load(&offset_ns);
}

static void shift(struct timespec *ts, long long by)
{
    long long total = ts->tv_sec * NS + ts->tv_nsec + by;

    ts->tv_sec = (time_t)(total / NS);
    ts->tv_nsec = (long)(total % NS);
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += NS;
        ts->tv_sec -= 1;
    }
}

int clock_gettime(clockid_t clock, struct timespec *ts)
{
    int rc;

    if (real_clock_gettime == NULL)
        real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    rc = real_clock_gettime(clock, ts);
    if (rc == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
        shift(ts, current_offset());
    return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    struct timespec ts;

    (void)tz;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return -1;
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (time_t)-1;
    if (out != NULL)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
