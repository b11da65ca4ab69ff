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

def test_no_method_imports_the_trainer():
    "The trainer imports the methods to register them; a method importing the trainer would close a circle."
    bad = [p.name for p in (PKG/"methods").glob("*.py") if any(m.startswith("cda_nb.trainers") for m, _ in _imports(p))]
    assert bad == [], f"{bad} import cda_nb.trainers: take the contract from cda_nb.methods.base"
