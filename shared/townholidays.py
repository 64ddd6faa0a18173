"""The town's public holidays setting (`TOWNPULSE_HOLIDAYS_COUNTRY`): which codes name a
calendar of the `holidays` package. Apart from the models' calendar (shared/ml/calendar.py) so
that the settings can check the code without importing model code.
"""

from __future__ import annotations

import holidays

# The country code of a town that keeps no public holidays (or does not want them modelled).
NO_HOLIDAYS = "none"
# Where an operator finds the codes `holiday_region` accepts (townpulse/evaluate.py).
LIST_COMMAND = "townpulse evaluate --list-holidays"


def holiday_region(code: str) -> tuple[str, str | None]:
    """The country and subdivision a holidays code names, checked against the `holidays`
    package, or ValueError saying what is accepted.

    >>> holiday_region("FR-57")
    ('FR', '57')
    >>> holiday_region("XX")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown holidays country 'XX': ...
    """
    country, _, subdiv = code.strip().partition("-")
    country = country.upper()
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise ValueError(
            f"unknown holidays country {code!r}: an ISO 3166 code the holidays package knows "
            "(e.g. FR, DE, US), optionally with a subdivision (FR-57, DE-BY), or 'none'; "
            f"`{LIST_COMMAND}` lists them"
        )
    if not subdiv:
        return country, None
    known = {s.upper(): s for s in supported[country]}
    if subdiv.upper() not in known:
        raise ValueError(
            f"unknown subdivision {subdiv!r} of {country}: one of {', '.join(supported[country])}"
        )
    return country, known[subdiv.upper()]


def holiday_regions() -> dict[str, list[str]]:
    """Every country the `holidays` package knows (ISO 3166 alpha-2 code; alpha-3 codes are
    accepted too) and its subdivisions: what `holiday_region` accepts.

    >>> regions = holiday_regions()
    >>> "BY" in regions["DE"], "57" in regions["FR"], "DEU" in regions
    (True, True, False)
    """
    return {
        country: list(subdivs)
        for country, subdivs in sorted(
            holidays.list_supported_countries(include_aliases=False).items()
        )
    }


def check_holidays(code: str) -> str:
    """``code`` if it names a holidays calendar (or is 'none'), else ValueError."""
    if code.lower() != NO_HOLIDAYS:
        holiday_region(code)
    return code
