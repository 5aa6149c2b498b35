# The README's two commands: `make book` and `make test`. Both set up the environment first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: env book test clean organism

env: $(STAMP)

$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "pip==26.3"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m esr_utils.env_report
	touch $(STAMP)

# execute every chapter under the cpu profile, then build the HTML book from them
book: env
	$(PY) -m esr_utils.runner --profile cpu
	$(VENV)/bin/jupyter-book clean book
	$(VENV)/bin/jupyter-book build book -W -n --keep-going
	@echo "open book/_build/html/index.html"

# unit tests, every chapter under the smoke profile, and a strict book build
test: env
	$(PY) -m pytest

# the fine-tuned organism of chapter 6 (smollm2-135m-esr): builds its data from the embedded
# model, trains the LoRA variants, picks one on validation prompts and ships it with its card
organism: env
	$(PY) -m esr_utils.finetuning

clean:
	rm -rf book/_build book/notebooks
