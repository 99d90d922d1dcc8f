"""The configuration file (`--config PATH`): TOML for what is awkward on a command line.

Top-level keys are the long option names, `[scales]` maps scale ids to specs and `[site]`
describes the site (DESIGN.md, "Configuration file"). This module only reads and checks the
file; `balanca.tap` puts its values below the environment and the command line.
"""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

OptionKind = Literal["text", "list", "flag"]
SITE_KEYS = ("id", "name", "document", "address", "phone")


@dataclass(frozen=True)
class Site:
    """Who the site is: its id names MQTT topics, the rest heads printed tickets."""

    id: str = field(default_factory=lambda: host_site_id(socket.gethostname()))
    name: str = ""
    document: str = ""
    address: str = ""
    phone: str = ""


@dataclass(frozen=True)
class ConfigFile:
    """A configuration file's values, as the command line would give them."""

    path: str
    options: dict[str, str | list[str] | bool]
    """Long option name → its value (text as typed on a command line, a list, or a flag)."""
    scales: list[str] | None
    """`ID=SPEC` for each scale of `[scales]`, in the file's order; None without `[scales]`."""
    site: dict[str, str]
    """The `[site]` keys the file sets."""


def host_site_id(hostname: str) -> str:
    """The default site id: the host's short name, lower-cased, other characters as `-`."""
    short = hostname.split(".", 1)[0].lower()
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in short)
    return cleaned.strip("-") or "site"


def read_config(path: str, known: Mapping[str, OptionKind]) -> ConfigFile:
    """Read and check the file at `path`; ValueError names the file and the key at fault.

    `known` maps each long option name the file may set to its kind.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ValueError(f"--config {path}: cannot read it: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"--config {path}: not valid TOML: {e}") from None
    options: dict[str, str | list[str] | bool] = {}
    scales: list[str] | None = None
    site: dict[str, str] = {}
    for key, value in data.items():
        if key == "scales":
            scales = _scales(path, value)
        elif key == "site":
            site = _site(path, value)
        elif key in ("config", "scale"):
            hint = "; scales belong in [scales]" if key == "scale" else ""
            raise ValueError(f"{path}: key {key!r} cannot be set in the file{hint}")
        elif key in known:
            options[key] = _option(path, key, value, known[key])
        else:
            raise ValueError(f"{path}: unknown key {key!r}")
    return ConfigFile(path, options, scales, site)


def _option(path: str, key: str, value: Any, kind: OptionKind) -> str | list[str] | bool:
    if kind == "flag":
        if not isinstance(value, bool):
            raise ValueError(f"{path}: key {key!r} must be true or false")
        return value
    if kind == "list":
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise ValueError(f"{path}: key {key!r} must be a string or a list of strings")
        return list(values)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{path}: key {key!r} must be a string or a number")
    return str(value)


def _scales(path: str, value: Any) -> list[str]:
    if not isinstance(value, dict):
        raise ValueError(f'{path}: [scales] must be a table of id = "spec"')
    for scale_id, spec in value.items():
        if not isinstance(spec, str):
            raise ValueError(f"{path}: key 'scales.{scale_id}' must be a spec string")
    return [f"{scale_id}={spec}" for scale_id, spec in value.items()]


def _site(path: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"{path}: [site] must be a table")
    for key, text in value.items():
        if key not in SITE_KEYS:
            raise ValueError(f"{path}: unknown key 'site.{key}'")
        if not isinstance(text, str):
            raise ValueError(f"{path}: key 'site.{key}' must be a string")
    return dict(value)
