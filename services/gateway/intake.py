"""How many messages may wait between the MQTT connection and the routing loop.

QoS 1 messages are bounded by the broker: it sends at most `max_inflight_messages` the gateway
has not acknowledged, and the gateway acknowledges only once Kafka has a message's record, so a
slow Kafka or database slows their delivery (back-pressure) and none is ever dropped. QoS 0
messages have no acknowledgement, and the broker sends them as fast as they come: a flood of them
(a misbehaving device, a network server replaying its backlog) would grow the queue without end
while routing waits. Past `qos0_max` waiting, a QoS 0 message is dropped and counted, as its
sender accepted when it chose "at most once".
"""

from __future__ import annotations


class IntakeBound:
    """The queue's QoS 0 allowance: `admit` on arrival, `taken` when the router takes one.

    >>> bound = IntakeBound(qos0_max=2)
    >>> [bound.admit(0), bound.admit(0), bound.admit(0), bound.admit(1)]
    [True, True, False, True]
    >>> bound.taken(0); bound.admit(0)
    True
    """

    def __init__(self, *, qos0_max: int) -> None:
        self.qos0_max = qos0_max
        self.qos0_waiting = 0

    def admit(self, qos: int) -> bool:
        """Whether a message of this QoS may join the queue (QoS 1 and 2 always may)."""
        if qos > 0:
            return True
        if self.qos0_waiting >= self.qos0_max:
            return False
        self.qos0_waiting += 1
        return True

    def taken(self, qos: int) -> None:
        if qos == 0:
            self.qos0_waiting -= 1
