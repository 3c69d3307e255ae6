"""A real SMTP server on loopback for the delivery tests (aiosmtpd, installed by .ci/run into
target/smtp-venv). Usage: smtp_sink.py PORT DIR. Every accepted message is written to DIR as one
.eml file (written under a temporary name and renamed); a recipient whose address starts with
"reject" is refused with 550 (a permanent failure). Prints READY when it listens; stops when its
standard input closes."""
import os
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
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
    os.makedirs(out, exist_ok=True)
    c = Controller(Sink(out), hostname="127.0.0.1", port=port)
    c.start()
    print("READY", flush=True)
    sys.stdin.read()
    c.stop()


if __name__ == "__main__":
    main()
