// SPDX-License-Identifier: MIT
/* chainfs ping: round trips to a node's control actor, like ping(8). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli/cli.h"

int
cli_ping(int argc, char **argv)
{
	unsigned long count = 3, interval_ms = 200, ok = 0;
	double min = 1e30, max = 0, sum = 0;
	struct cfs_client *c;
	struct rt_loop *loop;
	uint32_t node;
	uint64_t v;
	int opt;

	while ((opt = getopt(argc, argv, "c:i:")) != -1) {
		switch (opt) {
		case 'c':
			if (cli_parse_uint(optarg, UINT32_MAX, &v) != 0 || v == 0)
				goto usage;
			count = (unsigned long)v;
			break;
		case 'i':
			/* At most an hour between pings. */
			if (cli_parse_uint(optarg, 3600000, &v) != 0)
				goto usage;
			interval_ms = (unsigned long)v;
			break;
		default:
			goto usage;
		}
	}
	if (optind + 1 != argc)
		goto usage;
	c = cli_open(argv[optind], &node);
	if (!c)
		return 1;
	loop = rt_loop_at(cfs_client_rt(c), 0);

	for (unsigned long i = 0; i < count; i++) {
		struct rt_msg *req = rt_msg_new(CFS_MSG_PING), *resp = NULL;
		uint64_t t0;
		double us;
		int rc;

		if (!req) {
			cli_error("ping", -ENOMEM);
			break;
		}
		t0 = rt_now_ns(loop);
		RT_BODY(req, ping)->sent_ns = t0;
		rc = cfs_client_call(c, CFS_ADDR(node, CFS_LOCAL_NODECTL), req, 0, &resp);
		us = (double)(rt_now_ns(loop) - t0) / 1000.0;
		if (rc == 0 && RT_BODY(resp, ping_resp)->sent_ns != t0)
			rc = -CFS_EPROTO;	/* an answer to some other ping */
		if (rc == 0) {
			printf("reply from %s: node=%" PRIu32 " seq=%lu time=%.1f us\n",
			       argv[optind], RT_BODY(resp, ping_resp)->node_id, i + 1, us);
			ok++;
			sum += us;
			min = us < min ? us : min;
			max = us > max ? us : max;
		} else {
			printf("no reply from %s: seq=%lu %s (%s)\n", argv[optind], i + 1,
			       cfs_strerror(rc), cfs_errname(rc));
		}
		rt_msg_free(&resp);
		if (i + 1 < count && interval_ms) {
			struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};

			nanosleep(&ts, NULL);
		}
	}
	printf("%lu sent, %lu received", count, ok);
	if (ok)
		printf(", rtt min/avg/max = %.1f/%.1f/%.1f us", min, sum / ok, max);
	printf("\n");
	cfs_client_destroy(&c);
	return ok == count ? 0 : 1;
usage:
	fprintf(stderr, "usage: chainfs ping ADDR [-c COUNT] [-i INTERVAL_MS]\n");
	return 2;
}
