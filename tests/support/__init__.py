"""Test support: helpers the tests import (never collected as tests)."""
