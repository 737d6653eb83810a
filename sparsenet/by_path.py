"""A user's own model or dataset, named by import path ('package.module:function') where a registered name goes."""
from __future__ import annotations

import importlib
from typing import Callable


def function(name: str, kind: str, known: str, takes: str) -> Callable:
    """The function `name` names; KeyError saying why where there is none. `kind` ('model', 'dataset'), the
    `known` names and what the function `takes` go into the messages."""
    module, _, attr = name.partition(":")
    if not attr:
        raise KeyError(f"unknown {kind} {name!r}; {known}; or give an import path 'package.module:function'")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError, TypeError) as e:  # TypeError, ValueError: a relative or empty name
        raise KeyError(f"{kind} {name!r} cannot be imported: {e}") from None
    if not callable(fn):
        raise KeyError(f"{kind} {name!r} is not a function of {takes}")
    return fn
