"""The app's route declarations: built with warnings as errors, so a parameter
Litestar would have to infer (deprecated, gone in Litestar 3) fails here."""

from __future__ import annotations

import functools
import warnings
from typing import Any

from services import config
from services.http.app import create_app


@functools.cache
def _schema() -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return create_app(config.load({})).openapi_schema.to_schema()


def _parameters(path: str, method: str = "get") -> dict[str, tuple[str, bool]]:
    operation = _schema()["paths"][path][method]
    return {p["name"]: (p["in"], p.get("required", False))
            for p in operation.get("parameters", [])}


def test_path_parameters_are_declared_as_path_parameters() -> None:
    assert _parameters("/v1/timelines/pair/{a}/{b}")["a"] == ("path", True)
    assert _parameters("/v1/entities/{ident}")["ident"] == ("path", True)


def test_optional_query_parameters_stay_optional() -> None:
    event = _parameters("/v1/events")
    assert {name: event[name] for name in ("source", "id", "as_of")} == {
        name: ("query", False) for name in ("source", "id", "as_of")}
    assert _parameters("/v1/audit/replay", "post")["promote"] == ("query", False)


def test_the_services_dependency_is_not_a_parameter() -> None:
    assert "services" not in _parameters("/v1/audit/log")
    assert set(_parameters("/v1/audit/log")) == {"partition", "after", "limit"}
