"""Neuronpedia labels, fetched from a recorded export sample through a mock transport: parsing,
the disk cache with provenance, missing latents, and a failed fetch naming the fix."""

from __future__ import annotations

import json

import httpx
import pytest

from esr_utils.neuronpedia import (
    GOODFIRE_70B_ID,
    LabelFetchError,
    neuronpedia_id,
    neuronpedia_labels,
)
from esr_utils.paths import REPO_ROOT

FIXTURE = REPO_ROOT / "tests/fixtures/neuronpedia/gemma-2-2b__16-gemmascope-res-16k.export.json"
GEMMA = "gemma-2-2b/16-gemmascope-res-16k"


def recorded(requests):
    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=FIXTURE.read_bytes(),
                              headers={"content-type": "application/json"})
    return httpx.MockTransport(handler)


def test_labels_are_fetched_once_then_served_from_the_cache_with_provenance(tmp_path):
    requests = []
    labels = neuronpedia_labels(GEMMA, cache_dir=tmp_path, transport=recorded(requests))
    assert str(requests[0].url) == ("https://www.neuronpedia.org/api/explanation/export"
                                    "?modelId=gemma-2-2b&saeId=16-gemmascope-res-16k")
    # first explanation wins, whitespace stripped; an empty description is no label
    assert labels.labels == {7580: "references to surfing and ocean waves",
                             12: "mentions of violins and string instruments",
                             16383: "the token 'the' at the start of a sentence"}
    found, missing = labels.lookup([7580, 300, 5])
    assert found == {7580: "references to surfing and ocean waves", 300: None, 5: None}
    assert missing == 2
    card = json.loads((tmp_path / "gemma-2-2b__16-gemmascope-res-16k.json").read_text())
    assert card["count"] == 3 and card["source_url"] == str(requests[0].url)
    assert card["fetched_at"].startswith("20")
    again = neuronpedia_labels(GEMMA, cache_dir=tmp_path, transport=recorded(requests))
    assert len(requests) == 1 and again == labels


def test_a_failed_fetch_without_a_cache_names_the_fix(tmp_path):
    down = httpx.MockTransport(lambda r: httpx.Response(503, text="maintenance"))
    with pytest.raises(LabelFetchError, match="rerun with network access once"):
        neuronpedia_labels(GOODFIRE_70B_ID, cache_dir=tmp_path, transport=down)
    assert not any(tmp_path.iterdir())


def test_gemma_scope_ids_come_from_the_sae_lens_registry():
    assert neuronpedia_id("gemma-scope-2b-pt-res-canonical",
                          "layer_16/width_16k/canonical") == GEMMA
