/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "common.h"

void common_init(struct common_opts *o, enum srdma_role role)
{
	memset(o, 0, sizeof(*o));
	srdma_config_init(&o->cfg, role);
	o->cfg.log_fn = tool_log;
	/* The tool prints its own one-line outcome; library warnings would
	 * repeat it. -v brings them back. */
	o->cfg.log_level = SRDMA_LOG_ERROR;
	o->cfg.log_arg = o;
	snprintf(o->host, sizeof(o->host), "%s",
		 role == SRDMA_ROLE_SERVER ? "0.0.0.0" : "localhost");
	o->port = DEFAULT_PORT;
}

const char *common_help(void)
{
	return "  --certs DIR          identities written by `srdma certs "
	       "DIR`\n"
	       "  --identity NAME      which identity in DIR (default: server "
	       "/ client)\n"
	       "  --cert F --key F --ca F   explicit PEM files instead of "
	       "--certs\n"
	       "  --crl FILE           CRLs (PEM, one per CA): a peer whose "
	       "certificate\n"
	       "                       is on one is refused\n"
	       "  --transport T        auto (default) | verbs | ofi\n"
	       "  --provider NAME      libfabric provider for ofi (default "
	       "tcp)\n"
	       "  --device NAME        verbs device (default: the one each "
	       "address is on)\n"
	       "  --tos N              verbs: IP type of service of RDMA "
	       "traffic (e.g. 0x68 = DSCP 26)\n"
	       "  --route-timeout MS   verbs: rdma_cm route resolution limit "
	       "(default 2000)\n"
	       "  --allow-mr-keys      verbs: on devices without type-2 memory "
	       "windows, grant\n"
	       "                       regions with the MR's own key instead "
	       "of refusing\n"
	       "  --protect MODE       encrypt (default) | integrity | none\n"
	       "                       (server: the weakest mode it accepts)\n"
	       "  --peer-name NAME     client: name the server certificate "
	       "must carry\n"
	       "  --allow ID           server: accept only this client "
	       "identity (repeatable)\n"
	       "  --max-msg BYTES      largest message (default 64K)\n"
	       "  --queue-depth N      messages in flight each way (default "
	       "16)\n"
	       "  --handshake-timeout MS   set-up deadline (default 10000)\n"
	       "  --no-resumption      no TLS session tickets (server: issue "
	       "none)\n"
	       "  -v, --verbose        log more (repeat for debug)\n";
}

int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return -1;
	v = strtoull(s, &end, 10);
	if (end == s)
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end)
		return -1;
	*out = v;
	return 0;
}

int parse_hostport(const char *s, char *host, size_t hlen, uint16_t *port)
{
	const char *colon;
	char *end;
	unsigned long p;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb)
			return -1;
		snprintf(host, hlen, "%.*s", (int)(rb - s - 1), s + 1);
		colon = rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			colon = NULL; /* bare IPv6 */
		if (colon) {
			if (colon != s)
				snprintf(host, hlen, "%.*s", (int)(colon - s),
					 s);
		} else {
			snprintf(host, hlen, "%s", s);
		}
	}
	if (colon) {
		p = strtoul(colon + 1, &end, 10);
		if (*end || end == colon + 1 || p > 65535)
			return -1;
		*port = (uint16_t)p;
	}
	return 0;
}

static int need(const char *cmd, int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "srdma %s: %s needs a value\n", cmd, argv[*i]);
		return -1;
	}
	(*i)++;
	return 0;
}

