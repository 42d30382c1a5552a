/* SPDX-License-Identifier: MIT */
/*
 * The lookup tables of include/chainfs/proto.h, generated from proto.def:
 * dense type -> name, wire code and body size, and wire code -> dense type.
 * A response is named "<lc>_resp" and travels with wire code code|0x8000.
 * Nothing here is written by hand per message: adding a row to proto.def is
 * enough. The code -> type lookup is a table by code; a generated switch that
 * is never called makes two rows with the same code fail to compile.
 */
#include "chainfs/proto.h"

#define CFS_STRUCT(lc, fields)
#define CFS_RPC(UC, lc, code, req, resp) [CFS_MSG_##UC] = #lc, [CFS_MSG_##UC##_RESP] = #lc "_resp",
static const char *const g_names[CFS_MSG__COUNT] = {
#include "chainfs/proto.def"
};
#undef CFS_RPC

#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	[CFS_MSG_##UC] = (code), [CFS_MSG_##UC##_RESP] = (code) | CFS_WIRE_RESP,
static const uint16_t g_codes[CFS_MSG__COUNT] = {
#include "chainfs/proto.def"
};
#undef CFS_RPC

#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	[CFS_MSG_##UC] = sizeof(struct cfs_##lc),                                                  \
	[CFS_MSG_##UC##_RESP] = sizeof(struct cfs_##lc##_resp),
static const uint32_t g_sizes[CFS_MSG__COUNT] = {
#include "chainfs/proto.def"
};
#undef CFS_RPC

const char *
cfs_msg_name(unsigned type)
{
	if (type == CFS_MSG_NONE || type >= CFS_MSG__COUNT)
		return "?";
	return g_names[type];
}

uint16_t
cfs_msg_code(unsigned type)
{
	if (type >= CFS_MSG__COUNT)
		return 0;
	return g_codes[type];
}

/* Wire code -> dense type: a table by request code (the decoder's hot path);
 * every code is asserted below CODE_DIRECT. */
#define CODE_DIRECT 0x1000u
_Static_assert(CFS_MSG__COUNT <= 256, "g_req_of_code holds types in a byte");
#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	_Static_assert((code) < CODE_DIRECT, #lc ": raise CODE_DIRECT in proto.c");
#include "chainfs/proto.def"
#undef CFS_RPC
#define CFS_RPC(UC, lc, code, req, resp) [(code)] = CFS_MSG_##UC,
static const uint8_t g_req_of_code[CODE_DIRECT] = {
#include "chainfs/proto.def"
};
#undef CFS_RPC

/* Never called: two rows with the same code fail to compile here (duplicate
 * case) instead of one shadowing the other in the table above. */
static inline unsigned
codes_are_unique(uint16_t code)
{
	switch (code) {
#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	case (code):                                                                               \
		return CFS_MSG_##UC;
#include "chainfs/proto.def"
#undef CFS_RPC
	default:
		return CFS_MSG_NONE;
	}
}

unsigned
cfs_msg_from_code(uint16_t code)
{
	uint16_t req = code & (uint16_t)~CFS_WIRE_RESP;
	unsigned t;

	if (req >= CODE_DIRECT)
		return CFS_MSG_NONE;
	t = g_req_of_code[req];
	if (t == CFS_MSG_NONE)
		return CFS_MSG_NONE;
	return code & CFS_WIRE_RESP ? cfs_msg_resp_of(t) : t;
}

size_t
cfs_msg_body_size(unsigned type)
{
	if (type >= CFS_MSG__COUNT)
		return 0;
	return g_sizes[type];
}
#undef CFS_STRUCT
