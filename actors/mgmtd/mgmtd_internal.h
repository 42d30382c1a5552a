/* SPDX-License-Identifier: MIT */
/*
 * mgmtd's internals, shared by its files and its unit test. The cluster state
 * (struct mgmtd_state) is plain data plus a database; every operation on it
 * takes the time as an argument, so the test drives leases without sleeping.
 * The actor (mgmtd.c) is a thin shell: decode, call an operation, commit, push
 * the new routing version to subscribers.
 *
 *   db.c       SQLite schema, load, save of dirty rows in one transaction
 *   chains.c   the public-state transition function, chain order, chain building
 *   routing.c  routing info into messages, subscribers
 *   mgmtd.c    operations (register, heartbeat, lease tick, sync done, ...) and the kind
 */
#ifndef CFS_ACTORS_MGMTD_INTERNAL_H
#define CFS_ACTORS_MGMTD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actors/mgmtd/mgmtd.h"

struct sqlite3;

#define MGMTD_MAX_REPLICAS    16
#define MGMTD_MAX_SUBSCRIBERS 4096
/* Subscribers behind one connection: a process has a routing cache or two,
 * and the sender address is the peer's to write. */
#define MGMTD_SUBS_PER_CONN 8
#define MGMTD_ENDPOINT_MAX    256
#define MGMTD_PATH_MAX	      4096
/* Targets one node may report: chainfsd's own limit (CFSD_MAX_TARGETS). */
#define MGMTD_NODE_TARGETS_MAX 256
/* The routing must fit the frame header every node accepts by default
 * (WIRE_LIMITS_DEFAULT, 1 MiB), with room for the frame's other fields. */
#define MGMTD_ROUTING_MAX ((1u << 20) - 4096)

struct mgmtd_node {
	uint32_t id;
	enum cfs_node_state state;
	char *endpoint;
	uint64_t last_hb_ns;	   /* monotonic; a restarted mgmtd sets it to its start */
	uint64_t last_hb_wall_ms;  /* for listings and the database */
	uint64_t saved_hb_wall_ms; /* what the database holds */
	bool dirty;
};

struct mgmtd_target {
	uint32_t id;
	uint32_t node;
	cfs_addr_t addr;
	char *path;
	enum cfs_local_state local_state; /* as last reported (after the staleness rule) */
	enum cfs_target_state public_state;
	uint64_t chain_id;  /* 0: in no chain */
	uint32_t position;  /* in its chain, head 0 */
	bool admin_offline; /* offline-target: counts as offline until undone */
	uint64_t state_ver; /* routing version of its last public-state change */
	uint64_t format_id; /* as its node last reported it; 0: not yet */
	bool replaced;	    /* reported another format id: the next chain update
			     * takes it out, never as lastsrv (memory only) */
	uint64_t listed;    /* the report (s->reports) that last listed it */
	bool state_changed; /* public state changed since the last commit */
	bool dirty;
};

struct mgmtd_chain {
	uint64_t id;
	uint32_t ver;
	uint32_t n;
	uint32_t members[MGMTD_MAX_REPLICAS]; /* target ids, head first */
	bool dirty;
};

struct mgmtd_state {
	struct sqlite3 *db;
	char *db_path;
	uint32_t heartbeat_ms;
	uint32_t lease_ms;
	/* The longest lease a node may still hold, saved: a restart with a
	 * shorter lease_ms waits for the longer one before taking targets away
	 * (until granted_until_ns), then saves lease_ms. */
	uint32_t granted_lease_ms;
	uint64_t granted_until_ns;
	uint64_t routing_ver;
	uint64_t next_chain_id;
	uint64_t wall_ms;     /* wall clock of the operation running now (listings, db) */
	bool routing_changed; /* something routing shows changed since the last commit */
	bool broken;	      /* a reload failed: memory holds nothing trustworthy */
	bool config_dirty;
	uint64_t reports;      /* node reports applied: marks the targets each lists */
	size_t routing_bytes;  /* mgmtd_routing_bytes() at load or last growth */
	/* Sorted by id; small (nodes and targets of one cluster). */
	struct mgmtd_node *nodes;
	uint32_t nnodes, cap_nodes;
	struct mgmtd_target *targets;
	uint32_t ntargets, cap_targets;
	struct mgmtd_chain *chains;
	uint32_t nchains, cap_chains;
};

/* --------------------------------------------------------------- db.c */

