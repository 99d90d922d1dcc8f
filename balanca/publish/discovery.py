"""Home Assistant MQTT discovery (`--mqtt-discovery`): a weight sensor and a state sensor per
scale, available while the site's `status` says `online`.

Home Assistant's weight sensors take kg, g, mg, µg, oz, lb and st, and no tonne: a scale that
weighs in tonnes (`t`) is shown in kg, one in short tons (`tn`) in lb, converted by the
sensor's template; a unit Home Assistant has no name for is shown as it is, as a plain number
sensor without the weight device class.
"""

from __future__ import annotations

from typing import Any

from balanca import __version__

DISCOVERY_PREFIX = "homeassistant"
HA_UNITS = {"kg": ("kg", 1), "g": ("g", 1), "lb": ("lb", 1), "oz": ("oz", 1)}
"""A scale's unit → Home Assistant's weight unit and the factor to it."""
CONVERTED = {"t": ("kg", 1000), "tn": ("lb", 2000)}
STATES = ["waiting", "live", "stale", "disconnected"]


def weight_config(
    prefix: str, site: str, scale: str, unit: str, stale_after: float
) -> tuple[str, dict[str, Any]]:
    """The discovery topic and config of `scale`'s weight sensor, in `unit` as it weighs."""
    ha_unit, factor = HA_UNITS.get(unit) or CONVERTED.get(unit) or (unit, 1)
    value = "value_json.weight" if factor == 1 else f"(value_json.weight | float * {factor})"
    config = {
        **_common(prefix, site, scale, "weight"),
        "name": "Weight",
        "state_topic": f"{prefix}/{site}/{scale}/weight",
        "value_template": f"{{{{ {value} if value_json.weight is not none else none }}}}",
        "unit_of_measurement": ha_unit,
        "state_class": "measurement",
        "expire_after": max(1, round(stale_after)),
    }
    if unit in HA_UNITS or unit in CONVERTED:
        config["device_class"] = "weight"
    return _topic(site, scale, "weight"), config


def state_config(prefix: str, site: str, scale: str) -> tuple[str, dict[str, Any]]:
    """The discovery topic and config of `scale`'s state sensor (waiting, live, stale,
    disconnected)."""
    config = {
        **_common(prefix, site, scale, "state"),
        "name": "State",
        "state_topic": f"{prefix}/{site}/{scale}/status",
        "value_template": "{{ value_json.state }}",
        "device_class": "enum",
        "options": STATES,
    }
    return _topic(site, scale, "state"), config


def _topic(site: str, scale: str, sensor: str) -> str:
    return f"{DISCOVERY_PREFIX}/sensor/balanca-{site}/{scale}_{sensor}/config"


def _common(prefix: str, site: str, scale: str, sensor: str) -> dict[str, Any]:
    return {
        "unique_id": f"balanca-{site}-{scale}-{sensor}",
        "availability_topic": f"{prefix}/{site}/status",
        "availability_template": "{{ value_json.state }}",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [f"balanca-{site}-{scale}"],
            "name": f"{site} {scale}",
            "manufacturer": "balanca",
            "model": "weighing scale",
            "sw_version": __version__,
        },
    }
