#ifndef RUNNER_CLIBPQ_SHIM_H
#define RUNNER_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
