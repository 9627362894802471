/* SPDX-License-Identifier: MIT */
/*
 * Wire codec: control messages carried over the TLS channel and the private
 * data carried by the fabric connect. Everything is big-endian (network
 * order), fixed layout, and length-checked exactly; parsing goes only through
 * the bounds-checked cursor below. See docs/PROTOCOL.md.
 */
#ifndef SRDMA_WIRE_WIRE_H
#define SRDMA_WIRE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/bytes.h"
#include "base/err.h"

enum {
	SRDMA_WIRE_VERSION = 2,
	SRDMA_WIRE_HDR_LEN =
		8, /* u16 version, u8 type, u8 flags(0), u32 body len */
	SRDMA_WIRE_MAX_BODY = 1024, /* no control message is larger */
	SRDMA_WIRE_MAX_ADDR = 128,  /* fabric address bytes in PARAMS */
	SRDMA_WIRE_MAX_TEXT = 200,  /* ERROR message text */
	SRDMA_WIRE_TOKEN_LEN = 32,
	SRDMA_WIRE_MAC_LEN = 32,
	SRDMA_WIRE_GID_LEN = 16,
	/* rdma_cm allows 56 bytes of private data on an RC connect. */
	SRDMA_WIRE_CONNECT_PDATA_LEN = 56,
	SRDMA_WIRE_CONNECT_MAGIC = 0x5352444d, /* "SRDM" */
	/* Region ids are 15 bits: the owner bit takes the 16th in block
	 * nonces (protect.h). */
	SRDMA_WIRE_MAX_REGION = 0x7fff,
	/* Block versions are 48 bits (block nonces). */
	SRDMA_WIRE_MAX_VERSION_BITS = 48,
	/* REGION access bit: the region is the sender's stream ring (the
	 * peer writes it only through the stream; docs/PROTOCOL.md §6a).
	 * Only ever with remote write and nothing else. */
	SRDMA_WIRE_ACCESS_STREAM = 4,
};

enum srdma__msg_type {
	SRDMA_MSG_HELLO = 1,
	SRDMA_MSG_PARAMS = 2,
	SRDMA_MSG_REGION = 3,
	SRDMA_MSG_GOODBYE = 4,
	SRDMA_MSG_ERROR = 5,
	SRDMA_MSG_REGION_REVOKE = 6,
};

/* Capability bits in HELLO. */
enum {
	SRDMA_CAP_VERBS = 1u << 0,
	SRDMA_CAP_OFI = 1u << 1,
	SRDMA_CAP_PROTECT_NONE = 1u << 8,
	SRDMA_CAP_PROTECT_INTEGRITY = 1u << 9,
	SRDMA_CAP_PROTECT_ENCRYPT = 1u << 10,
};

/* Both directions. Client: what it wants; server: what was chosen. */
struct srdma__msg_hello {
	uint16_t version;  /* SRDMA_WIRE_VERSION */
	uint32_t caps;	   /* SRDMA_CAP_* */
	uint8_t transport; /* enum srdma_transport (never AUTO on the wire) */
	uint8_t protect;   /* enum srdma_protect */
	uint8_t cipher;	   /* enum srdma__cipher (protect.h) */
	uint32_t max_msg;
	uint32_t queue_depth;
	uint16_t fabric_port; /* server: port of its fabric listener; client: 0
			       */
};

/* Each side's fabric parameters. */
struct srdma__msg_params {
	uint64_t session_id; /* server: chosen at random; client: echoes 0 */
	uint32_t psn;	     /* the PSN this side sends with (verbs sq_psn) */
	uint32_t qpn; /* verbs QPN of this side; 0 if not yet known/ofi */
	uint8_t gid[SRDMA_WIRE_GID_LEN];
	uint8_t token[SRDMA_WIRE_TOKEN_LEN]; /* server only; zero from client */
	uint32_t token_ttl_ms; /* server only: token valid this long */
	uint16_t fabric_port;  /* server: port of the fabric listener */
	uint16_t addr_len;     /* bytes used in addr */
	uint8_t addr[SRDMA_WIRE_MAX_ADDR]; /* fabric address (ofi), may be empty
					    */
};

/* A grant of remote access to a region. */
struct srdma__msg_region {
	uint32_t region_id;    /* 1 .. SRDMA_WIRE_MAX_REGION, new per grant */
	uint8_t access;	       /* SRDMA_ACCESS_* */
	uint64_t len;	       /* payload bytes (whole blocks) */
	uint64_t addr;	       /* remote address to use for RMA */
	uint64_t key;	       /* remote key (verbs: 32-bit rkey) */
	uint32_t block_size;   /* payload bytes per block */
	uint32_t block_stride; /* bytes per sealed block in remote memory */
	uint64_t version;      /* the owner's last version before the grant:
				  unannounced blocks hold versions <= it */
};

struct srdma__msg_revoke {
	uint32_t region_id;
};

struct srdma__msg_goodbye {
	uint32_t reason; /* 0 = orderly */
	uint64_t sent;	 /* records the sender sealed on the data channel
			    before this GOODBYE: the peer reads that many
			    before it takes the fabric down */
};

