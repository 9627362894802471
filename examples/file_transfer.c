/* SPDX-License-Identifier: MIT */
/*
 * A file transfer with SHA-256 on both ends, written the blocking way:
 * srdma_accept, srdma_recv, srdma_send_sync, srdma_write_sync. The
 * receiver grants one region; the sender RDMA-writes each chunk into it
 * and says "DATA len"; the receiver takes the verified chunk with
 * srdma_region_get and answers "ACK". At the end the sender sends
 * "END <sha256>" and the receiver answers "OK <sha256>" if its own hash of
 * what it wrote agrees. Events the program never waits for (one
 * SRDMA_EV_PEER_WRITE per chunk) stay queued until the connection goes.
 *
 *   file_transfer recv --certs DIR [--listen HOST] [--port N] --out FILE
 *   file_transfer send --certs DIR --connect HOST --port N FILE
 *
 * Build: cc file_transfer.c $(pkg-config --cflags --libs srdma libcrypto)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <srdma.h>

enum { CHUNK = 1 << 20, TMO = 30000 };

static void hex(EVP_MD_CTX *md, char out[65])
{
	unsigned char d[32];

	EVP_DigestFinal_ex(md, d, NULL);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int fail(const char *what)
{
	fprintf(stderr, "file_transfer: %s: %s\n", what, srdma_error_detail());
	return 1;
}

static int receive(srdma_ctx *ctx, const char *host, int port, FILE *out,
		   unsigned char *buf, EVP_MD_CTX *md)
{
	char msg[128], mine[65], theirs[65] = "";
	unsigned long long total = 0;
	srdma_listener *l = NULL;
	srdma_conn *c = NULL;
	srdma_region *r = NULL;
	size_t len, n;
	int rc = 1;

	if (srdma_listen(ctx, host, (uint16_t)port, &l) < 0)
		return fail("listen");
	printf("listening on port %u\n", srdma_listener_port(l));
	fflush(stdout);
	/* One client; its region is the one it writes chunks into. */
	if (srdma_accept(l, -1, &c) < 0 ||
	    srdma_region_create(c, CHUNK, SRDMA_ACCESS_REMOTE_WRITE, &r) < 0) {
		rc = fail("accept");
		goto out;
	}
	while (srdma_recv(c, msg, sizeof(msg) - 1, &len, TMO) == 0) {
		msg[len] = 0;
		if (sscanf(msg, "DATA %zu", &n) == 1 && n <= CHUNK) {
			/* Verified before we see a byte. */
			if (srdma_region_get(r, 0, buf, n) < 0 ||
			    fwrite(buf, 1, n, out) != n)
				break;
			EVP_DigestUpdate(md, buf, n);
			total += n;
			if (srdma_send_sync(c, "ACK", 3, TMO) < 0)
				break;
		} else if (sscanf(msg, "END %64s", theirs) == 1) {
			hex(md, mine);
			rc = strcmp(mine, theirs) != 0;
			snprintf(msg, sizeof(msg), "%s %s", rc ? "BAD" : "OK",
				 mine);
			if (srdma_send_sync(c, msg, strlen(msg), TMO) < 0)
				rc = 1;
			printf("received %llu bytes, sha256 %s (%s)\n", total,
			       mine, rc ? "MISMATCH" : "matches the sender's");
			break;
		}
	}
	if (!theirs[0])
		rc = fail("receive");
	/* Wait for the sender's goodbye so it reads our answer. */
	while (srdma_recv(c, msg, sizeof(msg), &len, TMO) == 0)
		;
out:
	srdma_region_destroy(r);
	srdma_conn_destroy(c);
	srdma_listener_destroy(l);
	return rc;
}

static int send_file(srdma_ctx *ctx, const char *host, int port, FILE *in,
		     unsigned char *buf, EVP_MD_CTX *md)
{
	char msg[128], mine[65];
	unsigned long long total = 0;
	srdma_conn *c = NULL;
	size_t n, len;
	int rc = 1;

	if (srdma_connect(ctx, host, (uint16_t)port, TMO, &c) < 0)
		return fail("connect");
	while ((n = fread(buf, 1, CHUNK, in)) > 0) {
		EVP_DigestUpdate(md, buf, n);
		snprintf(msg, sizeof(msg), "DATA %zu", n);
		/* The first write waits for the receiver's grant. */
		if (srdma_write_sync(c, 1, 0, buf, n, TMO) < 0 ||
		    srdma_send_sync(c, msg, strlen(msg), TMO) < 0 ||
		    srdma_recv(c, msg, sizeof(msg), &len, TMO) < 0) {
			rc = fail("send");
			goto out;
		}
		total += n;
	}
	hex(md, mine);
	snprintf(msg, sizeof(msg), "END %s", mine);
	if (srdma_send_sync(c, msg, strlen(msg), TMO) < 0 ||
	    srdma_recv(c, msg, sizeof(msg) - 1, &len, TMO) < 0) {
		rc = fail("send");
		goto out;
	}
	msg[len] = 0;
	rc = strncmp(msg, "OK ", 3) || strcmp(msg + 3, mine);
	printf("sent %llu bytes, sha256 %s; receiver: %s\n", total, mine, msg);
out:
	srdma_conn_destroy(c); /* an orderly close: goodbye, drain */
	return rc;
}

int main(int argc, char **argv)
{
	struct srdma_config cfg;
	const char *host = NULL, *path = NULL, *out = NULL;
	int port = 7473, rc, i,
	    recv_mode = argc > 1 && !strcmp(argv[1], "recv");
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *buf = malloc(CHUNK);
	srdma_ctx *ctx = NULL;
	FILE *f;

	srdma_config_init(&cfg,
			  recv_mode ? SRDMA_ROLE_SERVER : SRDMA_ROLE_CLIENT);
	cfg.log_fn = srdma_log_stderr;
	for (i = 2; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (!strcmp(argv[i], "--certs"))
			cfg.certs_dir = argv[i + 1];
		else if (!strcmp(argv[i], "--listen") ||
			 !strcmp(argv[i], "--connect"))
			host = argv[i + 1];
		else if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--out"))
			out = argv[i + 1];
	}
	path = recv_mode ? out : i < argc ? argv[i] : NULL;
	if (argc < 2 || (!recv_mode && strcmp(argv[1], "send")) || !path ||
	    !md || !buf) {
		fprintf(stderr, "usage: file_transfer recv --certs DIR "
				"[--listen HOST] [--port N] --out FILE\n"
				"       file_transfer send --certs DIR "
				"--connect HOST --port N FILE\n");
		return 2;
	}
	if (!(f = fopen(path, recv_mode ? "wb" : "rb"))) {
		perror(path);
		return 1;
	}
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	if (srdma_ctx_create(&cfg, &ctx) < 0)
		rc = fail("configuration");
	else if (recv_mode)
		rc = receive(ctx, host, port, f, buf, md);
	else
		rc = send_file(ctx, host ? host : "localhost", port, f, buf,
			       md);
	srdma_ctx_destroy(ctx);
	if (fclose(f) != 0)
		rc = 1;
	EVP_MD_CTX_free(md);
	free(buf);
	return rc;
}
