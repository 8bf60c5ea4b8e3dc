"""The ``appliance`` command line."""
