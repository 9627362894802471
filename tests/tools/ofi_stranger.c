/* SPDX-License-Identifier: MIT */
/*
 * A stranger that speaks plain libfabric (FI_EP_MSG, provider tcp) to a
 * server's fabric port with chosen private data, to show it is rejected
 * (DESIGN.md §3 step 3). No srdma layer is involved:
 *
 *   ofi_stranger HOST PORT [--zero|--none|--pdata HEX|--file F|--replay F]
 *                          [--provider NAME]
 *
 * --zero (default): 56 zero bytes; --none: no private data; --pdata HEX:
 * these bytes (at most 256); --file F: the whole file (at most 256 bytes);
 * --replay F: exactly the first 56 bytes of F (private data captured from a
 * real client). Prints one line, "accepted", "rejected" or "error: ...";
 * exits 0 if rejected, 1 if accepted, 2 on error.
 */
#include <errno.h>
#include <stdbool.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>

enum {
	PDATA_MAX = 256,
	REPLAY_LEN = 56,
	TIMEOUT_MS = 15000,
	EXIT_REJECTED = 0,
	EXIT_ACCEPTED = 1,
	EXIT_ERROR = 2,
};

struct fabric {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_eq *eq;
	struct fid_cq *cq;
	struct fid_ep *ep;
};

static int fail(const char *what, int fi_err)
{
	printf("error: %s: %s\n", what,
	       fi_strerror(fi_err < 0 ? -fi_err : fi_err));
	return EXIT_ERROR;
}

