// SPDX-License-Identifier: MIT
/*
 * A node is a runtime, a transport and actors; this file wires them together
 * from a parsed configuration. Adding a role means adding its section to
 * config_keys.def and a spawn step here.
 */
#define RT_LOG_SUBSYS "chainfsd"
#include <config.h>

#include "daemon/daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "actors/mgmtd/mgmtd.h"
#include "actors/node/nodectl.h"
#include "actors/storage/storage.h"
#include "net/net.h"
#include "rt/rt.h"

struct cfsd {
	struct rt *rt;
	struct net *net;
};

/* One storage actor per [target.ID], on its configured loop; `loop = auto`
 * spreads targets round-robin over loops 1..N-1 (loop 0 keeps the sessions
 * and control actors) or uses loop 0 when it is the only one. Spawned before
 * the loops run, so the node listens only once every target is open. */
static int
spawn_targets(struct cfsd *d, const struct cfsd_config *cfg)
{
	unsigned nloops = rt_loop_count(d->rt), next = 0;
	uint64_t target_loops = 0;

	for (unsigned i = 0; i < cfg->ntargets; i++) {
		const struct cfsd_target_config *tc = &cfg->targets[i];
		struct stor_config sc = {
			.target_id = tc->id,
			.path = tc->path,
			.capacity = tc->capacity,
			.removed_retention_ms = tc->remove_memory_ms,
			.max_reply = cfg->max_payload,
			.max_hdr = (uint32_t)cfg->max_frame_header,
			/* Under mgmtd the target serves only what its chain routing allows. */
			.in_cluster = cfg->mgmtd != NULL || cfg->mgmtd_db != NULL,
		};
		cfs_addr_t addr;
		unsigned li;
		int rc;

		if (tc->loop >= 0) {
			if ((unsigned)tc->loop >= nloops) {
				RT_ERRLOG("target %" PRIu32 ": loop = %d, but the node runs %u loops",
					  tc->id, (int)tc->loop, nloops);
				return -CFS_ECONFIG;
			}
			li = (unsigned)tc->loop;
		} else {
			li = nloops > 1 ? 1 + next++ % (nloops - 1) : 0;
		}
		rc = rt_spawn(rt_loop_at(d->rt, li), &stor_kind, &sc, 0, &addr);
		if (rc != 0) {
			RT_ERR(rc, "target %" PRIu32 " path=%s: cannot start", tc->id, tc->path);
			return rc;
		}
		RT_INFO("target=%" PRIu32 " path=%s loop=%u addr=0x%016" PRIx64 ": storage actor",
			tc->id, tc->path, li, addr);
		target_loops |= 1ull << li;
	}
	/* Connections go to the loops of the targets: the data path then mostly
	 * stays on one thread (read, handle, disk, reply), while loop 0's control
	 * actors see little traffic and can afford the hop. */
	if (target_loops)
		return net_set_conn_loops(d->net, target_loops);
	return 0;
}

/* Membership: mgmtd itself when [mgmtd] db is set, then nodectl, which joins
 * the cluster at [node] mgmtd = host:port, or at the local mgmtd. */
static int
spawn_control(struct cfsd *d, const struct cfsd_config *cfg, struct nodectl_config *nccfg)
{
	struct nodectl_target_config *tcs = NULL;
	cfs_addr_t addr;
	uint32_t alias;
	int rc;

	if (cfg->mgmtd_db) {
		struct mgmtd_config mc = {
			.db_path = cfg->mgmtd_db,
			.heartbeat_ms = cfg->mgmtd_heartbeat_ms,
			.lease_ms = cfg->mgmtd_lease_ms,
		};

		rc = rt_spawn(rt_loop_at(d->rt, 0), &mgmtd_kind, &mc, CFS_LOCAL_MGMTD, &addr);
		if (rc != 0) {
			RT_ERR(rc, "mgmtd db=%s: cannot start", cfg->mgmtd_db);
			return rc;
		}
		nccfg->mgmtd = addr;
		nccfg->heartbeat_ms = cfg->mgmtd_heartbeat_ms;
	}
	if (cfg->mgmtd) {
		rc = net_connect_alias(d->net, cfg->mgmtd, &alias);
		if (rc != 0) {
			RT_ERR(rc, "[node] mgmtd = %s: cannot use", cfg->mgmtd);
			return rc;
		}
		nccfg->mgmtd = CFS_ADDR(alias, CFS_LOCAL_MGMTD);
	}
	if (nccfg->mgmtd) {
		tcs = calloc(cfg->ntargets ? cfg->ntargets : 1, sizeof(*tcs));
		if (!tcs)
			return -ENOMEM;
		for (unsigned i = 0; i < cfg->ntargets; i++)
			tcs[i] = (struct nodectl_target_config){
				.id = cfg->targets[i].id,
				.path = cfg->targets[i].path,
			};
		nccfg->targets = tcs;
		nccfg->ntargets = cfg->ntargets;
		nccfg->endpoint = cfg->listen;
		nccfg->net = d->net;
	}
	rc = rt_spawn(rt_loop_at(d->rt, 0), &nodectl_kind, nccfg, CFS_LOCAL_NODECTL, &addr);
	free(tcs); /* nodectl copied it */
	return rc;
}

int
cfsd_start(const struct cfsd_config *cfg, struct cfsd **out)
{
	struct rt_config rcfg = {
		.loops = cfg->loops,
		.pin = cfg->pin,
		.node_id = cfg->node_id,
		.default_timeout_ms = cfg->request_timeout_ms,
	};
	struct net_config ncfg;
	struct nodectl_config nccfg = {.version = PACKAGE_VERSION};
	struct cfsd *d;
	int rc;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	rc = rt_create(&rcfg, &d->rt);
	if (rc != 0)
		goto out_free;

	net_config_init(&ncfg);
	ncfg.listen = cfg->listen;
	ncfg.limits.max_hdr = (uint32_t)cfg->max_frame_header;
	ncfg.limits.max_payload = cfg->max_payload;
	ncfg.max_outq_bytes = cfg->max_outq;
	ncfg.connect_timeout_ms = cfg->connect_timeout_ms;
	ncfg.reconnect_min_ms = cfg->reconnect_min_ms;
	ncfg.reconnect_max_ms = cfg->reconnect_max_ms;
	ncfg.peer_timeout_ms = cfg->peer_timeout_ms;
	ncfg.frame_timeout_ms = cfg->frame_timeout_ms;
	ncfg.max_conns = cfg->max_conns;
	ncfg.max_rx_held = cfg->max_rx_held;
	rc = net_create(d->rt, &ncfg, &d->net);
	if (rc != 0)
		goto out_rt;

	rc = spawn_control(d, cfg, &nccfg);
	if (rc != 0)
		goto out_net;
	rc = spawn_targets(d, cfg);
	if (rc != 0)
		goto out_net;

	rc = rt_start(d->rt, false);
	if (rc != 0)
		goto out_net;
	RT_INFO("node=%u listen=%s loops=%u port=%u: serving", cfg->node_id, cfg->listen,
		rt_loop_count(d->rt), net_listen_port(d->net));
	*out = d;
	return 0;

out_net:
	rt_shutdown(d->rt);
	rt_destroy(&d->rt);
	net_destroy(&d->net);
	free(d);
	return rc;
out_rt:
	rt_destroy(&d->rt);
out_free:
	free(d);
	return rc;
}

void
cfsd_stop(struct cfsd **pd)
{
	struct cfsd *d = *pd;

	if (!d)
		return;
	rt_shutdown(d->rt);
	rt_destroy(&d->rt);
	net_destroy(&d->net);
	free(d);
	*pd = NULL;
}
