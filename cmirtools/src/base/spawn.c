/* Running an external program (e.g. qgis_process, which renders a QGIS
 * project): posix_spawn with stdin from /dev/null and stdout and stderr into
 * a log file, the environment extended by a few variables, then waiting (and killing it when
 * it runs past a time limit). */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

/* environ plus each of add ("KEY=VALUE") whose KEY environ lacks. */
static char **extended_env(const char *const *add)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (add && add[m])
        m++;
    char **env = cmir__calloc(n + m + 1, sizeof *env);
    if (!env)
        return NULL;
    memcpy(env, environ, n * sizeof *env);
    size_t k = n;
    for (size_t i = 0; i < m; i++) {
        size_t klen = strcspn(add[i], "=");
        int present = 0;
        for (size_t j = 0; j < n && !present; j++)
            present = !strncmp(environ[j], add[i], klen) && environ[j][klen] == '=';
        if (!present)
            env[k++] = (char *)add[i];
    }
    return env;
}

int cmir__spawn(const char *const *argv, const char *const *env_add, const char *log_path, int timeout_s,
                int *status)
{
    posix_spawn_file_actions_t fa;
    char **env = extended_env(env_add);
    if (!env)
        return CMIR_ENOMEM;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        cmir__free(env);
        return cmir__error(CMIR_ENOMEM, "%s: cannot prepare to run it", argv[0]);
    }
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path ? log_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int err = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, env);
    posix_spawn_file_actions_destroy(&fa);
    cmir__free(env);
    if (err != 0)
        return cmir__error(CMIR_EIO, "%s: cannot run it: %s", argv[0], strerror(err));
    int st = 0, killed = 0;
    struct timespec tick = {0, 20 * 1000 * 1000};
    for (long waited_ms = 0;;) { /* polled, so that a program that hangs is killed at timeout_s */
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return cmir__error(CMIR_EIO, "%s: cannot wait for it: %s", argv[0], strerror(errno));
        if (!killed && timeout_s > 0 && waited_ms >= timeout_s * 1000L) {
            kill(pid, SIGKILL);
            killed = 1;
        }
        nanosleep(&tick, NULL);
        waited_ms += 20;
    }
    if (killed)
        return cmir__error(CMIR_EIO, "%s: still running after %d s: killed", argv[0], timeout_s);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return 0;
}
