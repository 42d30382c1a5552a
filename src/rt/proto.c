/* SPDX-License-Identifier: MIT */
/*
 * The lookup tables of include/chainfs/proto.h, generated from proto.def:
 * dense type -> name, wire code and body size, and wire code -> dense type.
 * A response is named "<lc>_resp" and travels with wire code code|0x8000.
 * Nothing here is written by hand per message: adding a row to proto.def is
 * enough. The code -> type lookup is a generated switch, so two rows with the
 * same code fail to compile (duplicate case) instead of shadowing each other.
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

unsigned
cfs_msg_from_code(uint16_t code)
{
	switch (code) {
#define CFS_RPC(UC, lc, code, req, resp)                                                           \
	case (code):                                                                               \
		return CFS_MSG_##UC;                                                               \
	case (code) | CFS_WIRE_RESP:                                                               \
		return CFS_MSG_##UC##_RESP;
#include "chainfs/proto.def"
#undef CFS_RPC
	default:
		return CFS_MSG_NONE;
	}
}

size_t
cfs_msg_body_size(unsigned type)
{
	if (type >= CFS_MSG__COUNT)
		return 0;
	return g_sizes[type];
}
#undef CFS_STRUCT
