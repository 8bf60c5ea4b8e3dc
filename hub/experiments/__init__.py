"""A/B experiments: variants, sticky cohorts and the statistics that decide them."""
