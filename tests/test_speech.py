"""Speech recognition (AN4 and precomputed features) through the same models, loop and decoder."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from attnlab.config_errors import ConfigError
from attnlab.data.speech import (
    AudioManifest,
    FbankSettings,
    SpeechDataModule,
    compute_fbank,
    read_audio,
    speed_perturb,
)
from attnlab.data.tasks import DataFileError
from attnlab.metrics import recognition_scores
from attnlab.models.frontends import FeatureFrontend, SpecAugment
from attnlab.train import train
from tests.conftest import SHARED_DATA

AN4 = SHARED_DATA / "an4"
needs_an4 = pytest.mark.skipif(
    not (AN4 / "train.tsv").exists(), reason=f"AN4 not under {SHARED_DATA}"
)
FAST = ["logger=csv", "trainer.enable_progress_bar=false", "trainer.max_time=null"]


# ------------------------------------------------------------------------------ features
def kaldi_fbank_reference(samples: np.ndarray, rate: int = 16000, bins: int = 80) -> np.ndarray:
    """Kaldi's compute-fbank-feats (defaults, no dither), written out in numpy from its
    documented steps: 25 ms povey-windowed frames every 10 ms, DC removal, pre-emphasis 0.97,
    a 512-point power spectrum, triangular mel filters from 20 Hz to Nyquist, natural log."""
    x = samples.astype(np.float64) * 32768.0
    length, shift, fft = 400, 160, 512
    n_frames = 1 + (len(x) - length) // shift
    frames = np.stack([x[i * shift : i * shift + length] for i in range(n_frames)])
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = np.concatenate([frames[:, :1] * (1 - 0.97), frames[:, 1:] - 0.97 * frames[:, :-1]], 1)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / (length - 1))) ** 0.85
    power = np.abs(np.fft.rfft(frames * window, n=fft)) ** 2  # [frames, 257]

    def mel(f):
        return 1127.0 * np.log(1.0 + f / 700.0)

    low, high = mel(20.0), mel(rate / 2)
    centres = low + (high - low) * np.arange(bins + 2) / (bins + 1)
    bin_mels = mel(np.arange(fft // 2) * rate / fft)
    banks = np.zeros((bins, fft // 2 + 1))
    for m in range(bins):
        left, centre, right = centres[m], centres[m + 1], centres[m + 2]
        up = (bin_mels - left) / (centre - left)
        down = (right - bin_mels) / (right - centre)
        banks[m, : fft // 2] = np.maximum(0.0, np.minimum(up, down))
    energies = power @ banks.T
    return np.log(np.maximum(energies, np.finfo(np.float32).eps))


@needs_an4
def test_filterbanks_match_an_independent_kaldi_reference_on_an_an4_file():
    path = AN4 / "flac/an4_clstk/fkai/an311-fkai-b.flac"
    samples = read_audio(path, 16000)
    ours = compute_fbank(samples, FbankSettings())
    reference = kaldi_fbank_reference(samples)
    assert ours.shape == reference.shape == (1 + (49600 - 400) // 160, 80)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, reference, atol=2e-2, rtol=1e-3)


def test_speed_perturbation_changes_the_length_by_the_factor():
    samples = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    assert len(speed_perturb(samples, 1.1)) == pytest.approx(16000 / 1.1, abs=2)
    assert len(speed_perturb(samples, 0.9)) == pytest.approx(16000 / 0.9, abs=2)
    assert speed_perturb(samples, 1.0) is samples


def test_spec_augment_masks_only_in_training_and_within_each_utterance():
    torch.manual_seed(0)
    augment = SpecAugment(freq_masks=2, freq_width=10, time_masks=2, time_width=0.1)
    x = torch.ones(4, 100, 80)
    lengths = torch.tensor([100, 80, 50, 20])
    augment.train()
    masked = augment(x, lengths)
    assert (masked == 0).any() and (masked == 1).any()
    zero_frames = (masked == 0).all(-1).sum(1)  # whole frames hit by time masks
    assert (zero_frames <= 2 * (lengths * 0.1).long()).all()
    augment.eval()
    assert torch.equal(augment(x, lengths), x)


# --------------------------------------------------------------------------- a tiny corpus
def write_corpus(folder: Path, rows: dict[str, list[tuple[str, str]]], audio: bool = True) -> None:
    """``rows[split]`` = [(utt_id, text)]; writes tones as FLAC (or their features as .npy)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, items in rows.items():
        with open(folder / f"{split}.tsv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(["utt_id", "audio" if audio else "features", "text"])
            for index, (utt, text) in enumerate(items):
                seconds = 0.4 + 0.1 * (index % 4)
                t = np.arange(int(16000 * seconds)) / 16000
                wave = 0.1 * np.sin(2 * np.pi * (200 + 50 * len(text)) * t)
                wave = (wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
                if audio:
                    name = f"{utt}.flac"
                    soundfile.write(folder / name, wave, 16000)
                else:
                    name = f"{utt}.npy"
                    np.save(folder / name, compute_fbank(wave, FbankSettings(num_mel_bins=20)))
                writer.writerow([utt, name, text])


CORPUS = {
    "train": [(f"tr{i}", ["A B", "C", "A C B"][i % 3]) for i in range(9)],
    "dev": [("dv0", "A B"), ("dv1", "C")],
    "test": [("te0", "C A")],
}


def speech_module(tmp_path: Path, folder: str = "corpus", **kwargs) -> SpeechDataModule:
    task = AudioManifest(folder, root=str(tmp_path))
    kwargs = {"valid_split": "dev", "cache_dir": str(tmp_path / "cache"), **kwargs}
    return SpeechDataModule(task, **kwargs)


def test_training_features_are_normalised_to_zero_mean_by_the_model(tmp_path):
    write_corpus(tmp_path / "corpus", CORPUS)
    data = speech_module(tmp_path, features={"num_mel_bins": 40}, feature_dim=40)
    mean, std = data.feature_statistics()
    frontend = FeatureFrontend(40, 16, kind="conv2d", channels=4)
    frontend.cmvn.set_statistics(mean, std)
    frames = torch.from_numpy(np.concatenate(data.split_data("train").sources))
    normalised = frontend.cmvn(frames)
    assert normalised.mean(0).abs().max() < 1e-3
    assert (normalised.std(0) - 1).abs().max() < 1e-2
    # Cached: the second module reads the same features back without the audio.
    for path in (tmp_path / "corpus").glob("*.flac"):
        path.unlink()
    again = speech_module(tmp_path, features={"num_mel_bins": 40}, feature_dim=40)
    np.testing.assert_array_equal(
        again.split_data("train").sources[0], data.split_data("train").sources[0]
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "missing audio file .*tr1.flac \\(listed at .*train.tsv:3 \\(tr1\\)\\)"),
        ("corrupt", "unreadable audio file .*tr1.flac \\(listed at .*train.tsv:3"),
        ("empty", "tr1.flac \\(listed at .*train.tsv:3 \\(tr1\\)\\): zero-length audio"),
    ],
)
def test_bad_audio_is_named_with_its_manifest_line(tmp_path, damage, message):
    write_corpus(tmp_path / "corpus", CORPUS)
    path = tmp_path / "corpus" / "tr1.flac"
    if damage == "missing":
        path.unlink()
    elif damage == "corrupt":
        path.write_bytes(b"fLaC" + b"\x00" * 100)
    else:
        soundfile.write(path, np.zeros(0, np.float32), 16000, format="WAV")  # a valid empty file
    with pytest.raises(DataFileError, match=message):
        speech_module(tmp_path).split_data("train")


