"""``plate_grammars``: extra plate layouts (Laos, Cambodia, ...) as data, not code."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from edge.config.types import Section

_TEMPLATE = re.compile(r"^[0-9A-Z@*^/\-. ]+$")


class PlateGrammarConfig(Section):
    """A plate grammar: templates of ``9`` digit, ``@`` letter, ``*`` either, ``^`` province."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9-]{2,24}$", description="e.g. LA or KH-PP")
    country: str = Field(..., pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2 country")
    templates: list[str] = Field(..., min_length=1,
                                 description="layouts, rows split by '/', e.g. '@@ 9999' or '9@/9999'")
    letters: str = Field("ABCDEFGHJKLMNPQRSTUVWXYZ", pattern=r"^[A-Z]+$",
                         description="letters allowed where a template has '@'")
    provinces: str = Field("", description="characters allowed where a template has '^'")
    colours: list[str] = Field(default_factory=list, description="background colours, if known")
    description: str = Field("", description="what these plates are, for officers")

    @field_validator("templates")
    @classmethod
    def _templates(cls, value: list[str]) -> list[str]:
        for template in value:
            if not _TEMPLATE.match(template):
                raise ValueError(
                    f"template {template!r} may only use 9 @ * ^ / - . space, digits and A-Z")
        return value

    @model_validator(mode="after")
    def _provinces_when_used(self) -> PlateGrammarConfig:
        if any("^" in t for t in self.templates) and not self.provinces:
            raise ValueError("a template uses '^' (province character) but 'provinces' is empty; "
                             "list the province characters, e.g. provinces: 京津沪")
        return self
