"""Unit tests for wddm_conformance.driver.load_driver: every bad --driver is a one-line DriverLoadError."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wddm_conformance.driver import DDI_METHODS, REGISTRY, DriverSpec, Miniport, load_driver
from wddm_conformance.errors import DriverLoadError
from wddm_conformance.reference import CommandEncoder, EmulatedGpu, ReferenceMiniport

# This module, however pytest imported it (rootdir-relative or package-qualified).
HERE = __name__


class Incomplete:
    """Looks like a driver but lacks render and patch."""

    def __init__(self) -> None:
        pass


for _name in DDI_METHODS:
    if _name not in ("render", "patch"):
        setattr(Incomplete, _name, lambda self, *a: 0)


class NotCallableRender(ReferenceMiniport):
    render = None  # type: ignore[assignment]


class ExplodingConstructor(ReferenceMiniport):
    def __init__(self) -> None:
        raise RuntimeError("adapter on fire")


class MultiLineConstructorError(ReferenceMiniport):
    def __init__(self) -> None:
        raise RuntimeError("first line\nsecond line")


class BadEncoderString(ReferenceMiniport):
    COMMAND_ENCODER = "no_such_module_xyz:Encoder"


class BadGpuValue(ReferenceMiniport):
    GPU_MODEL = 42


class CustomCompanions(ReferenceMiniport):
    COMMAND_ENCODER = CommandEncoder
    GPU_MODEL = "wddm_conformance.reference.gpu:EmulatedGpu"


def load_error(spec: str) -> str:
    with pytest.raises(DriverLoadError) as info:
        load_driver(spec)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.strip() == message
    return message


_counter = itertools.count()


@pytest.fixture
def tmp_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Write a uniquely named module on sys.path; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def make(source: str) -> str:
        name = f"_wddm_loader_tmp_{next(_counter)}"
        (tmp_path / f"{name}.py").write_text(source)
        names.append(name)
        return name

    yield make
    for name in names:
        sys.modules.pop(name, None)


# --------------------------------------------------------------------------- the spec string


@pytest.mark.parametrize("spec", ["nocolon", ":X", "wddm_conformance.reference:", ""])
def test_spec_without_module_and_class_is_rejected(spec: str) -> None:
    message = load_error(spec)
    assert repr(spec) in message
    assert "expected 'module:Class'" in message


def test_a_wrong_driver_names_every_form_and_built_in_driver() -> None:
    """A newcomer's wrong ``--driver`` said only "expected 'module:Class'": not the registry
    names nor native libraries. Still one line."""
    message = load_error("nosuch")
    assert "'module:Class', 'native:PATH' (a path to a native library)" in message
    assert message.endswith(f"or one of: {', '.join(REGISTRY)}")
    assert {"reference", "reference-c"} <= set(REGISTRY)


@pytest.mark.parametrize(
    ("spec", "meant"),
    [
        ("referense", "reference"),
        ("reference_c", "reference-c"),
        ("/opt/drv/libdrv.so", "native:/opt/drv/libdrv.so"),
        ("libdrv.dll", "native:libdrv.dll"),
    ],
)
def test_a_wrong_driver_close_to_a_form_says_which(spec: str, meant: str) -> None:
    assert load_error(spec).endswith(f"; did you mean {meant!r}?")


def test_a_companion_spec_is_not_offered_the_registry(tmp_module: Callable[[str], str]) -> None:
    name = tmp_module(
        "from wddm_conformance.reference.miniport import ReferenceMiniport\n"
        "class Driver(ReferenceMiniport):\n"
        "    COMMAND_ENCODER = 'nocolon'\n"
    )
    message = load_error(f"{name}:Driver")
    assert message.endswith("expected 'module:Class'") and "reference-c" not in message


def test_missing_module_names_the_module() -> None:
    message = load_error("no_such_module_xyz:X")
    assert "cannot import module 'no_such_module_xyz'" in message
    assert "ModuleNotFoundError" in message


def test_module_raising_on_import_names_the_exception(tmp_module: Callable[[str], str]) -> None:
    name = tmp_module("raise ImportError('needs libgpu')\n")
    message = load_error(f"{name}:Driver")
    assert f"cannot import module {name!r}" in message
    assert "ImportError: needs libgpu" in message


def test_module_with_syntax_error_is_one_line(tmp_module: Callable[[str], str]) -> None:
    name = tmp_module("def broken(:\n    pass\n")
    message = load_error(f"{name}:Driver")
    assert "SyntaxError" in message


def test_missing_class_names_module_and_attribute() -> None:
    message = load_error("wddm_conformance.reference:Nope")
    assert "module 'wddm_conformance.reference' has no attribute 'Nope'" in message


def test_missing_nested_attribute_is_rejected() -> None:
    message = load_error("wddm_conformance.reference:ReferenceMiniport.Nope")
    assert "no attribute 'ReferenceMiniport.Nope'" in message


def test_not_a_class_is_rejected() -> None:
    message = load_error("wddm_conformance.reference.isa:TABLE")
    assert "'TABLE' is not a class" in message


def test_function_is_not_a_class() -> None:
    message = load_error("wddm_conformance.reference.isa:encode")
    assert "'encode' is not a class" in message


# --------------------------------------------------------------------------- the class


def test_class_missing_ddi_methods_lists_each_with_wdk_name() -> None:
    message = load_error(f"{HERE}:Incomplete")
    assert "Incomplete is not a display miniport" in message
    assert "render (DxgkDdiRender)" in message
    assert "patch (DxgkDdiPatch)" in message
    assert "start_device" not in message
    assert "submit_command" not in message


def test_class_missing_ddi_methods_from_module_on_sys_path(
    tmp_module: Callable[[str], str],
) -> None:
    name = tmp_module("class Driver:\n    def start_device(self, info):\n        return 0\n")
    message = load_error(f"{name}:Driver")
    assert "missing DDI method(s)" in message
    for method, ddi in DDI_METHODS.items():
        if method != "start_device":
            assert f"{method} ({ddi})" in message
    assert "start_device (" not in message


def test_non_callable_ddi_attribute_counts_as_missing() -> None:
    message = load_error(f"{HERE}:NotCallableRender")
    assert "render (DxgkDdiRender)" in message
    assert "patch (" not in message


def test_every_ddi_method_has_a_wdk_name() -> None:
    assert len(DDI_METHODS) == 15
    assert all(ddi.startswith("DxgkDdi") for ddi in DDI_METHODS.values())


# --------------------------------------------------------------------------- success paths and companions


def test_registry_name_reference_resolves_to_reference_miniport() -> None:
    assert REGISTRY["reference"] == "wddm_conformance.reference:ReferenceMiniport"
    spec = load_driver("reference")
    assert spec.spec == "reference"
    assert spec.cls is ReferenceMiniport
    assert spec.encoder_cls is CommandEncoder
    assert spec.gpu_cls is EmulatedGpu


def test_module_class_spec_loads_and_instantiates() -> None:
    spec = load_driver("wddm_conformance.reference.miniport:ReferenceMiniport")
    assert spec.cls is ReferenceMiniport
    driver = spec.instantiate()
    assert isinstance(driver, ReferenceMiniport)
    assert isinstance(driver, Miniport)
    assert isinstance(spec.encoder(), CommandEncoder)


def test_companions_may_be_classes_or_strings() -> None:
    spec = load_driver(f"{HERE}:CustomCompanions")
    assert spec.encoder_cls is CommandEncoder
    assert spec.gpu_cls is EmulatedGpu


def test_bad_companion_string_is_one_line_error_naming_the_attribute() -> None:
    message = load_error(f"{HERE}:BadEncoderString")
    assert "COMMAND_ENCODER" in message
    assert "no_such_module_xyz" in message


def test_bad_companion_value_is_one_line_error() -> None:
    message = load_error(f"{HERE}:BadGpuValue")
    assert "invalid GPU_MODEL" in message
    assert "42" in message


def test_instantiate_constructor_raising_is_one_line_driver_load_error() -> None:
    spec = load_driver(f"{HERE}:ExplodingConstructor")
    with pytest.raises(DriverLoadError) as info:
        spec.instantiate()
    message = str(info.value)
    assert "\n" not in message
    assert "ExplodingConstructor()" in message
    assert "RuntimeError: adapter on fire" in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_driver_spec_instantiate_directly() -> None:
    spec = DriverSpec("x:Y", ExplodingConstructor, CommandEncoder, EmulatedGpu)
    with pytest.raises(DriverLoadError, match=r"invalid --driver 'x:Y'"):
        spec.instantiate()


def test_instantiate_error_is_one_line_even_for_multi_line_exception() -> None:
    # Regression: the exception text was interpolated verbatim, newlines included.
    spec = load_driver(f"{HERE}:MultiLineConstructorError")
    with pytest.raises(DriverLoadError) as info:
        spec.instantiate()
    message = str(info.value)
    assert "\n" not in message
    assert "RuntimeError: first line second line" in message


def test_import_error_is_one_line_even_for_multi_line_exception(
    tmp_module: Callable[[str], str],
) -> None:
    # Regression: the import exception text was interpolated verbatim, newlines included.
    name = tmp_module("raise ImportError('DLL load failed\\nIMPORTANT: read this advice')\n")
    message = load_error(f"{name}:Driver")
    assert "ImportError: DLL load failed IMPORTANT: read this advice" in message
