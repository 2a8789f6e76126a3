"""Reading the appliance YAML: every problem at once, each at its line, in the trader's words;
and ``explain``, every effective setting with where it came from."""

from __future__ import annotations

import pathlib
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from appliance.config.model import STRATEGY_KINDS, AppConfig, MarketMaker, Taker
from appliance.config.problems import MISSING, ConfigError, Problem, Problems, did_you_mean, plain


def _marks(node: yaml.Node, path: tuple, out: dict[tuple, int], dups: list[Problem]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            key = k.value
            if isinstance(k, yaml.ScalarNode) and k.tag.endswith(":int"):
                key = int(key)
            if key in seen:
                dups.append(Problem(path + (key,), k.start_mark.line + 1, MISSING,
                                    f"given twice (first on line {seen[key]}): keep one"))
            seen[key] = k.start_mark.line + 1
            out[path + (key,)] = k.start_mark.line + 1
            _marks(v, path + (key,), out, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _marks(v, path + (i,), out, dups)


def _line(marks: dict[tuple, int], path: tuple) -> int | None:
    for n in range(len(path), -1, -1):
        if path[:n] in marks:
            return marks[path[:n]]
    return None


def _problem(err: dict, data: Any) -> Problem:
    loc = list(err["loc"])
    # a tagged union puts the tag in the path (strategies.0.market_maker.params): not a YAML key
    loc = [p for i, p in enumerate(loc) if not (p in STRATEGY_KINDS and i > 0 and isinstance(loc[i - 1], int))]
    key_error = bool(loc) and loc[-1] == "[key]"
    loc = [p for p in loc if p != "[key]"]
    path = tuple("global" if p == "global_" else p for p in loc)
    kind, msg = err["type"], err["msg"]
    value: Any = err.get("input", MISSING)
    if isinstance(value, (dict, list)):
        value = MISSING  # a whole section: its place says enough
    if kind == "missing":
        value, msg = MISSING, "missing: this setting is required"
    elif kind == "extra_forbidden":
        allowed = _allowed(path[:-1], data)
        value = MISSING
        whose = ""
        if len(path) >= 4 and path[0] == "strategies" and path[2] == "params":
            whose = f" for a {_get(data, path[:2] + ('kind',))}"
        msg = (f"no such setting{whose}{did_you_mean(str(path[-1]), allowed)}; "
               f"the settings here are {', '.join(allowed)}")
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        inp = err.get("input")
        value = inp.get("kind", MISSING) if isinstance(inp, dict) else MISSING
        path = path + ("kind",)
        msg = f"the strategy's kind: give one of {', '.join(STRATEGY_KINDS)}"
    elif kind in _PLAIN:
        msg = _PLAIN[kind].format(**err.get("ctx", {}))
    elif kind == "decimal_max_places":
        msg = "at most 4 decimals: ITCH and OUCH carry prices to 1/10,000 of a dollar"
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif kind in ("literal_error", "enum"):
        msg = msg.replace("Input should be", "give one of")
        if key_error:
            msg = f"not a name this mapping takes: {msg}"
    return Problem(path, None, value, msg)


_PLAIN = {
    "less_than_equal": "at most {le}",
    "greater_than_equal": "at least {ge}",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "int_type": "a whole number",
    "bool_parsing": "true or false",
    "string_too_long": "at most {max_length} characters",
    "string_too_short": "at least {min_length} character(s)",
    "too_short": "at least {min_length} entry (none given)",
    "decimal_parsing": "a number, e.g. 0.01",
    "string_type": "text, e.g. in quotes",
}


def _get(data: Any, path: tuple) -> Any:
    for p in path:
        try:
            data = data[p]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _allowed(path: tuple, data: Any) -> list[str]:
    """The settings the mapping at this YAML path may hold."""
    model: Any = AppConfig
    skip_key = False
    for i, p in enumerate(path):
        if skip_key or isinstance(p, int):
            skip_key = False
            if model is _STRATEGY:  # which kind of strategy: what its kind says
                kind = _get(data, path[:i + 1] + ("kind",))
                model = Taker if kind == "taker" else MarketMaker
            continue
        model, skip_key = _field_type(model, p)
        if model is None:
            return []
    if not hasattr(model, "model_fields"):
        return []
    return sorted(f.alias or n for n, f in model.model_fields.items())


_STRATEGY = object()


def _field_type(model: Any, name: Any) -> tuple[Any, bool]:
    """The model a field holds, and whether it is a mapping keyed by names (dict)."""
    if not hasattr(model, "model_fields"):
        return None, False
    for n, f in model.model_fields.items():
        if name not in (n, f.alias):
            continue
        if model is AppConfig and n == "strategies":
            return _STRATEGY, False
        ann = f.annotation
        origin = getattr(ann, "__origin__", None)
        if origin is dict:
            return ann.__args__[1], True
        if origin is list:
            return ann.__args__[0], False
        for cand in (ann, *getattr(ann, "__args__", ())):
            if hasattr(cand, "model_fields"):
                return cand, False
        return None, False
    return None, False


def load(path: str | pathlib.Path) -> AppConfig:
    """Read and validate; ConfigError lists every problem with its line."""
    p = pathlib.Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError([Problem((), None, MISSING, f"cannot read it: {exc.strerror}")], str(p)) from exc
    return loads(text, str(p))


def loads(text: str, file: str = "config") -> AppConfig:
    return _parse(text, file)[0]


def _parse(text: str, file: str) -> tuple[AppConfig, dict[tuple, int], Any]:
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise ConfigError([Problem((), line, MISSING, f"not valid YAML: {getattr(exc, 'problem', exc)}")],
                          file) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([Problem((), 1, MISSING, "the file must be a mapping of sections "
                                   "(host, feed, venue, instruments, strategies, risk, ...)")], file)
    marks: dict[tuple, int] = {}
    problems: list[Problem] = []
    if node is not None:
        _marks(node, (), marks, problems)
    try:
        cfg = AppConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            inner = err.get("ctx", {}).get("error")
            if isinstance(inner, Problems):
                problems += inner.problems
            else:
                problems.append(_problem(err, data))
        cfg = None
    for pr in problems:
        if pr.line is None:
            pr.line = _line(marks, pr.path)
    if problems:
        problems.sort(key=lambda pr: (pr.line or 0, pr.where()))
        raise ConfigError(problems, file)
    assert cfg is not None
    return cfg, marks, data


# ---- explain: effective values and where each came from -------------------------------------------


def explain(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """Every effective setting (defaults included) with its source: FILE:LINE, or default."""
    p = pathlib.Path(path)
    cfg, marks, _data = _parse(p.read_text(), str(p))
    rows: list[dict[str, Any]] = []

    def walk(value: Any, ypath: tuple) -> None:
        if isinstance(value, BaseModel):
            for name, field in type(value).model_fields.items():
                walk(getattr(value, name), ypath + (field.alias or name,))
            return
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(v, ypath + (k,))
            return
        if isinstance(value, list) and value:
            for i, v in enumerate(value):
                walk(v, ypath + (i,))
            return
        rows.append({"path": Problem(ypath, None, None, "").where(), "value": plain(value),
                     "source": f"{p}:{marks[ypath]}" if ypath in marks else "default"})

    walk(cfg, ())
    for s in cfg.strategies:
        for field, (v, where) in cfg.effective_limits(s.name).items():
            rows.append({"path": f"effective risk of {s.name}.{field}", "value": plain(v), "source": where})
    return rows
