"""The main window's "Home addresses" and "Binding table" boxes: the HoAs (or why there are none), the
daemon's binding table (HoA, home agent, CoA, BID, interface, lifetime, state) with what the daemon is,
and the last rebind's progress. The window's ``no_hoa``, ``homes_view``, ``bindings_label``,
``bindings_view`` and ``rebind_label`` are these widgets (:mod:`.window_messages` words them)."""

from __future__ import annotations

from PySide6.QtWidgets import QGroupBox, QLabel, QVBoxLayout

from ..i18n import _
from .tables import table


class BindingsPanel:
    """The two boxes (``homes_box``, ``bindings_box``) on ``controller``'s ``homes`` and ``bindings``
    models; ``no_hoa_text``: where to add a home address (shown while there is none)."""

    def __init__(self, controller, no_hoa_text: str) -> None:
        self.homes_box = QGroupBox(_("Home addresses"))
        hl = QVBoxLayout(self.homes_box)
        self.no_hoa = QLabel(no_hoa_text)
        self.no_hoa.setWordWrap(True)
        self.no_hoa.hide()
        hl.addWidget(self.no_hoa)
        self.homes_view = table(controller.homes, export_menu=False)
        hl.addWidget(self.homes_view)
        self.bindings_box = QGroupBox(_("Binding table"))
        bl = QVBoxLayout(self.bindings_box)
        self.bindings_label = QLabel(_("No mobility daemon connected. The binding table (HoA, home agent, CoA, BID, "
                                       "interface, lifetime, state) appears here when the mobility engine "
                                       "(mhgui-mn) or UMIP's mip6d is reachable."))
        self.bindings_label.setWordWrap(True)
        self.bindings_label.setObjectName("bindings")
        bl.addWidget(self.bindings_label)
        self.bindings_view = table(controller.bindings)
        self.bindings_view.hide()
        bl.addWidget(self.bindings_view)
        self.rebind_label = QLabel()
        self.rebind_label.setWordWrap(True)
        self.rebind_label.setObjectName("rebind")
        self.rebind_label.hide()
        bl.addWidget(self.rebind_label)
