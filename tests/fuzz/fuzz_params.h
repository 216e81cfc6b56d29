/* SPDX-License-Identifier: MIT */
/*
 * fuzz_params.h - what the fuzz harnesses (fuzz_wire.c) judge the
 * decoders' input against, shared with the seed corpus generator
 * (fuzz_corpus.c) so that its seeds are accepted messages.
 */
#ifndef RMIG_FUZZ_PARAMS_H
#define RMIG_FUZZ_PARAMS_H

#include <stdint.h>

/* Packet headers: two blocks, a small and a very large one. */
#define FUZZ_NBLOCKS 2u
static const uint64_t fuzz_block_len[FUZZ_NBLOCKS] = { 1u << 20,
							 1ull << 40 };
#define FUZZ_PAGE_SIZE 4096u
#define FUZZ_PAGES_PER_PACKET 64u
/* Device state: the total length a blob may announce. */
#define FUZZ_DEVSTATE_MAX (1u << 20)
/* Handshakes: the destination's UUID and the channels already seen. */
static const uint8_t fuzz_uuid[16] = { 0x52, 0x4d, 0x49, 0x47, 1, 2, 3, 4,
				       5, 6, 7, 8, 9, 10, 11, 12 };
#define FUZZ_SEEN_CHANNELS 0x5u /* channels 0 and 2 */

#endif /* RMIG_FUZZ_PARAMS_H */
