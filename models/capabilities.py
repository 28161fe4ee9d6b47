"""Capability requirements such as ``summarize`` or ``summarize>=2.0`` and matching them to agents."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

TAG_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,99}$"
_REQUIREMENT = re.compile(r"^\s*(?P<tag>[a-z0-9][a-z0-9_.\-]{0,99})\s*(?P<spec>(?:[<>=!~].*)?)$")


@dataclass(frozen=True)
class CapabilityRequirement:
    tag: str
    spec: SpecifierSet
    # Routing asks for every candidate of every decision and there are few distinct versions; hashing a
    # SpecifierSet is slow, so each (cached, shared) requirement remembers its own answers.
    _accepted: dict[str, bool] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def accepts(self, version: str) -> bool:
        if not self.spec:
            return True
        known = self._accepted.get(version)
        if known is None:
            parsed = _parse_version(version)
            known = parsed is not None and self.spec.contains(parsed)
            if len(self._accepted) < 1024:
                self._accepted[version] = known
        return known


@lru_cache(maxsize=4096)
def _parse_version(version: str) -> Version | None:
    try:
        return Version(version)
    except InvalidVersion:
        return None


@lru_cache(maxsize=1024)
def parse_requirement(text: str) -> CapabilityRequirement:
    """Parse ``tag`` or ``tag<specifier>``; raises ValueError with a message meant for the API user."""
    match = _REQUIREMENT.match(text)
    if not match:
        raise ValueError(
            f"invalid capability requirement {text!r}: expected a lowercase tag optionally followed by "
            "a version constraint, e.g. 'summarize' or 'summarize>=2.0'"
        )
    try:
        spec = SpecifierSet(match.group("spec").replace(" ", ""))
    except InvalidSpecifier as exc:
        raise ValueError(f"invalid version constraint in {text!r}: {exc}") from exc
    return CapabilityRequirement(tag=match.group("tag"), spec=spec)


def validate_version(version: str) -> str:
    try:
        Version(version)
    except InvalidVersion as exc:
        raise ValueError(f"invalid version {version!r}: use a PEP 440 version such as '1.0' or '2.1.3'") from exc
    return version


def satisfies(capabilities: dict[str, str], requirements: list[CapabilityRequirement]) -> bool:
    """True when ``capabilities`` (tag -> version) meets every requirement."""
    return all(req.tag in capabilities and req.accepts(capabilities[req.tag]) for req in requirements)


def check_requirements(values: list[str]) -> list[str]:
    """Field validator body: every requirement must parse (ValueError with the reason otherwise)."""
    for item in values:
        parse_requirement(item)
    return values
