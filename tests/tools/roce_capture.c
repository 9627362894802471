/* SPDX-License-Identifier: MIT */
/*
 * Prints the IP type of service of the RoCEv2 packets (UDP port 4791) that
 * cross a network interface, as a packet capture would show them:
 *
 *   roce_capture IFACE SECONDS [MAX]
 *
 * One line per packet: "tos 0x68 dscp 26 SRC -> DST len N" (at most MAX,
 * default 20). Exits 0 if it saw at least one, 1 if none, 2 on error. Needs
 * CAP_NET_RAW (the VM runs it as root).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ROCE_PORT = 4791 };

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	struct sockaddr_ll sll = {0};
	unsigned char buf[2048];
	long long end;
	int fd, max, seen = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: %s IFACE SECONDS [MAX]\n", argv[0]);
		return 2;
	}
	max = argc > 3 ? atoi(argv[3]) : 20;
	/* ETH_P_ALL: only such taps see what the host sends. */
	fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL));
	if (fd < 0) {
		fprintf(stderr, "socket(AF_PACKET): %s\n", strerror(errno));
		return 2;
	}
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)if_nametoindex(argv[1]);
	if (!sll.sll_ifindex ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		fprintf(stderr, "bind to %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	printf("capturing RoCEv2 on %s\n", argv[1]);
	fflush(stdout);
	end = now_ms() + atoi(argv[2]) * 1000LL;
	while (seen < max && now_ms() < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		const struct iphdr *ip = (const void *)buf;
		const struct udphdr *udp;
		char src[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN];
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t n;

		if (poll(&p, 1, (int)(end - now_ms())) <= 0)
			continue;
		n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from,
			     &fl);
		if (n < (ssize_t)sizeof(*ip) ||
		    from.sll_protocol != htons(ETH_P_IP) || ip->version != 4 ||
		    ip->protocol != IPPROTO_UDP ||
		    n < (ssize_t)(ip->ihl * 4 + sizeof(*udp)))
			continue;
		udp = (const void *)(buf + ip->ihl * 4);
		if (ntohs(udp->dest) != ROCE_PORT)
			continue;
		inet_ntop(AF_INET, &ip->saddr, src, sizeof(src));
		inet_ntop(AF_INET, &ip->daddr, dst, sizeof(dst));
		printf("tos 0x%02x dscp %u %s -> %s len %zd\n", ip->tos,
		       ip->tos >> 2, src, dst, n);
		fflush(stdout);
		seen++;
	}
	close(fd);
	return seen ? 0 : 1;
}
