"""The ground-floor helpers in orchestrator.objects: private file writes and timestamps."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from orchestrator.objects.files import write_private
from orchestrator.objects.timefmt import parse_rfc3339, parse_time, rfc3339


def test_write_private_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"old")
    path.chmod(0o644)
    old = os.umask(0)
    try:
        write_private(path, b"new")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]  # no temporary file left


def test_write_private_with_another_mode(tmp_path: Path) -> None:
    write_private(tmp_path / "ca.crt", b"pem", 0o644)
    assert stat.S_IMODE((tmp_path / "ca.crt").stat().st_mode) == 0o644


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.5Z", datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123456789Z", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ],
)
def test_parse_time(value: str, expected: datetime) -> None:
    assert parse_time(value) == expected
    assert parse_rfc3339(value) == expected
    assert parse_rfc3339(value).tzinfo == UTC


@pytest.mark.parametrize("value", [None, "", "yesterday", 12, "2024-13-01T00:00:00Z"])
def test_bad_timestamps(value: object) -> None:
    assert parse_time(value) is None
    with pytest.raises(ValueError):
        parse_rfc3339(value)


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1714564800.9) == "2024-05-01T12:00:00Z"
    assert rfc3339(datetime(2024, 5, 1, 12, 0, 0, 999)) == "2024-05-01T12:00:00Z"  # naive is UTC
    assert rfc3339(datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))) == "2024-05-01T12:00:00Z"
    assert parse_time(rfc3339(1714564800)) == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_agent_join_token_needs_the_ca_hash() -> None:
    from agent.main import JoinError, parse_join_token

    digest = "AB" * 32
    assert parse_join_token(f"K10{digest}::node:s3cret") == digest.lower()
    for bad in ("s3cret", "K10abc::node:x", f"K10{digest}::server:x", ""):
        with pytest.raises(JoinError, match="join token"):
            parse_join_token(bad)
