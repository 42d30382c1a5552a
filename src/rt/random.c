// SPDX-License-Identifier: MIT
/*
 * 64 random bits for identities that must differ between processes and
 * between runs (request id bases, a target's format id), not for secrets.
 */
#include <config.h>

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "rt/rt.h"

/* splitmix64's finalizer: spreads time and pid over all 64 bits. */
static uint64_t
mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t
rt_random64(void)
{
	uint64_t v = 0;
	struct timespec ts;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
		/* No entropy yet (early boot): time and pid still differ. */
		clock_gettime(CLOCK_REALTIME, &ts);
		v = mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
			((uint64_t)getpid() << 40));
	}
	return v;
}
