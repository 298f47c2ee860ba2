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
from typing import Any

from pydantic import ValidationError

from orchestrator.components.definition import ComponentSpec
from orchestrator.core.config_text import MAX_DEPTH, MAX_INT_DIGITS, check_tree, decode_json, read_capped
from orchestrator.core.errors import InputError, first_line
from orchestrator.core.validation import first_error

#: an apply file is configuration, not data: refuse anything absurdly large before parsing it
MAX_FILE_BYTES = 16 * 1024 * 1024


@functools.cache
def _unique_key_loader() -> type:
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one, and numbers of
    more than MAX_INT_DIGITS digits (built on first use: the daemon never imports yaml)."""
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

    def integer(loader: UniqueKeyLoader, node: yaml.ScalarNode) -> int:
        # PyYAML would hand a 5000-digit number to int() and fail with a ValueError.
        if len(str(node.value).lstrip("+-").replace("_", "")) > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(None, None, f"number too large (at most {MAX_INT_DIGITS} "
                                                    "digits)", node.start_mark)
        return yaml.SafeLoader.construct_yaml_int(loader, node)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", integer)
    return UniqueKeyLoader


def parse_text(text: str, source: str) -> Any:
    """Decode an apply file (JSON when named .json, else YAML), checked like a plan file: no key twice,
    bounded nesting and numbers; InputError with the line (YAML) or the path otherwise."""
    if source.endswith(".json"):
        return decode_json(text, source)
    import yaml

    try:
        data = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise InputError(f"invalid YAML{where}: {problem}", field=source) from None
    except RecursionError:
        raise InputError(f"nested deeper than {MAX_DEPTH} levels", field=source) from None
    check_tree(data, source)
    return data


def specs_from_data(data: Any) -> list[ComponentSpec]:
    if not isinstance(data, dict):
        raise InputError("expected a mapping with a 'components' list", field="file")
    unknown = sorted(set(data) - {"version", "components", "status_pages"})
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


def pages_from_data(data: Any) -> list[Any]:
    """The file's ``status_pages`` (a list of ``{name, title, groups: {GROUP: [component, ...]}}``),
    validated; [] when it declares none."""
    from orchestrator.components.statuspages import page_from_data

    entries = data.get("status_pages", []) if isinstance(data, dict) else []
    if not isinstance(entries, list):
        raise InputError("expected a list of status pages", field="status_pages")
    return [page_from_data(entry, f"status_pages[{index}]") for index, entry in enumerate(entries)]


def load_file(path: str) -> tuple[list[ComponentSpec], list[Any]]:
    """Component specs and status page specs from ``path``, all validated before anything is written."""
    data = _read(path)
    return specs_from_data(data), pages_from_data(data)


def load_specs(path: str) -> list[ComponentSpec]:
    """Specs from ``path`` (``-`` is standard input)."""
    return specs_from_data(_read(path))


def _read(path: str) -> Any:
    if path == "-":
        import sys

        text = sys.stdin.read(MAX_FILE_BYTES + 1)
        if len(text) > MAX_FILE_BYTES:
            raise InputError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", field=path)
    else:
        text = read_capped(path, MAX_FILE_BYTES, "apply file")
    return parse_text(text, path)
