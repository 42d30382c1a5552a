// SPDX-License-Identifier: MIT
/*
 * Client-side view of storage targets: discovery through a node's status,
 * chunk id parsing and formatting, and chunk_write requests with their
 * payload CRC32C (the same disk_crc32c the target checks them with).
 */
#define RT_LOG_SUBSYS "client"
#include "client/targets.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "disk/disk.h"

static int
cmp_target(const void *a, const void *b)
{
	const struct cfs_target_ref *x = a, *y = b;

	return (x->target > y->target) - (x->target < y->target);
}

int
cfs_targets_list(struct cfs_client *c, uint32_t node, struct cfs_target_ref **out, unsigned *n)
{
	static const char kind[] = "storage";
	const struct cfs_status_resp *r;
	struct rt_msg *req, *resp = NULL;
	struct cfs_target_ref *v = NULL;
	unsigned k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	req = rt_msg_new(CFS_MSG_STATUS);
	if (!req)
		return -ENOMEM;
	rc = cfs_client_call(c, CFS_ADDR(node, CFS_LOCAL_NODECTL), req, 0, &resp);
	if (rc != 0)
		goto out;
	r = RT_BODY(resp, status_resp);
	v = calloc(r->actors_count ? r->actors_count : 1, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < r->actors_count; i++) {
		const struct cfs_actor_info *a = &r->actors[i];

		if (a->kind.len != sizeof(kind) - 1 || memcmp(a->kind.p, kind, a->kind.len) != 0)
			continue;
		v[k].target = (uint32_t)a->tag;
		v[k].loop = a->loop;
		/* The node as the caller names it (maybe an alias), the actor's own local id. */
		v[k].addr = CFS_ADDR(node, CFS_ADDR_LOCAL(a->addr));
		k++;
	}
	qsort(v, k, sizeof(*v), cmp_target);
	*out = v;
	*n = k;
	v = NULL;
out:
	free(v);
	rt_msg_free(&resp);
	return rc;
}

int
cfs_target_find(struct cfs_client *c, uint32_t node, uint32_t target, cfs_addr_t *addr)
{
	struct cfs_target_ref *v;
	unsigned n;
	int rc;

	rc = cfs_targets_list(c, node, &v, &n);
	if (rc != 0)
		return rc;
	rc = -CFS_ENOACTOR;
	for (unsigned i = 0; i < n; i++) {
		if (v[i].target == target) {
			*addr = v[i].addr;
			rc = 0;
			break;
		}
	}
	free(v);
	return rc;
}

struct cfs_id128
cfs_chunk_id(uint64_t inode, uint64_t index)
{
	struct cfs_id128 id;

	for (unsigned i = 0; i < 8; i++) {
		id.b[i] = (uint8_t)(inode >> (56 - 8 * i));
		id.b[8 + i] = (uint8_t)(index >> (56 - 8 * i));
	}
	return id;
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

static int
parse_u64(const char *s, size_t n, uint64_t *out)
{
	char buf[32];
	char *end;

	if (n == 0 || n >= sizeof(buf) || s[0] == '-' || s[0] == '+' ||
	    isspace((unsigned char)s[0]))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	*out = strtoull(buf, &end, 0);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	return 0;
}

int
cfs_chunk_id_parse(const char *s, struct cfs_id128 *out)
{
	const char *colon = strchr(s, ':');
	struct cfs_id128 id;
	bool nonzero = false;

	if (colon) {
		uint64_t inode, index;

		if (parse_u64(s, (size_t)(colon - s), &inode) != 0 ||
		    parse_u64(colon + 1, strlen(colon + 1), &index) != 0)
			return -EINVAL;
		id = cfs_chunk_id(inode, index);
	} else {
		if (strlen(s) != 32)
			return -EINVAL;
		for (unsigned i = 0; i < 16; i++) {
			int hi = hexval((unsigned char)s[2 * i]),
			    lo = hexval((unsigned char)s[2 * i + 1]);

			if (hi < 0 || lo < 0)
				return -EINVAL;
			id.b[i] = (uint8_t)(hi << 4 | lo);
		}
	}
	for (unsigned i = 0; i < 16; i++)
		nonzero |= id.b[i] != 0;
	if (!nonzero)
		return -EINVAL;
	*out = id;
	return 0;
}

void
cfs_chunk_id_format(const struct cfs_id128 *id, char out[CFS_CHUNK_ID_STR])
{
	static const char hex[] = "0123456789abcdef";

	for (unsigned i = 0; i < 16; i++) {
		out[2 * i] = hex[id->b[i] >> 4];
		out[2 * i + 1] = hex[id->b[i] & 15];
	}
	out[32] = '\0';
}

int
cfs_chunk_write_msg(uint32_t target, const struct cfs_id128 *id, uint32_t chunk_size,
		    uint32_t offset, struct rt_buf *buf, uint32_t boff, uint32_t len,
		    struct rt_msg **out)
{
	if ((uint64_t)boff + len > buf->cap)
		return -EINVAL;
	return cfs_chunk_write_msg_crc(target, id, chunk_size, offset, buf, boff, len,
				       disk_crc32c(0, buf->data + boff, len), out);
}

int
cfs_chunk_write_msg_crc(uint32_t target, const struct cfs_id128 *id, uint32_t chunk_size,
			uint32_t offset, struct rt_buf *buf, uint32_t boff, uint32_t len,
			uint32_t crc, struct rt_msg **out)
{
	struct cfs_chunk_write *w;
	struct rt_msg *m;
	int rc;

	if ((uint64_t)boff + len > buf->cap)
		return -EINVAL;
	m = rt_msg_new(CFS_MSG_CHUNK_WRITE);
	if (!m)
		return -ENOMEM;
	w = RT_BODY(m, chunk_write);
	w->target = target;
	w->chunk = *id;
	w->offset = offset;
	w->len = len;
	w->chunk_size = chunk_size;
	w->crc = crc;
	if (len > 0) {
		rc = rt_msg_add_iov(m, buf, boff, len);
		if (rc != 0) {
			rt_msg_free(&m);
			return rc;
		}
	}
	*out = m;
	return 0;
}

int
cfs_chunk_read_msg(uint32_t target, uint64_t chain_id, uint32_t chain_ver,
		   const struct cfs_chunk_io *ios, uint32_t n, struct rt_msg **out)
{
	struct cfs_chunk_read *r;
	struct rt_msg *m;

	m = rt_msg_new(CFS_MSG_CHUNK_READ);
	if (!m)
		return -ENOMEM;
	r = RT_BODY(m, chunk_read);
	r->target = target;
	r->chain_id = chain_id;
	r->chain_ver = chain_ver;
	/* Size 0 still gives a pointer, so an empty table is a valid (refused) request. */
	r->ios = rt_msg_alloc(m, (size_t)n * sizeof(*r->ios));
	if (!r->ios) {
		rt_msg_free(&m);
		return -ENOMEM;
	}
	r->ios_count = n;
	if (ios && n > 0)
		memcpy(r->ios, ios, (size_t)n * sizeof(*r->ios));
	*out = m;
	return 0;
}
