/* SPDX-License-Identifier: MIT */
/*
 * Logging: one line per call on stderr, assembled in a stack buffer and handed
 * to the kernel with a single write(2), so lines from several loops never
 * interleave (a line is shorter than PIPE_BUF). Never allocates, so it is usable
 * on the data path and from CFS_PANIC. The level is one global atomic.
 *
 *   2026-11-25T17:40:01.123Z W storage [storage#0x01000103 L1] message key=v
 *
 * The bracket appears when the line is written from inside an actor (handler,
 * init, fini, reply callback): kind name, local id, loop index.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "rt/rt_internal.h"

#define LOG_LINE_MAX 1024

static atomic_int g_log_level = RT_LOG_INFO;

void
rt_log_set_level(enum rt_log_level lvl)
{
	atomic_store_explicit(&g_log_level, (int)lvl, memory_order_relaxed);
}

enum rt_log_level
rt_log_get_level(void)
{
	return (enum rt_log_level)atomic_load_explicit(&g_log_level, memory_order_relaxed);
}

int
rt_log_parse_level(const char *s, enum rt_log_level *out)
{
	static const struct {
		const char *name;
		enum rt_log_level lvl;
	} names[] = {
		{"error", RT_LOG_ERR},	  {"err", RT_LOG_ERR},	 {"warn", RT_LOG_WARN},
		{"warning", RT_LOG_WARN}, {"info", RT_LOG_INFO}, {"debug", RT_LOG_DEBUG},
	};

	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].lvl;
			return 0;
		}
	}
	return -EINVAL;
}

/* snprintf-style append that never runs past the buffer. */
static size_t
clamp_add(size_t n, int w, size_t cap)
{
	if (w < 0)
		return n;
	n += (size_t)w;
	return n < cap ? n : cap - 1;
}

static void
log_write(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere left to report it */
		}
		p += w;
		n -= (size_t)w;
	}
}

static void
log_v(enum rt_log_level lvl, const char *subsys, const char *fmt, va_list ap)
{
	static const char letters[] = {'E', 'W', 'I', 'D'};
	char line[LOG_LINE_MAX];
	uint64_t wall = rt_clock_wall_ns();
	time_t secs = (time_t)(wall / 1000000000u);
	unsigned ms = (unsigned)(wall / 1000000u % 1000u);
	struct rt_actor *a = tls_actor;
	int saved_errno = errno;
	struct tm tm;
	size_t n;

	gmtime_r(&secs, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n = clamp_add(n,
		      snprintf(line + n, sizeof(line) - n, ".%03uZ %c %s ", ms,
			       letters[(unsigned)lvl < 4 ? lvl : 3], subsys ? subsys : "-"),
		      sizeof(line));
	if (a)
		n = clamp_add(n,
			      snprintf(line + n, sizeof(line) - n, "[%s#0x%08x L%u] ",
				       a->kind->name, a->local, a->loop->index),
			      sizeof(line));
	n = clamp_add(n, vsnprintf(line + n, sizeof(line) - n, fmt, ap), sizeof(line));
	/* Truncated lines keep their newline; the last bytes of the text are lost. */
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	log_write(line, n);
	errno = saved_errno;
}

void
rt_log(enum rt_log_level lvl, const char *subsys, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_v(lvl, subsys, fmt, ap);
	va_end(ap);
}

_Noreturn void
rt_panic(const char *file, int line, const char *fmt, ...)
{
	char msg[LOG_LINE_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rt_log(RT_LOG_ERR, "panic", "%s:%d: %s", file, line, msg);
	abort();
}
