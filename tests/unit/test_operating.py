"""The knob in the user's units: calibration tables, their file and message forms, and the precedence."""
import json
from pathlib import Path

import pytest

from tagrouter.core.limits import InvalidRequest
from tagrouter.core.operating import Calibration, KnobRequest, NoCalibration, OperatingPoint, check_request, resolve
from tagrouter.core.weights import Weights, WeightsError
from tagrouter.data import __file__ as data_init
from tagrouter.offline.operating_points import recommend

STARTER = Path(data_init).parent / "starter_weights.json"
POINTS = (OperatingPoint(0.0, 0.0, 100.0, 100.0), OperatingPoint(0.1, 0.0, 80.0, 99.0),
          OperatingPoint(0.2, 0.0, 50.0, 90.0), OperatingPoint(0.3, 0.0, 20.0, 60.0))
TABLE = Calibration(POINTS, POINTS[1], "test")
OLD_STARTER_VERSION = "054bc47efba3a187"  # the starter weights (issue 16 vocabulary) hashed without their calibration


def test_point_for_a_cost_cap_and_a_quality_floor():
    assert TABLE.point_for(max_cost_pct=50) == POINTS[2]
    assert TABLE.point_for(max_cost_pct=79.9) == POINTS[2]
    assert TABLE.point_for(max_cost_pct=5) == POINTS[3]  # none within: the cheapest
    assert TABLE.point_for(min_quality_pct=95) == POINTS[1]
    assert TABLE.point_for(min_quality_pct=0) == POINTS[3]


def test_recommend_is_the_cheapest_within_one_point_of_the_best_model():
    # best AR 0.5: one point is 0.49, i.e. 98% of it
    assert recommend(list(POINTS), 0.5) == POINTS[1]
    assert recommend(list(POINTS), 0.5, slack=0.0) == POINTS[0]


def test_precedence_request_then_percent_then_environment_then_recommended():
    assert resolve(KnobRequest(cost_weight=0.5), 0.1, None, TABLE).source == "request"
    assert resolve(KnobRequest(quality_margin=0.2), 0.1, None, TABLE).cost_weight == 0.1
    applied = resolve(KnobRequest(max_cost_pct=50), 0.1, None, TABLE)
    assert (applied.source, applied.cost_weight, applied.point) == ("max_cost_pct", 0.2, POINTS[2])
    assert resolve(KnobRequest(), 0.0, None, TABLE).source == "environment"
    assert resolve(KnobRequest(), None, None, TABLE).cost_weight == 0.1
    assert resolve(KnobRequest(), None, None, None).source == "none"
    with pytest.raises(NoCalibration, match="max_cost_pct needs weights with a calibration"):
        resolve(KnobRequest(max_cost_pct=50), None, None, None)


@pytest.mark.parametrize("knob, message", [
    (KnobRequest(max_cost_pct=0), r"max_cost_pct must be a percentage in \(0, 100\]"),
    (KnobRequest(max_cost_pct=101), "max_cost_pct must be a percentage"),
    (KnobRequest(min_quality_pct=float("nan")), r"min_quality_pct must be a percentage in \[0, 100\]"),
    (KnobRequest(min_quality_pct=-1), "min_quality_pct must be a percentage"),
    (KnobRequest(cost_weight=0.1, max_cost_pct=50), "set one knob, not cost_weight and max_cost_pct"),
    (KnobRequest(quality_margin=0.1, min_quality_pct=50), "set one knob, not quality_margin and min_quality_pct"),
    (KnobRequest(max_cost_pct=50, min_quality_pct=50), "set one knob, not max_cost_pct and min_quality_pct"),
    (KnobRequest(cost_weight=-1), "cost_weight must be a finite number >= 0"),
])
def test_bad_knobs_are_refused_with_the_field_named(knob, message):
    with pytest.raises(InvalidRequest, match=message):
        check_request(knob)


def test_starter_weights_carry_a_calibration_that_survives_file_and_message():
    weights = Weights.load(STARTER)
    assert weights.calibration is not None and len(weights.calibration.points) > 20
    assert "selection rows" in weights.calibration.rule
    back = Weights.from_proto(weights.to_proto())
    assert back.calibration == weights.calibration and back.version == weights.version


def test_weights_written_before_the_calibration_still_load_with_their_version(tmp_path):
    doc = json.loads(STARTER.read_text())
    del doc["calibration"]
    doc["version"] = OLD_STARTER_VERSION
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    weights = Weights.load(path)
    assert weights.calibration is None
    assert weights.version == OLD_STARTER_VERSION == weights.content_hash()  # the hash of files without one is as before
    assert Weights.from_proto(weights.to_proto()).calibration is None


def test_a_broken_calibration_is_refused_before_loading(tmp_path):
    doc = json.loads(STARTER.read_text())
    doc["calibration"]["points"][0][2] = float("inf")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(WeightsError, match="calibration: cost_pct must be finite"):
        Weights.load(path)


def test_the_readme_operating_point_table_is_the_starter_weights():
    """README's table of the starter weights' knob (cost_weight, selection-row cost and accept rate)
    is what the committed weights carry: refitting them without `tagrouter operating-points` fails here."""
    readme = (Path(data_init).parents[2] / "README.md").read_text()
    calibration = Weights.load(STARTER).calibration
    starts = ("| default (recommended)", "| `--max-cost-pct")
    rows = {cells[0]: cells[1:] for line in readme.splitlines() if line.startswith(starts)
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    wanted = {"default (recommended)": calibration.recommended}
    wanted.update({f"`--max-cost-pct {pct}`": calibration.point_for(max_cost_pct=pct) for pct in (30, 50, 80)})
    assert set(rows) == set(wanted)
    for knob, point in wanted.items():
        cost_weight, selection = rows[knob][:2]
        assert cost_weight == f"{point.cost_weight:.3f}", knob
        assert selection == f"{point.cost_pct:.1f} / {point.quality_pct:.1f}", knob


def test_tags_md_quotes_the_recommended_point_of_the_heads_starter_weights():
    from tagrouter.data import HEADS_STARTER_WEIGHTS_FILE

    point = Weights.load(HEADS_STARTER_WEIGHTS_FILE).calibration.recommended
    tags_md = " ".join((Path(data_init).parents[2] / "docs" / "TAGS.md").read_text().split())
    assert f"recommend a point at {point.cost_pct:.1f}% of the priciest model's cost" in tags_md
