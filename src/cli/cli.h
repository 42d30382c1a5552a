/* SPDX-License-Identifier: MIT */
/*
 * The chainfs command line tool: a table of subcommands, each in its own file,
 * sharing one way to reach a node (cli_open) and to report errors.
 */
#ifndef CFS_CLI_H
#define CFS_CLI_H

#include <stdbool.h>
#include <errno.h>
#include <stdint.h>

#include "client/client.h"

struct cli_opts {
	uint32_t timeout_ms;
	bool verbose;
};

extern struct cli_opts g_cli;

/* Connect a client to ADDR; prints the reason and returns NULL on failure. */
struct cfs_client *cli_open(const char *endpoint, uint32_t *node);
/* Print "chainfs: what: reason (NAME)" to stderr. */
void cli_error(const char *what, int rc);
/* A whole number: decimal, or hexadecimal after 0x (a leading 0 is not
 * octal), no sign, no trailing text, at most max. 0, -EINVAL or -ERANGE. */
int cli_parse_uint(const char *s, uint64_t max, uint64_t *out);
/* A byte count that fits 32 bits: such a number, optionally followed by K, M
 * or G (powers of 1024). 0, -EINVAL or -ERANGE (also when the suffix would
 * carry it past 32 bits). */
int cli_parse_size32(const char *s, uint32_t *out);

int cli_ping(int argc, char **argv);
int cli_admin(int argc, char **argv);
/* admin subcommands served by mgmtd; -1 when argv[1] is not one of them. */
int cli_admin_cluster(int argc, char **argv);
int cli_chunk(int argc, char **argv);

#endif
