/* SPDX-License-Identifier: MIT */
/*
 * A libfabric FI_EP_MSG program for the provider tests: connection data
 * both ways, fi_reject with data, messages with remote CQ data, inject, and
 * RMA writes and reads at odd byte offsets into a registered buffer, every
 * byte checked; and RMA outside what the peer registered, which must fail
 * that connection with our sentence.
 *
 *   fi_rma_check server PORT MODE
 *   fi_rma_check client PORT MODE
 *
 * MODE: ok | reject | bad-key | bad-range | bad-access. Both sides exit 0 when
 * what MODE expects happened (printing "fi_rma_check: OK: ..."), 1 otherwise.
 * The provider is picked by name (-p srdma in fabtests' terms).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

enum { MR_LEN = 1 << 20, BIG = 200001, TIMEOUT_MS = 20000 };

struct ad { /* what the server tells the client about its buffers */
	uint64_t addr, key, len;
	uint64_t wo_addr, wo_key; /* 4 KiB registered FI_REMOTE_WRITE only */
};

static const char *side = "?";
static struct fid_fabric *fabric;
static struct fid_domain *domain;
static struct fid_eq *eq;
static struct fid_cq *cq;
static struct fid_ep *ep;
static struct fid_pep *pep;
static struct fid_mr *mr, *wo_mr;
static uint8_t *buf, wo_buf[4096];
static struct fi_info *got_info; /* from fi_getinfo, freed at exit */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fi_rma_check %s: ", side);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

