"""Path rules: gitignore-style patterns (`pathspec`) matched against a draft's changed paths.

Patterns follow gitignore: ``secrets/**`` is anchored at the module root, ``LICENSE`` (no
slash) matches at any depth, ``docs/`` matches everything under a ``docs`` directory, and a
later ``!pattern`` takes a path back out. A rule answers which paths match and by which
pattern, so a refusal can name both.

Speed: a promotion asks about every changed path (a thousand or more), against three rules.
Without negations a rule's patterns are joined into one regular expression with a named group
per pattern; and since a path can only match a pattern when it contains the pattern's longest
literal run (``secrets`` for ``secrets/**``, ``.pem`` for ``*.pem``), the paths of one decision
are joined into one text (`Paths`) that a substring search scans in C, and only the paths that
contain such a literal meet the expression. A pattern with no literal (``*``) meets every
path. With a negation, gitignore's order matters and pathspec decides each path (last match
wins).

    rule = PathRule(["secrets/**", "LICENSE"])
    rule.matches(Paths(["secrets/key.pem", "README.md"]))  # [("secrets/key.pem", "secrets/**")]
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence

import pathspec

__all__ = ["PathRule", "Paths"]

_DIR_MARK = "(?P<ps_d>"  # pathspec's one named group, repeated in every pattern's regex
_WILD = re.compile(r"\*+|\?|\[[^\]]*\]")


def literal_of(pattern: str) -> str | None:
    """The longest run of the glob every matching path must contain (None: none is sure)."""
    if "\\" in pattern or pattern.count("[") != pattern.count("]"):
        return None  # escapes and unbalanced brackets: do not guess
    runs = [run.strip().strip("/").strip() for run in _WILD.split(pattern.removeprefix("!"))]
    best = max(runs, key=len, default="")
    return best or None


class Paths:
    """The paths one decision asks about, joined once so every rule scans them in C."""

    __slots__ = ("_starts", "items", "text")

    def __init__(self, items: Iterable[str]) -> None:
        self.items = tuple(items)
        self.text = "\n".join(self.items)  # module paths hold no newline (names.py)
        self._starts: list[int] | None = None

    def containing(self, literal: str) -> Iterator[int]:
        """Indexes of the paths that contain `literal`."""
        text = self.text
        pos = text.find(literal)
        if pos < 0:
            return
        if self._starts is None:
            starts, at = [], 0
            for item in self.items:
                starts.append(at)
                at += len(item) + 1
            self._starts = starts
        starts = self._starts
        while pos >= 0:
            index = bisect_right(starts, pos) - 1
            yield index
            nxt = index + 1
            if nxt >= len(starts):
                return
            pos = text.find(literal, starts[nxt])


class PathRule:
    """Compiled patterns, in the order given."""

    __slots__ = ("_combined", "_literals", "_spec", "patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self._spec = pathspec.GitIgnoreSpec.from_lines(self.patterns)
        self._combined: re.Pattern[str] | None = None
        self._literals: tuple[str, ...] | None = None  # None: every path must be tried
        compiled = list(self._spec.patterns)
        if any(p.include is False for p in compiled):
            return  # a negation: pathspec decides in order
        used = [
            (i, p.regex.pattern)
            for i, p in enumerate(compiled)
            if p.include and p.regex is not None
        ]
        if not used:
            return
        parts = [f"(?P<p{i}>{regex.replace(_DIR_MARK, '(?:')})" for i, regex in used]
        self._combined = re.compile("|".join(parts))
        literals = [literal_of(self.patterns[i]) for i, _ in used]
        if all(literals):
            self._literals = tuple(sorted({lit for lit in literals if lit}))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, paths: Paths | Iterable[str]) -> list[tuple[str, str]]:
        """(path, the pattern that decided) for every path the rule matches, in input order."""
        if not self.patterns:
            return []
        batch = paths if isinstance(paths, Paths) else Paths(paths)
        items = batch.items
        if self._combined is None:
            if all(p.include is not False for p in self._spec.patterns):
                return []  # nothing to match with
            out = []
            for path in items:
                result = self._spec.check_file(path)
                if result.include and result.index is not None:
                    out.append((path, self.patterns[result.index]))
            return out
        if self._literals is None:
            candidates: Iterable[int] = range(len(items))
        else:
            candidates = sorted({i for lit in self._literals for i in batch.containing(lit)})
        match = self._combined.match
        out = []
        for index in candidates:
            found = match(items[index])
            if found is not None:
                out.append((items[index], self.patterns[int(str(found.lastgroup)[1:])]))
        return out
