// SPDX-License-Identifier: MIT
/*
 * tests/proc.h: real chainfsd processes for integration tests and benches.
 *
 * Owns what every program that runs a cluster of separate chainfsd processes on
 * loopback used to write for itself: removing a data directory, picking a free
 * port, writing a node's configuration, fork/exec of the daemon with its output
 * in a log file, waiting for the daemon's "serving" line, signalling and reaping
 * it, and asking mgmtd to build chains. What a program waits for in the routing
 * (which nodes, which chain states) stays with the program: the predicates differ.
 * Also owns "hosts mode" (tp_hosts_init): each node a host of its own, a network
 * namespace with its own address, behind a bridge in the driver's private
 * namespace, and everything removed again, also when the driver fails or is killed.
 * Not thread-safe; call from the driver's main thread.
 */
#ifndef CFS_TESTS_PROC_H
#define CFS_TESTS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "chainfs/types.h"

struct cfs_client;
struct cfs_routing_snap;

/** One daemon process: its files, and its pid while it runs (0 when not). */
struct tp_proc {
	pid_t pid;
	unsigned port; /**< the listen port (written, or read from the log) */
	char conf[600];
	char log[600];
	unsigned host; /**< hosts mode: run in host k's namespace (0: the driver's) */
};

/** What a node's configuration says; unset fields are left out of the file. */
struct tp_conf {
	unsigned id;
	unsigned port;	       /**< 0: the daemon picks one and logs it */
	const char *loops;     /**< "2"; as a string so an env value passes through */
	const char *log_level; /**< NULL: the daemon's default */
	const char *mgmtd;     /**< storage node: mgmtd's endpoint */
	const char *mgmtd_db;  /**< mgmtd node: its database file */
	unsigned heartbeat_ms; /**< mgmtd node; 0: default */
	unsigned lease_ms;     /**< mgmtd node; 0: default */
	unsigned ntargets;
	const uint32_t *targets; /**< target ids */
	const char *target_dir;	 /**< target k lives in <target_dir>/t<id> ... */
	const char *target_path; /**< ... unless this names the one target's directory */
	const char *capacity;	 /**< "256M" */
	const char *host;	 /**< listen address (tp_host_addr()); NULL: 127.0.0.1 */
};

/* Flags of tp_proc_start(). */
#define TP_LOG_TRUNC   (1u << 0) /**< truncate the log (default: append across restarts) */
#define TP_STDERR_ONLY (1u << 1) /**< only stderr goes to the log; stdout is inherited */
#define TP_PDEATHSIG   (1u << 2) /**< the daemon dies with this process */

/* Hosts mode: host k (1..TP_HOSTS_MAX) is the network namespace cfs<driver pid>n<k>,
 * address 10.99.0.<k>/24 on eth0 (lo up), whose veth peer cfsv<k> is a port of the
 * bridge cfsbr in the driver's private namespace; the driver is 10.99.0.254. */
#define TP_HOSTS_MAX 32
#define TP_HOST_PORT 7400 /**< a fixed port does: every host has its own ports */

/**
 * Make n hosts. Call first in main, before any thread exists: the driver moves
 * itself into a private network namespace (lo up) so that nothing it does touches
 * the machine's network, then removes stale namespaces of dead drivers, then makes
 * the hosts with fork/exec of ip(8). The namespaces are removed at exit, on a fatal
 * signal (INT, TERM, HUP, QUIT, ABRT, SEGV, BUS: re-raised after), and by
 * tp_hosts_abort(); the daemons started on a host are killed with them (and die
 * with the driver, PR_SET_PDEATHSIG, should it be killed with SIGKILL).
 * Env CFS_TEST_HOSTS: 0 loopback, 1 hosts are required, unset: hosts when possible.
 * Prints one line on stdout saying which mode, and in loopback mode why.
 * @return 1 hosts made; 0 loopback (nodes share 127.0.0.1, perhaps in the private
 *	   namespace); -EINVAL n out of range; with CFS_TEST_HOSTS=1, the reason's
 *	   -errno (-ENOENT no ip(8), -EPERM, -EIO ip failed) instead of 0.
 */
int tp_hosts_init(unsigned n);

/** Bring lo up in the network namespace this process is in (no ip(8) needed).
 *  @return 0, or -errno from socket/ioctl. */
