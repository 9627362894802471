/* SPDX-License-Identifier: MIT */
/*
 * libsrdma: authenticated, encrypted RDMA between a server and many clients.
 *
 * This is the only public header. Every object is opaque and has a
 * create/destroy pair; destroy functions accept NULL. Every call that can fail
 * returns 0 (or a non-negative count) on success and a negative SRDMA_E* code
 * on failure; srdma_strerror() turns a code into one sentence and
 * srdma_error_detail() gives the specifics of the last failure in the calling
 * thread (which file, which certificate, which peer).
 *
 * Threading: a context and everything created from it (listeners,
 * connections, regions) belong to one thread at a time, the one that calls
 * srdma_ctx_poll() or the blocking calls (which run the whole context's
 * loop, so two threads on two connections of one context collide just as
 * two threads on one connection do). A call that touches a context while
 * another thread is inside a call on it fails with SRDMA_ESTATE and changes
 * nothing (a destroy does nothing); this check is a diagnostic, not a lock.
 * Handing a context to another thread between calls is fine. Different
 * contexts may be used from different threads concurrently. Calls made from
 * the log callback on the thread that is inside the context work, except
 * srdma_ctx_destroy() and srdma_conn_destroy(). srdma_version(),
 * srdma_strerror(), srdma_error_detail(), srdma_config_init(),
 * srdma_region_footprint() and the getters of fixed attributes
 * (srdma_ctx_fd, srdma_ctx_transport, srdma_listener_port,
 * srdma_listener_fabric_port, srdma_region_id, srdma_region_len) may be
 * called from any thread.
 *
 * Lifetimes: destroy objects in any order. A context owns its listeners and
 * connections, a connection its regions, registered memory and stream;
 * destroying a parent releases all
 * its children's resources (connections are aborted, keys wiped, memory
 * deregistered and freed) and detaches the handles: they stay valid, calls
 * on them fail with SRDMA_ECLOSED (the getters above still answer), and the
 * application's own destroy of each one frees what is left. So every
 * handle the application gets (srdma_listen, srdma_connect[_start],
 * srdma_accept or an event naming a new connection, srdma_region_create,
 * srdma_mem_register, srdma_stream_open) is destroyed by the application
 * exactly once, before or after its parent. Connections the application never
 * saw are the context's own.
 *
 * Event loops: srdma_ctx_fd() returns one file descriptor that becomes
 * readable when srdma_ctx_poll() has work to do, and srdma_ctx_timeout()
 * how long the program may wait on it at most (the library's own timers:
 * handshake and close deadlines, retries). Blocking programs call the
 * *_sync / srdma_connect / srdma_recv conveniences instead; they run the same
 * loop internally and leave events they do not consume queued for
 * srdma_ctx_poll().
 */
#ifndef SRDMA_H
#define SRDMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SRDMA_API __attribute__((visibility("default")))
#else
#define SRDMA_API
#endif

/*
 * The library's version, the one place it is written: srdma_version()'s
 * string and CMake's project version are made from these. Macros, not enum
 * constants, so that a program can test them with #if.
 */
#define SRDMA_VERSION_MAJOR 0
#define SRDMA_VERSION_MINOR 1
#define SRDMA_VERSION_PATCH 0

/*
 * Error codes: 0 is success, failures are negative. One list gives both the
 * enum and srdma_strerror()'s sentences (as libuv's UV_ERRNO_MAP):
 * XX(name, value, sentence). Codes run from 0 down to SRDMA_ERROR_MIN with
 * no gaps; new codes go at the end. srdma_error_detail() (or an event's
 * detail) gives the specifics, notably for SRDMA_ESYS, SRDMA_ETLS,
 * SRDMA_EFABRIC, SRDMA_ECONFIG and SRDMA_EPEER.
 */
