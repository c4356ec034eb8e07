"""Model-name rule shared by the registry, the CLI and the gateway's URLs."""

from __future__ import annotations

import re

from registry.errors import InvalidName

NAME_RULE = "^[a-z0-9][a-z0-9._-]{0,63}$"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid model name, else raise ``InvalidName``.

    >>> check_name("churn-v2.eu")
    'churn-v2.eu'
    """
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        shown = (
            repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:80]) + "…"
        )
        extra = f" ({len(name)} characters)" if isinstance(name, str) and len(name) > 64 else ""
        raise InvalidName(
            f"model name {shown}{extra} is invalid: names must match {NAME_RULE} "
            "(lowercase letters, digits, '.', '_', '-'; start with a letter or digit; "
            "at most 64 characters)"
        )
    return name
