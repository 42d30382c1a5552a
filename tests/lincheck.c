// SPDX-License-Identifier: MIT
/*
 * Linearizability checker for per-key register histories (see lincheck.h).
 *
 * This file owns the recording (an array of events behind a mutex, timestamps from an
 * atomic counter) and the search. The search follows Wing & Gong with Lowe's memoization,
 * in the form Porcupine made popular: the key's invoke and return events sit in one
 * doubly-linked list in time order; walking it, an invoke whose operation is legal in the
 * current register value is "lifted" (its invoke and return leave the list, dancing-links
 * style) and the walk restarts from the head; reaching a return whose operation is still
 * in the list means the current prefix cannot be extended, so we backtrack. A (linearized
 * set, value) pair already explored is not explored again; that cache is what keeps the
 * search polynomial on histories with bounded concurrency. Writes whose outcome is unknown
 * return at +infinity: once the walk reaches such a return, every operation that really
 * completed has been linearized, and the rest can follow in any order.
 *
 * Three register-specific shortcuts keep failing searches and long single-key histories
 * small, each argued where it is made: prune() (reads of values nobody wrote fail at once;
 * unknown writes nobody read are dropped, those of a unique value are due by the first
 * read of it), greedy reads in the walk, and first_move() (take a legal read before any
 * write). The ops are numbered in call order so that a memoized set is stored as "all
 * below lo" plus a window, whose size follows the concurrency, not the history's length.
 * tests/unit/test_lincheck.c checks the whole against a plain exhaustive search.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* qsort_r */
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lincheck.h"

#define TS_INF UINT64_MAX

struct event {
	uint64_t key;
	uint64_t value; /* written value, or value read */
	uint64_t t_inv;
	uint64_t t_ret; /* 0 while not completed */
	unsigned thread;
	uint8_t op;	 /* enum lc_op */
	uint8_t outcome; /* enum lc_outcome */
	bool completed;
};

struct lc_history {
	pthread_mutex_t lock;
	_Atomic uint64_t clock;
	struct event *ev;
	uint64_t n, cap;
	uint64_t max_states, max_bytes;
	bool oom;
	bool misuse;
};

/* One operation of the key being checked. */
struct kop {
	uint64_t id; /* event id, for reports */
	uint64_t value;
	uint64_t t_inv;
	uint64_t t_ret; /* TS_INF: may take effect at any time after t_inv */
	uint64_t zob;	/* random bits: hash of a linearized set is the XOR of its members' */
	bool write;
	bool drop; /* provably irrelevant to the verdict (see prune()) */
};

/* One invoke or return in the time-ordered list. */
struct ent {
	uint64_t t;
	uint32_t op;
	int32_t prev, next;
	int32_t match; /* the other entry of the same op */
	bool call;
	bool inf;
};

/*
 * Memoized (linearized set, value) pairs. Ops are numbered in call order, so a set is
 * "every op below lo, plus some ops in a window above it": a record is
 * [hash, value, lo, nwin, nwin window words..., ninf words for the unknown-outcome ops],
 * whose size follows the concurrency of the history rather than its length.
 */
struct cache {
	uint64_t *arena;    /* records, back to back */
	uint64_t used, cap; /* words */
	uint64_t *slot;	    /* record offset + 1, 0 = empty */
	uint64_t nslot;
	uint64_t count;
	size_t ninf;
	uint64_t max_states, max_bytes;
};

struct lc_history *
lc_history_new(void)
{
	struct lc_history *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	pthread_mutex_init(&h->lock, NULL);
	atomic_init(&h->clock, 1);
	h->max_states = LC_DEFAULT_MAX_STATES;
	h->max_bytes = LC_DEFAULT_MAX_BYTES;
	return h;
}

void
lc_history_free(struct lc_history *h)
{
	if (h == NULL)
		return;
	pthread_mutex_destroy(&h->lock);
	free(h->ev);
	free(h);
}

void
lc_set_limits(struct lc_history *h, uint64_t max_states, uint64_t max_bytes)
{
	pthread_mutex_lock(&h->lock);
	if (max_states != 0)
		h->max_states = max_states;
	if (max_bytes != 0)
		h->max_bytes = max_bytes;
	pthread_mutex_unlock(&h->lock);
}

