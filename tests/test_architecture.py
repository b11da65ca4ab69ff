"""The package's import rules (issue 20), read from the source: no module but the command line imports `cli`, and a
method imports nothing from a peer method except the class it extends (bcl extends self_training, cluda extends dacs)."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1]/"cda_nb"

def _imports(path):
    "(module, names) of every `from ... import ...` in a file, relative imports resolved to the package."
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = path.relative_to(PKG.parent).with_suffix("").parts[:-node.level]
                mod = ".".join([*base, *([mod] if mod else [])])
            out.append((mod, [a.name for a in node.names]))
    return out

def test_only_the_command_line_imports_cli():
    users = [p.name for p in PKG.rglob("*.py") if p.name not in ("cli.py", "_modidx.py")
             and any(m == "cda_nb.cli" for m, _ in _imports(p))]
    assert users == [], f"{users} import cda_nb.cli: shared code belongs below the command line"

def test_methods_take_nothing_from_peer_methods_but_their_base_class():
    bases = {}
    for p in (PKG/"methods").glob("*.py"):
        if p.name == "__init__.py": continue
        tree = ast.parse(p.read_text())
        bases[p.stem] = {b.id for n in ast.walk(tree) if isinstance(n, ast.ClassDef) for b in n.bases if isinstance(b, ast.Name)}
    bad = []
    for p in (PKG/"methods").glob("*.py"):
        if p.name == "__init__.py": continue
        for mod, names in _imports(p):
            if mod.startswith("cda_nb.methods.") and mod.split(".")[-1] not in (p.stem, "base"):   # base: the contract
                bad += [f"{p.stem} takes {n} from {mod.split('.')[-1]}" for n in names if n not in bases[p.stem]]
    assert bad == [], bad

def test_no_method_imports_the_training_package():
    "The run's configuration imports the methods to register them; a method importing `cda_nb.training` would close a circle."
    bad = [f"{p.name} imports {m}" for p in (PKG/"methods").glob("*.py") for m, _ in _imports(p) if m.startswith("cda_nb.training")]
    assert bad == [], f"{bad}: take the contract from cda_nb.methods.base, shared pieces from the component modules"

def _module_graph():
    "{module: modules of the package it imports}, every import statement counted (inside functions too)."
    g = {}
    for p in PKG.rglob("*.py"):
        if p.name == "_modidx.py": continue
        name = ".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import): deps |= {a.name for a in node.names}
        for mod, names in _imports(p):
            deps.add(mod); deps |= {f"{mod}.{n}" for n in names}          # `from cda_nb import hrda` imports cda_nb.hrda
        g[name] = {d for d in deps if d.startswith("cda_nb.") and d != name}
    return {k: {d for d in v if d in g} for k, v in g.items()}

def test_no_import_circle():
    "The package's modules form no circle, counting imports inside functions (a late import only hides one)."
    g, state, cycles = _module_graph(), {}, []
    def visit(m, path):
        state[m] = 1
        for d in sorted(g[m]):
            if state.get(d) == 1: cycles.append(path[path.index(d):] + [d] if d in path else [m, d])
            elif not state.get(d): visit(d, path + [d])
        state[m] = 2
    for m in sorted(g):
        if not state.get(m): visit(m, [m])
    assert cycles == [], f"import circles: {cycles}"

def _context_reads(tree):
    "(line, attribute) of every read of a method's run context: `self.run.X`, a hook's `run.X`, and `t.X` where `t = self.run`."
    out = []
    is_ctx = lambda n: isinstance(n, ast.Attribute) and n.attr == "run" and isinstance(n.value, ast.Name) and n.value.id == "self"
    for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        names = {a.arg for a in fn.args.args if a.arg == "run"}
        for n in ast.walk(fn):                                       # t = self.run  /  t, h = self.run, self.hp
            if isinstance(n, ast.Assign):
                pairs = [(n.targets[0], n.value)]
                if isinstance(n.targets[0], ast.Tuple) and isinstance(n.value, ast.Tuple): pairs = list(zip(n.targets[0].elts, n.value.elts))
                names |= {t.id for t, v in pairs if isinstance(t, ast.Name) and (is_ctx(v) or (isinstance(v, ast.Name) and v.id in names))}
        for n in ast.walk(fn):
            if isinstance(n, ast.Attribute) and (is_ctx(n.value) or (isinstance(n.value, ast.Name) and n.value.id in names)):
                out.append((n.lineno, n.attr))
    return out

def test_methods_use_only_the_run_context():
    "Every attribute a method module reads of its run is an entry of `RunContext` (methods/base); anything else is the trainer's."
    from cda_nb.methods.base import RUN_CONTEXT
    bad = [f"{p.name}:{line} reads run.{a}" for p in sorted((PKG/"methods").glob("*.py")) if p.name != "__init__.py"
           for line, a in _context_reads(ast.parse(p.read_text())) if a not in RUN_CONTEXT]
    assert bad == [], bad

def test_the_context_check_catches_a_reach_past_it():
    "The static check above sees the three ways a method holds its context, and the context itself refuses at run time."
    src = """class M:
    def setup(self, run): self.run = run; run.opt
    def before_step(self, step): t, h = self.run, 1; t.dir; self.run.cfg; self.run.model
"""
    assert [a for _, a in _context_reads(ast.parse(src))] == ["opt", "dir", "cfg", "model"]
    from types import SimpleNamespace
    import pytest
    from cda_nb.methods.base import RunContext
    ctx = RunContext(SimpleNamespace(opt=None, model=1))
    assert ctx.model == 1
    with pytest.raises(AttributeError, match="run context has no 'opt'"): ctx.opt