struct srdma__msg_error {
	int32_t code; /* SRDMA_E* */
	uint16_t text_len;
	char text[SRDMA_WIRE_MAX_TEXT + 1]; /* NUL-terminated after parse */
};

struct srdma__msg {
	uint8_t type;
	union {
		struct srdma__msg_hello hello;
		struct srdma__msg_params params;
		struct srdma__msg_region region;
		struct srdma__msg_revoke revoke;
		struct srdma__msg_goodbye goodbye;
		struct srdma__msg_error error;
	} u;
};

/*
 * Data-channel record bodies (docs/PROTOCOL.md §6). The record header and
 * its AEAD are protect/'s; these are the payloads of the session's own
 * record types, decoded exactly like control messages.
 */
enum srdma__rec_type {
	SRDMA_REC_DATA = 1,   /* application message */
	SRDMA_REC_NOTICE = 2, /* writer -> owner: these writes landed */
	SRDMA_REC_CREDIT = 3, /* empty: credits ride in the record header */
	SRDMA_REC_ACK = 4,    /* owner -> writer: notices verified */
	SRDMA_REC_UPDATE = 5, /* owner -> reader: the owner sealed blocks */
	SRDMA_REC_STREAM = 6, /* the connection's byte stream (§6a) */
	SRDMA_REC_HOLD = 7,   /* reader <-> owner: hold puts for a read */
};

enum {
	SRDMA_NOTICE_LEN = 28, /* one entry */
	SRDMA_UPDATE_LEN = 28, /* one entry */
	SRDMA_ACK_LEN = 16,
	SRDMA_REC_MAX_ENTRIES = 32, /* notices or updates in one record */
};

/* The writer sealed every block covering len bytes at offset (a multiple
 * of the 4096-byte block) of the owner's region with this version. */
struct srdma__notice {
	uint32_t region;
	uint64_t offset, len, version;
};

/* The owner verified the writer's oldest `count` unacknowledged notice
 * entries; the last of them named (region, version). */
struct srdma__ack {
	uint32_t count;
	uint32_t region;
	uint64_t version;
};

/* The owner sealed blocks [first, first + count) of its region with
 * version (srdma_region_put on a region the reader may read). */
struct srdma__update {
	uint32_t region;
	uint64_t first, count, version;
};

/*
 * A HOLD record (docs/PROTOCOL.md §6, "Holds"): a reader whose read kept
 * racing the owner's puts asks it to hold puts into blocks [first, first +
 * count) of its region (ASK); the owner answers HELD (after the UPDATEs of
 * every put before it) and refuses puts there until RELEASE, or for
 * SRDMA_HOLD_MAX_MS (srdma.h) at most. 24 bytes: u8 kind, three zero bytes, u32
 * region, u64 first, u64 count.
 */
enum srdma__hold_kind {
	SRDMA_HOLD_ASK = 1,
	SRDMA_HOLD_HELD = 2,
	SRDMA_HOLD_RELEASE = 3,
};

enum {
	SRDMA_HOLD_LEN = 24,
};

struct srdma__hold {
	uint8_t kind;
	uint32_t region;
	uint64_t first, count;
};

int srdma__hold_encode(const struct srdma__hold *h,
		       uint8_t out[static SRDMA_HOLD_LEN]) SRDMA__WUR;
int srdma__hold_decode(const uint8_t *in, size_t len,
		       struct srdma__hold *h) SRDMA__WUR;

/*
 * A STREAM record (docs/PROTOCOL.md §6a): a 16-byte header (kind, three
 * zero bytes, u32 region, u64 value), followed by the payload for DATA
 * only. value is the ring length (OPEN), the position of the segment
 * (DATA), the position up to which the receiver consumed (CONSUMED), or
 * the position where the stream ends (FIN).
 */
enum srdma__stream_kind {
	SRDMA_STREAM_OPEN = 1,	   /* region: the sender's receive ring */
	SRDMA_STREAM_DATA = 2,	   /* a segment carried in the record */
	SRDMA_STREAM_CONSUMED = 3, /* ring space the receiver freed */
	SRDMA_STREAM_FIN = 4,	   /* no byte after value */
};

enum {
	SRDMA_STREAM_HDR_LEN = 16,
	SRDMA_STREAM_RING_MIN = 64 << 10,
	SRDMA_STREAM_RING_MAX = 1 << 30,
};
/* Stream positions stay below 2^62, so sums of a position and a length
 * never overflow. */
#define SRDMA_STREAM_POS_MAX (UINT64_C(1) << 62)

struct srdma__stream_rec {
	uint8_t kind;
	uint32_t region; /* OPEN only; 0 otherwise */
	uint64_t value;
	const uint8_t *data; /* DATA: the payload (points into the record) */
	size_t len;	     /* DATA: payload bytes, at least 1 */
};