uint64_t
lc_invoke(struct lc_history *h, uint64_t key, unsigned thread, enum lc_op op, uint64_t value)
{
	/* Taken before the lock: the event is placed in real time by its stamp, not by when
	 * it got the lock. */
	uint64_t t = atomic_fetch_add(&h->clock, 1);
	uint64_t id = LC_NO_ID;

	pthread_mutex_lock(&h->lock);
	if (h->n == h->cap) {
		uint64_t cap = h->cap ? h->cap * 2 : 1024;
		struct event *ev = realloc(h->ev, cap * sizeof(*ev));

		if (ev == NULL) {
			h->oom = true;
			goto out;
		}
		h->ev = ev;
		h->cap = cap;
	}
	id = h->n++;
	h->ev[id] = (struct event){
		.key = key,
		.value = op == LC_WRITE ? value : 0,
		.t_inv = t,
		.thread = thread,
		.op = op,
		.outcome = LC_UNKNOWN,
	};
out:
	pthread_mutex_unlock(&h->lock);
	return id;
}

void
lc_complete(struct lc_history *h, uint64_t id, enum lc_outcome outcome, uint64_t value)
{
	uint64_t t = atomic_fetch_add(&h->clock, 1);
	struct event *e;

	if (id == LC_NO_ID)
		return;
	pthread_mutex_lock(&h->lock);
	if (id >= h->n || h->ev[id].completed) {
		h->misuse = true;
		goto out;
	}
	e = &h->ev[id];
	e->completed = true;
	e->t_ret = t;
	e->outcome = outcome;
	if (e->op == LC_READ)
		e->value = outcome == LC_OK ? value : 0;
out:
	pthread_mutex_unlock(&h->lock);
}

uint64_t
lc_count(struct lc_history *h)
{
	uint64_t n;

	pthread_mutex_lock(&h->lock);
	n = h->n;
	pthread_mutex_unlock(&h->lock);
	return n;
}

static const char *
outcome_name(const struct event *e)
{
	if (!e->completed)
		return "pending";
	return e->outcome == LC_OK ? "ok" : e->outcome == LC_FAILED ? "failed" : "unknown";
}

int
lc_dump(struct lc_history *h, FILE *f)
{
	int rc = 0;

	pthread_mutex_lock(&h->lock);
	for (uint64_t i = 0; i < h->n; i++) {
		const struct event *e = &h->ev[i];

		if (fprintf(f,
			    "id=%" PRIu64 " key=%" PRIu64 " thread=%u %s value=%" PRIu64
			    " inv=%" PRIu64 " ret=%" PRIu64 " %s\n",
			    i, e->key, e->thread, e->op == LC_WRITE ? "write" : "read", e->value,
			    e->t_inv, e->t_ret, outcome_name(e)) < 0)
			rc = -EIO;
	}
	pthread_mutex_unlock(&h->lock);
	if (fflush(f) != 0)
		rc = -EIO;
	return rc;
}

static uint64_t
splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t
mix_value(uint64_t v)
{
	uint64_t x = v ^ 0x5851f42d4c957f2dULL;

	return splitmix(&x);
}

static void
cache_fini(struct cache *c)
{
	free(c->arena);
	free(c->slot);
}

static int
cache_grow_slots(struct cache *c)
{
	uint64_t n = c->nslot ? c->nslot * 2 : 1024;
	uint64_t *slot;

	if ((c->cap + n) * sizeof(uint64_t) > c->max_bytes)
		return -E2BIG;
	slot = calloc(n, sizeof(*slot));
	if (slot == NULL)
		return -ENOMEM;
	for (uint64_t off = 0; off < c->used; off += 4 + c->arena[off + 3] + c->ninf) {
		uint64_t i = c->arena[off] & (n - 1);

		while (slot[i] != 0)
			i = (i + 1) & (n - 1);
		slot[i] = off + 1;
	}
	free(c->slot);
	c->slot = slot;
	c->nslot = n;
	return 0;
}

