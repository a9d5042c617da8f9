"""examples/feedback/run.py as a smoke test: the drift stream served with labels fed back, the
continuous job publishing a version trained on served traffic, and the drift falling after it.

Small settings (1000 rows a week, seven served weeks, a retrain after six): about 35 s here.
The stream is seeded and the labels are appended in order, so the figures are the same each
run; the test asserts the shape of the story, not the figures.
"""
from __future__ import annotations

import json
import subprocess
import sys

import oip

RUN = oip.ROOT / "examples" / "feedback" / "run.py"


def test_feedback_example_retrains_on_served_traffic(tmp_path):
    summary_file = tmp_path / "summary.json"
    done = subprocess.run(
        [sys.executable, str(RUN), "--swerve", oip.swerve_bin(), "--workdir", str(tmp_path / "work"),
         "--weeks", "8", "--rows-per-week", "1000", "--retrain-weeks", "6", "--window-seconds", "2",
         "--max-seconds", "150", "--json", str(summary_file)],
        capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"run.py exited {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "story: drift rose, a new version was trained on served traffic, drift fell back" in done.stdout
    summary = json.loads(summary_file.read_text())
    weeks = {w["week"]: w for w in summary["weeks"]}
    assert sorted(weeks) == list(range(1, 8))

    # v1 (week 0, the job's first round) served weeks 1-6; every label joined and reached the trainer.
    assert all(weeks[w]["version"] == "1" for w in range(1, 7))
    assert all(w["labels"] == {"joined": 1000} for w in weeks.values())
    # The drift of the week's window against v1's reference rose, with device the drifting feature.
    assert weeks[6]["drift"]["max_psi"] > weeks[1]["drift"]["max_psi"]
    assert weeks[6]["drift"]["max_feature"] == "device"
    assert all(w["drift"]["rows"] == 1000 for w in weeks.values())
    # The continuous job published v2 from the 6000 fed-back labels after week 6, and v2 served week 7...
    assert summary["story"]["published_week"] == 6 and summary["story"]["published_version"] == 2
    v2 = next(v for v in summary["versions"] if v["version"] == 2)
    assert v2["rows"] == 6000 and v2["source"] == "log 1-6000"
    assert weeks[7]["version"] == "2" and weeks[7]["served_by"] == "v2"
    # ...where the drift against its reference (recent traffic) fell, and online accuracy rose.
    assert weeks[7]["drift"]["max_psi"] < weeks[6]["drift"]["max_psi"]
    assert weeks[7]["online_accuracy_week"] > weeks[6]["online_accuracy_week"]
    # The online accuracy on /metrics is the client's own count of right answers.
    for w in weeks.values():
        assert abs(w["online_accuracy_week"] - w["client_accuracy"]) < 1e-9, w
    # v2's progressive accuracy (v1 scoring weeks 1-6 before training on them) is v1's online accuracy.
    assert abs(v2["progressive_accuracy"] - weeks[6]["online_accuracy_version"]) < 1e-6
