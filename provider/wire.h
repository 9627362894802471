/* SPDX-License-Identifier: MIT */
/*
 * The records the provider carries inside libsrdma messages. libsrdma
 * authenticates, encrypts and sequences each message (srdma_send); these
 * records add only what libfabric needs on top: connection data, message
 * boundaries, remote CQ data, and emulated RMA. Fixed little-endian
 * headers, exact lengths, one parser (sp_rec_parse) with a fuzz target.
 *
 *   common   type u8 | flags u8 | cm_len u16 | reserved u32 (zero)
 *   CONNREQ, ACCEPT, REJECT   common, then cm_len bytes of consumer data
 *   MSG       common | cq_data u64 | total u64 | payload
 *   WRITE     common | key u64 | addr u64 | cq_data u64 | payload
 *   READ_REQ  common | id u64 | key u64 | addr u64 | len u64
 *   READ_RESP common | id u64 | offset u64 | payload
 *   ERROR     common | code u64 | why (text): the sender fails the
 *             connection right after (a remote access it refused)
 *   BYE       common: nothing follows; the receiver closes (fabric.c)
 */
#ifndef SRDMA_PROV_WIRE_H
#define SRDMA_PROV_WIRE_H

#include <stddef.h>
#include <stdint.h>

enum sp_rec_type {
	SP_REC_CONNREQ = 1,
	SP_REC_ACCEPT = 2,
	SP_REC_REJECT = 3,
	SP_REC_MSG = 4,
	SP_REC_WRITE = 5,
	SP_REC_READ_REQ = 6,
	SP_REC_READ_RESP = 7,
	SP_REC_ERROR = 8,
	SP_REC_BYE = 9,
};

enum sp_rec_flag {
	SP_F_FIRST = 1, /* MSG: the first record of a message */
	SP_F_LAST = 2,	/* MSG, WRITE, READ_RESP: the last record */
	SP_F_DATA = 4,	/* MSG, WRITE: cq_data is remote CQ data */
};

enum {
	SP_REC_COMMON = 8,
	SP_REC_HDR_MAX = 40,
	SP_CM_DATA_MAX = 256, /* FI_OPT_CM_DATA_SIZE */
};

struct sp_rec {
	enum sp_rec_type type;
	uint8_t flags;
	uint64_t a, b, c, d; /* per type, in the order of the layout above */
	const uint8_t *payload;
	size_t len;
};

/* Header length of a record type, 0 for an unknown type. */
size_t sp_rec_hdr_len(enum sp_rec_type type);
/* Writes r's header into buf (at least SP_REC_HDR_MAX bytes) for a payload
 * of r->len bytes; returns the header length. */
size_t sp_rec_encode(uint8_t *buf, const struct sp_rec *r);
/* Parses one whole record; 0 or -1 (malformed: unknown type, flags not
 * allowed for the type, reserved bits set, wrong length). */
int sp_rec_parse(const uint8_t *buf, size_t len, struct sp_rec *r)
	__attribute__((warn_unused_result));

#endif /* SRDMA_PROV_WIRE_H */
