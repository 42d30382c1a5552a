// SPDX-License-Identifier: MIT
/*
 * tests/proc.c: real chainfsd processes for integration tests and benches (see
 * tests/proc.h). Owns the data-directory removal, free loopback ports, node
 * configuration files, fork/exec with a log, the wait for the daemon's
 * ": serving" line, signalling and reaping, the MGMTD_CREATE_CHAINS call, and
 * hosts mode: the driver's private network namespace, one named namespace per
 * host wired to a bridge with veth pairs (fork/exec of ip(8), which every test
 * machine with iproute2 has, rather than our own netlink code), and their removal.
 * Everything here polls; nothing asserts on time.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* setns, unshare, CLONE_NEWNET */
#endif
#include "tests/proc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chainfs/proto.h"
#include "client/client.h"
#include "client/routing.h"

#define MAX_ARGS  16
#define NETNS_DIR "/run/netns"
#define BRIDGE	  "cfsbr"
#define NET	  "10.99.0."
#define MAX_PIDS  64 /* daemons started on hosts and not reaped yet */

/* Hosts mode. Plain globals: the signal handler reads them, the main thread
 * writes them before the handlers are installed or while it runs alone. */
static struct {
	volatile sig_atomic_t on;	 /* hosts made (or being made: teardown removes them) */
	pid_t owner;			 /* the driver: forked children do not tear down */
	unsigned n;			 /* hosts named so far */
	char ip[64];			 /* the ip(8) binary */
	char err[128];			 /* the last ip(8) command that failed, and how */
	char name[TP_HOSTS_MAX + 1][32]; /* cfs<pid>n<k>, by k */
	char path[TP_HOSTS_MAX + 1][64]; /* /run/netns/<name> */
	char addr[TP_HOSTS_MAX + 1][16]; /* 10.99.0.<k> */
	volatile pid_t pids[MAX_PIDS];	 /* 0: free slot */
	struct sigaction old[NSIG];
} g_hosts;

static const int g_fatal[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS};

void
tp_fill(uint8_t *p, uint32_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (uint32_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 24);
	}
}

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
	fprintf(f, "[node]\nid = %u\nlisten = %s:%u\n", c->id, c->host ? c->host : "127.0.0.1",
		c->port);
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

/* Remember a daemon started on a host, so a fatal signal can kill it. */
static void
pid_track(pid_t pid)
{
	for (unsigned i = 0; i < MAX_PIDS; i++) {
		if (g_hosts.pids[i] == 0) {
			g_hosts.pids[i] = pid;
			return;
		}
	}
}

/* The process is reaped: its pid may be reused, never kill it again. */
static void
pid_forget(pid_t pid)
{
	for (unsigned i = 0; pid > 0 && i < MAX_PIDS; i++) {
		if (g_hosts.pids[i] == pid)
			g_hosts.pids[i] = 0;
	}
}

int
tp_proc_start(struct tp_proc *p, const char *daemon, unsigned flags, const char *const *extra)
{
	int oflags = O_WRONLY | O_CREAT | (flags & TP_LOG_TRUNC ? O_TRUNC : O_APPEND);
	const char *argv[MAX_ARGS + 4] = {daemon, "-c", p->conf};
	bool on_host = g_hosts.on && p->host >= 1 && p->host <= g_hosts.n;
	int fd, nsfd = -1;
	unsigned a = 3;
	int rc;

	if (on_host) {
		/* Opened here, so a missing namespace is an error the caller sees. */
		nsfd = open(g_hosts.path[p->host], O_RDONLY | O_CLOEXEC);
		if (nsfd < 0)
			return -errno;
		/* Its namespace has no name once the driver is gone: die with it. */
		flags |= TP_PDEATHSIG;
	}
	fd = open(p->log, oflags, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out_ns;
	}
	for (unsigned i = 0; extra && extra[i] && i < MAX_ARGS; i++)
		argv[a++] = extra[i];
	argv[a] = NULL;
	p->pid = fork();
	if (p->pid < 0) {
		rc = -errno;
		p->pid = 0;
		goto out_fd;
	}
	if (p->pid == 0) {
		/* A driver killed half-way leaves no cluster behind. */
		if (flags & TP_PDEATHSIG)
			prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (!(flags & TP_STDERR_ONLY))
			dup2(fd, 1);
		dup2(fd, 2);
		if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) != 0) {
			static const char msg[] = "tp_proc_start: setns failed\n";

			if (write(2, msg, sizeof(msg) - 1) < 0)
				_exit(126);
			_exit(126);
		}
		execv(daemon, (char *const *)argv);
		_exit(127);
	}
	if (on_host)
		pid_track(p->pid);
	rc = 0;
out_fd:
	close(fd);
out_ns:
	if (nsfd >= 0)
		close(nsfd);
	return rc;
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
		pid_forget(p->pid);
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
	pid_forget(p->pid);
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
		pid_forget(v[i].pid);
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

