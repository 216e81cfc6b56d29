/* SPDX-License-Identifier: MIT */
/* testutil.c - shared helpers of the loopback integration tests. */
#include "testutil.h"
#include "test_secret.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef RMIG_HAVE_VERBS
#include <rdma/rdma_cma.h>
#endif

#include "mix64.h"

/* ------------------------------------------------------------------ */
/* Reporting                                                           */

static char role[32] = "parent";

void tu_set_role(const char *r)
{
	snprintf(role, sizeof(role), "%s", r);
}

const char *tu_role(void)
{
	return role;
}

void tu_msg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "[%s %d] %s\n", role, (int)getpid(), line);
	fflush(stderr);
}

void tu_fail_at(const char *file, int line, const char *expr, const char *fmt,
		...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fprintf(stderr, "[%s %d] %s:%d: FAIL: %s (%s)\n", role, (int)getpid(),
		file, line, text, expr);
	fflush(stderr);
}

bool tu_rmig_ok_at(const char *file, int line, const char *expr,
		   long long ret)
{
	if (ret >= 0)
		return true;
	fprintf(stderr, "[%s %d] %s:%d: FAIL: %s = %lld (%s): %s\n", role,
		(int)getpid(), file, line, expr, ret, strerror((int)-ret),
		rmig_last_error());
	fflush(stderr);
	return false;
}

/* ------------------------------------------------------------------ */
/* Time, environment                                                   */

uint64_t tu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double tu_ms_since(uint64_t t0_ns)
{
	return (double)(tu_now_ns() - t0_ns) / 1e6;
}

void tu_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

unsigned tu_watchdog_s(void)
{
	const char *e = getenv("RMIG_TEST_WATCHDOG");
	long v = e ? strtol(e, NULL, 10) : 0;

	return v > 0 ? (unsigned)v : 120;
}

size_t tu_cap_mib(size_t mib)
{
	const char *e = getenv("RMIG_TEST_MAX_MIB");
	long v = e ? strtol(e, NULL, 10) : 0;

	if (v > 0 && mib > (size_t)v) {
		tu_msg("RMIG_TEST_MAX_MIB=%ld: %zu MiB capped", v, mib);
		return (size_t)v;
	}
	return mib;
}

bool tu_strcasestr(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++)
		if (!strncasecmp(hay, needle, n))
			return true;
	return n == 0;
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

unsigned tu_count_threads(void)
{
	int n = count_dir("/proc/self/task");

	return n < 0 ? 0 : (unsigned)n;
}

int tu_count_fds(void)
{
	int n = count_dir("/proc/self/fd");

	return n < 0 ? n : n - 1; /* the directory's own fd */
}

void tu_list_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[300], target[256];
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		target[n < 0 ? 0 : n] = 0;
		tu_msg("  fd %s -> %s", e->d_name, target);
	}
	closedir(d);
}

bool tu_check_no_leaks(const char *what, unsigned threads0, int fds0)
{
	unsigned threads = tu_count_threads();
	int fds = tu_count_fds();
	bool ok = true;

	/* pthread_join() returns when the kernel clears the thread's tid
	 * (mm_release), a moment before the task leaves /proc/self/task; on a
	 * slow (emulated) CPU that moment is long enough to be counted.  A
	 * joined thread is gone within it, a leaked one never: wait up to 2 s. */
	for (int i = 0; threads > threads0 && i < 200; i++) {
		tu_sleep_ms(10);
		threads = tu_count_threads();
	}

	ok &= TU_CHECK(threads <= threads0,
		       "%s: %u threads after destroy, %u before", what,
		       threads, threads0);
	ok &= TU_CHECK(fds <= fds0, "%s: %d fds open after destroy, %d before",
		       what, fds, fds0);
	if (fds > fds0)
		tu_list_fds();
	return ok;
}

/* ------------------------------------------------------------------ */
/* Processes and pipes                                                 */

int tu_pipe_open(struct tu_pipe *p)
{
	int fd[2];

	if (pipe2(fd, O_CLOEXEC))
		return -errno;
	p->r = fd[0];
	p->w = fd[1];
	return 0;
}

void tu_pipe_close(struct tu_pipe *p)
{
	if (p->r >= 0)
		close(p->r);
	if (p->w >= 0)
		close(p->w);
	p->r = p->w = -1;
}