#define SRDMA_ERRNO_MAP(XX)                                                    \
	XX(SRDMA_OK, 0, "Success.")                                            \
	XX(SRDMA_EINVAL, -1, "An argument is invalid.")                        \
	XX(SRDMA_ENOMEM, -2, "Out of memory.")                                 \
	XX(SRDMA_ESYS, -3, "A system call failed.")                            \
	XX(SRDMA_ETIMEDOUT, -4, "The operation timed out.")                    \
	XX(SRDMA_EAGAIN, -5, "The operation would block; poll and try again.") \
	XX(SRDMA_ECLOSED, -6, "The connection is closed.")                     \
	XX(SRDMA_EPROTO, -7, "The peer broke the protocol.")                   \
	XX(SRDMA_EVERSION, -8,                                                 \
	   "The peer speaks an unsupported protocol version.")                 \
	XX(SRDMA_ETLS, -9, "The TLS handshake failed.")                        \
	XX(SRDMA_ETLS_VERSION, -10,                                            \
	   "The peer offered a TLS version older than 1.3; only TLS 1.3 is "   \
	   "accepted.")                                                        \
	XX(SRDMA_ENOT_TLS, -11, "The peer does not speak TLS.")                \
	XX(SRDMA_ECERT_UNKNOWN_CA, -12,                                        \
	   "The peer's certificate is not signed by a trusted CA.")            \
	XX(SRDMA_ECERT_EXPIRED, -13, "The peer's certificate has expired.")    \
	XX(SRDMA_ECERT_NOT_YET_VALID, -14,                                     \
	   "The peer's certificate is not valid yet.")                         \
	XX(SRDMA_ECERT_NAME, -15,                                              \
	   "The peer's certificate does not match the expected name.")         \
	XX(SRDMA_ECERT_MISSING, -16,                                           \
	   "The peer did not present a certificate.")                          \
	XX(SRDMA_ENOT_ALLOWED, -17,                                            \
	   "The peer's identity is not on the allow-list.")                    \
	XX(SRDMA_EPOLICY, -18,                                                 \
	   "The protection mode is weaker than the server accepts.")           \
	XX(SRDMA_EINTEGRITY, -19,                                              \
	   "Data failed authentication: it was tampered with or corrupted.")   \
	XX(SRDMA_EREPLAY, -20,                                                 \
	   "A record arrived out of sequence (replayed, dropped or "           \
	   "reordered).")                                                      \
	XX(SRDMA_ETOKEN, -21,                                                  \
	   "The fabric connect token was missing, wrong, expired or already "  \
	   "used.")                                                            \
	XX(SRDMA_ELIMIT, -22, "A server limit was reached; try again later.")  \
	XX(SRDMA_EQUOTA, -23, "The per-client memory quota is exhausted.")     \
	XX(SRDMA_ENODEV, -24, "No usable RDMA device or fabric provider.")     \
	XX(SRDMA_EFABRIC, -25, "A fabric operation failed.")                   \
	XX(SRDMA_ECONNREFUSED, -26, "The server refused the connection.")      \
	XX(SRDMA_EUNREACHABLE, -27, "The server could not be reached.")        \
	XX(SRDMA_EMSGSIZE, -28, "The message is larger than allowed.")         \
	XX(SRDMA_ERANGE, -29, "The offset or length is outside the region.")   \
	XX(SRDMA_EEXHAUSTED, -30,                                              \
	   "A sequence counter is exhausted; reconnect.")                      \
	XX(SRDMA_EREMOTE_ACCESS, -31,                                          \
	   "The peer refused a remote memory access.")                         \
	XX(SRDMA_ECONFIG, -32, "The configuration is unusable.")               \
	XX(SRDMA_ESTATE, -33,                                                  \
	   "The call is not valid in the connection's current state.")         \
	XX(SRDMA_ENOTSUP, -34, "Not supported by this transport.")             \
	XX(SRDMA_ENOENT, -35, "No such region.")                               \
	XX(SRDMA_EPEER, -36, "The peer reported an error.")                    \
	XX(SRDMA_ECERT_REVOKED, -37, "The peer's certificate has been revoked.")

#define SRDMA__ERRNO_ENUM(name, value, sentence) name = value,
/* clang-format off */
enum srdma_error {
	SRDMA_ERRNO_MAP(SRDMA__ERRNO_ENUM)
	SRDMA_ERROR_MIN = SRDMA_ECERT_REVOKED, /* the last code above */
};
/* clang-format on */
#undef SRDMA__ERRNO_ENUM

enum srdma_role { SRDMA_ROLE_CLIENT = 0, SRDMA_ROLE_SERVER = 1 };

enum srdma_transport {
	SRDMA_TRANSPORT_AUTO =
		0, /* verbs if an active RDMA port exists, else ofi */
	SRDMA_TRANSPORT_VERBS = 1,
	SRDMA_TRANSPORT_OFI = 2,
};

/* Ordered by strength, so a server's minimum is a simple comparison. */
enum srdma_protect {
	SRDMA_PROTECT_NONE = 0,	     /* authenticated set-up only */
	SRDMA_PROTECT_INTEGRITY = 1, /* payloads authenticated, not encrypted */
	SRDMA_PROTECT_ENCRYPT = 2,   /* payloads encrypted and authenticated */
};

enum srdma_log_level {
	SRDMA_LOG_ERROR = 0,
	SRDMA_LOG_WARN = 1,
	SRDMA_LOG_INFO = 2,
	SRDMA_LOG_DEBUG = 3,
};

/* A log line (no newline), at a level no higher than log_level. */
typedef void (*srdma_log_fn)(void *arg, int level, const char *line);

/*
 * Configuration. Fill with srdma_config_init() then change fields; the
 * context copies everything it needs, so strings may be freed afterwards.
 */
struct srdma_config {
	enum srdma_role role;
	enum srdma_transport transport;
	const char *provider; /* libfabric provider for ofi; NULL = "tcp" */
	const char *device;   /* verbs device name; NULL = any */

	/* Identity: either a directory written by `srdma certs` ... */
	const char *certs_dir;
	const char *identity; /* name in certs_dir; NULL = "server"/"client" */
	/* ... or explicit PEM files (these win over certs_dir). */
	const char *cert_file;
	const char *key_file;
	const char *ca_file;
	/* PEM file with a CRL from each CA in ca_file, or NULL. The peer's
	 * certificate is refused (SRDMA_ECERT_REVOKED) when it is on one: in
	 * every full handshake and, on a server, before a session is resumed
	 * from a ticket. A CRL that is unreadable, not signed by its CA, past
	 * its next update, or missing for a CA is SRDMA_ECONFIG. */
	const char *crl_file;

	const char *peer_name; /* client: expected server name; NULL = host */
	const char *const *allow; /* server: NULL-terminated list of client
				   * identities (CN or SAN); NULL = any client
				   * certificate issued by the CA */

