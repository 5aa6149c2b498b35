"""SAEs: slicing equals the full SAE; loaders per format on tiny synthetic files; bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from esr_utils.models import get_spec
from esr_utils.saes import (
    EMBEDDED_SAE_DIR,
    CorruptSaeError,
    check_latent_ids,
    load_sae,
    slice_sae,
)
from esr_utils.steering import Steering, plan_interventions

D_IN, D_SAE = 16, 24


def _random_sae(architecture: str, apply_b_dec_to_input: bool = False):
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig

    torch.manual_seed(7)
    if architecture == "jumprelu":
        sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE,
                                            apply_b_dec_to_input=apply_b_dec_to_input))
    else:
        sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE,
                                            apply_b_dec_to_input=apply_b_dec_to_input))
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.copy_(torch.rand_like(p) * 0.5 if name == "threshold" else torch.randn_like(p))
    return sae


def _reference(sae, h, latent_id, boost, ablate):
    """The paper's rule through the full SAE: decode(edited f) + error term."""
    f = sae.encode(h)
    err = h - sae.decode(f)
    f = f.clone()
    f[..., list(ablate)] = 0.0
    if latent_id is not None:
        f[..., latent_id] += boost
    return sae.decode(f) + err


class TestSlicing:
    @pytest.mark.parametrize("architecture", ["standard", "jumprelu"])
    @pytest.mark.parametrize("b_dec_in", [False, True])
    def test_slice_equals_full_sae_for_steering_and_ablation(self, architecture, b_dec_in):
        """Remote runs send only slices, so a slice must act exactly like the whole SAE."""
        sae = _random_sae(architecture, b_dec_in)
        rows = [Steering(3, 2.5), Steering(None, 0.0, (1, 5, 9)), Steering(7, -1.0, (3, 11))]
        h = torch.randn(len(rows), 5, D_IN)
        sliced = slice_sae(sae, {3, 7}, {1, 3, 5, 9, 11})
        out = plan_interventions(rows, sliced, d_model=D_IN).apply(h)
        expected = torch.stack([_reference(sae, h[i], r.latent_id, r.boost, r.ablate)
                                for i, r in enumerate(rows)])
        torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)

    def test_slice_holds_only_the_needed_rows(self):
        """The payload is the point of slicing: no full matrices travel."""
        s = slice_sae(_random_sae("jumprelu"), [2], [4, 6])
        assert s.steer_rows.shape == (1, D_IN) and s.enc_cols.shape == (D_IN, 2)
        assert s.dec_rows.shape == (2, D_IN) and s.threshold.shape == (2,)

    def test_topk_ablation_is_refused(self):
        """A TopK latent depends on all the others, so a slice cannot reproduce it."""
        from sae_lens import TopKSAE, TopKSAEConfig

        sae = TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=4))
        with pytest.raises(ValueError, match="standard .* or JumpReLU"):
            slice_sae(sae, [], [1])

    def test_latent_out_of_range_names_the_range(self):
        """One check, one exception type, wherever ids enter: slicing, the id check, labels."""
        sae = _random_sae("standard")
        with pytest.raises(ValueError, match=rf"\[{D_SAE}\] are out of range.*0..{D_SAE - 1}"):
            slice_sae(sae, [D_SAE], [])
        with pytest.raises(ValueError, match=rf"\[-1\] are out of range.*0..{D_SAE - 1}"):
            check_latent_ids([0, -1], D_SAE)
        assert check_latent_ids([3, 1.0, 3], D_SAE) == [3, 1, 3]
        from esr_utils.saes import LatentLabels

        with pytest.raises(ValueError, match="0..2"):
            LatentLabels({"d_sae": 3}, {}).label(3)


