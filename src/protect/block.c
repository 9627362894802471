/* SPDX-License-Identifier: MIT */
/*
 * Sealed blocks: an exposed region is kept as fixed-stride blocks so that a
 * reader can verify what an RDMA read returned and the owner can verify what
 * a peer RDMA-wrote (DESIGN.md §4 "Read"). Layout of one block in modes
 * integrity and encrypt (docs/PROTOCOL.md §7):
 *   [0,16)          header: u64 version, u32 valid_len, u8 writer, u8 owner,
 *                   u16 zero
 *   [16,32)         tag
 *   [32,32+len)     payload (ciphertext in ENCRYPT); bytes past valid_len
 *                   are not covered, not read, never returned
 * so a block of len payload bytes is 32 + len contiguous bytes: a short
 * write moves no more. Nonce = salt XOR (owner:1 | region_id:15 | index:32 |
 * version:48); AAD = u32 owner:1|region_id:31, u64 index, header. A block
 * moved to another slot, region or owner fails to open.
 * Mode NONE keeps plain payload, 4096 bytes a block, no header at all:
 * nothing is verified there, and the layout is plain memory.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "protect/protect.h"
#include "protect/protect_int.h"

enum {
	BLK_AAD_LEN = 4 + 8 + SRDMA_BLK_HDR_LEN,
	BLK_TAG_OFF = SRDMA_BLK_HDR_LEN,
	BLK_PAYLOAD_OFF = SRDMA_BLK_HDR_LEN + SRDMA_TAG_LEN,
};

size_t srdma__block_stride(enum srdma_protect mode)
{
	return mode == SRDMA_PROTECT_NONE ? SRDMA_BLK_PAYLOAD
					  : BLK_PAYLOAD_OFF + SRDMA_BLK_PAYLOAD;
}

size_t srdma__block_payload_off(enum srdma_protect mode)
{
	return mode == SRDMA_PROTECT_NONE ? 0 : BLK_PAYLOAD_OFF;
}

size_t srdma__block_used(enum srdma_protect mode, size_t len)
{
	return srdma__block_payload_off(mode) + len;
}

static void block_nonce(const struct srdma__aead *k, uint8_t owner,
			uint32_t region_id, uint64_t index, uint64_t version,
			uint8_t nonce[static SRDMA_SALT_LEN])
{
	uint8_t ctr[SRDMA_SALT_LEN];

	srdma__be16(ctr, (uint16_t)((unsigned)owner << 15 | region_id));
	srdma__be32(ctr + 2, (uint32_t)index);
	/* 48-bit version in the last 6 bytes. */
	for (int i = 0; i < 6; i++)
		ctr[6 + i] = (uint8_t)(version >> (40 - 8 * i));
	for (int i = 0; i < SRDMA_SALT_LEN; i++)
		nonce[i] = k->salt[i] ^ ctr[i];
}