int common_parse(struct common_opts *o, const char *cmd, int argc, char **argv,
		 int *i)
{
	const char *a = argv[*i];
	uint64_t v;

#define VAL()                                                                  \
	do {                                                                   \
		if (need(cmd, argc, argv, i) < 0)                              \
			return -1;                                             \
	} while (0)
	if (!strcmp(a, "--certs")) {
		VAL();
		o->cfg.certs_dir = argv[*i];
	} else if (!strcmp(a, "--identity")) {
		VAL();
		o->cfg.identity = argv[*i];
	} else if (!strcmp(a, "--cert")) {
		VAL();
		o->cfg.cert_file = argv[*i];
	} else if (!strcmp(a, "--key")) {
		VAL();
		o->cfg.key_file = argv[*i];
	} else if (!strcmp(a, "--ca")) {
		VAL();
		o->cfg.ca_file = argv[*i];
	} else if (!strcmp(a, "--crl")) {
		VAL();
		o->cfg.crl_file = argv[*i];
	} else if (!strcmp(a, "--transport")) {
		VAL();
		if (!strcmp(argv[*i], "auto"))
			o->cfg.transport = SRDMA_TRANSPORT_AUTO;
		else if (!strcmp(argv[*i], "verbs"))
			o->cfg.transport = SRDMA_TRANSPORT_VERBS;
		else if (!strcmp(argv[*i], "ofi"))
			o->cfg.transport = SRDMA_TRANSPORT_OFI;
		else {
			fprintf(stderr,
				"srdma %s: unknown transport '%s' (auto, "
				"verbs, ofi)\n",
				cmd, argv[*i]);
			return -1;
		}
	} else if (!strcmp(a, "--provider")) {
		VAL();
		o->cfg.provider = argv[*i];
	} else if (!strcmp(a, "--device")) {
		VAL();
		o->cfg.device = argv[*i];
	} else if (!strcmp(a, "--protect")) {
		VAL();
		if (!strcmp(argv[*i], "encrypt"))
			o->cfg.protect = SRDMA_PROTECT_ENCRYPT;
		else if (!strcmp(argv[*i], "integrity"))
			o->cfg.protect = SRDMA_PROTECT_INTEGRITY;
		else if (!strcmp(argv[*i], "none"))
			o->cfg.protect = SRDMA_PROTECT_NONE;
		else {
			fprintf(stderr,
				"srdma %s: unknown protection '%s' (encrypt, "
				"integrity, none)\n",
				cmd, argv[*i]);
			return -1;
		}
	} else if (!strcmp(a, "--peer-name")) {
		VAL();
		o->cfg.peer_name = argv[*i];
	} else if (!strcmp(a, "--allow")) {
		VAL();
		if (o->nallow >= MAX_ALLOW) {
			fprintf(stderr, "srdma %s: at most %d --allow\n", cmd,
				MAX_ALLOW);
			return -1;
		}
		o->allow[o->nallow++] = argv[*i];
		o->allow[o->nallow] = NULL;
		o->cfg.allow = o->allow;
	} else if (!strcmp(a, "--max-msg")) {
		VAL();
		if (parse_size(argv[*i], &v) < 0 || v < 64 || v > (16u << 20)) {
			fprintf(stderr,
				"srdma %s: bad --max-msg '%s' (64..16M)\n", cmd,
				argv[*i]);
			return -1;
		}
		o->cfg.max_msg = (uint32_t)v;
	} else if (!strcmp(a, "--queue-depth")) {
		VAL();
		if (parse_size(argv[*i], &v) < 0 || v < 4 || v > 4096) {
			fprintf(stderr,
				"srdma %s: bad --queue-depth '%s' (4..4096)\n",
				cmd, argv[*i]);
			return -1;
		}
		o->cfg.queue_depth = (uint32_t)v;
	} else if (!strcmp(a, "--handshake-timeout")) {
		VAL();
		if (parse_size(argv[*i], &v) < 0 || v < 10 || v > 600000) {
			fprintf(stderr, "srdma %s: bad --handshake-timeout\n",
				cmd);
			return -1;
		}
		o->cfg.handshake_timeout_ms = (uint32_t)v;
	} else if (!strcmp(a, "--no-resumption")) {
		o->cfg.no_resumption = 1;
	} else if (!strcmp(a, "--tos")) {
		char *end;
		unsigned long t;
		VAL();
		t = strtoul(argv[*i], &end, 0);
		if (*end || end == argv[*i] || t > 255) {
			fprintf(stderr,
				"srdma %s: bad --tos '%s' (0..255, e.g. 0x68 "
				"for DSCP 26)\n",
				cmd, argv[*i]);
			return -1;
		}
		o->cfg.tos = (uint8_t)t;
	} else if (!strcmp(a, "--route-timeout")) {
		VAL();
		if (parse_size(argv[*i], &v) < 0 || v < 10 || v > 600000) {
			fprintf(stderr,
				"srdma %s: bad --route-timeout '%s' "
				"(10..600000 "
				"ms)\n",
				cmd, argv[*i]);
			return -1;
		}
		o->cfg.route_timeout_ms = (uint32_t)v;
	} else if (!strcmp(a, "--allow-mr-keys")) {
		o->cfg.allow_mr_keys = 1;
	} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose") ||
		   !strcmp(a, "-vv")) {
		o->verbose += a[2] == 'v' ? 2 : 1;
		o->cfg.log_level = SRDMA_LOG_ERROR + o->verbose;
	} else {
		return 0;
	}
