"""The shared kernel of the appliance: settings, keys and signing, the model
bundle format, wire schemas and the ``appliance`` command line."""

__version__ = "0.1.0"
