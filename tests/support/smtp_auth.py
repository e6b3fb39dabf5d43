"""An SMTP server for the email tests (tests/support/smtp.rs, `SmtpSink::start_with_auth`).

Requires AUTH (PLAIN/LOGIN, no TLS: loopback only) as `alerts` / `correct horse`, answers 451
to recipients `busy@...` and 550 to `nobody@...`, and stores the rest in the maildir.
Usage: python3 smtp_auth.py PORT MAILDIR
"""
import sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

class Handler(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("busy@"):
            return "451 4.3.0 mailbox busy, try again later"
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"alerts", b"correct horse")
    return AuthResult(success=ok, handled=False)

controller = Controller(Handler(sys.argv[2]), hostname="127.0.0.1", port=int(sys.argv[1]),
                        authenticator=authenticator, auth_required=True,
                        auth_require_tls=False)
controller.start()
threading.Event().wait()
