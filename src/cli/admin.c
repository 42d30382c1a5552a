// SPDX-License-Identifier: MIT
/* chainfs admin: operator views of a node. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "client/targets.h"

static int
admin_status(const char *endpoint)
{
	struct cfs_client *c;
	struct rt_msg *req, *resp = NULL;
	const struct cfs_status_resp *r;
	uint32_t node;
	int rc;

	c = cli_open(endpoint, &node);
	if (!c)
		return 1;
	req = rt_msg_new(CFS_MSG_STATUS);
	if (!req) {
		rc = -ENOMEM;
		goto out;
	}
	rc = cfs_client_call(c, CFS_ADDR(node, CFS_LOCAL_NODECTL), req, 0, &resp);
	if (rc != 0)
		goto out;
	r = RT_BODY(resp, status_resp);
	printf("node      %" PRIu32 "\n", r->node_id);
	printf("version   %.*s\n", (int)r->version.len, (const char *)r->version.p);
	printf("uptime    %" PRIu64 ".%03" PRIu64 " s\n", r->uptime_ms / 1000,
	       r->uptime_ms % 1000);
	printf("loops     %" PRIu32 "\n\n", r->loops_count);
	printf("%-5s %-4s %-7s %-12s %s\n", "LOOP", "CPU", "ACTORS", "HANDLED", "WAKEUPS");
	for (uint32_t i = 0; i < r->loops_count; i++) {
		const struct cfs_loop_info *l = &r->loops[i];

		printf("%-5" PRIu32 " %-4" PRId32 " %-7" PRIu32 " %-12" PRIu64 " %" PRIu64 "\n",
		       l->index, l->cpu, l->actors, l->handled, l->wakeups);
	}
	printf("\n%-12s %-20s %-5s %-8s %s\n", "KIND", "ADDRESS", "LOOP", "TAG", "HANDLED");
	for (uint32_t i = 0; i < r->actors_count; i++) {
		const struct cfs_actor_info *a = &r->actors[i];

		printf("%-12.*s 0x%016" PRIx64 "   %-5" PRIu32 " %-8" PRIu64 " %" PRIu64 "\n",
		       (int)a->kind.len, (const char *)a->kind.p, a->addr, a->loop, a->tag,
		       a->handled);
	}
out:
	if (rc != 0)
		cli_error("status", rc);
	rt_msg_free(&resp);
	cfs_client_destroy(&c);
	return rc == 0 ? 0 : 1;
}

/* Bytes as an operator reads them: 1.5G, 640K, 12. */
static const char *
human(uint64_t v, char *buf, size_t n)
{
	static const char units[] = "KMGTPE";
	double d = (double)v;
	int u = -1;

	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, n, "%" PRIu64, v);
	else
		snprintf(buf, n, "%.1f%c", d, units[u]);
	return buf;
}

/* Every storage target of a node: found through status, then target_stats each. */
static int
admin_target_stats(const char *endpoint)
{
	struct cfs_target_ref *v = NULL;
	struct cfs_client *c;
	unsigned n = 0, failed = 0;
	uint32_t node;
	int rc;

	c = cli_open(endpoint, &node);
	if (!c)
		return 1;
	rc = cfs_targets_list(c, node, &v, &n);
	if (rc != 0) {
		cli_error("status", rc);
		goto out;
	}
	printf("%-8s %-4s %-8s %-8s %-8s %-9s %-10s %-10s %-8s %-8s %-6s %-6s %-13s %s\n", "TARGET",
	       "LOOP", "CAPACITY", "USED", "FREE", "CHUNKS", "READS", "WRITES", "READ", "WRITTEN",
	       "CSUM", "IOERR", "RESYNC", "PATH");
	for (unsigned i = 0; i < n; i++) {
		struct rt_msg *req = rt_msg_new(CFS_MSG_TARGET_STATS), *resp = NULL;
		const struct cfs_target_stats_resp *r;
		char b[5][16], sync[48];

		if (!req) {
			rc = -ENOMEM;
			break;
		}
		RT_BODY(req, target_stats)->target = v[i].target;
		rc = cfs_client_call(c, v[i].addr, req, 0, &resp);
		if (rc != 0) {
			fprintf(stderr, "chainfs: target %" PRIu32 ": %s (%s)\n", v[i].target,
				cfs_strerror(rc), cfs_errname(rc));
			failed++;
			rt_msg_free(&resp);
			continue;
		}
		r = RT_BODY(resp, target_stats_resp);
		/* What its resync walks copied of what they compared. */
		snprintf(sync, sizeof(sync), "%" PRIu64 "/%" PRIu64, r->sync_copied,
			 r->sync_compared);
		printf("%-8" PRIu32 " %-4" PRIu32 " %-8s %-8s %-8s %-9" PRIu64 " %-10" PRIu64
		       " %-10" PRIu64 " %-8s %-8s %-6" PRIu64 " %-6" PRIu64 " %-13s %.*s\n",
		       r->target, v[i].loop, human(r->capacity, b[0], sizeof(b[0])),
		       human(r->used, b[1], sizeof(b[1])), human(r->free, b[2], sizeof(b[2])),
		       r->chunks, r->reads, r->writes, human(r->read_bytes, b[3], sizeof(b[3])),
		       human(r->write_bytes, b[4], sizeof(b[4])), r->checksum_errors, r->io_errors,
		       sync, (int)r->path.len, (const char *)r->path.p);
		rt_msg_free(&resp);
	}
	if (rc == 0 && failed)
		rc = -EIO;
	if (rc == -ENOMEM)
		cli_error("target-stats", rc);
out:
	free(v);
	cfs_client_destroy(&c);
	return rc == 0 ? 0 : 1;
}

int
cli_admin(int argc, char **argv)
{
	int rc;

	if (argc == 3 && strcmp(argv[1], "status") == 0)
		return admin_status(argv[2]);
	if (argc == 3 && strcmp(argv[1], "target-stats") == 0)
		return admin_target_stats(argv[2]);
	rc = cli_admin_cluster(argc, argv);
	if (rc >= 0)
		return rc;
	fprintf(stderr, "usage: chainfs admin status ADDR\n"
			"       chainfs admin target-stats ADDR\n"
			"       chainfs admin nodes|targets|chains MGMTD\n"
			"       chainfs admin create-chains MGMTD --replicas N [--chains K]\n"
			"       chainfs admin offline-target|online-target MGMTD TARGET_ID\n");
	return 2;
}
