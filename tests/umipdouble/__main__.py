"""``python -m umipdouble -c CONFIG [--vt-service PORT] [--ha-stand-in]`` (cwd or PYTHONPATH = tests/)."""

import sys

from .daemon import main

if __name__ == "__main__":
    sys.exit(main())