static int usage(void)
{
	printf("error: usage: ofi_stranger HOST PORT [--zero|--none|--pdata "
	       "HEX|--file F|--replay F] [--provider NAME]\n");
	return EXIT_ERROR;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int parse_hex(const char *s, uint8_t *out, size_t *len)
{
	size_t n = 0;

	while (s[0] && s[1]) {
		int hi = hexval(s[0]), lo = hexval(s[1]);
		if (hi < 0 || lo < 0 || n == PDATA_MAX)
			return -1;
		out[n++] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	if (s[0])
		return -1;
	*len = n;
	return 0;
}

/*
 * The tcp provider reports "refused" both for a reject without private data
 * and for a port where nothing listens. Tell them apart with a plain TCP
 * connect, made only after the fabric attempt so it cannot disturb it.
 */
static bool port_open(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	bool open = false;

	if (getaddrinfo(host, port, &hints, &res))
		return false;
	for (ai = res; ai && !open; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype, 0);
		if (fd < 0)
			continue;
		open = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
		close(fd);
	}
	freeaddrinfo(res);
	return open;
}

/* want 0: up to PDATA_MAX bytes; otherwise exactly want bytes. */
static int read_file(const char *path, uint8_t *out, size_t want, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f) {
		printf("error: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(out, 1, want ? want : PDATA_MAX, f);
	fclose(f);
	if (want && n != want) {
		printf("error: %s holds %zu bytes, %zu needed\n", path, n,
		       want);
		return -1;
	}
	*len = n;
	return 0;
}

static void fabric_close(struct fabric *fb)
{
	if (fb->ep)
		fi_close(&fb->ep->fid);
	if (fb->cq)
		fi_close(&fb->cq->fid);
	if (fb->eq)
		fi_close(&fb->eq->fid);
	if (fb->domain)
		fi_close(&fb->domain->fid);
	if (fb->fabric)
		fi_close(&fb->fabric->fid);
	fi_freeinfo(fb->info);
}

static int connect_once(struct fabric *fb, const char *host, const char *port,
			const char *prov, const uint8_t *pdata, size_t len)
{
	struct fi_cq_attr cq_attr = {.size = 16,
				     .format = FI_CQ_FORMAT_CONTEXT};
	struct fi_eq_attr eq_attr = {.size = 16, .wait_obj = FI_WAIT_UNSPEC};
	struct fi_info *hints = fi_allocinfo();
	union {
		struct fi_eq_cm_entry cm;
		uint8_t raw[sizeof(struct fi_eq_cm_entry) + PDATA_MAX];
	} buf;
	struct fi_eq_err_entry err;
	uint32_t event;
	ssize_t n;
	int rc;

	if (!hints)
		return fail("fi_allocinfo", FI_ENOMEM);
	hints->ep_attr->type = FI_EP_MSG;
	hints->caps = FI_MSG | FI_RMA;
	hints->domain_attr->mr_mode = 0;
	hints->fabric_attr->prov_name = strdup(prov);
	rc = fi_getinfo(FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION), host,
			port, 0, hints, &fb->info);
	fi_freeinfo(hints);
	if (rc)
		return fail("fi_getinfo", rc);
	rc = fi_fabric(fb->info->fabric_attr, &fb->fabric, NULL);
	if (rc)
		return fail("fi_fabric", rc);
	rc = fi_domain(fb->fabric, fb->info, &fb->domain, NULL);
	if (rc)
		return fail("fi_domain", rc);
	rc = fi_eq_open(fb->fabric, &eq_attr, &fb->eq, NULL);
	if (rc)
		return fail("fi_eq_open", rc);
	rc = fi_cq_open(fb->domain, &cq_attr, &fb->cq, NULL);
	if (rc)
		return fail("fi_cq_open", rc);
	rc = fi_endpoint(fb->domain, fb->info, &fb->ep, NULL);
	if (rc)
		return fail("fi_endpoint", rc);
	rc = fi_ep_bind(fb->ep, &fb->eq->fid, 0);
	if (!rc)
		rc = fi_ep_bind(fb->ep, &fb->cq->fid, FI_TRANSMIT | FI_RECV);
	if (!rc)
		rc = fi_enable(fb->ep);
	if (rc)
		return fail("binding the endpoint", rc);
	rc = fi_connect(fb->ep, fb->info->dest_addr, len ? pdata : NULL, len);
	if (rc)
		return fail("fi_connect", rc);

	n = fi_eq_sread(fb->eq, &event, &buf, sizeof(buf), TIMEOUT_MS, 0);
	if (n == -FI_EAVAIL) {
		memset(&err, 0, sizeof(err));
		n = fi_eq_readerr(fb->eq, &err, 0);
		if (n < 0)
			return fail("fi_eq_readerr", (int)n);
		if (err.err == FI_ECONNREFUSED) {
			if (!err.err_data_size && !port_open(host, port)) {
				printf("error: nothing listens on %s port %s\n",
				       host, port);
				return EXIT_ERROR;
			}
			printf("rejected\n");
			return EXIT_REJECTED;
		}
		return fail("connect", err.err);
	}
	if (n == -FI_EAGAIN || n == -FI_ETIMEDOUT) {
		printf("error: no answer within %d ms\n", TIMEOUT_MS);
		return EXIT_ERROR;
	}
	if (n < 0)
		return fail("fi_eq_sread", (int)n);
	if (event == FI_CONNECTED) {
		printf("accepted\n");
		fi_shutdown(fb->ep, 0);
		return EXIT_ACCEPTED;
	}
	if (event == FI_SHUTDOWN) {
		printf("rejected\n");
		return EXIT_REJECTED;
	}
	printf("error: unexpected event %u\n", event);
	return EXIT_ERROR;
}

int main(int argc, char **argv)
{
	static uint8_t pdata[PDATA_MAX];
	const char *prov = "tcp";
	struct fabric fb = {0};
	size_t len = REPLAY_LEN; /* --zero is the default */
	int i, rc;

	if (argc < 3)
		return usage();
	for (i = 3; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--zero")) {
			memset(pdata, 0, sizeof(pdata));
			len = REPLAY_LEN;
		} else if (!strcmp(a, "--none")) {
			len = 0;
		} else if (!strcmp(a, "--pdata") && v) {
			if (parse_hex(v, pdata, &len)) {
				printf("error: --pdata wants at most %d bytes "
				       "of hex\n",
				       PDATA_MAX);
				return EXIT_ERROR;
			}
			i++;
		} else if (!strcmp(a, "--file") && v) {
			if (read_file(v, pdata, 0, &len))
				return EXIT_ERROR;
			i++;
		} else if (!strcmp(a, "--replay") && v) {
			if (read_file(v, pdata, REPLAY_LEN, &len))
				return EXIT_ERROR;
			i++;
		} else if (!strcmp(a, "--provider") && v) {
			prov = v;
			i++;
		} else {
			return usage();
		}
	}
	rc = connect_once(&fb, argv[1], argv[2], prov, pdata, len);
	fflush(stdout);
	fabric_close(&fb);
	return rc;
}
