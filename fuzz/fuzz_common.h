/* Shared helpers for the fuzz targets: the input as a file (a scratch file
 * per process, in /dev/shm when there is one), and
 * silencing HDF5's and GDAL's error printing, as the library does itself.
 * Every target's LLVMFuzzerTestOneInput returns 0: the library's errors are
 * normal outcomes; only crashes, sanitizer reports and leaks are findings. */
#ifndef CMIR_FUZZ_COMMON_H
#define CMIR_FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Writes data to this process's scratch file (in /dev/shm when there is
 * one, so nothing touches the disk; removed at exit) and opens it: *fd
 * gets a descriptor (close it after use) and path (room for 64 bytes)
 * its name. 0 on success. A real path, not a memfd: HDF5 resolves the
 * file's real path on open, which fails for /proc/self/fd/N of a memfd. */
static char fuzz_scratch[64];
static void fuzz_scratch_remove(void)
{
    if (fuzz_scratch[0])
        unlink(fuzz_scratch);
}
static inline int fuzz_memfile(const uint8_t *data, size_t size, int *fd, char *path)
{
    if (!fuzz_scratch[0]) {
        snprintf(fuzz_scratch, sizeof fuzz_scratch, "%s/cmir-fuzz-%ld.mat",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
        atexit(fuzz_scratch_remove);
    }
    *fd = open(fuzz_scratch, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (*fd < 0)
        return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(*fd, data + off, size - off);
        if (w <= 0) {
            close(*fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(path, 64, "%s", fuzz_scratch);
    return 0;
}

/* Environment for the HDF5-based targets: no file locking (memfds) and
 * no error stack printing from threads the library did not quiet. */
static inline void fuzz_env(void)
{
    setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    setenv("CPL_DEBUG", "OFF", 1);
}

/* With CMIR_FUZZ_VERBOSE set, prints the library's last error message
 * after each input (to see how far the seeds get). */
const char *cmir_last_error(void);
static inline void fuzz_verbose(void)
{
    static int on = -1;
    if (on < 0)
        on = getenv("CMIR_FUZZ_VERBOSE") != NULL;
    if (on)
        fprintf(stderr, "  -> %s\n", cmir_last_error());
}

#endif
