// SPDX-License-Identifier: MIT
/*
 * The linearizability checker (tests/lincheck.c): hand-written histories whose verdict is
 * known, and histories recorded from a real concurrent register (16 threads, random
 * delays), checked as recorded and after corrupting one read.
 *
 * Hand-written histories are recorded from one thread: the order of lc_invoke() and
 * lc_complete() calls is the real-time order the checker sees.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/lincheck.h"

static char g_why[512];

static int
check(struct lc_history *h)
{
	return lc_check(h, g_why, sizeof(g_why));
}

/* A whole operation with nothing concurrent to it. */
static void
op_seq(struct lc_history *h, uint64_t key, enum lc_op op, uint64_t value, enum lc_outcome oc)
{
	uint64_t id = lc_invoke(h, key, 0, op, value);

	lc_complete(h, id, oc, value);
}

START_TEST(test_lincheck_ok_when_sequential)
{
	struct lc_history *h = lc_history_new();

	op_seq(h, 1, LC_READ, 0, LC_OK);
	op_seq(h, 1, LC_WRITE, 5, LC_OK);
	op_seq(h, 1, LC_READ, 5, LC_OK);
	op_seq(h, 1, LC_WRITE, 6, LC_OK);
	op_seq(h, 1, LC_READ, 6, LC_OK);
	op_seq(h, 1, LC_READ, 6, LC_OK);
	op_seq(h, 2, LC_READ, 0, LC_OK);
	ck_assert_int_eq(check(h), 0);
	ck_assert_str_eq(g_why, "");
	lc_history_free(h);
}
END_TEST

START_TEST(test_lincheck_fails_when_read_stale_after_completed_write)
{
	struct lc_history *h = lc_history_new();

	op_seq(h, 3, LC_WRITE, 1, LC_OK);
	op_seq(h, 3, LC_WRITE, 2, LC_OK);
	op_seq(h, 3, LC_READ, 1, LC_OK);
	ck_assert_int_eq(check(h), -1);
	ck_assert_ptr_nonnull(strstr(g_why, "key 3"));
	ck_assert_ptr_nonnull(strstr(g_why, "read"));
	lc_history_free(h);
}
END_TEST

START_TEST(test_lincheck_fails_when_read_of_initial_after_write)
{
	struct lc_history *h = lc_history_new();

	op_seq(h, 9, LC_WRITE, 1, LC_OK);
	op_seq(h, 9, LC_READ, 0, LC_OK);
	ck_assert_int_eq(check(h), -1);
	ck_assert_ptr_nonnull(strstr(g_why, "key 9"));
	lc_history_free(h);
}
END_TEST

/* write(7) overlapping a read that returns @seen. */
static int
concurrent_write_read(uint64_t seen, bool read_first)
{
	struct lc_history *h = lc_history_new();
	uint64_t w, r;
	int rc;

	op_seq(h, 1, LC_WRITE, 3, LC_OK);
	if (read_first) {
		r = lc_invoke(h, 1, 1, LC_READ, 0);
		w = lc_invoke(h, 1, 0, LC_WRITE, 7);
	} else {
		w = lc_invoke(h, 1, 0, LC_WRITE, 7);
		r = lc_invoke(h, 1, 1, LC_READ, 0);
	}
	lc_complete(h, r, LC_OK, seen);
	lc_complete(h, w, LC_OK, 0);
	rc = check(h);
	lc_history_free(h);
	return rc;
}

START_TEST(test_lincheck_ok_when_concurrent_read_sees_either_value)
{
	ck_assert_int_eq(concurrent_write_read(3, false), 0);
	ck_assert_int_eq(concurrent_write_read(7, false), 0);
	ck_assert_int_eq(concurrent_write_read(3, true), 0);
	ck_assert_int_eq(concurrent_write_read(7, true), 0);
	ck_assert_int_eq(concurrent_write_read(4, false), -1);
}
END_TEST