	/* client: the mode asked for; server: the weakest mode accepted */
	enum srdma_protect protect;

	/* Limits (server); 0 keeps the default. */
	uint32_t max_clients;	 /* default 4096 */
	uint32_t max_handshakes; /* concurrent TLS handshakes, default 128 */
	uint32_t handshake_timeout_ms; /* TLS + parameters + fabric, default
					  10000 */
	/* Region memory per client, default 64 MiB. It counts what the
	 * server keeps, not payload: each region as sealed (see
	 * srdma_region_footprint: 4128 bytes per 4096-byte block in encrypt
	 * and integrity), plus 8 bytes per block of each readable region the
	 * client grants the server. */
	uint64_t client_quota;
	/* Connections (in set-up or established) one client identity may
	 * hold; 0 = no limit (the default). Checked right after TLS. */
	uint32_t max_per_identity;

	/* Data path (both sides; the smaller of the two sides' values wins). */
	/* largest srdma_send() payload: default 64 KiB, 64 B to 16 MiB
	 * (larger data goes by srdma_write/srdma_read) */
	uint32_t max_msg;
	uint32_t queue_depth; /* messages in flight each way, default 16 */
	/* RDMA writes and reads in flight on one connection (1..65536,
	 * default 256): srdma_write()/srdma_read() answer SRDMA_EAGAIN
	 * beyond it. Within it, operations queue inside the library and
	 * never push the peer past its window. */
	uint32_t max_ops;

	/* TLS 1.3 session resumption (tickets): on unless set. Server: issue
	 * and accept tickets; client: offer a cached one on reconnect. The
	 * allow-list and mode policy are checked on resumed sessions too. */
	uint8_t no_resumption;
	uint32_t
		ticket_rotate_s; /* server: ticket key lifetime, default 3600 */

	/* Server resource pool: connections (ofi domain + queues; verbs PD,
	 * CQ and QP) and message rings made ahead of time, handed to clients
	 * at random (QP numbers are not sequential) and, once zeroed and
	 * reset, reused; regions are always registered afresh, so no remote
	 * key outlives its client. resource_pool: kits kept ready (0 = default
	 * 16; capped at 64 MiB of rings); no_resource_pool: make everything
	 * per client instead. */
	uint32_t resource_pool;
	uint8_t no_resource_pool;

	/* The library logs only through log_fn: NULL = no logs at all;
	 * srdma_log_stderr prints them on stderr. */
	srdma_log_fn log_fn;
	void *log_arg;
	int log_level; /* default SRDMA_LOG_WARN */

	/* verbs: the IP type of service of this context's RDMA traffic
	 * (RDMA_OPTION_ID_TOS; e.g. 0x68 = DSCP 26, for a fabric whose
	 * lossless class is mapped by DSCP). The client's value decides a
	 * connection's class; a server's applies where it starts one. 0 =
	 * the system's default (rdma_cm's default_roce_tos). */
	uint8_t tos;
	/* verbs: limit for rdma_cm route resolution (an SA path query on
	 * InfiniBand), default 2000 ms. */
	uint32_t route_timeout_ms;
	/* verbs: on a device without usable type-2 memory windows, grant
	 * regions with the registration's own key (logged once per device)
	 * instead of refusing them. Payloads stay sealed either way. */
	uint8_t allow_mr_keys;
};

typedef struct srdma_ctx srdma_ctx;
typedef struct srdma_listener srdma_listener;
typedef struct srdma_conn srdma_conn;
typedef struct srdma_region srdma_region;
typedef struct srdma_mem srdma_mem;
typedef struct srdma_stream srdma_stream;

enum srdma_event_type {
	SRDMA_EV_ACCEPTED = 1,	/* server: a client is fully connected (conn) */
	SRDMA_EV_CONNECTED = 2, /* client: srdma_connect_start() finished */
	SRDMA_EV_RECV = 3,	/* a verified message: data/len */
	SRDMA_EV_WRITE_DONE = 4, /* srdma_write() finished: user, status */
	SRDMA_EV_READ_DONE = 5,	 /* srdma_read() finished and verified */
	SRDMA_EV_PEER_WRITE = 6, /* the peer wrote and we verified:
				    region, offset, len */
	SRDMA_EV_REGION = 7,	 /* the peer granted a region: region, len */
	SRDMA_EV_CLOSED = 8,	 /* conn is closed; status 0 = orderly */
	SRDMA_EV_REJECTED = 9,	 /* server: a would-be client was refused;
				    status says why, detail names the peer */
	SRDMA_EV_STREAM = 10,	 /* the stream has what a non-blocking call
				    lacked (bytes, room, the end): once after
				    that call said SRDMA_EAGAIN */
};

struct srdma_event {
	enum srdma_event_type type;
	int status;	  /* 0 or a negative SRDMA_E* code */
	srdma_conn *conn; /* NULL for SRDMA_EV_REJECTED */
	void *user;	  /* the pointer given to the operation */
	/* SRDMA_EV_RECV's message, and detail: valid until the next
	 * srdma_ctx_poll() or blocking call on the context, or until conn is
	 * destroyed, whichever comes first. Copy what you keep. */
	const void *data;
	size_t len;
	uint32_t region; /* region id (SRDMA_EV_PEER_WRITE, SRDMA_EV_REGION) */
	uint64_t offset;
	const char *detail; /* one sentence; valid as data */
};

