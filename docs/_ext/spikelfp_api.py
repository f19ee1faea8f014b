"""Generate the API reference from the package itself, so that moving code between modules never breaks it.

At ``builder-inited`` this walks ``spikelfp`` (every importable module whose dotted path has no component
starting with ``_``) and writes one reST page per module into ``docs/api/generated/``:

- a module's public names are its ``__all__`` (without ``__all__``: the classes and functions it defines
  whose names do not start with ``_``); ``spikelfp`` itself lists its ``__all__``;
- every object is documented in full (autodoc, numpydoc, and so numpydoc's validation) exactly once, at
  its *canonical* public path: ``spikelfp.<name>`` when the top level exports it, else the shallowest
  public module that lists it (ties: alphabetical). Its other public paths get a short entry that says
  "alias of" and links there, so that every public path still has its own anchor and inventory entry;
- names that are modules link to their module's page.

It also fails the build (a warning, and the build runs with ``-W``) for a cross-reference into
``spikelfp`` that resolves to nothing, such as ``:class:`spikelfp.train.Trainer``` after the class moved
without its docstrings being updated. Without intersphinx (no network at build time) references to
torch, numpy and the standard library stay plain text, so those are not checked.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import shutil
import types
from pathlib import Path

from docstring_patches import PATCHES
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

PACKAGE = "spikelfp"


def _is_public_path(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def public_modules(package: str = PACKAGE) -> list[types.ModuleType]:
    """The package and all its public submodules, imported; shallow first, then alphabetical."""
    root = importlib.import_module(package)
    found = {package: root}
    for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        if not _is_public_path(info.name):
            continue
        found[info.name] = importlib.import_module(info.name)
    # modules reached only as attributes (e.g. a lazily imported one listed in __all__)
    for name in getattr(root, "__all__", ()):
        full = f"{package}.{name}"
        if full not in found and _is_public_path(full):
            try:
                found[full] = importlib.import_module(full)
            except ImportError:
                continue
    return [found[n] for n in sorted(found, key=lambda n: (n.count("."), n))]


def public_names(module: types.ModuleType) -> list[str]:
    """``__all__``, or the public classes and functions the module defines."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return sorted(
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", None) == module.__name__
    )


def _resolve(module: types.ModuleType, name: str):
    if name in vars(module):
        return vars(module)[name]
    return getattr(module, name)  # a lazy module attribute (module __getattr__)


def _kind(obj) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "function"
    return "data"


def _key(obj) -> int | None:
    """Identity of an object that can be documented once (None: plain values, documented per path)."""
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return id(obj)
    return None


def _signature(obj) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


def _title(text: str, char: str = "=") -> list[str]:
    return [text, char * len(text), ""]


def _summary(module: types.ModuleType, name: str, obj) -> str:
    """The first paragraph of the docstring (of a value: its ``#:`` comment, not its type's docstring)."""
    if _kind(obj) == "data":
        doc = "\n".join(_comment_doc(module, name))
    else:
        doc = inspect.getdoc(obj) or ""
    return _escape_lone_strong(doc.strip().split("\n\n")[0].replace("\n", " ").strip())


