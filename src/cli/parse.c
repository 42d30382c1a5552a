/* SPDX-License-Identifier: MIT */
/*
 * Numbers on the command line, read one way everywhere: decimal, or
 * hexadecimal after 0x (a leading 0 is not octal, as in chainfs.conf), no
 * sign, no trailing text, and no value that wraps.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "cli/cli.h"

int
cli_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	unsigned base = 10;
	uint64_t v = 0;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (*s == '\0')
			return -EINVAL;
	}
	for (; *s; s++) {
		unsigned d;

		if (isdigit((unsigned char)*s))
			d = (unsigned)(*s - '0');
		else if (base == 16 && isxdigit((unsigned char)*s))
			d = (unsigned)(tolower((unsigned char)*s) - 'a' + 10);
		else
			return -EINVAL;
		if (v > (UINT64_MAX - d) / base)
			return -ERANGE;
		v = v * base + d;
	}
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int
cli_parse_size32(const char *s, uint32_t *out)
{
	char num[32];
	size_t n = s ? strlen(s) : 0;
	unsigned shift = 0;
	uint64_t v;
	int rc;

	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		break;
	}
	if (shift)
		num[n - 1] = '\0';
	rc = cli_parse_uint(num, UINT32_MAX >> shift, &v);
	if (rc != 0)
		return rc;
	*out = (uint32_t)(v << shift);
	return 0;
}
