// SPDX-License-Identifier: MIT
/*
 * INI parsing for chainfsd. libinih does the lexing; we count lines in our own
 * reader so that every error, not only the first, carries its line number, and
 * validate each value against its row in config_keys.def.
 */
#include "daemon/conf.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chainfs/errno.h"
#include "rt/rt.h"

enum key_type { KT_U32, KT_U64, KT_SIZE, KT_BOOL, KT_LOOPS, KT_LOOP, KT_LEVEL, KT_ENDPOINT, KT_PATH };

struct key_desc {
	const char *section;
	const char *key;
	enum key_type type;
	size_t offset;
	const char *def;
	uint64_t min, max;
	bool required;
};

static const struct key_desc keys[] = {
#define CFS_KEY(sec, k, type, field, def, mn, mx, req) \
	{#sec, #k, KT_##type, offsetof(struct cfsd_config, field), def, mn, mx, req},
#include "daemon/config_keys.def"
#undef CFS_KEY
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const struct key_desc tkeys[] = {
#define CFS_KEY(sec, k, type, field, def, mn, mx, req)
#define CFS_TKEY(k, type, field, def, mn, mx, req) \
	{"target.ID", #k, KT_##type, offsetof(struct cfsd_target_config, field), def, mn, mx, req},
#include "daemon/config_keys.def"
#undef CFS_TKEY
#undef CFS_KEY
};
#define NTKEYS (sizeof(tkeys) / sizeof(tkeys[0]))

struct target_seen {
	bool seen[NTKEYS];
	unsigned line[NTKEYS];
};

struct section_seen {
	char name[64]; /* [target.ID] with ID as a plain number */
	unsigned line;
	bool keyed; /* a key was given under it (on_key checked the section) */
};

struct parse_ctx {
	const char *path;
	FILE *f;
	unsigned line;
	struct cfsd_config *cfg;
	struct cfsd_config_errors *errs;
	bool seen[NKEYS];
	unsigned seen_line[NKEYS];
	struct target_seen *tseen;	/* parallel to cfg->targets */
	unsigned tcap;
	struct section_seen *secs;	/* every [section] header so far */
	unsigned nsecs;
	unsigned seccap;
	int rc;	/* first hard error (-ENOMEM) */
};

static void __attribute__((format(printf, 3, 4)))
add_error(struct cfsd_config_errors *errs, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (errs->count >= CFSD_CONFIG_MAX_ERRORS) {
		errs->dropped++;
		return;
	}
	n = snprintf(errs->msg[errs->count], sizeof(errs->msg[0]), "%s", path);
	/* A path longer than the message keeps only its start: the reason must
	 * not be written past the message (snprintf says what it wanted). */
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(errs->msg[0]))
		n = (int)sizeof(errs->msg[0]) - 1;
	va_start(ap, fmt);
	vsnprintf(errs->msg[errs->count] + n, sizeof(errs->msg[0]) - n, fmt, ap);
	va_end(ap);
	errs->count++;
}

int
cfsd_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	switch (toupper((unsigned char)*end)) {
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default: break;
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0')
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

int
cfsd_parse_endpoint(const char *s, char *host, unsigned hostlen, uint16_t *port)
{
	const char *colon, *h = s;
	size_t hl;
	char *end;
	unsigned long p;

	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		return -EINVAL;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno || p > 65535)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

static int
parse_bool(const char *v, bool *out)
{
	static const char *yes[] = {"yes", "true", "on", "1"};
	static const char *no[] = {"no", "false", "off", "0"};

	for (unsigned i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Decimal, or hexadecimal with 0x; a leading zero does not mean octal.
 * Digits only after the prefix: strtoull itself would take a second 0x. */
static int
parse_uint(const char *v, uint64_t *out)
{
	bool hex = v[0] == '0' && (v[1] == 'x' || v[1] == 'X');
	const char *d = hex ? v + 2 : v;

	if (*d == '\0')
		return -EINVAL;
	for (const char *p = d; *p; p++) {
		if (hex ? !isxdigit((unsigned char)*p) : !isdigit((unsigned char)*p))
			return -EINVAL;
	}
	errno = 0;
	*out = strtoull(d, NULL, hex ? 16 : 10);
	return errno == ERANGE ? -ERANGE : 0;
}

/* Store one value into the struct at `base`; errors name the line and the
 * section as written (sec). Also used for defaults (line 0 means the default
 * itself is wrong, a bug in config_keys.def). */
static void
set_value(struct parse_ctx *c, void *base, const char *sec, const struct key_desc *k,
	  const char *v, unsigned line)
{
	char *field = (char *)base + k->offset;
	uint64_t u = 0;
	int rc;

	switch (k->type) {
	case KT_U32:
	case KT_U64:
	case KT_SIZE:
		rc = k->type == KT_SIZE ? cfsd_parse_size(v, &u) : parse_uint(v, &u);
		if (rc != 0) {
			add_error(c->errs, c->path, ":%u: [%s] %s: '%s' is not a %s", line,
				  sec, k->key, v,
				  k->type == KT_SIZE ? "size (e.g. 512K, 64M, 2G)" : "number");
			return;
		}
		if (u < k->min || u > k->max) {
			add_error(c->errs, c->path, ":%u: [%s] %s: out of range %" PRIu64
				  "..%" PRIu64, line, sec, k->key, k->min, k->max);
			return;
		}
		if (k->type == KT_U32)
			*(uint32_t *)field = (uint32_t)u;
		else
			*(uint64_t *)field = u;
		return;
	case KT_BOOL:
		if (parse_bool(v, (bool *)field) != 0)
			add_error(c->errs, c->path, ":%u: [%s] %s: expected yes or no, got '%s'",
				  line, sec, k->key, v);
		return;
	case KT_LOOPS:
	case KT_LOOP:
		if (strcasecmp(v, "auto") == 0) {
			if (k->type == KT_LOOPS)
				*(uint32_t *)field = 0;
			else
				*(int32_t *)field = -1;
			return;
		}
		if (parse_uint(v, &u) != 0 || u < k->min || u > k->max) {
			add_error(c->errs, c->path, ":%u: [%s] %s: expected 'auto' or %" PRIu64
				  "..%" PRIu64 ", got '%s'", line, sec, k->key, k->min,
				  k->max, v);
			return;
		}
		if (k->type == KT_LOOPS)
			*(uint32_t *)field = (uint32_t)u;
		else
			*(int32_t *)field = (int32_t)u;
		return;
	case KT_LEVEL: {
		enum rt_log_level lvl;

		if (rt_log_parse_level(v, &lvl) != 0) {
			add_error(c->errs, c->path,
				  ":%u: [%s] %s: expected error, warn, info or debug, got '%s'",
				  line, sec, k->key, v);
			return;
		}
		*(int *)field = (int)lvl;
		return;
	}
	case KT_ENDPOINT:
	case KT_PATH: {
		char host[256];
		uint16_t port;
		char *copy;

		if (k->type == KT_ENDPOINT &&
		    cfsd_parse_endpoint(v, host, sizeof(host), &port) != 0) {
			add_error(c->errs, c->path, ":%u: [%s] %s: expected host:port, got '%s'",
				  line, sec, k->key, v);
			return;
		}
		if (k->type == KT_PATH && v[0] == '\0') {
			add_error(c->errs, c->path, ":%u: [%s] %s: empty path", line, sec,
				  k->key);
			return;
		}
		copy = strdup(v);
		if (!copy) {
			c->rc = -ENOMEM;
			return;
		}
		free(*(char **)field);
		*(char **)field = copy;
		return;
	}
	}
}

/* The entry for [target.ID], created on first sight with its defaults. */
static struct cfsd_target_config *
target_entry(struct parse_ctx *c, const char *section, struct target_seen **seen)
{
	struct cfsd_config *cfg = c->cfg;
	const char *ids = section + strlen("target.");
	uint64_t id;
	unsigned i;

	if (parse_uint(ids, &id) != 0 || id == 0 || id > UINT32_MAX) {
		add_error(c->errs, c->path, ":%u: [%s]: target id must be 1..4294967295",
			  c->line, section);
		return NULL;
	}
	for (i = 0; i < cfg->ntargets; i++) {
		if (cfg->targets[i].id == id) {
			*seen = &c->tseen[i];
			return &cfg->targets[i];
		}
	}
	if (cfg->ntargets == CFSD_MAX_TARGETS) {
		add_error(c->errs, c->path, ":%u: [%s]: more than %d targets", c->line, section,
			  CFSD_MAX_TARGETS);
		return NULL;
	}
	if (cfg->ntargets == c->tcap) {
		unsigned cap = c->tcap ? c->tcap * 2 : 4;
		void *t = realloc(cfg->targets, cap * sizeof(*cfg->targets));
		void *ts = t ? realloc(c->tseen, cap * sizeof(*c->tseen)) : NULL;

		if (t)
			cfg->targets = t;
		if (!t || !ts) {
			c->rc = -ENOMEM;
			return NULL;
		}
		c->tseen = ts;
		c->tcap = cap;
	}
	i = cfg->ntargets++;
	memset(&cfg->targets[i], 0, sizeof(cfg->targets[i]));
	memset(&c->tseen[i], 0, sizeof(c->tseen[i]));
	cfg->targets[i].id = (uint32_t)id;
	cfg->targets[i].line = c->line;
	for (unsigned k = 0; k < NTKEYS; k++) {
		if (tkeys[k].def[0] != '\0')
			set_value(c, &cfg->targets[i], section, &tkeys[k], tkeys[k].def, 0);
	}
	*seen = &c->tseen[i];
	return &cfg->targets[i];
}

static int
on_target_key(struct parse_ctx *c, const char *section, const char *name, const char *value)
{
	struct target_seen *seen;
	struct cfsd_target_config *t = target_entry(c, section, &seen);

	if (!t)
		return c->rc == 0;
	for (unsigned i = 0; i < NTKEYS; i++) {
		if (strcmp(tkeys[i].key, name) != 0)
			continue;
		if (seen->seen[i])
			add_error(c->errs, c->path, ":%u: [%s] %s: set twice (first on line %u)",
				  c->line, section, name, seen->line[i]);
		seen->seen[i] = true;
		seen->line[i] = c->line;
		set_value(c, t, section, &tkeys[i], value, c->line);
		return 1;
	}
	add_error(c->errs, c->path, ":%u: [%s] unknown key '%s'", c->line, section, name);
	return 1;
}

/* The section's name as note_section keeps it: [target.01] is [target.1]. */
static void
section_name(const char *raw, size_t len, char *out, size_t size)
{
	uint64_t id;

	if (len >= size)
		len = size - 1;
	memcpy(out, raw, len);
	out[len] = '\0';
	if (strncmp(out, "target.", 7) == 0 && parse_uint(out + 7, &id) == 0)
		snprintf(out, size, "target.%llu", (unsigned long long)id);
}

/* on_key has seen a key under section: what it says of the section is said. */
static void
section_keyed(struct parse_ctx *c, const char *section)
{
	char name[sizeof(c->secs->name)];

	section_name(section, strlen(section), name, sizeof(name));
	for (unsigned i = 0; i < c->nsecs; i++) {
		if (strcmp(c->secs[i].name, name) == 0)
			c->secs[i].keyed = true;
	}
}

/* A section without keys never reaches on_key: an unknown one, or a target
 * whose every key is commented out (it would silently not exist), is
 * reported here. */
static void
check_empty_sections(struct parse_ctx *c)
{
	for (unsigned i = 0; i < c->nsecs; i++) {
		const struct section_seen *sec = &c->secs[i];
		bool known = false;
		uint64_t id;

		if (sec->keyed)
			continue;
		if (strncmp(sec->name, "target.", 7) == 0) {
			if (parse_uint(sec->name + 7, &id) != 0 || id == 0 || id > UINT32_MAX)
				add_error(c->errs, c->path,
					  ":%u: [%s]: target id must be 1..4294967295", sec->line,
					  sec->name);
			else
				add_error(c->errs, c->path,
					  ":%u: [%s]: no keys (path and capacity are required)",
					  sec->line, sec->name);
			continue;
		}
		for (unsigned k = 0; k < NKEYS && !known; k++)
			known = strcmp(keys[k].section, sec->name) == 0;
		if (!known)
			add_error(c->errs, c->path, ":%u: unknown section [%s]", sec->line,
				  sec->name);
	}
}

static int
on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *c = user;
	bool section_known = false;

	section_keyed(c, section);
	if (strncmp(section, "target.", 7) == 0)
		return on_target_key(c, section, name, value);

	for (unsigned i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].section, section) != 0)
			continue;
		section_known = true;
		if (strcmp(keys[i].key, name) != 0)
			continue;
		if (c->seen[i])
			add_error(c->errs, c->path, ":%u: [%s] %s: set twice (first on line %u)",
				  c->line, section, name, c->seen_line[i]);
		c->seen[i] = true;
		c->seen_line[i] = c->line;
		set_value(c, c->cfg, section, &keys[i], value, c->line);
		return 1;
	}
	if (!section_known)
		add_error(c->errs, c->path, ":%u: unknown section [%s]", c->line, section);
	else
		add_error(c->errs, c->path, ":%u: [%s] unknown key '%s'", c->line, section, name);
	return 1;	/* keep going: report every problem, not only the first */
}

/* A "[name]" header line: inih calls handlers per key only, so a section
 * given twice would merge into one without a word, and [target.01] is
 * [target.1]. Each section may appear once. */
static void
note_section(struct parse_ctx *c, const char *s)
{
	char name[sizeof(c->secs->name)];
	const char *end;

	/* inih skips a UTF-8 byte order mark at the start of the file. */
	if (c->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	while (*s == ' ' || *s == '\t' || *s == '\r')
		s++;
	if (*s != '[' || !(end = strchr(s + 1, ']')))
		return; /* not a header, or a syntax error inih reports */
	section_name(s + 1, (size_t)(end - (s + 1)), name, sizeof(name));
	for (unsigned i = 0; i < c->nsecs; i++) {
		if (strcmp(c->secs[i].name, name) == 0) {
			add_error(c->errs, c->path,
				  ":%u: [%.*s]: the section of line %u again (each appears once)",
				  c->line, (int)(end - (s + 1)), s + 1, c->secs[i].line);
			return;
		}
	}
	if (c->nsecs == c->seccap) {
		unsigned cap = c->seccap ? c->seccap * 2 : 8;
		struct section_seen *n = realloc(c->secs, cap * sizeof(*n));

		if (!n) {
			c->rc = -ENOMEM;
			return;
		}
		c->secs = n;
		c->seccap = cap;
	}
	memcpy(c->secs[c->nsecs].name, name, sizeof(name));
	c->secs[c->nsecs].keyed = false;
	c->secs[c->nsecs++].line = c->line;
}

/* fgets with a line counter, so handlers know where they are. */
static char *
read_line(char *str, int num, void *stream)
{
	struct parse_ctx *c = stream;
	char *s = fgets(str, num, c->f);
	size_t n;
	int ch;

	if (!s)
		return NULL;
	c->line++;
	n = strlen(s);
	if (n == 0 || s[n - 1] == '\n') {
		note_section(c, s);
		return s;
	}
	/* inih's line buffer (num bytes) ended before the line did. Its rest
	 * would come back as a line of its own (a commented-out setting's tail
	 * taking effect): refuse the whole line instead. */
	ch = fgetc(c->f);
	if (ch == EOF || ch == '\n') {
		note_section(c, s); /* it just fit */
		return s;
	}
	while (ch != EOF && ch != '\n')
		ch = fgetc(c->f);
	add_error(c->errs, c->path, ":%u: line longer than %d characters", c->line, num - 1);
	s[0] = '\n';
	s[1] = '\0';
	return s;
}

static int
cmp_target(const void *a, const void *b)
{
	const struct cfsd_target_config *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

/* Whole-file rules for targets: required keys, distinct paths, loop range. */
static void
check_targets(struct parse_ctx *c)
{
	struct cfsd_config *cfg = c->cfg;

	for (unsigned t = 0; t < cfg->ntargets; t++) {
		struct cfsd_target_config *tc = &cfg->targets[t];

		for (unsigned k = 0; k < NTKEYS; k++) {
			if (tkeys[k].required && !c->tseen[t].seen[k])
				add_error(c->errs, c->path,
					  ":%u: [target.%u] %s: required key missing", tc->line,
					  tc->id, tkeys[k].key);
		}
		if (tc->loop >= 0 && cfg->loops != 0 && (uint32_t)tc->loop >= cfg->loops)
			add_error(c->errs, c->path,
				  ":%u: [target.%u] loop: %d but [node] loops is %u", tc->line,
				  tc->id, tc->loop, cfg->loops);
		for (unsigned o = 0; o < t; o++) {
			if (tc->path && cfg->targets[o].path &&
			    strcmp(tc->path, cfg->targets[o].path) == 0)
				add_error(c->errs, c->path,
					  ":%u: [target.%u] path: same directory as [target.%u]",
					  tc->line, tc->id, cfg->targets[o].id);
		}
	}
	if (cfg->ntargets > 1)
		qsort(cfg->targets, cfg->ntargets, sizeof(*cfg->targets), cmp_target);
}

int
cfsd_config_load(const char *path, struct cfsd_config *cfg, struct cfsd_config_errors *errs)
{
	struct parse_ctx c = {.path = path, .cfg = cfg, .errs = errs};
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	errs->count = 0;
	for (unsigned i = 0; i < NKEYS; i++) {
		if (keys[i].def[0] != '\0')
			set_value(&c, cfg, keys[i].section, &keys[i], keys[i].def, 0);
	}
	if (c.rc != 0)
		return c.rc;

	c.f = fopen(path, "r");
	if (!c.f) {
		rc = -errno;
		add_error(errs, path, ": cannot open: %s", strerror(-rc));
		return rc;
	}
	/* Continuation lines would make our line count lie. */
	ini_allow_multiline = false;
	rc = ini_parse_stream(read_line, &c, on_key, &c);
	fclose(c.f);
	if (rc > 0)
		add_error(errs, path, ":%d: syntax error (expected [section] or key = value)",
			  rc);
	else if (rc < 0)
		add_error(errs, path, ": cannot parse (out of memory)");
	if (c.rc != 0)
		goto out;

	for (unsigned i = 0; i < NKEYS; i++) {
		if (keys[i].required && !c.seen[i])
			add_error(errs, path, ": [%s] %s: required key missing", keys[i].section,
				  keys[i].key);
	}
	check_empty_sections(&c);
	check_targets(&c);
	if (cfg->reconnect_min_ms > cfg->reconnect_max_ms)
		add_error(errs, path, ": [net] reconnect_min_ms is larger than reconnect_max_ms");
	/* A lease shorter than the heartbeat would run out between beats. */
	if (cfg->mgmtd_lease_ms <= cfg->mgmtd_heartbeat_ms)
		add_error(errs, path, ": [mgmtd] lease_ms must be larger than heartbeat_ms");
	rc = errs->count ? -CFS_ECONFIG : 0;
out:
	free(c.tseen);
	free(c.secs);
	return c.rc ? c.rc : rc;
}

static void
free_strings(void *base, const struct key_desc *k, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (k[i].type == KT_ENDPOINT || k[i].type == KT_PATH) {
			char **p = (char **)((char *)base + k[i].offset);

			free(*p);
			*p = NULL;
		}
	}
}

void
cfsd_config_fini(struct cfsd_config *cfg)
{
	free_strings(cfg, keys, NKEYS);
	for (unsigned t = 0; t < cfg->ntargets; t++)
		free_strings(&cfg->targets[t], tkeys, NTKEYS);
	free(cfg->targets);
	cfg->targets = NULL;
	cfg->ntargets = 0;
}