class TestEmbeddedSae:
    def test_loads_with_sae_lens_and_load_sae(self):
        """The shipped folder is plain sae-lens format and matches the embedded model."""
        from sae_lens import SAE

        spec = get_spec("smollm2-135m-instruct")
        raw = SAE.load_from_disk(EMBEDDED_SAE_DIR)
        sae = load_sae("smollm2-135m-instruct")
        assert raw.cfg.d_in == sae.cfg.d_in == spec.d_model
        assert sae.cfg.d_sae == spec.sae.d_sae
        assert sae.cfg.architecture() in ("jumprelu", "standard")
        torch.testing.assert_close(raw.W_dec, sae.W_dec)

    def test_weights_are_half_precision_and_small(self):
        from safetensors import safe_open

        path = EMBEDDED_SAE_DIR / "sae_weights.safetensors"
        assert path.stat().st_size <= 25 * 2**20
        with safe_open(path, "pt") as f:
            # safe_open has keys() but is not iterable, so `in f` would fail
            assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())  # noqa: SIM118

    def test_corrupted_weights_fail_loudly(self, tmp_path):
        """A flipped byte must not load silently."""
        folder = tmp_path / "sae"
        shutil.copytree(EMBEDDED_SAE_DIR, folder)
        weights = folder / "sae_weights.safetensors"
        data = bytearray(weights.read_bytes())
        data[-100] ^= 0xFF
        weights.write_bytes(bytes(data))
        with pytest.raises(CorruptSaeError, match="SHA-256"):
            load_sae("smollm2-135m-instruct", path=folder)

    def test_truncated_file_fails_even_unverified(self, tmp_path):
        folder = tmp_path / "sae"
        shutil.copytree(EMBEDDED_SAE_DIR, folder)
        weights = folder / "sae_weights.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
        with pytest.raises(CorruptSaeError, match="truncated"):
            load_sae("smollm2-135m-instruct", path=folder, verify=False)

    def test_missing_file_names_it(self, tmp_path):
        folder = tmp_path / "sae"
        shutil.copytree(EMBEDDED_SAE_DIR, folder)
        (folder / "cfg.json").unlink()
        with pytest.raises(FileNotFoundError, match="cfg.json"):
            load_sae("smollm2-135m-instruct", path=folder)
        with pytest.raises(FileNotFoundError, match="no SAE folder"):
            load_sae("smollm2-135m-instruct", path=tmp_path / "nowhere")


class TestDiskSae:
    def test_round_trip_and_wrong_d_in(self, tmp_path, tiny_spec):
        """Any sae-lens folder loads; one of the wrong width is refused with the reason."""
        sae = _random_sae("jumprelu")
        sae.save_model(tmp_path / "s")
        with pytest.raises(ValueError, match="d_in=16.*d_model=64"):
            load_sae(tiny_spec, path=tmp_path / "s")
        with pytest.raises(ValueError, match="d_in=16.*d_model=576"):
            load_sae("smollm2-135m-instruct", path=tmp_path / "s", verify=False)
        from sae_lens import JumpReLUSAE, JumpReLUSAEConfig

        good = JumpReLUSAE(JumpReLUSAEConfig(d_in=64, d_sae=8))
        good.save_model(tmp_path / "g")
        loaded = load_sae(tiny_spec, path=tmp_path / "g")
        torch.testing.assert_close(loaded.W_enc, good.W_enc)

    def test_disk_spec_without_path_says_so(self, tiny_spec):
        with pytest.raises(ValueError, match="path="):
            load_sae(tiny_spec)


class TestGemmaScope:
    def _write_params(self, folder, d_in, d_sae, fmt="npz"):
        rng = np.random.default_rng(0)
        params = {"w_enc": rng.normal(size=(d_in, d_sae)).astype(np.float32),
                  "w_dec": rng.normal(size=(d_sae, d_in)).astype(np.float32),
                  "b_enc": rng.normal(size=d_sae).astype(np.float32),
                  "b_dec": rng.normal(size=d_in).astype(np.float32),
                  "threshold": rng.uniform(0, 1, size=d_sae).astype(np.float32)}
        folder.mkdir(parents=True, exist_ok=True)
        if fmt == "npz":
            np.savez(folder / "params.npz", **params)
        else:
            from safetensors.numpy import save_file

            save_file(params, folder / "params.safetensors")
        return params

    @pytest.mark.parametrize("fmt", ["npz", "safetensors"])
    def test_local_params_convert_like_sae_lens(self, tmp_path, fmt):
        """Gemma Scope keys (w_enc, w_dec, b_enc, b_dec, threshold) land in a JumpReLU SAE."""
        from esr_utils.saes.pretrained import load_gemma_scope_file

        params = self._write_params(tmp_path / "p", 8, 12, fmt)
        sae = load_gemma_scope_file(tmp_path / "p", "gemma-scope-2b-pt-res-canonical",
                                    "layer_16/width_16k/canonical",
                                    cfg_overrides={"d_in": 8, "d_sae": 12})
        assert sae.cfg.architecture() == "jumprelu" and not sae.cfg.apply_b_dec_to_input
        assert sae.cfg.metadata.hook_name == "blocks.16.hook_resid_post"
        torch.testing.assert_close(sae.W_enc, torch.from_numpy(params["w_enc"]))
        torch.testing.assert_close(sae.threshold, torch.from_numpy(params["threshold"]))
        x = torch.randn(3, 8)
        pre = x @ sae.W_enc + sae.b_enc
        expected = torch.relu(pre) * (pre > sae.threshold)
        torch.testing.assert_close(sae.encode(x), expected)

    def test_file_of_the_wrong_shape_is_refused(self, tmp_path):
        from esr_utils.saes.pretrained import load_gemma_scope_file

        self._write_params(tmp_path / "p", 8, 12)
        with pytest.raises(ValueError, match="2304x16384: wrong file"):
            load_gemma_scope_file(tmp_path / "p", "gemma-scope-2b-pt-res-canonical",
                                  "layer_16/width_16k/canonical")

    def test_unknown_layer_or_width_lists_what_exists(self):
        """Gemma Scope 27B has canonical SAEs only at layers 10, 22 and 34."""
        with pytest.raises(ValueError, match=r"layers with canonical SAEs: \[10, 22, 34\]"):
            load_sae("gemma-2-27b-it", layer=20)
        with pytest.raises(ValueError, match="widths at layer 16"):
            load_sae("gemma-2-2b-it", width="3k")
        with pytest.raises(ValueError, match="layer 99 is out of range|layers with"):
            load_sae("gemma-2-2b-it", layer=99)

    def test_missing_params_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="params.npz"):
            load_sae("gemma-2-2b-it", path=tmp_path / "empty")


