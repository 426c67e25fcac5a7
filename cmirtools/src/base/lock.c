/* File helpers: the check that an input is a regular file, and the
 * one-appender-at-a-time lock of archives and indexes: an exclusive
 * open-file-description lock (fcntl F_OFD_SETLK) held from before the file
 * is read until the append commits or aborts. */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cmir__lock_for_append(const char *path, long start, long len, const char *what, int *fd_out)
{
    for (int tries = 0; tries < 8; tries++) {
        int fd = open(path, O_RDWR | O_CLOEXEC); /* a write lock needs a writable descriptor */
        if (fd < 0)
            return cmir__error(CMIR_EIO, "%s: %s", path, strerror(errno));
        struct flock fl;
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = start;
        fl.l_len = len;
        if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
            int e = errno;
            close(fd);
            if (e == EAGAIN || e == EACCES)
                return cmir__error(CMIR_EIO, "%s: another process is appending to this %s; "
                                   "try again when it has finished", path, what);
            return cmir__error(CMIR_EIO, "%s: cannot lock it: %s", path, strerror(e));
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
            *fd_out = fd;
            return 0;
        }
        close(fd); /* replaced meanwhile: lock the new file */
    }
    return cmir__error(CMIR_EIO, "%s: it keeps being replaced; cannot lock it", path);
}

int cmir__stat_regular(const char *path, struct stat *st)
{
    if (stat(path, st) != 0)
        return cmir__error(CMIR_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st->st_mode))
        return cmir__error(CMIR_EIO, "%s: not a regular file", path);
    return 0;
}
