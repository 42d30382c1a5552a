// SPDX-License-Identifier: MIT
/*
 * chainfs admin, cluster views and actions at mgmtd:
 *   admin nodes MGMTD                              nodes, state, heartbeat age
 *   admin targets MGMTD                            targets, chain, states
 *   admin chains MGMTD                             chains, version, members in order
 *   admin create-chains MGMTD --replicas N [--chains K]
 *   admin offline-target MGMTD ID                  take a target out
 *   admin online-target MGMTD ID                   let it back in (resyncs)
 * MGMTD is host:port of the node that runs mgmtd. cli_admin_cluster() returns
 * -1 for a subcommand that is not one of these. (A node's own targets and their
 * counters: `admin target-stats ADDR`, in admin.c.)
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "client/routing.h"

static int
call_mgmtd(const char *endpoint, struct rt_msg *req, struct rt_msg **resp)
{
	struct cfs_client *c;
	uint32_t node;
	int rc;

	*resp = NULL;
	c = cli_open(endpoint, &node);
	if (!c) {
		rt_msg_free(&req);
		return -EINVAL;
	}
	rc = cfs_client_call(c, CFS_ADDR(node, CFS_LOCAL_MGMTD), req, 0, resp);
	cfs_client_destroy(&c);
	return rc;
}

static int
fetch_routing(const char *endpoint, struct rt_msg **resp, struct cfs_routing_ref *ref)
{
	struct rt_msg *req = rt_msg_new(CFS_MSG_MGMTD_ROUTING);
	int rc;

	if (!req)
		return -ENOMEM;
	RT_BODY(req, mgmtd_routing)->flags = CFS_ROUTING_F_FULL;
	rc = call_mgmtd(endpoint, req, resp);
	if (rc == 0 && !cfs_routing_ref_from((*resp)->type, (*resp)->body, ref))
		rc = -CFS_EPROTO;
	return rc;
}

static void
print_bytes_padded(const struct cfs_bytes *b, int width)
{
	printf("%-*.*s", width, (int)b->len, (const char *)b->p);
}

static int
show_nodes(const struct cfs_routing_ref *r)
{
	printf("routing_ver %" PRIu64 "  heartbeat %" PRIu32 " ms  lease %" PRIu32 " ms\n\n",
	       r->routing_ver, r->heartbeat_ms, r->lease_ms);
	printf("%-8s %-24s %-6s %-12s %s\n", "NODE", "ENDPOINT", "STATE", "HEARTBEAT", "TARGETS");
	for (uint32_t i = 0; i < r->nodes_count; i++) {
		const struct cfs_node_info *n = &r->nodes[i];
		uint32_t nt = 0;
		char age[32];

		for (uint32_t t = 0; t < r->targets_count; t++)
			nt += r->targets[t].node_id == n->node_id;
		snprintf(age, sizeof(age), "%" PRIu64 ".%01" PRIu64 " s ago", n->hb_age_ms / 1000,
			 n->hb_age_ms % 1000 / 100);
		printf("%-8" PRIu32 " ", n->node_id);
		print_bytes_padded(&n->endpoint, 24);
		printf(" %-6s %-12s %" PRIu32 "\n", n->state == CFS_NODE_UP ? "up" : "down", age,
		       nt);
	}
	return 0;
}

static int
show_targets(const struct cfs_routing_ref *r)
{
	printf("%-8s %-8s %-8s %-9s %-11s %-20s %-16s %s\n", "TARGET", "NODE", "CHAIN", "PUBLIC",
	       "LOCAL", "ADDRESS", "FORMAT", "PATH");
	for (uint32_t i = 0; i < r->targets_count; i++) {
		const struct cfs_target_info *t = &r->targets[i];
		char chain[24] = "-", format[24] = "-";

		if (t->chain_id)
			snprintf(chain, sizeof(chain), "%" PRIu64, t->chain_id);
		if (t->format_id)
			snprintf(format, sizeof(format), "%016" PRIx64, t->format_id);
		printf("%-8" PRIu32 " %-8" PRIu32 " %-8s %-9s %-11s 0x%016" PRIx64
		       "   %-16s %.*s\n",
		       t->target, t->node_id, chain,
		       t->chain_id ? cfs_target_state_name(t->public_state) : "-",
		       cfs_local_state_name(t->local_state), t->addr, format, (int)t->path.len,
		       (const char *)t->path.p);
	}
	return 0;
}

static int
show_chains(const struct cfs_routing_ref *r)
{
	printf("%-8s %-8s %s\n", "CHAIN", "VERSION", "MEMBERS (head first: target@node state)");
	for (uint32_t i = 0; i < r->chains_count; i++) {
		const struct cfs_chain_info *c = &r->chains[i];

		printf("%-8" PRIu64 " %-8" PRIu32, c->chain_id, c->chain_ver);
		for (uint32_t k = 0; k < c->count; k++) {
			const struct cfs_chain_member *m = &r->members[c->first + k];

			printf(" %" PRIu32 "@%" PRIu32 " %s%s", m->target, m->node_id,
			       cfs_target_state_name(m->public_state), k + 1 < c->count ? "," : "");
		}
		printf("\n");
	}
	return 0;
}

static int
cmd_show(const char *what, const char *endpoint)
{
	struct cfs_routing_ref ref;
	struct rt_msg *resp = NULL;
	int rc;

	rc = fetch_routing(endpoint, &resp, &ref);
	if (rc == -CFS_ENOACTOR) {
		fprintf(stderr, "chainfs: %s: no mgmtd runs at %s\n", what, endpoint);
		rt_msg_free(&resp);
		return 1;
	}
	if (rc != 0) {
		cli_error(what, rc);
		rt_msg_free(&resp);
		return 1;
	}
	if (strcmp(what, "nodes") == 0)
		show_nodes(&ref);
	else if (strcmp(what, "targets") == 0)
		show_targets(&ref);
	else
		show_chains(&ref);
	rt_msg_free(&resp);
	return 0;
}

static int
parse_u32(const char *s, uint32_t *out)
{
	uint64_t v;
	int rc = cli_parse_uint(s, UINT32_MAX, &v);

	if (rc == 0)
		*out = (uint32_t)v;
	return rc;
}

static int
cmd_create_chains(int argc, char **argv)
{
	static const struct option opts[] = {
		{"replicas", required_argument, NULL, 'r'},
		{"chains", required_argument, NULL, 'k'},
		{NULL, 0, NULL, 0},
	};
	struct cfs_mgmtd_create_chains *b;
	const struct cfs_mgmtd_create_chains_resp *r;
	struct rt_msg *req, *resp = NULL;
	uint32_t replicas = 0, chains = 0;
	int opt, rc;

	/* Parse after the subcommand's name; optind 0 resets getopt's state,
	 * which the global options left in "stop at the first operand" mode. */
	argc--;
	argv++;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "r:k:", opts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			if (parse_u32(optarg, &replicas) != 0 || replicas == 0)
				goto usage;
			break;
		case 'k':
			if (parse_u32(optarg, &chains) != 0)
				goto usage;
			break;
		default:
			goto usage;
		}
	}
	if (optind + 1 != argc || replicas == 0)
		goto usage;
	req = rt_msg_new(CFS_MSG_MGMTD_CREATE_CHAINS);
	if (!req) {
		cli_error("create-chains", -ENOMEM);
		return 1;
	}
	b = RT_BODY(req, mgmtd_create_chains);
	b->replicas = replicas;
	b->chains = chains;
	rc = call_mgmtd(argv[optind], req, &resp);
	r = resp ? RT_BODY(resp, mgmtd_create_chains_resp) : NULL;
	if (rc != 0) {
		cli_error("create-chains", rc);
		if (r && r->detail.len)
			fprintf(stderr, "chainfs: create-chains: %.*s\n", (int)r->detail.len,
				(const char *)r->detail.p);
		rt_msg_free(&resp);
		return 1;
	}
	printf("created %" PRIu32 " chain%s of %" PRIu32 " replicas (routing_ver %" PRIu64 ")\n",
	       r->created, r->created == 1 ? "" : "s", replicas, r->routing_ver);
	rt_msg_free(&resp);
	return 0;
