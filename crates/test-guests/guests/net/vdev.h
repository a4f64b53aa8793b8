/* A virtio device as the drivers in this directory see it, whatever the
 * transport: split virtqueues in guest memory (virtio 1.x, 2.7) and the
 * handful of transport operations a polling driver needs. vdev_mmio.c is
 * the virtio-mmio (version 2) transport and the entry points; vdev_pci.c
 * the modern virtio-pci one they hand PCI devices to. */
#pragma once

#include "../rt/rt.h"

#define VQ_F_NEXT 1
#define VQ_F_WRITE 2

struct vdesc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

/* A split virtqueue of at most 256 entries in three pages from `mem`:
 * descriptors, the avail ring, the used ring (identity-mapped memory). */
struct virtq {
	u16 size;
	u64 desc, avail, used;
	u16 avail_idx; /* next avail slot, published by vq_publish */
	u16 used_seen; /* used entries consumed */
};

#define VQ_BYTES 0x3000ul

static inline void vq_mb(void) { __asm__ volatile("mfence" ::: "memory"); }

static inline void vq_init(struct virtq *q, u64 mem, u16 size)
{
	memset((void *)mem, 0, VQ_BYTES);
	q->size = size;
	q->desc = mem;
	q->avail = mem + 0x1000;
	q->used = mem + 0x2000;
	q->avail_idx = q->used_seen = 0;
}

static inline void vq_set(struct virtq *q, u16 i, u64 addr, u32 len, u16 flags)
{
	volatile struct vdesc *d = (volatile struct vdesc *)(q->desc + 16ul * i);
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = 0;
}

/* Puts chain `head` in the next avail slot; seen by the device after
 * vq_publish. */
static inline void vq_push(struct virtq *q, u16 head)
{
	*(volatile u16 *)(q->avail + 4 + 2ul * (q->avail_idx & (q->size - 1))) = head;
	q->avail_idx++;
}

static inline void vq_publish(struct virtq *q)
{
	vq_mb();
	*(volatile u16 *)(q->avail + 2) = q->avail_idx;
	vq_mb();
}

/* The next used element: 1 with *id and *len, or 0 when there is none. */
static inline int vq_pop(struct virtq *q, u32 *id, u32 *len)
{
	if (*(volatile u16 *)(q->used + 2) == q->used_seen)
		return 0;
	vq_mb();
	u64 e = q->used + 4 + 8ul * (q->used_seen & (q->size - 1));
	q->used_seen++;
	*id = *(volatile u32 *)e;
	*len = *(volatile u32 *)(e + 4);
	return 1;
}

/* One device. `base` and `irq` mean what the transport says (on PCI, the
 * common configuration's address and bus << 8 | devfn). */
struct vdev {
	u64 base;
	u32 irq;
	u32 device_id;
	/* virtio-pci: its structures. */
	int pci;
	u64 common, notify, dcfg;
	u32 notify_mult;
};

/* The next device the command line names, moving *cmd past it: 1, or 0
 * when there is none left. */
int vdev_next(const char **cmd, struct vdev *d);
/* Reset, ACKNOWLEDGE, DRIVER, VERSION_1 plus the offered bits of
 * `want` (0-31), FEATURES_OK. Returns the negotiated bits 0-31, or -1
 * (printing why). */
long vdev_start(struct vdev *d, u32 want);
/* Gives queue `n` the rings of `q` (q->size entries); 0 or -1. */
int vdev_queue(struct vdev *d, u16 n, struct virtq *q);
/* DRIVER_OK; 0 or -1. */
int vdev_go(struct vdev *d);
void vdev_notify(struct vdev *d, u16 n);
u8 vdev_cfg8(struct vdev *d, u32 off);
void vdev_cfg_write8(struct vdev *d, u32 off, u8 v);
void vdev_reset(struct vdev *d);

/* The virtio-pci transport (vdev_pci.c), reached through the functions
 * above for a device with `pci` set. */
int vdev_pci_next(struct vdev *d);
long vdev_pci_start(struct vdev *d, u32 want);
int vdev_pci_queue(struct vdev *d, u16 n, struct virtq *q);
int vdev_pci_go(struct vdev *d);
void vdev_pci_cfg_write8(struct vdev *d, u32 off, u8 v);
void vdev_pci_notify(struct vdev *d, u16 n);
u8 vdev_pci_cfg8(struct vdev *d, u32 off);
void vdev_pci_reset(struct vdev *d);
