#!/usr/bin/env python3
"""Import cycles between the modules of a Rust crate.

Usage: scripts/module-cycles.py [--strict] [SRC_DIR]

SRC_DIR is the crate's `src/` (default `crates/tether/src`, else `src`).
Every file is mapped to its module (`lib.rs` the root, `a.rs` and
`a/mod.rs` the module `a`, `a/b.rs` the module `a::b`; `bin/` is left out).
The paths a file names (`use` lines, and `crate::...`, `super::...`,
`self::...` paths in code) are resolved to the module that defines what they
name, following re-exports (`pub use socket::Socket` in `sio/mod.rs` makes
`crate::sio::Socket` a use of `sio::socket`). An edge joins two modules when
one names the other; edges are compared at every level: among the top-level
modules, and among the children of every module (`sio::*`, `store::*`...).
A use of a module by its own parent or child is no edge, and neither is
anything named inside a `#[cfg(test)]` module (tests may use any module).

Prints every cycle found (one strongly connected group at a time, with the
lines that make each edge) and exits 1 when there is one, else 0. The
groups listed in KNOWN below are printed too but tolerated (exit 0) as long
as they do not grow; `--strict` tolerates none.
Python 3, standard library only.
"""

from __future__ import annotations

import os
import re
import sys
from collections import defaultdict

Module = tuple  # of str: () is the crate root

# Cycles known and tolerated for now; any other cycle, or one of these with
# more modules in it, fails. `Socket` holds its namespace and the namespace
# its sockets, and the public API goes both ways (`Socket::to` gives a
# `BroadcastOperator`, `BroadcastOperator::sockets` gives sockets): breaking
# it needs a trait between the two, or one module.
KNOWN = [
    {"sio::namespace", "sio::socket"},
]


# --------------------------------------------------------------------------
# Reading a file


def strip_code(text: str) -> str:
    """The text with comments, string and char literals blanked (newlines
    kept, so that line numbers stay)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if c == "/" and nxt == "*":
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        raw = re.match(r'(b?r)(#*)"', text[i:i + 260]) if c in "rb" else None
        if raw and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + raw.group(2)
            j = text.find(end, i + len(raw.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        if c == '"' or (c == "b" and nxt == '"'):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        if c == "'":
            # A char literal ('a', '\n', '\u{1F600}'), not a lifetime ('a).
            lit = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:i + 12])
            if lit:
                out.append(" " * len(lit.group(0)))
                i += len(lit.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def split_use_tree(tree: str) -> list[tuple[list[str], str | None]]:
    """`a::{b, c::d as e, self}` -> [(['a','b'], None), (['a','c','d'], 'e'),
    (['a'], None)]: each imported path and its alias."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+", "@", tree))
    results: list[tuple[list[str], str | None]] = []

    def parse(s: str, prefix: list[str]) -> None:
        # s is one use tree (no top-level comma); `@` stands for ` as `.
        brace = s.find("{")
        if brace < 0:
            path, _, alias = s.partition("@")
            segs = [p for p in path.split("::") if p]
            if segs and segs[-1] == "self":
                segs = segs[:-1]
            results.append((prefix + segs, alias or None))
            return
        head = s[:brace].rstrip(":")
        body = s[brace + 1 : s.rfind("}")]
        base = prefix + [p for p in head.split("::") if p]
        for part in split_top(body):
            if part:
                parse(part, base)

    for part in split_top(tree):
        if part:
            parse(part, [])
    return results


