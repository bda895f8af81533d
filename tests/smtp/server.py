"""A real SMTP server for the mail tests (aiosmtpd): listens on 127.0.0.1:PORT and
writes every message it accepts to DIR as NNNNNN.eml, the envelope first:

    X-Envelope-From: <sender>
    X-Envelope-To: <recipient>[, ...]

then the message exactly as received. A file appears whole (written, then renamed).
With USER:PASSWORD it advertises AUTH (PLAIN, LOGIN; also without TLS) and requires
it, accepting only that login.
Usage: server.py PORT DIR [USER:PASSWORD]
"""
import logging
import os
import signal
import sys
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            n = self.count
        head = "X-Envelope-From: {}\r\nX-Envelope-To: {}\r\n".format(
            envelope.mail_from, ", ".join(envelope.rcpt_tos)
        )
        tmp = os.path.join(self.directory, "{:06d}.tmp".format(n))
        with open(tmp, "wb") as f:
            f.write(head.encode())
            f.write(envelope.original_content)
        os.rename(tmp, os.path.join(self.directory, "{:06d}.eml".format(n)))
        return "250 OK"


def authenticator_for(login):
    user, password = login.encode().split(b":", 1)

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user
            and auth_data.password == password
        )
        return AuthResult(success=ok)

    return authenticate


def main():
    # AUTH without TLS is what the tests want (loopback): no warnings about it.
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    port, directory = int(sys.argv[1]), sys.argv[2]
    auth = {}
    if len(sys.argv) > 3:
        auth = dict(
            authenticator=authenticator_for(sys.argv[3]),
            auth_require_tls=False,
            auth_required=True,
        )
    controller = Controller(Store(directory), hostname="127.0.0.1", port=port, **auth)
    controller.start()
    print("listening", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
