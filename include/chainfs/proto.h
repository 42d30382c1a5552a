/* SPDX-License-Identifier: MIT */
/*
 * C view of proto.def: one struct per message body, the dense message enum,
 * and the lookups every layer shares. Encoding and decoding live in
 * src/net/wire.c; this header is what custom C clients and actors include.
 */
#ifndef CHAINFS_PROTO_H
#define CHAINFS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chainfs/export.h"

#define CFS_PROTO_VERSION 1
#define CFS_WIRE_RESP 0x8000u	/* set in a response's wire code */

/* Borrowed bytes: valid as long as the message that holds them. */
struct cfs_bytes {
	const uint8_t *p;
	uint32_t len;
};

/* 16-byte ids: a chunk is (inode, index) of a file or a 128-bit hash of a KV key. */
struct cfs_id128 {
	uint8_t b[16];
};

#define CFS_CTYPE_BOOL bool
#define CFS_CTYPE_U32 uint32_t
#define CFS_CTYPE_U64 uint64_t
#define CFS_CTYPE_I32 int32_t
#define CFS_CTYPE_I64 int64_t
#define CFS_CTYPE_STR struct cfs_bytes
#define CFS_CTYPE_BYTES struct cfs_bytes
#define CFS_CTYPE_ID struct cfs_id128

/* Records and bodies. An A(lc, name) field becomes a pointer and a count. */
#define F(T, name) CFS_CTYPE_##T name;
#define A(lc, name)          \
	struct cfs_##lc *name; \
	uint32_t name##_count;
#define CFS_STRUCT(lc, fields) struct cfs_##lc { fields };
#define CFS_RPC(UC, lc, code, req, resp) \
	struct cfs_##lc { req };         \
	struct cfs_##lc##_resp { resp };
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT
#undef A
#undef F

/* Dense message index: CFS_MSG_PING, CFS_MSG_PING_RESP, ... Handler tables are
 * indexed by it; the wire code is a separate, stable number. */
enum cfs_msg_type {
	CFS_MSG_NONE = 0,
#define CFS_STRUCT(lc, fields)
#define CFS_RPC(UC, lc, code, req, resp) CFS_MSG_##UC, CFS_MSG_##UC##_RESP,
#include "chainfs/proto.def"
#undef CFS_RPC
#undef CFS_STRUCT
	CFS_MSG__COUNT
};

/* Every response body begins with its rc, so generic code can set it. */
#define CFS_STRUCT(lc, fields)
#define CFS_RPC(UC, lc, code, req, resp)                                       \
	_Static_assert(offsetof(struct cfs_##lc##_resp, rc) == 0, #lc " resp rc first"); \
	_Static_assert(((code) & CFS_WIRE_RESP) == 0, #lc " code uses response bit");
#define F(T, name)
#define A(lc, name)
#include "chainfs/proto.def"
#undef A
#undef F
#undef CFS_RPC
#undef CFS_STRUCT

/** Name for logs ("chunk_write", "chunk_write_resp"); "?" when out of range. */
CFS_EXPORT const char *cfs_msg_name(unsigned type);
/** Wire code of a dense type, 0 when out of range. */
CFS_EXPORT uint16_t cfs_msg_code(unsigned type);
/** Dense type of a wire code, CFS_MSG_NONE when unknown. */
CFS_EXPORT unsigned cfs_msg_from_code(uint16_t code);
/** sizeof the body struct of a dense type, 0 when out of range. */
CFS_EXPORT size_t cfs_msg_body_size(unsigned type);
/** True when the dense type is a response. */
static inline bool
cfs_msg_is_resp(unsigned type)
{
	return type != CFS_MSG_NONE && type < CFS_MSG__COUNT && (type % 2) == 0;
}
/** True for the node-local requests (between a node's control actor and its
 *  storage actors, either way): they never travel over a connection, and the
 *  runtime answers one that arrives over one with EPERM. */
static inline bool
cfs_msg_node_local(unsigned type)
{
	return type == CFS_MSG_NODE_TARGET_ROUTING || type == CFS_MSG_NODE_TARGET_REPORT;
}
/** The response type paired with a request type. */
static inline unsigned
cfs_msg_resp_of(unsigned type)
{
	return type + 1;
}

#endif
