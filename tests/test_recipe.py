"""Recipe loading: strict one-line errors, extends merging, hashing, listing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from publisher.recipe.loader import (
    DEFAULT_RECIPES_DIR,
    list_recipes,
    load_recipe,
    recipe_hash,
    recipes_dir,
)
from publisher.recipe.schema import Export
from publisher.runtime.errors import RecipeError
from publisher.runtime.runtimes import runtime_names

REPO = Path(__file__).resolve().parent.parent
INVALID = REPO / "tests" / "recipes_invalid"
VALID = REPO / "tests" / "recipes_valid"
TOP_KEYS = (
    "card, checkpoint, description, export, extends, gates, io, output, passes, precision, target"
)

# file in tests/recipes_invalid -> (file the error is reported against, "field: message")
INVALID_CASES = {
    "unknown_key_top": (None, f"colour: unknown key (expected one of: {TOP_KEYS})"),
    "unknown_key": (
        None,
        "export.bucke: unknown key "
        "(expected one of: alignment_frames, bucket, opset, output_samples, shape)",
    ),
    "name_key": (None, f"name: unknown key (expected one of: {TOP_KEYS})"),
    "section_not_mapping": (None, "export: expected a mapping, got list"),
    "description_not_string": (None, "description: expected a string, got 3"),
    "description_multiline": (None, "description: must be a single line"),
    "bucket_not_integer": (
        None,
        "export.bucket: expected an integer from 8 to 510, got 'sixty'",
    ),
    "bucket_float": (None, "export.bucket: expected an integer from 8 to 510, got 64.0"),
    "opset_bool": (None, "export.opset: expected an integer from 14 to 21, got true"),
    "wer_margin_out_of_range": (None, "gates.wer_margin: expected a number from 0 to 1, got 2"),
    "gate_out_of_range": (
        None,
        "gates.spectral_correlation: expected a number from 0 to 1, got 1.5",
    ),
    "gate_string": (None, "gates.parity_max_abs: expected a number from 0 to 1, got '0.001'"),
    "bool_yes": (
        None,
        "precision.quantize.per_channel: expected true or false, got 'yes'",
    ),
    "bad_yaml": (
        None,
        "invalid YAML at line 4, column 2: expected <block end>, but found '<block mapping start>'",
    ),
    "duplicate_key": (None, "invalid YAML at line 4, column 3: duplicate key 'opset'"),
    "top_level_list": (None, "expected a mapping of recipe fields, got list"),
    "empty": (None, "expected a mapping of recipe fields, got an empty file"),
    "missing_description": (None, "description: required field is missing"),
    "bad_choice": (
        None,
        "precision.quantize.type: expected one of 'dynamic', 'int4', 'none', 'static', got 'int9'",
    ),
    "bad_checkpoint": (
        None,
        "checkpoint: expected hub:ORG/NAME, path:DIR, onnx:FILE, recovered:NAME or "
        "synthetic:tiny|full, got 'hexgrad/Kokoro-82M'",
    ),
    "output_parent_dir": (
        None,
        "output.path: must not contain '.', '..' or empty segments, got '../model.onnx'",
    ),
    "output_not_onnx": (
        None,
        "output.path: expected a path ending in .onnx, got 'onnx/model.bin'",
    ),
    "exclude_not_list": (
        None,
        "precision.quantize.exclude: expected a list of strings, got 'conv_post'",
    ),
    "pass_bad_name": (
        None,
        "passes[1]: expected a pass name matching ^[a-z0-9-]+$, got 'Fuse_Gelu'",
    ),
    "pass_duplicate": (None, "passes: duplicate entry 'fold-constants'"),
    "bucket_without_shape": (None, "export.bucket: only allowed when export.shape is 'bucket'"),
    "shape_bucket_without_bucket": (
        None,
        "export.bucket: required when export.shape is 'bucket'",
    ),
    "alignment_below_bucket": (
        None,
        "export.alignment_frames: must be >= export.bucket (64), got 32",
    ),
    "custom_profile_without_names": (None, "io.names: required when io.profile is 'custom'"),
    "names_with_builtin_profile": (
        None,
        "io.names: only allowed when io.profile is 'custom'",
    ),
    "custom_names_missing_one": (None, "io.names.duration: required field is missing"),
    "custom_names_bad_tensor_name": (
        None,
        "io.names.input_ids: expected a tensor name matching ^[A-Za-z_][A-Za-z0-9_./:-]*$, "
        "got '1tokens'",
    ),
    "extends_missing": (None, "extends: no recipe '_nope' in tests/recipes_invalid"),
    "extends_not_name": (
        None,
        "extends: expected a recipe name in this directory, got ['_base']",
    ),
    "real_weights_speech_gate": (
        None,
        "gates.real_weights.wer_margin: unknown key "
        "(expected one of: duration_agreement, log_mel_distance, spectral_correlation)",
    ),
    "cycle_a": ("cycle_b", "extends: cycle cycle_a -> cycle_b -> cycle_a"),
    "cycle_b": ("cycle_a", "extends: cycle cycle_b -> cycle_a -> cycle_b"),
    "error_in_base": ("_bad_base", "export.opset: expected an integer from 14 to 21, got 99"),
    "error_in_child": (None, "export.opset: expected an integer from 14 to 21, got 13"),
    "weight_type_without_quantize": (
        None,
        "precision.quantize.weight_type: must be null when precision.quantize.type is 'none', "
        "got 'int8'",
    ),
    "weight_type_wrong_for_dynamic": (
        None,
        "precision.quantize.weight_type: expected one of 'int8', 'uint8' "
        "when precision.quantize.type is 'dynamic', got 'int4'",
    ),
    "block_size_48": (
        None,
        "precision.quantize.block_size: expected one of 16, 32, 64, 128, 256, got 48",
    ),
    "block_ops_without_fp16": (
        None,
        "precision.fp16.block_ops: only allowed when precision.fp16.mode is 'all' "
        "or 'decoder-only'",
    ),
    "pass_unknown": (
        None,
        "passes: unknown pass 'quantise-dynamic' (available: bucket-check, equalize-residuals, "
        "fold-snake, fp16, polyphase-upsample, quantize-dynamic, quantize-int4, "
        "quantize-static, simplify, smooth-inputs, snake-lut)",
    ),
    "fold_snake_after_quantize": (
        None,
        "passes: 'fold-snake' must come before 'quantize-static'",
    ),
    "percentile_on_dynamic": (
        None,
        "precision.quantize.output_percentile: only meaningful when "
        "precision.quantize.type is 'static'",
    ),
    "input_percentile_on_dynamic": (
        None,
        "precision.quantize.input_percentile: only meaningful when "
        "precision.quantize.type is 'static'",
    ),
    "dynamic_include_on_dynamic": (
        None,
        "precision.quantize.dynamic_include: only meaningful when "
        "precision.quantize.type is 'static'",
    ),
    "snake_lut_before_quantize": (
        None,
        "passes: 'snake-lut' must come after 'quantize-static'",
    ),
    "smooth_inputs_after_quantize": (
        None,
        "passes: 'smooth-inputs' must come before 'quantize-static'",
    ),
    "include_without_quantize": (
        None,
        "precision.quantize.include: must be empty when precision.quantize.type is 'none'",
    ),
    "pass_contradicts_precision": (
        None,
        "passes: 'quantize-static' needs precision.quantize.type 'static', got 'dynamic'",
    ),
    "precision_without_pass": (None, "precision.fp16.mode: 'all' needs 'fp16' in passes"),
    "bucket_check_on_dynamic": (None, "passes: 'bucket-check' needs export.shape 'bucket'"),
    "sherpa_on_bucket": (
        None,
        "output.sherpa_onnx: sherpa-onnx feeds exactly three inputs; a bucket graph cannot "
        "run there",
    ),
    "target_floor_unknown": (
        None,
        "target.min_onnxruntime: expected one of '1.16.3', '1.17.3', '1.20.1', got '1.15.0'",
    ),
    "target_opset_below_export": (None, "target.opset: export.opset 17 is above target.opset 16"),
    "target_known_failure_unknown_runtime": (
        None,
        "target.known_failures: unknown runtime 'onnxruntime 1.99' (runtimes: "
        + ", ".join(runtime_names())
        + ")",
    ),
    "first_error_in_file_order": (
        None,
        "gates.parity_max_abs: expected a number from 0 to 1, got 2",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_CASES))
def test_invalid_recipe_fails_with_exact_one_line_message(case: str, repo_root: Path) -> None:
    reported, message = INVALID_CASES[case]
    expected = f"tests/recipes_invalid/{reported or case}.yaml: {message}"
    with pytest.raises(RecipeError) as excinfo:
        load_recipe(f"tests/recipes_invalid/{case}.yaml")
    assert str(excinfo.value) == expected
    assert "\n" not in str(excinfo.value)


def test_every_invalid_fixture_has_an_expected_message() -> None:
    on_disk = {p.stem for p in INVALID.glob("*.yaml") if not p.name.startswith("_")}
    assert on_disk == set(INVALID_CASES)


def test_error_path_is_absolute_outside_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RecipeError) as excinfo:
        load_recipe(INVALID / "bad_choice.yaml")
    assert str(excinfo.value).startswith(f"{INVALID / 'bad_choice.yaml'}: precision.quantize.type")


def test_every_shipped_recipe_loads() -> None:
    shipped = sorted(p.stem for p in DEFAULT_RECIPES_DIR.glob("*.yaml") if p.name[0] != "_")
    assert "fp32" in shipped
    assert [r.name for r in list_recipes(DEFAULT_RECIPES_DIR)] == shipped


def test_fp32_recipe_inherits_base_defaults() -> None:
    recipe = load_recipe("fp32", DEFAULT_RECIPES_DIR)
    assert recipe.checkpoint == "hub:hexgrad/Kokoro-82M"
    assert (recipe.export.opset, recipe.export.shape) == (17, "dynamic")
    assert recipe.output.path == "onnx/model.onnx"
    assert recipe.gates.parity_max_abs == 5e-4
    assert recipe.gates.duration_agreement == 1.0
    assert "Apache-2.0" in recipe.card.notes


def test_extends_child_overrides_scalar_merges_mapping_replaces_list() -> None:
    recipe = load_recipe("child", VALID)
    assert recipe.export.opset == 18  # scalar overridden
    assert recipe.export.shape == "dynamic"  # sibling key kept from the base mapping
    assert recipe.precision.fp16.mode == "all"  # nested mapping merged
    assert recipe.precision.fp16.block_ops == ("Cast",)  # list replaced, not appended
    assert recipe.passes == ("fp16",)  # the base's [simplify, fp16] replaced
    assert (recipe.card.title, recipe.card.summary) == ("Child title", "Base summary")
    assert recipe.checkpoint == "synthetic:tiny"


def test_extends_chain_of_three_files_merges_in_order() -> None:
    recipe = load_recipe("grandchild", VALID)
    assert recipe.description == "Grandchild: a three-level extends chain"
    assert recipe.export.opset == 18
    assert recipe.checkpoint == "synthetic:tiny"
    assert recipe.output.path == "onnx/model_grandchild.onnx"


def test_recipe_name_is_file_stem_and_source_is_not_dumped() -> None:
    recipe = load_recipe(VALID / "child.yaml")
    assert recipe.name == "child"
    assert recipe.source == (VALID / "child.yaml").resolve()
    assert "source" not in recipe.model_dump()


def test_display_path_is_relative_to_working_directory(repo_root: Path) -> None:
    assert load_recipe("child", VALID).display_path == "tests/recipes_valid/child.yaml"


def test_recipe_is_frozen() -> None:
    recipe = load_recipe("child", VALID)
    with pytest.raises(ValidationError):
        recipe.description = "changed"


def test_recipe_hash_is_stable_and_ignores_source_location(tmp_path: Path) -> None:
    first, second = load_recipe("bucket", VALID), load_recipe("bucket", VALID)
    digest = recipe_hash(first)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert recipe_hash(second) == digest
    shutil.copy(VALID / "bucket.yaml", tmp_path / "bucket.yaml")
    assert recipe_hash(load_recipe(tmp_path / "bucket.yaml")) == digest


def test_recipe_hash_changes_when_a_field_changes(tmp_path: Path) -> None:
    recipe = load_recipe("bucket", VALID)
    assert recipe_hash(recipe.model_copy(update={"description": "x"})) != recipe_hash(recipe)
    text = (VALID / "bucket.yaml").read_text().replace("bucket: 64", "bucket: 128")
    (tmp_path / "bucket.yaml").write_text(text)
    assert recipe_hash(load_recipe(tmp_path / "bucket.yaml")) != recipe_hash(recipe)


def test_list_recipes_skips_underscore_bases_and_sorts_by_name() -> None:
    names = [r.name for r in list_recipes(VALID)]
    assert names == sorted(p.stem for p in VALID.glob("[!_]*.yaml"))
    assert "_base" not in names and "child" in names


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("child", ("input_ids", "style", "speed", "input_lengths", "waveform", "duration")),
        ("legacy_io", ("tokens", "style", "speed", "input_lengths", "audio", "duration")),
        ("custom_io", ("text/ids", "ref_s", "speed", "lengths", "wav", "pred_dur")),
    ],
)
def test_io_names_follow_the_profile(recipe: str, expected: tuple[str, ...]) -> None:
    names = load_recipe(recipe, VALID).io_names()
    assert list(names) == ["input_ids", "style", "speed", "input_lengths", "waveform", "duration"]
    assert tuple(names.values()) == expected


def test_missing_recipe_name_lists_available_recipes(repo_root: Path) -> None:
    with pytest.raises(RecipeError) as excinfo:
        load_recipe("nope", VALID)
    available = ", ".join(sorted(p.stem for p in VALID.glob("[!_]*.yaml")))
    assert str(excinfo.value) == (
        f"tests/recipes_valid/nope.yaml: no such recipe file (available: {available})"
    )
    with pytest.raises(RecipeError, match=r"^recipes/nope\.yaml: no such recipe file \(.*fp32"):
        load_recipe("nope", Path("recipes"))


def test_recipes_dir_can_be_overridden_by_environment(monkeypatch) -> None:
    monkeypatch.setenv("PUBLISHER_RECIPES_DIR", str(VALID))
    assert recipes_dir() == VALID
    assert load_recipe("child").source == (VALID / "child.yaml").resolve()
    monkeypatch.delenv("PUBLISHER_RECIPES_DIR")
    assert recipes_dir() == DEFAULT_RECIPES_DIR


def test_quantize_weight_and_activation_types_resolve_to_defaults() -> None:
    dynamic = load_recipe("dynamic_int8", VALID).precision.quantize
    static = load_recipe("static_qdq", VALID).precision.quantize
    int4 = load_recipe("int4", VALID).precision.quantize
    assert (dynamic.weight_type, dynamic.activation_type) == ("int8", None)
    assert (static.weight_type, static.activation_type) == ("uint8", "uint8")
    assert (int4.weight_type, int4.activation_type, int4.block_size) == ("int4", None, 64)


def test_bucket_alignment_frames_default_to_real_speech_frames_for_the_bucket() -> None:
    assert load_recipe("bucket", VALID).export.resolved_alignment_frames == 5 * 64 // 2 + 48
    assert Export(shape="bucket", bucket=64, alignment_frames=200).resolved_alignment_frames == 200
    assert Export().resolved_alignment_frames is None


def test_exponent_floats_and_integer_gates_are_numbers() -> None:
    gates = load_recipe("custom_io", VALID).gates
    assert gates.parity_max_abs == pytest.approx(1e-3)
    assert gates.duration_agreement == 1.0 and isinstance(gates.duration_agreement, float)


def test_real_weight_gates_replace_only_the_values_they_set(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        'description: "x"\ngates:\n  spectral_correlation: 0.99\n  duration_agreement: 0.9\n'
        "  real_weights:\n    spectral_correlation: 0.9\n"
    )
    gates = load_recipe(str(tmp_path / "r.yaml")).gates
    assert gates.for_weights(False).spectral_correlation == 0.99
    real = gates.for_weights(True)
    assert (real.spectral_correlation, real.duration_agreement) == (0.9, 0.9)


def test_each_pass_check_named_in_the_registry_is_a_function_of_the_passs_own_file() -> None:
    from publisher.recipe.passes import PASSES

    checked = {name: spec for name, spec in PASSES.items() if spec.check}
    assert {"fp16", "quantize-static", "bucket-check"} <= set(checked)
    for name, spec in checked.items():
        check = spec.load_check()
        assert callable(check) and check.__module__ == spec.module, name


def test_loading_a_recipe_imports_only_the_files_of_the_passes_it_lists_and_no_onnx() -> None:
    """The registry is data: loading cpu-int8 (quantize-static among its passes) imports
    quantize.py for its check, and no other pass file that has a check, nor onnx."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from publisher.recipe.loader import load_recipe\n"
        "before = set(sys.modules)\n"
        "load_recipe(sys.argv[1])\n"
        "new = sorted(m for m in set(sys.modules) - before if m.startswith('publisher.passes.'))\n"
        "heavy = [m for m in ('onnx', 'onnxruntime', 'torch') if m in sys.modules]\n"
        "print(new, heavy)\n"
    )
    seen = {}
    for recipe in ("cpu-int8", "fp16", "fp32"):
        done = subprocess.run(
            [sys.executable, "-c", code, recipe], capture_output=True, text=True, cwd=REPO
        )
        assert done.returncode == 0, done.stderr
        seen[recipe] = done.stdout.strip()
    assert "'publisher.passes.quantize'" in seen["cpu-int8"]
    assert "publisher.passes.fp16" not in seen["cpu-int8"]
    assert "'publisher.passes.fp16'" in seen["fp16"] and "quantize" not in seen["fp16"]
    assert seen["fp32"] == "[] []"  # simplify alone: no check to import
    assert all(s.endswith("[]") for s in seen.values())
