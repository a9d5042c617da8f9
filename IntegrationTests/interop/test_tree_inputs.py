"""Tree ensembles on the inputs that are not FP32 rows, and on the serving paths other than the
batcher, against onnxruntime on the same files:

- FP64 and INT64 inputs. onnxruntime compares an FP64 input in FP64 (with FP32 thresholds
  widened, or with the FP64 ones of `nodes_values_as_tensor`) and an integer input in FP32
  (rounded when past 2^24); the adversarial rows sit on every threshold and one FP64 step either side of it
  and of its FP32 rounding, where a comparison made in FP32 would take the other branch.
- Categorical inputs through the static table: a gradient-boosted model over three INT64
  categories (domains declared in config.json) and a OneHotEncoder → random forest pipeline over
  three string columns (domain derived from the graph). Every cell of the domain is answered from
  the table, byte for byte what the batcher and the cache compute, and what onnxruntime computes;
  values outside the domain are computed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import oip

onnx = pytest.importorskip("onnx")
sklearn = pytest.importorskip("sklearn")
from onnx import TensorProto, numpy_helper  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402
from skl2onnx.common.data_types import Int64TensorType, StringTensorType  # noqa: E402

PATH_STATISTICS = "/swerve.v1.ServingInsights/PathStatistics"
INT_DOMAIN = [[0, 1, 2, 3], [0, 1, 2, 3, 4], [0, 1, 2]]
STR_DOMAIN = [["mobile", "desktop", "tablet", "tv"], ["c0", "c1", "c2", "c3", "c4"], ["k0", "k1", "k2"]]
CELLS = 4 * 5 * 3
OPSETS = {"": 17, "ai.onnx.ml": 3}


def categorical_data(n: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, [4, 5, 3], size=(n, 3))
    y = ((x[:, 0] * 2 + x[:, 1] - x[:, 2] * 3 + rng.normal(0, 1.5, n)) > 3).astype(int)
    return x, y


def as_strings(x: np.ndarray) -> np.ndarray:
    return np.array([[STR_DOMAIN[j][v] for j, v in enumerate(row)] for row in x], dtype=object)


def retype_input(model, elem_type: int, double_thresholds: bool, offset: float = 0.0):
    """The model with its (only) input declared `elem_type`; with `double_thresholds` the tree's
    nodes_values become nodes_values_as_tensor FP64, each moved by `offset` relative (off the FP32
    grid, so that an FP32 comparison can differ)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.graph.input[0].type.tensor_type.elem_type = elem_type
    if double_thresholds:
        for opset in model.opset_import:
            if opset.domain == "ai.onnx.ml":
                opset.version = 3  # the *_as_tensor attributes
        for node in model.graph.node:
            if not node.op_type.startswith("TreeEnsemble"):
                continue
            attr = next(a for a in node.attribute if a.name == "nodes_values")
            values = np.array(attr.floats, dtype=np.float64)
            values = values + offset * np.abs(values)
            node.attribute.remove(attr)
            node.attribute.append(onnx.helper.make_attribute(
                "nodes_values_as_tensor", numpy_helper.from_array(values)))
    return model


def thresholds(model) -> list[tuple[int, float]]:
    """(feature, threshold as onnxruntime compares it) of every branch."""
    out = []
    for node in model.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: a for a in node.attribute}
        features = list(attrs["nodes_featureids"].ints)
        modes = list(attrs["nodes_modes"].strings)
        if "nodes_values" in attrs:
            values = [float(np.float32(v)) for v in attrs["nodes_values"].floats]
        else:
            values = numpy_helper.to_array(attrs["nodes_values_as_tensor"].t).tolist()
        out += [(f, v) for f, v, m in zip(features, values, modes) if m != b"LEAF"]
    return out


