/* virtio-mmio version 2 register offsets and device status bits (virtio
 * 1.x, section 4.2.2), shared by the guests that drive virtio devices. */
#pragma once

#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DEV_FEATURES 0x010
#define R_DEV_FEATURES_SEL 0x014
#define R_DRV_FEATURES 0x020
#define R_DRV_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_INTERRUPT_STATUS 0x060
#define R_INTERRUPT_ACK 0x064
#define R_STATUS 0x070
#define R_DESC_LO 0x080
#define R_DESC_HI 0x084
#define R_AVAIL_LO 0x090
#define R_AVAIL_HI 0x094
#define R_USED_LO 0x0a0
#define R_USED_HI 0x0a4
#define R_CONFIG 0x100

#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8

#include "rt.h"

/* Finds the next `virtio_mmio.device=SIZE@0xBASE:IRQ` in *cmd (the form
 * Linux's virtio_mmio module takes; rvirt-vmm appends 4K ones, QEMU's
 * microvm 512 ones): stores BASE and IRQ, moves *cmd past it and returns 1;
 * returns 0 when there is none left. */
static inline int virtio_mmio_next(const char **cmd, u64 *base, u32 *irq)
{
	static const char key[] = "virtio_mmio.device=";
	for (const char *c = *cmd; c && *c; c++) {
		if (memcmp(c, key, sizeof(key) - 1))
			continue;
		c += sizeof(key) - 1;
		while (*c && *c != '@' && *c != ' ')
			c++; /* the size */
		if (c[0] != '@' || c[1] != '0' || (c[2] != 'x' && c[2] != 'X'))
			continue;
		u64 b = 0;
		for (c += 3;; c++) {
			char h = *c;
			if (h >= '0' && h <= '9')
				b = b * 16 + (u64)(h - '0');
			else if (h >= 'a' && h <= 'f')
				b = b * 16 + (u64)(h - 'a' + 10);
			else if (h >= 'A' && h <= 'F')
				b = b * 16 + (u64)(h - 'A' + 10);
			else
				break;
		}
		u32 i = 0;
		if (*c == ':')
			for (c++; *c >= '0' && *c <= '9'; c++)
				i = i * 10 + (u32)(*c - '0');
		*base = b;
		*irq = i;
		*cmd = c;
		return 1;
	}
	return 0;
}
