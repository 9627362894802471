/* SPDX-License-Identifier: MIT */
/*
 * Domains and memory registration. Registration pins nothing: RMA is
 * emulated over protected messages (see ep.c), so a registration is a
 * record of which bytes a connected, authenticated peer may write or read
 * with which key, checked for every access before a byte moves.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "prov.h"

static struct sp_list *bucket(struct sp_domain *d, uint64_t key)
{
	return &d->mrs[(key ^ (key >> 17) ^ (key >> 41)) % SP_MR_BUCKETS];
}

static struct sp_mr *mr_find(struct sp_domain *d, uint64_t key)
{
	struct sp_list *b = bucket(d, key);

	for (struct sp_list *e = b->next; e != b; e = e->next) {
		struct sp_mr *m = SP_CONTAINER(e, struct sp_mr, link);

		if (m->fid.key == key)
			return m;
	}
	return NULL;
}

struct sp_mr *sp_mr_lookup(struct sp_domain *d, uint64_t key, uint64_t addr,
			   uint64_t len, uint64_t access, uint8_t **ptr)
{
	struct sp_mr *m = mr_find(d, key);
	uint64_t start;

	if (!m || (m->access & access) != access)
		return NULL;
	start = d->mr_virt ? addr - (uint64_t)(uintptr_t)m->base
			   : addr - m->offset;
	if (start > m->len || len > m->len - start)
		return NULL;
	*ptr = m->base + start;
	return m;
}

void sp_mr_put(struct sp_mr *m)
{
	if (m && --m->refs == 0)
		free(m);
}

static int mr_close(struct fid *fid)
{
	struct sp_mr *m = SP_CONTAINER(fid, struct sp_mr, fid.fid);
	struct sp_fabric *f = m->dom->fab;

	sp_lock(f);
	sp_list_del(&m->link);
	m->closed = true;
	m->dom->refs--;
	sp_mr_put(m);
	sp_unlock(f);
	return 0;
}

static struct fi_ops mr_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = mr_close,
	.bind = sp_no_bind,
	.control = sp_no_control,
	.ops_open = sp_no_ops_open,
};

static int mr_regattr(struct fid *fid, const struct fi_mr_attr *attr,
		      uint64_t flags, struct fid_mr **out)
{
	struct sp_domain *d = SP_CONTAINER(fid, struct sp_domain, fid.fid);
	struct sp_mr *m;
	uint64_t key;
	int rc = 0;

	if (attr->iov_count > 1 || (attr->iov_count && !attr->mr_iov))
		return -FI_EINVAL;
	if (attr->iface != FI_HMEM_SYSTEM)
		return -FI_ENOSYS;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -FI_ENOMEM;
	if (attr->iov_count) {
		m->base = attr->mr_iov[0].iov_base;
		m->len = attr->mr_iov[0].iov_len;
	}
	m->access = attr->access ? attr->access
				 : FI_SEND | FI_RECV | FI_READ | FI_WRITE |
					   FI_REMOTE_READ | FI_REMOTE_WRITE;
	m->offset = attr->offset;
	m->dom = d;
	m->refs = 1;
	m->fid.fid.fclass = FI_CLASS_MR;
	m->fid.fid.context = attr->context;
	m->fid.fid.ops = &mr_fi_ops;
	m->fid.mem_desc = m;
	sp_lock(d->fab);
	if (d->mr_prov_key) {
		do {
			if (getrandom(&key, sizeof(key), 0) != sizeof(key)) {
				rc = -FI_EOTHER;
				break;
			}
		} while (mr_find(d, key));
	} else {
		key = attr->requested_key;
		if (mr_find(d, key))
			rc = -FI_ENOKEY;
	}
	if (rc == 0) {
		m->fid.key = key;
		sp_list_add_tail(bucket(d, key), &m->link);
		d->refs++;
	}
	sp_unlock(d->fab);
	if (rc) {
		free(m);
		return rc;
	}
	*out = &m->fid;
	return 0;
}

static int mr_regv(struct fid *fid, const struct iovec *iov, size_t count,
		   uint64_t access, uint64_t offset, uint64_t requested_key,
		   uint64_t flags, struct fid_mr **mr, void *context)
{
	struct fi_mr_attr attr = {
		.mr_iov = iov,
		.iov_count = count,
		.access = access,
		.offset = offset,
		.requested_key = requested_key,
		.context = context,
		.iface = FI_HMEM_SYSTEM,
	};

	return mr_regattr(fid, &attr, flags, mr);
}

static int mr_reg(struct fid *fid, const void *buf, size_t len, uint64_t access,
		  uint64_t offset, uint64_t requested_key, uint64_t flags,
		  struct fid_mr **mr, void *context)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return mr_regv(fid, &iov, 1, access, offset, requested_key, flags, mr,
		       context);
}

static struct fi_ops_mr mr_ops = {
	.size = sizeof(struct fi_ops_mr),
	.reg = mr_reg,
	.regv = mr_regv,
	.regattr = mr_regattr,
};

static int domain_close(struct fid *fid)
{
	struct sp_domain *d = SP_CONTAINER(fid, struct sp_domain, fid.fid);
	struct sp_fabric *f = d->fab;

	sp_lock(f);
	if (d->refs > 0) {
		sp_unlock(f);
		return -FI_EBUSY;
	}
	sp_ep_free_zombies(f, d);
	f->refs--;
	sp_unlock(f);
	fi_freeinfo(d->info);
	free(d);
	return 0;
}

static struct fi_ops domain_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = domain_close,
	.bind = sp_no_bind,
	.control = sp_no_control,
	.ops_open = sp_no_ops_open,
};

static int no_av_open(struct fid_domain *domain, struct fi_av_attr *attr,
		      struct fid_av **av, void *context)
{
	return -FI_ENOSYS;
}

static int no_scalable_ep(struct fid_domain *domain, struct fi_info *info,
			  struct fid_ep **sep, void *context)
{
	return -FI_ENOSYS;
}

static int no_cntr_open(struct fid_domain *domain, struct fi_cntr_attr *attr,
			struct fid_cntr **cntr, void *context)
{
	return -FI_ENOSYS;
}

static int no_poll_open(struct fid_domain *domain, struct fi_poll_attr *attr,
			struct fid_poll **pollset)
{
	return -FI_ENOSYS;
}

static int no_stx_ctx(struct fid_domain *domain, struct fi_tx_attr *attr,
		      struct fid_stx **stx, void *context)
{
	return -FI_ENOSYS;
}

static int no_srx_ctx(struct fid_domain *domain, struct fi_rx_attr *attr,
		      struct fid_ep **rx_ep, void *context)
{
	return -FI_ENOSYS;
}

static int no_query_atomic(struct fid_domain *domain, enum fi_datatype datatype,
			   enum fi_op op, struct fi_atomic_attr *attr,
			   uint64_t flags)
{
	return -FI_ENOSYS;
}

static int no_query_collective(struct fid_domain *domain,
			       enum fi_collective_op coll,
			       struct fi_collective_attr *attr, uint64_t flags)
{
	return -FI_ENOSYS;
}

static struct fi_ops_domain domain_ops = {
	.size = sizeof(struct fi_ops_domain),
	.av_open = no_av_open,
	.cq_open = sp_cq_open,
	.endpoint = sp_endpoint,
	.scalable_ep = no_scalable_ep,
	.cntr_open = no_cntr_open,
	.poll_open = no_poll_open,
	.stx_ctx = no_stx_ctx,
	.srx_ctx = no_srx_ctx,
	.query_atomic = no_query_atomic,
	.query_collective = no_query_collective,
};

int sp_domain_open(struct fid_fabric *fabric, struct fi_info *info,
		   struct fid_domain **out, void *context)
{
	struct sp_fabric *f = SP_CONTAINER(fabric, struct sp_fabric, fid);
	uint32_t mode = info->domain_attr ? info->domain_attr->mr_mode : 0;
	struct sp_domain *d;

	if (info->domain_attr && info->domain_attr->name &&
	    strcmp(info->domain_attr->name, SP_NAME))
		return -FI_EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -FI_ENOMEM;
	d->info = fi_dupinfo(info);
	if (!d->info) {
		free(d);
		return -FI_ENOMEM;
	}
	if (mode & FI_MR_BASIC) {
		d->mr_virt = d->mr_prov_key = true;
	} else if (!(mode & FI_MR_SCALABLE)) {
		d->mr_virt = (mode & FI_MR_VIRT_ADDR) != 0;
		d->mr_prov_key = (mode & FI_MR_PROV_KEY) != 0;
	}
	for (int i = 0; i < SP_MR_BUCKETS; i++)
		sp_list_init(&d->mrs[i]);
	d->fab = f;
	d->fid.fid.fclass = FI_CLASS_DOMAIN;
	d->fid.fid.context = context;
	d->fid.fid.ops = &domain_fi_ops;
	d->fid.ops = &domain_ops;
	d->fid.mr = &mr_ops;
	sp_lock(f);
	f->refs++;
	sp_unlock(f);
	*out = &d->fid;
	return 0;
}
