/* SPDX-License-Identifier: MIT */
/*
 * The network a benchmark runs on. Client and daemons of a benchmark meet on
 * loopback; by default the benchmark first moves itself (and so every process
 * it starts) into a private network namespace whose loopback allows 512 KiB
 * TCP segments (BIG TCP, as an operator enables it on a NIC that supports it),
 * so that the machine's own network is never touched. BENCH_NET chooses:
 *   bigtcp   private namespace, BIG TCP on its loopback (default)
 *   private  private namespace, loopback as the kernel sets it up (64 KiB)
 *   host     the machine's loopback, untouched
 * Without the privilege for a namespace, bigtcp and private fall back to host
 * and say so.
 */
#ifndef CFS_BENCH_NET_H
#define CFS_BENCH_NET_H

/**
 * Set the network up as BENCH_NET asks, before any socket or child process.
 * @return a one-line description of the network in use (static storage), for
 *         the benchmark's output.
 */
const char *bench_net_setup(void);

#endif
