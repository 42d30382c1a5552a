/* SPDX-License-Identifier: MIT */
#ifndef CHAINFS_EXPORT_H
#define CHAINFS_EXPORT_H
/* The library builds with -fvisibility=hidden; only CFS_EXPORT symbols are ABI. */
#define CFS_EXPORT __attribute__((visibility("default")))
#endif
