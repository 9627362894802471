/* SPDX-License-Identifier: MIT */
/*
 * Endpoints: the object (bind, enable, close, options) and the consumer's
 * message and RMA calls, which hand operations to the data path (xfer.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov.h"

static bool want_comp(bool selective, uint64_t flags)
{
	return !selective || (flags & FI_COMPLETION);
}

#define EP(fid) SP_CONTAINER(fid, struct sp_ep, fid)

static ssize_t ep_recv(struct fid_ep *fid, void *buf, size_t len, void *desc,
		       fi_addr_t src_addr, void *context)
{
	struct sp_ep *ep = EP(fid);
	struct iovec iov = {.iov_base = buf, .iov_len = len};

	return sp_post_rx(ep, &iov, 1, context,
			  want_comp(ep->rx_selective, ep->rx_op_flags));
}

static ssize_t ep_recvv(struct fid_ep *fid, const struct iovec *iov,
			void **desc, size_t count, fi_addr_t src_addr,
			void *context)
{
	struct sp_ep *ep = EP(fid);

	return sp_post_rx(ep, iov, count, context,
			  want_comp(ep->rx_selective, ep->rx_op_flags));
}

static ssize_t ep_recvmsg(struct fid_ep *fid, const struct fi_msg *msg,
			  uint64_t flags)
{
	struct sp_ep *ep = EP(fid);

	if (flags & FI_MULTI_RECV)
		return -FI_EINVAL;
	return sp_post_rx(ep, msg->msg_iov, msg->iov_count, msg->context,
			  want_comp(ep->rx_selective, flags));
}

static ssize_t ep_send(struct fid_ep *fid, const void *buf, size_t len,
		       void *desc, fi_addr_t dest_addr, void *context)
{
	struct sp_ep *ep = EP(fid);
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return sp_post_tx(ep, OP_SEND, &iov, 1, context, ep->tx_op_flags,
			  want_comp(ep->tx_selective, ep->tx_op_flags), false,
			  0, 0, 0);
}

static ssize_t ep_sendv(struct fid_ep *fid, const struct iovec *iov,
			void **desc, size_t count, fi_addr_t dest_addr,
			void *context)
{
	struct sp_ep *ep = EP(fid);

	return sp_post_tx(ep, OP_SEND, iov, count, context, ep->tx_op_flags,
			  want_comp(ep->tx_selective, ep->tx_op_flags), false,
			  0, 0, 0);
}

static ssize_t ep_sendmsg(struct fid_ep *fid, const struct fi_msg *msg,
			  uint64_t flags)
{
	struct sp_ep *ep = EP(fid);

	return sp_post_tx(ep, OP_SEND, msg->msg_iov, msg->iov_count,
			  msg->context, flags,
			  want_comp(ep->tx_selective, flags),
			  flags & FI_REMOTE_CQ_DATA, msg->data, 0, 0);
}

static ssize_t ep_senddata(struct fid_ep *fid, const void *buf, size_t len,
			   void *desc, uint64_t data, fi_addr_t dest_addr,
			   void *context)
{
	struct sp_ep *ep = EP(fid);
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return sp_post_tx(ep, OP_SEND, &iov, 1, context, ep->tx_op_flags,
			  want_comp(ep->tx_selective, ep->tx_op_flags), true,
			  data, 0, 0);
}

static ssize_t ep_inject(struct fid_ep *fid, const void *buf, size_t len,
			 fi_addr_t dest_addr)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return sp_post_tx(EP(fid), OP_SEND, &iov, 1, NULL, FI_INJECT, false,
			  false, 0, 0, 0);
}

static ssize_t ep_injectdata(struct fid_ep *fid, const void *buf, size_t len,
			     uint64_t data, fi_addr_t dest_addr)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return sp_post_tx(EP(fid), OP_SEND, &iov, 1, NULL, FI_INJECT, false,
			  true, data, 0, 0);
}

static struct fi_ops_msg msg_ops = {
	.size = sizeof(struct fi_ops_msg),
	.recv = ep_recv,
	.recvv = ep_recvv,
	.recvmsg = ep_recvmsg,
	.send = ep_send,
	.sendv = ep_sendv,
	.sendmsg = ep_sendmsg,
	.inject = ep_inject,
	.senddata = ep_senddata,
	.injectdata = ep_injectdata,
};

static ssize_t rma(struct fid_ep *fid, enum sp_op_kind kind,
		   const struct iovec *iov, size_t count, void *context,
		   uint64_t flags, bool completion, bool has_data,
		   uint64_t data, const struct fi_rma_iov *rma_iov,
		   size_t rma_count)
{
	if (rma_count != 1 || rma_iov[0].len < sp_iov_total(iov, count))
		return -FI_EINVAL;
	return sp_post_tx(EP(fid), kind, iov, count, context, flags, completion,
			  has_data, data, rma_iov[0].key, rma_iov[0].addr);
}

static ssize_t ep_read(struct fid_ep *fid, void *buf, size_t len, void *desc,
		       fi_addr_t src_addr, uint64_t addr, uint64_t key,
		       void *context)
{
	struct sp_ep *ep = EP(fid);
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct fi_rma_iov r = {.addr = addr, .len = len, .key = key};

	return rma(fid, OP_READ, &iov, 1, context, ep->tx_op_flags,
		   want_comp(ep->tx_selective, ep->tx_op_flags), false, 0, &r,
		   1);
}

static ssize_t ep_readv(struct fid_ep *fid, const struct iovec *iov,
			void **desc, size_t count, fi_addr_t src_addr,
			uint64_t addr, uint64_t key, void *context)
{
	struct sp_ep *ep = EP(fid);
	struct fi_rma_iov r = {
		.addr = addr, .len = sp_iov_total(iov, count), .key = key};

	return rma(fid, OP_READ, iov, count, context, ep->tx_op_flags,
		   want_comp(ep->tx_selective, ep->tx_op_flags), false, 0, &r,
		   1);
}

static ssize_t ep_readmsg(struct fid_ep *fid, const struct fi_msg_rma *msg,
			  uint64_t flags)
{
	struct sp_ep *ep = EP(fid);

	return rma(fid, OP_READ, msg->msg_iov, msg->iov_count, msg->context,
		   flags & ~FI_INJECT, want_comp(ep->tx_selective, flags),
		   false, 0, msg->rma_iov, msg->rma_iov_count);
}

static ssize_t ep_write(struct fid_ep *fid, const void *buf, size_t len,
			void *desc, fi_addr_t dest_addr, uint64_t addr,
			uint64_t key, void *context)
{
	struct sp_ep *ep = EP(fid);
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct fi_rma_iov r = {.addr = addr, .len = len, .key = key};

	return rma(fid, OP_WRITE, &iov, 1, context, ep->tx_op_flags,
		   want_comp(ep->tx_selective, ep->tx_op_flags), false, 0, &r,
		   1);
}

static ssize_t ep_writev(struct fid_ep *fid, const struct iovec *iov,
			 void **desc, size_t count, fi_addr_t dest_addr,
			 uint64_t addr, uint64_t key, void *context)
{
	struct sp_ep *ep = EP(fid);
	struct fi_rma_iov r = {
		.addr = addr, .len = sp_iov_total(iov, count), .key = key};

	return rma(fid, OP_WRITE, iov, count, context, ep->tx_op_flags,
		   want_comp(ep->tx_selective, ep->tx_op_flags), false, 0, &r,
		   1);
}

static ssize_t ep_writemsg(struct fid_ep *fid, const struct fi_msg_rma *msg,
			   uint64_t flags)
{
	struct sp_ep *ep = EP(fid);

	return rma(fid, OP_WRITE, msg->msg_iov, msg->iov_count, msg->context,
		   flags, want_comp(ep->tx_selective, flags),
		   flags & FI_REMOTE_CQ_DATA, msg->data, msg->rma_iov,
		   msg->rma_iov_count);
}

static ssize_t ep_writedata(struct fid_ep *fid, const void *buf, size_t len,
			    void *desc, uint64_t data, fi_addr_t dest_addr,
			    uint64_t addr, uint64_t key, void *context)
{
	struct sp_ep *ep = EP(fid);
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct fi_rma_iov r = {.addr = addr, .len = len, .key = key};

	return rma(fid, OP_WRITE, &iov, 1, context, ep->tx_op_flags,
		   want_comp(ep->tx_selective, ep->tx_op_flags), true, data, &r,
		   1);
}

static ssize_t ep_inject_write(struct fid_ep *fid, const void *buf, size_t len,
			       fi_addr_t dest_addr, uint64_t addr, uint64_t key)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct fi_rma_iov r = {.addr = addr, .len = len, .key = key};

	return rma(fid, OP_WRITE, &iov, 1, NULL, FI_INJECT, false, false, 0, &r,
		   1);
}

static ssize_t ep_inject_writedata(struct fid_ep *fid, const void *buf,
				   size_t len, uint64_t data,
				   fi_addr_t dest_addr, uint64_t addr,
				   uint64_t key)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct fi_rma_iov r = {.addr = addr, .len = len, .key = key};

	return rma(fid, OP_WRITE, &iov, 1, NULL, FI_INJECT, false, true, data,
		   &r, 1);
}

static struct fi_ops_rma rma_ops = {
	.size = sizeof(struct fi_ops_rma),
	.read = ep_read,
	.readv = ep_readv,
	.readmsg = ep_readmsg,
	.write = ep_write,
	.writev = ep_writev,
	.writemsg = ep_writemsg,
	.inject = ep_inject_write,
	.writedata = ep_writedata,
	.injectdata = ep_inject_writedata,
};

/* ---- endpoint object --------------------------------------------------- */

