// SPDX-License-Identifier: MIT
/*
 * tests/proc.c: real chainfsd processes for integration tests and benches (see
 * tests/proc.h). Owns the data-directory removal, free loopback ports, node
 * configuration files, fork/exec with a log, the wait for the daemon's
 * ": serving" line, signalling and reaping, and the MGMTD_CREATE_CHAINS call.
 * Everything here polls; nothing asserts on time.
 */
#include "tests/proc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chainfs/proto.h"
#include "client/client.h"
#include "client/routing.h"

#define MAX_ARGS 16

void
tp_rm_rf(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char p[1024];

	if (!d) {
		unlink(path);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		tp_rm_rf(p);
	}
	closedir(d);
	rmdir(path);
}

unsigned
tp_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned port = 0;

	if (fd < 0)
		return 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

int
tp_conf_write(struct tp_proc *p, const struct tp_conf *c)
{
	FILE *f = fopen(p->conf, "w");

	if (!f)
		return -errno;
	p->port = c->port;
	fprintf(f, "[node]\nid = %u\nlisten = 127.0.0.1:%u\n", c->id, c->port);
	if (c->loops)
		fprintf(f, "loops = %s\n", c->loops);
	/* Not pinned: the daemons and the driver share the machine's cores. */
	fprintf(f, "pin = no\n");
	if (c->log_level)
		fprintf(f, "log_level = %s\n", c->log_level);
	if (c->mgmtd)
		fprintf(f, "mgmtd = %s\n", c->mgmtd);
	if (c->mgmtd_db) {
		fprintf(f, "[mgmtd]\ndb = %s\n", c->mgmtd_db);
		if (c->heartbeat_ms)
			fprintf(f, "heartbeat_ms = %u\n", c->heartbeat_ms);
		if (c->lease_ms)
			fprintf(f, "lease_ms = %u\n", c->lease_ms);
	}
	for (unsigned k = 0; k < c->ntargets; k++) {
		fprintf(f, "[target.%u]\n", c->targets[k]);
		if (c->target_path)
			fprintf(f, "path = %s\n", c->target_path);
		else
			fprintf(f, "path = %s/t%u\n", c->target_dir, c->targets[k]);
		fprintf(f, "capacity = %s\n", c->capacity);
	}
	if (fclose(f) != 0)
		return -errno;
	return 0;
}

int
tp_proc_start(struct tp_proc *p, const char *daemon, unsigned flags, const char *const *extra)
{
	int oflags = O_WRONLY | O_CREAT | (flags & TP_LOG_TRUNC ? O_TRUNC : O_APPEND);
	const char *argv[MAX_ARGS + 4] = {daemon, "-c", p->conf};
	int fd = open(p->log, oflags, 0644);
	unsigned a = 3;
	int rc;

	if (fd < 0)
		return -errno;
	for (unsigned i = 0; extra && extra[i] && i < MAX_ARGS; i++)
		argv[a++] = extra[i];
	argv[a] = NULL;
	p->pid = fork();
	if (p->pid < 0) {
		rc = -errno;
		p->pid = 0;
		close(fd);
		return rc;
	}
	if (p->pid == 0) {
		/* A driver killed half-way leaves no cluster behind. */
		if (flags & TP_PDEATHSIG)
			prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (!(flags & TP_STDERR_ONLY))
			dup2(fd, 1);
		dup2(fd, 2);
		execv(daemon, (char *const *)argv);
		_exit(127);
	}
	close(fd);
	return 0;
}

bool
tp_log_has(const struct tp_proc *p, const char *what)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(p->log, "r");

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, what) != NULL;
	if (f)
		fclose(f);
	return found;
}

/* The daemon's "port=N: serving" line: true when seen, *port = N (0 without port=). */
static bool
serving_line(const struct tp_proc *p, unsigned *port)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(p->log, "r");

	while (f && fgets(line, sizeof(line), f)) {
		char *q = strstr(line, " port=");

		if (strstr(line, ": serving")) {
			found = true;
			*port = q ? (unsigned)strtoul(q + 6, NULL, 10) : 0;
		}
	}
	if (f)
		fclose(f);
	return found;
}

int
tp_proc_check(struct tp_proc *p)
{
	int st;

	if (p->pid <= 0)
		return -ECHILD;
	if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
		p->pid = 0;
		return -ECHILD;
	}
	return 0;
}

int
tp_proc_wait_serving(struct tp_proc *p, double guard_s, unsigned poll_ms)
{
	double t0 = tp_now_s();
	unsigned port = 0;

	for (;;) {
		if (tp_proc_check(p) != 0)
			return -ECHILD;
		if (serving_line(p, &port)) {
			if (port)
				p->port = port;
			return 0;
		}
		if (tp_now_s() - t0 > guard_s)
			return -ETIMEDOUT;
		tp_sleep_ms(poll_ms);
	}
}

int
tp_proc_signal(struct tp_proc *p, int sig)
{
	int st;

	if (p->pid <= 0)
		return -1;
	if (sig == SIGTERM)
		kill(p->pid, SIGCONT);
	kill(p->pid, sig);
	if (sig != SIGKILL && sig != SIGTERM)
		return -1;
	if (waitpid(p->pid, &st, 0) != p->pid)
		st = -1;
	p->pid = 0;
	return st;
}

void
tp_procs_kill(const struct tp_proc *v, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (v[i].pid > 0)
			kill(v[i].pid, SIGKILL);
	}
}

void
tp_procs_stop(struct tp_proc *v, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (v[i].pid > 0) {
			kill(v[i].pid, SIGCONT);
			kill(v[i].pid, SIGTERM);
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (v[i].pid > 0)
			waitpid(v[i].pid, NULL, 0);
		v[i].pid = 0;
	}
}

double
tp_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
tp_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int
tp_create_chains(struct cfs_client *c, cfs_addr_t mgmtd, unsigned replicas, unsigned chains,
		 uint32_t timeout_ms, unsigned *created, char *detail, size_t detail_size)
{
	struct rt_msg *req = rt_msg_new(CFS_MSG_MGMTD_CREATE_CHAINS), *resp = NULL;
	const struct cfs_mgmtd_create_chains_resp *r;
	int rc;

	if (detail && detail_size)
		detail[0] = '\0';
	if (!req)
		return -ENOMEM;
	RT_BODY(req, mgmtd_create_chains)->replicas = replicas;
	RT_BODY(req, mgmtd_create_chains)->chains = chains;
	rc = cfs_client_call(c, mgmtd, req, timeout_ms, &resp);
	r = resp ? RT_BODY(resp, mgmtd_create_chains_resp) : NULL;
	if (rc != 0 && r && detail && detail_size)
		snprintf(detail, detail_size, "%.*s", (int)r->detail.len,
			 (const char *)r->detail.p);
	if (rc == 0 && created)
		*created = r->created;
	rt_msg_free(&resp);
	return rc;
}

bool
tp_chains_serving(const struct cfs_routing_snap *s, unsigned nchains, unsigned replicas)
{
	if (nchains ? s->nchains != nchains : s->nchains == 0)
		return false;
	for (uint32_t i = 0; i < s->nchains; i++) {
		const struct cfs_route_chain *c = &s->chains[i];

		if (c->count != replicas)
			return false;
		for (uint32_t k = 0; k < c->count; k++) {
			if (c->members[k].state != CFS_TS_SERVING)
				return false;
		}
	}
	return true;
}
