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

#endif