START_TEST(test_lincheck_fails_when_sequential_reads_go_back_in_time)
{
	/* w(1) and w(2) both overlap three sequential reads 1, 2, 1: each read alone fits,
	 * no order of the two writes fits all three. */
	struct lc_history *h = lc_history_new();
	uint64_t w1 = lc_invoke(h, 4, 0, LC_WRITE, 1);
	uint64_t w2 = lc_invoke(h, 4, 1, LC_WRITE, 2);

	op_seq(h, 4, LC_READ, 1, LC_OK);
	op_seq(h, 4, LC_READ, 2, LC_OK);
	op_seq(h, 4, LC_READ, 1, LC_OK);
	lc_complete(h, w1, LC_OK, 0);
	lc_complete(h, w2, LC_OK, 0);
	ck_assert_int_eq(check(h), -1);
	ck_assert_ptr_nonnull(strstr(g_why, "key 4"));
	lc_history_free(h);
}
END_TEST

START_TEST(test_lincheck_ok_when_unknown_write_observed_later)
{
	struct lc_history *h = lc_history_new();
	uint64_t w;

	op_seq(h, 1, LC_WRITE, 1, LC_OK);
	w = lc_invoke(h, 1, 0, LC_WRITE, 2);
	lc_complete(h, w, LC_UNKNOWN, 0);
	op_seq(h, 1, LC_READ, 1, LC_OK); /* not applied yet */
	op_seq(h, 1, LC_READ, 2, LC_OK); /* applied long after its caller gave up */
	op_seq(h, 1, LC_READ, 2, LC_OK);
	ck_assert_int_eq(check(h), 0);
	lc_history_free(h);
}
END_TEST

START_TEST(test_lincheck_ok_when_never_completed_write_observed)
{
	struct lc_history *h = lc_history_new();

	lc_invoke(h, 1, 0, LC_WRITE, 2); /* the client died: no completion */
	op_seq(h, 1, LC_READ, 0, LC_OK);
	op_seq(h, 1, LC_READ, 2, LC_OK);
	ck_assert_int_eq(check(h), 0);
	lc_history_free(h);
}
END_TEST

START_TEST(test_lincheck_fails_when_unknown_write_observed_before_invoke)
{
	struct lc_history *h = lc_history_new();
	uint64_t w;

	op_seq(h, 1, LC_READ, 2, LC_OK);
	w = lc_invoke(h, 1, 0, LC_WRITE, 2);
	lc_complete(h, w, LC_UNKNOWN, 0);
	ck_assert_int_eq(check(h), -1);
	lc_history_free(h);
}
END_TEST

START_TEST(test_lincheck_fails_when_unknown_write_flips_back)
{
	/* Once a read has seen the unknown write, a later read cannot see the older value. */
	struct lc_history *h = lc_history_new();
	uint64_t w;

	op_seq(h, 1, LC_WRITE, 1, LC_OK);
	w = lc_invoke(h, 1, 0, LC_WRITE, 2);
	lc_complete(h, w, LC_UNKNOWN, 0);
	op_seq(h, 1, LC_READ, 2, LC_OK);
	op_seq(h, 1, LC_READ, 1, LC_OK);
	ck_assert_int_eq(check(h), -1);
	lc_history_free(h);
}
END_TEST

START_TEST(test_lincheck_fails_when_failed_write_observed)
{
	struct lc_history *h = lc_history_new();
	uint64_t w;

	op_seq(h, 8, LC_WRITE, 1, LC_OK);
	w = lc_invoke(h, 8, 0, LC_WRITE, 2);
	lc_complete(h, w, LC_FAILED, 0);
	op_seq(h, 8, LC_READ, 2, LC_OK);
	ck_assert_int_eq(check(h), -1);
	ck_assert_ptr_nonnull(strstr(g_why, "key 8"));
	lc_history_free(h);
}
END_TEST

