/* SPDX-License-Identifier: MIT */
/*
 * srdma cp FILE HOST:PATH: copies a file into the --dir of an `srdma
 * serve`, over the connection's byte stream, SHA-256 checked end to end,
 * resumable; and the server's side of it (cp_serve_*, cp.h).
 *
 * The exchange (messages are srdma_send records; the file's bytes go over
 * the stream, so the two never mix):
 *
 *   client -> server  REQ      size, mode, flags, PATH (relative to --dir)
 *   server -> client  OFFER    resume offset: the bytes of PATH it holds
 *                              from an interrupted copy, and their SHA-256
 *                  or REFUSE   one sentence (no such directory, no space
 *                              left, a path that leaves --dir, ...)
 *   client -> server  START    offset: the offer's (the client's first
 *                              bytes hash the same) or 0 (start over)
 *   client -> server  the file from offset, over the stream; its end
 *   client -> server  DONE     SHA-256 of the whole file
 *   server -> client  VERDICT  ok (the file is in place under PATH, its
 *                              SHA-256 equal), or a sentence
 *
 * Every message starts with the 12 bytes "SRDMACP1", u8 type, u8 flags,
 * u16 zero; integers are big-endian. The server writes into
 * DIR/.../.NAME.srdma-part, locked while a copy runs, kept when one is cut
 * off (the resume point is its length), and renamed over NAME once the
 * hashes agree. It opens every directory of PATH with O_NOFOLLOW under
 * DIR, so nothing outside DIR is touched: '..', '.', absolute paths and
 * symbolic links anywhere in PATH are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cmd.h"
#include "common.h"
#include "cp.h"

#define CP_MAGIC  "SRDMACP1"
#define PART_TAIL ".srdma-part"

enum {
	CP_HDR = 12,
	CP_SHA = 32,
	CP_PATH_MAX = 4095,
	CP_TEXT_MAX = 1024,
	/* The server's receive ring for a copy: room for several 256 KiB
	 * segments in flight. */
	CP_RING = 8 << 20,
	/* The client's: it receives nothing on the stream. */
	CP_CLIENT_RING = 64 << 10,
	CP_READ_MAX = 4 << 20, /* bytes per read() of the file */
};

enum cp_type {
	CP_REQ = 1,
	CP_OFFER = 2,
	CP_REFUSE = 3,
	CP_START = 4,
	CP_DONE = 5,
	CP_VERDICT = 6,
};

enum {
	CP_F_RESTART = 1, /* REQ: throw away a partial copy */
	CP_F_DISCARD = 2, /* REQ: count the bytes, store nothing (bench) */
	CP_F_OK = 1,	  /* VERDICT: the file is in place */
};

/* ---- messages ---- */

struct msg {
	uint8_t buf[CP_HDR + 16 + CP_PATH_MAX + CP_TEXT_MAX];
	size_t len;
};

static void put_be(struct msg *m, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--)
		m->buf[m->len + (size_t)i] = (uint8_t)v, v >>= 8;
	m->len += (size_t)n;
}

static void put_bytes(struct msg *m, const void *p, size_t n)
{
	memcpy(m->buf + m->len, p, n);
	m->len += n;
}

static void msg_start(struct msg *m, enum cp_type type, uint8_t flags)
{
	m->len = 0;
	put_bytes(m, CP_MAGIC, 8);
	put_be(m, type, 1);
	put_be(m, flags, 1);
	put_be(m, 0, 2);
}

/* A bounds-checked reader: any read past the end sets bad. */
struct rd {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static uint64_t get_be(struct rd *r, int n)
{
	uint64_t v = 0;