#define CHECK(call)                                                            \
	do {                                                                   \
		int rc__ = (int)(call);                                        \
		if (rc__)                                                      \
			die("%s: %s", #call, fi_strerror(-rc__));              \
	} while (0)

static uint8_t pat(size_t i, unsigned seed)
{
	return (uint8_t)((i * 131u + seed * 7u + (i >> 9)) & 0xff);
}

/* Waits for one EQ event; an error entry is printed with its strerror. */
static uint32_t eq_wait(struct fi_eq_cm_entry *e, size_t len,
			struct fi_eq_err_entry *err)
{
	uint32_t event;
	ssize_t n = fi_eq_sread(eq, &event, e, len, TIMEOUT_MS, 0);

	if (n == -FI_EAVAIL) {
		memset(err, 0, sizeof(*err));
		if (fi_eq_readerr(eq, err, 0) < 0)
			die("fi_eq_readerr failed");
		fprintf(stderr, "fi_rma_check %s: EQ error %s: %s\n", side,
			fi_strerror(err->err),
			fi_eq_strerror(eq, err->prov_errno, err->err_data, NULL,
				       0));
		return 0;
	}
	if (n < 0)
		die("fi_eq_sread: %s", fi_strerror((int)-n));
	return event;
}

/* Waits for one completion; returns 0, or the error entry's err (its
 * sentence printed). */
static int cq_wait(struct fi_cq_data_entry *c)
{
	struct fi_cq_err_entry err = {0};

	for (int i = 0; i < TIMEOUT_MS; i++) {
		ssize_t n = fi_cq_sread(cq, c, 1, NULL, 1);

		if (n == 1)
			return 0;
		if (n == -FI_EAVAIL) {
			if (fi_cq_readerr(cq, &err, 0) < 0)
				die("fi_cq_readerr failed");
			fprintf(stderr, "fi_rma_check %s: CQ error %s: %s\n",
				side, fi_strerror(err.err),
				fi_cq_strerror(cq, err.prov_errno, err.err_data,
					       NULL, 0));
			return err.err;
		}
		if (n != -FI_EAGAIN)
			die("fi_cq_sread: %s", fi_strerror((int)-n));
	}
	die("no completion in %d ms", TIMEOUT_MS);
	return -1;
}

static void expect(uint64_t flags, struct fi_cq_data_entry *out)
{
	struct fi_cq_data_entry c;

	if (cq_wait(&c))
		die("an operation failed");
	if ((c.flags & flags) != flags)
		die("completion flags 0x%" PRIx64 ", expected 0x%" PRIx64,
		    c.flags, flags);
	if (out)
		*out = c;
}

static struct fi_info *info_for(const char *node, const char *port,
				uint64_t flags)
{
	struct fi_info *hints = fi_allocinfo(), *fi;

	hints->ep_attr->type = FI_EP_MSG;
	hints->caps = FI_MSG | FI_RMA;
	hints->domain_attr->mr_mode =
		FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	hints->fabric_attr->prov_name = strdup("srdma");
	CHECK(fi_getinfo(FI_VERSION(1, 17), node, port, flags, hints, &fi));
	fi_freeinfo(hints);
	got_info = fi;
	return fi;
}

static void open_active(struct fi_info *fi)
{
	struct fi_cq_attr ca = {.format = FI_CQ_FORMAT_DATA,
				.wait_obj = FI_WAIT_FD};

	CHECK(fi_domain(fabric, fi, &domain, NULL));
	CHECK(fi_cq_open(domain, &ca, &cq, NULL));
	CHECK(fi_endpoint(domain, fi, &ep, NULL));
	CHECK(fi_ep_bind(ep, &eq->fid, 0));
	CHECK(fi_ep_bind(ep, &cq->fid, FI_TRANSMIT | FI_RECV));
	CHECK(fi_enable(ep));
	buf = malloc(MR_LEN);
	if (!buf)
		die("out of memory");
	CHECK(fi_mr_reg(domain, buf, MR_LEN,
			FI_REMOTE_READ | FI_REMOTE_WRITE | FI_READ | FI_WRITE |
				FI_SEND | FI_RECV,
			0, 0, 0, &mr, NULL));
	CHECK(fi_mr_reg(domain, wo_buf, sizeof(wo_buf), FI_REMOTE_WRITE, 0, 0,
			0, &wo_mr, NULL));
}

static int server(const char *port, const char *mode)
{
	_Alignas(struct fi_eq_cm_entry)
		uint8_t cmbuf[sizeof(struct fi_eq_cm_entry) + 256];
	struct fi_eq_cm_entry *cm = (void *)cmbuf;
	struct fi_eq_attr ea = {.wait_obj = FI_WAIT_UNSPEC};
	struct fi_eq_err_entry err;
	struct fi_cq_data_entry c;
	struct fi_info *fi = info_for(NULL, port, FI_SOURCE);
	char msg[64], msg2[64];
	struct ad ad;

	CHECK(fi_fabric(fi->fabric_attr, &fabric, NULL));
	CHECK(fi_eq_open(fabric, &ea, &eq, NULL));
	CHECK(fi_passive_ep(fabric, fi, &pep, NULL));
	CHECK(fi_pep_bind(pep, &eq->fid, 0));
	CHECK(fi_listen(pep));
	printf("listening\n");
	fflush(stdout);
	if (eq_wait(cm, sizeof(cmbuf), &err) != FI_CONNREQ)
		die("no FI_CONNREQ");
	if (strcmp((char *)cm->data,
		   !strcmp(mode, "reject") ? "reject-me" : "hello"))
		die("connection data '%.20s'", (char *)cm->data);
	if (!strcmp(mode, "reject")) {
		CHECK(fi_reject(pep, cm->info->handle, "go away", 8));
		fi_freeinfo(cm->info);
		printf("fi_rma_check: OK: rejected with data\n");
		return 0;
	}
	open_active(cm->info);
	fi_freeinfo(cm->info);
	for (size_t i = 0; i < MR_LEN; i++)
		buf[i] = pat(i, 1);
	CHECK(fi_recv(ep, msg, sizeof(msg), NULL, 0, NULL));
	CHECK(fi_recv(ep, msg2, sizeof(msg2), NULL, 0, NULL));
	CHECK(fi_accept(ep, "welcome", 8));
	if (eq_wait(cm, sizeof(cmbuf), &err) != FI_CONNECTED)
		die("no FI_CONNECTED");
	ad.addr = (uintptr_t)buf;
	ad.key = fi_mr_key(mr);
	ad.len = MR_LEN;
	ad.wo_addr = (uintptr_t)wo_buf;
	ad.wo_key = fi_mr_key(wo_mr);
	CHECK(fi_send(ep, &ad, sizeof(ad), NULL, 0, NULL));
	expect(FI_SEND, NULL);

	if (strcmp(mode, "ok")) {
		/* The client's access outside our registration must fail the
		 * connection: the posted receives complete in error. */
		if (cq_wait(&c) == 0)
			die("the connection survived a bad remote access");
		printf("fi_rma_check: OK: the connection failed\n");
		return 0;
	}
	/* The write with remote CQ data, then the "done" message. */
	expect(FI_REMOTE_WRITE | FI_REMOTE_CQ_DATA, &c);
	if (c.data != 0xabcdef)
		die("remote CQ data 0x%" PRIx64, c.data);
	expect(FI_RECV, &c);
	if (!(c.flags & FI_REMOTE_CQ_DATA) || c.data != 42 ||
	    strcmp(msg, "done"))
		die("'done' with data 42 expected");
	for (size_t i = 0; i < 1000; i++)
		if (buf[12345 + i] != pat(i, 2))
			die("written byte %zu wrong", 12345 + i);
	for (size_t i = 0; i < 7; i++)
		if (buf[1 + i] != pat(i, 3))
			die("writedata byte %zu wrong", i);
	if (buf[0] != pat(0, 1) || buf[8] != pat(8, 1) ||
	    buf[12344] != pat(12344, 1) || buf[13345] != pat(13345, 1))
		die("a write spilled beyond its range");
	expect(FI_RECV, NULL); /* the inject */
	if (strcmp(msg2, "inject"))
		die("inject: '%.20s'", msg2);
	/* A message of BIG bytes sent before any receive for it was posted
	 * (buffered, then reassembled from several records). */
	memset(buf, 0, BIG);
	for (int i = 0; i < 30; i++) { /* progress with no receive posted */
		struct timespec ts = {0, 10 * 1000 * 1000};

		if (fi_cq_read(cq, &c, 1) != -FI_EAGAIN)
			die("a completion with no operation posted");
		nanosleep(&ts, NULL);
	}
	CHECK(fi_recv(ep, buf, BIG, NULL, 0, NULL));
	expect(FI_RECV, &c);
	if (c.len != BIG)
		die("early message of %zu bytes", c.len);
	for (size_t i = 0; i < BIG; i++)
		if (buf[i] != pat(i, 4))
			die("early message byte %zu wrong", i);
	CHECK(fi_send(ep, "ok", 3, NULL, 0, NULL));
	expect(FI_SEND, NULL);
	fi_shutdown(ep, 0);
	printf("fi_rma_check: OK: writes at odd offsets, remote CQ data, a "
	       "message before its receive verified\n");
	return 0;
}

static int client(const char *port, const char *mode)
{
	_Alignas(struct fi_eq_cm_entry)
		uint8_t cmbuf[sizeof(struct fi_eq_cm_entry) + 256];
	struct fi_eq_cm_entry *cm = (void *)cmbuf;
	struct fi_eq_attr ea = {.wait_obj = FI_WAIT_UNSPEC};
	struct fi_eq_err_entry err;
	struct fi_info *fi = info_for("127.0.0.1", port, 0);
	uint8_t *src;
	char msg[64];
	struct ad ad;
	int e;

	CHECK(fi_fabric(fi->fabric_attr, &fabric, NULL));
	CHECK(fi_eq_open(fabric, &ea, &eq, NULL));
	open_active(fi);
	CHECK(fi_recv(ep, &ad, sizeof(ad), NULL, 0, NULL));
	if (!strcmp(mode, "reject")) {
		CHECK(fi_connect(ep, fi->dest_addr, "reject-me", 10));
		if (eq_wait(cm, sizeof(cmbuf), &err) != 0 ||
		    err.err != FI_ECONNREFUSED || err.err_data_size != 8 ||
		    memcmp(err.err_data, "go away", 8))
			die("expected FI_ECONNREFUSED with 'go away'");
		printf("fi_rma_check: OK: rejected with data\n");
		return 0;
	}
	CHECK(fi_connect(ep, fi->dest_addr, "hello", 6));
	if (eq_wait(cm, sizeof(cmbuf), &err) != FI_CONNECTED ||
	    strcmp((char *)cm->data, "welcome"))
		die("no FI_CONNECTED with 'welcome'");
	expect(FI_RECV, NULL);
	if (ad.len != MR_LEN)
		die("bad advertisement");
	src = buf;

	if (strcmp(mode, "ok")) {
		/* bad-key: a key never given; bad-range: past the end;
		 * bad-access: a region registered for writes only. */
		uint64_t key = ad.key, at = ad.addr;

		if (!strcmp(mode, "bad-key")) {
			key = ad.key + 1;
		} else if (!strcmp(mode, "bad-range")) {
			at = ad.addr + MR_LEN - 10;
		} else {
			key = ad.wo_key;
			at = ad.wo_addr;
		}

		CHECK(fi_read(ep, src, 100, NULL, 0, at, key, NULL));
		e = cq_wait(&(struct fi_cq_data_entry){0});
		if (e != FI_EACCES)
			die("the read outside the registration got %s",
			    e ? fi_strerror(e) : "no error");
		printf("fi_rma_check: OK: refused with FI_EACCES\n");
		return 0;
	}
	/* A write of 1000 bytes at an odd offset, one of 7 with data. */
	for (size_t i = 0; i < 1000; i++)
		src[i] = pat(i, 2);
	CHECK(fi_write(ep, src, 1000, NULL, 0, ad.addr + 12345, ad.key, NULL));
	expect(FI_WRITE, NULL);
	for (size_t i = 0; i < 7; i++)
		src[2000 + i] = pat(i, 3);
	CHECK(fi_writedata(ep, src + 2000, 7, NULL, 0xabcdef, 0, ad.addr + 1,
			   ad.key, NULL));
	expect(FI_WRITE, NULL);
	/* A read of 300001 bytes from an odd offset, across records. */
	memset(src, 0, MR_LEN);
	CHECK(fi_read(ep, src, 300001, NULL, 0, ad.addr + 500001, ad.key,
		      NULL));
	expect(FI_READ, NULL);
	for (size_t i = 0; i < 300001; i++)
		if (src[i] != pat(500001 + i, 1))
			die("read byte %zu wrong", i);
	CHECK(fi_recv(ep, msg, sizeof(msg), NULL, 0, NULL));
	CHECK(fi_senddata(ep, "done", 5, NULL, 42, 0, NULL));
	expect(FI_SEND, NULL);
	CHECK(fi_inject(ep, "inject", 7, 0));
	for (size_t i = 0; i < BIG; i++)
		src[i] = pat(i, 4);
	CHECK(fi_send(ep, src, BIG, NULL, 0, NULL));
	expect(FI_SEND, NULL);
	expect(FI_RECV, NULL);
	if (strcmp(msg, "ok"))
		die("server said '%.20s'", msg);
	printf("fi_rma_check: OK: write, writedata, read of 300001 bytes at "
	       "odd offsets verified\n");
	return 0;
}

int main(int argc, char **argv)
{
	int rc;

	if (argc != 4)
		die("usage: fi_rma_check server|client PORT "
		    "ok|reject|bad-key|bad-range|bad-access");
	side = argv[1];
	rc = !strcmp(argv[1], "server") ? server(argv[2], argv[3])
					: client(argv[2], argv[3]);
	if (ep)
		fi_close(&ep->fid);
	if (mr)
		fi_close(&mr->fid);
	if (wo_mr)
		fi_close(&wo_mr->fid);
	if (pep)
		fi_close(&pep->fid);
	if (cq)
		fi_close(&cq->fid);
	if (domain)
		fi_close(&domain->fid);
	if (eq)
		fi_close(&eq->fid);
	if (fabric)
		fi_close(&fabric->fid);
	free(buf);
	fi_freeinfo(got_info);
	return rc;
}
