"""Neuronpedia labels for the paper's SAEs: Gemma Scope (ids from sae-lens' registry) and the
Goodfire Llama-3.3-70B SAE. The paper's judge and concreteness filter see these descriptions.

    labels = neuronpedia_labels("gemma-2-2b/16-gemmascope-res-16k")
    labels.get(7580)          # the description, or None if Neuronpedia has none
    labels.lookup([7580, 1])  # ({7580: "...", 1: None}, 1 missing)

One request to Neuronpedia's explanation export per SAE; the result is cached on disk with its
provenance (source URL, fetch time, count), so later runs and CI need no network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from esr_utils import stand_ins

__all__ = ["NeuronpediaLabels", "neuronpedia_labels", "neuronpedia_id", "sae_labels",
           "LabelFetchError", "NEURONPEDIA_URL", "GOODFIRE_70B_ID"]

NEURONPEDIA_URL = "https://www.neuronpedia.org"
GOODFIRE_70B_ID = "llama3.3-70b-it/50-resid-post-gf"  # the paper's Llama-3.3-70B SAE


class LabelFetchError(RuntimeError):
    """The export could not be fetched (and no cached copy exists)."""


@dataclass
class NeuronpediaLabels:
    """Descriptions of one SAE's latents, with where and when they came from."""

    source_id: str
    labels: dict[int, str] = field(default_factory=dict)
    source_url: str = ""
    fetched_at: str = ""

    @property
    def count(self) -> int:
        return len(self.labels)

    def get(self, latent: int) -> str | None:
        return self.labels.get(int(latent))

    def label(self, latent: int) -> str:
        """The description, or "SAE latent <id>" where Neuronpedia has none."""
        return self.get(latent) or f"SAE latent {int(latent)}"

    def is_live(self, latent: int) -> bool:
        """True if the latent has a description (the concreteness filter rates only those)."""
        return self.get(latent) is not None

    def lookup(self, latents) -> tuple[dict[int, str | None], int]:
        """{latent: label or None} and how many have no label."""
        found = {int(j): self.get(j) for j in latents}
        return found, sum(v is None for v in found.values())

    def to_json(self) -> dict:
        return {"source_id": self.source_id, "source_url": self.source_url,
                "fetched_at": self.fetched_at, "count": self.count,
                "labels": {str(k): v for k, v in sorted(self.labels.items())}}


def neuronpedia_id(release: str, sae_id: str) -> str:
    """The Neuronpedia id ("model/sae") of a sae-lens release entry, e.g. Gemma Scope's."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    entry = get_pretrained_saes_directory()[release]
    np_id = (entry.neuronpedia_id or {}).get(sae_id)
    if not np_id:
        raise KeyError(f"sae-lens lists no Neuronpedia id for {release}/{sae_id}; pass the id "
                       "(e.g. 'gemma-2-2b/16-gemmascope-res-16k') to neuronpedia_labels directly")
    return np_id


def _parse_export(rows: list[dict]) -> dict[int, str]:
    """The first non-empty description per latent index (the export may hold several)."""
    labels: dict[int, str] = {}
    for row in rows:
        text = (row.get("description") or "").strip()
        if text and "index" in row:
            labels.setdefault(int(row["index"]), text)
    return labels


def _cache_path(source_id: str, cache_dir: Path | None) -> Path:
    from esr_utils.paths import cache_dir as default_cache_dir

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "neuronpedia"
    return root / (source_id.replace("/", "__") + ".json")


def neuronpedia_labels(source_id: str, *, cache_dir: str | Path | None = None,
                       refresh: bool = False, base_url: str = NEURONPEDIA_URL,
                       transport: httpx.BaseTransport | None = None,
                       timeout: float = 300.0) -> NeuronpediaLabels:
    """The labels of Neuronpedia SAE `source_id` ("model/sae"), from the disk cache or fetched.

    Raises `LabelFetchError` naming the fix if there is no cached copy and the fetch fails.
    """
    path = _cache_path(source_id, cache_dir)
    if path.exists() and not refresh:
        data = json.loads(path.read_text())
        return NeuronpediaLabels(data["source_id"], {int(k): v for k, v in data["labels"].items()},
                                 data["source_url"], data["fetched_at"])
    model_id, _, sae = source_id.partition("/")
    url = f"{base_url.rstrip('/')}/api/explanation/export?modelId={model_id}&saeId={sae}"
    try:
        with httpx.Client(transport=transport, timeout=timeout, follow_redirects=True) as http:
            response = http.get(url, headers={"content-type": "application/json"})
            response.raise_for_status()
            rows = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise LabelFetchError(f"could not fetch Neuronpedia labels from {url}: {exc!r}; rerun "
                              f"with network access once (they are then cached in {path}), "
                              "or copy a cached file there") from exc
    if not isinstance(rows, list):
        raise LabelFetchError(f"{url} returned {type(rows).__name__}, not the export's list")
    labels = NeuronpediaLabels(source_id, _parse_export(rows), url,
                               datetime.now(UTC).isoformat(timespec="seconds"))
    _save(labels, path)
    return labels


def _save(labels: NeuronpediaLabels, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(labels.to_json(), indent=1))
    tmp.replace(path)


def sae_labels(spec) -> NeuronpediaLabels:
    """The Neuronpedia descriptions of a registry model's paper SAE (Gemma Scope or Goodfire),
    by the id sae-lens lists for it: fetched once, then read from the cache.

    Under the dry run, the stand-in's labels instead: a description for two latents in three
    (the rest have none, as some latents have none on Neuronpedia), written beside the stand-in,
    never into the real cache.
    """
    source_id = neuronpedia_id(spec.sae.release, spec.sae.sae_id)
    if not stand_ins.active():
        return neuronpedia_labels(source_id)
    folder = stand_ins.model_dir(spec).parent / "labels"  # (re)builds an outdated stand-in
    if not _cache_path(source_id, folder).exists():
        _save(NeuronpediaLabels(source_id, {k: f"stand-in concept number {k}"
                                            for k in range(spec.sae.d_sae) if k % 3},
                                "stand-in (dry run, no network)", "n/a"),
              _cache_path(source_id, folder))
    return neuronpedia_labels(source_id, cache_dir=folder)