START_TEST(test_lincheck_ok_when_failed_and_unknown_reads_dropped)
{
	struct lc_history *h = lc_history_new();
	uint64_t r;

	op_seq(h, 1, LC_WRITE, 1, LC_OK);
	op_seq(h, 1, LC_READ, 99, LC_FAILED);
	op_seq(h, 1, LC_READ, 98, LC_UNKNOWN);
	lc_invoke(h, 1, 0, LC_READ, 0); /* never completed */
	r = lc_invoke(h, 1, 0, LC_READ, 0);
	lc_complete(h, r, LC_OK, 1);
	ck_assert_int_eq(check(h), 0);
	lc_history_free(h);
}
END_TEST

START_TEST(test_lincheck_names_key_when_only_one_key_fails)
{
	struct lc_history *h = lc_history_new();

	for (uint64_t k = 10; k < 20; k++) {
		op_seq(h, k, LC_WRITE, k, LC_OK);
		op_seq(h, k, LC_READ, k == 17 ? 0 : k, LC_OK);
	}
	ck_assert_int_eq(check(h), -1);
	ck_assert_ptr_nonnull(strstr(g_why, "key 17:"));
	lc_history_free(h);
}
END_TEST

START_TEST(test_lincheck_invalid_when_completed_twice)
{
	struct lc_history *h = lc_history_new();
	uint64_t w = lc_invoke(h, 1, 0, LC_WRITE, 1);

	lc_complete(h, w, LC_OK, 0);
	lc_complete(h, w, LC_OK, 0);
	ck_assert_int_eq(check(h), -EINVAL);
	lc_history_free(h);

	h = lc_history_new();
	lc_complete(h, 5, LC_OK, 0);
	ck_assert_int_eq(check(h), -EINVAL);
	lc_history_free(h);
}
END_TEST

START_TEST(test_lincheck_gives_up_when_state_limit_reached)
{
	/* 12 concurrent writes of distinct values, then reads of 1 and of 2 in sequence:
	 * each value was written, but the search must try the orders of the writes (up to
	 * the memoized (set, last value) pairs) before it can say no. */
	struct lc_history *h = lc_history_new();
	uint64_t w[12];

	for (unsigned i = 0; i < 12; i++)
		w[i] = lc_invoke(h, 5, i, LC_WRITE, i + 1);
	for (unsigned i = 0; i < 12; i++)
		lc_complete(h, w[i], LC_OK, 0);
	op_seq(h, 5, LC_READ, 1, LC_OK);
	op_seq(h, 5, LC_READ, 2, LC_OK);
	ck_assert_int_eq(check(h), -1); /* within the default limits */
	lc_set_limits(h, 100, 0);
	ck_assert_int_eq(check(h), -E2BIG);
	ck_assert_ptr_nonnull(strstr(g_why, "key 5"));
	lc_set_limits(h, 1000000, 64 * 1024);
	ck_assert_int_eq(check(h), -E2BIG);
	lc_history_free(h);
}
END_TEST

/*
 * A real linearizable register: 16 threads issue random reads and writes on a few atomic
 * variables with random delays on both sides of the atomic step. Every event is recorded
 * live into one history (exercising concurrent recording) and also logged with stamps of
 * our own, so that a copy can be replayed, possibly corrupted, into a second history.
 */
#define SIM_THREADS 16
#define SIM_OPS	    200
#define SIM_KEYS    3

struct sim_op {
	uint64_t key, value;
	uint64_t t_inv, t_ret;
	enum lc_op op;
	enum lc_outcome outcome;
};

struct sim {
	struct lc_history *live;
	_Atomic uint64_t reg[SIM_KEYS];
	_Atomic uint64_t clock;
	struct sim_op ops[SIM_THREADS][SIM_OPS];
};

struct sim_arg {
	struct sim *s;
	unsigned thread;
};

static void
tiny_delay(unsigned *seed)
{
	unsigned r = rand_r(seed) % 8;

	if (r < 3)
		return;
	if (r < 6) {
		sched_yield();
		return;
	}
	nanosleep(&(struct timespec){.tv_nsec = 1000 * (rand_r(seed) % 30)}, NULL);
}

