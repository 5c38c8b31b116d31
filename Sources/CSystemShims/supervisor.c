// The command supervisor: a job's command runs under a small process that dies, and takes the
// command's process group with it, when the runner dies (kill -9 included) or stays frozen
// (SIGSTOP) past its lease. It is the runner's own binary, started with SUPERVISOR_FLAG as
// its first argument; this constructor takes over before the Swift runtime's main, so the
// supervisor costs a few hundred kilobytes, not a copy of the runner.
//
// Descriptors it is started with: 0 /dev/null, 1 and 2 the command's output pipes, 3 the read
// end of a pipe whose write end only the runner holds (end of file: the runner is gone), 4 the
// write end of a close-on-exec pipe the command's exec failure is reported on (errno, 4 bytes),
// 5 (when its limit is not 0) the runner's liveness page: CLOCK_MONOTONIC milliseconds, written
// every half second by the runner.
//
// Arguments: SUPERVISOR_FLAG, the frozen limit in milliseconds (0: no liveness page), the
// command's soft open-file limit (0: as inherited), the command's argv. The command's
// environment is the supervisor's.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "system_shims.h"

static volatile sig_atomic_t child_ended = 0;
static void on_child(int signal) { (void)signal; child_ended = 1; }

static int64_t monotonic_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/// Ends the supervisor the way the command ended: its exit code, or its signal.
static void relay(int status) {
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    struct sigaction fallback = {0};
    fallback.sa_handler = SIG_DFL;
    sigaction(sig, &fallback, NULL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
    kill(getpid(), sig);
    _exit(128 + sig);
}

static void supervise(int argc, char **argv) {
    sigset_t all, waiting;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    long limit_ms = strtol(argv[2], NULL, 10);
    volatile int64_t *alive = NULL;
    if (limit_ms > 0) {
        void *page = mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, 5, 0);
        if (page != MAP_FAILED) alive = page;
        close(5);
    }
    struct sigaction child_action = {0};
    child_action.sa_handler = on_child;
    sigaction(SIGCHLD, &child_action, NULL);

    pid_t command = fork();
    if (command < 0) {
        int error = errno;
        (void)!write(4, &error, sizeof error);
        _exit(127);
    }
    if (command == 0) {
        close(3);
        fcntl(4, F_SETFD, FD_CLOEXEC);
        struct sigaction fallback = {0};
        fallback.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &fallback, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        long files = strtol(argv[3], NULL, 10);
        if (files > 0) {
            struct rlimit limit;
            if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && (rlim_t)files < limit.rlim_cur) {
                limit.rlim_cur = (rlim_t)files;
                setrlimit(RLIMIT_NOFILE, &limit);
            }
        }
        execvp(argv[4], argv + 4);
        int error = errno;
        (void)!write(4, &error, sizeof error);
        _exit(127);
    }
    close(4);
    // The runner stops the command by signalling the whole group: the supervisor stays to
    // report how the command ended.
    struct sigaction ignore = {0};
    ignore.sa_handler = SIG_IGN;
    int ignored[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) sigaction(ignored[i], &ignore, NULL);
    sigfillset(&waiting);
    sigdelset(&waiting, SIGCHLD);
    (void)argc;
    for (;;) {
        int status = 0;
        pid_t ended = waitpid(command, &status, WNOHANG);
        if (ended == command) relay(status);
        if (ended < 0 && errno != EINTR) _exit(127);
        struct pollfd runner = {.fd = 3, .events = POLLIN};
        struct timespec tick = {0, 250 * 1000000};
        int ready = ppoll(&runner, 1, &tick, &waiting);
        if (ready > 0 && (runner.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
            char byte;
            ssize_t got = read(3, &byte, 1);
            // End of file: the runner is gone, and so is every command of its.
            if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN) || (runner.revents & POLLNVAL)) kill(0, SIGKILL);
        }
        // Frozen (SIGSTOP) past the limit: another process may take the slot soon.
        if (alive != NULL && monotonic_ms() - *alive > limit_ms) kill(0, SIGKILL);
    }
}

__attribute__((constructor)) static void runner_supervisor_entry(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc >= 5 && argv[1] != NULL && strcmp(argv[1], RUNNER_SUPERVISOR_FLAG) == 0) supervise(argc, argv);
}

static volatile int64_t *liveness_page = NULL;

int runner_liveness_open(void) {
    int fd = memfd_create("runner-liveness", MFD_CLOEXEC);
    if (fd < 0) return -1;
    if (ftruncate(fd, sizeof(int64_t)) != 0) { close(fd); return -1; }
    void *page = mmap(NULL, sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (page == MAP_FAILED) { close(fd); return -1; }
    liveness_page = page;
    runner_liveness_beat();
    // Above the numbers a spawn moves descriptors to, so no dup2 there overwrites it.
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return high;
}

void runner_liveness_beat(void) {
    if (liveness_page != NULL) *liveness_page = monotonic_ms();
}

int runner_dup_above(int fd, int minimum) {
    return fcntl(fd, F_DUPFD_CLOEXEC, minimum);
}
