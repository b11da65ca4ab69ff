# Input bounds and data (issue 23): YAML bombs, the 16-bit PNG decoder, declared image sizes, val/test images of
# two sizes, MiniCity cache damage, split names. Exec'd inside reports/robustness.py (uses `case`, `Ctx`, its imports).
#     python reports/robustness.py --only inputs
import struct as _st, zlib as _zl
from PIL import Image as _Image
from cda_nb.cli import read_yaml_config, load_run_config, load_yaml
from cda_nb.experiments import load_experiments
from cda_nb.data import Cityscapes, SYNTHIA, read_synthia_label, write_synthia_label, read_image, class_presence
import cda_nb.minicity as _mc

_in_SIG = b'\x89PNG\r\n\x1a\n'
_in_TINY_MC = dict(seed=0, progress=False, n_source=4, n_train=3, n_val=2, n_test=2)
_in_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))

def _in_chunk(t, b): return _st.pack('>I', len(b)) + t + b + _st.pack('>I', _zl.crc32(t + b) & 0xffffffff)

def _in_png(path, w, h, depth=8, ctype=2, idat=None, order="hdr"):
    "A PNG file declaring `w`x`h` with the given IDAT payload (zlib data); `order='data'` puts IDAT first."
    hdr = _in_chunk(b'IHDR', _st.pack('>IIBBBBB', w, h, depth, ctype, 0, 0, 0))
    dat = _in_chunk(b'IDAT', _zl.compress(bytes(1000)) if idat is None else idat)
    body = {"hdr": hdr + dat, "data": dat + hdr, "nohdr": _in_chunk(b"tEXt", b"k\x00v")}[order]
    Path(path).write_bytes(_in_SIG + body + _in_chunk(b'IEND', b''))

def _in_zeros_z(n):
    z, step = _zl.compressobj(9), bytes(1 << 20)
    return b''.join(z.compress(step[:min(1 << 20, n - k)]) for k in range(0, n, 1 << 20)) + z.flush()

def _in_nested(text, key="model_kwargs"):
    return f"{key}:\n" + "".join("  k" + l + "\n" for l in text.splitlines())

def _in_exit(fn):
    "Run a CLI entry point; its exit is a `CDAError` with what it printed."
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try: return fn()
        except SystemExit as e: raise CDAError(f"exit {e.code}: {err.getvalue().strip()}")

def _in_files(c, split, kind="leftImg8bit"): return sorted((c.data/"cityscapes"/kind/split).rglob("*.png"))

def _in_add_test_split(c):
    "A labelled `test` split (a copy of val), so the run evaluates it."
    for kind in ("leftImg8bit", "gtFine"): shutil.copytree(c.data/"cityscapes"/kind/"val", c.data/"cityscapes"/kind/"test")

class _in_Cache:
    "`CDA_NB_CACHE` at a fresh folder of the case while the block runs."
    def __init__(self, c): self.dir = c.tmp/"cache"
    def __enter__(self):
        self.old = os.environ.get("CDA_NB_CACHE"); os.environ["CDA_NB_CACHE"] = str(self.dir); return self.dir
    def __exit__(self, *a):
        if self.old is None: os.environ.pop("CDA_NB_CACHE", None)
        else: os.environ["CDA_NB_CACHE"] = self.old

# ---------------------------------------------------------------- YAML
@case("inputs", "YAML: config file with nine levels of aliases (billion laughs, ~400 bytes)", ("refused", "YAML aliases are not supported"))
def _(c):
    p = c.tmp/"c.yaml"; p.write_text(_in_nested(_in_BOMB) + "tag: *i\n"); load_run_config(p)

@case("inputs", "YAML: one alias of a mapping (model_kwargs: *k)", ("refused", "write the value out in full"))
def _(c):
    p = c.tmp/"c.yaml"; p.write_text("x: &k {pretrained: null}\nmodel_kwargs: *k\n"); load_run_config(p)

@case("inputs", "YAML: merge key `<<: *base`", ("refused", "YAML aliases are not supported (*base"))
def _(c):
    p = c.tmp/"c.yaml"; p.write_text("method_params: &base {tau: 0.1}\nmodel_kwargs:\n  <<: *base\n"); load_run_config(p)

@case("inputs", "YAML: the alias bomb in a `base:` file (named, not the child)", ("refused", "_base/net.yaml: YAML aliases"))
def _(c):
    (c.tmp/"_base").mkdir(); (c.tmp/"_base/net.yaml").write_text(_in_nested(_in_BOMB))
    p = c.tmp/"c.yaml"; p.write_text("base: _base/net.yaml\nmethod: source_only\n"); read_yaml_config(p)

