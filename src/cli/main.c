// SPDX-License-Identifier: MIT
/*
 * chainfs: the command line. Global options, then a subcommand from the table.
 * Exit codes: 0 success, 1 the operation failed, 2 usage error.
 */
#include <config.h>

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "rt/rt.h"

struct cli_opts g_cli = {.timeout_ms = 5000};

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} cmds[] = {
	{"ping", cli_ping, "ping ADDR [-c COUNT] [-i INTERVAL_MS]   round trips to a node"},
	{"admin", cli_admin, "admin status|targets ADDR               what a node runs, its targets"},
	{"chunk", cli_chunk, "chunk put|get|stat|list|rm ADDR TARGET|--mgmtd ADDR --chain ID ..."},
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: chainfs [-t TIMEOUT_MS] [-v] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %s\n", cmds[i].help);
	fprintf(f, "\n  -t, --timeout MS   per-request timeout (default 5000)\n"
		   "  -v, --verbose      log runtime messages at debug level\n"
		   "  -V, --version      print the version\n"
		   "  -h, --help         this text\n"
		   "ADDR is host:port of a chainfsd. See chainfs(1).\n");
}

struct cfs_client *
cli_open(const char *endpoint, uint32_t *node)
{
	struct cfs_client_opts o = {.timeout_ms = g_cli.timeout_ms};
	struct cfs_client *c;
	int rc;

	rc = cfs_client_create(&o, &c);
	if (rc != 0) {
		cli_error("cannot start client", rc);
		return NULL;
	}
	rc = cfs_client_connect(c, endpoint, node);
	if (rc != 0) {
		fprintf(stderr, "chainfs: %s: expected host:port\n", endpoint);
		cfs_client_destroy(&c);
		return NULL;
	}
	return c;
}

void
cli_error(const char *what, int rc)
{
	fprintf(stderr, "chainfs: %s: %s (%s)\n", what, cfs_strerror(rc), cfs_errname(rc));
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"timeout", required_argument, NULL, 't'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t ms;
	int c;

	/* Stop at the subcommand: its options are its own. */
	while ((c = getopt_long(argc, argv, "+t:vVh", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (cli_parse_uint(optarg, UINT32_MAX, &ms) != 0 || ms == 0) {
				fprintf(stderr, "chainfs: -t: expected milliseconds, 1 to %u\n",
					UINT32_MAX);
				return 2;
			}
			g_cli.timeout_ms = (uint32_t)ms;
			break;
		case 'v': g_cli.verbose = true; break;
		case 'V': printf("chainfs %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	rt_log_set_level(g_cli.verbose ? RT_LOG_DEBUG : RT_LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[optind], cmds[i].name) == 0) {
			int sub_argc = argc - optind;

			optind = 0;	/* reinitialise getopt: subcommands parse their own options */
			return cmds[i].fn(sub_argc, argv + argc - sub_argc);
		}
	}
	fprintf(stderr, "chainfs: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return 2;
}
