/* See netif.h. Memory: rings at 0x300000 (rx, then tx: 12 KiB each),
 * receive buffers at 0x400000 (NRX of 2 KiB), transmit slots at 0x500000
 * (NETIF_TXQ of 2 KiB). */
#include "netif.h"

#define HDR 12
#define F_MAC 5
#define NRX 16u
#define BUF_SIZE 2048u
#define RINGS 0x300000ul
#define RXBUF 0x400000ul
#define TXBUF 0x500000ul

u8 netif_mac[6];
static struct vdev dev;
static struct virtq rxq, txq;
static u32 tx_inflight;

static void post_rx(u16 i)
{
	vq_set(&rxq, i, RXBUF + BUF_SIZE * i, BUF_SIZE, VQ_F_WRITE);
	vq_push(&rxq, i);
}

int netif_open(const char *cmdline)
{
	const char *c = cmdline;
	int found = 0;
	while (vdev_next(&c, &dev))
		if (dev.device_id == 1) {
			found = 1;
			break;
		}
	if (!found) {
		printf("NET_FAILED no virtio-net device\n");
		return -1;
	}
	printf("NET_DEVICE 0x%lx %u\n", dev.base, dev.irq);
	long f = vdev_start(&dev, 1u << F_MAC);
	if (f < 0)
		return -1;
	vq_init(&rxq, RINGS, NRX);
	vq_init(&txq, RINGS + VQ_BYTES, NETIF_TXQ);
	if (vdev_queue(&dev, 0, &rxq) || vdev_queue(&dev, 1, &txq))
		return -1;
	for (int i = 0; i < 6; i++)
		netif_mac[i] = (f >> F_MAC) & 1 ? vdev_cfg8(&dev, i) : (u8)(0x02 + i * 0x11);
	if (vdev_go(&dev))
		return -1;
	for (u16 i = 0; i < NRX; i++)
		post_rx(i);
	vq_publish(&rxq);
	vdev_notify(&dev, 0);
	tx_inflight = 0;
	printf("NET_MAC %02x:%02x:%02x:%02x:%02x:%02x\n", netif_mac[0], netif_mac[1],
	       netif_mac[2], netif_mac[3], netif_mac[4], netif_mac[5]);
	return 0;
}

u8 *netif_slot(u32 i) { return (u8 *)(TXBUF + BUF_SIZE * (i % NETIF_TXQ) + HDR); }

/* Takes back what the device finished; waits for at least one when `one`. */
static int reclaim(int one)
{
	u32 id, len;
	for (u64 spins = 0;; spins++) {
		int got = 0;
		while (vq_pop(&txq, &id, &len)) {
			tx_inflight--;
			got = 1;
		}
		if (got || !one)
			return 0;
		/* About 20 s at the emulated ring 0's speed, much less in ring
		 * 3: long enough for any device, short of a hang. */
		if (spins > 20000000ull)
			return -1;
		cpu_relax();
	}
}

int netif_burst(u32 slot, u32 len, u32 batch)
{
	if (tx_inflight == NETIF_TXQ && reclaim(1))
		return -1;
	u16 i = (u16)(slot % NETIF_TXQ);
	memset((void *)(TXBUF + BUF_SIZE * i), 0, HDR);
	vq_set(&txq, i, TXBUF + BUF_SIZE * i, HDR + len, 0);
	vq_push(&txq, i);
	tx_inflight++;
	if (batch <= 1 || txq.avail_idx % batch == 0) {
		vq_publish(&txq);
		/* VRING_USED_F_NO_NOTIFY: the device is still at work. */
		if (!(*(volatile u16 *)txq.used & 1))
			vdev_notify(&dev, 1);
	}
	return 0;
}

int netif_flush(void)
{
	vq_publish(&txq);
	vdev_notify(&dev, 1);
	while (tx_inflight)
		if (reclaim(1))
			return -1;
	return 0;
}

int netif_send(const void *frame, u32 len)
{
	if (len > ETH_MAX)
		return -1;
	/* The slot after the last one used: never one still in flight. */
	u32 slot = txq.avail_idx;
	memcpy(netif_slot(slot), frame, len);
	if (netif_burst(slot, len, 1))
		return -1;
	return netif_flush();
}

long netif_recv(void *buf, u32 ms)
{
	for (u32 waited = 0;; waited++) {
		u32 id, len;
		if (vq_pop(&rxq, &id, &len)) {
			u16 i = (u16)(id % NRX);
			long n = -2;
			if (len >= HDR + 14 && len <= HDR + ETH_MAX) {
				n = len - HDR;
				memcpy(buf, (void *)(RXBUF + BUF_SIZE * i + HDR), (size_t)n);
			}
			post_rx(i);
			vq_publish(&rxq);
			vdev_notify(&dev, 0);
			if (n >= 0)
				return n;
			continue; /* a runt or an oversized frame: not ours */
		}
		if (waited >= ms)
			return -1;
		pit_sleep_ms(1);
	}
}

void netif_close(void) { vdev_reset(&dev); }
