// SPDX-License-Identifier: MIT
/*
 * chainfs chunk: low-level access to one storage target's chunks, for
 * debugging and tests: put (write a file's bytes into a chunk), get (read them
 * back, checking the CRC32C end to end), stat (query), list (paged) and rm.
 * Two ways to name where a chunk lives:
 *   direct   ADDR TARGET: one node's target, found through the node's status
 *            (src/client/targets.c); the request goes to that target only;
 *   cluster  --mgmtd ADDR --chain ID: the chunk client (src/client/chunk_client.c)
 *            with routing from mgmtd: writes go to the chain's head, reads to a
 *            serving replica (--replica N picks one), with retries across a
 *            failover; list asks one member (the head, or --replica N) directly
 *            after looking it up in the routing, with no retries.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cli/cli.h"
#include "client/chunk_client.h"
#include "client/routing.h"
#include "client/targets.h"
#include "disk/disk.h"

#define CHUNK_DEFAULT_SIZE (1u << 20)
#define CHUNK_LIST_PAGE	   1024u

static int
parse_target(const char *s, uint32_t *out)
{
	uint64_t v;

	if (cli_parse_uint(s, UINT32_MAX, &v) != 0 || v == 0)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* What every chunk subcommand starts with: a client, the target's address. */
struct chunk_ctx {
	struct cfs_client *c;
	uint32_t node;
	uint32_t target;
	cfs_addr_t addr;
};

static int
chunk_open(struct chunk_ctx *x, const char *endpoint, const char *target)
{
	int rc;

	if (parse_target(target, &x->target) != 0) {
		fprintf(stderr, "chainfs: %s: expected a target id (1..4294967295)\n", target);
		return 2;
	}
	x->c = cli_open(endpoint, &x->node);
	if (!x->c)
		return 1;
	rc = cfs_target_find(x->c, x->node, x->target, &x->addr);
	if (rc != 0) {
		if (rc == -CFS_ENOACTOR)
			fprintf(stderr, "chainfs: %s runs no target %" PRIu32 "\n", endpoint,
				x->target);
		else
			cli_error("status", rc);
		cfs_client_destroy(&x->c);
		return 1;
	}
	return 0;
}

static int
parse_id(const char *s, struct cfs_id128 *id)
{
	if (cfs_chunk_id_parse(s, id) != 0) {
		fprintf(stderr,
			"chainfs: %s: expected a chunk id: 32 hex digits or INODE:INDEX "
			"(not all zero)\n",
			s);
		return 2;
	}
	return 0;
}

/* Cluster mode: --mgmtd ADDR --chain ID (both or neither). */
struct cluster_opts {
	const char *mgmtd;
	uint64_t chain;
};

/* getopt letters of the cluster options, shared by put, get, stat, rm. */
#define CLUSTER_LONG_OPTS                                                                          \
	{"mgmtd", required_argument, NULL, 'M'}, {"chain", required_argument, NULL, 'C'}

/* Take one cluster option; 0, or 2 for a usage error (printed). */
static int
cluster_opt(struct cluster_opts *co, int opt, const char *arg)
{
	uint64_t v;

	if (opt == 'M') {
		co->mgmtd = arg;
		return 0;
	}
	if (cli_parse_uint(arg, UINT64_MAX, &v) != 0 || v == 0) {
		fprintf(stderr, "chainfs: --chain %s: expected a chain id (> 0)\n", arg);
		return 2;
	}
	co->chain = v;
	return 0;
}

/* Both or neither. 2 (printed) for one without the other. */
static int
cluster_check(const struct cluster_opts *co)
{
	if (!co->mgmtd != !co->chain) {
		fprintf(stderr, "chainfs: --mgmtd and --chain go together\n");
		return 2;
	}
	return 0;
}

/* A chunk client with mgmtd's routing; NULL (reason printed) on failure. */
static struct cfs_chunk_client *
cluster_open(const struct cluster_opts *co)
{
	struct cfs_chunk_client_opts o = {
		.mgmtd = co->mgmtd,
		.timeout_ms = g_cli.timeout_ms,
		.routing_wait_ms = g_cli.timeout_ms,
	};
	struct cfs_chunk_client *c = NULL;
	int rc;

	rc = cfs_chunk_client_create(&o, &c);
	if (rc == -EINVAL)
		fprintf(stderr, "chainfs: %s: expected host:port\n", co->mgmtd);
	else if (rc == -CFS_ENOACTOR)
		fprintf(stderr, "chainfs: %s runs no mgmtd\n", co->mgmtd);
	else if (rc == -ETIMEDOUT)
		fprintf(stderr, "chainfs: no routing from mgmtd at %s within %u ms\n", co->mgmtd,
			g_cli.timeout_ms);
	else if (rc != 0)
		cli_error("chunk client", rc);
	return rc == 0 ? c : NULL;
}

