// SPDX-License-Identifier: MIT
/*
 * Blocking calls over the asynchronous runtime: the caller's thread parks on a
 * condition variable while the client loop runs rt_call and its callback.
 * The client actor is the one sender; its state is the client's address only.
 */
#define RT_LOG_SUBSYS "client"
#include "client/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "net/net.h"

struct cfs_client {
	struct rt *rt;
	struct net *net;
	struct rt_actor *actor;	/* touched only on loop 0 */
	uint32_t timeout_ms;
};

/* Rendezvous between a blocked caller and the loop. */
struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

static void
waiter_init(struct waiter *w)
{
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->done = false;
}

static void
waiter_wake(struct waiter *w)
{
	pthread_mutex_lock(&w->mu);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void
waiter_wait(struct waiter *w)
{
	pthread_mutex_lock(&w->mu);
	while (!w->done)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
}

struct client_actor {
	struct cfs_client *c;
};

static int
client_actor_init(struct rt_actor *self, const void *arg)
{
	struct client_actor *ca = rt_actor_state(self);

	ca->c = (struct cfs_client *)arg;
	ca->c->actor = self;
	return 0;
}

static const rt_handler_fn client_handlers[CFS_MSG__COUNT];

static const struct rt_actor_kind client_kind = {
	.name = "client",
	.state_size = sizeof(struct client_actor),
	.init = client_actor_init,
	.handlers = client_handlers,
};

int
cfs_client_create(const struct cfs_client_opts *opts, struct cfs_client **out)
{
	struct cfs_client_opts o = opts ? *opts : (struct cfs_client_opts){0};
	struct rt_config rcfg = {0};
	struct net_config ncfg;
	struct cfs_client *c;
	cfs_addr_t addr;
	int rc;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->timeout_ms = o.timeout_ms ? o.timeout_ms : 5000;
	rcfg.loops = o.loops ? o.loops : 1;
	rcfg.default_timeout_ms = c->timeout_ms;
	rc = rt_create(&rcfg, &c->rt);
	if (rc != 0)
		goto out_free;
	net_config_init(&ncfg);
	ncfg.listen = NULL;
	if (o.max_payload)
		ncfg.limits.max_payload = o.max_payload;
	rc = net_create(c->rt, &ncfg, &c->net);
	if (rc != 0)
		goto out_rt;
	rc = rt_spawn(rt_loop_at(c->rt, 0), &client_kind, c, 0, &addr);
	if (rc != 0)
		goto out_net;
	rc = rt_start(c->rt, false);
	if (rc != 0)
		goto out_net;
	*out = c;
	return 0;

out_net:
	rt_shutdown(c->rt);
	rt_destroy(&c->rt);
	net_destroy(&c->net);
	free(c);
	return rc;
out_rt:
	rt_destroy(&c->rt);
out_free:
	free(c);
	return rc;
}

void
cfs_client_destroy(struct cfs_client **pc)
{
	struct cfs_client *c = *pc;

	if (!c)
		return;
	rt_shutdown(c->rt);
	rt_destroy(&c->rt);
	net_destroy(&c->net);
	free(c);
	*pc = NULL;
}

int
cfs_client_connect(struct cfs_client *c, const char *endpoint, uint32_t *node)
{
	return net_connect_alias(c->net, endpoint, node);
}

struct rt *
cfs_client_rt(struct cfs_client *c)
{
	return c->rt;
}

struct net *
cfs_client_net(struct cfs_client *c)
{
	return c->net;
}

struct sync_call {
	struct waiter w;
	struct cfs_client *c;
	cfs_addr_t dst;
	uint32_t timeout_ms;
	struct rt_msg *req;
	struct rt_msg *resp;
	int rc;
};

static void
sync_call_done(struct rt_actor *self, int rc, struct rt_msg *resp, void *cb_arg)
{
	struct sync_call *sc = cb_arg;

	sc->rc = rc;
	if (resp) {
		rt_msg_claim(resp);
		sc->resp = resp;
	}
	waiter_wake(&sc->w);
}

static void
sync_call_start(void *arg)
{
	struct sync_call *sc = arg;
	int rc;

	rc = rt_call(sc->c->actor, sc->dst, sc->req, sc->timeout_ms, sync_call_done, sc);
	if (rc != 0) {
		rt_msg_free(&sc->req);
		sc->rc = rc;
		waiter_wake(&sc->w);
	}
}

int
cfs_client_call(struct cfs_client *c, cfs_addr_t dst, struct rt_msg *req, uint32_t timeout_ms,
		struct rt_msg **resp)
{
	struct sync_call sc = {
		.c = c, .dst = dst, .req = req,
		.timeout_ms = timeout_ms ? timeout_ms : c->timeout_ms,
	};
	int rc;

	*resp = NULL;
	waiter_init(&sc.w);
	rc = rt_loop_post(rt_loop_at(c->rt, 0), sync_call_start, &sc);
	if (rc != 0) {
		rt_msg_free(&req);
		return rc;
	}
	waiter_wait(&sc.w);
	*resp = sc.resp;
	return sc.rc;
}

struct actor_run {
	struct waiter w;
	struct cfs_client *c;
	void (*fn)(struct rt_actor *self, void *arg);
	void *arg;
};

static void
actor_run_on_loop(void *arg)
{
	struct actor_run *ar = arg;

	ar->fn(ar->c->actor, ar->arg);
	waiter_wake(&ar->w);
}

int
cfs_client_actor_run(struct cfs_client *c, void (*fn)(struct rt_actor *self, void *arg), void *arg)
{
	struct actor_run ar = {.c = c, .fn = fn, .arg = arg};
	int rc;

	waiter_init(&ar.w);
	rc = rt_loop_post(rt_loop_at(c->rt, 0), actor_run_on_loop, &ar);
	if (rc != 0)
		return rc;
	waiter_wait(&ar.w);
	return 0;
}
