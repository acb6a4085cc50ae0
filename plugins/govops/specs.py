"""Loading the project's YAML specs (pipelines, API sets, analytics deliverables): one file
is one spec, validated by its pydantic model, and a bad one is refused with the file and
the field (``SPEC_INVALID``), so the caller can skip it and keep the others."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from govops.errors import CodedError

Spec = TypeVar("Spec", bound=BaseModel)


class SpecError(CodedError, ValueError):
    """A spec file is invalid; the message names the file and the field."""

    code = "SPEC_INVALID"


def describe(error: ValidationError, *, checks_name_their_field: bool = False) -> str:
    """``field.path: message`` per error; ``(spec)`` for a check across fields, unless the
    model's checks name their field in their message (then it is bare, without pydantic's
    ``Value error,`` prefix)."""
    parts = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        if checks_name_their_field:
            message = e["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {message}" if where else message)
        else:
            parts.append(f"{where or '(spec)'}: {e['msg']}")
    return "; ".join(parts)


def load(path: Path, model: type[Spec], name_field: str, raw: bytes | None = None, **describe_options: bool) -> Spec:
    """The spec in ``path`` (or its bytes ``raw``, already read); its ``name_field`` must be
    the file's name without ``.yaml``, so a spec is found by its name."""
    import yaml

    try:
        data = yaml.safe_load((path.read_bytes() if raw is None else raw).decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec is a mapping of fields")
    try:
        spec = model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{path}: {describe(exc, **describe_options)}") from None
    name = getattr(spec, name_field)
    if name != path.stem:
        raise SpecError(f"{path}: {name_field}: {name!r} must match the file name {path.stem!r}")
    return spec