int tu_write_all(int fd, const void *buf, size_t len)
{
	const char *c = buf;

	while (len) {
		ssize_t n = write(fd, c, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

int tu_read_all(int fd, void *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = tu_now_ns() +
			    (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) *
				    1000000u;
	char *c = buf;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int wait = -1;
		ssize_t n;
		int r;

		if (timeout_ms >= 0) {
			uint64_t now = tu_now_ns();

			if (now >= deadline)
				return -ETIMEDOUT;
			wait = (int)((deadline - now) / 1000000u) + 1;
		}
		r = poll(&pfd, 1, wait);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			continue; /* loop re-checks the deadline */
		n = read(fd, c, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

int tu_send_u64(int fd, uint64_t v)
{
	return tu_write_all(fd, &v, sizeof(v));
}

int tu_recv_u64(int fd, uint64_t *v, int timeout_ms)
{
	return tu_read_all(fd, v, sizeof(*v), timeout_ms);
}

int tu_send_str(int fd, const char *s)
{
	char rec[TU_ADDR_MAX] = { 0 };

	snprintf(rec, sizeof(rec), "%s", s);
	return tu_write_all(fd, rec, sizeof(rec));
}

int tu_recv_str(int fd, char *s, int timeout_ms)
{
	char rec[TU_ADDR_MAX];
	int ret = tu_read_all(fd, rec, sizeof(rec), timeout_ms);

	if (ret)
		return ret;
	rec[TU_ADDR_MAX - 1] = 0;
	memcpy(s, rec, TU_ADDR_MAX);
	return 0;
}

static void *noop_thread(void *arg)
{
	return arg;
}

static void watchdog_fired(int sig)
{
	static const char m[] = "\n*** watchdog (alarm) expired in a test "
				"child: something hangs ***\n";
	ssize_t n = write(2, m, sizeof(m) - 1);

	(void)n;
	(void)sig;
	_exit(124);
}

int tu_spawn(struct tu_child *c, const char *name, int (*fn)(void *),
	     void *arg)
{
	pid_t parent = getpid();
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	memset(c, 0, sizeof(*c));
	c->name = name;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int rc;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(125);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGALRM, watchdog_fired);
		alarm(tu_watchdog_s());
		tu_set_role(name);
		/* ThreadSanitizer starts its background thread with the
		 * first pthread_create(): do that now, so that thread counts
		 * taken by the test (leak checks) do not include it later. */
		{
			pthread_t t;

			if (!pthread_create(&t, NULL, noop_thread, NULL))
				pthread_join(t, NULL);
		}
		rc = fn(arg);
		tu_msg("%s (exit %d)", rc ? "FAILED" : "passed", rc);
		fflush(stdout);
		fflush(stderr);
		exit(rc); /* exit(), not _exit(): LeakSanitizer runs at exit */
	}
	c->pid = pid;
	return 0;
}

bool tu_reap(struct tu_child *c, int timeout_ms)
{
	uint64_t t0 = tu_now_ns();

	if (c->reaped || c->pid <= 0)
		return true;
	for (;;) {
		pid_t r = waitpid(c->pid, &c->status, WNOHANG);

		if (r == c->pid) {
			c->reaped = true;
			return true;
		}
		if (r < 0 && errno != EINTR) {
			c->reaped = true;
			c->status = 0xff00; /* exit 255 */
			return true;
		}
		if (timeout_ms >= 0 && tu_ms_since(t0) >= timeout_ms)
			return false;
		tu_sleep_ms(10);
	}
}

void tu_kill(struct tu_child *c)
{
	if (c->pid > 0 && !c->reaped && !c->killed) {
		kill(c->pid, SIGKILL);
		c->killed = true;
	}
}

bool tu_child_ok(const struct tu_child *c)
{
	if (!c->reaped)
		return false;
	if (WIFEXITED(c->status))
		return WEXITSTATUS(c->status) == 0;
	return c->expect_kill && WIFSIGNALED(c->status) &&
	       WTERMSIG(c->status) == SIGKILL;
}

static void report_child(const struct tu_child *c)
{
	if (!c->reaped)
		tu_msg("child %s (pid %d): not reaped", c->name, (int)c->pid);
	else if (WIFEXITED(c->status))
		tu_msg("child %s (pid %d): exit %d%s", c->name, (int)c->pid,
		       WEXITSTATUS(c->status),
		       WEXITSTATUS(c->status) == 124 ? " (watchdog)" : "");
	else if (WIFSIGNALED(c->status))
		tu_msg("child %s (pid %d): killed by signal %d (%s)%s",
		       c->name, (int)c->pid, WTERMSIG(c->status),
		       strsignal(WTERMSIG(c->status)),
		       c->killed ? (c->expect_kill ? ", on purpose"
						  : ", by the supervisor")
				 : "");
}

int tu_wait_children(struct tu_child *c, int n, uint64_t deadline_ns,
		     int grace_ms)
{
	uint64_t fail_at = 0;
	bool timed_out = false;
	int left;

	for (;;) {
		left = 0;
		for (int i = 0; i < n; i++) {
			if (c[i].reaped)
				continue;
			if (!tu_reap(&c[i], 0)) {
				left++;
				continue;
			}
			report_child(&c[i]);
			if (!tu_child_ok(&c[i]) && !fail_at)
				fail_at = tu_now_ns();
		}
		if (!left)
			break;
		if (tu_now_ns() >= deadline_ns && !timed_out) {
			tu_msg("deadline passed: killing %d child(ren)", left);
			timed_out = true;
			for (int i = 0; i < n; i++)
				tu_kill(&c[i]);
		}
		if (fail_at && !timed_out &&
		    tu_now_ns() - fail_at >= (uint64_t)grace_ms * 1000000u) {
			tu_msg("a child failed %d ms ago: killing the rest",
			       grace_ms);
			timed_out = true;
			for (int i = 0; i < n; i++)
				tu_kill(&c[i]);
		}
		tu_sleep_ms(10);
	}
	for (int i = 0; i < n; i++)
		if (!tu_child_ok(&c[i]))
			return 1;
	return timed_out ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* Memory                                                              */

void *tu_alloc(size_t len, size_t align)
{
	size_t maplen = len + align;
	uint8_t *p = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *a;
	size_t head, tail;

	if (p == MAP_FAILED)
		return NULL;
	a = (uint8_t *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	head = (size_t)(a - p);
	tail = maplen - head - len;
	if (head)
		munmap(p, head);
	if (tail)
		munmap(a + len, tail);
	if (align >= (2u << 20))
		madvise(a, len, MADV_HUGEPAGE); /* best effort */
	return a;
}

void tu_free(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

uint64_t tu_hash(const void *p, size_t len)
{
	const uint8_t *c = p;
	uint64_t h = 0xcbf29ce484222325ull ^ len;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, c + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (; i < len; i++)
		h = (h ^ c[i]) * 0x100000001b3ull;
	return h;
}

/* ------------------------------------------------------------------ */
/* Deterministic guest-memory model                                    */

/* splitmix64: one step from state @x. */
static uint64_t splitmix64(uint64_t x)
{
	return mix64(x + GOLDEN);
}

enum { SALT_CHANGE = 1, SALT_KIND = 2, SALT_DATA = 3 };

static uint64_t page_key(const struct tu_image *im, unsigned salt,
			 unsigned round, unsigned block, uint64_t page)
{
	uint64_t x = ((uint64_t)salt << 60) ^ ((uint64_t)round << 44) ^
		     ((uint64_t)block << 40) ^ page;

	return splitmix64(im->seed ^ splitmix64(x));
}

int tu_image_layout(struct tu_image *im, size_t total, size_t page_size,
		    uint64_t seed)
{
	size_t ps = page_size;
	size_t rom = ps >= (128u << 10) ? ps : (128u << 10);
	size_t vram = (total / 8) & ~(ps - 1);

	memset(im, 0, sizeof(*im));
	if (vram < ps)
		vram = ps;
	if (vram > (8u << 20))
		vram = 8u << 20;
	if (total < rom + vram + ps)
		return -EINVAL;
	im->page_size = ps;
	im->seed = seed;
	im->change_pct = ps >= (2u << 20) ? 35 : 15;
	im->nblocks = 3;
	snprintf(im->b[0].name, sizeof(im->b[0].name), "pc.ram");
	im->b[0].len = (total - rom - vram) & ~(ps - 1);
	snprintf(im->b[1].name, sizeof(im->b[1].name), "vga.vram");
	im->b[1].len = vram;
	snprintf(im->b[2].name, sizeof(im->b[2].name), "pc.rom");
	im->b[2].len = rom;
	return 0;
}

int tu_image_alloc(struct tu_image *im, bool garbage)
{
	for (unsigned b = 0; b < im->nblocks; b++) {
		size_t align = im->page_size > 4096 ? im->page_size : 4096;

		im->b[b].mem = tu_alloc(im->b[b].len, align);
		if (!im->b[b].mem) {
			tu_image_free(im);
			return -ENOMEM;
		}
		if (garbage) {
			/* Nonzero in every byte: zero pages must clear it. */
			memset(im->b[b].mem, 0xa5, im->b[b].len);
		} else {
			/* Touch (fault in) without changing the zeros. */
			for (size_t o = 0; o < im->b[b].len; o += 4096)
				((volatile uint8_t *)im->b[b].mem)[o] = 0;
		}
	}
	return 0;
}

void tu_image_free(struct tu_image *im)
{
	for (unsigned b = 0; b < im->nblocks; b++) {
		tu_free(im->b[b].mem, im->b[b].len);
		im->b[b].mem = NULL;
	}
}

uint64_t tu_image_pages(const struct tu_image *im, unsigned block)
{
	return im->b[block].len / im->page_size;
}

uint64_t tu_image_hash(const struct tu_image *im)
{
	uint64_t h = 0;

	for (unsigned b = 0; b < im->nblocks; b++)
		h = splitmix64(h ^ tu_hash(im->b[b].mem, im->b[b].len));
	return h;
}

bool tu_changed(const struct tu_image *im, unsigned round, unsigned block,
		uint64_t page)
{
	if (round == 0)
		return true;
	return page_key(im, SALT_CHANGE, round, block, page) % 100 <
	       im->change_pct;
}

enum tu_kind tu_kind_at(const struct tu_image *im, unsigned round,
			unsigned block, uint64_t page)
{
	unsigned k = (unsigned)(page_key(im, SALT_KIND, round, block, page) %
				100);

	if (k < 30)
		return TU_ZERO;
	if (k < 40)
		return TU_SPARSE;
	return TU_DATA;
}

unsigned tu_last_round(const struct tu_image *im, unsigned upto,
		       unsigned block, uint64_t page)
{
	for (unsigned r = upto; r > 0; r--)
		if (tu_changed(im, r, block, page))
			return r;
	return 0;
}

void tu_page_gen(const struct tu_image *im, unsigned round, unsigned block,
		 uint64_t page, void *buf)
{
	uint64_t key = page_key(im, SALT_DATA, round, block, page);
	size_t ps = im->page_size;
	uint8_t *c = buf;

	switch (tu_kind_at(im, round, block, page)) {
	case TU_ZERO:
		memset(buf, 0, ps);
		break;
	case TU_SPARSE:
		/* One nonzero byte anywhere, the last byte included. */
		memset(buf, 0, ps);
		c[key % ps] = (uint8_t)((key >> 32) | 1);
		break;
	case TU_DATA: {
		uint64_t x = key | 1;

		for (size_t i = 0; i < ps; i += 8) {
			/* xorshift64* */
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			uint64_t w = x * 0x2545f4914f6cdd1dull;

			memcpy(c + i, &w, 8);
		}
		c[0] |= 1; /* never all zero */
		break;
	}
	}
}

void tu_image_write_round(struct tu_image *im, unsigned round,
			  uint64_t **offs, size_t *noffs, uint64_t *normal,
			  uint64_t *zero)
{
	for (unsigned b = 0; b < im->nblocks; b++) {
		uint64_t np = tu_image_pages(im, b);
		size_t n = 0;

		for (uint64_t p = 0; p < np; p++) {
			if (!tu_changed(im, round, b, p))
				continue;
			tu_page_gen(im, round, b, p,
				    im->b[b].mem + p * im->page_size);
			if (tu_kind_at(im, round, b, p) == TU_ZERO)
				(*zero)++;
			else
				(*normal)++;
			if (offs && offs[b])
				offs[b][n] = p * im->page_size;
			n++;
		}
		if (noffs)
			noffs[b] = n;
	}
}

static const char *kind_name(enum tu_kind k)
{
	return k == TU_ZERO ? "zero" : k == TU_SPARSE ? "sparse" : "data";
}

uint64_t tu_image_verify(const struct tu_image *im, unsigned upto)
{
	size_t ps = im->page_size;
	uint8_t *exp = malloc(ps);
	uint64_t bad = 0;

	if (!exp) {
		tu_msg("verify: out of memory");
		return UINT64_MAX;
	}
	for (unsigned b = 0; b < im->nblocks; b++) {
		uint64_t np = tu_image_pages(im, b);

		for (uint64_t p = 0; p < np; p++) {
			unsigned r = tu_last_round(im, upto, b, p);
			const uint8_t *got = im->b[b].mem + p * ps;
			size_t i;

			tu_page_gen(im, r, b, p, exp);
			if (!memcmp(exp, got, ps))
				continue;
			if (bad++ >= 10)
				continue;
			for (i = 0; i < ps && exp[i] == got[i]; i++)
				;
			tu_msg("MISMATCH block %u (%s) page offset 0x%" PRIx64
			       " (page %" PRIu64 "): byte %zu is 0x%02x, "
			       "expected 0x%02x (%s page of round %u, image "
			       "after round %u)",
			       b, im->b[b].name, p * ps, p, i, got[i], exp[i],
			       kind_name(tu_kind_at(im, r, b, p)), r, upto);
		}
	}
	free(exp);
	if (bad)
		tu_msg("verify after round %u: %" PRIu64 " page(s) differ",
		       upto, bad);
	return bad;
}

/* ------------------------------------------------------------------ */
/* rmig helpers                                                        */

/* Set once in main() before any fork or thread; only read afterwards. */
static const char *tu_prov = "tcp";
static bool tu_verbs;
static char tu_host_buf[TU_ADDR_MAX] = "127.0.0.1";
static char tu_listen_buf[TU_ADDR_MAX] = TU_LOOPBACK_LISTEN;

int tu_set_transport(const char *name)
{
	const char *a = getenv("RMIG_RXE_ADDR");

	if (!strcmp(name, "fabric"))
		return 0;
	if (strcmp(name, "verbs")) {
		tu_msg("transport=%s: want fabric or verbs", name);
		return -EINVAL;
	}
	if (!a || !*a || strlen(a) + 4 >= sizeof(tu_listen_buf)) {
		tu_msg("transport=verbs: RMIG_RXE_ADDR (the RDMA device's "
		       "address) is not set: run under tests/vm/rxe-vm.sh or "
		       "on a host with RDMA");
		return -ENODEV;
	}
	tu_verbs = true;
	snprintf(tu_host_buf, sizeof(tu_host_buf), "%s", a);
	snprintf(tu_listen_buf, sizeof(tu_listen_buf),
		 strchr(a, ':') ? "[%s]:0" : "%s:0", a);
	return 0;
}

bool tu_transport_verbs(void)
{
	return tu_verbs;
}

const char *tu_host(void)
{
	return tu_host_buf;
}

const char *tu_listen_addr(void)
{
	return tu_listen_buf;
}

bool tu_addr_on_host(const char *addr)
{
	char want[TU_ADDR_MAX + 4];
	size_t n;

	snprintf(want, sizeof(want), strchr(tu_host_buf, ':') ? "[%s]:" : "%s:",
		 tu_host_buf);
	n = strlen(want);
	return !strncmp(addr, want, n) && strtoul(addr + n, NULL, 10) > 0;
}

const char *tu_provider_name(void)
{
	return tu_verbs ? "verbs" : "fabric";
}

void tu_set_fabric_provider(const char *name)
{
	tu_prov = name;
}

const char *tu_fabric_provider(void)
{
	return tu_prov;
}

void tu_config(struct rmig_config *cfg, const char *address,
	       unsigned channels, size_t page_size, const uint8_t *uuid)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->field_mask = RMIG_CFG_TRANSPORT | RMIG_CFG_FABRIC_PROVIDER |
			  RMIG_CFG_ADDRESS | RMIG_CFG_PAGE_SIZE |
			  RMIG_CFG_CONNECT_TIMEOUT;
	cfg->transport = tu_verbs ? RMIG_TRANSPORT_VERBS : RMIG_TRANSPORT_FABRIC;
	cfg->fabric_provider = tu_prov;
	cfg->address = address;
	cfg->page_size = page_size;
	cfg->connect_timeout_ms = 10000;
	if (channels) {
		cfg->field_mask |= RMIG_CFG_CHANNELS;
		cfg->channels = channels;
	}
	if (uuid) {
		cfg->field_mask |= RMIG_CFG_UUID;
		memcpy(cfg->uuid, uuid, 16);
	}
	test_cfg_auth(cfg);
}

void tu_uuid(uint8_t uuid[16], uint64_t seed)
{
	uint64_t a = splitmix64(seed), b = splitmix64(a);

	memcpy(uuid, &a, 8);
	memcpy(uuid + 8, &b, 8);
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
}

void tu_print_stats(const char *who, const struct rmig_stats *st)
{
	tu_msg("%s stats: state=%s channels=%u bytes=%" PRIu64
	       " packets=%" PRIu64 " normal=%" PRIu64 " zero=%" PRIu64
	       " syncs=%" PRIu64 " blobs=%" PRIu64 " blob_bytes=%" PRIu64
	       " cleared=%" PRIu64 " rejected=%" PRIu64 " reg_ms=%.1f",
	       who, rmig_state_name(st->state), st->channels, st->bytes,
	       st->packets, st->normal_pages, st->zero_pages, st->syncs,
	       st->devstate_blobs, st->devstate_bytes, st->zero_pages_cleared,
	       st->rejected_handshakes, (double)st->registration_ns / 1e6);
	for (unsigned i = 0; i < st->channels && i < RMIG_MAX_CHANNELS; i++)
		tu_msg("%s   ch%-2u bytes=%" PRIu64 " packets=%" PRIu64
		       " normal=%" PRIu64 " zero=%" PRIu64 " syncs=%" PRIu64
		       " msgs=%" PRIu64,
		       who, i, st->channel[i].bytes, st->channel[i].packets,
		       st->channel[i].normal_pages, st->channel[i].zero_pages,
		       st->channel[i].syncs, st->channel[i].messages);
}

bool tu_stats_coherent(const struct rmig_stats *st, unsigned channels)
{
	uint64_t packets = 0, normal = 0, zero = 0;
	bool ok = true;

	ok &= TU_CHECK(st->channels == channels, "stats.channels %u, want %u",
		       st->channels, channels);
	for (unsigned i = 0; i < RMIG_MAX_CHANNELS; i++) {
		if (i >= channels) {
			ok &= TU_CHECK(!st->channel[i].packets &&
					       !st->channel[i].normal_pages &&
					       !st->channel[i].zero_pages,
				       "unused channel %u has counts", i);
			continue;
		}
		packets += st->channel[i].packets;
		normal += st->channel[i].normal_pages;
		zero += st->channel[i].zero_pages;
	}
	ok &= TU_CHECK(packets == st->packets,
		       "per-channel packets sum %" PRIu64 " != total %" PRIu64,
		       packets, st->packets);
	ok &= TU_CHECK(normal == st->normal_pages,
		       "per-channel normal pages sum %" PRIu64
		       " != total %" PRIu64,
		       normal, st->normal_pages);
	ok &= TU_CHECK(zero == st->zero_pages,
		       "per-channel zero pages sum %" PRIu64
		       " != total %" PRIu64,
		       zero, st->zero_pages);
	return ok;
}

/* ------------------------------------------------------------------ */
/* The children's sessions, and the parent's end                       */

struct tu_baseline tu_take_baseline(void)
{
	struct tu_baseline b;

#ifdef RMIG_HAVE_VERBS
	{
		/* librdmacm opens each RDMA device's context on first use
		 * (by the verbs provider, or by libfabric's verbs provider
		 * while fi_getinfo looks for tcp) and keeps it for the life
		 * of the process: open them now, so the baseline has them.
		 * Where there is no device this opens nothing. */
		int n = 0;
		struct ibv_context **ctxs = rdma_get_devices(&n);

		if (ctxs)
			rdma_free_devices(ctxs);
	}
#endif
	b.threads = tu_count_threads();
	b.fds = tu_count_fds();
	return b;
}

int tu_image_setup(struct tu_image *im, size_t total, size_t page_size,
		   uint64_t seed, bool garbage)
{
	int ret = tu_image_layout(im, total, page_size, seed);

	if (!ret)
		ret = tu_image_alloc(im, garbage);
	if (ret)
		tu_msg("cannot lay out/allocate %zu MiB", total >> 20);
	return ret;
}

bool tu_offs_alloc(uint64_t *offs[TU_MAX_BLOCKS], const struct tu_image *im)
{
	for (unsigned b = 0; b < im->nblocks; b++) {
		offs[b] = calloc(tu_image_pages(im, b), sizeof(uint64_t));
		if (!offs[b])
			return false;
	}
	return true;
}

void tu_offs_free(uint64_t *offs[TU_MAX_BLOCKS])
{
	for (unsigned b = 0; b < TU_MAX_BLOCKS; b++) {
		free(offs[b]);
		offs[b] = NULL;
	}
}

/* rmig_src_add_block() or rmig_dest_add_block() */
typedef int (*add_block_fn)(void *session, const char *name, void *mem,
			    size_t len);

static int src_add_block(void *s, const char *name, void *mem, size_t len)
{
	return rmig_src_add_block(s, name, mem, len);
}

static int dest_add_block(void *d, const char *name, void *mem, size_t len)
{
	return rmig_dest_add_block(d, name, mem, len);
}

static bool add_blocks(void *session, add_block_fn add, const char *fn,
		       const struct tu_image *im, bool check_index)
{
	for (unsigned b = 0; b < im->nblocks; b++) {
		int idx = add(session, im->b[b].name, im->b[b].mem,
			      im->b[b].len);
		char expr[64];

		snprintf(expr, sizeof(expr), "%s(\"%s\")", fn, im->b[b].name);
		if (!tu_rmig_ok_at(__FILE__, __LINE__, expr, idx) ||
		    (check_index &&
		     !TU_CHECK(idx == (int)b, "block index %d, want %u", idx,
			       b)))
			return false;
	}
	return true;
}

bool tu_src_open(rmig_src **s, const struct rmig_config *cfg,
		 const struct tu_image *im, bool check_index)
{
	*s = NULL;
	return TU_RMIG_OK(rmig_src_create(cfg, s)) &&
	       add_blocks(*s, src_add_block, "rmig_src_add_block", im,
			  check_index);
}

bool tu_dest_listen(rmig_dest **d, const struct rmig_config *cfg,
		    const struct tu_image *im, bool check_index,
		    char addr[TU_ADDR_MAX])
{
	*d = NULL;
	return TU_RMIG_OK(rmig_dest_create(cfg, d)) &&
	       add_blocks(*d, dest_add_block, "rmig_dest_add_block", im,
			  check_index) &&
	       TU_RMIG_OK(rmig_dest_listen(*d)) &&
	       TU_RMIG_OK(rmig_dest_get_address(*d, addr, TU_ADDR_MAX));
}

static void src_destroy(void *s)
{
	rmig_src_destroy(s);
}

static void dest_destroy(void *d)
{
	rmig_dest_destroy(d);
}

/* Destroy @session with @destroy (@what): its time, its limit, no leaks. */
static bool destroy_checked(void *session, void (*destroy)(void *),
			    const char *what, const struct tu_baseline *base,
			    int max_ms)
{
	uint64_t t0 = tu_now_ns();
	double ms;
	bool ok = true;

	if (!session)
		return true;
	destroy(session);
	ms = tu_ms_since(t0);
	tu_msg("%s took %.1f ms", what, ms);
	if (max_ms > 0)
		ok = TU_CHECK(ms < max_ms, "%s took %.1f ms (limit %d ms)",
			      what, ms, max_ms);
	ok &= tu_check_no_leaks(tu_role(), base->threads, base->fds);
	return ok;
}

bool tu_src_destroy(rmig_src *s, const struct tu_baseline *base, int max_ms)
{
	return destroy_checked(s, src_destroy, "rmig_src_destroy", base,
			       max_ms);
}

bool tu_dest_destroy(rmig_dest *d, const struct tu_baseline *base,
		     int max_ms)
{
	return destroy_checked(d, dest_destroy, "rmig_dest_destroy", base,
			       max_ms);
}

uint64_t tu_deadline(void)
{
	return tu_now_ns() + (uint64_t)(tu_watchdog_s() + 5) * 1000000000u;
}

int tu_report(int rc, uint64_t t0_ns)
{
	tu_msg("%s in %.1f s", rc ? "FAILED" : "PASSED",
	       tu_ms_since(t0_ns) / 1000);
	return rc;
}