/* What was agreed for a connection, for logs and the demo. */
struct srdma_conn_info {
	enum srdma_transport transport;
	enum srdma_protect protect;
	char provider[32];	 /* "tcp", "rxe0", ... */
	char peer_identity[128]; /* the peer certificate's CN */
	char peer_addr[64];	 /* host:port of the control connection */
	char cipher[32];	 /* AEAD used for payloads, "" for none */
	char tls_version[48];	 /* "TLSv1.3" and the TLS suite */
	uint64_t session_id;
	uint32_t local_psn, remote_psn; /* verbs; 0 on ofi */
	uint32_t local_qpn, remote_qpn; /* verbs; 0 on ofi */
	uint32_t max_msg;
	uint32_t queue_depth;
	uint32_t max_ops; /* RDMA operations in flight at most (EAGAIN) */
	/* Reads read again because they raced with the owner's update (a
	 * block it was sealing, or one it had not announced yet). */
	uint64_t read_retries;
	/* Reads that kept racing and asked the owner to hold its puts into
	 * their range until they were read whole (srdma_read). */
	uint64_t read_holds;
	/* Which implementation runs the AEAD ("intel-ipsec-mb 1.3.0 (AVX512,
	 * VAES)", "OpenSSL 3.0.x EVP"; "" in mode none). */
	char aead_impl[64];
	uint8_t resumed; /* the TLS session was resumed from a ticket */
};

/* ---- library ---- */
SRDMA_API const char *srdma_version(void);
SRDMA_API const char *srdma_strerror(int err);
/* Detail of the last failure in this thread ("" if none). */
SRDMA_API const char *srdma_error_detail(void);
SRDMA_API const char *srdma_transport_name(enum srdma_transport t);
SRDMA_API const char *srdma_protect_name(enum srdma_protect p);
/* A ready-made srdma_log_fn: "srdma: LEVEL: line" on stderr (arg unused). */
SRDMA_API void srdma_log_stderr(void *arg, int level, const char *line);

/* ---- context ---- */
SRDMA_API void srdma_config_init(struct srdma_config *cfg,
				 enum srdma_role role);
SRDMA_API int srdma_ctx_create(const struct srdma_config *cfg, srdma_ctx **out);
/* Aborts every connection (peers see an error), frees everything it owns
 * and detaches the listeners and connections the application holds (see
 * "Lifetimes"); queued events are dropped. */
SRDMA_API void srdma_ctx_destroy(srdma_ctx *ctx);
/* Readable when srdma_ctx_poll() has work. Never close it. */
SRDMA_API int srdma_ctx_fd(const srdma_ctx *ctx);
/*
 * The longest a program may wait for srdma_ctx_fd() before it calls
 * srdma_ctx_poll() again, in ms: 0 = call it now (events are queued or
 * work is pending), -1 = no timer (wait for the fd alone). Use it as the
 * timeout of poll(2) or epoll_wait(2).
 */
SRDMA_API int srdma_ctx_timeout(const srdma_ctx *ctx);
/*
 * Runs the loop for at most timeout_ms (-1 = until an event, 0 = no wait)
 * and returns up to max events (0 on timeout) or a negative error.
 */
SRDMA_API int srdma_ctx_poll(srdma_ctx *ctx, struct srdma_event *evs, int max,
			     int timeout_ms);
/* The transport in use and why it was chosen. auto is decided for good by
 * the first srdma_listen() or srdma_connect*() (verbs only where that
 * address is reached through a usable RDMA device); before, this shows the
 * provisional choice (any usable device with an active port). */
SRDMA_API enum srdma_transport srdma_ctx_transport(const srdma_ctx *ctx,
						   const char **why);
/*
 * Reloads the trust material without dropping anyone: certificate, key, CA,
 * CRL and allow-list are read again, from cfg's cert_file / key_file /
 * ca_file (or certs_dir and identity), crl_file and allow, or, with cfg
 * NULL, from the files and allow-list the context was created with (other
 * fields of cfg are ignored). Connections already made keep going; new
 * handshakes use the new material. Tickets issued before stay good where
 * the trust is unchanged: one issued under a CA the reload removed does not
 * resume, and the new allow-list and CRL apply to every resumed session.
 * On failure (SRDMA_ECONFIG and the detail: which file, what is wrong) the
 * context keeps its old material.
 */
SRDMA_API int srdma_ctx_reload(srdma_ctx *ctx, const struct srdma_config *cfg);

/* ---- metrics ---- */
/* Why a would-be client was refused: the index of srdma_metrics.refused. */
enum srdma_refusal {
	SRDMA_REFUSAL_SHED = 0,	   /* an idle handshake closed to make room for
				      connections waiting at max_handshakes */
	SRDMA_REFUSAL_TIMEOUT = 1, /* set-up took longer than
				      handshake_timeout_ms */
	SRDMA_REFUSAL_NOT_TLS = 2, /* not TLS, or TLS older than 1.3 */
	SRDMA_REFUSAL_CERT = 3,	   /* certificate missing, of an unknown CA,
				      expired or not yet valid */
	SRDMA_REFUSAL_REVOKED = 4, /* certificate on a CRL */
	SRDMA_REFUSAL_NOT_ALLOWED = 5,	/* identity not on the allow-list */
	SRDMA_REFUSAL_MAX_CLIENTS = 6,	/* at max_clients */
	SRDMA_REFUSAL_PER_IDENTITY = 7, /* at max_per_identity */
	SRDMA_REFUSAL_POLICY = 8, /* protection below the server's minimum,
				     other protocol version or transport */
	SRDMA_REFUSAL_TOKEN = 9,  /* fabric connect without a valid token */
	SRDMA_REFUSAL_OTHER = 10, /* anything else: a TLS or protocol
				     failure, the peer left, no resources */
	SRDMA_REFUSAL_COUNT = 11,
};

