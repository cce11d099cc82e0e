"""YAML config files whose errors name the file, the line, the key and the fix.

Both daemons read YAML written by hand at a border post, so a bad file must be answered with
something an engineer can act on at 3 a.m.: ``gate-edge.yaml:42 lanes[1].camera: ...``. This
module lives in ``gate_controller`` because that package may import nothing from ``edge``, while
``edge`` may import from it; both share one loader and one error format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file, located and explained."""

    file: str
    line: int | None
    column: int | None
    key: str
    message: str
    fix: str

    def render(self) -> str:
        """Format as ``file:line:col key: message (fix: ...)`` for terminals and logs."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = self.key or "(top level)"
        return f"{where}: {key}: {self.message}\n    fix: {self.fix}"


class ConfigError(Exception):
    """Raised when a config file cannot be used; carries every issue found, not just the first."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__(self.render())

    def render(self) -> str:
        """All issues, one block each, with a count line first."""
        head = f"{len(self.issues)} problem(s) in the configuration:"
        return "\n".join([head, *(issue.render() for issue in self.issues)])


def read_yaml(path: Path) -> Any:
    """Parse a YAML file keeping line marks; syntax errors become a located ConfigError."""
    yaml = YAML(typ="rt")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [ConfigIssue(str(path), None, None, "", "file not found",
                         "check the path, or copy config/gate-edge.example.yaml to start from")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [ConfigIssue(str(path), None, None, "", f"cannot read file: {exc}",
                         "make the file readable UTF-8 text")]
        ) from None
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise ConfigError(
            [ConfigIssue(str(path), line, col, "", f"YAML syntax error: {problem}",
                         "fix the indentation or quoting at that line; "
                         "values with ':' or '#' need quotes")]
        ) from None
    except YAMLError as exc:  # e.g. a control character the reader refuses, with no mark
        raise ConfigError(
            [ConfigIssue(str(path), None, None, "", f"YAML error: {exc}",
                         "remove control characters; save the file as plain UTF-8 text")]
        ) from None
    return data if data is not None else {}


def mark_of(data: Any, loc: Iterable[str | int]) -> tuple[int | None, int | None]:
    """Walk a ruamel document along a pydantic location; return the deepest known (line, col)."""
    line: int | None = None
    col: int | None = None
    node = data
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            ln, cl = node.lc.key(part)
            line, col = ln + 1, cl + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            ln, cl = node.lc.item(part)
            line, col = ln + 1, cl + 1
            node = node[part]
        elif isinstance(node, CommentedMap | CommentedSeq) and line is None:
            line, col = node.lc.line + 1, node.lc.col + 1
            break
        else:
            break
    return line, col


def dotted(loc: Sequence[str | int]) -> str:
    """``lanes[1].cameras[0]`` from a location tuple, the way people write config paths."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _field_description(model: type[BaseModel], loc: Sequence[str | int]) -> str | None:
    """Find the description of the field a location points at, following nested models."""
    current: Any = model
    description: str | None = None
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            # discriminated unions put the tag name in the location; step over it
            continue
        field = fields[part]
        description = field.description
        annotation = field.annotation
        current = _model_inside(annotation)
    return description


def _model_inside(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_inside(arg)
        if found is not None:
            return found
    return None


def _fix_for(error: Any, description: str | None, model: type[BaseModel]) -> str:
    kind = error["type"]
    loc = error["loc"]
    hint = f" ({description})" if description else ""
    if kind == "missing":
        return f"add the key '{loc[-1]}'{hint}; config/gate-edge.example.yaml shows an example"
    if kind == "extra_forbidden":
        parent = _parent_fields(model, loc[:-1])
        allowed = f"; allowed keys here: {', '.join(parent)}" if parent else ""
        return f"remove '{loc[-1]}' or correct its spelling{allowed}"
    if kind in {"literal_error", "enum"}:
        expected = error.get("ctx", {}).get("expected")
        return f"use one of: {expected}" if expected else f"use an allowed value{hint}"
    if kind == "union_tag_invalid":
        expected = error.get("ctx", {}).get("expected_tags")
        return f"set 'type' to one of: {expected}"
    if kind == "union_tag_not_found":
        return "add a 'type' key naming the device back-end (see docs/configuration.md)"
    if description:
        return f"expected: {description}"
    return "see docs/configuration.md for this key"


def _parent_fields(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            continue
        current = _model_inside(fields[part].annotation)
    if current is None:
        return []
    return list(getattr(current, "model_fields", {}).keys())


def issues_from_validation(
    exc: ValidationError, model: type[BaseModel], data: Any, file: str,
    prefix: Sequence[str | int] = (),
) -> list[ConfigIssue]:
    """Turn a pydantic ValidationError into located issues, one per error."""
    issues = []
    for error in exc.errors():
        loc = [*prefix, *error["loc"]]
        line, col = mark_of(data, loc)
        description = _field_description(model, error["loc"])
        message = error["msg"]
        if error["type"] not in {"missing", "extra_forbidden"} and "input" in error:
            shown = repr(error["input"])
            if len(shown) < 80 and not isinstance(error["input"], dict | list):
                message += f" (got {shown})"
        issues.append(
            ConfigIssue(file, line, col, dotted(loc), message, _fix_for(error, description, model))
        )
    return issues


def load_model(path: Path, model: type[ModelT], section: Sequence[str] = ()) -> ModelT:
    """Read ``path`` and validate it (or the sub-tree at ``section``) as ``model``.

    Raises ConfigError with every problem located, never a bare traceback.
    """
    data = read_yaml(path)
    node = data
    for part in section:
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(
                [ConfigIssue(str(path), None, None, dotted(section),
                             "section not found", f"add a '{dotted(section)}' section")]
            )
        node = node[part]
    try:
        return model.model_validate(node)
    except ValidationError as exc:
        raise ConfigError(issues_from_validation(exc, model, data, str(path), section)) from None
