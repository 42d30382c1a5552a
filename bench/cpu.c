// SPDX-License-Identifier: MIT
/*
 * bench/cpu.c: the disk's interrupt CPU and pinning whole processes (cpu.h).
 * The disk is found from sysfs alone: /sys/dev/block/MAJ:MIN resolves to the
 * device's place in the device tree (a partition sits under its disk), and
 * the first ancestor with an msi_irqs directory is the PCI function whose
 * vectors carry its completions (virtio-blk and NVMe alike).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "bench/cpu.h"

#define MAX_IRQS 256

/* The MSI vectors of the PCI function above sysfs device path dev. */
static int
device_irqs(char *dev, unsigned *irqs, int max)
{
	for (char *slash = dev + strlen(dev); slash > dev; slash = strrchr(dev, '/')) {
		char dir[PATH_MAX + 16];
		struct dirent *e;
		DIR *d;
		int n = 0;

		*slash = '\0';
		snprintf(dir, sizeof(dir), "%s/msi_irqs", dev);
		d = opendir(dir);
		if (d == NULL)
			continue;
		while ((e = readdir(d)) != NULL && n < max) {
			char *end;
			unsigned long v = strtoul(e->d_name, &end, 10);

			if (e->d_name[0] != '.' && *end == '\0')
				irqs[n++] = (unsigned)v;
		}
		closedir(d);
		return n > 0 ? n : -ENOENT;
	}
	return -ENOENT;
}

int
bench_disk_irq_cpu(const char *path)
{
	char link[64], dev[PATH_MAX], *line = NULL;
	size_t cap = 0;
	unsigned irqs[MAX_IRQS];
	unsigned long long counts[CPU_SETSIZE] = {0};
	int nirqs, ncpu = 0, best = -ENOENT;
	struct stat st;
	FILE *f;

	if (stat(path, &st) != 0)
		return -errno;
	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
	if (realpath(link, dev) == NULL)
		return -ENOENT;
	nirqs = device_irqs(dev, irqs, MAX_IRQS);
	if (nirqs < 0)
		return nirqs;
	f = fopen("/proc/interrupts", "r");
	if (f == NULL)
		return -errno;
	/* The header names the CPU columns; each line is "IRQ: count per CPU ...". */
	if (getline(&line, &cap, f) > 0) {
		for (char *p = strstr(line, "CPU"); p && ncpu < CPU_SETSIZE;
		     p = strstr(p + 3, "CPU"))
			ncpu++;
	}
	while (getline(&line, &cap, f) > 0) {
		char *p = line, *end;
		unsigned long irq = strtoul(p, &end, 10);
		bool ours = false;

		if (end == p || *end != ':')
			continue;
		for (int i = 0; i < nirqs; i++)
			ours |= irqs[i] == irq;
		if (!ours)
			continue;
		p = end + 1;
		for (int c = 0; c < ncpu; c++) {
			unsigned long long v = strtoull(p, &end, 10);

			if (end == p)
				break;
			counts[c] += v;
			p = end;
		}
	}
	free(line);
	fclose(f);
	for (int c = 0; c < ncpu; c++) {
		if (counts[c] > 0 && (best < 0 || counts[c] > counts[best]))
			best = c;
	}
	return best;
}

int
bench_pin(pid_t pid, const cpu_set_t *set)
{
	char dir[64];
	struct dirent *e;
	int rc = 0;
	DIR *d;

	if (pid == 0)
		snprintf(dir, sizeof(dir), "/proc/self/task");
	else
		snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	d = opendir(dir);
	if (d == NULL)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		pid_t tid = (pid_t)atoi(e->d_name);

		/* A thread that ended meanwhile (ESRCH) is no failure. */
		if (tid > 0 && sched_setaffinity(tid, sizeof(*set), set) != 0 && errno != ESRCH &&
		    rc == 0)
			rc = -errno;
	}
	closedir(d);
	return rc;
}
