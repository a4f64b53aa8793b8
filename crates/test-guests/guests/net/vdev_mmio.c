/* The virtio-mmio (version 2) transport of vdev.h: devices named by
 * `virtio_mmio.device=SIZE@0xBASE:IRQ` on the command line (rvirt-vmm
 * appends them; QEMU's microvm does with acpi=off, and offers version 2
 * with -global virtio-mmio.force-legacy=false). Empty slots (device id 0)
 * and legacy (version 1) transports are skipped. When the command line
 * names no more devices, those on PCI follow (vdev_pci.c). */
#include "vdev.h"
#include "../rt/virtio_mmio.h"

int vdev_next(const char **cmd, struct vdev *d)
{
	u64 base;
	u32 irq;
	while (virtio_mmio_next(cmd, &base, &irq)) {
		if (rd32(base + R_MAGIC) != 0x74726976 || rd32(base + R_VERSION) != 2)
			continue;
		u32 id = rd32(base + R_DEVICE_ID);
		if (!id)
			continue;
		d->base = base;
		d->irq = irq;
		d->device_id = id;
		d->pci = 0;
		return 1;
	}
	return vdev_pci_next(d);
}

long vdev_start(struct vdev *d, u32 want)
{
	if (d->pci)
		return vdev_pci_start(d, want);
	u64 b = d->base;
	wr32(b + R_STATUS, 0);
	wr32(b + R_STATUS, S_ACK);
	wr32(b + R_STATUS, S_ACK | S_DRIVER);
	wr32(b + R_DEV_FEATURES_SEL, 1);
	if (!(rd32(b + R_DEV_FEATURES) & 1)) {
		printf("VIRTIO_FAILED no VERSION_1\n");
		return -1;
	}
	wr32(b + R_DEV_FEATURES_SEL, 0);
	u32 low = rd32(b + R_DEV_FEATURES) & want;
	wr32(b + R_DRV_FEATURES_SEL, 1);
	wr32(b + R_DRV_FEATURES, 1);
	wr32(b + R_DRV_FEATURES_SEL, 0);
	wr32(b + R_DRV_FEATURES, low);
	wr32(b + R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd32(b + R_STATUS) & S_FEATURES_OK)) {
		printf("VIRTIO_FAILED FEATURES_OK\n");
		return -1;
	}
	return low;
}

int vdev_queue(struct vdev *d, u16 n, struct virtq *q)
{
	if (d->pci)
		return vdev_pci_queue(d, n, q);
	u64 b = d->base;
	wr32(b + R_QUEUE_SEL, n);
	if (rd32(b + R_QUEUE_NUM_MAX) < q->size) {
		printf("VIRTIO_FAILED queue %u too small\n", n);
		return -1;
	}
	wr32(b + R_QUEUE_NUM, q->size);
	wr32(b + R_DESC_LO, (u32)q->desc);
	wr32(b + R_DESC_HI, (u32)(q->desc >> 32));
	wr32(b + R_AVAIL_LO, (u32)q->avail);
	wr32(b + R_AVAIL_HI, (u32)(q->avail >> 32));
	wr32(b + R_USED_LO, (u32)q->used);
	wr32(b + R_USED_HI, (u32)(q->used >> 32));
	wr32(b + R_QUEUE_READY, 1);
	return 0;
}

int vdev_go(struct vdev *d)
{
	if (d->pci)
		return vdev_pci_go(d);
	u32 all = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;
	wr32(d->base + R_STATUS, all);
	if (rd32(d->base + R_STATUS) != all) {
		printf("VIRTIO_FAILED DRIVER_OK status=0x%x\n", rd32(d->base + R_STATUS));
		return -1;
	}
	return 0;
}

void vdev_notify(struct vdev *d, u16 n)
{
	if (d->pci)
		vdev_pci_notify(d, n);
	else
		wr32(d->base + R_QUEUE_NOTIFY, n);
}

u8 vdev_cfg8(struct vdev *d, u32 off) { return d->pci ? vdev_pci_cfg8(d, off) : rd8(d->base + R_CONFIG + off); }

void vdev_cfg_write8(struct vdev *d, u32 off, u8 v)
{
	if (d->pci)
		vdev_pci_cfg_write8(d, off, v);
	else
		wr8(d->base + R_CONFIG + off, v);
}

void vdev_reset(struct vdev *d)
{
	if (d->pci)
		vdev_pci_reset(d);
	else
		wr32(d->base + R_STATUS, 0);
}