@case("inputs", "YAML: alias inside a key=value override (tag=[&a x, *a])", ("refused", "the value '[&a x, *a]'"))
def _(c): load_run_config(None, ["tag=[&a x, *a]"])

@case("inputs", "YAML: cda-train CONFIG with an alias bomb (--dry-run)", ("refused", "exit 2"))
def _(c):
    p = c.tmp/"c.yaml"; p.write_text(_in_nested(_in_BOMB, "method_params") + "method: bcl\n")
    _in_exit(lambda: run_cli_train([str(p), "--dry-run"]))

@case("inputs", "YAML: cda-eval --model_kwargs with an alias", ("refused", "--model_kwargs: YAML aliases"))
def _(c):
    _in_exit(lambda: run_cli_eval(["--released", str(c.tmp/"x.pth"), "--data_root", str(c.data), "--model_kwargs", "{a: &a [1, 2], b: *a}"]))

@case("inputs", "YAML: experiments file with an alias bomb", ("refused", "exp.yaml: YAML aliases are not supported"))
def _(c):
    p = c.tmp/"exp.yaml"; p.write_text(_in_nested(_in_BOMB, "train") + "runs: []\n"); load_experiments(p)

@case("inputs", "YAML: config file of 6 MiB (refused before it is read)", ("refused", "more than the 4 MiB"))
def _(c):
    p = c.tmp/"c.yaml"; p.write_text("# padding\n" * (600 << 10)); load_run_config(p)

@case("inputs", "YAML: experiments file of 6 MiB", ("refused", "exp.yaml: 6144000 bytes, more than the 4 MiB"))
def _(c):
    p = c.tmp/"exp.yaml"; p.write_text("# padding\n" * (600 << 10)); load_experiments(p)

@case("inputs", "YAML: an anchor without alias, and 1e-3 (still read)", ("ok", None))
def _(c):
    p = c.tmp/"c.yaml"; p.write_text("method: &m source_only\nlr: 1e-3\n"); cfg = load_run_config(p)
    assert (cfg.method, cfg.lr) == ("source_only", 1e-3); return f"method={cfg.method}, lr={cfg.lr}"

@case("inputs", "YAML: the shipped experiments file (no aliases) reads as before", ("ok", None))
def _(c): return f"{len(load_experiments(ROOT/'experiments/minicity.yaml').runs())} runs"

# ---------------------------------------------------------------- the 16-bit PNG decoder (SYNTHIA labels)
@case("inputs", "16-bit label: 64x32 header, IDAT inflating to 256 MiB (zip bomb)", ("refused", "decompresses to more than the 12320 bytes"))
def _(c):
    p = c.tmp/"0000000.png"; _in_png(p, 64, 32, 16, 2, _in_zeros_z(256 << 20)); read_synthia_label(p)

@case("inputs", "16-bit label: declares 100000x100000", ("refused", "the header declares 100000x100000"))
def _(c): p = c.tmp/"l.png"; _in_png(p, 100000, 100000, 16, 2); read_synthia_label(p)

@case("inputs", "16-bit label: 1280x760 header, 1000 bytes of data (truncated)", ("refused", "truncated: its image data decompresses to 1000"))
def _(c): p = c.tmp/"l.png"; _in_png(p, 1280, 760, 16, 2, _zl.compress(bytes(1000))); read_synthia_label(p)

@case("inputs", "16-bit label: image data before the header", ("refused", "image data before the PNG header"))
def _(c): p = c.tmp/"l.png"; _in_png(p, 64, 32, 16, 2, order="data"); read_synthia_label(p)

@case("inputs", "16-bit label: no IHDR chunk at all", ("refused", "no PNG header (IHDR)"))
def _(c): p = c.tmp/"l.png"; _in_png(p, 64, 32, 16, 2, order="nohdr"); read_synthia_label(p)

@case("inputs", "16-bit label: a zip bomb read through a SYNTHIA dataset item (named)", ("refused", "GT/LABELS/0000000.png: its image data"))
def _(c):
    r = c.tmp/"synthia"; (r/"RGB").mkdir(parents=True); (r/"GT/LABELS").mkdir(parents=True)
    _Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(r/"RGB/0000000.png")
    _in_png(r/"GT/LABELS/0000000.png", 64, 32, 16, 2, _in_zeros_z(64 << 20)); SYNTHIA(r)[0]

@case("inputs", "16-bit label: a valid 1280x760 label (class ids above 255 kept)", ("ok", None))
def _(c):
    ids = np.random.default_rng(0).integers(0, 300, (760, 1280)).astype(np.uint16)
    write_synthia_label(ids, c.tmp/"l.png"); assert (read_synthia_label(c.tmp/"l.png") == ids).all()
    return "decoded exactly"

