/* SPDX-License-Identifier: MIT */
/*
 * Assembling a node from its configuration: runtime, transport, and the
 * actors the config names.
 */
#ifndef CFSD_DAEMON_H
#define CFSD_DAEMON_H

#include "daemon/conf.h"

struct cfsd;

/** Create loops and transport, spawn the configured actors, start the threads.
 *  Errors: -CFS_ECONFIG, -EADDRINUSE (listen), -ENOMEM, an actor's init error. */
int cfsd_start(const struct cfsd_config *cfg, struct cfsd **out);
/** Stop every actor and loop, join threads, free. Sets *pd to NULL. */
void cfsd_stop(struct cfsd **pd);

#endif