/* One operation through the chunk client; rc as cfs_chunk_batch. */
static int
cluster_op(struct cfs_chunk_client *c, struct cfs_chunk_op *op)
{
	int rc = cfs_chunk_batch(c, op, 1);

	if (g_cli.verbose)
		fprintf(stderr, "chainfs: chain %" PRIu64 " target %" PRIu32 ": %" PRIu32
				" attempt(s): %s\n",
			op->chain_id, op->target, op->attempts, rc ? cfs_errname(rc) : "ok");
	return rc;
}

/* Query a chunk: 0 and *r filled, or an error (-CFS_ENOCHUNK, transport). */
static int
chunk_query(struct chunk_ctx *x, const struct cfs_id128 *id, struct cfs_chunk_query_resp *r)
{
	struct rt_msg *req, *resp = NULL;
	int rc;

	req = rt_msg_new(CFS_MSG_CHUNK_QUERY);
	if (!req)
		return -ENOMEM;
	RT_BODY(req, chunk_query)->target = x->target;
	RT_BODY(req, chunk_query)->chunk = *id;
	rc = cfs_client_call(x->c, x->addr, req, 0, &resp);
	if (rc == 0)
		*r = *RT_BODY(resp, chunk_query_resp);
	rt_msg_free(&resp);
	return rc;
}

/* Read a whole file (or stdin for "-") into a fresh aligned buffer. */
static int
slurp(const char *path, struct rt_buf **out, uint32_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	struct rt_buf *b = NULL;
	size_t n = 0, cap = 64 << 10;
	int rc = 0;

	if (!f) {
		rc = -errno;
		fprintf(stderr, "chainfs: %s: %s\n", path, strerror(errno));
		return rc;
	}
	for (;;) {
		if (!b || n == cap) {
			struct rt_buf *nb;
			int ch;

			if (b) {
				/* Full: grow only when more bytes follow. */
				ch = fgetc(f);
				if (ch == EOF) {
					if (ferror(f)) {
						rc = errno ? -errno : -EIO;
						fprintf(stderr, "chainfs: %s: %s\n", path,
							strerror(-rc));
					}
					break;
				}
				ungetc(ch, f);
				cap *= 2;
			}
			if (cap > DISK_MAX_CHUNK) {
				fprintf(stderr,
					"chainfs: %s: larger than the largest chunk (%u bytes)\n",
					path, DISK_MAX_CHUNK);
				rc = -EFBIG;
				break;
			}
			nb = rt_buf_get(cap);
			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			if (b) {
				memcpy(nb->data, b->data, n);
				rt_buf_put(&b);
			}
			b = nb;
		}
		size_t got = fread(b->data + n, 1, cap - n, f);

		n += got;
		if (got == 0) {
			if (ferror(f)) {
				rc = errno ? -errno : -EIO;
				fprintf(stderr, "chainfs: %s: %s\n", path, strerror(-rc));
			}
			break;
		}
	}
	if (f != stdin)
		fclose(f);
	if (rc != 0) {
		rt_buf_put(&b);
		return rc;
	}
	b->len = (uint32_t)n;
	*out = b;
	*len = (uint32_t)n;
	return 0;
}

/*
 * What `chunk get` writes: n byte ranges into the file at path, or to standard
 * output when path is NULL.
 * @return 0; -EIO when a write failed (for the caller to report); 1 when the
 *         file cannot be opened (the reason printed).
 */
