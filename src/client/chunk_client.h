/* SPDX-License-Identifier: MIT */
/*
 * The routing-aware chunk client: the data path of libchainfs.
 *
 * It subscribes to mgmtd's routing (src/client/routing.h), writes a chunk to
 * its chain's head and reads it from the chain's serving replicas (spread over
 * them), and hides failover from its caller: on a stale chain version, a
 * replica that is not serving, a dead or unreachable replica or a timeout it
 * refreshes routing, backs off and retries against the chain as it is now,
 * until the operation's deadline. Every write carries a client_req id, unique
 * per client and kept across the retries of one operation, so the chain
 * applies a retried write at most once (the head answers a duplicate with the
 * recorded result).
 *
 * Blocking calls, safe from any number of threads at once (the tests run 16
 * writers on one client). A batch runs its operations concurrently (pipelined
 * over the connections; reads of one target are sent as one chunk_read) and
 * returns when all are done: that is how benchmarks get queue depth.
 */
#ifndef CFS_CLIENT_CHUNK_CLIENT_H
#define CFS_CLIENT_CHUNK_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "chainfs/proto.h"
#include "chainfs/types.h"

struct cfs_chunk_client;
struct cfs_routing_snap;

struct cfs_chunk_client_opts {
	const char *mgmtd;	  /* "host:port" of the node running mgmtd; required */
	unsigned loops;		  /* client loops; default 1 */
	uint32_t timeout_ms;	  /* one attempt; default 2000 */
	uint32_t deadline_ms;	  /* one operation, all retries included; default 30000 */
	uint32_t routing_wait_ms; /* create: wait this long for the first routing; default 10000 */
};

/**
 * Start a client: its runtime, the routing subscription, and wait for the
 * first routing version.
 * @return 0 and *out; -EINVAL (no mgmtd, malformed endpoint), -ETIMEDOUT (no
 *         routing within routing_wait_ms), -CFS_ENOACTOR (the node at `mgmtd`
 *         answers but runs no mgmtd), -ENOMEM.
 */
int cfs_chunk_client_create(const struct cfs_chunk_client_opts *opts,
			    struct cfs_chunk_client **out);
/** Stop and free. Sets *pc to NULL. Waits first for the done callback of every
 *  cfs_chunk_submit still under way (each ends by its deadline), so callbacks
 *  that submit again must stop doing so first; must not be called from one
 *  (CFS_PANIC), nor while another thread is inside cfs_chunk_batch on this
 *  client. */
void cfs_chunk_client_destroy(struct cfs_chunk_client **pc);

/** The newest routing snapshot (a reference: cfs_routing_snap_put it). */
struct cfs_routing_snap *cfs_chunk_client_routing(struct cfs_chunk_client *c);

/** The chain that holds chunk `index` of a file whose layout starts at `seed`
 *  over `stripe` chains (cfs_place_chunk over the snapshot's chains in id
 *  order): the layout takes chains[cfs_perm(seed, N, 0 .. stripe-1)] of the N
 *  chains (placement.h) and chunk `index` lives on its
 *  cfs_place_chunk(seed, index, stripe)-th. stripe 0 or > N means N. 0 when
 *  routing has no chains. */
uint64_t cfs_chunk_client_place(struct cfs_chunk_client *c, uint64_t seed, uint64_t index,
				uint32_t stripe);

enum cfs_chunk_op_kind {
	CFS_CHUNK_OP_WRITE = 1, /* data[0, len) at offset */
	CFS_CHUNK_OP_READ,	/* into data[0, len) from offset */
	CFS_CHUNK_OP_REMOVE,	/* the whole chunk */
	CFS_CHUNK_OP_TRUNCATE,	/* to len bytes */
	CFS_CHUNK_OP_QUERY,	/* length, crc, version: no data */
};

enum {
	/* read: serve the replica's committed version without asking the tail
	 * (not linearizable; see chainfs-protocol(7), RT_MSG_F_RELAXED) */
	CFS_CHUNK_F_RELAXED = 1u << 0,
	/* read: from this replica only (index into the chain's serving members);
	 * with `replica` below. For tests and `chainfs chunk get --replica`. */
	CFS_CHUNK_F_REPLICA = 1u << 1,
	/* read: with data NULL; on success out_data points at the bytes inside
	 * the buffer they arrived in, lent to the caller until
	 * cfs_chunk_op_release(), which must come before the op is reused and
	 * before the client is destroyed. Saves the copy into caller memory.
	 * The buffer is the one the answer arrived in, shared with the other
	 * reads of its request and, for answers of 16 KiB and more, with the
	 * answers read from the socket together with it (src/net/README.md):
	 * hold lent reads briefly, or memory held grows past the bytes lent. */
	CFS_CHUNK_F_LEND = 1u << 2,
};

