"""What agents report about their models: drift statistics (never rows), alerts, history."""
