"""The configuration reference, generated from the typed schema (``fer_exp.config.RunConfig``).

Every key, its type, default, allowed range and description comes from the pydantic models
(``FieldInfo.description``, constraints, validators' docstrings), so the page cannot drift from
the code. The documentation build runs this script through the ``mkdocs-gen-files`` plugin,
which appends the tables to ``docs/configuration.md`` at build time; run by hand it prints them:

    python scripts/gen_config_reference.py > /tmp/reference.md

Nested models become sections; a discriminated union (data sources keyed by ``source``, models
and schedules keyed by ``name``) becomes one table per member, headed by the config-group option
that selects it. Keys every member shares with the same meaning are listed once.
"""

from __future__ import annotations

import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # mkdocs-gen-files runs this file with runpy, from any sys.path
    sys.path.insert(0, str(REPO))

PAGE = "configuration.md"  # the hand-written page the reference is appended to


def conf_dir() -> Path:
    """The config groups' folder: inside the package (``fer_exp/conf``) or at the repository root."""
    import fer_exp

    inside = Path(fer_exp.__file__).resolve().parent / "conf"
    return inside if (inside / "config.yaml").is_file() else REPO / "conf"


# --------------------------------------------------------------------------- types and values


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _strip_annotated(tp: Any) -> tuple[Any, list[Any]]:
    """The bare type and the metadata of every ``Annotated`` layer around it."""
    meta: list[Any] = []
    while typing.get_origin(tp) is Annotated:
        tp, *extra = typing.get_args(tp)
        meta.extend(extra)
    return tp, meta


def _union_args(tp: Any) -> list[Any] | None:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return list(typing.get_args(tp))
    return None


def _without_none(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    args = _union_args(tp)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Union[tuple(rest)]), True  # noqa: UP007 (a runtime union)
    return tp, False


def type_name(tp: Any) -> str:
    """A short, readable spelling of a type: ``float | null``, ``list[int]``, ``"a" | "b"``."""
    tp, _ = _strip_annotated(tp)
    if tp is type(None):
        return "null"
    if typing.get_origin(tp) is Literal:
        return " | ".join("null" if v is None else json.dumps(v) for v in typing.get_args(tp))
    args = _union_args(tp)
    if args:
        return " | ".join(type_name(a) for a in args)
    origin = typing.get_origin(tp)
    if origin in (list, tuple, set, dict):
        inner = ", ".join(type_name(a) for a in typing.get_args(tp) if a is not Ellipsis)
        return f"{origin.__name__}[{inner}]" if inner else origin.__name__
    return getattr(tp, "__name__", str(tp))


def value_text(value: Any) -> str:
    """A default as it is written in YAML."""
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def _bound_text(meta: list[Any], unit: str = "item") -> str:
    """``Ge/Gt/Le/Lt`` as an interval, lengths and patterns in words."""
    low = high = None
    words: list[str] = []
    for m in meta:
        if isinstance(m, FieldInfo):  # Annotated[X, Field(...)] inside a union keeps a FieldInfo
            m = m.metadata
        for c in m if isinstance(m, list) else [m]:
            if isinstance(c, at.Ge):
                low = f"[{c.ge}"
            elif isinstance(c, at.Gt):
                low = f"({c.gt}"
            elif isinstance(c, at.Le):
                high = f"{c.le}]"
            elif isinstance(c, at.Lt):
                high = f"{c.lt})"
            elif isinstance(c, at.MinLen):
                words.append(f"at least {c.min_length} {unit}{'s' * (c.min_length != 1)}")
            elif isinstance(c, at.MaxLen):
                words.append(f"at most {c.max_length} {unit}s")
            elif getattr(c, "pattern", None):
                words.append(f"matches `{c.pattern}`")
            elif getattr(c, "func", None) is not None and c.func.__doc__:
                words.append(_first_sentence(c.func.__doc__))
    if low and high:
        words.insert(0, f"{low}, {high}")
    elif low:
        words.insert(0, (">= " if low[0] == "[" else "> ") + low[1:])
    elif high:
        words.insert(0, ("<= " if high[-1] == "]" else "< ") + high[:-1])
    return "; ".join(words)


