// SPDX-License-Identifier: MIT
/*
 * bench/fio.c: run fio and pick one number out of its JSON report (fio.h).
 * The report is searched, not parsed: the job's "<dir>" : { section, then the
 * first "<field>" : in it, which is the job total fio prints first.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/fio.h"

/* All of f's output, NUL-terminated (NULL when out of memory). */
static char *
read_all(FILE *f)
{
	size_t cap = 0, n = 0;
	char *out = NULL;

	for (;;) {
		size_t k;

		if (n + 4096 > cap) {
			char *bigger = realloc(out, cap = cap ? cap * 2 : 65536);

			if (!bigger) {
				free(out);
				return NULL;
			}
			out = bigger;
		}
		k = fread(out + n, 1, cap - n - 1, f);
		if (k == 0)
			break;
		n += k;
	}
	out[n] = '\0';
	return out;
}

double
bench_fio(const char *args, double seconds, const char *dir, const char *field)
{
	char cmd[1536], key[64], *out, *p;
	double v = -1;
	FILE *f;

	if (seconds > 0)
		snprintf(cmd, sizeof(cmd),
			 "fio %s --time_based --runtime=%.0f --output-format=json 2>/dev/null", args,
			 ceil(seconds));
	else
		snprintf(cmd, sizeof(cmd), "fio %s --output-format=json 2>/dev/null", args);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	out = read_all(f);
	pclose(f);
	if (!out)
		return -1;
	snprintf(key, sizeof(key), "\"%s\" : {", dir);
	p = strstr(out, "\"jobs\"");
	p = p ? strstr(p, key) : NULL;
	snprintf(key, sizeof(key), "\"%s\" : ", field);
	p = p ? strstr(p, key) : NULL;
	if (p)
		v = strtod(p + strlen(key), NULL);
	free(out);
	return v;
}
