/* SPDX-License-Identifier: MIT */
/*
 * One-time connect token (DESIGN.md §3 step 3): the server hands a random
 * secret to the client over TLS; the fabric connect carries a MAC keyed by
 * it, which the server checks once, in constant time, before the deadline.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "protect/protect.h"
#include "protect/protect_int.h"

static const char token_label[] = "srdma connect v1";

int srdma__token_new(struct srdma__token *t, uint64_t now_ms, uint32_t ttl_ms)
{
	int rc;

	ENSURE(t, SRDMA_EINVAL, "token_new: NULL token");
	memset(t, 0, sizeof(*t));
	rc = srdma__random(t->secret, sizeof(t->secret));
	if (rc < 0)
		goto out_wipe;
	/* Session id 0 means "none" on the wire: never hand it out. */
	while (t->session_id == 0) {
		rc = srdma__random(&t->session_id, sizeof(t->session_id));
		if (rc < 0)
			goto out_wipe;
	}
	t->deadline_ms =
		now_ms > UINT64_MAX - ttl_ms ? UINT64_MAX : now_ms + ttl_ms;
	t->used = false;
	return 0;

out_wipe:
	srdma__token_wipe(t);
	return rc;
}

int srdma__token_mac(const uint8_t secret[static SRDMA_TOKEN_LEN],
		     uint64_t session_id, uint32_t initiator_id,
		     uint8_t mac[static SRDMA_MAC_LEN])
{
	uint8_t msg[sizeof(token_label) - 1 + 8 + 4];
	uint8_t full[EVP_MAX_MD_SIZE];
	unsigned int full_len = 0;
	int rc = 0;

	ENSURE(secret && mac, SRDMA_EINVAL, "token_mac: NULL argument");
	memcpy(msg, token_label, sizeof(token_label) - 1);
	srdma__be64(msg + sizeof(token_label) - 1, session_id);
	srdma__be32(msg + sizeof(token_label) - 1 + 8, initiator_id);
	if (!HMAC(EVP_sha256(), secret, SRDMA_TOKEN_LEN, msg, sizeof(msg), full,
		  &full_len) ||
	    full_len != SRDMA_MAC_LEN) {
		rc = srdma__ossl_err(SRDMA_ESYS, "HMAC-SHA256 for the token");
		goto out_wipe;
	}
	memcpy(mac, full, SRDMA_MAC_LEN);
out_wipe:
	OPENSSL_cleanse(full, sizeof(full));
	return rc;
}

int srdma__token_check(struct srdma__token *t, uint64_t session_id,
		       uint32_t initiator_id,
		       const uint8_t peer_mac[static SRDMA_MAC_LEN],
		       uint64_t now_ms)
{
	uint8_t mac[SRDMA_MAC_LEN];
	bool was_used;
	int rc;

	ENSURE(t, SRDMA_ETOKEN, "token_check: no token");
	/* Burn first: whatever happens below, there is no second try. */
	was_used = t->used;
	t->used = true;
	if (!peer_mac) {
		rc = srdma__err(SRDMA_ETOKEN, "no connect private data");
		goto out_burn;
	}
	if (was_used) {
		rc = srdma__err(SRDMA_ETOKEN, "the connect token was already "
					      "used");
		goto out_burn;
	}
	if (t->session_id == 0 || session_id != t->session_id) {
		rc = srdma__err(SRDMA_ETOKEN,
				"the connect token names an unknown session");
		goto out_burn;
	}
	if (now_ms > t->deadline_ms) {
		rc = srdma__err(SRDMA_ETOKEN,
				"the connect token expired %llu ms ago",
				(unsigned long long)(now_ms - t->deadline_ms));
		goto out_burn;
	}
	rc = srdma__token_mac(t->secret, session_id, initiator_id, mac);
	if (rc < 0) {
		rc = SRDMA_ETOKEN; /* detail already says what failed */
		goto out_wipe_mac;
	}
	if (CRYPTO_memcmp(mac, peer_mac, sizeof(mac)) != 0)
		rc = srdma__err(SRDMA_ETOKEN,
				"the connect token MAC does not match");
out_wipe_mac:
	OPENSSL_cleanse(mac, sizeof(mac));
out_burn:
	OPENSSL_cleanse(t->secret, sizeof(t->secret));
	return rc;
}

void srdma__token_wipe(struct srdma__token *t)
{
	if (!t)
		return;
	OPENSSL_cleanse(t, sizeof(*t));
	/* A wiped token must never verify anything. */
	t->used = true;
}
