/* A polling virtio-net driver over vdev.h: VERSION_1 and MAC only (no
 * offloads, no MRG_RXBUF), so every frame is the 12-byte virtio_net_hdr_v1
 * and the Ethernet frame in one buffer. */
#pragma once

#include "vdev.h"

#define ETH_MAX 1514u

/* Finds the first virtio-net device on the command line, prints
 * `NET_DEVICE <base> <irq>` and `NET_MAC <mac>`, posts the receive
 * buffers. 0, or -1 after a `NET_FAILED <why>` line. */
int netif_open(const char *cmdline);
extern u8 netif_mac[6];

/* Sends one frame and waits (bounded) for the device to take it; 0 or -1. */
int netif_send(const void *frame, u32 len);
/* The next received frame copied into buf (ETH_MAX bytes): its length,
 * or -1 when none arrives within `ms` milliseconds. */
long netif_recv(void *buf, u32 ms);
/* Stops the device, so it writes nothing more into guest memory. */
void netif_close(void);

/* Burst transmission for the benchmark: up to NETIF_TXQ frames in flight
 * from fixed slots. Fill a slot's frame (netif_slot), then netif_burst
 * hands it to the device; kicks go out every `batch` frames, and while the
 * ring is full the call waits for the device. netif_flush kicks and waits
 * for everything. No printing: they run in ring 3. */
#define NETIF_TXQ 256u
u8 *netif_slot(u32 i);
int netif_burst(u32 slot, u32 len, u32 batch);
int netif_flush(void);