def constraints(info: FieldInfo) -> str:
    """Every constraint on a field: its own metadata, then those of the union members and list items."""
    tp, _ = _without_none(info.annotation)
    unit = "character" if tp is str else "item"
    parts = [_bound_text(list(info.metadata), unit)]
    for arg in _union_args(tp) or [tp]:
        bare, meta = _strip_annotated(arg)
        parts.append(_bound_text(meta, unit))
        if typing.get_origin(bare) is list:
            item = typing.get_args(bare)[0]
            item_text = _bound_text(_strip_annotated(item)[1])
            parts.append(f"each item {item_text}" if item_text else "")
    return "; ".join(p for p in dict.fromkeys(parts) if p)


def _first_sentence(doc: str) -> str:
    text = " ".join(doc.strip().split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def _markdown(text: str) -> str:
    """Sphinx roles (``:mod:`x```) as plain code spans."""
    return re.sub(r":(?:mod|class|func|meth|attr|data):`~?([^`]+)`", r"`\1`", text)


def _doc_paragraph(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    if not doc or cls.__doc__ is BaseModel.__doc__:
        return ""
    return _markdown(" ".join(doc.split("\n\n")[0].split()))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _validator_notes(cls: type[BaseModel]) -> tuple[dict[str, list[str]], list[str]]:
    """Docstrings of the field validators (per field) and of the model validators (cross-key rules)."""
    per_field: dict[str, list[str]] = {}
    rules: list[str] = []
    decorators = cls.__pydantic_decorators__
    for dec in decorators.field_validators.values():
        doc = getattr(dec.func, "__doc__", None)
        if doc:
            for name in dec.info.fields:
                per_field.setdefault(name, []).append(_first_sentence(doc))
    for dec in decorators.model_validators.values():
        doc = getattr(dec.func, "__doc__", None)
        if doc:
            rules.append(" ".join(doc.split()))
    return per_field, rules


# --------------------------------------------------------------------------- walking the schema


class Row(typing.NamedTuple):
    key: str
    type: str
    default: str
    allowed: str
    description: str


class Section(typing.NamedTuple):
    title: str
    intro: str
    rows: list[Row]
    rules: list[str]


def _group_options(group: str, discriminator: str) -> dict[str, list[str]]:
    """Discriminator value -> the ``conf/<group>/*.yaml`` options that select it."""
    from omegaconf import OmegaConf

    found: dict[str, list[str]] = {}
    for path in sorted((conf_dir() / group).glob("*.yaml")):
        value = OmegaConf.load(path).get(discriminator)
        if value is not None:
            found.setdefault(str(value), []).append(path.stem)
    return found


def _rows(cls: type[BaseModel], prefix: str, only: set[str] | None = None, selector: str | None = None) -> list[Row]:
    """One row per field (``only``: these fields); the ``selector`` (discriminator) field first."""
    per_field, _ = _validator_notes(cls)
    rows = []
    for name, info in cls.model_fields.items():
        if only is not None and name not in only:
            continue
        key = f"{prefix}{info.alias or name}"
        allowed = "; ".join(p for p in [constraints(info), *per_field.get(name, [])] if p)
        default = info.default if info.default_factory is None else info.default_factory()
        description = info.description or ""
        if name == selector:  # required by the schema, always set by the config-group option
            default, description = "set by the option", description or "Selects this variant."
        row = Row(
            key,
            _cell(type_name(info.annotation)),
            _cell(value_text(default)),
            _cell(allowed),
            _cell(_markdown(description)),
        )
        rows.insert(0, row) if name == selector else rows.append(row)
    return rows


def _field_signature(info: FieldInfo) -> tuple:
    default = info.default if info.default_factory is None else info.default_factory()
    return (repr(info.annotation), repr(default), info.description, constraints(info))


def walk(cls: type[BaseModel], prefix: str = "", title: str = "Top-level keys") -> list[Section]:
    """Sections for a model: its leaf keys first, then one section per nested model or union member."""
    _, rules = _validator_notes(cls)
    leaves, nested = [], []
    for name, info in cls.model_fields.items():
        tp, _ = _without_none(info.annotation)
        members = [a for a in (_union_args(tp) or [])]
        if _is_model(tp) or (members and all(_is_model(_strip_annotated(m)[0]) for m in members)):
            nested.append((name, info, tp, members))
        else:
            leaves.append(name)
    sections = [Section(title, _doc_paragraph(cls), _rows(cls, prefix, set(leaves)), rules)] if leaves else []
    for name, info, tp, members in nested:
        key = f"{prefix}{name}"
        if not members:
            sections += walk(tp, f"{key}.", f"`{key}`")
            continue
        sections += _union_sections(key, info, [_strip_annotated(m)[0] for m in members])
    return sections


def _union_sections(key: str, info: FieldInfo, members: list[type[BaseModel]]) -> list[Section]:
    disc = info.discriminator if isinstance(info.discriminator, str) else None
    options = _group_options(key, disc) if disc else {}
    shared: set[str] = set(members[0].model_fields)
    for m in members[1:]:
        shared &= set(m.model_fields)
    shared = {n for n in shared if n != disc and len({_field_signature(m.model_fields[n]) for m in members}) == 1}
    sections = []
    if shared:
        intro = f"Keys every `{key}` variant has, with the same type, default and meaning."
        sections.append(Section(f"`{key}`: every {disc or 'variant'}", intro, _rows(members[0], f"{key}.", shared), []))
    for m in members:
        value = typing.get_args(_strip_annotated(m.model_fields[disc].annotation)[0])[0] if disc else m.__name__
        chosen = options.get(str(value), [])
        title = f"`{key}`: {disc}={value}"
        intro = _doc_paragraph(m)
        if chosen:
            intro += (" " if intro else "") + "Selected by " + ", ".join(f"`{key}={o}`" for o in chosen) + "."
        own = set(m.model_fields) - shared
        _, rules = _validator_notes(m)
        if m.model_config.get("extra") == "allow":
            rules.append("Other keys are passed through to the class.")
        sections.append(Section(title, intro, _rows(m, f"{key}.", own, selector=disc), rules))
    return sections


def optimizer_options() -> str:
    """The ``optimizer`` group's options side by side: the schema checks the common keys, the rest
    are keyword arguments of the Keras class."""
    from omegaconf import OmegaConf

    options = {
        p.stem: OmegaConf.to_container(OmegaConf.load(p)) for p in sorted((conf_dir() / "optimizer").glob("*.yaml"))
    }
    keys: list[str] = list(dict.fromkeys(k for values in options.values() for k in values))
    out = ["| key | " + " | ".join(f"`optimizer={o}`" for o in options) + " |", "|---|" + "---|" * len(options)]
    for k in keys:
        cells = [_code(_cell(value_text(v[k]))) if k in v else "" for v in options.values()]
        out.append(f"| {_key(f'optimizer.{k}')} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def sections() -> list[Section]:
    from fer_exp.config import RunConfig

    return walk(RunConfig)


def render(level: int = 2) -> str:
    """The whole reference as Markdown, sections at heading ``level``."""
    out = [
        "#" * level + " Reference",
        "",
        (
            "Generated from the schema (`fer_exp.config.RunConfig`) when the documentation is built. "
            "Ranges: `[a, b]` includes both ends, `(a, b)` excludes them."
        ),
        "",
    ]
    for s in sections():
        out += ["#" * (level + 1) + " " + s.title, ""]
        if s.intro:
            out += [s.intro, ""]
        if s.rows:
            out += ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
            out += [
                f"| {_key(r.key)} | {r.type} | {_code(r.default)} | {r.allowed} | {r.description} |" for r in s.rows
            ]
            out.append("")
        for rule in s.rules:
            out += [f"- Also checked: {_markdown(rule)}"]
        if s.rules:
            out.append("")
    out += [
        "#" * (level + 1) + " `optimizer`: the options",
        "",
        (
            "What each `conf/optimizer/*.yaml` option sets. Keys the `optimizer` table above does not name "
            "are keyword arguments of the Keras class, passed through to it unchecked."
        ),
        "",
        optimizer_options(),
        "",
    ]
    return "\n".join(out)


def _code(text: str) -> str:
    return text if text in ("required", "set by the option") else f"`{text}`"


def _key(key: str) -> str:
    """A dotted key as code that may wrap after its dots (``<wbr>``: nothing extra when copied)."""
    return "<code>" + key.replace(".", ".<wbr>") + "</code>"


def keys(text: str) -> set[str]:
    """The keys that have a row in rendered ``text`` (for tests)."""
    return {
        re.sub(r"<[^>]+>", "", line.split(" | ")[0][2:]) for line in text.splitlines() if line.startswith("| <code>")
    }


if __name__ == "<run_path>":  # inside `mkdocs build` (mkdocs-gen-files): append to the page
    import mkdocs_gen_files

    with mkdocs_gen_files.open(PAGE, "a") as page:
        page.write("\n" + render() + "\n")
    mkdocs_gen_files.set_edit_path(PAGE, "../scripts/gen_config_reference.py")
elif __name__ == "__main__":
    print(render())