# ---------------------------------------------------------------- declared image sizes (checked before training)
@case("inputs", "declared size: val image says 30000x30000 (train)", ("refused", "the header declares 30000x30000"))
def _(c):
    _in_png(_in_files(c, "val")[1], 30000, 30000)
    try: train(**c.p())
    finally: assert not c.out.exists(), "the run folder was created"

@case("inputs", "declared size: val label says 30000x30000 (train)", ("refused", "_gtFine_labelIds.png: the header declares 30000x30000"))
def _(c):
    _in_png(_in_files(c, "val", "gtFine")[0], 30000, 30000, 8, 0)
    try: train(**c.p())
    finally: assert not c.out.exists(), "the run folder was created"

@case("inputs", "declared size: source label 20000 wide (one side over 16384)", ("refused", "16384 pixels per side"))
def _(c):
    _in_png(sorted((c.data/"gta5/labels").glob("*.png"))[2], 20000, 10, 8, 3); train(**c.p())

@case("inputs", "declared size: target-train image 9000x9000 (81 M pixels in all)", ("refused", "67108864 in all"))
def _(c): _in_png(_in_files(c, "train")[0], 9000, 9000); train(**c.p(method="self_training"))

@case("inputs", "declared size: test image 30000x30000 (labelled test split)", ("refused", "leftImg8bit/test/"))
def _(c): _in_add_test_split(c); _in_png(_in_files(c, "test")[2], 30000, 30000); train(**c.p())

@case("inputs", "declared size: read_image of a 30000x30000 PNG (Pillow path)", ("refused", "declares 30000x30000"))
def _(c): p = c.tmp/"a.png"; _in_png(p, 30000, 30000); read_image(p)

# ---------------------------------------------------------------- val / test images of two sizes
def _in_shrink(p, nearest=False):
    _Image.open(p).resize((96, 48), _Image.NEAREST if nearest else _Image.BILINEAR).save(p)

@case("inputs", "two sizes: one val image + label at 48x96 (train)", ("refused", "96x48: eval_batch_size=4 cannot stack them; set eval_batch_size=1"))
def _(c):
    _in_shrink(_in_files(c, "val")[1]); _in_shrink(_in_files(c, "val", "gtFine")[1], True)
    try: train(**c.p())
    finally: assert not c.out.exists(), "the run folder was created"

@case("inputs", "two sizes: in the labelled test split only", ("refused", "the test images have 2 sizes"))
def _(c): _in_add_test_split(c); _in_shrink(_in_files(c, "test")[0]); _in_shrink(_in_files(c, "test", "gtFine")[0], True); train(**c.p())

@case("inputs", "two sizes: eval_batch_size=1 (the fix) trains and evaluates", ("ok", None))
def _(c):
    _in_shrink(_in_files(c, "val")[1]); _in_shrink(_in_files(c, "val", "gtFine")[1], True)
    r = train(**c.p(eval_batch_size=1)); return f"mIoU {r['miou']:.3f}"

@case("inputs", "two sizes: only a val label differs from its image (resized when read)", ("ok", None))
def _(c):
    _in_shrink(_in_files(c, "val", "gtFine")[1], True)
    r = train(**c.p()); return f"mIoU {r['miou']:.3f}"

# ---------------------------------------------------------------- MiniCity cache
@case("inputs", "MiniCity cache: most files deleted (minicity.json kept)", ("ok", None))
def _(c):
    with _in_Cache(c):
        r = _mc.minicity_root(**_in_TINY_MC); fs = sorted(r.rglob("*.png")); want = {p: p.read_bytes() for p in fs}
        for p in fs[:-3]: p.unlink()
        _mc.minicity_root(**_in_TINY_MC)
        assert {p: p.read_bytes() for p in sorted(r.rglob("*.png"))} == want
    return f"regenerated: {len(fs)} files, the same bytes"

@case("inputs", "MiniCity cache: a truncated label", ("ok", None))
def _(c):
    with _in_Cache(c):
        r = _mc.minicity_root(**_in_TINY_MC); p = sorted(r.rglob("*_labelIds.png"))[0]; b = p.read_bytes()
        p.write_bytes(b[:150]); why = _mc.minicity_problem(r, **_in_TINY_MC)
        _mc.minicity_root(**_in_TINY_MC); assert p.read_bytes() == b
    return f"found ({short(why, c)[:60]}...), regenerated"

