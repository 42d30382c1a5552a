// SPDX-License-Identifier: MIT
/*
 * bench/net.c: the benchmarks' private network namespace (see net.h). Loopback
 * is brought up as the test harness does (tp_lo_up) and BIG TCP is set with one
 * RTM_NEWLINK request, so no tool (ip) is needed. Why BIG TCP: every 64 KiB segment costs
 * the sender a trip through loopback's transmit and the receiver's TCP stack;
 * with 512 KiB segments a 1 MiB payload costs two trips instead of sixteen, and
 * on this machine loopback TCP moves about twice the bytes per CPU second.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/net.h"
#include "tests/proc.h"

/* Linux 6.3 attributes, missing from older headers: the IPv4 limits (IPv4 keeps
 * 64 KiB unless these are raised as well). */
#define BENCH_IFLA_GSO_IPV4_MAX_SIZE 63
#define BENCH_IFLA_GRO_IPV4_MAX_SIZE 64
#define BIG_TCP_SIZE		     524280u /* the kernel's largest, 512 KiB - 8 */

static char g_desc[256];

static void
put_u32_attr(char *buf, size_t *len, unsigned short type, unsigned v)
{
	struct rtattr *a = (struct rtattr *)(buf + *len);

	a->rta_type = type;
	a->rta_len = RTA_LENGTH(sizeof(v));
	memcpy(RTA_DATA(a), &v, sizeof(v));
	*len += RTA_ALIGN(a->rta_len);
}

/* Raise loopback's GSO and GRO limits, IPv6 and IPv4, in one request. */
static int
lo_big_tcp(void)
{
	char buf[256] __attribute__((aligned(NLMSG_ALIGNTO))) = {0};
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	struct ifinfomsg *ifi = NLMSG_DATA(h);
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	size_t len = NLMSG_LENGTH(sizeof(*ifi));
	char ack[512];
	ssize_t n;
	int fd, rc;

	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = (int)if_nametoindex("lo");
	if (ifi->ifi_index == 0)
		return -ENODEV;
	put_u32_attr(buf, &len, IFLA_GSO_MAX_SIZE, BIG_TCP_SIZE);
	put_u32_attr(buf, &len, IFLA_GRO_MAX_SIZE, BIG_TCP_SIZE);
	put_u32_attr(buf, &len, BENCH_IFLA_GSO_IPV4_MAX_SIZE, BIG_TCP_SIZE);
	put_u32_attr(buf, &len, BENCH_IFLA_GRO_IPV4_MAX_SIZE, BIG_TCP_SIZE);
	h->nlmsg_len = (unsigned)len;
	h->nlmsg_type = RTM_NEWLINK;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	h->nlmsg_seq = 1;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	if (sendto(fd, buf, len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		rc = -errno;
		goto out;
	}
	n = recv(fd, ack, sizeof(ack), 0);
	if (n < 0) {
		rc = -errno;
		goto out;
	}
	h = (struct nlmsghdr *)ack;
	if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) || h->nlmsg_type != NLMSG_ERROR) {
		rc = -EPROTO;
		goto out;
	}
	rc = ((struct nlmsgerr *)NLMSG_DATA(h))->error; /* 0, or -errno */
out:
	close(fd);
	return rc;
}

const char *
bench_net_setup(void)
{
	const char *want = getenv("BENCH_NET");
	int rc;

	if (want && strcmp(want, "host") == 0)
		return "network: the machine's loopback (BENCH_NET=host)";
	if (want && *want && strcmp(want, "private") != 0 && strcmp(want, "bigtcp") != 0) {
		fprintf(stderr, "BENCH_NET=%s: expected bigtcp, private or host\n", want);
		exit(2);
	}
	if (unshare(CLONE_NEWNET) != 0) {
		snprintf(g_desc, sizeof(g_desc),
			 "network: the machine's loopback (no private namespace: %s)",
			 strerror(errno));
		return g_desc;
	}
	rc = tp_lo_up();
	if (rc != 0) {
		fprintf(stderr, "bench: cannot bring loopback up in the private namespace: %s\n",
			strerror(-rc));
		exit(1);
	}
	if (want && strcmp(want, "private") == 0)
		return "network: private namespace, loopback with 64 KiB segments (BENCH_NET=private)";
	rc = lo_big_tcp();
	if (rc != 0)
		snprintf(g_desc, sizeof(g_desc),
			 "network: private namespace, loopback with 64 KiB segments (BIG TCP "
			 "refused: %s)",
			 strerror(-rc));
	else
		snprintf(g_desc, sizeof(g_desc),
			 "network: private namespace, loopback with 512 KiB segments (BIG TCP; "
			 "BENCH_NET=private or host for the defaults)");
	return g_desc;
}
