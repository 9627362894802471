/* SPDX-License-Identifier: MIT */
/*
 * Server resource pool (ReDMArk mitigations M1 and M2).
 *
 * A kit is what a server connection needs before its client's fabric connect
 * arrives: the backend connection (ofi: domain, CQ, EQ; verbs: PD, completion
 * channel, CQ and an RC QP in RESET) and the message ring with its local
 * registration. Kits are made ahead of time, while no handshake is running,
 * so a client's PARAMS are answered without paying for them; each client
 * gets a kit drawn uniformly at random, so the QP number it sees says
 * nothing about the previous or the next client's.
 *
 * When a connection ends cleanly enough to be reused, its kit comes back:
 * regions and staging were deregistered by the session first (their keys die
 * with them, and a reset refuses a kit that still holds a remotely accessible
 * registration), the backend resets the connection (endpoint or rdma_cm id
 * gone, queues and CQ emptied, QP back to RESET), and the ring is zeroed:
 * in place where the registration pins pages (verbs), by dropping the pages
 * otherwise (MADV_DONTNEED: they come back zero-filled). A kit that cannot be
 * reset is destroyed. Remote keys are never recycled: every region a client
 * sees is registered for it (ofi: 64 random key bits; verbs: a new memory
 * window with a random tag).
 */
#include <string.h>
#include <sys/mman.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "session/session.h"

enum {
	POOL_DEFAULT = 16,
	POOL_MAX = 1024,
	POOL_BYTES = 64 << 20, /* ring memory the pool may hold */
};

static void noop_prepared(void *arg, int status)
{
	(void)arg;
	(void)status;
}
static void noop_established(void *arg)
{
	(void)arg;
}
static void noop_closed(void *arg, int status, const char *detail)
{
	(void)arg;
	(void)status;
	(void)detail;
}
static void noop_cqe(void *arg, const struct srdma__tp_cqe *cqe)
{
	(void)arg;
	(void)cqe;
}

/* Parked kits answer nothing: stale completions are dropped on reset. */
static const struct srdma__tp_conn_cb parked_cb = {
	.on_prepared = noop_prepared,
	.on_established = noop_established,
	.on_closed = noop_closed,
	.on_cqe = noop_cqe,
};

void srdma__respool_init(struct srdma_ctx *ctx)
{
	struct srdma__respool *p = &ctx->pool;
	size_t ring = srdma__ring_len(ctx->cfg.max_msg, ctx->cfg.queue_depth);
	uint32_t want =
		ctx->cfg.resource_pool ? ctx->cfg.resource_pool : POOL_DEFAULT;

	memset(p, 0, sizeof(*p));
	if (ctx->cfg.role != SRDMA_ROLE_SERVER || ctx->cfg.no_resource_pool)
		return;
	if (want > POOL_MAX)
		want = POOL_MAX;
	if ((size_t)want * ring > POOL_BYTES)
		want = (uint32_t)(POOL_BYTES / ring);
	p->target = want;
	p->depth = ctx->cfg.queue_depth;
	p->max_msg = ctx->cfg.max_msg;
	p->ring_len = ring;
}

/* Spares for each device: the target, within POOL_BYTES for them all. */
static uint32_t dev_target(const struct srdma__respool *p)
{
	size_t per = p->ndevs ? POOL_BYTES / p->ndevs / p->ring_len : 0;

	return p->target < per ? p->target : (uint32_t)per;
}

static uint32_t dev_count(const struct srdma__respool *p, int dev)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < p->n; i++)
		n += p->kits[i].dev == dev;
	return n;
}

void srdma__respool_add_dev(struct srdma_ctx *ctx, int dev)
{
	struct srdma__respool *p = &ctx->pool;

	if (!p->target || dev < 0)
		return;
	for (uint32_t i = 0; i < p->ndevs; i++)
		if (p->devs[i] == dev)
			return;
	if (p->ndevs < SRDMA_POOL_DEVS) {
		p->devs[p->ndevs++] = dev;
		p->counted = false;
	}
}

/*
 * Registrations pin memory (verbs): under a locked-memory limit (and
 * without CAP_IPC_LOCK) spares may take half of it at most, so clients
 * still find room for their own regions; the rest is said once.
 */
void srdma__respool_fit_memlock(struct srdma_ctx *ctx)
{
	struct srdma__respool *p = &ctx->pool;
	uint64_t lim;
	uint32_t fit;

	if (!p->target || !ctx->tp->ops->pins_memory ||
	    !srdma__memlock_limited(&lim))
		return;
	fit = (uint32_t)(lim / 2 / p->ring_len);
	if (fit >= p->target)
		return;
	srdma__log(&ctx->log, SRDMA_LOG_WARN,
		   "resource pool: %u spare connections instead of %u: each "
		   "pins %zu KiB of the %llu KiB locked-memory limit "
		   "(RLIMIT_MEMLOCK; raise it with `ulimit -l`)",
		   fit, p->target, p->ring_len >> 10,
		   (unsigned long long)(lim >> 10));
	p->target = fit;
	p->counted = false;
}

