"""Config files load strictly: every error names the file, the line and the key."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from otel_monitor.monitor.config_file import ConfigError, load_config_file, problem_at


class Server(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    server: Server = Server()
    tags: list[str] = []
    token: str = ""


@pytest.mark.parametrize(
    "text,line,key,message",
    [
        ("name: a\nserver:\n  host: x\n  prot: 1\n", 4, "server.prot", "unknown key"),
        ("name: a\nserver:\n  port: 70000\n", 3, "server.port", "less than or equal to 65535"),
        ("name: a\nserver:\n  port: eighty\n", 3, "server.port", "valid integer"),
        ("server:\n  port: 80\n", 1, "name", "Field required"),
        ("name: a\ntags: [x, {y: 1}]\n", 2, "tags.1", "valid string"),
        ("name: a\nserver: [1\n", 3, "", "invalid YAML"),
        ("- a\n- b\n", 1, "", "top level must be a mapping"),
        (
            "name: a\ntoken: ${OTEL_MONITOR_TEST_UNSET_VARIABLE}\n",
            2,
            "token",
            "OTEL_MONITOR_TEST_UNSET_VARIABLE is not set",
        ),
        ("name: a\nserver:\n  port: 1\n  port: 2\n", 4, "server.port", "duplicate key"),
    ],
)
def test_each_error_names_file_line_and_key(tmp_path, text, line, key, message):
    """A bad file raises ConfigError whose message is FILE:LINE: KEY: what is wrong."""
    path = tmp_path / "monitor.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config_file(path, Example)
    (problem,) = raised.value.problems
    assert (problem.line, problem.key) == (line, key)
    assert message in problem.message
    assert str(problem).startswith(f"{path}:{line}: ")


def test_every_error_is_reported_at_once(tmp_path):
    """Several mistakes give several problems, in file order."""
    path = tmp_path / "monitor.yaml"
    path.write_text("nam: a\nserver:\n  port: 0\n")
    with pytest.raises(ConfigError) as raised:
        load_config_file(path, Example)
    assert sorted((p.line, p.key) for p in raised.value.problems) == [(1, "nam"), (1, "name"), (3, "server.port")]


def test_environment_references_are_expanded(tmp_path, monkeypatch):
    """${NAME} and ${NAME:-default} take their values from the environment, so secrets stay out of the file."""
    monkeypatch.setenv("OTEL_MONITOR_TEST_TOKEN", "s3cret-value")
    path = tmp_path / "monitor.yaml"
    path.write_text("name: ${OTEL_MONITOR_TEST_NAME:-fallback}\ntoken: ${OTEL_MONITOR_TEST_TOKEN}\n")
    loaded = load_config_file(path, Example)
    assert (loaded.name, loaded.token) == ("fallback", "s3cret-value")


def test_missing_file_is_a_config_error(tmp_path):
    """An unreadable file is reported by name, not as a traceback."""
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config_file(tmp_path / "absent.yaml", Example)


@pytest.mark.parametrize(
    "loc,line,message",
    [
        (("server", "port"), 3, "wrong"),
        (("server", "host"), 2, "wrong (missing here)"),
        (("alerting", "delivery", "routing", "P0"), 5, "wrong"),
        (("alerting", "delivery", "routing", "P1"), 4, "wrong (missing here)"),
        (("absent", "key"), None, "wrong (missing here)"),
    ],
)
def test_problem_at_names_the_key_line_or_its_deepest_parent(tmp_path, loc, line, message):
    """A problem found after loading is placed at its key's line, or at the line of its deepest parent key present
    in the file, marked missing; its key names the whole path."""
    path = tmp_path / "monitor.yaml"
    path.write_text("name: a\nserver:\n  port: 1\nalerting: {delivery: {routing:\n  {P0: []}}}\n")
    problem = problem_at(path, loc, "wrong")
    assert (problem.line, problem.key, problem.message) == (line, ".".join(loc), message)
