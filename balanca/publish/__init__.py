"""Fleet publishing: the site's readings, scale states, sealed records and transactions on an
MQTT broker (DESIGN.md, "Fleet publishing (MQTT)"; docs/fleet.md)."""
