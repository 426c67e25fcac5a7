/* Shared helpers for the fuzz targets: the input as a file (a memfd, opened
 * by the library through /proc/self/fd/N, so nothing touches the disk), and
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
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Writes data to a new memfd; *fd gets it (close it after use) and path
 * ("/proc/self/fd/N", room for 64 bytes) names it. 0 on success. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, int *fd, char *path)
{
    *fd = memfd_create("cmir_fuzz", MFD_CLOEXEC);
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
    snprintf(path, 64, "/proc/self/fd/%d", *fd);
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

#endif
