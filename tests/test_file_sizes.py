"""About 400 lines per file at most, one concept each (DESIGN.md habit 10): every Python file of the package
and of the built-in plugins stays under 400 lines."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 400


def test_every_package_and_plugin_file_is_under_400_lines() -> None:
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
        for folder in ("clipadapt", "plugins")
        for path in (ROOT / folder).rglob("*.py")
    }
    assert sizes, "no files found"
    too_long = {name: lines for name, lines in sorted(sizes.items()) if lines >= LIMIT}
    assert too_long == {}, f"split these files into one concept each (limit {LIMIT} lines): {too_long}"
