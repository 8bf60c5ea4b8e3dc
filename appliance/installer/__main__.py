"""``python -m appliance.installer``: the same as the ``appliance-build`` command."""

import sys

from appliance.installer.cli import main

sys.exit(main())
