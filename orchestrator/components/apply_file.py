"""Read a declarative components file (YAML or JSON) into validated ComponentSpecs.

Shape::

    components:
      - name: api
        url: http://127.0.0.1:8080/health
        interval: 5s
        plan: web
        depends_on: [db]

Every entry is validated before anything is written: one bad entry fails the whole file.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.components.definition import ComponentSpec
from orchestrator.core.errors import InputError
from orchestrator.plans.validation import first_error

#: an apply file is configuration, not data: refuse anything absurdly large before parsing it
MAX_FILE_BYTES = 16 * 1024 * 1024


@functools.cache
def _unique_key_loader() -> type:
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one (built on first
    use: yaml is not imported by the daemon)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return loader.construct_mapping(node, deep)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return UniqueKeyLoader


def parse_text(text: str, source: str) -> Any:
    if source.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", field=source) from None
    import yaml

    try:
        return yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"invalid YAML{where}: {problem}", field=source) from None


def specs_from_data(data: Any) -> list[ComponentSpec]:
    if not isinstance(data, dict):
        raise InputError("expected a mapping with a 'components' list", field="file")
    unknown = sorted(set(data) - {"version", "components"})
    if unknown:
        raise InputError("unknown field", field=str(unknown[0]))
    if data.get("version", 1) != 1:
        raise InputError("unsupported version (expected 1)", field="version")
    entries = data.get("components")
    if not isinstance(entries, list):
        raise InputError("expected a list of components", field="components")
    specs = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InputError("expected a mapping", field=f"components[{index}]")
        try:
            specs.append(ComponentSpec(**{str(k): v for k, v in entry.items()}))
        except ValidationError as exc:
            raise first_error(exc, prefix=f"components[{index}]") from None
        except TypeError as exc:  # e.g. a non-string key
            raise InputError(str(exc), field=f"components[{index}]") from None
    return specs


def load_specs(path: str) -> list[ComponentSpec]:
    """Specs from ``path`` (``-`` is standard input)."""
    if path == "-":
        import sys

        text = sys.stdin.read(MAX_FILE_BYTES + 1)
    else:
        file = Path(path)
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                raise InputError(f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", field=path)
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(exc.strerror or str(exc), field=path) from None
        except UnicodeDecodeError:
            raise InputError("not UTF-8 text", field=path) from None
    return specs_from_data(parse_text(text, path))
