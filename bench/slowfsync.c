/* LD_PRELOAD shim for bench/run.sh (BENCH_FSYNC_DELAY_US): every fsync and
 * fdatasync waits FSYNC_DELAY_US microseconds (default 5000) after the real
 * call, to see how the server and its durable-commit limit behave on slow
 * storage such as an SD card, on a machine whose disk flushes fast.
 *   cc -O2 -shared -fPIC -o slowfsync.so bench/slowfsync.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static long delay_us = -1;
static void slow(void) {
  if (delay_us < 0) { const char *e = getenv("FSYNC_DELAY_US"); delay_us = e ? atol(e) : 5000; }
  struct timespec ts = { delay_us / 1000000, (delay_us % 1000000) * 1000 };
  nanosleep(&ts, NULL);
}
int fsync(int fd) { static int (*real)(int); if (!real) real = dlsym(RTLD_NEXT, "fsync"); int r = real(fd); slow(); return r; }
int fdatasync(int fd) { static int (*real)(int); if (!real) real = dlsym(RTLD_NEXT, "fdatasync"); int r = real(fd); slow(); return r; }