@case("inputs", "MiniCity cache: an image replaced by text", ("ok", None))
def _(c):
    with _in_Cache(c):
        r = _mc.minicity_root(**_in_TINY_MC); p = sorted(r.rglob("*_leftImg8bit.png"))[0]; b = p.read_bytes()
        p.write_text("oops"); _mc.minicity_root(**_in_TINY_MC); assert p.read_bytes() == b
    return "regenerated"

@case("inputs", "MiniCity cache: minicity.json deleted", ("ok", None))
def _(c):
    with _in_Cache(c):
        r = _mc.minicity_root(**_in_TINY_MC); (r/"minicity.json").unlink()
        _mc.minicity_root(**_in_TINY_MC); assert json.loads((r/"minicity.json").read_text())["version"] == _mc.VERSION
    return "regenerated"

@case("inputs", "MiniCity cache: a complete cache is reused (not regenerated)", ("ok", None))
def _(c):
    with _in_Cache(c):
        r = _mc.minicity_root(**_in_TINY_MC); t = (r/"minicity.json").stat().st_mtime_ns
        _mc.minicity_root(**_in_TINY_MC); assert (r/"minicity.json").stat().st_mtime_ns == t
    return "reused"

@case("inputs", "MiniCity cache: truncated presence-*.npy", ("ok", None))
def _(c):
    ds, p = GTA5(c.data/"gta5"), c.tmp/"presence-0123456789abcdef.npy"
    want = class_presence(ds, cache=p, progress=False); p.write_bytes(p.read_bytes()[:90])
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always"); got = class_presence(ds, cache=p, progress=False)
    assert (got == want).all() and (np.load(p) == want).all()
    return short([str(w.message) for w in ws if "cannot be read" in str(w.message)][0], c)

@case("inputs", "MiniCity cache: presence-*.npy holding a pickle (object array)", ("ok", None))
def _(c):
    ds, p = GTA5(c.data/"gta5"), c.tmp/"presence-0123456789abcdef.npy"
    np.save(p, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always"); got = class_presence(ds, cache=p, progress=False)
    assert got.shape == (6, 19) and np.load(p).dtype == np.bool_
    return "not unpickled; rebuilt"

@case("inputs", "MiniCity cache: temporary folder of a killed generation (dead pid)", ("ok", None))
def _(c):
    with _in_Cache(c) as d:
        d.mkdir(parents=True); dead = subprocess.Popen(["true"]); dead.wait()
        t = d/f".minicity-v{_mc.VERSION}-seed0.tmp-{_mc._owner().rsplit('-', 1)[0]}-{dead.pid}-abcd1234"; (t/"gta5").mkdir(parents=True)
        _mc.minicity_root(**_in_TINY_MC); assert not t.exists()
    return "removed at the next start"

@case("inputs", "MiniCity cache: temporary folder of a live generation (kept)", ("ok", None))
def _(c):
    with _in_Cache(c) as d:
        d.mkdir(parents=True); t = d/f".minicity-v{_mc.VERSION}-seed0.tmp-{_mc._owner()}-abcd1234"; t.mkdir()
        _mc.minicity_root(**_in_TINY_MC); assert t.exists()
    return "kept"

@case("inputs", "MiniCity cache: old-style temporary folders (no pid): 2 days old removed, fresh kept", ("ok", None))
def _(c):
    with _in_Cache(c) as d:
        d.mkdir(parents=True); old, new = d/".minicity-v2-seed0.tmp-oldabcde", d/".minicity-v2-seed0.tmp-newabcde"
        old.mkdir(); new.mkdir(); os.utime(old, (time.time() - 2 * 86400,) * 2)
        _mc.minicity_root(**_in_TINY_MC); assert (old.exists(), new.exists()) == (False, True)
    return "stale removed, fresh kept"

# ---------------------------------------------------------------- split names
for _s in ("../../x", "val/../../../etc", "/etc", "", ".."):
    @case("inputs", f"split name {_s!r} (Cityscapes)", ("refused", "is not a split name"))
    def _(c, s=_s): Cityscapes(c.data/"cityscapes", split=s)

@case("inputs", "split name None", ("refused", "is not a split name"))
def _(c): Cityscapes(c.data/"cityscapes", split=None)

@case("inputs", "split 'train_extra' (a valid name, no folder)", ("refused", "Cityscapes image folder missing"))
def _(c): Cityscapes(c.data/"cityscapes", split="train_extra")

@case("inputs", "split name '../x' to cda-eval (a run's checkpoint)", ("refused", "split='../x' is not valid"))
def _(c):
    train(**c.p()); _in_exit(lambda: run_cli_eval([str(c.run()), "--split", "../x", "--data_root", str(c.data)]))
