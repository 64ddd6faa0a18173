"""Sensors a town already owns: network-server integrations, codecs, device profiles, uplinks.

- `devices.dev_eui` (LoRaWAN, 16 lower-case hex digits) or `devices.external_id` (a vendor's or
  an NB-IoT device's own id) names the device as a network server or an HTTP push does; the
  device's `profile` says how its decoded fields become TownPulse readings.
- `codecs`: TTN-format JavaScript uplink decoders (`decodeUplink(input)`), versioned: a new
  upload is a new version, never an edit, so a stored uplink can say which version decoded it.
- `device_profiles`: a mapping from decoded fields to metrics, shared by many devices.
- `integrations`: a ChirpStack v4 or The Things Stack v3 application, over MQTT (the gateway
  subscribes to the network server's broker) or HTTP (the server posts to TownPulse), or a broker
  whose devices publish their own JSON (Tasmota, Shelly: `mqtt_json`). Changes are announced on
  `townpulse_integrations` so the gateway follows them without a restart.
- `integration_status`, `integration_counts`: what the console shows (connected, last uplink,
  uplinks and errors per hour), written by the gateway.
- `heard_devices`: uplinks from a DevEUI or external id nobody registered, for "heard, not
  registered" (no device row: nothing here names a registered device).
- `device_uplinks`: one row per stored uplink: its frame counter, which codec version decoded
  it, and its radio link (RSSI, SNR, gateways): the device's link health.
- `ingest_tokens`: HTTP push tokens, per device; only a hash is kept.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NAME = r"'^[a-z0-9][a-z0-9._-]{0,63}$'"

UP = f"""
ALTER TABLE devices
    ADD COLUMN dev_eui text CHECK (dev_eui ~ '^[0-9a-f]{{16}}$'),
    ADD COLUMN external_id text CHECK (external_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{{0,127}}$'),
    ADD COLUMN profile text CHECK (profile ~ {NAME});
CREATE UNIQUE INDEX devices_dev_eui ON devices (dev_eui)
    WHERE deleted_at IS NULL AND dev_eui IS NOT NULL;
CREATE UNIQUE INDEX devices_external_id ON devices (external_id)
    WHERE deleted_at IS NULL AND external_id IS NOT NULL;

CREATE TABLE codecs (
    name        text NOT NULL CHECK (name ~ {NAME}),
    version     integer NOT NULL CHECK (version >= 1),
    script      text NOT NULL CHECK (length(script) <= 262144),
    sha256      text NOT NULL,
    -- The codec's own test vectors: [{{"f_port":..,"bytes":[..],"output":{{..}}}}, ...]
    examples    jsonb NOT NULL DEFAULT '[]'::jsonb,
    source      text NOT NULL DEFAULT 'upload',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

CREATE TABLE device_profiles (
    name        text PRIMARY KEY CHECK (name ~ {NAME}),
    domain      text NOT NULL CHECK (domain IN ('energy', 'waste', 'traffic')),
    codec       text CHECK (codec ~ {NAME}),
    definition  jsonb NOT NULL,
    shipped     boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE integrations (
    id              text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{{0,39}}$'),
    kind            text NOT NULL CHECK (kind IN ('chirpstack', 'tts', 'mqtt_json')),
    transport       text NOT NULL CHECK (transport IN ('mqtt', 'http')),
    name            text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    mqtt_host       text CHECK (length(mqtt_host) <= 253),
    mqtt_port       integer CHECK (mqtt_port BETWEEN 1 AND 65535),
    mqtt_tls        boolean NOT NULL DEFAULT false,
    mqtt_username   text CHECK (length(mqtt_username) <= 200),
    mqtt_password   text CHECK (length(mqtt_password) <= 500),
    ca_certificate  text CHECK (length(ca_certificate) <= 65536),
    topic           text CHECK (length(topic) <= 500),
    -- ChirpStack's application id, or The Things Stack's `app@tenant`: uplinks of any other
    -- application are dead-lettered.
    application     text CHECK (length(application) <= 200),
    -- mqtt_json only: the profile that maps every device's JSON.
    profile         text CHECK (profile ~ {NAME}),
    http_secret_hash bytea,
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (transport = 'http' OR mqtt_host IS NOT NULL),
    CHECK (transport = 'mqtt' OR http_secret_hash IS NOT NULL),
    CHECK (kind <> 'mqtt_json' OR (transport = 'mqtt' AND profile IS NOT NULL))
);

CREATE TABLE integration_status (
    integration_id  text PRIMARY KEY REFERENCES integrations (id) ON DELETE CASCADE,
    connected       boolean NOT NULL DEFAULT false,
    last_uplink_at  timestamptz,
    last_error      text,
    last_error_at   timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE integration_counts (
    integration_id  text NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    hour            timestamptz NOT NULL,
    uplinks         bigint NOT NULL DEFAULT 0,
    errors          bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (integration_id, hour)
);

CREATE TABLE heard_devices (
    device_key      text PRIMARY KEY CHECK (length(device_key) <= 128),
    source          text NOT NULL,
    first_heard     timestamptz NOT NULL,
    last_heard      timestamptz NOT NULL,
    uplinks         bigint NOT NULL DEFAULT 1,
    last_f_port     integer,
    last_payload    text NOT NULL DEFAULT '' CHECK (length(last_payload) <= 1024)
);
CREATE INDEX heard_devices_last ON heard_devices (last_heard DESC);

CREATE TABLE device_uplinks (
    device_id       text NOT NULL,
    ts              timestamptz NOT NULL,
    source          text NOT NULL,
    f_port          integer,
    f_cnt           bigint,
    codec           text,
    codec_version   integer,
    rssi            double precision,
    snr             double precision,
    gateways        integer,
    received_at     timestamptz NOT NULL,
    PRIMARY KEY (device_id, ts)
);

CREATE TABLE ingest_tokens (
    id          text PRIMARY KEY,
    device_id   text NOT NULL,
    token_hash  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX ingest_tokens_device ON ingest_tokens (device_id);

CREATE FUNCTION townpulse_integration_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('townpulse_integrations', COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END
$$;
CREATE TRIGGER integrations_changed AFTER INSERT OR UPDATE OR DELETE ON integrations
    FOR EACH ROW EXECUTE FUNCTION townpulse_integration_changed();
"""

DOWN = """
DROP TRIGGER integrations_changed ON integrations;
DROP FUNCTION townpulse_integration_changed();
DROP TABLE ingest_tokens, device_uplinks, heard_devices, integration_counts,
    integration_status, integrations, device_profiles, codecs;
DROP INDEX devices_dev_eui, devices_external_id;
ALTER TABLE devices DROP COLUMN dev_eui, DROP COLUMN external_id, DROP COLUMN profile;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