static void *
sim_thread(void *p)
{
	struct sim_arg *a = p;
	struct sim *s = a->s;
	unsigned seed = 0x1234 + a->thread * 7919;

	for (unsigned i = 0; i < SIM_OPS; i++) {
		struct sim_op *o = &s->ops[a->thread][i];
		unsigned dice = rand_r(&seed) % 100;
		uint64_t id;

		o->key = rand_r(&seed) % SIM_KEYS;
		o->op = dice < 50 ? LC_WRITE : LC_READ;
		/* Unique written values: a corrupted read can then be proved wrong. */
		o->value = o->op == LC_WRITE ? ((uint64_t)(a->thread + 1) << 32) | (i + 1) : 0;
		o->outcome = LC_OK;
		id = lc_invoke(s->live, o->key, a->thread, o->op, o->value);
		o->t_inv = atomic_fetch_add(&s->clock, 1);
		tiny_delay(&seed);
		if (o->op == LC_WRITE) {
			if (dice < 5) {
				o->outcome = LC_FAILED; /* refused: never applied */
			} else if (dice < 10) {
				o->outcome = LC_UNKNOWN; /* timed out: applied or not */
				if (dice & 1)
					atomic_store(&s->reg[o->key], o->value);
			} else {
				atomic_store(&s->reg[o->key], o->value);
			}
		} else {
			o->value = atomic_load(&s->reg[o->key]);
			if (dice >= 95)
				o->outcome = LC_UNKNOWN;
		}
		tiny_delay(&seed);
		o->t_ret = atomic_fetch_add(&s->clock, 1);
		lc_complete(s->live, id, o->outcome, o->value);
	}
	return NULL;
}

static struct sim *
sim_run(void)
{
	struct sim *s = calloc(1, sizeof(*s));
	pthread_t th[SIM_THREADS];
	struct sim_arg arg[SIM_THREADS];

	ck_assert_ptr_nonnull(s);
	s->live = lc_history_new();
	atomic_init(&s->clock, 1);
	for (unsigned t = 0; t < SIM_THREADS; t++) {
		arg[t] = (struct sim_arg){.s = s, .thread = t};
		ck_assert_int_eq(pthread_create(&th[t], NULL, sim_thread, &arg[t]), 0);
	}
	for (unsigned t = 0; t < SIM_THREADS; t++)
		pthread_join(th[t], NULL);
	ck_assert_uint_eq(lc_count(s->live), SIM_THREADS * SIM_OPS);
	return s;
}

static void
sim_free(struct sim *s)
{
	lc_history_free(s->live);
	free(s);
}

struct stamp {
	uint64_t t;
	struct sim_op *o;
	unsigned thread;
	bool inv;
};

static int
stamp_cmp(const void *a, const void *b)
{
	const struct stamp *x = a, *y = b;

	return x->t < y->t ? -1 : x->t > y->t;
}

/* Replay the logged operations, in their real-time order, into a fresh history. */
static struct lc_history *
sim_replay(struct sim *s)
{
	size_t n = 2 * SIM_THREADS * SIM_OPS, k = 0;
	struct stamp *st = calloc(n, sizeof(*st));
	uint64_t(*id)[SIM_OPS] = calloc(SIM_THREADS, sizeof(*id));
	struct lc_history *h = lc_history_new();

	ck_assert_ptr_nonnull(st);
	ck_assert_ptr_nonnull(id);
	for (unsigned t = 0; t < SIM_THREADS; t++) {
		for (unsigned i = 0; i < SIM_OPS; i++) {
			st[k++] = (struct stamp){s->ops[t][i].t_inv, &s->ops[t][i], t, true};
			st[k++] = (struct stamp){s->ops[t][i].t_ret, &s->ops[t][i], t, false};
		}
	}
	qsort(st, n, sizeof(*st), stamp_cmp);
	for (k = 0; k < n; k++) {
		struct sim_op *o = st[k].o;
		uint64_t *slot = &id[st[k].thread][o - s->ops[st[k].thread]];

		if (st[k].inv)
			*slot = lc_invoke(h, o->key, st[k].thread, o->op, o->value);
		else
			lc_complete(h, *slot, o->outcome, o->value);
	}
	free(id);
	free(st);
	return h;
}

