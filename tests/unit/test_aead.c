/* SPDX-License-Identifier: MIT */
/*
 * AEAD backends (src/protect/aead.c, aead_imb.c): AES-256-GCM known answers
 * on each backend in every operation shape (one AAD, AAD split in two, split
 * AAD before a payload); every size class sealed on one backend and opened
 * on the other in both modes, byte-identical, with tampering caught on both;
 * records and sealed blocks across backends through rekeys; several threads
 * sealing at once on one process-wide intel-ipsec-mb set-up.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "protect/protect.h"
#include "protect/protect_int.h"
#include "test.h"

enum { B_EVP = 0, B_IMB = 1, NB = 2 }; /* index into backend_of */

static const enum srdma__aead_backend backend_of[NB] = {
	SRDMA_AEAD_EVP,
	SRDMA_AEAD_IPSEC_MB,
};
static const char *const backend_name[NB] = {"EVP", "ipsec-mb"};
static int nbackends = 1; /* 2 where intel-ipsec-mb runs */

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = strlen(s) / 2;

	for (size_t i = 0; i < n && i < cap; i++) {
		unsigned v = 0;

		sscanf(s + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
	return n <= cap ? n : 0;
}

/* A context on backend b (force, init, back to automatic). */
static int make(struct srdma__aead *a, int b, enum srdma_protect mode,
		bool seal, const uint8_t key[32], const uint8_t salt[12])
{
	int rc = srdma__aead_force_backend(backend_of[b]);

	if (rc == 0)
		rc = srdma__aead_init(a, mode, SRDMA_CIPHER_AES_256_GCM, seal,
				      key, salt);
	CHECK_RC(srdma__aead_force_backend(SRDMA_AEAD_AUTO), 0);
	if (rc == 0 && mode != SRDMA_PROTECT_NONE)
		CHECK(a->backend == backend_of[b]);
	return rc;
}

/* The backend that is not b, where there are two. */
static int other_backend(int b)
{
	return nbackends == NB ? 1 - b : b;
}

/* ---- known answers ---- */

/*
 * AES-256-GCM, 96-bit IV, 128-bit tag. From NIST CAVP "GCM Test Vectors
 * (SP 800-38D)", gcmtestvectors.zip, file gcmEncryptExtIV256.rsp, section
 * [Keylen = 256] [IVlen = 96] [PTlen] [AADlen] [Taglen = 128], Count 0 of
 * each section named (as transcribed in RustCrypto/AEADs,
 * aes-gcm/tests/aes256gcm.rs); then test cases 14 and 16 of McGrew and
 * Viega, "The Galois/Counter Mode of Operation (GCM)", revised 2005
 * (gcm-revised-spec.pdf, as in intel-ipsec-mb's test/kat-app gcm_test.json).
 * Lengths in the names are bits.
 */
static const struct kat {
	const char *name, *key, *iv, *aad, *pt, *ct, *tag;
} kats[] = {
	{.name = "PTlen = 0, AADlen = 0, Count = 0",
	 .key = "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2"
		"492505b4",
	 .iv = "516c33929df5a3284ff463d7",
	 .aad = "",
	 .pt = "",
	 .ct = "",
	 .tag = "bdc1ac884d332457a1d2664f168c76f0"},
	{.name = "PTlen = 0, AADlen = 128, Count = 0",
	 .key = "78dc4e0aaf52d935c3c01eea57428f00ca1fd475f5da86a49c8dd73d"
		"68c8e223",
	 .iv = "d79cf22d504cc793c3fb6c8a",
	 .aad = "b96baa8c1c75a671bfb2d08d06be5f36",
	 .pt = "",
	 .ct = "",
	 .tag = "3e5d486aa2e30b22e040b85723a06e76"},
	{.name = "PTlen = 0, AADlen = 160, Count = 0",
	 .key = "886cff5f3e6b8d0e1ad0a38fcdb26de97e8acbe79f6bed66959a598f"
		"a5047d65",
	 .iv = "3a8efa1cd74bbab5448f9945",
	 .aad = "519fee519d25c7a304d6c6aa1897ee1eb8c59655",
	 .pt = "",
	 .ct = "",
	 .tag = "f6d47505ec96c98a42dc3ae719877b87"},
	{.name = "PTlen = 0, AADlen = 720, Count = 0",
	 .key = "03ccb7dbc7b8425465c2c3fc39ed0593929ffd02a45ff583bd89b79c"
		"6f646fe9",
	 .iv = "fd119985533bd5520b301d12",
	 .aad = "98e68c10bf4b5ae62d434928fc6405147c6301417303ef3a703dcfd2"
		"c0c339a4d0a89bd29fe61fecf1066ab06d7a5c31a48ffbfed22f749b"
		"17e9bd0dc1c6f8fbd6fd4587184db964d5456132106d782338c3f117"
		"ec05229b0899",
	 .pt = "",
	 .ct = "",
	 .tag = "cf54e7141349b66f248154427810c87a"},
	{.name = "PTlen = 104, AADlen = 0, Count = 0",
	 .key = "82c4f12eeec3b2d3d157b0f992d292b237478d2cecc1d5f161389b97"
		"f999057a",
	 .iv = "7b40b20f5f397177990ef2d1",
	 .aad = "",
	 .pt = "982a296ee1cd7086afad976945",
	 .ct = "ec8e05a0471d6b43a59ca5335f",
	 .tag = "113ddeafc62373cac2f5951bb9165249"},
	{.name = "PTlen = 128, AADlen = 0, Count = 0",
	 .key = "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822"
		"666b8f22",
	 .iv = "0d18e06c7c725ac9e362e1ce",
	 .aad = "",
	 .pt = "2db5168e932556f8089a0622981d017d",
	 .ct = "fa4362189661d163fcd6a56d8bf0405a",
	 .tag = "d636ac1bbedd5cc3ee727dc2ab4a9489"},
	{.name = "PTlen = 128, AADlen = 128, Count = 0",
	 .key = "92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240"
		"935dd08b",
	 .iv = "ac93a1a6145299bde902f21a",
	 .aad = "1e0889016f67601c8ebea4943bc23ad6",
	 .pt = "2d71bcfa914e4ac045b2aa60955fad24",
	 .ct = "8995ae2e6df3dbf96fac7b7137bae67f",
	 .tag = "eca5aa77d51d4a0a14d9c51e1da474ab"},
	{.name = "PTlen = 104, AADlen = 384, Count = 0",
	 .key = "5f671466378f470ba5f5160e2209f3d95a48b7e560625d5a08654414"
		"de23aee2",
	 .iv = "6b3c08a663d04132243dd96c",
	 .aad = "12965559c31d538f937bda6eee9c93b0387318dc5d9496fb1c3a0b9b"
		"978dbfebff2a5823974ee9d679834dbe59f7ec51",
	 .pt = "c428592d9f8a7f107ec4d0df05",
	 .ct = "1d8d7fe4357080c817303ce19c",
	 .tag = "e88d6b566fdc7b4fd62106bd2eb806ec"},
	{.name = "PTlen = 256, AADlen = 384, Count = 0",
	 .key = "dc776f0156c15d032623854b625c61868e5db84b7b6f9fbd3672f12f"
		"0025e0f6",
	 .iv = "67130951c4a57f6ae7f13241",
	 .aad = "fd0920faeb7b212932280a009bac969145e5c316cf3922622c3705c3"
		"457c4e9f124b2076994323fbcfb523f8ed16d241",
	 .pt = "9378a727a5119595ad631b12a5a6bc8a91756ef09c8d6eaa2b718fe8"
	       "6876da20",
	 .ct = "6d958c20870d401a3c1f7a0ac092c97774d451c09f7aae992a8841ff"
	       "0ab9d60d",
	 .tag = "b876831b4ecd7242963b040aa45c4114"},
	{.name = "PTlen = 408, AADlen = 160, Count = 0",
	 .key = "24501ad384e473963d476edcfe08205237acfd49b5b8f33857f8114e"
		"863fec7f",
	 .iv = "9ff18563b978ec281b3f2794",
	 .aad = "adb5ec720ccf9898500028bf34afccbcaca126ef",
	 .pt = "27f348f9cdc0c5bd5e66b1ccb63ad920ff2219d14e8d631b3872265c"
	       "f117ee86757accb158bd9abb3868fdc0d0b074b5f01b2c",
	 .ct = "eb7cb754c824e8d96f7c6d9b76c7d26fb874ffbf1d65c6f64a698d83"
	       "9b0b06145dae82057ad55994cf59ad7f67c0fa5e85fab8",
	 .tag = "bc95c532fecc594c36d1550286a7a3f0"},
	{.name = "PTlen = 408, AADlen = 720, Count = 0",
	 .key = "148579a3cbca86d5520d66c0ec71ca5f7e41ba78e56dc6eebd566fed"
		"547fe691",
	 .iv = "b08a5ea1927499c6ecbfd4e0",
	 .aad = "e4f963f015ffbb99ee3349bbaf7e8e8e6c2a71c230a48f9d59860a29"
		"091d2747e01a5ca572347e247d25f56ba7ae8e05cde2be3c97931292"
		"c02370208ecd097ef692687fecf2f419d3200162a6480a57dad408a0"
		"dfeb492e2c5d",
	 .pt = "9d0b15fdf1bd595f91f8b3abc0f7dec927dfd4799935a1795d9ce00c"
	       "9b879434420fe42c275a7cd7b39d638fb81ca52b49dc41",
	 .ct = "2097e372950a5e9383c675e89eea1c314f999159f5611344b298cda4"
	       "5e62843716f215f82ee663919c64002a5c198d7878fd3f",
	 .tag = "adbecdb0d5c2224d804d2886ff9a5760"},
	{.name = "GCM spec test case 14",
	 .key = "00000000000000000000000000000000"
		"00000000000000000000000000000000",
	 .iv = "000000000000000000000000",
	 .aad = "",
	 .pt = "00000000000000000000000000000000",
	 .ct = "cea7403d4d606b6e074ec5d3baf39d18",
	 .tag = "d0d1c8a799996bf0265b98b5d48ab919"},
	{.name = "GCM spec test case 16",
	 .key = "feffe9928665731c6d6a8f9467308308"
		"feffe9928665731c6d6a8f9467308308",
	 .iv = "cafebabefacedbaddecaf888",
	 .aad = "feedfacedeadbeeffeedfacedeadbeefabaddad2",
	 .pt = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d"
	       "8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657"
	       "ba637b39",
	 .ct = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd"
	       "2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0a"
	       "bcc9f662",
	 .tag = "76fc6ece0f4e1768cddf8853bb2d551b"},
};

/*
 * One vector on backend b, its AAD cut at every point into aad1 || aad2:
 * the cut at the end is the one-pass shape records and blocks use in
 * ENCRYPT, an empty payload with a real cut is the GMAC shape of INTEGRITY,
 * and a cut before a payload is the shape no caller uses (EVP fallback).
 */
static void kat_one(const struct kat *v, int b)
{
	uint8_t key[32], iv[12], aad[128], pt[128], ct[128], tag[16];
	uint8_t out[128], t[16];
	size_t aadl, ptl;
	struct srdma__aead a;
	int before = test_failures;

	CHECK(unhex(v->key, key, sizeof(key)) == 32);
	CHECK(unhex(v->iv, iv, sizeof(iv)) == 12);
	CHECK(unhex(v->tag, tag, sizeof(tag)) == 16);
	aadl = unhex(v->aad, aad, sizeof(aad));
	ptl = unhex(v->pt, pt, sizeof(pt));
	CHECK(unhex(v->ct, ct, sizeof(ct)) == ptl);
	if (make(&a, b, SRDMA_PROTECT_ENCRYPT, true, key, iv) < 0) {
		CHECK(!"context");
		return;
	}
	for (size_t cut = 0; cut <= aadl; cut++) {
		const uint8_t *a2 = aad + cut;
		size_t a2l = aadl - cut;

		memset(out, 0xee, sizeof(out));
		CHECK_RC(srdma__aead_op(&a, true, iv, aad, cut, a2, a2l, pt,
					out, ptl, t),
			 0);
		CHECK(memcmp(out, ct, ptl) == 0 && memcmp(t, tag, 16) == 0);
		/* Open in place, as records and blocks do. */
		memcpy(out, ct, ptl);
		memcpy(t, tag, 16);
		CHECK_RC(srdma__aead_op(&a, false, iv, aad, cut, a2, a2l, out,
					out, ptl, t),
			 0);
		CHECK(memcmp(out, pt, ptl) == 0);
		/* A flipped bit anywhere: tag, ciphertext, either AAD. */
		for (int w = 0; w < 4; w++) {
			uint8_t bad_aad[128];

			memcpy(out, ct, ptl);
			memcpy(t, tag, 16);
			memcpy(bad_aad, aad, aadl);
			if (w == 0)
				t[cut % 16] ^= 0x80;
			else if (w == 1 && ptl)
				out[cut % ptl] ^= 1;
			else if (w == 2 && cut)
				bad_aad[cut - 1] ^= 4;
			else if (w == 3 && a2l)
				bad_aad[aadl - 1] ^= 0x10;
			else
				continue;
			CHECK_RC(srdma__aead_op(&a, false, iv, bad_aad, cut,
						bad_aad + cut, a2l, out, out,
						ptl, t),
				 SRDMA_EINTEGRITY);
		}
	}
	srdma__aead_wipe(&a);
	if (test_failures != before)
		fprintf(stderr, "  ^ KAT \"%s\" on %s\n", v->name,
			backend_name[b]);
}

static void test_kats(void)
{
	for (int b = 0; b < nbackends; b++)
		for (size_t i = 0; i < sizeof(kats) / sizeof(kats[0]); i++)
			kat_one(&kats[i], b);
}

/* ---- every size class, sealed on one backend, opened on the other ---- */

static const size_t sizes[] = {0,  1,  15,   16,   17,	  63,
			       64, 65, 4096, 4097, 65536, 1u << 20};

/* One operation as the callers shape it. */
struct xcase {
	enum srdma_protect mode;
	uint8_t nonce[12];
	uint8_t aad[28]; /* a 16-byte record header or the block AAD */
	size_t aad_len;
	const uint8_t *in;
	size_t len;
};

/*
 * ENCRYPT: aad1 then the encrypted payload. INTEGRITY: aad1 then the
 * payload as aad2, nothing encrypted (the payload travels as it is).
 */
static int op(struct srdma__aead *a, const struct xcase *c, bool enc,
	      const uint8_t *aad, uint8_t *buf, uint8_t tag[16])
{
	if (c->mode == SRDMA_PROTECT_ENCRYPT)
		return srdma__aead_op(a, enc, c->nonce, aad, c->aad_len, NULL,
				      0, enc ? c->in : buf, buf, c->len, tag);
	if (enc)
		memcpy(buf, c->in, c->len);
	return srdma__aead_op(a, enc, c->nonce, aad, c->aad_len, buf, c->len,
			      NULL, NULL, 0, tag);
}

/* Opens what was sealed, then the same with one bit flipped in the tag,
 * the payload and the AAD: each refused. */
static void open_all_ways(struct srdma__aead *o, const struct xcase *c,
			  const uint8_t *sealed, const uint8_t tag[16],
			  uint8_t *work)
{
	uint8_t t[16], aad[28];

	memcpy(aad, c->aad, sizeof(aad));
	memcpy(work, sealed, c->len);
	memcpy(t, tag, 16);
	CHECK_RC(op(o, c, false, aad, work, t), 0);
	CHECK(c->len == 0 || memcmp(work, c->in, c->len) == 0);

	memcpy(work, sealed, c->len);
	t[c->len % 16] ^= 1;
	CHECK_RC(op(o, c, false, aad, work, t), SRDMA_EINTEGRITY);
	t[c->len % 16] ^= 1;
	if (c->len) {
		memcpy(work, sealed, c->len);
		work[c->len / 2] ^= 0x40;
		CHECK_RC(op(o, c, false, aad, work, t), SRDMA_EINTEGRITY);
	}
	memcpy(work, sealed, c->len);
	aad[c->aad_len - 1] ^= 2;
	CHECK_RC(op(o, c, false, aad, work, t), SRDMA_EINTEGRITY);
}

static void cross_one(struct srdma__aead ctx[NB], const struct xcase *c,
		      uint8_t *sealed[NB], uint8_t *work)
{
	uint8_t tag[NB][16];
	int before = test_failures;

	for (int b = 0; b < nbackends; b++) {
		memset(tag[b], 0, sizeof(tag[b]));
		CHECK_RC(op(&ctx[b], c, true, c->aad, sealed[b], tag[b]), 0);
	}
	/* The same bytes whichever backend sealed. */
	if (nbackends == NB)
		CHECK((c->len == 0 ||
		       memcmp(sealed[0], sealed[1], c->len) == 0) &&
		      memcmp(tag[0], tag[1], 16) == 0);
	if (c->mode == SRDMA_PROTECT_ENCRYPT && c->len >= 16)
		CHECK(memcmp(sealed[0], c->in, c->len) != 0);
	for (int s = 0; s < nbackends; s++)
		for (int o = 0; o < nbackends; o++)
			open_all_ways(&ctx[o], c, sealed[s], tag[s], work);
	if (test_failures != before)
		fprintf(stderr, "  ^ mode %d, aad %zu, %zu bytes\n",
			(int)c->mode, c->aad_len, c->len);
}

static void test_cross(void)
{
	static const enum srdma_protect xmodes[] = {SRDMA_PROTECT_ENCRYPT,
						    SRDMA_PROTECT_INTEGRITY};
	const size_t max = 1u << 20;
	uint8_t *in = malloc(max), *work = malloc(max);
	uint8_t *sealed[NB] = {malloc(max), malloc(max)};
	uint8_t key[32], salt[12];
	struct srdma__aead ctx[NB];

	if (!in || !work || !sealed[0] || !sealed[1]) {
		CHECK(!"malloc");
		goto out_free;
	}
	fill(key, sizeof(key), 1);
	fill(salt, sizeof(salt), 2);
	fill(in, max, 3);
	for (size_t mi = 0; mi < 2; mi++) {
		for (int b = 0; b < nbackends; b++)
			CHECK_RC(make(&ctx[b], b, xmodes[mi], true, key, salt),
				 0);
		for (size_t al = 16; al <= 28; al += 12) {
			for (size_t si = 0; si < sizeof(sizes) / sizeof(*sizes);
			     si++) {
				struct xcase c = {.mode = xmodes[mi],
						  .aad_len = al,
						  .in = in,
						  .len = sizes[si]};

				fill(c.nonce, sizeof(c.nonce), 10 + si);
				fill(c.aad, sizeof(c.aad), 30 + si);
				cross_one(ctx, &c, sealed, work);
			}
		}
		for (int b = 0; b < nbackends; b++)
			srdma__aead_wipe(&ctx[b]);
	}
out_free:
	free(sealed[0]);
	free(sealed[1]);
	free(in);
	free(work);
}

/* ---- records and blocks across backends ---- */

static const enum srdma_protect all_modes[] = {
	SRDMA_PROTECT_NONE,
	SRDMA_PROTECT_INTEGRITY,
	SRDMA_PROTECT_ENCRYPT,
};

/*
 * tx on backend s, rx on backend o, rekeying every 3 records: 12 records of
 * assorted sizes open, equal the same records sealed on the other backend,
 * and one with a flipped bit is refused without advancing.
 */
static void records_one(enum srdma_protect mode, int s, int o)
{
	static const size_t rsz[] = {0, 1, 17, 4097, 65536};
	enum { N = 12, CAP = 65536 + 32 };
	struct srdma__aead tx, tx2, rx;
	uint8_t key[32], salt[12], *in = malloc(CAP), *rec = malloc(CAP);
	uint8_t *rec2 = malloc(CAP);
	struct srdma__record r;
	int before = test_failures;

	if (!in || !rec || !rec2) {
		CHECK(!"malloc");
		goto out_free;
	}
	fill(key, sizeof(key), 40);
	fill(salt, sizeof(salt), 41);
	CHECK_RC(make(&tx, s, mode, true, key, salt), 0);
	CHECK_RC(make(&tx2, other_backend(s), mode, true, key, salt), 0);
	CHECK_RC(make(&rx, o, mode, false, key, salt), 0);
	tx.rekey_interval = tx2.rekey_interval = rx.rekey_interval = 3;
	for (int i = 0; i < N; i++) {
		size_t len = rsz[i % 5];
		int n, n2;

		fill(in, len, 50 + i);
		n = srdma__record_seal(&tx, 7, (uint16_t)i, in, len, rec, CAP);
		n2 = srdma__record_seal(&tx2, 7, (uint16_t)i, in, len, rec2,
					CAP);
		CHECK(n == (int)(len + srdma__record_overhead(mode)) &&
		      n == n2);
		if (n < 0 || n != n2)
			break;
		CHECK(memcmp(rec, rec2, (size_t)n) == 0);
		if (mode != SRDMA_PROTECT_NONE && i == 4) {
			rec2[n - 1] ^= 1;
			CHECK_RC(srdma__record_open(&rx, rec2, (size_t)n, &r),
				 SRDMA_EINTEGRITY);
		}
		CHECK_RC(srdma__record_open(&rx, rec, (size_t)n, &r), 0);
		CHECK(r.len == len && r.seq == (uint64_t)i &&
		      (len == 0 || memcmp(r.payload, in, len) == 0));
	}
	CHECK(tx.epoch == N / 3 && rx.epoch == N / 3);
	srdma__aead_wipe(&tx);
	srdma__aead_wipe(&tx2);
	srdma__aead_wipe(&rx);
out_free:
	free(in);
	free(rec);
	free(rec2);
	if (test_failures != before)
		fprintf(stderr, "  ^ records, mode %d, %s -> %s\n", (int)mode,
			backend_name[s], backend_name[o]);
}

/* Blocks: sealed by writer 1 on backend s, opened on backend o. */
static void blocks_one(enum srdma_protect mode, int s, int o)
{
	static const size_t bsz[] = {0, 1, 28, 4095, 4096};
	enum { STRIDE = 16 + 4096 + 16 };
	struct srdma__aead w1s, w1o, other;
	struct srdma__aead *keys[2] = {NULL, &w1o};
	uint8_t key[32], salt[12], in[4096], blk[STRIDE], out[4096];
	struct srdma__block_info info;
	int before = test_failures;

	fill(key, sizeof(key), 60);
	fill(salt, sizeof(salt), 61);
	CHECK_RC(make(&w1s, s, mode, true, key, salt), 0);
	CHECK_RC(make(&w1o, o, mode, false, key, salt), 0);
	CHECK_RC(make(&other, other_backend(s), mode, true, key, salt), 0);
	for (size_t i = 0; i < sizeof(bsz) / sizeof(*bsz); i++) {
		uint8_t blk2[STRIDE];

		fill(in, bsz[i], 70 + i);
		memset(blk, 0, sizeof(blk));
		memset(blk2, 0, sizeof(blk2));
		CHECK_RC(srdma__block_seal(&w1s, 1, 3, 100 + i, 5 + i, 1, in,
					   bsz[i], blk),
			 0);
		CHECK_RC(srdma__block_seal(&other, 1, 3, 100 + i, 5 + i, 1, in,
					   bsz[i], blk2),
			 0);
		CHECK(memcmp(blk, blk2, srdma__block_used(mode, bsz[i])) == 0);
		CHECK_RC(srdma__block_open(keys, 1, 3, 100 + i, blk, false, out,
					   &info),
			 0);
		CHECK(memcmp(out, in, bsz[i]) == 0);
		if (mode == SRDMA_PROTECT_NONE)
			continue;
		CHECK(info.len == bsz[i] && info.writer == 1 &&
		      info.version == 5 + i);
		/* Tag, then header: both covered. */
		blk[SRDMA_BLK_HDR_LEN] ^= 1;
		CHECK_RC(srdma__block_open(keys, 1, 3, 100 + i, blk, false, out,
					   &info),
			 SRDMA_EINTEGRITY);
		blk[SRDMA_BLK_HDR_LEN] ^= 1;
		blk[7] ^= 1;
		CHECK_RC(srdma__block_open(keys, 1, 3, 100 + i, blk, false, out,
					   &info),
			 SRDMA_EINTEGRITY);
	}
	srdma__aead_wipe(&w1s);
	srdma__aead_wipe(&w1o);
	srdma__aead_wipe(&other);
	if (test_failures != before)
		fprintf(stderr, "  ^ blocks, mode %d, %s -> %s\n", (int)mode,
			backend_name[s], backend_name[o]);
}

static void test_records_blocks(void)
{
	for (size_t mi = 0; mi < 3; mi++)
		for (int s = 0; s < nbackends; s++)
			for (int o = 0; o < nbackends; o++) {
				records_one(all_modes[mi], s, o);
				blocks_one(all_modes[mi], s, o);
			}
}

/* ---- threads ---- */

enum { THREADS = 4, ROUNDS = 300, TLEN = 1000 };

struct worker {
	pthread_t tid;
	const uint8_t *want; /* ROUNDS records sealed on EVP */
	int failures;
};

static uint8_t tkey[32], tsalt[12], tin[TLEN];

/* Each thread its own pair of contexts on intel-ipsec-mb; every record
 * must equal what EVP sealed and open again. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	enum { RLEN = TLEN + 32 };
	struct srdma__aead tx, rx;
	struct srdma__record r;
	uint8_t rec[RLEN];

	if (srdma__aead_init(&tx, SRDMA_PROTECT_ENCRYPT,
			     SRDMA_CIPHER_AES_256_GCM, true, tkey, tsalt) < 0 ||
	    srdma__aead_init(&rx, SRDMA_PROTECT_ENCRYPT,
			     SRDMA_CIPHER_AES_256_GCM, false, tkey,
			     tsalt) < 0) {
		w->failures++;
		return NULL;
	}
	for (int i = 0; i < ROUNDS; i++) {
		int n = srdma__record_seal(&tx, 1, 0, tin, TLEN, rec, RLEN);

		if (n != TLEN + 32 ||
		    memcmp(rec, w->want + (size_t)i * (TLEN + 32), (size_t)n))
			w->failures++;
		else if (srdma__record_open(&rx, rec, (size_t)n, &r) < 0 ||
			 memcmp(r.payload, tin, TLEN) != 0)
			w->failures++;
	}
	srdma__aead_wipe(&tx);
	srdma__aead_wipe(&rx);
	return NULL;
}

static void test_threads(void)
{
	struct worker w[THREADS];
	struct srdma__aead ref;
	uint8_t *want = malloc((size_t)ROUNDS * (TLEN + 32));

	if (!want || nbackends < NB) {
		free(want);
		return;
	}
	fill(tkey, sizeof(tkey), 80);
	fill(tsalt, sizeof(tsalt), 81);
	fill(tin, sizeof(tin), 82);
	CHECK_RC(make(&ref, B_EVP, SRDMA_PROTECT_ENCRYPT, true, tkey, tsalt),
		 0);
	for (int i = 0; i < ROUNDS; i++)
		CHECK_RC(srdma__record_seal(&ref, 1, 0, tin, TLEN,
					    want + (size_t)i * (TLEN + 32),
					    TLEN + 32),
			 TLEN + 32);
	srdma__aead_wipe(&ref);
	CHECK_RC(srdma__aead_force_backend(SRDMA_AEAD_IPSEC_MB), 0);
	for (int t = 0; t < THREADS; t++) {
		w[t] = (struct worker){.want = want};
		CHECK(pthread_create(&w[t].tid, NULL, worker_main, &w[t]) == 0);
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(w[t].tid, NULL);
		CHECK(w[t].failures == 0);
	}
	CHECK_RC(srdma__aead_force_backend(SRDMA_AEAD_AUTO), 0);
	free(want);
}

/* ---- choice and names ---- */

static void test_choice(void)
{
	const char *aes = srdma__aead_impl(SRDMA_CIPHER_AES_256_GCM);
	bool want_imb = false;

#if defined(SRDMA_HAVE_IPSEC_MB) && defined(__x86_64__)
	/* Built with it on a CPU that has what it needs: it must run. */
	__builtin_cpu_init();
	want_imb = __builtin_cpu_supports("aes") &&
		   __builtin_cpu_supports("pclmul");
#endif
	CHECK(want_imb == (nbackends == NB));
	printf("AES-256-GCM: %s; ChaCha20-Poly1305: %s\n", aes,
	       srdma__aead_impl(SRDMA_CIPHER_CHACHA20_POLY1305));
	if (nbackends < NB)
		printf("SKIP: intel-ipsec-mb not usable here (%s): the KATs "
		       "ran on EVP only, no cross-backend tests\n",
		       want_imb ? "should be!" : "not built in or no AES-NI");
	CHECK(strncmp(aes, nbackends == NB ? "intel-ipsec-mb " : "OpenSSL ",
		      nbackends == NB ? 15 : 8) == 0);
	CHECK(strncmp(srdma__aead_impl(SRDMA_CIPHER_CHACHA20_POLY1305),
		      "OpenSSL ", 8) == 0);
	CHECK(strcmp(srdma__aead_impl(SRDMA_CIPHER_NONE), "none") == 0);
	CHECK_RC(srdma__aead_force_backend(SRDMA_AEAD_EVP), 0);
	CHECK(strncmp(srdma__aead_impl(SRDMA_CIPHER_AES_256_GCM), "OpenSSL ",
		      8) == 0);
	CHECK_RC(srdma__aead_force_backend((enum srdma__aead_backend)7),
		 SRDMA_EINVAL);
	CHECK_RC(srdma__aead_force_backend(SRDMA_AEAD_AUTO), 0);
	CHECK(strcmp(srdma__aead_impl(SRDMA_CIPHER_AES_256_GCM), aes) == 0);
}

int main(void)
{
	if (srdma__aead_force_backend(SRDMA_AEAD_IPSEC_MB) == 0)
		nbackends = NB;
	CHECK_RC(srdma__aead_force_backend(SRDMA_AEAD_AUTO), 0);
	test_choice();
	test_kats();
	test_cross();
	test_records_blocks();
	test_threads();
	TEST_DONE();
}
