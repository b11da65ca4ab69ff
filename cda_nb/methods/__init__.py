# Package plumbing, written by hand (nbdev generates the method modules, not this file).
# Every method module imports `cda_nb.methods.base` (the contract) and never the trainer; `cda_nb.training.config` imports the
# method modules to register them. Nothing needs to be loaded first: there is no import circle (tests/test_architecture.py).