static int
output_write(const char *path, const struct iovec *v, unsigned n)
{
	FILE *f = path ? fopen(path, "wb") : stdout;
	int rc = 0;

	if (!f) {
		fprintf(stderr, "chainfs: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (unsigned i = 0; i < n && rc == 0; i++)
		if (v[i].iov_len && fwrite(v[i].iov_base, 1, v[i].iov_len, f) != v[i].iov_len)
			rc = -EIO;
	if (fflush(f) != 0)
		rc = -EIO;
	if (f != stdout)
		fclose(f);
	return rc;
}

/*
 * The size of the chunk a put writes: --chunk-size when given (*chunk_size not
 * 0), else the existing chunk's, since a chunk keeps its size for life
 * (query_rc and existing: the query's answer), else the default for a new one.
 * @return 0; query_rc when the query failed otherwise; 2 (printed) when
 *         offset + len do not fit.
 */
static int
put_chunk_size(uint32_t *chunk_size, int query_rc, uint32_t existing, uint32_t offset,
	       uint32_t len)
{
	if (*chunk_size == 0) {
		if (query_rc == 0)
			*chunk_size = existing;
		else if (query_rc == -CFS_ENOCHUNK)
			*chunk_size = CHUNK_DEFAULT_SIZE;
		else
			return query_rc;
	}
	if ((uint64_t)offset + len > *chunk_size) {
		fprintf(stderr,
			"chainfs: %" PRIu32 " bytes at offset %" PRIu32
			" do not fit a chunk of %" PRIu32 " bytes (see --chunk-size)\n",
			len, offset, *chunk_size);
		return 2;
	}
	return 0;
}

/* A chunk's size class and length through the chunk client (any serving replica). */
static int
cluster_query(struct cfs_chunk_client *c, uint64_t chain, const struct cfs_id128 *id,
	      struct cfs_chunk_op *q)
{
	*q = (struct cfs_chunk_op){.kind = CFS_CHUNK_OP_QUERY, .chain_id = chain, .chunk = *id};
	return cluster_op(c, q);
}

static int
cluster_put(const struct cluster_opts *co, const struct cfs_id128 *id, const char *path,
	    uint32_t offset, uint32_t chunk_size)
{
	struct cfs_chunk_client *c = NULL;
	struct cfs_chunk_op op = {0};
	struct rt_buf *buf = NULL;
	char ids[CFS_CHUNK_ID_STR];
	uint32_t len = 0;
	int rc;

	rc = slurp(path, &buf, &len);
	if (rc != 0)
		return 1;
	c = cluster_open(co);
	if (!c) {
		rc = 1;
		goto out;
	}
	rc = chunk_size ? 0 : cluster_query(c, co->chain, id, &op);
	rc = put_chunk_size(&chunk_size, rc, op.out_chunk_size, offset, len);
	if (rc < 0)
		goto out_err;
	if (rc != 0)
		goto out;
	op = (struct cfs_chunk_op){
		.kind = CFS_CHUNK_OP_WRITE,
		.chain_id = co->chain,
		.chunk = *id,
		.chunk_size = chunk_size,
		.offset = offset,
		.len = len,
		.data = buf->data,
	};
	rc = cluster_op(c, &op);
	if (rc != 0)
		goto out_err;
	cfs_chunk_id_format(id, ids);
	printf("%s version=%" PRIu64 " len=%" PRIu32 " crc=0x%08" PRIx32 "\n", ids, op.version,
	       op.out_len, op.out_crc);
	goto out;
out_err:
	cli_error("chunk put", rc);
	rc = 1;
out:
	cfs_chunk_client_destroy(&c);
	rt_buf_put(&buf);
	return rc;
}

static int
chunk_put(int argc, char **argv)
{
	static const struct option opts[] = {
		{"offset", required_argument, NULL, 'O'},
		{"chunk-size", required_argument, NULL, 's'},
		CLUSTER_LONG_OPTS,
		{NULL, 0, NULL, 0},
	};
	struct cluster_opts co = {0};
	struct chunk_ctx x = {0};
	struct cfs_chunk_query_resp q = {0};
	struct rt_msg *req = NULL, *resp = NULL;
	struct rt_buf *buf = NULL;
	uint32_t offset = 0, chunk_size = 0, len = 0;
	struct cfs_id128 id;
	char ids[CFS_CHUNK_ID_STR];
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "O:s:", opts, NULL)) != -1) {
		switch (opt) {
		case 'O':
			if (cli_parse_size32(optarg, &offset) != 0)
				goto usage;
			break;
		case 's':
			if (cli_parse_size32(optarg, &chunk_size) != 0 || chunk_size == 0)
				goto usage;
			break;
		case 'M':
		case 'C':
			if (cluster_opt(&co, opt, optarg) != 0)
				return 2;
			break;
		default:
			goto usage;
		}
	}
	if (cluster_check(&co) != 0)
		return 2;
	if (co.mgmtd) {
		if (argc - optind != 2)
			goto usage;
		if (parse_id(argv[optind], &id) != 0)
			return 2;
		return cluster_put(&co, &id, argv[optind + 1], offset, chunk_size);
	}
	if (argc - optind != 4)
		goto usage;
	if (parse_id(argv[optind + 2], &id) != 0)
		return 2;
	rc = chunk_open(&x, argv[optind], argv[optind + 1]);
	if (rc != 0)
		return rc;
	rc = slurp(argv[optind + 3], &buf, &len);
	if (rc != 0) {
		rc = 1; /* printed; an exit status, not an errno */
		goto out;
	}
	rc = chunk_size ? 0 : chunk_query(&x, &id, &q);
	rc = put_chunk_size(&chunk_size, rc, q.chunk_size, offset, len);
	if (rc < 0)
		goto out_err;
	if (rc != 0)
		goto out;
	/* A target in a chain refuses a stale chain version and names the current
	 * one: a debugging tool may take it and try once more. */
	for (uint32_t chain_ver = 0, tries = 0; tries < 2; tries++) {
		rc = cfs_chunk_write_msg(x.target, &id, chunk_size, offset, buf, 0, len, &req);
		if (rc != 0)
			goto out_err;
		RT_BODY(req, chunk_write)->chain_ver = chain_ver;
		rc = cfs_client_call(x.c, x.addr, req, 0, &resp);
		if (rc != -CFS_ESTALECHAIN || !resp ||
		    RT_BODY(resp, chunk_write_resp)->chain_ver == chain_ver)
			break;
		chain_ver = RT_BODY(resp, chunk_write_resp)->chain_ver;
		rt_msg_free(&resp);
	}
	if (rc != 0)
		goto out_err;
	cfs_chunk_id_format(&id, ids);
	printf("%s version=%" PRIu64 " len=%" PRIu32 " crc=0x%08" PRIx32 "\n", ids,
	       RT_BODY(resp, chunk_write_resp)->version, RT_BODY(resp, chunk_write_resp)->len,
	       RT_BODY(resp, chunk_write_resp)->crc);
	goto out;
