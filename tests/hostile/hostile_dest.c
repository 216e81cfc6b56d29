/* SPDX-License-Identifier: MIT */
/*
 * hostile_dest - the destination the hostile-peer scenarios attack
 * (tests/hostile/hostile.sh), on the public API: one RAM block "ram" (as
 * rmig-migrate names its block, so `rmig-migrate source --still` migrates
 * into it) filled with a known pattern, listen, accept with a deadline,
 * receive until the final sync, finish.
 *
 *   hostile_dest --listen HOST:PORT --size BYTES [--channels N]
 *                [--accept-ms MS] [--sync-ms MS] [--nofile N]
 *                [--pause-after-sync] [--uuid HEX] [--key-file FILE]
 *                [--watchdog S] [--transport fabric|verbs]
 *                [--allow ADDRS]
 *
 * --key-file names the secret (RMIG_CFG_AUTH_KEY_FILE); without it the
 * destination runs insecure (RMIG_CFG_INSECURE).  --allow: the source
 * hosts it takes connections from (RMIG_CFG_ALLOWED_SOURCES).
 *
 * It prints key=value lines on stdout, for the driver to check:
 *   fds_start=N          open fds before rmig_dest_create() (those of
 *                        librdmacm's device list included: it keeps them)
 *   hash_start=HEX       SHA-256 of the RAM block as filled
 *   listening=ADDR       the bound address
 *   remote_after_listen=none | raddr=0x.. rkey=0x..
 *                        what the block's registration is after listen
 *                        (rmig_dest_block_remote(), the test hook)
 *   accept=RET [error=...]
 *   remote_after_accept=...
 *   sync=RET             each rmig_dest_wait_sync()
 *   paused=1 raddr=0x.. rkey=0x..  (--pause-after-sync) after the first
 *                        sync, with the source's pages in place and the
 *                        registration still valid; waits for SIGUSR2
 *   remote_after_final=... after the final sync
 *   finish=RET received=N pages=N
 *   devstate idstr=.. len=..
 *   hash_end=HEX
 *   fds_end=N            open fds after rmig_dest_destroy()
 * and at any time, on SIGUSR1: "report seq=N hash=HEX fds=N" (the RAM's
 * hash now).  SIGTERM/SIGINT cancel the session (rmig_dest_cancel()), so
 * even a destination that is stopped reports fds_end.
 *
 * Exit: 0 when the migration completed (finish 0, every page received),
 * 1 otherwise, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core.h"
#include "mix64.h"
#include "rmig/rmig.h"
#include "testutil.h"

#define PAGE 4096u

struct dopts {
	const char *listen;
	uint64_t size;
	unsigned channels;
	int accept_ms, sync_ms;
	unsigned nofile;
	bool pause_after_sync;
	uint8_t uuid[16];
	bool uuid_set;
	const char *key_file;
	unsigned watchdog_s;
	bool verbs;
	const char *allow;
};

static uint8_t *ram;
static size_t ram_len;
/* The signal thread hashes the RAM under it; main takes it after each
 * rmig call, so what the channel threads wrote before the call returned
 * (ordered by the library's own synchronisation) is ordered before the
 * hash too, for the sanitizers as for the CPU. */
static pthread_mutex_t ram_lock = PTHREAD_MUTEX_INITIALIZER;

static void ram_publish(void)
{
	pthread_mutex_lock(&ram_lock);
	pthread_mutex_unlock(&ram_lock);
}
/* What SIGTERM cancels; the lock keeps destroy from overtaking a
 * cancel in progress. */
static pthread_mutex_t dest_lock = PTHREAD_MUTEX_INITIALIZER;
static rmig_dest *cur_dest;
static sem_t go;                      /* SIGUSR2: resume after the pause */