/* One operation and, after the call, its outcome. */
struct cfs_chunk_op {
	/* in */
	enum cfs_chunk_op_kind kind;
	uint64_t chain_id;
	struct cfs_id128 chunk;
	uint32_t chunk_size; /* write, truncate: the chunk's size class bound */
	uint32_t offset;
	uint32_t len;	  /* write, read, truncate */
	void *data;	  /* write: source; read: destination (len bytes) */
	uint32_t flags;	  /* CFS_CHUNK_F_* */
	uint32_t replica; /* with CFS_CHUNK_F_REPLICA */
	/* out */
	int rc;		   /* 0 or negative errno / -CFS_E* after the last attempt */
	uint32_t out_len;  /* read: bytes read (short at the chunk's end); others: chunk length */
	uint32_t out_crc;  /* CRC32C of the chunk (write, truncate, query, read of a whole chunk) */
	uint64_t version;  /* committed version written / read / removed (remove: 0
			      when a retry found the chunk gone, see cfs_chunk_batch) */
	uint32_t target;   /* the target that answered the last attempt */
	uint32_t attempts; /* attempts made (1 when the first succeeded) */
	uint64_t pending;  /* query: the pending version (0: none) */
	bool pending_remove; /* query: ... and it is a remove (a tombstone going down the chain) */
	uint32_t out_chunk_size; /* query: the chunk's size class bound */
	const void *out_data;	 /* read with CFS_CHUNK_F_LEND: the out_len bytes read */
	void *out_lent;		 /* ... and the buffer holding them (cfs_chunk_op_release) */
};

/** Give back the buffer a CFS_CHUNK_F_LEND read lent (any thread; no-op when none):
 *  out_data and out_lent become NULL. */
void cfs_chunk_op_release(struct cfs_chunk_op *op);

/* Counters since create (read racily; for tests and benchmarks). */
struct cfs_chunk_client_stats {
	uint64_t ops;	   /* operations that reached the loops (valid input) */
	uint64_t requests; /* requests sent: a chunk_read of several reads counts once */
	uint64_t retries;  /* attempts after an operation's first */
	uint64_t failed;   /* operations that ended with rc != 0 */
};
/** Copy the counters into *out. */
void cfs_chunk_client_stats(struct cfs_chunk_client *c, struct cfs_chunk_client_stats *out);

/**
 * Run n operations concurrently and wait for all (from any thread but the
 * client's own loops). Each op's rc says how it
 * ended; ops[i].rc = -ETIMEDOUT when its deadline passed while retrying.
 * Retried: -CFS_ESTALECHAIN, -CFS_ENOTSERVING, -CFS_EBUSY, -ETIMEDOUT,
 * -ECONNREFUSED, -ECONNRESET, -EPIPE, -CFS_ENOACTOR, -EHOSTUNREACH, -ENOTCONN
 * (after a routing refresh, with backoff; a read first tries the chain's other
 * serving replicas at once). Not retried: -EINVAL (checked before sending:
 * zero chunk id or chain, a range outside chunk_size or 64 MiB, no data),
 * -CFS_ENOCHUNK, -ENOSPC, -CFS_ECHECKSUM (a read asks the other serving
 * replicas first, never one that answered it bad bytes; it fails when every
 * serving replica did), -CFS_ENOCHAIN (the chain stayed unknown to routing
 * for 2 s), -CFS_ENOTSERVING for CFS_CHUNK_F_REPLICA beyond the serving
 * members.
 * A remove answered -CFS_ENOCHUNK on a retry (an earlier attempt was sent and
 * may have removed the chunk, its answer lost) succeeds with version 0; on
 * its first attempt it fails with -CFS_ENOCHUNK. Answers do not always say
 * whether an attempt stored anything (-CFS_ENOTSERVING comes both from a
 * replica refusing on arrival and from a head whose forward failed after it
 * stored the tombstone), so a remove of a chunk that never existed, whose
 * first attempts were refused, also succeeds.
 * Query answers the committed version in `version`, plus `pending` and
 * `out_chunk_size`.
 * @return 0 when every op succeeded, else the first failed op's rc.
 */
int cfs_chunk_batch(struct cfs_chunk_client *c, struct cfs_chunk_op *ops, unsigned n);

/**
 * The end of a cfs_chunk_submit: every op of ops[0, n) has ended (its rc and
 * outcome are set). Runs on one of the client's loop threads, once. It may
 * submit more (cfs_chunk_submit) and release lent buffers; it must not block,
 * call cfs_chunk_batch or destroy the client.
 */
typedef void (*cfs_chunk_done_fn)(void *arg, struct cfs_chunk_op *ops, unsigned n);

/**
 * Start n operations and return at once: the asynchronous form of
 * cfs_chunk_batch, with the same per-op semantics (checks, retries, rc). done
 * runs when all have ended, never inside this call. ops stays the caller's and
 * must stay valid, and untouched, until then; so must the bytes each write's
 * data points to (they are copied on a client loop, not in this call). Any
 * thread, a client loop (a done callback) included. Destroy the client only
 * after every submission's done has run.
 * @return 0: done will run exactly once (also when every op failed its
 *         checks); -EINVAL: n is 0 or done NULL (done never runs); -ENOMEM:
 *         nothing started, every op's rc is -ENOMEM, done never runs; another
 *         error from posting to a loop (shutting down): done never runs.
 */
int cfs_chunk_submit(struct cfs_chunk_client *c, struct cfs_chunk_op *ops, unsigned n,
		     cfs_chunk_done_fn done, void *arg);

/** One write; see cfs_chunk_batch. *version (may be NULL) = the version written. */
int cfs_chunk_put(struct cfs_chunk_client *c, uint64_t chain_id, const struct cfs_id128 *chunk,
		  uint32_t chunk_size, uint32_t offset, const void *data, uint32_t len,
		  uint64_t *version);
/** One read into data; *got = bytes read (may be NULL). CFS_CHUNK_F_REPLICA
 *  and CFS_CHUNK_F_LEND in flags are ignored. */
int cfs_chunk_get(struct cfs_chunk_client *c, uint64_t chain_id, const struct cfs_id128 *chunk,
		  uint32_t offset, void *data, uint32_t len, uint32_t flags, uint32_t *got,
		  uint64_t *version);

#endif
