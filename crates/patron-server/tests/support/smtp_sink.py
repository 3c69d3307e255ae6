"""A real SMTP server on loopback for the delivery tests (aiosmtpd, installed by .ci/run into
target/smtp-venv). Usage: smtp_sink.py PORT DIR [RCPT_DELAY_SECONDS]. With a delay, each
recipient is announced on standard output (`RCPT n`, n counting from 1) and held that long
before it is accepted (a slow relay, for the kill -9 test). Every accepted message is written to DIR as one
.eml file (written under a temporary name and renamed); a recipient whose address starts with
"reject" is refused with 550 (a permanent failure). Prints READY when it listens; stops when its
standard input closes."""
import asyncio
import os
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out, delay):
        self.out = out
        self.delay = delay
        self.n = 0
        self.rcpts = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        if self.delay > 0:
            self.rcpts += 1
            print(f"RCPT {self.rcpts}", flush=True)
            await asyncio.sleep(self.delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        path = os.path.join(self.out, f"{os.getpid()}-{self.n:06d}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 OK"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    os.makedirs(out, exist_ok=True)
    c = Controller(Sink(out, delay), hostname="127.0.0.1", port=port)
    c.start()
    print("READY", flush=True)
    sys.stdin.read()
    c.stop()


if __name__ == "__main__":
    main()
