# Package plumbing, written by hand (nbdev generates the method modules, not this file).
# Load the trainer first: it registers every method, in an order where each method's own imports (a method may build
# on another, e.g. bcl on self_training, ucda on clst's projection head) find their modules complete. Without this,
# `import cda_nb.methods.clst` as the first import runs clst -> trainers -> ucda -> clst (half-initialised) and fails.
from .. import trainers as _trainers  # noqa: F401,E402