#undef VAL
	return 1;
}

int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The library's words for what the tool has a flag for. */
static const struct {
	const char *api, *tool;
} words[] = {
	{"certs_dir", "--certs"},
	{"cert_file", "--cert"},
	{"key_file", "--key"},
	{"ca_file", "--ca"},
	{"peer_name", "--peer-name"},
	{"max_clients", "--max-clients"},
	{"max_handshakes", "--max-handshakes"},
	{"handshake_timeout_ms", "--handshake-timeout"},
	{"client_quota", "--quota"},
	{"max_msg", "--max-msg"},
	{"queue_depth", "--queue-depth"},
	{"resource_pool", "--resource-pool"},
	{"max_per_identity", "--max-per-identity"},
	{"crl_file", "--crl"},
	{"allow_mr_keys", "--allow-mr-keys"},
	{"route_timeout_ms", "--route-timeout"},
	{"transport SRDMA_TRANSPORT_OFI", "--transport ofi"},
	{"is the server running there?", "is `srdma serve` running there?"},
	{"srdma_region_footprint", "4128 bytes per 4 KiB block"},
};

static bool ident(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_';
}

const char *tool_text(const char *s)
{
	static _Thread_local char bufs[4][1024];
	static _Thread_local unsigned next;
	char *out = bufs[next++ % 4];
	size_t o = 0;

	if (!s)
		return "";
	while (*s && o + 1 < sizeof(bufs[0])) {
		size_t k, n = 0;
		for (k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
			n = strlen(words[k].api);
			/* whole words only: "max_msg" but not "my_max_msg2" */
			if (!strncmp(s, words[k].api, n) && !ident(s[n]) &&
			    (o == 0 || !ident(out[o - 1])))
				break;
		}
		if (k < sizeof(words) / sizeof(words[0])) {
			int w = snprintf(out + o, sizeof(bufs[0]) - o, "%s",
					 words[k].tool);
			o += (size_t)w < sizeof(bufs[0]) - o
				     ? (size_t)w
				     : sizeof(bufs[0]) - o - 1;
			s += n;
			/* "set allow_mr_keys in srdma_config": a flag is not in
			 * a struct */
			if (!strncmp(s, " in srdma_config", 16) &&
			    !ident(s[16]))
				s += 16;
		} else {
			out[o++] = *s++;
		}
	}
	out[o] = '\0';
	return out;
}

const char *tool_error(void)
{
	return tool_text(srdma_error_detail());
}

void tool_log(void *arg, int level, const char *line)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	(void)arg;
	fprintf(stderr, "srdma: %s: %s\n",
		names[level < 0	  ? 0
		      : level > 3 ? 3
				  : level],
		tool_text(line));
}

int fill_random(void *buf, size_t len)
{
	/* Test payloads: fast, not secret. */
	unsigned char *p = buf;
	while (len) {
		size_t n = len > (1u << 30) ? (1u << 30) : len;
		if (RAND_bytes(p, (int)n) != 1)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}
