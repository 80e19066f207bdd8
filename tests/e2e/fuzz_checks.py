"""Schemathesis checks of our own, loaded with SCHEMATHESIS_HOOKS=tests.e2e.fuzz_checks."""

from __future__ import annotations

import schemathesis


@schemathesis.check
def bad_requests_name_the_field(ctx, response, case) -> None:
    """An INVALID_ARGUMENT answer names each offending field in a google.rpc.BadRequest, and
    its message starts with the first of them."""
    if response.status_code != 400:
        return
    body = response.json()
    if body.get("status") != "INVALID_ARGUMENT":
        return
    fields = [v.get("field") for d in body.get("details", []) for v in d.get("fieldViolations", [])]
    if not fields or not all(fields):
        raise AssertionError(f"a 400 that names no field: {body.get('message')!r}")
    if not body.get("message", "").startswith(f"{fields[0]}: "):
        raise AssertionError(f"the message does not start with {fields[0]!r}: {body['message']!r}")