/**
 * Open (or create) the database at path with WAL and synchronous=FULL, create
 * the schema, and load the state into s (zeroed by the caller; heartbeat_ms and
 * lease_ms already set). Nodes that were up get last_hb_ns = now_ns: a full
 * lease to heartbeat again; when the database saved a longer lease than
 * lease_ms (the one its nodes may still hold), none is marked down before
 * that much time passed (granted_until_ns).
 * @return 0; -EIO (open, schema or query failed; not a mgmtd database), -ENOMEM.
 */
int mgmtd_db_open(struct mgmtd_state *s, const char *path, uint64_t now_ns);
/** Write every dirty node, target, chain and the config in one transaction.
 *  @return 0; -EIO (rolled back; memory now differs from the database). */
int mgmtd_db_save(struct mgmtd_state *s);
/** Free the in-memory state and close the database. */
void mgmtd_state_fini(struct mgmtd_state *s);
/** Drop the in-memory state and load it again from the database (after a failed
 *  save); nodes up get a lease from now_ns. On failure s->broken is set.
 *  @return 0, -EIO, -ENOMEM. */
int mgmtd_db_reload(struct mgmtd_state *s, uint64_t now_ns);

/* ------------------------------------------------------------- lookups */

struct mgmtd_node *mgmtd_node_find(struct mgmtd_state *s, uint32_t id);
struct mgmtd_target *mgmtd_target_find(struct mgmtd_state *s, uint32_t id);
struct mgmtd_chain *mgmtd_chain_find(struct mgmtd_state *s, uint64_t id);
/** Insert a zeroed node/target/chain with this id, keeping the order. NULL on OOM. */
struct mgmtd_node *mgmtd_node_add(struct mgmtd_state *s, uint32_t id);
struct mgmtd_target *mgmtd_target_add(struct mgmtd_state *s, uint32_t id);
struct mgmtd_chain *mgmtd_chain_add(struct mgmtd_state *s, uint64_t id);

/* ----------------------------------------------------------- chains.c */

/* What the transition of one target may look at besides its own states. */
struct mgmtd_chain_ctx {
	bool other_serving; /* another member of the chain is serving */
	bool other_syncing; /* another member of the chain is syncing */
};

/**
 * The public-state transition: the next public state of a target from its
 * current public state, its local state and its chain. Pure; the table is in
 * actors/mgmtd/README.md and the unit test checks every input.
 */
enum cfs_target_state mgmtd_next_state(enum cfs_target_state cur, enum cfs_local_state local,
				       const struct mgmtd_chain_ctx *ctx);

/** The local state the transition uses: offline when the node is down or
 *  unknown or the target is taken out by an operator, else as reported. */
enum cfs_local_state mgmtd_effective_local(struct mgmtd_state *s, const struct mgmtd_target *t);

/**
 * Apply the transitions to every member of c until nothing moves, then order
 * the members: serving, syncing, waiting, then the down ones (lastsrv,
 * offline), each group in its previous order, except that a member that went
 * down in this update goes to the very end. Bumps c->ver and marks the chain,
 * the changed targets and the routing dirty when order or a state changed.
 * @return true when the chain changed.
 */
bool mgmtd_chain_update(struct mgmtd_state *s, struct mgmtd_chain *c);

/** mgmtd_chain_update on every chain that holds a target of node `node`. */
bool mgmtd_chains_update_node(struct mgmtd_state *s, uint32_t node);

/**
 * Build up to `want` new chains of `replicas` members (want 0: as many as the
 * free targets allow) from targets in no chain whose effective local state is
 * not offline, no two members of a chain on one node. Each round takes one
 * target (lowest id) from each of the `replicas` nodes with the most free
 * targets left (ties: lower node id), which maximises the number of chains;
 * the member order is rotated by the chain id so heads spread over nodes. All
 * members start serving, at version 1.
 * @return 0 and *created; -EINVAL (replicas 0 or > MGMTD_MAX_REPLICAS),
 *         -CFS_EPLACEMENT (not even one chain, or fewer than `want`: nothing
 *         is created and `detail` says why), -ENOMEM.
 */
int mgmtd_chains_create(struct mgmtd_state *s, uint32_t replicas, uint32_t want, uint32_t *created,
			char *detail, size_t detail_len);

/* ------------------------------------------------------------- mgmtd.c */

/*
 * Operations. Each validates everything before it changes anything, then
 * commits (mgmtd_commit). A failed commit reloads the state from the database
 * and returns -EIO. *changed (when not NULL) tells whether the routing version
 * moved, so the caller pushes it.
 */

