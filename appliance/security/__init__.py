"""Keys, signatures, sealing, credentials, agent tokens and the site CA."""