usage:
	fprintf(stderr, "usage: chainfs admin create-chains MGMTD --replicas N [--chains K]\n");
	return 2;
}

static int
cmd_offline_target(const char *endpoint, const char *id, bool undo)
{
	struct rt_msg *req, *resp = NULL;
	uint32_t target;
	int rc;

	if (parse_u32(id, &target) != 0 || target == 0) {
		fprintf(stderr, "chainfs: %s: expected a target id\n", id);
		return 2;
	}
	req = rt_msg_new(CFS_MSG_MGMTD_OFFLINE_TARGET);
	if (!req) {
		cli_error("offline-target", -ENOMEM);
		return 1;
	}
	RT_BODY(req, mgmtd_offline_target)->target = target;
	RT_BODY(req, mgmtd_offline_target)->undo = undo;
	rc = call_mgmtd(endpoint, req, &resp);
	if (rc != 0) {
		cli_error(undo ? "online-target" : "offline-target", rc);
		rt_msg_free(&resp);
		return 1;
	}
	printf("target %" PRIu32 " %s (routing_ver %" PRIu64 ")\n", target,
	       undo ? "let back in" : "taken offline",
	       RT_BODY(resp, mgmtd_offline_target_resp)->routing_ver);
	rt_msg_free(&resp);
	return 0;
}

int
cli_admin_cluster(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "nodes") == 0 || strcmp(sub, "targets") == 0 ||
	    strcmp(sub, "chains") == 0) {
		if (argc != 3) {
			fprintf(stderr, "usage: chainfs admin %s MGMTD\n", sub);
			return 2;
		}
		return cmd_show(sub, argv[2]);
	}
	if (strcmp(sub, "create-chains") == 0)
		return cmd_create_chains(argc, argv);
	if (strcmp(sub, "offline-target") == 0 || strcmp(sub, "online-target") == 0) {
		if (argc != 4) {
			fprintf(stderr, "usage: chainfs admin %s MGMTD TARGET_ID\n", sub);
			return 2;
		}
		return cmd_offline_target(argv[2], argv[3], strcmp(sub, "online-target") == 0);
	}
	return -1;
}
