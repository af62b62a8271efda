"""Semantic versions (semver 2.0.0 precedence) and version ranges for tag filters."""

from __future__ import annotations

import pytest

from relocator.config.semver import MAX_RANGE_LENGTH, Range, Version, parse_version
from relocator.errors import InputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1.2.3", Version(1, 2, 3), id="plain"),
        pytest.param("v1.2.3", Version(1, 2, 3), id="leading-v"),
        pytest.param("0.0.0", Version(0, 0, 0), id="zeros"),
        pytest.param("1.2.3-rc.1", Version(1, 2, 3, ("rc", "1")), id="prerelease"),
        pytest.param("1.2.3-alpine", Version(1, 2, 3, ("alpine",)), id="word-prerelease"),
        pytest.param("1.2.3-0.3.7", Version(1, 2, 3, ("0", "3", "7")), id="numeric-prerelease"),
        pytest.param("1.2.3+build.5", Version(1, 2, 3, (), ("build", "5")), id="build"),
        pytest.param("10.20.30-x-y-z.--", Version(10, 20, 30, ("x-y-z", "--")), id="hyphens"),
    ],
)
def test_versions_parse(text: str, expected: Version) -> None:
    """Full semantic versions parse, with an optional leading `v`."""
    actual = parse_version(text)

    assert expected == actual
    assert actual is not None
    assert expected.prerelease == actual.prerelease


@pytest.mark.parametrize(
    "text",
    [
        "1.25", "1", "latest", "1.25.3.4", "01.2.3", "1.02.3", "1.2.03", "1.2.3-01",
        "1.2.3-", "1.2.3-rc..1", "V1.2.3", "vv1.2.3", "1.2.3_rc", " 1.2.3", "",
        "sha256-abc.sig",
    ],
)
def test_other_tags_are_not_versions(text: str) -> None:
    """Partial versions, leading zeros and other words are not versions (no error)."""
    assert None is parse_version(text)


def test_parse_raises_for_what_is_not_a_version() -> None:
    """`Version.parse` names the offending text."""
    with pytest.raises(InputError) as caught:
        Version.parse("1.25")

    assert "'1.25' is not a semantic version (e.g. 1.2.3 or v1.2.3-rc.1)" == str(caught.value)


def test_precedence_follows_semver_2() -> None:
    """The ordering example of semver 2.0.0 §11, given shuffled, sorts back in order."""
    expected = [
        "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
        "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0",
    ]
    shuffled = [expected[i] for i in (7, 3, 11, 0, 9, 5, 1, 10, 4, 8, 2, 6)]

    actual = [str(v) for v in sorted(Version.parse(t) for t in shuffled)]

    assert expected == actual


def test_build_metadata_does_not_count_for_precedence() -> None:
    """Two versions that differ only in build metadata are equal, with equal hashes."""
    first, second = Version.parse("1.2.3+a"), Version.parse("1.2.3+b")

    assert (True, 1) == (first == second, len({first, second}))