out_err:
	cli_error("chunk put", rc);
	rc = 1;
out:
	rt_msg_free(&resp);
	rt_buf_put(&buf);
	cfs_client_destroy(&x.c);
	return rc;
usage:
	fprintf(stderr, "usage: chainfs chunk put ADDR TARGET CHUNKID FILE [--offset N] "
			"[--chunk-size N]\n"
			"       chainfs chunk put --mgmtd ADDR --chain ID CHUNKID FILE [--offset N] "
			"[--chunk-size N]\n");
	return 2;
}

struct cluster_get {
	uint32_t offset, len;
	bool have_len;
	uint32_t flags, replica;
	const char *output;
};

static int
cluster_get(const struct cluster_opts *co, const struct cfs_id128 *id,
	    const struct cluster_get *g)
{
	struct cfs_chunk_client *c = NULL;
	struct cfs_chunk_op op;
	uint32_t len = g->len;
	struct iovec v;
	int rc;

	c = cluster_open(co);
	if (!c)
		return 1;
	if (!g->have_len) {
		rc = cluster_query(c, co->chain, id, &op);
		if (rc != 0)
			goto out_err;
		len = op.out_len > g->offset ? op.out_len - g->offset : 0;
	}
	/* The client checks the CRC32C of the bytes that arrived against the
	 * replica's, and tries another replica on a mismatch; the bytes are
	 * written from the buffer they arrived in. */
	op = (struct cfs_chunk_op){
		.kind = CFS_CHUNK_OP_READ,
		.chain_id = co->chain,
		.chunk = *id,
		.offset = g->offset,
		.len = len,
		.flags = g->flags | CFS_CHUNK_F_LEND,
		.replica = g->replica,
	};
	rc = cluster_op(c, &op);
	if (rc != 0)
		goto out_err;
	v = (struct iovec){.iov_base = (void *)op.out_data, .iov_len = op.out_len};
	rc = output_write(g->output, &v, 1);
	cfs_chunk_op_release(&op);
	if (rc >= 0) /* done, or the output could not be opened (said) */
		goto out;
out_err:
	cli_error("chunk get", rc);
	rc = 1;
out:
	cfs_chunk_client_destroy(&c);
	return rc;
}