def adversarial_rows(base: np.ndarray, model, per_threshold: int = 6, seed: int = 3) -> np.ndarray:
    """Rows of `base` with one feature set on a threshold, one FP64 step either side of it, and of
    its FP32 rounding (a sample of the thresholds, bounded)."""
    rng = np.random.default_rng(seed)
    ts = thresholds(model)
    picks = rng.choice(len(ts), size=min(len(ts), 120), replace=False)
    rows = []
    for i in picks:
        f, t = ts[i]
        f32 = float(np.float32(t))
        values = [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf), f32,
                  np.nextafter(f32, -np.inf), np.nextafter(f32, np.inf)][:per_threshold]
        for v in values:
            row = base[rng.integers(len(base))].astype(np.float64).copy()
            row[f] = v
            rows.append(row)
    return np.array(rows)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{name: (onnx path, config)} written once; the server fixture serves them all."""
    from sklearn.datasets import load_diabetes, load_iris
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    base = tmp_path_factory.mktemp("tree_inputs")
    out: dict[str, tuple[Path, dict]] = {}

    def save(name, model, config):
        path = base / f"{name}.onnx"
        path.write_bytes(model.SerializeToString())
        out[name] = (path, config)

    dynamic = {"max_batch_size": 1024, "serving_mode": "dynamic"}
    x, y = load_diabetes(return_X_y=True)
    reg = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(x, y)
    reg32 = to_onnx(reg, x[:1].astype(np.float32), target_opset=OPSETS)
    save("fp64_reg", retype_input(reg32, TensorProto.DOUBLE, False), dynamic)
    save("fp64_reg_tensor", retype_input(reg32, TensorProto.DOUBLE, True, offset=3e-9), dynamic)
    xi, yi = load_iris(return_X_y=True)
    clf = RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0).fit(xi, yi)
    clf32 = to_onnx(clf, xi[:1].astype(np.float32), target_opset=OPSETS, options={"zipmap": False})
    save("fp64_clf_tensor", retype_input(clf32, TensorProto.DOUBLE, True, offset=-2e-9), dynamic)

    # Integer features past 2^24, where int64 -> FP32 rounds: onnxruntime compares integers in
    # FP32 (its regressor takes no integers, its classifier does, with FP32 thresholds only).
    rng = np.random.default_rng(5)
    xl = rng.integers(16_000_000, 17_500_000, size=(3000, 2))
    yl = (xl[:, 0] + 0.3 * xl[:, 1] + (xl[:, 1] % 7) * 100_000 > 22_300_000).astype(int)
    big = RandomForestClassifier(n_estimators=10, max_depth=8, random_state=0).fit(xl, yl)
    big32 = to_onnx(big, xl[:1].astype(np.float32), target_opset=OPSETS, options={"zipmap": False})
    save("int64_big_clf", retype_input(big32, TensorProto.INT64, False), dynamic)

    xc, yc = categorical_data()
    gb = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0).fit(xc, yc)
    gbm = to_onnx(gb, initial_types=[("X", Int64TensorType([None, 3]))], options={"zipmap": False}, target_opset=OPSETS)
    domains = {"static_table": {"domains": {"X": INT_DOMAIN}}}
    save("cat_int_static", gbm, {"max_batch_size": 1024, "serving_mode": "static", **domains})
    save("cat_int_cached", gbm, {"max_batch_size": 1024, "serving_mode": "cached", **domains})
    save("cat_int_dynamic", gbm, dynamic)
    pipe = make_pipeline(OneHotEncoder(handle_unknown="ignore"),
                         RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0)).fit(as_strings(xc), yc)
    pm = to_onnx(pipe, initial_types=[("X", StringTensorType([None, 3]))],
                 options={id(pipe.steps[-1][1]): {"zipmap": False}}, target_opset=OPSETS)
    save("cat_str_static", pm, {"max_batch_size": 1024, "serving_mode": "static"})
    save("cat_str_dynamic", pm, dynamic)
    return out


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    base = tmp_path_factory.mktemp("tree_inputs_server")
    repo = base / "repository"
    for name, (path, config) in models.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.onnx").write_bytes(path.read_bytes())
        (repo / name / "config.json").write_text(json.dumps(config))
    srv = oip.Server(repo, base / "swerve.log")
    srv.start(wait_for=list(models))
    yield srv
    srv.stop()


@pytest.mark.parametrize("name, dtype", [("fp64_reg", np.float64), ("fp64_reg_tensor", np.float64),
                                         ("fp64_clf_tensor", np.float64), ("int64_big_clf", np.int64)])
def test_wide_inputs_compare_as_onnxruntime_compares(models, server, name, dtype):
    path, _ = models[name]
    model = onnx.load(str(path))
    input_name = model.graph.input[0].name
    if dtype == np.int64:
        rng = np.random.default_rng(11)
        ts = thresholds(model)
        # On every threshold's integers: the two around it, and those around its FP32 rounding.
        rows = []
        for f, t in ts[:200]:
            for v in {int(np.floor(t)), int(np.ceil(t)), int(np.float32(t)), int(np.float32(t)) + 1, int(np.float32(t)) - 1}:
                row = rng.integers(16_000_000, 17_500_000, size=2)
                row[f] = v
                rows.append(row)
        x = np.array(rows, dtype=np.int64)
        narrowed = x.astype(np.float32).astype(np.float64).astype(np.int64)
    else:
        from sklearn.datasets import load_diabetes, load_iris
        data = (load_iris if "clf" in name else load_diabetes)(return_X_y=True)[0]
        x = np.concatenate([data[:50], adversarial_rows(data, model)]).astype(np.float64)
        narrowed = x.astype(np.float32).astype(np.float64)
    want = oip.ort_run(path, {input_name: x})
    # The rows discriminate between the two ways of comparing: onnxruntime answers differently
    # once they are rounded to FP32 — or, for integers against FP32 thresholds (which onnxruntime
    # compares in FP32), when the same thresholds are compared in FP64.
    if name == "int64_big_clf":
        other_path = path.with_name(name + "_as_fp64.onnx")
        other_path.write_bytes(retype_input(model, TensorProto.DOUBLE, False).SerializeToString())
        other = oip.ort_run(other_path, {input_name: x.astype(np.float64)})
    else:
        other = oip.ort_run(path, {input_name: narrowed})
    score = [k for k, v in want.items() if np.issubdtype(v.dtype, np.floating)][0]
    assert not np.array_equal(want[score], other[score]), f"{name}: no row tells the two comparisons apart"
    stub = server.stub(server.channel())
    labels = [k for k, v in want.items() if not np.issubdtype(v.dtype, np.floating)]
    for lo, hi in [(0, len(x)), (0, 1), (5, 12), (len(x) - 3, len(x))]:
        got = oip.infer(stub, name, {input_name: x[lo:hi]}, timeout=60)
        oip.assert_matches(got, {k: v[lo:hi] for k, v in want.items()}, exact=labels, context=f"{name} rows {lo}:{hi}: ")


def path_stats(server, name: str):
    call = server.channel().unary_unary(
        PATH_STATISTICS, request_serializer=oip.spb.PathStatisticsRequest.SerializeToString,
        response_deserializer=oip.spb.PathStatisticsResponse.FromString)
    resp = call(oip.spb.PathStatisticsRequest(name=name), timeout=30)
    return {m.name: m for m in resp.models}[name]


def every_cell() -> np.ndarray:
    return np.array(np.meshgrid(*INT_DOMAIN, indexing="ij")).reshape(3, -1).T.astype(np.int64)


def test_int64_categories_answer_from_the_static_table(models, server):
    stub = server.stub(server.channel())
    cells = every_cell()
    assert len(cells) == CELLS
    want = oip.ort_run(models["cat_int_static"][0], {"X": cells})
    before = path_stats(server, "cat_int_static")
    assert (before.mode, before.active_path, before.table_cells) == ("static", "static", CELLS), before
    # Every cell in one request and one by one: the table, the cache and the batcher say the same
    # bytes, and onnxruntime's values.
    whole = {n: stub.ModelInfer(oip.make_request(n, {"X": cells}), timeout=30)
             for n in ("cat_int_static", "cat_int_cached", "cat_int_dynamic")}
    assert oip.raw_answer(whole["cat_int_static"]) == oip.raw_answer(whole["cat_int_dynamic"]) == oip.raw_answer(whole["cat_int_cached"])
    oip.assert_matches(oip.decode_response(whole["cat_int_static"]), want, exact=["label"])
    for i in range(CELLS):
        one = {n: oip.raw_answer(stub.ModelInfer(oip.make_request(n, {"X": cells[i:i + 1]}), timeout=30))
               for n in ("cat_int_static", "cat_int_cached", "cat_int_dynamic")}
        assert one["cat_int_static"] == one["cat_int_dynamic"] == one["cat_int_cached"], f"cell {cells[i]}"
    after = path_stats(server, "cat_int_static")
    assert after.table_lookups - before.table_lookups == CELLS + 1, (before.table_lookups, after.table_lookups)
    assert after.table_fallbacks == before.table_fallbacks
    # Outside the declared domain: computed, as onnxruntime computes it.
    outside = np.array([[7, 0, 0], [0, -1, 2], [3, 4, 99], [-5, 9, 3]], dtype=np.int64)
    got = oip.infer(stub, "cat_int_static", {"X": outside}, timeout=30)
    oip.assert_matches(got, oip.ort_run(models["cat_int_static"][0], {"X": outside}), exact=["label"])
    assert path_stats(server, "cat_int_static").table_fallbacks == after.table_fallbacks + 1


def test_string_categories_get_a_table_derived_from_the_graph(models, server):
    stub = server.stub(server.channel())
    cells = as_strings(every_cell())
    stats = path_stats(server, "cat_str_static")
    assert (stats.mode, stats.active_path, stats.table_cells) == ("static", "static", CELLS), stats
    table = stub.ModelInfer(oip.bytes_request("cat_str_static", "X", cells), timeout=30)
    computed = stub.ModelInfer(oip.bytes_request("cat_str_dynamic", "X", cells), timeout=30)
    assert oip.raw_answer(table) == oip.raw_answer(computed)
    want = oip.ort_run(models["cat_str_static"][0], {"X": cells})
    oip.assert_matches(oip.decode_response(table), want, exact=["label"])
    # Unseen categories (OneHotEncoder's handle_unknown="ignore": all-zero columns) are computed.
    unseen = np.array([["phone", "c1", "k0"], ["tv", "", "k9"], ["MOBILE", "c4", "k2"]], dtype=object)
    got = oip.decode_response(stub.ModelInfer(oip.bytes_request("cat_str_static", "X", unseen), timeout=30))
    oip.assert_matches(got, oip.ort_run(models["cat_str_static"][0], {"X": unseen}), exact=["label"])