/* Encodes the 16-byte header (a DATA record's payload follows it). */
int srdma__stream_rec_encode(const struct srdma__stream_rec *s,
			     uint8_t out[static SRDMA_STREAM_HDR_LEN])
	SRDMA__WUR;
/* Decodes a STREAM body of exactly len bytes; s->data points into in. */
int srdma__stream_rec_decode(const uint8_t *in, size_t len,
			     struct srdma__stream_rec *s) SRDMA__WUR;

/* Encode n (1..SRDMA_REC_MAX_ENTRIES) entries; returns bytes written. */
int srdma__notices_encode(const struct srdma__notice *n, size_t count,
			  uint8_t *out, size_t cap) SRDMA__WUR;
/* Decodes a NOTICE body of exactly len bytes into out[max]; *count set. */
int srdma__notices_decode(const uint8_t *in, size_t len,
			  struct srdma__notice *out, size_t max,
			  size_t *count) SRDMA__WUR;
int srdma__updates_encode(const struct srdma__update *u, size_t count,
			  uint8_t *out, size_t cap) SRDMA__WUR;
int srdma__updates_decode(const uint8_t *in, size_t len,
			  struct srdma__update *out, size_t max,
			  size_t *count) SRDMA__WUR;
int srdma__ack_encode(const struct srdma__ack *a,
		      uint8_t out[static SRDMA_ACK_LEN]) SRDMA__WUR;
int srdma__ack_decode(const uint8_t *in, size_t len,
		      struct srdma__ack *a) SRDMA__WUR;

/* Fabric connect private data: exactly SRDMA_WIRE_CONNECT_PDATA_LEN bytes. */
struct srdma__connect_pdata {
	uint8_t version; /* SRDMA_WIRE_VERSION */
	uint64_t session_id;
	uint32_t initiator_id; /* verbs: initiator QPN; ofi: 0 */
	uint8_t mac[SRDMA_WIRE_MAC_LEN];
};

/* Bounds-checked cursor (s2n-tls's stuffer, reduced). */
struct srdma__cursor {
	uint8_t *buf;
	size_t len; /* capacity (write) or data length (read) */
	size_t pos;
};
void srdma__cursor_init(struct srdma__cursor *c, void *buf, size_t len);
int srdma__put_u8(struct srdma__cursor *c, uint8_t v) SRDMA__WUR;
int srdma__put_u16(struct srdma__cursor *c, uint16_t v) SRDMA__WUR;
int srdma__put_u32(struct srdma__cursor *c, uint32_t v) SRDMA__WUR;
int srdma__put_u64(struct srdma__cursor *c, uint64_t v) SRDMA__WUR;
int srdma__put_bytes(struct srdma__cursor *c, const void *p,
		     size_t n) SRDMA__WUR;
int srdma__get_u8(struct srdma__cursor *c, uint8_t *v) SRDMA__WUR;
int srdma__get_u16(struct srdma__cursor *c, uint16_t *v) SRDMA__WUR;
int srdma__get_u32(struct srdma__cursor *c, uint32_t *v) SRDMA__WUR;
int srdma__get_u64(struct srdma__cursor *c, uint64_t *v) SRDMA__WUR;
int srdma__get_bytes(struct srdma__cursor *c, void *p, size_t n) SRDMA__WUR;
size_t srdma__cursor_left(const struct srdma__cursor *c);

/*
 * Encodes msg (header + body) into out. Returns the byte count (>0) or
 * SRDMA_EINVAL (bad field) / SRDMA_EMSGSIZE (cap too small).
 */
int srdma__msg_encode(const struct srdma__msg *msg, uint8_t *out,
		      size_t cap) SRDMA__WUR;
/*
 * Given at least SRDMA_WIRE_HDR_LEN bytes, returns the total frame length
 * (header + body), or SRDMA_EVERSION / SRDMA_EPROTO for a header that can
 * never be valid (unknown version or type, body too large).
 */
int srdma__msg_frame_len(const uint8_t *hdr, size_t len) SRDMA__WUR;
/*
 * Decodes exactly one frame of len bytes. Every length is checked exactly:
 * a truncated or oversized body, an unknown type or version, a reserved field
 * that is not zero, or an out-of-range value gives SRDMA_EPROTO or
 * SRDMA_EVERSION with detail.
 */
int srdma__msg_decode(const uint8_t *in, size_t len,
		      struct srdma__msg *msg) SRDMA__WUR;
const char *srdma__msg_type_name(uint8_t type);

int srdma__pdata_encode(const struct srdma__connect_pdata *pd,
			uint8_t out[static SRDMA_WIRE_CONNECT_PDATA_LEN])
	SRDMA__WUR;
/*
 * Decodes private data. Receivers may get more bytes than were sent (rdma_cm
 * pads); len must be >= SRDMA_WIRE_CONNECT_PDATA_LEN and only the first
 * SRDMA_WIRE_CONNECT_PDATA_LEN bytes are read; the embedded length must match.
 */
int srdma__pdata_decode(const uint8_t *in, size_t len,
			struct srdma__connect_pdata *pd) SRDMA__WUR;

#endif
