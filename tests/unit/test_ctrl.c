/* SPDX-License-Identifier: MIT */
/*
 * Control channel and development PKI: real TLS 1.3 handshakes between two
 * in-process peers over a socketpair, driven non-blocking from a poll loop,
 * checking the exact error code for each way a handshake can fail.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ctrl/ctrl.h"
#include "pki.h"
#include "test.h"

enum { DAY = 24 * 3600 };

static char base[PATH_MAX - 64];  /* temp root */
static char dir_a[PATH_MAX - 32]; /* main PKI */
static char dir_b[PATH_MAX - 32]; /* another CA */
static char dir_c[PATH_MAX - 32]; /* a CA valid since yesterday */

static void path(char *buf, size_t len, const char *dir, const char *file)
{
	snprintf(buf, len, "%s/%s", dir, file);
}

/* A TLS context from DIR/NAME.{crt,key} trusting CA_DIR/ca.crt. */
static struct srdma__tls_ctx *mk_ctx(const char *dir, const char *name,
				     const char *ca_dir, bool server,
				     const char *const *allow)
{
	char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
	struct srdma__tls_config cfg = {.server = server, .allow = allow};
	struct srdma__tls_ctx *t = NULL;
	int rc;

	snprintf(cert, sizeof(cert), "%s/%s.crt", dir, name);
	snprintf(key, sizeof(key), "%s/%s.key", dir, name);
	snprintf(ca, sizeof(ca), "%s/ca.crt", ca_dir);
	cfg.cert_file = cert;
	cfg.key_file = key;
	cfg.ca_file = ca;
	rc = srdma__tls_ctx_create(&cfg, &t);
	if (rc < 0)
		fprintf(stderr, "tls_ctx_create(%s/%s): %d %s\n", dir, name, rc,
			srdma_error_detail());
	return t;
}

/* One end of a test connection: our ctrl, a raw OpenSSL peer, or none. */
struct side {
	struct srdma__ctrl *c;
	SSL *raw;
	SSL_CTX *raw_ctx;
	int fd;
	int rc;
	char detail[512];
};

static void step(struct side *s)
{
	if (s->c) {
		s->rc = srdma__ctrl_handshake(s->c);
		if (s->rc < 0 && s->rc != SRDMA_EAGAIN)
			srdma__err_copy(s->detail, sizeof(s->detail));
		return;
	}
	if (s->raw) {
		int r = SSL_do_handshake(s->raw);
		int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s->raw, r);

		s->rc = r == 1 ? 0
			: (e == SSL_ERROR_WANT_READ ||
			   e == SSL_ERROR_WANT_WRITE)
				? SRDMA_EAGAIN
				: SRDMA_ETLS;
		ERR_clear_error();
		return;
	}
	s->rc = 0;
}

static bool wants_write(const struct side *s)
{
	if (s->c)
		return srdma__ctrl_want_write(s->c);
	return s->raw && SSL_want_write(s->raw);
}

/* Runs both handshakes until neither wants more (5 s at most). */
static void drive(struct side *a, struct side *b)
{
	struct side *sides[2] = {a, b};
	time_t end = time(NULL) + 5;

	a->rc = b->rc = SRDMA_EAGAIN;
	while (time(NULL) < end) {
		struct pollfd pfd[2];
		int n = 0;

		for (int i = 0; i < 2; i++)
			if (sides[i]->rc == SRDMA_EAGAIN)
				step(sides[i]);
		for (int i = 0; i < 2; i++) {
			if (sides[i]->rc != SRDMA_EAGAIN)
				continue;
			pfd[n].fd = sides[i]->fd;
			pfd[n].events =
				wants_write(sides[i]) ? POLLOUT : POLLIN;
			n++;
		}
		if (n == 0)
			return;
		poll(pfd, (nfds_t)n, 50);
	}
}

static void side_free(struct side *s)
{
	srdma__ctrl_destroy(s->c);
	if (s->raw) {
		SSL_free(s->raw);
		close(s->fd);
	}
	SSL_CTX_free(s->raw_ctx);
	memset(s, 0, sizeof(*s));
}

