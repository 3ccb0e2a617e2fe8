"""Path rules: gitignore-style patterns (`pathspec`) matched against a draft's changed paths.

Patterns follow gitignore: ``secrets/**`` is anchored at the module root, ``LICENSE`` (no
slash) matches at any depth, ``docs/`` matches everything under a ``docs`` directory, and a
later ``!pattern`` takes a path back out. A rule answers which paths match and by which
pattern, so a refusal can name both.

Speed: a promotion asks about every changed path (a thousand or more). Without negations the
patterns are joined into one regular expression with a named group per pattern, so each path
costs one C-level match; with a negation, gitignore's order matters and pathspec decides per
path (last matching pattern wins).

    rule = PathRule(["secrets/**", "LICENSE"])
    rule.matches(["secrets/key.pem", "README.md"])   # [("secrets/key.pem", "secrets/**")]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import pathspec

__all__ = ["PathRule"]

_DIR_MARK = "(?P<ps_d>"  # pathspec's one named group, repeated in every pattern's regex


class PathRule:
    """Compiled patterns, in the order given."""

    __slots__ = ("_combined", "_spec", "patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self._spec = pathspec.GitIgnoreSpec.from_lines(self.patterns)
        self._combined: re.Pattern[str] | None = None
        compiled = list(self._spec.patterns)
        if all(p.include is not False for p in compiled):
            parts = [
                f"(?P<p{i}>{p.regex.pattern.replace(_DIR_MARK, '(?:')})"
                for i, p in enumerate(compiled)
                if p.include and p.regex is not None
            ]
            self._combined = re.compile("|".join(parts)) if parts else None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, paths: Iterable[str]) -> list[tuple[str, str]]:
        """(path, the pattern that decided) for every path the rule matches, in input order."""
        if not self.patterns:
            return []
        if self._combined is not None:
            match = self._combined.match
            out = []
            for path in paths:
                found = match(path)
                if found is not None:
                    index = int(str(found.lastgroup)[1:])
                    out.append((path, self.patterns[index]))
            return out
        if all(p.include is not False for p in self._spec.patterns):
            return []  # only comments or blanks: nothing can match
        out = []
        for path in paths:
            result = self._spec.check_file(path)
            if result.include and result.index is not None:
                out.append((path, self.patterns[result.index]))
        return out

    def first(self, paths: Iterable[str]) -> tuple[str, str] | None:
        """The first matching path and its pattern, or None."""
        found = self.matches(paths)
        return found[0] if found else None
