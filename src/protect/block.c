/* SPDX-License-Identifier: MIT */
/*
 * Sealed blocks: an exposed region is kept as fixed-stride blocks so that a
 * reader can verify what an RDMA read returned and the owner can verify what
 * a peer RDMA-wrote (DESIGN.md §4 "Read"). Layout of one block:
 *   [0,16)          header: u64 version, u32 valid_len, u8 writer, u8[3] 0
 *   [16,16+4096)    payload (ciphertext in ENCRYPT), zero past valid_len
 *   [4112,4128)     tag (absent in mode NONE)
 * Nonce = salt XOR (region_id:16 | index:32 | version:48); AAD = u32
 * region_id, u64 index, header, so a block moved to another slot or region
 * fails to open.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "protect/protect.h"
#include "protect/protect_int.h"

enum {
	BLK_AAD_LEN = 4 + 8 + SRDMA_BLK_HDR_LEN,
	BLK_TAG_OFF = SRDMA_BLK_HDR_LEN + SRDMA_BLK_PAYLOAD,
};

size_t srdma__block_stride(enum srdma_protect mode)
{
	return SRDMA_BLK_HDR_LEN + SRDMA_BLK_PAYLOAD +
	       (mode == SRDMA_PROTECT_NONE ? 0 : SRDMA_TAG_LEN);
}

static void block_nonce(const struct srdma__aead *k, uint32_t region_id,
			uint64_t index, uint64_t version,
			uint8_t nonce[static SRDMA_SALT_LEN])
{
	uint8_t ctr[SRDMA_SALT_LEN];

	srdma__be16(ctr, (uint16_t)region_id);
	srdma__be32(ctr + 2, (uint32_t)index);
	/* 48-bit version in the last 6 bytes. */
	for (int i = 0; i < 6; i++)
		ctr[6 + i] = (uint8_t)(version >> (40 - 8 * i));
	for (int i = 0; i < SRDMA_SALT_LEN; i++)
		nonce[i] = k->salt[i] ^ ctr[i];
}

