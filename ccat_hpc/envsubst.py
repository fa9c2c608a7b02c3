"""``${VAR}`` / ``${VAR:-default}`` substitution in config values (pure functions).

Substitution is applied to every string value after the YAML is parsed, never to
the raw text, so a variable's value can not change the structure of the file.

- ``${VAR}``: the variable's value; an error if it is not set.
- ``${VAR:-default}``: the value, or ``default`` if VAR is unset or empty.
- ``${VAR-default}``: the value, or ``default`` only if VAR is unset.
- ``$$``: a literal ``$``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TOKEN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")


class SubstitutionError(ValueError):
    """A value names an unset variable or has a malformed ``${…}``."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Substitute the variables in one string."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, default = match.groups()
        value = env.get(name)
        if operator == ":-":
            return value if value else default
        if operator == "-":
            return value if value is not None else default
        if value is None:
            raise SubstitutionError(
                f"environment variable {name} is not set (write ${{{name}:-default}} "
                "to give a default)"
            )
        return value

    result = _TOKEN.sub(replace, text)
    leftover = _TOKEN.sub("", text)
    if "${" in leftover:
        raise SubstitutionError(f"malformed variable reference in {text!r}")
    return result


#: more values than any site config or catalog has: YAML aliases can make a small file
#: expand to billions of values ("billion laughs"), which is refused, not walked
MAX_VALUES = 200_000


def expand_tree(value: Any, env: Mapping[str, str], where: str = "") -> Any:
    """Substitute in every string of a parsed YAML tree; errors name the key path."""
    return _expand(value, env, where, [MAX_VALUES])


def _expand(value: Any, env: Mapping[str, str], where: str, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise SubstitutionError(
            f"the file expands to more than {MAX_VALUES:,} values (YAML aliases?)"
        )
    if isinstance(value, str):
        try:
            return expand(value, env)
        except SubstitutionError as exc:
            raise SubstitutionError(f"{where or '<top>'}: {exc}") from None
    if isinstance(value, dict):
        return {k: _expand(v, env, _join(where, str(k)), budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, f"{where}[{i}]", budget) for i, v in enumerate(value)]
    return value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