static int
chunk_get(int argc, char **argv)
{
	static const struct option opts[] = {
		{"offset", required_argument, NULL, 'O'},
		{"len", required_argument, NULL, 'l'},
		{"output", required_argument, NULL, 'o'},
		{"replica", required_argument, NULL, 'r'},
		{"relaxed", no_argument, NULL, 'R'},
		CLUSTER_LONG_OPTS,
		{NULL, 0, NULL, 0},
	};
	struct cluster_opts co = {0};
	uint32_t flags = 0, replica = 0;
	struct chunk_ctx x = {0};
	struct rt_msg *req = NULL, *resp = NULL;
	const struct cfs_chunk_read_resp *r;
	const char *output = NULL;
	uint32_t offset = 0, len = 0, crc = 0;
	bool have_len = false;
	struct cfs_id128 id;
	struct iovec v[8]; /* a received payload is one segment (net/tcp.c) */
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "O:l:o:", opts, NULL)) != -1) {
		switch (opt) {
		case 'O':
			if (cli_parse_size32(optarg, &offset) != 0)
				goto usage;
			break;
		case 'l':
			if (cli_parse_size32(optarg, &len) != 0)
				goto usage;
			have_len = true;
			break;
		case 'o':
			output = optarg;
			break;
		case 'r':
			if (cli_parse_size32(optarg, &replica) != 0)
				goto usage;
			flags |= CFS_CHUNK_F_REPLICA;
			break;
		case 'R':
			flags |= CFS_CHUNK_F_RELAXED;
			break;
		case 'M':
		case 'C':
			if (cluster_opt(&co, opt, optarg) != 0)
				return 2;
			break;
		default:
			goto usage;
		}
	}
	if (cluster_check(&co) != 0)
		return 2;
	/* No chunk is larger: say which option is wrong, rather than pass on
	 * the target's bare EINVAL. */
	if (offset > DISK_MAX_CHUNK || (uint64_t)offset + len > DISK_MAX_CHUNK) {
		fprintf(stderr,
			"chainfs: --offset %" PRIu32 " --len %" PRIu32
			": past the largest chunk (%u bytes)\n",
			offset, len, DISK_MAX_CHUNK);
		return 2;
	}
	if (co.mgmtd) {
		struct cluster_get g = {
			.offset = offset,
			.len = len,
			.have_len = have_len,
			.flags = flags,
			.replica = replica,
			.output = output,
		};

		if (argc - optind != 1)
			goto usage;
		if (parse_id(argv[optind], &id) != 0)
			return 2;
		return cluster_get(&co, &id, &g);
	}
	if (flags) {
		fprintf(stderr, "chainfs: --replica and --relaxed need --mgmtd and --chain\n");
		return 2;
	}
	if (argc - optind != 3)
		goto usage;
	if (parse_id(argv[optind + 2], &id) != 0)
		return 2;
	rc = chunk_open(&x, argv[optind], argv[optind + 1]);
	if (rc != 0)
		return rc;
	if (!have_len) {
		struct cfs_chunk_query_resp q;

		rc = chunk_query(&x, &id, &q);
		if (rc != 0)
			goto out_err;
		len = q.len > offset ? q.len - offset : 0;
	}
	for (uint32_t chain_ver = 0, tries = 0; tries < 2; tries++) {
		const struct cfs_chunk_io io = {.chunk = id, .offset = offset, .len = len};

		rc = cfs_chunk_read_msg(x.target, 0, chain_ver, &io, 1, &req);
		if (rc != 0)
			goto out_err;
		rc = cfs_client_call(x.c, x.addr, req, 0, &resp);
		/* As for put: take the chain version a chained target names. */
		if (rc != -CFS_ESTALECHAIN || !resp ||
		    RT_BODY(resp, chunk_read_resp)->chain_ver == chain_ver)
			break;
		chain_ver = RT_BODY(resp, chunk_read_resp)->chain_ver;
		rt_msg_free(&resp);
	}
	if (rc != 0)
		goto out_err;
	r = RT_BODY(resp, chunk_read_resp);
	if (r->results_count != 1) {
		rc = -CFS_EPROTO;
		goto out_err;
	}
	rc = r->results[0].rc;
	if (rc != 0)
		goto out_err;
	if (r->results[0].len != resp->plen) {
		rc = -CFS_EPROTO;
		goto out_err;
	}
	if (resp->iovcnt > sizeof(v) / sizeof(v[0])) {
		rc = -CFS_EPROTO;
		goto out_err;
	}
	/* End to end: the bytes that arrived are the bytes the target checked. */
	for (uint32_t i = 0; i < resp->iovcnt; i++) {
		v[i] = (struct iovec){.iov_base = resp->iov[i].buf->data + resp->iov[i].off,
				      .iov_len = resp->iov[i].len};
		crc = disk_crc32c(crc, v[i].iov_base, v[i].iov_len);
	}
	if (crc != r->results[0].crc) {
		rc = -CFS_ECHECKSUM;
		goto out_err;
	}
	rc = output_write(output, v, resp->iovcnt);
	if (rc >= 0) /* done, or the output could not be opened (said) */
		goto out;
