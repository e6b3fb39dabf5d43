"""Prints a delivered email as JSON, as Python's `email` package reads it.

Used by the email tests (tests/support/smtp.rs, `parse`). Usage: python3 parse_mail.py FILE
"""
import email, email.policy, json, sys
with open(sys.argv[1], "rb") as f:
    m = email.message_from_binary_file(f, policy=email.policy.default)
print(json.dumps({
    "subject": str(m["Subject"]),
    "from": str(m["From"]),
    "to": [a.addr_spec for a in m["To"].addresses],
    "rcpt_to": str(m.get("X-RcptTo", "")),
    "peer": str(m.get("X-Peer", "")),
    "content_type": m.get_content_type(),
    "parts": [[p.get_content_type(), p.get_content()] for p in m.walk() if not p.is_multipart()],
}))
