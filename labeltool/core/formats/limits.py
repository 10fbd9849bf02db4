"""Parsing label files that may be hostile: YAML, JSON and XML with limits.

A label file comes from anywhere (a supplier, an old tool, a colleague's USB stick). Each parser here
refuses what would hang the import or fill the disk, with an :class:`ImportFormatError` that names
the file and says what to do:

- YAML (``data.yaml``): at most :data:`MAX_YAML_BYTES`, at most :data:`MAX_YAML_ALIASES` aliases (a
  500-byte "billion laughs" file expands to gigabytes through nested aliases), safe types only;
- JSON (COCO): at most :data:`MAX_JSON_BYTES`, nesting no deeper than Python's parser can go;
- XML (Pascal VOC): a declared encoding Python does not know, or a multi-byte one ElementTree cannot
  parse, is a problem of that one file (:class:`XmlFileError`), so the import skips it and goes on.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

from labeltool.core.errors import ImportFormatError

MAX_YAML_BYTES = 1 << 20  # a data.yaml is a few hundred bytes; 1 MiB leaves room for long name lists
MAX_YAML_ALIASES = 16  # anchors are rare in data.yaml; nested aliases are how a tiny file explodes
MAX_JSON_BYTES = 4 << 30  # COCO files of large datasets reach hundreds of MB
MAX_XML_BYTES = 16 << 20  # one Pascal VOC file per image: a few KB


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and refuses more than MAX_YAML_ALIASES."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: ANN401 (PyYAML's signature)
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise _TooManyAliases
        return super().compose_node(parent, index)


class _TooManyAliases(yaml.YAMLError):
    pass


def load_yaml(path: Path) -> Any:  # noqa: ANN401 (any YAML document)
    """The YAML document in ``path``, safely: no Python objects, bounded size and aliases."""
    size = _size(path)
    if size > MAX_YAML_BYTES:
        raise ImportFormatError(f"{path.name} is {size:,} bytes; a data.yaml is a few hundred. "
                                "Pick the dataset's data.yaml (it names the image folders and classes).")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"{path.name} is not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
    except OSError as exc:
        raise ImportFormatError(f"{path.name}: cannot be read ({exc.strerror or exc}).") from None
    loader = _LimitedLoader(text)
    try:
        return loader.get_single_data()
    except _TooManyAliases:
        raise ImportFormatError(
            f"{path.name} uses more than {MAX_YAML_ALIASES} YAML aliases (*name); a data.yaml needs none, and "
            "nested aliases can expand a small file to gigabytes. Write the values out in the file.") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ImportFormatError(
            f"{path.name}: YAML syntax error{where}: {exc.problem}. Fix the file in a text editor.") from None
    except (yaml.YAMLError, RecursionError) as exc:
        what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ImportFormatError(f"{path.name}: cannot be read as YAML ({what}).") from None
    finally:
        loader.dispose()


def load_json(path: Path) -> Any:  # noqa: ANN401 (any JSON document)
    """The JSON document in ``path``; ImportFormatError naming the file for anything unreadable."""
    size = _size(path)
    if size > MAX_JSON_BYTES:
        raise ImportFormatError(f"{path.name} is {size / 2**30:.1f} GiB, more than labeltool reads "
                                f"({MAX_JSON_BYTES / 2**30:.0f} GiB); split the dataset into parts and import each.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(
            f"{path} is not UTF-8 text (byte {exc.start}). Pick a COCO .json annotation file.") from None
    except OSError as exc:
        raise ImportFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(
            f"{path.name}: JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}. "
            "The file is damaged or not JSON; fix it in a text editor or export it again from the "
            "labeling tool."
        ) from None
    except RecursionError:
        raise ImportFormatError(
            f"{path.name}: lists or objects nested thousands deep; a COCO file nests 3 levels. The file is "
            "damaged or not an annotation file; export it again from the labeling tool.") from None


class XmlFileError(Exception):
    """One XML file cannot be read; the message says why (the caller skips that file)."""


def parse_xml(path: Path) -> ET.Element:
    """The root element of ``path``. XmlFileError for unreadable, malformed or oddly encoded files."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise XmlFileError(f"cannot read the file ({exc.strerror or exc}); skipped") from None
    if size > MAX_XML_BYTES:
        raise XmlFileError(f"{size:,} bytes, far more than an annotation file; skipped")
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        line, col = exc.position
        raise XmlFileError(f"not valid XML (line {line}, column {col + 1}); file skipped") from None
    except (LookupError, ValueError) as exc:  # unknown or multi-byte declared encoding
        raise XmlFileError(f"declares an encoding that cannot be read ({exc}); save it as UTF-8. Skipped") from None
    except RecursionError:
        raise XmlFileError("elements nested thousands deep; skipped") from None
    except OSError as exc:
        raise XmlFileError(f"cannot read the file ({exc.strerror or exc}); skipped") from None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        raise ImportFormatError(f"{path} does not exist. Pick an existing annotation file.") from None
    except OSError as exc:
        raise ImportFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
