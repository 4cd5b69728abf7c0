"""JSON Schema from the contract's dataclasses, so Python and JavaScript read one definition.

The manifest (mnist_edge.manifest) and the page's engine table (mnist_edge.formats) are frozen
dataclasses; `json_schema` turns one into a JSON Schema (draft 2020-12) with the same rules the
Python reader applies: a field with a default may be absent, `X | None` may be null, fields a
reader does not know are allowed (a newer minor version adds some). The generated files are
checked in (mnist_edge.contract writes them) and kept current by tests/test_contract.py.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object"}


def type_schema(hint) -> dict:
    """The schema of one type hint of the contract."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # only "X | None" is used
        (option,) = (a for a in args if a is not type(None))
        return {"anyOf": [type_schema(option), {"type": "null"}]}
    if dataclasses.is_dataclass(hint):
        return object_schema(hint)
    if origin is tuple:
        if args[-1] is Ellipsis:
            return {"type": "array", "items": type_schema(args[0])}
        return {
            "type": "array",
            "prefixItems": [type_schema(a) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if origin is dict:
        return {"type": "object", "additionalProperties": type_schema(args[1])}
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    raise TypeError(f"no JSON Schema for {hint!r}")


def object_schema(cls, *, skip: tuple[str, ...] = ()) -> dict:
    """A dataclass as a JSON object: its fields, those without a default required."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init and f.name not in skip]
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    schema = {"type": "object", "properties": {f.name: type_schema(hints[f.name]) for f in fields}}
    if required:
        schema["required"] = required
    doc = (cls.__doc__ or "").strip().split("\n")[0]
    if doc and not doc.startswith(f"{cls.__name__}("):
        schema = {"description": doc, **schema}
    return schema


def json_schema(cls, *, title: str, skip: tuple[str, ...] = (), extra: dict | None = None) -> dict:
    """The top-level schema of `cls` (fields in `skip` are not part of the file)."""
    schema = object_schema(cls, skip=skip)
    for name, constraint in (extra or {}).items():
        schema["properties"][name] = {**schema["properties"][name], **constraint}
    return {"$schema": DRAFT, "title": title, **schema}


def dump(data: dict) -> str:
    return json.dumps(data, indent=2) + "\n"
