// SPDX-License-Identifier: MIT
/*
 * Linearizability checker for histories of register operations, one register per key.
 *
 * Tests record every operation they issue against the cluster: lc_invoke() just before the
 * request leaves, lc_complete() when its outcome is known. Timestamps come from one shared
 * atomic counter, so the recorded invoke/complete order is the real-time order. lc_check()
 * then decides, key by key (a register history is linearizable iff each key's is), whether
 * some total order of the operations respects real time and the semantics of a register
 * whose initial value is 0. The search is Wing & Gong's, with Lowe's memoization of
 * (linearized set, register value) so that equivalent partial orders are explored once.
 *
 * Outcomes: an LC_OK write happened inside [invoke, complete]; an LC_FAILED write is known
 * not to have happened and is dropped; an LC_UNKNOWN write (timeout, dead replica) may
 * have happened at any point after its invoke, so it completes at +infinity. Reads that
 * are not LC_OK say nothing and are dropped. An operation never completed counts as
 * LC_UNKNOWN. Recording is thread-safe; lc_check() must not run concurrently with
 * recording into the same history.
 *
 * Write a value per key only once (e.g. writer id and sequence number) and never write 0:
 * the checker is correct with repeated values, but unique ones let it pin down when an
 * unknown write took effect and refute an impossible read without searching, which keeps
 * histories with many timeouts (a killed node) cheap to check.
 */
#ifndef CHAINFS_TESTS_LINCHECK_H
#define CHAINFS_TESTS_LINCHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum lc_op { LC_WRITE, LC_READ };
enum lc_outcome { LC_OK, LC_FAILED, LC_UNKNOWN };

/* Default caps of one key's search (lc_set_limits() changes them). */
#define LC_DEFAULT_MAX_STATES 10000000ULL
#define LC_DEFAULT_MAX_BYTES  (2ULL << 30)

/* Returned by lc_invoke() when it could not record (out of memory). */
#define LC_NO_ID UINT64_MAX

struct lc_history;

/**
 * Create an empty history.
 * @return the history, or NULL when out of memory.
 */
struct lc_history *lc_history_new(void);

/** Free a history (NULL is allowed). */
void lc_history_free(struct lc_history *h);

/**
 * Cap the search of each key: at most @max_states memoized (set, value) states and
 * @max_bytes of memory for them; lc_check() returns -E2BIG past either. 0 keeps a value.
 */
void lc_set_limits(struct lc_history *h, uint64_t max_states, uint64_t max_bytes);

/**
 * Record the invocation of an operation. Thread-safe.
 * @param thread the issuing thread or client (reports only).
 * @param value  the value written by LC_WRITE; ignored for LC_READ.
 * @return the event id to pass to lc_complete(), or LC_NO_ID when out of memory (lc_check()
 *         then returns -ENOMEM).
 */
uint64_t lc_invoke(struct lc_history *h, uint64_t key, unsigned thread, enum lc_op op,
		   uint64_t value);

/**
 * Record the completion of event @id. Thread-safe.
 * @param value the value returned by a read (ignored for writes and non-OK outcomes).
 * An unknown id or a second completion of the same id is a misuse: lc_check() then
 * returns -EINVAL. LC_NO_ID is ignored.
 */
void lc_complete(struct lc_history *h, uint64_t id, enum lc_outcome outcome, uint64_t value);

/**
 * Check that the history is linearizable, key by key.
 * @param why    on any nonzero return, a one-line reason naming the key (may be NULL).
 * @return 0 linearizable; -1 not linearizable; -ENOMEM out of memory (while recording or
 *         checking); -E2BIG a key's search exceeded its limits (undecided); -EINVAL misuse
 *         of lc_complete().
 */
int lc_check(struct lc_history *h, char *why, size_t whylen);

/** Number of events recorded so far. Thread-safe. */
uint64_t lc_count(struct lc_history *h);

/**
 * Write the history, one event per line in invoke order, to @f (for failing tests to keep).
 * @return 0, or -EIO when writing failed.
 */
int lc_dump(struct lc_history *h, FILE *f);

#endif /* CHAINFS_TESTS_LINCHECK_H */
