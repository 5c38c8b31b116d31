"""A real SMTP server for the tests (aiosmtpd), storing each message it accepts as a file.

Usage: python3 smtp_server.py PORT FOLDER [--fail-first N] [--reject]
  --fail-first N  answer the first N DATA commands with 451 (a transient failure)
  --reject        answer every DATA command with 550 (a permanent failure)
  --delay SECONDS wait this long before accepting each message (a slow server)
  --hang-at N     hold the Nth message before accepting it (a send in flight): the server writes
                  FOLDER/holding when it holds it, and goes on once FOLDER/release exists
  --tls-cert F --tls-key K   offer STARTTLS with this certificate, and require it
  --auth USER:PASSWORD       require AUTH (only after STARTTLS) with these credentials; the
                             logins tried are appended to FOLDER/auth.log
Each stored message starts with X-Envelope-From, X-Envelope-To and X-Peer (the client's
address and port: messages with one X-Peer came over one connection).
Prints "ready" on stdout once it listens on 127.0.0.1:PORT.
"""
import argparse
import asyncio
import itertools
import os
import sys
import time

import ssl

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, folder, fail_first, reject, delay, hang_at):
        self.delay = delay
        self.hang_at = hang_at
        self.received = 0
        self.folder = folder
        self.fail_first = fail_first
        self.reject = reject
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        if self.reject:
            return "550 5.7.1 Rejected by the test server"
        if self.fail_first > 0:
            self.fail_first -= 1
            return "451 4.3.0 Try again later"
        self.received += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.received == self.hang_at:
            open(os.path.join(self.folder, "holding"), "w").close()
            for _ in range(1200):  # at most 60 seconds
                if os.path.exists(os.path.join(self.folder, "release")):
                    break
                await asyncio.sleep(0.05)
        number = next(self.counter)
        path = os.path.join(self.folder, f"{time.time_ns()}-{number}.eml")
        with open(path + ".tmp", "wb") as handle:
            handle.write(f"X-Envelope-From: {envelope.mail_from}\r\n".encode())
            handle.write(f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode())
            # The client's port names its connection: messages sharing one came over one session.
            handle.write(f"X-Peer: {session.peer[0]}:{session.peer[1]}\r\n".encode())
            handle.write(envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 OK"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("folder")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--reject", action="store_true")
    parser.add_argument("--delay", type=float, default=0)
    parser.add_argument("--hang-at", type=int, default=0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--auth")
    arguments = parser.parse_args()
    os.makedirs(arguments.folder, exist_ok=True)
    options = {}
    if arguments.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(arguments.tls_cert, arguments.tls_key)
        options.update(tls_context=context, require_starttls=True)
    if arguments.auth:
        user, password = arguments.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else ""
            with open(os.path.join(arguments.folder, "auth.log"), "a") as log:
                log.write(f"{mechanism} {login} tls={session.ssl is not None}\n")
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
                and auth_data.password.decode() == password
            return AuthResult(success=ok)

        options.update(authenticator=authenticator, auth_require_tls=True, auth_required=True)
    controller = Controller(
        Store(arguments.folder, arguments.fail_first, arguments.reject, arguments.delay, arguments.hang_at),
        hostname="127.0.0.1", port=arguments.port,
        # aiosmtpd gives up after 5 s by default; a loaded 2-core machine can take longer to start.
        ready_timeout=60, **options
    )
    try:
        controller.start()
    except Exception as error:  # noqa: BLE001 - the test reports it
        print(f"failed: {error!r}", flush=True)
        raise
    print("ready", flush=True)
    try:
        sys.stdin.read()  # runs until the test closes our stdin or kills us
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
