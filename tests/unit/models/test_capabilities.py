from __future__ import annotations

import pytest

from ains.models.capabilities import parse_requirement, satisfies


def test_plain_tag_accepts_any_version() -> None:
    req = parse_requirement("summarize")
    assert req.tag == "summarize"
    assert satisfies({"summarize": "0.1"}, [req])
    assert not satisfies({"translate": "1.0"}, [req])


@pytest.mark.parametrize(
    ("text", "version", "ok"),
    [
        ("summarize>=2.0", "2.0", True),
        ("summarize>=2.0", "1.9", False),
        ("summarize==1.*", "1.4", True),
        ("summarize<3,>=2", "3.0", False),
    ],
)
def test_version_constraints(text: str, version: str, ok: bool) -> None:
    assert satisfies({"summarize": version}, [parse_requirement(text)]) is ok


@pytest.mark.parametrize("text", ["", "Summarize", "sum marize", "summarize>=banana", "x" * 101])
def test_invalid_requirements_raise_clear_errors(text: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        parse_requirement(text)
