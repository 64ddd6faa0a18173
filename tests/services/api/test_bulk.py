"""Reading bulk registration bodies: pure functions, no stack."""

from __future__ import annotations

import doctest

import pytest

import services.api.bulk
from services.api.bulk import BulkBodyError, mark_duplicates, parse_csv, parse_json

pytestmark = pytest.mark.unit


def test_docstring_examples() -> None:
    assert doctest.testmod(services.api.bulk).failed == 0


def test_csv_columns_in_any_order_with_quoted_fields_and_a_bom() -> None:
    body = (
        '\ufefflon,lat,name,domain,id,metadata\n6.1,45.9,"Rue A, 3",waste,b-1,"{""zone"": ""n""}"\n'
    ).encode()
    (row,) = parse_csv(body, max_rows=10)
    assert row.error is None and row.device is not None
    assert row.device.name == "Rue A, 3"
    assert row.device.location is not None and row.device.location.lon == 6.1
    assert row.device.metadata == {"zone": "n"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("b-1,waste,x", "3 fields, the header has 4"),
        ("b-1,waste,abc,1", "location.lat"),
        ("b-1,bogus,,", "domain: Input should be"),
        (",waste,,", "id: String should match pattern"),
    ],
)
def test_csv_row_errors(line: str, reason: str) -> None:
    (row,) = parse_csv(f"id,domain,lat,lon\n{line}\n".encode(), max_rows=10)
    assert row.device is None
    assert row.error is not None and reason in row.error


def test_csv_metadata_must_be_json() -> None:
    (row,) = parse_csv(b"id,domain,metadata\nb-1,waste,{zone}\n", max_rows=10)
    assert row.error is not None and row.error.startswith("metadata: not JSON")


def test_blank_lines_are_not_rows() -> None:
    assert len(parse_csv(b"id,domain\n\na,waste\n,\n", max_rows=1)) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty CSV"),
        (b"id,domain,colour\na,waste,red\n", "expected columns"),
        (b"id,domain,id\n", "each once"),
        (b"id,domain\na,waste\nb,waste\nc,waste\n", "3 rows: at most 2"),
    ],
)
def test_csv_bodies_refused_as_a_whole(body: bytes, reason: str) -> None:
    with pytest.raises(BulkBodyError, match=reason):
        parse_csv(body, max_rows=2)


def test_json_limits() -> None:
    with pytest.raises(BulkBodyError, match="at most 1 per request"):
        parse_json(b'[{"id": "a", "domain": "waste"}, {"id": "b", "domain": "waste"}]', max_rows=1)


def test_duplicates_after_an_invalid_row_with_the_same_id_count_as_first() -> None:
    body = b'[{"id": "a", "domain": "nope"}, {"id": "a", "domain": "waste"},'
    rows = parse_json(body + b'{"id": "a", "domain": "waste"}]', max_rows=5)
    marked = mark_duplicates(rows)
    assert [r.error is None for r in marked] == [False, True, False]
    assert marked[2].error == "duplicate id in this request (first at row 1)"
