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
};

/* Flags of tp_proc_start(). */
#define TP_LOG_TRUNC   (1u << 0) /**< truncate the log (default: append across restarts) */
#define TP_STDERR_ONLY (1u << 1) /**< only stderr goes to the log; stdout is inherited */
#define TP_PDEATHSIG   (1u << 2) /**< the daemon dies with this process */

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
 * @param extra NULL-terminated extra arguments, or NULL.
 * @return 0 (p->pid set), or -errno from open/fork (p->pid 0).
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
