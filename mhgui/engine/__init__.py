"""The mhgui mobility engine: a userspace Mobile IPv6 mobile node and home agent (docs/engine-design.md)."""
