/* SPDX-License-Identifier: MIT */
/*
 * Error values: 0 or a negative number. -1..-999 are -errno passed through
 * from the system; <= -1000 are chainfs's own, generated from errno.def.
 */
#ifndef CHAINFS_ERRNO_H
#define CHAINFS_ERRNO_H

#include "chainfs/export.h"

enum cfs_errno {
#define CFS_ERR(name, num, text) CFS_##name = num,
#include "chainfs/errno.def"
#undef CFS_ERR
};

/** Text for an error value (negative or positive); never NULL. */
CFS_EXPORT const char *cfs_strerror(int rc);
/** Symbolic name ("ENOENT", "ESTALECHAIN"); "E?" for unknown values. */
CFS_EXPORT const char *cfs_errname(int rc);

#endif
