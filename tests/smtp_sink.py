#!/usr/bin/env python3
"""A real SMTP server for the mail tests (aiosmtpd), on 127.0.0.1.

Every accepted message is written to DIR/NNN.eml; every RCPT attempt is
logged with its time to DIR/attempts.log. `--refuse N` answers the first N
attempts with a temporary 451 (with `--refuse-to ADDR`, only attempts to
that address count), `--reject` answers every attempt with a permanent 550. Prints "ready" on stdout once it accepts connections.
"""
import argparse
import asyncio
import os
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, outdir, refuse, reject, refuse_to=None):
        self.outdir = outdir
        self.refuse = refuse
        self.refuse_to = refuse_to
        self.reject = reject
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with open(os.path.join(self.outdir, "attempts.log"), "a") as log:
            log.write(f"{time.time():.3f} {address}\n")
        if self.reject:
            return "550 5.1.1 No such user here"
        if self.refuse > 0 and self.refuse_to in (None, address):
            self.refuse -= 1
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.outdir, f"{self.count:03d}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(f"X-Envelope-To: {','.join(envelope.rcpt_tos)}\r\n".encode())
            f.write(envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--refuse", type=int, default=0)
    p.add_argument("--reject", action="store_true")
    p.add_argument("--refuse-to")
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    controller = Controller(Sink(a.dir, a.refuse, a.reject, a.refuse_to), hostname="127.0.0.1", port=a.port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
