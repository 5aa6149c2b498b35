# The README's two commands: `make book` and `make test`. Both set up the environment first.
# Python 3.11 with its venv module; `make PYTHON=/path/to/python3.11` picks another
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: env book test clean sae organism bench

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "the book needs Python 3.11; $(PYTHON) is not: run make PYTHON=/path/to/python3.11"; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' || { echo "$(PYTHON) lacks the venv module: install python3.11-venv (Debian/Ubuntu) or use a python.org or pyenv build"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "pip==26.3"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m esr_utils.env_report
	touch $(STAMP)

# execute every chapter under the cpu profile, then build the HTML book from them; chapter 2 runs
# alone on both cores, then the others two at a time, one core each (esr_utils.lanes)
book: env
	$(PY) -m esr_utils.runner --profile cpu --jobs 2
	$(VENV)/bin/jupyter-book clean book
	$(VENV)/bin/jupyter-book build book -W -n --keep-going
	@echo "open book/_build/html/index.html"

# unit tests, every chapter under the smoke profile, and a strict book build
test: env
	$(PY) -m pytest

# retrain the embedded SAE from scratch from the shipped corpus (generates the model's own texts,
# then activations, training, held-out metrics and labels; about half an hour on 2 cores)
sae: env
	@$(PY) -c "from esr_utils.saes.training.corpus import require_corpus_files; require_corpus_files()" \
		|| { echo "make sae: restore the corpus with 'git checkout -- esr_utils/data/sae_corpus'"; exit 1; }
	nice -n 10 $(PY) -m esr_utils.saes.training --out esr_utils/data/embedded_sae \
		--cache $(HOME)/.cache/esr_utils/sae_training --threads 2

# the fine-tuned organism of chapter 6 (smollm2-135m-esr): builds its data from the embedded
# model, trains the LoRA variants, picks one on validation prompts and ships it with its card
organism: env
	$(PY) -m esr_utils.finetuning

# every performance figure of the book, measured side by side in one process (appendix A3)
bench: env
	$(PY) -m benchmarks.run

clean:
	rm -rf book/_build book/notebooks
