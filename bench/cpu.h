/* SPDX-License-Identifier: MIT */
/*
 * Where a benchmark's processes run. A latency-bound row (bench_storage's
 * 4 KiB reads) pays a wake-up across CPUs at every hop between its processes;
 * on a paravirtualized machine that is an interrupt through the hypervisor,
 * tens of microseconds, and whether the scheduler puts client and daemon on
 * one CPU or on two changes the result more than the code does. Such a row
 * runs its candidate and its baseline on the same CPU, the one that takes
 * the disk's interrupts, as fio's cpus_allowed would.
 */
#ifndef CFS_BENCH_CPU_H
#define CFS_BENCH_CPU_H

#include <sched.h> /* cpu_set_t: needs _GNU_SOURCE before the first system header */
#include <sys/types.h>

/**
 * The CPU that has taken the most interrupts of the disk holding path: the
 * block device of path's file system, its PCI function's MSI vectors, their
 * counts in /proc/interrupts.
 * @return the CPU number, or -ENOENT when the disk has no interrupts of its
 *         own to read (a virtual device: device-mapper, loop, tmpfs).
 */
int bench_disk_irq_cpu(const char *path);

/**
 * Set the CPU affinity of every thread of process pid (0: this process).
 * Threads and processes started later inherit their creator's.
 * @return 0, or a negative errno (the first thread that refused).
 */
int bench_pin(pid_t pid, const cpu_set_t *set);

#endif
