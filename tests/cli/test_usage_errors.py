"""Mistakes on the command line: one line naming what to change, at once, before litellm is even imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cli.running import one_line, run_crewtrace, user_env

from crewtrace.cli import main
from crewtrace.cli.stack import STACK_FILES

# Each runs `crewtrace ARGS` in one fresh process and reports its exit code, stderr and whether litellm got imported.
CHECK = """
import contextlib, io, json, sys
from crewtrace.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    results.append([code, err.getvalue(), "litellm" in sys.modules])
print(json.dumps(results))
"""


def test_every_demo_option_is_checked_before_litellm_is_imported(tmp_path: Path, busy_port: int) -> None:
    (tmp_path / "file").write_text("")
    cases = {
        ("--model", "gpt4o"): (2, "--model 'gpt4o' needs its provider prefix, e.g. --model openai/gpt4o "),
        ("--model", "openai/"): (2, "--model 'openai/' names no model after the provider, e.g. --model openai/"),
        ("--model", "/gpt-4o"): (2, "--model '/gpt-4o' names no provider before the '/'"),
        ("--otlp-endpoint", "localhost:4317"): (2, "malformed OTLP endpoint 'localhost:4317': expected a URL like "),
        ("--keep-alive",): (
            2,
            "--keep-alive keeps /metrics served after the run, and there is none: add --metrics-port",
        ),
        ("--capture-content",): (2, "--capture-content records prompts and completions on the exported spans, and "),
        ("--usage-log", str(tmp_path)): (2, f"--usage-log {tmp_path} is a directory: give a file, e.g. "),
        ("--usage-log", str(tmp_path / "file" / "u.jsonl")): (
            1,
            f"--usage-log {tmp_path}/file/u.jsonl: {tmp_path}/file is a file",
        ),
        ("--metrics-port", str(busy_port)): (
            1,
            f"--metrics-port {busy_port}: 127.0.0.1:{busy_port} is already in use; choose another port "
            "(--metrics-port 0 picks a free one) or stop what listens there",
        ),
    }
    argv = [["demo", *args] for args in cases]
    checked = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps(argv)], env=user_env(), capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr
    for (code, message), (exit_code, err, litellm_imported) in zip(
        cases.values(), json.loads(checked.stdout), strict=True
    ):
        line = one_line(err)
        assert (exit_code, line[: len("crewtrace demo: error: ") + len(message)]) == (
            code,
            f"crewtrace demo: error: {message}",
        )
        assert "Errno" not in line and "port=0" not in line
        assert not litellm_imported, f"litellm was imported before {line!r}"


def test_service_name_help_shows_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert (
        "--service-name SERVICE_NAME service.name of the telemetry "
        "(default: $OTEL_SERVICE_NAME if set, else crewtrace-demo)" in help_text
    )


@pytest.mark.slow  # the provider is litellm's to know: a cold import of it
def test_an_unknown_provider_is_one_line_and_exit_2(no_network: list[str]) -> None:
    result = run_crewtrace("demo", "--model", "nosuchprovider/foo", prefix=no_network)
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "crewtrace demo: error: --model 'nosuchprovider/foo': litellm knows no provider 'nosuchprovider'; use one of "
        "its prefixes (openai/ also serves any OpenAI-compatible server given with --base-url)"
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_stack_into_a_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("")
    assert main(["stack", str(tmp_path / "afile")]) == 1
    assert one_line(capsys.readouterr().err) == (
        f"crewtrace stack: error: {tmp_path}/afile is a file, not a directory: name a directory for the stack "
        "(it is created if missing)"
    )
    assert main(["stack", str(tmp_path / "afile" / "inside")]) == 1
    assert "afile is a file, not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["", "--force"])
@pytest.mark.parametrize("link", ["docker-compose.yml", "deploy"], ids=["a dangling file link", "a linked directory"])
def test_stack_never_writes_through_a_link(
    tmp_path: Path, link: str, force: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    target, elsewhere = tmp_path / "stack", tmp_path / "elsewhere"
    target.mkdir()
    if link == "deploy":
        elsewhere.mkdir()
    (target / link).symlink_to(elsewhere)  # dangling for the file: it would be created there
    assert main(["stack", str(target), *force]) == 1
    assert one_line(capsys.readouterr().err) == (
        f"crewtrace stack: error: {target}/{link} is a symbolic link: crewtrace stack never writes "
        "through one, even with --force; remove it or choose another directory"
    )
    assert os.listdir(target) == [link], "nothing written"
    assert not elsewhere.exists() or list(elsewhere.iterdir()) == []
    assert "deploy/prometheus-local.yml" in STACK_FILES, "Prometheus without Docker: written like the rest"


def test_control_characters_in_arguments_are_shown_not_sent(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--model", "\x1b]0;owned\x07"]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "--model '\\x1b]0;owned\\x07' needs its provider prefix" in err
