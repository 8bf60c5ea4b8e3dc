"""Helpers the tests share: test models, the live site fixtures, the TUF harness."""
