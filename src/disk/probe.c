/* SPDX-License-Identifier: MIT */
/*
 * What the file system under a target does with O_DIRECT. A file system may
 * accept the flag and still go through the page cache (some do for
 * encrypted, compressed or data-journalled files): nothing fails, but every
 * chunk is then held twice and the read path measures memory, not the disk.
 * Open asks once, with a scratch block, and warns.
 */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "disk/disk.h"

int
disk_probe_cached(const char *dir, bool direct)
{
	unsigned char vec = 0;
	void *buf = NULL, *map = MAP_FAILED;
	char *path;
	ssize_t n;
	int fd = -1, rc;

	if (dir == NULL)
		return -EINVAL;
	path = malloc(strlen(dir) + sizeof("/.direct-probe"));
	if (path == NULL)
		return -ENOMEM;
	sprintf(path, "%s/.direct-probe", dir);
	if (posix_memalign(&buf, DISK_BLOCK, DISK_BLOCK) != 0) {
		buf = NULL;
		rc = -ENOMEM;
		goto out;
	}
	memset(buf, 0x5a, DISK_BLOCK);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0), 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	n = pwrite(fd, buf, DISK_BLOCK, 0);
	if (n == (ssize_t)DISK_BLOCK)
		n = pread(fd, buf, DISK_BLOCK, 0);
	if (n != (ssize_t)DISK_BLOCK) {
		rc = n < 0 ? -errno : -EIO;
		goto out;
	}
	/* A mapping only looks: it does not bring the page in by itself. */
	map = mmap(NULL, DISK_BLOCK, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED || mincore(map, DISK_BLOCK, &vec) != 0) {
		rc = -errno;
		goto out;
	}
	rc = vec & 1;
out:
	if (map != MAP_FAILED)
		munmap(map, DISK_BLOCK);
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	free(buf);
	free(path);
	return rc;
}
