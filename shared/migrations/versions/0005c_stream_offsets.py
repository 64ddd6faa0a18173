"""One offset table for every transactional consumer (the runtime, alerts), with checkpoints.

`stream_offsets` replaces `runtime_offsets` and `alert_consumer_offsets`: the next offset whose
effects are not committed, and the offset the models' checkpoint covers (replayed from there).
`runtime_state.applied_offset`: the offset after the last record a checkpointed state has seen.

Revision ID: 0005c
Revises: 0002, 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005c"
down_revision = ("0002", "0004")
branch_labels = None
depends_on = None

UP = """
CREATE TABLE stream_offsets (
    group_id          text NOT NULL,
    topic             text NOT NULL,
    partition         integer NOT NULL,
    next_offset       bigint NOT NULL,
    checkpoint_offset bigint,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition),
    CHECK (checkpoint_offset IS NULL OR checkpoint_offset <= next_offset)
);

-- Every batch used to checkpoint the models it touched: the checkpoint is the committed offset.
INSERT INTO stream_offsets (group_id, topic, partition, next_offset, checkpoint_offset)
SELECT group_id, topic, partition, next_offset, next_offset FROM runtime_offsets;
INSERT INTO stream_offsets (group_id, topic, partition, next_offset)
SELECT group_id, topic, partition, next_offset FROM alert_consumer_offsets;
DROP TABLE runtime_offsets;
DROP TABLE alert_consumer_offsets;

ALTER TABLE runtime_state ADD COLUMN applied_offset bigint;

-- Deliveries that failed after every retry, in a row: past a limit the subscription is disabled.
ALTER TABLE webhook_subscriptions ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0;
"""

DOWN = """
ALTER TABLE webhook_subscriptions DROP COLUMN consecutive_failures;
ALTER TABLE runtime_state DROP COLUMN applied_offset;
CREATE TABLE runtime_offsets (
    group_id text NOT NULL, topic text NOT NULL, partition integer NOT NULL,
    next_offset bigint NOT NULL, PRIMARY KEY (group_id, topic, partition)
);
CREATE TABLE alert_consumer_offsets (
    group_id text NOT NULL, topic text NOT NULL, partition integer NOT NULL,
    next_offset bigint NOT NULL, PRIMARY KEY (group_id, topic, partition)
);
INSERT INTO runtime_offsets SELECT group_id, topic, partition, next_offset
FROM stream_offsets WHERE checkpoint_offset IS NOT NULL;
INSERT INTO alert_consumer_offsets SELECT group_id, topic, partition, next_offset
FROM stream_offsets WHERE checkpoint_offset IS NULL;
DROP TABLE stream_offsets;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