START_TEST(test_lincheck_ok_when_recorded_from_atomic_register)
{
	struct sim *s = sim_run();
	struct lc_history *h;
	int rc;

	rc = lc_check(s->live, g_why, sizeof(g_why));
	ck_assert_msg(rc == 0, "live history: rc=%d %s", rc, g_why);
	h = sim_replay(s);
	rc = lc_check(h, g_why, sizeof(g_why));
	ck_assert_msg(rc == 0, "replayed history: rc=%d %s", rc, g_why);
	lc_history_free(h);
	sim_free(s);
}
END_TEST

/* A read and a write of the same key, the write invoked after the read returned. */
static bool
find_future_write(struct sim *s, struct sim_op **rp, struct sim_op **wp)
{
	for (unsigned t = 0; t < SIM_THREADS; t++) {
		for (unsigned i = 0; i < SIM_OPS; i++) {
			struct sim_op *r = &s->ops[t][i];

			if (r->op != LC_READ || r->outcome != LC_OK)
				continue;
			for (unsigned u = 0; u < SIM_THREADS; u++) {
				for (unsigned j = 0; j < SIM_OPS; j++) {
					struct sim_op *w = &s->ops[u][j];

					if (w->op == LC_WRITE && w->outcome == LC_OK &&
					    w->key == r->key && w->t_inv > r->t_ret + 50) {
						*rp = r;
						*wp = w;
						return true;
					}
				}
			}
		}
	}
	return false;
}

START_TEST(test_lincheck_fails_when_recorded_read_returns_future_value)
{
	struct sim *s = sim_run();
	struct sim_op *r, *w;
	struct lc_history *h;
	char key[32];
	int rc;

	ck_assert(find_future_write(s, &r, &w));
	r->value = w->value;
	h = sim_replay(s);
	rc = lc_check(h, g_why, sizeof(g_why));
	ck_assert_msg(rc == -1, "rc=%d %s", rc, g_why);
	snprintf(key, sizeof(key), "key %llu:", (unsigned long long)r->key);
	ck_assert_ptr_nonnull(strstr(g_why, key));
	lc_history_free(h);
	sim_free(s);
}
END_TEST

START_TEST(test_lincheck_fails_when_recorded_read_returns_unwritten_value)
{
	struct sim *s = sim_run();
	struct lc_history *h;
	struct sim_op *r = NULL;
	int rc;

	/* The last OK read of some thread, so the search has a long prefix to explore. */
	for (unsigned i = SIM_OPS; i-- > 0 && r == NULL;) {
		if (s->ops[5][i].op == LC_READ && s->ops[5][i].outcome == LC_OK)
			r = &s->ops[5][i];
	}
	ck_assert_ptr_nonnull(r);
	r->value = 0xdeadbeefULL;
	h = sim_replay(s);
	rc = lc_check(h, g_why, sizeof(g_why));
	ck_assert_msg(rc == -1, "rc=%d %s", rc, g_why);
	ck_assert_ptr_nonnull(strstr(g_why, "returned 3735928559"));
	lc_history_free(h);
	sim_free(s);
}
END_TEST

/*
 * A read made stale: it returns the value of write w1 although a later write w2 started
 * after w1 returned and returned before the read started. The value exists, so only the
 * search can refute it.
 */