def test_a_manifest_without_a_needed_column_names_it(tmp_path):
    write_corpus(tmp_path / "corpus", CORPUS)
    (tmp_path / "corpus" / "dev.tsv").write_text("utt_id\tpath\ttext\ndv0\tx.flac\tA\n")
    with pytest.raises(
        DataFileError, match="dev.tsv:1: manifest has no column\\(s\\) \\['audio'\\]"
    ):
        speech_module(tmp_path).split_data("dev")


def test_feature_dimension_mismatch_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="feature_dim"):
        speech_module(tmp_path, features={"num_mel_bins": 40}, feature_dim=80)


def test_word_and_character_error_rates():
    scores = recognition_scores(["A B C", "D"], ["A X C", "D E"])
    assert scores["wer"] == pytest.approx(100 * 2 / 5)
    assert scores["cer"] == pytest.approx(100 * 3 / 8)  # "A B C" vs "A X C": 1; "D" vs "D E": 2
    assert scores["score"] == pytest.approx(100 - scores["wer"])


# ------------------------------------------------------------------------------- training
@needs_an4
@pytest.mark.parametrize(
    "model",
    [
        ["model=transformer_tiny"],
        [
            "model=rnn_luong",
            "model.embed_dim=32",
            "model.hidden_size=32",
            "model.frontend.hidden_size=16",
        ],
        [
            "model=rnn_bahdanau",
            "model.embed_dim=32",
            "model.hidden_size=32",
            "model.frontend.hidden_size=16",
        ],
    ],
    ids=["transformer", "luong", "bahdanau"],
)
def test_each_model_family_recognises_an4_end_to_end(make_cfg, model):
    cfg = make_cfg(
        "debug=fdr",
        "data=an4",
        *model,
        "data.limit_train_examples=12",
        "data.limit_eval_examples=4",
        "data.speed_perturb=[]",
        "decode.max_len_b=5",
        "decode.max_len_a=0.02",
        base=FAST,
    )
    assert cfg.model.input_dim == 80 and cfg.model.ctc_head and cfg.criterion.ctc_weight == 0.3
    assert cfg.decode.strategy == "beam" and cfg.decode.ctc_weight == 0.3  # joint scoring
    metrics = train(cfg)
    scores = metrics["test"]["test"]
    assert scores["wer"] >= 0 and scores["cer"] >= 0 and "bleu" not in scores


