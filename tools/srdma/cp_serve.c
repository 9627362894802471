/* SPDX-License-Identifier: MIT */
/*
 * The server's side of `srdma cp` (cp_wire.h), for `srdma serve --dir
 * DIR`. It writes into DIR/.../.NAME.srdma-part, locked while a copy runs,
 * kept when one is cut off (the resume point is its length, its SHA-256
 * what the next copy must match), and renamed over NAME once the hashes
 * agree. It opens every directory of PATH with O_NOFOLLOW from DIR, so
 * nothing outside DIR is touched: '..', '.', empty components, absolute
 * paths and symbolic links anywhere in PATH are refused, each with a
 * sentence, as are a missing directory, a full disk (fallocate first), a
 * name that is not a regular file and a second copy to the same PATH.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "cp.h"
#include "cp_wire.h"

#define PART_TAIL ".srdma-part"

enum {
	/* The receive ring for a copy: room for several segments in
	 * flight, small enough to stay in cache (measured: 8 MiB cost a
	 * quarter more CPU per byte than 1 MiB on loopback). */
	CP_RING = 1 << 20,
};

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
	bool discard, hash, fsync, eof, done;
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
	srdma_stream_destroy(st->s); /* before or after its connection */
	if (st->fd >= 0)
		close(st->fd); /* and its lock */
	if (st->dirfd >= 0)
		close(st->dirfd);
	EVP_MD_CTX_free(st->sha);
	free(st);
}

static int send_msg(struct cp_serve *st, const struct cp_msg *m)
{
	int rc = srdma_send_sync(st->conn, m->buf, m->len, 10000);

	if (rc < 0)
		slog("cp %s: cannot answer: %s", st->who, srdma_error_detail());
	return rc;
}

/* A refusal before the copy starts: one sentence, the connection stays. */
static void refuse(struct cp_serve *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void refuse(struct cp_serve *st, const char *fmt, ...)
{
	char text[CP_TEXT_MAX];
	struct cp_msg m;
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
	cp_msg_start(&m, CP_REFUSE, 0);
	cp_put_be(&m, (uint64_t)n, 2);
	cp_put_bytes(&m, text, (size_t)n);
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
		refuse(st,
		       "'%s' is an absolute path: paths are relative to "
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
		fd = openat(dir, comp,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
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
		refuse(st,
		       "names ending in '%s' are the server's partial "
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
			refuse(st,
			       "'%s' exists on the server and is not a "
			       "regular file",
			       st->path);
			goto out_close;
		}
	}
	snprintf(st->part, sizeof(st->part), ".%s%s", st->name, PART_TAIL);
	fd = openat(dir, st->part, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		    0600);
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

static void on_req(struct cp_serve *st, uint8_t flags, struct cp_rd *r)
{
	uint32_t mode = (uint32_t)cp_get_be(r, 4);
	uint64_t size = cp_get_be(r, 8);
	size_t plen = (size_t)cp_get_be(r, 2);
	const char *path = (const char *)cp_get_bytes(r, plen);
	uint8_t prefix[CP_SHA];
	struct stat sb;
	struct cp_msg m;
	char need[32], free_s[32];
	int rc;

	cp_safe(st->path, sizeof(st->path), path ? path : "", path ? plen : 0);
	if (r->bad || r->left || plen > CP_PATH_MAX ||
	    (flags & ~(CP_F_RESTART | CP_F_DISCARD | CP_F_FSYNC | CP_F_HASH)) ||
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
	st->hash = !st->discard || (flags & CP_F_HASH);
	st->fsync = flags & CP_F_FSYNC;
	if (!(st->sha = cp_sha_new())) {
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
			cp_human(size - st->offset, need, sizeof(need));
			if (fstatvfs(st->fd, &vs) == 0)
				cp_human((uint64_t)vs.f_bavail * vs.f_frsize,
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
	if (cp_sha_peek(st->sha, prefix) < 0) {
		refuse(st, "the server cannot hash");
		return;
	}
	rc = srdma_stream_open(st->conn, CP_RING, &st->s);
	if (rc < 0) {
		refuse(st, "the server cannot open a stream for the copy: %s",
		       srdma_error_detail());
		return;
	}
	cp_msg_start(&m, CP_OFFER, 0);
	cp_put_be(&m, st->offset, 8);
	cp_put_bytes(&m, prefix, CP_SHA);
	if (send_msg(st, &m) < 0)
		return;
	st->state = S_OFFERED;
	if (!st->discard)
		slog("cp %s '%s': %llu bytes%s", st->who, st->path,
		     (unsigned long long)size, st->offset ? ", resuming" : "");
}

static void verdict(struct cp_serve *st, bool ok, const uint8_t sha[CP_SHA],
		    const char *text)
{
	static const uint8_t zero[CP_SHA];
	size_t n = strlen(text);
	struct cp_msg m;

	cp_msg_start(&m, CP_VERDICT, ok ? CP_F_OK : 0);
	cp_put_be(&m, st->pos, 8);
	cp_put_bytes(&m, sha ? sha : zero, CP_SHA);
	cp_put_be(&m, n, 2);
	cp_put_bytes(&m, text, n);
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
		bool same = !st->hash ||
			    (EVP_DigestFinal_ex(st->sha, got, &n) == 1 &&
			     !memcmp(got, st->want, CP_SHA));
		verdict(st, same, st->hash ? got : NULL,
			same ? "" : "the SHA-256 of what arrived differs");
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
	/* Like cp and rsync, the page cache is trusted unless asked. */
	if (fchmod(st->fd, st->mode) < 0 || (st->fsync && fsync(st->fd) < 0) ||
	    renameat(st->dirfd, st->part, st->dirfd, st->name) < 0 ||
	    (st->fsync && fsync(st->dirfd) < 0)) {
		snprintf(text, sizeof(text),
			 "the server could not put '%s' in place: %s", st->path,
			 strerror(errno));
		slog("cp %s: %s", st->who, text);
		verdict(st, false, got, text);
		return;
	}
	cp_hex(got, 8, h);
	slog("cp %s '%s': stored %llu bytes%s in %.2f s, SHA-256 %s... "
	     "verified",
	     st->who, st->path, (unsigned long long)st->size,
	     st->offset ? " (resumed)" : "", secs, h);
	verdict(st, true, got, "");
}

static void on_start(struct cp_serve *st, struct cp_rd *r)
{
	uint64_t off = cp_get_be(r, 8);

	if (r->bad || r->left || st->state != S_OFFERED ||
	    (off != 0 && off != st->offset)) {
		fail(st, SRDMA_EPROTO,
		     "a START that does not follow the offer");
		return;
	}
	if (off == 0 && st->offset) {
		/* The client's first bytes differ: it starts over. */
		EVP_MD_CTX_free(st->sha);
		if (!(st->sha = cp_sha_new()) || ftruncate(st->fd, 0) < 0) {
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

static void on_done(struct cp_serve *st, struct cp_rd *r)
{
	const uint8_t *sha = cp_get_bytes(r, CP_SHA);

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
	struct cp_rd r;

	if (!cp_msg_parse(data, len, &type, &flags, &r))
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
		}
		if (st->hash)
			EVP_DigestUpdate(st->sha, p, n);
		st->pos += n;
		if (srdma_stream_consume(st->s, n) < 0)
			return;
	}
}
