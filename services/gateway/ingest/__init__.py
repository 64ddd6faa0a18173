"""Every way a reading reaches the gateway, one module per format, behind one interface.

TownPulse's own JSON and SenML (`native`, `senml`), ChirpStack v4 and The Things Stack v3 uplink
events (`chirpstack`, `tts`), devices' own JSON (`mapped`: Tasmota, Shelly), vendors' codecs run
in a sandbox (`codec`), and the device profiles that turn decoded fields into readings
(`profile`). The formats are pure: bytes in, an `Uplink` or readings out, or a `Rejection`.
"""