/** A node (re)announces itself: endpoint and every target it runs.
 *  @return 0; -EINVAL (node 0, endpoint empty or too long, target id 0 or twice,
 *          bad local state, path too long), -CFS_ETARGETOWNED, -EIO, -ENOMEM. */
int mgmtd_op_register(struct mgmtd_state *s, uint64_t now_ns, uint32_t node_id,
		      const char *endpoint, size_t endpoint_len,
		      const struct cfs_target_report *targets, uint32_t ntargets, bool *changed);
/** A heartbeat: renews the node's lease and applies its targets' local states.
 *  A report of up-to-date made from routing older than the target's last
 *  public-state change counts as online (the node has not seen that change).
 *  @return 0; -CFS_ENONODE (register first), the errors of register. */
int mgmtd_op_heartbeat(struct mgmtd_state *s, uint64_t now_ns, uint32_t node_id,
		       uint64_t node_routing_ver, const struct cfs_target_report *targets,
		       uint32_t ntargets, bool *changed);
/** Mark nodes whose lease ran out down (their targets count as offline), and
 *  save heartbeat times now and then. @return 0, -EIO. */
int mgmtd_op_tick(struct mgmtd_state *s, uint64_t now_ns, bool *changed);
/** The syncing target caught up: it becomes serving.
 *  @return 0; -CFS_ENOTARGET, -CFS_ENOCHAIN, -EINVAL (target not in that chain),
 *          -CFS_ESTALECHAIN (*cur_ver holds the chain's version),
 *          -CFS_ENOTSYNCING, -EIO. */
int mgmtd_op_sync_done(struct mgmtd_state *s, uint64_t now_ns, uint32_t target, uint64_t chain_id,
		       uint32_t chain_ver, uint32_t *cur_ver, bool *changed);
/** Take a target out (undo: let it back in). @return 0; -CFS_ENOTARGET, -EIO. */
int mgmtd_op_offline_target(struct mgmtd_state *s, uint64_t now_ns, uint32_t target, bool undo,
			    bool *changed);
/** create-chains. @return mgmtd_chains_create's codes, -EIO. */
int mgmtd_op_create_chains(struct mgmtd_state *s, uint64_t now_ns, uint32_t replicas, uint32_t want,
			   uint32_t *created, char *detail, size_t detail_len, bool *changed);
/** Save what is dirty; when routing changed, bump the routing version first
 *  and stamp targets whose public state changed. @return 0, -EIO. */
int mgmtd_commit(struct mgmtd_state *s, uint64_t now_ns, bool *changed);

/* ---------------------------------------------------------- routing.c */

/**
 * Fill the routing fields of m (a MGMTD_ROUTING_RESP or ROUTING_UPDATE) from
 * s, in m's arena. hb_age_ms of each node is measured at now_ns.
 * @return 0; -EINVAL (other message type), -ENOMEM.
 */
int mgmtd_routing_fill(const struct mgmtd_state *s, uint64_t now_ns, struct rt_msg *m);
/** The most bytes s's routing takes in a frame header: every field counted at
 *  its widest msgpack encoding, so a change of state never changes it. */
size_t mgmtd_routing_bytes(const struct mgmtd_state *s);

struct mgmtd_sub {
	cfs_addr_t addr;
	uint64_t conn;
	uint64_t expires_ns;
};

struct mgmtd_subs {
	struct mgmtd_sub *v;
	uint32_t n, cap;
};

/** Add or renew (addr, conn) until expires_ns. @return 0; -CFS_EBUSY (full, or
 *  MGMTD_SUBS_PER_CONN on that connection already), -ENOMEM. */
int mgmtd_subs_add(struct mgmtd_subs *subs, cfs_addr_t addr, uint64_t conn, uint64_t expires_ns);
/** Forget subscribers whose time ran out. @return how many went. */
uint32_t mgmtd_subs_expire(struct mgmtd_subs *subs, uint64_t now_ns);
/** Remove entry i. */
void mgmtd_subs_remove(struct mgmtd_subs *subs, uint32_t i);
void mgmtd_subs_fini(struct mgmtd_subs *subs);
/**
 * Send ROUTING_UPDATE (one-way) to every subscriber, each on the connection it
 * subscribed over; a subscriber the runtime refuses to reach is dropped.
 * @return how many pushes left.
 */
uint32_t mgmtd_subs_push(struct rt_actor *self, struct mgmtd_subs *subs,
			 const struct mgmtd_state *s, uint64_t now_ns);

#endif