static ssize_t ep_cancel(fid_t fid, void *context)
{
	struct sp_ep *ep = SP_CONTAINER(fid, struct sp_ep, fid.fid);
	ssize_t rc;

	sp_lock(ep->fab);
	rc = ep->closed ? -FI_EINVAL : sp_ep_cancel_rx(ep, context);
	sp_unlock(ep->fab);
	return rc;
}

static int no_tx_ctx(struct fid_ep *sep, int index, struct fi_tx_attr *attr,
		     struct fid_ep **tx_ep, void *context)
{
	return -FI_ENOSYS;
}

static int no_rx_ctx(struct fid_ep *sep, int index, struct fi_rx_attr *attr,
		     struct fid_ep **rx_ep, void *context)
{
	return -FI_ENOSYS;
}

static ssize_t ep_rx_size_left(struct fid_ep *fid)
{
	struct sp_ep *ep = EP(fid);

	return (ssize_t)(SP_RX_SIZE - ep->rx_count);
}

static ssize_t ep_tx_size_left(struct fid_ep *fid)
{
	struct sp_ep *ep = EP(fid);

	return (ssize_t)(SP_TX_SIZE - ep->tx_count);
}

static struct fi_ops_ep ep_ops = {
	.size = sizeof(struct fi_ops_ep),
	.cancel = ep_cancel,
	.getopt = sp_getopt,
	.setopt = sp_setopt,
	.tx_ctx = no_tx_ctx,
	.rx_ctx = no_rx_ctx,
	.rx_size_left = ep_rx_size_left,
	.tx_size_left = ep_tx_size_left,
};

