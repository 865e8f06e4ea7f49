"""The error a D-Bus service of mhgui's sends back (the privileged helper's
:class:`~mhgui.helper.service.HelperFailure`, the engine's :class:`~mhgui.engine.ha_setting.ControlFailure`).
Pure: no D-Bus library, so that a check raising it can run anywhere."""

from __future__ import annotations

__all__ = ["ServiceFailure"]


class ServiceFailure(Exception):
    """Reported to the caller as the D-Bus error ``name`` with ``message``; a ``name`` without a dot is
    short for :attr:`error_prefix` + ``name`` (each service's subclass sets its own prefix)."""

    #: ``<the service's interface>.Error.``
    error_prefix = ""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name if "." in name else self.error_prefix + name
        self.message = message

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"