/*
 * Add a state unless present.
 * @return 1 added, 0 already there, -E2BIG over the limits, -ENOMEM.
 */
static int
cache_add(struct cache *c, uint64_t hash, uint64_t value, uint64_t lo, const uint64_t *win,
	  uint64_t nwin, const uint64_t *inf)
{
	uint64_t len = 4 + nwin + c->ninf, i, *rec;
	int rc;

	if (c->nslot == 0 || (c->count + 1) * 2 > c->nslot) {
		rc = cache_grow_slots(c);
		if (rc != 0)
			return rc;
	}
	for (i = hash & (c->nslot - 1); c->slot[i] != 0; i = (i + 1) & (c->nslot - 1)) {
		rec = &c->arena[c->slot[i] - 1];
		if (rec[0] == hash && rec[1] == value && rec[2] == lo && rec[3] == nwin &&
		    memcmp(&rec[4], win, nwin * sizeof(uint64_t)) == 0 &&
		    memcmp(&rec[4 + nwin], inf, c->ninf * sizeof(uint64_t)) == 0)
			return 0;
	}
	if (c->count >= c->max_states)
		return -E2BIG;
	if (c->used + len > c->cap) {
		uint64_t cap = c->cap ? c->cap * 2 : 16384;
		uint64_t *arena;

		while (cap < c->used + len)
			cap *= 2;
		if ((cap + c->nslot) * sizeof(uint64_t) > c->max_bytes) {
			cap = c->used + len + c->cap / 8;
			if ((cap + c->nslot) * sizeof(uint64_t) > c->max_bytes)
				return -E2BIG;
		}
		arena = realloc(c->arena, cap * sizeof(uint64_t));
		if (arena == NULL)
			return -ENOMEM;
		c->arena = arena;
		c->cap = cap;
	}
	rec = &c->arena[c->used];
	rec[0] = hash;
	rec[1] = value;
	rec[2] = lo;
	rec[3] = nwin;
	memcpy(&rec[4], win, nwin * sizeof(uint64_t));
	memcpy(&rec[4 + nwin], inf, c->ninf * sizeof(uint64_t));
	c->slot[i] = c->used + 1;
	c->used += len;
	c->count++;
	return 1;
}

static int
ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->op < y->op ? -1 : x->op > y->op; /* only +infinity returns tie */
}

static void
lift(struct ent *en, int32_t c)
{
	int32_t r = en[c].match;

	en[en[c].prev].next = en[c].next;
	if (en[c].next >= 0)
		en[en[c].next].prev = en[c].prev;
	en[en[r].prev].next = en[r].next;
	if (en[r].next >= 0)
		en[en[r].next].prev = en[r].prev;
}

static void
unlift(struct ent *en, int32_t c)
{
	int32_t r = en[c].match;

	en[en[r].prev].next = r;
	if (en[r].next >= 0)
		en[en[r].next].prev = r;
	en[en[c].prev].next = c;
	if (en[c].next >= 0)
		en[en[c].next].prev = c;
}

struct frame {
	int32_t call;
	uint32_t lo; /* lo and hi before this op */
	int64_t hi;
	uint64_t value; /* register value before this op */
};

static int
kop_call_cmp(const void *a, const void *b)
{
	const struct kop *x = a, *y = b;
	bool xi = x->t_ret == TS_INF, yi = y->t_ret == TS_INF;

	if (xi != yi)
		return xi ? 1 : -1;
	return x->t_inv < y->t_inv ? -1 : x->t_inv > y->t_inv;
}