/* Payload operations by kind: the first index of srdma_metrics.ops and
 * .bytes; the second is the connection's enum srdma_protect. */
enum srdma_metric_op {
	SRDMA_METRIC_SEND = 0,	     /* messages sent */
	SRDMA_METRIC_RECV = 1,	     /* messages received and verified */
	SRDMA_METRIC_WRITE = 2,	     /* RDMA writes the owner acknowledged */
	SRDMA_METRIC_READ = 3,	     /* RDMA reads completed and verified */
	SRDMA_METRIC_PEER_WRITE = 4, /* the peer's writes to our regions,
					verified */
	SRDMA_METRIC_OP_COUNT = 5,
};

struct srdma_metrics {
	/* Gauges: now. */
	uint32_t clients;	/* established connections */
	uint32_t handshakes;	/* connections in set-up (from the TCP
				   connect or accept to the fabric connect) */
	uint32_t accept_paused; /* server: 1 while the handshake slots are
				   full and new connections wait in the
				   listen backlog */
	uint32_t pool_spares;	/* server: resource-pool kits ready */
	/* Counters: since srdma_ctx_create(). */
	uint64_t accepted;	 /* server: TCP connections accepted */
	uint64_t established;	 /* connections that completed set-up */
	uint64_t resumed;	 /* ... of which resumed a TLS session */
	uint64_t resume_refused; /* ... of which offered a ticket that was
				    not used (a full handshake followed) */
	uint64_t refused[SRDMA_REFUSAL_COUNT]; /* server: would-be clients
						  refused, by reason */
	uint64_t connect_failed;  /* client: connects that failed */
	uint64_t busy_retries;	  /* client: reconnects after the server
				     closed a handshake because it was busy */
	uint64_t closed;	  /* established connections that ended */
	uint64_t closed_error;	  /* ... of which with an error */
	uint64_t verify_failures; /* connections failed because a record or
				     block failed authentication or arrived
				     out of sequence */
	uint64_t ops[SRDMA_METRIC_OP_COUNT][3];	  /* operations */
	uint64_t bytes[SRDMA_METRIC_OP_COUNT][3]; /* their payload bytes */
	uint64_t pool_hits;   /* server: clients given a ready pool kit */
	uint64_t pool_misses; /* server: clients whose fabric resources
				 were made on arrival (pool empty or off) */
	uint64_t reloads;     /* srdma_ctx_reload() calls that took effect */
	uint64_t reload_failures; /* ... and that failed (nothing changed) */
};

/* Fills *out (a snapshot; call from the context's thread). */
SRDMA_API int srdma_ctx_metrics(const srdma_ctx *ctx,
				struct srdma_metrics *out);

/* ---- server ---- */
/*
 * host NULL = all addresses; port 0 = pick one (see srdma_listener_port).
 * The listen backlog is 4096 (the kernel caps it at net.core.somaxconn).
 * At max_handshakes the server stops accepting: new connections wait in the
 * backlog, and while they wait, handshakes that made no progress (no whole
 * handshake message arrived) are closed to make room: one that sent part of
 * a record after 250 ms, one that sent nothing after 1 s, one stalled after
 * its ClientHello after 3 s; of these, the source address holding the most
 * slots first, then the longest idle. Their clients, if they are clients,
 * retry.
 */
SRDMA_API int srdma_listen(srdma_ctx *ctx, const char *host, uint16_t port,
			   srdma_listener **out);
SRDMA_API uint16_t srdma_listener_port(const srdma_listener *l);
/* The port of the fabric listener (rdma_cm or libfabric) clients connect to
 * after TLS; chosen by the system. */
SRDMA_API uint16_t srdma_listener_fabric_port(const srdma_listener *l);
/* Stops listening; clients already accepted are not affected. */
SRDMA_API void srdma_listener_destroy(srdma_listener *l);
/*
 * Blocking accept: runs the loop until a client of l is fully connected
 * (authenticated, fabric up) and returns it, or SRDMA_ETIMEDOUT after
 * timeout_ms (-1 = wait forever, 0 = one pass without waiting). Other
 * events stay queued for srdma_ctx_poll(); refused clients are reported
 * there as SRDMA_EV_REJECTED. A program that never polls should call
 * srdma_ctx_poll(ctx, evs, n, 0) now and then to drain them.
 */
SRDMA_API int srdma_accept(srdma_listener *l, int timeout_ms, srdma_conn **out);

/* ---- client ---- */
/* Starts connecting; SRDMA_EV_CONNECTED or SRDMA_EV_CLOSED follows. */
SRDMA_API int srdma_connect_start(srdma_ctx *ctx, const char *host,
				  uint16_t port, void *user, srdma_conn **out);
/*
 * Blocking connect; on failure *out is NULL and the detail says why. Both
 * connects retry, within their timeout, when the server closes the TLS
 * handshake without a word (it is busy: at max_handshakes, shedding idle
 * handshakes, or restarting), after a jittered, exponentially growing
 * pause (25 ms to 1 s); if the time runs out first the error is
 * SRDMA_ELIMIT.
 */
