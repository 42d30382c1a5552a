/* SPDX-License-Identifier: MIT */
/*
 * The client runtime under libchainfs, the CLI, tests and benchmarks: a
 * runtime with its own loop thread(s), a TCP transport without a listener, and
 * one client actor through which calls leave. Callers on other threads use the
 * blocking cfs_client_call(); code on the client loop uses rt_call() directly
 * from cfs_client_actor_run().
 */
#ifndef CFS_CLIENT_H
#define CFS_CLIENT_H

#include "rt/rt.h"

struct cfs_client;
struct net;

struct cfs_client_opts {
	unsigned loops;			/* default 1 */
	uint32_t timeout_ms;		/* default request timeout; default 5000 */
	uint64_t max_payload;		/* largest payload accepted; default 64 MiB */
};

/** Start a client runtime (threads running on return). -ENOMEM, transport errors. */
int cfs_client_create(const struct cfs_client_opts *opts, struct cfs_client **out);
/** Stop its loops and free it. Sets *pc to NULL. */
void cfs_client_destroy(struct cfs_client **pc);

/** Name a server by "host:port"; *node is the node id to use in addresses
 *  (CFS_ADDR(node, local)). -EINVAL for a malformed endpoint. */
int cfs_client_connect(struct cfs_client *c, const char *endpoint, uint32_t *node);

/**
 * Send req to dst and wait for the answer. Takes ownership of req in every
 * case. On return *resp holds the response when one arrived (also for a
 * negative rc carried in it), else NULL; free it with rt_msg_free.
 * @return 0 or the response's rc; -ETIMEDOUT, -CFS_EBUSY, -ECONNREFUSED,
 *         -ECONNRESET, -ENOMEM.
 */
int cfs_client_call(struct cfs_client *c, cfs_addr_t dst, struct rt_msg *req,
		    uint32_t timeout_ms, struct rt_msg **resp);

/** Run fn(self, arg) on the client loop, as the client actor (for pipelines of
 *  rt_call). Blocks until fn has run; fn must not block. */
int cfs_client_actor_run(struct cfs_client *c, void (*fn)(struct rt_actor *self, void *arg),
			 void *arg);
/** The client's runtime (its loops, clock). */
struct rt *cfs_client_rt(struct cfs_client *c);
/** The client's transport (to name nodes with net_add_peer). */
struct net *cfs_client_net(struct cfs_client *c);

#endif
