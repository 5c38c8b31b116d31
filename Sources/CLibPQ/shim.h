#ifndef RUNNER_CLIBPQ_SHIM_H
#define RUNNER_CLIBPQ_SHIM_H
#include <libpq-fe.h>

static void runner_pq_ignore_notice(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

/// libpq prints server notices ("schema already exists, skipping") to stderr by default;
/// the runner logs what matters itself.
static inline void runner_pq_silence_notices(PGconn *conn) {
    PQsetNoticeProcessor(conn, runner_pq_ignore_notice, NULL);
}

#endif
