/* SPDX-License-Identifier: MIT */
/*
 * Development PKI for `srdma certs` (the tool's, not the library's; tests
 * use it too). Functions return 0, or -1 with one sentence in pki_error().
 */
#ifndef SRDMA_TOOL_PKI_H
#define SRDMA_TOOL_PKI_H

#include <stdbool.h>

#define PKI_WUR __attribute__((warn_unused_result))

struct pki_opts {
	const char *dir;
	const char *const
		*server_names; /* extra SANs (DNS or IP), NULL-terminated */
	const char *const *clients; /* client identities; NULL = {"client"} */
	bool force;		    /* overwrite existing files */
	int days;		    /* validity, default 825 */
	/* Test hooks: a certificate window in the past or future. */
	long not_before_offset_s; /* added to now for notBefore */
	long not_after_offset_s;  /* if non-zero, notAfter = now + this */
};

/*
 * Writes DIR/ca.crt, ca.key, server.crt, server.key and NAME.crt/NAME.key
 * for each client. The server's SANs cover localhost, 127.0.0.1, ::1, the
 * host name and server_names. Keys are written 0600. Refuses to overwrite
 * any existing file unless force.
 */
int pki_write(const struct pki_opts *o) PKI_WUR;

/*
 * Issues one more certificate signed by DIR/ca.{crt,key}: NAME.crt and
 * NAME.key, with the given SANs (may be NULL) and validity offsets. Used by
 * tests for expired / not-yet-valid / wrong-name certificates.
 */
int pki_issue(const char *dir, const char *name, bool server,
	      const char *const *sans, long not_before_offset_s,
	      long not_after_offset_s) PKI_WUR;

/* Why the last failing call in this thread failed ("" if none has). */
const char *pki_error(void);

/*
 * Writes a CRL signed by DIR/ca.{crt,key} to out (PEM), revoking the
 * certificates DIR/NAME.crt of the NULL-terminated names (may be NULL:
 * an empty CRL). lastUpdate = now + last_update_offset_s; nextUpdate = now
 * + next_update_offset_s (0 = 7 days; negative = already expired, for
 * tests).
 */
int pki_crl(const char *dir, const char *out, const char *const *revoke,
	    long last_update_offset_s, long next_update_offset_s) PKI_WUR;

#endif
