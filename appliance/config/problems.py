"""A problem in the appliance YAML, with its place in the file: the error every check raises."""

from __future__ import annotations

import dataclasses
import difflib
import pathlib
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

MISSING = object()  # a problem with no value to show (a missing setting, a whole section)


@dataclasses.dataclass
class Problem:
    path: tuple                 # YAML path, e.g. ("strategies", 0, "params", "half_spread")
    line: int | None            # 1-based, filled in from the file
    value: Any
    message: str                # what is wrong and how to fix it

    def where(self) -> str:
        out = ""
        for p in self.path:
            out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
        return out or "(top)"

    def text(self, file: str) -> str:
        at = f"{file}:{self.line}" if self.line else file
        value = "" if self.value is MISSING else f" {self.value!r}"
        where = f"{self.where()}{value}: " if self.path or value else ""
        return f"{at}: {where}{self.message}"

    def as_dict(self, file: str) -> dict[str, Any]:
        return {"file": file, "line": self.line, "path": self.where() if self.path else None,
                "value": None if self.value is MISSING else plain(self.value), "message": self.message}


class Problems(ValueError):
    """Raised inside a validator to report several problems with their own paths."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class ConfigError(ValueError):
    """The file cannot be used; ``problems`` lists every one, each with its place."""

    def __init__(self, problems: list[Problem], file: str = "config"):
        self.problems, self.file = problems, file
        head = f"{file}: {len(problems)} problem{'s' if len(problems) != 1 else ''}:" if len(problems) > 1 else ""
        body = [p.text(file) for p in problems]
        super().__init__("\n".join(([head] if head else []) + [("  " if head else "") + b for b in body]))


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, pathlib.Path):
        return str(v)
    if isinstance(v, SecretStr):
        return "********"
    return v