int tp_lo_up(void);

/** Whether hosts mode is on (tp_hosts_init returned 1). */
bool tp_hosts_on(void);

/** Host k's address, "10.99.0.<k>", or "127.0.0.1" in loopback mode; static storage. */
const char *tp_host_addr(unsigned k);

/**
 * Take host k's link down or up (ip link set cfsv<k> down|up, the bridge side):
 * the host is cut from every other host and the driver, its processes run on.
 * @return 0; -ENOTSUP in loopback mode; -EINVAL k out of range; -EIO ip failed.
 */
int tp_host_link(unsigned k, bool up);

/** Kill the daemons started on hosts and remove the namespaces now; async-signal-safe
 *  (for a watchdog that _exit()s). Later tp_hosts_* calls see loopback mode. */
void tp_hosts_abort(void);

/** Test content: n xorshift bytes that are a function of seed only, so a reader
 *  can tell exactly which write it sees. */
void tp_fill(uint8_t *p, uint32_t n, uint64_t seed);

/** Remove path and everything below it; errors are ignored (best effort). */
void tp_rm_rf(const char *path);

/** A loopback TCP port free right now (the daemon binds it a moment later); 0 if none. */
unsigned tp_free_port(void);

/**
 * Write p->conf from c (p->port = c->port).
 * @return 0, or -errno from fopen.
 */
int tp_conf_write(struct tp_proc *p, const struct tp_conf *c);

/**
 * fork/exec `daemon -c p->conf [extra args]` with its output appended to p->log.
 * In hosts mode and p->host set, the child enters host p->host's namespace first
 * (setns, no shell) and has TP_PDEATHSIG whatever flags say.
 * @param extra NULL-terminated extra arguments, or NULL.
 * @return 0 (p->pid set), or -errno from open/fork/open of the namespace (p->pid 0).
 */
int tp_proc_start(struct tp_proc *p, const char *daemon, unsigned flags, const char *const *extra);

/**
 * Poll p->log every poll_ms until the daemon logs ": serving" (sets p->port from its
 * "port=N" when the line has one), at most guard_s seconds (a hang guard). An
 * appended log still holds an earlier run's line: restart with TP_LOG_TRUNC to wait.
 * @return 0; -ECHILD when the daemon exited (reaped, p->pid 0); -ETIMEDOUT.
 */
int tp_proc_wait_serving(struct tp_proc *p, double guard_s, unsigned poll_ms);

/** Whether the log holds a line containing what. */
bool tp_log_has(const struct tp_proc *p, const char *what);

/**
 * Send sig. SIGTERM is preceded by SIGCONT (a stopped daemon must see it); after
 * SIGTERM or SIGKILL the process is reaped and p->pid is 0.
 * @return the wait status when reaped, else -1 (also when nothing runs).
 */
int tp_proc_signal(struct tp_proc *p, int sig);

/** 0 while it runs; -ECHILD when it has exited (reaped, p->pid 0) or never ran. */
int tp_proc_check(struct tp_proc *p);

/** SIGKILL every running process of v[0..n), without waiting; async-signal-safe. */
void tp_procs_kill(const struct tp_proc *v, unsigned n);

/** SIGTERM every running process of v[0..n), then reap them all. */
void tp_procs_stop(struct tp_proc *v, unsigned n);

/** Seconds on a monotonic clock. */
double tp_now_s(void);

/** Sleep ms milliseconds. */
void tp_sleep_ms(unsigned ms);

/**
 * MGMTD_CREATE_CHAINS: chains of replicas (chains 0: as many as the targets allow).
 * @param created when not NULL, how many chains mgmtd built.
 * @param detail when not NULL, mgmtd's reason for a refusal ("" when none).
 * @return 0; the call's error (-ETIMEDOUT, -CFS_E*, the refusal's code); -ENOMEM.
 */
int tp_create_chains(struct cfs_client *c, cfs_addr_t mgmtd, unsigned replicas, unsigned chains,
		     uint32_t timeout_ms, unsigned *created, char *detail, size_t detail_size);

/**
 * Whether routing s has nchains chains (0: at least one), each of exactly replicas
 * members, every member serving: the cluster is ready for a workload.
 */
bool tp_chains_serving(const struct cfs_routing_snap *s, unsigned nchains, unsigned replicas);

#endif