static void say(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static int
kop_value_cmp(const void *a, const void *b, void *arg)
{
	const struct kop *ops = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	if (ops[x].value != ops[y].value)
		return ops[x].value < ops[y].value ? -1 : 1;
	return x < y ? -1 : x > y;
}

/*
 * Cheap reasoning per value before the search, which both finds the common violations at
 * once (with a clear message) and shrinks the search:
 * - a read of v != 0 needs some write of v invoked before the read returned;
 * - an unknown write whose value no read returns can go last, after everything, so it is
 *   dropped (otherwise it stays open to the end and doubles the states of a failing search);
 * - an unknown write of a value that no other write writes, and that is not the initial 0,
 *   must precede every read of it, so it completes when the first such read returns.
 * @return 0, or -1 with @why filled when a read is impossible.
 */
static int
prune(uint64_t key, struct kop *ops, uint32_t n, const struct lc_history *h, char *why,
      size_t whylen)
{
	uint32_t *by = malloc((n + 1) * sizeof(*by));
	int rc = 0;

	if (by == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		by[i] = i;
	qsort_r(by, n, sizeof(*by), kop_value_cmp, ops);
	for (uint32_t lo = 0, hi; lo < n; lo = hi) {
		uint64_t v = ops[by[lo]].value, min_w_inv = TS_INF, min_r_ret = TS_INF;
		uint32_t writes = 0, reads = 0;

		for (hi = lo; hi < n && ops[by[hi]].value == v; hi++) {
			const struct kop *o = &ops[by[hi]];

			if (o->write) {
				writes++;
				if (o->t_inv < min_w_inv)
					min_w_inv = o->t_inv;
			} else {
				reads++;
				if (o->t_ret < min_r_ret)
					min_r_ret = o->t_ret;
			}
		}
		for (uint32_t j = lo; j < hi; j++) {
			struct kop *o = &ops[by[j]];
			const struct event *ev = &h->ev[o->id];

			if (!o->write && v != 0 && min_w_inv > o->t_ret) {
				say(why, whylen,
				    "key %" PRIu64
				    ": not linearizable: read by thread %u (event %" PRIu64
				    ", inv %" PRIu64 " ret %" PRIu64 ") returned %" PRIu64
				    ", which no write invoked before it returned wrote",
				    key, ev->thread, o->id, o->t_inv, o->t_ret, v);
				rc = -1;
				goto out;
			}
			if (o->write && o->t_ret == TS_INF) {
				if (reads == 0)
					o->drop = true;
				else if (writes == 1 && v != 0)
					o->t_ret = min_r_ret;
			}
		}
	}
out:
	free(by);
	return rc;
}

/*
 * Where the walk starts after a lift: at a read that is legal now, if the window (the calls
 * before the first pending return) has one, since taking it can never be wrong (see the walk
 * below) and taking a write first would make it illegal and cost a backtrack; else at the
 * head.
 */
static int32_t
first_move(const struct ent *en, const struct kop *ops, uint64_t value)
{
	for (int32_t f = en[0].next; f >= 0 && en[f].call; f = en[f].next) {
		if (!ops[en[f].op].write && ops[en[f].op].value == value)
			return f;
	}
	return en[0].next;
}

/*
 * Check one key's operations (ops[0..n)), whose events are in h->ev.
 * @return 0, -1 not linearizable, -E2BIG, -ENOMEM; @why filled on nonzero.
 */
static int
check_key(const struct lc_history *h, uint64_t key, struct kop *ops, uint32_t n, char *why,
	  size_t whylen)
{
	struct cache c = {.max_states = h->max_states, .max_bytes = h->max_bytes};
	struct ent *en = NULL;
	struct frame *stack = NULL;
	int32_t *callpos = NULL;
	uint64_t *bits = NULL;
	uint64_t value = 0, hash_set = 0, seed = key, best_value = 0;
	uint32_t sp = 0, best_sp = 0, m = 0, n_all = n, nf = 0, lo = 0;
	int64_t hi = -1; /* highest finite op in the set, or < lo when none above lo */
	int32_t e, best_ret = -1;
	size_t fw;
	int rc;

	rc = prune(key, ops, n, h, why, whylen);
	if (rc != 0)
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		if (!ops[i].drop)
			ops[m++] = ops[i];
	}
	n = m;
	/* Number ops in call order, those without a return after all the others. */
	qsort(ops, n, sizeof(*ops), kop_call_cmp);
	while (nf < n && ops[nf].t_ret != TS_INF)
		nf++;
	fw = (nf + 63) / 64;
	c.ninf = (n - nf + 63) / 64;
	en = calloc(2 * (size_t)n + 1, sizeof(*en));
	stack = calloc(n + 1, sizeof(*stack));
	callpos = calloc(n + 1, sizeof(*callpos));
	bits = calloc(fw + c.ninf + 1, sizeof(*bits));
	if (en == NULL || stack == NULL || callpos == NULL || bits == NULL) {
		rc = -ENOMEM;
		say(why, whylen, "key %" PRIu64 ": out of memory", key);
		goto out;
	}
	/* Entry 0 is the list head; entries 1..2n are built then sorted by time. */
	for (uint32_t i = 0; i < n; i++) {
		ops[i].zob = splitmix(&seed);
		en[1 + 2 * i] = (struct ent){.t = ops[i].t_inv, .op = i, .call = true};
		en[2 + 2 * i] =
			(struct ent){.t = ops[i].t_ret, .op = i, .inf = ops[i].t_ret == TS_INF};
	}
	qsort(&en[1], 2 * (size_t)n, sizeof(*en), ent_cmp);
	for (int32_t i = 1; i <= (int32_t)(2 * n); i++) {
		if (en[i].call)
			callpos[en[i].op] = i;
	}
	for (int32_t i = 0; i <= (int32_t)(2 * n); i++) {
		if (i > 0 && !en[i].call) {
			en[i].match = callpos[en[i].op];
			en[en[i].match].match = i;
		}
		en[i].prev = i - 1;
		en[i].next = i < (int32_t)(2 * n) ? i + 1 : -1;
	}

	/*
	 * The walk. Reads are taken greedily: a read legal in the current value can always be
	 * moved to right after the current prefix (every op that must precede it is already in
	 * the prefix, or the walk would have stopped at that op's return first, and a read
	 * changes nothing), so if the prefix plus the read has no extension, neither has the
	 * prefix: backtracking past a read goes on to its parent at once.
	 */
	e = first_move(en, ops, value);
	while (e >= 0) {
		const struct ent *x = &en[e];

		if (x->call) {
			const struct kop *o = &ops[x->op];
			uint64_t nv = o->write ? o->value : value;
			uint32_t op = x->op, nlo = lo;
			int64_t nhi = hi;
			size_t bit = op < nf ? op : fw * 64 + (op - nf);
			uint64_t nwin;

			if (!o->write && o->value != value) {
				e = x->next;
				continue;
			}
			bits[bit / 64] |= 1ULL << (bit % 64);
			if (op < nf) {
				while (nlo < nf && (bits[nlo / 64] >> (nlo % 64) & 1))
					nlo++;
				if ((int64_t)op > nhi)
					nhi = op;
			}
			/* Bits below lo are all set, so the window starts at lo's word. */
			nwin = nhi > (int64_t)nlo ? (uint64_t)nhi / 64 - nlo / 64 + 1 : 0;
			rc = cache_add(&c, hash_set ^ o->zob ^ mix_value(nv), nv, nlo,
				       &bits[nlo / 64], nwin, &bits[fw]);
			if (rc == 1) {
				stack[sp++] = (struct frame){
					.call = e, .lo = lo, .hi = hi, .value = value};
				value = nv;
				lo = nlo;
				hi = nhi;
				hash_set ^= o->zob;
				lift(en, e);
				e = first_move(en, ops, value);
				continue;
			}
			bits[bit / 64] &= ~(1ULL << (bit % 64));
			if (rc < 0)
				goto out_limit;
			if (o->write) {
				e = x->next;
				continue;
			}
			/* A legal read whose state failed before: this prefix fails too. */
		} else {
			if (x->inf)
				break; /* every completed op is linearized; the rest go last */
			if (best_ret < 0 || sp > best_sp) {
				best_sp = sp;
				best_ret = e;
				best_value = value;
			}
		}
		for (;;) {
			const struct frame *f;
			uint32_t op;
			size_t bit;

			if (sp == 0) {
				rc = -1;
				goto out_fail;
			}
			f = &stack[--sp];
			op = en[f->call].op;
			bit = op < nf ? op : fw * 64 + (op - nf);
			value = f->value;
			lo = f->lo;
			hi = f->hi;
			hash_set ^= ops[op].zob;
			bits[bit / 64] &= ~(1ULL << (bit % 64));
			unlift(en, f->call);
			if (ops[op].write)
				break;
		}
		e = en[stack[sp].call].next;
	}
	rc = 0;
	goto out;

out_fail:
	if (best_ret < 0) {
		say(why, whylen, "key %" PRIu64 ": not linearizable (%u ops)", key, n_all);
	} else {
		const struct kop *o = &ops[en[best_ret].op];
		const struct event *ev = &h->ev[o->id];

		say(why, whylen,
		    "key %" PRIu64 ": not linearizable: %s by thread %u (event %" PRIu64
		    ", value %" PRIu64 ", inv %" PRIu64 " ret %" PRIu64
		    "%s) fits no order; the longest linearizable prefix has %u of %u ops and "
		    "leaves the register at %" PRIu64,
		    key, o->write ? "write" : "read", ev->thread, o->id, o->value, ev->t_inv,
		    o->t_ret,
		    ev->completed && ev->outcome == LC_OK ? ""
							  : ", outcome unknown: due by the first "
							    "read of its value",
		    best_sp, n_all, best_value);
	}
	goto out;
out_limit:
	if (rc == -E2BIG)
		say(why, whylen,
		    "key %" PRIu64 ": search gave up after %" PRIu64 " states (limits %" PRIu64
		    " states, %" PRIu64 " bytes; %u ops)",
		    key, c.count, c.max_states, c.max_bytes, n_all);
	else
		say(why, whylen, "key %" PRIu64 ": out of memory after %" PRIu64 " states", key,
		    c.count);
out:
	cache_fini(&c);
	free(bits);
	free(callpos);
	free(stack);
	free(en);
	return rc;
}

static int
ev_key_cmp(const void *a, const void *b, void *arg)
{
	const struct event *ev = arg;
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	if (ev[x].key != ev[y].key)
		return ev[x].key < ev[y].key ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Whether an event constrains the search at all. */
static bool
relevant(const struct event *e)
{
	if (e->op == LC_READ)
		return e->completed && e->outcome == LC_OK;
	return !e->completed || e->outcome != LC_FAILED;
}

int
lc_check(struct lc_history *h, char *why, size_t whylen)
{
	uint64_t *idx = NULL;
	struct kop *ops = NULL;
	uint64_t m = 0;
	int rc = 0;

	say(why, whylen, "%s", "");
	pthread_mutex_lock(&h->lock);
	if (h->oom) {
		rc = -ENOMEM;
		say(why, whylen, "out of memory while recording");
		goto out;
	}
	if (h->misuse) {
		rc = -EINVAL;
		say(why, whylen, "lc_complete() of an unknown or already completed event");
		goto out;
	}
	idx = malloc((h->n + 1) * sizeof(*idx));
	ops = malloc((h->n + 1) * sizeof(*ops));
	if (idx == NULL || ops == NULL) {
		rc = -ENOMEM;
		say(why, whylen, "out of memory");
		goto out;
	}
	for (uint64_t i = 0; i < h->n; i++) {
		if (relevant(&h->ev[i]))
			idx[m++] = i;
	}
	qsort_r(idx, m, sizeof(*idx), ev_key_cmp, h->ev);
	for (uint64_t lo = 0, hi; lo < m && rc == 0; lo = hi) {
		uint64_t key = h->ev[idx[lo]].key;

		for (hi = lo; hi < m && h->ev[idx[hi]].key == key; hi++) {
			const struct event *e = &h->ev[idx[hi]];
			bool done = e->completed && e->outcome == LC_OK;

			ops[hi - lo] = (struct kop){
				.id = idx[hi],
				.value = e->value,
				.t_inv = e->t_inv,
				.t_ret = done ? e->t_ret : TS_INF,
				.write = e->op == LC_WRITE,
			};
		}
		if (hi - lo > INT32_MAX / 2 - 1) {
			rc = -E2BIG;
			say(why, whylen, "key %" PRIu64 ": too many ops (%" PRIu64 ")", key,
			    hi - lo);
			break;
		}
		rc = check_key(h, key, ops, (uint32_t)(hi - lo), why, whylen);
	}
out:
	pthread_mutex_unlock(&h->lock);
	free(ops);
	free(idx);
	return rc;
}
