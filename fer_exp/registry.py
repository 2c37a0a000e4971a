"""Self-registration for the config's choices: a model, a schedule or a data source is a
pydantic class with a ``Literal`` tag (``name`` or ``source``); defining the subclass is what
makes it a choice of its config section."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import BaseModel, Field


def subclasses_by_tag(base: type[BaseModel], tag: str) -> dict[str, type[BaseModel]]:
    """Every subclass of ``base`` (at any depth) declaring ``<tag>: Literal["value"]``, by value.

    >>> from fer_exp.training.schedules import Schedule
    >>> list(subclasses_by_tag(Schedule, "name"))
    ['constant', 'cosine', 'onecycle', 'plateau', 'step']
    """
    found: dict[str, type[BaseModel]] = {}
    pending = list(base.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        field = cls.model_fields.get(tag)
        values = getattr(field.annotation, "__args__", ()) if field else ()
        if len(values) != 1:  # an abstract intermediate class (no single tag value of its own)
            continue
        (value,) = values
        if value in found and found[value] is not cls:
            raise TypeError(
                f"two classes are tagged {tag}={value!r}: {found[value].__module__}."
                f"{found[value].__name__} and {cls.__module__}.{cls.__name__}"
            )
        found[value] = cls
    return dict(sorted(found.items()))


def tagged_union(classes: dict[str, type[BaseModel]], tag: str):
    """The pydantic type accepting any of ``classes``, chosen by the ``tag`` field."""
    members = tuple(classes.values())
    if len(members) == 1:
        return members[0]
    return Annotated[Union[members], Field(discriminator=tag)]
