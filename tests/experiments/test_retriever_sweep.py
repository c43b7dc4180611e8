"""The retriever sweep serves each setting with a zero action on protocol (a) and cold splits;
a setting it does not know is refused with its name."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.retriever_sweep import Args, main
from tests.experiments.test_offline_ranking import _write_1m


@pytest.mark.slow
def test_sweep_reports_every_variant_beside_ease_and_most_popular(tmp_path: Path) -> None:
    data = _write_1m(tmp_path / "ml-1m")
    out = main(Args(data=data, variants=["default", "w_als=0"], cold_seeds=[0]))
    for block in ("a", "cold seed 0"):
        models = [r["model"] for r in out[block]]  # type: ignore[index]
        assert models == ["most-popular", "ease", "blend default", "blend w_als=0"]
        for r in out[block]:  # type: ignore[attr-defined]
            assert 0.0 <= r["precision"] <= 1.0


def test_an_unknown_setting_is_refused(tmp_path: Path) -> None:
    data = _write_1m(tmp_path / "ml-1m")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['w_bogus'\]"):
        main(Args(data=data, variants=["w_bogus=1"], cold_seeds=[]))
