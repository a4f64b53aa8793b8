#!/usr/bin/env python3
"""Writes seed inputs for the virtio device fuzz targets into seeds/<target>/.

Raw bytes rarely form a valid virtqueue (the avail index has to be small, the
heads in range, the descriptors inside RAM), so the fuzzer starts from
well-formed queues and mutates them. The layout is the one of
fuzz_targets/common/mod.rs: queue slot i at i * 0x200, descriptor table at
+0, avail ring at +0x100, used ring at +0x140; guest RAM is 64 KiB.

Run from fuzz/: python3 seeds/gen.py
"""
import os
import struct

SLOT = 0x200
AVAIL = 0x100
NEXT, WRITE = 1, 2
HERE = os.path.dirname(os.path.abspath(__file__))


class Image:
    def __init__(self, size=0):
        self.b = bytearray(size)

    def put(self, addr, data):
        end = addr + len(data)
        if end > len(self.b):
            self.b.extend(bytes(end - len(self.b)))
        self.b[addr:end] = data

    def queue(self, slot, chains):
        """chains: lists of (addr, len, flags); descriptors numbered in order."""
        base = slot * SLOT
        heads, d = [], 0
        for chain in chains:
            heads.append(d)
            for i, (addr, length, flags) in enumerate(chain):
                last = i + 1 == len(chain)
                f = flags if last else flags | NEXT
                self.put(base + 16 * d, struct.pack("<QIHH", addr, length, f, 0 if last else d + 1))
                d += 1
        self.put(base + AVAIL, struct.pack("<HH", 0, len(heads)))
        self.put(base + AVAIL + 4, b"".join(struct.pack("<H", h) for h in heads))


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(data))


def net_tx():
    img = Image()
    img.put(0x600, bytes(12))
    img.put(0x700, b"\xff" * 6 + b"\x52\x54\x00\x00\x00\x01" + b"\x08\x00" + bytes(46))
    img.queue(0, [[(0x600, 12, 0), (0x700, 60, 0)], [(0x600, 72, 0)], [(0x700, 4, 0)]])
    write("virtio_net_tx", "three-frames", b"\x00" + img.b)
    write("virtio_net_tx", "event-idx-failing", b"\x94" + img.b)


def net_rx():
    for mode, name in ((0x10, "mrg"), (0x00, "single"), (0x14, "mrg-event-idx")):
        first = Image(0x800)
        # Two Linux-like mergeable buffers, one small, one header-only scrap.
        first.queue(0, [[(0x2000, 1526, WRITE)], [(0x2800, 1526, WRITE)],
                        [(0x3000, 64, WRITE)], [(0x3100, 12, WRITE)]])
        second = Image()  # ends after the avail ring: the used ring stays
        # The driver posts more (and bigger) buffers while a frame waits.
        second.queue(0, [[(0x4000, 4096, WRITE)] for _ in range(8)] +
                     [[(0x2000, 12, WRITE), (0x2100, 2000, WRITE)]])
        sizes = struct.pack("<HHHH", 50, 1500, 4000, 30)  # doubled by the target
        write("virtio_net_rx", name, bytes([mode]) + sizes + first.b + second.b)


def console():
    img = Image()
    img.put(0x600, b"hello from the guest\n")
    img.queue(0, [[(0x2000, 16, WRITE)], [(0x2100, 8, WRITE), (0x2200, 64, WRITE)]])
    img.queue(1, [[(0x600, 21, 0)], [(0x600, 6, 0), (0x606, 15, 0)]])
    write("virtio_console", "rx-and-tx", bytes([0, 0, 40, 1]) + img.b)
    write("virtio_console", "failing-chardev", bytes([1, 4, 200, 70]) + img.b)


def balloon():
    img = Image()
    img.put(0x600, struct.pack("<4I", 8, 9, 10, 0xFFFFFFFF))
    img.put(0x700, struct.pack("<2I", 9, 12))
    img.put(0x800, b"".join(struct.pack("<HQ", t, v) for t, v in ((4, 1 << 20), (5, 1 << 30), (6, 12345))))
    img.queue(0, [[(0x600, 16, 0)]])
    img.queue(1, [[(0x700, 8, 0)]])
    img.queue(2, [[(0x800, 30, 0)]])
    target = struct.pack("<I", 256)
    write("virtio_balloon", "inflate-deflate-stats", bytes([3, 0, 0, 0]) + target + img.b)
    write("virtio_balloon", "no-stats", bytes([6, 4, 4, 0]) + target + img.b)


def rng():
    img = Image()
    img.queue(0, [[(0x1000, 64, WRITE)], [(0x1100, 16, WRITE), (0x1200, 4096, WRITE)]])
    write("virtio_rng", "two-requests", b"\x00" + img.b)
    write("virtio_rng", "failing-source", b"\x94" + img.b)