out_err:
	cli_error("chunk get", rc);
	rc = 1;
out:
	rt_msg_free(&resp);
	cfs_client_destroy(&x.c);
	return rc;
usage:
	fprintf(stderr, "usage: chainfs chunk get ADDR TARGET CHUNKID [--offset N] [--len N] "
			"[-o FILE]\n"
			"       chainfs chunk get --mgmtd ADDR --chain ID CHUNKID [--offset N] "
			"[--len N] [-o FILE] [--replica N] [--relaxed]\n");
	return 2;
}

/* stat and rm: CHUNKID after ADDR TARGET or after --mgmtd ADDR --chain ID.
 * Returns the index of the first operand, or -1 for a usage error. */
static int
target_args(int argc, char **argv, struct cluster_opts *co)
{
	static const struct option opts[] = {
		CLUSTER_LONG_OPTS,
		{NULL, 0, NULL, 0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((opt != 'M' && opt != 'C') || cluster_opt(co, opt, optarg) != 0)
			return -1;
	}
	if (cluster_check(co) != 0 || argc - optind != (co->mgmtd ? 1 : 3))
		return -1;
	return optind;
}

/* A pending version that is a remove (a tombstone going down the chain) is
 * marked: its length and CRC are those of the committed version it removes. */
static void
print_stat(const struct cfs_id128 *id, uint32_t chunk_size, uint32_t len, uint32_t crc,
	   uint64_t committed, uint64_t pending, bool pending_remove)
{
	char ids[CFS_CHUNK_ID_STR];

	cfs_chunk_id_format(id, ids);
	printf("chunk      %s\nchunk_size %" PRIu32 "\nlen        %" PRIu32
	       "\ncrc        0x%08" PRIx32 "\ncommitted  %" PRIu64 "\npending    %" PRIu64 "%s\n",
	       ids, chunk_size, len, crc, committed, pending, pending_remove ? " (remove)" : "");
}

static int
chunk_stat(int argc, char **argv)
{
	struct cluster_opts co = {0};
	struct chunk_ctx x = {0};
	struct cfs_chunk_query_resp q;
	struct cfs_id128 id;
	int rc, i = target_args(argc, argv, &co);

	if (i < 0) {
		fprintf(stderr, "usage: chainfs chunk stat ADDR TARGET CHUNKID\n"
				"       chainfs chunk stat --mgmtd ADDR --chain ID CHUNKID\n");
		return 2;
	}
	if (parse_id(argv[co.mgmtd ? i : i + 2], &id) != 0)
		return 2;
	if (co.mgmtd) {
		struct cfs_chunk_client *c = cluster_open(&co);
		struct cfs_chunk_op op;

		if (!c)
			return 1;
		rc = cluster_query(c, co.chain, &id, &op);
		if (rc == 0)
			print_stat(&id, op.out_chunk_size, op.out_len, op.out_crc, op.version,
				   op.pending, op.pending_remove);
		else
			cli_error("chunk stat", rc);
		cfs_chunk_client_destroy(&c);
		return rc == 0 ? 0 : 1;
	}
	rc = chunk_open(&x, argv[i], argv[i + 1]);
	if (rc != 0)
		return rc;
	rc = chunk_query(&x, &id, &q);
	if (rc == 0)
		print_stat(&id, q.chunk_size, q.len, q.crc, q.committed, q.pending, q.ptomb);
	else
		cli_error("chunk stat", rc);
	cfs_client_destroy(&x.c);
	return rc == 0 ? 0 : 1;
}

static int
chunk_rm(int argc, char **argv)
{
	struct cluster_opts co = {0};
	struct chunk_ctx x = {0};
	struct rt_msg *req, *resp = NULL;
	struct cfs_id128 id;
	int rc, i = target_args(argc, argv, &co);

	if (i < 0) {
		fprintf(stderr, "usage: chainfs chunk rm ADDR TARGET CHUNKID\n"
				"       chainfs chunk rm --mgmtd ADDR --chain ID CHUNKID\n");
		return 2;
	}
	if (parse_id(argv[co.mgmtd ? i : i + 2], &id) != 0)
		return 2;
	if (co.mgmtd) {
		struct cfs_chunk_client *c = cluster_open(&co);
		struct cfs_chunk_op op = {
			.kind = CFS_CHUNK_OP_REMOVE, .chain_id = co.chain, .chunk = id};

		if (!c)
			return 1;
		rc = cluster_op(c, &op);
		if (rc != 0)
			cli_error("chunk rm", rc);
		cfs_chunk_client_destroy(&c);
		return rc == 0 ? 0 : 1;
	}
	rc = chunk_open(&x, argv[i], argv[i + 1]);
	if (rc != 0)
		return rc;
	req = rt_msg_new(CFS_MSG_CHUNK_REMOVE);
	if (!req) {
		rc = -ENOMEM;
	} else {
		RT_BODY(req, chunk_remove)->target = x.target;
		RT_BODY(req, chunk_remove)->chunk = id;
		rc = cfs_client_call(x.c, x.addr, req, 0, &resp);
	}
	if (rc != 0)
		cli_error("chunk rm", rc);
	rt_msg_free(&resp);
	cfs_client_destroy(&x.c);
	return rc == 0 ? 0 : 1;
}

/* The id right after id (list continues from there). False after all ones. */
static bool
id_next(struct cfs_id128 *id)
{
	for (int i = 15; i >= 0; i--) {
		if (++id->b[i] != 0)
			return true;
	}
	return false;
}

/*
 * list --mgmtd ADDR --chain ID: a chain's chunks are listed from one member,
 * as chunk_list has no chain fields: the head (it holds every write first),
 * or the replica-th serving member (0: the head), counted as get --replica
 * counts. Yields that member's node endpoint (malloc'd) and target id.
 * 0; 1 (reason printed).
 */
static int
cluster_member(const struct cluster_opts *co, bool have_replica, uint32_t replica, char **endpoint,
	       uint32_t *target)
{
	struct cfs_chunk_client *c = cluster_open(co);
	struct cfs_routing_snap *s = NULL;
	const struct cfs_route_chain *ch;
	const struct cfs_route_node *node;
	int m, rc = 1;

	if (!c)
		return 1;
	s = cfs_chunk_client_routing(c);
	ch = s ? cfs_routing_chain(s, co->chain) : NULL;
	if (!ch) {
		fprintf(stderr, "chainfs: mgmtd at %s has no chain %" PRIu64 "\n", co->mgmtd,
			co->chain);
		goto out;
	}
	if (have_replica) {
		m = cfs_route_chain_tail(ch);
		if (m < 0 || replica > (uint32_t)m) {
			fprintf(stderr,
				"chainfs: chain %" PRIu64 " has %d serving replica(s), no replica "
				"%" PRIu32 "\n",
				co->chain, m + 1, replica);
			goto out;
		}
		m = (int)replica;
	} else {
		m = cfs_route_chain_head(ch);
		if (m < 0) {
			fprintf(stderr, "chainfs: chain %" PRIu64 " has no serving head\n",
				co->chain);
			goto out;
		}
	}
	node = cfs_routing_node(s, ch->members[m].node_id);
	if (!node || !node->endpoint) {
		fprintf(stderr, "chainfs: routing names no endpoint for node %" PRIu32 "\n",
			ch->members[m].node_id);
		goto out;
	}
	*endpoint = strdup(node->endpoint);
	if (!*endpoint) {
		cli_error("chunk list", -ENOMEM);
		goto out;
	}
	*target = ch->members[m].target;
	if (g_cli.verbose)
		fprintf(stderr, "chainfs: chain %" PRIu64 ": listing target %" PRIu32 " on %s\n",
			co->chain, *target, *endpoint);
	rc = 0;
out:
	cfs_routing_snap_put(&s);
	cfs_chunk_client_destroy(&c);
	return rc;
}

static int
chunk_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{"begin", required_argument, NULL, 'b'},
		{"limit", required_argument, NULL, 'n'},
		{"replica", required_argument, NULL, 'r'},
		CLUSTER_LONG_OPTS,
		{NULL, 0, NULL, 0},
	};
	struct cluster_opts co = {0};
	struct chunk_ctx x = {0};
	struct cfs_id128 begin = {{0}};
	uint64_t limit = UINT64_MAX, shown = 0;
	uint32_t replica = 0;
	bool more = true, have_replica = false;
	char *endpoint = NULL, target[16];
	int opt, rc = 0;

	while ((opt = getopt_long(argc, argv, "b:n:", opts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			if (parse_id(optarg, &begin) != 0)
				return 2;
			break;
		case 'n':
			if (cli_parse_uint(optarg, UINT64_MAX, &limit) != 0)
				goto usage;
			break;
		case 'r':
			if (cli_parse_size32(optarg, &replica) != 0)
				goto usage;
			have_replica = true;
			break;
		case 'M':
		case 'C':
			if (cluster_opt(&co, opt, optarg) != 0)
				return 2;
			break;
		default:
			goto usage;
		}
	}
	if (cluster_check(&co) != 0 || argc - optind != (co.mgmtd ? 0 : 2))
		goto usage;
	if (have_replica && !co.mgmtd) {
		fprintf(stderr, "chainfs: --replica needs --mgmtd and --chain\n");
		return 2;
	}
	if (co.mgmtd) {
		uint32_t t;

		rc = cluster_member(&co, have_replica, replica, &endpoint, &t);
		if (rc != 0)
			return rc;
		snprintf(target, sizeof(target), "%" PRIu32, t);
		rc = chunk_open(&x, endpoint, target);
	} else {
		rc = chunk_open(&x, argv[optind], argv[optind + 1]);
	}
	free(endpoint);
	if (rc != 0)
		return rc;
	printf("%-32s %10s %10s %10s %10s\n", "CHUNK", "LEN", "CRC", "COMMITTED", "PENDING");
	while (more && shown < limit) {
		const struct cfs_chunk_list_resp *r;
		struct rt_msg *req, *resp = NULL;
		char ids[CFS_CHUNK_ID_STR];

		req = rt_msg_new(CFS_MSG_CHUNK_LIST);
		if (!req) {
			rc = -ENOMEM;
			break;
		}
		RT_BODY(req, chunk_list)->target = x.target;
		RT_BODY(req, chunk_list)->begin = begin;
		RT_BODY(req, chunk_list)->max = limit - shown < CHUNK_LIST_PAGE
							? (uint32_t)(limit - shown)
							: CHUNK_LIST_PAGE;
		rc = cfs_client_call(x.c, x.addr, req, 0, &resp);
		if (rc != 0)
			break;
		r = RT_BODY(resp, chunk_list_resp);
		for (uint32_t i = 0; i < r->chunks_count; i++) {
			const struct cfs_chunk_meta *cm = &r->chunks[i];

			cfs_chunk_id_format(&cm->chunk, ids);
			printf("%s %10" PRIu32 " 0x%08" PRIx32 " %10" PRIu64 " %10" PRIu64 "%s\n",
			       ids, cm->len, cm->crc, cm->committed, cm->pending,
			       cm->ptomb ? " remove" : "");
		}
		shown += r->chunks_count;
		more = r->more && r->chunks_count > 0;
		if (more) {
			begin = r->chunks[r->chunks_count - 1].chunk;
			more = id_next(&begin);
		}
		rt_msg_free(&resp);
	}
	if (rc != 0)
		cli_error("chunk list", rc);
	cfs_client_destroy(&x.c);
	return rc == 0 ? 0 : 1;
usage:
	fprintf(stderr, "usage: chainfs chunk list ADDR TARGET [--begin CHUNKID] [--limit N]\n"
			"       chainfs chunk list --mgmtd ADDR --chain ID [--replica N] "
			"[--begin CHUNKID] [--limit N]\n");
	return 2;
}