static bool
find_stale(struct sim *s, struct sim_op **rp, uint64_t *stale)
{
	for (unsigned t = SIM_THREADS; t-- > 0;) {
		for (unsigned i = SIM_OPS; i-- > SIM_OPS / 2;) {
			struct sim_op *r = &s->ops[t][i], *w2 = NULL, *w1 = NULL;

			if (r->op != LC_READ || r->outcome != LC_OK)
				continue;
			/* w2: the latest OK write of the key that returned before r began. */
			for (unsigned u = 0; u < SIM_THREADS; u++) {
				for (unsigned j = 0; j < SIM_OPS; j++) {
					struct sim_op *w = &s->ops[u][j];

					if (w->op == LC_WRITE && w->outcome == LC_OK &&
					    w->key == r->key && w->t_ret < r->t_inv &&
					    (w2 == NULL || w->t_ret > w2->t_ret))
						w2 = w;
				}
			}
			if (w2 == NULL)
				continue;
			/* w1: the latest OK write of the key that returned before w2 began. */
			for (unsigned u = 0; u < SIM_THREADS; u++) {
				for (unsigned j = 0; j < SIM_OPS; j++) {
					struct sim_op *w = &s->ops[u][j];

					if (w->op == LC_WRITE && w->outcome == LC_OK &&
					    w->key == r->key && w->t_ret < w2->t_inv &&
					    (w1 == NULL || w->t_ret > w1->t_ret))
						w1 = w;
				}
			}
			if (w1 == NULL || w1->value == r->value)
				continue;
			*rp = r;
			*stale = w1->value;
			return true;
		}
	}
	return false;
}

START_TEST(test_lincheck_fails_when_recorded_read_is_stale)
{
	struct sim *s = sim_run();
	struct lc_history *h;
	struct sim_op *r;
	uint64_t stale;
	int rc;

	ck_assert(find_stale(s, &r, &stale));
	r->value = stale;
	h = sim_replay(s);
	rc = lc_check(h, g_why, sizeof(g_why));
	ck_assert_msg(rc == -1, "rc=%d %s", rc, g_why);
	ck_assert_ptr_nonnull(strstr(g_why, "fits no order"));
	lc_history_free(h);
	sim_free(s);
}
END_TEST

/*
 * Differential test: small random histories (one key, values 0..3 so that values repeat,
 * every outcome), checked by lc_check() and by a plain exhaustive search that knows none of
 * its shortcuts (pruning by value, greedy reads, compact memo): both must agree.
 */
#define BF_MAX 7

struct bf_op {
	bool write, mandatory;
	uint64_t value, inv, ret; /* ret UINT64_MAX: may take effect any time after inv */
};

static bool
bf_search(const struct bf_op *ops, unsigned n, unsigned placed, uint64_t value)
{
	bool all = true;

	for (unsigned i = 0; i < n; i++)
		all &= !ops[i].mandatory || (placed >> i & 1);
	if (all)
		return true;
	for (unsigned i = 0; i < n; i++) {
		bool ready = !(placed >> i & 1);

		/* Every op that returned before i was invoked must be placed already. */
		for (unsigned j = 0; j < n && ready; j++)
			ready = (placed >> j & 1) || !ops[j].mandatory || ops[j].ret > ops[i].inv;
		if (!ready || (!ops[i].write && ops[i].value != value))
			continue;
		if (bf_search(ops, n, placed | 1u << i, ops[i].write ? ops[i].value : value))
			return true;
	}
	return false;
}