def build_pages(out: Path) -> dict[str, list[str]]:
    """Write one page per public module into ``out``; return ``{module: [documented names]}``."""
    modules = public_modules()
    canonical: dict[int, str] = {}
    # first pass: the canonical public path of every class and function
    for module in modules:
        for name in public_names(module):
            obj = _resolve(module, name)
            key = _key(obj)
            if key is not None and key not in canonical:
                canonical[key] = f"{module.__name__}.{name}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    listing: dict[str, list[str]] = {}
    for module in modules:
        mod = module.__name__
        names = public_names(module)
        listing[mod] = names
        lines = _title(f"``{mod}``")
        lines += [f".. py:module:: {mod}", ""]
        doc = inspect.getdoc(module)
        if doc:
            lines += [f".. automodule:: {mod}", "   :no-members:", "   :no-index:", ""]
        submodules = [m.__name__ for m in modules if m.__name__.rsplit(".", 1)[0] == mod]
        members = [(n, _resolve(module, n)) for n in names]
        objects = [(n, o) for n, o in members if _kind(o) != "module"]
        linked_modules = sorted(
            {f"{mod}.{n}" if o.__name__ != f"{mod}.{n}" else o.__name__ for n, o in members if _kind(o) == "module"}
            | set(submodules)
        )
        if objects:
            lines += _title("Summary", "-")
            lines += [".. list-table::", "   :widths: 35 65", ""]
            for n, o in objects:
                key = _key(o)
                target = canonical.get(key, f"{mod}.{n}") if key is not None else f"{mod}.{n}"
                lines += [f"   * - :py:obj:`{n} <{target}>`", f"     - {_escape(_summary(module, n, o))}"]
            lines.append("")
        if linked_modules:
            lines += _title("Modules", "-")
            for m in linked_modules:
                lines.append(f"- :py:mod:`{m}`")
            lines.append("")
        if objects:
            lines += _title("Reference", "-")
        for n, o in objects:
            full = f"{mod}.{n}"
            kind = _kind(o)
            key = _key(o)
            if key is not None and canonical[key] != full:
                directive = {"class": "py:class", "exception": "py:exception", "function": "py:function"}[kind]
                sig = "" if kind != "function" else _signature(o)
                lines += [f".. {directive}:: {n}{sig}", f"   :module: {mod}", ""]
                lines += [f"   Alias of :py:obj:`{canonical[key]}`.", ""]
            elif kind in ("class", "exception"):
                lines += [f".. auto{kind}:: {full}", "   :members:", "   :show-inheritance:", ""]
            elif kind == "function":
                lines += [f".. autofunction:: {full}", ""]
            else:
                lines += [f".. autodata:: {full}", "   :no-value:", ""]
                if not _has_comment_doc(module, n):
                    lines += [f"   ``{type(o).__name__}`` value.", ""]
        (out / f"{mod}.rst").write_text("\n".join(lines) + "\n", encoding="utf-8")
    index = [*_title("Modules"), ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {m.__name__}" for m in modules]
    (out / "index.rst").write_text("\n".join(index) + "\n", encoding="utf-8")
    return listing


def _comment_doc(module: types.ModuleType, name: str) -> list[str]:
    """The ``#:`` doc comment of a module-level value (autodoc shows it), or []."""
    from sphinx.pycode import ModuleAnalyzer

    try:
        analyzer = ModuleAnalyzer.for_module(module.__name__)
        analyzer.analyze()
    except Exception:  # no source: no comment
        return []
    return [line for line in analyzer.attr_docs.get(("", name), []) if line]


def _has_comment_doc(module: types.ModuleType, name: str) -> bool:
    return bool(_comment_doc(module, name))


_LONE_STRONG = re.compile(r"(?<![\\`*])\*\*(?=\w)")


def _escape_lone_strong(line: str) -> str:
    """Escape ``**name`` on a line with no closing ``**`` (``f(x, **options)``), which reST reads as the start
    of bold text and rejects; a line with paired ``**bold**`` is left as it is."""
    if line.count("**") % 2 == 1 and "``" not in line:
        return _LONE_STRONG.sub(r"\\*\\*", line)
    return line


def _process_docstring(app, what, name, obj, options, lines) -> None:
    if not name.startswith(PACKAGE):
        return
    patches = PATCHES.get(name)
    if patches:
        text = "\n".join(lines)
        for old, new in patches:
            if old not in text:
                logger.warning(f"docs/_ext/docstring_patches.py: the patch for {name} no longer applies; remove it")
                continue
            text = text.replace(old, new)
        lines[:] = text.split("\n")
    lines[:] = [_escape_lone_strong(line) for line in lines]


def _process_bases(app, name, obj, options, bases: list) -> None:
    """Show public bases only: a private base (``_Batches``) is replaced by its own bases, recursively."""

    def public(base) -> list:
        module = getattr(base, "__module__", "") or ""
        private = base.__name__.startswith("_") or not _is_public_path(module)
        if module.startswith(PACKAGE) and private:
            return [b for parent in base.__bases__ for b in public(parent)]
        return [base]

    resolved = []
    for base in bases:
        for b in public(base) if inspect.isclass(base) else [base]:
            if b not in resolved and b is not object:
                resolved.append(b)
    bases[:] = resolved or [object]


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _generate(app: Sphinx) -> None:
    out = Path(app.srcdir) / "api" / "generated"
    listing = build_pages(out)
    app.env.spikelfp_public_names = listing  # checked in _check_entries
    total = sum(len(v) for v in listing.values())
    logger.info(f"[spikelfp_api] {len(listing)} module pages, {total} public names")


def _check_reference(app: Sphinx, env, node, contnode):
    """Warn for a reference into spikelfp that resolves to nothing (the build runs with -W)."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "").lstrip("~.")
    if target in app.config.spikelfp_known_unresolved:
        return None
    if target.startswith(PACKAGE + ".") or target == PACKAGE:
        logger.warning(
            f"unresolved reference into {PACKAGE}: {target!r} (role :{node.get('reftype')}:)",
            location=node,
            type="spikelfp",
            subtype="ref",
        )
    return None


def _check_entries(app: Sphinx, env) -> None:
    """Every public name (``{module}.{name}``) must have an entry in the Python domain: warn otherwise."""
    listing = getattr(env, "spikelfp_public_names", {})
    domain = env.get_domain("py")
    known = set(domain.objects) | set(domain.modules)
    for module, names in listing.items():
        for name in names:
            if f"{module}.{name}" not in known:
                logger.warning(f"public name {module}.{name} has no entry in the API reference", type="spikelfp")


def setup(app: Sphinx) -> dict:
    app.add_config_value("spikelfp_known_unresolved", set(), "env")
    app.connect("builder-inited", _generate)
    app.connect("autodoc-process-docstring", _process_docstring, priority=400)  # before numpydoc (500)
    app.connect("autodoc-process-bases", _process_bases)
    app.connect("missing-reference", _check_reference, priority=900)
    app.connect("env-check-consistency", _check_entries)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
