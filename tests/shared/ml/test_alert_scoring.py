"""Alerts against labelled windows: what `evaluate --labels` and bench.energy_faults count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shared.ml.alert_scoring import (
    Label,
    LabelsFormatError,
    alerts_per_month,
    read_labels,
    score_alerts,
    write_labels,
)

pytestmark = pytest.mark.unit

T0 = datetime(2024, 3, 4, tzinfo=UTC)
H = timedelta(hours=1)


def test_labels_round_trip_and_naive_times_are_read_in_the_town_zone(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("start,end,kind\n2024-03-04 08:00:00,2024-03-04 10:00:00,left_on\n")
    paris = ZoneInfo("Europe/Paris")
    (label,) = read_labels(path, tz=paris)
    assert label == Label(
        datetime(2024, 3, 4, 7, tzinfo=UTC), datetime(2024, 3, 4, 9, tzinfo=UTC), "left_on"
    )
    again = read_labels(write_labels(tmp_path / "again.csv", [label]))
    assert again == [label]


def test_kind_is_optional(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("start,end\n2024-03-04T08:00:00+00:00,2024-03-04T08:00:00+00:00\n")
    assert read_labels(path)[0].kind == "unlabelled"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("begin,end\n", "header must be start,end"),
        ("start,end\nyesterday,2024-03-04\n", "labels.csv:2"),
        ("start,end\n2024-03-05,2024-03-04\n", "before start"),
        ("start,end,kind\n2024-03-04,2024-03-05," + "k" * 65 + "\n", "64 characters"),
    ],
)
def test_bad_label_files_are_explained(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(LabelsFormatError, match=message):
        read_labels(path)


def test_recall_delay_and_false_alerts_per_kind() -> None:
    labels = [
        Label(T0, T0 + 10 * H, "left_on"),
        Label(T0 + 100 * H, T0 + 100 * H, "spike"),
        Label(T0 + 200 * H, T0 + 210 * H, "left_on"),
    ]
    opened = [
        T0 + 3 * H,  # first left-on, 3 h late
        T0 + 5 * H,  # the same fault again: not a second detection, not false
        T0 + 20 * H,  # 10 h after the first fault ended: its aftermath
        T0 + 150 * H,  # in no window, 49 h after the spike: false
        T0 + 201 * H,  # second left-on, 1 h late
    ]
    s = score_alerts(opened, labels, months=2.0)
    assert (s["alerts"], s["events"], s["detected"], s["false_alerts"]) == (5, 3, 2, 1)
    assert s["false_alerts_per_device_month"] == 0.5
    assert s["by_kind"]["left_on"] == {
        "events": 2,
        "detected": 2,
        "recall": 1.0,
        "median_delay_h": 2.0,  # the median of 3 h and 1 h
    }
    assert s["by_kind"]["spike"]["recall"] == 0.0
    assert s["by_kind"]["spike"]["median_delay_h"] is None
    assert alerts_per_month(opened, months=2.0) == 2.5