static void hash_hex(char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;

	if (!EVP_Digest(ram, ram_len, md, &len, EVP_sha256(), NULL))
		len = 0;
	for (unsigned i = 0; i < len && i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[len ? 2 * (len < 32 ? len : 32) : 0] = '\0';
}

/* The signal thread: every signal the process handles arrives here. */
static void *signals(void *arg)
{
	sigset_t *set = arg;
	unsigned seq = 0;
	int sig;

	for (;;) {
		if (sigwait(set, &sig))
			continue;
		if (sig == SIGUSR1) {
			char h[65];

			pthread_mutex_lock(&ram_lock);
			hash_hex(h);
			pthread_mutex_unlock(&ram_lock);
			printf("report seq=%u hash=%s fds=%d\n", ++seq, h,
			       tu_count_fds());
			fflush(stdout);
		} else if (sig == SIGUSR2) {
			sem_post(&go);
		} else {
			pthread_mutex_lock(&dest_lock);
			if (cur_dest)
				rmig_dest_cancel(cur_dest);
			pthread_mutex_unlock(&dest_lock);
			sem_post(&go);
		}
	}
	return NULL;
}

static void print_remote(rmig_dest *d, const char *when)
{
	uint64_t raddr, rkey;

	if (rmig_dest_block_remote(d, 0, &raddr, &rkey))
		printf("remote_%s=none\n", when);
	else
		printf("remote_%s=1 raddr=0x%" PRIx64 " rkey=0x%" PRIx64 "\n",
		       when, raddr, rkey);
}

static int usage(void)
{
	fprintf(stderr, "usage: hostile_dest --listen HOST:PORT --size BYTES "
		"[--channels N] [--accept-ms MS] [--sync-ms MS] [--nofile N] "
		"[--pause-after-sync] [--uuid HEX32] [--key-file FILE] "
		"[--watchdog S] [--transport fabric|verbs] [--allow ADDRS]\n");
	return 2;
}

static int parse(int argc, char **argv, struct dopts *o)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "size", required_argument, NULL, 's' },
		{ "channels", required_argument, NULL, 'c' },
		{ "accept-ms", required_argument, NULL, 'a' },
		{ "sync-ms", required_argument, NULL, 'y' },
		{ "nofile", required_argument, NULL, 'n' },
		{ "pause-after-sync", no_argument, NULL, 'p' },
		{ "uuid", required_argument, NULL, 'u' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "watchdog", required_argument, NULL, 'w' },
		{ "transport", required_argument, NULL, 't' },
		{ "allow", required_argument, NULL, 'A' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct dopts){ .size = 4u << 20, .accept_ms = 60000,
			     .sync_ms = 60000, .watchdog_s = 120 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'l': o->listen = optarg; break;
		case 's': o->size = strtoull(optarg, NULL, 0); break;
		case 'c': o->channels = (unsigned)atoi(optarg); break;
		case 'a': o->accept_ms = atoi(optarg); break;
		case 'y': o->sync_ms = atoi(optarg); break;
		case 'n': o->nofile = (unsigned)atoi(optarg); break;
		case 'p': o->pause_after_sync = true; break;
		case 'k': o->key_file = optarg; break;
		case 'w': o->watchdog_s = (unsigned)atoi(optarg); break;
		case 'A': o->allow = optarg; break;
		case 't':
			if (strcmp(optarg, "fabric") && strcmp(optarg, "verbs"))
				return -1;
			o->verbs = !strcmp(optarg, "verbs");
			break;
		case 'u':
			for (int i = 0; i < 16; i++)
				if (sscanf(optarg + 2 * i, "%2hhx",
					   &o->uuid[i]) != 1)
					return -1;
			o->uuid_set = true;
			break;
		default: return -1;
		}
	}
	if (!o->listen || !o->size || o->size % PAGE || optind != argc)
		return -1;
	return 0;
}

/* Listen, accept, receive until the final sync, finish: 0 when the
 * migration completed. */
static int run(const struct dopts *o, rmig_dest *d)
{
	struct rmig_devstate *ds;
	char addr[128];
	int64_t received;
	bool paused = false;
	int ret;

	ret = rmig_dest_add_block(d, "ram", ram, ram_len);
	if (ret >= 0)
		ret = rmig_dest_listen(d);
	if (ret >= 0)
		ret = rmig_dest_get_address(d, addr, sizeof(addr));
	if (ret < 0) {
		printf("listen=%d error=\"%s\"\n", ret, rmig_last_error());
		return ret;
	}
	printf("listening=%s\n", addr);
	print_remote(d, "after_listen");
	fflush(stdout);

	ret = rmig_dest_accept(d, o->accept_ms);
	ram_publish();
	printf("accept=%d%s%s%s\n", ret, ret ? " error=\"" : "",
	       ret ? rmig_last_error() : "", ret ? "\"" : "");
	if (ret)
		return ret;
	print_remote(d, "after_accept");
	fflush(stdout);
	do {
		ret = rmig_dest_wait_sync(d, o->sync_ms);
		ram_publish();
		printf("sync=%d%s%s%s\n", ret, ret < 0 ? " error=\"" : "",
		       ret < 0 ? rmig_last_error() : "", ret < 0 ? "\"" : "");
		if (ret == 0 && o->pause_after_sync && !paused) {
			uint64_t raddr = 0, rkey = 0;

			paused = true;
			rmig_dest_block_remote(d, 0, &raddr, &rkey);
			printf("paused=1 raddr=0x%" PRIx64 " rkey=0x%" PRIx64
			       "\n", raddr, rkey);
			fflush(stdout);
			while (sem_wait(&go) && errno == EINTR)
				;
		}
		fflush(stdout);
	} while (ret == 0);
	if (ret < 0)
		return ret;
	print_remote(d, "after_final");
	ret = rmig_dest_finish(d);
	received = rmig_dest_block_received(d, 0);
	printf("finish=%d received=%" PRId64 " pages=%zu%s%s%s\n", ret,
	       received, ram_len / PAGE, ret ? " error=\"" : "",
	       ret ? rmig_last_error() : "", ret ? "\"" : "");
	while (rmig_dest_recv_devstate(d, &ds) == 0) {
		printf("devstate idstr=%s len=%zu\n", ds->idstr, ds->len);
		rmig_devstate_free(ds);
	}
	if (!ret && received != (int64_t)(ram_len / PAGE))
		ret = -EIO;
	return ret;
}

