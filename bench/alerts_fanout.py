"""Load test of the alerts service: 10,000 alert events fanned out to 5 webhook subscriptions.

Needs the local stack (`make up`). Produces the episode starts straight onto the `alerts` topic,
each opening one alert, so 50,000 signed deliveries go to 5 receivers on 127.0.0.1 that verify
each one with `standardwebhooks`. Reports deliveries per second and latency percentiles, then
removes the subscriptions and closes the alerts it opened.

    .venv/bin/python -m bench.alerts_fanout [--events 10000] [--subscriptions 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from bench.common import run_meta, write_result
from testing.alerts_support import event, produce_events
from testing.webhook_receiver import WebhookReceiver
from townpulse.stack import Stack, read_env_file


def _percentiles(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(q[49], 3), "p95": round(q[94], 3), "p99": round(q[98], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--subscriptions", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()

    env = read_env_file(Stack().stack_env_file)
    key = Path(env["ADMIN_API_KEY_FILE"]).read_text().strip()
    api = httpx.Client(
        base_url=env["API_URL"], headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    kind = f"bench.fanout{uuid.uuid4().hex[:8]}"
    receivers = [WebhookReceiver().listen() for _ in range(args.subscriptions)]
    subs = []
    for r in receivers:
        resp = api.post("/v1/webhooks", json={"url": r.url, "kinds": [kind]})
        resp.raise_for_status()
        subs.append(resp.json()["id"])
        r.secret = resp.json()["secret"]
    devices = [f"bench-{i:05d}" for i in range(args.events)]
    expected = args.events * args.subscriptions
    now = datetime.now(UTC)
    try:
        produced_at = time.time()
        produce_events(
            env["KAFKA_BOOTSTRAP"],
            [event(d, kind, "start", episode_start=now, ts=now) for d in devices],
        )
        produce_s = time.time() - produced_at
        deadline = time.monotonic() + args.timeout
        while sum(len(r.delivered()) for r in receivers) < expected:
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for the deliveries")
            time.sleep(0.5)
        requests = [q for r in receivers for q in r.requests]
        firsts: dict[str, float] = {}
        for q in sorted(requests, key=lambda q: q.at):
            if q.status == 200:
                firsts.setdefault(q.msg_id + q.headers.get("host", ""), q.at)
        arrivals = sorted(firsts.values())
        assert len(arrivals) == expected, len(arrivals)
        assert all(q.verified for q in requests)
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            row = conn.execute(
                """
                SELECT array_agg(EXTRACT(EPOCH FROM delivered_at - created_at)) AS lat,
                       sum(attempts) AS attempts
                FROM webhook_outbox WHERE subscription_id = ANY(%s)
                """,
                (subs,),
            ).fetchone()
        assert row is not None
        commit_to_delivery = [float(x) for x in row[0]]
        result = {
            **run_meta(command="python -m bench.alerts_fanout"),
            "events": args.events,
            "subscriptions": args.subscriptions,
            "deliveries": expected,
            "attempts": int(row[1]),
            "requests_received": len(requests),
            "produce_seconds": round(produce_s, 2),
            "wall_seconds": round(arrivals[-1] - produced_at, 2),
            "deliveries_per_second": round(expected / (arrivals[-1] - produced_at), 1),
            "deliveries_per_second_while_delivering": round(
                expected / (arrivals[-1] - arrivals[0]), 1
            ),
            "latency_event_to_receiver_s": _percentiles([a - produced_at for a in arrivals]),
            "latency_commit_to_delivered_s": _percentiles(commit_to_delivery),
            "notes": (
                "All events produced at once (a burst), so event-to-receiver latency includes "
                "queueing behind the whole burst; commit-to-delivered is measured from the "
                "outbox row's creation (same transaction as the alert) to its delivery. "
                "Receivers are Python http.server threads in the benchmark process, each "
                "verifying every signature with standardwebhooks, on the same machine as the "
                "whole stack."
            ),
        }
        path = write_result("alerts_fanout", result)
        print(path)
        for k in (
            "deliveries_per_second",
            "latency_event_to_receiver_s",
            "latency_commit_to_delivered_s",
        ):
            print(k, result[k])
    finally:
        for s in subs:
            api.delete(f"/v1/webhooks/{s}")
        # Close the benchmark's alerts: they resolve once the cool-down has passed.
        end = datetime.now(UTC)
        produce_events(
            env["KAFKA_BOOTSTRAP"],
            [event(d, kind, "end", episode_start=now, ts=end) for d in devices],
        )
        for r in receivers:
            r.close()


if __name__ == "__main__":
    main()