static void block_aad(uint32_t region_id, uint64_t index, const uint8_t *hdr,
		      uint8_t aad[static BLK_AAD_LEN])
{
	srdma__be32(aad, region_id);
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

int srdma__block_seal(struct srdma__aead *k, uint32_t region_id, uint64_t index,
		      uint64_t version, uint8_t writer, const void *in,
		      size_t len, uint8_t *out)
{
	uint8_t nonce[SRDMA_SALT_LEN], aad[BLK_AAD_LEN];
	uint8_t *payload;
	size_t stride;
	int rc = 0;

	GUARD(srdma__aead_ready(k));
	ENSURE(out && (in || len == 0), SRDMA_EINVAL,
	       "block_seal: NULL buffer");
	ENSURE(region_id <= UINT16_MAX, SRDMA_EINVAL,
	       "block_seal: region id %u does not fit 16 bits", region_id);
	ENSURE(index <= UINT32_MAX, SRDMA_EINVAL,
	       "block_seal: block index %llu does not fit 32 bits",
	       (unsigned long long)index);
	ENSURE(version != 0, SRDMA_EINVAL,
	       "block_seal: version 0 is reserved for never-written blocks");
	ENSURE(version <= SRDMA_BLOCK_VERSION_MAX, SRDMA_EEXHAUSTED,
	       "block_seal: block version counter is exhausted; reconnect");
	ENSURE(writer <= 1, SRDMA_EINVAL, "block_seal: writer %u is not 0 or 1",
	       writer);
	ENSURE(len <= SRDMA_BLK_PAYLOAD, SRDMA_EMSGSIZE,
	       "block_seal: %zu bytes do not fit a %d-byte block", len,
	       SRDMA_BLK_PAYLOAD);
	stride = srdma__block_stride(k->mode);
	ENSURE(!(len && (uintptr_t)in < (uintptr_t)out + stride &&
		 (uintptr_t)out < (uintptr_t)in + len),
	       SRDMA_EINVAL, "block_seal: input and output overlap");

	srdma__be64(out, version);
	srdma__be32(out + 8, (uint32_t)len);
	out[12] = writer;
	out[13] = out[14] = out[15] = 0;
	payload = out + SRDMA_BLK_HDR_LEN;
	memset(payload + len, 0, SRDMA_BLK_PAYLOAD - len);
	block_nonce(k, region_id, index, version, nonce);
	block_aad(region_id, index, out, aad);

	switch (k->mode) {
	case SRDMA_PROTECT_ENCRYPT:
		rc = srdma__aead_op(k, true, nonce, aad, sizeof(aad), NULL, 0,
				    in, payload, len, out + BLK_TAG_OFF);
		break;
	case SRDMA_PROTECT_INTEGRITY:
		if (len)
			memcpy(payload, in, len);
		rc = srdma__aead_op(k, true, nonce, aad, sizeof(aad), payload,
				    len, NULL, NULL, 0, out + BLK_TAG_OFF);
		break;
	case SRDMA_PROTECT_NONE:
		if (len)
			memcpy(payload, in, len);
		break;
	}
	if (rc < 0)
		OPENSSL_cleanse(out, stride);
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

int srdma__block_open(struct srdma__aead *keys[2], uint32_t region_id,
		      uint64_t index, const uint8_t *in, bool allow_empty,
		      uint8_t *out, struct srdma__block_info *info)
{
	uint8_t hdr[SRDMA_BLK_HDR_LEN], tag[SRDMA_TAG_LEN];
	uint8_t nonce[SRDMA_SALT_LEN], aad[BLK_AAD_LEN];
	struct srdma__aead *k;
	enum srdma_protect mode;
	uint64_t version;
	uint32_t len;
	uint8_t writer;
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
	if (mode > SRDMA_PROTECT_ENCRYPT || region_id > UINT16_MAX ||
	    index > UINT32_MAX)
		return open_fail(out, info,
				 srdma__err(SRDMA_EINTEGRITY,
					    "block_open: mode %d, region %u or "
					    "index %llu out of range",
					    (int)mode, region_id,
					    (unsigned long long)index));

	/* Never written: only acceptable where the caller says so, or in
	 * mode NONE where nothing is verified anyway. */
	if (all_zero(in, srdma__block_stride(mode)) &&
	    (allow_empty || mode == SRDMA_PROTECT_NONE)) {
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
	version = srdma__get_be64(hdr);
	len = srdma__get_be32(hdr + 8);
	writer = hdr[12];
	if (writer > 1 || hdr[13] || hdr[14] || hdr[15] ||
	    len > SRDMA_BLK_PAYLOAD || version == 0 ||
	    version > SRDMA_BLOCK_VERSION_MAX)
		return open_fail(out, info,
				 srdma__err(SRDMA_EINTEGRITY,
					    "block %llu of region %u has a "
					    "malformed header",
					    (unsigned long long)index,
					    region_id));
	k = keys[writer];
	if (!k)
		return open_fail(out, info,
				 srdma__err(SRDMA_EINTEGRITY,
					    "block %llu of region %u names "
					    "writer %u, whose key is not "
					    "accepted here",
					    (unsigned long long)index,
					    region_id, writer));
	if (srdma__aead_ready(k) < 0)
		return open_fail(out, info, SRDMA_EINTEGRITY);
	/* The tag does not cover the padding: demand the zeros seal wrote. */
	if (!all_zero(in + SRDMA_BLK_HDR_LEN + len, SRDMA_BLK_PAYLOAD - len))
		return open_fail(out, info,
				 srdma__err(SRDMA_EINTEGRITY,
					    "block %llu of region %u has "
					    "bytes past its length",
					    (unsigned long long)index,
					    region_id));

	memcpy(out, in + SRDMA_BLK_HDR_LEN, len);
	memset(out + len, 0, SRDMA_BLK_PAYLOAD - len);
	block_nonce(k, region_id, index, version, nonce);
	block_aad(region_id, index, hdr, aad);
	switch (mode) {
	case SRDMA_PROTECT_ENCRYPT:
		memcpy(tag, in + BLK_TAG_OFF, sizeof(tag));
		rc = srdma__aead_op(k, false, nonce, aad, sizeof(aad), NULL, 0,
				    out, out, len, tag);
		break;
	case SRDMA_PROTECT_INTEGRITY:
		memcpy(tag, in + BLK_TAG_OFF, sizeof(tag));
		rc = srdma__aead_op(k, false, nonce, aad, sizeof(aad), out, len,
				    NULL, NULL, 0, tag);
		break;
	case SRDMA_PROTECT_NONE:
		break;
	}
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
	if (info) {
		info->version = version;
		info->len = len;
		info->writer = writer;
	}
	return 0;
}
