"""The log formats parse back, carry the record's fields, and never carry a secret."""

from __future__ import annotations

import io
import logging
import shlex
from collections.abc import Iterator
from typing import Literal

import orjson
import pytest
from cli_support import restored_logging

from rtbus.cli._logging import StructuredFormatter, configure_logging
from rtbus.service import LogSettings

SECRET = "tok-configured-secret-42"
Format = Literal["json", "logfmt"]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    with restored_logging():
        yield


def logged(format: Format) -> list[str]:
    stream = io.StringIO()
    configure_logging(LogSettings(format=format, level="info"), secrets=[SECRET], stream=stream)
    log = logging.getLogger("rtbus.test")
    log.info("session ready", extra={"fields": {"session": "demo-1", "attempt": 2, "ok": True}})
    log.debug("not shown at info")
    log.warning("quoted %s", 'a "b" c=d\nnext line', extra={"fields": {"empty": "", "none": None}})
    return stream.getvalue().splitlines()


def logfmt(line: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in shlex.split(line))


def test_json_lines_load() -> None:
    first, second = (orjson.loads(line) for line in logged("json"))
    assert first["level"] == "info"
    assert first["logger"] == "rtbus.test"
    assert first["msg"] == "session ready"
    assert (first["session"], first["attempt"], first["ok"]) == ("demo-1", 2, True)
    assert first["ts"].endswith("Z")
    assert second["msg"] == 'quoted a "b" c=d\nnext line'
    assert (second["empty"], second["none"]) == ("", None)


def test_logfmt_lines_split() -> None:
    first, second = (logfmt(line) for line in logged("logfmt"))
    assert first["msg"] == "session ready"
    assert (first["level"], first["session"], first["attempt"], first["ok"]) == (
        "info",
        "demo-1",
        "2",
        "true",
    )
    # shlex keeps the \n escape as written: the line never breaks.
    assert second["msg"] == 'quoted a "b" c=d\\nnext line'
    assert (second["empty"], second["none"]) == ("", "null")


def test_configuring_again_replaces_the_handler() -> None:
    logged("json")
    assert len(logged("logfmt")) == 2
    ours = [h for h in logging.getLogger().handlers if isinstance(h.formatter, StructuredFormatter)]
    assert len(ours) == 1


@pytest.mark.parametrize("format", ["json", "logfmt"])
def test_secrets_are_scrubbed_from_every_part_of_a_record(format: Format) -> None:
    stream = io.StringIO()
    configure_logging(LogSettings(format=format), secrets=[SECRET], stream=stream)
    log = logging.getLogger("rtbus.test")
    log.info("header Authorization: Bearer abc.DEF-123_xyz was sent")
    log.info("key %s in the args", "sk-proj-AbCdEf0123456789")
    log.info("fields", extra={"fields": {"token": SECRET, "echo": f"x={SECRET};"}})
    log.info("plain extra", extra={"upstream_key": "ek_68af0123456789"})
    try:
        raise RuntimeError(f"the server echoed {SECRET}")
    except RuntimeError:
        log.exception("failed")
    output = stream.getvalue()
    for secret in (SECRET, "abc.DEF-123_xyz", "sk-proj-AbCdEf0123456789", "ek_68af0123456789"):
        assert secret not in output
    assert output.count("***") >= 6
    assert "RuntimeError: the server echoed ***" in output
    assert "Bearer ***" in output


def test_a_secret_is_scrubbed_as_a_whole_value_never_inside_a_word() -> None:
    stream = io.StringIO()
    configure_logging(LogSettings(), secrets=["set", "tok-configured-secret-42"], stream=stream)
    logging.getLogger("rtbus.test").error("set AZURE_OPENAI_AD_TOKEN; reset: set, offset")
    logging.getLogger("rtbus.test").error("x tok-configured-secret-42x tok-configured-secret-42")
    first, second = (logfmt(line)["msg"] for line in stream.getvalue().splitlines())
    assert first == "*** AZURE_OPENAI_AD_TOKEN; reset: ***, offset"
    # Glued to more token characters it is another value, not this secret.
    assert second == "x tok-configured-secret-42x ***"


def test_the_level_filters() -> None:
    stream = io.StringIO()
    configure_logging(LogSettings(level="error"), stream=stream)
    logging.getLogger("rtbus.test").warning("quiet")
    logging.getLogger("rtbus.test").error("loud")
    assert [logfmt(line)["msg"] for line in stream.getvalue().splitlines()] == ["loud"]


@pytest.mark.parametrize("format", ["json", "logfmt"])
def test_numbers_are_rounded_for_reading(format: Format) -> None:
    stream = io.StringIO()
    configure_logging(LogSettings(format=format), stream=stream)
    fields = {"delay": 0.4712093857, "big": 1234.5678, "tiny": 0.000412, "n": 3, "zero": 0.0}
    logging.getLogger("rtbus.test").info("restarting", extra={"fields": fields})
    line = stream.getvalue().strip()
    shown = orjson.loads(line) if format == "json" else logfmt(line)
    expected = {"delay": 0.47, "big": 1234.57, "tiny": 0.00041, "n": 3, "zero": 0.0}
    for key, value in expected.items():
        assert shown[key] == (value if format == "json" else str(value)), key


def test_libraries_that_repeat_rtbus_lines_say_only_warnings_unless_debugging() -> None:
    with restored_logging():
        configure_logging(LogSettings(level="info"), stream=io.StringIO())
        assert logging.getLogger("httpx2").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("rtbus.http.server").getEffectiveLevel() == logging.WARNING
        configure_logging(LogSettings(level="debug"), stream=io.StringIO())
        assert logging.getLogger("httpx2").getEffectiveLevel() == logging.DEBUG