	if (r->left < (size_t)n) {
		r->bad = true;
		return 0;
	}
	for (int i = 0; i < n; i++)
		v = v << 8 | r->p[i];
	r->p += n;
	r->left -= (size_t)n;
	return v;
}

static const uint8_t *get_bytes(struct rd *r, size_t n)
{
	const uint8_t *p = r->p;

	if (r->left < n) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

/* Whether data is a cp message; its type, flags and body. */
static bool msg_parse(const void *data, size_t len, uint8_t *type,
		      uint8_t *flags, struct rd *body)
{
	const uint8_t *p = data;

	if (len < CP_HDR || memcmp(p, CP_MAGIC, 8))
		return false;
	*type = p[8];
	*flags = p[9];
	body->p = p + CP_HDR;
	body->left = len - CP_HDR;
	body->bad = p[10] || p[11];
	return true;
}

static void hex(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* A peer's or user's text for one log line: printable ASCII only. */
static void safe(char *out, size_t cap, const char *in, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 1 < cap; i++)
		out[k++] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
	out[k] = 0;
}

static EVP_MD_CTX *sha_new(void)
{
	EVP_MD_CTX *x = EVP_MD_CTX_new();

	if (x && EVP_DigestInit_ex(x, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(x);
		x = NULL;
	}
	return x;
}

/* The digest so far, leaving x to go on. */
static int sha_peek(EVP_MD_CTX *x, uint8_t out[CP_SHA])
{
	EVP_MD_CTX *y = EVP_MD_CTX_new();
	unsigned n = 0;
	int ok = y && EVP_MD_CTX_copy_ex(y, x) == 1 &&
		 EVP_DigestFinal_ex(y, out, &n) == 1 && n == CP_SHA;

	EVP_MD_CTX_free(y);
	return ok ? 0 : -1;
}

static void human(uint64_t v, char *out, size_t cap)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double d = (double)v;
	int u = 0;

	while (d >= 1024 && u < 4)
		d /= 1024, u++;
	if (u == 0)
		snprintf(out, cap, "%llu B", (unsigned long long)v);
	else
		snprintf(out, cap, "%.1f %s", d, unit[u]);
}

/* ==== the server's side ==== */

enum cp_state { S_IDLE, S_OFFERED, S_RECEIVING, S_FINISHED };

struct cp_serve {
	srdma_conn *conn;
	srdma_stream *s;
	enum cp_state state;
	int dirfd, fd; /* PATH's directory; the partial file (locked) */
	char path[CP_PATH_MAX + 1]; /* printable, for messages */
	char name[NAME_MAX + 1], part[NAME_MAX + 1];
	uint64_t size, offset, pos; /* announced; resumed at; next byte */
	uint32_t mode;
	bool discard, eof, done;
	uint8_t want[CP_SHA];
	EVP_MD_CTX *sha;
	double t0;
	char who[160];
};

static int root_fd = -1;
static char root_name[PATH_MAX];

static void slog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void slog(const char *fmt, ...)
{
	struct timespec ts;
	struct tm tm;
	char buf[32];
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
	printf("%s.%03ld ", buf, ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

int cp_serve_init(const char *dir)
{
	struct stat sb;

	root_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0 || fstat(root_fd, &sb) < 0) {
		fprintf(stderr, "srdma serve: --dir %s: %s\n", dir,
			strerror(errno));
		return -1;
	}
	snprintf(root_name, sizeof(root_name), "%s", dir);
	return 0;
}

void cp_serve_fini(void)
{
	if (root_fd >= 0)
		close(root_fd);
	root_fd = -1;
}

void cp_serve_free(struct cp_serve *st)
{
	if (!st)
		return;
	if (st->state == S_RECEIVING && !st->discard)
		slog("cp %s '%s': cut off after %llu of %llu bytes; the "
		     "partial copy is kept for a resume",
		     st->who, st->path, (unsigned long long)st->pos,
		     (unsigned long long)st->size);
	if (st->fd >= 0)
		close(st->fd); /* and its lock */
	if (st->dirfd >= 0)
		close(st->dirfd);
	EVP_MD_CTX_free(st->sha);
	free(st);
}

static int send_msg(struct cp_serve *st, const struct msg *m)
{
	int rc = srdma_send_sync(st->conn, m->buf, m->len, 10000);

	if (rc < 0)
		slog("cp %s: cannot answer: %s", st->who,
		     srdma_error_detail());
	return rc;
}

/* A refusal before the copy starts: one sentence, the connection stays. */
static void refuse(struct cp_serve *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void refuse(struct cp_serve *st, const char *fmt, ...)
{
	char text[CP_TEXT_MAX];
	struct msg m;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(text))
		n = sizeof(text) - 1;
	slog("cp %s refused: %s", st->who, text);
	msg_start(&m, CP_REFUSE, 0);
	put_be(&m, (uint64_t)n, 2);
	put_bytes(&m, text, (size_t)n);
	(void)send_msg(st, &m);
	if (st->fd >= 0) {
		struct stat sb;
		/* A partial copy we made for nothing goes (we hold its
		 * lock: it is ours). */
		if (fstat(st->fd, &sb) == 0 && sb.st_size == 0)
			unlinkat(st->dirfd, st->part, 0);
		close(st->fd);
	}
	if (st->dirfd >= 0)
		close(st->dirfd);
	st->fd = st->dirfd = -1;
	st->state = S_FINISHED;
}

/* A failure during the copy: the connection ends with the sentence
 * (the ERROR message carries at most 200 bytes of it). */
static void fail(struct cp_serve *st, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct cp_serve *st, int code, const char *fmt, ...)
{
	char text[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	slog("cp %s '%s' failed: %s", st->who, st->path, text);
	st->state = S_FINISHED;
	srdma_conn_abort(st->conn, code, text);
}

/*
 * Opens PATH's directory under DIR one component at a time, none of them
 * a symbolic link (O_NOFOLLOW), and the partial file beside NAME, locked.
 * 0, or -1 after refusing with a sentence.
 */
static int open_target(struct cp_serve *st, const char *path, size_t plen)
{
	const char *p = path, *end = path + plen;
	int dir, fd;
	struct stat sb;

	if (!plen) {
		refuse(st, "an empty path: name the file to write under the "
			   "server's directory");
		return -1;
	}
	if (path[0] == '/') {
		refuse(st, "'%s' is an absolute path: paths are relative to "
			   "the server's directory",
		       st->path);
		return -1;
	}
	dir = dup(root_fd);
	if (dir < 0) {
		refuse(st, "the server cannot open its directory: %s",
		       strerror(errno));
		return -1;
	}
	for (;;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		size_t n = slash ? (size_t)(slash - p) : (size_t)(end - p);
		char comp[NAME_MAX + 1];
		int at = (int)(p - path + (ptrdiff_t)n);

		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.')) {
			refuse(st,
			       "'%s' has an empty, '.' or '..' component: a "
			       "path must stay inside the server's directory",
			       st->path);
			goto out_close;
		}
		if (n > NAME_MAX - 1 - strlen(PART_TAIL)) {
			refuse(st, "a name in '%s' is longer than %zu bytes",
			       st->path, NAME_MAX - 1 - strlen(PART_TAIL));
			goto out_close;
		}
		memcpy(comp, p, n);
		comp[n] = 0;
		if (!slash) {
			snprintf(st->name, sizeof(st->name), "%s", comp);
			break;
		}
		fd = openat(dir, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					       O_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			if (fstatat(dir, comp, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(sb.st_mode))
				refuse(st,
				       "'%.*s' is a symbolic link on the "
				       "server (links are not followed)",
				       at, st->path);
			else if (e == ENOENT)
				refuse(st,
				       "no such directory '%.*s' under the "
				       "server's directory",
				       at, st->path);
			else if (e == ENOTDIR)
				refuse(st, "'%.*s' is not a directory", at,
				       st->path);
			else
				refuse(st, "cannot open '%.*s': %s", at,
				       st->path, strerror(e));
			goto out_close;
		}
		close(dir);
		dir = fd;
		p = slash + 1;
	}
	if (strlen(st->name) > strlen(PART_TAIL) &&
	    !strcmp(st->name + strlen(st->name) - strlen(PART_TAIL),
		    PART_TAIL)) {
		refuse(st, "names ending in '%s' are the server's partial "
			   "copies: refused",
		       PART_TAIL);
		goto out_close;
	}
	if (fstatat(dir, st->name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(sb.st_mode)) {
			refuse(st,
			       "'%s' is a symbolic link on the server (links "
			       "are not followed)",
			       st->path);
			goto out_close;
		}
		if (!S_ISREG(sb.st_mode)) {
			refuse(st, "'%s' exists on the server and is not a "
				   "regular file",
			       st->path);
			goto out_close;
		}
	}
	snprintf(st->part, sizeof(st->part), ".%s%s", st->name, PART_TAIL);
	fd = openat(dir, st->part,
		    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		refuse(st, "cannot create the partial copy of '%s': %s",
		       st->path,
		       fd < 0 && errno == ELOOP ? "it is a symbolic link"
		       : fd < 0			? strerror(errno)
						: "not a regular file");
		if (fd >= 0)
			close(fd);
		goto out_close;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		refuse(st, "another copy to '%s' is in progress", st->path);
		close(fd);
		goto out_close;
	}
	st->dirfd = dir;
	st->fd = fd;
	return 0;

out_close:
	close(dir);
	return -1;
}

/* SHA-256 of the partial file's first n bytes, into st->sha. */
static int hash_prefix(struct cp_serve *st, uint64_t n)
{
	enum { CHUNK = 1 << 20 };
	uint8_t *buf = malloc(CHUNK);
	uint64_t off = 0;

	if (!buf)
		return -1;
	while (off < n) {
		size_t want = n - off < CHUNK ? (size_t)(n - off) : CHUNK;
		ssize_t k = pread(st->fd, buf, want, (off_t)off);
		if (k <= 0) {
			free(buf);
			return -1;
		}
		EVP_DigestUpdate(st->sha, buf, (size_t)k);
		off += (uint64_t)k;
	}
	free(buf);
	return 0;
}

static void on_req(struct cp_serve *st, uint8_t flags, struct rd *r)
{
	uint32_t mode = (uint32_t)get_be(r, 4);
	uint64_t size = get_be(r, 8);
	size_t plen = (size_t)get_be(r, 2);
	const char *path = (const char *)get_bytes(r, plen);
	uint8_t prefix[CP_SHA];
	struct stat sb;
	struct msg m;
	char need[32], free_s[32];
	int rc;

	safe(st->path, sizeof(st->path), path ? path : "", path ? plen : 0);
	if (r->bad || r->left || plen > CP_PATH_MAX ||
	    (flags & ~(CP_F_RESTART | CP_F_DISCARD)) ||
	    (path && memchr(path, 0, plen))) {
		refuse(st, "a malformed copy request");
		return;
	}
	if (st->state != S_IDLE) {
		refuse(st, "one copy per connection");
		return;
	}
	st->size = size;
	st->mode = mode & 0777;
	st->discard = flags & CP_F_DISCARD;
	if (!(st->sha = sha_new())) {
		refuse(st, "the server is out of memory");
		return;
	}
	if (!st->discard) {
		if (root_fd < 0) {
			refuse(st, "this server stores no files (start srdma "
				   "serve with --dir DIR)");
			return;
		}
		if (open_target(st, path, plen) < 0)
			return;
		if (fstat(st->fd, &sb) < 0) {
			refuse(st, "cannot read the partial copy of '%s': %s",
			       st->path, strerror(errno));
			return;
		}
		st->offset = (uint64_t)sb.st_size;
		if ((flags & CP_F_RESTART) && st->offset) {
			if (ftruncate(st->fd, 0) < 0) {
				refuse(st, "cannot restart '%s': %s", st->path,
				       strerror(errno));
				return;
			}
			st->offset = 0;
		}
		if (hash_prefix(st, st->offset) < 0) {
			refuse(st, "cannot read the partial copy of '%s'",
			       st->path);
			return;
		}
		/* Room for the rest, now, rather than a full disk halfway:
		 * blocks past the end, so the length stays the resume
		 * point. */
		if (size > st->offset &&
		    fallocate(st->fd, FALLOC_FL_KEEP_SIZE, (off_t)st->offset,
			      (off_t)(size - st->offset)) < 0 &&
		    errno != EOPNOTSUPP && errno != ENOSYS) {
			int e = errno;
			struct statvfs vs;
			human(size - st->offset, need, sizeof(need));
			if (fstatvfs(st->fd, &vs) == 0)
				human((uint64_t)vs.f_bavail * vs.f_frsize,
				      free_s, sizeof(free_s));
			else
				snprintf(free_s, sizeof(free_s), "?");
			if (e == ENOSPC || e == EDQUOT)
				refuse(st,
				       "no space left on the server for '%s': "
				       "it needs %s, %s are free",
				       st->path, need, free_s);
			else
				refuse(st, "cannot make room for '%s': %s",
				       st->path, strerror(e));
			return;
		}
	}
	if (sha_peek(st->sha, prefix) < 0) {
		refuse(st, "the server cannot hash");
		return;
	}
	rc = srdma_stream_open(st->conn, CP_RING, &st->s);
	if (rc < 0) {
		refuse(st, "the server cannot open a stream for the copy: %s",
		       srdma_error_detail());
		return;
	}
	msg_start(&m, CP_OFFER, 0);
	put_be(&m, st->offset, 8);
	put_bytes(&m, prefix, CP_SHA);
	if (send_msg(st, &m) < 0)
		return;
	st->state = S_OFFERED;
	if (!st->discard)
		slog("cp %s '%s': %llu bytes%s", st->who, st->path,
		     (unsigned long long)size,
		     st->offset ? ", resuming" : "");
}

static void verdict(struct cp_serve *st, bool ok, const uint8_t sha[CP_SHA],
		    const char *text)
{
	static const uint8_t zero[CP_SHA];
	size_t n = strlen(text);
	struct msg m;

	msg_start(&m, CP_VERDICT, ok ? CP_F_OK : 0);
	put_be(&m, st->pos, 8);
	put_bytes(&m, sha ? sha : zero, CP_SHA);
	put_be(&m, n, 2);
	put_bytes(&m, text, n);
	(void)send_msg(st, &m);
	st->state = S_FINISHED;
}

/* The end of the stream and the client's hash are both here. */
static void finish(struct cp_serve *st)
{
	uint8_t got[CP_SHA];
	char text[CP_TEXT_MAX], h[2 * CP_SHA + 1];
	double secs = now_s() - st->t0;
	unsigned n = 0;

	if (st->discard) {
		verdict(st, true, NULL, "");
		return;
	}
	if (st->pos != st->size) {
		snprintf(text, sizeof(text),
			 "the copy of '%s' ended after %llu of %llu bytes; "
			 "the partial copy is kept",
			 st->path, (unsigned long long)st->pos,
			 (unsigned long long)st->size);
		slog("cp %s: %s", st->who, text);
		verdict(st, false, NULL, text);
		return;
	}
	if (EVP_DigestFinal_ex(st->sha, got, &n) != 1 || n != CP_SHA ||
	    memcmp(got, st->want, CP_SHA)) {
		unlinkat(st->dirfd, st->part, 0);
		snprintf(text, sizeof(text),
			 "the SHA-256 of what the server stored differs from "
			 "the file's: nothing was kept; copy it again");
		slog("cp %s '%s': %s", st->who, st->path, text);
		verdict(st, false, got, text);
		return;
	}
	if (fchmod(st->fd, st->mode) < 0 || fsync(st->fd) < 0 ||
	    renameat(st->dirfd, st->part, st->dirfd, st->name) < 0 ||
	    fsync(st->dirfd) < 0) {
		snprintf(text, sizeof(text),
			 "the server could not put '%s' in place: %s",
			 st->path, strerror(errno));
		slog("cp %s: %s", st->who, text);
		verdict(st, false, got, text);
		return;
	}
	hex(got, 8, h);
	slog("cp %s '%s': stored %llu bytes%s in %.2f s, SHA-256 %s... "
	     "verified",
	     st->who, st->path, (unsigned long long)st->size,
	     st->offset ? " (resumed)" : "", secs, h);
	verdict(st, true, got, "");
}

static void on_start(struct cp_serve *st, struct rd *r)
{
	uint64_t off = get_be(r, 8);

	if (r->bad || r->left || st->state != S_OFFERED ||
	    (off != 0 && off != st->offset)) {
		fail(st, SRDMA_EPROTO, "a START that does not follow the offer");
		return;
	}
	if (off == 0 && st->offset) {
		/* The client's first bytes differ: it starts over. */
		EVP_MD_CTX_free(st->sha);
		if (!(st->sha = sha_new()) || ftruncate(st->fd, 0) < 0) {
			fail(st, SRDMA_ESYS, "cannot restart '%s'", st->path);
			return;
		}
		st->offset = 0;
	}
	st->pos = st->offset;
	st->t0 = now_s();
	st->state = S_RECEIVING;
	cp_serve_stream(st);
}

static void on_done(struct cp_serve *st, struct rd *r)
{
	const uint8_t *sha = get_bytes(r, CP_SHA);

	if (r->bad || r->left || st->state != S_RECEIVING || st->done) {
		fail(st, SRDMA_EPROTO, "a DONE out of place");
		return;
	}
	memcpy(st->want, sha, CP_SHA);
	st->done = true;
	if (st->eof)
		finish(st);
}

int cp_serve_recv(struct cp_serve **pst, srdma_conn *c, const void *data,
		  size_t len)
{
	struct cp_serve *st = *pst;
	struct srdma_conn_info ci;
	uint8_t type, flags;
	struct rd r;

	if (!msg_parse(data, len, &type, &flags, &r))
		return 0;
	if (!st) {
		st = calloc(1, sizeof(*st));
		if (!st) {
			srdma_conn_abort(c, SRDMA_ENOMEM,
					 "the server is out of memory");
			return 1;
		}
		st->conn = c;
		st->fd = st->dirfd = -1;
		srdma_conn_info(c, &ci);
		snprintf(st->who, sizeof(st->who), "%s id=%s", ci.peer_addr,
			 ci.peer_identity);
		*pst = st;
	}
	if (st->state == S_FINISHED)
		return 1; /* after a refusal or a verdict: nothing more */
	switch (type) {
	case CP_REQ:
		on_req(st, flags, &r);
		break;
	case CP_START:
		on_start(st, &r);
		break;
	case CP_DONE:
		on_done(st, &r);
		break;
	default:
		fail(st, SRDMA_EPROTO, "an unexpected copy message");
		break;
	}
	return 1;
}

/* Writes n bytes at off, all of them. */
static int write_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p += k, n -= (size_t)k, off += (uint64_t)k;
	}
	return 0;
}

void cp_serve_stream(struct cp_serve *st)
{
	while (st && st->state == S_RECEIVING && !st->eof) {
		const void *p;
		size_t n;
		int rc = srdma_stream_peek(st->s, &p, &n);

		if (rc < 0)
			return; /* EAGAIN: an event follows; or it failed */
		if (n == 0) {
			st->eof = true;
			if (st->done)
				finish(st);
			return;
		}
		if (n > st->size - st->pos) {
			fail(st, SRDMA_EPROTO,
			     "the client sent more than the %llu bytes it "
			     "announced",
			     (unsigned long long)st->size);
			return;
		}
		if (!st->discard) {
			rc = write_all(st->fd, p, n, st->pos);
			if (rc == -ENOSPC || rc == -EDQUOT) {
				fail(st, SRDMA_ESYS,
				     "no space left on the server after %llu "
				     "of %llu bytes; the partial copy is kept",
				     (unsigned long long)st->pos,
				     (unsigned long long)st->size);
				return;
			}
			if (rc < 0) {
				fail(st, SRDMA_ESYS,
				     "the server cannot write: %s",
				     strerror(-rc));
				return;
			}
			EVP_DigestUpdate(st->sha, p, n);
		}
		st->pos += n;
		if (srdma_stream_consume(st->s, n) < 0)
			return;
	}
}

/* ==== the client: srdma cp ==== */

struct progress {
	bool tty, quiet;
	const char *name;
	uint64_t base, total; /* resumed at; the file's size */
	double t0, last;
	int next_pct; /* plain lines: the next tenth to report */
};

static void eta(double s, char *out, size_t cap)
{
	if (s < 0 || s > 359999)
		snprintf(out, cap, "--:--");
	else if (s >= 3600)
		snprintf(out, cap, "%d:%02d:%02d", (int)s / 3600,
			 (int)s / 60 % 60, (int)s % 60);
	else
		snprintf(out, cap, "%d:%02d", (int)s / 60, (int)s % 60);
}

static void progress(struct progress *p, uint64_t pos, bool last)
{
	double t = now_s(), el = t - p->t0;
	double rate = el > 0 ? (double)(pos - p->base) / el : 0;
	int pct = p->total ? (int)(pos * 100 / p->total) : 100;
	char left[16], done_s[16], total_s[16];

	if (p->quiet)
		return;
	eta(pos == p->total ? 0
	    : rate > 0	    ? (double)(p->total - pos) / rate
			    : -1,
	    left, sizeof(left));
	if (p->tty) {
		char bar[31];
		int fill = pct * 30 / 100;
		if (!last && t - p->last < 0.1)
			return;
		memset(bar, '#', (size_t)fill);
		memset(bar + fill, ' ', (size_t)(30 - fill));
		bar[30] = 0;
		fprintf(stderr, "\r%-16.16s %3d%% [%s] %8.1f MB/s  %s left ",
			p->name, pct, bar, rate / 1e6, left);
		if (last)
			fputc('\n', stderr);
		p->last = t;
		return;
	}
	if (!last && pct < p->next_pct)
		return;
	p->next_pct = pct / 10 * 10 + 10;
	human(pos, done_s, sizeof(done_s));
	human(p->total, total_s, sizeof(total_s));
	fprintf(stderr, "srdma cp: %s: %d%% (%s of %s), %.1f MB/s, %s left\n",
		p->name, pct, done_s, total_s, rate / 1e6, left);
}

/* A copy from the client's side. */
struct copy {
	struct common_opts o;
	const char *file, *path;
	char dest[300];
	bool restart, quiet;
	uint64_t bwlimit; /* bytes/s, 0 = none */
	int tmo;	  /* ms without progress before giving up */
	int fd;
	struct stat sb;
	srdma_ctx *ctx;
	srdma_conn *c;
	srdma_stream *s;
	EVP_MD_CTX *sha;
	uint64_t offset;
	struct progress prog;
};

static void cp_usage(FILE *f)
{
	fprintf(f,
		"usage: srdma cp [options] FILE HOST:PATH\n\n"
		"Copies FILE to PATH under the --dir of `srdma serve` on HOST, "
		"over\n"
		"the connection's RDMA byte stream, SHA-256 checked end to "
		"end. A copy\n"
		"that was cut off resumes where it stopped (the server keeps "
		"the part\n"
		"it has). HOST may be [IPv6]; PATH is relative to the server's "
		"--dir.\n\n"
		"  --port N            the server's port (default %d)\n"
		"  --restart           start over: drop what the server kept "
		"of an\n"
		"                      interrupted copy\n"
		"  --bwlimit RATE      at most RATE bytes/s (e.g. 50M)\n"
		"  --timeout MS        give up after MS without progress "
		"(default 30000)\n"
		"  --quiet             no progress, only errors and the last "
		"line\n"
		"%s",
		DEFAULT_PORT, common_help());
}

static int die(struct copy *cp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int die(struct copy *cp, const char *fmt, ...)
{
	va_list ap;

	if (cp->prog.tty && cp->prog.last > 0)
		fputc('\n', stderr); /* after the progress bar */
	fprintf(stderr, "srdma cp: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* Why the connection ended, as the library says it (the server's
 * sentence after "server said:"). */
static const char *why_closed(const char *detail)
{
	return detail && *detail ? detail : "the connection closed";
}

/*
 * Waits for the server's next cp message (of the two types wanted),
 * running the connection meanwhile. 0 with *type and body set, or 1
 * after saying what went wrong.
 */
static int wait_msg(struct copy *cp, uint8_t want1, uint8_t want2,
		    uint8_t *type, uint8_t *flags, uint8_t *buf, size_t cap,
		    struct rd *body)
{
	double dl = now_s() + cp->tmo / 1000.0;

	for (;;) {
		struct srdma_event ev[16];
		int n = srdma_ctx_poll(cp->ctx, ev, 16, 200);

		if (n < 0)
			return die(cp, "%s", srdma_error_detail());
		for (int i = 0; i < n; i++) {
			if (ev[i].type == SRDMA_EV_CLOSED)
				return die(cp, "%s: %s", cp->dest,
					   why_closed(ev[i].detail));
			if (ev[i].type != SRDMA_EV_RECV)
				continue;
			if (ev[i].len > cap ||
			    !msg_parse(ev[i].data, ev[i].len, type, flags,
				       body))
				return die(cp, "%s: the server answered "
					       "something that is no copy "
					       "message (is it srdma "
					       "serve?)",
					   cp->dest);
			memcpy(buf, ev[i].data, ev[i].len);
			body->p = buf + CP_HDR;
			if (*type == CP_REFUSE) {
				size_t tl = (size_t)get_be(body, 2);
				const uint8_t *t = get_bytes(body, tl);
				char text[CP_TEXT_MAX + 1];
				safe(text, sizeof(text), (const char *)t,
				     t ? tl : 0);
				return die(cp, "%s refused: %s", cp->dest,
					   text);
			}
			if (*type != want1 && *type != want2)
				return die(cp, "%s: an unexpected answer "
					       "(type %u)",
					   cp->dest, *type);
			return 0;
		}
		if (n == 0 && now_s() > dl)
			return die(cp, "%s: no answer within %d ms", cp->dest,
				   cp->tmo);
	}
}

/* SHA-256 of our first n bytes, into cp->sha. */
static int hash_local(struct copy *cp, uint64_t n)
{
	enum { CHUNK = 1 << 20 };
	uint8_t *buf = malloc(CHUNK);
	uint64_t off = 0;

	while (buf && off < n) {
		size_t want = n - off < CHUNK ? (size_t)(n - off) : CHUNK;
		ssize_t k = pread(cp->fd, buf, want, (off_t)off);
		if (k <= 0)
			break;
		EVP_DigestUpdate(cp->sha, buf, (size_t)k);
		off += (uint64_t)k;
	}
	free(buf);
	return off == n ? 0 : -1;
}

/* Sends the file from cp->offset over the stream. 0, or 1 after saying
 * why not. */
static int send_file(struct copy *cp)
{
	uint64_t pos = cp->offset;
	double t_prog = 0, stall = now_s();

	while (pos < (uint64_t)cp->sb.st_size) {
		struct srdma_event ev[16];
		void *p;
		size_t room;
		ssize_t k;
		int rc = srdma_stream_reserve(cp->s, &p, &room), n;

		if (rc == 0) {
			uint64_t left = (uint64_t)cp->sb.st_size - pos;
			if (room > left)
				room = (size_t)left;
			if (room > CP_READ_MAX)
				room = CP_READ_MAX;
			k = pread(cp->fd, p, room, (off_t)pos);
			if (k <= 0) {
				srdma_stream_commit(cp->s, 0);
				return die(cp,
					   "%s changed while it was being "
					   "copied (it got shorter); run srdma "
					   "cp again",
					   cp->file);
			}
			EVP_DigestUpdate(cp->sha, p, (size_t)k);
			if (srdma_stream_commit(cp->s, (size_t)k) < 0)
				return die(cp, "%s: %s", cp->dest,
					   srdma_error_detail());
			pos += (uint64_t)k;
			stall = now_s();
			if (now_s() - t_prog > 0.1) {
				progress(&cp->prog, pos, false);
				t_prog = now_s();
			}
			if (cp->bwlimit) {
				double ahead = (double)(pos - cp->offset) /
						       (double)cp->bwlimit -
					       (now_s() - cp->prog.t0);
				if (ahead > 0.001)
					srdma_ctx_poll(cp->ctx, ev, 16,
						       (int)(ahead * 1000));
			}
			continue;
		}
		if (rc != SRDMA_EAGAIN)
			return die(cp, "%s: %s", cp->dest,
				   srdma_error_detail());
		/* The ring is full: wait for the server to take some. */
		n = srdma_ctx_poll(cp->ctx, ev, 16, 1000);
		for (int i = 0; i < n; i++)
			if (ev[i].type == SRDMA_EV_CLOSED)
				return die(cp, "%s: %s", cp->dest,
					   why_closed(ev[i].detail));
		if (n <= 0 && now_s() - stall > cp->tmo / 1000.0)
			return die(cp,
				   "%s: the server took nothing for %d ms",
				   cp->dest, cp->tmo);
	}
	progress(&cp->prog, pos, true);
	return 0;
}

static int run_copy(struct copy *cp)
{
	struct srdma_conn_info ci;
	uint8_t type, flags, buf[CP_HDR + 64 + CP_TEXT_MAX], sha[CP_SHA];
	uint8_t theirs[CP_SHA];
	char h[2 * CP_SHA + 1], size_s[16];
	struct msg m;
	struct rd r;
	struct stat now;
	unsigned sl = 0;
	double secs;
	size_t plen = strlen(cp->path);
	int rc;

	if (plen > CP_PATH_MAX)
		return die(cp, "PATH is longer than %d bytes", CP_PATH_MAX);
	rc = srdma_ctx_create(&cp->o.cfg, &cp->ctx);
	if (rc < 0)
		return die(cp, "%s", *srdma_error_detail()
					     ? srdma_error_detail()
					     : srdma_strerror(rc));
	rc = srdma_connect(cp->ctx, cp->o.host, cp->o.port,
			   cp->tmo < 10000 ? 10000 : cp->tmo, &cp->c);
	if (rc < 0)
		return die(cp, "cannot connect to %s:%u: %s", cp->o.host,
			   cp->o.port, srdma_error_detail());
	srdma_conn_info(cp->c, &ci);
	rc = srdma_stream_open(cp->c, CP_CLIENT_RING, &cp->s);
	if (rc < 0)
		return die(cp, "%s", srdma_error_detail());
	msg_start(&m, CP_REQ,
		  cp->restart ? CP_F_RESTART : 0);
	put_be(&m, cp->sb.st_mode & 0777, 4);
	put_be(&m, (uint64_t)cp->sb.st_size, 8);
	put_be(&m, plen, 2);
	put_bytes(&m, cp->path, plen);
	rc = srdma_send_sync(cp->c, m.buf, m.len, cp->tmo);
	if (rc < 0)
		return die(cp, "%s: %s", cp->dest, srdma_error_detail());
	/* The server may hash a large partial copy first. */
	if (wait_msg(cp, CP_OFFER, CP_OFFER, &type, &flags, buf, sizeof(buf),
		     &r))
		return 1;
	cp->offset = get_be(&r, 8);
	{
		const uint8_t *t = get_bytes(&r, CP_SHA);
		if (r.bad || r.left)
			return die(cp, "%s: a malformed offer", cp->dest);
		memcpy(theirs, t, CP_SHA);
	}
	if (cp->offset) {
		if (cp->offset > (uint64_t)cp->sb.st_size ||
		    hash_local(cp, cp->offset) < 0 ||
		    sha_peek(cp->sha, sha) < 0 || memcmp(sha, theirs, CP_SHA))
			return die(cp,
				   "%s changed since the interrupted copy: "
				   "its first %llu bytes differ from what %s "
				   "kept; run again with --restart to copy "
				   "it whole",
				   cp->file, (unsigned long long)cp->offset,
				   cp->dest);
		human(cp->offset, size_s, sizeof(size_s));
		if (!cp->quiet)
			fprintf(stderr,
				"srdma cp: resuming %s at %s (%llu bytes)\n",
				cp->file, size_s,
				(unsigned long long)cp->offset);
	}
	msg_start(&m, CP_START, 0);
	put_be(&m, cp->offset, 8);
	rc = srdma_send_sync(cp->c, m.buf, m.len, cp->tmo);
	if (rc < 0)
		return die(cp, "%s: %s", cp->dest, srdma_error_detail());
	cp->prog.base = cp->offset;
	cp->prog.total = (uint64_t)cp->sb.st_size;
	cp->prog.t0 = now_s();
	cp->prog.next_pct = (int)(cp->offset * 100 /
				  (cp->prog.total ? cp->prog.total : 1)) /
				    10 * 10 +
			    10;
	if (send_file(cp))
		return 1;
	if (fstat(cp->fd, &now) < 0 || now.st_size != cp->sb.st_size ||
	    now.st_mtim.tv_sec != cp->sb.st_mtim.tv_sec ||
	    now.st_mtim.tv_nsec != cp->sb.st_mtim.tv_nsec)
		return die(cp,
			   "%s changed while it was being copied; run srdma "
			   "cp again (with --restart if it says so)",
			   cp->file);
	rc = srdma_stream_shutdown(cp->s);
	if (rc < 0)
		return die(cp, "%s: %s", cp->dest, srdma_error_detail());
	if (EVP_DigestFinal_ex(cp->sha, sha, &sl) != 1)
		return die(cp, "cannot hash %s", cp->file);
	msg_start(&m, CP_DONE, 0);
	put_bytes(&m, sha, CP_SHA);
	rc = srdma_send_sync(cp->c, m.buf, m.len, cp->tmo);
	if (rc < 0)
		return die(cp, "%s: %s", cp->dest, srdma_error_detail());
	if (wait_msg(cp, CP_VERDICT, CP_VERDICT, &type, &flags, buf,
		     sizeof(buf), &r))
		return 1;
	secs = now_s() - cp->prog.t0;
	(void)get_be(&r, 8);
	{
		const uint8_t *srv = get_bytes(&r, CP_SHA);
		size_t tl = (size_t)get_be(&r, 2);
		const uint8_t *t = get_bytes(&r, tl);
		char text[CP_TEXT_MAX + 1];
		if (r.bad)
			return die(cp, "%s: a malformed verdict", cp->dest);
		safe(text, sizeof(text), (const char *)t, tl);
		if (!(flags & CP_F_OK))
			return die(cp, "%s: %s", cp->dest, text);
		if (memcmp(srv, sha, CP_SHA))
			return die(cp,
				   "%s says the copy is good but its SHA-256 "
				   "differs from ours",
				   cp->dest);
	}
	hex(sha, CP_SHA, h);
	human((uint64_t)cp->sb.st_size, size_s, sizeof(size_s));
	printf("srdma cp: %s -> %s: %s (%llu bytes)%s in %.2f s (%.1f MB/s), "
	       "SHA-256 %s verified; %s/%s, %s\n",
	       cp->file, cp->dest, size_s, (unsigned long long)cp->sb.st_size,
	       cp->offset ? " resumed" : "", secs,
	       secs > 0 ? (double)((uint64_t)cp->sb.st_size - cp->offset) /
				  secs / 1e6
			: 0.0,
	       h, srdma_transport_name(ci.transport), ci.provider,
	       srdma_protect_name(ci.protect));
	return 0;
}

int cmd_cp(int argc, char **argv)
{
	struct copy cp = {.fd = -1, .tmo = 30000};
	uint64_t v;
	const char *colon;
	int rc;

	common_init(&cp.o, SRDMA_ROLE_CLIENT);
	for (int i = 1; i < argc; i++) {
		int c = common_parse(&cp.o, "cp", argc, argv, &i);
		if (c < 0)
			return 2;
		if (c > 0)
			continue;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			cp_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--restart")) {
			cp.restart = true;
		} else if (!strcmp(argv[i], "--quiet") ||
			   !strcmp(argv[i], "-q")) {
			cp.quiet = true;
		} else if (!strcmp(argv[i], "--port") && i + 1 < argc &&
			   parse_size(argv[i + 1], &v) == 0 && v > 0 &&
			   v < 65536) {
			cp.o.port = (uint16_t)v;
			i++;
		} else if (!strcmp(argv[i], "--bwlimit") && i + 1 < argc &&
			   parse_size(argv[i + 1], &v) == 0 && v > 0) {
			cp.bwlimit = v;
			i++;
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc &&
			   parse_size(argv[i + 1], &v) == 0 && v >= 100 &&
			   v <= 3600000) {
			cp.tmo = (int)v;
			i++;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr,
				"srdma cp: unknown or incomplete option "
				"'%s'\n",
				argv[i]);
			cp_usage(stderr);
			return 2;
		} else if (!cp.file) {
			cp.file = argv[i];
		} else if (!cp.path) {
			cp.path = argv[i]; /* HOST:PATH, split below */
		} else {
			cp_usage(stderr);
			return 2;
		}
	}
	if (!cp.file || !cp.path) {
		cp_usage(stderr);
		return 2;
	}
	/* HOST:PATH, or [V6]:PATH */
	snprintf(cp.dest, sizeof(cp.dest), "%s", cp.path);
	if (cp.path[0] == '[') {
		const char *rb = strchr(cp.path, ']');
		colon = rb && rb[1] == ':' ? rb + 1 : NULL;
		if (colon)
			snprintf(cp.o.host, sizeof(cp.o.host), "%.*s",
				 (int)(rb - cp.path - 1), cp.path + 1);
	} else {
		colon = strchr(cp.path, ':');
		if (colon)
			snprintf(cp.o.host, sizeof(cp.o.host), "%.*s",
				 (int)(colon - cp.path), cp.path);
	}
	if (!colon || colon == cp.path || !colon[1]) {
		fprintf(stderr,
			"srdma cp: '%s' is not HOST:PATH (the file's place "
			"under the server's --dir)\n",
			cp.path);
		return 2;
	}
	cp.path = colon + 1;
	cp.fd = open(cp.file, O_RDONLY | O_CLOEXEC);
	if (cp.fd < 0 || fstat(cp.fd, &cp.sb) < 0) {
		fprintf(stderr, "srdma cp: cannot open %s: %s\n", cp.file,
			strerror(errno));
		return 1;
	}
	if (!S_ISREG(cp.sb.st_mode)) {
		fprintf(stderr, "srdma cp: %s is not a regular file\n",
			cp.file);
		close(cp.fd);
		return 1;
	}
	cp.sha = sha_new();
	cp.prog.tty = isatty(STDERR_FILENO);
	cp.prog.quiet = cp.quiet;
	cp.prog.name = strrchr(cp.file, '/') ? strrchr(cp.file, '/') + 1
					     : cp.file;
	rc = cp.sha ? run_copy(&cp) : die(&cp, "out of memory");
	srdma_stream_destroy(cp.s);
	srdma_conn_destroy(cp.c);
	srdma_ctx_destroy(cp.ctx);
	EVP_MD_CTX_free(cp.sha);
	close(cp.fd);
	return rc;
}
