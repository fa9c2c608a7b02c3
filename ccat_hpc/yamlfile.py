"""Reading YAML config files into validated models, with errors that name file and key."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ccat_hpc.envsubst import SubstitutionError, expand_tree
from ccat_hpc.errors import ConfigError
from ccat_hpc.text import one_line

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_yaml(path: Path) -> Any:
    """A config file's YAML, or one ConfigError line naming the file (and line)."""
    try:
        text = _read_bounded(path).decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    except ValueError:  # a number with thousands of digits
        raise ConfigError(f"{path}: invalid YAML: a number has too many digits") from None
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_error_line(path, exc)) from None


#: far more than any site config or catalog
MAX_CONFIG_BYTES = 64 * 1024**2


def _read_bounded(path: Path) -> bytes:
    """A regular file's bytes (never waiting on a FIFO), at most MAX_CONFIG_BYTES."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_CONFIG_BYTES // 1024**2} MiB")
    return data


def _yaml_error_line(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return one_line(f"{where}: invalid YAML: {problem}")


def format_location(loc: tuple[int | str, ...]) -> str:
    """``('locations', 2, 'path')`` → ``locations[2].path``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top>"


#: Prefixes pydantic puts before the message of a validator's exception, by error type.
_VALIDATOR_PREFIXES = {"value_error": "Value error, ", "assertion_error": "Assertion failed, "}


def error_message(error: ErrorDetails) -> str:
    """The user's message of one pydantic error, without pydantic's "Value error, " wording.

    A validator's own text is shown as written; pydantic's built-in messages
    ("Field required", "Input should be ...") are kept.
    """
    message = error["msg"]
    prefix = _VALIDATOR_PREFIXES.get(error["type"], "")
    if prefix and message.startswith(prefix):
        message = message[len(prefix) :].strip()
    return message or "invalid value"


def describe_validation_error(source: str, error: ValidationError) -> str:
    problems = [
        f"{format_location(item['loc'])}: {error_message(item)}"
        for item in error.errors(include_url=False)
    ]
    return f"{source}: " + "; ".join(problems)


def load_model(path: Path, model: type[ModelT], env: Mapping[str, str] | None = None) -> ModelT:
    """Parse ``path``, substitute environment variables, validate against ``model``."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        expanded = expand_tree(raw, os.environ if env is None else env)
    except SubstitutionError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except RecursionError:  # a recursive alias (`a: &a [*a]`) or absurd nesting
        raise ConfigError(f"{path}: nested too deeply (or a recursive alias)") from None
    try:
        return model.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(str(path), exc)) from None
