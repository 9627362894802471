/* SPDX-License-Identifier: MIT */
/*
 * srdma cp FILE HOST:PATH: copies a file into the --dir of an `srdma
 * serve` over the connection's byte stream (the exchange: cp_wire.h).
 * The file is read straight into the stream's send ring
 * (srdma_stream_reserve/commit) and hashed as it goes; a copy that was
 * cut off resumes at the server's offer once the first bytes hash the
 * same here; the server's verdict compares the whole file's SHA-256. A
 * progress bar with rate and time left on a terminal, plain lines
 * otherwise. Also the client half of srdma bench --op stream.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "common.h"
#include "cp.h"
#include "cp_wire.h"

enum {
	/* Our receive ring: we receive nothing on the stream. */
	CP_CLIENT_RING = 64 << 10,
	CP_READ_MAX = 4 << 20, /* bytes per read() of the file */
};

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
	cp_human(pos, done_s, sizeof(done_s));
	cp_human(p->total, total_s, sizeof(total_s));
	fprintf(stderr, "srdma cp: %s: %d%% (%s of %s), %.1f MB/s, %s left\n",
		p->name, pct, done_s, total_s, rate / 1e6, left);
}

/* A copy from the client's side. */
struct copy {
	struct common_opts o;
	const char *file, *path;
	char dest[300];
	bool restart, quiet, fsync;
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
		"  --fsync             the server puts the file on disk "
		"before it says\n"
		"                      the copy is done (as cp and rsync, it "
		"does not\n"
		"                      otherwise)\n"
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
		    struct cp_rd *body)
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
			    !cp_msg_parse(ev[i].data, ev[i].len, type, flags,
					  body))
				return die(cp,
					   "%s: the server answered "
					   "something that is no copy "
					   "message (is it srdma "
					   "serve?)",
					   cp->dest);
			memcpy(buf, ev[i].data, ev[i].len);
			body->p = buf + CP_HDR;
			if (*type == CP_REFUSE) {
				size_t tl = (size_t)cp_get_be(body, 2);
				const uint8_t *t = cp_get_bytes(body, tl);
				char text[CP_TEXT_MAX + 1];
				cp_safe(text, sizeof(text), (const char *)t,
					t ? tl : 0);
				return die(cp, "%s refused: %s", cp->dest,
					   text);
			}
			if (*type != want1 && *type != want2)
				return die(cp,
					   "%s: an unexpected answer "
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
			return die(cp, "%s: the server took nothing for %d ms",
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
	struct cp_msg m;
	struct cp_rd r;
	struct stat now;
	unsigned sl = 0;
	double secs;
	size_t plen = strlen(cp->path);
	int rc;

	if (plen > CP_PATH_MAX)
		return die(cp, "PATH is longer than %d bytes", CP_PATH_MAX);
	rc = srdma_ctx_create(&cp->o.cfg, &cp->ctx);
	if (rc < 0)
		return die(cp, "%s",
			   *srdma_error_detail() ? srdma_error_detail()
						 : srdma_strerror(rc));
	rc = srdma_connect(cp->ctx, cp->o.host, cp->o.port,
			   cp->tmo < 10000 ? 10000 : cp->tmo, &cp->c);
	if (rc < 0) {
		const char *d = srdma_error_detail();
		/* The detail names the address already, when it can. */
		if (*d && strstr(d, cp->o.host))
			return die(cp, "%s", d);
		return die(cp, "cannot connect to %s:%u: %s", cp->o.host,
			   cp->o.port, *d ? d : srdma_strerror(rc));
	}
	srdma_conn_info(cp->c, &ci);
	rc = srdma_stream_open(cp->c, CP_CLIENT_RING, &cp->s);
	if (rc < 0)
		return die(cp, "%s", srdma_error_detail());
	cp_msg_start(&m, CP_REQ,
		     (cp->restart ? CP_F_RESTART : 0) |
			     (cp->fsync ? CP_F_FSYNC : 0));
	cp_put_be(&m, cp->sb.st_mode & 0777, 4);
	cp_put_be(&m, (uint64_t)cp->sb.st_size, 8);
	cp_put_be(&m, plen, 2);
	cp_put_bytes(&m, cp->path, plen);
	rc = srdma_send_sync(cp->c, m.buf, m.len, cp->tmo);
	if (rc < 0)
		return die(cp, "%s: %s", cp->dest, srdma_error_detail());
	/* The server may hash a large partial copy first. */
	if (wait_msg(cp, CP_OFFER, CP_OFFER, &type, &flags, buf, sizeof(buf),
		     &r))
		return 1;
	cp->offset = cp_get_be(&r, 8);
	{
		const uint8_t *t = cp_get_bytes(&r, CP_SHA);
		if (r.bad || r.left)
			return die(cp, "%s: a malformed offer", cp->dest);
		memcpy(theirs, t, CP_SHA);
	}
	if (cp->offset) {
		if (cp->offset > (uint64_t)cp->sb.st_size ||
		    hash_local(cp, cp->offset) < 0 ||
		    cp_sha_peek(cp->sha, sha) < 0 ||
		    memcmp(sha, theirs, CP_SHA))
			return die(cp,
				   "%s changed since the interrupted copy: "
				   "its first %llu bytes differ from what %s "
				   "kept; run again with --restart to copy "
				   "it whole",
				   cp->file, (unsigned long long)cp->offset,
				   cp->dest);
		cp_human(cp->offset, size_s, sizeof(size_s));
		if (!cp->quiet)
			fprintf(stderr,
				"srdma cp: resuming %s at %s (%llu bytes)\n",
				cp->file, size_s,
				(unsigned long long)cp->offset);
	}
	cp_msg_start(&m, CP_START, 0);
	cp_put_be(&m, cp->offset, 8);
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
	cp_msg_start(&m, CP_DONE, 0);
	cp_put_bytes(&m, sha, CP_SHA);
	rc = srdma_send_sync(cp->c, m.buf, m.len, cp->tmo);
	if (rc < 0)
		return die(cp, "%s: %s", cp->dest, srdma_error_detail());
	if (wait_msg(cp, CP_VERDICT, CP_VERDICT, &type, &flags, buf,
		     sizeof(buf), &r))
		return 1;
	secs = now_s() - cp->prog.t0;
	(void)cp_get_be(&r, 8);
	{
		const uint8_t *srv = cp_get_bytes(&r, CP_SHA);
		size_t tl = (size_t)cp_get_be(&r, 2);
		const uint8_t *t = cp_get_bytes(&r, tl);
		char text[CP_TEXT_MAX + 1];
		if (r.bad)
			return die(cp, "%s: a malformed verdict", cp->dest);
		cp_safe(text, sizeof(text), (const char *)t, tl);
		if (!(flags & CP_F_OK))
			return die(cp, "%s: %s", cp->dest, text);
		if (memcmp(srv, sha, CP_SHA))
			return die(cp,
				   "%s says the copy is good but its SHA-256 "
				   "differs from ours",
				   cp->dest);
	}
	cp_hex(sha, CP_SHA, h);
	cp_human((uint64_t)cp->sb.st_size, size_s, sizeof(size_s));
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
		} else if (!strcmp(argv[i], "--fsync")) {
			cp.fsync = true;
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
	cp.sha = cp_sha_new();
	cp.prog.tty = isatty(STDERR_FILENO);
	cp.prog.quiet = cp.quiet;
	cp.prog.name =
		strrchr(cp.file, '/') ? strrchr(cp.file, '/') + 1 : cp.file;
	rc = cp.sha ? run_copy(&cp) : die(&cp, "out of memory");
	srdma_stream_destroy(cp.s);
	srdma_conn_destroy(cp.c);
	srdma_ctx_destroy(cp.ctx);
	EVP_MD_CTX_free(cp.sha);
	close(cp.fd);
	return rc;
}

/* ==== srdma bench --op stream ==== */

/* The server's next cp message into buf (the connection runs meanwhile). */
static int sink_wait(srdma_conn *c, int tmo, uint8_t want, uint8_t *flags,
		     uint8_t *buf, size_t cap, struct cp_rd *body)
{
	size_t len = 0;
	uint8_t type;
	int rc = srdma_recv(c, buf, cap, &len, tmo);

	if (rc < 0) {
		fprintf(stderr, "srdma bench: %s\n", srdma_error_detail());
		return 1;
	}
	if (!cp_msg_parse(buf, len, &type, flags, body) || type != want) {
		fprintf(stderr,
			"srdma bench: the server does not take streams (is "
			"it an older srdma serve?)\n");
		return 1;
	}
	return 0;
}

int cp_sink_open(srdma_conn *c, int tmo, bool hash, srdma_stream **s)
{
	uint8_t buf[CP_HDR + 64 + CP_TEXT_MAX], flags;
	struct cp_msg m;
	struct cp_rd r;

	if (srdma_stream_open(c, CP_CLIENT_RING, s) < 0) {
		fprintf(stderr, "srdma bench: %s\n", srdma_error_detail());
		return 1;
	}
	cp_msg_start(&m, CP_REQ, CP_F_DISCARD | (hash ? CP_F_HASH : 0));
	cp_put_be(&m, 0, 4);
	cp_put_be(&m, UINT64_MAX, 8);
	cp_put_be(&m, 0, 2);
	if (srdma_send_sync(c, m.buf, m.len, tmo) < 0 ||
	    sink_wait(c, tmo, CP_OFFER, &flags, buf, sizeof(buf), &r))
		return 1;
	cp_msg_start(&m, CP_START, 0);
	cp_put_be(&m, 0, 8);
	if (srdma_send_sync(c, m.buf, m.len, tmo) < 0) {
		fprintf(stderr, "srdma bench: %s\n", srdma_error_detail());
		return 1;
	}
	return 0;
}

int cp_sink_close(srdma_conn *c, srdma_stream *s, int tmo, const uint8_t *sha,
		  uint64_t *received)
{
	static const uint8_t zero[CP_SHA];
	uint8_t buf[CP_HDR + 64 + CP_TEXT_MAX], flags;
	struct cp_msg m;
	struct cp_rd r;

	if (srdma_stream_shutdown(s) < 0) {
		fprintf(stderr, "srdma bench: %s\n", srdma_error_detail());
		return 1;
	}
	cp_msg_start(&m, CP_DONE, 0);
	cp_put_bytes(&m, sha ? sha : zero, CP_SHA);
	if (srdma_send_sync(c, m.buf, m.len, tmo) < 0 ||
	    sink_wait(c, tmo, CP_VERDICT, &flags, buf, sizeof(buf), &r))
		return 1;
	*received = cp_get_be(&r, 8);
	return r.bad || !(flags & CP_F_OK);
}