/* ------------------------------------------------------------------ hosts */

/* Run `ip args...` (NULL-terminated) with its output on ours; 0 when it exits 0. */
static int
run_ip(const char *arg0, ...)
{
	const char *argv[MAX_ARGS + 2] = {g_hosts.ip};
	unsigned a = 1;
	va_list ap;
	pid_t pid;
	int st;

	va_start(ap, arg0);
	for (const char *x = arg0; x && a <= MAX_ARGS; x = va_arg(ap, const char *))
		argv[a++] = x;
	va_end(ap);
	argv[a] = NULL;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execv(g_hosts.ip, (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	{
		size_t o = (size_t)snprintf(g_hosts.err, sizeof(g_hosts.err), "ip");

		for (unsigned i = 1; argv[i] && o < sizeof(g_hosts.err); i++)
			o += (size_t)snprintf(g_hosts.err + o, sizeof(g_hosts.err) - o, " %s",
					      argv[i]);
		if (o < sizeof(g_hosts.err))
			snprintf(g_hosts.err + o, sizeof(g_hosts.err) - o, ": %s %d",
				 WIFEXITED(st) ? "exit" : "signal",
				 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	}
	fprintf(stderr, "hosts: %s\n", g_hosts.err);
	return -EIO;
}

/* What ip(8) does for `ip netns del`, with async-signal-safe calls only. */
static void
netns_remove(const char *path)
{
	umount2(path, MNT_DETACH);
	unlink(path);
}

/* Kill the hosts' daemons and remove the namespaces (the bridge and the veth ends
 * go with the driver's namespace and the hosts'). Async-signal-safe. */
static void
hosts_teardown(void)
{
	if (!g_hosts.on || getpid() != g_hosts.owner)
		return;
	g_hosts.on = 0;
	for (unsigned i = 0; i < MAX_PIDS; i++) {
		if (g_hosts.pids[i] > 0)
			kill(g_hosts.pids[i], SIGKILL);
	}
	for (unsigned k = 1; k <= g_hosts.n; k++)
		netns_remove(g_hosts.path[k]);
}

void
tp_hosts_abort(void)
{
	hosts_teardown();
}

static void
on_fatal(int sig)
{
	int saved = errno;

	hosts_teardown();
	/* The program's own disposition (or the default) decides what happens now. */
	sigaction(sig, &g_hosts.old[sig], NULL);
	errno = saved;
	raise(sig);
}

/* At exit: the daemons should be gone (the program stopped them); kill what is
 * left, reap it, then `ip netns del` each host. */
static void
hosts_atexit(void)
{
	if (!g_hosts.on || getpid() != g_hosts.owner)
		return;
	for (unsigned i = 0; i < MAX_PIDS; i++) {
		pid_t pid = g_hosts.pids[i];

		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			g_hosts.pids[i] = 0;
		}
	}
	for (unsigned k = 1; k <= g_hosts.n; k++) {
		/* The last one may not exist: named before ip netns add failed. */
		if (access(g_hosts.path[k], F_OK) == 0 &&
		    run_ip("netns", "del", g_hosts.name[k], NULL) != 0)
			netns_remove(g_hosts.path[k]);
	}
	g_hosts.on = 0;
}

/* Remove cfs<pid>n<k> namespaces whose driver is dead (killed with SIGKILL, say). */
static void
remove_stale(void)
{
	DIR *d = opendir(NETNS_DIR);
	struct dirent *e;

	while (d && (e = readdir(d)) != NULL) {
		char path[300];
		int pid = 0, len = 0;
		unsigned k;

		if (sscanf(e->d_name, "cfs%dn%u%n", &pid, &k, &len) != 2 ||
		    e->d_name[len] != '\0' || pid <= 0 || pid == getpid())
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), NETNS_DIR "/%s", e->d_name);
		printf("hosts: removing stale namespace %s (pid %d is gone)\n", e->d_name, pid);
		if (run_ip("netns", "del", e->d_name, NULL) != 0)
			netns_remove(path);
	}
	if (d)
		closedir(d);
}

int
tp_lo_up(void)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int rc = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
		rc = -errno;
		goto out_fd;
	}
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
		rc = -errno;
out_fd:
	close(fd);
	return rc;
}

static bool
find_ip(void)
{
	static const char *const where[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};

	for (unsigned i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		if (access(where[i], X_OK) == 0) {
			snprintf(g_hosts.ip, sizeof(g_hosts.ip), "%s", where[i]);
			return true;
		}
	}
	return false;
}

