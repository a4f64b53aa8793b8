/* DHCP and a UDP datagram over the guest's own virtio-net driver
 * (net/netif.c on net/vdev_mmio.c, or on net/vdev_pci.c for a modern
 * virtio-pci NIC: the first virtio-net device either transport finds).
 *
 * Takes a lease (DISCOVER, OFFER, REQUEST, ACK: the broadcast flag set,
 * up to 4 attempts of 2 s each), prints the address, router and DNS
 * servers from the options, resolves the next hop by ARP and sends one UDP
 * datagram to the address and port of `net.udp=A.B.C.D:PORT` (or
 * `net.udp=router:PORT`: the router from the lease), whose payload is
 * `rvirt dhcp guest <address> <net.token=WORD>`. Answers ARP requests
 * for its address meanwhile.
 *
 * With `net.bench=N` it then sends N datagrams of `net.size=S` payload
 * bytes (default 1400) to the same place as fast as the device takes them,
 * from ring 3 (`net.ring3=0`: ring 0), each payload starting with its
 * sequence number (4 bytes, big-endian), and leaves fast.
 *
 * The README's "dhcp" section lists the output. */
#include "rt/rt.h"
#include "rt/args.h"
#include "rt/leave.h"
#include "rt/ring3.h"
#include "net/netif.h"

#define ETH_IP 0x0800
#define ETH_ARP 0x0806
#define CLIENT_PORT 68
#define SERVER_PORT 67
#define SRC_PORT 40000

static u8 frame[ETH_MAX];
static u8 rx[ETH_MAX];

static u32 my_ip, mask, router, server_id;
static u32 dns[4];
static u32 ndns;
static u32 lease_time;

static inline void put16(u8 *p, u16 v)
{
	p[0] = (u8)(v >> 8);
	p[1] = (u8)v;
}
static inline void put32(u8 *p, u32 v)
{
	put16(p, (u16)(v >> 16));
	put16(p + 2, (u16)v);
}
static inline u16 get16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static inline u32 get32(const u8 *p) { return (u32)get16(p) << 16 | get16(p + 2); }