static void kit_destroy(struct srdma_ctx *ctx, struct srdma__kit *k)
{
	const struct srdma__tp_ops *ops = ctx->tp->ops;

	ops->mr_dereg(k->ring_mr);
	if (k->tc)
		ops->conn_destroy(k->tc);
	if (k->ring)
		munmap(k->ring, k->ring_len);
	memset(k, 0, sizeof(*k));
}

static int kit_make(struct srdma_ctx *ctx, struct srdma__kit *k, int dev)
{
	struct srdma__respool *p = &ctx->pool;
	const struct srdma__tp_ops *ops = ctx->tp->ops;
	struct srdma__tp_conn_attr attr = srdma__conn_attr(true, p->depth);
	void *ring;
	int rc;

	memset(k, 0, sizeof(*k));
	k->dev = dev;
	attr.dev = dev;
	ring = mmap(NULL, p->ring_len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ring == MAP_FAILED)
		return srdma__err(SRDMA_ENOMEM,
				  "out of memory for a %zu-byte pooled ring",
				  p->ring_len);
	k->ring = ring;
	k->ring_len = p->ring_len;
	rc = ops->conn_create(ctx->tp, &attr, &parked_cb, &k->tc);
	if (rc == 0)
		rc = ops->mr_reg(k->tc, k->ring, k->ring_len, SRDMA_TP_LOCAL,
				 &k->ring_mr);
	if (rc < 0) {
		kit_destroy(ctx, k);
		return rc;
	}
	p->made++;
	return 0;
}

static int push(struct srdma__respool *p, const struct srdma__kit *k)
{
	if (p->n == p->cap) {
		uint32_t cap = p->cap ? p->cap * 2 : 16;
		struct srdma__kit *a = realloc(p->kits, cap * sizeof(*a));
		if (!a)
			return -1;
		p->kits = a;
		p->cap = cap;
	}
	p->kits[p->n++] = *k;
	p->counted = false;
	return 0;
}

/* Kits that will never serve again (device gone, TIMEWAIT without end). */
static void purge(struct srdma_ctx *ctx)
{
	struct srdma__respool *p = &ctx->pool;
	const struct srdma__tp_ops *ops = ctx->tp->ops;

	if (!ops->conn_usable)
		return;
	for (uint32_t i = 0; i < p->n;) {
		if (ops->conn_usable(p->kits[i].tc) >= 0) {
			i++;
			continue;
		}
		kit_destroy(ctx, &p->kits[i]);
		p->kits[i] = p->kits[--p->n];
		p->counted = false;
		p->purged++;
	}
}

int srdma__respool_fill(struct srdma_ctx *ctx, uint32_t max_new)
{
	struct srdma__respool *p = &ctx->pool;
	uint32_t t = dev_target(p);
	struct srdma__kit k;

	purge(ctx);
	for (uint32_t d = 0; d < p->ndevs && max_new > 0; d++) {
		uint32_t have = dev_count(p, p->devs[d]);
		int rc;

		for (; have < t && max_new > 0; have++, max_new--) {
			rc = kit_make(ctx, &k, p->devs[d]);
			if (rc == 0 && push(p, &k) < 0) {
				kit_destroy(ctx, &k);
				rc = srdma__err(
					SRDMA_ENOMEM,
					"out of memory for the resource "
					"pool");
			}
			if (rc < 0) {
				/* Stock this device no further: what cannot
				 * be made now would fail on every pass. */
				p->devs[d] = p->devs[--p->ndevs];
				p->counted = false;
				return rc;
			}
		}
	}
	return 0;
}

/*
 * Refills start when a device's spares are down to half (hysteresis: then
 * up to full), so connections that end put their kits back (reuse) instead
 * of finding the pool already topped up with new ones.
 */
bool srdma__respool_wants(struct srdma_ctx *ctx)
{
	struct srdma__respool *p = &ctx->pool;

	/* Counted again only after the pool changed: this runs on every
	 * loop iteration. */
	if (!p->counted) {
		uint32_t t = dev_target(p);
		p->full = true;
		p->low = false;
		for (uint32_t d = 0; d < p->ndevs; d++) {
			uint32_t have = dev_count(p, p->devs[d]);
			p->full &= have >= t;
			p->low |= have * 2 < t;
		}
		p->counted = true;
	}
	if (p->full)
		p->filling = false;
	else if (p->low)
		p->filling = true;
	return p->filling && ctx->handshakes == 0 && ctx->listeners;
}

