"""The lab load client's pure parts: its log parser, result summary and URL check."""

from __future__ import annotations

import pytest

from tests.lab.load import Request, check_url, parse_log, uptime

LOG = """\
ok 1 100.00 100.01 v1 web-abc
ok 2 100.05 100.07 v1 web-def
fail 3 100.10 101.10 rc=137 timed out after 1s
fail 4 101.10 101.12 rc=1 wget: can't connect to remote host (10.43.0.10): Connection refused
ok 5 101.15 101.16 v1 web-abc
done sent=5 ok=3 fail=2
"""


def test_parses_every_request_and_the_final_counts() -> None:
    r = parse_log(LOG)
    assert (r.sent, r.ok, r.failed, r.done) == (5, 3, 2, True)
    assert [q.seq for q in r.requests] == [1, 2, 3, 4, 5]
    assert r.requests[0] == Request(1, 100.0, 100.01, True, "v1 web-abc")
    assert r.requests[2].detail == "rc=137 timed out after 1s"
    assert r.requests[2].duration == pytest.approx(1.0)
    assert r.missing() == []


def test_without_done_the_counts_come_from_the_lines_so_far() -> None:
    r = parse_log("".join(LOG.splitlines(keepends=True)[:4]))
    assert (r.sent, r.ok, r.failed, r.done) == (4, 2, 2, False)
    assert "(running)" in r.summary()


def test_failures_after_a_time_are_those_that_started_later_and_failed() -> None:
    r = parse_log(LOG)
    assert [q.seq for q in r.failures_after(100.0)] == [3, 4]
    assert [q.seq for q in r.failures_after(100.10)] == [4]  # started at, not after
    assert r.failures_after(101.2) == []


def test_an_empty_body_other_lines_and_a_partial_line_are_tolerated() -> None:
    text = "ok 1 5.00 5.02\nsome noise\nok x 1 2 y\nfail 2 5.10\r\nok 3 5.20 5.21 hello\r\nok 4 5.3"
    r = parse_log(text)
    assert [(q.seq, q.ok, q.detail) for q in r.requests] == [(1, True, ""), (3, True, "hello")]
    assert r.sent == 2


def test_a_request_without_its_line_is_reported_missing() -> None:
    r = parse_log("ok 1 1.00 1.01 a\nok 3 1.10 1.11 a\ndone sent=3 ok=3 fail=0\n")
    assert r.missing() == [2]
    assert "missing=1" in r.summary()


def test_summary_is_one_line_of_counts_times_and_failures() -> None:
    s = parse_log(LOG).summary()
    assert "\n" not in s
    assert s.startswith("sent=5 ok=3 failed=2 in 1.2s (uptime 100.00-101.16")
    assert "failures at 100.10-101.12" in s and "longest run 2" in s and "timed out" in s
    assert parse_log("").summary() == "sent=0 ok=0 failed=0 (running)"
    assert parse_log(LOG).failure_lines()[0].startswith("#3 100.10s +1.00s fail rc=137")


@pytest.mark.parametrize("url", ["http://web/", "http://web.default.svc/x", "http://web.default.svc.cluster.local/",
                                 "http://10.43.0.10/", "http://10.99.0.11:30080/", "http://172.30.10.2:8080/"])
def test_urls_inside_the_lab_are_accepted(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize("url", ["http://example.com/", "http://web.default/", "http://8.8.8.8/", "https://web/", "web", "http:///x"])
def test_urls_that_could_leave_the_lab_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        check_url(url)


def test_uptime_is_the_machines_clock() -> None:
    with open("/proc/uptime") as f:
        before = float(f.read().split()[0])
    assert before <= uptime() < before + 5