def mmio():
    """Register-file ops (see fuzz_targets/virtio_mmio.rs): 2 = a 32-bit
    write of register index (offset / 4); 0 = a read (size code in bits
    2-3); 3 = the device serving queue N."""
    def reg(offset, value):
        return bytes([2, offset // 4]) + struct.pack("<I", value)

    def read(offset, size_code=2):
        return bytes([size_code << 2]) + struct.pack("<H", offset)

    ack, driver, features_ok, driver_ok = 1, 2, 8, 4
    bring_up = b"".join([
        reg(0x70, ack), reg(0x70, ack | driver),
        reg(0x24, 1), reg(0x20, 1),  # DriverFeaturesSel 1: VERSION_1
        reg(0x24, 0), reg(0x20, 1),
        reg(0x70, ack | driver | features_ok),
    ])
    for q, base in ((0, 0x1000), (1, 0x4000)):
        bring_up += b"".join([
            reg(0x30, q), reg(0x38, 8), reg(0x80, base), reg(0x90, base + 0x800),
            reg(0xa0, base + 0x1000), reg(0x44, 1),
        ])
    bring_up += reg(0x70, ack | driver | features_ok | driver_ok)
    served = bytes([3, 0, 3, 1]) + read(0x60) + reg(0x64, 1) + read(0x100, 0) + reg(0x100, 7)
    write("virtio_mmio", "bring-up", bring_up + served)
    write("virtio_mmio", "needs-reset", bring_up + bytes([3, 2]) + read(0x70) + reg(0x70, 0))


def pci_config():
    """Ops of 9 bytes: kind (bits 0-2; size code in bits 6-7, 2 = 4 bytes),
    a 32-bit target, a 32-bit value. Kind 0: CONFIG_ADDRESS = target, then
    CONFIG_DATA = value."""
    def cfg(bus, dev, fn, reg, value):
        addr = 0x80000000 | bus << 16 | dev << 11 | fn << 8 | reg
        return bytes([0x80]) + struct.pack("<II", addr, value)
    def bar_io(value):
        return bytes([0x85]) + struct.pack("<II", 0, value)
    # The root port: bus 1, a memory window, decode; the device behind it:
    # BAR 1 inside the window, decode; the root-bus device: a 64-bit BAR
    # written half by half, decode on, then moved.
    ops = b"".join([
        cfg(0, 2, 0, 0x18, 0x00010100),
        cfg(0, 2, 0, 0x20, 0xc010c000),
        cfg(0, 2, 0, 0x04, 0x7),
        cfg(1, 0, 0, 0x14, 0xc0000000),
        cfg(1, 0, 0, 0x04, 0x6),
        cfg(0, 3, 0, 0x20, 0xd0000000),
        cfg(0, 3, 0, 0x24, 0x1),
        cfg(0, 3, 0, 0x04, 0x6),
        bar_io(0x14),
        cfg(0, 3, 0, 0x20, 0xe0000000),
        cfg(0, 3, 0, 0x24, 0x0),
        cfg(0, 3, 0, 0x9a, 0x8000),
    ])
    write("pci_config", "pc-bridge-and-bars", b"\x00" + ops)
    write("pci_config", "q35-bridge-and-bars", b"\x01" + ops + cfg(0, 0, 0, 0x60, 0xb0000001))


def pci_msix():
    """Ops of 6 bytes: kind (bits 0-2; size code in bits 6-7), a 16-bit
    offset, 3 value bytes."""
    def op(kind, size, offset, value=b"\0\0\0"):
        return bytes([kind | size << 6]) + struct.pack("<H", offset) + value
    ops = b"".join([
        op(3, 0, 0, b"\x01\0\0"),                 # enabled
        op(0, 2, 0, b"\x00\x00\xe0"),             # address low
        op(0, 2, 8, b"\x41\0\0"),                 # data
        op(5, 0, 0, b"\x00\0\0"),                 # raise 0: masked
        op(2, 3, 0),                               # PBA
        op(0, 2, 12, b"\0\0\0"),                  # unmask: fires
        op(3, 0, 0, b"\x03\0\0"),                 # function mask
        op(5, 0, 0, b"\x00\0\0"),
        op(3, 0, 0, b"\x01\0\0"),                 # unmask the function
        op(1, 3, 0x10),
        op(4, 0, 0),
    ])
    write("pci_msix", "mask-pend-unmask", ops)


def scsi():
    """Request queue in slot 0, control queue in slot 1; headers of 51
    bytes (8-byte LUN, tag, attributes, a 32-byte CDB), responses of 108."""
    def req(target, lun, cdb):
        return bytes([1, target, 0, lun]) + bytes(4) + bytes(11) + cdb + bytes(32 - len(cdb))
    img = Image()
    cmds = [
        (0, 0, bytes([0x12, 0, 0, 0, 36, 0]), 36, False),                  # INQUIRY
        (0, 0, bytes([0x28, 0, 0, 0, 0, 1, 0, 0, 2, 0]), 1024, False),     # READ(10)
        (0, 0, bytes([0x2a, 0, 0, 0, 0, 3, 0, 0, 1, 0]), 512, True),       # WRITE(10)
        (0, 1, bytes([0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0]), 2048, False),     # CD READ(10)
        (0, 0, bytes([0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]), 256, False),  # REPORT LUNS
        (7, 0, bytes([0x00]), 0, False),                                    # bad target
    ]
    chains = []
    for i, (t, l, cdb, n, out) in enumerate(cmds):
        at = 0x800 + i * 0x100
        img.put(at, req(t, l, cdb))
        chain = [(at, 51, 0)]
        if out and n:
            chain.append((0x4000, n, 0))
        chain.append((0x2000 + i * 0x80, 108, WRITE))
        if not out and n:
            chain.append((0x6000, n, WRITE))
        chains.append(chain)
    img.queue(0, chains)
    # A LOGICAL UNIT RESET on the control queue.
    img.put(0x1800, struct.pack("<II", 0, 5) + bytes([1, 0, 0, 0]) + bytes(12))
    img.queue(1, [[(0x1800, 24, 0), (0x1900, 1, WRITE)]])
    write("virtio_scsi_request", "commands", b"\x00" + img.b)
    write("virtio_scsi_request", "read-only-event-idx", b"\x84" + img.b)


if __name__ == "__main__":
    scsi()
    pci_config()
    pci_msix()
    mmio()
    net_tx()
    net_rx()
    console()
    balloon()
    rng()