static void
chunk_usage(FILE *f)
{
	fprintf(f,
		"usage: chainfs chunk put WHERE CHUNKID FILE [--offset N] [--chunk-size N]\n"
		"       chainfs chunk get WHERE CHUNKID [--offset N] [--len N] [-o FILE]\n"
		"                         [--replica N] [--relaxed]\n"
		"       chainfs chunk stat WHERE CHUNKID\n"
		"       chainfs chunk rm WHERE CHUNKID\n"
		"       chainfs chunk list WHERE [--begin CHUNKID] [--limit N] [--replica N]\n"
		"WHERE: ADDR TARGET             one node's target, directly\n"
		"       --mgmtd ADDR --chain ID  a chain, through mgmtd's routing: writes to\n"
		"                                its head, reads from a serving replica,\n"
		"                                retried across failover\n"
		"--replica N (cluster): read or list from the chain's N-th serving replica\n"
		"                       (0: head; list without it: the head)\n"
		"--relaxed (cluster): serve a replica's committed version without asking the tail\n"
		"CHUNKID: 32 hex digits or INODE:INDEX\n");
}

int
cli_chunk(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} subs[] = {
		{"put", chunk_put},   {"get", chunk_get}, {"stat", chunk_stat},
		{"list", chunk_list}, {"rm", chunk_rm},
	};
	bool help;

	if (argc >= 2) {
		for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
			if (strcmp(argv[1], subs[i].name) == 0) {
				optind = 0; /* reinitialise getopt: options may follow operands */
				return subs[i].fn(argc - 1, argv + 1);
			}
		}
	}
	help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
	chunk_usage(help ? stdout : stderr);
	return help ? 0 : 2;
}