def test_precomputed_features_train_from_npy_and_kaldi_ark(make_cfg, tmp_path):
    import kaldiio

    folder = tmp_path / "data" / "feats"
    write_corpus(folder, CORPUS, audio=False)
    # Half the training utterances move into a Kaldi archive, addressed as ark:path:offset.
    rows = list(csv.reader((folder / "train.tsv").read_text().splitlines(), delimiter="\t"))
    ark = {row[0]: np.load(folder / row[1]) for row in rows[1:5]}
    with kaldiio.WriteHelper(f"ark,scp:{folder / 'feats.ark'},{folder / 'feats.scp'}") as writer:
        for utt, matrix in ark.items():
            writer(utt, matrix)
    locations = dict(line.split(" ", 1) for line in (folder / "feats.scp").read_text().splitlines())
    with open(folder / "train.tsv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(rows[0])
        for row in rows[1:]:
            writer.writerow(
                [row[0], "ark:" + locations[row[0]] if row[0] in ark else row[1], row[2]]
            )
    cfg = make_cfg(
        "debug=fdr",
        "data=speech_features",
        "model=transformer_tiny",
        "data.task.folder=feats",
        f"data.task.root={tmp_path / 'data'}",
        "data.feature_dim=20",
        "decode.max_len_b=3",
        base=FAST,
    )
    assert cfg.model.input_dim == 20
    metrics = train(cfg)
    assert metrics["global_step"] == 1 and "wer" in metrics["test"]["test"]


def test_a_text_model_given_speech_data_fails_naming_the_key(make_cfg):
    from attnlab.config import validate_train_config

    cfg = make_cfg("data=an4", "model.input_dim=null", base=FAST)
    with pytest.raises(ConfigError, match="model.input_dim"):
        validate_train_config(cfg)


def test_a_trained_speech_model_transcribes_audio_files_like_eval(make_cfg, tmp_path):
    import attnlab
    from attnlab.inference import InputError

    write_corpus(tmp_path / "data" / "corpus", CORPUS)
    cfg = make_cfg(
        "data=an4",
        "model=transformer_tiny",
        "data.task.folder=corpus",
        f"data.task.root={tmp_path / 'data'}",
        "data.task.id_column=utt_id",
        "data.speed_perturb=[]",
        "trainer.max_epochs=2",
        "decode.max_len_b=4",
        base=FAST,
        output_dir=tmp_path / "run",
    )
    metrics = train(cfg)
    model = attnlab.load(metrics["best_checkpoint"])
    audio = str(tmp_path / "data" / "corpus" / "te0.flac")
    written = (tmp_path / "run" / "hypotheses" / "test.hyp.txt").read_text().splitlines()
    assert model.predict([audio]) == written
    assert model.predict(["", audio])[0] == ""
    with pytest.raises(
        InputError, match="input 1: 'Ein Mann' is not a file; this is a speech model"
    ):
        model.predict(["Ein Mann"])
