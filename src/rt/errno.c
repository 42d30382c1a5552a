/* SPDX-License-Identifier: MIT */
/*
 * Names and texts of error values, from two tables: chainfs's own codes come
 * from include/chainfs/errno.def (<= -1000); system codes (-1..-999, -errno)
 * get their symbolic name from the list below and their text from the C
 * library. Used by every log line that reports an error (RT_ERR).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strerrordesc_np: thread-safe, no buffer */
#endif
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "chainfs/errno.h"

struct err_row {
	int num;
	const char *name;
	const char *text;
};

static const struct err_row g_own[] = {
#define CFS_ERR(name, num, text) {num, #name, text},
#include "chainfs/errno.def"
#undef CFS_ERR
};

/* The errno values chainfs meets. Aliases with equal values (EWOULDBLOCK,
 * EOPNOTSUPP, EDEADLOCK) are left out: the first name wins. */
/* clang-format off */
#define SYS_ERRNOS(X)                                                                    \
	X(EPERM) X(ENOENT) X(ESRCH) X(EINTR) X(EIO) X(ENXIO) X(E2BIG) X(ENOEXEC) X(EBADF) \
	X(ECHILD) X(EAGAIN) X(ENOMEM) X(EACCES) X(EFAULT) X(EBUSY) X(EEXIST) X(EXDEV)     \
	X(ENODEV) X(ENOTDIR) X(EISDIR) X(EINVAL) X(ENFILE) X(EMFILE) X(ENOTTY) X(EFBIG)   \
	X(ENOSPC) X(ESPIPE) X(EROFS) X(EMLINK) X(EPIPE) X(EDOM) X(ERANGE) X(EDEADLK)      \
	X(ENAMETOOLONG) X(ENOLCK) X(ENOSYS) X(ENOTEMPTY) X(ELOOP) X(ENODATA) X(ETIME)     \
	X(EPROTO) X(EBADMSG) X(EOVERFLOW) X(EILSEQ) X(ENOTSOCK) X(EDESTADDRREQ)           \
	X(EMSGSIZE) X(EPROTOTYPE) X(ENOPROTOOPT) X(EPROTONOSUPPORT) X(ENOTSUP)            \
	X(EAFNOSUPPORT) X(EADDRINUSE) X(EADDRNOTAVAIL) X(ENETDOWN) X(ENETUNREACH)        \
	X(ENETRESET) X(ECONNABORTED) X(ECONNRESET) X(ENOBUFS) X(EISCONN) X(ENOTCONN)      \
	X(ESHUTDOWN) X(ETIMEDOUT) X(ECONNREFUSED) X(EHOSTDOWN) X(EHOSTUNREACH)            \
	X(EALREADY) X(EINPROGRESS) X(ESTALE) X(EDQUOT) X(ECANCELED) X(EOWNERDEAD)         \
	X(ENOTRECOVERABLE) X(EUCLEAN)
/* clang-format on */

static const struct err_row g_sys[] = {
#define SYS_ROW(name) {name, #name, NULL},
	SYS_ERRNOS(SYS_ROW)
#undef SYS_ROW
};

static const struct err_row *
find(const struct err_row *rows, size_t n, unsigned num)
{
	for (size_t i = 0; i < n; i++) {
		if ((unsigned)rows[i].num == num)
			return &rows[i];
	}
	return NULL;
}

/* |rc|, without the overflow of -INT_MIN: a peer's response code may be any
 * negative int. */
static unsigned
err_num(int rc)
{
	return rc < 0 ? 0u - (unsigned)rc : (unsigned)rc;
}

static const struct err_row *
lookup(int rc)
{
	unsigned num = err_num(rc);

	if (num >= 1000)
		return find(g_own, sizeof(g_own) / sizeof(g_own[0]), num);
	return find(g_sys, sizeof(g_sys) / sizeof(g_sys[0]), num);
}

const char *
cfs_errname(int rc)
{
	const struct err_row *r;

	if (rc == 0)
		return "OK";
	r = lookup(rc);
	return r ? r->name : "E?";
}

const char *
cfs_strerror(int rc)
{
	unsigned num = err_num(rc);
	const struct err_row *r;
	const char *s;

	if (rc == 0)
		return "success";
	if (num >= 1000) {
		r = lookup(rc);
		return r ? r->text : "unknown chainfs error";
	}
	s = num <= INT_MAX ? strerrordesc_np((int)num) : NULL;
	return s ? s : "unknown error";
}
