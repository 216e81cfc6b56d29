/* SPDX-License-Identifier: MIT */
/*
 * par - one job in parts, a thread a CPU, for the work rmig-migrate does
 * while the guest is paused (its CPUs are free then): hashing pages for
 * the proof, dropping the missing pages at the post-copy switch.
 */
#ifndef RMIG_TOOLS_PAR_H
#define RMIG_TOOLS_PAR_H

#include <stdint.h>

#define PAR_MAX 8 /* parts, at most */

/* How many parts @items items make with at least @min_items each: one a
 * CPU online, at most PAR_MAX, at least 1. */
unsigned par_parts(uint64_t items, uint64_t min_items);

/* fn(@arg, i, @n) for every part i < @n (at most PAR_MAX), the last on the
 * caller's thread and the others on threads of their own (one that cannot
 * start runs on the caller's too); returns once every part is done. */
void par_run(unsigned n, void (*fn)(void *arg, unsigned i, unsigned n),
	     void *arg);

#endif /* RMIG_TOOLS_PAR_H */