static void block_aad(uint8_t owner, uint32_t region_id, uint64_t index,
		      const uint8_t *hdr, uint8_t aad[static BLK_AAD_LEN])
{
	srdma__be32(aad, (uint32_t)owner << 31 | region_id);
	srdma__be64(aad + 4, index);
	memcpy(aad + 12, hdr, SRDMA_BLK_HDR_LEN);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static int check_slot(uint8_t owner, uint32_t region_id, uint64_t index,
		      int err)
{
	ENSURE(owner <= 1, err, "block: owner %u is not 0 or 1", owner);
	ENSURE(region_id >= 1 && region_id <= SRDMA_BLK_MAX_REGION, err,
	       "block: region id %u is outside 1..%d", region_id,
	       SRDMA_BLK_MAX_REGION);
	ENSURE(index <= UINT32_MAX, err,
	       "block: block index %llu does not fit 32 bits",
	       (unsigned long long)index);
	return 0;
}

int srdma__block_seal(struct srdma__aead *k, uint8_t owner, uint32_t region_id,
		      uint64_t index, uint64_t version, uint8_t writer,
		      const void *in, size_t len, uint8_t *out)
{
	uint8_t nonce[SRDMA_SALT_LEN], aad[BLK_AAD_LEN];
	uint8_t *payload;
	size_t used;
	int rc = 0;

	GUARD(srdma__aead_ready(k));
	ENSURE(out && (in || len == 0), SRDMA_EINVAL,
	       "block_seal: NULL buffer");
	GUARD(check_slot(owner, region_id, index, SRDMA_EINVAL));
	ENSURE(len <= SRDMA_BLK_PAYLOAD, SRDMA_EMSGSIZE,
	       "block_seal: %zu bytes do not fit a %d-byte block", len,
	       SRDMA_BLK_PAYLOAD);
	used = srdma__block_used(k->mode, len);
	ENSURE(!(len && (uintptr_t)in < (uintptr_t)out + used &&
		 (uintptr_t)out < (uintptr_t)in + len),
	       SRDMA_EINVAL, "block_seal: input and output overlap");
	if (k->mode == SRDMA_PROTECT_NONE) {
		/* Plain memory: no header, no version. */
		if (len)
			memcpy(out, in, len);
		return 0;
	}
	ENSURE(version != 0, SRDMA_EINVAL,
	       "block_seal: version 0 is reserved for never-written blocks");
	ENSURE(version <= SRDMA_BLOCK_VERSION_MAX, SRDMA_EEXHAUSTED,
	       "block_seal: block version counter is exhausted; reconnect");
	ENSURE(writer <= 1, SRDMA_EINVAL, "block_seal: writer %u is not 0 or 1",
	       writer);

	srdma__be64(out, version);
	srdma__be32(out + 8, (uint32_t)len);
	out[12] = writer;
	out[13] = owner;
	out[14] = out[15] = 0;
	payload = out + BLK_PAYLOAD_OFF;
	block_nonce(k, owner, region_id, index, version, nonce);
	block_aad(owner, region_id, index, out, aad);

	if (k->mode == SRDMA_PROTECT_ENCRYPT) {
		rc = srdma__aead_op(k, true, nonce, aad, sizeof(aad), NULL, 0,
				    in, payload, len, out + BLK_TAG_OFF);
	} else {
		if (len)
			memcpy(payload, in, len);
		rc = srdma__aead_op(k, true, nonce, aad, sizeof(aad), payload,
				    len, NULL, NULL, 0, out + BLK_TAG_OFF);
	}
	if (rc < 0)
		OPENSSL_cleanse(out, used);
	return rc;
}

static int open_fail(uint8_t *out, struct srdma__block_info *info, int rc)
{
	if (out)
		OPENSSL_cleanse(out, SRDMA_BLK_PAYLOAD);
	if (info)
		memset(info, 0, sizeof(*info));
	return rc;
}

int srdma__block_peek(const uint8_t *in, struct srdma__block_info *info)
{
	uint64_t version = srdma__get_be64(in);
	uint32_t len = srdma__get_be32(in + 8);

	memset(info, 0, sizeof(*info));
	if (in[12] > 1 || in[13] > 1 || in[14] || in[15] ||
	    len > SRDMA_BLK_PAYLOAD || version == 0 ||
	    version > SRDMA_BLOCK_VERSION_MAX)
		return SRDMA_EINTEGRITY;
	info->version = version;
	info->len = len;
	info->writer = in[12];
	return 0;
}

int srdma__block_open(struct srdma__aead *keys[2], uint8_t owner,
		      uint32_t region_id, uint64_t index, const uint8_t *in,
		      bool allow_empty, uint8_t *out,
		      struct srdma__block_info *info)
{
	uint8_t hdr[SRDMA_BLK_HDR_LEN], tag[SRDMA_TAG_LEN];
	uint8_t nonce[SRDMA_SALT_LEN], aad[BLK_AAD_LEN];
	struct srdma__block_info bi;
	struct srdma__aead *k;
	enum srdma_protect mode;
	int rc = 0;

	/* The contract: every failure is SRDMA_EINTEGRITY with out zeroed. */
	if (!keys || (!keys[0] && !keys[1]) || !in || !out)
		return open_fail(out, info,
				 srdma__err(SRDMA_EINTEGRITY,
					    "block_open: NULL argument"));
	mode = keys[0] ? keys[0]->mode : keys[1]->mode;
	if (keys[0] && keys[1] && keys[0]->mode != keys[1]->mode)
		return open_fail(out, info,
				 srdma__err(SRDMA_EINTEGRITY,
					    "block_open: the two writers' keys "
					    "are for different modes"));
	if (mode > SRDMA_PROTECT_ENCRYPT ||
	    check_slot(owner, region_id, index, SRDMA_EINTEGRITY) < 0)
		return open_fail(out, info,
				 srdma__err(SRDMA_EINTEGRITY,
					    "block_open: mode %d, owner %u, "
					    "region %u or index %llu out of "
					    "range",
					    (int)mode, owner, region_id,
					    (unsigned long long)index));
	if (mode == SRDMA_PROTECT_NONE) {
		/* Plain memory: nothing to verify. */
		memcpy(out, in, SRDMA_BLK_PAYLOAD);
		if (info) {
			memset(info, 0, sizeof(*info));
			info->len = SRDMA_BLK_PAYLOAD;
		}
		return 0;
	}

	/* Never written: only where the caller says it may be. */
	if (all_zero(in, BLK_PAYLOAD_OFF)) {
		if (!allow_empty)
			return open_fail(out, info,
					 srdma__err(SRDMA_EINTEGRITY,
						    "block %llu of region %u "
						    "was never written (or "
						    "was erased)",
						    (unsigned long long)index,
						    region_id));
		memset(out, 0, SRDMA_BLK_PAYLOAD);
		if (info)
			memset(info, 0, sizeof(*info));
		return 0;
	}

	/*
	 * in may be registered memory the peer can still write: read every
	 * byte that is checked exactly once into private memory (header,
	 * tag, payload into out) and verify those copies, never in itself.
	 */
	memcpy(hdr, in, sizeof(hdr));
	if (srdma__block_peek(hdr, &bi) < 0 || hdr[13] != owner)
		return open_fail(out, info,
				 srdma__err(SRDMA_EINTEGRITY,
					    "block %llu of region %u has a "
					    "malformed header",
					    (unsigned long long)index,
					    region_id));
	k = keys[bi.writer];
	if (!k)
		return open_fail(out, info,
				 srdma__err(SRDMA_EINTEGRITY,
					    "block %llu of region %u names "
					    "writer %u, whose key is not "
					    "accepted here",
					    (unsigned long long)index,
					    region_id, bi.writer));
	if (srdma__aead_ready(k) < 0)
		return open_fail(out, info, SRDMA_EINTEGRITY);

	memcpy(tag, in + BLK_TAG_OFF, sizeof(tag));
	memcpy(out, in + BLK_PAYLOAD_OFF, bi.len);
	memset(out + bi.len, 0, SRDMA_BLK_PAYLOAD - bi.len);
	block_nonce(k, owner, region_id, index, bi.version, nonce);
	block_aad(owner, region_id, index, hdr, aad);
	if (mode == SRDMA_PROTECT_ENCRYPT)
		rc = srdma__aead_op(k, false, nonce, aad, sizeof(aad), NULL, 0,
				    out, out, bi.len, tag);
	else
		rc = srdma__aead_op(k, false, nonce, aad, sizeof(aad), out,
				    bi.len, NULL, NULL, 0, tag);
	if (rc == SRDMA_EINTEGRITY)
		rc = srdma__err(SRDMA_EINTEGRITY,
				"block %llu of region %u failed authentication",
				(unsigned long long)index, region_id);
	else if (rc < 0)
		/* Whatever went wrong, the caller learns only "not verified".
		 */
		rc = SRDMA_EINTEGRITY;
	if (rc < 0)
		return open_fail(out, info, rc);
	if (info)
		*info = bi;
	return 0;
}
