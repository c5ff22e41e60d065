"""A real SMTP server for the email channel's tests: aiosmtpd with STARTTLS required and
AUTH (PLAIN or LOGIN, user `alerts`, password `pa55word`) required after it.

Usage: smtp_receiver.py PORT CERT KEY SPOOL. Each accepted message is written to SPOOL as
one JSON file (envelope sender, recipients, whether TLS was on, the AUTH mechanism used,
the message text). Prints `ready` once listening; stops when stdin closes.
"""

import json
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

PORT, CERT, KEY, SPOOL = sys.argv[1:5]


class Handler:
    async def handle_DATA(self, server, session, envelope):
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "auth": getattr(session, "hx_mechanism", None),
            "data": envelope.content.decode("utf-8", "replace"),
        }
        path = os.path.join(SPOOL, f"{time.time_ns()}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"alerts"
        and auth_data.password == b"pa55word"
    )
    if ok:
        session.hx_mechanism = mechanism
    # handled=False: aiosmtpd answers 535 itself when the credentials are wrong.
    return AuthResult(success=ok, handled=False)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(CERT, KEY)
controller = Controller(
    Handler(),
    hostname="127.0.0.1",
    port=int(PORT),
    tls_context=context,
    require_starttls=True,
    authenticator=authenticator,
    auth_required=True,
    auth_require_tls=True,
)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
