/* Prints through the parallel port at 0x378 as a polling driver does:
 * wait (bounded) for the status register's BUSY bit (set: not busy), put
 * the byte on the data lines, pulse STROBE with SELECT and INIT held. The
 * message is `lpt.msg=WORD` from the command line or a fixed line. The
 * README's "lpt" section lists the output. */
#include "rt/rt.h"
#include "rt/args.h"

#define DATA 0x378
#define STATUS 0x379
#define CONTROL 0x37a

static const char fixed[] = "hello from the parallel port\n";

static u32 stalls;

/* One byte: a bounded wait for "not busy", the data, a STROBE pulse. */
static void put(u8 b)
{
	u32 polls = 0;
	while (!(inb(STATUS) & 0x80) && polls < 1000)
		polls++;
	if (polls >= 1000)
		stalls++;
	outb(DATA, b);
	outb(CONTROL, 0x0d);
	outb(CONTROL, 0x0c);
}

void pvh_main(const struct hvm_start_info *si)
{
	const char *cmdline = si && si->cmdline_paddr ? (const char *)si->cmdline_paddr : 0;
	/* Not the data register: SeaBIOS leaves its probe (0xaa) there. */
	printf("LPT_RESET status=0x%02x control=0x%02x\n", inb(STATUS), inb(CONTROL));
	const char *msg = arg_find(cmdline, "lpt.msg=");
	const char *p = msg ? msg : fixed;
	u32 sent = 0;
	for (; *p && (!msg || *p != ' '); p++, sent++)
		put((u8)*p);
	if (msg) {
		/* The word alone, then a newline, as the fixed message ends. */
		put('\n');
		sent++;
	}
	printf("LPT_SENT %u stalls=%u status=0x%02x\n", sent, stalls, inb(STATUS));
}
