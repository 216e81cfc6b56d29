/* SPDX-License-Identifier: MIT */
/*
 * par - one job in parts, a thread a CPU (see par.h).
 */
#include "par.h"

#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

unsigned par_parts(uint64_t items, uint64_t min_items)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t n = min_items ? items / min_items : items;

	if (cpus < 1)
		cpus = 1;
	if (n > (uint64_t)cpus)
		n = (uint64_t)cpus;
	if (n > PAR_MAX)
		n = PAR_MAX;
	return n ? (unsigned)n : 1;
}

struct part {
	void (*fn)(void *arg, unsigned i, unsigned n);
	void *arg;
	unsigned i, n;
	pthread_t t;
	bool on;
};

static void *part_main(void *p)
{
	struct part *pt = p;

	pt->fn(pt->arg, pt->i, pt->n);
	return NULL;
}

void par_run(unsigned n, void (*fn)(void *arg, unsigned i, unsigned n),
	     void *arg)
{
	struct part part[PAR_MAX];

	if (n > PAR_MAX)
		n = PAR_MAX;
	for (unsigned i = 0; i < n; i++) {
		part[i] = (struct part){ .fn = fn, .arg = arg, .i = i, .n = n };
		if (i + 1 < n)
			part[i].on = !pthread_create(&part[i].t, NULL,
						     part_main, &part[i]);
		if (!part[i].on)
			part_main(&part[i]);
	}
	for (unsigned i = 0; i + 1 < n; i++)
		if (part[i].on)
			pthread_join(part[i].t, NULL);
}
