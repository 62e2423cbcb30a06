"""Loads a YAML config file strictly into a pydantic model; every error names the file, the line and the key."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["ConfigError", "ConfigProblem", "load_config_file", "problem_at"]

Model = TypeVar("Model", bound=BaseModel)
_ENV_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class ConfigProblem:
    """One thing wrong with a config file: where it is and what is wrong."""

    def __init__(self, path: Path, line: int | None, key: str, message: str) -> None:
        self.path, self.line, self.key, self.message = path, line, key, message

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """A config file that cannot be used; ``problems`` lists every error found, each with file, line and key."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def _line_of(node: yaml.Node | None, loc: tuple) -> tuple[int | None, bool]:
    """(1-based line of the node at ``loc``, True); (line of its deepest existing parent, False) if absent."""
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
            if child is None and any(k.value == "type" and v.value == str(part) for k, v in node.value):
                continue  # the tag pydantic puts in the path of a union member chosen by ``type``: no key of its own
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        else:
            child = None
        if child is None:
            return (node.start_mark.line + 1 if node is not None else None), False
        node = child
    return (node.start_mark.line + 1 if node is not None else None), True


def _duplicate_keys(node: yaml.Node | None, path: tuple = ()) -> list[tuple[int, str]]:
    """(line, dotted key) of every key that appears twice in the same mapping."""
    found: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                found.append((key_node.start_mark.line + 1, ".".join(map(str, (*path, key)))))
            seen.add(key)
            found += _duplicate_keys(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found += _duplicate_keys(item, (*path, index))
    return found


def _key_line(node: yaml.Node | None, loc: tuple) -> int | None:
    """For an unknown key, the line of the key itself."""
    parent = node
    for part in loc[:-1]:
        if isinstance(parent, yaml.MappingNode):
            parent = next((v for k, v in parent.value if k.value == str(part)), None)
        elif isinstance(parent, yaml.SequenceNode) and isinstance(part, int) and part < len(parent.value):
            parent = parent.value[part]
    if isinstance(parent, yaml.MappingNode):
        for key_node, _ in parent.value:
            if key_node.value == str(loc[-1]):
                return key_node.start_mark.line + 1
    return None


def _expand_environment(value: Any, path: tuple, problems: list[tuple[tuple, str]]) -> Any:
    """Replaces ``${NAME}`` and ``${NAME:-default}`` in strings (secrets stay out of the file)."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group("name"), match.group("default")
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            problems.append((path, f"environment variable {name} is not set"))
            return ""

        return _ENV_REFERENCE.sub(substitute, value)
    if isinstance(value, Mapping):
        return {k: _expand_environment(v, (*path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_environment(v, (*path, i), problems) for i, v in enumerate(value)]
    return value


def load_config_file(path: str | os.PathLike[str], model: type[Model]) -> Model:
    """Parses ``path`` and validates it as ``model``; raises ConfigError naming file, line and key of each error."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([ConfigProblem(path, None, "", f"cannot read the file: {exc.strerror}")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            [ConfigProblem(path, mark.line + 1 if mark else None, "", f"invalid YAML: {problem}")]
        ) from None
    duplicates = _duplicate_keys(root)
    if duplicates:
        raise ConfigError(
            [
                ConfigProblem(path, line, key, "duplicate key (YAML would keep only the last)")
                for line, key in duplicates
            ]
        )
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError([ConfigProblem(path, 1, "", "the top level must be a mapping of keys")])
    env_problems: list[tuple[tuple, str]] = []
    data = _expand_environment(data, (), env_problems)
    if env_problems:
        raise ConfigError(
            [
                ConfigProblem(path, _line_of(root, loc)[0], ".".join(map(str, loc)), message)
                for loc, message in env_problems
            ]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            key = ".".join(str(p) for p in loc)
            if error["type"] == "extra_forbidden":
                line, message = _key_line(root, loc), "unknown key"
            else:
                line, found = _line_of(root, loc)
                message = error["msg"] if found else f"{error['msg']} (missing here)"
            problems.append(ConfigProblem(path, line, key, message))
        raise ConfigError(problems) from None


def problem_at(path: str | os.PathLike[str], loc: tuple[str, ...], message: str) -> ConfigProblem:
    """A problem found after loading (by a check across sections): at the line of the key at ``loc`` in ``path``,
    or of its deepest parent key present in the file (its key still names the whole ``loc``)."""
    path = Path(path)
    try:
        node = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):  # loaded a moment ago; if it changed since, name the file only
        node = None
    line, depth = None, 0
    for part in loc:
        entry = (
            next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if isinstance(node, yaml.MappingNode)
            else None
        )
        if entry is None:
            break
        line, node, depth = entry[0].start_mark.line + 1, entry[1], depth + 1
    found = depth == len(loc)
    return ConfigProblem(path, line, ".".join(map(str, loc)), message if found else f"{message} (missing here)")
