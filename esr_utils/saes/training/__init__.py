"""Training the embedded SAE: settings, corpus, activations, training, evaluation, labels, folder.

Run `python -m esr_utils.saes.training --help` (or `make sae`).
"""