static void print_ip(u32 a) { printf("%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255); }

static void print_mac(const u8 *m)
{
	printf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* Parses A.B.C.D at p; 1 and *out on success. */
static int parse_ip(const char *p, u32 *out)
{
	u32 a = 0;
	for (int i = 0; i < 4; i++) {
		if (*p < '0' || *p > '9')
			return 0;
		u32 b = 0;
		for (; *p >= '0' && *p <= '9'; p++)
			b = b * 10 + (u32)(*p - '0');
		if (b > 255)
			return 0;
		a = a << 8 | b;
		if (i < 3 && *p++ != '.')
			return 0;
	}
	*out = a;
	return 1;
}

static u16 csum(const u8 *p, u32 len)
{
	u32 s = 0;
	for (u32 i = 0; i + 1 < len; i += 2)
		s += get16(p + i);
	if (len & 1)
		s += (u32)p[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (u16)~s;
}

static void eth_header(u8 *f, const u8 *dst, u16 type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, netif_mac, 6);
	put16(f + 12, type);
}

/* An IPv4 + UDP header at f + 14 for `len` payload bytes (UDP checksum 0:
 * none, as IPv4 allows). Returns the frame length. */
static u32 udp_header(u8 *f, u32 src, u32 dst, u16 sport, u16 dport, u32 len)
{
	u8 *ip = f + 14, *udp = ip + 20;
	memset(ip, 0, 28);
	ip[0] = 0x45;
	put16(ip + 2, (u16)(28 + len));
	ip[8] = 64;
	ip[9] = 17;
	put32(ip + 12, src);
	put32(ip + 16, dst);
	put16(ip + 10, csum(ip, 20));
	put16(udp, sport);
	put16(udp + 2, dport);
	put16(udp + 4, (u16)(8 + len));
	return 14 + 28 + len;
}

static const u8 broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* Answers an ARP request for our address; 1 if the frame was ARP. */
static int arp_answer(const u8 *f, long n)
{
	if (n < 42 || get16(f + 12) != ETH_ARP)
		return 0;
	const u8 *a = f + 14;
	if (get16(a + 6) == 1 && my_ip && get32(a + 24) == my_ip) {
		eth_header(frame, a + 8, ETH_ARP);
		u8 *r = frame + 14;
		put16(r, 1);
		put16(r + 2, ETH_IP);
		r[4] = 6;
		r[5] = 4;
		put16(r + 6, 2);
		memcpy(r + 8, netif_mac, 6);
		put32(r + 14, my_ip);
		memcpy(r + 18, a + 8, 10);
		netif_send(frame, 42);
	}
	return 1;
}

/* ---- DHCP ---- */

#define BOOTP_LEN 240 /* fixed part and magic cookie */
static const u32 XID = 0x72766972; /* "rvir" */

static u32 dhcp_request(u8 type, u32 requested)
{
	u8 *b = frame + 42;
	memset(b, 0, 300);
	b[0] = 1; /* BOOTREQUEST */
	b[1] = 1;
	b[2] = 6;
	put32(b + 4, XID);
	put16(b + 10, 0x8000); /* broadcast: we cannot take unicast before the lease */
	memcpy(b + 28, netif_mac, 6);
	put32(b + 236, 0x63825363);
	u8 *o = b + BOOTP_LEN;
	*o++ = 53;
	*o++ = 1;
	*o++ = type;
	if (requested) {
		*o++ = 50;
		*o++ = 4;
		put32(o, requested);
		o += 4;
		*o++ = 54;
		*o++ = 4;
		put32(o, server_id);
		o += 4;
	}
	static const u8 params[] = {55, 4, 1, 3, 6, 51};
	memcpy(o, params, sizeof(params));
	o += sizeof(params);
	*o++ = 255;
	u32 len = (u32)(o - b);
	if (len < 300)
		len = 300; /* BOOTP's minimum, which some servers insist on */
	eth_header(frame, broadcast, ETH_IP);
	return udp_header(frame, 0, 0xffffffff, CLIENT_PORT, SERVER_PORT, len);
}

/* Waits for a DHCP reply of `want` type to our XID; its yiaddr, or 0.
 * Fills the lease fields from its options. */
static u32 dhcp_wait(u8 want, u32 ms)
{
	for (u32 t = 0; t < ms; t += 10) {
		long n = netif_recv(rx, 10);
		if (n < 0 || arp_answer(rx, n))
			continue;
		const u8 *ip = rx + 14;
		if (n < 14 + 20 + 8 + BOOTP_LEN || get16(rx + 12) != ETH_IP || ip[9] != 17)
			continue;
		u32 ihl = (ip[0] & 15) * 4u;
		const u8 *udp = ip + ihl, *b = udp + 8;
		if (get16(udp + 2) != CLIENT_PORT || b[0] != 2 || get32(b + 4) != XID ||
		    get32(b + 236) != 0x63825363)
			continue;
		const u8 *end = rx + n;
		u8 type = 0;
		u32 sid = 0, m = 0, r = 0, lt = 0, nd = 0, d[4];
		for (const u8 *o = b + BOOTP_LEN; o < end && *o != 255;) {
			if (*o == 0) {
				o++;
				continue;
			}
			if (o + 2 > end || o + 2 + o[1] > end)
				break;
			u8 code = o[0], len = o[1];
			const u8 *v = o + 2;
			if (code == 53 && len == 1)
				type = v[0];
			else if (code == 54 && len == 4)
				sid = get32(v);
			else if (code == 1 && len == 4)
				m = get32(v);
			else if (code == 3 && len >= 4)
				r = get32(v);
			else if (code == 51 && len == 4)
				lt = get32(v);
			else if (code == 6)
				for (u32 i = 0; i + 4 <= len && nd < 4; i += 4)
					d[nd++] = get32(v + i);
			o += 2 + len;
		}
		if (type != want)
			continue;
		server_id = sid;
		mask = m;
		router = r;
		lease_time = lt;
		ndns = nd;
		for (u32 i = 0; i < nd; i++)
			dns[i] = d[i];
		return get32(b + 16);
	}
	return 0;
}

static int dhcp(void)
{
	for (int attempt = 1; attempt <= 4; attempt++) {
		printf("DHCP_DISCOVER %d\n", attempt);
		if (netif_send(frame, dhcp_request(1, 0)))
			return -1;
		u32 offered = dhcp_wait(2, 2000);
		if (!offered)
			continue;
		printf("DHCP_OFFER ");
		print_ip(offered);
		printf(" server ");
		print_ip(server_id);
		printf("\n");
		printf("DHCP_REQUEST ");
		print_ip(offered);
		printf("\n");
		if (netif_send(frame, dhcp_request(3, offered)))
			return -1;
		u32 acked = dhcp_wait(5, 2000);
		if (!acked)
			continue;
		my_ip = acked;
		u32 prefix = 0;
		for (u32 m = mask; m & 0x80000000u; m <<= 1)
			prefix++;
		printf("DHCP_ACK ");
		print_ip(acked);
		printf("\nDHCP_LEASE ");
		print_ip(acked);
		printf("/%u\nDHCP_ROUTER ", prefix);
		print_ip(router);
		printf("\nDHCP_DNS");
		for (u32 i = 0; i < ndns; i++) {
			printf(" ");
			print_ip(dns[i]);
		}
		if (!ndns)
			printf(" none");
		if (lease_time == 0xffffffffu)
			printf("\nDHCP_LEASE_TIME infinite\n");
		else
			printf("\nDHCP_LEASE_TIME %u\n", lease_time);
		printf("DHCP_OK\n");
		return 0;
	}
	printf("DHCP_FAILED no lease\n");
	return -1;
}

/* ---- ARP and UDP ---- */

static int arp_resolve(u32 ip, u8 *mac)
{
	for (int attempt = 0; attempt < 4; attempt++) {
		eth_header(frame, broadcast, ETH_ARP);
		u8 *a = frame + 14;
		put16(a, 1);
		put16(a + 2, ETH_IP);
		a[4] = 6;
		a[5] = 4;
		put16(a + 6, 1);
		memcpy(a + 8, netif_mac, 6);
		put32(a + 14, my_ip);
		memset(a + 18, 0, 6);
		put32(a + 24, ip);
		if (netif_send(frame, 42))
			return -1;
		for (u32 t = 0; t < 1000; t += 10) {
			long n = netif_recv(rx, 10);
			if (n < 42 || get16(rx + 12) != ETH_ARP)
				continue;
			const u8 *r = rx + 14;
			if (get16(r + 6) == 2 && get32(r + 14) == ip) {
				memcpy(mac, r + 8, 6);
				printf("ARP ");
				print_ip(ip);
				printf(" is ");
				print_mac(mac);
				printf("\n");
				return 0;
			}
			arp_answer(rx, n);
		}
	}
	printf("ARP_FAILED ");
	print_ip(ip);
	printf("\n");
	return -1;
}

static void bench(u32 dst, u16 port, const u8 *hop, u32 n, u32 size, int ring3)
{
	if (size > ETH_MAX - 42)
		size = ETH_MAX - 42;
	if (size < 4)
		size = 4;
	for (u32 i = 0; i < NETIF_TXQ; i++) {
		u8 *f = netif_slot(i);
		eth_header(f, hop, ETH_IP);
		udp_header(f, my_ip, dst, SRC_PORT + 1, port, size);
		memset(f + 42, 'b', size);
	}
	printf("BENCH START n=%u size=%u ring=%d\n", n, size, ring3 ? 3 : 0);
	if (ring3)
		to_ring3();
	u64 t0 = rdtsc();
	u32 sent = 0;
	for (; sent < n; sent++) {
		u8 *f = netif_slot(sent);
		put32(f + 42, sent);
		if (netif_burst(sent, 42 + size, 32))
			break;
	}
	int ok = netif_flush() == 0;
	u64 t1 = rdtsc();
	printf("BENCH END sent=%u ok=%d tsc=%lu\n", sent, ok, t1 - t0);
}

void pvh_main(const struct hvm_start_info *si)
{
	const char *cmd = (const char *)si->cmdline_paddr;
	if (netif_open(cmd))
		goto out;
	if (dhcp())
		goto out;
	const char *to = arg_find(cmd, "net.udp=");
	if (!to) {
		printf("UDP_SKIPPED\n");
		goto out;
	}
	u32 dst;
	if (!memcmp(to, "router:", 7)) {
		dst = router;
		to += 7;
	} else if (parse_ip(to, &dst)) {
		while (*to && *to != ':')
			to++;
		if (*to == ':')
			to++;
	} else {
		printf("UDP_FAILED bad net.udp\n");
		goto out;
	}
	u16 port = (u16)arg_dec(to, 0);
	u8 hop[6];
	u32 next = (dst & mask) == (my_ip & mask) ? dst : router;
	if (arp_resolve(next, hop))
		goto out;
	const char *tok = arg_find(cmd, "net.token=");
	static const char text[] = "rvirt dhcp guest ";
	u8 *p = frame + 42;
	memcpy(p, text, sizeof(text) - 1);
	p += sizeof(text) - 1;
	for (int i = 0; i < 4; i++) {
		u32 b = (my_ip >> (24 - 8 * i)) & 255;
		if (b >= 100)
			*p++ = (u8)('0' + b / 100);
		if (b >= 10)
			*p++ = (u8)('0' + b / 10 % 10);
		*p++ = (u8)('0' + b % 10);
		*p++ = i < 3 ? '.' : ' ';
	}
	if (!tok || *tok == ' ' || !*tok)
		*p++ = '-';
	for (u32 i = 0; tok && tok[i] && tok[i] != ' ' && i < 32; i++)
		*p++ = (u8)tok[i];
	u32 len = (u32)(p - (frame + 42));
	eth_header(frame, hop, ETH_IP);
	if (netif_send(frame, udp_header(frame, my_ip, dst, SRC_PORT, port, len))) {
		printf("UDP_FAILED send\n");
		goto out;
	}
	printf("UDP_SENT ");
	print_ip(dst);
	printf(":%u %u\n", port, len);
	u32 n = (u32)arg_dec(arg_find(cmd, "net.bench="), 0);
	if (n) {
		bench(dst, port, hop, n, (u32)arg_dec(arg_find(cmd, "net.size="), 1400),
		      arg_dec(arg_find(cmd, "net.ring3="), 1) != 0);
		netif_close();
		leave_fast();
	}
out:
	netif_close();
	/* QEMU's microvm lists virtio-mmio on the command line only without
	 * ACPI, and then the guest cannot power off: leave through
	 * isa-debug-exit or a reset instead. */
	if (!acpi_find_table("FACP"))
		leave_fast();
}