START_TEST(test_lincheck_agrees_with_exhaustive_search_when_small_random_histories)
{
	unsigned seed = 0xc0ffee, failing = 0, passing = 0;

	for (unsigned round = 0; round < 3000; round++) {
		struct lc_history *h = lc_history_new();
		struct bf_op bf[BF_MAX];
		unsigned n = 1 + rand_r(&seed) % BF_MAX, nbf = 0;
		uint64_t id[BF_MAX], t_inv[BF_MAX], t_ret[BF_MAX], value[BF_MAX];
		enum lc_outcome oc[BF_MAX];
		bool write[BF_MAX], done[BF_MAX];
		bool expect;
		int rc;

		for (unsigned i = 0; i < n; i++) {
			unsigned d = rand_r(&seed) % 10;

			write[i] = rand_r(&seed) % 2;
			value[i] = rand_r(&seed) % 4;
			t_inv[i] = rand_r(&seed) % (3 * n);
			t_ret[i] = t_inv[i] + 1 + rand_r(&seed) % (2 * n);
			done[i] = !(write[i] && d == 9); /* a write never completed */
			oc[i] = d < 7 ? LC_OK : d == 7 ? LC_FAILED : LC_UNKNOWN;
		}
		/* Replay in time order (invokes first on ties: they overlap then). */
		for (uint64_t t = 0; t < 6 * n; t++) {
			for (unsigned i = 0; i < n; i++) {
				if (t_inv[i] == t)
					id[i] = lc_invoke(h, 1, i, write[i] ? LC_WRITE : LC_READ,
							  value[i]);
			}
			for (unsigned i = 0; i < n; i++) {
				if (t_ret[i] == t && done[i])
					lc_complete(h, id[i], oc[i], value[i]);
			}
		}
		for (unsigned i = 0; i < n; i++) {
			bool ok = done[i] && oc[i] == LC_OK;

			if (!write[i] && !ok)
				continue; /* says nothing */
			if (write[i] && done[i] && oc[i] == LC_FAILED)
				continue; /* did not happen */
			bf[nbf++] = (struct bf_op){
				.write = write[i],
				.mandatory = ok,
				.value = value[i],
				/* The replay does a time's invokes before its returns: a
				 * return precedes an invoke only at an earlier time. */
				.inv = 2 * t_inv[i],
				.ret = ok ? 2 * t_ret[i] + 1 : UINT64_MAX,
			};
		}
		expect = bf_search(bf, nbf, 0, 0);
		rc = check(h);
		ck_assert_msg(rc == (expect ? 0 : -1), "round %u: lc_check %d (%s), exhaustive %s",
			      round, rc, g_why, expect ? "linearizable" : "not");
		if (expect)
			passing++;
		else
			failing++;
		lc_history_free(h);
	}
	/* The generator must produce both verdicts, or the test proves little. */
	ck_assert_uint_gt(failing, 300);
	ck_assert_uint_gt(passing, 300);
}
END_TEST

static Suite *
lincheck_suite(void)
{
	Suite *s = suite_create("lincheck");
	struct {
		const char *name;
		const TTest *fn;
	} cases[] = {
		{"sequential", test_lincheck_ok_when_sequential},
		{"stale", test_lincheck_fails_when_read_stale_after_completed_write},
		{"initial", test_lincheck_fails_when_read_of_initial_after_write},
		{"concurrent", test_lincheck_ok_when_concurrent_read_sees_either_value},
		{"back_in_time", test_lincheck_fails_when_sequential_reads_go_back_in_time},
		{"unknown_later", test_lincheck_ok_when_unknown_write_observed_later},
		{"never_completed", test_lincheck_ok_when_never_completed_write_observed},
		{"unknown_early", test_lincheck_fails_when_unknown_write_observed_before_invoke},
		{"unknown_flip", test_lincheck_fails_when_unknown_write_flips_back},
		{"failed_write", test_lincheck_fails_when_failed_write_observed},
		{"dropped_reads", test_lincheck_ok_when_failed_and_unknown_reads_dropped},
		{"one_key", test_lincheck_names_key_when_only_one_key_fails},
		{"misuse", test_lincheck_invalid_when_completed_twice},
		{"limit", test_lincheck_gives_up_when_state_limit_reached},
		{"sim_ok", test_lincheck_ok_when_recorded_from_atomic_register},
		{"sim_future", test_lincheck_fails_when_recorded_read_returns_future_value},
		{"sim_stale", test_lincheck_fails_when_recorded_read_is_stale},
		{"exhaustive",
		 test_lincheck_agrees_with_exhaustive_search_when_small_random_histories},
		{"sim_unwritten", test_lincheck_fails_when_recorded_read_returns_unwritten_value},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TCase *tc = tcase_create(cases[i].name);

		tcase_add_test(tc, cases[i].fn);
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(lincheck_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
