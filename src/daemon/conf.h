/* SPDX-License-Identifier: MIT */
/*
 * chainfsd's configuration: the INI file parsed into one struct, with every
 * error reported as "FILE:LINE: [section] key: reason". The keys come from
 * config_keys.def, the single list that chainfs.conf(5) documents.
 */
#ifndef CFSD_CONFIG_H
#define CFSD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define CFSD_CTYPE_U32 uint32_t
#define CFSD_CTYPE_U64 uint64_t
#define CFSD_CTYPE_SIZE uint64_t
#define CFSD_CTYPE_BOOL bool
#define CFSD_CTYPE_LOOPS uint32_t	/* 0: auto */
#define CFSD_CTYPE_LOOP int32_t		/* -1: auto */
#define CFSD_CTYPE_LEVEL int		/* enum rt_log_level */
#define CFSD_CTYPE_ENDPOINT char *
#define CFSD_CTYPE_PATH char *

#define CFSD_MAX_TARGETS 256

/* One [target.ID] section. */
struct cfsd_target_config {
	uint32_t id;
	unsigned line;	/* line of its first key (inih reports no section lines) */
#define CFS_KEY(sec, key, type, field, def, min, max, req)
#define CFS_TKEY(key, type, field, def, min, max, req) CFSD_CTYPE_##type field;
#include "daemon/config_keys.def"
#undef CFS_TKEY
#undef CFS_KEY
};

struct cfsd_config {
#define CFS_KEY(sec, key, type, field, def, min, max, req) CFSD_CTYPE_##type field;
#include "daemon/config_keys.def"
#undef CFS_KEY
	unsigned ntargets;
	struct cfsd_target_config *targets;	/* ntargets entries, sorted by id */
};

#define CFSD_CONFIG_MAX_ERRORS 32

struct cfsd_config_errors {
	unsigned count;
	unsigned dropped; /* errors found past the first CFSD_CONFIG_MAX_ERRORS */
	char msg[CFSD_CONFIG_MAX_ERRORS][256];
};

/**
 * Parse `path` into cfg (defaults first, then the file), collecting every
 * problem with its line number into errs. Unknown sections and keys, bad
 * values, out-of-range numbers, missing required keys and a section given
 * twice are errors.
 * @return 0, -CFS_ECONFIG (errs filled), -errno when the file cannot be read
 *         (also described in errs), -ENOMEM.
 */
int cfsd_config_load(const char *path, struct cfsd_config *cfg, struct cfsd_config_errors *errs);
/** Free strings held by cfg. */
void cfsd_config_fini(struct cfsd_config *cfg);

/** Parse "64M"-style sizes (K, M, G, T: powers of 1024; optional trailing B/iB). -EINVAL, -ERANGE. */
int cfsd_parse_size(const char *s, uint64_t *out);
/** Split "host:port" (IPv4, name, or [IPv6]). -EINVAL. */
int cfsd_parse_endpoint(const char *s, char *host, unsigned hostlen, uint16_t *port);

#endif
