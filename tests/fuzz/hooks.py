"""Hooks of the API fuzzer (scripts/fuzz-api). A summary draft's period relates two fields
(the end after the start, at most 366 days later), which an OpenAPI document cannot state;
the document states each time's own rules and this one in words. Generated periods are
mended here so that most drafts the fuzzer asks for reach the job start (202) rather than
the 422 that tests/fuzz/schemathesis.toml allows for this rule.
"""

import datetime as dt

import schemathesis

LATEST = dt.datetime(9999, 12, 31, tzinfo=dt.timezone.utc)


def _parse(value):
    try:
        return dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


@schemathesis.hook("map_body").apply_to(operation_id="requestSummaryDraft")
def period_in_order(ctx, body):
    if not isinstance(body, dict):
        return body
    start = _parse(body.get("periodStart"))
    end = _parse(body.get("periodEnd"))
    if start is None or end is None:
        return body
    # Compared at the precision the API keeps (microseconds, which Python's parser keeps).
    if dt.timedelta(0) < end - start <= dt.timedelta(days=366):
        return body
    if start.astimezone(dt.timezone.utc) >= LATEST - dt.timedelta(days=2):
        start = start - dt.timedelta(days=2)
        body["periodStart"] = start.isoformat()
    body["periodEnd"] = (start + dt.timedelta(days=1)).isoformat()
    return body