# Tags a range is tried against below, in order.
TAGS = (
    "0.0.3", "0.0.4", "0.2.3", "0.2.9", "0.3.0",
    "1.0.0-rc.1", "1.0.0", "1.2.0-beta", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9",
    "2.0.0-rc.1", "2.0.0", "2.1.0", "v3.0.0",
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1.2.3", ["1.2.3"], id="bare-is-equal"),
        pytest.param("=1.2.3", ["1.2.3"], id="equal"),
        pytest.param("v1.2.3", ["1.2.3"], id="leading-v"),
        pytest.param(
            "!=1.2.3",
            ["0.0.3", "0.0.4", "0.2.3", "0.2.9", "0.3.0", "1.0.0", "1.2.0", "1.2.9", "1.3.0",
             "1.9.9", "2.0.0", "2.1.0", "v3.0.0"],
            id="not-equal",
        ),
        pytest.param(">2.0.0", ["2.1.0", "v3.0.0"], id="greater"),
        pytest.param(">=2.0.0", ["2.0.0", "2.1.0", "v3.0.0"], id="at-least"),
        pytest.param("<0.2.9", ["0.0.3", "0.0.4", "0.2.3"], id="less"),
        pytest.param("<=0.2.9", ["0.0.3", "0.0.4", "0.2.3", "0.2.9"], id="at-most"),
        pytest.param(">= 1.2.0 < 1.3.0", ["1.2.0", "1.2.3", "1.2.9"], id="spaces-after-ops"),
        pytest.param(">=1.2.0, <1.3.0", ["1.2.0", "1.2.3", "1.2.9"], id="comma-is-and"),
        pytest.param(
            "<0.2.3 || >=2.1.0", ["0.0.3", "0.0.4", "2.1.0", "v3.0.0"], id="or"
        ),
        pytest.param("~1.2.3", ["1.2.3", "1.2.9"], id="tilde"),
        pytest.param("~1.2", ["1.2.0", "1.2.3", "1.2.9"], id="tilde-minor"),
        pytest.param(
            "~1", ["1.0.0", "1.2.0", "1.2.3", "1.2.9", "1.3.0", "1.9.9"], id="tilde-major"
        ),
        pytest.param("^1.2.3", ["1.2.3", "1.2.9", "1.3.0", "1.9.9"], id="caret"),
        pytest.param("^0.2.3", ["0.2.3", "0.2.9"], id="caret-zero-major"),
        pytest.param("^0.0.3", ["0.0.3"], id="caret-zero-minor"),
        pytest.param("^0.2", ["0.2.3", "0.2.9"], id="caret-partial-zero-major"),
        pytest.param("^0", ["0.0.3", "0.0.4", "0.2.3", "0.2.9", "0.3.0"], id="caret-zero"),
        pytest.param("^0.0", ["0.0.3", "0.0.4"], id="caret-zero-zero"),
        pytest.param("1.2", ["1.2.0", "1.2.3", "1.2.9"], id="partial-minor"),
        pytest.param("1.2.x", ["1.2.0", "1.2.3", "1.2.9"], id="wildcard-patch"),
        pytest.param("2.*", ["2.0.0", "2.1.0"], id="wildcard-minor"),
        pytest.param(">1.2", ["1.3.0", "1.9.9", "2.0.0", "2.1.0", "v3.0.0"], id="greater-partial"),
        pytest.param("<=1.2", ["0.0.3", "0.0.4", "0.2.3", "0.2.9", "0.3.0", "1.0.0", "1.2.0",
                               "1.2.3", "1.2.9"], id="at-most-partial"),
        pytest.param("<1", ["0.0.3", "0.0.4", "0.2.3", "0.2.9", "0.3.0"], id="less-partial"),
        pytest.param(
            "!=1",
            ["0.0.3", "0.0.4", "0.2.3", "0.2.9", "0.3.0", "2.0.0", "2.1.0", "v3.0.0"],
            id="not-partial",
        ),
        pytest.param("*", [t for t in TAGS if "-" not in t], id="any"),
    ],
)
def test_ranges_select_releases(text: str, expected: list[str]) -> None:
    """Each comparator, partial version and combination selects exactly these releases."""
    version_range = Range.parse(text)

    actual = [t for t in TAGS if version_range.contains(Version.parse(t))]

    assert expected == actual


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            ">=1.0.0-0 <1.2.0", ["1.0.0-rc.1", "1.0.0", "1.2.0-beta"],
            id="from-the-first-prerelease",
        ),
        pytest.param("^1.2.3", ["1.2.3", "1.2.9", "1.3.0", "1.9.9"], id="caret-stops-before-2-rc"),
        pytest.param("~1.2", ["1.2.0-beta", "1.2.0", "1.2.3", "1.2.9"], id="partial-has-its-rcs"),
        pytest.param("<2.0.0 >1.9.9", ["2.0.0-rc.1"], id="rc-sorts-before-release"),
        pytest.param(">1", ["2.0.0-rc.1", "2.0.0", "2.1.0", "v3.0.0"], id="past-every-1"),
    ],
)
def test_prereleases_are_ordered_when_allowed(text: str, expected: list[str]) -> None:
    """With prereleases allowed they take part by semver precedence."""
    version_range = Range.parse(text)

    actual = [
        t for t in TAGS if version_range.contains(Version.parse(t), allow_prereleases=True)
    ]

    assert expected == actual


def test_prereleases_are_left_out_unless_allowed() -> None:
    """A prerelease inside the range is not selected by default."""
    version_range = Range.parse(">=1.0.0-0 <3.0.0")

    actual = [t for t in TAGS if version_range.contains(Version.parse(t))]

    assert [] == [t for t in actual if "-" in t]
    assert "1.0.0" in actual


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "semver range '' has an empty alternative around '||'", id="empty"),
        pytest.param(
            ">=1.0.0 ||", "semver range '>=1.0.0 ||' has an empty alternative around '||'",
            id="dangling-or",
        ),
        pytest.param(
            ">=1.2.q", "semver range '>=1.2.q': '1.2.q' is not a version (e.g. 1.2.3, 1.2, 1.x)",
            id="bad-version",
        ),
        pytest.param(
            ">=1.2.3.4",
            "semver range '>=1.2.3.4': '1.2.3.4' is not a version (e.g. 1.2.3, 1.2, 1.x)",
            id="four-parts",
        ),
        pytest.param(
            "=>1.2.3", "semver range '=>1.2.3': expected a version at '=>1.2.3'", id="swapped-op"
        ),
        pytest.param(">=", "semver range '>=': expected a version at '>='", id="operator-alone"),
        pytest.param(
            "1.x.3", "semver range '1.x.3': '1.x.3' has a number after a wildcard", id="x-then-3"
        ),
        pytest.param(
            "1.2-rc.1", "semver range '1.2-rc.1': '1.2-rc.1' is not a version (e.g. 1.2.3, "
            "1.2, 1.x)", id="partial-prerelease",
        ),
        pytest.param("<*", "semver range '<*': '<*' matches no version", id="less-than-any"),
        pytest.param(
            "1.2.3 - 2.0.0", "semver range '1.2.3 - 2.0.0': '-' is not a version (e.g. 1.2.3, "
            "1.2, 1.x)", id="hyphen-range",
        ),
        pytest.param(
            "x" * (MAX_RANGE_LENGTH + 1),
            f"semver range longer than {MAX_RANGE_LENGTH} characters",
            id="too-long",
        ),
    ],
)
def test_bad_ranges_are_one_clear_error(text: str, expected: str) -> None:
    """A range that does not parse names the part that is wrong."""
    with pytest.raises(InputError) as caught:
        Range.parse(text)

    assert expected == str(caught.value)
