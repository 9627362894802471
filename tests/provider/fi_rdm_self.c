/* SPDX-License-Identifier: MIT */
/*
 * ofi_rxm over the srdma provider as an application that waits sees it:
 * an FI_EP_RDM endpoint with a CQ that has a wait fd (FI_GETWAIT), a
 * tagged message to its own address (ofi_rxm connects to its own passive
 * endpoint through srdma), completions read with fi_cq_sread. Prints
 * "fi_rdm_self: OK" and exits 0 when the message arrived intact.
 */
#include <stdio.h>
#include <string.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_tagged.h>

#define CHECK(call)                                                            \
	do {                                                                   \
		int rc__ = (int)(call);                                        \
		if (rc__) {                                                    \
			fprintf(stderr, "fi_rdm_self: %s: %s\n", #call,        \
				fi_strerror(-rc__));                           \
			return 1;                                              \
		}                                                              \
	} while (0)

int main(void)
{
	struct fi_info *hints = fi_allocinfo(), *fi;
	struct fi_av_attr aa = {.type = FI_AV_MAP};
	struct fi_cq_attr ca = {.format = FI_CQ_FORMAT_TAGGED,
				.wait_obj = FI_WAIT_FD};
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_ep *ep;
	struct fi_cq_tagged_entry e[2];
	char name[64], in[32] = "", out[] = "hello, myself";
	size_t nl = sizeof(name);
	fi_addr_t self;
	int got = 0, fd = -1;

	hints->ep_attr->type = FI_EP_RDM;
	hints->caps = FI_TAGGED;
	hints->fabric_attr->prov_name = strdup("srdma;ofi_rxm");
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
				      FI_MR_PROV_KEY | FI_MR_ALLOCATED;
	CHECK(fi_getinfo(FI_VERSION(1, 17), NULL, NULL, 0, hints, &fi));
	CHECK(fi_fabric(fi->fabric_attr, &fabric, NULL));
	CHECK(fi_domain(fabric, fi, &domain, NULL));
	CHECK(fi_av_open(domain, &aa, &av, NULL));
	CHECK(fi_cq_open(domain, &ca, &cq, NULL));
	CHECK(fi_endpoint(domain, fi, &ep, NULL));
	CHECK(fi_ep_bind(ep, &av->fid, 0));
	CHECK(fi_ep_bind(ep, &cq->fid, FI_TRANSMIT | FI_RECV));
	CHECK(fi_enable(ep));
	CHECK(fi_control(&cq->fid, FI_GETWAIT, &fd));
	CHECK(fi_getname(&ep->fid, name, &nl));
	if (fi_av_insert(av, name, 1, &self, 0, NULL) != 1) {
		fprintf(stderr, "fi_rdm_self: fi_av_insert failed\n");
		return 1;
	}
	CHECK(fi_trecv(ep, in, sizeof(in), NULL, FI_ADDR_UNSPEC, 7, 0, NULL));
	for (;;) {
		ssize_t n = fi_tsend(ep, out, sizeof(out), NULL, self, 7, NULL);

		if (n == 0)
			break;
		if (n != -FI_EAGAIN) {
			fprintf(stderr, "fi_rdm_self: fi_tsend: %s\n",
				fi_strerror((int)-n));
			return 1;
		}
		(void)fi_cq_read(cq, NULL, 0); /* progress the connect */
	}
	while (got < 2) {
		ssize_t n = fi_cq_sread(cq, e, 2 - (size_t)got, NULL, 10000);

		if (n <= 0) {
			fprintf(stderr, "fi_rdm_self: fi_cq_sread: %s\n",
				fi_strerror((int)-n));
			return 1;
		}
		got += (int)n;
	}
	if (strcmp(in, out)) {
		fprintf(stderr, "fi_rdm_self: received '%.31s'\n", in);
		return 1;
	}
	fi_close(&ep->fid);
	fi_close(&cq->fid);
	fi_close(&av->fid);
	fi_close(&domain->fid);
	fi_close(&fabric->fid);
	fi_freeinfo(fi);
	fi_freeinfo(hints);
	printf("fi_rdm_self: OK: a tagged message to itself through "
	       "srdma;ofi_rxm, completions by fi_cq_sread on wait fd %d\n",
	       fd);
	return 0;
}
