"""A counting SMTP server for bench/campaign (aiosmtpd from target/smtp-venv): accepts every
message, keeps nothing but the count of messages and of distinct Message-IDs. Usage:
smtp_count.py PORT. Prints READY when it listens; on a line `COUNT` on standard input prints
`<messages> <distinct message ids>`; stops when standard input closes."""
import sys

from aiosmtpd.controller import Controller


class Count:
    def __init__(self):
        self.n = 0
        self.ids = set()

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        data = envelope.original_content or envelope.content
        head = data.split(b"\r\n\r\n", 1)[0]
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                self.ids.add(line[11:].strip())
        return "250 OK"


def main():
    h = Count()
    c = Controller(h, hostname="127.0.0.1", port=int(sys.argv[1]))
    c.start()
    print("READY", flush=True)
    for line in sys.stdin:
        if line.strip() == "COUNT":
            print(f"{h.n} {len(h.ids)}", flush=True)
    c.stop()


if __name__ == "__main__":
    main()
