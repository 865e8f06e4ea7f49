"""``python -m mhgui.helper``: run the privileged helper (see :mod:`mhgui.helper.service`)."""

from mhgui.helper.service import main

raise SystemExit(main())
