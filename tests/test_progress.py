"""Progress bars on long steps: shown to a person, quiet in logs (publisher/progress.py)."""

from __future__ import annotations

from publisher.progress import progress


def test_a_bar_counts_items_when_shown(monkeypatch, capsys):
    monkeypatch.setenv("PUBLISHER_PROGRESS", "1")
    assert list(progress(["a", "b", "c"], "speech set")) == ["a", "b", "c"]
    err = capsys.readouterr().err
    assert "speech set" in err and "0/3 [" in err  # the total known, time left shown


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv("PUBLISHER_PROGRESS", raising=False)  # pytest's stderr is no tty
    assert list(progress(range(4), "verify", total=4)) == [0, 1, 2, 3]
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("PUBLISHER_PROGRESS", "0")
    assert list(progress(iter("xy"), "bench")) == ["x", "y"]
    assert capsys.readouterr().err == ""
