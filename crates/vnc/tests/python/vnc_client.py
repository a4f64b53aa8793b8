#!/usr/bin/env python3
"""Drives an RFB server with vncdotool (a real VNC client) for
crates/vnc/tests/vncdotool.rs.

usage: vnc_client.py SERVER [--password PW] [--encoding raw|copyrect|zrle]
                     [--format xrgb|rgb565] [--exclusive] STEP...

SERVER is vncdotool's: HOST::PORT, or the path of a unix socket. Steps:
  capture FILE   a full update, saved as PPM
  refresh FILE   an incremental update (waits for one), saved as PPM
  key KEY        press and release KEY (vncdotool's names: a, enter, ...)
  move X Y       the pointer to (X, Y)
  click N        press and release button N at the pointer
  sync           print "sync" and wait for a line on stdin (the test
                 changes the framebuffer meanwhile)
Prints the number of CopyRect rectangles applied and "ok" at the end; any failure is a traceback and exit status 1.
"""

import argparse
import faulthandler
import sys

# Under the test's own limit, so a hang shows where the script was.
faulthandler.dump_traceback_later(50, exit=True)

from vncdotool import api, rfb  # noqa: E402
from vncdotool.client import BGR16, PF2IM, VNCDoToolClient, VNCDoToolFactory  # noqa: E402

ENCODINGS = {
    "raw": rfb.Encoding.RAW,
    "copyrect": rfb.Encoding.COPY_RECTANGLE,
    "zrle": rfb.Encoding.ZRLE,
}
FORMATS = {"xrgb": None, "rgb565": BGR16}


def run(client, steps: list) -> None:
    while steps:
        step = steps.pop(0)
        if step == "capture":
            client.captureScreen(steps.pop(0))
        elif step == "refresh":
            client.captureScreen(steps.pop(0), incremental=True)
        elif step == "key":
            client.keyPress(steps.pop(0))
        elif step == "move":
            x, y = int(steps.pop(0)), int(steps.pop(0))
            client.mouseMove(x, y)
        elif step == "click":
            client.mousePress(int(steps.pop(0)))
        elif step == "sync":
            print("sync", flush=True)
            if not sys.stdin.readline():
                raise SystemExit("stdin closed")
        else:
            raise SystemExit(f"unknown step {step!r}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("server")
    p.add_argument("--password")
    p.add_argument("--encoding", default="raw", choices=ENCODINGS)
    p.add_argument("--format", default="xrgb", choices=FORMATS)
    p.add_argument("--exclusive", action="store_true")
    p.add_argument("steps", nargs="*")
    args = p.parse_intermixed_args()

    copies = []

    class Client(VNCDoToolClient):
        encoding = ENCODINGS[args.encoding]

        def copyRectangle(self, srcx: int, srcy: int, x: int, y: int, width: int, height: int) -> None:
            # vncdotool decodes CopyRect but leaves applying it to its user.
            copies.append((srcx, srcy, x, y, width, height))
            region = self.screen.crop((srcx, srcy, srcx + width, srcy + height))
            self.screen.paste(region, (x, y))

        def updateDesktopSize(self, width: int, height: int) -> None:
            # vncdotool resizes its screen but keeps requesting the old size.
            super().updateDesktopSize(width, height)
            self.width, self.height = width, height

        def setImageMode(self) -> None:
            fmt = FORMATS[args.format]
            if fmt is None:
                super().setImageMode()
            else:
                self.setPixelFormat(fmt)
                self._image_mode = PF2IM[fmt]

    class Factory(VNCDoToolFactory):
        protocol = Client
        shared = not args.exclusive

    client = api.connect(args.server, password=args.password, factory_class=Factory, timeout=30)
    try:
        run(client, list(args.steps))
    except BaseException:
        # A connection that failed (authentication) has nothing to close.
        api.shutdown()
        raise
    print(f"copyrects {len(copies)}", flush=True)
    client.disconnect()
    api.shutdown()
    print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
