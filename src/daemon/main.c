// SPDX-License-Identifier: MIT
/*
 * chainfsd: one binary for every server role. It reads its INI config, starts
 * one pinned libev loop per core, spawns the actors the config names and runs
 * until SIGTERM/SIGINT. Signals are blocked in every thread and taken here
 * with sigwait, so no handler ever runs inside a loop.
 */
#define RT_LOG_SUBSYS "chainfsd"
#include <config.h>

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon/conf.h"
#include "daemon/daemon.h"
#include "rt/rt.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: chainfsd -c FILE [--log-level LEVEL]\n"
		"       chainfsd --check-config -c FILE\n"
		"       chainfsd --version | --help\n"
		"\n"
		"  -c, --config FILE   configuration file (see chainfs.conf(5))\n"
		"  -l, --log-level L   error, warn, info or debug (overrides [node] log_level)\n"
		"  -t, --check-config  validate the configuration and exit\n"
		"  -V, --version       print the version and exit\n"
		"  -h, --help          this text\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"log-level", required_argument, NULL, 'l'},
		{"check-config", no_argument, NULL, 't'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL, *level = NULL;
	bool check_only = false;
	struct cfsd_config cfg;
	struct cfsd_config_errors errs;
	struct cfsd *d = NULL;
	enum rt_log_level lvl = RT_LOG_INFO;
	int c, rc;

	while ((c = getopt_long(argc, argv, "c:l:tVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'l': level = optarg; break;
		case 't': check_only = true; break;
		case 'V': printf("chainfsd %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (level && rt_log_parse_level(level, &lvl) != 0) {
		fprintf(stderr, "chainfsd: --log-level: expected error, warn, info or debug\n");
		return 2;
	}

	rc = cfsd_config_load(path, &cfg, &errs);
	for (unsigned i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msg[i]);
	if (errs.dropped)
		fprintf(stderr, "%s: %u more errors not shown\n", path, errs.dropped);
	if (rc != 0) {
		cfsd_config_fini(&cfg);
		return 1;
	}
	if (check_only) {
		printf("%s: ok\n", path);
		cfsd_config_fini(&cfg);
		return 0;
	}
	rt_log_set_level(level ? lvl : (enum rt_log_level)cfg.log_level);

	/* Block the stop signals before any thread exists: loops inherit the
	 * mask, and this thread takes them synchronously. */
	sigset_t set;
	int sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = cfsd_start(&cfg, &d);
	if (rc != 0) {
		RT_ERR(rc, "startup failed config=%s", path);
		cfsd_config_fini(&cfg);
		return 1;
	}
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			RT_INFO("SIGHUP ignored: configuration is read at start only");
			continue;
		}
		break;
	}
	RT_INFO("signal=%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	cfsd_stop(&d);
	cfsd_config_fini(&cfg);
	return 0;
}