SRDMA_API int srdma_connect(srdma_ctx *ctx, const char *host, uint16_t port,
			    int timeout_ms, srdma_conn **out);

/* ---- connection ---- */
SRDMA_API int srdma_conn_info(const srdma_conn *c, struct srdma_conn_info *out);
SRDMA_API void srdma_conn_set_user(srdma_conn *c, void *user);
SRDMA_API void *srdma_conn_user(const srdma_conn *c);
/* Starts an orderly close (goodbye, drain); SRDMA_EV_CLOSED follows. */
SRDMA_API int srdma_conn_close(srdma_conn *c);
/*
 * Fails the connection at once with code (a negative SRDMA_E*) and tells an
 * authenticated peer why in one sentence; SRDMA_EV_CLOSED follows. For a
 * server that must refuse a client after accepting it (quota, policy).
 */
SRDMA_API int srdma_conn_abort(srdma_conn *c, int code, const char *why);
/* Frees the connection; closes it first (bounded wait) if still open.
 * Pending operations complete with SRDMA_ECLOSED before it returns; its
 * queued events are dropped and its regions detached (see "Lifetimes"). */
SRDMA_API void srdma_conn_destroy(srdma_conn *c);

/*
 * Sends one message of at most max_msg bytes. The payload is sealed into
 * registered memory before the call returns, so buf may be reused at once.
 * SRDMA_EAGAIN when the send window is full.
 */
SRDMA_API int srdma_send(srdma_conn *c, const void *buf, size_t len);
/* Blocking: waits for window space. */
SRDMA_API int srdma_send_sync(srdma_conn *c, const void *buf, size_t len,
			      int timeout_ms);
/* Blocking receive of one verified message into buf (cap bytes). */
SRDMA_API int srdma_recv(srdma_conn *c, void *buf, size_t cap, size_t *len,
			 int timeout_ms);

/*
 * RDMA write into / read from a region the peer granted (SRDMA_EV_REGION).
 * offset must be a multiple of SRDMA_BLOCK_SIZE; len at least 1. buf must
 * stay valid until SRDMA_EV_WRITE_DONE / SRDMA_EV_READ_DONE with the same
 * user pointer. Read data is verified before READ_DONE reports status 0; on
 * failure buf holds no unverified bytes (it is zeroed). At most max_ops
 * operations are in flight on a connection: beyond, SRDMA_EAGAIN (poll and
 * try again). A region not granted (yet) is SRDMA_ENOENT (grants arrive
 * after srdma_connect returns: srdma_conn_wait_region waits for one); a
 * write into a region granted read-only is SRDMA_EREMOTE_ACCESS.
 *
 * A read that races the owner's update of the same blocks is read again
 * (srdma_conn_info.read_retries counts them). After two re-reads it asks
 * the owner to hold its puts into the range until the read is whole
 * (read_holds counts them; one read at a time, at most SRDMA_HOLD_MAX_MS),
 * so an owner that puts in a tight loop cannot starve a reader. After 64
 * attempts that the owner's announced updates explain (the hold ran out),
 * READ_DONE (or srdma_read_sync) reports SRDMA_EAGAIN: read it again.
 * Nothing torn or stale is ever delivered.
 *
 * The _sync forms wait, within timeout_ms, for the grant of a region not
 * granted yet, for room among max_ops, and for the operation. When an
 * operation itself times out the connection is failed (so buf is never
 * touched after the call returns).
 */
enum { SRDMA_BLOCK_SIZE = 4096 };
SRDMA_API int srdma_write(srdma_conn *c, uint32_t region, uint64_t offset,
			  const void *buf, size_t len, void *user);
SRDMA_API int srdma_read(srdma_conn *c, uint32_t region, uint64_t offset,
			 void *buf, size_t len, void *user);
SRDMA_API int srdma_write_sync(srdma_conn *c, uint32_t region, uint64_t offset,
			       const void *buf, size_t len, int timeout_ms);
SRDMA_API int srdma_read_sync(srdma_conn *c, uint32_t region, uint64_t offset,
			      void *buf, size_t len, int timeout_ms);
/* Size of a region the peer granted, or SRDMA_ENOENT. */
SRDMA_API int srdma_conn_remote_region(const srdma_conn *c, uint32_t region,
				       uint64_t *len);
/*
 * Waits until the peer has granted region `region` (0 = any region) and
 * returns its id (> 0) with its length in *len, or a negative error.
 */
SRDMA_API int srdma_conn_wait_region(srdma_conn *c, uint32_t region,
				     int timeout_ms, uint64_t *len);

/* ---- regions (memory this side exposes to the peer) ---- */
enum srdma_access {
	SRDMA_ACCESS_REMOTE_READ = 1,
	SRDMA_ACCESS_REMOTE_WRITE = 2,
	/* Register now, grant later with srdma_region_grant() (e.g. after
	 * filling it with srdma_region_put: on verbs the NIC serves reads
	 * without the owner, so a region is readable the moment it is
	 * granted). */
	SRDMA_REGION_DEFER_GRANT = 0x100,
};
/*
 * Registers len bytes (rounded up to blocks) on c, charged to the quota, and
 * grants them to the peer with the given access. The memory is kept sealed:
 * the peer's writes are verified before srdma_region_get() returns them.
 * On verbs the grant goes out once the region's memory window is bound to
 * the connection (microseconds later, from the loop); a bind that fails
 * fails the connection with a sentence; a region there covers at most 2
 * GiB (one window). On a device without usable type-2 memory windows this
 * fails with SRDMA_ENOTSUP unless allow_mr_keys is set.
 */
