/* Drives every virtio-input device on the command line (virtio-mmio):
 * prints what its configuration space answers (name, IDs, event bits,
 * absolute axes), posts 16 event buffers, sets the Caps Lock LED through
 * the status queue, then prints every event as
 * "EV <device> <type> <code> <value>" until Escape (KEY_ESC, 1) is
 * released. Polls; no interrupts. */
#include "rt/rt.h"
#include "net/vdev.h"

#define MAX_DEV 4
#define NBUF 16
#define RINGS 0x300000ul
#define BUFS 0x400000ul

struct input {
	struct vdev d;
	struct virtq ev, st;
	u64 buf;
};

static struct input devs[MAX_DEV];

/* Selects (sel, sub) and returns the answer's size. */
static u8 ask(struct vdev *d, u8 sel, u8 sub)
{
	vdev_cfg_write8(d, 0, sel);
	vdev_cfg_write8(d, 1, sub);
	return vdev_cfg8(d, 2);
}

static void print_bytes(struct vdev *d, const char *what, u8 size)
{
	printf("%s %u", what, size);
	for (u8 i = 0; i < size; i++)
		printf(" %x", vdev_cfg8(d, 8 + i));
	printf("\n");
}

static void describe(int n, struct vdev *d)
{
	u8 size = ask(d, 1, 0);
	char name[129];
	for (u8 i = 0; i < size && i < 128; i++)
		name[i] = (char)vdev_cfg8(d, 8 + i);
	name[size < 128 ? size : 128] = 0;
	printf("INPUT %d NAME %s\n", n, name);
	printf("INPUT %d SERIAL %u\n", n, ask(d, 2, 0));
	print_bytes(d, "  DEVIDS", ask(d, 3, 0));
	printf("  PROP_BITS %u\n", ask(d, 0x10, 0));
	static const u8 types[] = {1, 2, 3, 0x11, 0x14};
	for (int i = 0; i < 5; i++) {
		u8 s = ask(d, 0x11, types[i]);
		printf("  EV_BITS %x size %u", types[i], s);
		u32 bits = 0;
		for (u8 j = 0; j < s; j++)
			for (int k = 0; k < 8; k++)
				bits += (vdev_cfg8(d, 8 + j) >> k) & 1;
		printf(" bits %u\n", bits);
	}
	for (u8 axis = 0; axis < 2; axis++) {
		u8 s = ask(d, 0x12, axis);
		if (!s)
			continue;
		printf("  ABS %u min %u max %u\n", axis, vdev_cfg8(d, 8) | vdev_cfg8(d, 9) << 8,
		       vdev_cfg8(d, 12) | vdev_cfg8(d, 13) << 8);
	}
}

void pvh_main(const struct hvm_start_info *si)
{
	const char *cmd = (const char *)si->cmdline_paddr;
	int n = 0;
	struct vdev d;
	while (n < MAX_DEV && vdev_next(&cmd, &d)) {
		if (d.device_id != 18)
			continue;
		struct input *in = &devs[n];
		in->d = d;
		describe(n, &in->d);
		if (vdev_start(&in->d, 0) < 0)
			return;
		u64 rings = RINGS + (u64)n * 2 * VQ_BYTES;
		vq_init(&in->ev, rings, NBUF);
		vq_init(&in->st, rings + VQ_BYTES, NBUF);
		in->buf = BUFS + (u64)n * 0x1000;
		for (u16 i = 0; i < NBUF; i++) {
			vq_set(&in->ev, i, in->buf + 8ul * i, 8, VQ_F_WRITE);
			vq_push(&in->ev, i);
		}
		if (vdev_queue(&in->d, 0, &in->ev) || vdev_queue(&in->d, 1, &in->st) ||
		    vdev_go(&in->d))
			return;
		vq_publish(&in->ev);
		vdev_notify(&in->d, 0);
		/* Caps Lock on through the status queue. */
		u64 led = in->buf + 0x800;
		wr32(led, 0x11 | (1u << 16)); /* EV_LED, LED_CAPSL */
		wr32(led + 4, 1);
		vq_set(&in->st, 0, led, 8, 0);
		vq_push(&in->st, 0);
		vq_publish(&in->st);
		vdev_notify(&in->d, 1);
		n++;
	}
	printf("VINPUT_READY %d\n", n);
	for (;;) {
		int any = 0;
		for (int i = 0; i < n; i++) {
			struct input *in = &devs[i];
			u32 id, len;
			while (vq_pop(&in->st, &id, &len))
				printf("STATUS %d done\n", i);
			while (vq_pop(&in->ev, &id, &len)) {
				any = 1;
				u64 e = in->buf + 8ul * (id % NBUF);
				u16 type = rd16(e), code = rd16(e + 2);
				u32 value = rd32(e + 4);
				printf("EV %d %x %x %x\n", i, type, code, value);
				vq_push(&in->ev, (u16)id);
				vq_publish(&in->ev);
				vdev_notify(&in->d, 0);
				if (type == 1 && code == 1 && value == 0) {
					rt_finish();
				}
			}
		}
		if (!any)
			for (int i = 0; i < 2000; i++)
				cpu_relax();
	}
}
