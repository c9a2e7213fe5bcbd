"""The typed artifacts (publisher/runtime/artifacts.py): writers cannot add an undeclared
field or leave out a required one, and readers get the first wrong field on one line."""

from __future__ import annotations

import pytest

from publisher.runtime.artifacts import Cell, Gate, RepoManifest
from publisher.runtime.errors import PublisherError


def test_a_writer_cannot_add_a_field_the_type_does_not_declare():
    with pytest.raises(PublisherError, match=r"^Cell has no field colour$"):
        Cell.write(status="ok", colour="green")


def test_a_writer_that_leaves_out_a_required_field_gets_its_path():
    with pytest.raises(PublisherError, match=r"^Gate: measured: Field required$"):
        Gate.write(gate="parity_max_abs", passed=True, threshold=5e-4)


def test_a_cell_status_outside_the_four_is_refused():
    with pytest.raises(PublisherError, match=r"^Cell: status: Input should be 'ok'"):
        Cell.write(status="maybe")


def test_a_repo_manifest_with_an_escaping_variant_path_is_refused():
    entry = {"recipe": "x", "path": "../../etc/passwd"}
    with pytest.raises(PublisherError, match=r"^RepoManifest: variants\.0\.path: Value error"):
        RepoManifest.write(
            format=2,
            checkpoint={},
            synthetic=True,
            recovered=False,
            recovered_note="",
            origin="synthetic",
            voices=[],
            variants=[entry],
        )