int main(int argc, char **argv)
{
	struct rmig_config cfg = { 0 };
	/* Static: the signal thread reads it until the process ends. */
	static sigset_t set;
	struct dopts o;
	pthread_t sig_thread;
	rmig_dest *d = NULL;
	char h[65];
	int ret, fds_start, fds_end;

	if (parse(argc, argv, &o))
		return usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	tu_set_role("hostile_dest");
	/* The last resort: SIGALRM's default action ends the process. */
	alarm(o.watchdog_s);
	/* Every thread, the library's included, inherits the mask: the
	 * signals reach only the signal thread. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sem_init(&go, 0, 0);
	if (o.nofile) {
		struct rlimit rl;

		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = o.nofile;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			perror("setrlimit(RLIMIT_NOFILE)");
	}
	ram_len = (size_t)o.size;
	ram = mmap(NULL, ram_len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (size_t i = 0; i < ram_len / 8; i++)
		((uint64_t *)(void *)ram)[i] = mix64(GOLDEN * (i + 1));
	if (pthread_create(&sig_thread, NULL, signals, &set)) {
		perror("pthread_create");
		return 1;
	}

	/* With librdmacm's device contexts, which it keeps for the life of
	 * the process once opened. */
	fds_start = tu_take_baseline().fds;
	printf("fds_start=%d\n", fds_start);
	hash_hex(h);
	printf("hash_start=%s\n", h);
	cfg.field_mask = RMIG_CFG_ADDRESS | RMIG_CFG_TRANSPORT;
	cfg.address = o.listen;
	cfg.transport = o.verbs ? RMIG_TRANSPORT_VERBS : RMIG_TRANSPORT_FABRIC;
	if (o.channels) {
		cfg.field_mask |= RMIG_CFG_CHANNELS;
		cfg.channels = o.channels;
	}
	if (o.uuid_set) {
		cfg.field_mask |= RMIG_CFG_UUID;
		memcpy(cfg.uuid, o.uuid, 16);
	}
	if (o.allow) {
		cfg.field_mask |= RMIG_CFG_ALLOWED_SOURCES;
		cfg.allowed_sources = o.allow;
	}
	if (o.key_file) {
		cfg.field_mask |= RMIG_CFG_AUTH_KEY_FILE;
		cfg.auth_key_file = o.key_file;
	} else {
		cfg.field_mask |= RMIG_CFG_INSECURE;
		cfg.insecure = 1;
	}
	printf("auth=%s\n", o.key_file ? "key" : "insecure");
	ret = rmig_dest_create(&cfg, &d);
	if (ret) {
		printf("create=%d error=\"%s\"\n", ret, rmig_last_error());
		return 1;
	}
	pthread_mutex_lock(&dest_lock);
	cur_dest = d;
	pthread_mutex_unlock(&dest_lock);
	ret = run(&o, d);
	pthread_mutex_lock(&dest_lock);
	cur_dest = NULL;
	pthread_mutex_unlock(&dest_lock);
	rmig_dest_destroy(d);
	hash_hex(h);
	printf("hash_end=%s\n", h);
	fds_end = tu_count_fds();
	printf("fds_end=%d\n", fds_end);
	if (fds_end != fds_start)
		tu_list_fds();
	munmap(ram, ram_len);
	return ret ? 1 : 0;
}
