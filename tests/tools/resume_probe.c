/* SPDX-License-Identifier: MIT */
/*
 * resume_probe: one client context that connects to `srdma serve` (ofi),
 * verifies an echo and closes (keeping the session ticket it was given),
 * writes READY_FILE, waits for GO_FILE, then connects again, offering that
 * ticket, so a test can change the server in between (revoke, reload):
 *
 *   resume_probe HOST PORT CERTS_DIR IDENTITY READY_FILE GO_FILE
 *
 * Prints one line per connect: "first: ok resumed=R identity=SERVER_CN"
 * or "first: refused (CODE): DETAIL", the same for "second", and exits 0
 * once both were tried.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srdma.h"

enum { TMO = 20000 };

static void attempt(srdma_ctx *ctx, const char *name, const char *host,
		    uint16_t port)
{
	struct srdma_conn_info info;
	char buf[16];
	size_t got = 0;
	srdma_conn *c = NULL;
	int rc = srdma_connect(ctx, host, port, TMO, &c);

	if (rc == 0)
		rc = srdma_send_sync(c, "resume?", 7, TMO);
	if (rc == 0)
		rc = srdma_recv(c, buf, sizeof(buf), &got, TMO);
	if (rc == 0 && (got != 7 || memcmp(buf, "resume?", 7)))
		rc = SRDMA_EPROTO;
	if (rc == 0 && srdma_conn_info(c, &info) == 0) {
		printf("%s: ok resumed=%d identity=%s\n", name, info.resumed,
		       info.peer_identity);
		/* the ticket comes after set-up: close in order to read it */
		srdma_conn_close(c);
	} else {
		printf("%s: refused (%d): %s\n", name, rc,
		       srdma_error_detail());
	}
	fflush(stdout);
	srdma_conn_destroy(c);
}

int main(int argc, char **argv)
{
	struct srdma_config cfg;
	srdma_ctx *ctx = NULL;
	uint16_t port;
	FILE *f;

	if (argc != 7) {
		fprintf(stderr, "usage: resume_probe HOST PORT CERTS_DIR "
				"IDENTITY READY_FILE GO_FILE\n");
		return 2;
	}
	port = (uint16_t)atoi(argv[2]);
	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.transport = SRDMA_TRANSPORT_OFI;
	cfg.certs_dir = argv[3];
	cfg.identity = argv[4];
	if (srdma_ctx_create(&cfg, &ctx) < 0) {
		fprintf(stderr, "resume_probe: %s\n", srdma_error_detail());
		return 1;
	}
	attempt(ctx, "first", argv[1], port);
	f = fopen(argv[5], "w");
	if (f)
		fclose(f);
	for (int i = 0; i < 60000 && access(argv[6], F_OK) != 0; i++)
		usleep(1000);
	attempt(ctx, "second", argv[1], port);
	srdma_ctx_destroy(ctx);
	return 0;
}