SRDMA_API int srdma_region_create(srdma_conn *c, uint64_t len, int access,
				  srdma_region **out);
/* Sends the grant of a region created with SRDMA_REGION_DEFER_GRANT (on
 * verbs once its memory window is bound, as above). */
SRDMA_API int srdma_region_grant(srdma_region *r);
SRDMA_API uint32_t srdma_region_id(const srdma_region *r);
SRDMA_API uint64_t srdma_region_len(const srdma_region *r);
/* Local access by the owner: verified read / sealed write. */
SRDMA_API int srdma_region_get(srdma_region *r, uint64_t offset, void *buf,
			       size_t len);
/*
 * Gives the region a plaintext mirror: buf (at least srdma_region_len
 * bytes) receives, at the same offsets, the plaintext of every peer write
 * as it is verified, in the same pass (no second open with
 * srdma_region_get); when SRDMA_EV_PEER_WRITE arrives, those bytes are in
 * buf. buf NULL removes it. buf must stay valid while set.
 */
SRDMA_API int srdma_region_set_sink(srdma_region *r, void *buf, size_t len);
/*
 * Seals len bytes at offset into the region (one new version) and tells a
 * peer that may read it (an UPDATE). SRDMA_EAGAIN, with nothing written:
 * the peer is reading those blocks and holds puts there until its read is
 * whole (a read that kept racing our puts; at most SRDMA_HOLD_MAX_MS), or
 * the peer has not taken our last updates yet. Poll and put again.
 */
enum { SRDMA_HOLD_MAX_MS = 100 };
SRDMA_API int srdma_region_put(srdma_region *r, uint64_t offset,
			       const void *buf, size_t len);
/* Revokes the peer's access (invalidates the key) and frees the memory;
 * on a region whose connection is gone, frees the handle. */
SRDMA_API void srdma_region_destroy(srdma_region *r);
/*
 * What a region of len bytes charges against a server's client_quota when
 * made on a connection of mode p: len rounded up to blocks, each block as
 * sealed (4128 bytes per 4096 in encrypt and integrity, 4096 in none).
 */
SRDMA_API uint64_t srdma_region_footprint(uint64_t len, enum srdma_protect p);

/* ---- registered memory (zero copy) ---- */
/*
 * Registers len bytes at buf with c's fabric for local use, once, so that
 * srdma_write()/srdma_read() whose buffer lies inside it move the bytes
 * straight between it and the peer in mode none (no staging copy; in
 * integrity and encrypt the payload is sealed or opened in one pass from
 * or into the buffer either way). The memory must stay valid until
 * srdma_mem_deregister(); deregistering while operations use it defers
 * the release until they complete. Like a region, a registration whose
 * connection (or context) is destroyed first is detached: its fabric
 * registration is gone and srdma_mem_deregister() frees the handle.
 */
SRDMA_API int srdma_mem_register(srdma_conn *c, void *buf, size_t len,
				 srdma_mem **out);
SRDMA_API void srdma_mem_deregister(srdma_mem *m);

/* ---- the byte stream ---- */
/*
 * A connection carries one ordered, reliable byte stream each way, with
 * flow control: send and receive any number of bytes, in any pieces.
 * Underneath, each side grants the peer a ring region with a plaintext
 * sink; the sender RDMA-writes segments of up to 128 KiB into it (small
 * ones go as records when that is quicker), the owner verifies and opens
 * each in one pass, and gives back ring space as the application consumes
 * it (docs/PROTOCOL.md §6a). Nothing of it mixes with srdma_send messages
 * or the application's regions; the peer's ring never shows up as a
 * region (no SRDMA_EV_REGION, srdma_conn_wait_region skips it).
 *
 * Both sides call srdma_stream_open; bytes flow once both have. Every
 * call is non-blocking except the *_sync ones and srdma_stream_recv with a
 * timeout; a non-blocking call that says SRDMA_EAGAIN is followed by one
 * SRDMA_EV_STREAM when what it lacked arrived. Once the connection has
 * failed, calls return its error; bytes already received stay readable.
 */
enum {
	SRDMA_STREAM_RING_DEFAULT = 1 << 20, /* ring bytes for ring = 0 */
};

struct srdma_stream_info {
	uint64_t sent;		   /* bytes accepted by send / commit */
	uint64_t received;	   /* bytes handed to the application */
	uint64_t segments_written; /* segments sent by RDMA write */
	uint64_t segments_inline;  /* segments sent inside records */
	uint64_t send_blocked;	   /* sends that found no room (EAGAIN) */
	uint64_t ring, peer_ring;  /* bytes: our receive ring, the peer's */
	uint8_t peer_open;	   /* the peer opened its side */
	uint8_t eof;		   /* the peer's end of stream was read */
};

