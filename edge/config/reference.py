"""Generate docs/configuration.md from the config models, so the docs cannot drift from the code.

    python -m edge.config.reference > docs/configuration.md

A test regenerates it and fails when the committed file is out of date.
"""

from __future__ import annotations

import types
import typing
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from edge.config.types import format_duration

HEADER = """# Configuration reference

One YAML file per checkpoint (usually `/etc/gate-edge/gate-edge.yaml`); a complete commented
example is [config/gate-edge.example.yaml](../config/gate-edge.example.yaml). Check a file with
`gate-edge validate-config FILE`: every problem is reported with file, line, key and fix.
Unknown keys are errors. Durations are written `90s`, `30m`, `6h`, `2d` (or seconds).
Secrets (keys, passwords) never go in this file: see docs/deployment.md.

*This page is generated from the code: `python -m edge.config.reference > docs/configuration.md`.*
"""


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None)) + (
            " or null" if type(None) in args else "")
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
        return {"str": "text", "int": "integer", "float": "number", "bool": "true/false",
                "timedelta": "duration", "PosixPath": "path", "Path": "path"}.get(
            annotation.__name__, annotation.__name__)
    return str(annotation)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(see model)"
        if isinstance(value, BaseModel):
            return "(defaults)"
        return f"`{value}`" if value not in ([], {}) else "empty"
    if field.default is PydanticUndefined or field.default is None:
        return "null" if field.default is None else ""
    if isinstance(field.default, timedelta):
        return f"`{format_duration(field.default)}`"
    if field.default == "":
        return '`""`'
    return f"`{field.default}`"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def render(root: type[BaseModel]) -> str:
    """Markdown tables: the root's keys, then each nested model once, in order of appearance."""
    out = [HEADER]
    queue: list[type[BaseModel]] = [root]
    seen: set[type[BaseModel]] = set()
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        doc = (model.__doc__ or "").strip().split("\n")[0]
        out.append(f"\n## {model.__name__}\n\n{doc}\n\n| key | type | default | meaning |\n|---|---|---|---|")
        for name, field in model.model_fields.items():
            out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | "
                       f"{(field.description or '').replace('|', '/')} |")
            queue.extend(m for m in _models_in(field.annotation) if m not in seen)
    return "\n".join(out) + "\n"


def main() -> None:
    """Print the reference for GateEdgeConfig."""
    from edge.config import GateEdgeConfig

    print(render(GateEdgeConfig), end="")


if __name__ == "__main__":
    main()