static int ep_bind(struct fid *fid, struct fid *bfid, uint64_t flags)
{
	struct sp_ep *ep = SP_CONTAINER(fid, struct sp_ep, fid.fid);
	int rc = 0;

	sp_lock(ep->fab);
	switch (bfid->fclass) {
	case FI_CLASS_CQ: {
		struct sp_cq *cq = SP_CONTAINER(bfid, struct sp_cq, fid.fid);

		if ((flags & FI_TRANSMIT && ep->tx_cq) ||
		    (flags & FI_RECV && ep->rx_cq)) {
			rc = -FI_EINVAL;
			break;
		}
		if (flags & FI_TRANSMIT) {
			ep->tx_cq = cq;
			ep->tx_selective = flags & FI_SELECTIVE_COMPLETION;
			cq->refs++;
		}
		if (flags & FI_RECV) {
			ep->rx_cq = cq;
			ep->rx_selective = flags & FI_SELECTIVE_COMPLETION;
			cq->refs++;
		}
		break;
	}
	case FI_CLASS_EQ:
		if (ep->eq) {
			rc = -FI_EINVAL;
			break;
		}
		ep->eq = SP_CONTAINER(bfid, struct sp_eq, fid.fid);
		ep->eq->refs++;
		break;
	default:
		rc = -FI_ENOSYS;
	}
	sp_unlock(ep->fab);
	return rc;
}

static int ep_control(struct fid *fid, int command, void *arg)
{
	struct sp_ep *ep = SP_CONTAINER(fid, struct sp_ep, fid.fid);

	switch (command) {
	case FI_ENABLE:
		ep->enabled = true;
		return 0;
	case FI_GETOPSFLAG:
		if (!arg)
			return -FI_EINVAL;
		if (*(uint64_t *)arg & FI_TRANSMIT)
			*(uint64_t *)arg = ep->tx_op_flags;
		else
			*(uint64_t *)arg = ep->rx_op_flags;
		return 0;
	case FI_SETOPSFLAG:
		if (!arg)
			return -FI_EINVAL;
		if (*(uint64_t *)arg & FI_TRANSMIT)
			ep->tx_op_flags = *(uint64_t *)arg & ~FI_TRANSMIT;
		else
			ep->rx_op_flags = *(uint64_t *)arg & ~FI_RECV;
		return 0;
	default:
		return -FI_ENOSYS;
	}
}

