/* SPDX-License-Identifier: MIT */
/*
 * ofi backend: the fabric. fi_info hints, the provider's fi_info and
 * fi_fabric at open (ordering, key mode), close, and closing fids.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rdma/fi_errno.h>

#include "transport/ofi/ofi_int.h"

/* The session posts an RDMA write then a send notice and relies on the send
 * arriving after the write data is placed. */
#define ORDER_WANT (FI_ORDER_SAW | FI_ORDER_SAS | FI_ORDER_WAW | FI_ORDER_RAW)

/* ---- helpers ---------------------------------------------------------- */

struct fi_info *srdma__ofi_make_hints(const char *prov, const char *device,
				      uint64_t order)
{
	struct fi_info *h = fi_allocinfo();

	if (!h)
		return NULL;
	h->ep_attr->type = FI_EP_MSG;
	h->caps = FI_MSG | FI_RMA;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	/* No mode bits: the application picks keys (no FI_MR_PROV_KEY) and
	 * needs no local registration for anything the provider can do. */
	h->domain_attr->mr_mode = 0;
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->tx_attr->msg_order = order;
	h->rx_attr->msg_order = order;
	h->fabric_attr->prov_name = strdup(prov);
	if (device && *device)
		h->domain_attr->name = strdup(device);
	if (!h->fabric_attr->prov_name ||
	    (device && *device && !h->domain_attr->name)) {
		fi_freeinfo(h);
		return NULL;
	}
	return h;
}

int srdma__ofi_close_fid(struct fid *f, const char *what, struct ofi *o)
{
	int rc;

	if (!f)
		return 0;
	rc = fi_close(f);
	if (rc)
		srdma__log(o->tp->log, SRDMA_LOG_WARN, "ofi: fi_close(%s): %s",
			   what, fi_strerror(-rc));
	return rc;
}

/* ---- open / close ----------------------------------------------------- */

/* fi_getinfo and fi_fabric; runs in the init thread, so errors go to
 * o->init_err (the thread's error detail is its own). */
static int fabric_init(struct ofi *o)
{
	const char *device = o->device[0] ? o->device : NULL;
	struct fi_info *hints, *info = NULL;
	int rc, ret;

	hints = srdma__ofi_make_hints(o->prov, device, o->order);
	if (!hints)
		return srdma__err(SRDMA_ENOMEM,
				  "out of memory for fi_info hints");
	rc = fi_getinfo(OFI_API, NULL, NULL, 0, hints, &info);
	if (rc == -FI_ENODATA) {
		/* Ordering not offered: continue, but say so loudly. */
		hints->tx_attr->msg_order = hints->rx_attr->msg_order = 0;
		rc = fi_getinfo(OFI_API, NULL, NULL, 0, hints, &info);
		if (!rc) {
			o->order = info->tx_attr->msg_order;
			snprintf(o->init_warn, sizeof(o->init_warn),
				 "ofi: provider %s does not guarantee "
				 "send-after-write ordering",
				 o->prov);
		}
	}
	fi_freeinfo(hints);
	if (rc)
		return srdma__err(SRDMA_ENODEV,
				  "libfabric provider \"%s\"%s%s offers no "
				  "FI_EP_MSG endpoint with FI_MSG|FI_RMA and "
				  "application-chosen keys (%s); `fi_info -t "
				  "FI_EP_MSG` lists the providers available",
				  o->prov, device ? " on " : "",
				  device ? device : "", fi_strerror(-rc));
	if (info->domain_attr->mr_mode & FI_MR_PROV_KEY) {
		ret = srdma__err(
			SRDMA_ENODEV,
			"libfabric provider \"%s\" insists on choosing "
			"memory keys itself (predictable keys are "
			"refused)",
			o->prov);
		goto out_free_info;
	}
	/* FI_DELIVERY_COMPLETE for writes that ask (SRDMA_TP_F_DELIVERED):
	 * a write to a bad key drops the connection while the default
	 * completion would still report success. */
	o->write_flags = FI_DELIVERY_COMPLETE;
	rc = fi_fabric(info->fabric_attr, &o->fabric, o);
	if (rc) {
		ret = srdma__err(SRDMA_ENODEV, "fi_fabric(%s): %s", o->prov,
				 fi_strerror(-rc));
		goto out_free_info;
	}
	o->info = info;
	return 0;

out_free_info:
	fi_freeinfo(info);
	return ret;
}

static void *init_main(void *arg)
{
	struct ofi *o = arg;

	o->init_rc = fabric_init(o);
	if (o->init_rc < 0)
		srdma__err_copy(o->init_err, sizeof(o->init_err));
	return NULL;
}

int srdma__ofi_ready(struct ofi *o)
{
	if (o->init_running) {
		pthread_join(o->init_thread, NULL);
		o->init_running = false;
		if (o->init_warn[0])
			srdma__log(o->tp->log, SRDMA_LOG_WARN, "%s",
				   o->init_warn);
		if (o->init_rc == 0)
			srdma__log(o->tp->log, SRDMA_LOG_DEBUG,
				   "ofi: provider %s, mr_mode 0x%x, msg_order "
				   "0x%" PRIx64,
				   o->prov,
				   (unsigned)o->info->domain_attr->mr_mode,
				   o->order);
	}
	if (o->init_rc < 0)
		return srdma__err(o->init_rc, "%s", o->init_err);
	return 0;
}

int srdma__ofi_open(struct srdma__tp *tp, const char *provider,
		    const char *device)
{
	const char *prov = provider && *provider ? provider : "tcp";
	struct ofi *o;
	int rc;

	o = calloc(1, sizeof(*o));
	ENSURE(o, SRDMA_ENOMEM, "out of memory opening libfabric");
	o->tp = tp;
	snprintf(o->prov, sizeof(o->prov), "%s", prov);
	if (device)
		snprintf(o->device, sizeof(o->device), "%s", device);
	o->order = ORDER_WANT;
	/* Off the caller's path: see struct ofi. If no thread can be made,
	 * do it here. */
	rc = pthread_create(&o->init_thread, NULL, init_main, o);
	if (rc == 0) {
		o->init_running = true;
	} else {
		rc = fabric_init(o);
		if (rc < 0) {
			free(o);
			return rc;
		}
	}
	tp->priv = o;
	return 0;
}

void srdma__ofi_close(struct srdma__tp *tp)
{
	struct ofi *o;

	if (!tp || !tp->priv)
		return;
	o = tp->priv;
	IGNORE_RESULT(srdma__ofi_ready(o));
	srdma__ofi_close_fid(o->fabric ? &o->fabric->fid : NULL, "fabric", o);
	fi_freeinfo(o->info);
	free(o);
	tp->priv = NULL;
}
