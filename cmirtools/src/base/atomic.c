/* Atomic output files: a uniquely named temporary file beside the target
 * (same directory, same extension, so format drivers that look at the
 * name still work), committed by fsync + rename + directory fsync. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static atomic_ulong counter;

/* "dir/stem.tmp-PID-N-R.ext" for "dir/stem.ext". */
static void temp_name(char *t, size_t cap, const char *path, unsigned long n)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (dot && ((slash && dot < slash) || dot == path || (slash && dot == slash + 1)))
        dot = NULL;
    size_t stem = dot ? (size_t)(dot - path) : strlen(path);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(t, cap, "%.*s.tmp-%ld-%lu-%lx%s", (int)stem, path, (long)getpid(), n,
             (unsigned long)ts.tv_nsec ^ (unsigned long)(uintptr_t)t, dot ? dot : "");
}

int cmir__atomic_open(cmir__atomic_file *af, const char *path, int flags)
{
    memset(af, 0, sizeof *af);
    af->fd = -1;
    if (!path || !*path)
        return cmir__error(CMIR_EINVAL, "output path is empty");
    size_t cap = strlen(path) + 64;
    if (!(af->path = cmir__strdup(path)) || !(af->tmp = cmir__malloc(cap))) {
        cmir__atomic_abort(af);
        return CMIR_ENOMEM;
    }
    mode_t um = umask(0);
    umask(um);
    for (int tries = 0; tries < 100; tries++) {
        temp_name(af->tmp, cap, path, atomic_fetch_add(&counter, 1));
        int fd = open(af->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666 & ~um);
        if (fd >= 0) {
            if (flags & CMIR__ATOMIC_NAME_ONLY) {
                /* the writer creates the file itself (GDAL, SQLite): keep the
                 * unique name, not the empty file */
                close(fd);
                unlink(af->tmp);
            } else {
                af->fd = fd;
            }
            af->open = 1;
            return 0;
        }
        if (errno != EEXIST) {
            int rc = cmir__error(CMIR_EIO, "%s: cannot create a temporary file beside it: %s", path,
                                 strerror(errno));
            cmir__atomic_abort(af);
            return rc;
        }
    }
    cmir__atomic_abort(af);
    return cmir__error(CMIR_EIO, "%s: cannot find a free temporary name beside it", path);
}

/* Flushes the directory entry of the rename (best effort: some file
 * systems refuse fsync on a directory). */
static void sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int cmir__atomic_commit(cmir__atomic_file *af)
{
    if (!af->open)
        return cmir__error(CMIR_EINVAL, "atomic commit of a file that is not open");
    int rc = 0;
    int fd = af->fd >= 0 ? af->fd : open(af->tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        rc = cmir__error(CMIR_EIO, "%s: cannot flush to disk: %s", af->path, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && !rc)
        rc = cmir__error(CMIR_EIO, "%s: cannot close the temporary file: %s", af->path, strerror(errno));
    af->fd = -1;
    if (!rc && rename(af->tmp, af->path) != 0)
        rc = cmir__error(CMIR_EIO, "%s: cannot rename the temporary file over it: %s", af->path,
                         strerror(errno));
    if (!rc) {
        sync_dir(af->path);
        af->open = 0; /* renamed: nothing left to unlink */
    }
    cmir__atomic_abort(af);
    return rc;
}

FILE *cmir__atomic_fopen(cmir__atomic_file *af, const char *path)
{
    if (cmir__atomic_open(af, path, 0))
        return NULL;
    FILE *f = fdopen(af->fd, "w");
    if (!f) {
        cmir__error(CMIR_EIO, "%s: cannot write: %s", path, strerror(errno));
        cmir__atomic_abort(af);
        return NULL;
    }
    af->fd = -1; /* the stream owns it now; commit reopens the file to flush it */
    return f;
}

int cmir__atomic_fclose(FILE *f, cmir__atomic_file *af)
{
    int rc = ferror(f) ? cmir__error(CMIR_EIO, "%s: write error", af->path) : 0;
    if (fclose(f) != 0 && !rc)
        rc = cmir__error(CMIR_EIO, "%s: write error", af->path);
    if (rc) {
        cmir__atomic_abort(af);
        return rc;
    }
    return cmir__atomic_commit(af);
}

void cmir__atomic_abort(cmir__atomic_file *af)
{
    if (!af)
        return;
    if (af->open && af->fd >= 0) /* a zeroed af (fd 0) is not open: stdin stays */
        close(af->fd);
    if (af->open && af->tmp)
        unlink(af->tmp);
    cmir__free(af->tmp);
    cmir__free(af->path);
    af->tmp = af->path = NULL;
    af->fd = -1;
    af->open = 0;
}