static int ep_close(struct fid *fid)
{
	struct sp_ep *ep = SP_CONTAINER(fid, struct sp_ep, fid.fid);
	struct sp_fabric *f = ep->fab;
	struct sp_cq *tx = ep->tx_cq, *rx = ep->rx_cq;

	sp_lock(f);
	/* No completions for what is still queued: the endpoint is gone. */
	ep->tx_cq = ep->rx_cq = NULL;
	sp_ep_fail(ep, SRDMA_ECLOSED, "The endpoint was closed.");
	if (ep->conn) {
		/* An orderly close finishes in the background (our goodbye
		 * goes after every record already queued to the peer). */
		sp_conn_linger(f, ep->conn, ep->sctx);
		ep->conn = NULL;
	}
	if (ep->eq)
		ep->eq->refs--;
	if (tx)
		tx->refs--;
	if (rx)
		rx->refs--;
	ep->dom->refs--;
	free(ep->staging);
	ep->staging = NULL;
	fi_freeinfo(ep->info);
	ep->info = NULL;
	/*
	 * The struct stays until its domain closes: completions already
	 * queued for it are still delivered, and ofi_rxm, flushing its
	 * CQ right after closing a connection's endpoint, reposts the
	 * receive buffer of such a completion to it; the shell answers
	 * -FI_EINVAL instead of being freed memory.
	 */
	ep->closed = true;
	sp_list_add_tail(&f->zombies, &ep->zombie_link);
	sp_unlock(f);
	return 0;
}

void sp_ep_free_zombies(struct sp_fabric *f, struct sp_domain *d)
{
	struct sp_list *e, *next;

	for (e = f->zombies.next; e != &f->zombies; e = next) {
		struct sp_ep *ep = SP_CONTAINER(e, struct sp_ep, zombie_link);

		next = e->next;
		if (d && ep->dom != d)
			continue;
		sp_list_del(&ep->zombie_link);
		free(ep);
	}
}

static struct fi_ops ep_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = ep_close,
	.bind = ep_bind,
	.control = ep_control,
	.ops_open = sp_no_ops_open,
};

int sp_endpoint(struct fid_domain *domain, struct fi_info *info,
		struct fid_ep **out, void *context)
{
	struct sp_domain *d = SP_CONTAINER(domain, struct sp_domain, fid);
	struct sp_fabric *f = d->fab;
	struct sp_sctx *s;
	srdma_conn *conn;
	struct sp_ep *ep;
	int rc;

	if (!info || (info->ep_attr && info->ep_attr->type != FI_EP_MSG &&
		      info->ep_attr->type != FI_EP_UNSPEC))
		return -FI_EINVAL;
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -FI_ENOMEM;
	ep->info = fi_dupinfo(info);
	if (!ep->info) {
		free(ep);
		return -FI_ENOMEM;
	}
	ep->own.kind = SP_OWN_EP;
	ep->fab = f;
	ep->dom = d;
	ep->tx_op_flags = info->tx_attr ? info->tx_attr->op_flags : 0;
	ep->rx_op_flags = info->rx_attr ? info->rx_attr->op_flags : 0;
	sp_list_init(&ep->txq);
	sp_list_init(&ep->reads);
	sp_list_init(&ep->busy_link);
	sp_list_init(&ep->rxq);
	sp_list_init(&ep->unexp);
	ep->fid.fid.fclass = FI_CLASS_EP;
	ep->fid.fid.context = context;
	ep->fid.fid.ops = &ep_fi_ops;
	ep->fid.ops = &ep_ops;
	ep->fid.cm = &sp_ep_cm_ops;
	ep->fid.msg = &msg_ops;
	ep->fid.rma = &rma_ops;
	ep->fid.tagged = &sp_no_tagged_ops;
	ep->fid.atomic = &sp_no_atomic_ops;
	ep->fid.collective = &sp_no_collective_ops;

	sp_lock(f);
	if (info->handle) {
		rc = sp_creq_take(f, info->handle, &conn, &s);
		if (rc == 0) {
			rc = sp_ep_attach(ep, conn, s);
			if (rc < 0) {
				sp_conn_linger(f, conn, s);
				rc = -FI_ENOMEM;
			}
		}
		if (rc) {
			sp_unlock(f);
			fi_freeinfo(ep->info);
			free(ep);
			return rc;
		}
		ep->state = EP_ACCEPTING;
	}
	d->refs++;
	sp_unlock(f);
	*out = &ep->fid;
	return 0;
}
