/* Sets up the i8042 the way Linux's i8042/atkbd/psmouse drivers do (self
 * test, command byte, keyboard and mouse reset and identify, wheel knocks,
 * reporting on), prints every answer, then echoes every byte the controller
 * delivers: "KBD xx" from the keyboard, "AUX xx" from the mouse. The
 * Escape key's release (set 1: 0x81) ends it. Polls; no interrupts. */
#include "rt/rt.h"

#define STATUS 0x64
#define DATA 0x60

static int wait_input_empty(void)
{
	for (int i = 0; i < 10000; i++)
		if (!(inb(STATUS) & 2))
			return 1;
	return 0;
}

/* The next byte, or -1 if none comes (real and emulated controllers answer
 * within the write's exit, so a short bound is enough). */
static int next(void)
{
	for (int i = 0; i < 10000; i++)
		if (inb(STATUS) & 1)
			return inb(DATA);
	return -1;
}

static void command(u8 c)
{
	wait_input_empty();
	outb(STATUS, c);
}

static void data(u8 d)
{
	wait_input_empty();
	outb(DATA, d);
}

/* Sends `byte` to the keyboard (aux 0) or mouse (aux 1) and prints `what`
 * with the `n` bytes of the answer. */
static void ask(const char *what, int aux, u8 byte, int n)
{
	if (aux)
		command(0xd4);
	data(byte);
	printf("%s", what);
	for (int i = 0; i < n; i++)
		printf(" %x", next() & 0xff);
	printf("\n");
}

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	/* Whatever firmware left behind. */
	for (int i = 0; i < 64 && (inb(STATUS) & 1); i++)
		inb(DATA);
	command(0xaa);
	printf("SELFTEST %x\n", next());
	/* Translate, system flag, both ports on, no interrupts (polled). */
	command(0x60);
	data(0x44);
	command(0xa8);
	command(0xae);
	command(0x20);
	printf("CTR %x\n", next());
	ask("KBD_RESET", 0, 0xff, 2);
	ask("KBD_ID", 0, 0xf2, 3);
	ask("KBD_LEDS", 0, 0xed, 1);
	ask("KBD_LEDS_ARG", 0, 0x02, 1);
	ask("KBD_SET", 0, 0xf0, 1);
	ask("KBD_SET_ARG", 0, 0x00, 2);
	ask("KBD_ENABLE", 0, 0xf4, 1);
	ask("AUX_RESET", 1, 0xff, 3);
	static const u8 knock[] = {200, 100, 80};
	for (int i = 0; i < 3; i++) {
		ask("AUX_RATE", 1, 0xf3, 1);
		ask("AUX_RATE_ARG", 1, knock[i], 1);
	}
	ask("AUX_ID", 1, 0xf2, 2);
	ask("AUX_RES", 1, 0xe8, 1);
	ask("AUX_RES_ARG", 1, 0x03, 1);
	ask("AUX_STATUS", 1, 0xe9, 4);
	ask("AUX_STREAM", 1, 0xea, 1);
	ask("AUX_ENABLE", 1, 0xf4, 1);
	printf("PS2_READY\n");
	for (;;) {
		u8 st = inb(STATUS);
		if (!(st & 1)) {
			/* About 2 ms of emulated time between polls, without exits. */
			for (int i = 0; i < 2000; i++)
				cpu_relax();
			continue;
		}
		u8 b = inb(DATA);
		printf("%s %x\n", (st & 0x20) ? "AUX" : "KBD", b);
		if (!(st & 0x20) && b == 0x81)
			break;
	}
	rt_finish();
}