/* A connected pair of ctrl objects; peer_name is the client's target. */
static bool mk_pair(struct srdma__tls_ctx *ct, struct srdma__tls_ctx *st,
		    const char *peer_name, struct side *cli, struct side *srv)
{
	int sv[2];

	memset(cli, 0, sizeof(*cli));
	memset(srv, 0, sizeof(*srv));
	if (!ct || !st || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return false;
	cli->fd = sv[0];
	srv->fd = sv[1];
	if (srdma__ctrl_create(ct, sv[0], peer_name, &cli->c) < 0 ||
	    srdma__ctrl_create(st, sv[1], NULL, &srv->c) < 0) {
		fprintf(stderr, "ctrl_create: %s\n", srdma_error_detail());
		return false;
	}
	return true;
}

/* Handshake between a client and a server context; returns both codes. */
static void hs(struct srdma__tls_ctx *ct, struct srdma__tls_ctx *st,
	       const char *peer_name, struct side *cli, struct side *srv)
{
	if (!mk_pair(ct, st, peer_name, cli, srv)) {
		cli->rc = srv->rc = -1000;
		return;
	}
	drive(cli, srv);
	if (getenv("TEST_VERBOSE"))
		printf("  %s: client %d \"%s\" / server %d \"%s\"\n", peer_name,
		       cli->rc, cli->detail, srv->rc, srv->detail);
}

/* After a server-side rejection, what the client learns on its next read. */
static int client_read_rc(struct side *cli, char *detail, size_t len)
{
	char buf[64];
	time_t end = time(NULL) + 5;
	int rc;

	do {
		rc = srdma__ctrl_recv(cli->c, buf, sizeof(buf));
		if (rc == SRDMA_EAGAIN) {
			struct pollfd p = {.fd = cli->fd, .events = POLLIN};

			poll(&p, 1, 50);
		}
	} while (rc == SRDMA_EAGAIN && time(NULL) < end);
	srdma__err_copy(detail, len);
	if (getenv("TEST_VERBOSE"))
		printf("  client read: %d \"%s\"\n", rc, detail);
	return rc;
}

static bool contains(const char *hay, const char *needle)
{
	bool ok = strstr(hay, needle) != NULL;

	if (!ok)
		fprintf(stderr, "  detail \"%s\" lacks \"%s\"\n", hay, needle);
	return ok;
}

static int rm_cb(const char *p, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	return remove(p);
}

static mode_t file_mode(const char *dir, const char *file)
{
	char p[PATH_MAX];
	struct stat st;

	path(p, sizeof(p), dir, file);
	if (stat(p, &st) < 0)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

static bool read_file(const char *dir, const char *file, char *buf, size_t len)
{
	char p[PATH_MAX];
	FILE *f;
	size_t n;

	path(p, sizeof(p), dir, file);
	f = fopen(p, "r");
	if (!f)
		return false;
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return n > 0;
}

static void test_pki(void)
{
	static const char *const clients[] = {"client", "alice", NULL};
	static const char *const names[] = {"db.example", "10.1.2.3", NULL};
	struct pki_opts o = {
		.dir = dir_a, .clients = clients, .server_names = names};
	struct pki_opts ob = {.dir = dir_b};
	char before[8192], after[8192], cert[PATH_MAX], key[PATH_MAX],
		ca[PATH_MAX];

	CHECK_PKI(pki_write(&o), 0);
	CHECK_PKI(pki_write(&ob), 0);
	CHECK(file_mode(dir_a, "") == 0700);
	CHECK(file_mode(dir_a, "ca.key") == 0600);
	CHECK(file_mode(dir_a, "server.key") == 0600);
	CHECK(file_mode(dir_a, "client.key") == 0600);
	CHECK(file_mode(dir_a, "alice.key") == 0600);
	CHECK(file_mode(dir_a, "ca.crt") == 0644);
	CHECK(file_mode(dir_a, "server.crt") == 0644);
	CHECK(file_mode(dir_a, "alice.crt") == 0644);
	CHECK(file_mode(dir_b, "client.key") == 0600);

	/* No overwrite without force; nothing changes. */
	CHECK(read_file(dir_a, "ca.crt", before, sizeof(before)));
	CHECK_PKI(pki_write(&o), -1);
	CHECK(contains(pki_error(), "exists; use --force"));
	CHECK(read_file(dir_a, "ca.crt", after, sizeof(after)));
	CHECK(!strcmp(before, after));

	/* With force: a new CA, keys still 0600. */
	o.force = true;
	CHECK_PKI(pki_write(&o), 0);
	CHECK(read_file(dir_a, "ca.crt", after, sizeof(after)));
	CHECK(strcmp(before, after) != 0);
	CHECK(file_mode(dir_a, "ca.key") == 0600);
	CHECK(file_mode(dir_a, "server.key") == 0600);

	/* Bad identities and names are refused. */
	{
		static const char *const bad_c[] = {"../evil", NULL};
		static const char *const dup_c[] = {"x", "x", NULL};
		static const char *const bad_n[] = {"a b", NULL};
		struct pki_opts ox = {.dir = dir_a, .force = true};

		ox.clients = bad_c;
		CHECK_PKI(pki_write(&ox), -1);
		ox.clients = dup_c;
		CHECK_PKI(pki_write(&ox), -1);
		ox.clients = NULL;
		ox.server_names = bad_n;
		CHECK_PKI(pki_write(&ox), -1);
	}

	/* certs_paths */
	CHECK_RC(srdma__certs_paths(dir_a, "alice", cert, sizeof(cert), key,
				    sizeof(key), ca, sizeof(ca)),
		 0);
	CHECK(contains(cert, "/alice.crt") && contains(key, "/alice.key") &&
	      contains(ca, "/ca.crt"));
	CHECK_RC(srdma__certs_paths(dir_a, "nobody", cert, sizeof(cert), key,
				    sizeof(key), ca, sizeof(ca)),
		 SRDMA_ECONFIG);
	CHECK(contains(srdma_error_detail(), "nobody.crt"));
	CHECK_RC(srdma__certs_paths(dir_a, "alice", cert, 8, key, sizeof(key),
				    ca, sizeof(ca)),
		 SRDMA_ECONFIG);
}

static void test_config_errors(void)
{
	char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
	struct srdma__tls_config cfg = {.server = true};
	struct srdma__tls_ctx *t = NULL;

	path(cert, sizeof(cert), dir_a, "server.crt");
	path(key, sizeof(key), dir_a, "client.key");
	path(ca, sizeof(ca), dir_a, "ca.crt");
	cfg.cert_file = cert;
	cfg.key_file = key;
	cfg.ca_file = ca;
	CHECK_RC(srdma__tls_ctx_create(&cfg, &t), SRDMA_ECONFIG);
	CHECK(t == NULL);
	CHECK(contains(srdma_error_detail(), "client.key") &&
	      contains(srdma_error_detail(), "server.crt") &&
	      contains(srdma_error_detail(), "does not match"));

	path(key, sizeof(key), dir_a, "missing.key");
	CHECK_RC(srdma__tls_ctx_create(&cfg, &t), SRDMA_ECONFIG);
	CHECK(contains(srdma_error_detail(), "missing.key"));

	/* a key is not a CA certificate */
	path(key, sizeof(key), dir_a, "server.key");
	path(ca, sizeof(ca), dir_a, "ca.key");
	CHECK_RC(srdma__tls_ctx_create(&cfg, &t), SRDMA_ECONFIG);
	CHECK(contains(srdma_error_detail(), "ca.key"));

	/* a client must name the server it expects */
	t = mk_ctx(dir_a, "client", dir_a, false, NULL);
	CHECK(t != NULL);
	if (t) {
		struct srdma__ctrl *c = NULL;
		int sv[2];

		CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
		CHECK_RC(srdma__ctrl_create(t, sv[0], NULL, &c), SRDMA_EINVAL);
		CHECK(c == NULL);
		/* the fd was taken (closed): the peer sees EOF */
		CHECK(read(sv[1], cert, 1) == 0);
		close(sv[1]);
	}
	srdma__tls_ctx_destroy(t);
}

static bool pump_send(struct srdma__ctrl *s, struct srdma__ctrl *r,
		      const unsigned char *msg, size_t len)
{
	unsigned char got[70000];
	size_t have = 0;
	time_t end = time(NULL) + 5;
	int rc = srdma__ctrl_send(s, msg, len);

	if (rc < 0)
		return false;
	while (have < len && time(NULL) < end) {
		int n;

		if (srdma__ctrl_pending_out(s)) {
			int f = srdma__ctrl_flush(s);

			if (f < 0 && f != SRDMA_EAGAIN)
				return false;
		}
		n = srdma__ctrl_recv(r, got + have, sizeof(got) - have);
		if (n > 0)
			have += (size_t)n;
		else if (n != SRDMA_EAGAIN)
			return false;
		else
			poll(NULL, 0, 1);
	}
	return have == len && !memcmp(got, msg, len);
}

static void test_good(void)
{
	struct srdma__tls_ctx *st = mk_ctx(dir_a, "server", dir_a, true, NULL);
	struct srdma__tls_ctx *ct = mk_ctx(dir_a, "client", dir_a, false, NULL);
	struct side cli, srv;
	unsigned char k1[32] = {0}, k2[32] = {0}, zero[32] = {0};
	static unsigned char big[60000];
	char buf[64];

	hs(ct, st, "localhost", &cli, &srv);
	CHECK_RC(cli.rc, 0);
	CHECK_RC(srv.rc, 0);
	if (cli.rc == 0 && srv.rc == 0) {
		CHECK(!strcmp(srdma__ctrl_peer_identity(srv.c), "client"));
		CHECK(!strcmp(srdma__ctrl_peer_identity(cli.c), "server"));
		CHECK(!strncmp(srdma__ctrl_tls_version(cli.c), "TLSv1.3 ", 8));
		CHECK(SSL_version(srdma__ctrl_ssl(srv.c)) == TLS1_3_VERSION);
		CHECK(srdma__ctrl_handshake(cli.c) == 0); /* idempotent */

		CHECK(pump_send(cli.c, srv.c, (const unsigned char *)"hello",
				5));
		CHECK(pump_send(srv.c, cli.c, (const unsigned char *)"world!",
				6));
		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (unsigned char)(i * 7 + 3);
		CHECK(pump_send(cli.c, srv.c, big, sizeof(big)));
		CHECK(pump_send(srv.c, cli.c, big, sizeof(big)));
		CHECK_RC(srdma__ctrl_send(cli.c, big, 70000), SRDMA_EMSGSIZE);
		CHECK_RC(srdma__ctrl_recv(srv.c, buf, sizeof(buf)),
			 SRDMA_EAGAIN);

		CHECK(SSL_export_keying_material(srdma__ctrl_ssl(cli.c), k1,
						 sizeof(k1), "srdma test", 10,
						 NULL, 0, 0) == 1);
		CHECK(SSL_export_keying_material(srdma__ctrl_ssl(srv.c), k2,
						 sizeof(k2), "srdma test", 10,
						 NULL, 0, 0) == 1);
		CHECK(!memcmp(k1, k2, sizeof(k1)));
		CHECK(memcmp(k1, zero, sizeof(k1)) != 0);

		/* orderly close: the server reads ECLOSED */
		srdma__ctrl_shutdown(cli.c);
		CHECK_RC(client_read_rc(&srv, buf, sizeof(buf)), SRDMA_ECLOSED);
	}
	side_free(&cli);
	side_free(&srv);

	/* A peer that does not read: the queue fills, then EAGAIN; then it
	 * drains as the peer reads (partial writes, moving buffer). */
	hs(ct, st, "localhost", &cli, &srv);
	if (cli.rc == 0 && srv.rc == 0) {
		int rc = 0, sent = 0;
		size_t got = 0;
		static unsigned char rbuf[65536];
		time_t end = time(NULL) + 5;

		while (sent < 100 &&
		       (rc = srdma__ctrl_send(cli.c, big, 30000)) == 0)
			sent++;
		CHECK_RC(rc, SRDMA_EAGAIN);
		CHECK(srdma__ctrl_pending_out(cli.c));
		while ((srdma__ctrl_pending_out(cli.c) ||
			got < (size_t)sent * 30000) &&
		       time(NULL) < end) {
			int n = srdma__ctrl_recv(srv.c, rbuf, sizeof(rbuf));

			if (n > 0)
				got += (size_t)n;
			else if (n != SRDMA_EAGAIN)
				break;
			rc = srdma__ctrl_flush(cli.c);
			if (rc < 0 && rc != SRDMA_EAGAIN)
				break;
		}
		CHECK(got == (size_t)sent * 30000);
		CHECK(!srdma__ctrl_pending_out(cli.c));
	} else {
		CHECK(!"second handshake");
	}
	side_free(&cli);
	side_free(&srv);

	/* IP literals as the server's name */
	hs(ct, st, "127.0.0.1", &cli, &srv);
	CHECK_RC(cli.rc, 0);
	CHECK_RC(srv.rc, 0);
	side_free(&cli);
	side_free(&srv);
	hs(ct, st, "::1", &cli, &srv);
	CHECK_RC(cli.rc, 0);
	side_free(&cli);
	side_free(&srv);
	hs(ct, st, "db.example", &cli, &srv); /* extra --name */
	CHECK_RC(cli.rc, 0);
	side_free(&cli);
	side_free(&srv);
	hs(ct, st, "10.1.2.3", &cli, &srv);
	CHECK_RC(cli.rc, 0);
	side_free(&cli);
	side_free(&srv);

	/* wrong names */
	hs(ct, st, "wrong.example", &cli, &srv);
	CHECK_RC(cli.rc, SRDMA_ECERT_NAME);
	CHECK(contains(cli.detail, "'wrong.example'"));
	CHECK(srv.rc != 0);
	side_free(&cli);
	side_free(&srv);
	hs(ct, st, "10.9.8.7", &cli, &srv);
	CHECK_RC(cli.rc, SRDMA_ECERT_NAME);
	side_free(&cli);
	side_free(&srv);

	srdma__tls_ctx_destroy(st);
	srdma__tls_ctx_destroy(ct);
}

static void test_cert_failures(void)
{
	struct srdma__tls_ctx *st = mk_ctx(dir_a, "server", dir_a, true, NULL);
	struct srdma__tls_ctx *ct_other, *st_other, *ct, *t;
	struct side cli, srv;
	char d[512];

	/* client certificate from another CA */
	ct_other = mk_ctx(dir_b, "client", dir_a, false, NULL);
	hs(ct_other, st, "localhost", &cli, &srv);
	CHECK_RC(srv.rc, SRDMA_ECERT_UNKNOWN_CA);
	CHECK(contains(srv.detail, "client certificate 'client'") &&
	      contains(srv.detail, "not signed by the CA in") &&
	      contains(srv.detail, "ca.crt"));
	if (cli.rc == 0) { /* TLS 1.3: the client learns on its next read */
		CHECK_RC(client_read_rc(&cli, d, sizeof(d)),
			 SRDMA_ECERT_UNKNOWN_CA);
		CHECK(contains(d, "the server rejected our certificate"));
	}
	side_free(&cli);
	side_free(&srv);
	srdma__tls_ctx_destroy(ct_other);

	/* server certificate from another CA */
	ct = mk_ctx(dir_a, "client", dir_a, false, NULL);
	st_other = mk_ctx(dir_b, "server", dir_a, true, NULL);
	hs(ct, st_other, "localhost", &cli, &srv);
	CHECK_RC(cli.rc, SRDMA_ECERT_UNKNOWN_CA);
	CHECK(contains(cli.detail, "server certificate for 'localhost'") &&
	      contains(cli.detail, "check ca_file/certs_dir"));
	CHECK_RC(srv.rc, SRDMA_ECERT_UNKNOWN_CA);
	CHECK(contains(srv.detail, "the client rejected our certificate"));
	side_free(&cli);
	side_free(&srv);
	srdma__tls_ctx_destroy(st_other);

	/* expired client */
	CHECK_PKI(pki_issue(dir_a, "old", false, NULL, -2 * DAY, -DAY), 0);
	t = mk_ctx(dir_a, "old", dir_a, false, NULL);
	hs(t, st, "localhost", &cli, &srv);
	CHECK_RC(srv.rc, SRDMA_ECERT_EXPIRED);
	CHECK(contains(srv.detail, "'old' expired on"));
	if (cli.rc == 0)
		CHECK_RC(client_read_rc(&cli, d, sizeof(d)),
			 SRDMA_ECERT_EXPIRED);
	side_free(&cli);
	side_free(&srv);
	srdma__tls_ctx_destroy(t);

	/* not yet valid client */
	CHECK_PKI(pki_issue(dir_a, "future", false, NULL, DAY, 2 * DAY), 0);
	t = mk_ctx(dir_a, "future", dir_a, false, NULL);
	hs(t, st, "localhost", &cli, &srv);
	CHECK_RC(srv.rc, SRDMA_ECERT_NOT_YET_VALID);
	CHECK(contains(srv.detail, "not valid until"));
	if (cli.rc == 0)
		CHECK_RC(client_read_rc(&cli, d, sizeof(d)),
			 SRDMA_ECERT_NOT_YET_VALID);
	side_free(&cli);
	side_free(&srv);
	srdma__tls_ctx_destroy(t);

	/* expired / not yet valid server */
	{
		static const char *const sans[] = {"localhost", NULL};

		CHECK_PKI(
			pki_issue(dir_a, "oldsrv", true, sans, -2 * DAY, -DAY),
			0);
		t = mk_ctx(dir_a, "oldsrv", dir_a, true, NULL);
		hs(ct, t, "localhost", &cli, &srv);
		CHECK_RC(cli.rc, SRDMA_ECERT_EXPIRED);
		CHECK_RC(srv.rc, SRDMA_ECERT_EXPIRED);
		side_free(&cli);
		side_free(&srv);
		srdma__tls_ctx_destroy(t);

		CHECK_PKI(pki_issue(dir_a, "newsrv", true, sans, DAY, 2 * DAY),
			  0);
		t = mk_ctx(dir_a, "newsrv", dir_a, true, NULL);
		hs(ct, t, "localhost", &cli, &srv);
		CHECK_RC(cli.rc, SRDMA_ECERT_NOT_YET_VALID);
		side_free(&cli);
		side_free(&srv);
		srdma__tls_ctx_destroy(t);
	}

	/* a client certificate cannot act as a server (EKU clientAuth) */
	t = mk_ctx(dir_a, "alice", dir_a, true, NULL);
	hs(ct, t, "alice", &cli, &srv);
	CHECK(cli.rc != 0 && cli.rc != SRDMA_EAGAIN);
	side_free(&cli);
	side_free(&srv);
	srdma__tls_ctx_destroy(t);

	srdma__tls_ctx_destroy(ct);
	srdma__tls_ctx_destroy(st);
}

static void test_allow(void)
{
	static const char *const allow[] = {"alice", "carol", NULL};
	struct srdma__tls_ctx *st = mk_ctx(dir_a, "server", dir_a, true, allow);
	struct srdma__tls_ctx *bob =
		mk_ctx(dir_a, "client", dir_a, false, NULL);
	struct srdma__tls_ctx *alice =
		mk_ctx(dir_a, "alice", dir_a, false, NULL);
	struct side cli, srv;
	char d[512];

	hs(bob, st, "localhost", &cli, &srv);
	CHECK_RC(srv.rc, SRDMA_ENOT_ALLOWED);
	CHECK(contains(srv.detail, "client 'client' is not on the allow-list"));
	/* the client is told nothing useful: the connection just closes */
	if (cli.rc == 0) {
		CHECK_RC(client_read_rc(&cli, d, sizeof(d)), SRDMA_ECLOSED);
	}
	CHECK_RC(srdma__ctrl_handshake(srv.c), SRDMA_ESTATE);
	CHECK_RC(srdma__ctrl_send(srv.c, "x", 1), SRDMA_ESTATE);
	side_free(&cli);
	side_free(&srv);

	hs(alice, st, "localhost", &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK_RC(cli.rc, 0);
	CHECK(srv.c && !strcmp(srdma__ctrl_peer_identity(srv.c), "alice"));
	side_free(&cli);
	side_free(&srv);

	srdma__tls_ctx_destroy(st);
	srdma__tls_ctx_destroy(bob);
	srdma__tls_ctx_destroy(alice);
}

/* Our ctrl on one end of a socketpair; raw bytes written to the other. */
static int raw_bytes(bool server, const void *bytes, size_t len,
		     bool close_after, char *detail, size_t dlen)
{
	struct srdma__tls_ctx *t =
		server ? mk_ctx(dir_a, "server", dir_a, true, NULL)
		       : mk_ctx(dir_a, "client", dir_a, false, NULL);
	struct srdma__ctrl *c = NULL;
	int sv[2], rc = -1000;
	time_t end = time(NULL) + 5;

	if (!t || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		goto out;
	if (srdma__ctrl_create(t, sv[0], server ? NULL : "localhost", &c) < 0)
		goto out_close;
	if (len && write(sv[1], bytes, len) != (ssize_t)len)
		goto out_close;
	if (close_after) {
		close(sv[1]);
		sv[1] = -1;
	}
	do {
		struct pollfd p = {.fd = sv[0]};

		rc = srdma__ctrl_handshake(c);
		if (rc != SRDMA_EAGAIN)
			break;
		p.events = srdma__ctrl_want_write(c) ? POLLOUT : POLLIN;
		poll(&p, 1, 50);
	} while (time(NULL) < end);
	srdma__err_copy(detail, dlen);
	if (getenv("TEST_VERBOSE") && len < 64)
		printf("  raw bytes to %s: %d \"%s\"\n",
		       server ? "server" : "client", rc, detail);
out_close:
	srdma__ctrl_destroy(c);
	if (sv[1] >= 0)
		close(sv[1]);
out:
	srdma__tls_ctx_destroy(t);
	return rc;
}

static void test_not_tls(void)
{
	static const char http[] = "GET / HTTP/1.1\r\n\r\n";
	static const unsigned char junk[] = {0x8f, 0x01, 0x99, 0x42, 0x13,
					     0x37, 0xde, 0xad, 0xbe, 0xef,
					     0x00, 0xff, 0x10, 0x20};
	static const char ssh[] = "SSH-2.0-OpenSSH_9.2\r\n";
	static const char resp[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
	char d[512];

	CHECK_RC(raw_bytes(true, http, strlen(http), false, d, sizeof(d)),
		 SRDMA_ENOT_TLS);
	CHECK(contains(d, "HTTP"));
	CHECK_RC(raw_bytes(true, http, strlen(http), true, d, sizeof(d)),
		 SRDMA_ENOT_TLS);
	CHECK_RC(raw_bytes(true, junk, sizeof(junk), false, d, sizeof(d)),
		 SRDMA_ENOT_TLS);
	CHECK_RC(raw_bytes(true, junk, sizeof(junk), true, d, sizeof(d)),
		 SRDMA_ENOT_TLS);
	CHECK_RC(raw_bytes(true, ssh, strlen(ssh), false, d, sizeof(d)),
		 SRDMA_ENOT_TLS);
	CHECK(contains(d, "SSH-2"));
	/* a client talking to something that is not a TLS server */
	CHECK_RC(raw_bytes(false, resp, strlen(resp), false, d, sizeof(d)),
		 SRDMA_ENOT_TLS);
	CHECK(contains(d, "plain HTTP"));
	CHECK_RC(raw_bytes(false, ssh, strlen(ssh), false, d, sizeof(d)),
		 SRDMA_ENOT_TLS);

	/* Random garbage (fixed seed): not TLS, whatever the bytes. */
	{
		unsigned int seed = 12345;
		int wrong = 0;

		for (int i = 0; i < 100; i++) {
			unsigned char g[64];
			int rc;

			for (size_t k = 0; k < sizeof(g); k++)
				g[k] = (unsigned char)(rand_r(&seed) >> 7);
			if ((g[0] >= 20 && g[0] <= 24 && g[1] == 3) ||
			    ((g[0] & 0x80) && g[2] == 1))
				continue; /* looks like a TLS or SSLv2 record */
			/* (a client whose hello cannot be sent because the
			 * peer already closed sees ECLOSED: so close only
			 * towards a server) */
			rc = raw_bytes(i & 1, g, sizeof(g), (i & 3) == 3, d,
				       sizeof(d));
			if (rc != SRDMA_ENOT_TLS) {
				fprintf(stderr, "garbage %d: %d %s\n", i, rc,
					d);
				wrong++;
			}
		}
		CHECK(wrong == 0);
	}

	/* EOF before and during the handshake */
	CHECK_RC(raw_bytes(true, NULL, 0, true, d, sizeof(d)), SRDMA_ECLOSED);
	CHECK_RC(raw_bytes(true, "\x16\x03\x01", 3, true, d, sizeof(d)),
		 SRDMA_ECLOSED);
	/* a server that closes without a word before or during the
	 * handshake was busy: SRDMA_ELIMIT, which the session retries */
	CHECK_RC(raw_bytes(false, NULL, 0, true, d, sizeof(d)), SRDMA_ELIMIT);
	CHECK(contains(d, "before starting the TLS handshake") &&
	      contains(d, "busy"));
	CHECK_RC(raw_bytes(false, "\x16\x03\x03", 3, true, d, sizeof(d)),
		 SRDMA_ELIMIT);
}

/* A raw OpenSSL client (not our ctrl) against our server. */
static int raw_client(int max_version, bool with_cert, char *d, size_t dlen)
{
	struct srdma__tls_ctx *st = mk_ctx(dir_a, "server", dir_a, true, NULL);
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	struct side cli = {0}, srv = {0};
	int sv[2], rc = -1000;

	path(ca, sizeof(ca), dir_a, "ca.crt");
	path(cert, sizeof(cert), dir_a, "client.crt");
	path(key, sizeof(key), dir_a, "client.key");
	if (!st || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		goto out;
	cli.fd = sv[0];
	srv.fd = sv[1];
	cli.raw_ctx = SSL_CTX_new(TLS_client_method());
	if (!cli.raw_ctx)
		goto out_close;
	SSL_CTX_set_max_proto_version(cli.raw_ctx, max_version);
	SSL_CTX_load_verify_locations(cli.raw_ctx, ca, NULL);
	if (with_cert && (SSL_CTX_use_certificate_file(cli.raw_ctx, cert,
						       SSL_FILETYPE_PEM) != 1 ||
			  SSL_CTX_use_PrivateKey_file(cli.raw_ctx, key,
						      SSL_FILETYPE_PEM) != 1))
		goto out_close;
	cli.raw = SSL_new(cli.raw_ctx);
	if (!cli.raw)
		goto out_close;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	SSL_set_fd(cli.raw, sv[0]);
	SSL_set_connect_state(cli.raw);
	if (srdma__ctrl_create(st, sv[1], NULL, &srv.c) < 0) {
		sv[1] = -1; /* the ctrl took it (and closed it) */
		goto out_close;
	}
	drive(&cli, &srv);
	rc = srv.rc;
	snprintf(d, dlen, "%s", srv.detail);
	if (getenv("TEST_VERBOSE"))
		printf("  raw client: %d \"%s\"\n", rc, d);
	side_free(&cli);
	side_free(&srv);
	srdma__tls_ctx_destroy(st);
	return rc;

out_close:
	if (cli.raw)
		SSL_free(cli.raw);
	SSL_CTX_free(cli.raw_ctx);
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
out:
	srdma__tls_ctx_destroy(st);
	return rc;
}

/* A raw OpenSSL server limited to max_version against our client. */
static int raw_server(int max_version, char *d, size_t dlen)
{
	struct srdma__tls_ctx *ct = mk_ctx(dir_a, "client", dir_a, false, NULL);
	char cert[PATH_MAX], key[PATH_MAX];
	struct side cli = {0}, srv = {0};
	int sv[2], rc = -1000;

	path(cert, sizeof(cert), dir_a, "server.crt");
	path(key, sizeof(key), dir_a, "server.key");
	if (!ct || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		goto out;
	cli.fd = sv[0];
	srv.fd = sv[1];
	srv.raw_ctx = SSL_CTX_new(TLS_server_method());
	if (!srv.raw_ctx ||
	    !SSL_CTX_set_max_proto_version(srv.raw_ctx, max_version) ||
	    SSL_CTX_use_certificate_file(srv.raw_ctx, cert, SSL_FILETYPE_PEM) !=
		    1 ||
	    SSL_CTX_use_PrivateKey_file(srv.raw_ctx, key, SSL_FILETYPE_PEM) !=
		    1 ||
	    !(srv.raw = SSL_new(srv.raw_ctx))) {
		close(sv[0]);
		close(sv[1]);
		goto out;
	}
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	SSL_set_fd(srv.raw, sv[1]);
	SSL_set_accept_state(srv.raw);
	if (srdma__ctrl_create(ct, sv[0], "localhost", &cli.c) == 0) {
		drive(&cli, &srv);
		rc = cli.rc;
		snprintf(d, dlen, "%s", cli.detail);
		if (getenv("TEST_VERBOSE"))
			printf("  raw server: %d \"%s\"\n", rc, d);
	}
	side_free(&cli);
	side_free(&srv);
out:
	srdma__tls_ctx_destroy(ct);
	return rc;
}

static void test_raw_clients(void)
{
	char d[512];

	CHECK_RC(raw_client(TLS1_2_VERSION, true, d, sizeof(d)),
		 SRDMA_ETLS_VERSION);
	CHECK(contains(d, "older than 1.3"));
	CHECK_RC(raw_client(TLS1_3_VERSION, false, d, sizeof(d)),
		 SRDMA_ECERT_MISSING);
	CHECK(contains(d, "sent no certificate"));
	CHECK_RC(raw_client(TLS1_3_VERSION, true, d, sizeof(d)), 0);
	CHECK_RC(raw_server(TLS1_2_VERSION, d, sizeof(d)), SRDMA_ETLS_VERSION);
	CHECK_RC(raw_server(TLS1_3_VERSION, d, sizeof(d)), 0);
}

/* ---- TLS 1.3 session resumption ---- */

static struct srdma__tls_ctx *mk_ctx_off(const char *name, bool server,
					 bool no_resumption)
{
	char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
	struct srdma__tls_config cfg = {.server = server,
					.no_resumption = no_resumption};
	struct srdma__tls_ctx *t = NULL;

	snprintf(cert, sizeof(cert), "%s/%s.crt", dir_a, name);
	snprintf(key, sizeof(key), "%s/%s.key", dir_a, name);
	snprintf(ca, sizeof(ca), "%s/ca.crt", dir_a);
	cfg.cert_file = cert;
	cfg.key_file = key;
	cfg.ca_file = ca;
	if (srdma__tls_ctx_create(&cfg, &t) < 0)
		fprintf(stderr, "tls_ctx_create(%s): %s\n", name,
			srdma_error_detail());
	return t;
}

/*
 * A handshake whose client caches tickets under key (NULL: none), and
 * offers `force` instead of a cached ticket when given.
 */
static void hs_key(struct srdma__tls_ctx *ct, struct srdma__tls_ctx *st,
		   const char *peer_name, const char *key, SSL_SESSION *force,
		   struct side *cli, struct side *srv)
{
	int sv[2];

	memset(cli, 0, sizeof(*cli));
	memset(srv, 0, sizeof(*srv));
	cli->rc = srv->rc = -1000;
	if (!ct || !st || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return;
	cli->fd = sv[0];
	srv->fd = sv[1];
	if (srdma__ctrl_create_client(ct, sv[0], peer_name, key, &cli->c) < 0 ||
	    srdma__ctrl_create(st, sv[1], NULL, &srv->c) < 0) {
		fprintf(stderr, "ctrl_create: %s\n", srdma_error_detail());
		return;
	}
	if (force && SSL_set_session(srdma__ctrl_ssl(cli->c), force) != 1)
		fprintf(stderr, "SSL_set_session failed\n");
	drive(cli, srv);
	if (getenv("TEST_VERBOSE"))
		printf("  resume %s/%s: client %d %d \"%s\" / server %d %d "
		       "\"%s\" [%s]\n",
		       peer_name, key ? key : "-", cli->rc,
		       (int)srdma__ctrl_resumption(cli->c), cli->detail,
		       srv->rc, (int)srdma__ctrl_resumption(srv->c),
		       srv->detail, srdma__ctrl_resume_note(srv->c));
}

/* Server to client: the NewSessionTicket precedes it, so it has arrived. */
static bool ticket_in(struct side *cli, struct side *srv)
{
	return cli->c && srv->c &&
	       pump_send(srv->c, cli->c, (const unsigned char *)"t", 1);
}

/* One cached session, taken out of the client's cache (single use). */
static SSL_SESSION *take_ticket(struct srdma__tls_ctx *ct, const char *peer,
				const char *key)
{
	struct srdma__ctrl *c = NULL;
	SSL_SESSION *s = NULL;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return NULL;
	if (srdma__ctrl_create_client(ct, sv[0], peer, key, &c) == 0)
		s = SSL_get1_session(srdma__ctrl_ssl(c));
	srdma__ctrl_destroy(c);
	close(sv[1]);
	return s;
}

/* A copy of s whose ticket has one byte flipped at offset `at`. */
static SSL_SESSION *forge(SSL_SESSION *s, size_t at)
{
	const unsigned char *tick = NULL, *q;
	unsigned char *der, *p, *hit;
	SSL_SESSION *f = NULL;
	size_t tlen = 0;
	int len;

	SSL_SESSION_get0_ticket(s, &tick, &tlen);
	len = i2d_SSL_SESSION(s, NULL);
	if (!tick || tlen <= at || len <= 0)
		return NULL;
	der = malloc((size_t)len);
	if (!der)
		return NULL;
	p = der;
	i2d_SSL_SESSION(s, &p);
	hit = memmem(der, (size_t)len, tick, tlen);
	if (hit) {
		hit[at] ^= 0x5a;
		q = der;
		f = d2i_SSL_SESSION(NULL, &q, len);
	}
	free(der);
	return f;
}

static void test_resume_basic(void)
{
	struct srdma__tls_ctx *st = mk_ctx(dir_a, "server", dir_a, true, NULL);
	struct srdma__tls_ctx *ct = mk_ctx(dir_a, "client", dir_a, false, NULL);
	unsigned char k1[32] = {0}, k2[32] = {0}, zero[32] = {0};
	struct side cli, srv;

	/* first contact: full handshake, one ticket cached */
	hs_key(ct, st, "localhost", "h:1", NULL, &cli, &srv);
	CHECK_RC(cli.rc, 0);
	CHECK_RC(srv.rc, 0);
	CHECK(!srdma__ctrl_resumed(cli.c) && !srdma__ctrl_resumed(srv.c));
	CHECK(srdma__ctrl_resumption(cli.c) == SRDMA__RESUME_NONE);
	CHECK(srdma__ctrl_resumption(srv.c) == SRDMA__RESUME_NONE);
	CHECK(srdma__tls_ctx_cached(ct, "localhost", "h:1") == 0);
	CHECK(ticket_in(&cli, &srv));
	CHECK(srdma__tls_ctx_cached(ct, "localhost", "h:1") == 1);
	side_free(&cli);
	side_free(&srv);

	/* second: resumed, and the ticket was used up */
	hs_key(ct, st, "localhost", "h:1", NULL, &cli, &srv);
	CHECK(srdma__tls_ctx_cached(ct, "localhost", "h:1") == 0);
	CHECK_RC(cli.rc, 0);
	CHECK_RC(srv.rc, 0);
	CHECK(srdma__ctrl_resumed(cli.c) && srdma__ctrl_resumed(srv.c));
	CHECK(srdma__ctrl_resumption(cli.c) == SRDMA__RESUME_OK);
	CHECK(srdma__ctrl_resumption(srv.c) == SRDMA__RESUME_OK);
	CHECK(!strcmp(srdma__ctrl_resume_note(srv.c), ""));
	if (cli.rc == 0 && srv.rc == 0) {
		SSL *ss = srdma__ctrl_ssl(srv.c), *cs = srdma__ctrl_ssl(cli.c);

		/* identities come from the session, on both ends */
		CHECK(!strcmp(srdma__ctrl_peer_identity(srv.c), "client"));
		CHECK(!strcmp(srdma__ctrl_peer_identity(cli.c), "server"));
		CHECK(SSL_get0_peer_certificate(ss) != NULL);
		CHECK(!strncmp(srdma__ctrl_tls_version(cli.c), "TLSv1.3 ", 8));
		/* psk_dhe_ke: the resumed handshake still did (EC)DHE */
		CHECK(SSL_get_negotiated_group(ss) != 0);
		CHECK(SSL_get_negotiated_group(cs) != 0);
		CHECK((SSL_get_options(ss) & SSL_OP_ALLOW_NO_DHE_KEX) == 0);
		CHECK((SSL_get_options(cs) & SSL_OP_ALLOW_NO_DHE_KEX) == 0);
		CHECK(SSL_get_early_data_status(ss) != SSL_EARLY_DATA_ACCEPTED);
		CHECK(SSL_export_keying_material(cs, k1, sizeof(k1),
						 "srdma test", 10, NULL, 0,
						 0) == 1);
		CHECK(SSL_export_keying_material(ss, k2, sizeof(k2),
						 "srdma test", 10, NULL, 0,
						 0) == 1);
		CHECK(!memcmp(k1, k2, sizeof(k1)));
		CHECK(memcmp(k1, zero, sizeof(k1)) != 0);
		CHECK(pump_send(cli.c, srv.c, (const unsigned char *)"hello",
				5));
		/* a fresh ticket for the next time */
		CHECK(ticket_in(&cli, &srv));
		CHECK(srdma__tls_ctx_cached(ct, "localhost", "h:1") == 1);
	}
	side_free(&cli);
	side_free(&srv);

	/* another key or another server name: nothing offered, none used */
	hs_key(ct, st, "localhost", "h:2", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(srdma__ctrl_resumption(cli.c) == SRDMA__RESUME_NONE);
	CHECK(srdma__ctrl_resumption(srv.c) == SRDMA__RESUME_NONE);
	side_free(&cli);
	side_free(&srv);
	hs_key(ct, st, "127.0.0.1", "h:1", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(srdma__ctrl_resumption(srv.c) == SRDMA__RESUME_NONE);
	CHECK(srdma__tls_ctx_cached(ct, "localhost", "h:1") == 1);
	side_free(&cli);
	side_free(&srv);
	/* the old call never resumes */
	hs(ct, st, "localhost", &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(srdma__ctrl_resumption(srv.c) == SRDMA__RESUME_NONE);
	side_free(&cli);
	side_free(&srv);

	/* and the third connection resumes from the second's ticket */
	hs_key(ct, st, "localhost", "h:1", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(srdma__ctrl_resumed(srv.c) && srdma__ctrl_resumed(cli.c));
	side_free(&cli);
	side_free(&srv);

	srdma__tls_ctx_destroy(st);
	srdma__tls_ctx_destroy(ct);
}

static void test_resume_off(void)
{
	struct srdma__tls_ctx *st = mk_ctx(dir_a, "server", dir_a, true, NULL);
	struct srdma__tls_ctx *ct = mk_ctx(dir_a, "client", dir_a, false, NULL);
	struct srdma__tls_ctx *st_off = mk_ctx_off("server", true, true);
	struct srdma__tls_ctx *ct_off = mk_ctx_off("client", false, true);
	struct side cli, srv;

	/* a server with resumption off sends no ticket */
	hs_key(ct, st_off, "localhost", "off", NULL, &cli, &srv);
	CHECK_RC(cli.rc, 0);
	CHECK_RC(srv.rc, 0);
	CHECK(ticket_in(&cli, &srv));
	CHECK(srdma__tls_ctx_cached(ct, "localhost", "off") == 0);
	side_free(&cli);
	side_free(&srv);
	hs_key(ct, st_off, "localhost", "off", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(!srdma__ctrl_resumed(srv.c) && !srdma__ctrl_resumed(cli.c));
	side_free(&cli);
	side_free(&srv);

	/* nor does it accept one from a server with resumption on */
	hs_key(ct, st, "localhost", "off", NULL, &cli, &srv);
	CHECK(ticket_in(&cli, &srv));
	CHECK(srdma__tls_ctx_cached(ct, "localhost", "off") == 1);
	side_free(&cli);
	side_free(&srv);
	hs_key(ct, st_off, "localhost", "off", NULL, &cli, &srv);
	CHECK_RC(cli.rc, 0);
	CHECK_RC(srv.rc, 0);
	CHECK(!srdma__ctrl_resumed(srv.c) && !srdma__ctrl_resumed(cli.c));
	CHECK(srdma__ctrl_resumption(cli.c) == SRDMA__RESUME_REFUSED);
	CHECK(contains(srdma__ctrl_resume_note(cli.c), "did not accept"));
	side_free(&cli);
	side_free(&srv);

	/* a client with resumption off keeps nothing */
	hs_key(ct_off, st, "localhost", "x", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(ticket_in(&cli, &srv));
	CHECK(srdma__tls_ctx_cached(ct_off, "localhost", "x") == 0);
	side_free(&cli);
	side_free(&srv);
	hs_key(ct_off, st, "localhost", "x", NULL, &cli, &srv);
	CHECK(srdma__ctrl_resumption(srv.c) == SRDMA__RESUME_NONE);
	side_free(&cli);
	side_free(&srv);

	/* hooks need a server with resumption on */
	CHECK_RC(srdma__tls_ctx_rotate_ticket_keys(ct), SRDMA_EINVAL);
	CHECK_RC(srdma__tls_ctx_rotate_ticket_keys(st_off), SRDMA_EINVAL);
	CHECK_RC(srdma__tls_ctx_copy_ticket_keys(st_off, st), SRDMA_EINVAL);
	CHECK_RC(srdma__tls_ctx_copy_ticket_keys(ct, st), SRDMA_EINVAL);

	srdma__tls_ctx_destroy(st);
	srdma__tls_ctx_destroy(ct);
	srdma__tls_ctx_destroy(st_off);
	srdma__tls_ctx_destroy(ct_off);
}

static void test_resume_allow(void)
{
	static const char *const both[] = {"client", "alice", NULL};
	static const char *const only_alice[] = {"alice", NULL};
	static const char *const only_client[] = {"client", NULL};
	struct srdma__tls_ctx *st1 = mk_ctx(dir_a, "server", dir_a, true, both);
	struct srdma__tls_ctx *st2 =
		mk_ctx(dir_a, "server", dir_a, true, only_alice);
	struct srdma__tls_ctx *st3 =
		mk_ctx(dir_a, "server", dir_a, true, only_client);
	struct srdma__tls_ctx *ct = mk_ctx(dir_a, "client", dir_a, false, NULL);
	struct side cli, srv;
	char d[512];

	CHECK_RC(srdma__tls_ctx_copy_ticket_keys(st2, st1), 0);
	CHECK_RC(srdma__tls_ctx_copy_ticket_keys(st3, st1), 0);

	/* a ticket issued while 'client' was allowed ... */
	hs_key(ct, st1, "localhost", "a", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(ticket_in(&cli, &srv));
	CHECK(srdma__tls_ctx_cached(ct, "localhost", "a") == 1);
	side_free(&cli);
	side_free(&srv);

	/* ... opens on a server (same ticket keys) that no longer allows it:
	 * the session resumes, and the allow-list still refuses it */
	hs_key(ct, st2, "localhost", "a", NULL, &cli, &srv);
	CHECK_RC(srv.rc, SRDMA_ENOT_ALLOWED);
	CHECK(srdma__ctrl_resumed(srv.c));
	CHECK(contains(srv.detail,
		       "client 'client' is not on the allow-list") &&
	      contains(srv.detail, "(resumed session)"));
	if (cli.rc == 0)
		CHECK_RC(client_read_rc(&cli, d, sizeof(d)), SRDMA_ECLOSED);
	/* and the refused client was given no new ticket */
	CHECK(srdma__tls_ctx_cached(ct, "localhost", "a") == 0);
	side_free(&cli);
	side_free(&srv);

	/* a refused full handshake gets no ticket either */
	hs_key(ct, st2, "localhost", "b", NULL, &cli, &srv);
	CHECK_RC(srv.rc, SRDMA_ENOT_ALLOWED);
	CHECK(!srdma__ctrl_resumed(srv.c));
	if (cli.rc == 0)
		CHECK_RC(client_read_rc(&cli, d, sizeof(d)), SRDMA_ECLOSED);
	CHECK(srdma__tls_ctx_cached(ct, "localhost", "b") == 0);
	side_free(&cli);
	side_free(&srv);

	/* shared keys, allowed there: resumed with the ticket's identity */
	hs_key(ct, st1, "localhost", "a", NULL, &cli, &srv);
	CHECK(ticket_in(&cli, &srv));
	side_free(&cli);
	side_free(&srv);
	hs_key(ct, st3, "localhost", "a", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(srdma__ctrl_resumed(srv.c));
	CHECK(srv.c && !strcmp(srdma__ctrl_peer_identity(srv.c), "client"));
	side_free(&cli);
	side_free(&srv);

	srdma__tls_ctx_destroy(st1);
	srdma__tls_ctx_destroy(st2);
	srdma__tls_ctx_destroy(st3);
	srdma__tls_ctx_destroy(ct);
}

static void test_resume_rotation(void)
{
	struct srdma__tls_ctx *st = mk_ctx(dir_a, "server", dir_a, true, NULL);
	struct srdma__tls_ctx *other =
		mk_ctx(dir_a, "server", dir_a, true, NULL);
	struct srdma__tls_ctx *ct = mk_ctx(dir_a, "client", dir_a, false, NULL);
	struct side cli, srv;

	hs_key(ct, st, "localhost", "r", NULL, &cli, &srv);
	CHECK(ticket_in(&cli, &srv));
	side_free(&cli);
	side_free(&srv);

	/* one rotation: the previous key still opens the ticket */
	CHECK_RC(srdma__tls_ctx_rotate_ticket_keys(st), 0);
	hs_key(ct, st, "localhost", "r", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(srdma__ctrl_resumed(srv.c) && srdma__ctrl_resumed(cli.c));
	CHECK(ticket_in(&cli, &srv)); /* sealed under the new key */
	side_free(&cli);
	side_free(&srv);

	/* two more: that key is gone, a full handshake follows */
	CHECK_RC(srdma__tls_ctx_rotate_ticket_keys(st), 0);
	CHECK_RC(srdma__tls_ctx_rotate_ticket_keys(st), 0);
	hs_key(ct, st, "localhost", "r", NULL, &cli, &srv);
	CHECK_RC(cli.rc, 0);
	CHECK_RC(srv.rc, 0);
	CHECK(!srdma__ctrl_resumed(srv.c) && !srdma__ctrl_resumed(cli.c));
	CHECK(srdma__ctrl_resumption(cli.c) == SRDMA__RESUME_REFUSED);
	CHECK(srdma__ctrl_resumption(srv.c) == SRDMA__RESUME_REFUSED);
	CHECK(contains(srdma__ctrl_resume_note(srv.c),
		       "a key this server does not hold"));
	CHECK(srv.c && !strcmp(srdma__ctrl_peer_identity(srv.c), "client"));
	CHECK(ticket_in(&cli, &srv));
	side_free(&cli);
	side_free(&srv);

	/* a ticket from another server context: full handshake */
	hs_key(ct, other, "localhost", "r", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(srdma__ctrl_resumption(srv.c) == SRDMA__RESUME_REFUSED);
	CHECK(!srdma__ctrl_resumed(cli.c));
	side_free(&cli);
	side_free(&srv);

	srdma__tls_ctx_destroy(st);
	srdma__tls_ctx_destroy(other);
	srdma__tls_ctx_destroy(ct);
}

static void test_resume_forged_expired(void)
{
	struct srdma__tls_ctx *st = mk_ctx(dir_a, "server", dir_a, true, NULL);
	struct srdma__tls_ctx *ct = mk_ctx(dir_a, "client", dir_a, false, NULL);
	SSL_SESSION *s = NULL, *f;
	struct side cli, srv;
	size_t tlen = 0;
	const unsigned char *tick = NULL;

	hs_key(ct, st, "localhost", "f", NULL, &cli, &srv);
	CHECK(ticket_in(&cli, &srv));
	side_free(&cli);
	side_free(&srv);
	s = take_ticket(ct, "localhost", "f");
	CHECK(s != NULL);
	if (s)
		SSL_SESSION_get0_ticket(s, &tick, &tlen);
	CHECK(tlen > 64);

	/* a byte flipped in the key name, the ciphertext, the MAC */
	for (int i = 0; s && i < 3; i++) {
		size_t at = i == 0 ? 3 : i == 1 ? tlen / 2 : tlen - 1;

		f = forge(s, at);
		CHECK(f != NULL);
		if (!f)
			continue;
		hs_key(ct, st, "localhost", NULL, f, &cli, &srv);
		CHECK_RC(cli.rc, 0);
		CHECK_RC(srv.rc, 0);
		CHECK(!srdma__ctrl_resumed(srv.c) &&
		      !srdma__ctrl_resumed(cli.c));
		CHECK(srdma__ctrl_resumption(cli.c) == SRDMA__RESUME_REFUSED);
		CHECK(srdma__ctrl_resumption(srv.c) == SRDMA__RESUME_REFUSED);
		CHECK(contains(srdma__ctrl_resume_note(srv.c), "forged"));
		side_free(&cli);
		side_free(&srv);
		SSL_SESSION_free(f);
	}

	/* the server's clock says the ticket has expired */
	srdma__tls_ctx_test_clock(st, 3 * 3600);
	hs_key(ct, st, "localhost", NULL, s, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(!srdma__ctrl_resumed(srv.c));
	CHECK(srdma__ctrl_resumption(srv.c) == SRDMA__RESUME_REFUSED);
	CHECK(contains(srdma__ctrl_resume_note(srv.c), "expired"));
	side_free(&cli);
	side_free(&srv);
	srdma__tls_ctx_test_clock(st, 0);

	/* the untouched ticket was good */
	hs_key(ct, st, "localhost", NULL, s, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(srdma__ctrl_resumed(srv.c) && srdma__ctrl_resumed(cli.c));
	side_free(&cli);
	side_free(&srv);
	SSL_SESSION_free(s);

	/* the client's clock says it has expired: OpenSSL does not send it */
	hs_key(ct, st, "localhost", "f", NULL, &cli, &srv);
	CHECK(ticket_in(&cli, &srv));
	side_free(&cli);
	side_free(&srv);
	s = take_ticket(ct, "localhost", "f");
	CHECK(s != NULL);
	if (s) {
		SSL_SESSION_set_time(s, time(NULL) - 3 * 3600);
		hs_key(ct, st, "localhost", NULL, s, &cli, &srv);
		CHECK_RC(srv.rc, 0);
		CHECK(!srdma__ctrl_resumed(cli.c));
		CHECK(srdma__ctrl_resumption(srv.c) == SRDMA__RESUME_NONE);
		side_free(&cli);
		side_free(&srv);
		SSL_SESSION_free(s);
	}

	srdma__tls_ctx_destroy(st);
	srdma__tls_ctx_destroy(ct);
}

/* A raw OpenSSL TLS 1.3 server (no client certificates). */
static SSL_CTX *raw_server_ctx(bool stateful)
{
	char cert[PATH_MAX], key[PATH_MAX];
	SSL_CTX *x = SSL_CTX_new(TLS_server_method());

	path(cert, sizeof(cert), dir_a, "server.crt");
	path(key, sizeof(key), dir_a, "server.key");
	if (!x || !SSL_CTX_set_min_proto_version(x, TLS1_3_VERSION) ||
	    SSL_CTX_use_certificate_file(x, cert, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(x, key, SSL_FILETYPE_PEM) != 1) {
		SSL_CTX_free(x);
		return NULL;
	}
	if (stateful)
		SSL_CTX_set_options(x, SSL_OP_NO_TICKET);
	return x;
}

/*
 * Offers a copy of s: libssl on the client marks a session it used not
 * resumable when the SSL is freed without close_notify, and here the same
 * ticket must reach the server again, as an attacker's replay would.
 */
static void hs_copy(struct srdma__tls_ctx *ct, struct srdma__tls_ctx *st,
		    SSL_SESSION *s, struct side *cli, struct side *srv)
{
	SSL_SESSION *d = SSL_SESSION_dup(s);

	hs_key(ct, st, "localhost", NULL, d, cli, srv);
	SSL_SESSION_free(d);
}

/* Our client against a raw server; returns SSL_session_reused there. */
static int raw_resume(SSL_CTX *x, struct srdma__tls_ctx *ct, const char *key,
		      SSL_SESSION *force)
{
	struct side cli = {0}, srv = {0};
	int sv[2], reused = -1;
	time_t end = time(NULL) + 3;

	if (!x || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -1;
	cli.fd = sv[0];
	srv.fd = sv[1];
	srv.raw = SSL_new(x);
	if (!srv.raw || srdma__ctrl_create_client(ct, sv[0], "localhost", key,
						  &cli.c) < 0) {
		side_free(&cli);
		side_free(&srv);
		return -1;
	}
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	SSL_set_fd(srv.raw, sv[1]);
	SSL_set_accept_state(srv.raw);
	if (force) {
		SSL_SESSION *d = SSL_SESSION_dup(force);

		SSL_set_session(srdma__ctrl_ssl(cli.c), d);
		SSL_SESSION_free(d);
	}
	drive(&cli, &srv);
	if (cli.rc == 0 && srv.rc == 0)
		reused = SSL_session_reused(srv.raw);
	/* read until the ticket is in (the server wrote it already) */
	while (key && reused >= 0 &&
	       srdma__tls_ctx_cached(ct, "localhost", key) == 0 &&
	       time(NULL) < end) {
		char b[8];
		struct pollfd p = {.fd = sv[0], .events = POLLIN};

		if (srdma__ctrl_recv(cli.c, b, sizeof(b)) != SRDMA_EAGAIN)
			break;
		poll(&p, 1, 20);
	}
	/* clean closes: libssl drops sessions of unclean ones from its cache */
	srdma__ctrl_shutdown(cli.c);
	if (SSL_shutdown(srv.raw) < 0)
		ERR_clear_error();
	side_free(&cli);
	side_free(&srv);
	return reused;
}

static void test_resume_replay(void)
{
	struct srdma__tls_ctx *st = mk_ctx(dir_a, "server", dir_a, true, NULL);
	struct srdma__tls_ctx *ct = mk_ctx(dir_a, "client", dir_a, false, NULL);
	struct side cli, srv;
	SSL_SESSION *s;

	hs_key(ct, st, "localhost", "p", NULL, &cli, &srv);
	CHECK(ticket_in(&cli, &srv));
	side_free(&cli);
	side_free(&srv);
	s = take_ticket(ct, "localhost", "p");
	CHECK(s != NULL);

	/* first use resumes; the same ticket again gets a full handshake */
	hs_copy(ct, st, s, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(srdma__ctrl_resumed(srv.c) && srdma__ctrl_resumed(cli.c));
	side_free(&cli);
	side_free(&srv);
	for (int i = 0; i < 2; i++) {
		hs_copy(ct, st, s, &cli, &srv);
		CHECK_RC(cli.rc, 0);
		CHECK_RC(srv.rc, 0);
		CHECK(!srdma__ctrl_resumed(srv.c) &&
		      !srdma__ctrl_resumed(cli.c));
		CHECK(srdma__ctrl_resumption(srv.c) == SRDMA__RESUME_REFUSED);
		CHECK(contains(srdma__ctrl_resume_note(srv.c),
			       "already used (replayed)"));
		CHECK(srdma__ctrl_resumption(cli.c) == SRDMA__RESUME_REFUSED);
		side_free(&cli);
		side_free(&srv);
	}
	SSL_SESSION_free(s);

	/*
	 * What OpenSSL 3.0 does by itself, without our replay filter: a
	 * stateless ticket opens any number of times; a stateful one
	 * (SSL_OP_NO_TICKET, server cache) too, unless early data is on.
	 */
	for (int stateful = 0; stateful < 2; stateful++) {
		SSL_CTX *x = raw_server_ctx(stateful);
		int first, again, third;

		CHECK(raw_resume(x, ct, "raw", NULL) == 0);
		s = take_ticket(ct, "localhost", "raw");
		CHECK(s != NULL);
		first = raw_resume(x, ct, NULL, s);
		again = raw_resume(x, ct, NULL, s);
		third = raw_resume(x, ct, NULL, s);
		printf("  OpenSSL %s alone, one %s ticket used 3 times: "
		       "resumed %d, %d, %d\n",
		       OpenSSL_version(OPENSSL_VERSION),
		       stateful ? "stateful" : "stateless", first, again,
		       third);
		CHECK(first == 1);
		CHECK(again == 1 && third == 1);
		SSL_SESSION_free(s);
		SSL_CTX_free(x);
	}

	srdma__tls_ctx_destroy(st);
	srdma__tls_ctx_destroy(ct);
}

static double elapsed_us(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e6 +
	       (double)(b->tv_nsec - a->tv_nsec) / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Handshake CPU time (both ends, one process), full versus resumed. */
static void test_resume_timing(void)
{
	enum { N = 200 };
	struct srdma__tls_ctx *st = mk_ctx(dir_a, "server", dir_a, true, NULL);
	struct srdma__tls_ctx *ct = mk_ctx(dir_a, "client", dir_a, false, NULL);
	static double full_cpu[N], full_wall[N], res_cpu[N], res_wall[N];
	int n_resumed = 0, n_ok = 0;
	double fc, fw, rc, rw;
	struct side cli, srv;

	for (int round = 0; round < 2; round++) {
		bool resume = round == 1;

		if (resume) { /* the first ticket */
			hs_key(ct, st, "localhost", "t", NULL, &cli, &srv);
			CHECK(ticket_in(&cli, &srv));
			side_free(&cli);
			side_free(&srv);
		}
		for (int i = 0; i < N; i++) {
			struct timespec c0, c1, w0, w1;

			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
			clock_gettime(CLOCK_MONOTONIC, &w0);
			hs_key(ct, st, "localhost", resume ? "t" : NULL, NULL,
			       &cli, &srv);
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
			clock_gettime(CLOCK_MONOTONIC, &w1);
			(resume ? res_cpu : full_cpu)[i] = elapsed_us(&c0, &c1);
			(resume ? res_wall : full_wall)[i] =
				elapsed_us(&w0, &w1);
			n_ok += cli.rc == 0 && srv.rc == 0;
			n_resumed += srdma__ctrl_resumed(srv.c);
			/* the next ticket, outside the measurement */
			if (resume && !ticket_in(&cli, &srv))
				CHECK(!"ticket after a resumed handshake");
			side_free(&cli);
			side_free(&srv);
		}
	}
	CHECK(n_ok == 2 * N);
	CHECK(n_resumed == N);
	fc = median(full_cpu, N);
	fw = median(full_wall, N);
	rc = median(res_cpu, N);
	rw = median(res_wall, N);
	printf("  handshake, both ends in one process, median of %d: full "
	       "%.0f us CPU (%.0f us wall), resumed %.0f us CPU (%.0f us "
	       "wall): %.2fx less CPU\n",
	       N, fc, fw, rc, rw, rc > 0 ? fc / rc : 0.0);
	CHECK(rc < fc);

	srdma__tls_ctx_destroy(st);
	srdma__tls_ctx_destroy(ct);
}

/*
 * Issue 14: a session resumed after its client certificate expired. Two
 * layers refuse it, each tested on its own:
 *   (a) the ticket callback: the server's clock says the certificate in
 *       the ticket has expired (the real clock, which handshake_done
 *       uses, does not): no resumption, and the full handshake that
 *       follows at the same clock refuses the certificate;
 *   (b) handshake_done: the server's ticket clock is an hour behind, so
 *       the ticket callback lets the session through, but by the real
 *       clock the certificate expired ten minutes ago: refused.
 */
static void test_resume_cert_expiry(void)
{
	struct srdma__tls_ctx *st = mk_ctx(dir_a, "server", dir_a, true, NULL);
	struct srdma__tls_ctx *ct = NULL;
	struct side cli, srv;
	char d[512];

	/* (a) valid for another hour; the server's clock moves 2 h on */
	CHECK_RC(pki_issue(dir_a, "soon", false, NULL, -DAY, 3600), 0);
	ct = mk_ctx(dir_a, "soon", dir_a, false, NULL);
	hs_key(ct, st, "localhost", "e", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(ticket_in(&cli, &srv));
	side_free(&cli);
	side_free(&srv);
	srdma__tls_ctx_test_clock(st, 2 * 3600);
	hs_key(ct, st, "localhost", "e", NULL, &cli, &srv);
	CHECK(srv.c && !srdma__ctrl_resumed(srv.c));
	CHECK(contains(srdma__ctrl_resume_note(srv.c),
		       "has expired since it was issued"));
	CHECK_RC(srv.rc, SRDMA_ECERT_EXPIRED);
	CHECK(contains(srv.detail, "'soon' expired on"));
	side_free(&cli);
	side_free(&srv);
	srdma__tls_ctx_test_clock(st, 0);
	srdma__tls_ctx_destroy(ct);

	/* (b) expired 10 min ago by the real clock; the server verifies and
	 * checks tickets an hour in the past (a PKI whose CA and server
	 * certificate were valid then) */
	srdma__tls_ctx_destroy(st);
	{
		struct pki_opts o = {.dir = dir_c, .not_before_offset_s = -DAY};

		CHECK_RC(pki_write(&o), 0);
	}
	CHECK_RC(pki_issue(dir_c, "gone", false, NULL, -DAY, -600), 0);
	st = mk_ctx(dir_c, "server", dir_c, true, NULL);
	ct = mk_ctx(dir_c, "gone", dir_c, false, NULL);
	srdma__tls_ctx_test_clock(st, -3600);
	hs_key(ct, st, "localhost", "g", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0); /* an hour ago it was valid */
	CHECK(ticket_in(&cli, &srv));
	side_free(&cli);
	side_free(&srv);
	hs_key(ct, st, "localhost", "g", NULL, &cli, &srv);
	CHECK(srv.c && srdma__ctrl_resumed(srv.c));
	CHECK_RC(srv.rc, SRDMA_ECERT_EXPIRED);
	CHECK(contains(srv.detail,
		       "the resumed session's client certificate 'gone' "
		       "expired on"));
	if (cli.rc == 0)
		CHECK_RC(client_read_rc(&cli, d, sizeof(d)), SRDMA_ECLOSED);
	side_free(&cli);
	side_free(&srv);
	srdma__tls_ctx_test_clock(st, 0);
	srdma__tls_ctx_destroy(ct);
	srdma__tls_ctx_destroy(st);
}

/* A server context from dir_a with a CRL file (and CA file) given. */
static struct srdma__tls_ctx *mk_crl_ctx(const char *cert_name, const char *ca,
					 const char *crl)
{
	char cert[PATH_MAX], key[PATH_MAX];
	struct srdma__tls_config cfg = {
		.server = true, .ca_file = ca, .crl_file = crl};
	struct srdma__tls_ctx *t = NULL;

	snprintf(cert, sizeof(cert), "%s/%s.crt", dir_a, cert_name);
	snprintf(key, sizeof(key), "%s/%s.key", dir_a, cert_name);
	cfg.cert_file = cert;
	cfg.key_file = key;
	if (srdma__tls_ctx_create(&cfg, &t) < 0 && getenv("TEST_VERBOSE"))
		printf("  crl ctx: %s\n", srdma_error_detail());
	return t;
}

/* A reload of old with another certificate, CA, CRL or allow-list. */
static int reload(struct srdma__tls_ctx *old, const char *cert_name,
		  const char *ca, const char *crl, const char *const *allow,
		  struct srdma__tls_ctx **out)
{
	char cert[PATH_MAX], key[PATH_MAX];
	struct srdma__tls_config cfg = {
		.server = true, .ca_file = ca, .crl_file = crl, .allow = allow};

	snprintf(cert, sizeof(cert), "%s/%s.crt", dir_a, cert_name);
	snprintf(key, sizeof(key), "%s/%s.key", dir_a, cert_name);
	cfg.cert_file = cert;
	cfg.key_file = key;
	return srdma__tls_ctx_reload(old, &cfg, out);
}

static void concat(const char *out, const char *a, const char *b)
{
	char cmd[3 * PATH_MAX];

	snprintf(cmd, sizeof(cmd), "cat '%s' '%s' >'%s'", a, b, out);
	CHECK(system(cmd) == 0);
}

/*
 * Revocation: the CRL file is checked at load (every way it can be
 * unusable is a clear configuration error), a revoked client is refused in
 * a full handshake with a sentence that says so (and the client hears it
 * as such), and a ticket issued before the revocation does not resume.
 */
static void test_crl(void)
{
	char ca[PATH_MAX], crl[PATH_MAX], both[PATH_MAX], bad[PATH_MAX], d[512];
	static const char *const rvk[] = {"rvk", NULL};
	struct srdma__tls_ctx *st, *st2 = NULL, *ct, *ok_ct;
	struct side cli, srv;
	FILE *f;

	path(ca, sizeof(ca), dir_a, "ca.crt");
	path(crl, sizeof(crl), base, "a.crl");
	path(both, sizeof(both), base, "both.crt");
	path(bad, sizeof(bad), base, "bad.crl");
	CHECK_RC(pki_issue(dir_a, "rvk", false, NULL, -DAY, 0), 0);

	/* unusable CRL files */
	path(d, sizeof(d), base, "missing.crl");
	CHECK(mk_crl_ctx("server", ca, d) == NULL);
	CHECK(contains(srdma_error_detail(), "missing.crl"));
	f = fopen(bad, "w");
	CHECK(f && fputs("not a CRL\n", f) >= 0);
	if (f)
		fclose(f);
	CHECK(mk_crl_ctx("server", ca, bad) == NULL);
	CHECK(contains(srdma_error_detail(), "no CRL in"));
	CHECK_RC(pki_crl(dir_a, crl, NULL, -2 * DAY, -60), 0);
	CHECK(mk_crl_ctx("server", ca, crl) == NULL);
	CHECK(contains(srdma_error_detail(), "expired on"));
	CHECK_RC(pki_crl(dir_a, crl, NULL, 3600, DAY), 0);
	CHECK(mk_crl_ctx("server", ca, crl) == NULL);
	CHECK(contains(srdma_error_detail(), "is not valid until"));
	CHECK_RC(pki_crl(dir_b, crl, NULL, -60, DAY), 0);
	CHECK(mk_crl_ctx("server", ca, crl) == NULL);
	CHECK(contains(srdma_error_detail(), "is not signed by a CA in"));
	path(d, sizeof(d), dir_b, "ca.crt");
	concat(both, ca, d);
	CHECK_RC(pki_crl(dir_a, crl, NULL, -60, DAY), 0);
	CHECK(mk_crl_ctx("server", both, crl) == NULL);
	CHECK(contains(srdma_error_detail(), "has no CRL for the CA"));

	/* an empty CRL: everyone is served, and a ticket issued */
	st = mk_crl_ctx("server", ca, crl);
	CHECK(st != NULL);
	ct = mk_ctx(dir_a, "rvk", dir_a, false, NULL);
	ok_ct = mk_ctx(dir_a, "client", dir_a, false, NULL);
	hs_key(ct, st, "localhost", "r", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(ticket_in(&cli, &srv));
	side_free(&cli);
	side_free(&srv);

	/* rvk is revoked; the server reloads the CRL */
	CHECK_RC(pki_crl(dir_a, crl, rvk, -60, DAY), 0);
	CHECK_RC(reload(st, "server", ca, crl, NULL, &st2), 0);
	CHECK(st2 != NULL);
	/* the ticket issued before the revocation does not resume, and the
	 * full handshake that follows refuses the certificate */
	hs_key(ct, st2, "localhost", "r", NULL, &cli, &srv);
	CHECK(srv.c && !srdma__ctrl_resumed(srv.c));
	CHECK(contains(srdma__ctrl_resume_note(srv.c), "revoked since"));
	CHECK_RC(srv.rc, SRDMA_ECERT_REVOKED);
	CHECK(contains(srv.detail,
		       "client certificate 'rvk' has been revoked"));
	if (cli.rc == 0)
		CHECK_RC(client_read_rc(&cli, d, sizeof(d)),
			 SRDMA_ECERT_REVOKED);
	else
		CHECK_RC(cli.rc, SRDMA_ECERT_REVOKED);
	CHECK(contains(cli.rc == 0 ? d : cli.detail, "certificate revoked"));
	side_free(&cli);
	side_free(&srv);
	/* and without a ticket, the same */
	hs(ct, st2, "localhost", &cli, &srv);
	CHECK_RC(srv.rc, SRDMA_ECERT_REVOKED);
	side_free(&cli);
	side_free(&srv);
	/* the others go on */
	hs(ok_ct, st2, "localhost", &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK_RC(cli.rc, 0);
	side_free(&cli);
	side_free(&srv);
	/* the old context (before the reload) did not know */
	hs(ct, st, "localhost", &cli, &srv);
	CHECK_RC(srv.rc, 0);
	side_free(&cli);
	side_free(&srv);

	srdma__tls_ctx_destroy(ok_ct);
	srdma__tls_ctx_destroy(ct);
	srdma__tls_ctx_destroy(st2);
	srdma__tls_ctx_destroy(st);
}

/*
 * Reload: a new context for new handshakes that keeps the ticket key ring
 * and replay filter. A ticket issued before a reload that only renewed our
 * certificate still resumes; one issued before a reload that changed the
 * CAs we trust does not; an allow-list entry the reload removed is refused
 * on resumption; a reload that fails leaves the old context as it was; a
 * connection made before the reload outlives the old context's creator.
 */
static void test_reload(void)
{
	static const char *const srv_sans[] = {"localhost", NULL};
	static const char *const only_alice[] = {"alice", NULL};
	char ca[PATH_MAX], both[PATH_MAX], other[PATH_MAX];
	struct srdma__tls_ctx *st = mk_ctx(dir_a, "server", dir_a, true, NULL);
	struct srdma__tls_ctx *ct = mk_ctx(dir_a, "client", dir_a, false, NULL);
	struct srdma__tls_ctx *st2 = NULL, *st3 = NULL, *st4 = NULL,
			      *bad = NULL;
	struct side cli, srv, kept_cli, kept_srv;

	path(ca, sizeof(ca), dir_a, "ca.crt");
	path(both, sizeof(both), base, "both.crt");
	path(other, sizeof(other), dir_b, "ca.crt");
	concat(both, ca, other);
	CHECK_RC(pki_issue(dir_a, "renewed", true, srv_sans, -60, 0), 0);

	/* a connection made before the reloads, kept open throughout */
	hs_key(ct, st, "localhost", "k", NULL, &kept_cli, &kept_srv);
	CHECK_RC(kept_srv.rc, 0);
	/* a ticket for each case below */
	for (int i = 0; i < 3; i++) {
		char key[8];

		snprintf(key, sizeof(key), "t%d", i);
		hs_key(ct, st, "localhost", key, NULL, &cli, &srv);
		CHECK(ticket_in(&cli, &srv));
		CHECK(srdma__tls_ctx_cached(ct, "localhost", key) == 1);
		side_free(&cli);
		side_free(&srv);
	}

	/* a reload that fails: nothing changes */
	CHECK_RC(reload(st, "missing", ca, NULL, NULL, &bad), SRDMA_ECONFIG);
	CHECK(bad == NULL);

	/* renewed server certificate, same CA: the ticket resumes, and a
	 * full handshake shows the new certificate */
	CHECK_RC(reload(st, "renewed", ca, NULL, NULL, &st2), 0);
	hs_key(ct, st2, "localhost", "t0", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(srv.c && srdma__ctrl_resumed(srv.c));
	side_free(&cli);
	side_free(&srv);
	hs(ct, st2, "localhost", &cli, &srv);
	CHECK_RC(cli.rc, 0);
	CHECK(cli.c && !strcmp(srdma__ctrl_peer_identity(cli.c), "renewed"));
	side_free(&cli);
	side_free(&srv);

	/* another CA set: the ticket falls back to a full handshake */
	CHECK_RC(reload(st2, "renewed", both, NULL, NULL, &st3), 0);
	hs_key(ct, st3, "localhost", "t1", NULL, &cli, &srv);
	CHECK_RC(srv.rc, 0);
	CHECK(srv.c && !srdma__ctrl_resumed(srv.c));
	CHECK(srdma__ctrl_resumption(srv.c) == SRDMA__RESUME_REFUSED);
	CHECK(contains(srdma__ctrl_resume_note(srv.c), "no longer trusts"));
	side_free(&cli);
	side_free(&srv);

	/* an allow-list that no longer has 'client': refused on resumption */
	CHECK_RC(reload(st, "server", ca, NULL, only_alice, &st4), 0);
	hs_key(ct, st4, "localhost", "t2", NULL, &cli, &srv);
	CHECK(srv.c && srdma__ctrl_resumed(srv.c));
	CHECK_RC(srv.rc, SRDMA_ENOT_ALLOWED);
	side_free(&cli);
	side_free(&srv);

	/* the old context's creator lets go; its connection goes on */
	srdma__tls_ctx_destroy(st);
	st = NULL;
	CHECK(pump_send(kept_cli.c, kept_srv.c, (const unsigned char *)"x", 1));
	CHECK(pump_send(kept_srv.c, kept_cli.c, (const unsigned char *)"y", 1));
	side_free(&kept_cli);
	side_free(&kept_srv);

	srdma__tls_ctx_destroy(st2);
	srdma__tls_ctx_destroy(st3);
	srdma__tls_ctx_destroy(st4);
	srdma__tls_ctx_destroy(ct);
}

static bool mk_dirs(void)
{
	const char *root = getenv("SRDMA_TEST_TMP");

	if (!root || !root[0])
		root = "/tmp";
	mkdir(root, 0700);
	snprintf(base, sizeof(base), "%s/test_ctrl.XXXXXX", root);
	if (!mkdtemp(base)) {
		fprintf(stderr, "mkdtemp %s: %s\n", base, strerror(errno));
		return false;
	}
	snprintf(dir_a, sizeof(dir_a), "%s/a", base);
	snprintf(dir_b, sizeof(dir_b), "%s/b/", base); /* trailing slash ok */
	snprintf(dir_c, sizeof(dir_c), "%s/c", base);
	return true;
}

int main(void)
{
	if (!mk_dirs()) {
		CHECK(!"temp dir");
		TEST_DONE();
	}
	test_pki();
	test_config_errors();
	test_good();
	test_cert_failures();
	test_allow();
	test_not_tls();
	test_raw_clients();
	test_resume_basic();
	test_resume_off();
	test_resume_allow();
	test_resume_rotation();
	test_resume_forged_expired();
	test_resume_replay();
	test_resume_cert_expiry();
	test_crl();
	test_reload();
	test_resume_timing();
	nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	TEST_DONE();
}
