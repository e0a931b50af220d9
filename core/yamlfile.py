"""Configuration files: one strict YAML loader and one way to name where a problem is.

Every file energymon reads (fleet files, gateway files, register maps, settings) goes through
:func:`parse_strict`: a ``yaml.SafeLoader`` that refuses a duplicated mapping key instead of
silently keeping the last one (``multiplier: 60, multiplier: 999`` is a copy-paste slip on the
very fields energy depends on). Errors carry the line and column.

:func:`describe_location` turns a pydantic error location into ``plant 'p' > meter 'm' >
field 'f'``, naming list items by their id.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml


class ConfigFileError(ValueError):
    """A configuration file is invalid; ``problems`` lists one readable line per error."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(
            f"{source}: {len(self.problems)} problem(s):\n  " + "\n  ".join(self.problems)
        )


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: the constructor below reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what went wrong and where (line and column are 1-based)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return " ".join(str(exc).split())


def parse_strict(text: str) -> Any:
    """YAML text to data with duplicate keys refused; raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=StrictLoader)


def read_yaml(path: str | Path, error: type[ConfigFileError] = ConfigFileError) -> Any:
    """Parsed YAML of ``path``; an unreadable file, a syntax error or a duplicated key raises
    ``error(path, [problem])`` with the line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(str(path), [f"cannot read file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise error(str(path), [f"not UTF-8 text: {exc.reason} at byte {exc.start}"]) from None
    try:
        return parse_strict(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise error(str(path), [f"{where}invalid YAML: {getattr(exc, 'problem', exc)}"]) \
            from None


def describe_location(
    data: Any,
    loc: Sequence[int | str],
    labels: Mapping[str, str],
    *,
    id_keys: Sequence[str] = ("id",),
    sections: Collection[str] = (),
    tags: Collection[str] = (),
) -> str:
    """A pydantic error location as ``plant 'p' > meter 'm' > field 'f'``.

    - ``labels``: list keys and the singular that names one item (``{"meters": "meter"}``);
      an item is named by the first of ``id_keys`` it has, else by its position (``#3``);
    - ``sections``: mapping keys named as they are and descended into (``mqtt_meters``);
    - ``tags``: tagged-union tags pydantic inserts after a list item, skipped.
    """
    parts: list[str] = []
    node = data
    i = 0
    while i < len(loc):
        key = loc[i]
        if key in sections:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, dict) else None
            i += 1
            continue
        if key in labels and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            index = int(loc[i + 1])
            item = None
            if isinstance(node, dict) and isinstance(node.get(key), list):
                seq = node[key]
                item = seq[index] if index < len(seq) else None
            ident = next((item[k] for k in id_keys if k in item), None) \
                if isinstance(item, dict) else None
            label = labels[str(key)]
            parts.append(f"{label} {ident!r}" if ident is not None else f"{label} #{index + 1}")
            node = item
            i += 2
            if i < len(loc) and loc[i] in tags:
                i += 1
            continue
        rest = ".".join(str(k) for k in loc[i:])
        parts.append(f"field {rest!r}")
        break
    return " > ".join(parts)


def repeated(values: Iterable[str]) -> list[str]:
    """The values that occur more than once, sorted (for 'defined more than once' errors)."""
    seen: set[str] = set()
    dups: set[str] = set()
    for value in values:
        (dups if value in seen else seen).add(value)
    return sorted(dups)
