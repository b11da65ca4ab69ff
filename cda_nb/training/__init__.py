# Package plumbing, written by hand (nbdev generates the training modules, not this file): a run's configuration,
# starting weights, data streams, processes, checkpoints, evaluation and the trainer (nbs/training/, read in order).
# Methods (cda_nb.methods) never import from here; the configuration imports the methods to register them.
