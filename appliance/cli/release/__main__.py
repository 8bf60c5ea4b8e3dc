"""``python -m appliance.cli.release``: the same as the ``appliance-build`` command."""

import sys

from appliance.cli.release.cli import main

sys.exit(main())
