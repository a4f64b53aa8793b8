/* Reads the CMOS clock the way Linux's mc146818_get_time() does. */
#include "rt/rt.h"

static u8 bcd(u8 v) { return (u8)((v & 0x0f) + (v >> 4) * 10); }

void pvh_main(const struct hvm_start_info *si)
{
	(void)si;
	/* Century register: the FADT names it (ACPI 2.0+), else 0x32 as Linux
	 * assumes on PCs. */
	u8 century_reg = 0x32;
	u64 fadt = acpi_find_table("FACP");
	if (fadt && rd32(fadt + 4) > 108 && rd8(fadt + 108))
		century_reg = rd8(fadt + 108);
	u8 sec, min, hour, day, mon, year, cent, b;
	int tries = 0;
	do {
		/* Wait while an update is in progress, then read everything and
		 * retry if the seconds moved under us. */
		int spins = 0;
		while ((cmos_read(0x0a) & 0x80) && spins < 100000)
			spins++;
		if (spins == 100000) {
			printf("RTC_UIP_TIMEOUT\n");
			return;
		}
		sec = cmos_read(0x00);
		min = cmos_read(0x02);
		hour = cmos_read(0x04);
		day = cmos_read(0x07);
		mon = cmos_read(0x08);
		year = cmos_read(0x09);
		cent = cmos_read(century_reg);
		b = cmos_read(0x0b);
	} while (sec != cmos_read(0x00) && ++tries < 5);
	printf("RTC_STATUS_B 0x%x\n", b);
	printf("RTC_CENTURY_REG 0x%x\n", century_reg);
	int pm = 0;
	if (!(b & 0x02)) { /* 12-hour mode: bit 7 of the hour is PM */
		pm = hour & 0x80;
		hour &= 0x7f;
	}
	if (!(b & 0x04)) { /* BCD unless DM is set */
		sec = bcd(sec);
		min = bcd(min);
		hour = bcd(hour);
		day = bcd(day);
		mon = bcd(mon);
		year = bcd(year);
		cent = bcd(cent);
	}
	if (!(b & 0x02))
		hour = (u8)(hour % 12 + (pm ? 12 : 0));
	u32 full;
	if (cent >= 19 && cent <= 99)
		full = cent * 100u + year;
	else
		full = year < 70 ? 2000u + year : 1900u + year;
	printf("RTC %04u-%02u-%02u %02u:%02u:%02u\n", full, mon, day, hour, min, sec);
}