def split_top(s: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


USE_RE = re.compile(r"\buse\s+([^;]+);")
PATH_RE = re.compile(r"(?<![\w:$])((?:crate|super|self)(?:\s*::\s*[A-Za-z_][A-Za-z0-9_]*)+)")
INLINE_MOD_RE = re.compile(r"\bmod\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{")


class FileInfo:
    def __init__(self, path: str, module: Module):
        self.path = path
        self.module = module
        # name -> (scope module, path segments): the file's own `use` items
        # (its top level only), for resolving re-exports.
        self.aliases: dict[str, tuple[Module, list[str]]] = {}
        self.globs: list[tuple[Module, list[str]]] = []
        # (scope module, path segments, line): every path the file names.
        self.refs: list[tuple[Module, list[str], int]] = []


def scan(path: str, module: Module) -> FileInfo:
    info = FileInfo(path, module)
    with open(path, encoding="utf-8") as f:
        text = strip_code(f.read())
    line_starts = [0]
    for m in re.finditer("\n", text):
        line_starts.append(m.end())

    def line_of(pos: int) -> int:
        lo, hi = 0, len(line_starts)
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if line_starts[mid] <= pos:
                lo = mid
            else:
                hi = mid
        return lo + 1

    # Inline modules (`mod tests { ... }`): the scope of every position.
    # Those under `#[cfg(test)]` are left out: tests may use any module.
    scopes: list[tuple[int, int, Module]] = []
    tests: list[tuple[int, int]] = []
    for m in INLINE_MOD_RE.finditer(text):
        before = text[max(0, m.start() - 200):m.start()]
        is_test = re.search(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?$", before)
        depth, j = 1, m.end()
        while j < len(text) and depth:
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
            j += 1
        scopes.append((m.start(), j, m.group(1)))
        if is_test:
            tests.append((m.start(), j))

    def in_test(pos: int) -> bool:
        return any(a <= pos < b for a, b in tests)

    def scope_at(pos: int) -> tuple[Module, bool]:
        inner = [s for s in scopes if s[0] <= pos < s[1]]
        inner.sort(key=lambda s: s[0])
        return module + tuple(s[2] for s in inner), not inner

    used = []
    for m in USE_RE.finditer(text):
        if in_test(m.start()):
            continue
        scope, top = scope_at(m.start())
        line = line_of(m.start())
        for segs, alias in split_use_tree(m.group(1)):
            if not segs:
                continue
            if segs[-1] == "*":
                info.refs.append((scope, segs[:-1], line))
                if top:
                    info.globs.append((scope, segs[:-1]))
                continue
            info.refs.append((scope, segs, line))
            if top:
                info.aliases[alias or segs[-1]] = (scope, segs)
        used.append((m.start(), m.end()))
    for m in PATH_RE.finditer(text):
        if any(a <= m.start() < b for a, b in used) or in_test(m.start()):
            continue
        segs = [s.strip() for s in m.group(1).split("::")]
        scope, _ = scope_at(m.start())
        info.refs.append((scope, segs, line_of(m.start())))
    return info


# --------------------------------------------------------------------------
# The crate


def module_of(rel: str) -> Module | None:
    parts = rel.replace(os.sep, "/").split("/")
    if parts[0] == "bin" or not parts[-1].endswith(".rs"):
        return None
    name = parts[-1][:-3]
    if len(parts) == 1 and name in ("lib", "main"):
        return ()
    if name == "mod":
        return tuple(parts[:-1])
    return tuple(parts[:-1]) + (name,)


class Crate:
    def __init__(self, root: str):
        self.files: dict[Module, FileInfo] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                module = module_of(os.path.relpath(full, root))
                if module is None or module in self.files:
                    continue
                self.files[module] = scan(full, module)
        self.modules = set(self.files)

    def start(self, scope: Module, segs: list[str]) -> tuple[Module, list[str]] | None:
        """Where a path begins: (module, remaining segments), or None for a
        path outside the crate."""
        if not segs:
            return None
        if segs[0] == "crate":
            return (), segs[1:]
        if segs[0] in ("super", "self"):
            cur = scope
            i = 0
            while i < len(segs) and segs[i] in ("super", "self"):
                if segs[i] == "super":
                    cur = cur[:-1]
                i += 1
            return cur, segs[i:]
        # Relative: a child module, or an alias of the scope's file.
        owner = self.file_module(scope)
        if scope + (segs[0],) in self.modules:
            return scope, segs
        if owner is not None and segs[0] in self.files[owner].aliases and owner == scope:
            return scope, segs
        return None

    def file_module(self, scope: Module) -> Module | None:
        while scope not in self.files:
            if not scope:
                return None
            scope = scope[:-1]
        return scope

    def resolve(self, scope: Module, segs: list[str], depth: int = 0) -> Module | None:
        """The module defining what `segs`, named in `scope`, names."""
        key = (scope, tuple(segs))
        memo = self.__dict__.setdefault("_resolved", {})
        if key in memo:
            return memo[key]
        # A path being resolved further up names itself again (two glob
        # imports of each other's modules): no answer along this way.
        memo[key] = None
        found = self._resolve(scope, segs, depth)
        memo[key] = found
        return found

    def _resolve(self, scope: Module, segs: list[str], depth: int) -> Module | None:
        begun = self.start(scope, segs)
        if begun is None or depth > 32:
            return None
        cur, rest = begun
        cur = self.file_module(cur) if cur not in self.modules else cur
        if cur is None:
            return None
        while rest:
            head = rest[0]
            if cur + (head,) in self.modules:
                cur, rest = cur + (head,), rest[1:]
                continue
            alias = self.files[cur].aliases.get(head)
            if alias is not None:
                a_scope, a_segs = alias
                return self.resolve(a_scope, a_segs + rest[1:], depth + 1)
            for g_scope, g_segs in self.files[cur].globs:
                found = self.resolve(g_scope, g_segs + rest, depth + 1)
                if found is not None and found != cur:
                    return found
            return cur
        return cur


# --------------------------------------------------------------------------
# Cycles


def sccs(nodes, edges):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            out.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def a_cycle(group, edges):
    """One cycle through the group's first node (breadth-first, shortest)."""
    start = group[0]
    members = set(group)
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return group


def name(module: Module) -> str:
    return "::".join(module) if module else "crate"


def main(argv: list[str]) -> int:
    strict = "--strict" in argv[1:]
    args = [a for a in argv[1:] if a != "--strict"]
    if args and args[0].startswith("-"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    if args:
        root = args[0]
    else:
        root = "crates/tether/src" if os.path.isdir("crates/tether/src") else "src"
    if not os.path.isdir(root):
        print(f"module-cycles: no directory {root}", file=sys.stderr)
        return 2
    crate = Crate(root)
    # level (the parent) -> child -> child -> [(file, line)]
    levels: dict[Module, dict[str, dict[str, list]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for module, info in sorted(crate.files.items()):
        for scope, segs, line in info.refs:
            target = crate.resolve(scope, segs)
            if target is None or target == module:
                continue
            k = 0
            while k < min(len(module), len(target)) and module[k] == target[k]:
                k += 1
            if k == len(module) or k == len(target):
                continue  # an ancestor or a descendant
            where = (os.path.relpath(info.path, root), line, "::".join(segs))
            levels[module[:k]][module[k]][target[k]].append(where)
    found = tolerated = 0
    for parent in sorted(levels):
        edges = levels[parent]
        nodes = set(edges) | {w for v in edges.values() for w in v}
        for group in sccs(nodes, edges):
            if len(group) < 2:
                continue
            prefix = "" if not parent else name(parent) + "::"
            known = not strict and any({prefix + m for m in group} <= k for k in KNOWN)
            if known:
                tolerated += 1
            else:
                found += 1
            cycle = a_cycle(group, edges)
            print(("known cycle (tolerated, see KNOWN)" if known else "cycle")
                  + f" among {name(parent)}'s modules: "
                  + " -> ".join(prefix + m for m in cycle))
            for v in group:
                for w in sorted(edges.get(v, ())):
                    if w in group:
                        file, line, path = edges[v][w][0]
                        more = len(edges[v][w]) - 1
                        extra = f" (+{more} more)" if more else ""
                        print(f"  {prefix}{v} -> {prefix}{w}: {file}:{line} {path}{extra}")
    if found:
        print(f"{found} cycle(s)")
        return 1
    known = f", {tolerated} known one(s) tolerated" if tolerated else ""
    print(f"no new module cycles in {root} ({len(crate.files)} files{known})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