/*
 * Opens c's stream: grants the peer a receive ring of `ring` bytes (0 =
 * SRDMA_STREAM_RING_DEFAULT; 64 KiB .. 1 GiB, rounded up to 4 KiB; a
 * server charges it, sealed, to the client's quota). The ring bounds the
 * bytes in flight: the default keeps the working set in cache on fast
 * local links; raise it where bandwidth x round trip is larger. A side
 * that only sends may pass the minimum. SRDMA_ESTATE if this connection
 * already opened one.
 */
SRDMA_API int srdma_stream_open(srdma_conn *c, size_t ring, srdma_stream **out);
/*
 * Sends up to len bytes: copies what fits into the send ring and returns
 * that count (1..len), or SRDMA_EAGAIN when nothing fits (the peer has not
 * consumed enough yet, or has not opened its side). buf may be reused at
 * once. len 0 returns 0.
 */
SRDMA_API int srdma_stream_send(srdma_stream *s, const void *buf, size_t len);
/* Blocking: all len bytes, or an error (SRDMA_ETIMEDOUT). */
SRDMA_API int srdma_stream_send_sync(srdma_stream *s, const void *buf,
				     size_t len, int timeout_ms);
/*
 * Zero copy: *buf, *len is room in the send ring to fill in place (it
 * ends at the ring's end: ask again after committing); commit n of them
 * (n <= *len). SRDMA_EAGAIN as srdma_stream_send.
 */
SRDMA_API int srdma_stream_reserve(srdma_stream *s, void **buf, size_t *len);
SRDMA_API int srdma_stream_commit(srdma_stream *s, size_t n);
/*
 * No byte follows what was sent: the peer reads the end after the last
 * one. Sending after it is SRDMA_ESTATE.
 */
SRDMA_API int srdma_stream_shutdown(srdma_stream *s);
/*
 * Waits until every byte sent (and the end, after shutdown) has left: the
 * peer's library verified it into its ring. Not that the peer's
 * application read it: an application protocol says that.
 */
SRDMA_API int srdma_stream_flush(srdma_stream *s, int timeout_ms);
/*
 * Receives up to cap (> 0) bytes in order: returns the count (> 0), 0 at
 * the end of the stream, SRDMA_EAGAIN (timeout_ms 0) or SRDMA_ETIMEDOUT
 * when none came. At most INT_MAX bytes a call.
 */
SRDMA_API int srdma_stream_recv(srdma_stream *s, void *buf, size_t cap,
				int timeout_ms);
/*
 * Zero copy: *data, *len are the next bytes, verified and in place in the
 * receive ring (one segment at most); *len 0 is the end of the stream.
 * SRDMA_EAGAIN when none yet. They stay until srdma_stream_consume(n)
 * (n <= *len) hands their room back to the peer.
 */
SRDMA_API int srdma_stream_peek(srdma_stream *s, const void **data,
				size_t *len);
SRDMA_API int srdma_stream_consume(srdma_stream *s, size_t n);
SRDMA_API int srdma_stream_info(const srdma_stream *s,
				struct srdma_stream_info *out);
/*
 * Closes this side: the ring is revoked and freed, bytes not yet sent are
 * dropped (srdma_stream_flush first). A connection carries one stream in
 * its life. A stream whose connection was destroyed first is detached
 * ("Lifetimes"): its calls answer SRDMA_ECLOSED, and this frees the handle.
 * NULL is ignored.
 */
SRDMA_API void srdma_stream_destroy(srdma_stream *s);

/* ---- client connection pool ---- */
/*
 * Up to max_conns authenticated connections to one server. Each pooled
 * connection has its own context, so a borrowed connection may be used from
 * any thread (one thread at a time) while others use theirs. All srdma_pool_*
 * calls are thread-safe. A connection that failed is replaced for the next
 * borrower (its own pending operations still get their error); connections
 * idle longer than idle_timeout_ms are closed. Reconnects reuse the context,
 * so TLS resumption applies where the server allows it.
 */
typedef struct srdma_pool srdma_pool;

struct srdma_pool_config {
	const struct srdma_config *cfg; /* client configuration (copied) */
	const char *host;
	uint16_t port;
	uint32_t max_conns;	  /* default 8 */
	uint32_t idle_timeout_ms; /* default 60000; 0 keeps the default */
	int connect_timeout_ms;	  /* default 10000 */
};

struct srdma_pool_stats {
	uint32_t open;	   /* connections held */
	uint32_t borrowed; /* of which lent out */
	uint64_t connects; /* connections made over the pool's life */
	uint64_t replaced; /* failed connections replaced */
	uint64_t idle_closed;
};

SRDMA_API int srdma_pool_create(const struct srdma_pool_config *pc,
				srdma_pool **out);
/* Closes every connection; borrowed ones must have been returned. */
SRDMA_API void srdma_pool_destroy(srdma_pool *p);
/*
 * Lends a healthy connection, connecting a new one if none is idle and the
 * pool is below max_conns, else waits up to timeout_ms for a return.
 * SRDMA_ETIMEDOUT when none came back; a connect error (for example
 * SRDMA_ELIMIT from a full server) is returned as is, and the pool keeps
 * the connections it has.
 */
SRDMA_API int srdma_pool_borrow(srdma_pool *p, int timeout_ms,
				srdma_conn **out);
/* Gives a borrowed connection back; a failed one is dropped. */
SRDMA_API void srdma_pool_return(srdma_pool *p, srdma_conn *c);
SRDMA_API void srdma_pool_stats(srdma_pool *p, struct srdma_pool_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* SRDMA_H */