class TestGoodfire:
    def _write(self, path, d_in, d_sae):
        torch.manual_seed(3)
        state = {"encoder_linear.weight": torch.randn(d_sae, d_in),
                 "encoder_linear.bias": torch.randn(d_sae),
                 "decoder_linear.weight": torch.randn(d_in, d_sae),
                 "decoder_linear.bias": torch.randn(d_in)}
        torch.save(state, path)
        return state

    @pytest.mark.parametrize("suffix", [".pt", ".pth"])
    def test_state_dict_converts_like_sae_lens(self, tmp_path, suffix):
        """Goodfire's nn.Linear layout is transposed into W_enc [d_in, d_sae],
        W_dec [d_sae, d_in]."""
        from esr_utils.saes.pretrained import load_goodfire_file

        state = self._write(tmp_path / f"sae{suffix}", 8, 12)
        sae = load_goodfire_file(tmp_path / f"sae{suffix}", "goodfire-llama-3.1-8b-instruct",
                                 cfg_overrides={"d_in": 8, "d_sae": 12})
        assert sae.cfg.architecture() == "standard"
        assert sae.cfg.metadata.hook_name == "blocks.19.hook_resid_post"
        torch.testing.assert_close(sae.W_enc, state["encoder_linear.weight"].T)
        torch.testing.assert_close(sae.W_dec, state["decoder_linear.weight"].T)
        x = torch.randn(2, 8)
        expected = torch.relu(x @ state["encoder_linear.weight"].T + state["encoder_linear.bias"])
        torch.testing.assert_close(sae.encode(x), expected)

    def test_wrong_keys_and_shapes_are_refused(self, tmp_path):
        from esr_utils.saes.pretrained import load_goodfire_file

        torch.save({"W_enc": torch.zeros(2, 2)}, tmp_path / "bad.pt")
        with pytest.raises(ValueError, match="encoder_linear.weight"):
            load_goodfire_file(tmp_path / "bad.pt", "goodfire-llama-3.3-70b-instruct")
        self._write(tmp_path / "small.pt", 8, 12)
        with pytest.raises(ValueError, match="8192x65536: wrong file"):
            load_sae("llama-3.3-70b-instruct", path=tmp_path / "small.pt")

    def test_other_layer_is_refused(self):
        with pytest.raises(ValueError, match="one SAE .* at layer 50"):
            load_sae("llama-3.3-70b-instruct", layer=33)


def test_manifest_lists_every_shipped_file():
    manifest = json.loads((EMBEDDED_SAE_DIR / "manifest.json").read_text())["sha256"]
    assert {"cfg.json", "sae_weights.safetensors", "labels.json.gz"} <= set(manifest)


def test_an_unparsable_manifest_is_named_with_its_fix(tmp_path):
    """A corrupt manifest.json names the file and how to restore it, not a bare JSON error."""
    import shutil

    from esr_utils.jsonl import CorruptFileError
    from esr_utils.saes import EMBEDDED_SAE_DIR, verify_sae_folder

    folder = tmp_path / "sae"
    shutil.copytree(EMBEDDED_SAE_DIR, folder)
    (folder / "manifest.json").write_text('{"sha256": {"cfg.json": ')
    expected = r"manifest\.json is not a valid SAE manifest.*git checkout"
    with pytest.raises(CorruptFileError, match=expected):
        verify_sae_folder(folder)