/* The bridge and host k's namespace, veth pair and addresses. */
static int
host_make(unsigned k)
{
	char veth[IFNAMSIZ], cidr[32];
	int rc;

	snprintf(veth, sizeof(veth), "cfsv%u", k);
	snprintf(cidr, sizeof(cidr), "%s/24", g_hosts.addr[k]);
	/* Named (and counted for the teardown) before it exists. */
	g_hosts.n = k;
	rc = run_ip("netns", "add", g_hosts.name[k], NULL);
	if (rc == 0)
		rc = run_ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns",
			    g_hosts.name[k], NULL);
	if (rc == 0)
		rc = run_ip("link", "set", veth, "master", BRIDGE, "up", NULL);
	if (rc == 0)
		rc = run_ip("-n", g_hosts.name[k], "addr", "add", cidr, "dev", "eth0", NULL);
	if (rc == 0)
		rc = run_ip("-n", g_hosts.name[k], "link", "set", "eth0", "up", NULL);
	if (rc == 0)
		rc = run_ip("-n", g_hosts.name[k], "link", "set", "lo", "up", NULL);
	return rc;
}

static int
hosts_make(unsigned n, char *why, size_t why_size)
{
	struct sigaction sa = {.sa_handler = on_fatal};
	int rc;

	g_hosts.owner = getpid();
	for (unsigned k = 1; k <= n; k++) {
		snprintf(g_hosts.name[k], sizeof(g_hosts.name[k]), "cfs%dn%u", (int)g_hosts.owner,
			 k);
		snprintf(g_hosts.path[k], sizeof(g_hosts.path[k]), NETNS_DIR "/%s",
			 g_hosts.name[k]);
		snprintf(g_hosts.addr[k], sizeof(g_hosts.addr[k]), NET "%u", k);
	}
	remove_stale();
	/* From here on whatever exists is removed however the program ends. */
	g_hosts.on = 1;
	atexit(hosts_atexit);
	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < sizeof(g_fatal) / sizeof(g_fatal[0]); i++)
		sigaction(g_fatal[i], &sa, &g_hosts.old[g_fatal[i]]);
	rc = run_ip("link", "add", BRIDGE, "type", "bridge", NULL);
	if (rc == 0)
		rc = run_ip("link", "set", BRIDGE, "up", NULL);
	if (rc == 0)
		rc = run_ip("addr", "add", NET "254/24", "dev", BRIDGE, NULL);
	for (unsigned k = 1; rc == 0 && k <= n; k++)
		rc = host_make(k);
	if (rc != 0) {
		snprintf(why, why_size, "%s", rc == -EIO ? g_hosts.err : strerror(-rc));
		hosts_atexit();
	}
	return rc;
}

int
tp_hosts_init(unsigned n)
{
	const char *env = getenv("CFS_TEST_HOSTS");
	bool required = env && strcmp(env, "1") == 0;
	char why[160] = "";
	bool private = false;
	int rc;

	if (n == 0 || n > TP_HOSTS_MAX)
		return -EINVAL;
	if (env && strcmp(env, "0") == 0) {
		printf("hosts: off (CFS_TEST_HOSTS=0); nodes share loopback\n");
		return 0;
	}
	/* Private first: a failure below still leaves the machine's network alone. */
	if (unshare(CLONE_NEWNET) != 0) {
		rc = -errno;
		snprintf(why, sizeof(why), "unshare(CLONE_NEWNET): %s", strerror(-rc));
		goto out_loopback;
	}
	private = true;
	rc = tp_lo_up();
	if (rc != 0) {
		/* Without lo, not even loopback works in here: a hard failure. */
		fprintf(stderr, "hosts: lo up in the private namespace: %s\n", strerror(-rc));
		return rc;
	}
	if (!find_ip()) {
		rc = -ENOENT;
		snprintf(why, sizeof(why), "no ip(8): install iproute2");
		goto out_loopback;
	}
	rc = hosts_make(n, why, sizeof(why));
	if (rc != 0)
		goto out_loopback;
	printf("hosts: %u network namespaces %s..%s, %s1..%s%u/24 on bridge %s; this driver "
	       "is %s254 in a private namespace\n",
	       n, g_hosts.name[1], g_hosts.name[n], NET, NET, n, BRIDGE, NET);
	return 1;

out_loopback:
	g_hosts.n = 0;
	printf("hosts: network namespaces unavailable (%s); nodes share loopback%s\n", why,
	       private ? " in a private namespace" : "");
	return required ? (rc < 0 ? rc : -EIO) : 0;
}

bool
tp_hosts_on(void)
{
	return g_hosts.on && g_hosts.n > 0;
}

const char *
tp_host_addr(unsigned k)
{
	if (!tp_hosts_on() || k < 1 || k > g_hosts.n)
		return "127.0.0.1";
	return g_hosts.addr[k];
}

int
tp_host_link(unsigned k, bool up)
{
	char veth[IFNAMSIZ];

	if (!tp_hosts_on())
		return -ENOTSUP;
	if (k < 1 || k > g_hosts.n)
		return -EINVAL;
	snprintf(veth, sizeof(veth), "cfsv%u", k);
	return run_ip("link", "set", veth, up ? "up" : "down", NULL);
}