/* Uniform in [0, n), n > 0: rejection sampling over 32 random bits. */
static int pick(uint32_t n, uint32_t *out)
{
	uint32_t r, lim = UINT32_MAX - UINT32_MAX % n;

	do {
		if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
			return srdma__err(SRDMA_ESYS,
					  "RAND_bytes failed picking a kit");
	} while (r >= lim);
	*out = r % n;
	return 0;
}

int srdma__respool_take(struct srdma_conn *c)
{
	struct srdma_ctx *ctx = c->ctx;
	struct srdma__respool *p = &ctx->pool;
	const struct srdma__tp_ops *ops = ctx->tp->ops;
	struct srdma__tp_conn_cb cb;
	struct srdma__kit k;
	uint32_t *ready, nready = 0, i = 0;
	int rc;

	if (p->n)
		purge(ctx);
	if (!p->n || c->depth > p->depth || c->max_msg > p->max_msg) {
		if (p->target)
			p->misses++;
		return 0;
	}
	/* This device's kits that may serve a new peer now (verbs: not
	 * while the CM holds the last one's QP number in TIMEWAIT). */
	ready = malloc(p->n * sizeof(*ready));
	ENSURE(ready, SRDMA_ENOMEM, "out of memory picking a kit");
	for (uint32_t j = 0; j < p->n; j++)
		if (p->kits[j].dev == c->dev &&
		    (!ops->conn_usable || ops->conn_usable(p->kits[j].tc) > 0))
			ready[nready++] = j;
	if (!nready) {
		free(ready);
		p->misses++;
		return 0;
	}
	rc = pick(nready, &i);
	if (rc == 0)
		i = ready[i];
	free(ready);
	GUARD(rc);
	k = p->kits[i];
	p->kits[i] = p->kits[--p->n];
	p->counted = false;
	srdma__conn_tp_cb(c, &cb);
	ctx->tp->ops->conn_set_cb(k.tc, &cb);
	c->tc = k.tc;
	c->ring = k.ring;
	c->ring_len = k.ring_len;
	c->ring_mr = k.ring_mr;
	c->from_pool = true;
	p->taken++;
	srdma__log(&ctx->log, SRDMA_LOG_DEBUG,
		   "resource pool: %s gets one of %u ready spares (QPN %u)",
		   c->peer_addr, nready, ctx->tp->ops->local_qpn(k.tc));
	return 1;
}

bool srdma__respool_give(struct srdma_conn *c)
{
	struct srdma_ctx *ctx = c->ctx;
	struct srdma__respool *p = &ctx->pool;
	const struct srdma__tp_ops *ops = ctx->tp->ops;
	struct srdma__kit k = {
		.tc = c->tc,
		.ring = c->ring,
		.ring_len = c->ring_len,
		.ring_mr = c->ring_mr,
		.dev = c->dev,
	};

	if (p->n)
		purge(ctx);
	/* Only what a kit is: one of ours, or made to exactly our measure
	 * (a pool miss with the server's own limits). */
	if (!c->server || !k.tc || !k.ring_mr ||
	    dev_count(p, c->dev) >= dev_target(p) ||
	    k.ring_len != p->ring_len ||
	    (!c->from_pool &&
	     (c->depth != p->depth || c->max_msg != p->max_msg)))
		return false;
	ops->conn_set_cb(k.tc, &parked_cb);
	if (ops->conn_reset(k.tc) < 0) {
		srdma__log(&ctx->log, SRDMA_LOG_DEBUG,
			   "resource pool: not reusing %s's connection: %s",
			   c->peer_addr, srdma_error_detail());
		return false; /* the caller destroys it, callbacks are no-ops */
	}
	/* Nothing of the previous owner: zero pages, whichever way is safe. */
	if (ops->pins_memory || madvise(k.ring, k.ring_len, MADV_DONTNEED) != 0)
		OPENSSL_cleanse(k.ring, k.ring_len);
	if (push(p, &k) < 0)
		return false;
	p->reused++;
	srdma__log(&ctx->log, SRDMA_LOG_DEBUG,
		   "resource pool: %s's connection reset and zeroed for reuse "
		   "(%u spare)",
		   c->peer_addr, p->n);
	return true;
}

void srdma__respool_destroy(struct srdma_ctx *ctx)
{
	struct srdma__respool *p = &ctx->pool;

	while (p->n)
		kit_destroy(ctx, &p->kits[--p->n]);
	p->counted = false;
	free(p->kits);
	p->kits = NULL;
	p->cap = 0;
}
