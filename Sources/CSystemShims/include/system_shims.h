#ifndef RUNNER_SYSTEM_SHIMS_H
#define RUNNER_SYSTEM_SHIMS_H
#include <spawn.h>

/// pipe2(fds, O_CLOEXEC): GNU extensions Swift's Glibc module does not import.
int runner_pipe_cloexec(int fds[2]);

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+): close every descriptor >= from in the child.
int runner_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int from);

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are adopted by this process, not init.
int runner_become_subreaper(void);

/// The pid of a child that has exited and not been waited for, leaving it waitable
/// (waitid with WNOWAIT); 0 when there is none, -1 when this process has no children.
int runner_peek_exited_child(void);

/// The first argument that makes the runner's binary a command supervisor (supervisor.c).
#define RUNNER_SUPERVISOR_FLAG "--runner-supervise-v1"

/// Creates the runner's liveness page (a memfd, close-on-exec, mapped shared) and beats once;
/// returns its descriptor, -1 on failure.
int runner_liveness_open(void);

/// Writes the monotonic clock's milliseconds to the liveness page.
void runner_liveness_beat(void);

/// fcntl(fd, F_DUPFD_CLOEXEC, minimum).
int runner_dup_above(int fd, int minimum);

#endif
