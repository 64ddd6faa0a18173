"""The KRaft cluster id the stack formats Kafka's storage with."""

from __future__ import annotations

import base64
from collections.abc import Callable

from townpulse.stack.kafka import new_cluster_id


def _draws(*chunks: bytes) -> Callable[[int], bytes]:
    it = iter(chunks)

    def draw(n: int) -> bytes:
        chunk = next(it)
        assert len(chunk) == n
        return chunk

    return draw


def test_an_id_starting_with_a_dash_is_drawn_again() -> None:
    # 0xF8 puts 62 in the first six bits: "-" in the URL-safe alphabet.
    dashed = b"\xf8" + bytes(15)
    plain = b"\x01" * 16
    assert base64.urlsafe_b64encode(dashed).decode().startswith("-")

    cluster_id = new_cluster_id(_draws(dashed, plain))

    assert cluster_id == base64.urlsafe_b64encode(plain).decode().rstrip("=")


def test_the_id_is_22_url_safe_characters() -> None:
    cluster_id = new_cluster_id()
    assert len(cluster_id) == 22
    assert set(cluster_id) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
