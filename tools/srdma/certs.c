/* SPDX-License-Identifier: MIT */
/* srdma certs: write a development PKI (CA, server, clients). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pki.h"
#include "cmd.h"

enum { MAX_NAMES = 32 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: srdma certs DIR [--name NAME]... [--client ID]... "
		"[--days N] [--force]\n"
		"\n"
		"Writes a development PKI into DIR (created 0700 if missing):\n"
		"  ca.crt ca.key            a CA (keep ca.key private)\n"
		"  server.crt server.key    the server, for localhost, "
		"127.0.0.1, ::1\n"
		"                           and this host's name\n"
		"  ID.crt ID.key            one pair per client (default: "
		"'client')\n"
		"Keys are written mode 0600, certificates 0644.\n"
		"\n"
		"  --name NAME    also put NAME (DNS name or IP address) in "
		"the "
		"server\n"
		"                 certificate; repeatable\n"
		"  --client ID    issue a client certificate with CN ID; "
		"repeatable\n"
		"  --days N       validity in days (default 825)\n"
		"  --force        overwrite existing files\n"
		"  -h, --help     show this help\n");
}

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "srdma certs: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return 1;
}

int cmd_certs(int argc, char **argv)
{
	static const struct option opts[] = {
		{"name", required_argument, NULL, 'n'},
		{"client", required_argument, NULL, 'c'},
		{"days", required_argument, NULL, 'd'},
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *names[MAX_NAMES + 1] = {0};
	const char *clients[MAX_NAMES + 1] = {0};
	size_t n_names = 0, n_clients = 0;
	struct pki_opts o = {0};
	char dir[PATH_MAX], host[256];
	int opt, rc;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			if (n_names == MAX_NAMES)
				return fail("too many --name options (at most "
					    "32): %s",
					    optarg);
			names[n_names++] = optarg;
			break;
		case 'c':
			if (n_clients == MAX_NAMES)
				return fail("too many --client options (at "
					    "most 32): %s",
					    optarg);
			clients[n_clients++] = optarg;
			break;
		case 'd': {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 ||
			    v > 36500)
				return fail("--days wants a number of days "
					    "from 1 to 36500, not '%s'",
					    optarg);
			o.days = (int)v;
			break;
		}
		case 'f':
			o.force = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return fail("unknown or incomplete option '%s' (see "
				    "srdma certs --help)",
				    argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return fail("%s (see srdma certs --help)",
			    optind >= argc ? "give the directory to write"
					   : "give exactly one directory");
	snprintf(dir, sizeof(dir), "%s", argv[optind]);
	for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
		dir[n - 1] = '\0';
	o.dir = dir;
	o.server_names = names;
	o.clients = n_clients ? clients : NULL;
	/*
	 * Backdate by an hour so that a host whose clock is a little behind
	 * does not see the new certificates as not yet valid.
	 */
	o.not_before_offset_s = -3600;

	rc = pki_write(&o);
	if (rc < 0)
		return fail("%s", pki_error());

	printf("wrote %s/ca.crt\nwrote %s/ca.key\n", o.dir, o.dir);
	printf("wrote %s/server.crt\nwrote %s/server.key\n", o.dir, o.dir);
	if (!n_clients)
		printf("wrote %s/client.crt\nwrote %s/client.key\n", o.dir,
		       o.dir);
	for (size_t i = 0; i < n_clients; i++)
		printf("wrote %s/%s.crt\nwrote %s/%s.key\n", o.dir, clients[i],
		       o.dir, clients[i]);
	if (gethostname(host, sizeof(host)) < 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	printf("server names: localhost, 127.0.0.1, ::1%s%s",
	       host[0] ? ", " : "", host);
	for (size_t i = 0; i < n_names; i++)
		printf(", %s", names[i]);
	printf("\n");
	return 0;
}
