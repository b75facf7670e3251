"""The route handlers' dependency on the app's adapters, declared the way Litestar 3
requires: by name, not inferred from a parameter that matches no path or query."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency

from services.bootstrap import Services

ServicesDep: TypeAlias = NamedDependency[Services]
